//! The raw export: the selected devices in file order, one COPY scan of their readings per
//! pass (as many passes as `sort_memory_bytes` needs), bucketed by sensor and quantity and
//! sent on as column chunks, with the fingerprint read from the same snapshot.

use super::selection::{fingerprint_on, Binds};
use super::{Selection, CHUNK_ROWS, EXPORT_STATEMENT_TIMEOUT};
use crate::copy_out::{RawColumns, ReadingCopyParser, ScannedReading};
use crate::fingerprint::{self, Fingerprint};
use crate::{Result, Store, StoreError};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::HashMap;

/// The devices of a raw dataset in the files' order (Hilbert index of the position, then
/// sensor id byte-wise; see the module documentation of `opendata`). Devices without a
/// location count in the fingerprint but have no rows in the files (they come last).
const RAW_DEVICES_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    "
SELECT sel.dev_eui, sel.sensor_id, sel.lon, sel.lat FROM sel
ORDER BY hilbert_index(sel.lon, sel.lat), sel.sensor_id COLLATE \"C\""
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

impl Store {
    /// A raw dataset's readings in `[from, to)` and their fingerprint (as
    /// [`Store::export_fingerprint`]), both from one snapshot.
    ///
    /// The rows come in the files' order (sensors by position, then quantity and time) in
    /// chunks of about [`CHUNK_ROWS`] through a channel of a few chunks; a failure is the
    /// channel's last item and the task's result, and dropping the receiver stops the task.
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
