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

use crate::aggregates::BucketWidth;
use crate::copy_out::{RawColumns, ReadingCopyParser, ScannedReading};
use crate::fingerprint::{self, Fingerprint};
use crate::{DeviceKind, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use stadtpuls_gateways::Quantity;
use std::collections::HashMap;

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

/// The devices of a selection, as CTE `sel`. Parameters: $1 kinds (empty = all), $2 buildings,
/// $3 raw?, $4 indoor kinds, $5 sites (empty = all); the queries' own parameters start at $6.
macro_rules! selection_cte {
    () => {
        "sel AS (
    SELECT d.dev_eui, d.kind, d.lat, d.lon, d.site_id, d.building_id, d.room_id, s.sensor_id
    FROM devices d JOIN open_sensor_ids s USING (dev_eui)
    WHERE (cardinality($1::text[]) = 0 OR d.kind::text = ANY($1::text[]))
      AND CASE WHEN d.building_id IS NULL THEN d.visibility = 'public'
               ELSE d.building_id = ANY($2::text[]) END
      AND NOT ($3 AND (d.building_id IS NOT NULL OR d.kind::text = ANY($4::text[])))
      AND (cardinality($5::text[]) = 0 OR d.site_id = ANY($5::text[]))
)"
    };
}

/// Groups of aggregated datasets (CTE `grp`, after `sel`): a parking site, a building, or the
/// sensor itself; `indoor` cells count distinct rooms (desks count singly).
macro_rules! group_cte {
    () => {
        "grp AS (
    SELECT sel.dev_eui,
           CASE WHEN ps.uid IS NOT NULL THEN ps.uid
                WHEN sel.building_id IS NOT NULL THEN sel.building_id
                ELSE sel.sensor_id END AS group_id,
           CASE WHEN ps.uid IS NOT NULL THEN 'parking_site'
                WHEN sel.building_id IS NOT NULL THEN 'building'
                ELSE 'sensor' END AS group_kind,
           CASE WHEN ps.uid IS NOT NULL THEN ps.name
                WHEN sel.building_id IS NOT NULL THEN b.name END AS group_name,
           CASE WHEN ps.uid IS NOT NULL THEN ps.lon
                WHEN sel.building_id IS NOT NULL THEN b.lon
                ELSE sel.lon END AS glon,
           CASE WHEN ps.uid IS NOT NULL THEN ps.lat
                WHEN sel.building_id IS NOT NULL THEN b.lat
                ELSE sel.lat END AS glat,
           (sel.building_id IS NOT NULL OR sel.kind::text = ANY($4::text[])) AS indoor,
           CASE WHEN sel.kind = 'desk_occupancy' OR sel.room_id IS NULL THEN sel.dev_eui::text
                ELSE sel.building_id || '/' || sel.room_id END AS contributor
    FROM sel
    LEFT JOIN parking_sites ps ON ps.uid = sel.site_id
    LEFT JOIN buildings b ON b.id = sel.building_id
)"
    };
}

/// The devices of a raw dataset in the files' order (sensor id, byte-wise). Devices without a
/// location count in the fingerprint but have no rows in the files.
const RAW_DEVICES_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    "
SELECT sel.dev_eui, sel.sensor_id, sel.lon, sel.lat FROM sel
ORDER BY sel.sensor_id COLLATE \"C\""
);

/// $9 width, $10 day buckets?, $11 time zone, $12 minimum rooms/desks of an indoor cell.
const AGG_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    ", ",
    group_cte!(),
    "
SELECT CASE WHEN $10 THEN time_bucket($9::interval, r.time, $11)
            ELSE time_bucket($9::interval, r.time) END AS bucket,
       g.group_id, r.quantity, count(*) AS count, avg(r.value) AS avg, min(r.value) AS min,
       max(r.value) AS max, g.glon AS lon, g.glat AS lat
FROM grp g JOIN readings r ON r.dev_eui = g.dev_eui
WHERE r.quantity = ANY($6) AND r.time >= $7 AND r.time < $8
  AND g.glat IS NOT NULL AND g.glon IS NOT NULL
GROUP BY 1, g.group_id, r.quantity, g.glon, g.glat
HAVING NOT bool_or(g.indoor) OR count(DISTINCT g.contributor) >= $12
ORDER BY g.group_id COLLATE \"C\", array_position($6::int2[], r.quantity), 1"
);

