//! Building monitoring: the rooms of a building with their newest climate values, room-level
//! time buckets over the room's devices, and registry health (silent or low-battery devices).
//!
//! A device belongs to a room through `devices.building_id` + `devices.room_id` (a room id is
//! only unique within its building, so both columns are always matched together).
//!
//! The flags shown for a room ([`room_flags`]) are a pure function of what the queries return,
//! the caller's clock and the configured thresholds; nothing here reads the wall clock.

use crate::aggregates::{check_window, grid_cte, AggregateBucket, BucketWidth};
use crate::{Building, DeviceKind, Result, Room, Store, StoreError, Visibility};
use chrono::{DateTime, TimeDelta, Utc};
use stadtpuls_gateways::{DevEui, Quantity};

/// The quantities shown per room, in the order of [`RoomClimate`]'s fields.
pub const CLIMATE_QUANTITIES: [Quantity; 3] =
    [Quantity::Temperature, Quantity::Humidity, Quantity::Co2];

/// One newest value of a room.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClimateValue {
    pub value: f64,
    pub time: DateTime<Utc>,
}

/// A room with what its devices last reported.
///
/// With several devices in a room, each quantity shows the newest value among them (ties go to
/// the lowest DevEUI, so the answer is stable).
#[derive(Clone, Debug, PartialEq)]
pub struct RoomClimate {
    pub room: Room,
    /// Devices linked to the room.
    pub devices: i64,
    /// Newest reading of any quantity (battery included) from any of the room's devices.
    pub last_reading: Option<DateTime<Utc>>,
    pub temperature: Option<ClimateValue>,
    pub humidity: Option<ClimateValue>,
    pub co2: Option<ClimateValue>,
}

/// Thresholds behind [`room_flags`] (from `[buildings]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoomThresholds {
    /// CO₂ strictly above this (ppm) is `co2_high`.
    pub co2_alert_ppm: f64,
    /// A room whose newest reading is older than this is `stale`.
    pub stale_after: TimeDelta,
}

/// What deserves attention in a room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomFlags {
    /// The newest CO₂ value is above the alert level (whatever its age: `stale` says that).
    pub co2_high: bool,
    /// The room has devices but none reported within the window (or ever).
    pub stale: bool,
    /// No device is linked to the room, so nothing can be said about it.
    pub no_sensor: bool,
}

/// The flags of one room at `now`. Pure.
///
/// A reading exactly `stale_after` old still counts as fresh; readings from the future (clock
/// skew of a device) count as fresh too. A room without devices is `no_sensor`, never `stale`.
pub fn room_flags(room: &RoomClimate, now: DateTime<Utc>, t: &RoomThresholds) -> RoomFlags {
    let no_sensor = room.devices == 0;
    let stale = !no_sensor
        && match room.last_reading {
            None => true,
            Some(at) => now - at > t.stale_after,
        };
    let co2_high = room.co2.is_some_and(|c| c.value > t.co2_alert_ppm);
    RoomFlags {
        co2_high,
        stale,
        no_sensor,
    }
}

/// Which unhealthy devices to list.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceStatus {
    /// Never seen, or not seen within the silence window of the device's kind before `now`.
    Silent(SilenceWindows),
    /// Battery level known and strictly below this percentage.
    BatteryBelow(f64),
}

/// How long a device may stay quiet, per kind: kinds report at very different rates (a parking
/// bay on change plus a heartbeat, a room sensor every few minutes).
#[derive(Clone, Debug, PartialEq)]
pub struct SilenceWindows {
    pub now: DateTime<Utc>,
    /// For kinds not listed in `by_kind`.
    pub default_minutes: u32,
    pub by_kind: Vec<(DeviceKind, u32)>,
}

impl SilenceWindows {
    /// The window of `kind`, in minutes.
    pub fn minutes(&self, kind: DeviceKind) -> u32 {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(self.default_minutes, |(_, m)| *m)
    }
}

/// A device as the health listing shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceHealth {
    pub dev_eui: DevEui,
    pub name: Option<String>,
    pub kind: DeviceKind,
    pub visibility: Visibility,
    pub building_id: Option<String>,
    pub room_id: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    pub battery_percent: Option<f64>,
    pub battery_at: Option<DateTime<Utc>>,
}

type BuildingRow = (String, String, Option<f64>, Option<f64>, Option<String>);

type ClimateRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<DateTime<Utc>>,
    Option<i16>,
    Option<f64>,
    Option<DateTime<Utc>>,
);

/// Rooms of building $1 with device count, newest reading of any kind, and per quantity in $2
/// the newest value among the room's devices: one row per (room, quantity found), or a single
/// row with a NULL quantity for a room without any of them.
const ROOM_CLIMATE_SQL: &str = "
WITH linked AS (
    SELECT d.room_id, d.dev_eui
    FROM devices d
    WHERE d.building_id = $1 AND d.room_id IS NOT NULL
),
newest AS (
    SELECT DISTINCT ON (l.room_id, lr.quantity) l.room_id, lr.quantity, lr.value, lr.time
    FROM linked l JOIN latest_readings lr ON lr.dev_eui = l.dev_eui
    WHERE lr.quantity = ANY($2)
    ORDER BY l.room_id, lr.quantity, lr.time DESC, l.dev_eui
),
activity AS (
    SELECT l.room_id, count(DISTINCT l.dev_eui) AS devices, max(lr.time) AS last_reading
    FROM linked l LEFT JOIN latest_readings lr ON lr.dev_eui = l.dev_eui
    GROUP BY l.room_id
)
SELECT r.building_id, r.id, r.name, r.floor, r.usage, coalesce(a.devices, 0),
       a.last_reading, n.quantity, n.value, n.time
FROM rooms r
LEFT JOIN activity a ON a.room_id = r.id
LEFT JOIN newest n ON n.room_id = r.id
WHERE r.building_id = $1
ORDER BY r.id, n.quantity";

/// Buckets of one quantity over the devices $6 (`grid_cte` parameters $1–$5, $7 quantity).
///
/// The bucket grid is the one of `Store::aggregates` (UTC-aligned sub-day buckets,
/// local-midnight days), so a room's history lines up with its devices' aggregates. `avg`,
/// `min` and `max` are over all readings of all the devices in a bucket, so a device that
/// reports more often weighs more.
const ROOM_BUCKETS_SQL: &str = concat!(
    "WITH ",
    grid_cte!(),
    ",
per_bucket AS (
    SELECT CASE WHEN $5 THEN time_bucket($3::interval, r.time, $4)
                ELSE time_bucket($3::interval, r.time)
           END AS bucket_start,
           count(*) AS n, avg(r.value) AS avg, min(r.value) AS min, max(r.value) AS max
    FROM readings r, span
    WHERE r.dev_eui = ANY($6) AND r.quantity = $7
      AND r.time >= span.lo AND r.time < span.hi
      AND r.time >= $1::timestamptz - interval '2 days'
      AND r.time < $2::timestamptz + interval '2 days'
    GROUP BY 1
)
SELECT g.bucket_start, g.bucket_end, coalesce(p.n, 0), p.avg, p.min, p.max
FROM grid g LEFT JOIN per_bucket p USING (bucket_start)
ORDER BY g.bucket_start"
);

