//! `GET /v1/exports/readings.{csv,ndjson,geojson,parquet}`: on-demand downloads of readings,
//! raw or in time buckets, with the query API's filters and no row limit.
//!
//! Every stage of the pipeline is bounded:
//! the store's query loop (`stadtpuls_store::exports`: short keyset-paged statements) → a
//! channel of a few row chunks → an encoder on a blocking thread (CSV, NDJSON, GeoJSON, or
//! Parquet row groups) writing into a [`BodyWriter`] → a channel of a few [`BLOCK_BYTES`]
//! blocks → the HTTP body ([`Download`]). A slow client slows the encoder and thereby the
//! queries. A client that goes away drops the body: the encoder's next write fails, it drops
//! the row channel, and the query loop ends after its current statement. A client that stops
//! reading for [`CLIENT_IDLE`] is given up on.
//!
//! At most `opendata.max_concurrent_exports` exports run at once (per API process): an export
//! holds its permit while it produces data (until its encoder ends); further requests get 503
//! with `Retry-After`. Errors before the first byte are problem+json; a later one aborts the
//! response (the chunked body never ends properly), so a truncated file is never mistaken for
//! a complete one.
//!
//! Who sees what: without a key (and with a building key) located public devices; with an admin
//! key located private devices too. Rows carry the DevEUI, as the query API does.

use crate::auth::{MaybeAuthenticated, Principal};
use crate::error::ApiError;
use crate::geo::GeoQuery;
use crate::params::{clip, utc, Params};
use crate::AppState;
use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};
use serde_json::{json, Map, Value};
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_store::aggregates::{Agg, BucketWidth};
use stadtpuls_store::exports::{ExportBucket, ExportChunks, ExportQuery, ExportReading};
use std::collections::HashMap;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Bytes the encoder collects before handing a block to the HTTP body.
pub const BLOCK_BYTES: usize = 64 * 1024;
/// Blocks between the encoder and the HTTP body.
const BODY_BLOCKS: usize = 4;
/// How long the encoder waits for a client that does not take the next block.
pub const CLIENT_IDLE: Duration = Duration::from_secs(60);
/// `Retry-After` when every export slot is taken.
pub const RETRY_AFTER_SECS: u32 = 10;
/// zstd level of Parquet downloads. On-demand files favour speed and a small footprint (a
/// level-12 context alone takes tens of MB) over the last percent of size; the published
/// open-data files use `opendata.zstd_level`.
pub const PARQUET_ZSTD_LEVEL: i32 = 3;
/// Rows per Parquet row group of a download: the writer holds one row group in memory.
pub const PARQUET_ROW_GROUP_ROWS: usize = 65_536;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_csv))
        .routes(routes!(export_ndjson))
        .routes(routes!(export_geojson))
        .routes(routes!(export_parquet))
}

/// The export slots of one API process (`opendata.max_concurrent_exports`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ExportPermits(Arc<Semaphore>);

impl ExportPermits {
    pub fn new(max_concurrent: usize) -> Self {
        ExportPermits(Arc::new(Semaphore::new(max_concurrent)))
    }

    fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// A download format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
    GeoJson,
    Parquet,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::GeoJson => "geojson",
            Format::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Ndjson => "application/x-ndjson",
            Format::GeoJson => "application/geo+json",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// A validated export request.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportRequest {
    /// In `/v1/quantities` order, without duplicates.
    pub quantities: Vec<Quantity>,
    /// All, a bbox or a radius (never nearest or a polygon).
    pub geo: GeoQuery,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Bucket width and the aggregates asked for (in column order: avg, min, max, count).
    pub buckets: Option<(BucketWidth, Vec<Agg>)>,
}

/// Aggregates an export can carry, in column order.
pub const EXPORT_AGGS: [Agg; 4] = [Agg::Avg, Agg::Min, Agg::Max, Agg::Count];

