//! Places: parking sites (ParkAPI v3 static data), buildings and their rooms.

use crate::{Result, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// ParkAPI v3 parking-site types.
pub const PARKING_SITE_TYPES: &[&str] = &[
    "ON_STREET",
    "OFF_STREET_PARKING_GROUND",
    "UNDERGROUND",
    "CAR_PARK",
    "WALL_LOOPS",
    "STANDS",
    "LOCKERS",
    "SHED",
    "TWO_TIER",
    "BUILDING",
    "OTHER",
];

/// ParkAPI v3 purposes.
pub const PARKING_PURPOSES: &[&str] = &["CAR", "BIKE", "MOTORCYCLE", "ITEM"];

/// A parking site's static data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParkingSite {
    pub uid: String,
    pub name: String,
    #[serde(rename = "type")]
    pub site_type: String,
    pub purpose: String,
    pub capacity: i32,
    pub lat: f64,
    pub lon: f64,
    /// GeoJSON Polygon/MultiPolygon outline, if known.
    pub geometry: Option<serde_json::Value>,
    pub address: Option<String>,
    pub operator_name: Option<String>,
    /// OSM `opening_hours` syntax.
    pub opening_hours: Option<String>,
    pub static_data_updated_at: DateTime<Utc>,
}

/// A building (rooms are separate rows).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Building {
    pub id: String,
    pub name: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub address: Option<String>,
}

/// A room of a building.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Room {
    pub building_id: String,
    pub id: String,
    pub name: String,
    pub floor: Option<String>,
    pub usage: Option<String>,
}

/// Counts of a places import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlacesOutcome {
    pub sites: u64,
    pub buildings: u64,
    pub rooms: u64,
}

impl ParkingSite {
    /// Checks the ParkAPI enumerations and coordinates; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, problem: String| StoreError::Invalid { field, problem };
        if self.uid.is_empty() || self.uid.len() > 256 {
            return Err(bad("uid", "must be 1..256 characters".into()));
        }
        if self.name.is_empty() || self.name.len() > 256 {
            return Err(bad(
                "name",
                format!("site {}: must be 1..256 characters", self.uid),
            ));
        }
        if !PARKING_SITE_TYPES.contains(&self.site_type.as_str()) {
            return Err(bad(
                "type",
                format!(
                    "site {}: '{}' is not one of {}",
                    self.uid,
                    self.site_type,
                    PARKING_SITE_TYPES.join(", ")
                ),
            ));
        }
        if !PARKING_PURPOSES.contains(&self.purpose.as_str()) {
            return Err(bad(
                "purpose",
                format!(
                    "site {}: '{}' is not one of {}",
                    self.uid,
                    self.purpose,
                    PARKING_PURPOSES.join(", ")
                ),
            ));
        }
        if self.capacity < 0 {
            return Err(bad(
                "capacity",
                format!("site {}: must not be negative", self.uid),
            ));
        }
        if !(-90.0..=90.0).contains(&self.lat) || !(-180.0..=180.0).contains(&self.lon) {
            return Err(bad("lat/lon", format!("site {}: outside WGS84", self.uid)));
        }
        Ok(())
    }
}

