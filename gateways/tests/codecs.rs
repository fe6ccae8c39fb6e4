//! Payload codecs against fixture values: Cayenne LPP (notes vector, TTN v2 capture), Bosch
//! parking (ChirpStack/TTS captures + ThingsBoard output, device-repository examples), Milesight
//! AM319/AM307/AM107 (ChirpStack capture + ThingsBoard output, device-repository examples).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use serde_json::{json, Value};
use stadtpuls_gateways::{
    decode, decode_payload, Codec, CodecError, Decoded, Dialect, KeyTable, Quantity,
};
use std::path::Path;

fn fixture_json(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lorawan")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// (fPort, FRMPayload) of a network-server fixture, through the real decoder.
fn uplink_bytes(name: &str, dialect: Dialect) -> (u8, Vec<u8>) {
    let raw = serde_json::to_vec(&fixture_json(name)).unwrap();
    let now = "2026-01-01T00:00:00Z".parse().unwrap();
    match decode(dialect, "", &raw, now).unwrap() {
        Decoded::Uplink(up) => (up.f_port.unwrap(), up.payload),
        other => panic!("{other:?}"),
    }
}

/// Two JSON values agree: numbers within 1e-6, booleans equal to 0/1, objects key by key.
fn same(got: &Value, expected: &Value) -> bool {
    match (got, expected) {
        (Value::Number(a), Value::Number(b)) => {
            (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6
        }
        (Value::Number(a), Value::Bool(b)) => a.as_f64() == Some(f64::from(u8::from(*b))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && b.iter().all(|(k, v)| a.get(k).is_some_and(|g| same(g, v)))
        }
        _ => got == expected,
    }
}

/// Every key of `expected` is in `got` with the same value; returns the keys `got` has extra.
fn contains(got: &Value, expected: &Value) -> Vec<String> {
    let (g, e) = (got.as_object().unwrap(), expected.as_object().unwrap());
    for (k, v) in e {
        assert!(
            g.get(k).is_some_and(|x| same(x, v)),
            "{k}: got {:?}, expected {v}",
            g.get(k)
        );
    }
    g.keys().filter(|k| !e.contains_key(*k)).cloned().collect()
}

#[test]
fn cayenne_notes_vector() {
    let out = decode_payload(
        Codec::CayenneLpp,
        1,
        &[0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF],
    )
    .unwrap();
    assert_eq!(out, json!({"temperature_3": 27.2, "temperature_5": 25.5}));
}

#[test]
fn cayenne_ttn_v2_capture_matches_payload_fields() {
    let msg = fixture_json("ttn-v2-uplink-cayenne-legacy.json");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(msg["payload_raw"].as_str().unwrap())
        .unwrap();
    let out = decode_payload(Codec::CayenneLpp, 99, &bytes).unwrap();
    assert!(
        same(&out, &msg["payload_fields"]),
        "{out} vs {}",
        msg["payload_fields"]
    );
    assert_eq!(out["temperature_1"], json!(27.2));
}

#[test]
fn cayenne_extended_types() {
    let bytes = [
        0x01, 0x74, 0x01, 0x2C, // voltage 3.00 V
        0x02, 0x82, 0x00, 0x00, 0x04, 0xD2, // distance 1.234 m
        0x03, 0x65, 0x01, 0x90, // luminosity 400 lx
        0x04, 0x73, 0x27, 0x77, // barometer 1010.3 hPa
        0x05, 0x68, 0x61, // humidity 48.5 %
        0x06, 0x02, 0xFF, 0x38, // analog in -2.00
        0x07, 0x87, 0x10, 0x20, 0x30, // colour
    ];
    let out = decode_payload(Codec::CayenneLpp, 1, &bytes).unwrap();
    assert_eq!(
        out,
        json!({
            "voltage_1": 3.0, "distance_2": 1.234, "luminosity_3": 400, "barometric_pressure_4": 1010.3,
            "relative_humidity_5": 48.5, "analog_in_6": -2.0, "colour_7": {"r": 16, "g": 32, "b": 48}
        })
    );
    let mapped = KeyTable::builtin().map_object(&out, "2024-01-01T00:00:00Z".parse().unwrap());
    let got: Vec<(Quantity, f64)> = mapped
        .readings
        .iter()
        .map(|r| (r.quantity, r.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (Quantity::Pressure, 1010.3),
            (Quantity::Distance, 1.234),
            (Quantity::Illuminance, 400.0),
            (Quantity::Humidity, 48.5),
        ]
    );
    assert_eq!(
        mapped.unmapped,
        vec![
            "analog_in_6",
            "colour_7.b",
            "colour_7.g",
            "colour_7.r",
            "voltage_1"
        ]
    );
}

#[test]
fn bosch_parking_network_server_captures() {
    let expected =
        &fixture_json("chirpstack-v4-up-bosch-parking-tb.expected.json")["telemetry"][0]["values"];
    let captures = [
        (
            "chirpstack-v4-up-bosch-parking-tb.json",
            Dialect::ChirpstackV4,
        ),
        ("tts-v3-uplink-ttn-bosch-parking-tb.json", Dialect::TtsV3),
        (
            "tts-v3-uplink-tti-packetbroker-bosch-parking-tb.json",
            Dialect::TtsV3,
        ),
    ];
    for (name, dialect) in captures {
        let (f_port, bytes) = uplink_bytes(name, dialect);
        let out = decode_payload(Codec::BoschParking, f_port, &bytes).unwrap();
        assert!(same(&out, expected), "{name}: {out}");
        assert_eq!(
            out,
            json!({"type": "heartbeat", "occupied": 1, "temperature": 18}),
            "{name}"
        );
    }
}

#[test]
fn bosch_parking_device_repository_examples() {
    let city = fixture_json("ttn-devrepo-uplink-examples-city.json");
    let bosch = city["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["codec_js"] == "vendor/bosch/tpl110-0292.js")
        .unwrap();
    let examples = bosch["uplink_examples"].as_array().unwrap();
    assert_eq!(examples.len(), 3);
    for ex in examples {
        let f_port = u8::try_from(ex["input"]["fPort"].as_u64().unwrap()).unwrap();
        let bytes: Vec<u8> = serde_json::from_value(ex["input"]["bytes"].clone()).unwrap();
        let out = decode_payload(Codec::BoschParking, f_port, &bytes).unwrap();
        assert!(
            same(&out, &ex["output"]["data"]),
            "{}: {out}",
            ex["description"]
        );
    }
}

#[test]
fn milesight_am319_capture() {
    let (f_port, bytes) = uplink_bytes(
        "chirpstack-v4-up-milesight-am319-tb.json",
        Dialect::ChirpstackV4,
    );
    assert_eq!(f_port, 85);
    let out = decode_payload(Codec::MilesightAm319, f_port, &bytes).unwrap();
    let expected = &fixture_json("chirpstack-v4-up-milesight-am319-tb.expected.json")["telemetry"]
        [0]["values"];
    assert_eq!(contains(&out, expected), Vec::<String>::new());
    assert_eq!(out["pm2_5"], json!(32));
    assert_eq!(out["hcho"], json!(0.04));
    assert_eq!(out["pressure"], json!(1008.6));

    let mapped = KeyTable::builtin().map_object(&out, "2024-01-01T00:00:00Z".parse().unwrap());
    let mut got: Vec<(Quantity, f64)> = mapped
        .readings
        .iter()
        .map(|r| (r.quantity, r.value))
        .collect();
    got.sort_by_key(|(q, _)| q.id());
    assert_eq!(
        got,
        vec![
            (Quantity::Temperature, 23.8),
            (Quantity::Humidity, 62.0),
            (Quantity::Co2, 936.0),
            (Quantity::Pressure, 1008.6),
            (Quantity::Pm2_5, 32.0),
            (Quantity::Pm10, 48.0),
            (Quantity::Tvoc, 37.0),
            (Quantity::Battery, 85.0),
            (Quantity::Hcho, 0.04),
        ]
    );
    assert_eq!(mapped.unmapped, vec!["beep", "light_level", "pir"]);
}

#[test]
fn milesight_device_repository_examples() {
    let am307 = fixture_json("ttn-devrepo-milesight-am307-examples.json");
    let city = fixture_json("ttn-devrepo-uplink-examples-city.json");
    let am107 = city["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["codec_js"] == "vendor/milesight-iot/am107.js")
        .unwrap()
        .clone();
    // (examples, extra keys our decoder emits per example). The AM307 codec ignores the
    // activity record (05 6A) that its first example carries; the AM107 codec decodes it.
    let sets = [
        (am307, vec![vec!["activity"], vec![]]),
        (am107, vec![vec![], vec![], vec![]]),
    ];
    for (codec, extras) in sets {
        let examples = codec["uplink_examples"].as_array().unwrap();
        assert_eq!(examples.len(), extras.len());
        for (ex, extra) in examples.iter().zip(extras) {
            let bytes: Vec<u8> = serde_json::from_value(ex["input"]["bytes"].clone()).unwrap();
            let out = decode_payload(Codec::MilesightAm319, 85, &bytes).unwrap();
            assert_eq!(
                contains(&out, &ex["output"]["data"]),
                extra,
                "{}",
                ex["description"]
            );
        }
    }
}

#[test]
fn garbage_and_truncated_payloads_are_errors() {
    let cases: &[(Codec, u8, &[u8], &str)] = &[
        (Codec::CayenneLpp, 1, &[0x03, 0x67, 0x01], "truncated"),
        (Codec::CayenneLpp, 1, &[0x03], "truncated"),
        (Codec::CayenneLpp, 1, &[0x01, 0x88, 0x06, 0x76], "truncated"),
        (Codec::CayenneLpp, 1, &[0x01, 0xFE, 0x00], "unknown_type"),
        (Codec::CayenneLpp, 1, &[], "empty_payload"),
        (
            Codec::BoschParking,
            3,
            &[0x24, 0x03, 0x00, 0x00, 0x75],
            "truncated",
        ),
        (Codec::BoschParking, 4, &[0x01], "unsupported_port"),
        (Codec::MilesightAm319, 85, &[0x01, 0x75], "truncated"),
        (Codec::MilesightAm319, 85, &[0x03, 0x67, 0xEE], "truncated"),
        (
            Codec::MilesightAm319,
            85,
            &[0x20, 0xCE, 0x00, 0x01],
            "truncated",
        ),
        (
            Codec::MilesightAm319,
            85,
            &[0x99, 0x99, 0x00],
            "unknown_type",
        ),
    ];
    for (codec, f_port, bytes, reason) in cases {
        let err = decode_payload(*codec, *f_port, bytes).unwrap_err();
        assert_eq!(err.reason(), *reason, "{codec} {bytes:02x?}: {err}");
    }
    assert_eq!(
        decode_payload(Codec::MilesightAm319, 85, &[0x01, 0x75, 0x55, 0x99, 0x99]),
        Err(CodecError::UnknownType {
            offset: 3,
            code: 0x9999
        })
    );
    // Every prefix of real payloads either decodes or fails cleanly — never panics.
    let (_, am319) = uplink_bytes(
        "chirpstack-v4-up-milesight-am319-tb.json",
        Dialect::ChirpstackV4,
    );
    for codec in Codec::ALL {
        for port in [1u8, 2, 3, 85] {
            for len in 0..=am319.len() {
                let _ = decode_payload(*codec, port, &am319[..len]);
            }
        }
    }
}
