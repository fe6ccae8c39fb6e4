//! The admin API for the registry (admin key only): create, replace and delete parking sites,
//! buildings, rooms and devices — the same records `stadtpuls places import` and
//! `stadtpuls devices import` write.
//!
//! `PUT` is create-or-replace with the id taken from the path (201 when new, 200 when it
//! replaced a record; the body is the stored record). `DELETE` answers 404 for an unknown id,
//! else 200 with how many devices were detached (their readings stay). Bodies are strict JSON:
//! an unknown or missing field is a 400 naming it. Changes reach every API and ingest process
//! through the registry notifications (`store/migrations/0003_registry_notify.sql`); this
//! process also refreshes its geo index before answering, so a client reads its own write.

use crate::auth::{require_admin, Authenticated};
use crate::buildings::Building as BuildingRecord;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query};
use crate::params::{self, clip};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stadtpuls_gateways::codecs::Codec;
use stadtpuls_store::{
    Building, Deleted, Device, DeviceKind, NewDevice, ParkingSite, Room, StoreError, Visibility,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type Q = Query;

/// The admin registry routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_site, delete_site))
        .routes(routes!(put_building, delete_building))
        .routes(routes!(put_room, delete_room))
        .routes(routes!(put_device))
}

/// A parking site as sent to `PUT /v1/admin/parking/sites/{uid}` (ParkAPI v3 field names).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    /// Optional; must equal the path's uid when given.
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\u0000]*$")]
    pub uid: Option<String>,
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\u0000]*$")]
    pub name: String,
    /// ParkAPI v3 site type, e.g. `CAR_PARK`.
    #[serde(rename = "type")]
    pub site_type: String,
    /// ParkAPI v3 purpose (default `CAR`).
    #[serde(default = "car")]
    pub purpose: String,
    /// Spaces; a whole number (`12` or `12.0`).
    #[schema(minimum = 0, maximum = 2147483647)]
    #[serde(deserialize_with = "whole_i32")]
    pub capacity: i32,
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
    /// GeoJSON Polygon or MultiPolygon outline.
    #[schema(value_type = Option<crate::openapi::SiteGeometry>)]
    pub geometry: Option<Value>,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub address: Option<String>,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub operator_name: Option<String>,
    /// OSM `opening_hours` syntax.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub opening_hours: Option<String>,
}

/// A JSON number that is a whole `i32`: `12` and `12.0` are the same number in JSON (and an
/// `integer` in JSON Schema), so both are accepted; `12.5` is not. Errors read as serde's own
/// for an `i32` ("invalid type: string \"many\", expected i32").
fn whole_i32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    struct WholeI32;
    impl serde::de::Visitor<'_> for WholeI32 {
        type Value = i32;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("i32")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i32, E> {
            if v.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v) {
                Ok(v as i32)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_any(WholeI32)
}

fn car() -> String {
    "CAR".into()
}

/// A building as sent to `PUT /v1/admin/buildings/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildingBody {
    /// Optional; must equal the path's id when given.
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000]*$")]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\u0000]*$")]
    pub name: String,
    /// Both or neither.
    #[schema(minimum = -90, maximum = 90)]
    pub lat: Option<f64>,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: Option<f64>,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub address: Option<String>,
}

/// A room as sent to `PUT /v1/admin/buildings/{id}/rooms/{room}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomBody {
    /// Optional; must equal the path's room when given.
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000]*$")]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\u0000]*$")]
    pub name: String,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub floor: Option<String>,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub usage: Option<String>,
}

/// A device as sent to `PUT /v1/admin/devices/{dev_eui}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// Optional; must equal the path's DevEUI when given.
    #[schema(pattern = "^[0-9A-Fa-f]{16}$")]
    pub dev_eui: Option<String>,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub name: Option<String>,
    /// parking_bay, parking_counter, room_climate, desk_occupancy, people_counter,
    /// outdoor_climate, air_quality or other.
    pub kind: DeviceKind,
    /// Payload codec for devices whose network server sends no decoded object
    /// (cayenne_lpp, bosch_parking, milesight_am319).
    pub codec: Option<String>,
    /// public or private.
    pub visibility: Visibility,
    /// Both or neither; without them a known position is kept.
    #[schema(minimum = -90, maximum = 90)]
    pub lat: Option<f64>,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: Option<f64>,
    /// A parking site's uid.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub site_id: Option<String>,
    #[schema(pattern = r"^[^\u0000]*$")]
    pub building_id: Option<String>,
    /// With `building_id`.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub room_id: Option<String>,
}

