//! Request handlers of the device routes, health, metrics and quantities, and their response
//! types.

use crate::aggregates::AggregateBucket;
use crate::auth::{MaybeAuthenticated, Principal};
use crate::buildings::DeviceHealthList;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query};
use crate::geo::round_m;
use crate::geo::{GeoQuery, Hit};
use crate::paging::{All, List};
use crate::params::utc;
use crate::params::{self, Params};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Duration;
use serde::Serialize;
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_store::{
    Device as StoredDevice, DeviceFilter, LatestValue, ReadingCursor, StoredReading, Visibility,
};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

type Q = Query;

/// One measured value.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reading {
    #[schema(example = "temperature")]
    pub quantity: &'static str,
    pub value: f64,
    #[schema(example = "°C")]
    pub unit: &'static str,
    #[schema(format = DateTime)]
    pub time: String,
}

impl From<&StoredReading> for Reading {
    fn from(r: &StoredReading) -> Self {
        Reading {
            quantity: r.quantity.name(),
            value: r.value,
            unit: r.quantity.unit(),
            time: utc(r.time),
        }
    }
}

/// A device the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    #[schema(example = "70b3d57ed0000001", pattern = "^[0-9a-f]{16}$")]
    pub dev_eui: String,
    #[schema(required = true)]
    pub name: Option<String>,
    #[schema(example = "parking_bay")]
    pub kind: &'static str,
    #[schema(required = true)]
    pub lat: Option<f64>,
    #[schema(required = true)]
    pub lon: Option<f64>,
    #[schema(required = true)]
    pub network_server: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub first_seen: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub last_seen: Option<String>,
    #[schema(required = true)]
    pub battery_percent: Option<f64>,
    #[schema(required = true)]
    pub battery_voltage: Option<f64>,
    /// Geodesic distance in metres from `lat`/`lon` (radius and nearest queries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

impl From<&StoredDevice> for Device {
    fn from(d: &StoredDevice) -> Self {
        Device {
            dev_eui: d.dev_eui.to_string(),
            name: d.name.clone(),
            kind: d.kind.as_str(),
            lat: d.lat,
            lon: d.lon,
            network_server: d.network_server.clone(),
            first_seen: d.first_seen.map(utc),
            last_seen: d.last_seen.map(utc),
            battery_percent: d.battery_percent,
            battery_voltage: d.battery_voltage,
            distance_m: None,
        }
    }
}

/// A device with its latest value per quantity.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    pub latest: Vec<Reading>,
}

/// A page of raw readings, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadingPage {
    pub dev_eui: String,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    pub items: Vec<Reading>,
    /// The next page; null on the last one.
    #[schema(required = true)]
    pub next: Option<String>,
}

/// Aggregates of one device and quantity.
#[derive(Debug, Serialize, ToSchema)]
pub struct Aggregates {
    pub dev_eui: String,
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

/// A quantity Stadtpuls stores.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuantityInfo {
    pub name: &'static str,
    pub unit: &'static str,
    pub description: &'static str,
}

/// `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `degraded` (ingest not connected or its writer retrying) or `unavailable`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// `ok` or `unreachable`.
    pub database: &'static str,
    pub ingest: IngestState,
}

/// The in-process ingest's state, or the text "not running in this process".
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum IngestState {
    Running(IngestStatus),
    NotRunning(&'static str),
}

/// The state of an ingest running in this process.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestStatus {
    /// `connecting`, `connected` or `disconnected`.
    #[schema(example = "connected")]
    pub mqtt: &'static str,
    /// Whether the subscriptions of the current connection were acknowledged.
    pub subscribed: bool,
    /// Reconnects to the broker since start.
    pub reconnects: u64,
    /// `ok`, or `retrying` while the database refuses writes.
    #[schema(example = "ok")]
    pub writer: &'static str,
    /// Batches committed since start.
    pub committed_batches: u64,
    /// The last error recorded, if any.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

impl From<&stadtpuls_store::health::IngestHealth> for IngestStatus {
    fn from(h: &stadtpuls_store::health::IngestHealth) -> Self {
        IngestStatus {
            mqtt: h.mqtt_state().as_str(),
            subscribed: h.subscribed(),
            reconnects: h.reconnects(),
            writer: if h.db_failing() { "retrying" } else { "ok" },
            committed_batches: h.committed_batches(),
            last_error: h.last_error(),
        }
    }
}

/// `/v1/devices`: public devices, or with `status=` the devices needing attention.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DeviceListing {
    Devices(List<Device>),
    Health(DeviceHealthList),
}

