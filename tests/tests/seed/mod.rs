//! A small registry for the route-walking tests (`auth_routes.rs`, `injection.rs`): two
//! buildings with a room, a parking site, a private room sensor and a public bay, and API keys
//! of every kind, created through the admin API as an operator would.
#![allow(dead_code)]

use reqwest::Method;
use serde_json::{json, Value};
use stadtpuls_store::keys::Scope;
use stadtpuls_tests::TestApp;

/// The building the building key `rathaus` is for, its room, the site and the devices.
pub const BUILDING: &str = "rathaus";
pub const OTHER_BUILDING: &str = "schule";
pub const ROOM: &str = "101";
pub const SITE: &str = "hbf-nord";
/// Private, in room 101 of the Rathaus.
pub const ROOM_SENSOR: &str = "0b00000000000001";
/// Public, on the site.
pub const BAY: &str = "0c00000000000001";

/// Secrets of the seeded keys.
#[derive(Debug)]
pub struct Keys {
    pub admin: String,
    /// For [`BUILDING`].
    pub rathaus: String,
    /// For [`OTHER_BUILDING`].
    pub schule: String,
    /// An admin key, revoked.
    pub revoked: String,
}

/// Seeds the registry and returns the keys.
pub async fn seed(app: &TestApp) -> Keys {
    let admin = app.admin_key().await;
    let put = |path: String, body: Value| {
        let admin = admin.clone();
        async move {
            let (status, body) = app
                .send(Method::PUT, &path, Some(&admin), Some(&body))
                .await;
            assert!(
                status == 201 || status == 200,
                "PUT {path}: {status} {body}"
            );
        }
    };
    for (id, name) in [(BUILDING, "Rathaus"), (OTHER_BUILDING, "Schule")] {
        put(
            format!("/v1/admin/buildings/{id}"),
            json!({"name": name, "lat": 51.5136, "lon": 7.4653}),
        )
        .await;
    }
    put(
        format!("/v1/admin/buildings/{BUILDING}/rooms/{ROOM}"),
        json!({"name": "Ratssaal", "floor": "1", "usage": "meeting"}),
    )
    .await;
    put(
        format!("/v1/admin/parking/sites/{SITE}"),
        json!({"name": "Parkhaus Hbf Nord", "type": "CAR_PARK", "capacity": 420,
               "lat": 51.5185, "lon": 7.4605}),
    )
    .await;
    put(
        format!("/v1/admin/devices/{ROOM_SENSOR}"),
        json!({"kind": "room_climate", "visibility": "private",
               "building_id": BUILDING, "room_id": ROOM, "lat": 51.5136, "lon": 7.4653}),
    )
    .await;
    put(
        format!("/v1/admin/devices/{BAY}"),
        json!({"kind": "parking_bay", "visibility": "public", "site_id": SITE,
               "lat": 51.5185, "lon": 7.4605}),
    )
    .await;
    let key = |scope: Scope| async move { app.store.create_key(scope, None).await.unwrap() };
    let rathaus = key(Scope::Building(BUILDING.into())).await.secret;
    let schule = key(Scope::Building(OTHER_BUILDING.into())).await.secret;
    let revoked = key(Scope::Admin).await;
    assert!(app.store.revoke_key(&revoked.prefix).await.unwrap());
    Keys {
        admin,
        rathaus,
        schule,
        revoked: revoked.secret,
    }
}

/// A documented path with its parameters filled with the seeded ids.
pub fn concrete(path: &str) -> String {
    path.replace("{dev_eui}", ROOM_SENSOR)
        .replace("{uid}", SITE)
        .replace("{id}", BUILDING)
        .replace("{room}", ROOM)
        .replace("{name}", "parking_occupancy")
        .replace(
            "{path}",
            "dataset=parking_occupancy/date=2024-05-01/part-0.csv",
        )
        .replace("{rest}", "index.css")
}
