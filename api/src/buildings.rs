//! Building endpoints (key-scoped): buildings, rooms with their latest climate, room history,
//! and the admin listing of unhealthy devices.
//!
//! Access order of every handler: a valid key (401) → may this key see the building (403) →
//! parameters (400) → does it exist (404). A building key therefore gets 403 for another
//! building whether or not that building exists: it learns nothing about other buildings.
//!
//! Building data come from private devices; the public endpoints never show them (they filter
//! on `visibility = public`), and nothing here is reachable without a key.

use crate::aggregates::{bucket_json, parse_aggregate_query};
use crate::auth::{require_admin, require_building, Authenticated, Principal};
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query};
use crate::geo::{GeoIndex, GeoQuery};
use crate::params::clip;
use crate::params::utc;
use crate::params::Params;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use stadtpuls_gateways::Quantity;
use stadtpuls_store::aggregates::Agg;
use stadtpuls_store::buildings::{
    room_flags, ClimateValue, DeviceHealth, DeviceStatus, RoomClimate, RoomThresholds,
    SilenceWindows,
};
use stadtpuls_store::{Building, DeviceKind};
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

fn building_json(b: &Building) -> Value {
    json!({ "id": b.id, "name": b.name, "lat": b.lat, "lon": b.lon, "address": b.address })
}

fn value_json(q: Quantity, v: Option<ClimateValue>) -> Value {
    match v {
        Some(v) => json!({ "value": v.value, "unit": q.unit(), "time": utc(v.time) }),
        None => Value::Null,
    }
}

fn room_json(r: &RoomClimate, now: DateTime<Utc>, t: &RoomThresholds) -> Value {
    let flags = room_flags(r, now, t);
    json!({
        "id": r.room.id,
        "name": r.room.name,
        "floor": r.room.floor,
        "usage": r.room.usage,
        "devices": r.devices,
        "last_reading": r.last_reading.map(utc),
        "temperature": value_json(Quantity::Temperature, r.temperature),
        "humidity": value_json(Quantity::Humidity, r.humidity),
        "co2": value_json(Quantity::Co2, r.co2),
        "flags": {
            "co2_high": flags.co2_high,
            "stale": flags.stale,
            "no_sensor": flags.no_sensor,
        },
    })
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
        (status = 200, description = "OK", body = crate::openapi::BuildingList),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Unavailable,
    ),
)]
async fn list(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
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
        (status = 200, description = "OK", body = crate::openapi::BuildingList),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
        crate::openapi::Unauthorized,
        crate::openapi::Unavailable,
    ),
)]
async fn search(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Query(q): Q,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    Params::new(q).finish()?;
    let geo = crate::geo::polygon_body(&body)?;
    buildings_for(&st, &p, &geo).await
}

/// The buildings `p` may see that `geo` selects.
async fn buildings_for(
    st: &AppState,
    p: &Principal,
    geo: &GeoQuery,
) -> Result<Json<Value>, ApiError> {
    let visible: Vec<Building> = match p {
        Principal::Admin => st.store.buildings().await?,
        // A building key's building may have been deleted since (keys cascade, but a request
        // can race the deletion): then the list is simply empty.
        Principal::Building(id) => st.store.building(id).await?.into_iter().collect(),
    };
    let items: Vec<Value> = match geo {
        GeoQuery::All => visible.iter().map(building_json).collect(),
        geo => {
            let located = visible
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((i, b.lat?, b.lon?)));
            GeoIndex::new(located)
                .query(geo)
                .iter()
                .filter_map(|hit| {
                    let mut v = building_json(visible.get(hit.id)?);
                    if let Some(m) = hit.distance_m {
                        v["distance_m"] = json!(crate::geo::round_m(m));
                    }
                    Some(v)
                })
                .collect()
        }
    };
    Ok(Json(json!({ "total_count": items.len(), "items": items })))
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
        (status = 200, description = "OK", body = crate::openapi::BuildingDetail),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::NotFound,
        crate::openapi::Unavailable,
    ),
)]
async fn detail(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
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
    let mut body = building_json(&building);
    body["as_of"] = json!(utc(now));
    body["thresholds"] = json!({
        "co2_alert_ppm": t.co2_alert_ppm,
        "stale_after_minutes": st.settings.buildings.stale_after_minutes,
    });
    body["rooms"] = rooms.iter().map(|r| room_json(r, now, &t)).collect();
    Ok(Json(body))
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
        crate::openapi::AggregateParams,
        crate::openapi::WindowParams,
    ),
    responses(
        (status = 200, description = "OK", body = crate::openapi::RoomHistory),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::NotFound,
        crate::openapi::Unavailable,
    ),
)]
async fn room_history(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Path((id, room)): Path<(String, String)>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "building_id": room.building_id,
        "room_id": room.id,
        "devices": devices.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "quantity": query.quantity.name(),
        "unit": query.quantity.unit(),
        "bucket": query.width.as_str(),
        "timezone": tz,
        "from": utc(query.from),
        "to": utc(query.to),
        "items": buckets.iter().map(|b| bucket_json(b, &query.aggs)).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/admin/devices?status=silent|low_battery` (admin key only).
#[utoipa::path(
    get,
    path = "/v1/admin/devices",
    tag = "admin",
    security(("api_key" = ["admin"])),
    params(crate::openapi::StatusParam),
    responses(
        (status = 200, description = "OK", body = crate::openapi::DeviceHealthList),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::Unavailable,
    ),
)]
async fn admin_devices(
    State(st): State<AppState>,
    Authenticated(p): Authenticated,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
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
) -> Result<Value, ApiError> {
    require_admin(p)?;
    let filter = parse_status(raw_status)?;
    let now = st.clock.now();
    let status = status_query(filter, now, &st.settings);
    let devices = st.store.devices_with_status(status.clone()).await?;
    let mut body = match &status {
        DeviceStatus::Silent(w) => {
            let by_kind: serde_json::Map<String, Value> = w
                .by_kind
                .iter()
                .map(|(k, m)| (k.as_str().to_string(), json!(m)))
                .collect();
            json!({
                "status": "silent",
                "silent_after_minutes": w.default_minutes,
                "silent_after_minutes_by_kind": by_kind,
            })
        }
        DeviceStatus::BatteryBelow(percent) => json!({
            "status": "low_battery",
            "battery_percent_below": percent,
        }),
    };
    body["as_of"] = json!(utc(now));
    body["total_count"] = json!(devices.len());
    body["items"] = devices
        .iter()
        .map(|d| {
            let mut v = health_json(d);
            if let DeviceStatus::Silent(w) = &status {
                v["silent_after_minutes"] = json!(w.minutes(d.kind));
            }
            v
        })
        .collect();
    Ok(body)
}

fn health_json(d: &DeviceHealth) -> Value {
    json!({
        "dev_eui": d.dev_eui.to_string(),
        "name": d.name,
        "kind": d.kind.as_str(),
        "visibility": match d.visibility {
            stadtpuls_store::Visibility::Public => "public",
            stadtpuls_store::Visibility::Private => "private",
        },
        "building_id": d.building_id,
        "room_id": d.room_id,
        "last_seen": d.last_seen.map(utc),
        "battery_percent": d.battery_percent,
        "battery_at": d.battery_at.map(utc),
    })
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
