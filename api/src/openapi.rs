//! The OpenAPI 3.1 document, served at `/openapi.json` with Swagger UI at `/docs`.
//!
//! It is generated from the `#[utoipa::path]` annotation on every handler, and the router is
//! built from those same annotations (`utoipa_axum::routes!` in each route module), so a route
//! cannot exist without being documented. The types below describe the shared parameters and
//! the response bodies; request bodies of the admin API are the very types the handlers
//! deserialize (`crate::admin`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

pub use crate::error::Problem;

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
    components(schemas(
        Problem,
        NulFreeJson,
        crate::live::ReadingEvent,
        crate::live::LaggedEvent
    )),
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

/// The responses any operation can give, whatever its handler does, added to every operation
/// of the finished document (after the routes are merged, see [`crate::openapi_document`]) as
/// references to `components.responses`:
///
/// - 408 when the answer takes longer than `http.request_timeout_secs` (the `deadline`
///   middleware); not for the event stream, which answers at once and then streams;
/// - 429 from the rate limit (`crate::ratelimit`), which sees every request;
/// - 503 when the database is unavailable: every operation but those in [`NO_DATABASE`] reads
///   it (an optional API key is looked up there too).
///
/// An operation that documents its own 408, 429 or 503 (e.g. the exports' busy slots) keeps
/// it.
#[derive(Debug)]
pub struct SharedResponses;

/// The document of the merged routes, with [`SharedResponses`] and [`DomainValues`] added.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    SharedResponses.modify(&mut doc);
    DomainValues.modify(&mut doc);
    doc
}

/// Rules written once for every operation, so that the document cannot fall behind the code:
///
/// - an empty query parameter counts as absent (`crate::params::Params`), so every optional
///   query parameter also admits the empty string;
/// - `quantity` takes the quantity names (`enum`, or a pattern of comma lists for the exports'
///   repeated parameter), `bbox` [`BBOX_PATTERN`], and the readings' keyset `cursor` a pattern
///   with the quantity ids;
/// - the enumerations of the admin bodies that are plain strings in the body (site types and
///   purposes, codecs) come from the domain lists; device kind and visibility are the domain
///   enums' own schemas (`stadtpuls_gateways`, feature `utoipa`).
#[derive(Debug)]
pub struct DomainValues;

