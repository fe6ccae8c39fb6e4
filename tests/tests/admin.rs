//! End-to-end: the admin registry API, registry changes reaching the API through PostgreSQL
//! notifications, paging of lists, parking history and per-kind silence windows.
//!
//! Each behaviour is its own test on its own seeded app: [`places`] creates a site, a building,
//! a room and a sensor through the admin API, [`bays_app`] imports five bays as another process
//! would. Each `#[tokio::test]` has its own runtime and an app dies with the runtime that
//! spawned it, so seeding per test (about a second) is what keeps the tests independent of
//! each other and of their order.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use stadtpuls_store::keys::Scope;
use stadtpuls_store::{DeviceKind, NewDevice, ParkingSite, Visibility};
use stadtpuls_tests::{device, TestApp};

fn t(s: &str) -> DateTime<Utc> {
    stadtpuls_store::testing::utc(s)
}

fn building_record(id: &str) -> stadtpuls_store::Building {
    stadtpuls_store::Building {
        id: id.into(),
        name: id.into(),
        lat: None,
        lon: None,
        address: None,
    }
}

fn euis(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dev_eui"].as_str().unwrap().to_string())
        .collect()
}

/// The path and query of an absolute `next` link.
fn path_of(next: &Value) -> String {
    let url = next.as_str().unwrap();
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_string()
}

const SITE_PATH: &str = "/v1/admin/parking/sites/hbf-nord";
const ROOM_PATH: &str = "/v1/admin/buildings/rathaus/rooms/101";

/// The parking site `hbf-nord` as the admin API takes it (capacity 420).
fn site() -> Value {
    json!({
        "name": "Parkhaus Hbf Nord", "type": "CAR_PARK", "capacity": 420,
        "lat": 51.5185, "lon": 7.4605, "opening_hours": "24/7"
    })
}

/// An app and its admin key.
async fn app_with_admin() -> (TestApp, String) {
    let app = TestApp::start().await;
    let admin = app.admin_key().await;
    (app, admin)
}

/// What [`places`] created through the admin API: (status, body) of each PUT.
struct Places {
    site: (u16, Value),
    building: (u16, Value),
    room: (u16, Value),
    sensor: (u16, Value),
}

/// Creates through the admin API: the parking site `hbf-nord`, the building `rathaus` with
/// room 101, and the room-climate sensor 0b00000000000001 in that room.
async fn places(app: &TestApp, admin: &str) -> Places {
    let admin = Some(admin);
    let site = app.send(Method::PUT, SITE_PATH, admin, Some(&site())).await;
    let building = json!({"name": "Rathaus", "lat": 51.5136, "lon": 7.4653});
    let building = app
        .send(
            Method::PUT,
            "/v1/admin/buildings/rathaus",
            admin,
            Some(&building),
        )
        .await;
    let room = json!({"name": "Ratssaal", "floor": "1", "usage": "meeting"});
    let room = app.send(Method::PUT, ROOM_PATH, admin, Some(&room)).await;
    let sensor = json!({
        "kind": "room_climate", "visibility": "private", "codec": "milesight_am319",
        "building_id": "rathaus", "room_id": "101"
    });
    let sensor = app
        .send(
            Method::PUT,
            "/v1/admin/devices/0b00000000000001",
            admin,
            Some(&sensor),
        )
        .await;
    Places {
        site,
        building,
        room,
        sensor,
    }
}