/// Count and two hash sums of the selected readings (value, and time, each keyed by device):
/// changes when late data arrive. Sums of integers do not depend on the order PostgreSQL adds
/// rows in (a parallel float sum differs in its last digits from run to run, which would look
/// like late data); hashing float8 values is far cheaper than the numeric sums used before
/// (`h1:` marks the scheme: partitions fingerprinted the old way are re-exported once).
const FINGERPRINT_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    "
SELECT count(*)::bigint,
       'h1:' || count(*)::text || ':'
         || coalesce(sum(hashfloat8extended(r.value, r.dev_eui)), 0)::text || ':'
         || coalesce(sum(hashfloat8extended(date_part('epoch', r.time), r.dev_eui # r.quantity)), 0)::text
FROM sel JOIN readings r ON r.dev_eui = sel.dev_eui
WHERE r.quantity = ANY($6) AND r.time >= $7 AND r.time < $8"
);

const RAW_SENSORS_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    "
SELECT sel.sensor_id AS id, sel.kind::text AS kind, NULL::text AS name, sel.lon, sel.lat
FROM sel
WHERE EXISTS (SELECT 1 FROM latest_readings l WHERE l.dev_eui = sel.dev_eui AND l.quantity = ANY($6))
ORDER BY sel.sensor_id"
);

const GROUPS_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    ", ",
    group_cte!(),
    "
SELECT DISTINCT ON (g.group_id) g.group_id AS id, g.group_kind AS kind, g.group_name AS name,
       g.glon AS lon, g.glat AS lat
FROM grp g
WHERE EXISTS (SELECT 1 FROM latest_readings l WHERE l.dev_eui = g.dev_eui AND l.quantity = ANY($6))
ORDER BY g.group_id"
);

/// The raw export's scan of the readings of `devices` in `[from, to)`, in the table's own
/// order. Its values are literals, all numbers and timestamps: it runs inside COPY, which takes
/// no bind parameters.
fn scan_sql(devices: &[i64], quantities: &[i16], from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let list = |items: Vec<String>| items.join(",");
    format!(
        "SELECT dev_eui, quantity, time, value FROM readings \
         WHERE time >= '{}'::timestamptz AND time < '{}'::timestamptz \
         AND quantity = ANY(ARRAY[{}]::int2[]) AND dev_eui = ANY(ARRAY[{}]::int8[])",
        from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        list(quantities.iter().map(i16::to_string).collect()),
        list(devices.iter().map(i64::to_string).collect()),
    )
}

/// A selection's bind values: kinds, buildings, raw?, indoor kinds, sites, quantities.
type Binds = (
    Vec<&'static str>,
    Vec<String>,
    bool,
    Vec<&'static str>,
    Vec<String>,
    Vec<i16>,
);

/// Binds a selection as `$1`–`$6`.
fn bind_selection<O>(
    q: sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    binds: Binds,
) -> sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let (kinds, buildings, raw, indoor, sites, quantities) = binds;
    q.bind(kinds)
        .bind(buildings)
        .bind(raw)
        .bind(indoor)
        .bind(sites)
        .bind(quantities)
}

fn kind_names(kinds: &[DeviceKind]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.as_str()).collect()
}

impl Selection {
    /// The selection's bind values, in parameter order ($1–$5, then the quantities as $6).
    fn binds(&self) -> Binds {
        (
            kind_names(&self.kinds),
            self.buildings.clone(),
            self.raw,
            kind_names(&INDOOR_KINDS),
            self.sites.clone(),
            // By name: the files are sorted by the quantity's name (`sorting_columns`), so
            // the queries order by the position in this array.
            {
                let mut qs = self.quantities.clone();
                qs.sort_by_key(|q| q.name());
                qs.iter().map(|q| q.id()).collect()
            },
        )
    }
}