/// A parking site as stored (the answer of `PUT /v1/admin/parking/sites/{uid}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteRecord {
    pub uid: String,
    pub name: String,
    #[serde(rename = "type")]
    pub site_type: String,
    pub purpose: String,
    pub capacity: i32,
    pub lat: f64,
    pub lon: f64,
    /// GeoJSON Polygon or MultiPolygon outline, as sent.
    #[schema(required = true, value_type = Option<Object>)]
    pub geometry: Option<Value>,
    #[schema(required = true)]
    pub address: Option<String>,
    #[schema(required = true)]
    pub operator_name: Option<String>,
    #[schema(required = true)]
    pub opening_hours: Option<String>,
    pub static_data_updated_at: DateTime<Utc>,
}

impl From<ParkingSite> for SiteRecord {
    fn from(s: ParkingSite) -> Self {
        SiteRecord {
            uid: s.uid,
            name: s.name,
            site_type: s.site_type,
            purpose: s.purpose,
            capacity: s.capacity,
            lat: s.lat,
            lon: s.lon,
            geometry: s.geometry,
            address: s.address,
            operator_name: s.operator_name,
            opening_hours: s.opening_hours,
            static_data_updated_at: s.static_data_updated_at,
        }
    }
}

/// A room as stored (the answer of `PUT /v1/admin/buildings/{id}/rooms/{room}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomRecord {
    pub building_id: String,
    pub id: String,
    pub name: String,
    #[schema(required = true)]
    pub floor: Option<String>,
    #[schema(required = true)]
    pub usage: Option<String>,
}

impl From<Room> for RoomRecord {
    fn from(r: Room) -> Self {
        RoomRecord {
            building_id: r.building_id,
            id: r.id,
            name: r.name,
            floor: r.floor,
            usage: r.usage,
        }
    }
}

/// A device as stored (the answer of `PUT /v1/admin/devices/{dev_eui}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceRecord {
    #[schema(example = "70b3d57ed0000001", pattern = "^[0-9a-f]{16}$")]
    pub dev_eui: String,
    #[schema(required = true)]
    pub name: Option<String>,
    #[schema(example = "parking_bay")]
    pub kind: &'static str,
    #[schema(required = true)]
    pub codec: Option<String>,
    /// `public` or `private`.
    pub visibility: &'static str,
    #[schema(required = true)]
    pub lat: Option<f64>,
    #[schema(required = true)]
    pub lon: Option<f64>,
    /// Where the position came from (e.g. `registry`).
    #[schema(required = true)]
    pub location_source: Option<String>,
    #[schema(required = true)]
    pub site_id: Option<String>,
    #[schema(required = true)]
    pub building_id: Option<String>,
    #[schema(required = true)]
    pub room_id: Option<String>,
    #[schema(required = true)]
    pub network_server: Option<String>,
    #[schema(required = true)]
    pub application: Option<String>,
    pub auto_registered: bool,
    #[schema(required = true)]
    pub first_seen: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_seen: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub battery_percent: Option<f64>,
    #[schema(required = true)]
    pub battery_voltage: Option<f64>,
    #[schema(required = true)]
    pub battery_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl From<Device> for DeviceRecord {
    fn from(d: Device) -> Self {
        DeviceRecord {
            dev_eui: d.dev_eui.to_string(),
            name: d.name,
            kind: d.kind.as_str(),
            codec: d.codec,
            visibility: match d.visibility {
                Visibility::Public => "public",
                Visibility::Private => "private",
            },
            lat: d.lat,
            lon: d.lon,
            location_source: d.location_source,
            site_id: d.site_id,
            building_id: d.building_id,
            room_id: d.room_id,
            network_server: d.network_server,
            application: d.application,
            auto_registered: d.auto_registered,
            first_seen: d.first_seen,
            last_seen: d.last_seen,
            battery_percent: d.battery_percent,
            battery_voltage: d.battery_voltage,
            battery_at: d.battery_at,
            updated_at: d.updated_at,
        }
    }
}

