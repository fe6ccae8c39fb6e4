//! `KeyTable::map_object` on arbitrary JSON; non-JSON input is parsed as a `mapping.keys` entry.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stadtpuls_fuzz::mapping(data));