/// `GET /health`: 200 when the database answers, 503 otherwise; ingest state when in-process.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers; `status` is ok or degraded (ingest not connected)", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    ),
)]
pub async fn health(State(st): State<AppState>) -> Response {
    let db_ok = st.store.ping().await.is_ok();
    let ingest = st.ingest.as_deref().map(IngestStatus::from);
    let ingest_ok = st.ingest.as_ref().is_none_or(|h| {
        h.mqtt_state() == stadtpuls_store::health::MqttState::Connected && !h.db_failing()
    });
    let status = match (db_ok, ingest_ok) {
        (true, true) => "ok",
        (true, false) => "degraded",
        (false, _) => "unavailable",
    };
    let body = Health {
        status,
        database: if db_ok { "ok" } else { "unreachable" },
        ingest: ingest.map_or(
            IngestState::NotRunning("not running in this process"),
            IngestState::Running,
        ),
    };
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
    ),
)]
pub async fn metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("route {}", uri.path()))
}

/// `GET /v1/quantities`
#[utoipa::path(
    get,
    path = "/v1/quantities",
    tag = "operations",
    responses(
        (status = 200, description = "OK", body = All<QuantityInfo>),
        crate::openapi::BadRequest,
    ),
)]
pub async fn quantities(Query(q): Q) -> Result<Json<All<QuantityInfo>>, ApiError> {
    Params::new(q).finish()?;
    let items: Vec<QuantityInfo> = Quantity::ALL
        .iter()
        .map(|q| QuantityInfo {
            name: q.name(),
            unit: q.unit(),
            description: q.description(),
        })
        .collect();
    Ok(Json(items.into()))
}

/// Which devices a caller may list: anonymous callers and building keys the public ones, admin
/// keys all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listing {
    Public,
    All,
}

impl Listing {
    fn of(auth: &MaybeAuthenticated) -> Self {
        if auth.0.as_ref().is_some_and(Principal::is_admin) {
            Listing::All
        } else {
            Listing::Public
        }
    }

    fn public_only(self) -> bool {
        self == Listing::Public
    }
}

/// The devices a geo query selects, in the query's order, with distances for radius/nearest
/// queries; `None` for "no geo filter".
fn select(st: &AppState, q: &GeoQuery, listing: Listing) -> Option<Vec<Hit<DevEui>>> {
    match (q, listing) {
        (GeoQuery::All, _) => None,
        (q, Listing::Public) => Some(st.devices.public().query(q)),
        (q, Listing::All) => Some(st.devices.all().query(q)),
    }
}

/// `GET /v1/devices?bbox=|lat=&lon=&radius=|lat=&lon=&nearest=`: public devices.
///
/// With `status=silent|low_battery` it is the operator's view of devices needing attention
/// (public and private alike), which needs an admin key.
#[utoipa::path(
    get,
    path = "/v1/devices",
    tag = "devices",
    security((), ("api_key" = [])),
    params(
        crate::openapi::GeoParams,
        crate::openapi::PageParams,
        crate::openapi::DevicesParams,
    ),
    responses(
        (status = 200, description = "Public devices (with `status=`: devices needing attention, a DeviceHealthList)", body = DeviceListing),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
    ),
)]
pub async fn devices(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Result<Json<DeviceListing>, ApiError> {
    let mut p = Params::new(q);
    if let Some(status) = p.string("status") {
        p.finish()?;
        let principal = auth.0.ok_or_else(|| {
            ApiError::Unauthorized("status=… is an operator view: an admin key is required".into())
        })?;
        return Ok(Json(DeviceListing::Health(
            crate::buildings::device_status_listing(&st, &principal, &status).await?,
        )));
    }
    let geo = crate::geo::parse_geo_query(&mut p)?;
    let page = crate::paging::parse_page(&mut p, st.settings.http.max_page_size)?;
    p.finish()?;
    let all = devices_for(&st, &geo, Listing::of(&auth)).await?;
    Ok(Json(DeviceListing::Devices(List::page(
        &st, &headers, &uri, all, page,
    ))))
}

/// `POST /v1/devices/search` with a GeoJSON Polygon/MultiPolygon body.
#[utoipa::path(
    post,
    path = "/v1/devices/search",
    tag = "devices",
    security((), ("api_key" = [])),
    request_body(content = crate::openapi::PolygonBody, description = "GeoJSON Polygon or MultiPolygon", content_type = "application/json"),
    params(crate::openapi::PageParams),
    responses(
        (status = 200, description = "OK", body = List<Device>),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
        crate::openapi::Unauthorized,
    ),
)]
pub async fn devices_search(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
    JsonBody(body): JsonBody,
) -> Result<Json<List<Device>>, ApiError> {
    let mut p = Params::new(q);
    let page = crate::paging::parse_page(&mut p, st.settings.http.max_page_size)?;
    p.finish()?;
    let geo = crate::geo::polygon_body(&body)?;
    let all = devices_for(&st, &geo, Listing::of(&auth)).await?;
    Ok(Json(List::page(&st, &headers, &uri, all, page)))
}