/// What a delete did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteOutcome {
    /// What was deleted, e.g. `building 'rathaus'`.
    pub deleted: String,
    /// Devices that lost their site, building or room (their readings stay).
    pub devices_detached: u64,
}

/// Parses a strict JSON body. A field of the wrong type is blamed by its name (`capacity`);
/// syntax errors, unknown and missing fields on `body`, with serde's message naming them.
fn body<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from an array of its fields in order; the API does not.
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad("body", "expected a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de)
        .map_err(|e| {
            // The path up to the first segment serde could not name (`?`: e.g. a key that is
            // not a string); nothing named means the body as a whole.
            let path = e.path().to_string();
            let named: Vec<&str> = path
                .split('.')
                .take_while(|s| !s.is_empty() && *s != "?")
                .collect();
            let param = if named.is_empty() {
                "body".to_string()
            } else {
                named.join(".")
            };
            ApiError::bad(&param, e.inner().to_string())
        })
        .and_then(|parsed| match nul_in(raw) {
            Some(field) => Err(ApiError::bad(
                &field,
                "contains a NUL character (U+0000), which no text may hold",
            )),
            None => Ok(parsed),
        })
}

/// The JSON path (`name`, `rooms.0.name`) of the first string or key holding U+0000, if any.
/// PostgreSQL text cannot store it: this keeps such a body a 400 instead of a failed insert.
fn nul_in(raw: &[u8]) -> Option<String> {
    fn walk(v: &Value, path: &str) -> Option<String> {
        let here = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match v {
            Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
                "body".to_string()
            } else {
                path.to_string()
            }),
            Value::Object(map) => map.iter().find_map(|(k, v)| {
                let p = here(&k.replace('\0', "\\0"));
                if k.contains('\0') {
                    Some(p)
                } else {
                    walk(v, &p)
                }
            }),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &here(&i.to_string()))),
            _ => None,
        }
    }
    // Only a body spelling the escape can hold a NUL (JSON forbids it raw in strings).
    if !raw.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    walk(&serde_json::from_slice(raw).ok()?, "")
}

/// A body's own id, if it has one, must be the path's.
fn same_id(field: &str, body: Option<&str>, path: &str) -> Result<(), ApiError> {
    match body {
        Some(b) if b != path => Err(ApiError::bad(
            field,
            format!(
                "'{}' differs from the path's '{}'; ids are changed by delete and create",
                clip(b),
                clip(path)
            ),
        )),
        _ => Ok(()),
    }
}

fn created_or_replaced<T>(created: bool, body: T) -> (StatusCode, Json<T>) {
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (code, Json(body))
}

fn deleted(what: String, d: Deleted) -> Result<Json<DeleteOutcome>, ApiError> {
    if !d.existed {
        return Err(ApiError::NotFound(what));
    }
    Ok(Json(DeleteOutcome {
        deleted: what,
        devices_detached: d.devices_detached,
    }))
}

/// Refreshes this process's geo index after a registry write; a failure only delays it until
/// the notification or the next poll.
async fn refresh_index(st: &AppState) {
    if let Err(e) = st.devices.refresh(&st.store).await {
        tracing::warn!(error = %e, "geo index refresh after an admin write failed");
    }
}

/// `PUT /v1/admin/parking/sites/{uid}`
#[utoipa::path(
    put,
    path = "/v1/admin/parking/sites/{uid}",
    tag = "admin",
    security(("api_key" = ["admin"])),
    request_body = crate::admin::SiteBody,
    params(("uid" = String, Path, description = "Site uid", min_length = 1, max_length = 256)),
    responses(
        (status = 201, description = "Created", body = SiteRecord),
        (status = 200, description = "Replaced", body = SiteRecord),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
    ),
)]
async fn put_site(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path(uid): Path<String>,
    Query(q): Q,
    JsonBody(raw): JsonBody,
) -> Result<(StatusCode, Json<SiteRecord>), ApiError> {
    require_admin(&p)?;
    params::Params::new(q).finish()?;
    let b: SiteBody = body(&raw)?;
    same_id("uid", b.uid.as_deref(), &uid)?;
    if let Some(g) = &b.geometry {
        crate::geo::parse_polygon(g).map_err(|e| match e {
            ApiError::BadParam { message, .. } => ApiError::bad("geometry", message),
            other => other,
        })?;
    }
    let site = ParkingSite {
        uid,
        name: b.name,
        site_type: b.site_type,
        purpose: b.purpose,
        capacity: b.capacity,
        lat: b.lat,
        lon: b.lon,
        geometry: b.geometry,
        address: b.address,
        operator_name: b.operator_name,
        opening_hours: b.opening_hours,
        static_data_updated_at: st.clock.now(),
    };
    let created = st.store.put_parking_site(&site).await?;
    Ok(created_or_replaced(created, site.into()))
}

