//! On-demand exports of readings (`GET /v1/exports/readings.*`): the raw readings, or per-bucket
//! aggregates, of the selected devices and quantities in a window, handed over in chunks
//! through a bounded channel.
//!
//! No statement runs long, and none stays open while the client is slow: the export is a series
//! of short statements, each fetched completely before its rows are handed on.
//! 1. One statement lists the *series* (device × quantity) with data in the window, from
//!    `latest_readings`, which holds every pair that ever had a reading (the writer and
//!    reprocessing keep it).
//! 2. Raw: each series is read in keyset pages (`time >= last + 1 µs … ORDER BY time LIMIT n`)
//!    straight off the `(dev_eui, quantity, time)` index, so a page costs O(n) whatever the
//!    window holds. Bucketed: each series is aggregated in one statement: one sensor's readings
//!    over at most the window, at most one row per bucket.
//!
//! The channel holds [`CHANNEL_CHUNKS`] chunks of [`CHUNK_ROWS`] rows, so the consumer's pace
//! throttles the loop and memory stays bounded however many rows there are; dropping the
//! receiver stops the loop after the current statement.
//!
//! Rows come ordered by DevEUI (as hex), quantity id and time. Only located devices appear, and
//! with `public_only` only public ones: that is checked here, whatever the caller's device list
//! says (a geo index may be a few seconds older than the registry).

use crate::aggregates::BucketWidth;
pub use crate::opendata::CHUNK_ROWS;
use crate::{Result, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use stadtpuls_gateways::{DevEui, Quantity};
use tokio::sync::mpsc;

/// Chunks an export channel holds before the query loop waits for the consumer.
pub const CHANNEL_CHUNKS: usize = 2;

/// What an export selects.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportQuery {
    /// Candidate devices (e.g. from a geo filter); `None` = every device.
    pub devices: Option<Vec<DevEui>>,
    /// Only public devices (callers without an admin key).
    pub public_only: bool,
    pub quantities: Vec<Quantity>,
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
}

/// One reading of a located device; `lon`/`lat` are the device's registry position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExportReading {
    pub time: DateTime<Utc>,
    pub dev_eui: DevEui,
    pub quantity: Quantity,
    pub value: f64,
    pub lon: f64,
    pub lat: f64,
}

/// One non-empty bucket of one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExportBucket {
    pub start: DateTime<Utc>,
    pub dev_eui: DevEui,
    pub quantity: Quantity,
    pub count: i64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub lon: f64,
    pub lat: f64,
}

/// A chunk of rows, or the error that ended the export.
pub type ExportChunks<T> = mpsc::Receiver<Result<Vec<T>>>;

/// One device × quantity with data in the window.
#[derive(Clone, Copy, Debug)]
struct Series {
    dev_eui: DevEui,
    quantity: Quantity,
    lon: f64,
    lat: f64,
}

/// Series of the selection with a reading in `[$4, $5)`. $1 quantity ids, $2 candidate
/// DevEUIs (NULL = all), $3 public only.
const SERIES_SQL: &str = "
SELECT l.dev_eui, l.quantity, d.lon, d.lat
FROM latest_readings l JOIN devices d USING (dev_eui)
WHERE l.quantity = ANY($1)
  AND ($2::bigint[] IS NULL OR l.dev_eui = ANY($2::bigint[]))
  AND (NOT $3 OR d.visibility = 'public')
  AND d.lat IS NOT NULL AND d.lon IS NOT NULL
  AND EXISTS (SELECT 1 FROM readings r
              WHERE r.dev_eui = l.dev_eui AND r.quantity = l.quantity
                AND r.time >= $4 AND r.time < $5)";

/// One keyset page of a series: $1 dev_eui, $2 quantity, `[$3, $4)`, at most $5 rows.
const PAGE_SQL: &str = "
SELECT time, value FROM readings
WHERE dev_eui = $1 AND quantity = $2 AND time >= $3 AND time < $4
ORDER BY time
LIMIT $5";

