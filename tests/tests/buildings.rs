//! Building endpoints end to end: keys, rooms with latest climate and flags, room history,
//! and the admin device-status listing, with readings published through Mosquitto.
//!
//! Each behaviour is its own test on its own seeded app ([`seeded`]: the same registry, places,
//! keys and four uplinks). Each `#[tokio::test]` has its own runtime and an app dies with the
//! runtime that spawned it, so seeding per test (about a second) is what keeps the tests
//! independent of each other and of their order.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde_json::{json, Value};
use stadtpuls_store::keys::Scope;
use stadtpuls_store::{Building, DeviceKind, NewDevice, Room, Visibility};
use stadtpuls_tests::{device, fixture, TestApp};

fn z(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn in_room(eui: &str, building: Option<&str>, room: Option<&str>) -> NewDevice {
    let mut d = device(
        eui,
        DeviceKind::RoomClimate,
        None,
        Visibility::Private,
        None,
    );
    d.building_id = building.map(String::from);
    d.room_id = room.map(String::from);
    d
}

fn building(id: &str, name: &str) -> Building {
    Building {
        id: id.into(),
        name: name.into(),
        lat: Some(51.51),
        lon: Some(7.46),
        address: Some(format!("{name}straße 1")),
    }
}

fn room(building_id: &str, id: &str, name: &str) -> Room {
    Room {
        building_id: building_id.into(),
        id: id.into(),
        name: name.into(),
        floor: Some("EG".into()),
        usage: Some("office".into()),
    }
}

/// Publishes one ChirpStack v4 uplink of `eui` observed at `at` with the decoded `object`.
async fn publish(app: &TestApp, eui: &str, n: u32, at: DateTime<Utc>, object: Value) {
    let mut up: Value = serde_json::from_slice(&fixture("chirpstack-v4-up.json")).unwrap();
    up["object"] = object;
    up["time"] = json!(z(at));
    up["deduplicationId"] = json!(format!("00000000-0000-4000-8000-{n:012}"));
    up["deviceInfo"]["devEui"] = json!(eui);
    let topic = format!("application/17c82e96-be03-4f38-aef3-f83d48582d97/device/{eui}/event/up");
    app.publish(&topic, serde_json::to_vec(&up).unwrap()).await;
}

/// Status, `WWW-Authenticate` and JSON body of a GET with an optional key.
async fn get(app: &TestApp, path: &str, key: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = app.http.get(format!("{}{path}", app.base));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, r.json().await.unwrap())
}

/// An app with two buildings (Rathaus: rooms 101, 102, 103; Schule: a1), six room-climate
/// devices, an admin key and one key per building, and four uplinks stored (9 readings).
struct Seeded {
    app: TestApp,
    admin: String,
    rathaus: String,
    schule: String,
    /// When devices 1111…, 3333… and 4444… reported (on the second).
    at: DateTime<Utc>,
    /// When device 2222… reported: two minutes earlier.
    earlier: DateTime<Utc>,
}

async fn seeded() -> Seeded {
    let devices = [
        in_room("1111111111111111", Some("rathaus"), Some("101")),
        in_room("2222222222222222", Some("rathaus"), Some("101")),
        in_room("3333333333333333", Some("rathaus"), Some("102")),
        // Linked to a room but never heard from: the room is stale, the device silent.
        in_room("6666666666666666", Some("rathaus"), Some("103")),
        in_room("4444444444444444", Some("schule"), Some("a1")),
        // Registered, in no building, never seen.
        in_room("5555555555555555", None, None),
    ];
    // `devices.building_id` is a plain reference (no foreign key), so the registry can be
    // loaded before the buildings exist; API keys do need their building.
    let app = TestApp::start_with(&devices).await;
    app.store
        .import_places(
            &[],
            &[building("rathaus", "Rathaus"), building("schule", "Schule")],
            &[
                room("rathaus", "101", "Ratssaal"),
                room("rathaus", "102", "Büro OB"),
                room("rathaus", "103", "Archiv"),
                room("schule", "a1", "Klasse 5a"),
            ],
        )
        .await
        .unwrap();
    let admin = app.store.create_key(Scope::Admin, None).await.unwrap();
    let rathaus = app
        .store
        .create_key(Scope::Building("rathaus".into()), None)
        .await
        .unwrap();
    let schule = app
        .store
        .create_key(Scope::Building("schule".into()), None)
        .await
        .unwrap();

    let at = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
    let earlier = at - TimeDelta::minutes(2);
    publish(
        &app,
        "1111111111111111",
        1,
        at,
        json!({"temperature": 21.0, "humidity": 45, "co2": 1200}),
    )
    .await;
    publish(
        &app,
        "2222222222222222",
        2,
        earlier,
        json!({"temperature": 23.0}),
    )
    .await;
    publish(
        &app,
        "3333333333333333",
        3,
        at,
        json!({"temperature": 20.5, "humidity": 50, "co2": 600}),
    )
    .await;
    publish(
        &app,
        "4444444444444444",
        4,
        at,
        json!({"temperature": 19.0, "battery": 10}),
    )
    .await;
    app.wait_for("9 readings stored", || async {
        app.store.counts().await.unwrap().readings == 9
    })
    .await;
    Seeded {
        app,
        admin: admin.secret,
        rathaus: rathaus.secret,
        schule: schule.secret,
        at,
        earlier,
    }
}

