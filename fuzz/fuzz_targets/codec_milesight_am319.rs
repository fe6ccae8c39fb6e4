//! Milesight AM300-series codec, then the key mapping of its output. Input: `[fPort, payload...]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stadtpuls_gateways::Codec;

fuzz_target!(|data: &[u8]| stadtpuls_fuzz::codec(Codec::MilesightAm319, data));