type RoomBucketRow = (
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

#[derive(sqlx::FromRow)]
struct HealthRow {
    dev_eui: i64,
    name: Option<String>,
    kind: DeviceKind,
    visibility: Visibility,
    building_id: Option<String>,
    room_id: Option<String>,
    last_seen: Option<DateTime<Utc>>,
    battery_percent: Option<f64>,
    battery_at: Option<DateTime<Utc>>,
}

impl From<HealthRow> for DeviceHealth {
    fn from(r: HealthRow) -> Self {
        DeviceHealth {
            dev_eui: DevEui::from_i64(r.dev_eui),
            name: r.name,
            kind: r.kind,
            visibility: r.visibility,
            building_id: r.building_id,
            room_id: r.room_id,
            last_seen: r.last_seen,
            battery_percent: r.battery_percent,
            battery_at: r.battery_at,
        }
    }
}

impl Store {
    /// One building, or `None` if there is no building with this id.
    pub async fn building(&self, id: &str) -> Result<Option<Building>> {
        let row: Option<BuildingRow> =
            sqlx::query_as("SELECT id, name, lat, lon, address FROM buildings WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, name, lat, lon, address)| Building {
            id,
            name,
            lat,
            lon,
            address,
        }))
    }

    /// One room with the DevEUIs of its devices (ascending), or `None` if the building has no
    /// such room.
    pub async fn room_with_devices(
        &self,
        building_id: &str,
        room_id: &str,
    ) -> Result<Option<(Room, Vec<DevEui>)>> {
        type Row = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Vec<i64>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT r.building_id, r.id, r.name, r.floor, r.usage,
                    coalesce(array_agg(d.dev_eui ORDER BY d.dev_eui)
                             FILTER (WHERE d.dev_eui IS NOT NULL), '{}')
             FROM rooms r
             LEFT JOIN devices d ON d.building_id = r.building_id AND d.room_id = r.id
             WHERE r.building_id = $1 AND r.id = $2
             GROUP BY r.building_id, r.id, r.name, r.floor, r.usage",
        )
        .bind(building_id)
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(building_id, id, name, floor, usage, euis)| {
            (
                Room {
                    building_id,
                    id,
                    name,
                    floor,
                    usage,
                },
                euis.into_iter().map(DevEui::from_i64).collect(),
            )
        }))
    }

    /// Every room of a building (by id) with its newest temperature, humidity and CO₂; empty
    /// for a building without rooms or an unknown building (ask [`Store::building`] first).
    pub async fn room_climate(&self, building_id: &str) -> Result<Vec<RoomClimate>> {
        let ids: Vec<i16> = CLIMATE_QUANTITIES.iter().map(|q| q.id()).collect();
        let rows: Vec<ClimateRow> = sqlx::query_as(ROOM_CLIMATE_SQL)
            .bind(building_id)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
        let mut rooms: Vec<RoomClimate> = Vec::new();
        for (b, id, name, floor, usage, devices, last_reading, quantity, value, time) in rows {
            // Rows come ordered by room, so a room's rows are adjacent.
            if rooms.last().is_none_or(|r| r.room.id != id) {
                rooms.push(RoomClimate {
                    room: Room {
                        building_id: b,
                        id,
                        name,
                        floor,
                        usage,
                    },
                    devices,
                    last_reading,
                    temperature: None,
                    humidity: None,
                    co2: None,
                });
            }
            let (Some(q), Some(value), Some(time)) = (quantity, value, time) else {
                continue;
            };
            let Some(room) = rooms.last_mut() else {
                continue;
            };
            let slot = match Quantity::from_id(q) {
                Some(Quantity::Temperature) => &mut room.temperature,
                Some(Quantity::Humidity) => &mut room.humidity,
                Some(Quantity::Co2) => &mut room.co2,
                _ => {
                    return Err(StoreError::Corrupt {
                        column: "latest_readings.quantity",
                        problem: format!("quantity {q} was not asked for"),
                    })
                }
            };
            *slot = Some(ClimateValue { value, time });
        }
        Ok(rooms)
    }

    /// Buckets of `quantity` over the readings of `devices` covering `[from, to)`, every bucket
    /// present (an empty one with count 0 and `None` values); same grid and time-zone rules as
    /// [`Store::aggregates`]. `sum` is always `None` (a sum over several devices' counters is
    /// not meaningful). No devices → all buckets empty.
    ///
    /// Errors: `to <= from` (`Invalid { field: "from" }`) and more than [`MAX_BUCKETS`](crate::aggregates::MAX_BUCKETS) buckets
    /// (`Invalid { field: "bucket" }`).
    pub async fn room_buckets(
        &self,
        devices: &[DevEui],
        quantity: Quantity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        width: BucketWidth,
        tz: &str,
    ) -> Result<Vec<AggregateBucket>> {
        check_window(from, to, width)?;
        let euis: Vec<i64> = devices.iter().map(|d| d.as_i64()).collect();
        let rows: Vec<RoomBucketRow> = sqlx::query_as(ROOM_BUCKETS_SQL)
            .bind(from)
            .bind(to)
            .bind(width.as_interval())
            .bind(tz)
            .bind(width == BucketWidth::Day)
            .bind(&euis)
            .bind(quantity.id())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(start, end, count, avg, min, max)| AggregateBucket {
                start,
                end,
                count,
                avg,
                min,
                max,
                sum: None,
            })
            .collect())
    }

    /// Devices (of any kind and visibility) matching `status`: silent ones ordered by last
    /// contact (never seen first), low-battery ones by battery level; then by DevEUI.
    pub async fn devices_with_status(&self, status: DeviceStatus) -> Result<Vec<DeviceHealth>> {
        let query = match status {
            DeviceStatus::Silent(w) => {
                let kinds: Vec<&str> = w.by_kind.iter().map(|(k, _)| k.as_str()).collect();
                let minutes: Vec<i32> = w
                    .by_kind
                    .iter()
                    .map(|(_, m)| i32::try_from(*m).unwrap_or(i32::MAX))
                    .collect();
                sqlx::query_as::<_, HealthRow>(SILENT_DEVICES_SQL)
                    .bind(w.now)
                    .bind(kinds)
                    .bind(minutes)
                    .bind(i32::try_from(w.default_minutes).unwrap_or(i32::MAX))
            }
            DeviceStatus::BatteryBelow(percent) => {
                sqlx::query_as::<_, HealthRow>(LOW_BATTERY_DEVICES_SQL).bind(percent)
            }
        };
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(DeviceHealth::from).collect())
    }
}