impl Store {
    /// Gives every device without one its random `sensor_id`; returns how many were added.
    pub async fn assign_sensor_ids(&self) -> Result<u64> {
        Ok(sqlx::query(
            "INSERT INTO open_sensor_ids (dev_eui) SELECT dev_eui FROM devices
             ON CONFLICT (dev_eui) DO NOTHING",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// The cells of an aggregated dataset in `[from, to)`, ordered by group, quantity and
    /// bucket; indoor cells resting on fewer than `min_group` rooms/desks are left out.
    #[allow(clippy::too_many_arguments)]
    pub fn export_aggregated(
        &self,
        sel: &Selection,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        width: BucketWidth,
        tz: &str,
        min_group: u32,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<AggRow>>> {
        let binds = sel.binds();
        let tz = tz.to_string();
        let min_group = i64::from(min_group);
        chunked(self.pool.clone(), move |conn| {
            bind_selection(sqlx::query_as::<_, AggRow>(AGG_SQL), binds)
                .bind(from)
                .bind(to)
                .bind(width.as_interval())
                .bind(width == BucketWidth::Day)
                .bind(tz)
                .bind(min_group)
                .fetch(conn)
        })
    }

    /// `(rows, fingerprint)` of the selected readings in `[from, to)`.
    pub async fn export_fingerprint(
        &self,
        sel: &Selection,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(i64, String)> {
        let mut tx = long_running(&self.pool).await?;
        fingerprint_on(&mut tx, sel.binds(), from, to).await
    }

    /// A raw dataset's readings in `[from, to)` and their fingerprint (as
    /// [`Store::export_fingerprint`]), both from one snapshot.
    ///
    /// The rows come in the files' order (sensor, quantity, time) in chunks of about
    /// [`CHUNK_ROWS`] through a channel of a few chunks; a failure is the channel's last item
    /// and the task's result, and dropping the receiver stops the task.
    ///
    /// The readings are read in the table's own order (a sequential scan through binary COPY)
    /// and put into file order here, in buckets per sensor and quantity: asking PostgreSQL for
    /// file order means an index scan that visits the heap in random order, or a sort of the
    /// whole partition. The fingerprint is summed from the same rows. At most about
    /// `sort_memory_bytes` of readings are held at once: a bigger partition (by the planner's
    /// estimate) is read in several passes, each over a contiguous slice of the sensors.
    /// Uses one connection of its own.
    pub async fn export_raw_with_fingerprint(
        &self,
        sel: &Selection,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        sort_memory_bytes: usize,
    ) -> Result<(
        tokio::sync::mpsc::Receiver<Result<RawColumns>>,
        tokio::task::JoinHandle<Result<(i64, String)>>,
    )> {
        // A connection of its own, closed afterwards instead of going back to the pool: a
        // COPY abandoned half-way (receiver gone) leaves it mid-protocol.
        let mut conn = self.pool.acquire().await?.detach();
        // No plain index scans: for a selection of many devices the planner picked the
        // (device, quantity, time) index, which visits the heap in random order (5.2 s
        // instead of 2.7 s for the benchmark's 10 M rows); a bitmap scan, still chosen for a
        // few devices, reads the heap in its own order.
        let setup = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET LOCAL statement_timeout = '{EXPORT_STATEMENT_TIMEOUT}'; \
             SET LOCAL enable_indexscan = off"
        );
        sqlx::Executor::execute(&mut conn, setup.as_str()).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let binds = sel.binds();
        let task = tokio::spawn(async move {
            match raw_export(&mut conn, binds, (from, to), sort_memory_bytes, &tx).await {
                Ok(fp) => {
                    let _ = sqlx::Executor::execute(&mut conn, "COMMIT").await;
                    Ok(fp)
                }
                Err(e) => {
                    // The rows' consumer gets the cause (and must not publish what it has).
                    let _ = tx.send(Err(e)).await;
                    Err(StoreError::Invalid {
                        field: "raw export",
                        problem: "reading the partition failed (the cause went with the rows)"
                            .into(),
                    })
                }
            }
        });
        Ok((rx, task))
    }

    /// The sensors (raw) or groups (aggregated) of a dataset that have data.
    pub async fn export_sensors(&self, sel: &Selection) -> Result<Vec<SensorRow>> {
        let sql = if sel.raw { RAW_SENSORS_SQL } else { GROUPS_SQL };
        Ok(bind_selection(sqlx::query_as(sql), sel.binds())
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records the start of a run; returns its id.
    pub async fn start_export_run(
        &self,
        dataset: &str,
        trigger: &str,
        window: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO export_runs (dataset, trigger, window_start, window_end, started_at, status)
             VALUES ($1, $2, $3, $4, $5, 'running') RETURNING id",
        )
        .bind(dataset)
        .bind(trigger)
        .bind(window.0)
        .bind(window.1)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records how a run ended.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_export_run(
        &self,
        id: i64,
        status: &str,
        partitions: i32,
        rows: i64,
        bytes: i64,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE export_runs SET status = $2, partitions = $3, rows = $4, bytes = $5,
                    error = $6, finished_at = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(partitions)
        .bind(rows)
        .bind(bytes)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces what is recorded for one partition: its fingerprint and its files (none for an
    /// empty partition), in one transaction.
    pub async fn record_partition(
        &self,
        partition: &PartitionRecord,
        dataset: &str,
        files: &[ExportFileRecord],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM export_files WHERE dataset = $1 AND partition = $2")
            .bind(dataset)
            .bind(&partition.partition)
            .execute(&mut *tx)
            .await?;
        for f in files {
            sqlx::query(
                "INSERT INTO export_files (dataset, partition, format, path, rows, bytes, sha256,
                                           modified, window_start, window_end)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&f.dataset)
            .bind(&f.partition)
            .bind(&f.format)
            .bind(&f.path)
            .bind(f.rows)
            .bind(f.bytes)
            .bind(&f.sha256)
            .bind(f.modified)
            .bind(f.window_start)
            .bind(f.window_end)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO export_partitions (dataset, partition, window_start, window_end,
                                            fingerprint, rows, exported_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (dataset, partition) DO UPDATE SET window_start = EXCLUDED.window_start,
               window_end = EXCLUDED.window_end, fingerprint = EXCLUDED.fingerprint,
               rows = EXCLUDED.rows, exported_at = EXCLUDED.exported_at",
        )
        .bind(dataset)
        .bind(&partition.partition)
        .bind(partition.window_start)
        .bind(partition.window_end)
        .bind(&partition.fingerprint)
        .bind(partition.rows)
        .bind(partition.exported_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every exported partition of a dataset, oldest first.
    pub async fn exported_partitions(&self, dataset: &str) -> Result<Vec<PartitionRecord>> {
        Ok(sqlx::query_as(
            "SELECT partition, window_start, window_end, fingerprint, rows, exported_at
             FROM export_partitions WHERE dataset = $1 ORDER BY window_start",
        )
        .bind(dataset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The published files of a dataset, by partition then format.
    pub async fn export_files(&self, dataset: &str) -> Result<Vec<ExportFileRecord>> {
        Ok(sqlx::query_as(
            "SELECT dataset, partition, format, path, rows, bytes, sha256, modified, window_start,
                    window_end
             FROM export_files WHERE dataset = $1 ORDER BY window_start, format",
        )
        .bind(dataset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The published file at `path` (relative to the export directory), if recorded.
    pub async fn export_file(&self, path: &str) -> Result<Option<ExportFileRecord>> {
        Ok(sqlx::query_as(
            "SELECT dataset, partition, format, path, rows, bytes, sha256, modified, window_start,
                    window_end
             FROM export_files WHERE path = $1",
        )
        .bind(path)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The newest runs (of one dataset, if given), newest first.
    pub async fn export_runs(&self, dataset: Option<&str>, limit: i64) -> Result<Vec<ExportRun>> {
        Ok(sqlx::query_as(
            "SELECT id, dataset, trigger, window_start, window_end, started_at, finished_at,
                    status, partitions, rows, bytes, error
             FROM export_runs WHERE $1::text IS NULL OR dataset = $1
             ORDER BY started_at DESC, id DESC LIMIT $2",
        )
        .bind(dataset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Rows per chunk of an export stream.
pub const CHUNK_ROWS: usize = 8192;

/// Runs a streaming query on its own task and hands its rows over in chunks of
/// [`CHUNK_ROWS`] through a channel of a few chunks, so memory stays bounded however many rows
/// there are and the consumer's pace throttles the query. Dropping the receiver cancels it.
fn chunked<T, F>(pool: sqlx::PgPool, query: F) -> tokio::sync::mpsc::Receiver<Result<Vec<T>>>
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

/// The fingerprint query on `conn` (inside a transaction that allows long statements; its
/// settings are changed with `SET LOCAL`).
async fn fingerprint_on(
    conn: &mut sqlx::PgConnection,
    binds: Binds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(i64, String)> {
    // Serial: it runs beside the export's COPY, and parallel workers on a small machine only
    // take the cores the COPY and the file encoder need (14 s parallel vs 10 s serial for 10 M
    // rows in the benchmark city, with more CPU time in total).
    sqlx::Executor::execute(&mut *conn, "SET LOCAL max_parallel_workers_per_gather = 0").await?;
    Ok(bind_selection(sqlx::query_as(FINGERPRINT_SQL), binds)
        .bind(from)
        .bind(to)
        .fetch_one(conn)
        .await?)
}

/// A device of a raw export, in file order.
struct RawDevice {
    dev_eui: i64,
    sensor_id: String,
    /// None: in the fingerprint, not in the files.
    location: Option<(f64, f64)>,
}

/// Bytes per reading held while sorting, at most: 16 for time and value, and buckets grow by
/// half their size, so up to a third of a bucket is unused.
const BYTES_PER_HELD_READING: usize = 24;

/// The work of [`Store::export_raw_with_fingerprint`], on `conn` inside its transaction.
async fn raw_export(
    conn: &mut sqlx::PgConnection,
    binds: Binds,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    sort_memory_bytes: usize,
    tx: &tokio::sync::mpsc::Sender<Result<RawColumns>>,
) -> Result<(i64, String)> {
    let (kinds, buildings, raw, indoor, sites, quantities) = binds;
    // PostgreSQL refuses NUL in text; say which setting has one.
    if let Some(v) = buildings.iter().chain(&sites).find(|v| v.contains('\0')) {
        return Err(StoreError::Invalid {
            field: "dataset selection",
            problem: format!("{v:?} contains a NUL character"),
        });
    }
    let rows: Vec<(i64, String, Option<f64>, Option<f64>)> = sqlx::query_as(RAW_DEVICES_SQL)
        .bind(&kinds)
        .bind(&buildings)
        .bind(raw)
        .bind(&indoor)
        .bind(&sites)
        .fetch_all(&mut *conn)
        .await?;
    let devices: Vec<RawDevice> = rows
        .into_iter()
        .map(|(dev_eui, sensor_id, lon, lat)| RawDevice {
            dev_eui,
            sensor_id,
            location: lon.zip(lat),
        })
        .collect();
    // The port of PostgreSQL's float hash must agree with this server (byte order);
    // otherwise the database sums the fingerprint, in the same snapshot.
    let (seed, value) = fingerprint::PROBE;
    let server: i64 = sqlx::query_scalar("SELECT hashfloat8extended($1, $2)")
        .bind(value)
        .bind(seed)
        .fetch_one(&mut *conn)
        .await?;
    let port_ok = server == fingerprint::hash_float8_extended(value, seed);
    if !port_ok {
        tracing::warn!(
            server,
            "PostgreSQL's hashfloat8extended differs from the built-in port (another byte \
             order?): the export's fingerprint is summed by the database instead"
        );
    }

    let all: Vec<i64> = devices.iter().map(|d| d.dev_eui).collect();
    // Passes by the planner's estimate: an estimate too low by half means twice the memory.
    let estimate = estimated_rows(conn, &all, &quantities, from, to).await?;
    let per_pass = (sort_memory_bytes / BYTES_PER_HELD_READING).max(1);
    let passes = estimate.div_ceil(per_pass).clamp(1, devices.len().max(1));
    let per_slice = devices.len().div_ceil(passes).max(1);
    tracing::debug!(estimate, passes, devices = devices.len(), "raw export scan");

    let mut fp = Fingerprint::default();
    let mut out = Emitter::new(tx, &quantities);
    for slice in devices.chunks(per_slice) {
        let eui: Vec<i64> = slice.iter().map(|d| d.dev_eui).collect();
        let sql = format!(
            "COPY ({}) TO STDOUT (FORMAT binary)",
            scan_sql(&eui, &quantities, from, to)
        );
        let started = std::time::Instant::now();
        let mut buckets = Buckets::new(slice, &quantities);
        let mut parser = ReadingCopyParser::default();
        let mut stream = conn.copy_out_raw(&sql).await?;
        while let Some(bytes) = stream.next().await {
            parser.feed(&bytes?, |r| {
                if port_ok {
                    fp.add(r.dev_eui, r.quantity, r.time_us, r.value);
                }
                buckets.push(&r);
            })?;
        }
        parser.finish()?;
        drop(stream);
        let scanned = started.elapsed();
        if !out.emit(slice, buckets).await {
            return Err(StoreError::Invalid {
                field: "raw export",
                problem: "the file writer stopped reading".into(),
            });
        }
        tracing::debug!(
            devices = slice.len(),
            scan_ms = scanned.as_millis() as u64,
            emit_ms = (started.elapsed() - scanned).as_millis() as u64,
            "raw export pass"
        );
    }
    out.flush().await;
    if port_ok {
        Ok((fp.count(), fp.text()))
    } else {
        fingerprint_on(
            conn,
            (kinds, buildings, raw, indoor, sites, quantities),
            from,
            to,
        )
        .await
    }
}

/// The planner's estimate of the rows a scan will return (cheap: no rows are read).
async fn estimated_rows(
    conn: &mut sqlx::PgConnection,
    devices: &[i64],
    quantities: &[i16],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<usize> {
    let select = scan_sql(devices, quantities, from, to);
    let plan: serde_json::Value = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {select}"))
        .fetch_one(conn)
        .await?;
    Ok(plan[0]["Plan"]["Plan Rows"]
        .as_f64()
        .unwrap_or(0.0)
        .max(0.0) as usize)
}

/// One pass's readings, bucketed by (sensor, quantity) in file order.
struct Buckets {
    /// `dev_eui` → index in the pass's slice, of the devices with a location (the others
    /// have no rows in the files).
    index: HashMap<i64, usize>,
    /// Quantity ids in file order.
    quantities: Vec<i16>,
    /// `(time_us, value)` per device × quantity.
    cells: Vec<Vec<(i64, f64)>>,
}

impl Buckets {
    fn new(slice: &[RawDevice], quantities: &[i16]) -> Buckets {
        Buckets {
            index: (slice.iter().enumerate())
                .filter(|(_, d)| d.location.is_some())
                .map(|(i, d)| (d.dev_eui, i))
                .collect(),
            quantities: quantities.to_vec(),
            cells: (0..slice.len() * quantities.len())
                .map(|_| Vec::new())
                .collect(),
        }
    }

    fn push(&mut self, r: &ScannedReading) {
        let (Some(&d), Some(q)) = (
            self.index.get(&r.dev_eui),
            self.quantities.iter().position(|&q| q == r.quantity),
        ) else {
            return;
        };
        let cell = &mut self.cells[d * self.quantities.len() + q];
        // Growth by half (not doubled, as `push` would): less memory left unused.
        if cell.len() == cell.capacity() {
            cell.reserve_exact(cell.capacity() / 2 + 16);
        }
        cell.push((r.time_us, r.value));
    }
}

/// Turns buckets into chunks of [`RawColumns`] and sends them.
struct Emitter<'a> {
    tx: &'a tokio::sync::mpsc::Sender<Result<RawColumns>>,
    quantities: Vec<i16>,
    cols: RawColumns,
}

impl<'a> Emitter<'a> {
    fn new(tx: &'a tokio::sync::mpsc::Sender<Result<RawColumns>>, quantities: &[i16]) -> Self {
        Emitter {
            tx,
            quantities: quantities.to_vec(),
            cols: RawColumns::with_capacity(CHUNK_ROWS),
        }
    }

    /// Sends a pass's rows in file order; false when the receiver is gone.
    async fn emit(&mut self, slice: &[RawDevice], buckets: Buckets) -> bool {
        let nq = self.quantities.len();
        for (i, mut cell) in buckets.cells.into_iter().enumerate() {
            let d = &slice[i / nq];
            let Some((lon, lat)) = d.location else {
                continue;
            };
            // Usually already in time order (the table is filled in time order); late
            // readings are not.
            if !cell.is_sorted_by_key(|&(t, _)| t) {
                cell.sort_unstable_by_key(|&(t, _)| t);
            }
            let quantity = self.quantities[i % nq];
            for (t, v) in cell {
                let c = &mut self.cols;
                c.time_us.push(t);
                c.ids.push_str(&d.sensor_id);
                c.id_ends.push(c.ids.len());
                c.quantity.push(quantity);
                c.value.push(v);
                c.lon.push(lon);
                c.lat.push(lat);
                if c.len() >= CHUNK_ROWS && !self.send().await {
                    return false;
                }
            }
        }
        true
    }

    async fn send(&mut self) -> bool {
        let full = std::mem::replace(&mut self.cols, RawColumns::with_capacity(CHUNK_ROWS));
        self.tx.send(Ok(full)).await.is_ok()
    }

    async fn flush(&mut self) {
        if !self.cols.is_empty() {
            self.send().await;
        }
    }
}

/// Export statements read whole partitions (10 M readings a day in the benchmark city): far
/// longer than the pool's `database.statement_timeout_ms`, which is meant for API requests.
const EXPORT_STATEMENT_TIMEOUT: &str = "1h";

/// A read-only transaction whose statements may run up to [`EXPORT_STATEMENT_TIMEOUT`]
/// (`SET LOCAL`: the pooled connection keeps its own timeout afterwards).
async fn long_running(pool: &sqlx::PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = '{EXPORT_STATEMENT_TIMEOUT}'"
    ))
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}