/// The span `[lo, hi)` of whole buckets covering the window, on the shared grid. Parameters
/// as for `grid_cte`; the final WHERE checks the time zone for every width.
const SPAN_SQL: &str = concat!(
    "WITH ",
    crate::aggregates::grid_cte!(),
    "
SELECT lo, hi FROM span
WHERE (now() AT TIME ZONE $4) IS NOT NULL"
);

/// The non-empty buckets of one series in `[$3, $4)`: $1 dev_eui, $2 quantity, $5 day
/// buckets?, $6 width, $7 time zone (day buckets start at local midnight, as on the grid).
const BUCKETS_SQL: &str = "
SELECT CASE WHEN $5 THEN time_bucket($6::interval, time, $7::text)
            ELSE time_bucket($6::interval, time) END AS bucket_start,
       count(*) AS n, avg(value), min(value), max(value)
FROM readings
WHERE dev_eui = $1 AND quantity = $2 AND time >= $3 AND time < $4
GROUP BY 1
ORDER BY 1";

/// Collects rows into chunks of [`CHUNK_ROWS`] and hands them over.
struct Chunker<T> {
    tx: mpsc::Sender<Result<Vec<T>>>,
    chunk: Vec<T>,
}

impl<T> Chunker<T> {
    fn new(tx: mpsc::Sender<Result<Vec<T>>>) -> Self {
        Chunker {
            tx,
            chunk: Vec::with_capacity(CHUNK_ROWS),
        }
    }

    /// Free places in the current chunk (at least 1).
    fn room(&self) -> usize {
        CHUNK_ROWS - self.chunk.len()
    }

    /// Adds a row; `false` once the receiver is gone.
    async fn push(&mut self, row: T) -> bool {
        self.chunk.push(row);
        self.chunk.len() < CHUNK_ROWS || self.flush().await
    }

    /// Hands over what is collected; `false` once the receiver is gone.
    async fn flush(&mut self) -> bool {
        if self.chunk.is_empty() {
            return !self.tx.is_closed();
        }
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_ROWS));
        self.tx.send(Ok(full)).await.is_ok()
    }
}

/// Runs `work` on its own task; an error it returns is the last item of the channel.
fn spawn_export<T, F, Fut>(work: F) -> ExportChunks<T>
where
    T: Send + 'static,
    F: FnOnce(Chunker<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = (Chunker<T>, Result<()>)> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    // Task: the export's query loop; ends when done, failed or the receiver is gone.
    tokio::spawn(async move {
        let (mut out, result) = work(Chunker::new(tx)).await;
        match result {
            Ok(()) => {
                out.flush().await;
            }
            Err(e) => {
                let _ = out.tx.send(Err(e)).await;
            }
        }
    });
    rx
}

fn quantity_of(id: i16) -> Result<Quantity> {
    Quantity::from_id(id).ok_or(StoreError::Corrupt {
        column: "quantity",
        problem: format!("unknown id {id}"),
    })
}

