//! Network-server messages → canonical uplinks/events: every ChirpStack and TTS fixture, plus
//! bad input.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stadtpuls_gateways::{
    decode, DecodeError, Decoded, DevEui, DeviceEvent, Dialect, GatewayRx, Location, NetworkServer,
    Position, Uplink,
};
use std::path::Path;

fn now() -> DateTime<Utc> {
    t("2026-01-01T00:00:00Z")
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn eui(s: &str) -> DevEui {
    s.parse().unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lorawan")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// A fixture with one edit applied.
fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = fixture_json(name);
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn run(dialect: Dialect, topic: &str, payload: &[u8]) -> Result<Decoded, DecodeError> {
    decode(dialect, topic, payload, now())
}

fn uplink_of(decoded: Decoded) -> Uplink {
    match decoded {
        Decoded::Uplink(u) => *u,
        other => panic!("expected an uplink, got {other:?}"),
    }
}

const V4_TOPIC: &str =
    "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/";
const V4_TB_TOPIC: &str =
    "application/ca739e26-7b67-4f14-b69e-d568c22a5a75/device/1000000000000001/event/up";
const V3_TOPIC: &str = "application/123/device/0202020202020202/event/";
const TTS_TOPIC: &str = "v3/app1@ttn/devices/dev1/";

fn gw(id: &str, rssi: Option<f64>, snr: Option<f64>, location: Option<Location>) -> GatewayRx {
    GatewayRx {
        gateway_id: id.to_string(),
        rssi,
        snr,
        location,
    }
}

fn loc(lat: f64, lon: f64, alt: Option<f64>, source: Option<&str>) -> Location {
    Location {
        position: Position::new(lat, lon).unwrap(),
        alt,
        source: source.map(str::to_string),
    }
}

/// One uplink fixture and what it must decode to.
struct UpCase {
    name: &'static str,
    dialect: Dialect,
    topic: &'static str,
    payload: Vec<u8>,
    server: NetworkServer,
    dedup_key: String,
    dev_eui: &'static str,
    application: Option<&'static str>,
    device_name: Option<&'static str>,
    f_cnt: Option<u32>,
    f_port: Option<u8>,
    data_hex: &'static str,
    observed_at: &'static str,
    received_at: &'static str,
    gateways: Vec<GatewayRx>,
    decoded: Option<Value>,
    /// frequency, spreading factor, bandwidth, dr
    tx: (Option<u64>, Option<u32>, Option<u32>, Option<u32>),
    simulated: bool,
}

/// Decodes with the configured dialect (and topic) and with `auto` and no topic: both must give
/// the same, expected uplink.
fn check(c: &UpCase) {
    let up = uplink_of(
        run(c.dialect, c.topic, &c.payload).unwrap_or_else(|e| panic!("{}: {e}", c.name)),
    );
    let sniffed = uplink_of(run(Dialect::Auto, "", &c.payload).unwrap());
    assert_eq!(up, sniffed, "{}: auto without topic differs", c.name);

    assert_eq!(up.network_server, c.server, "{}", c.name);
    assert_eq!(up.dedup_key, c.dedup_key, "{}", c.name);
    assert_eq!(up.dev_eui, eui(c.dev_eui), "{}", c.name);
    assert_eq!(up.application.as_deref(), c.application, "{}", c.name);
    assert_eq!(up.device_name.as_deref(), c.device_name, "{}", c.name);
    assert_eq!(up.f_cnt, c.f_cnt, "{}", c.name);
    assert_eq!(up.f_port, c.f_port, "{}", c.name);
    assert_eq!(hex::encode(&up.payload), c.data_hex, "{}", c.name);
    assert_eq!(up.observed_at, t(c.observed_at), "{}", c.name);
    assert_eq!(up.received_at, t(c.received_at), "{}", c.name);
    assert_eq!(up.gateways, c.gateways, "{}", c.name);
    assert_eq!(up.decoded, c.decoded, "{}", c.name);
    let tx = (
        up.tx.frequency_hz,
        up.tx.spreading_factor,
        up.tx.bandwidth_hz,
        up.tx.dr,
    );
    assert_eq!(tx, c.tx, "{}", c.name);
    assert_eq!(up.simulated, c.simulated, "{}", c.name);
    assert_eq!(up.device_location, None, "{}", c.name);
}

#[test]
fn chirpstack_v4_uplinks() {
    let tb_common = |name: &'static str, f_port, data_hex| UpCase {
        name,
        dialect: Dialect::ChirpstackV4,
        topic: V4_TB_TOPIC,
        payload: fixture(name),
        server: NetworkServer::ChirpstackV4,
        dedup_key: "57433366-50a6-4dc2-8145-2df1bbc70d9e".into(),
        dev_eui: "1000000000000001",
        application: Some("ca739e26-7b67-4f14-b69e-d568c22a5a75"),
        device_name: Some("Device name"),
        f_cnt: Some(4),
        f_port: Some(f_port),
        data_hex,
        observed_at: "2023-05-22T07:47:05.404859Z",
        // Pre-4.6 capture: rxInfo has `time`, no `nsTime`.
        received_at: "2023-05-22T07:47:05.404859Z",
        // `"location": {}` means no gateway location.
        gateways: vec![gw("6a7e111a10000000", Some(-35.0), Some(11.5), None)],
        decoded: None,
        tx: (Some(868_500_000), Some(7), Some(125_000), None),
        simulated: false,
    };
    let cases = [
        UpCase {
            name: "chirpstack-v4-up.json",
            dialect: Dialect::ChirpstackV4,
            topic:
                "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up",
            payload: fixture("chirpstack-v4-up.json"),
            server: NetworkServer::ChirpstackV4,
            dedup_key: "3ac7e3c4-4401-4b8d-9386-a5c902f9202d".into(),
            dev_eui: "0101010101010101",
            application: Some("17c82e96-be03-4f38-aef3-f83d48582d97"),
            device_name: Some("Test device"),
            // The docs example predates emit-all-fields and has no fCnt.
            f_cnt: None,
            f_port: Some(1),
            data_hex: "aa",
            observed_at: "2022-07-18T09:34:15.775023Z",
            received_at: "2022-07-18T09:34:15.775023Z",
            gateways: vec![gw("0016c001f153a14c", Some(-36.0), Some(10.5), None)],
            decoded: None,
            tx: (Some(867_100_000), Some(11), Some(125_000), Some(1)),
            simulated: false,
        },
        UpCase {
            tx: (Some(868_500_000), Some(7), Some(125_000), Some(5)),
            ..tb_common("chirpstack-v4-up-bosch-parking-tb.json", 2, "0112")
        },
        UpCase {
            tx: (Some(868_500_000), Some(7), Some(125_000), Some(5)),
            ..tb_common(
                "chirpstack-v4-up-milesight-am319-tb.json",
                85,
                "0175550367ee0004687c05000106cb02077da803087d250009736627\
                 0a7d04000b7d20000c7d30000e0155",
            )
        },
    ];
    for c in &cases {
        check(c);
    }
}

#[test]
fn chirpstack_v4_up_times_object_and_gateway_location() {
    let payload = edited("chirpstack-v4-up.json", |v| {
        v["fCnt"] = json!(7);
        v["object"] = json!({"temperature": 21.5});
        v["rxInfo"] = json!([
            {"gatewayId": "0016c001f153a14c", "nsTime": "2022-07-18T09:34:15.800Z", "rssi": -36,
             "location": {"latitude": 52.5, "longitude": 13.4, "altitude": 40.0, "source": "CONFIG"}},
            {"gatewayId": "0016c001f153a14d", "nsTime": "2022-07-18T09:34:15.900Z", "gwTime": "2022-07-18T09:34:15.700Z"}
        ]);
    });
    let up = uplink_of(run(Dialect::ChirpstackV4, "", &payload).unwrap());
    assert_eq!(up.f_cnt, Some(7));
    assert_eq!(up.decoded, Some(json!({"temperature": 21.5})));
    assert_eq!(up.observed_at, t("2022-07-18T09:34:15.775023Z"));
    assert_eq!(
        up.received_at,
        t("2022-07-18T09:34:15.900Z"),
        "latest nsTime"
    );
    assert_eq!(
        up.gateways[0].location,
        Some(Location {
            position: Position::new(52.5, 13.4).unwrap(),
            alt: Some(40.0),
            source: Some("CONFIG".into())
        })
    );
    assert_eq!(up.gateways[1].rssi, None);

    // Without `time`, the first gateway's nsTime; without any time, `now`. An empty object is no
    // decoded payload.
    let no_time = edited("chirpstack-v4-up.json", |v| {
        v.as_object_mut().unwrap().remove("time");
        v["rxInfo"][0]["nsTime"] = json!("2022-07-18T09:34:16Z");
        v["object"] = json!({});
    });
    let up = uplink_of(run(Dialect::ChirpstackV4, "", &no_time).unwrap());
    assert_eq!(up.observed_at, t("2022-07-18T09:34:16Z"));
    assert_eq!(up.decoded, None);
    let no_times = edited("chirpstack-v4-up.json", |v| {
        v.as_object_mut().unwrap().remove("time");
    });
    let up = uplink_of(run(Dialect::ChirpstackV4, "", &no_times).unwrap());
    assert_eq!((up.observed_at, up.received_at), (now(), now()));
}

#[test]
fn chirpstack_v4_events() {
    let skipped = [
        ("chirpstack-v4-join.json", "join", "0101010101010101"),
        ("chirpstack-v4-ack.json", "ack", "0101010101010101"),
        ("chirpstack-v4-txack.json", "txack", "0101010101010101"),
        ("chirpstack-v4-log.json", "log", "0101010101010101"),
        (
            "chirpstack-v4-integration.json",
            "integration",
            "0016c001f000175a",
        ),
    ];
    for (name, kind, dev) in skipped {
        let expected = Decoded::Skipped {
            kind,
            dev_eui: Some(eui(dev)),
        };
        let topic = format!("{V4_TOPIC}{kind}");
        assert_eq!(
            run(Dialect::ChirpstackV4, &topic, &fixture(name)),
            Ok(expected.clone()),
            "{name}"
        );
        assert_eq!(
            run(Dialect::Auto, "", &fixture(name)),
            Ok(expected),
            "{name} by shape"
        );
    }

    let status = Decoded::Event(DeviceEvent::Status {
        dev_eui: eui("0101010101010101"),
        battery_percent: Some(88.3),
        external_power: false,
        margin: Some(10),
        at: Some(t("2022-07-18T09:35:06.927172Z")),
    });
    let payload = fixture("chirpstack-v4-status.json");
    assert_eq!(
        run(
            Dialect::ChirpstackV4,
            &format!("{V4_TOPIC}status"),
            &payload
        ),
        Ok(status.clone())
    );
    assert_eq!(run(Dialect::Auto, "", &payload), Ok(status));

    let mains = edited("chirpstack-v4-status.json", |v| {
        v["externalPowerSource"] = json!(true)
    });
    match run(Dialect::ChirpstackV4, "", &mains).unwrap() {
        Decoded::Event(DeviceEvent::Status {
            battery_percent,
            external_power,
            ..
        }) => {
            assert_eq!((battery_percent, external_power), (None, true));
        }
        other => panic!("{other:?}"),
    }
    let unknown = edited("chirpstack-v4-status.json", |v| {
        v["batteryLevelUnavailable"] = json!(true)
    });
    match run(Dialect::ChirpstackV4, "", &unknown).unwrap() {
        Decoded::Event(DeviceEvent::Status {
            battery_percent,
            external_power,
            ..
        }) => {
            assert_eq!((battery_percent, external_power), (None, false));
        }
        other => panic!("{other:?}"),
    }

    let location = Decoded::Event(DeviceEvent::Location {
        dev_eui: eui("0101010101010101"),
        location: Location {
            position: Position::new(37.344214, -8.839375).unwrap(),
            alt: Some(2.0),
            source: None,
        },
        at: Some(t("2022-07-18T09:55:11.059481Z")),
    });
    let payload = fixture("chirpstack-v4-location.json");
    assert_eq!(
        run(
            Dialect::ChirpstackV4,
            &format!("{V4_TOPIC}location"),
            &payload
        ),
        Ok(location.clone())
    );
    assert_eq!(run(Dialect::Auto, "", &payload), Ok(location));

    // Unknown future event types are skipped, not errors.
    let topic = format!("{V4_TOPIC}newfangled");
    assert_eq!(
        run(
            Dialect::ChirpstackV4,
            &topic,
            &fixture("chirpstack-v4-join.json")
        ),
        Ok(Decoded::Skipped {
            kind: "unknown",
            dev_eui: Some(eui("0101010101010101"))
        })
    );
}

/// The docs' `json` marshaler uplink has the placeholder `"data": "..."`, so it is completed
/// with real base64 here; the verbatim file is checked in `chirpstack_v3_verbatim_placeholder`.
fn v3_up_json() -> Vec<u8> {
    edited("chirpstack-v3-up-json-marshaler.json", |v| {
        v["data"] = json!("AWcA/w==")
    })
}

fn v3_up_case(name: &'static str, payload: Vec<u8>) -> UpCase {
    UpCase {
        name,
        dialect: Dialect::ChirpstackV3,
        topic: "application/123/device/0202020202020202/event/up",
        payload,
        server: NetworkServer::ChirpstackV3,
        dedup_key: "0202020202020202:10:2019-11-08T13:59:25.048445Z".into(),
        dev_eui: "0202020202020202",
        application: Some("123"),
        device_name: Some("garden-sensor"),
        f_cnt: Some(10),
        f_port: Some(5),
        data_hex: "016700ff",
        observed_at: "2019-11-08T13:59:25.048445Z",
        received_at: "2019-11-08T13:59:25.048445Z",
        gateways: vec![gw(
            "0303030303030303",
            Some(-48.0),
            Some(9.0),
            Some(loc(52.3740364, 4.9144401, Some(10.5), None)),
        )],
        decoded: Some(json!({"temperatureSensor": 25, "humiditySensor": 32})),
        tx: (Some(868_100_000), Some(11), Some(125_000), Some(1)),
        simulated: false,
    }
}

#[test]
fn chirpstack_v3_uplinks_both_marshalers() {
    check(&v3_up_case(
        "chirpstack-v3-up-json-marshaler.json (data completed)",
        v3_up_json(),
    ));

    // The same uplink as the legacy `json_v3` marshaler sends it: hex EUIs, real JSON `object`,
    // data rate inside txInfo, old `/rx` topic.
    let json_v3 = edited("chirpstack-v3-up-json-marshaler.json", |v| {
        let m = v.as_object_mut().unwrap();
        m.insert("devEUI".into(), json!("0202020202020202"));
        m.insert("data".into(), json!("AWcA/w=="));
        m.remove("objectJSON");
        m.insert(
            "object".into(),
            json!({"temperatureSensor": 25, "humiditySensor": 32}),
        );
        m.remove("dr");
        m.insert("txInfo".into(), json!({"frequency": 868100000, "dr": 1}));
        m["rxInfo"][0]["gatewayID"] = json!("0303030303030303");
    });
    let mut case = v3_up_case("json_v3 variant", json_v3);
    case.topic = "application/123/device/0202020202020202/rx";
    case.tx = (Some(868_100_000), None, None, Some(1));
    check(&case);
}

#[test]
fn chirpstack_v3_verbatim_placeholder() {
    // `"data": "..."` in the docs example is not base64.
    let payload = fixture("chirpstack-v3-up-json-marshaler.json");
    let expected = Err(DecodeError::InvalidEncoding {
        field: "data",
        encoding: "base64",
    });
    assert_eq!(
        run(Dialect::ChirpstackV3, &format!("{V3_TOPIC}up"), &payload),
        expected
    );
}

#[test]
fn chirpstack_v3_object_json_and_dedup_fallbacks() {
    let empty = edited("chirpstack-v3-up-json-marshaler.json", |v| {
        v["data"] = json!("");
        v["objectJSON"] = json!("");
        v.as_object_mut().unwrap().remove("rxInfo");
        v["publishedAt"] = json!("2019-11-08T13:59:26Z");
    });
    let up = uplink_of(run(Dialect::ChirpstackV3, "", &empty).unwrap());
    assert_eq!(up.decoded, None);
    assert_eq!(up.payload, Vec::<u8>::new());
    assert_eq!(up.dedup_key, "0202020202020202:10:2019-11-08T13:59:26Z");
    assert_eq!(up.observed_at, t("2019-11-08T13:59:26Z"));

    let bad = edited("chirpstack-v3-up-json-marshaler.json", |v| {
        v["data"] = json!("AQ==");
        v["objectJSON"] = json!("{not json");
    });
    assert_eq!(
        run(Dialect::ChirpstackV3, "", &bad).unwrap_err().reason(),
        "invalid_field"
    );
}

#[test]
fn chirpstack_v3_events() {
    let join = fixture("chirpstack-v3-join-json-marshaler.json");
    let expected = Decoded::Skipped {
        kind: "join",
        dev_eui: Some(eui("0202020202020202")),
    };
    assert_eq!(
        run(Dialect::ChirpstackV3, &format!("{V3_TOPIC}join"), &join),
        Ok(expected.clone())
    );
    assert_eq!(run(Dialect::Auto, "", &join), Ok(expected));

    let status = fixture("chirpstack-v3-status-json-marshaler.json");
    let expected = Decoded::Event(DeviceEvent::Status {
        dev_eui: eui("0202020202020202"),
        battery_percent: Some(75.5),
        external_power: false,
        margin: Some(6),
        at: None,
    });
    assert_eq!(
        run(Dialect::ChirpstackV3, &format!("{V3_TOPIC}status"), &status),
        Ok(expected.clone())
    );
    assert_eq!(run(Dialect::Auto, "", &status), Ok(expected));

    // Legacy raw battery value (0..=255).
    let legacy =
        json!({"devEUI": "0202020202020202", "applicationID": "1", "battery": 127, "margin": 5});
    match run(Dialect::ChirpstackV3, "", legacy.to_string().as_bytes()).unwrap() {
        Decoded::Event(DeviceEvent::Status {
            battery_percent: Some(p),
            ..
        }) => assert!((p - 50.0).abs() < 1e-9),
        other => panic!("{other:?}"),
    }

    let location =
        json!({"devEUI": "AgICAgICAgI=", "location": {"latitude": 1.5, "longitude": 2.5}});
    assert_eq!(
        run(
            Dialect::ChirpstackV3,
            &format!("{V3_TOPIC}location"),
            location.to_string().as_bytes()
        ),
        Ok(Decoded::Event(DeviceEvent::Location {
            dev_eui: eui("0202020202020202"),
            location: Location {
                position: Position::new(1.5, 2.5).unwrap(),
                alt: None,
                source: None
            },
            at: None,
        }))
    );
    // A position outside WGS84 is not a location: the event is rejected, naming the field.
    let far = json!({"devEUI": "AgICAgICAgI=", "location": {"latitude": 95.0, "longitude": 2.5}});
    assert_eq!(
        run(
            Dialect::ChirpstackV3,
            &format!("{V3_TOPIC}location"),
            far.to_string().as_bytes()
        ),
        Err(DecodeError::InvalidField {
            field: "location",
            problem: "lat 95 lies outside -90..90 (WGS84 degrees)".into()
        })
    );
    for kind in ["ack", "txack", "error", "integration"] {
        assert_eq!(
            run(Dialect::ChirpstackV3, &format!("{V3_TOPIC}{kind}"), &join),
            Ok(Decoded::Skipped {
                kind,
                dev_eui: Some(eui("0202020202020202"))
            })
        );
    }
}

fn tts_case(name: &'static str) -> UpCase {
    UpCase {
        name,
        dialect: Dialect::TtsV3,
        topic: "v3/app1@ttn/devices/dev1/up",
        payload: fixture(name),
        server: NetworkServer::TtsV3,
        dedup_key: String::new(),
        dev_eui: "",
        application: Some("app1"),
        device_name: Some("dev1"),
        f_cnt: None,
        f_port: None,
        data_hex: "",
        observed_at: "",
        received_at: "",
        gateways: vec![],
        decoded: None,
        tx: (None, None, None, None),
        simulated: false,
    }
}

#[test]
fn tts_v3_uplinks() {
    let cases = [
        UpCase {
            dedup_key: "as:up:01D2CV8HNGJ57G25BW0FCZNY07".into(),
            dev_eui: "4200000000000000",
            // TTS omits zero values: no `f_cnt` means 0.
            f_cnt: Some(0),
            f_port: Some(15),
            data_hex: "54656d7065726174757265203d20302e30", // "Temperature = 0.0"
            // No settings.time and no received_at anywhere: the gateway's time.
            observed_at: "2019-01-29T13:02:34.981Z",
            received_at: "2019-01-29T13:02:34.981Z",
            gateways: vec![gw("eui-0242020000247803", Some(-35.0), Some(5.0), None)],
            tx: (Some(868_500_000), Some(7), Some(125_000), None),
            ..tts_case("tts-v3-uplink-docs-mqtt.json")
        },
        UpCase {
            // No correlation ids in the storage stream: DevEUI, f_cnt, NS receive time.
            dedup_key: "1111111111111111:43:2020-08-24T10:08:44.634338856Z".into(),
            dev_eui: "1111111111111111",
            f_cnt: Some(43),
            f_port: Some(10),
            data_hex: "010a010a010a010a",
            observed_at: "2020-08-24T10:08:43.385687Z",
            received_at: "2020-08-24T10:08:44.868680Z",
            gateways: vec![gw("gtw1", None, None, None)],
            tx: (Some(868_100_000), Some(12), Some(125_000), None),
            ..tts_case("tts-v3-storage-stream-uplink-2020.json")
        },
        UpCase {
            topic: "v3/test-decentlab@ttn/devices/03022/up",
            dedup_key: "as:up:01E0CY8V864TP36Q130RSQQJBY".into(),
            dev_eui: "70b3d57ba0000bce",
            application: Some("test-decentlab"),
            device_name: Some("03022"),
            f_cnt: Some(101),
            f_port: Some(1),
            data_hex: "02023b0003003702710c60",
            observed_at: "2020-02-06T09:46:05Z",
            received_at: "2020-02-06T09:46:05.447941Z",
            gateways: vec![gw(
                "eui-b827ebfffe9f2da9",
                Some(-16.0),
                Some(8.5),
                Some(loc(
                    52.71863806169478,
                    -4.052632749080659,
                    Some(5.0),
                    Some("SOURCE_REGISTRY"),
                )),
            )],
            tx: (Some(867_700_000), Some(11), Some(125_000), Some(1)),
            ..tts_case("tts-v3-uplink-2020-decentlab-gw-location-tb.json")
        },
        UpCase {
            topic: "v3/application-tts-name@ttn/devices/eui-1000000000000001/up",
            dedup_key: "as:up:01H0S7ZJQ9MQPMVY49FT3SE07M".into(),
            dev_eui: "1000000000000001",
            application: Some("application-tts-name"),
            device_name: Some("eui-1000000000000001"),
            f_cnt: Some(10335),
            f_port: Some(2),
            data_hex: "0112",
            observed_at: "2023-05-19T05:33:35.608982Z",
            received_at: "2023-05-19T05:33:35.848446Z",
            gateways: vec![gw("eui-6a7e111a10000000", Some(-35.0), Some(13.2), None)],
            tx: (Some(867_100_000), Some(7), Some(125_000), None),
            ..tts_case("tts-v3-uplink-ttn-bosch-parking-tb.json")
        },
        UpCase {
            topic: "v3/application-tti-name@tenant/devices/eui-1000000000000001/up",
            dedup_key: "as:up:01H0PZDGB1NW6NAPD815NGHPF6".into(),
            dev_eui: "1000000000000001",
            application: Some("application-tti-name"),
            device_name: Some("eui-1000000000000001"),
            f_cnt: Some(5017),
            f_port: Some(2),
            data_hex: "0112",
            observed_at: "2023-05-18T08:25:25.885310Z",
            received_at: "2023-05-18T08:25:26.112483Z",
            // The Packet Broker (roaming) reception keeps its `packetbroker` gateway id.
            gateways: vec![
                gw("eui-6A7E111A10000000", Some(-24.0), Some(12.0), None),
                gw("packetbroker", Some(-24.0), Some(12.0), None),
            ],
            tx: (Some(868_500_000), Some(7), Some(125_000), None),
            ..tts_case("tts-v3-uplink-tti-packetbroker-bosch-parking-tb.json")
        },
    ];
    for c in &cases {
        check(c);
    }
}

#[test]
fn tts_v3_simulated_storage_uplinks() {
    // The CLI output is an array of two ApplicationUp records without `dev_eui` (device `dev1`).
    let records = fixture_json("tts-v3-storage-cli-simulated-uplinks.json");
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        run(
            Dialect::Auto,
            "",
            &fixture("tts-v3-storage-cli-simulated-uplinks.json")
        ),
        Err(DecodeError::NotAnObject)
    );
    let expected = [
        (
            "00",
            false,
            "2021-02-04T19:32:31.488210458Z",
            "2021-02-04T19:32:31.488210Z",
        ),
        (
            "01",
            true,
            "2021-02-04T19:19:28.681910909Z",
            "2021-02-04T19:19:28.681910Z",
        ),
    ];
    for (record, (data_hex, occupied, received, received_us)) in records.iter().zip(expected) {
        let verbatim = serde_json::to_vec(record).unwrap();
        assert_eq!(
            run(Dialect::TtsV3, "", &verbatim),
            Err(DecodeError::MissingField("end_device_ids.dev_eui"))
        );
        // With a DevEUI: a simulated uplink. `uplink_message.received_at` is Go's zero time
        // (unset), so the AS receive time is used for everything.
        let mut with_eui = record.clone();
        with_eui["end_device_ids"]["dev_eui"] = json!("0004A30B001C0530");
        let case = UpCase {
            payload: serde_json::to_vec(&with_eui).unwrap(),
            dedup_key: format!("0004a30b001c0530:0:{received}"),
            dev_eui: "0004a30b001c0530",
            f_cnt: Some(0),
            f_port: Some(1),
            data_hex,
            // The dedup key keeps the nanoseconds; canonical times have microseconds.
            observed_at: received_us,
            received_at: received_us,
            decoded: Some(json!({"occupied": occupied, "type": "parking status"})),
            simulated: true,
            ..tts_case("tts-v3-storage-cli-simulated-uplinks.json")
        };
        check(&case);
    }
}

