//! Codec dispatch: a configured codec name, then `decode_payload`. Input: `name\0[fPort,
//! payload...]`; without a NUL the whole input is the name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stadtpuls_gateways::Codec;

fuzz_target!(|data: &[u8]| {
    let (name, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let name = String::from_utf8_lossy(name);
    match name.parse::<Codec>() {
        Ok(codec) => {
            assert_eq!(codec.name(), name);
            if let Some((f_port, payload)) = rest.split_first() {
                stadtpuls_fuzz::decode_and_map(codec, *f_port, payload);
            }
        }
        Err(e) => assert_eq!(e.reason(), "unknown_codec", "{e}"),
    }
});
