//! Building endpoints (key-scoped): buildings, rooms with their latest climate, room history,
//! and the admin listing of unhealthy devices.
//!
//! Access order of every handler: a valid key (401) → may this key see the building (403) →
//! parameters (400) → does it exist (404). A building key therefore gets 403 for another
//! building whether or not that building exists: it learns nothing about other buildings.
//!
//! Building data come from private devices; the public endpoints never show them (they filter
//! on `visibility = public`), and nothing here is reachable without a key.

use crate::aggregates::{parse_aggregate_query, AggregateBucket};
use crate::auth::{require_admin, require_building, Authenticated, Principal};
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query};
use crate::geo::{GeoIndex, GeoQuery};
use crate::paging::All;
use crate::params::clip;
use crate::params::utc;
use crate::params::Params;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use stadtpuls_gateways::Quantity;
use stadtpuls_store::aggregates::Agg;
use stadtpuls_store::buildings::{
    room_flags, ClimateValue as StoredValue, DeviceHealth as StoredHealth, DeviceStatus,
    RoomClimate, RoomThresholds, SilenceWindows,
};
use stadtpuls_store::{Building as StoredBuilding, DeviceKind, Visibility};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type Q = Query;

/// The building routes (an API key is required on every one).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(search))
        .routes(routes!(detail))
        .routes(routes!(room_history))
        .routes(routes!(admin_devices))
}

/// A building.
#[derive(Debug, Serialize, ToSchema)]
pub struct Building {
    pub id: String,
    pub name: String,
    #[schema(required = true)]
    pub lat: Option<f64>,
    #[schema(required = true)]
    pub lon: Option<f64>,
    #[schema(required = true)]
    pub address: Option<String>,
    /// Geodesic distance in metres from `lat`/`lon` (radius and nearest queries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

impl From<&StoredBuilding> for Building {
    fn from(b: &StoredBuilding) -> Self {
        Building {
            id: b.id.clone(),
            name: b.name.clone(),
            lat: b.lat,
            lon: b.lon,
            address: b.address.clone(),
            distance_m: None,
        }
    }
}

/// A newest climate value of a room.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClimateValue {
    pub value: f64,
    pub unit: &'static str,
    #[schema(format = DateTime)]
    pub time: String,
}

impl ClimateValue {
    fn of(q: Quantity, v: Option<StoredValue>) -> Option<Self> {
        v.map(|v| ClimateValue {
            value: v.value,
            unit: q.unit(),
            time: utc(v.time),
        })
    }
}

/// Room flags.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomFlags {
    /// CO₂ above `buildings.co2_alert_ppm` (default 1000 ppm).
    pub co2_high: bool,
    /// No reading within `buildings.stale_after_minutes`.
    pub stale: bool,
    /// No device in the room.
    pub no_sensor: bool,
}

/// A room with its newest climate values.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    pub id: String,
    pub name: String,
    #[schema(required = true)]
    pub floor: Option<String>,
    #[schema(required = true)]
    pub usage: Option<String>,
    /// Devices in the room.
    pub devices: i64,
    #[schema(required = true, format = DateTime)]
    pub last_reading: Option<String>,
    #[schema(required = true)]
    pub temperature: Option<ClimateValue>,
    #[schema(required = true)]
    pub humidity: Option<ClimateValue>,
    #[schema(required = true)]
    pub co2: Option<ClimateValue>,
    pub flags: RoomFlags,
}

impl RoomView {
    fn of(r: &RoomClimate, now: DateTime<Utc>, t: &RoomThresholds) -> Self {
        let flags = room_flags(r, now, t);
        RoomView {
            id: r.room.id.clone(),
            name: r.room.name.clone(),
            floor: r.room.floor.clone(),
            usage: r.room.usage.clone(),
            devices: r.devices,
            last_reading: r.last_reading.map(utc),
            temperature: ClimateValue::of(Quantity::Temperature, r.temperature),
            humidity: ClimateValue::of(Quantity::Humidity, r.humidity),
            co2: ClimateValue::of(Quantity::Co2, r.co2),
            flags: RoomFlags {
                co2_high: flags.co2_high,
                stale: flags.stale,
                no_sensor: flags.no_sensor,
            },
        }
    }
}

/// The thresholds the room flags were judged by.
#[derive(Debug, Serialize, ToSchema)]
pub struct Thresholds {
    pub co2_alert_ppm: f64,
    pub stale_after_minutes: u32,
}

/// A building with its rooms.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildingDetail {
    #[serde(flatten)]
    pub building: Building,
    /// The time the flags were judged at.
    #[schema(format = DateTime)]
    pub as_of: String,
    pub thresholds: Thresholds,
    pub rooms: Vec<RoomView>,
}

