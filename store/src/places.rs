//! Places: parking sites (ParkAPI v3 static data), buildings and their rooms.

use crate::{Result, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use stadtpuls_gateways::Position;

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
        if self.uid.is_empty() || self.uid.chars().count() > 256 {
            return Err(bad("uid", "must be 1..256 characters".into()));
        }
        if self.name.is_empty() || self.name.chars().count() > 256 {
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
        if Position::new(self.lat, self.lon).is_err() {
            return Err(bad("lat/lon", format!("site {}: outside WGS84", self.uid)));
        }
        Ok(())
    }
}

/// Inserts or updates one site; `true` when it was new.
async fn upsert_site(conn: &mut sqlx::PgConnection, s: &ParkingSite) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "INSERT INTO parking_sites AS p (uid, name, type, purpose, capacity, lat, lon, geometry, address,
                                         operator_name, opening_hours, static_data_updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (uid) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
           purpose = EXCLUDED.purpose, capacity = EXCLUDED.capacity, lat = EXCLUDED.lat,
           lon = EXCLUDED.lon, geometry = EXCLUDED.geometry, address = EXCLUDED.address,
           operator_name = EXCLUDED.operator_name, opening_hours = EXCLUDED.opening_hours,
           static_data_updated_at = EXCLUDED.static_data_updated_at
         RETURNING (xmax = 0)",
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
    .fetch_one(&mut *conn)
    .await?)
}

/// Inserts or updates one building; `true` when it was new.
async fn upsert_building(conn: &mut sqlx::PgConnection, b: &Building) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "INSERT INTO buildings (id, name, lat, lon, address) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
           address = EXCLUDED.address, updated_at = now()
         RETURNING (xmax = 0)",
    )
    .bind(&b.id)
    .bind(&b.name)
    .bind(b.lat)
    .bind(b.lon)
    .bind(&b.address)
    .fetch_one(&mut *conn)
    .await?)
}

/// Inserts or updates one room; `true` when it was new. An unknown building is `Invalid`.
async fn upsert_room(conn: &mut sqlx::PgConnection, r: &Room) -> Result<bool> {
    sqlx::query_scalar(
        "INSERT INTO rooms (building_id, id, name, floor, usage) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (building_id, id) DO UPDATE SET name = EXCLUDED.name, floor = EXCLUDED.floor,
           usage = EXCLUDED.usage, updated_at = now()
         RETURNING (xmax = 0)",
    )
    .bind(&r.building_id)
    .bind(&r.id)
    .bind(&r.name)
    .bind(&r.floor)
    .bind(&r.usage)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => StoreError::Invalid {
            field: "building_id",
            problem: format!("room {}: building '{}' does not exist", r.id, r.building_id),
        },
        _ => StoreError::from(e),
    })
}

impl Building {
    /// Checks id, name and coordinates; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, problem: String| StoreError::Invalid { field, problem };
        if self.id.is_empty() || self.id.chars().count() > 128 {
            return Err(bad("id", "must be 1..128 characters".into()));
        }
        if self.name.is_empty() || self.name.chars().count() > 256 {
            return Err(bad(
                "name",
                format!("building {}: must be 1..256 characters", self.id),
            ));
        }
        match (self.lat, self.lon) {
            (None, None) => Ok(()),
            (Some(lat), Some(lon)) if Position::new(lat, lon).is_ok() => Ok(()),
            (Some(_), Some(_)) => Err(bad(
                "lat/lon",
                format!("building {}: outside WGS84", self.id),
            )),
            _ => Err(bad(
                "lat/lon",
                format!("building {}: give both lat and lon, or neither", self.id),
            )),
        }
    }
}

impl Room {
    /// Checks ids and name; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, problem: String| StoreError::Invalid { field, problem };
        if self.id.is_empty() || self.id.chars().count() > 128 {
            return Err(bad("id", "must be 1..128 characters".into()));
        }
        if self.name.is_empty() || self.name.chars().count() > 256 {
            return Err(bad(
                "name",
                format!("room {}: must be 1..256 characters", self.id),
            ));
        }
        Ok(())
    }
}

