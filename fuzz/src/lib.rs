//! Harness code shared by the fuzz targets: how input bytes are split into arguments, and the
//! invariants checked beyond "does not panic". A broken invariant panics, which libFuzzer
//! reports as a crash.

use axum::response::IntoResponse;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use stadtpuls_api::error::ApiError;
use stadtpuls_gateways::{
    decode, decode_payload, Codec, DecodeError, Decoded, DeviceEvent, Dialect, KeyTable, Mapped,
};
use std::collections::HashSet;

/// The injected clock of every target.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_717_243_200, 0).expect("2024-06-01T12:00:00Z is a valid time")
}

/// Topics every network-server payload is decoded with: none, and one of each dialect's shapes.
const TOPICS: &[&str] = &[
    "",
    "application/1/device/0102030405060708/event/up",
    "v3/app@ttn/devices/dev1/up",
];

/// Network-server target: `data` is the MQTT payload, or `topic\0payload` to fuzz the topic
/// too (the JSON fixtures in the corpus carry no topic).
pub fn network_server(dialect: Dialect, data: &[u8]) {
    let (topic, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    for topic in TOPICS.iter().copied().chain(topic) {
        match decode(dialect, topic, payload, now()) {
            Ok(decoded) => check_decoded(&decoded),
            Err(e) => check_decode_error(&e),
        }
    }
}

/// What `gateways::decode` documents about its output.
fn check_decoded(decoded: &Decoded) {
    let oldest = DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01 is a valid time");
    let newest = now() + TimeDelta::days(1);
    let plausible = |t: DateTime<Utc>, what: &str| {
        assert!(t >= oldest && t <= newest, "{what} {t} is implausible");
        assert_eq!(
            t.timestamp_subsec_nanos() % 1000,
            0,
            "{what} {t} is finer than microseconds"
        );
    };
    match decoded {
        Decoded::Uplink(u) => {
            plausible(u.observed_at, "observed_at");
            plausible(u.received_at, "received_at");
            if let Some(obj) = &u.decoded {
                // What ingest does with it next.
                check_mapped(
                    &KeyTable::builtin().map_object(obj, u.observed_at),
                    u.observed_at,
                );
            }
        }
        Decoded::Event(DeviceEvent::Status { at, .. } | DeviceEvent::Location { at, .. }) => {
            if let Some(t) = at {
                plausible(*t, "event time");
            }
        }
        Decoded::Skipped { kind, .. } => assert!(!kind.is_empty()),
    }
}

fn check_decode_error(e: &DecodeError) {
    assert!(!e.reason().is_empty());
    let _ = e.to_string();
}

/// Codec target: `data` is `[fPort, payload...]`.
pub fn codec(codec: Codec, data: &[u8]) {
    let Some((f_port, payload)) = data.split_first() else {
        return;
    };
    decode_and_map(codec, *f_port, payload);
}

/// Decodes with `codec`, then maps the object as ingest does.
pub fn decode_and_map(codec: Codec, f_port: u8, payload: &[u8]) {
    match decode_payload(codec, f_port, payload) {
        Ok(v) => {
            assert!(v.is_object(), "{codec} returned {v}");
            check_mapped(&KeyTable::builtin().map_object(&v, now()), now());
        }
        Err(e) => {
            assert!(!e.reason().is_empty());
            let _ = e.to_string();
        }
    }
}

/// What `KeyTable::map_object` documents: finite values at the given time, one reading per
/// quantity.
pub fn check_mapped(m: &Mapped, observed_at: DateTime<Utc>) {
    let mut seen = HashSet::new();
    for r in &m.readings {
        assert!(r.value.is_finite(), "{r:?}");
        assert_eq!(r.observed_at, observed_at);
        assert!(seen.insert(r.quantity), "{} mapped twice", r.quantity);
    }
}

/// Mapping target: `data` as a JSON value; bytes that are no JSON are tried as a
/// `mapping.keys` configuration entry instead.
pub fn mapping(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        check_mapped(&KeyTable::builtin().map_object(&v, now()), now());
        return;
    }
    let Ok(entry) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entry) = stadtpuls_gateways::mapping::parse_entry(entry) {
        let mut table = KeyTable::builtin();
        table.add(&entry);
        let obj = serde_json::json!({ entry.key.clone(): 1.5, "nested": { entry.key: "2 m" } });
        check_mapped(&table.map_object(&obj, now()), now());
    }
}

/// Every parser error must become a 4xx: a 5xx on caller input is a bug.
pub fn check_client_error(e: ApiError) {
    let shown = e.to_string();
    let status = e.into_response().status();
    assert!(status.is_client_error(), "{status} for {shown}");
}
