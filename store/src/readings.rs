//! Reading queries: per-device history (keyset paging), latest values, reprocessing from raw uplinks.

use crate::{BBox, DeviceKind, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use stadtpuls_gateways::{DevEui, Quantity};

/// One stored reading.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoredReading {
    pub quantity: Quantity,
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// Position in a newest-first listing: rows strictly older than this come next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReadingCursor {
    pub time: DateTime<Utc>,
    pub quantity: Quantity,
}

/// The latest value of one quantity of one located device, with what a map needs.
#[derive(Clone, Debug, PartialEq)]
pub struct LatestValue {
    pub dev_eui: DevEui,
    pub name: Option<String>,
    pub kind: DeviceKind,
    pub lat: f64,
    pub lon: f64,
    pub quantity: Quantity,
    pub time: DateTime<Utc>,
    pub value: f64,
}

#[derive(sqlx::FromRow)]
struct LatestRow {
    dev_eui: i64,
    name: Option<String>,
    kind: DeviceKind,
    lat: f64,
    lon: f64,
    quantity: i16,
    time: DateTime<Utc>,
    value: f64,
}

/// `(quantity id, time, value)` rows as readings.
fn to_readings(rows: Vec<(i16, DateTime<Utc>, f64)>) -> Result<Vec<StoredReading>> {
    rows.into_iter()
        .map(|(q, time, value)| {
            Ok(StoredReading {
                quantity: quantity_of(q)?,
                time,
                value,
            })
        })
        .collect()
}

impl TryFrom<LatestRow> for LatestValue {
    type Error = StoreError;
    fn try_from(r: LatestRow) -> Result<Self> {
        Ok(LatestValue {
            dev_eui: DevEui::from_i64(r.dev_eui),
            name: r.name,
            kind: r.kind,
            lat: r.lat,
            lon: r.lon,
            quantity: quantity_of(r.quantity)?,
            time: r.time,
            value: r.value,
        })
    }
}

fn quantity_of(id: i16) -> Result<Quantity> {
    Quantity::from_id(id).ok_or(StoreError::Corrupt {
        column: "quantity",
        problem: format!("unknown id {id}"),
    })
}

impl Store {
    /// Readings of one device in `[from, to)`, newest first, at most `limit`, after `cursor`.
    pub async fn readings(
        &self,
        dev_eui: DevEui,
        quantity: Option<Quantity>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<ReadingCursor>,
        limit: u32,
    ) -> Result<Vec<StoredReading>> {
        let rows: Vec<(i16, DateTime<Utc>, f64)> = sqlx::query_as(
            "SELECT quantity, time, value FROM readings
             WHERE dev_eui = $1 AND ($2::smallint IS NULL OR quantity = $2)
               AND time >= $3 AND time < $4
               AND ($5::timestamptz IS NULL OR (time, quantity) < ($5, $6::smallint))
             ORDER BY time DESC, quantity DESC
             LIMIT $7",
        )
        .bind(dev_eui.as_i64())
        .bind(quantity.map(Quantity::id))
        .bind(from)
        .bind(to)
        .bind(cursor.map(|c| c.time))
        .bind(cursor.map(|c| c.quantity.id()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        to_readings(rows)
    }

    /// Latest value per located device (and quantity), optionally restricted.
    pub async fn latest(
        &self,
        quantity: Option<Quantity>,
        bbox: Option<BBox>,
        public_only: bool,
    ) -> Result<Vec<LatestValue>> {
        let rows: Vec<LatestRow> = sqlx::query_as(
            "SELECT d.dev_eui, d.name, d.kind, d.lat, d.lon, l.quantity, l.time, l.value
             FROM latest_readings l JOIN devices d USING (dev_eui)
             WHERE d.lat IS NOT NULL
               AND (NOT $1 OR d.visibility = 'public')
               AND ($2::smallint IS NULL OR l.quantity = $2)
               AND ($3::float8 IS NULL OR (d.lon BETWEEN $3 AND $5 AND d.lat BETWEEN $4 AND $6))
             ORDER BY d.dev_eui, l.quantity",
        )
        .bind(public_only)
        .bind(quantity.map(Quantity::id))
        .bind(bbox.map(|b| b.min_lon))
        .bind(bbox.map(|b| b.min_lat))
        .bind(bbox.map(|b| b.max_lon))
        .bind(bbox.map(|b| b.max_lat))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(LatestValue::try_from).collect()
    }

    /// Latest values of the given located devices, optionally of one quantity.
    pub async fn latest_for(
        &self,
        ids: &[DevEui],
        quantity: Option<Quantity>,
        public_only: bool,
    ) -> Result<Vec<LatestValue>> {
        let ids: Vec<i64> = ids.iter().map(|d| d.as_i64()).collect();
        let rows: Vec<LatestRow> = sqlx::query_as(
            "SELECT d.dev_eui, d.name, d.kind, d.lat, d.lon, l.quantity, l.time, l.value
             FROM latest_readings l JOIN devices d USING (dev_eui)
             WHERE l.dev_eui = ANY($1) AND d.lat IS NOT NULL
               AND ($2::smallint IS NULL OR l.quantity = $2)
               AND (NOT $3 OR d.visibility = 'public')
             ORDER BY d.dev_eui, l.quantity",
        )
        .bind(&ids)
        .bind(quantity.map(Quantity::id))
        .bind(public_only)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(LatestValue::try_from).collect()
    }

    /// Latest value of every quantity of one device.
    pub async fn latest_of_device(&self, dev_eui: DevEui) -> Result<Vec<StoredReading>> {
        let rows: Vec<(i16, DateTime<Utc>, f64)> = sqlx::query_as(
            "SELECT quantity, time, value FROM latest_readings WHERE dev_eui = $1 ORDER BY quantity",
        )
        .bind(dev_eui.as_i64())
        .fetch_all(&self.pool)
        .await?;
        to_readings(rows)
    }

    /// Counts of readings, uplinks and dead letters (operator overview, tests).
    pub async fn counts(&self) -> Result<Counts> {
        let (readings, uplinks, dead_letters, devices): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM uplinks),
                    (SELECT count(*) FROM dead_letters), (SELECT count(*) FROM devices)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Counts {
            readings,
            uplinks,
            dead_letters,
            devices,
        })
    }
}

/// Row counts of the main tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub readings: i64,
    pub uplinks: i64,
    pub dead_letters: i64,
    pub devices: i64,
}