/// Devices never seen or last seen longer ago than their kind's window before $1: windows in
/// minutes per kind name ($2, $3), $4 for other kinds.
const SILENT_DEVICES_SQL: &str = "
SELECT d.dev_eui, d.name, d.kind, d.visibility, d.building_id, d.room_id, d.last_seen,
       d.battery_percent, d.battery_at
FROM devices d
LEFT JOIN UNNEST($2::text[], $3::int[]) AS w(kind, minutes) ON w.kind = d.kind::text
WHERE d.last_seen IS NULL
   OR d.last_seen < $1 - make_interval(mins => coalesce(w.minutes, $4))
ORDER BY d.last_seen ASC NULLS FIRST, d.dev_eui";

/// Devices whose last known battery level is below $1 percent (unknown levels are not listed).
const LOW_BATTERY_DEVICES_SQL: &str = "
SELECT dev_eui, name, kind, visibility, building_id, room_id, last_seen, battery_percent, battery_at
FROM devices
WHERE battery_percent < $1
ORDER BY battery_percent, dev_eui";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn room_flags_table() {
        let now = t("2024-05-01T12:00:00Z");
        let th = RoomThresholds {
            co2_alert_ppm: 1000.0,
            stale_after: TimeDelta::minutes(60),
        };
        let co2 = |value: f64| {
            Some(ClimateValue {
                value,
                time: t("2024-05-01T11:55:00Z"),
            })
        };
        let flags = |co2_high, stale, no_sensor| RoomFlags {
            co2_high,
            stale,
            no_sensor,
        };
        // (devices, last reading, CO₂, expected)
        let cases = [
            (
                1,
                Some("2024-05-01T11:55:00Z"),
                co2(1200.0),
                flags(true, false, false),
            ),
            (
                1,
                Some("2024-05-01T11:55:00Z"),
                co2(600.0),
                flags(false, false, false),
            ),
            // Exactly at the alert level is not above it.
            (
                1,
                Some("2024-05-01T11:55:00Z"),
                co2(1000.0),
                flags(false, false, false),
            ),
            (
                1,
                Some("2024-05-01T11:55:00Z"),
                co2(1000.1),
                flags(true, false, false),
            ),
            (
                1,
                Some("2024-05-01T11:55:00Z"),
                None,
                flags(false, false, false),
            ),
            // Exactly 60 minutes old is still fresh; one second more is stale.
            (
                1,
                Some("2024-05-01T11:00:00Z"),
                None,
                flags(false, false, false),
            ),
            (
                1,
                Some("2024-05-01T10:59:59Z"),
                None,
                flags(false, true, false),
            ),
            // An old high CO₂ value is both.
            (
                2,
                Some("2024-04-30T12:00:00Z"),
                co2(1500.0),
                flags(true, true, false),
            ),
            // Devices that never reported are stale.
            (1, None, None, flags(false, true, false)),
            // A reading from the future (device clock ahead) is not stale.
            (
                1,
                Some("2024-05-01T12:10:00Z"),
                None,
                flags(false, false, false),
            ),
            // A room without devices is neither stale nor high: it is unmonitored.
            (0, None, None, flags(false, false, true)),
        ];
        for (devices, last, co2, want) in cases {
            let room = RoomClimate {
                room: Room {
                    building_id: "b".into(),
                    id: "r".into(),
                    name: "R".into(),
                    floor: None,
                    usage: None,
                },
                devices,
                last_reading: last.map(t),
                temperature: None,
                humidity: None,
                co2,
            };
            assert_eq!(
                room_flags(&room, now, &th),
                want,
                "{devices} {last:?} {co2:?}"
            );
        }
    }
}
