//! Request parts parsed outside the query string: the open-data file path, the `Range` header
//! and `Authorization: Bearer`. Input: the raw value, used for all three.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use stadtpuls_api::fuzzing::{parse_range, relative_path, Ranged};
use stadtpuls_fuzz::check_client_error;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match relative_path(&text) {
        Ok(path) => {
            assert!(
                !path.starts_with('/') && !path.contains(['\\', '\0']),
                "{path:?}"
            );
            for segment in path.split('/') {
                assert!(!matches!(segment, "" | "." | ".."), "{path:?}");
            }
        }
        Err(e) => check_client_error(e),
    }
    for size in [0, 1, 4096, u64::MAX] {
        if let Ranged::Part(first, last) = parse_range(&text, size) {
            assert!(
                first <= last && last < size,
                "{text:?} of {size}: {first}-{last}"
            );
        }
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value);
        match stadtpuls_api::auth::bearer_token(&headers) {
            Ok(Some(token)) => assert!(!token.is_empty() && !token.contains(' '), "{token:?}"),
            Ok(None) => panic!("a present header read as absent"),
            Err(e) => check_client_error(e),
        }
    }
});