/// What a delete did: whether the place existed, and how many devices were detached from it
/// (their `site_id` or `building_id`/`room_id` set to NULL; their readings stay).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub existed: bool,
    pub devices_detached: u64,
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
        for b in buildings {
            b.validate()?;
        }
        for r in rooms {
            r.validate()?;
        }
        let mut tx = self.pool.begin().await?;
        for s in sites {
            upsert_site(&mut tx, s).await?;
        }
        for b in buildings {
            upsert_building(&mut tx, b).await?;
        }
        for r in rooms {
            upsert_room(&mut tx, r).await?;
        }
        tx.commit().await?;
        Ok(PlacesOutcome {
            sites: sites.len() as u64,
            buildings: buildings.len() as u64,
            rooms: rooms.len() as u64,
        })
    }

    /// Creates or replaces one parking site; `true` when it was new.
    pub async fn put_parking_site(&self, site: &ParkingSite) -> Result<bool> {
        site.validate()?;
        let mut conn = self.pool.acquire().await?;
        upsert_site(&mut conn, site).await
    }

    /// Creates or replaces one building; `true` when it was new.
    pub async fn put_building(&self, building: &Building) -> Result<bool> {
        building.validate()?;
        let mut conn = self.pool.acquire().await?;
        upsert_building(&mut conn, building).await
    }

    /// Creates or replaces one room of an existing building; `true` when it was new.
    pub async fn put_room(&self, room: &Room) -> Result<bool> {
        room.validate()?;
        let mut conn = self.pool.acquire().await?;
        upsert_room(&mut conn, room).await
    }

    /// Deletes a parking site and detaches its devices, in one transaction.
    pub async fn delete_parking_site(&self, uid: &str) -> Result<Deleted> {
        self.detach_and_delete(
            "UPDATE devices SET site_id = NULL, updated_at = now() WHERE site_id = $1",
            "DELETE FROM parking_sites WHERE uid = $1",
            &[uid],
        )
        .await
    }

    /// Deletes a building with its rooms and building keys, and detaches its devices.
    pub async fn delete_building(&self, id: &str) -> Result<Deleted> {
        self.detach_and_delete(
            "UPDATE devices SET building_id = NULL, room_id = NULL, updated_at = now()
             WHERE building_id = $1",
            "DELETE FROM buildings WHERE id = $1",
            &[id],
        )
        .await
    }

    /// Deletes one room and detaches its devices from it (they stay in the building).
    pub async fn delete_room(&self, building_id: &str, id: &str) -> Result<Deleted> {
        self.detach_and_delete(
            "UPDATE devices SET room_id = NULL, updated_at = now()
             WHERE building_id = $1 AND room_id = $2",
            "DELETE FROM rooms WHERE building_id = $1 AND id = $2",
            &[building_id, id],
        )
        .await
    }

    /// Runs `detach` (an UPDATE of devices) and `delete` in one transaction, both with `keys`
    /// bound as $1, $2, …
    async fn detach_and_delete(
        &self,
        detach: &str,
        delete: &str,
        keys: &[&str],
    ) -> Result<Deleted> {
        let mut tx = self.pool.begin().await?;
        let run = |sql| keys.iter().fold(sqlx::query(sql), |q, k| q.bind(*k));
        let detached = run(detach).execute(&mut *tx).await?.rows_affected();
        let existed = run(delete).execute(&mut *tx).await?.rows_affected() > 0;
        tx.commit().await?;
        Ok(Deleted {
            existed,
            devices_detached: detached,
        })
    }

    /// One parking site, or `None`.
    pub async fn parking_site(&self, uid: &str) -> Result<Option<ParkingSite>> {
        let row: Option<SiteRow> = sqlx::query_as(
            "SELECT uid, name, type, purpose, capacity, lat, lon, geometry, address, operator_name,
                    opening_hours, static_data_updated_at
             FROM parking_sites WHERE uid = $1",
        )
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ParkingSite::from))
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
