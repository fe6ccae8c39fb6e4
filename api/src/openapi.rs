//! The OpenAPI 3.1 document, served at `/openapi.json` with Swagger UI at `/docs`.
//!
//! It is generated from the `#[utoipa::path]` annotation on every handler, and the router is
//! built from those same annotations (`utoipa_axum::routes!` in each route module), so a route
//! cannot exist without being documented. The types below describe the shared parameters and
//! the response bodies; request bodies of the admin API are the very types the handlers
//! deserialize (`crate::admin`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stadtpuls API",
        description = "Smart-city IoT data: parking occupancy (ParkAPI v3 shapes), public sensors \
                       on a map, building climate for facility managers (API key), time \
                       aggregates and live readings. Times are RFC 3339 in UTC; distances and \
                       radii are metres (geodesic, WGS84). Errors are RFC 9457 problem+json; a \
                       400 names the offending parameter in `parameter`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerKey),
    components(schemas(Problem)),
    tags(
        (name = "parking", description = "Public parking sites and spots (ParkAPI v3 shapes)"),
        (name = "devices", description = "Public sensors, their readings and aggregates"),
        (name = "buildings", description = "Building climate (API key scoped to a building, or admin)"),
        (name = "admin", description = "Registry administration and fleet health (admin key)"),
        (name = "opendata", description = "Open data: DCAT-AP.de catalogue, datasets, export runs and files (public)"),
        (name = "operations", description = "Health, metrics and reference data"),
    ),
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The `api_key` security scheme: `Authorization: Bearer sp_…`.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            crate::routes::SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from `stadtpuls keys create --admin | --building ID`. \
                         An operation's role list names the key it needs: `admin` an admin \
                         key, `building` a key for the building in its path (or an admin \
                         key); an empty list any valid key.",
                    ))
                    .build(),
            ),
        );
    }
}

// ---- parameters ---------------------------------------------------------------------------------

/// Geo selection: one of `bbox`, `lat`+`lon`+`radius` or `lat`+`lon`+`nearest` (or none).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GeoParams {
    /// `minLon,minLat,maxLon,maxLat` in WGS84 degrees.
    #[param(example = "7.40,51.49,7.50,51.53")]
    pub bbox: Option<String>,
    /// Latitude of the centre, -90..90.
    #[param(minimum = -90, maximum = 90, example = 51.5178)]
    pub lat: Option<f64>,
    /// Longitude of the centre, -180..180.
    #[param(minimum = -180, maximum = 180, example = 7.4593)]
    pub lon: Option<f64>,
    /// Radius in metres (geodesic), with `lat`/`lon`; at most 100 000.
    #[param(exclusive_minimum = 0, maximum = 100000)]
    pub radius: Option<f64>,
    /// The N nearest, ordered by distance, with `lat`/`lon`; 1..1000.
    #[param(minimum = 1, maximum = 1000)]
    pub nearest: Option<u32>,
}

/// Paging of a list: follow the response's `next` link for the following page.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (default 1000; at most `http.max_page_size`).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Opaque position from a `next` link.
    pub cursor: Option<String>,
}

/// Bucket widths of aggregations.
#[derive(Debug, ToSchema)]
pub enum Bucket {
    #[schema(rename = "15m")]
    Minutes15,
    #[schema(rename = "1h")]
    Hour,
    #[schema(rename = "1d")]
    Day,
}

/// A bucketed time window: every bucket of `[from, to)` is returned, empty ones included.
/// Day buckets follow the city's time zone (default Europe/Berlin).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// Bucket width.
    #[param(inline)]
    pub bucket: Bucket,
    /// Start (RFC 3339); default `to` minus one day. At most `http.max_window_days` (default
    /// 367) days and 10 000 buckets.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End, exclusive (RFC 3339); default now.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

/// Aggregation of one quantity.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AggregateParams {
    /// Quantity name (see `/v1/quantities`), e.g. `temperature`.
    #[param(example = "temperature")]
    pub quantity: String,
    /// Comma list of `avg`, `min`, `max`, `count`, and `sum` for the cumulative counters
    /// (`people_in`, `people_out`); default `avg,min,max,count`.
    #[param(example = "avg,min,max,count")]
    pub agg: Option<String>,
}

