//! The device registry: import (upsert), lookups and the ingest directory.

use crate::Result;
use crate::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use stadtpuls_gateways::{DevEui, Position};

/// The registry's enums live with the other domain types in `stadtpuls_gateways` (this crate
/// enables its `sqlx` feature for the PostgreSQL `device_kind`/`visibility` mappings); re-exported
/// here because the queries below take and return them.
pub use stadtpuls_gateways::{DeviceKind, Visibility};

/// A registry entry as imported by an operator.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDevice {
    pub dev_eui: DevEui,
    pub name: Option<String>,
    pub kind: DeviceKind,
    pub codec: Option<String>,
    pub visibility: Visibility,
    pub location: Option<Position>,
    pub site_id: Option<String>,
    pub building_id: Option<String>,
    pub room_id: Option<String>,
}

/// A device as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Device {
    pub dev_eui: DevEui,
    pub name: Option<String>,
    pub kind: DeviceKind,
    pub codec: Option<String>,
    pub visibility: Visibility,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub location_source: Option<String>,
    pub site_id: Option<String>,
    pub building_id: Option<String>,
    pub room_id: Option<String>,
    pub network_server: Option<String>,
    pub application: Option<String>,
    pub auto_registered: bool,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub battery_percent: Option<f64>,
    pub battery_voltage: Option<f64>,
    pub battery_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    dev_eui: i64,
    name: Option<String>,
    kind: DeviceKind,
    codec: Option<String>,
    visibility: Visibility,
    lat: Option<f64>,
    lon: Option<f64>,
    location_source: Option<String>,
    site_id: Option<String>,
    building_id: Option<String>,
    room_id: Option<String>,
    network_server: Option<String>,
    application: Option<String>,
    auto_registered: bool,
    first_seen: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
    battery_percent: Option<f64>,
    battery_voltage: Option<f64>,
    battery_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl From<DeviceRow> for Device {
    fn from(r: DeviceRow) -> Self {
        Device {
            dev_eui: DevEui::from_i64(r.dev_eui),
            name: r.name,
            kind: r.kind,
            codec: r.codec,
            visibility: r.visibility,
            lat: r.lat,
            lon: r.lon,
            location_source: r.location_source,
            site_id: r.site_id,
            building_id: r.building_id,
            room_id: r.room_id,
            network_server: r.network_server,
            application: r.application,
            auto_registered: r.auto_registered,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            battery_percent: r.battery_percent,
            battery_voltage: r.battery_voltage,
            battery_at: r.battery_at,
            updated_at: r.updated_at,
        }
    }
}

const DEVICE_COLUMNS: &str =
    "dev_eui, name, kind, codec, visibility, lat, lon, location_source, site_id, building_id, room_id, \
     network_server, application, auto_registered, first_seen, last_seen, battery_percent, \
     battery_voltage, battery_at, updated_at";

/// A WGS84 bounding box (`min_lon, min_lat, max_lon, max_lat`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

/// Which devices a listing returns.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceFilter {
    pub bbox: Option<BBox>,
    /// Only `public` devices (the public API); `false` also returns private ones.
    pub public_only: bool,
}

/// What the ingest pipeline needs to know about a device before its data is written.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectoryEntry {
    pub dev_eui: DevEui,
    pub codec: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Counts of an import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub inserted: u64,
    pub updated: u64,
}

