//! End-to-end parking API: sites with realtime free capacity from bays and counters, spots,
//! geo selection, errors. Readings are published through Mosquitto with times near the wall
//! clock, which is the app's clock here.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use serde_json::{json, Value};
use stadtpuls_store::{DeviceKind, NewDevice, ParkingSite, Visibility};
use stadtpuls_tests::{device, TestApp};

/// Dortmund Hbf and Phoenix-See, about 4.63 km apart.
const HBF: (f64, f64) = (51.5178, 7.4593);
const SEE: (f64, f64) = (51.4893, 7.5079);

fn site(uid: &str, at: (f64, f64), capacity: i32, opening_hours: Option<&str>) -> ParkingSite {
    ParkingSite {
        uid: uid.into(),
        name: format!("Parking {uid}"),
        site_type: "ON_STREET".into(),
        purpose: "CAR".into(),
        capacity,
        lat: at.0,
        lon: at.1,
        geometry: None,
        address: Some("Königswall 15, 44137 Dortmund".into()),
        operator_name: None,
        opening_hours: opening_hours.map(String::from),
        static_data_updated_at: "2026-01-01T00:00:00Z".parse().unwrap(),
    }
}

fn at_site(
    eui: &str,
    kind: DeviceKind,
    vis: Visibility,
    loc: Option<(f64, f64)>,
    site: &str,
) -> NewDevice {
    NewDevice {
        site_id: Some(site.into()),
        ..device(eui, kind, None, vis, loc)
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

async fn uplink(app: &TestApp, eui: &str, time: DateTime<Utc>, object: Value) {
    app.publish_up(eui, time, object).await;
}

fn uids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["uid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn parking_sites_and_spots_report_realtime_capacity() {
    let bay = |i: usize| (HBF.0 + 0.0001 * i as f64, HBF.1);
    use DeviceKind::{ParkingBay as Bay, ParkingCounter as Counter};
    use Visibility::{Private, Public};
    let app = TestApp::start_with(&[
        at_site("0a00000000000001", Bay, Public, Some(bay(1)), "hbf"),
        at_site("0a00000000000002", Bay, Public, Some(bay(2)), "hbf"),
        at_site("0a00000000000003", Bay, Public, Some(bay(3)), "hbf"),
        at_site("0a00000000000004", Bay, Private, Some(bay(4)), "hbf"),
        at_site("0c00000000000001", Counter, Public, Some(SEE), "see"),
        at_site("0d00000000000001", Bay, Public, Some((51.50, 7.40)), "old"),
    ])
    .await;
    app.store
        .import_places(
            &[
                site("hbf", HBF, 4, Some("24/7")),
                site("see", SEE, 200, Some("Mo-Su 06:00-23:00")),
                site("old", (51.50, 7.40), 10, None),
                site("quiet", (51.523, 7.468), 8, None),
            ],
            &[],
            &[],
        )
        .await
        .unwrap();

    let now = Utc::now().trunc_subsecs(0);
    let (t1, t2) = (now - Duration::seconds(60), now - Duration::seconds(30));
    uplink(&app, "0a00000000000001", t1, json!({"occupied": 0})).await;
    uplink(&app, "0a00000000000002", t2, json!({"occupied": 1})).await;
    // The private bay is free, but must count nowhere.
    uplink(&app, "0a00000000000004", now, json!({"occupied": 0})).await;
    uplink(&app, "0c00000000000001", t2, json!({"free_spaces": 120})).await;
    // 40 minutes old: the site "old" is stale.
    let old = now - Duration::minutes(40);
    uplink(&app, "0d00000000000001", old, json!({"occupied": 0})).await;
    app.wait_for("five readings", || async {
        app.store.counts().await.unwrap().readings == 5
    })
    .await;

    // All sites, by uid.
    let (status, all) = app.get_json("/v1/parking/sites").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(uids(&all), ["hbf", "old", "quiet", "see"]);
    assert_eq!(all["total_count"], json!(4));
    let hbf = &all["items"][0];
    assert_eq!(hbf["has_realtime_data"], json!(true), "{hbf}");
    assert_eq!(hbf["realtime_free_capacity"], json!(1));
    assert_eq!(hbf["realtime_capacity"], json!(2), "bay 3 never reported");
    assert_eq!(hbf["realtime_opening_status"], json!("OPEN"));
    assert_eq!(hbf["realtime_data_updated_at"], json!(ts(t2)));
    assert_eq!(hbf["capacity"], json!(4));
    assert_eq!(hbf["type"], json!("ON_STREET"));
    assert_eq!(hbf["purpose"], json!("CAR"));
    assert_eq!(hbf["address"], json!("Königswall 15, 44137 Dortmund"));
    assert_eq!(hbf["static_data_updated_at"], json!("2026-01-01T00:00:00Z"));
    assert!(hbf.get("operator_name").is_none());
    for uid in ["old", "quiet"] {
        let s = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["uid"] == json!(uid))
            .unwrap();
        assert_eq!(s["has_realtime_data"], json!(false), "{s}");
        for key in [
            "realtime_free_capacity",
            "realtime_capacity",
            "realtime_opening_status",
            "realtime_data_updated_at",
        ] {
            assert!(s.get(key).is_none(), "{uid}: {key} must be omitted: {s}");
        }
    }

    // One site; the counter wins and the static capacity is the realtime capacity.
    let (status, see) = app.get_json("/v1/parking/sites/see").await;
    assert_eq!(status, 200, "{see}");
    assert_eq!(see["realtime_free_capacity"], json!(120));
    assert_eq!(see["realtime_capacity"], json!(200));
    assert_eq!(see["realtime_opening_status"], json!("UNKNOWN"));
    assert_eq!(see["realtime_data_updated_at"], json!(ts(t2)));
    assert_eq!(see["opening_hours"], json!("Mo-Su 06:00-23:00"));
    let (status, body) = app.get_json("/v1/parking/sites/nope").await;
    assert_eq!(status, 404, "{body}");

    // Nearest to the station, with distances.
    let (_, near) = app
        .get_json("/v1/parking/sites?lat=51.5178&lon=7.4593&nearest=2")
        .await;
    assert_eq!(uids(&near), ["hbf", "quiet"]);
    assert_eq!(near["items"][0]["distance_m"], json!(0.0));
    let (_, near) = app
        .get_json("/v1/parking/sites?lat=51.5178&lon=7.4593&nearest=10")
        .await;
    assert_eq!(uids(&near), ["hbf", "quiet", "old", "see"]);
    let d = near["items"][3]["distance_m"].as_f64().unwrap();
    assert!((d - 4630.5).abs() < 5.0, "Hbf → Phoenix-See: {d}");
    let (_, radius) = app
        .get_json("/v1/parking/sites?lat=51.5178&lon=7.4593&radius=1000")
        .await;
    assert_eq!(uids(&radius), ["hbf", "quiet"]);
    let (_, boxed) = app
        .get_json("/v1/parking/sites?bbox=7.45,51.51,7.47,51.52")
        .await;
    assert_eq!(uids(&boxed), ["hbf"]);

    // Polygon search.
    let poly = json!({"type": "Polygon", "coordinates": [[[7.5, 51.48], [7.52, 51.48], [7.52, 51.50], [7.5, 51.50], [7.5, 51.48]]]});
    let r = app
        .http
        .post(format!("{}/v1/parking/sites/search", app.base))
        .json(&poly)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(uids(&body), ["see"]);
    assert_eq!(body["items"][0]["realtime_free_capacity"], json!(120));
    let r = app
        .http
        .post(format!("{}/v1/parking/sites/search", app.base))
        .body("{\"type\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["parameter"], json!("body"));

    // Spots of the station site: the private bay is not there.
    let (status, spots) = app.get_json("/v1/parking/spots?site_uid=hbf").await;
    assert_eq!(status, 200, "{spots}");
    let got: Vec<(String, String, Value)> = spots["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["uid"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["realtime_data_updated_at"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("0a00000000000001".into(), "AVAILABLE".into(), json!(ts(t1))),
            ("0a00000000000002".into(), "TAKEN".into(), json!(ts(t2))),
            ("0a00000000000003".into(), "UNKNOWN".into(), Value::Null),
        ]
    );
    let first = &spots["items"][0];
    assert_eq!(first["parking_site_uid"], json!("hbf"));
    assert_eq!(first["name"], json!("test 0a00000000000001"));
    assert!((first["lat"].as_f64().unwrap() - bay(1).0).abs() < 1e-7);
    // All spots: the stale bay of "old" is UNKNOWN; nearest orders by distance.
    let (_, all_spots) = app.get_json("/v1/parking/spots").await;
    assert_eq!(all_spots["total_count"], json!(4));
    assert_eq!(all_spots["items"][3]["status"], json!("UNKNOWN"));
    let (_, near) = app
        .get_json("/v1/parking/spots?lat=51.5178&lon=7.4593&nearest=2")
        .await;
    assert_eq!(uids(&near), ["0a00000000000001", "0a00000000000002"]);
    let d = near["items"][1]["distance_m"].as_f64().unwrap();
    assert!(
        (d - 22.24).abs() < 0.2,
        "two bays 0.0002° of latitude north: {d}"
    );
    let (_, none) = app.get_json("/v1/parking/spots?site_uid=nope").await;
    assert_eq!(none["total_count"], json!(0));

    app.assert_bad_params(&[
        ("/v1/parking/sites?lat=51&lon=7", "radius"),
        ("/v1/parking/sites?lat=95&lon=7&nearest=3", "lat"),
        ("/v1/parking/sites?bbox=7,51", "bbox"),
        ("/v1/parking/sites?capacity=3", "capacity"),
        ("/v1/parking/sites/hbf?x=1", "x"),
        ("/v1/parking/spots?lat=51&lon=7&nearest=0", "nearest"),
        ("/v1/parking/spots?site=hbf", "site"),
    ])
    .await;
    app.stop().await;
}