/// An optional quantity filter.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuantityParam {
    /// Quantity name (see `/v1/quantities`).
    #[param(example = "occupied")]
    pub quantity: Option<String>,
}

/// A time window of raw readings, newest first.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadingsParams {
    /// Only this quantity.
    pub quantity: Option<String>,
    /// Start (RFC 3339); default `to` minus one day. At most `http.max_window_days` (default
    /// 367) days before `to`.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End, exclusive (RFC 3339); default now.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Items per page (default 100).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Opaque keyset cursor from a `next` link.
    pub cursor: Option<String>,
}

/// Fleet health views.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DeviceStatusFilter {
    Silent,
    LowBattery,
}

/// `status=` on `/v1/devices`: an operator view that needs an admin key.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DevicesParams {
    /// Devices needing attention: not heard within their kind's window, or low battery.
    #[param(inline)]
    pub status: Option<DeviceStatusFilter>,
}

/// Required `status=` of `/v1/admin/devices`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusParam {
    /// Devices not heard within their kind's window, or with a low battery.
    #[param(inline)]
    pub status: DeviceStatusFilter,
}

/// Spots of one site only.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpotParams {
    /// A parking site uid; an unknown one selects nothing.
    pub site_uid: Option<String>,
}

// ---- error responses ----------------------------------------------------------------------------

/// 400: a parameter or body field is malformed or out of range; `parameter` names it.
#[derive(Debug, IntoResponses)]
#[response(
    status = 400,
    description = "A parameter or body field is malformed or out of range; `parameter` names it",
    content_type = "application/problem+json"
)]
pub struct BadRequest(pub Problem);

/// 401: no, a malformed, an unknown or a revoked API key.
#[derive(Debug, IntoResponses)]
#[response(
    status = 401,
    description = "No API key, or a malformed, unknown or revoked one",
    content_type = "application/problem+json"
)]
pub struct Unauthorized(pub Problem);

/// 403: the key does not grant access.
#[derive(Debug, IntoResponses)]
#[response(
    status = 403,
    description = "The API key does not grant access to this resource",
    content_type = "application/problem+json"
)]
pub struct Forbidden(pub Problem);

/// 404: no such resource (or not visible to the caller).
#[derive(Debug, IntoResponses)]
#[response(
    status = 404,
    description = "No such resource, or not visible to the caller",
    content_type = "application/problem+json"
)]
pub struct NotFound(pub Problem);

/// 413: the request body is longer than `http.max_body_bytes`.
#[derive(Debug, IntoResponses)]
#[response(
    status = 413,
    description = "The body is longer than `http.max_body_bytes` (default 1 MiB)",
    content_type = "application/problem+json"
)]
pub struct TooLarge(pub Problem);

/// 415: the request body is not JSON.
#[derive(Debug, IntoResponses)]
#[response(
    status = 415,
    description = "The body's Content-Type is not JSON",
    content_type = "application/problem+json"
)]
pub struct NotJson(pub Problem);

/// 429: the per-client rate limit was exceeded.
#[derive(Debug, IntoResponses)]
#[response(
    status = 429,
    description = "Rate limit exceeded; retry after `Retry-After` seconds",
    content_type = "application/problem+json"
)]
pub struct TooManyRequests(pub Problem);

/// 503: the database is unavailable.
#[derive(Debug, IntoResponses)]
#[response(
    status = 503,
    description = "The database is unavailable; retry later",
    content_type = "application/problem+json"
)]
pub struct Unavailable(pub Problem);

// ---- bodies -------------------------------------------------------------------------------------

/// RFC 9457 problem details; every error has this shape.
#[derive(Debug, ToSchema)]
pub struct Problem {
    #[schema(example = "about:blank")]
    pub r#type: String,
    #[schema(example = "Bad Request")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    #[schema(example = "radius: must be a number of metres in (0, 100000]")]
    pub detail: String,
    /// The query parameter or body field to blame (400 only).
    pub parameter: Option<String>,
}