/// Every device the geo query selects that the caller may list, in the query's order
/// (DevEUI order without a geo filter).
async fn devices_for(
    st: &AppState,
    geo: &GeoQuery,
    listing: Listing,
) -> Result<Vec<Device>, ApiError> {
    let items: Vec<Device> = match select(st, geo, listing) {
        None => {
            let devices = st
                .store
                .devices(DeviceFilter {
                    bbox: None,
                    public_only: listing.public_only(),
                })
                .await?;
            devices.iter().map(Device::from).collect()
        }
        Some(hits) => {
            let ids: Vec<DevEui> = hits.iter().map(|h| h.id).collect();
            let found: HashMap<DevEui, StoredDevice> = st
                .store
                .devices_by_ids(&ids)
                .await?
                .into_iter()
                .map(|d| (d.dev_eui, d))
                .collect();
            hits.iter()
                .filter_map(|h| {
                    // The index may be a few seconds older than the registry: re-check visibility.
                    let d = found
                        .get(&h.id)
                        .filter(|d| !listing.public_only() || d.visibility == Visibility::Public)?;
                    let mut v = Device::from(d);
                    v.distance_m = h.distance_m.map(round_m);
                    Some(v)
                })
                .collect()
        }
    };
    Ok(items)
}

/// A device the caller may see, or 404: public devices for everyone, a building's devices for
/// its building key, every device for an admin key. To anyone else a private device does not
/// exist (404, not 403, so its DevEUI is not confirmed).
async fn visible_device(
    st: &AppState,
    raw: &str,
    auth: &MaybeAuthenticated,
) -> Result<StoredDevice, ApiError> {
    let eui = params::dev_eui(raw)?;
    let visible = |d: &StoredDevice| match (&auth.0, d.visibility) {
        (_, Visibility::Public) | (Some(Principal::Admin), _) => true,
        (Some(Principal::Building(own)), Visibility::Private) => {
            d.building_id.as_deref() == Some(own.as_str())
        }
        (None, Visibility::Private) => false,
    };
    match st.store.device(eui).await? {
        Some(d) if visible(&d) => Ok(d),
        _ => Err(ApiError::NotFound(format!("device {eui}"))),
    }
}

/// `GET /v1/devices/{dev_eui}`: the device with its latest value per quantity.
#[utoipa::path(
    get,
    path = "/v1/devices/{dev_eui}",
    tag = "devices",
    security((), ("api_key" = [])),
    params(("dev_eui" = String, Path, description = "16 hex digits", pattern = "^[0-9A-Fa-f]{16}$", example = "70b3d57ed0000001")),
    responses(
        (status = 200, description = "OK", body = DeviceDetail),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Unauthorized,
    ),
)]
pub async fn device(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    Path(raw): Path<String>,
    Query(q): Q,
) -> Result<Json<DeviceDetail>, ApiError> {
    Params::new(q).finish()?;
    let d = visible_device(&st, &raw, &auth).await?;
    let latest = st.store.latest_of_device(d.dev_eui).await?;
    Ok(Json(DeviceDetail {
        device: Device::from(&d),
        latest: latest.iter().map(Reading::from).collect(),
    }))
}