/// Parses the raw query string of an export (pure):
/// - `quantity`: repeated and/or comma lists; absent = every quantity;
/// - `bbox` or `lat`+`lon`+`radius` (`nearest` is a 400: an export has no order by distance);
/// - `from`/`to` (RFC 3339; default the day before `now`), `from` before `to`, at most
///   `max_days` (`http.max_window_days`) days apart (else 400 naming `from`);
/// - `bucket=15m|1h|1d` and, only with it, `agg` (comma list of avg, min, max, count;
///   default all four).
///
/// Any other parameter, or one other than `quantity` given twice, is a 400 naming it.
pub fn parse_export(
    query: Option<&str>,
    now: DateTime<Utc>,
    max_days: u32,
) -> Result<ExportRequest, ApiError> {
    let mut quantity_values = Vec::new();
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        crate::extract::check_text(&k, &k)?;
        crate::extract::check_text(&k, &v)?;
        if k == "quantity" {
            quantity_values.push(v.into_owned());
        } else if map.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(ApiError::bad(&k, "given more than once"));
        }
    }
    let quantities = quantities(&quantity_values)?;
    let mut p = Params::new(map);
    let geo = crate::geo::parse_geo_query(&mut p)?;
    if matches!(geo, GeoQuery::Nearest { .. }) {
        return Err(ApiError::bad(
            "nearest",
            "an export selects by bbox or lat+lon+radius, not nearest",
        ));
    }
    let to = p.time("to")?.unwrap_or(now);
    let from = p.time("from")?.unwrap_or(to - TimeDelta::days(1));
    crate::aggregates::check_span(from, to, max_days, "export")?;
    let bucket = p.string("bucket");
    let agg = p.string("agg");
    let buckets = match (bucket, agg) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ApiError::bad(
                "agg",
                "only with bucket=15m|1h|1d (raw exports carry every value)",
            ))
        }
        (Some(b), agg) => {
            let width: BucketWidth = b.parse().map_err(|_| {
                ApiError::bad(
                    "bucket",
                    format!("'{}' is not a bucket width: 15m, 1h or 1d", clip(&b)),
                )
            })?;
            Some((width, aggs(agg.as_deref())?))
        }
    };
    p.finish()?;
    Ok(ExportRequest {
        quantities,
        geo,
        from,
        to,
        buckets,
    })
}

fn quantities(values: &[String]) -> Result<Vec<Quantity>, ApiError> {
    let mut asked = Vec::new();
    // Empty values count as absent, as everywhere else.
    for name in values
        .iter()
        .filter(|v| !v.is_empty())
        .flat_map(|v| v.split(','))
    {
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::bad(
                "quantity",
                "empty entry; expected names like temperature,co2",
            ));
        }
        let q: Quantity = name.parse().map_err(|_| {
            ApiError::bad(
                "quantity",
                format!("unknown quantity '{}' (see /v1/quantities)", clip(name)),
            )
        })?;
        asked.push(q);
    }
    if asked.is_empty() {
        return Ok(Quantity::ALL.to_vec());
    }
    Ok(Quantity::ALL
        .iter()
        .copied()
        .filter(|q| asked.contains(q))
        .collect())
}

fn aggs(raw: Option<&str>) -> Result<Vec<Agg>, ApiError> {
    let Some(raw) = raw else {
        return Ok(EXPORT_AGGS.to_vec());
    };
    let mut asked = Vec::new();
    for name in raw.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(ApiError::bad(
                "agg",
                "empty entry; expected a comma list like avg,min,max,count",
            ));
        }
        match name.parse::<Agg>() {
            Ok(agg) if EXPORT_AGGS.contains(&agg) => asked.push(agg),
            _ => {
                return Err(ApiError::bad(
                    "agg",
                    format!(
                        "'{}' is not an export aggregate: avg, min, max or count",
                        clip(name)
                    ),
                ))
            }
        }
    }
    Ok(EXPORT_AGGS
        .into_iter()
        .filter(|a| asked.contains(a))
        .collect())
}

/// `readings-<from>-<to>.<ext>` with compact UTC times (`20240501T000000Z`).
pub fn file_name(from: DateTime<Utc>, to: DateTime<Utc>, format: Format) -> String {
    let t = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    format!("readings-{}-{}.{}", t(from), t(to), format.extension())
}

// ---- handlers -----------------------------------------------------------------------------------