/// A GeoJSON Polygon or MultiPolygon (WGS84, `[lon, lat]` positions) selecting what lies inside.
#[derive(Debug, ToSchema)]
pub struct PolygonBody {
    #[schema(example = "Polygon")]
    pub r#type: String,
    /// Rings of `[lon, lat]` positions (Polygon) or a list of such polygons (MultiPolygon).
    #[schema(value_type = Vec<Object>)]
    pub coordinates: serde_json::Value,
}

/// A list page.
#[derive(Debug, ToSchema)]
pub struct List<T: ToSchema> {
    pub items: Vec<T>,
    /// All items matching, over all pages.
    pub total_count: u64,
    /// The next page, absent on the last one.
    pub next: Option<String>,
}

/// A public device.
#[derive(Debug, ToSchema, serde::Serialize)]
pub struct Device {
    #[schema(example = "70b3d57ed0000001")]
    pub dev_eui: String,
    pub name: Option<String>,
    #[schema(example = "parking_bay")]
    pub kind: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub network_server: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub battery_percent: Option<f64>,
    pub battery_voltage: Option<f64>,
    /// Geodesic distance from `lat`/`lon` (radius and nearest queries).
    pub distance_m: Option<f64>,
}

/// A device with its latest value per quantity.
#[derive(Debug, ToSchema, serde::Serialize)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    pub latest: Vec<Reading>,
}

/// One measured value.
#[derive(Debug, ToSchema, serde::Serialize)]
pub struct Reading {
    #[schema(example = "temperature")]
    pub quantity: String,
    pub value: f64,
    #[schema(example = "°C")]
    pub unit: String,
    pub time: String,
}

/// A page of raw readings.
#[derive(Debug, ToSchema)]
pub struct ReadingPage {
    pub dev_eui: String,
    pub from: String,
    pub to: String,
    pub items: Vec<Reading>,
    pub next: Option<String>,
}

/// One aggregation bucket `[start, end)`; values are null when it holds no reading.
#[derive(Debug, ToSchema)]
pub struct AggregateBucket {
    pub start: String,
    pub end: String,
    pub count: i64,
    pub avg: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Counters only: the increments within the bucket (resets handled).
    pub sum: Option<f64>,
}

/// Aggregates of one device and quantity.
#[derive(Debug, ToSchema)]
pub struct Aggregates {
    pub dev_eui: String,
    pub quantity: String,
    pub unit: String,
    pub bucket: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    pub items: Vec<AggregateBucket>,
}

/// A quantity Stadtpuls stores.
#[derive(Debug, ToSchema)]
pub struct QuantityInfo {
    pub name: String,
    pub unit: String,
    pub description: String,
}

/// All quantities.
#[derive(Debug, ToSchema)]
pub struct QuantityList {
    pub items: Vec<QuantityInfo>,
    pub total_count: u64,
}

/// A GeoJSON FeatureCollection: one Point feature per located public device; `properties`
/// has `dev_eui`, `name`, `kind`, `readings` (latest per quantity) and, with `quantity=`,
/// `quantity`, `value`, `unit`, `time`; `distance_m` for radius/nearest queries.
#[derive(Debug, ToSchema)]
pub struct FeatureCollection {
    #[schema(example = "FeatureCollection")]
    pub r#type: String,
    #[schema(value_type = Vec<Object>)]
    pub features: serde_json::Value,
}

