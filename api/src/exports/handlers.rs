//! The export handlers: checks → an export slot → the first chunk → the streamed response.

use super::body::channel;
use super::columns::{encode, Layout, Row};
use super::params::{file_name, parse_export, Format};
use super::{PARQUET_ROW_GROUP_ROWS, PARQUET_ZSTD_LEVEL, RETRY_AFTER_SECS};
use crate::auth::{MaybeAuthenticated, Principal};
use crate::error::ApiError;
use crate::geo::GeoQuery;
use crate::AppState;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use stadtpuls_opendata_export::encode::ParquetOptions;
use stadtpuls_store::exports::{ExportChunks, ExportQuery};
use tokio::sync::OwnedSemaphorePermit;

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
         body = ExportFeatureCollection, content_type = "application/geo+json",
         headers(("Content-Disposition" = String, description = "attachment; filename=\"readings-<from>-<to>.geojson\""))),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
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
        (status = 200, description = "GeoParquet 1.1 (zstd), row groups written as rows arrive, the footer last. The CSV's columns, then `geometry` (WKB point of the device) and the bbox covering `bbox` {xmin, ymin, xmax, ymax} (with row-group statistics, so readers can skip row groups by area); times are `Timestamp(MICROS, UTC)`, `count` is INT64, other numbers DOUBLE.",
         body = crate::openapi::BinaryFile, content_type = "application/vnd.apache.parquet",
         headers(("Content-Disposition" = String, description = "attachment; filename=\"readings-<from>-<to>.parquet\""))),
        crate::openapi::BadRequest,
        crate::openapi::Unauthorized,
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
    let (writer, download, ending) = channel();
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
        ending.end(outcome == "complete");
        metrics::counter!("stadtpuls_api_exports_total", "format" => format.extension(), "outcome" => outcome)
            .increment(1);
    });
    Ok(Body::from_stream(download))
}

/// The streamed GeoJSON export: written feature by feature by the shared encoder, so there is no
/// value of this type; it only describes the stream. `properties` holds the row's columns (those
/// of the CSV export but `lon`/`lat`), which depend on `bucket`/`agg`: an open object.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ExportFeatureCollection {
    /// `FeatureCollection`.
    #[schema(pattern = "^FeatureCollection$", example = "FeatureCollection")]
    pub r#type: String,
    /// One Point feature per row.
    #[schema(value_type = Vec<Object>)]
    pub features: Vec<serde_json::Value>,
}
