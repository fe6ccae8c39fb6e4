//! The Things Stack v3 uplinks and events. Input: the MQTT payload, or `topic\0payload`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stadtpuls_gateways::Dialect;

fuzz_target!(|data: &[u8]| stadtpuls_fuzz::network_server(Dialect::TtsV3, data));
