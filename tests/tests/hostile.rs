//! Hostile input: a table of bad MQTT messages, each with the dead-letter reason it must get,
//! published through the real Mosquitto to the real app, each followed by a good uplink. Every
//! bad message must become one dead letter with its reason (row and metric), every good one must
//! be stored with its exact values, and the app must still answer promptly afterwards.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use stadtpuls_store::testing::{fetch_all, fetch_one};
use stadtpuls_tests::{fixture, metrics, TestApp};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Where a case is published. The topic carries the case number, so that each dead letter
/// can be traced back to its case.
#[derive(Clone, Copy)]
enum To {
    /// ChirpStack (`auto` dialect) with this device segment.
    Cs(&'static str),
    /// The Things Stack v3 (`tts_v3` subscription).
    Tts,
}

use To::{Cs, Tts};

/// The ChirpStack v4 fixture's device, also the default device segment of ChirpStack topics.
const EUI: &str = "0101010101010101";
/// The ChirpStack v4 fixture's DevEUI in the v3 `json` marshaler's base64 form.
const EUI_B64: &str = "AQEBAQEBAQE=";

struct Case {
    name: &'static str,
    to: To,
    payload: Vec<u8>,
    reason: &'static str,
}

fn case(name: &'static str, to: To, payload: impl Into<Vec<u8>>, reason: &'static str) -> Case {
    Case {
        name,
        to,
        payload: payload.into(),
        reason,
    }
}

impl Case {
    fn topic(&self, n: usize) -> String {
        match self.to {
            Cs(device) => format!("application/hostile-{n:02}/device/{device}/event/up"),
            Tts => format!("v3/hostile-{n:02}@ttn/devices/eui-1000000000000001/up"),
        }
    }
}

/// The ChirpStack v4 uplink fixture, changed by `edit`.
fn cs(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("chirpstack-v4-up.json")).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// The ChirpStack v4 uplink fixture as compact text with raw JSON `members` inserted first
/// (for what `serde_json::Value` cannot hold: bad tokens, duplicate keys).
fn cs_with(members: &str) -> Vec<u8> {
    let text = String::from_utf8(cs(|_| {})).unwrap();
    format!("{{{members},{}", &text[1..]).into_bytes()
}

/// The ChirpStack v4 uplink fixture with a `note` member whose string holds `bytes`.
fn cs_with_bytes(bytes: &[u8]) -> Vec<u8> {
    [&b"{\"note\":\""[..], bytes, b"\",", &cs(|_| {})[1..]].concat()
}

/// The TTS v3 uplink fixture, changed by `edit`.
fn tts(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&fixture("tts-v3-uplink-ttn-bosch-parking-tb.json")).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// A ChirpStack v3 (`json` marshaler) uplink of the fixture's device with extra `members`.
fn cs3(members: Value) -> Vec<u8> {
    let mut v = json!({
        "applicationID": "1", "devEUI": EUI_B64, "fCnt": 7, "fPort": 1, "data": "qg==",
        "publishedAt": "2024-05-01T10:00:00Z",
    });
    v.as_object_mut()
        .unwrap()
        .extend(members.as_object().unwrap().clone());
    serde_json::to_vec(&v).unwrap()
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Limit `ingest.max_payload_bytes` (the default).
const MAX_PAYLOAD: usize = 256 * 1024;

/// The ChirpStack v4 fixture with deduplication id `dedup`, padded with a `padding` string to
/// exactly `size` bytes.
fn cs_of_size(dedup: &str, size: usize) -> Vec<u8> {
    let padded = |padding: String| {
        cs(|v| {
            v["deduplicationId"] = json!(dedup);
            v["padding"] = json!(padding);
        })
    };
    let out = padded("x".repeat(size - padded(String::new()).len()));
    assert_eq!(out.len(), size);
    out
}

#[rustfmt::skip] // one row per case
fn corpus() -> Vec<Case> {
    let fixture_text = cs(|_| {});
    let utf16: Vec<u8> = String::from_utf8(fixture_text.clone())
        .unwrap()
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();

    vec![
        // Invalid and truncated JSON.
        case("truncated fixture", Cs(EUI), &fixture_text[..fixture_text.len() / 2], "invalid_json"),
        case("truncated after a key", Cs(EUI), r#"{"deduplicationId": "x", "time": "#, "invalid_json"),
        case("trailing garbage", Cs(EUI), [&fixture_text[..], b"}"].concat(), "invalid_json"),
        case("single quotes", Cs(EUI), "{'deduplicationId': 'x'}", "invalid_json"),
        case("trailing comma", Cs(EUI), r#"{"deduplicationId": "x",}"#, "invalid_json"),
        case("comment", Cs(EUI), r#"{"deduplicationId": "x" /* hi */}"#, "invalid_json"),
        case("unterminated string", Cs(EUI), r#"{"deduplicationId": "x}"#, "invalid_json"),
        case("raw newline in a string", Cs(EUI), "{\"deduplicationId\": \"a\nb\"}", "invalid_json"),
        case("lone surrogate escape", Cs(EUI), cs_with(r#""note":"\ud800""#), "invalid_json"),
        case("byte order mark", Cs(EUI), [&b"\xef\xbb\xbf"[..], &fixture_text].concat(), "invalid_json"),
        case("empty payload", Cs(EUI), "", "invalid_json"),
        case("only whitespace", Cs(EUI), " \n\t ", "invalid_json"),
        // Invalid UTF-8.
        case("invalid UTF-8 bytes", Cs(EUI), [0xff, 0xfe, 0x00], "invalid_json"),
        case("invalid UTF-8 in a string", Cs(EUI), cs_with_bytes(&[0xc3, 0x28]), "invalid_json"),
        case("overlong UTF-8 slash", Cs(EUI), cs_with_bytes(&[0xc0, 0xaf]), "invalid_json"),
        case("UTF-8 surrogate", Cs(EUI), cs_with_bytes(&[0xed, 0xa0, 0x80]), "invalid_json"),
        case("UTF-16 JSON", Cs(EUI), utf16, "invalid_json"),
        // Huge and non-finite numbers.
        case("1e400", Cs(EUI), cs_with(r#""fCnt":1e400"#), "invalid_json"),
        case("-1e400 in rxInfo", Cs(EUI), cs_with(r#""rxInfo":[{"rssi":-1e400}]"#), "invalid_json"),
        case("NaN token", Cs(EUI), cs_with(r#""fCnt":NaN"#), "invalid_json"),
        case("-Infinity in object", Cs(EUI), cs_with(r#""object":{"temperature":-Infinity}"#), "invalid_json"),
        case("\"NaN\" as fCnt", Cs(EUI), cs(|v| v["fCnt"] = json!("NaN")), "invalid_field"),
        case("\"-Infinity\" as rssi", Cs(EUI), cs(|v| v["rxInfo"][0]["rssi"] = json!("-Infinity")), "invalid_field"),
        case("fCnt 2^32", Cs(EUI), cs(|v| v["fCnt"] = json!(4_294_967_296u64)), "invalid_field"),
        case("fCnt 2^64", Cs(EUI), cs_with(r#""fCnt":18446744073709551616"#), "invalid_field"),
        case("negative fCnt", Cs(EUI), cs(|v| v["fCnt"] = json!(-1)), "invalid_field"),
        case("fractional fCnt", Cs(EUI), cs(|v| v["fCnt"] = json!(1.5)), "invalid_field"),
        case("fPort 256", Cs(EUI), cs(|v| v["fPort"] = json!(256)), "invalid_field"),
        case("negative frequency", Cs(EUI), cs(|v| v["txInfo"]["frequency"] = json!(-868_100_000)), "invalid_field"),
        case("TTS frequency 1e30", Tts, tts(|v| v["uplink_message"]["settings"]["frequency"] = json!("1e30")), "invalid_field"),
        // Wrong types.
        case("deviceInfo a string", Cs(EUI), cs(|v| v["deviceInfo"] = json!(EUI)), "invalid_field"),
        case("rxInfo an object", Cs(EUI), cs(|v| v["rxInfo"] = json!({"rssi": -36})), "invalid_field"),
        case("data a number", Cs(EUI), cs(|v| v["data"] = json!(42)), "invalid_field"),
        case("deduplicationId a number", Cs(EUI), cs(|v| v["deduplicationId"] = json!(7)), "invalid_field"),
        case("time a number", Cs(EUI), cs(|v| v["time"] = json!(1_700_000_000)), "invalid_field"),
        case("TTS uplink_message a string", Tts, tts(|v| v["uplink_message"] = json!("up")), "invalid_field"),
        case("TTS correlation_ids a string", Tts, tts(|v| v["correlation_ids"] = json!("as:up:1")), "invalid_field"),
        // Deeply nested JSON.
        case("100 000 nested arrays", Cs(EUI), nested(100_000), "invalid_json"),
        case("40 000 nested objects", Cs(EUI), format!("{}1{}", r#"{"a":"#.repeat(40_000), "}".repeat(40_000)), "invalid_json"),
        case("object nested 1 000 deep", Cs(EUI), cs_with(&format!(r#""object":{{"a":{}}}"#, nested(1_000))), "invalid_json"),
        case("v3 objectJSON nested 1 000 deep", Cs(EUI), cs3(json!({"objectJSON": format!(r#"{{"a":{}}}"#, nested(1_000))})), "invalid_field"),
        // Not an object at the top level.
        case("null", Cs(EUI), "null", "not_an_object"),
        case("array of an uplink", Cs(EUI), [&b"["[..], &fixture_text, b"]"].concat(), "not_an_object"),
        case("string", Cs(EUI), r#""up""#, "not_an_object"),
        case("number", Cs(EUI), "42", "not_an_object"),
        case("true", Cs(EUI), "true", "not_an_object"),
        // Over the size limit.
        case("one byte over the limit", Cs(EUI), cs_of_size("over", MAX_PAYLOAD + 1), "payload_too_large"),
        case("1 MiB", Cs(EUI), cs_of_size("mebibyte", 1024 * 1024), "payload_too_large"),
        // Invalid base64 and hex.
        case("data not base64", Cs(EUI), cs(|v| v["data"] = json!("!!!")), "invalid_encoding"),
        case("data hex with colons", Cs(EUI), cs(|v| v["data"] = json!("aa:bb")), "invalid_encoding"),
        case("data base64 bad padding", Cs(EUI), cs(|v| v["data"] = json!("q=g=")), "invalid_encoding"),
        case("TTS frm_payload not base64", Tts, tts(|v| v["uplink_message"]["frm_payload"] = json!("%%%")), "invalid_encoding"),
        case("v3 devEUI 7 bytes of base64", Cs(EUI), cs3(json!({"devEUI": "AQEBAQEBAQ=="})), "invalid_dev_eui"),
        case("v3 devEUI not base64", Cs(EUI), cs3(json!({"devEUI": "***"})), "invalid_dev_eui"),
        // Wrong DevEUIs.
        case("DevEUI 14 digits", Cs(EUI), cs(|v| v["deviceInfo"]["devEui"] = json!("01010101010101")), "invalid_dev_eui"),
        case("DevEUI 18 digits", Cs(EUI), cs(|v| v["deviceInfo"]["devEui"] = json!("010101010101010101")), "invalid_dev_eui"),
        case("DevEUI not hex", Cs(EUI), cs(|v| v["deviceInfo"]["devEui"] = json!("zzzzzzzzzzzzzzzz")), "invalid_dev_eui"),
        case("DevEUI with a multibyte char", Cs(EUI), cs(|v| v["deviceInfo"]["devEui"] = json!("010101010101010é")), "invalid_dev_eui"),
        case("DevEUI empty", Cs(EUI), cs(|v| v["deviceInfo"]["devEui"] = json!("")), "missing_field"),
        case("TTS dev_eui 15 digits", Tts, tts(|v| v["end_device_ids"]["dev_eui"] = json!("100000000000001")), "invalid_dev_eui"),
        case("topic names another device", Cs("0202020202020202"), cs(|_| {}), "topic_mismatch"),
        // Unknown dialects and missing parts.
        case("no known keys", Cs(EUI), r#"{"hello": 1}"#, "unknown_dialect"),
        case("empty object", Cs(EUI), "{}", "unknown_dialect"),
        case("TTS envelope without a message", Tts, r#"{"end_device_ids": {"dev_eui": "1000000000000001"}, "note": 1}"#, "missing_field"),
        // Timestamps far in the future or past, or not timestamps.
        case("time in year 9999", Cs(EUI), cs(|v| v["time"] = json!("9999-12-31T23:59:59Z")), "invalid_timestamp"),
        case("time next week", Cs(EUI), cs(|v| { v["time"] = json!((chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339()) }), "invalid_timestamp"),
        case("time 1970", Cs(EUI), cs(|v| v["time"] = json!("1970-01-01T00:00:00Z")), "invalid_timestamp"),
        case("time month 13", Cs(EUI), cs(|v| v["time"] = json!("2024-13-01T00:00:00Z")), "invalid_timestamp"),
        case("time without zone", Cs(EUI), cs(|v| v["time"] = json!("2024-05-01T10:00:00")), "invalid_timestamp"),
        case("rxInfo nsTime in year 3000", Cs(EUI), cs(|v| v["rxInfo"][0]["nsTime"] = json!("3000-01-01T00:00:00Z")), "invalid_timestamp"),
        case("TTS received_at 1999", Tts, tts(|v| v["received_at"] = json!("1999-12-31T23:59:59Z")), "invalid_timestamp"),
        // Duplicate keys: parsers disagree on which value counts.
        case("duplicate deduplicationId", Cs(EUI), cs_with(r#""deduplicationId":"other""#), "duplicate_key"),
        case("duplicate deviceInfo", Cs(EUI), cs_with(r#""deviceInfo":{"devEui":"0202020202020202"}"#), "duplicate_key"),
        case("duplicate key in object", Cs(EUI), cs_with(r#""object":{"temperature":1,"temperature":99}"#), "duplicate_key"),
        case("duplicate key in v3 objectJSON", Cs(EUI), cs3(json!({"objectJSON": r#"{"temperature":1,"temperature":99}"#})), "duplicate_key"),
        // NUL characters, which PostgreSQL text and jsonb cannot hold.
        case("NUL in deviceName", Cs(EUI), cs(|v| v["deviceInfo"]["deviceName"] = json!("a\u{0}b")), "nul_character"),
        case("NUL in object", Cs(EUI), cs(|v| v["object"] = json!({"note": "\u{0}", "temperature": 1})), "nul_character"),
        case("NUL in an object key", Cs(EUI), cs(|v| v["object"] = json!({"temp\u{0}": 1})), "nul_character"),
        case("NUL in the DevEUI", Cs(EUI), cs(|v| v["deviceInfo"]["devEui"] = json!("\u{0}101010101010101")), "nul_character"),
        case("NUL in v3 objectJSON", Cs(EUI), cs3(json!({"objectJSON": r#"{"note":"\u0000"}"#})), "nul_character"),
    ]
}

/// A good uplink: device `20000000000000nn`, its own time and values.
struct Good {
    eui: String,
    time: chrono::DateTime<chrono::Utc>,
    temperature: f64,
    co2: f64,
}

fn good(n: usize) -> Good {
    Good {
        eui: format!("20000000000000{n:02x}"),
        time: "2024-05-01T10:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            + chrono::Duration::minutes(n as i64),
        temperature: 20.25 + n as f64 / 4.0,
        co2: 400.0 + n as f64,
    }
}

async fn publish_good(app: &TestApp, g: &Good) {
    app.publish_up(
        &g.eui,
        g.time,
        json!({"temperature": g.temperature, "co2": g.co2}),
    )
    .await;
}

/// `stadtpuls_ingest_dead_letters_total` by reason, from the test binary's recorder.
fn dead_letter_metrics() -> BTreeMap<String, u64> {
    metrics()
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("stadtpuls_ingest_dead_letters_total{reason=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once("\"}")?;
            Some((reason.to_string(), rest.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn hostile_messages_are_dead_lettered_by_reason_and_good_ones_stored() {
    let app = TestApp::start().await;
    let cases = corpus();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let before = dead_letter_metrics();

    // Bad and good alternate; one more good one exactly at the size limit.
    let goods: Vec<Good> = (0..=cases.len()).map(good).collect();
    for (n, c) in cases.iter().enumerate() {
        app.publish(&c.topic(n), c.payload.clone()).await;
        publish_good(&app, &goods[n]).await;
    }
    app.publish(
        &format!("application/hostile-limit/device/{EUI}/event/up"),
        cs_of_size("at-the-limit", MAX_PAYLOAD),
    )
    .await;

    // Wait until there are as many rows as messages (at most 20 s; the assertions below then
    // show what is missing).
    let expected = (cases.len(), cases.len() + 1);
    stadtpuls_tests::wait::poll(stadtpuls_tests::wait::DEFAULT, || async {
        let c = app.store.counts().await.unwrap();
        ((c.dead_letters as usize, c.uplinks as usize) >= expected).then_some(())
    })
    .await;

    // Each case's dead letter, found by its topic, has the case's reason and full size.
    let rows: Vec<(String, String, i32)> = fetch_all(
        &app.store,
        "SELECT topic, reason, payload_size FROM dead_letters",
    )
    .await;
    let mut got: Vec<(usize, &str, &str, usize)> = rows
        .iter()
        .map(|(topic, reason, size)| {
            let n = (topic.split(['-', '/', '@'])).find_map(|s| s.parse::<usize>().ok());
            // A dead letter of no case sorts last, under its topic.
            let name = n.map_or(topic.as_str(), |n| cases[n].name);
            (
                n.unwrap_or(usize::MAX),
                name,
                reason.as_str(),
                *size as usize,
            )
        })
        .collect();
    got.sort();
    let got: Vec<(&str, &str, usize)> = got.into_iter().map(|(_, c, r, s)| (c, r, s)).collect();
    let want: Vec<(&str, &str, usize)> = cases
        .iter()
        .map(|c| (c.name, c.reason, c.payload.len()))
        .collect();
    assert_eq!(got, want);

    // The metric counts the same reasons.
    let after = dead_letter_metrics();
    let mut want_metrics: BTreeMap<String, u64> = BTreeMap::new();
    for c in &cases {
        *want_metrics.entry(c.reason.to_string()).or_default() += 1;
    }
    let got_metrics: BTreeMap<String, u64> = after
        .iter()
        .map(|(r, n)| (r.clone(), n - before.get(r).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(got_metrics, want_metrics);

    // Every good uplink is stored with exactly its readings.
    let readings: Vec<(String, String, String, f64)> = fetch_all(
        &app.store,
        "SELECT lpad(to_hex(r.dev_eui), 16, '0'), q.name,
                to_char(r.time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), r.value
           FROM readings r JOIN quantities q ON q.id = r.quantity
          ORDER BY 1, 2",
    )
    .await;
    let mut want_readings = Vec::new();
    for g in &goods[..cases.len()] {
        let t = g.time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        want_readings.push((g.eui.clone(), "co2".to_string(), t.clone(), g.co2));
        want_readings.push((g.eui.clone(), "temperature".to_string(), t, g.temperature));
    }
    assert_eq!(readings, want_readings);
    let (uplinks,): (i64,) = fetch_one(&app.store, "SELECT count(*) FROM uplinks").await;
    assert_eq!(uplinks, cases.len() as i64 + 1);

    // Still responsive: one more good uplink is stored promptly, and /health is ok.
    let last = &goods[cases.len()];
    let started = Instant::now();
    publish_good(&app, last).await;
    let last_eui = last.eui.clone();
    app.wait_for("last good uplink stored", || async {
        let (n,): (i64,) = fetch_one(
            &app.store,
            &format!("SELECT count(*) FROM readings WHERE dev_eui = x'{last_eui}'::bigint"),
        )
        .await;
        n == 2
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "last uplink took {:?}",
        started.elapsed()
    );
    let (status, health) = app.get_json("/health").await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
    app.stop().await;
}