#[tokio::test]
async fn a_parking_site_is_created_and_replaced_with_an_admin_key_only() {
    let (app, admin_secret) = app_with_admin().await;
    let admin = Some(admin_secret.as_str());
    let mut site = site();
    let (status, body) = app.send(Method::PUT, SITE_PATH, None, Some(&site)).await;
    assert_eq!((status, &body["status"]), (401, &json!(401)));
    let (status, body) = app.send(Method::PUT, SITE_PATH, admin, Some(&site)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (&body["uid"], &body["purpose"], &body["capacity"]),
        (&json!("hbf-nord"), &json!("CAR"), &json!(420))
    );
    let (status, body) = app.get_json("/v1/parking/sites/hbf-nord").await;
    assert_eq!((status, &body["capacity"]), (200, &json!(420)));
    assert_eq!(body["has_realtime_data"], json!(false));
    assert_eq!(body["realtime_opening_status"], Value::Null);

    // Replacing answers 200 and is visible at once.
    site["capacity"] = json!(400);
    let (status, _) = app.send(Method::PUT, SITE_PATH, admin, Some(&site)).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get_json("/v1/parking/sites/hbf-nord").await.1["capacity"],
        json!(400)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bad_site_body_gets_400_naming_what_is_wrong_and_stores_nothing() {
    let (app, admin_secret) = app_with_admin().await;
    let admin = Some(admin_secret.as_str());
    let mut site = site();
    site["capacity"] = json!(400);
    let (status, _) = app.send(Method::PUT, SITE_PATH, admin, Some(&site)).await;
    assert_eq!(status, 201);
    let with = |key: &str, value: Value| {
        let mut s = site.clone();
        s[key] = value;
        s
    };
    let mut missing = site.clone();
    missing.as_object_mut().unwrap().remove("capacity");
    let polygon_point = json!({"type": "Point", "coordinates": [7.46, 51.51]});
    let cases = [
        (with("type", json!("GARAGE")), "type", "GARAGE"),
        (with("colour", json!("red")), "colour", "unknown field"),
        (with("uid", json!("elsewhere")), "uid", "elsewhere"),
        (with("lat", json!(91.0)), "lat/lon", "WGS84"),
        (with("capacity", json!(-1)), "capacity", "negative"),
        (with("capacity", json!("many")), "capacity", "expected i32"),
        (missing, "body", "capacity"),
        (with("geometry", polygon_point), "geometry", "Polygon"),
    ];
    for (body, param, mention) in cases {
        let (status, problem) = app.send(Method::PUT, SITE_PATH, admin, Some(&body)).await;
        assert_eq!(
            (status, &problem["parameter"]),
            (400, &json!(param)),
            "{body}: {problem}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(mention),
            "{problem}"
        );
    }
    let raw = app
        .http
        .put(format!("{}{SITE_PATH}", app.base))
        .bearer_auth(&admin_secret)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(
        app.get_json("/v1/parking/sites/hbf-nord").await.1["capacity"],
        json!(400)
    );
    app.stop().await;
}

#[tokio::test]
async fn buildings_rooms_and_devices_are_created_through_the_admin_api() {
    let (app, admin_secret) = app_with_admin().await;
    let admin = Some(admin_secret.as_str());
    let p = places(&app, &admin_secret).await;
    assert_eq!(p.site.0, 201, "{}", p.site.1);
    let (status, body) = &p.building;
    assert_eq!((*status, &body["id"]), (201, &json!("rathaus")), "{body}");
    let (status, body) = &p.room;
    assert_eq!(
        (*status, &body["name"]),
        (201, &json!("Ratssaal")),
        "{body}"
    );
    let room = json!({"name": "Ratssaal", "floor": "1", "usage": "meeting"});
    let (status, _) = app
        .send(
            Method::PUT,
            "/v1/admin/buildings/nope/rooms/1",
            admin,
            Some(&room),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = &p.sensor;
    assert_eq!(*status, 201, "{body}");
    assert_eq!(
        (&body["dev_eui"], &body["codec"], &body["visibility"]),
        (
            &json!("0b00000000000001"),
            &json!("milesight_am319"),
            &json!("private")
        )
    );
    let bad_codec = json!({"kind": "other", "visibility": "public", "codec": "nope"});
    let (status, problem) = app
        .send(
            Method::PUT,
            "/v1/admin/devices/0b00000000000002",
            admin,
            Some(&bad_codec),
        )
        .await;
    assert_eq!((status, &problem["parameter"]), (400, &json!("codec")));
    app.stop().await;
}

#[tokio::test]
async fn buildings_are_found_near_a_point() {
    let (app, admin_secret) = app_with_admin().await;
    let admin = Some(admin_secret.as_str());
    places(&app, &admin_secret).await;
    // The Rathaus is about 625 m from the Hbf.
    let near = "/v1/buildings?lat=51.5178&lon=7.4593&radius=1000";
    let (status, body) = app.send(Method::GET, near, admin, None).await;
    assert_eq!((status, &body["total_count"]), (200, &json!(1)), "{body}");
    let d = body["items"][0]["distance_m"].as_f64().unwrap();
    assert!((600.0..650.0).contains(&d), "{d}");
    let far = "/v1/buildings?lat=51.5178&lon=7.4593&radius=100";
    let (_, body) = app.send(Method::GET, far, admin, None).await;
    assert_eq!(body["total_count"], json!(0));
    app.stop().await;
}

#[tokio::test]
async fn a_building_key_reads_its_building_but_does_not_write_the_registry() {
    let (app, admin_secret) = app_with_admin().await;
    places(&app, &admin_secret).await;
    let rathaus = app
        .store
        .create_key(Scope::Building("rathaus".into()), None)
        .await
        .unwrap()
        .secret;
    let (status, body) = app
        .send(Method::GET, "/v1/buildings/rathaus", Some(&rathaus), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["rooms"][0]["id"], json!("101"));
    for (method, path) in [
        (Method::PUT, SITE_PATH),
        (Method::DELETE, SITE_PATH),
        (Method::DELETE, "/v1/admin/buildings/rathaus"),
        (Method::PUT, "/v1/admin/devices/0b00000000000001"),
    ] {
        let (status, _) = app
            .send(method.clone(), path, Some(&rathaus), Some(&site()))
            .await;
        assert_eq!(status, 403, "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn deletes_report_detached_devices_and_take_the_building_key_along() {
    let (app, admin_secret) = app_with_admin().await;
    let admin = Some(admin_secret.as_str());
    places(&app, &admin_secret).await;
    let rathaus = app
        .store
        .create_key(Scope::Building("rathaus".into()), None)
        .await
        .unwrap()
        .secret;
    let (status, body) = app.send(Method::DELETE, ROOM_PATH, admin, None).await;
    assert_eq!(
        (status, &body["devices_detached"]),
        (200, &json!(1)),
        "{body}"
    );
    // A second delete is a 404.
    assert_eq!(
        app.send(Method::DELETE, ROOM_PATH, admin, None).await.0,
        404
    );
    let (status, body) = app
        .send(Method::DELETE, "/v1/admin/buildings/rathaus", admin, None)
        .await;
    assert_eq!(
        (status, &body["devices_detached"]),
        (200, &json!(1)),
        "{body}"
    );
    let (status, _) = app
        .send(Method::GET, "/v1/buildings/rathaus", admin, None)
        .await;
    assert_eq!(status, 404);
    // Its building key went with it.
    let (status, _) = app
        .send(Method::GET, "/v1/buildings", Some(&rathaus), None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = app.send(Method::DELETE, SITE_PATH, admin, None).await;
    assert_eq!((status, &body["devices_detached"]), (200, &json!(0)));
    assert_eq!(app.get_json("/v1/parking/sites/hbf-nord").await.0, 404);
    app.stop().await;
}

/// An app whose registry got five public bays 100 m apart going north from Dortmund Hbf
/// (0a00000000000001 … 05) written straight into the database, as `stadtpuls devices import`
/// in another process would, once they are in the API's geo index; and an admin key. Polling
/// is slowed to 10 minutes: only the registry notification can update the index in time.
async fn bays_app() -> (TestApp, String) {
    let app = TestApp::start_custom(&[], |s| s.ingest.registry_refresh_ms = 600_000).await;
    let admin = app.admin_key().await;
    let bays: Vec<NewDevice> = (1..=5)
        .map(|i| {
            device(
                &format!("0a0000000000000{i}"),
                DeviceKind::ParkingBay,
                None,
                Visibility::Public,
                Some((51.5178 + 0.000_899 * f64::from(i), 7.4593)),
            )
        })
        .collect();
    app.store.import_devices(&bays).await.unwrap();
    app.wait_for("the imported devices in the geo index", || async {
        app.get_json("/v1/devices?lat=51.5178&lon=7.4593&radius=1000")
            .await
            .1["total_count"]
            == json!(5)
    })
    .await;
    (app, admin)
}

/// Makes bay 0a00000000000001 private through the admin API (a PUT without lat/lon).
async fn make_bay_1_private(app: &TestApp, admin: &str) {
    let private = json!({"kind": "parking_bay", "visibility": "private"});
    let (status, _) = app
        .send(
            Method::PUT,
            "/v1/admin/devices/0a00000000000001",
            Some(admin),
            Some(&private),
        )
        .await;
    assert_eq!(status, 200);
}

/// Imports the private room sensor 0b000000000000aa of building `rathaus` (and the buildings
/// `rathaus` and `schule`).
async fn import_rathaus_sensor(app: &TestApp) {
    let places = [building_record("rathaus"), building_record("schule")];
    app.store.import_places(&[], &places, &[]).await.unwrap();
    let in_rathaus = NewDevice {
        building_id: Some("rathaus".into()),
        ..device(
            "0b000000000000aa",
            DeviceKind::RoomClimate,
            None,
            Visibility::Private,
            None,
        )
    };
    app.store.import_devices(&[in_rathaus]).await.unwrap();
}

#[tokio::test]
async fn registry_imports_from_another_process_reach_the_api_and_lists_page() {
    let (app, _) = bays_app().await;
    // Paging: 2 + 2 + 1, following `next` links, in DevEUI order.
    let mut path = "/v1/devices?limit=2".to_string();
    let mut pages = Vec::new();
    loop {
        let (status, body) = app.get_json(&path).await;
        assert_eq!((status, &body["total_count"]), (200, &json!(5)), "{body}");
        pages.push(euis(&body));
        match body.get("next") {
            Some(next) => path = path_of(next),
            None => break,
        }
    }
    let all: Vec<String> = (1..=5).map(|i| format!("0a0000000000000{i}")).collect();
    assert_eq!(
        pages,
        vec![all[0..2].to_vec(), all[2..4].to_vec(), all[4..].to_vec()]
    );
    // Nearest with paging keeps the distance order; the second page starts at the third.
    let (_, body) = app
        .get_json("/v1/devices?lat=51.5178&lon=7.4593&nearest=5&limit=2&cursor=o2")
        .await;
    assert_eq!(euis(&body), all[2..4].to_vec());
    let d = body["items"][0]["distance_m"].as_f64().unwrap();
    assert!((d - 300.0).abs() < 1.0, "third bay is ~300 m away: {d}");
    app.assert_bad_params(&[
        ("/v1/devices?cursor=17", "cursor"),
        ("/v1/devices?limit=0", "limit"),
        ("/v1/parking/spots?cursor=x", "cursor"),
    ])
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_write_is_visible_to_the_next_request_and_keeps_the_position() {
    let (app, admin) = bays_app().await;
    // This process refreshes before answering.
    make_bay_1_private(&app, &admin).await;
    let (_, body) = app
        .get_json("/v1/devices?lat=51.5178&lon=7.4593&radius=1000")
        .await;
    assert_eq!(body["total_count"], json!(4));
    // An admin key still lists it and reads it; anonymous callers get a 404 for it.
    let (_, body) = app
        .send(
            Method::GET,
            "/v1/devices?lat=51.5178&lon=7.4593&radius=1000",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(body["total_count"], json!(5));
    let one = "/v1/devices/0a00000000000001";
    assert_eq!(app.get_json(one).await.0, 404);
    let (status, body) = app.send(Method::GET, one, Some(&admin), None).await;
    assert_eq!(
        (status, &body["dev_eui"]),
        (200, &json!("0a00000000000001"))
    );

    // Spots inside a polygon: bays 2 and 3 (bay 1 is private now).
    let polygon = json!({"type": "Polygon", "coordinates": [[
        [7.459, 51.5185], [7.460, 51.5185], [7.460, 51.5210], [7.459, 51.5210], [7.459, 51.5185]
    ]]});
    let (status, body) = app
        .send(
            Method::POST,
            "/v1/parking/spots/search",
            None,
            Some(&polygon),
        )
        .await;
    assert_eq!((status, &body["total_count"]), (200, &json!(2)), "{body}");
    let uids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, ["0a00000000000002", "0a00000000000003"]);

    // It kept its position (a PUT without lat/lon does not move a device).
    let stored = app
        .store
        .device(stadtpuls_gateways::DevEui::parse_hex("0a00000000000001").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!((stored.lat.unwrap() - 51.518_699).abs() < 1e-9);
    app.stop().await;
}

#[tokio::test]
async fn a_building_key_reads_the_private_devices_of_its_own_building_only() {
    let (app, _) = bays_app().await;
    import_rathaus_sensor(&app).await;
    let key = |b: &str| {
        let store = app.store.clone();
        let b = b.to_string();
        async move {
            store
                .create_key(Scope::Building(b), None)
                .await
                .unwrap()
                .secret
        }
    };
    let (rathaus, schule) = (key("rathaus").await, key("schule").await);
    let sensor = "/v1/devices/0b000000000000aa/readings";
    assert_eq!(
        app.send(Method::GET, sensor, Some(&rathaus), None).await.0,
        200
    );
    assert_eq!(
        app.send(Method::GET, sensor, Some(&schule), None).await.0,
        404
    );
    assert_eq!(app.send(Method::GET, sensor, None, None).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn silence_windows_are_per_kind() {
    let (app, admin) = bays_app().await;
    make_bay_1_private(&app, &admin).await;
    import_rathaus_sensor(&app).await;
    // Never-seen bays use the bay window, others the default.
    app.store
        .import_devices(&[device(
            "0e00000000000001",
            DeviceKind::RoomClimate,
            None,
            Visibility::Private,
            None,
        )])
        .await
        .unwrap();
    let (status, body) = app
        .send(Method::GET, "/v1/devices?status=silent", Some(&admin), None)
        .await;
    assert_eq!((status, &body["total_count"]), (200, &json!(7)), "{body}");
    let windows: Vec<(String, i64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["silent_after_minutes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(windows.contains(&("parking_bay".into(), 20)), "{windows:?}");
    assert!(
        windows.contains(&("room_climate".into(), 60)),
        "{windows:?}"
    );
    assert_eq!(
        body["silent_after_minutes_by_kind"]["parking_counter"],
        json!(20)
    );
    app.stop().await;
}

#[tokio::test]
async fn parking_history_weighs_states_by_how_long_they_held() {
    let bay = |eui: &str| NewDevice {
        site_id: Some("p1".into()),
        ..device(
            eui,
            DeviceKind::ParkingBay,
            None,
            Visibility::Public,
            Some((51.51, 7.46)),
        )
    };
    let app = TestApp::start_with(&[bay("0a00000000000011"), bay("0a00000000000012")]).await;
    let site = ParkingSite {
        uid: "p1".into(),
        name: "Westentor".into(),
        site_type: "ON_STREET".into(),
        purpose: "CAR".into(),
        capacity: 2,
        lat: 51.51,
        lon: 7.46,
        geometry: None,
        address: None,
        operator_name: None,
        opening_hours: None,
        static_data_updated_at: t("2026-01-01T00:00:00Z"),
    };
    app.store.import_places(&[site], &[], &[]).await.unwrap();
    // Bay 11: taken 10:00 with a heartbeat at 10:15, free at 10:30 (that state then holds for
    // the 20-minute bay window, to 10:50, as no heartbeat follows).
    // Bay 12: free, with heartbeats every 15 minutes until 10:45 (holds to 11:05).
    let b11 = "0a00000000000011";
    let b12 = "0a00000000000012";
    app.publish_up(b11, t("2026-11-02T10:00:00Z"), json!({"occupied": 1}))
        .await;
    app.publish_up(b11, t("2026-11-02T10:15:00Z"), json!({"occupied": 1}))
        .await;
    app.publish_up(b11, t("2026-11-02T10:30:00Z"), json!({"occupied": 0}))
        .await;
    for m in ["00", "15", "30", "45"] {
        let at = t(&format!("2026-11-02T10:{m}:00Z"));
        app.publish_up(b12, at, json!({"occupied": 0})).await;
    }
    let path =
        "/v1/parking/sites/p1/history?from=2026-11-02T10:00:00Z&to=2026-11-02T12:00:00Z&bucket=1h";
    app.wait_for("seven bay readings stored", || async {
        app.get_json(path).await.1["items"][1]["coverage"] == json!(0.042)
            && app.get_json(path).await.1["items"][0]["coverage"] == json!(0.917)
    })
    .await;
    let (status, body) = app.get_json(path).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["source"], &body["capacity"], &body["bucket"]),
        (&json!("bays"), &json!(2), &json!("1h"))
    );
    // 10–11: 110 bay-minutes known, bay 11 taken for 30 of them: 0.5 occupied, 1.333 free
    // (the share of 'taken' reports, 2 of 7, would say 0.29). 11–12: bay 12's last state for
    // its last 5 minutes.
    assert_eq!(
        body["items"],
        json!([
            {"start": "2026-11-02T10:00:00Z", "end": "2026-11-02T11:00:00Z",
             "free": 1.333, "occupied": 0.5, "coverage": 0.917},
            {"start": "2026-11-02T11:00:00Z", "end": "2026-11-02T12:00:00Z",
             "free": 0.083, "occupied": 0.0, "coverage": 0.042}
        ])
    );
    app.assert_bad_params(&[
        ("/v1/parking/sites/p1/history?from=2026-11-02T10:00:00Z", "bucket"),
        (
            "/v1/parking/sites/p1/history?bucket=1h&from=2026-11-02T12:00:00Z&to=2026-11-02T10:00:00Z",
            "from",
        ),
        ("/v1/parking/sites/p1/history?bucket=1h&colour=red", "colour"),
    ])
    .await;
    let (status, _) = app
        .get_json("/v1/parking/sites/nope/history?bucket=1h")
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}