impl Store {
    /// The series of `q` with data in `[from, to)`, in export order.
    async fn export_series(
        &self,
        q: &ExportQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Series>> {
        let quantities: Vec<i16> = q.quantities.iter().map(|q| q.id()).collect();
        let devices: Option<Vec<i64>> = q
            .devices
            .as_ref()
            .map(|d| d.iter().map(|e| e.as_i64()).collect());
        let rows: Vec<(i64, i16, f64, f64)> = sqlx::query_as(SERIES_SQL)
            .bind(quantities)
            .bind(devices)
            .bind(q.public_only)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
        let mut series = rows
            .into_iter()
            .map(|(dev_eui, quantity, lon, lat)| {
                Ok(Series {
                    dev_eui: DevEui::from_i64(dev_eui),
                    quantity: quantity_of(quantity)?,
                    lon,
                    lat,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // DevEUIs are stored as signed bigints; order them as the unsigned hex they are.
        series.sort_by_key(|s| (s.dev_eui, s.quantity.id()));
        Ok(series)
    }

    /// The readings of `q` in `[from, to)`, ordered by DevEUI, quantity and time, in chunks of
    /// at most [`CHUNK_ROWS`] (see the module doc). A failure is the channel's last item.
    pub fn export_readings(&self, q: ExportQuery) -> ExportChunks<ExportReading> {
        let store = self.clone();
        spawn_export(move |mut out| async move {
            let result = store.readings_into(&q, &mut out).await;
            (out, result)
        })
    }

    async fn readings_into(&self, q: &ExportQuery, out: &mut Chunker<ExportReading>) -> Result<()> {
        for s in self.export_series(q, q.from, q.to).await? {
            let mut lo = q.from;
            loop {
                if out.tx.is_closed() {
                    return Ok(());
                }
                let limit = out.room();
                let page: Vec<(DateTime<Utc>, f64)> = sqlx::query_as(PAGE_SQL)
                    .bind(s.dev_eui.as_i64())
                    .bind(s.quantity.id())
                    .bind(lo)
                    .bind(q.to)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?;
                let more = page.len() == limit;
                // Times have microsecond precision and are unique per series.
                if let Some((last, _)) = page.last() {
                    lo = *last + TimeDelta::microseconds(1);
                }
                for (time, value) in page {
                    let row = ExportReading {
                        time,
                        dev_eui: s.dev_eui,
                        quantity: s.quantity,
                        value,
                        lon: s.lon,
                        lat: s.lat,
                    };
                    if !out.push(row).await {
                        return Ok(());
                    }
                }
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The non-empty buckets of `q`, ordered by DevEUI, quantity and bucket start, in chunks of
    /// at most [`CHUNK_ROWS`]. Buckets lie on the shared grid (`aggregates::grid_cte`: sub-day
    /// widths aligned to UTC, days from local midnight in `tz`), and every bucket describes its
    /// whole span, also where it reaches outside `[from, to)`: the same values the device
    /// aggregates API reports. A failure (e.g. an unknown `tz`) is the channel's last item.
    pub fn export_buckets(
        &self,
        q: ExportQuery,
        width: BucketWidth,
        tz: &str,
    ) -> ExportChunks<ExportBucket> {
        let store = self.clone();
        let tz = tz.to_string();
        spawn_export(move |mut out| async move {
            let result = store.buckets_into(&q, width, &tz, &mut out).await;
            (out, result)
        })
    }

    async fn buckets_into(
        &self,
        q: &ExportQuery,
        width: BucketWidth,
        tz: &str,
        out: &mut Chunker<ExportBucket>,
    ) -> Result<()> {
        if q.to <= q.from {
            return Ok(());
        }
        let day = width == BucketWidth::Day;
        let (lo, hi): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(SPAN_SQL)
            .bind(q.from)
            .bind(q.to)
            .bind(width.as_interval())
            .bind(tz)
            .bind(day)
            .fetch_one(&self.pool)
            .await?;
        for s in self.export_series(q, lo, hi).await? {
            if out.tx.is_closed() {
                return Ok(());
            }
            let rows: Vec<(DateTime<Utc>, i64, f64, f64, f64)> = sqlx::query_as(BUCKETS_SQL)
                .bind(s.dev_eui.as_i64())
                .bind(s.quantity.id())
                .bind(lo)
                .bind(hi)
                .bind(day)
                .bind(width.as_interval())
                .bind(tz)
                .fetch_all(&self.pool)
                .await?;
            for (start, count, avg, min, max) in rows {
                let row = ExportBucket {
                    start,
                    dev_eui: s.dev_eui,
                    quantity: s.quantity,
                    count,
                    avg,
                    min,
                    max,
                    lon: s.lon,
                    lat: s.lat,
                };
                if !out.push(row).await {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