/// `GET /v1/exports/readings.csv`: the selected readings (or buckets) as CSV, streamed.
#[utoipa::path(
    get,
    path = "/v1/exports/readings.csv",
    tag = "devices",
    security((), ("api_key" = [])),
    params(crate::openapi::ExportParams),
    responses(
        (status = 200, description = "RFC 4180 CSV with a header row and CRLF line ends, streamed. Raw: `observed_at,dev_eui,quantity,unit,value,lon,lat`; bucketed: `bucket_start,dev_eui,quantity,unit` and the asked aggregates. An empty export is just the header.",
         body = String, content_type = "text/csv; charset=utf-8; header=present",
         headers(("Content-Disposition" = String, description = "attachment; filename=\"readings-<from>-<to>.csv\""))),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::TooManyRequests,
        crate::openapi::ExportUnavailable,
    ),
)]
pub async fn export_csv(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    export(st, auth, q, Format::Csv).await
}

/// `GET /v1/exports/readings.ndjson`: the selected readings (or buckets) as NDJSON, streamed.
#[utoipa::path(
    get,
    path = "/v1/exports/readings.ndjson",
    tag = "devices",
    security((), ("api_key" = [])),
    params(crate::openapi::ExportParams),
    responses(
        (status = 200, description = "Newline-delimited JSON, one object per row with the CSV's columns as keys, streamed. An empty export is an empty body.",
         body = String, content_type = "application/x-ndjson",
         headers(("Content-Disposition" = String, description = "attachment; filename=\"readings-<from>-<to>.ndjson\""))),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::TooManyRequests,
        crate::openapi::ExportUnavailable,
    ),
)]
pub async fn export_ndjson(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    export(st, auth, q, Format::Ndjson).await
}

/// `GET /v1/exports/readings.geojson`: the selected readings (or buckets) as a GeoJSON
/// FeatureCollection, streamed.
#[utoipa::path(
    get,
    path = "/v1/exports/readings.geojson",
    tag = "devices",
    security((), ("api_key" = [])),
    params(crate::openapi::ExportParams),
    responses(
        (status = 200, description = "A GeoJSON FeatureCollection streamed feature by feature: one Point feature (the device's position) per row, the row's other columns as properties. An empty export is an empty FeatureCollection.",
         body = crate::openapi::FeatureCollection, content_type = "application/geo+json",
         headers(("Content-Disposition" = String, description = "attachment; filename=\"readings-<from>-<to>.geojson\""))),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::TooManyRequests,
        crate::openapi::ExportUnavailable,
    ),
)]
pub async fn export_geojson(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    export(st, auth, q, Format::GeoJson).await
}

/// `GET /v1/exports/readings.parquet`: the selected readings (or buckets) as Parquet, streamed.
#[utoipa::path(
    get,
    path = "/v1/exports/readings.parquet",
    tag = "devices",
    security((), ("api_key" = [])),
    params(crate::openapi::ExportParams),
    responses(
        (status = 200, description = "Apache Parquet (zstd), row groups written as rows arrive, the footer last. The CSV's columns; times are `Timestamp(MICROS, UTC)`, `count` is INT64, other numbers DOUBLE.",
         body = crate::openapi::BinaryFile, content_type = "application/vnd.apache.parquet",
         headers(("Content-Disposition" = String, description = "attachment; filename=\"readings-<from>-<to>.parquet\""))),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
        crate::openapi::TooManyRequests,
        crate::openapi::ExportUnavailable,
    ),
)]
pub async fn export_parquet(
    State(st): State<AppState>,
    auth: MaybeAuthenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    export(st, auth, q, Format::Parquet).await
}