/// A parking site (ParkAPI v3). Without realtime data (`has_realtime_data: false`) the
/// `realtime_*` keys are absent.
#[derive(Debug, ToSchema)]
pub struct ParkingSite {
    pub uid: String,
    pub name: String,
    #[schema(example = "CAR")]
    pub purpose: String,
    #[schema(example = "CAR_PARK")]
    pub r#type: String,
    pub lat: f64,
    pub lon: f64,
    pub capacity: i64,
    pub address: Option<String>,
    pub operator_name: Option<String>,
    /// OSM `opening_hours` syntax.
    pub opening_hours: Option<String>,
    pub static_data_updated_at: String,
    pub has_realtime_data: bool,
    pub realtime_free_capacity: Option<i64>,
    pub realtime_capacity: Option<i64>,
    /// `OPEN`, `CLOSED` or `UNKNOWN`.
    pub realtime_opening_status: Option<String>,
    /// The newest measurement time used.
    pub realtime_data_updated_at: Option<String>,
    pub distance_m: Option<f64>,
}

/// A single parking spot (a bay sensor).
#[derive(Debug, ToSchema)]
pub struct ParkingSpot {
    /// The bay's DevEUI.
    pub uid: String,
    pub name: Option<String>,
    pub parking_site_uid: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// `AVAILABLE`, `TAKEN` or `UNKNOWN` (no fresh state).
    pub status: String,
    pub realtime_data_updated_at: Option<String>,
    pub distance_m: Option<f64>,
}

/// One bucket of a site's history: time-weighted mean numbers of free and occupied spaces.
#[derive(Debug, ToSchema)]
pub struct HistoryBucket {
    pub start: String,
    pub end: String,
    pub free: Option<f64>,
    pub occupied: Option<f64>,
    /// Share of the bucket (× devices for bays) with a known state, 0..1.
    pub coverage: f64,
}

/// A parking site's history.
#[derive(Debug, ToSchema)]
pub struct ParkingHistory {
    pub uid: String,
    pub capacity: i64,
    /// `counter`, `bays` or `none`.
    pub source: String,
    pub bucket: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    pub items: Vec<HistoryBucket>,
}

/// A building.
#[derive(Debug, ToSchema, serde::Serialize)]
pub struct Building {
    pub id: String,
    pub name: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub address: Option<String>,
}

/// The buildings a key may see.
#[derive(Debug, ToSchema)]
pub struct BuildingList {
    pub items: Vec<Building>,
    pub total_count: u64,
}

/// A newest climate value of a room.
#[derive(Debug, ToSchema, serde::Serialize)]
pub struct ClimateValue {
    pub value: f64,
    pub unit: String,
    pub time: String,
}

/// Room flags.
#[derive(Debug, ToSchema, serde::Serialize)]
pub struct RoomFlags {
    /// CO₂ above `buildings.co2_alert_ppm` (default 1000 ppm).
    pub co2_high: bool,
    /// No reading within `buildings.stale_after_minutes`.
    pub stale: bool,
    /// No device in the room.
    pub no_sensor: bool,
}

/// A room with its newest climate values.
#[derive(Debug, ToSchema, serde::Serialize)]
pub struct RoomView {
    pub id: String,
    pub name: String,
    pub floor: Option<String>,
    pub usage: Option<String>,
    pub devices: i64,
    pub last_reading: Option<String>,
    pub temperature: Option<ClimateValue>,
    pub humidity: Option<ClimateValue>,
    pub co2: Option<ClimateValue>,
    pub flags: RoomFlags,
}

/// A building with its rooms.
#[derive(Debug, ToSchema, serde::Serialize)]
pub struct BuildingDetail {
    #[serde(flatten)]
    pub building: Building,
    pub as_of: String,
    #[schema(value_type = Object)]
    pub thresholds: serde_json::Value,
    pub rooms: Vec<RoomView>,
}

/// A room's history over all its devices.
#[derive(Debug, ToSchema)]
pub struct RoomHistory {
    pub building_id: String,
    pub room_id: String,
    pub devices: Vec<String>,
    pub quantity: String,
    pub unit: String,
    pub bucket: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    pub items: Vec<AggregateBucket>,
}

/// A device needing attention.
#[derive(Debug, ToSchema)]
pub struct DeviceHealth {
    pub dev_eui: String,
    pub name: Option<String>,
    pub kind: String,
    pub visibility: String,
    pub building_id: Option<String>,
    pub room_id: Option<String>,
    pub last_seen: Option<String>,
    pub battery_percent: Option<f64>,
    pub battery_at: Option<String>,
    /// `status=silent`: the window of this device's kind.
    pub silent_after_minutes: Option<u32>,
}