#[test]
fn tts_v3_device_locations_and_eui_from_device_id() {
    let payload = edited("tts-v3-uplink-ttn-bosch-parking-tb.json", |v| {
        v["end_device_ids"]
            .as_object_mut()
            .unwrap()
            .remove("dev_eui");
        v["uplink_message"]["locations"] = json!({
            "frm-payload": {"latitude": 1.0, "longitude": 2.0, "source": "SOURCE_GPS"},
            "user": {"latitude": 52.52, "longitude": 13.405, "altitude": 34, "source": "SOURCE_REGISTRY"}
        });
    });
    let up = uplink_of(run(Dialect::TtsV3, "", &payload).unwrap());
    assert_eq!(up.dev_eui, eui("1000000000000001"), "from device id eui-…");
    assert_eq!(
        up.device_location,
        Some(Location {
            position: Position::new(52.52, 13.405).unwrap(),
            alt: Some(34.0),
            source: Some("SOURCE_REGISTRY".into())
        })
    );
    let frm_only = edited("tts-v3-uplink-ttn-bosch-parking-tb.json", |v| {
        v["uplink_message"]["locations"] =
            json!({"frm-payload": {"latitude": 1.0, "longitude": 2.0}});
    });
    let up = uplink_of(run(Dialect::TtsV3, "", &frm_only).unwrap());
    assert_eq!(
        up.device_location,
        Some(Location {
            position: Position::new(1.0, 2.0).unwrap(),
            alt: None,
            source: Some("frm-payload".into())
        })
    );
}