/// A room's history over all its devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomHistory {
    pub building_id: String,
    pub room_id: String,
    /// The DevEUIs of the room's devices.
    pub devices: Vec<String>,
    pub quantity: &'static str,
    pub unit: &'static str,
    /// `15m`, `1h` or `1d`.
    pub bucket: &'static str,
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    pub items: Vec<AggregateBucket>,
}

/// A device needing attention.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceHealth {
    pub dev_eui: String,
    #[schema(required = true)]
    pub name: Option<String>,
    pub kind: &'static str,
    /// `public` or `private`.
    pub visibility: &'static str,
    #[schema(required = true)]
    pub building_id: Option<String>,
    #[schema(required = true)]
    pub room_id: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub last_seen: Option<String>,
    #[schema(required = true)]
    pub battery_percent: Option<f64>,
    #[schema(required = true, format = DateTime)]
    pub battery_at: Option<String>,
    /// `status=silent` only: the window of this device's kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_after_minutes: Option<u32>,
}

impl From<&StoredHealth> for DeviceHealth {
    fn from(d: &StoredHealth) -> Self {
        DeviceHealth {
            dev_eui: d.dev_eui.to_string(),
            name: d.name.clone(),
            kind: d.kind.as_str(),
            visibility: match d.visibility {
                Visibility::Public => "public",
                Visibility::Private => "private",
            },
            building_id: d.building_id.clone(),
            room_id: d.room_id.clone(),
            last_seen: d.last_seen.map(utc),
            battery_percent: d.battery_percent,
            battery_at: d.battery_at.map(utc),
            silent_after_minutes: None,
        }
    }
}

/// A fleet health listing: the thresholds it applied, and the devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceHealthList {
    /// `silent` or `low_battery`.
    pub status: &'static str,
    /// `status=silent`: the window of kinds not listed by kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_after_minutes: Option<u32>,
    /// `status=silent`: the windows configured per kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_after_minutes_by_kind: Option<BTreeMap<String, u32>>,
    /// `status=low_battery`: the threshold in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub battery_percent_below: Option<f64>,
    #[schema(format = DateTime)]
    pub as_of: String,
    pub total_count: usize,
    pub items: Vec<DeviceHealth>,
}

fn thresholds(st: &AppState) -> RoomThresholds {
    let b = &st.settings.buildings;
    RoomThresholds {
        co2_alert_ppm: b.co2_alert_ppm,
        stale_after: TimeDelta::minutes(i64::from(b.stale_after_minutes)),
    }
}

/// `GET /v1/buildings?bbox=|lat=&lon=&radius=|lat=&lon=&nearest=`: the buildings this key may
/// see (all for an admin key, its own for a building key), ordered by id, or as the geo query
/// orders them (then buildings without a location are left out).
#[utoipa::path(
    get,
    path = "/v1/buildings",
    operation_id = "buildings",
    tag = "buildings",
    security(("api_key" = [])),
    params(crate::openapi::GeoParams),
    responses(
        (status = 200, description = "OK", body = All<Building>),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
    ),
)]
async fn list(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Query(q): Q,
) -> Result<Json<All<Building>>, ApiError> {
    let mut params = Params::new(q);
    let geo = crate::geo::parse_geo_query(&mut params)?;
    params.finish()?;
    buildings_for(&st, &p, &geo).await
}

/// `POST /v1/buildings/search` with a GeoJSON Polygon/MultiPolygon body.
#[utoipa::path(
    post,
    path = "/v1/buildings/search",
    operation_id = "buildings_search",
    tag = "buildings",
    security(("api_key" = [])),
    request_body(
        content = crate::openapi::PolygonBody,
        description = "GeoJSON Polygon or MultiPolygon",
        content_type = "application/json"
    ),
    responses(
        (status = 200, description = "OK", body = All<Building>),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
        crate::openapi::Unauthorized,
    ),
)]
async fn search(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Query(q): Q,
    JsonBody(body): JsonBody,
) -> Result<Json<All<Building>>, ApiError> {
    Params::new(q).finish()?;
    let geo = crate::geo::polygon_body(&body)?;
    buildings_for(&st, &p, &geo).await
}