/// A fleet health listing.
#[derive(Debug, ToSchema)]
pub struct DeviceHealthList {
    pub status: String,
    pub as_of: String,
    pub total_count: u64,
    pub items: Vec<DeviceHealth>,
}

/// A registry record as stored (admin API responses).
#[derive(Debug, ToSchema)]
pub struct StoredRecord {
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
}

/// What a delete did.
#[derive(Debug, ToSchema)]
pub struct DeleteOutcome {
    pub deleted: String,
    pub devices_detached: u64,
}

// ---- open data ----------------------------------------------------------------------------------

/// 406: none of the `Accept`ed media types can be served.
#[derive(Debug, IntoResponses)]
#[response(
    status = 406,
    description = "None of the media types in `Accept` can be served",
    content_type = "application/problem+json"
)]
pub struct NotAcceptable(pub Problem);

/// 416: the byte range starts beyond the end of the file (`Content-Range: bytes */size`).
#[derive(Debug, IntoResponses)]
#[response(
    status = 416,
    description = "The range starts beyond the end of the file; `Content-Range: bytes */size`",
    content_type = "application/problem+json"
)]
pub struct RangeNotSatisfiable(pub Problem);

/// Filters of the export-run list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OpendataRunsParams {
    /// Only this dataset's runs.
    #[param(example = "parking_occupancy")]
    pub dataset: Option<String>,
    /// At most this many runs, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

// ---- exports --------------------------------------------------------------------------------------

/// What `/v1/exports/readings.*` selects. Rows come ordered by DevEUI, quantity (in
/// `/v1/quantities` order) and time; only located devices appear (public ones, and private ones
/// too for an admin key); `lon`/`lat` are the device's current position.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Quantity names (see `/v1/quantities`), repeated (`quantity=co2&quantity=temperature`)
    /// and/or as a comma list; default every quantity.
    #[param(example = json!(["temperature", "co2"]))]
    pub quantity: Option<Vec<String>>,
    /// `minLon,minLat,maxLon,maxLat` in WGS84 degrees (or `lat`+`lon`+`radius`; `nearest` is
    /// not accepted: an export is not ordered by distance).
    #[param(example = "7.40,51.49,7.50,51.53")]
    pub bbox: Option<String>,
    /// Latitude of the centre, with `lon` and `radius`.
    #[param(minimum = -90, maximum = 90)]
    pub lat: Option<f64>,
    /// Longitude of the centre.
    #[param(minimum = -180, maximum = 180)]
    pub lon: Option<f64>,
    /// Radius in metres (geodesic), at most 100 000.
    #[param(exclusive_minimum = 0, maximum = 100000)]
    pub radius: Option<f64>,
    /// Start (RFC 3339); default `to` minus one day. The window is at most `http.max_window_days`
    /// (default 367) days; there is
    /// no row limit.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End, exclusive (RFC 3339); default now.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Aggregate per device, quantity and bucket instead of raw readings: one row per non-empty
    /// bucket, `bucket_start` on the shared grid (15m/1h aligned to UTC, 1d from local midnight
    /// in the city's time zone); each bucket covers its whole span, also where it reaches
    /// outside the window.
    #[param(inline)]
    pub bucket: Option<Bucket>,
    /// With `bucket`: comma list of `avg`, `min`, `max`, `count` (columns always in that
    /// order); default all four.
    #[param(example = "avg,max,count")]
    pub agg: Option<String>,
}

/// 503 of an export: every export slot is busy, or the database is unavailable.
#[derive(Debug, IntoResponses)]
#[response(
    status = 503,
    description = "Every export slot is in use (`opendata.max_concurrent_exports`; retry after `Retry-After` seconds), or the database is unavailable",
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait (when every slot is in use)"))
)]
pub struct ExportUnavailable(pub Problem);

/// A binary file.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct BinaryFile(pub Vec<u8>);