#[test]
fn tts_v3_other_messages() {
    let cases = [
        (
            "tts-v3-join-docs-mqtt.json",
            "join",
            "join",
            Some("4200000000000000"),
        ),
        (
            "tts-v3-join-accept-docs-dataformats.json",
            "join",
            "join",
            Some("0004a30b001c0530"),
        ),
        (
            "tts-v3-down-ack-docs-dataformats.json",
            "down/ack",
            "down_ack",
            Some("0004a30b001c0530"),
        ),
        (
            "tts-v3-down-ack-docs-mqtt.json",
            "down/ack",
            "down_ack",
            Some("4200000000000000"),
        ),
        (
            "tts-v3-down-failed-docs-dataformats.json",
            "down/failed",
            "down_failed",
            None,
        ),
    ];
    for (name, suffix, kind, dev) in cases {
        let expected = Ok(Decoded::Skipped {
            kind,
            dev_eui: dev.map(eui),
        });
        assert_eq!(
            run(
                Dialect::TtsV3,
                &format!("{TTS_TOPIC}{suffix}"),
                &fixture(name)
            ),
            expected,
            "{name}"
        );
        assert_eq!(
            run(Dialect::Auto, "", &fixture(name)),
            expected,
            "{name} by shape"
        );
    }
    // Our own downlink pushes, seen when subscribed to `#`: known only by topic.
    for name in [
        "tts-v3-down-push-docs-mqtt.json",
        "tts-v3-down-push-confirmed-docs-mqtt.json",
    ] {
        let topic = format!("{TTS_TOPIC}down/push");
        let expected = Ok(Decoded::Skipped {
            kind: "down_push",
            dev_eui: None,
        });
        assert_eq!(
            run(Dialect::TtsV3, &topic, &fixture(name)),
            expected,
            "{name}"
        );
        assert_eq!(
            run(Dialect::Auto, &topic, &fixture(name)),
            expected,
            "{name}"
        );
        assert_eq!(
            run(Dialect::Auto, "", &fixture(name)),
            Err(DecodeError::UnknownDialect)
        );
        assert_eq!(
            run(Dialect::TtsV3, "", &fixture(name))
                .unwrap_err()
                .reason(),
            "invalid_field"
        );
    }

    // Kinds known only from the topic (no envelope key in the message).
    let bare = json!({"end_device_ids": {"device_id": "eui-0004a30b001c0530"}}).to_string();
    for (suffix, kind) in [
        ("up/normalized", "up_normalized"),
        ("service/data", "service_data"),
        ("down/sent", "down_sent"),
        ("down/queued", "down_queued"),
        ("down/nack", "down_nack"),
    ] {
        assert_eq!(
            run(
                Dialect::TtsV3,
                &format!("{TTS_TOPIC}{suffix}"),
                bare.as_bytes()
            ),
            Ok(Decoded::Skipped {
                kind,
                dev_eui: Some(eui("0004a30b001c0530"))
            }),
            "{suffix}"
        );
    }

    let solved = json!({
        "end_device_ids": {"device_id": "dev1", "application_ids": {"application_id": "app1"}, "dev_eui": "0004A30B001C0530"},
        "received_at": "2020-02-17T10:32:24.590413417Z",
        "location_solved": {"service": "lora-cloud-geolocation", "location": {"latitude": 52.1, "longitude": 4.9, "accuracy": 50}}
    });
    assert_eq!(
        run(
            Dialect::Auto,
            &format!("{TTS_TOPIC}location/solved"),
            solved.to_string().as_bytes()
        ),
        Ok(Decoded::Event(DeviceEvent::Location {
            dev_eui: eui("0004a30b001c0530"),
            location: Location {
                position: Position::new(52.1, 4.9).unwrap(),
                alt: None,
                source: Some("lora-cloud-geolocation".into())
            },
            at: Some(t("2020-02-17T10:32:24.590413Z")),
        }))
    );
}

