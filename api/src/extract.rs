//! Extractors whose rejections are [`ApiError`]s, so that a malformed path, query string or body
//! gets the same problem+json as every other 4xx: [`Query`], [`Path`] and [`JsonBody`].
//!
//! Invariant: no parameter value reaching a handler holds U+0000. PostgreSQL text cannot store
//! it, so a NUL that got as far as a query would be a 500; here it is a 400 naming the parameter.

use crate::error::ApiError;
use crate::params::clip;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// The query string as a map of name → value (percent-decoded; of a name given twice the last
/// value counts). Handlers read it through [`crate::params::Params`].
#[derive(Debug)]
pub struct Query(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        query_map(parts.uri.query()).map(Query)
    }
}

/// The parameters of a raw query string, each name and value checked with [`check_text`].
pub fn query_map(query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let mut map = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        check_text(&name, &name)?;
        check_text(&name, &value)?;
        map.insert(name.into_owned(), value.into_owned());
    }
    Ok(map)
}

/// 400 naming `param` when `value` holds U+0000. (Invalid UTF-8 never gets this far: query
/// values are decoded lossily, path segments are rejected by [`Path`].)
pub fn check_text(param: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::bad(
            &clip(&param.replace('\0', "\\0")),
            "contains a NUL character (U+0000, %00), which no parameter may hold",
        ));
    }
    Ok(())
}

/// Path parameters (`{id}`, `{dev_eui}`, …) deserialized as with axum's `Path`; a segment that
/// is not UTF-8 once percent-decoded, or holds U+0000, is a 400 naming its parameter.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let value = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(path_rejection)?;
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::internal("path parameters", e.body_text()))?;
        for (name, v) in &raw {
            check_text(name, v)?;
        }
        Ok(Path(value.0))
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.into_kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => {
                ApiError::bad(&key, "is not valid UTF-8 once percent-decoded")
            }
            ErrorKind::ParseErrorAtKey {
                key,
                value,
                expected_type,
            } => ApiError::bad(&key, format!("'{}' is not {expected_type}", clip(&value))),
            other => ApiError::bad("path", other.to_string()),
        },
        // The handler expects parameters its route does not have: a bug, not the caller's fault.
        other => ApiError::internal("path parameters", other.body_text()),
    }
}

/// The body of a request that a handler parses as JSON itself: at most `http.max_body_bytes`
/// (413 naming `body`; refused before reading when `Content-Length` already says so), and
/// either JSON (`application/json`, `application/…+json`) or without a `Content-Type` (415
/// naming `content-type` otherwise).
#[derive(Debug)]
pub struct JsonBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.settings.http.max_body_bytes;
        if let Some(value) = req.headers().get(header::CONTENT_TYPE) {
            let ct = value.to_str().unwrap_or("(not ASCII)");
            if !is_json(ct) {
                return Err(ApiError::UnsupportedMediaType(ct.to_string()));
            }
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        // The router's `DefaultBodyLimit` is the same `http.max_body_bytes`; it stops reading
        // a body without `Content-Length` (chunked) at the limit.
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(JsonBody(bytes)),
            Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
                Err(ApiError::PayloadTooLarge { limit })
            }
            Err(other) => Err(ApiError::bad("body", other.body_text())),
        }
    }
}

/// Whether a `Content-Type` names JSON: `application/json` or `application/<x>+json`, with any
/// parameters (`; charset=utf-8`). Pure.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rejected(e: ApiError) -> (String, String) {
        match e {
            ApiError::BadParam { param, message } => (param, message),
            other => panic!("expected BadParam, got {other:?}"),
        }
    }

    #[test]
    fn query_strings_decode_and_reject_nul_naming_the_parameter() {
        let q = query_map(Some("a=1&b=x+y&c=%C3%A4&a=2&d=")).unwrap();
        let get = |k: &str| q.get(k).map(String::as_str);
        assert_eq!(
            (get("a"), get("b"), get("c"), get("d")),
            (Some("2"), Some("x y"), Some("ä"), Some(""))
        );
        assert!(query_map(None).unwrap().is_empty());
        // Invalid UTF-8 is decoded lossily (as axum's Query did); the handler then rejects
        // the value as it would any other wrong one.
        assert_eq!(query_map(Some("q=%FF")).unwrap()["q"], "\u{FFFD}");
        let cases = [
            ("quantity=co2%00", "quantity"),
            ("from=%00&to=1", "from"),
            ("x%00y=1", "x\\0y"),
        ];
        for (query, param) in cases {
            let (p, m) = rejected(query_map(Some(query)).unwrap_err());
            assert_eq!(p, param, "{query}");
            assert!(m.contains("NUL"), "{query}: {m}");
        }
    }

    #[test]
    fn json_content_types() {
        for ct in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/geo+json",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ct), "{ct}");
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(ct), "{ct}");
        }
    }
}