impl Store {
    /// Inserts or updates registry entries (re-import updates). An imported location pins the
    /// device position (`location_source = 'registry'`); network location events then leave it.
    pub async fn import_devices(&self, devices: &[NewDevice]) -> Result<ImportOutcome> {
        let mut out = ImportOutcome::default();
        let mut tx = self.pool.begin().await?;
        // Rows are locked in DevEUI order, like the ingest writer does, so an import running
        // beside the ingest cannot deadlock with it.
        let mut sorted: Vec<&NewDevice> = devices.iter().collect();
        sorted.sort_by_key(|d| d.dev_eui);
        for chunk in sorted.chunks(1000) {
            let mut eui = Vec::with_capacity(chunk.len());
            let (mut name, mut kind, mut codec, mut vis) = (vec![], vec![], vec![], vec![]);
            let (mut lat, mut lon, mut site, mut building, mut room) =
                (vec![], vec![], vec![], vec![], vec![]);
            for d in chunk {
                eui.push(d.dev_eui.as_i64());
                name.push(d.name.clone());
                kind.push(d.kind);
                codec.push(d.codec.clone());
                vis.push(d.visibility);
                lat.push(d.location.map(Position::lat));
                lon.push(d.location.map(Position::lon));
                site.push(d.site_id.clone());
                building.push(d.building_id.clone());
                room.push(d.room_id.clone());
            }
            let inserted: Vec<bool> = sqlx::query_scalar(
                "INSERT INTO devices AS d (dev_eui, name, kind, codec, visibility, lat, lon, location_source, site_id, building_id, room_id)
                 SELECT e, n, k, c, v, la, lo, CASE WHEN la IS NULL THEN NULL ELSE 'registry' END, s, b, r
                 FROM UNNEST($1::bigint[], $2::text[], $3::device_kind[], $4::text[], $5::visibility[],
                             $6::float8[], $7::float8[], $8::text[], $9::text[], $10::text[]) AS t(e, n, k, c, v, la, lo, s, b, r)
                 ON CONFLICT (dev_eui) DO UPDATE SET
                   name = EXCLUDED.name, kind = EXCLUDED.kind, codec = EXCLUDED.codec,
                   visibility = EXCLUDED.visibility,
                   lat = COALESCE(EXCLUDED.lat, d.lat), lon = COALESCE(EXCLUDED.lon, d.lon),
                   location_source = COALESCE(EXCLUDED.location_source, d.location_source),
                   site_id = EXCLUDED.site_id, building_id = EXCLUDED.building_id, room_id = EXCLUDED.room_id,
                   auto_registered = false, updated_at = now()
                 RETURNING (xmax = 0)",
            )
            .bind(&eui)
            .bind(&name)
            .bind(&kind)
            .bind(&codec)
            .bind(&vis)
            .bind(&lat)
            .bind(&lon)
            .bind(&site)
            .bind(&building)
            .bind(&room)
            .fetch_all(&mut *tx)
            .await?;
            for i in inserted {
                if i {
                    out.inserted += 1
                } else {
                    out.updated += 1
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn device(&self, dev_eui: DevEui) -> Result<Option<Device>> {
        let row: Option<DeviceRow> = sqlx::query_as(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE dev_eui = $1"
        ))
        .bind(dev_eui.as_i64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Device::from))
    }

    /// Devices matching the filter, ordered by DevEUI. A bbox filter returns located devices only.
    pub async fn devices(&self, filter: DeviceFilter) -> Result<Vec<Device>> {
        let b = filter.bbox;
        let rows: Vec<DeviceRow> = sqlx::query_as(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices
             WHERE (NOT $1 OR visibility = 'public')
               AND ($2::float8 IS NULL OR (lon BETWEEN $2 AND $4 AND lat BETWEEN $3 AND $5))
             ORDER BY dev_eui"
        ))
        .bind(filter.public_only)
        .bind(b.map(|b| b.min_lon))
        .bind(b.map(|b| b.min_lat))
        .bind(b.map(|b| b.max_lon))
        .bind(b.map(|b| b.max_lat))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Device::from).collect())
    }

    /// The given devices (in DevEUI order); unknown ones are left out.
    pub async fn devices_by_ids(&self, ids: &[DevEui]) -> Result<Vec<Device>> {
        let ids: Vec<i64> = ids.iter().map(|d| d.as_i64()).collect();
        let rows: Vec<DeviceRow> = sqlx::query_as(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE dev_eui = ANY($1) ORDER BY dev_eui"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Device::from).collect())
    }

    /// `(dev_eui, lat, lon, visibility)` of every located device, for the in-memory geo index.
    pub async fn located_devices(&self) -> Result<Vec<(DevEui, f64, f64, Visibility)>> {
        let rows: Vec<(i64, f64, f64, Visibility)> = sqlx::query_as(
            "SELECT dev_eui, lat, lon, visibility FROM devices WHERE lat IS NOT NULL AND lon IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(e, lat, lon, v)| (DevEui::from_i64(e), lat, lon, v))
            .collect())
    }

    /// A cheap fingerprint of the registry (newest change, row count): when it changes, caches
    /// built from the registry are rebuilt.
    pub async fn registry_stamp(&self) -> Result<(Option<DateTime<Utc>>, i64)> {
        Ok(
            sqlx::query_as("SELECT max(updated_at), count(*) FROM devices")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Registry entries changed after `since` (all when `None`), for the ingest's device cache.
    pub async fn directory_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DirectoryEntry>> {
        let rows: Vec<(i64, Option<String>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT dev_eui, codec, updated_at FROM devices
             WHERE $1::timestamptz IS NULL OR updated_at > $1 ORDER BY updated_at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(e, codec, updated_at)| DirectoryEntry {
                dev_eui: DevEui::from_i64(e),
                codec,
                updated_at,
            })
            .collect())
    }
}