impl Modify for DomainValues {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use stadtpuls_gateways::Quantity;
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{
            AnyOfBuilder, ArrayItems, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType,
            Type,
        };
        use utoipa::openapi::{RefOr, Required};
        if let Some(components) = openapi.components.as_mut() {
            let codecs: Vec<&str> = stadtpuls_gateways::codecs::Codec::ALL
                .iter()
                .map(|c| c.name())
                .collect();
            for (schema, property, values) in [
                ("SiteBody", "type", stadtpuls_store::PARKING_SITE_TYPES),
                ("SiteBody", "purpose", stadtpuls_store::PARKING_PURPOSES),
                ("DeviceBody", "codec", &codecs[..]),
            ] {
                let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema)
                else {
                    continue;
                };
                if let Some(RefOr::T(Schema::Object(p))) = object.properties.get_mut(property) {
                    let mut allowed: Vec<serde_json::Value> =
                        values.iter().map(|v| (*v).into()).collect();
                    // An optional field may also be null.
                    if !object.required.iter().any(|r| r == property) {
                        allowed.push(serde_json::Value::Null);
                    }
                    p.enum_values = Some(allowed);
                }
            }
        }
        let names: Vec<&str> = Quantity::ALL.iter().map(|q| q.name()).collect();
        let ids: Vec<String> = Quantity::ALL.iter().map(|q| q.id().to_string()).collect();
        let reading_cursor = format!(r"^(-?[0-9]{{1,16}}\.({}))?$", ids.join("|"));
        let quantity_list = format!(r"^(({0})(,({0}))*)?$", names.join("|"));
        let string = |pattern: &str| -> Schema {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .build()
                .into()
        };
        let empty = || -> Schema {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0))
                .build()
                .into()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    let RefOr::T(param) = param else { continue };
                    if param.parameter_in != ParameterIn::Query {
                        continue;
                    }
                    let optional = param.required != Required::True;
                    let Some(RefOr::T(Schema::Object(schema))) = &mut param.schema else {
                        // Arrays: `quantity` of the exports, each value a comma list.
                        if let Some(RefOr::T(Schema::Array(array))) = &mut param.schema {
                            if param.name == "quantity" {
                                array.items = ArrayItems::RefOrSchema(Box::new(
                                    string(&quantity_list).into(),
                                ));
                            }
                        }
                        continue;
                    };
                    let is_string = schema.schema_type == Type::String.into()
                        || schema.schema_type == SchemaType::from_iter([Type::String, Type::Null]);
                    if !is_string {
                        // Optional numbers: also empty (= absent, as for every parameter).
                        if optional {
                            let value = std::mem::take(schema);
                            param.schema = Some(RefOr::T(Schema::AnyOf(
                                AnyOfBuilder::new().item(value).item(empty()).build(),
                            )));
                        }
                        continue;
                    }
                    if optional {
                        if let Some(values) = &mut schema.enum_values {
                            if !values.iter().any(|v| v == "") {
                                values.push("".into());
                            }
                        }
                    }
                    match param.name.as_str() {
                        "quantity" => {
                            let mut allowed = names.clone();
                            if optional {
                                allowed.push("");
                            }
                            schema.enum_values =
                                Some(allowed.into_iter().map(Into::into).collect());
                        }
                        "bbox" => schema.pattern = Some(BBOX_PATTERN.to_string()),
                        "cursor"
                            if param
                                .description
                                .as_deref()
                                .is_some_and(|d| d.contains("<unix micros>")) =>
                        {
                            schema.pattern = Some(reading_cursor.clone());
                        }
                        _ => {}
                    }
                    // Optional times: RFC 3339, or empty (= absent, as for every parameter).
                    if optional
                        && matches!(
                            schema.format,
                            Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))
                        )
                    {
                        let time = std::mem::take(schema);
                        param.schema = Some(RefOr::T(Schema::AnyOf(
                            AnyOfBuilder::new().item(time).item(empty()).build(),
                        )));
                    }
                }
            }
        }
    }
}

/// `bbox=minLon,minLat,maxLon,maxLat`: four decimal numbers in WGS84 degrees (each may have
/// a sign and surrounding white space, as `str::parse` after `trim` takes them), or empty
/// (= absent). That the minimum does not exceed the maximum is beyond a pattern. Every query
/// parameter named `bbox` gets it ([`DomainValues`]).
pub const BBOX_PATTERN: &str = concat!(
    r"^(",
    r"\s*[+-]?(180(\.0*)?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]*)?)\s*,",
    r"\s*[+-]?(90(\.0*)?|[1-8]?[0-9](\.[0-9]*)?)\s*,",
    r"\s*[+-]?(180(\.0*)?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]*)?)\s*,",
    r"\s*[+-]?(90(\.0*)?|[1-8]?[0-9](\.[0-9]*)?)\s*",
    r")?$"
);

/// Operations that never touch the database, so cannot answer 503.
pub const NO_DATABASE: &[&str] = &["/metrics", "/v1/quantities", "/v1/stream"];

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut shared = Vec::new();
        for (name, responses) in [
            ("RequestTimeout", RequestTimeout::responses()),
            ("TooManyRequests", TooManyRequests::responses()),
            ("Unavailable", Unavailable::responses()),
        ] {
            for (status, response) in responses {
                components.responses.insert(name.to_string(), response);
                shared.push((status, name));
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in operations.into_iter().flatten() {
                for (status, name) in &shared {
                    let exempt = match status.as_str() {
                        "503" => NO_DATABASE.contains(&path.as_str()),
                        "408" => path == "/v1/stream",
                        _ => false,
                    };
                    if exempt {
                        continue;
                    }
                    op.responses
                        .responses
                        .entry(status.clone())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
                }
            }
        }
    }
}

// ---- parameters ---------------------------------------------------------------------------------