/// `GET /v1/devices/{dev_eui}/readings?quantity=&from=&to=&limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/v1/devices/{dev_eui}/readings",
    tag = "devices",
    security((), ("api_key" = [])),
    params(
        ("dev_eui" = String, Path, description = "16 hex digits", pattern = "^[0-9A-Fa-f]{16}$", example = "70b3d57ed0000001"),
        crate::openapi::ReadingsParams,
    ),
    responses(
        (status = 200, description = "OK", body = ReadingPage),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Unauthorized,
    ),
)]
pub async fn readings(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    Path(raw): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Result<Json<ReadingPage>, ApiError> {
    let mut p = Params::new(q);
    let quantity = p.quantity()?;
    let to = p
        .time("to")?
        .unwrap_or_else(|| st.clock.now() + Duration::seconds(1));
    let from = p.time("from")?.unwrap_or(to - Duration::days(1));
    crate::aggregates::check_span(from, to, st.settings.http.max_window_days, "request")?;
    let limit = p.limit(100, st.settings.http.max_page_size)?;
    let cursor = p.cursor()?;
    p.finish()?;
    let d = visible_device(&st, &raw, &auth).await?;
    let mut rows = st
        .store
        .readings(d.dev_eui, quantity, from, to, cursor, limit + 1)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(crate::paging::next_link(
            &st,
            &headers,
            &uri,
            &params::encode_cursor(&ReadingCursor {
                time: last.time,
                quantity: last.quantity,
            }),
        )),
        _ => None,
    };
    Ok(Json(ReadingPage {
        dev_eui: d.dev_eui.to_string(),
        from: utc(from),
        to: utc(to),
        items: rows.iter().map(Reading::from).collect(),
        next,
    }))
}

/// `GET /v1/devices/{dev_eui}/aggregates?quantity=&from=&to=&bucket=&agg=`: every bucket of the
/// window, empty ones with count 0; day buckets follow `city.timezone`.
#[utoipa::path(
    get,
    path = "/v1/devices/{dev_eui}/aggregates",
    tag = "devices",
    security((), ("api_key" = [])),
    params(
        ("dev_eui" = String, Path, description = "16 hex digits", pattern = "^[0-9A-Fa-f]{16}$", example = "70b3d57ed0000001"),
        crate::openapi::AggregateParams,
        crate::openapi::WindowParams,
    ),
    responses(
        (status = 200, description = "OK", body = Aggregates),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Unauthorized,
    ),
)]
pub async fn aggregates(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    Path(raw): Path<String>,
    Query(q): Q,
) -> Result<Json<Aggregates>, ApiError> {
    let mut p = Params::new(q);
    let query = crate::aggregates::parse_aggregate_query(
        &mut p,
        st.clock.now(),
        st.settings.http.max_window_days,
    )?;
    p.finish()?;
    let d = visible_device(&st, &raw, &auth).await?;
    let buckets = st
        .store
        .aggregates(
            d.dev_eui,
            query.quantity,
            query.from,
            query.to,
            query.width,
            &st.settings.city.timezone,
        )
        .await?;
    Ok(Json(Aggregates {
        dev_eui: d.dev_eui.to_string(),
        quantity: query.quantity.name(),
        unit: query.quantity.unit(),
        bucket: query.width.as_str(),
        timezone: st.settings.city.timezone.clone(),
        from: utc(query.from),
        to: utc(query.to),
        items: buckets
            .iter()
            .map(|b| AggregateBucket::of(b, &query.aggs))
            .collect(),
    }))
}

/// `GET /v1/latest?quantity=&bbox=|lat=&lon=&radius=|lat=&lon=&nearest=`: GeoJSON
/// FeatureCollection, one feature per located public device with its latest value per quantity.
#[utoipa::path(
    get,
    path = "/v1/latest",
    tag = "devices",
    security((), ("api_key" = [])),
    params(crate::openapi::QuantityParam, crate::openapi::GeoParams),
    responses(
        (status = 200, description = "GeoJSON", body = LatestCollection, content_type = "application/geo+json"),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
    ),
)]
pub async fn latest(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let mut p = Params::new(q);
    let quantity = p.quantity()?;
    let geo = crate::geo::parse_geo_query(&mut p)?;
    p.finish()?;
    latest_for(&st, quantity, &geo, Listing::of(&auth)).await
}

/// `POST /v1/latest/search?quantity=` with a GeoJSON Polygon/MultiPolygon body.
#[utoipa::path(
    post,
    path = "/v1/latest/search",
    tag = "devices",
    security((), ("api_key" = [])),
    request_body(content = crate::openapi::PolygonBody, description = "GeoJSON Polygon or MultiPolygon", content_type = "application/json"),
    params(crate::openapi::QuantityParam),
    responses(
        (status = 200, description = "GeoJSON", body = LatestCollection, content_type = "application/geo+json"),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
        crate::openapi::Unauthorized,
    ),
)]
pub async fn latest_search(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    Query(q): Q,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut p = Params::new(q);
    let quantity = p.quantity()?;
    p.finish()?;
    let geo = crate::geo::polygon_body(&body)?;
    latest_for(&st, quantity, &geo, Listing::of(&auth)).await
}