/// `DELETE /v1/admin/parking/sites/{uid}`: its devices stay, without a site.
#[utoipa::path(
    delete,
    path = "/v1/admin/parking/sites/{uid}",
    tag = "admin",
    security(("api_key" = ["admin"])),
    params(("uid" = String, Path, description = "Site uid", min_length = 1, max_length = 256)),
    responses(
        (status = 200, description = "Deleted; its devices stay, without a site", body = DeleteOutcome),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::NotFound,
    ),
)]
async fn delete_site(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path(uid): Path<String>,
    Query(q): Q,
) -> Result<Json<DeleteOutcome>, ApiError> {
    require_admin(&p)?;
    params::Params::new(q).finish()?;
    let d = st.store.delete_parking_site(&uid).await?;
    deleted(format!("parking site '{}'", clip(&uid)), d)
}

/// `PUT /v1/admin/buildings/{id}`
#[utoipa::path(
    put,
    path = "/v1/admin/buildings/{id}",
    tag = "admin",
    security(("api_key" = ["admin"])),
    request_body = crate::admin::BuildingBody,
    params(("id" = String, Path, description = "Building id", min_length = 1, max_length = 128)),
    responses(
        (status = 201, description = "Created", body = BuildingRecord),
        (status = 200, description = "Replaced", body = BuildingRecord),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
    ),
)]
async fn put_building(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    Query(q): Q,
    JsonBody(raw): JsonBody,
) -> Result<(StatusCode, Json<BuildingRecord>), ApiError> {
    require_admin(&p)?;
    params::Params::new(q).finish()?;
    let b: BuildingBody = body(&raw)?;
    same_id("id", b.id.as_deref(), &id)?;
    let building = Building {
        id,
        name: b.name,
        lat: b.lat,
        lon: b.lon,
        address: b.address,
    };
    let created = st.store.put_building(&building).await?;
    Ok(created_or_replaced(
        created,
        BuildingRecord::from(&building),
    ))
}

/// `DELETE /v1/admin/buildings/{id}`: rooms and building keys go with it; devices stay.
#[utoipa::path(
    delete,
    path = "/v1/admin/buildings/{id}",
    tag = "admin",
    security(("api_key" = ["admin"])),
    params(("id" = String, Path, description = "Building id", min_length = 1, max_length = 128)),
    responses(
        (status = 200, description = "Deleted with its rooms and building keys; devices stay", body = DeleteOutcome),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::NotFound,
    ),
)]
async fn delete_building(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<DeleteOutcome>, ApiError> {
    require_admin(&p)?;
    params::Params::new(q).finish()?;
    let d = st.store.delete_building(&id).await?;
    deleted(format!("building '{}'", clip(&id)), d)
}

/// `PUT /v1/admin/buildings/{id}/rooms/{room}`: the building must exist (else 404).
#[utoipa::path(
    put,
    path = "/v1/admin/buildings/{id}/rooms/{room}",
    tag = "admin",
    security(("api_key" = ["admin"])),
    request_body = crate::admin::RoomBody,
    params(
        ("id" = String, Path, description = "Building id", min_length = 1, max_length = 128),
        ("room" = String, Path, description = "Room id", min_length = 1, max_length = 128),
    ),
    responses(
        (status = 201, description = "Created", body = RoomRecord),
        (status = 200, description = "Replaced", body = RoomRecord),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::NotFound,
    ),
)]
async fn put_room(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path((id, room)): Path<(String, String)>,
    Query(q): Q,
    JsonBody(raw): JsonBody,
) -> Result<(StatusCode, Json<RoomRecord>), ApiError> {
    require_admin(&p)?;
    params::Params::new(q).finish()?;
    let b: RoomBody = body(&raw)?;
    same_id("id", b.id.as_deref(), &room)?;
    if st.store.building(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("building '{}'", clip(&id))));
    }
    let room = Room {
        building_id: id,
        id: room,
        name: b.name,
        floor: b.floor,
        usage: b.usage,
    };
    // The store names the room's own id `id`; in this route that is the `room` parameter.
    let created = st.store.put_room(&room).await.map_err(|e| match e {
        StoreError::Invalid {
            field: "id",
            problem,
        } => ApiError::bad("room", problem),
        other => other.into(),
    })?;
    Ok(created_or_replaced(created, room.into()))
}