fn v(value: f64, unit: &str, t: DateTime<Utc>) -> Value {
    json!({"value": value, "unit": unit, "time": z(t)})
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

fn euis(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dev_eui"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_building_needs_a_key_for_that_building() {
    let s = seeded().await;
    let (app, admin, rathaus, schule) = (&s.app, &*s.admin, &*s.rathaus, &*s.schule);
    let (status, challenge, body) = get(app, "/v1/buildings/rathaus", None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (401, Some("Bearer")),
        "{body}"
    );
    assert_eq!(get(app, "/v1/buildings", None).await.0, 401);
    let (status, _, body) = get(app, "/v1/buildings/rathaus", Some(schule)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["detail"],
        json!(
            "this API key is for building 'schule' and does not grant access to building 'rathaus'"
        )
    );
    // A building key learns nothing about buildings that are not its own, existing or not.
    assert_eq!(
        get(app, "/v1/buildings/nowhere", Some(rathaus)).await.0,
        403
    );
    assert_eq!(get(app, "/v1/buildings/nowhere", Some(admin)).await.0, 404);
    s.app.stop().await;
}

#[tokio::test]
async fn the_building_listing_shows_only_what_the_key_may_see() {
    let s = seeded().await;
    let (app, admin, rathaus) = (&s.app, &*s.admin, &*s.rathaus);
    let (status, _, body) = get(app, "/v1/buildings", Some(rathaus)).await;
    assert_eq!((status, ids(&body)), (200, vec!["rathaus".to_string()]));
    assert_eq!(body["items"][0]["address"], json!("Rathausstraße 1"));
    let (_, _, body) = get(app, "/v1/buildings", Some(admin)).await;
    assert_eq!(ids(&body), vec!["rathaus", "schule"]);
    s.app.stop().await;
}

#[tokio::test]
async fn a_building_shows_its_rooms_with_latest_climate_and_flags() {
    let s = seeded().await;
    let (app, admin, rathaus, at) = (&s.app, &*s.admin, &*s.rathaus, s.at);
    let (status, _, body) = get(app, "/v1/buildings/rathaus", Some(rathaus)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], json!("Rathaus"));
    assert_eq!(
        body["thresholds"],
        json!({"co2_alert_ppm": 1000.0, "stale_after_minutes": 60})
    );
    let rooms = body["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 3);
    let r101 = &rooms[0];
    assert_eq!(r101["id"], json!("101"));
    assert_eq!(r101["name"], json!("Ratssaal"));
    assert_eq!(r101["devices"], json!(2));
    assert_eq!(r101["last_reading"], json!(z(at)));
    // The newer of the two sensors wins.
    assert_eq!(r101["temperature"], v(21.0, "°C", at));
    assert_eq!(r101["humidity"], v(45.0, "%RH", at));
    assert_eq!(r101["co2"], v(1200.0, "ppm", at));
    assert_eq!(
        r101["flags"],
        json!({"co2_high": true, "stale": false, "no_sensor": false})
    );
    let r102 = &rooms[1];
    assert_eq!(r102["co2"], v(600.0, "ppm", at));
    assert_eq!(r102["temperature"], v(20.5, "°C", at));
    assert_eq!(
        r102["flags"],
        json!({"co2_high": false, "stale": false, "no_sensor": false})
    );
    let r103 = &rooms[2];
    assert_eq!(
        (&r103["temperature"], &r103["last_reading"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        r103["flags"],
        json!({"co2_high": false, "stale": true, "no_sensor": false})
    );

    // The admin sees the other building too.
    let (status, _, body) = get(app, "/v1/buildings/schule", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rooms"][0]["temperature"], v(19.0, "°C", at));
    assert_eq!(get(app, "/v1/buildings/rathaus", Some(admin)).await.0, 200);
    s.app.stop().await;
}

#[tokio::test]
async fn room_history_buckets_both_sensors_of_a_room_by_hour() {
    let s = seeded().await;
    let (app, rathaus, schule, at, earlier) = (&s.app, &*s.rathaus, &*s.schule, s.at, s.earlier);
    let hour = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::hours(1)).unwrap();
    let from = hour(at) - TimeDelta::hours(2);
    let to = hour(at) + TimeDelta::hours(1);
    let path = format!(
        "/v1/buildings/rathaus/rooms/101/history?quantity=temperature&bucket=1h&from={}&to={}",
        z(from),
        z(to)
    );
    let (status, _, body) = get(app, &path, Some(rathaus)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unit"], json!("°C"));
    assert_eq!(
        body["devices"],
        json!(["1111111111111111", "2222222222222222"])
    );
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{body}");
    // Both readings fall in the current hour unless the earlier one crossed an hour boundary.
    let mut expected = vec![json!({"count": 0, "avg": null}); 3];
    if hour(earlier) == hour(at) {
        expected[2] = json!({"count": 2, "avg": 22.0});
    } else {
        expected[1] = json!({"count": 1, "avg": 23.0});
        expected[2] = json!({"count": 1, "avg": 21.0});
    }
    for (i, (item, want)) in items.iter().zip(&expected).enumerate() {
        let start = from + TimeDelta::hours(i as i64);
        assert_eq!(item["start"], json!(z(start)));
        assert_eq!(item["end"], json!(z(start + TimeDelta::hours(1))));
        assert_eq!(
            (&item["count"], &item["avg"]),
            (&want["count"], &want["avg"]),
            "bucket {i}: {item}"
        );
    }
    assert_eq!(get(app, &path, Some(schule)).await.0, 403);
    assert_eq!(get(app, &path, None).await.0, 401);
    let unknown_room = path.replace("/rooms/101/", "/rooms/999/");
    let (status, _, body) = get(app, &unknown_room, Some(rathaus)).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = get(
        app,
        "/v1/buildings/rathaus/rooms/101/history?quantity=temperature",
        Some(rathaus),
    )
    .await;
    assert_eq!((status, &body["parameter"]), (400, &json!("bucket")));
    s.app.stop().await;
}

#[tokio::test]
async fn device_health_lists_low_battery_and_silent_devices_to_admins_only() {
    let s = seeded().await;
    let (app, admin, rathaus, at) = (&s.app, &*s.admin, &*s.rathaus, s.at);
    let (status, _, body) = get(app, "/v1/admin/devices?status=low_battery", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(euis(&body), vec!["4444444444444444"]);
    let low = &body["items"][0];
    assert_eq!(low["battery_percent"], json!(10.0));
    assert_eq!(low["last_seen"], json!(z(at)));
    assert_eq!(low["kind"], json!("room_climate"));
    assert_eq!(low["visibility"], json!("private"));
    assert_eq!(low["name"], json!("test 4444444444444444"));
    assert_eq!(body["battery_percent_below"], json!(20.0));

    let (status, _, body) = get(app, "/v1/admin/devices?status=silent", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(euis(&body), vec!["5555555555555555", "6666666666666666"]);
    assert_eq!(body["items"][0]["last_seen"], Value::Null);

    let (status, _, body) = get(app, "/v1/admin/devices?status=silent", Some(rathaus)).await;
    assert_eq!(
        (status, &body["detail"]),
        (403, &json!("this endpoint requires an admin API key"))
    );
    assert_eq!(
        get(app, "/v1/admin/devices?status=silent", None).await.0,
        401
    );
    let (status, _, body) = get(app, "/v1/admin/devices?status=dead", Some(admin)).await;
    assert_eq!((status, &body["parameter"]), (400, &json!("status")));

    // The same operator view as `/v1/devices?status=…` (as the issue names it).
    let (status, _, alias) = get(app, "/v1/devices?status=low_battery", Some(admin)).await;
    assert_eq!(status, 200, "{alias}");
    assert_eq!(euis(&alias), vec!["4444444444444444"]);
    assert_eq!(get(app, "/v1/devices?status=silent", None).await.0, 401);
    assert_eq!(
        get(app, "/v1/devices?status=silent", Some(rathaus)).await.0,
        403
    );
    s.app.stop().await;
}

#[tokio::test]
async fn no_building_device_is_public() {
    let s = seeded().await;
    assert_eq!(
        s.app.get_json("/v1/devices").await.1["total_count"],
        json!(0)
    );
    s.app.stop().await;
}