/// Geo selection: one of `bbox`, `lat`+`lon`+`radius` or `lat`+`lon`+`nearest` (or none).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GeoParams {
    /// `minLon,minLat,maxLon,maxLat` in WGS84 degrees (decimal numbers; minimum ≤ maximum).
    #[param(example = "7.40,51.49,7.50,51.53")]
    pub bbox: Option<String>,
    /// Latitude of the centre, -90..90 (with `lon`, and `radius` or `nearest`).
    #[param(minimum = -90, maximum = 90)]
    pub lat: Option<f64>,
    /// Longitude of the centre, -180..180.
    #[param(minimum = -180, maximum = 180)]
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
    /// Items per page (default 1000; at most `http.max_page_size`, default 10 000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Opaque position from a `next` link.
    #[param(pattern = r"^(o[0-9]{1,18})?$")]
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
    #[param(
        example = "avg,min,max,count",
        pattern = r"^(\s*(avg|min|max|count|sum)\s*(,\s*(avg|min|max|count|sum)\s*)*)?$"
    )]
    pub agg: Option<String>,
}

/// Aggregation of one quantity over a room's devices (no `sum`: a sum over several devices'
/// counters means nothing).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomAggregateParams {
    /// Quantity name (see `/v1/quantities`), e.g. `temperature`.
    #[param(example = "temperature")]
    pub quantity: String,
    /// Comma list of `avg`, `min`, `max` and `count`; default all four.
    #[param(
        example = "avg,min,max,count",
        pattern = r"^(\s*(avg|min|max|count)\s*(,\s*(avg|min|max|count)\s*)*)?$"
    )]
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
    /// Items per page (default 100; at most `http.max_page_size`, default 10 000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Opaque keyset cursor from a `next` link (`<unix micros>.<quantity id>`).
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

/// 408: the answer took longer than `http.request_timeout_secs`.
#[derive(Debug, IntoResponses)]
#[response(
    status = 408,
    description = "No answer within `http.request_timeout_secs` (default 30 s); try a smaller request",
    content_type = "application/problem+json"
)]
pub struct RequestTimeout(pub Problem);

/// 429: the per-client rate limit was exceeded.
#[derive(Debug, IntoResponses)]
#[response(
    status = 429,
    description = "Rate limit exceeded; retry after `Retry-After` seconds",
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds until the next request is accepted"))
)]
pub struct TooManyRequests(pub Problem);

/// 503: the database is unavailable (or did not answer in time).
#[derive(Debug, IntoResponses)]
#[response(
    status = 503,
    description = "The database is unavailable; retry later",
    content_type = "application/problem+json"
)]
pub struct Unavailable(pub Problem);

// ---- bodies -------------------------------------------------------------------------------------

/// The body of the `…/search` routes: a GeoJSON (RFC 7946) Polygon or MultiPolygon, or a
/// Feature with one of them as its geometry, in WGS84 `[lon, lat]` positions; what lies inside
/// is selected. Rings are closed (the last position equals the first) with at least four
/// positions; at most 100 000 positions in all.
#[derive(Debug)]
pub struct PolygonBody;

impl utoipa::PartialSchema for PolygonBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        polygon_schema(false)
    }
}

impl ToSchema for PolygonBody {}

/// A parking site's outline in an admin body: a [`PolygonBody`] whose text (member names and
/// strings, also in foreign members) holds no NUL character, since it is stored.
#[derive(Debug)]
pub struct SiteGeometry;

impl utoipa::PartialSchema for SiteGeometry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        polygon_schema(true)
    }
}

impl ToSchema for SiteGeometry {}

/// The pattern of text without NUL (U+0000), which PostgreSQL text cannot hold.
pub const NO_NUL: &str = r"^[^\u0000]*$";

/// Any JSON value whose strings and member names hold no NUL character (recursive).
#[derive(Debug)]
pub struct NulFreeJson;