/// `DELETE /v1/admin/buildings/{id}/rooms/{room}`: its devices stay in the building.
#[utoipa::path(
    delete,
    path = "/v1/admin/buildings/{id}/rooms/{room}",
    tag = "admin",
    security(("api_key" = ["admin"])),
    params(
        ("id" = String, Path, description = "Building id", min_length = 1, max_length = 128),
        ("room" = String, Path, description = "Room id", min_length = 1, max_length = 128),
    ),
    responses(
        (status = 200, description = "Deleted; its devices stay in the building", body = DeleteOutcome),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::NotFound,
    ),
)]
async fn delete_room(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path((id, room)): Path<(String, String)>,
    Query(q): Q,
) -> Result<Json<DeleteOutcome>, ApiError> {
    require_admin(&p)?;
    params::Params::new(q).finish()?;
    let d = st.store.delete_room(&id, &room).await?;
    deleted(
        format!("room '{}' in building '{}'", clip(&room), clip(&id)),
        d,
    )
}

/// `PUT /v1/admin/devices/{dev_eui}`: registers or updates a device (e.g. makes an
/// auto-registered one public, or assigns a bay to its site).
#[utoipa::path(
    put,
    path = "/v1/admin/devices/{dev_eui}",
    operation_id = "put_device",
    tag = "admin",
    security(("api_key" = ["admin"])),
    request_body = crate::admin::DeviceBody,
    params(("dev_eui" = String, Path, description = "16 hex digits", pattern = "^[0-9A-Fa-f]{16}$", example = "70b3d57ed0000001")),
    responses(
        (status = 201, description = "Registered", body = DeviceRecord),
        (status = 200, description = "Updated", body = DeviceRecord),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
    ),
)]
async fn put_device(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path(raw_eui): Path<String>,
    Query(q): Q,
    JsonBody(raw): JsonBody,
) -> Result<(StatusCode, Json<DeviceRecord>), ApiError> {
    require_admin(&p)?;
    params::Params::new(q).finish()?;
    let eui = params::dev_eui(&raw_eui)?;
    let b: DeviceBody = body(&raw)?;
    if let Some(body_eui) = &b.dev_eui {
        let parsed = params::dev_eui(body_eui)?;
        same_id("dev_eui", Some(&parsed.to_string()), &eui.to_string())?;
    }
    let location = match (b.lat, b.lon) {
        (None, None) => None,
        (Some(lat), Some(lon)) => Some(crate::geo::position(lat, lon)?),
        _ => return Err(ApiError::bad("lat", "give both lat and lon, or neither")),
    };
    if let Some(c) = &b.codec {
        c.parse::<Codec>()
            .map_err(|e| ApiError::bad("codec", e.to_string()))?;
    }
    if b.room_id.is_some() && b.building_id.is_none() {
        return Err(ApiError::bad("room_id", "a room needs its building_id"));
    }
    let device = NewDevice {
        dev_eui: eui,
        name: b.name,
        kind: b.kind,
        codec: b.codec,
        visibility: b.visibility,
        location,
        site_id: b.site_id,
        building_id: b.building_id,
        room_id: b.room_id,
    };
    let outcome = st
        .store
        .import_devices(std::slice::from_ref(&device))
        .await?;
    refresh_index(&st).await;
    let stored = st
        .store
        .device(eui)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {eui}")))?;
    Ok(created_or_replaced(outcome.inserted > 0, stored.into()))
}