/// Checks → slot → first chunk → streamed response.
async fn export(
    st: AppState,
    auth: MaybeAuthenticated,
    query: Option<String>,
    format: Format,
) -> Result<Response, ApiError> {
    let req = parse_export(
        query.as_deref(),
        st.clock.now(),
        st.settings.http.max_window_days,
    )?;
    let admin = auth.0.as_ref().is_some_and(Principal::is_admin);
    let devices = match &req.geo {
        GeoQuery::All => None,
        geo => {
            let index = if admin {
                st.devices.all()
            } else {
                st.devices.public()
            };
            Some(index.query(geo).into_iter().map(|h| h.id).collect())
        }
    };
    let permit = st.exports.try_acquire().ok_or_else(|| {
        metrics::counter!("stadtpuls_api_exports_total", "format" => format.extension(), "outcome" => "busy")
            .increment(1);
        ApiError::Busy {
            detail: format!(
                "every export slot is in use ({} at a time); retry in {RETRY_AFTER_SECS} s",
                st.settings.opendata.max_concurrent_exports
            ),
            retry_after_secs: RETRY_AFTER_SECS,
        }
    })?;
    let query = ExportQuery {
        devices,
        public_only: !admin,
        quantities: req.quantities.clone(),
        from: req.from,
        to: req.to,
    };
    let parquet = ParquetOptions {
        zstd_level: PARQUET_ZSTD_LEVEL,
        row_group_rows: PARQUET_ROW_GROUP_ROWS,
    };
    let body = match &req.buckets {
        None => {
            let rows = st.store.export_readings(query);
            start(format, Layout::raw(), rows, parquet, permit).await?
        }
        Some((width, aggs)) => {
            let rows = st
                .store
                .export_buckets(query, *width, &st.settings.city.timezone);
            start(format, Layout::buckets(aggs), rows, parquet, permit).await?
        }
    };
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file_name(req.from, req.to, format)
    );
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Waits for the first chunk (so that a failing query is still a proper error response), then
/// runs the encoder on a blocking thread and returns the body it feeds.
async fn start<R: Row>(
    format: Format,
    layout: Layout,
    mut rows: ExportChunks<R>,
    parquet: ParquetOptions,
    permit: OwnedSemaphorePermit,
) -> Result<Body, ApiError> {
    let first = match rows.recv().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(e)) => return Err(e.into()),
        None => Vec::new(),
    };
    let (tx, rx) = mpsc::channel(BODY_BLOCKS);
    let complete = Arc::new(AtomicBool::new(false));
    let download = Download {
        rx,
        complete: complete.clone(),
        ended: false,
    };
    let writer = BodyWriter {
        // `tx` outlives this clone, so the body sees `complete` before its end.
        tx: tx.clone(),
        buf: Vec::with_capacity(BLOCK_BYTES),
        runtime: tokio::runtime::Handle::current(),
    };
    // Blocking thread: encoding and compression, paced by the client; holds the export slot.
    tokio::task::spawn_blocking(move || {
        let _slot = permit;
        let outcome = match encode(format, &layout, first, &mut rows, writer, parquet) {
            Ok(()) => "complete",
            Err(e) if e.client_gone() => {
                tracing::debug!(error = %e, "export stopped: the client went away");
                "client_gone"
            }
            Err(e) => {
                tracing::error!(error = %e, format = format.extension(), "export failed midway");
                "failed"
            }
        };
        if outcome == "complete" {
            complete.store(true, Ordering::SeqCst);
        }
        drop(tx);
        metrics::counter!("stadtpuls_api_exports_total", "format" => format.extension(), "outcome" => outcome)
            .increment(1);
    });
    Ok(Body::from_stream(download))
}

// ---- the body ------------------------------------------------------------------------------------

/// The HTTP body: the encoder's blocks, then the end only if the encoder said the file is
/// complete; otherwise (an error, a panic) an error, so that the server aborts the response
/// rather than ending it cleanly.
struct Download {
    rx: mpsc::Receiver<Bytes>,
    complete: Arc<AtomicBool>,
    ended: bool,
}

impl futures_util::Stream for Download {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(block)) => Poll::Ready(Some(Ok(block))),
            Poll::Ready(None) => {
                self.ended = true;
                if self.complete.load(Ordering::SeqCst) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(io::Error::other(
                        "the export failed midway; the file is incomplete",
                    ))))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `Write` into the body channel in blocks of [`BLOCK_BYTES`]; used on a blocking thread.
/// Fails with `BrokenPipe` when the client went away, `TimedOut` when it stopped reading.
struct BodyWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    runtime: tokio::runtime::Handle,
}

impl BodyWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(BLOCK_BYTES),
        ));
        match self
            .runtime
            .block_on(self.tx.send_timeout(block, CLIENT_IDLE))
        {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(SendTimeoutError::Timeout(_)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", CLIENT_IDLE.as_secs()),
            )),
        }
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BLOCK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

// ---- rows and columns ----------------------------------------------------------------------------

/// A value column after `time, dev_eui, quantity, unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Value,
    Lon,
    Lat,
    Avg,
    Min,
    Max,
    Count,
}

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Value => "value",
            Col::Lon => "lon",
            Col::Lat => "lat",
            Col::Avg => "avg",
            Col::Min => "min",
            Col::Max => "max",
            Col::Count => "count",
        }
    }

    /// Position columns become the geometry in GeoJSON.
    fn is_position(self) -> bool {
        matches!(self, Col::Lon | Col::Lat)
    }
}

