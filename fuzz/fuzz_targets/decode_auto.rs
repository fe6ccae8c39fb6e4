//! `gateways::decode` with dialect sniffing (`sniff`), any topic. Input: the MQTT payload, or `topic\0payload`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stadtpuls_gateways::Dialect;

fuzz_target!(|data: &[u8]| stadtpuls_fuzz::network_server(Dialect::Auto, data));
