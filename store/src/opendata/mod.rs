//! Open-data queries: which devices a dataset may contain, its rows (raw or aggregated, streamed
//! in the files' sort order), the sensors/groups table, a fingerprint for late-data detection,
//! and the bookkeeping of export runs and published files.
//!
//! Privacy is enforced here, whatever the configuration says (it is checked at startup too):
//! - a device linked to a building appears only if the dataset names that building, and never
//!   in a raw dataset; other devices only when public;
//! - in aggregated datasets an indoor cell (a building's devices, or indoor kinds) is dropped
//!   unless it rests on at least `min_group` rooms or desks;
//! - no DevEUI leaves this module: devices are named by their random `sensor_id`;
//! - open data are maps: devices (raw) and groups (aggregated) without a location are left out.
//!
//! # File order
//!
//! The files are spatially ordered at sensor granularity: sensors (raw) and groups (aggregated)
//! in the order of `hilbert_index(lon, lat)` of their position (migration 0006: a Hilbert curve
//! of order 24 over the WGS84 range, independent of the data), ties by id byte-wise; within a
//! sensor or group by quantity name and time (aggregated: bucket). So each sensor's series is
//! one run in time order, and a Parquet row group covers a compact area whose bbox statistics
//! let readers skip it. The sensors/groups tables follow the same order.
//!
//! Modules: the selection SQL (which devices, aggregated rows, fingerprint, sensors table;
//! `selection.rs`), the raw export's COPY scan and sort (`raw.rs`), and the bookkeeping of runs
//! and files (`runs.rs`).

#[macro_use]
mod selection;
mod raw;
mod runs;

use crate::{DeviceKind, Result, StoreError};
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use stadtpuls_gateways::Quantity;

/// Kinds whose readings describe people indoors.
pub const INDOOR_KINDS: [DeviceKind; 3] = [
    DeviceKind::RoomClimate,
    DeviceKind::DeskOccupancy,
    DeviceKind::PeopleCounter,
];

/// What a dataset selects.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub quantities: Vec<Quantity>,
    /// Empty = every kind.
    pub kinds: Vec<DeviceKind>,
    /// Buildings whose devices (private ones too) may appear, aggregated only.
    pub buildings: Vec<String>,
    /// Raw datasets never contain building or indoor devices.
    pub raw: bool,
    /// Only devices of these parking sites; empty = no limit.
    pub sites: Vec<String>,
}

/// One cell of an aggregated dataset.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AggRow {
    pub bucket: DateTime<Utc>,
    pub group_id: String,
    pub quantity: i16,
    pub count: i64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
}

/// One row of a dataset's sensors (raw) or groups (aggregated) table.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SensorRow {
    pub id: String,
    /// Raw: the device kind. Aggregated: `parking_site`, `building` or `sensor`.
    pub kind: String,
    /// Place name for sites and buildings; none for single sensors (a device name may be
    /// personal, e.g. "Desk of …").
    pub name: Option<String>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
}

/// A published file as recorded.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ExportFileRecord {
    pub dataset: String,
    pub partition: String,
    pub format: String,
    pub path: String,
    pub rows: i64,
    pub bytes: i64,
    pub sha256: String,
    pub modified: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
}

/// A partition as last exported.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct PartitionRecord {
    pub partition: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub fingerprint: String,
    pub rows: i64,
    pub exported_at: DateTime<Utc>,
}

/// An export run as recorded.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ExportRun {
    pub id: i64,
    pub dataset: String,
    pub trigger: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: String,
    pub partitions: i32,
    pub rows: i64,
    pub bytes: i64,
    pub error: Option<String>,
}

/// Rows per chunk of an export stream.
pub const CHUNK_ROWS: usize = 8192;

/// Runs a streaming query on its own task and hands its rows over in chunks of
/// [`CHUNK_ROWS`] through a channel of a few chunks, so memory stays bounded however many rows
/// there are and the consumer's pace throttles the query. Dropping the receiver cancels it.
pub(super) fn chunked<T, F>(
    pool: sqlx::PgPool,
    query: F,
) -> tokio::sync::mpsc::Receiver<Result<Vec<T>>>
where
    T: Send + 'static,
    F: for<'p> FnOnce(
            &'p mut sqlx::PgConnection,
        ) -> BoxStream<'p, std::result::Result<T, sqlx::Error>>
        + Send
        + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    // Task: drives the query and forwards chunks until the receiver is gone.
    tokio::spawn(async move {
        let mut conn = match long_running(&pool).await {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut rows = query(&mut conn);
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        loop {
            match rows.next().await {
                Some(Ok(row)) => {
                    chunk.push(row);
                    if chunk.len() == CHUNK_ROWS {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                        if tx.send(Ok(full)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(StoreError::from(e))).await;
                    return;
                }
                None => break,
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(Ok(chunk)).await;
        }
    });
    rx
}

/// Export statements read whole partitions (10 M readings a day in the benchmark city): far
/// longer than the pool's `database.statement_timeout_ms`, which is meant for API requests.
pub(super) const EXPORT_STATEMENT_TIMEOUT: &str = "1h";

/// A read-only transaction whose statements may run up to [`EXPORT_STATEMENT_TIMEOUT`]
/// (`SET LOCAL`: the pooled connection keeps its own timeout afterwards).
pub(super) async fn long_running(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = '{EXPORT_STATEMENT_TIMEOUT}'"
    ))
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}