/// One cell of a value column.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    F(f64),
    I(i64),
}

impl Cell {
    fn text(self) -> String {
        match self {
            Cell::F(v) => v.to_string(),
            Cell::I(v) => v.to_string(),
        }
    }

    fn json(self) -> Value {
        match self {
            Cell::F(v) => json!(v),
            Cell::I(v) => json!(v),
        }
    }
}

/// The columns of an export.
#[derive(Clone, Debug, PartialEq)]
struct Layout {
    /// `observed_at` (raw) or `bucket_start`.
    time: &'static str,
    values: Vec<Col>,
}

impl Layout {
    fn raw() -> Self {
        Layout {
            time: "observed_at",
            values: vec![Col::Value, Col::Lon, Col::Lat],
        }
    }

    fn buckets(aggs: &[Agg]) -> Self {
        let values = aggs
            .iter()
            .filter_map(|a| match a {
                Agg::Avg => Some(Col::Avg),
                Agg::Min => Some(Col::Min),
                Agg::Max => Some(Col::Max),
                Agg::Count => Some(Col::Count),
                Agg::Sum => None,
            })
            .collect();
        Layout {
            time: "bucket_start",
            values,
        }
    }

    fn header(&self) -> Vec<&'static str> {
        let mut h = vec![self.time, "dev_eui", "quantity", "unit"];
        h.extend(self.values.iter().map(|c| c.name()));
        h
    }

    fn schema(&self) -> SchemaRef {
        let mut fields = vec![
            Field::new(
                self.time,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("dev_eui", DataType::Utf8, false),
            Field::new("quantity", DataType::Utf8, false),
            Field::new("unit", DataType::Utf8, false),
        ];
        fields.extend(self.values.iter().map(|c| {
            let ty = if *c == Col::Count {
                DataType::Int64
            } else {
                DataType::Float64
            };
            Field::new(c.name(), ty, false)
        }));
        Arc::new(Schema::new(fields))
    }
}

/// What every exported row has.
trait Row: Send + 'static {
    fn time(&self) -> DateTime<Utc>;
    fn dev_eui(&self) -> DevEui;
    fn quantity(&self) -> Quantity;
    /// `(lon, lat)` of the device.
    fn position(&self) -> (f64, f64);
    /// The cell of a column of this row's layout.
    fn cell(&self, col: Col) -> Cell;
}

impl Row for ExportReading {
    fn time(&self) -> DateTime<Utc> {
        self.time
    }
    fn dev_eui(&self) -> DevEui {
        self.dev_eui
    }
    fn quantity(&self) -> Quantity {
        self.quantity
    }
    fn position(&self) -> (f64, f64) {
        (self.lon, self.lat)
    }
    fn cell(&self, col: Col) -> Cell {
        Cell::F(match col {
            Col::Lon => self.lon,
            Col::Lat => self.lat,
            // Only `value` is left in the raw layout.
            _ => self.value,
        })
    }
}

impl Row for ExportBucket {
    fn time(&self) -> DateTime<Utc> {
        self.start
    }
    fn dev_eui(&self) -> DevEui {
        self.dev_eui
    }
    fn quantity(&self) -> Quantity {
        self.quantity
    }
    fn position(&self) -> (f64, f64) {
        (self.lon, self.lat)
    }
    fn cell(&self, col: Col) -> Cell {
        match col {
            Col::Count => Cell::I(self.count),
            Col::Min => Cell::F(self.min),
            Col::Max => Cell::F(self.max),
            Col::Lon => Cell::F(self.lon),
            Col::Lat => Cell::F(self.lat),
            // Only `avg` is left in the bucket layout.
            Col::Avg | Col::Value => Cell::F(self.avg),
        }
    }
}

// ---- encoders ------------------------------------------------------------------------------------

/// Parquet settings of a download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ParquetOptions {
    zstd_level: i32,
    row_group_rows: usize,
}

/// Why an export stopped early.
#[derive(Debug, thiserror::Error)]
enum EncodeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("store: {0}")]
    Store(#[from] stadtpuls_store::StoreError),
}

