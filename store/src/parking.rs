//! Realtime parking: what a site's public counters and bays say right now (ParkAPI v3 realtime
//! fields and spot status), as SQL aggregates plus the pure rules that turn them into answers.
//!
//! The split: SQL gathers per-site signals (newest counter value, fresh bays, newest times);
//! [`site_realtime`] and [`spot_status`] decide, given an injected `now`. Only devices with
//! `visibility = 'public'` are ever read here.

use crate::{Result, Store};
use chrono::{DateTime, Duration, Utc};
use stadtpuls_gateways::{DevEui, Quantity};

/// The time windows of the realtime rules (see `ParkingSettings` in the config crate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParkingWindows {
    /// A site whose devices were all silent for this long has no realtime data.
    pub stale_after: Duration,
    /// A bay's latest state counts while the bay sent any uplink within this window.
    pub bay_fresh: Duration,
    /// A counter's `free_spaces` counts while the reading is at most this old.
    pub counter_fresh: Duration,
}

impl ParkingWindows {
    pub fn from_minutes(stale_after: u32, bay_fresh: u32, counter_fresh: u32) -> Self {
        ParkingWindows {
            stale_after: Duration::minutes(i64::from(stale_after)),
            bay_fresh: Duration::minutes(i64::from(bay_fresh)),
            counter_fresh: Duration::minutes(i64::from(counter_fresh)),
        }
    }
}

/// `at` lies within `window` before `now` (inclusive; times after `now`, i.e. clock skew
/// of a sender, count as fresh). The SQL below uses the same inclusive cut-off.
pub fn is_fresh(at: DateTime<Utc>, now: DateTime<Utc>, window: Duration) -> bool {
    at >= now - window
}

/// One measured value and its measurement time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observed {
    pub value: f64,
    pub time: DateTime<Utc>,
}

/// What the public parking devices of one site report, as gathered by
/// [`Store::parking_signals`].
#[derive(Clone, Debug, PartialEq)]
pub struct SiteSignals {
    pub site_uid: String,
    /// The newest `free_spaces` reading among the site's public `parking_counter` devices
    /// (whatever its age; [`site_realtime`] checks freshness).
    pub counter: Option<Observed>,
    /// Public `parking_bay` devices seen within the bay window that have an `occupied` state.
    pub fresh_bays: i64,
    /// Those of `fresh_bays` whose latest `occupied` is 0.
    pub free_bays: i64,
    /// The newest `occupied` reading time among `fresh_bays`.
    pub bays_updated_at: Option<DateTime<Utc>>,
    /// The newest `last_seen` (any uplink) among the site's public parking devices.
    pub last_seen: Option<DateTime<Utc>>,
}

impl SiteSignals {
    /// A site without any device data.
    pub fn none(site_uid: &str) -> Self {
        SiteSignals {
            site_uid: site_uid.to_string(),
            counter: None,
            fresh_bays: 0,
            free_bays: 0,
            bays_updated_at: None,
            last_seen: None,
        }
    }
}

/// ParkAPI v3 `realtime_opening_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpeningStatus {
    Open,
    Closed,
    Unknown,
}

impl OpeningStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpeningStatus::Open => "OPEN",
            OpeningStatus::Closed => "CLOSED",
            OpeningStatus::Unknown => "UNKNOWN",
        }
    }

    /// From an OSM `opening_hours` value. There is no evaluator of the OSM syntax here, so only
    /// `24/7` is known to be open; anything else (and no value) is `UNKNOWN`, never `CLOSED`.
    pub fn from_opening_hours(opening_hours: Option<&str>) -> Self {
        match opening_hours.map(str::trim) {
            Some("24/7") => OpeningStatus::Open,
            _ => OpeningStatus::Unknown,
        }
    }
}

/// Where a site's realtime numbers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealtimeSource {
    /// An entrance counter's `free_spaces`.
    Counter,
    /// Single-space sensors.
    Bays,
}

/// The realtime part of a ParkAPI v3 parking site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteRealtime {
    pub source: RealtimeSource,
    pub free_capacity: i64,
    pub capacity: i64,
    pub opening_status: OpeningStatus,
    /// The newest measurement time among the readings used.
    pub updated_at: DateTime<Utc>,
}