async fn latest_for(
    st: &AppState,
    quantity: Option<Quantity>,
    geo: &GeoQuery,
    listing: Listing,
) -> Result<Response, ApiError> {
    let public_only = listing.public_only();
    let (rows, order): (Vec<LatestValue>, Option<Vec<Hit<DevEui>>>) = match select(st, geo, listing)
    {
        None => (st.store.latest(quantity, None, public_only).await?, None),
        Some(hits) => {
            let ids: Vec<DevEui> = hits.iter().map(|h| h.id).collect();
            let rows = st.store.latest_for(&ids, quantity, public_only).await?;
            (rows, Some(hits))
        }
    };
    let mut by_device: BTreeMap<DevEui, Vec<&LatestValue>> = BTreeMap::new();
    for r in &rows {
        by_device.entry(r.dev_eui).or_default().push(r);
    }
    let one = quantity.is_some();
    let features: Vec<LatestFeature<'_>> = match order {
        None => by_device
            .values()
            .map(|v| latest_feature(v, None, one))
            .collect(),
        Some(hits) => hits
            .iter()
            .filter_map(|h| {
                by_device
                    .get(&h.id)
                    .map(|v| latest_feature(v, h.distance_m, one))
            })
            .collect(),
    };
    // Typed structs straight to text: a city-wide map has ten thousand features, and building
    // a `serde_json::Value` tree of them first took most of the request's time.
    let body = serde_json::to_string(&LatestCollection {
        kind: "FeatureCollection",
        features,
    })
    .map_err(|e| ApiError::internal("serialising latest values", e))?;
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], body).into_response())
}

/// One device's GeoJSON feature of `/v1/latest` (`one`: a single quantity was asked for).
fn latest_feature<'a>(
    vals: &[&'a LatestValue],
    distance: Option<f64>,
    one: bool,
) -> LatestFeature<'a> {
    let first = vals[0];
    LatestFeature {
        kind: "Feature",
        id: first.dev_eui.to_string(),
        geometry: PointGeometry {
            kind: "Point",
            coordinates: [first.lon, first.lat],
        },
        properties: LatestProperties {
            dev_eui: first.dev_eui.to_string(),
            name: first.name.as_deref(),
            kind: first.kind.as_str(),
            readings: vals
                .iter()
                .map(|v| Reading {
                    quantity: v.quantity.name(),
                    value: v.value,
                    unit: v.quantity.unit(),
                    time: utc(v.time),
                })
                .collect(),
            quantity: one.then(|| first.quantity.name()),
            value: one.then_some(first.value),
            unit: one.then(|| first.quantity.unit()),
            time: one.then(|| utc(first.time)),
            distance_m: distance.map(round_m),
        },
    }
}

/// `/v1/latest`: a GeoJSON FeatureCollection, one Point feature per located device the caller
/// may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestCollection<'a> {
    /// `FeatureCollection`.
    #[serde(rename = "type")]
    #[schema(pattern = "^FeatureCollection$", example = "FeatureCollection")]
    kind: &'static str,
    features: Vec<LatestFeature<'a>>,
}

/// A device's latest values as a GeoJSON Point feature; `id` is the DevEUI.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestFeature<'a> {
    /// `Feature`.
    #[serde(rename = "type")]
    #[schema(pattern = "^Feature$", example = "Feature")]
    kind: &'static str,
    id: String,
    geometry: PointGeometry,
    properties: LatestProperties<'a>,
}

/// A GeoJSON Point.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointGeometry {
    /// `Point`.
    #[serde(rename = "type")]
    #[schema(pattern = "^Point$", example = "Point")]
    kind: &'static str,
    /// `[lon, lat]` in WGS84 degrees.
    #[schema(value_type = Vec<f64>, min_items = 2, max_items = 2)]
    coordinates: [f64; 2],
}

/// The properties of a `/v1/latest` feature. With `quantity=` the chosen quantity's value is
/// repeated at the top (`quantity`, `value`, `unit`, `time`); `distance_m` for radius and
/// nearest queries.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestProperties<'a> {
    dev_eui: String,
    #[schema(required = true)]
    name: Option<&'a str>,
    kind: &'static str,
    /// The latest value per quantity.
    readings: Vec<Reading>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_m: Option<f64>,
}