#[test]
fn malformed_input_is_a_specific_error() {
    let v4_up = |edit: fn(&mut Value)| edited("chirpstack-v4-up.json", edit);
    let tts_up = |edit: fn(&mut Value)| edited("tts-v3-uplink-ttn-bosch-parking-tb.json", edit);
    let cases: Vec<(&str, Dialect, &str, Vec<u8>, DecodeError)> = vec![
        (
            "truncated JSON",
            Dialect::Auto,
            "",
            br#"{"deduplicationId": "x""#.to_vec(),
            DecodeError::InvalidJson(String::new()),
        ),
        (
            "not UTF-8",
            Dialect::Auto,
            "",
            b"{\"a\": \"\xff\"}".to_vec(),
            DecodeError::InvalidJson(String::new()),
        ),
        (
            "array",
            Dialect::ChirpstackV4,
            "",
            b"[1, 2]".to_vec(),
            DecodeError::NotAnObject,
        ),
        (
            "string",
            Dialect::TtsV3,
            "",
            b"\"up\"".to_vec(),
            DecodeError::NotAnObject,
        ),
        (
            "unknown shape",
            Dialect::Auto,
            "",
            br#"{"hello": "world"}"#.to_vec(),
            DecodeError::UnknownDialect,
        ),
        (
            "fCnt as string",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| v["fCnt"] = json!("ten")),
            DecodeError::InvalidField {
                field: "up event",
                problem: String::new(),
            },
        ),
        (
            "fCnt overflows u32",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| v["fCnt"] = json!(99_999_999_999u64)),
            DecodeError::InvalidField {
                field: "up event",
                problem: String::new(),
            },
        ),
        (
            "fPort above 255",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| v["fPort"] = json!(300)),
            DecodeError::InvalidField {
                field: "fPort",
                problem: String::new(),
            },
        ),
        (
            "short DevEUI",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| v["deviceInfo"]["devEui"] = json!("01020304")),
            DecodeError::InvalidDevEui(String::new()),
        ),
        (
            "missing DevEUI",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| {
                v["deviceInfo"].as_object_mut().unwrap().remove("devEui");
            }),
            DecodeError::MissingField("deviceInfo.devEui"),
        ),
        (
            "missing deduplicationId",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| {
                v.as_object_mut().unwrap().remove("deduplicationId");
            }),
            DecodeError::MissingField("deduplicationId"),
        ),
        (
            "invalid base64",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| v["data"] = json!("!!not base64!!")),
            DecodeError::InvalidEncoding {
                field: "data",
                encoding: "base64",
            },
        ),
        (
            "far-future time",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| v["time"] = json!("2026-01-02T00:00:01Z")),
            DecodeError::InvalidTimestamp {
                field: "time",
                value: String::new(),
            },
        ),
        (
            "time before 2000",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| v["time"] = json!("1980-01-06T00:00:00Z")),
            DecodeError::InvalidTimestamp {
                field: "time",
                value: String::new(),
            },
        ),
        (
            "unparseable time",
            Dialect::ChirpstackV4,
            "",
            v4_up(|v| v["time"] = json!("yesterday")),
            DecodeError::InvalidTimestamp {
                field: "time",
                value: String::new(),
            },
        ),
        (
            "v4 topic names another device",
            Dialect::ChirpstackV4,
            "application/x/device/0202020202020202/event/up",
            fixture("chirpstack-v4-up.json"),
            DecodeError::TopicMismatch {
                topic: "0202020202020202".into(),
                payload: "0101010101010101".into(),
            },
        ),
        (
            "v3 topic names another device",
            Dialect::ChirpstackV3,
            "application/123/device/0303030303030303/event/status",
            fixture("chirpstack-v3-status-json-marshaler.json"),
            DecodeError::TopicMismatch {
                topic: "0303030303030303".into(),
                payload: "0202020202020202".into(),
            },
        ),
        (
            "v3 base64 DevEUI of 4 bytes",
            Dialect::ChirpstackV3,
            "",
            edited("chirpstack-v3-status-json-marshaler.json", |v| {
                v["devEUI"] = json!("AgICAg==")
            }),
            DecodeError::InvalidDevEui(String::new()),
        ),
        (
            "v3 DevEUI neither hex nor base64",
            Dialect::ChirpstackV3,
            "",
            edited("chirpstack-v3-status-json-marshaler.json", |v| {
                v["devEUI"] = json!("???")
            }),
            DecodeError::InvalidDevEui(String::new()),
        ),
        (
            "TTS short DevEUI",
            Dialect::TtsV3,
            "",
            tts_up(|v| v["end_device_ids"]["dev_eui"] = json!("ABC")),
            DecodeError::InvalidDevEui(String::new()),
        ),
        (
            "TTS frm_payload not base64",
            Dialect::TtsV3,
            "",
            tts_up(|v| v["uplink_message"]["frm_payload"] = json!("%%%")),
            DecodeError::InvalidEncoding {
                field: "uplink_message.frm_payload",
                encoding: "base64",
            },
        ),
        (
            "TTS frequency not a number",
            Dialect::TtsV3,
            "",
            tts_up(|v| v["uplink_message"]["settings"]["frequency"] = json!("868 MHz")),
            DecodeError::InvalidField {
                field: "envelope",
                problem: String::new(),
            },
        ),
        (
            "TTS f_port above 255",
            Dialect::TtsV3,
            "",
            tts_up(|v| v["uplink_message"]["f_port"] = json!(256)),
            DecodeError::InvalidField {
                field: "uplink_message.f_port",
                problem: String::new(),
            },
        ),
        (
            "TTS far-future settings.time",
            Dialect::TtsV3,
            "",
            tts_up(|v| v["uplink_message"]["settings"]["time"] = json!("2099-01-01T00:00:00Z")),
            DecodeError::InvalidTimestamp {
                field: "uplink_message.settings.time",
                value: String::new(),
            },
        ),
        (
            "TTS without any envelope key",
            Dialect::TtsV3,
            "",
            tts_up(|v| {
                v.as_object_mut().unwrap().remove("uplink_message");
            }),
            DecodeError::InvalidField {
                field: "envelope",
                problem: String::new(),
            },
        ),
    ];
    for (what, dialect, topic, payload, expected) in cases {
        let err = run(dialect, topic, &payload).expect_err(what);
        // Compare variant and field; free-text details (serde messages) are not part of the contract.
        let strip = |e: &DecodeError| match e {
            DecodeError::InvalidJson(_) => DecodeError::InvalidJson(String::new()),
            DecodeError::InvalidField { field, .. } => DecodeError::InvalidField {
                field,
                problem: String::new(),
            },
            DecodeError::InvalidDevEui(_) => DecodeError::InvalidDevEui(String::new()),
            DecodeError::InvalidTimestamp { field, .. } => DecodeError::InvalidTimestamp {
                field,
                value: String::new(),
            },
            other => other.clone(),
        };
        assert_eq!(strip(&err), expected, "{what}: {err}");
    }
}

#[test]
fn auto_unwraps_tts_wrappers_and_sniffs_v3() {
    let stream = fixture("tts-v3-storage-stream-uplink-2020.json");
    assert_eq!(
        uplink_of(run(Dialect::Auto, "", &stream).unwrap()).network_server,
        NetworkServer::TtsV3
    );
    let events_api = edited("tts-v3-uplink-ttn-bosch-parking-tb.json", |v| {
        *v = json!({"name": "as.up.data.forward", "data": v.clone()});
    });
    assert_eq!(
        uplink_of(run(Dialect::Auto, "", &events_api).unwrap()).f_cnt,
        Some(10335)
    );
    assert_eq!(
        uplink_of(run(Dialect::Auto, "", &v3_up_json()).unwrap()).network_server,
        NetworkServer::ChirpstackV3
    );
}