/// The realtime state of a site with static `capacity` and `opening_hours`, or `None` when it
/// has no realtime data. The rules, in order:
///
/// 1. No public device of the site was seen within `stale_after` → `None` (ParkAPI drops the
///    realtime fields of stale sites).
/// 2. A counter reading within `counter_fresh` → free = the counter's value, rounded and
///    clamped to `0..=capacity` (entrance counters drift); capacity = the static capacity.
/// 3. Otherwise at least one fresh bay with a known state → free = fresh free bays,
///    capacity = fresh bays.
/// 4. Otherwise → `None`: a stale counter and silent bays say nothing, and reporting 0 free
///    spaces would claim the site is full.
pub fn site_realtime(
    capacity: i32,
    opening_hours: Option<&str>,
    s: &SiteSignals,
    now: DateTime<Utc>,
    w: &ParkingWindows,
) -> Option<SiteRealtime> {
    let alive = s
        .last_seen
        .is_some_and(|seen| is_fresh(seen, now, w.stale_after));
    if !alive {
        return None;
    }
    let opening_status = OpeningStatus::from_opening_hours(opening_hours);
    let capacity = i64::from(capacity.max(0));
    if let Some(c) = s.counter.filter(|c| is_fresh(c.time, now, w.counter_fresh)) {
        // `as` saturates for out-of-range floats (and maps NaN to 0); the clamp does the rest.
        let free = (c.value.round() as i64).clamp(0, capacity);
        return Some(SiteRealtime {
            source: RealtimeSource::Counter,
            free_capacity: free,
            capacity,
            opening_status,
            updated_at: c.time,
        });
    }
    match s.bays_updated_at {
        Some(updated_at) if s.fresh_bays > 0 => Some(SiteRealtime {
            source: RealtimeSource::Bays,
            free_capacity: s.free_bays,
            capacity: s.fresh_bays,
            opening_status,
            updated_at,
        }),
        _ => None,
    }
}

/// ParkAPI v3 `ParkingSpot` realtime status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpotStatus {
    Available,
    Taken,
    Unknown,
}

impl SpotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SpotStatus::Available => "AVAILABLE",
            SpotStatus::Taken => "TAKEN",
            SpotStatus::Unknown => "UNKNOWN",
        }
    }
}

/// `occupied` is 0 (free) or 1 (taken); anything below one half counts as free, which is the
/// same test the site aggregate uses in SQL.
pub fn is_free(occupied: f64) -> bool {
    occupied < 0.5
}

/// A public `parking_bay` device with a location, as served under `/parking/spots`.
#[derive(Clone, Debug, PartialEq)]
pub struct Bay {
    pub dev_eui: DevEui,
    pub name: Option<String>,
    pub site_uid: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub last_seen: Option<DateTime<Utc>>,
    /// The latest `occupied` reading.
    pub occupied: Option<Observed>,
}

/// A bay's status: its latest `occupied` while the bay was seen (any uplink, e.g. a heartbeat)
/// within `bay_fresh`; `UNKNOWN` without a reading or when the bay went quiet.
pub fn spot_status(bay: &Bay, now: DateTime<Utc>, bay_fresh: Duration) -> SpotStatus {
    let fresh = bay
        .last_seen
        .is_some_and(|seen| is_fresh(seen, now, bay_fresh));
    match bay.occupied {
        Some(o) if fresh && is_free(o.value) => SpotStatus::Available,
        Some(_) if fresh => SpotStatus::Taken,
        _ => SpotStatus::Unknown,
    }
}