impl EncodeError {
    /// The client went away or stopped reading: nothing is wrong on our side.
    fn client_gone(&self) -> bool {
        let kind = match self {
            EncodeError::Io(e) => Some(e.kind()),
            EncodeError::Csv(e) => match e.kind() {
                csv::ErrorKind::Io(e) => Some(e.kind()),
                _ => None,
            },
            EncodeError::Json(e) => e.io_error_kind(),
            EncodeError::Parquet(parquet::errors::ParquetError::External(e)) => {
                e.downcast_ref::<io::Error>().map(io::Error::kind)
            }
            _ => None,
        };
        matches!(
            kind,
            Some(io::ErrorKind::BrokenPipe | io::ErrorKind::TimedOut)
        )
    }
}

/// A file being written.
enum Sink {
    Csv(Box<csv::Writer<BodyWriter>>),
    Ndjson(BodyWriter),
    GeoJson { out: BodyWriter, features: u64 },
    Parquet(Box<ArrowWriter<BodyWriter>>),
}

/// Writes the whole file: `first`, then every chunk from `rows`, then the end.
fn encode<R: Row>(
    format: Format,
    layout: &Layout,
    first: Vec<R>,
    rows: &mut ExportChunks<R>,
    out: BodyWriter,
    parquet: ParquetOptions,
) -> Result<(), EncodeError> {
    let mut sink = open(format, layout, out, parquet)?;
    write(&mut sink, layout, &first)?;
    drop(first);
    while let Some(chunk) = rows.blocking_recv() {
        write(&mut sink, layout, &chunk?)?;
    }
    finish(sink)
}

fn open(
    format: Format,
    layout: &Layout,
    mut out: BodyWriter,
    opts: ParquetOptions,
) -> Result<Sink, EncodeError> {
    Ok(match format {
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(out);
            w.write_record(layout.header())?;
            Sink::Csv(Box::new(w))
        }
        Format::Ndjson => Sink::Ndjson(out),
        Format::GeoJson => {
            out.write_all(br#"{"type":"FeatureCollection","features":["#)?;
            Sink::GeoJson { out, features: 0 }
        }
        Format::Parquet => {
            let props = WriterProperties::builder()
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
                .set_dictionary_enabled(true)
                .set_max_row_group_row_count(Some(opts.row_group_rows))
                .set_created_by("stadtpuls api export".into())
                .build();
            Sink::Parquet(Box::new(ArrowWriter::try_new(
                out,
                layout.schema(),
                Some(props),
            )?))
        }
    })
}

/// A row as a JSON object with the layout's columns (without the position for GeoJSON).
fn properties<R: Row>(layout: &Layout, r: &R, with_position: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(layout.time.into(), json!(utc(r.time())));
    m.insert("dev_eui".into(), json!(r.dev_eui().to_string()));
    m.insert("quantity".into(), json!(r.quantity().name()));
    m.insert("unit".into(), json!(r.quantity().unit()));
    for c in &layout.values {
        if with_position || !c.is_position() {
            m.insert(c.name().into(), r.cell(*c).json());
        }
    }
    m
}

fn write<R: Row>(sink: &mut Sink, layout: &Layout, rows: &[R]) -> Result<(), EncodeError> {
    match sink {
        Sink::Csv(w) => {
            for r in rows {
                let mut record = vec![
                    utc(r.time()),
                    r.dev_eui().to_string(),
                    r.quantity().name().to_string(),
                    r.quantity().unit().to_string(),
                ];
                record.extend(layout.values.iter().map(|c| r.cell(*c).text()));
                w.write_record(&record)?;
            }
        }
        Sink::Ndjson(out) => {
            for r in rows {
                serde_json::to_writer(&mut *out, &properties(layout, r, true))?;
                out.write_all(b"\n")?;
            }
        }
        Sink::GeoJson { out, features } => {
            for r in rows {
                let (lon, lat) = r.position();
                let feature = json!({
                    "type": "Feature",
                    "geometry": { "type": "Point", "coordinates": [lon, lat] },
                    "properties": properties(layout, r, false),
                });
                out.write_all(if *features == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *out, &feature)?;
                *features += 1;
            }
        }
        Sink::Parquet(w) => {
            if !rows.is_empty() {
                w.write(&to_batch(layout, rows)?)?;
            }
        }
    }
    Ok(())
}