/// The buildings `p` may see that `geo` selects.
async fn buildings_for(
    st: &AppState,
    p: &Principal,
    geo: &GeoQuery,
) -> Result<Json<All<Building>>, ApiError> {
    let visible: Vec<StoredBuilding> = match p {
        Principal::Admin => st.store.buildings().await?,
        // A building key's building may have been deleted since (keys cascade, but a request
        // can race the deletion): then the list is simply empty.
        Principal::Building(id) => st.store.building(id).await?.into_iter().collect(),
    };
    let items: Vec<Building> = match geo {
        GeoQuery::All => visible.iter().map(Building::from).collect(),
        geo => {
            let located = visible
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((i, b.lat?, b.lon?)));
            GeoIndex::new(located)
                .query(geo)
                .iter()
                .filter_map(|hit| {
                    let mut v = Building::from(visible.get(hit.id)?);
                    v.distance_m = hit.distance_m.map(crate::geo::round_m);
                    Some(v)
                })
                .collect()
        }
    };
    Ok(Json(items.into()))
}

/// `GET /v1/buildings/{id}`: the building and each room with its newest temperature, humidity
/// and CO₂ (value, unit, time) and flags, judged at the app clock's now.
#[utoipa::path(
    get,
    path = "/v1/buildings/{id}",
    operation_id = "building",
    tag = "buildings",
    security(("api_key" = ["building"])),
    params(("id" = String, Path, description = "Building id")),
    responses(
        (status = 200, description = "OK", body = BuildingDetail),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::NotFound,
    ),
)]
async fn detail(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<BuildingDetail>, ApiError> {
    require_building(&p, &id)?;
    Params::new(q).finish()?;
    let building = st
        .store
        .building(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("building '{}'", clip(&id))))?;
    let rooms = st.store.room_climate(&id).await?;
    let now = st.clock.now();
    let t = thresholds(&st);
    Ok(Json(BuildingDetail {
        building: Building::from(&building),
        as_of: utc(now),
        thresholds: Thresholds {
            co2_alert_ppm: t.co2_alert_ppm,
            stale_after_minutes: st.settings.buildings.stale_after_minutes,
        },
        rooms: rooms.iter().map(|r| RoomView::of(r, now, &t)).collect(),
    }))
}

/// `GET /v1/buildings/{id}/rooms/{room}/history?quantity=&bucket=&from=&to=&agg=`: buckets over
/// all readings of the room's devices (empty buckets present, count 0). Same parameters as the
/// device aggregates, except that `sum` is not offered.
#[utoipa::path(
    get,
    path = "/v1/buildings/{id}/rooms/{room}/history",
    tag = "buildings",
    security(("api_key" = ["building"])),
    params(
        ("id" = String, Path, description = "Building id"),
        ("room" = String, Path, description = "Room id"),
        crate::openapi::RoomAggregateParams,
        crate::openapi::WindowParams,
    ),
    responses(
        (status = 200, description = "OK", body = RoomHistory),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::NotFound,
    ),
)]
async fn room_history(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path((id, room)): Path<(String, String)>,
    Query(q): Q,
) -> Result<Json<RoomHistory>, ApiError> {
    require_building(&p, &id)?;
    let mut params = Params::new(q);
    let query = parse_aggregate_query(
        &mut params,
        st.clock.now(),
        st.settings.http.max_window_days,
    )?;
    params.finish()?;
    if query.aggs.contains(&Agg::Sum) {
        return Err(ApiError::bad(
            "agg",
            "sum is not available for a room (a sum over several devices' counters means \
             nothing); use the device aggregates",
        ));
    }
    let (room, devices) = st
        .store
        .room_with_devices(&id, &room)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "room '{}' in building '{}'",
                clip(&room),
                clip(&id)
            ))
        })?;
    let tz = &st.settings.city.timezone;
    let buckets = st
        .store
        .room_buckets(
            &devices,
            query.quantity,
            query.from,
            query.to,
            query.width,
            tz,
        )
        .await?;
    Ok(Json(RoomHistory {
        building_id: room.building_id,
        room_id: room.id,
        devices: devices.iter().map(|d| d.to_string()).collect(),
        quantity: query.quantity.name(),
        unit: query.quantity.unit(),
        bucket: query.width.as_str(),
        timezone: tz.clone(),
        from: utc(query.from),
        to: utc(query.to),
        items: buckets
            .iter()
            .map(|b| AggregateBucket::of(b, &query.aggs))
            .collect(),
    }))
}