#[derive(sqlx::FromRow)]
struct SignalsRow {
    uid: String,
    counter_value: Option<f64>,
    counter_time: Option<DateTime<Utc>>,
    fresh_bays: i64,
    free_bays: i64,
    bays_updated_at: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct BayRow {
    dev_eui: i64,
    name: Option<String>,
    site_id: Option<String>,
    lat: f64,
    lon: f64,
    last_seen: Option<DateTime<Utc>>,
    occupied: Option<f64>,
    occupied_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Per-site signals for every parking site (or only `site_uid`), ordered by uid; sites
    /// without devices get an all-empty row. `now - w.bay_fresh` is the bay cut-off.
    pub async fn parking_signals(
        &self,
        site_uid: Option<&str>,
        now: DateTime<Utc>,
        w: &ParkingWindows,
    ) -> Result<Vec<SiteSignals>> {
        let rows: Vec<SignalsRow> = sqlx::query_as(
            "WITH dev AS (
               SELECT dev_eui, site_id, kind, last_seen
               FROM devices
               WHERE visibility = 'public' AND site_id IS NOT NULL
                 AND kind IN ('parking_bay', 'parking_counter')
             ),
             counter AS (
               SELECT DISTINCT ON (dev.site_id) dev.site_id, lr.value, lr.time
               FROM dev JOIN latest_readings lr ON lr.dev_eui = dev.dev_eui AND lr.quantity = $1
               WHERE dev.kind = 'parking_counter'
               ORDER BY dev.site_id, lr.time DESC, dev.dev_eui
             ),
             bays AS (
               SELECT dev.site_id,
                      count(*) AS fresh_bays,
                      count(*) FILTER (WHERE lr.value < 0.5) AS free_bays,
                      max(lr.time) AS updated_at
               FROM dev JOIN latest_readings lr ON lr.dev_eui = dev.dev_eui AND lr.quantity = $2
               WHERE dev.kind = 'parking_bay' AND dev.last_seen >= $3
               GROUP BY dev.site_id
             ),
             seen AS (
               SELECT site_id, max(last_seen) AS last_seen FROM dev GROUP BY site_id
             )
             SELECT s.uid, c.value AS counter_value, c.time AS counter_time,
                    coalesce(b.fresh_bays, 0) AS fresh_bays, coalesce(b.free_bays, 0) AS free_bays,
                    b.updated_at AS bays_updated_at, seen.last_seen
             FROM parking_sites s
             LEFT JOIN counter c ON c.site_id = s.uid
             LEFT JOIN bays b ON b.site_id = s.uid
             LEFT JOIN seen ON seen.site_id = s.uid
             WHERE $4::text IS NULL OR s.uid = $4
             ORDER BY s.uid",
        )
        .bind(Quantity::FreeSpaces.id())
        .bind(Quantity::Occupied.id())
        .bind(now - w.bay_fresh)
        .bind(site_uid)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SiteSignals {
                site_uid: r.uid,
                counter: r
                    .counter_value
                    .zip(r.counter_time)
                    .map(|(value, time)| Observed { value, time }),
                fresh_bays: r.fresh_bays,
                free_bays: r.free_bays,
                bays_updated_at: r.bays_updated_at,
                last_seen: r.last_seen,
            })
            .collect())
    }

    /// Public `parking_bay` devices that have a location (of `site_uid` only, if given), with
    /// their latest `occupied` reading, ordered by DevEUI.
    pub async fn parking_bays(&self, site_uid: Option<&str>) -> Result<Vec<Bay>> {
        let rows: Vec<BayRow> = sqlx::query_as(
            "SELECT d.dev_eui, d.name, d.site_id, d.lat, d.lon, d.last_seen,
                    lr.value AS occupied, lr.time AS occupied_at
             FROM devices d
             LEFT JOIN latest_readings lr ON lr.dev_eui = d.dev_eui AND lr.quantity = $1
             WHERE d.visibility = 'public' AND d.kind = 'parking_bay' AND d.lat IS NOT NULL
               AND ($2::text IS NULL OR d.site_id = $2)
             ORDER BY d.dev_eui",
        )
        .bind(Quantity::Occupied.id())
        .bind(site_uid)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Bay {
                dev_eui: DevEui::from_i64(r.dev_eui),
                name: r.name,
                site_uid: r.site_id,
                lat: r.lat,
                lon: r.lon,
                last_seen: r.last_seen,
                occupied: r
                    .occupied
                    .zip(r.occupied_at)
                    .map(|(value, time)| Observed { value, time }),
            })
            .collect())
    }
}