impl Store {
    /// Inserts or updates sites, buildings and rooms in one transaction (re-import updates).
    pub async fn import_places(
        &self,
        sites: &[ParkingSite],
        buildings: &[Building],
        rooms: &[Room],
    ) -> Result<PlacesOutcome> {
        for s in sites {
            s.validate()?;
        }
        let mut tx = self.pool.begin().await?;
        for s in sites {
            sqlx::query(
                "INSERT INTO parking_sites AS p (uid, name, type, purpose, capacity, lat, lon, geometry, address,
                                                 operator_name, opening_hours, static_data_updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (uid) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
                   purpose = EXCLUDED.purpose, capacity = EXCLUDED.capacity, lat = EXCLUDED.lat,
                   lon = EXCLUDED.lon, geometry = EXCLUDED.geometry, address = EXCLUDED.address,
                   operator_name = EXCLUDED.operator_name, opening_hours = EXCLUDED.opening_hours,
                   static_data_updated_at = EXCLUDED.static_data_updated_at",
            )
            .bind(&s.uid)
            .bind(&s.name)
            .bind(&s.site_type)
            .bind(&s.purpose)
            .bind(s.capacity)
            .bind(s.lat)
            .bind(s.lon)
            .bind(&s.geometry)
            .bind(&s.address)
            .bind(&s.operator_name)
            .bind(&s.opening_hours)
            .bind(s.static_data_updated_at)
            .execute(&mut *tx)
            .await?;
        }
        for b in buildings {
            sqlx::query(
                "INSERT INTO buildings (id, name, lat, lon, address) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
                   address = EXCLUDED.address, updated_at = now()",
            )
            .bind(&b.id)
            .bind(&b.name)
            .bind(b.lat)
            .bind(b.lon)
            .bind(&b.address)
            .execute(&mut *tx)
            .await?;
        }
        for r in rooms {
            sqlx::query(
                "INSERT INTO rooms (building_id, id, name, floor, usage) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (building_id, id) DO UPDATE SET name = EXCLUDED.name, floor = EXCLUDED.floor,
                   usage = EXCLUDED.usage, updated_at = now()",
            )
            .bind(&r.building_id)
            .bind(&r.id)
            .bind(&r.name)
            .bind(&r.floor)
            .bind(&r.usage)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => StoreError::Invalid {
                    field: "building_id",
                    problem: format!("room {}: building '{}' does not exist", r.id, r.building_id),
                },
                _ => StoreError::from(e),
            })?;
        }
        tx.commit().await?;
        Ok(PlacesOutcome {
            sites: sites.len() as u64,
            buildings: buildings.len() as u64,
            rooms: rooms.len() as u64,
        })
    }

    pub async fn parking_sites(&self) -> Result<Vec<ParkingSite>> {
        let rows: Vec<SiteRow> = sqlx::query_as(
            "SELECT uid, name, type, purpose, capacity, lat, lon, geometry, address, operator_name,
                    opening_hours, static_data_updated_at
             FROM parking_sites ORDER BY uid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ParkingSite::from).collect())
    }

    pub async fn buildings(&self) -> Result<Vec<Building>> {
        Ok(
            sqlx::query_as::<_, (String, String, Option<f64>, Option<f64>, Option<String>)>(
                "SELECT id, name, lat, lon, address FROM buildings ORDER BY id",
            )
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(id, name, lat, lon, address)| Building {
                id,
                name,
                lat,
                lon,
                address,
            })
            .collect(),
        )
    }

    pub async fn rooms(&self, building_id: &str) -> Result<Vec<Room>> {
        Ok(sqlx::query_as::<_, (String, String, String, Option<String>, Option<String>)>(
            "SELECT building_id, id, name, floor, usage FROM rooms WHERE building_id = $1 ORDER BY id",
        )
        .bind(building_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(building_id, id, name, floor, usage)| Room { building_id, id, name, floor, usage })
        .collect())
    }
}

#[derive(sqlx::FromRow)]
struct SiteRow {
    uid: String,
    name: String,
    #[sqlx(rename = "type")]
    site_type: String,
    purpose: String,
    capacity: i32,
    lat: f64,
    lon: f64,
    geometry: Option<serde_json::Value>,
    address: Option<String>,
    operator_name: Option<String>,
    opening_hours: Option<String>,
    static_data_updated_at: DateTime<Utc>,
}

impl From<SiteRow> for ParkingSite {
    fn from(r: SiteRow) -> Self {
        ParkingSite {
            uid: r.uid,
            name: r.name,
            site_type: r.site_type,
            purpose: r.purpose,
            capacity: r.capacity,
            lat: r.lat,
            lon: r.lon,
            geometry: r.geometry,
            address: r.address,
            operator_name: r.operator_name,
            opening_hours: r.opening_hours,
            static_data_updated_at: r.static_data_updated_at,
        }
    }
}