fn finish(sink: Sink) -> Result<(), EncodeError> {
    let mut out = match sink {
        Sink::Csv(w) => w
            .into_inner()
            .map_err(|e| io::Error::new(e.error().kind(), e.error().to_string()))?,
        Sink::Ndjson(out) => out,
        Sink::GeoJson { mut out, .. } => {
            out.write_all(b"\n]}\n")?;
            out
        }
        // Writes the last row group and the footer.
        Sink::Parquet(w) => w.into_inner()?,
    };
    out.flush()?;
    Ok(())
}

/// Rows as a record batch of the layout's schema.
fn to_batch<R: Row>(layout: &Layout, rows: &[R]) -> Result<RecordBatch, EncodeError> {
    let n = rows.len();
    let time: TimestampMicrosecondArray = rows
        .iter()
        .map(|r| Some(r.time().timestamp_micros()))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let mut dev_eui = StringBuilder::with_capacity(n, n * 16);
    let mut quantity = StringBuilder::with_capacity(n, n * 12);
    let mut unit = StringBuilder::with_capacity(n, n * 4);
    for r in rows {
        dev_eui.append_value(r.dev_eui().to_string());
        quantity.append_value(r.quantity().name());
        unit.append_value(r.quantity().unit());
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(time),
        Arc::new(dev_eui.finish()),
        Arc::new(quantity.finish()),
        Arc::new(unit.finish()),
    ];
    for c in &layout.values {
        if *c == Col::Count {
            let mut b = Int64Builder::with_capacity(n);
            for r in rows {
                if let Cell::I(v) = r.cell(*c) {
                    b.append_value(v);
                }
            }
            columns.push(Arc::new(b.finish()));
        } else {
            let mut b = Float64Builder::with_capacity(n);
            for r in rows {
                if let Cell::F(v) = r.cell(*c) {
                    b.append_value(v);
                }
            }
            columns.push(Arc::new(b.finish()));
        }
    }
    Ok(RecordBatch::try_new(layout.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::aggregates::MAX_WINDOW_DAYS;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        t("2024-05-02T00:00:00Z")
    }

    fn rejected(query: &str) -> (String, String) {
        match parse_export(Some(query), now(), MAX_WINDOW_DAYS).unwrap_err() {
            ApiError::BadParam { param, message } => (param, message),
            other => panic!("{query}: expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_every_quantity_of_the_last_day_raw() {
        let r = parse_export(None, now(), MAX_WINDOW_DAYS).unwrap();
        assert_eq!(r.quantities, Quantity::ALL.to_vec());
        assert_eq!(r.geo, GeoQuery::All);
        assert_eq!((r.from, r.to), (t("2024-05-01T00:00:00Z"), now()));
        assert_eq!(r.buckets, None);
        // Empty values count as absent.
        assert_eq!(
            parse_export(Some("quantity=&bbox="), now(), MAX_WINDOW_DAYS).unwrap(),
            r
        );
    }

    #[test]
    fn quantities_repeat_or_list_and_come_in_id_order() {
        let r = parse_export(
            Some("quantity=co2,temperature&quantity=humidity&quantity=co2"),
            now(),
            MAX_WINDOW_DAYS,
        )
        .unwrap();
        assert_eq!(
            r.quantities,
            [Quantity::Temperature, Quantity::Humidity, Quantity::Co2]
        );
    }

    #[test]
    fn buckets_and_aggregates() {
        let r = parse_export(
            Some("bucket=1h&agg=count,avg,count"),
            now(),
            MAX_WINDOW_DAYS,
        )
        .unwrap();
        assert_eq!(
            r.buckets,
            Some((BucketWidth::Hour, vec![Agg::Avg, Agg::Count]))
        );
        let r = parse_export(Some("bucket=1d"), now(), MAX_WINDOW_DAYS).unwrap();
        assert_eq!(r.buckets, Some((BucketWidth::Day, EXPORT_AGGS.to_vec())));
        // A leap year of 15-minute buckets is fine: an export has no bucket limit.
        let r = parse_export(
            Some("bucket=15m&from=2024-01-01T00:00:00Z&to=2025-01-01T00:00:00Z"),
            now(),
            MAX_WINDOW_DAYS,
        )
        .unwrap();
        assert_eq!(r.buckets.unwrap().0, BucketWidth::Minutes15);
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            ("quantity=warmth", "quantity", "unknown quantity 'warmth'"),
            ("quantity=co2,,temperature", "quantity", "empty entry"),
            ("lat=51.5&lon=7.4&nearest=3", "nearest", "not nearest"),
            ("lat=51.5&lon=7.4", "radius", ""),
            ("bbox=1,2,3", "bbox", ""),
            ("from=yesterday", "from", "RFC 3339"),
            ("to=soon", "to", "RFC 3339"),
            (
                "from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z",
                "from",
                "must be before to (2024-05-01T00:00:00Z)",
            ),
            (
                "from=2023-01-01T00:00:00Z&to=2024-01-04T00:00:00Z",
                "from",
                "368.0 days long; at most 367 days",
            ),
            ("bucket=1w", "bucket", "'1w' is not a bucket width"),
            ("agg=avg", "agg", "only with bucket"),
            (
                "bucket=1h&agg=sum",
                "agg",
                "'sum' is not an export aggregate",
            ),
            ("bucket=1h&agg=avg,,max", "agg", "empty entry"),
            ("colour=red", "colour", "unknown parameter"),
            (
                "from=2024-05-01T00:00:00Z&from=2024-04-01T00:00:00Z",
                "from",
                "more than once",
            ),
        ];
        for (query, param, message) in cases {
            let (p, m) = rejected(query);
            assert_eq!(p, param, "{query}: {m}");
            assert!(m.contains(message), "{query}: {m}");
        }
    }

    #[test]
    fn file_names_use_compact_utc_times() {
        assert_eq!(
            file_name(
                t("2024-05-01T02:00:00+02:00"),
                t("2024-05-02T00:00:00.5Z"),
                Format::Parquet
            ),
            "readings-20240501T000000Z-20240502T000000Z.parquet"
        );
    }

    #[tokio::test]
    async fn the_body_ends_cleanly_only_after_a_complete_file() {
        use futures_util::StreamExt;
        for complete in [true, false] {
            let (tx, rx) = mpsc::channel(2);
            let flag = Arc::new(AtomicBool::new(false));
            let mut body = Download {
                rx,
                complete: flag.clone(),
                ended: false,
            };
            tx.send(Bytes::from_static(b"a,b\r\n")).await.unwrap();
            flag.store(complete, Ordering::SeqCst);
            drop(tx);
            assert_eq!(body.next().await.unwrap().unwrap(), "a,b\r\n");
            match body.next().await {
                None => assert!(complete),
                Some(Err(e)) => assert!(!complete, "{e}"),
                Some(Ok(b)) => panic!("{b:?}"),
            }
            assert!(body.next().await.is_none());
        }
    }

    #[tokio::test]
    async fn the_writer_notices_a_client_that_went_away() {
        let (tx, rx) = mpsc::channel(1);
        let runtime = tokio::runtime::Handle::current();
        let written = tokio::task::spawn_blocking(move || {
            let mut w = BodyWriter {
                tx,
                buf: Vec::new(),
                runtime,
            };
            // Small writes are collected; a flush hands them over.
            w.write_all(b"header\n")?;
            w.flush()?;
            // The first block may still fit the channel; the second waits until the receiver
            // is gone.
            w.write_all(&[b'x'; BLOCK_BYTES])?;
            w.write_all(&[b'x'; BLOCK_BYTES])
        });
        let mut rx = rx;
        assert_eq!(rx.recv().await.unwrap(), "header\n");
        drop(rx);
        let e = written.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(EncodeError::from(e).client_gone());
    }

    #[test]
    fn layouts() {
        assert_eq!(
            Layout::raw().header(),
            [
                "observed_at",
                "dev_eui",
                "quantity",
                "unit",
                "value",
                "lon",
                "lat"
            ]
        );
        assert_eq!(
            Layout::buckets(&[Agg::Min, Agg::Count]).header(),
            [
                "bucket_start",
                "dev_eui",
                "quantity",
                "unit",
                "min",
                "count"
            ]
        );
        let schema = Layout::buckets(&EXPORT_AGGS).schema();
        assert_eq!(schema.field(8 - 1).data_type(), &DataType::Int64);
        assert_eq!(
            schema.field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }
}