/// `GET /v1/admin/devices?status=silent|low_battery` (admin key only).
#[utoipa::path(
    get,
    path = "/v1/admin/devices",
    tag = "admin",
    security(("api_key" = ["admin"])),
    params(crate::openapi::StatusParam),
    responses(
        (status = 200, description = "OK", body = DeviceHealthList),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
    ),
)]
async fn admin_devices(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Query(q): Q,
) -> Result<Json<DeviceHealthList>, ApiError> {
    // Scope before parameters: a building key learns nothing about this route's input.
    require_admin(&p)?;
    let mut params = Params::new(q);
    let status = params
        .string("status")
        .ok_or_else(|| ApiError::bad("status", "required: silent or low_battery"))?;
    params.finish()?;
    Ok(Json(device_status_listing(&st, &p, &status).await?))
}

/// What `status=` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Never seen, or not seen within the silence window of the device's kind
    /// (`devices.silent_after_minutes[_by_kind]`).
    Silent,
    /// Battery below `buildings.low_battery_percent`.
    LowBattery,
}

/// Parses a `status` value. Pure.
pub fn parse_status(raw: &str) -> Result<StatusFilter, ApiError> {
    match raw {
        "silent" => Ok(StatusFilter::Silent),
        "low_battery" => Ok(StatusFilter::LowBattery),
        other => Err(ApiError::bad(
            "status",
            format!("'{}' is not silent or low_battery", clip(other)),
        )),
    }
}

/// The silence windows of the configuration at `now`. Pure. Kind names were checked when the
/// configuration was validated; one that does not parse here would be skipped (using the default).
pub fn silence_windows(now: DateTime<Utc>, d: &stadtpuls_config::DeviceSettings) -> SilenceWindows {
    SilenceWindows {
        now,
        default_minutes: d.silent_after_minutes,
        by_kind: d
            .silent_after_minutes_by_kind
            .iter()
            .filter_map(|(k, m)| Some((k.parse::<DeviceKind>().ok()?, *m)))
            .collect(),
    }
}

/// The store query for a status at `now` under the configured thresholds. Pure.
pub fn status_query(
    filter: StatusFilter,
    now: DateTime<Utc>,
    settings: &stadtpuls_config::Settings,
) -> DeviceStatus {
    match filter {
        StatusFilter::Silent => DeviceStatus::Silent(silence_windows(now, &settings.devices)),
        StatusFilter::LowBattery => {
            DeviceStatus::BatteryBelow(settings.buildings.low_battery_percent)
        }
    }
}

/// The body of a status listing, for `/v1/admin/devices` and for any other route that offers
/// `status=` to admin keys (e.g. `/v1/devices?status=…`): 403 for building keys, 400 for an
/// unknown status.
pub async fn device_status_listing(
    st: &AppState,
    p: &Principal,
    raw_status: &str,
) -> Result<DeviceHealthList, ApiError> {
    require_admin(p)?;
    let filter = parse_status(raw_status)?;
    let now = st.clock.now();
    let status = status_query(filter, now, &st.settings);
    let devices = st.store.devices_with_status(status.clone()).await?;
    let items = devices
        .iter()
        .map(|d| {
            let mut v = DeviceHealth::from(d);
            if let DeviceStatus::Silent(w) = &status {
                v.silent_after_minutes = Some(w.minutes(d.kind));
            }
            v
        })
        .collect();
    let mut list = DeviceHealthList {
        status: "",
        silent_after_minutes: None,
        silent_after_minutes_by_kind: None,
        battery_percent_below: None,
        as_of: utc(now),
        total_count: devices.len(),
        items,
    };
    match &status {
        DeviceStatus::Silent(w) => {
            list.status = "silent";
            list.silent_after_minutes = Some(w.default_minutes);
            list.silent_after_minutes_by_kind = Some(
                w.by_kind
                    .iter()
                    .map(|(k, m)| (k.as_str().to_string(), *m))
                    .collect(),
            );
        }
        DeviceStatus::BatteryBelow(percent) => {
            list.status = "low_battery";
            list.battery_percent_below = Some(*percent);
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn status_parsing_and_queries() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let settings = stadtpuls_config::Settings::default();
        let DeviceStatus::Silent(w) = status_query(parse_status("silent").unwrap(), now, &settings)
        else {
            panic!("silent is a silence query");
        };
        assert_eq!(w.now, now);
        assert_eq!(w.minutes(DeviceKind::RoomClimate), 60);
        assert_eq!(w.minutes(DeviceKind::ParkingBay), 20);
        assert_eq!(w.minutes(DeviceKind::ParkingCounter), 20);
        assert_eq!(
            status_query(parse_status("low_battery").unwrap(), now, &settings),
            DeviceStatus::BatteryBelow(20.0)
        );
        for bad in ["", "Silent", "dead", "low-battery"] {
            match parse_status(bad) {
                Err(ApiError::BadParam { param, .. }) => assert_eq!(param, "status"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
