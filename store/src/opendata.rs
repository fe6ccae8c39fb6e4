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
use crate::copy_out::{RawColumns, RawCopyParser};
use crate::{DeviceKind, Result, Store, StoreError};
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

/// The raw readings in the files' order. Shaped for that order: a nested loop over the
/// (sensor, quantity) pairs in file order, each reading its time range from the
/// (dev_eui, quantity, time) index backwards, leaves only small per-pair sorts (an incremental
/// sort); joining first and sorting after meant an external sort of the whole partition (10 M
/// rows: 57 s instead of about 15 s in the benchmark city).
const RAW_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    "
SELECT r.time, p.sensor_id, r.quantity, r.value, p.lon, p.lat
FROM (SELECT sel.dev_eui, sel.sensor_id, sel.lon, sel.lat, q.quantity, q.pos
      FROM sel CROSS JOIN unnest($6::int2[]) WITH ORDINALITY AS q(quantity, pos)
      WHERE sel.lat IS NOT NULL AND sel.lon IS NOT NULL
      ORDER BY sel.sensor_id COLLATE \"C\", q.pos) p
CROSS JOIN LATERAL (
    SELECT r.time, r.quantity, r.value FROM readings r
    WHERE r.dev_eui = p.dev_eui AND r.quantity = p.quantity AND r.time >= $7 AND r.time < $8
    ORDER BY r.time
) r
ORDER BY p.sensor_id COLLATE \"C\", p.pos, r.time"
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

/// A string as an SQL literal (with `standard_conforming_strings` on: only `'` is special).
fn quote_literal(v: &str) -> Result<String> {
    if v.contains('\0') {
        return Err(StoreError::Invalid {
            field: "dataset selection",
            problem: format!("{v:?} contains a NUL character"),
        });
    }
    Ok(format!("'{}'", v.replace('\'', "''")))
}

/// `ARRAY['a','b']::text[]`.
fn text_array<S: AsRef<str>>(items: &[S]) -> Result<String> {
    let quoted: Result<Vec<String>> = items.iter().map(|i| quote_literal(i.as_ref())).collect();
    Ok(format!("ARRAY[{}]::text[]", quoted?.join(",")))
}

/// [`RAW_SQL`] as a `COPY … TO STDOUT (FORMAT binary)` statement: COPY takes no bind
/// parameters, so `$1`–`$8` become literals (typed as the parameters were).
fn raw_copy_sql(sel: &Selection, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<String> {
    let (kinds, buildings, raw, indoor, sites, quantities) = sel.binds();
    let ts = |t: DateTime<Utc>| {
        format!(
            "'{}'::timestamptz",
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    };
    let values = [
        text_array(&kinds)?,
        text_array(&buildings)?,
        raw.to_string(),
        text_array(&indoor)?,
        text_array(&sites)?,
        format!(
            "ARRAY[{}]::int2[]",
            quantities
                .iter()
                .map(i16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        ts(from),
        ts(to),
    ];
    let mut sql = RAW_SQL.to_string();
    // Highest first, so that `$1` never matches the start of a longer placeholder.
    for (i, v) in values.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", i + 1), v);
    }
    Ok(format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
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
    /// [`Store::export_fingerprint`]), both read from one snapshot.
    ///
    /// The readings come ordered by sensor, quantity and time, in chunks of about
    /// [`CHUNK_ROWS`] through a channel of a few chunks (memory stays bounded however many rows
    /// there are; the query stops when the receiver is dropped), read with binary COPY straight
    /// into columns (see [`crate::copy_out`]); a failure is the channel's last item. The
    /// fingerprint is summed on a second connection while the rows stream (on two cores the
    /// database sorts the rows on one and sums on the other), and it describes exactly the rows
    /// in the file, so a late reading arriving in between is seen as a change next time. Needs
    /// two connections.
    pub async fn export_raw_with_fingerprint(
        &self,
        sel: &Selection,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(
        tokio::sync::mpsc::Receiver<Result<RawColumns>>,
        tokio::task::JoinHandle<Result<(i64, String)>>,
    )> {
        // Private connections: a transaction abandoned half-way must not go back to the pool.
        let mut fp_conn = self.pool.acquire().await?.detach();
        let setup = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET LOCAL statement_timeout = '{EXPORT_STATEMENT_TIMEOUT}'"
        );
        sqlx::Executor::execute(&mut fp_conn, setup.as_str()).await?;
        let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut fp_conn)
            .await?;
        let (imported_tx, imported_rx) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let sql = raw_copy_sql(sel, from, to);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = copy_raw(pool, sql, (snapshot, imported_tx), &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        let binds = sel.binds();
        let fingerprint = tokio::spawn(async move {
            let r = fingerprint_on(&mut fp_conn, binds, from, to).await;
            // An exported snapshot lives as long as its transaction: keep it open until the
            // COPY's connection has taken it (or given up).
            let _ = imported_rx.await;
            let _ = sqlx::Executor::execute(&mut fp_conn, "COMMIT").await;
            r
        });
        Ok((rx, fingerprint))
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

/// Runs the raw export's COPY and sends its rows in chunks (see
/// [`Store::export_raw_with_fingerprint`]).
async fn copy_raw(
    pool: sqlx::PgPool,
    sql: Result<String>,
    snapshot: (String, tokio::sync::oneshot::Sender<()>),
    tx: &tokio::sync::mpsc::Sender<Result<RawColumns>>,
) -> Result<()> {
    let sql = sql?;
    // A connection of its own, closed afterwards instead of going back to the pool: a COPY
    // abandoned half-way (receiver gone) leaves it mid-protocol.
    let mut conn = pool.acquire().await?.detach();
    let (id, imported) = snapshot;
    // The id comes from pg_export_snapshot (hex digits and dashes).
    if !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(StoreError::Corrupt {
            column: "pg_export_snapshot",
            problem: format!("unexpected snapshot id {id:?}"),
        });
    }
    let begin =
        format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{id}'");
    sqlx::Executor::execute(&mut conn, begin.as_str()).await?;
    let _ = imported.send(());
    // The statement carries its values as literals (COPY takes no parameters), quoted for
    // `standard_conforming_strings`.
    let setup = format!(
        "SET statement_timeout = '{EXPORT_STATEMENT_TIMEOUT}'; SET standard_conforming_strings = on"
    );
    sqlx::Executor::execute(&mut conn, setup.as_str()).await?;
    let mut stream = conn.copy_out_raw(&sql).await?;
    let mut parser = RawCopyParser::default();
    let mut cols = RawColumns::with_capacity(CHUNK_ROWS);
    while let Some(bytes) = stream.next().await {
        parser.feed(&bytes?, &mut cols)?;
        if cols.len() >= CHUNK_ROWS {
            let full = std::mem::replace(&mut cols, RawColumns::with_capacity(CHUNK_ROWS));
            if tx.send(Ok(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    parser.finish()?;
    if !cols.is_empty() {
        let _ = tx.send(Ok(cols)).await;
    }
    Ok(())
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
