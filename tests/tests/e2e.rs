//! End-to-end tests: the real app (`stadtpuls::app::run`) in-process on port 0, a fresh
//! TimescaleDB database per test, fixtures published through the real Mosquitto. Each test has
//! its own topic prefix and client ids, so tests never see each other's messages or sessions.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use stadtpuls_config::Settings;
use stadtpuls_gateways::DevEui;
use stadtpuls_store::testing::fetch_one;
use stadtpuls_store::{DeviceKind, Visibility};
use stadtpuls_tests::{device, fixture, mqtt_host, readings_of, TestApp};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn chirpstack_raw_payload_is_decoded_by_the_device_codec_and_served() {
    let app = TestApp::start_with(&[device(
        "1000000000000001",
        DeviceKind::AirQuality,
        Some("milesight_am319"),
        Visibility::Public,
        Some((51.5136, 7.4653)),
    )])
    .await;
    app.publish(
        "application/ca739e26-7b67-4f14-b69e-d568c22a5a75/device/1000000000000001/event/up",
        fixture("chirpstack-v4-up-milesight-am319-tb.json"),
    )
    .await;
    let path =
        "/v1/devices/1000000000000001/readings?from=2023-05-22T00:00:00Z&to=2023-05-23T00:00:00Z";
    app.wait_for("AM319 readings", || async {
        app.get_json(path).await.1["items"]
            .as_array()
            .is_some_and(|a| a.len() >= 9)
    })
    .await;
    let (status, body) = app.get_json(path).await;
    assert_eq!(status, 200);
    let got = readings_of(&body);
    let want = [
        ("battery", 85.0, "%"),
        ("co2", 936.0, "ppm"),
        ("hcho", 0.04, "mg/m³"),
        ("humidity", 62.0, "%RH"),
        ("pm10", 48.0, "µg/m³"),
        ("pm2_5", 32.0, "µg/m³"),
        ("pressure", 1008.6, "hPa"),
        ("temperature", 23.8, "°C"),
        ("tvoc", 37.0, "ppb"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((q, v, u), (wq, wv, wu)) in got.iter().zip(want) {
        assert_eq!((q.as_str(), u.as_str()), (wq, wu));
        assert!((v - wv).abs() < 1e-9, "{q}: {v} != {wv}");
    }
    assert_eq!(
        body["items"][0]["time"],
        json!("2023-05-22T07:47:05.404859Z")
    );

    // Keyset paging: 9 readings at one time, 4 per page, following the `next` links.
    let mut page = app.get_json(&format!("{path}&limit=4")).await.1;
    let mut seen = Vec::new();
    loop {
        seen.extend(readings_of(&page).into_iter().map(|r| r.0));
        let Some(next) = page["next"].as_str() else {
            break;
        };
        assert!(
            next.starts_with(&app.base) && next.contains("limit=4") && next.contains("cursor="),
            "{next}"
        );
        page = app
            .http
            .get(next)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    seen.sort();
    assert_eq!(
        seen,
        want.iter().map(|w| w.0.to_string()).collect::<Vec<_>>()
    );

    let (status, latest) = app
        .get_json("/v1/latest?quantity=co2&bbox=7.4,51.5,7.5,51.6")
        .await;
    assert_eq!(status, 200);
    assert_eq!(latest["type"], json!("FeatureCollection"));
    let f = &latest["features"][0];
    assert_eq!(f["geometry"]["coordinates"], json!([7.4653, 51.5136]));
    assert_eq!(f["properties"]["value"], json!(936.0));
    assert_eq!(f["properties"]["unit"], json!("ppm"));
    assert_eq!(latest["features"].as_array().unwrap().len(), 1);
    let (_, outside) = app.get_json("/v1/latest?quantity=co2&bbox=8,52,9,53").await;
    assert_eq!(outside["features"], json!([]));

    let (_, dev) = app.get_json("/v1/devices/1000000000000001").await;
    assert_eq!(dev["kind"], json!("air_quality"));
    assert_eq!(dev["battery_percent"], json!(85.0));
    assert_eq!(dev["network_server"], json!("chirpstack_v4"));
    app.stop().await;
}

#[tokio::test]
async fn the_things_stack_uplink_is_stored_with_radio_metadata() {
    let app = TestApp::start_with(&[device(
        "1000000000000001",
        DeviceKind::ParkingBay,
        Some("bosch_parking"),
        Visibility::Public,
        Some((51.5178, 7.4593)),
    )])
    .await;
    app.publish(
        "v3/application-tts-name@ttn/devices/eui-1000000000000001/up",
        fixture("tts-v3-uplink-ttn-bosch-parking-tb.json"),
    )
    .await;
    let path =
        "/v1/devices/1000000000000001/readings?from=2023-05-19T00:00:00Z&to=2023-05-20T00:00:00Z";
    app.wait_for("parking readings", || async {
        app.get_json(path).await.1["items"]
            .as_array()
            .is_some_and(|a| a.len() >= 2)
    })
    .await;
    let got = readings_of(&app.get_json(path).await.1);
    assert_eq!(
        got,
        vec![
            ("occupied".to_string(), 1.0, "1".to_string()),
            ("temperature".to_string(), 18.0, "°C".to_string())
        ]
    );
    let (key, ns, fcnt, radio): (String, String, i64, Value) = fetch_one(
        &app.store,
        "SELECT dedup_key, network_server, f_cnt, radio FROM uplinks",
    )
    .await;
    assert_eq!(key, "as:up:01H0S7ZJQ9MQPMVY49FT3SE07M");
    assert_eq!(ns, "tts_v3");
    assert_eq!(fcnt, 10335);
    assert_eq!(radio["gateways"][0]["rssi"], json!(-35.0));
    assert_eq!(radio["gateways"][0]["snr"], json!(13.2));
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_delivery_is_stored_once() {
    let app = TestApp::start().await;
    let topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up";
    let up = fixture("chirpstack-v4-up.json");
    // The writer counts every uplink it found already stored. The counter is process-wide
    // (other tests of this binary may add to it, never take away), so it rising past its value
    // before our publishes is the signal that a duplicate was processed; ours is the only one
    // this app sees.
    const DUPLICATES: &str = "stadtpuls_ingest_uplinks_duplicate_total";
    let duplicates_before = app.metric(DUPLICATES).await;
    app.publish(topic, up.clone()).await;
    app.publish(topic, up.clone()).await;
    // A second, different uplink from the same device.
    let mut marker: Value = serde_json::from_slice(&up).unwrap();
    marker["deduplicationId"] = json!("00000000-0000-4000-8000-000000000001");
    marker["time"] = json!("2022-07-18T09:35:15+00:00");
    app.publish(topic, serde_json::to_vec(&marker).unwrap())
        .await;
    app.wait_for("marker stored", || async {
        app.store.counts().await.unwrap().uplinks >= 2
    })
    .await;
    app.wait_for(
        "the duplicate delivery processed (duplicate counter)",
        || async { app.metric(DUPLICATES).await > duplicates_before },
    )
    .await;
    let c = app.store.counts().await.unwrap();
    assert_eq!(c.uplinks, 2, "duplicate stored twice");
    // The unknown device was auto-registered, privately, without a location …
    let d = app
        .store
        .device(DevEui::parse_hex("0101010101010101").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(d.auto_registered);
    assert_eq!(d.visibility, Visibility::Private);
    assert_eq!(d.lat, None);
    // … so the public API does not show it.
    assert_eq!(app.get_json("/v1/devices/0101010101010101").await.0, 404);
    assert_eq!(app.get_json("/v1/devices").await.1["total_count"], json!(0));
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_message_is_counted_and_the_next_good_one_still_stored() {
    let app = TestApp::start().await;
    let topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up";
    app.publish(topic, b"{\"deduplicationId\": \"x\", \"time\": ".to_vec())
        .await;
    app.publish(topic, fixture("chirpstack-v4-up.json")).await;
    app.wait_for("good uplink stored", || async {
        app.store.counts().await.unwrap().uplinks == 1
    })
    .await;
    app.wait_for("dead letter stored", || async {
        app.store.counts().await.unwrap().dead_letters == 1
    })
    .await;
    let (reason, dl_topic): (String, String) =
        fetch_one(&app.store, "SELECT reason, topic FROM dead_letters").await;
    assert_eq!(reason, "invalid_json");
    assert_eq!(
        dl_topic, topic,
        "dead letters keep the topic without the subscription prefix"
    );
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("stadtpuls_ingest_dead_letters_total{reason=\"invalid_json\"}")),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_parameters_get_400_naming_the_parameter() {
    let app = TestApp::start().await;
    let cases = [
        ("/v1/devices?bbox=1,2,3", "bbox"),
        ("/v1/devices?bbox=0,0,200,1", "bbox"),
        ("/v1/devices/not-an-eui", "dev_eui"),
        (
            "/v1/devices/0102030405060708/readings?from=yesterday",
            "from",
        ),
        ("/v1/devices/0102030405060708/readings?limit=0", "limit"),
        (
            "/v1/devices/0102030405060708/readings?quantity=warmth",
            "quantity",
        ),
        ("/v1/latest?quantity=co2&colour=red", "colour"),
    ];
    app.assert_bad_params(&cases).await;
    assert_eq!(app.get_json("/v1/devices/0102030405060708").await.0, 404);
    assert_eq!(app.get_json("/v1/nothing-here").await.0, 404);
    let (status, q) = app.get_json("/v1/quantities").await;
    assert_eq!(status, 200);
    let co2 = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == json!("co2"))
        .unwrap();
    assert_eq!(co2["unit"], json!("ppm"));
    let (status, health) = app.get_json("/health").await;
    assert_eq!(
        (status, &health["status"], &health["database"]),
        (200, &json!("ok"), &json!("ok"))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_oversize_payload_is_dead_lettered_not_redelivered_forever() {
    let app = TestApp::start().await;
    let topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up";
    // 300 KiB: above ingest.max_payload_bytes (256 KiB), below the MQTT packet limit.
    let mut big: Value = serde_json::from_slice(&fixture("chirpstack-v4-up.json")).unwrap();
    big["padding"] = json!("x".repeat(300 * 1024));
    app.publish(topic, serde_json::to_vec(&big).unwrap()).await;
    app.publish(topic, fixture("chirpstack-v4-up.json")).await;
    app.wait_for("good uplink stored", || async {
        app.store.counts().await.unwrap().uplinks == 1
    })
    .await;
    app.wait_for("dead letter stored", || async {
        app.store.counts().await.unwrap().dead_letters == 1
    })
    .await;
    let (reason, size, kept): (String, i32, i32) = fetch_one(
        &app.store,
        "SELECT reason, payload_size, length(payload) FROM dead_letters",
    )
    .await;
    assert_eq!(reason, "payload_too_large");
    assert!(size > 300 * 1024, "{size}");
    assert_eq!(kept, 64 * 1024, "only a bounded prefix is kept");
    app.stop().await;
}

#[tokio::test]
async fn a_codec_set_later_takes_effect_live_and_reprocess_rebuilds_older_uplinks() {
    let app = TestApp::start().await;
    let topic = "v3/application-tts-name@ttn/devices/eui-1000000000000001/up";
    let first = fixture("tts-v3-uplink-ttn-bosch-parking-tb.json");
    app.publish(topic, first.clone()).await;
    app.wait_for("raw uplink stored", || async {
        app.store.counts().await.unwrap().uplinks == 1
    })
    .await;
    assert_eq!(
        app.store.counts().await.unwrap().readings,
        0,
        "no codec known yet: raw uplink only"
    );

    // The operator registers the device with its codec; the running ingest picks it up. A
    // probe device registered in the same import shows when it has: its uplinks are decoded.
    app.store
        .import_devices(&[
            device(
                "1000000000000001",
                DeviceKind::ParkingBay,
                Some("bosch_parking"),
                Visibility::Public,
                Some((51.5, 7.4)),
            ),
            device(
                PROBE,
                DeviceKind::ParkingBay,
                Some("bosch_parking"),
                Visibility::Public,
                Some((51.5, 7.4)),
            ),
        ])
        .await
        .unwrap();
    wait_until_decoded(&app, &first).await;
    let mut second: Value = serde_json::from_slice(&first).unwrap();
    second["correlation_ids"] = json!(["as:up:01H0S7ZJQ9MQPMVY49FT3SE999"]);
    second["uplink_message"]["f_cnt"] = json!(10336);
    second["uplink_message"]["settings"]["time"] = json!("2023-05-19T05:43:35.608982Z");
    second["uplink_message"]["frm_payload"] = json!("ABI="); // free, 18 °C
    app.publish(topic, serde_json::to_vec(&second).unwrap())
        .await;
    app.wait_for("decoded readings", || async {
        readings_of_device(&app, "1000000000000001").await == 2
    })
    .await;

    // Reprocessing the window rebuilds the first uplink's readings with today's codec.
    let settings = Settings::default();
    let (from, to) = (
        "2023-05-19T00:00:00Z".parse().unwrap(),
        "2023-05-20T00:00:00Z".parse().unwrap(),
    );
    let report = stadtpuls::reprocess::readings(&app.store, &settings, from, to, |_| {})
        .await
        .unwrap();
    assert_eq!((report.uplinks, report.readings), (2, 4));
    let path = "/v1/devices/1000000000000001/readings?quantity=occupied&from=2023-05-19T00:00:00Z&to=2023-05-20T00:00:00Z";
    let body = app.get_json(path).await.1;
    let values: Vec<(String, f64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["time"].as_str().unwrap().to_string(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        values,
        vec![
            ("2023-05-19T05:43:35.608982Z".to_string(), 0.0),
            ("2023-05-19T05:33:35.608982Z".to_string(), 1.0)
        ]
    );
    // Running it again changes nothing.
    let again = stadtpuls::reprocess::readings(&app.store, &settings, from, to, |_| {})
        .await
        .unwrap();
    assert_eq!(again.readings, 4);
    assert_eq!(readings_of_device(&app, "1000000000000001").await, 4);
    app.stop().await;
}

/// The probe device of the codec test: registered together with the device under test, its
/// uplinks lie outside the test's time window.
const PROBE: &str = "10000000000000ff";

/// Rows in `readings` of one device.
async fn readings_of_device(app: &TestApp, eui: &str) -> i64 {
    let (n,): (i64,) = fetch_one(
        &app.store,
        &format!("SELECT count(*) FROM readings WHERE dev_eui = x'{eui}'::bigint"),
    )
    .await;
    n
}

/// Waits until the running ingest decodes the probe's uplinks, i.e. its device directory holds
/// the registry import that added the probe (and the device under test with it): publishes a
/// probe uplink (made from the TTS `template`), waits until it is stored, and tries again with
/// a fresh one while it was stored without readings.
async fn wait_until_decoded(app: &TestApp, template: &[u8]) {
    let topic = format!("v3/application-tts-name@ttn/devices/eui-{PROBE}/up");
    let mut up: Value = serde_json::from_slice(template).unwrap();
    up["end_device_ids"]["device_id"] = json!(format!("eui-{PROBE}"));
    up["end_device_ids"]["dev_eui"] = json!(PROBE);
    // 2023-05-21: outside the window the test reprocesses.
    up["uplink_message"]["settings"]["time"] = json!("2023-05-21T00:00:00Z");
    stadtpuls_tests::wait::until_some(
        "the ingest's device directory to hold the new codecs (a probe uplink decoded)",
        stadtpuls_tests::wait::DEFAULT,
        || {
            let (app, topic, mut up) = (app, topic.clone(), up.clone());
            async move {
                let key = format!("as:up:probe-{}", uuid::Uuid::new_v4().simple());
                up["correlation_ids"] = json!([key.clone()]);
                app.publish(&topic, serde_json::to_vec(&up).unwrap()).await;
                app.wait_for("probe uplink stored", || async {
                    let (n,): (i64,) = fetch_one(
                        &app.store,
                        &format!("SELECT count(*) FROM uplinks WHERE dedup_key = '{key}'"),
                    )
                    .await;
                    n == 1
                })
                .await;
                // Stored, but decoded only if the directory already had the codec.
                (readings_of_device(app, PROBE).await > 0).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn dead_letters_are_replayed_after_a_configuration_fix() {
    // Misconfigured: ChirpStack traffic declared as The Things Stack.
    let app = TestApp::start_custom(&[], |s| {
        s.mqtt.subscriptions = vec![stadtpuls_config::Subscription {
            filter: "application/+/device/+/event/+".into(),
            dialect: stadtpuls_gateways::Dialect::TtsV3,
        }];
    })
    .await;
    let topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up";
    app.publish(topic, fixture("chirpstack-v4-up.json")).await;
    app.wait_for("dead letter stored", || async {
        app.store.counts().await.unwrap().dead_letters == 1
    })
    .await;
    assert_eq!(app.store.counts().await.unwrap().uplinks, 0);
    let (reason,): (String,) = fetch_one(&app.store, "SELECT reason FROM dead_letters").await;
    assert_eq!(reason, "invalid_field");

    // With the default subscriptions (auto) the replay recovers it; a second replay finds nothing.
    let settings = Settings::default();
    let (from, to) = (
        chrono::Utc::now() - chrono::Duration::hours(1),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let mut report = stadtpuls::reprocess::Report::default();
    stadtpuls::reprocess::dead_letters(&app.store, &settings, from, to, &mut report)
        .await
        .unwrap();
    assert_eq!(
        (report.dead_letters_seen, report.dead_letters_recovered),
        (1, 1)
    );
    let (key,): (String,) = fetch_one(&app.store, "SELECT dedup_key FROM uplinks").await;
    assert_eq!(key, "3ac7e3c4-4401-4b8d-9386-a5c902f9202d");
    let mut again = stadtpuls::reprocess::Report::default();
    stadtpuls::reprocess::dead_letters(&app.store, &settings, from, to, &mut again)
        .await
        .unwrap();
    assert_eq!(again.dead_letters_seen, 0);
    app.stop().await;
}

#[tokio::test]
async fn simulated_city_traffic_flows_end_to_end() {
    let opts = stadtpuls::simulate::SimOptions {
        rate: 400.0,
        parking_bays: 10,
        seed: 7,
        max_messages: 80,
    };
    let fleet = stadtpuls::simulate::fleet(&opts);
    let registry = serde_json::to_string(&stadtpuls::simulate::registry_geojson(&fleet)).unwrap();
    let devices = stadtpuls::registry::parse(&registry).unwrap();
    let app = TestApp::start_with(&devices).await;

    let mut mqtt = stadtpuls_config::MqttSettings::default();
    let (host, port) = mqtt_host();
    mqtt.host = host;
    mqtt.port = port;
    mqtt.client_id = format!("{}-publisher", app.prefix.replace('/', "-"));
    mqtt.topic_prefix = app.prefix.clone();
    let published = stadtpuls::simulate::run(&mqtt, &opts, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(published, 80);
    app.wait_for("all simulated uplinks stored", || async {
        app.store.counts().await.unwrap().uplinks == 80
    })
    .await;
    let c = app.store.counts().await.unwrap();
    assert_eq!(c.dead_letters, 0);
    assert_eq!(
        c.devices,
        fleet.len() as i64,
        "no device outside the registry appeared"
    );

    // Public map: bays with occupancy; private room sensors never show up.
    let (_, occupied) = app.get_json("/v1/latest?quantity=occupied").await;
    let bays = occupied["features"].as_array().unwrap();
    let dbg: Vec<(String, String, String, String)> = stadtpuls_store::testing::fetch_all(&app.store, "SELECT topic, coalesce(decoded::text, ''), array_to_string(unmapped, ','), observed_at::text FROM uplinks LIMIT 5").await;
    assert!(!bays.is_empty(), "{dbg:?}");
    for f in bays {
        let v = f["properties"]["value"].as_f64().unwrap();
        assert!(v == 0.0 || v == 1.0, "{f}");
        assert_eq!(f["properties"]["kind"], json!("parking_bay"));
    }
    let (_, all) = app.get_json("/v1/devices").await;
    let public = fleet.iter().filter(|d| d.visibility == "public").count();
    assert_eq!(all["total_count"], json!(public));
    assert!(all["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["kind"] != json!("room_climate")));
    let (_, rooms) = app.get_json("/v1/latest?quantity=co2").await;
    assert!(rooms["features"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["properties"]["kind"] != json!("room_climate")));
    // … but their readings were stored.
    let (room_co2,): (i64,) = fetch_one(&app.store, "SELECT count(*) FROM readings r JOIN devices d USING (dev_eui) WHERE d.kind = 'room_climate' AND r.quantity = 3").await;
    assert!(room_co2 > 0);
    app.stop().await;
}

#[tokio::test]
async fn geo_queries_work_in_metres_and_hide_private_devices() {
    // Around Dortmund Hbf (51.5178, 7.4593): one device 500 m east, one 1500 m north,
    // a private one right at the centre, one far away in Phoenix-See.
    let east = (
        51.5178,
        7.4593 + 500.0 / (111_320.0 * 51.5178_f64.to_radians().cos()),
    );
    let north = (51.5178 + 1500.0 / 111_250.0, 7.4593);
    let app = TestApp::start_with(&[
        device(
            "0101010101010101",
            DeviceKind::OutdoorClimate,
            None,
            Visibility::Public,
            Some(east),
        ),
        device(
            "0202020202020202",
            DeviceKind::ParkingBay,
            None,
            Visibility::Public,
            Some(north),
        ),
        device(
            "0303030303030303",
            DeviceKind::RoomClimate,
            None,
            Visibility::Private,
            Some((51.5178, 7.4593)),
        ),
        device(
            "0404040404040404",
            DeviceKind::AirQuality,
            None,
            Visibility::Public,
            Some((51.4893, 7.5079)),
        ),
    ])
    .await;
    let euis = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["dev_eui"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, r1) = app
        .get_json("/v1/devices?lat=51.5178&lon=7.4593&radius=1000")
        .await;
    assert_eq!(status, 200, "{r1}");
    assert_eq!(euis(&r1), vec!["0101010101010101"]);
    let d = r1["items"][0]["distance_m"].as_f64().unwrap();
    assert!((d - 500.0).abs() < 2.0, "{d}");
    let (_, r2) = app
        .get_json("/v1/devices?lat=51.5178&lon=7.4593&radius=2000")
        .await;
    assert_eq!(euis(&r2), vec!["0101010101010101", "0202020202020202"]);
    let (_, n) = app
        .get_json("/v1/devices?lat=51.5178&lon=7.4593&nearest=3")
        .await;
    assert_eq!(
        euis(&n),
        vec!["0101010101010101", "0202020202020202", "0404040404040404"]
    );
    let far = n["items"][2]["distance_m"].as_f64().unwrap();
    assert!(
        (far - 4630.5).abs() < 5.0,
        "Hbf → Phoenix-See is about 4.63 km: {far}"
    );
    let (_, b) = app.get_json("/v1/devices?bbox=7.45,51.51,7.47,51.52").await;
    assert_eq!(euis(&b), vec!["0101010101010101"]);

    // Polygon search around the station only.
    let poly = json!({"type": "Polygon", "coordinates": [[[7.45, 51.51], [7.47, 51.51], [7.47, 51.535], [7.45, 51.535], [7.45, 51.51]]]});
    let r = app
        .http
        .post(format!("{}/v1/devices/search", app.base))
        .json(&poly)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(euis(&body), vec!["0101010101010101", "0202020202020202"]);
    let r = app
        .http
        .post(format!("{}/v1/devices/search", app.base))
        .body("{\"type\":\"Polygon\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["parameter"], json!("body"));

    // Latest values near a point carry distances too.
    let mut up: Value = serde_json::from_slice(&fixture("chirpstack-v4-up.json")).unwrap();
    up["object"] = json!({"temperature": 21.5});
    app.publish(
        "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up",
        serde_json::to_vec(&up).unwrap(),
    )
    .await;
    app.wait_for("reading stored", || async {
        app.store.counts().await.unwrap().readings == 1
    })
    .await;
    let (_, latest) = app
        .get_json("/v1/latest?quantity=temperature&lat=51.5178&lon=7.4593&nearest=5")
        .await;
    let features = latest["features"].as_array().unwrap();
    assert_eq!(features.len(), 1);
    assert_eq!(features[0]["properties"]["value"], json!(21.5));
    assert!((features[0]["properties"]["distance_m"].as_f64().unwrap() - 500.0).abs() < 2.0);

    app.assert_bad_params(&[
        ("/v1/devices?lat=95&lon=7&radius=10", "lat"),
        ("/v1/devices?lat=51&lon=190&radius=10", "lon"),
        ("/v1/devices?lat=51&lon=7", "radius"),
        ("/v1/devices?lat=51&lon=7&radius=-5", "radius"),
        ("/v1/latest?lat=51&lon=7&nearest=0", "nearest"),
    ])
    .await;
    app.stop().await;
}

#[tokio::test]
async fn hourly_aggregates_include_empty_buckets() {
    let app = TestApp::start_with(&[device(
        "0101010101010101",
        DeviceKind::OutdoorClimate,
        None,
        Visibility::Public,
        Some((51.5, 7.4)),
    )])
    .await;
    let topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up";
    for (i, (time, temp)) in [
        ("2024-05-01T10:05:00Z", 20.0),
        ("2024-05-01T10:35:00Z", 24.0),
        ("2024-05-01T12:10:00Z", 18.0),
    ]
    .iter()
    .enumerate()
    {
        let mut up: Value = serde_json::from_slice(&fixture("chirpstack-v4-up.json")).unwrap();
        up["deduplicationId"] = json!(format!("00000000-0000-4000-8000-00000000000{i}"));
        up["time"] = json!(time);
        up["object"] = json!({"temperature": temp});
        app.publish(topic, serde_json::to_vec(&up).unwrap()).await;
    }
    app.wait_for("3 readings", || async {
        app.store.counts().await.unwrap().readings == 3
    })
    .await;
    let path = "/v1/devices/0101010101010101/aggregates?quantity=temperature&bucket=1h&from=2024-05-01T10:00:00Z&to=2024-05-01T13:00:00Z";
    let (status, body) = app.get_json(path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["unit"], &body["timezone"]),
        (&json!("°C"), &json!("Europe/Berlin"))
    );
    let items = body["items"].as_array().unwrap();
    let got: Vec<(String, i64, Value, Value, Value)> = items
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().to_string(),
                b["count"].as_i64().unwrap(),
                b["avg"].clone(),
                b["min"].clone(),
                b["max"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "2024-05-01T10:00:00Z".into(),
                2,
                json!(22.0),
                json!(20.0),
                json!(24.0)
            ),
            (
                "2024-05-01T11:00:00Z".into(),
                0,
                Value::Null,
                Value::Null,
                Value::Null
            ),
            (
                "2024-05-01T12:00:00Z".into(),
                1,
                json!(18.0),
                json!(18.0),
                json!(18.0)
            ),
        ]
    );
    app.assert_bad_params(&[
        ("/v1/devices/0101010101010101/aggregates?bucket=1h", "quantity"),
        ("/v1/devices/0101010101010101/aggregates?quantity=temperature&bucket=5m", "bucket"),
        ("/v1/devices/0101010101010101/aggregates?quantity=temperature&bucket=1h&agg=sum", "agg"),
        ("/v1/devices/0101010101010101/aggregates?quantity=temperature&bucket=15m&from=2024-01-01T00:00:00Z&to=2024-12-31T00:00:00Z", "bucket"),
    ])
    .await;
    // A year of hourly buckets is allowed.
    let (status, year) = app.get_json("/v1/devices/0101010101010101/aggregates?quantity=temperature&bucket=1h&from=2024-01-01T00:00:00Z&to=2025-01-01T00:00:00Z").await;
    assert_eq!(status, 200);
    assert_eq!(year["items"].as_array().unwrap().len(), 8784);
    app.stop().await;
}

#[tokio::test]
async fn cors_compression_and_per_route_metrics() {
    let app = TestApp::start().await;
    let r = app
        .http
        .get(format!("{}/v1/quantities", app.base))
        .header("Origin", "https://app.example")
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/devices", app.base))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let _ = app.get_json("/v1/devices/0102030405060708").await;
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("stadtpuls_http_requests_total{")
                && l.contains("route=\"/v1/devices/{dev_eui}\"")
                && l.contains("status=\"404\"")),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn clients_are_rate_limited_with_retry_after() {
    let app = TestApp::start_custom(&[], |s| {
        s.http.rate_limit_per_second = 1;
        s.http.rate_limit_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.http
                .get(format!("{}/v1/quantities", app.base))
                .send()
                .await
                .unwrap(),
        );
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    // The harness used some of the burst while waiting for readiness; at least the last is limited.
    assert_eq!(*codes.last().unwrap(), 429, "{codes:?}");
    let limited = statuses
        .iter()
        .find(|r| r.status().as_u16() == 429)
        .unwrap();
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // A made-up key does not get around the limit.
    let r = app
        .http
        .get(format!("{}/v1/quantities", app.base))
        .bearer_auth("sp_nokey")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    app.stop().await;
}

#[tokio::test]
async fn the_stream_sends_committed_readings_of_public_devices_only() {
    let app = TestApp::start_with(&[
        device(
            "0101010101010101",
            DeviceKind::OutdoorClimate,
            None,
            Visibility::Public,
            Some((51.5, 7.4)),
        ),
        device(
            "0202020202020202",
            DeviceKind::RoomClimate,
            None,
            Visibility::Private,
            Some((51.5, 7.4)),
        ),
    ])
    .await;
    let mut resp = app
        .http
        .get(format!(
            "{}/v1/stream?quantity=temperature&bbox=7.3,51.4,7.5,51.6",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let publish = |eui: &'static str, dedup: &'static str, temp: f64| {
        let mut up: Value = serde_json::from_slice(&fixture("chirpstack-v4-up.json")).unwrap();
        up["deduplicationId"] = json!(dedup);
        up["deviceInfo"]["devEui"] = json!(eui);
        up["object"] = json!({"temperature": temp, "humidity": 50});
        (
            format!("application/17c82e96-be03-4f38-aef3-f83d48582d97/device/{eui}/event/up"),
            serde_json::to_vec(&up).unwrap(),
        )
    };
    let (t1, p1) = publish(
        "0202020202020202",
        "00000000-0000-4000-8000-0000000000a1",
        30.0,
    );
    app.publish(&t1, p1).await;
    let (t2, p2) = publish(
        "0101010101010101",
        "00000000-0000-4000-8000-0000000000a2",
        12.5,
    );
    app.publish(&t2, p2).await;
    let mut text = String::new();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: reading") && text.contains("\n\n") {
                break;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "no event within 20 s: {text:?}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        event["dev_eui"],
        json!("0101010101010101"),
        "the private device's reading must not be streamed"
    );
    assert_eq!(
        (&event["quantity"], &event["value"], &event["unit"]),
        (&json!("temperature"), &json!(12.5), &json!("°C"))
    );
    assert_eq!(event["time"], json!("2022-07-18T09:34:15.775023Z"));
    assert!(!text.contains("humidity"), "quantity filter");
    let (status, body) = app.get_json("/v1/stream?lat=51&lon=7&nearest=3").await;
    assert_eq!((status, &body["parameter"]), (400, &json!("nearest")));
    app.stop().await;
}