impl utoipa::PartialSchema for NulFreeJson {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AnyOfBuilder, ArrayBuilder, ArrayItems, ObjectBuilder, Schema, Type,
        };
        use utoipa::openapi::{Ref, RefOr};
        let this = || RefOr::Ref(Ref::from_schema_name("NulFreeJson"));
        let text = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NO_NUL))
        };
        RefOr::T(Schema::AnyOf(
            AnyOfBuilder::new()
                .item(text())
                .item(ObjectBuilder::new().schema_type(Type::Number))
                .item(ObjectBuilder::new().schema_type(Type::Boolean))
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .item(ArrayBuilder::new().items(ArrayItems::RefOrSchema(Box::new(this()))))
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .property_names(Some(text()))
                        .additional_properties(Some(this())),
                )
                .description(Some("Any JSON without NUL characters"))
                .build(),
        ))
    }
}

impl ToSchema for NulFreeJson {}

/// The GeoJSON Polygon/MultiPolygon/Feature schema; `nul_free`: no NUL in any text, foreign
/// members included.
fn polygon_schema(nul_free: bool) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{
        ArrayBuilder, ArrayItems, ObjectBuilder, OneOfBuilder, Schema, Type,
    };
    use utoipa::openapi::{Ref, RefOr};
    let members = |o: ObjectBuilder| -> ObjectBuilder {
        if nul_free {
            o.property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(NO_NUL)),
            ))
            .additional_properties(Some(RefOr::Ref(Ref::from_schema_name("NulFreeJson"))))
        } else {
            o
        }
    };
    let number = |limit: Option<f64>| {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(limit.map(|l| -l))
            .maximum(limit)
            .build()
    };
    let position = ArrayBuilder::new()
        .prefix_items([number(Some(180.0)), number(Some(90.0)), number(None)])
        .items(ArrayItems::False)
        .min_items(Some(2))
        .max_items(Some(3))
        .description(Some("[lon, lat] or [lon, lat, altitude]"))
        .build();
    let array_of = |item: Schema, min: usize| -> Schema {
        ArrayBuilder::new()
            .items(ArrayItems::RefOrSchema(Box::new(item.into())))
            .min_items(Some(min))
            .build()
            .into()
    };
    let ring = array_of(position.into(), 4);
    let polygon = array_of(ring, 1);
    let multi = array_of(polygon.clone(), 1);
    let geometry = |kind: &str, coordinates: Schema| -> Schema {
        members(ObjectBuilder::new())
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([kind])),
            )
            .property("coordinates", coordinates)
            .required("type")
            .required("coordinates")
            .build()
            .into()
    };
    let geometries = || {
        OneOfBuilder::new()
            .item(geometry("Polygon", polygon.clone()))
            .item(geometry("MultiPolygon", multi.clone()))
    };
    let feature = members(ObjectBuilder::new())
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["Feature"])),
        )
        .property("geometry", Schema::OneOf(geometries().build()))
        .required("type")
        .required("geometry");
    utoipa::openapi::RefOr::T(
        geometries()
            .item(feature)
            .description(Some(
                "GeoJSON Polygon, MultiPolygon, or a Feature with one of them",
            ))
            .build()
            .into(),
    )
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
    /// Only this dataset's runs: a dataset name, `[a-z0-9_]`, at most 64 (empty: every
    /// dataset).
    #[param(example = "parking_occupancy", pattern = r"^[a-z0-9_]{0,64}$")]
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
    #[param(
        example = "avg,max,count",
        pattern = r"^(\s*(avg|min|max|count)\s*(,\s*(avg|min|max|count)\s*)*)?$"
    )]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The finished document reads back as an OpenAPI document (clients parse it).
    #[test]
    fn the_document_parses() {
        let doc = serde_json::to_value(crate::openapi_document()).unwrap();
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            let r: Result<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>, _> =
                serde_json::from_value(schema.clone());
            assert!(r.is_ok(), "{name}: {:?}", r.err());
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let r: Result<utoipa::openapi::path::Parameter, _> =
                        serde_json::from_value(p.clone());
                    assert!(r.is_ok(), "{method} {path} {p}: {:?}", r.err());
                }
            }
        }
        let parsed: Result<utoipa::openapi::OpenApi, _> = serde_json::from_value(doc);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
    }
}
