//! Parking history: free and occupied spaces of a site per time bucket, **time-weighted**.
//!
//! Bays report on change plus a heartbeat, so a mean of the reported values would weigh a
//! busy hour of changes more than a quiet night. Instead each reading holds until the next
//! reading of the same device, but at most `hold` (the freshness window of its kind: a device
//! that went silent stops counting, as in the realtime rules), and every bucket integrates
//! those piecewise-constant states over its own time span.
//!
//! Which devices count follows the realtime rules of [`crate::parking`]: the site's public
//! entrance counters (`free_spaces`) when it has any, else its public bays (`occupied`).
//! Readings are streamed from PostgreSQL and folded into the buckets one at a time, so memory
//! does not grow with the number of readings.

use crate::parking::{is_free, Observed};
use crate::{Result, Store};
use chrono::{DateTime, Duration, Utc};
use futures_util::TryStreamExt;
use stadtpuls_gateways::{DevEui, Quantity};

/// Where a site's history comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistorySource {
    /// Entrance counters' `free_spaces` (several counters of one site are merged: at each
    /// moment the newest value holds).
    Counter,
    /// Single-space sensors' `occupied`.
    Bays,
    /// The site has no public parking device.
    None,
}

impl HistorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            HistorySource::Counter => "counter",
            HistorySource::Bays => "bays",
            HistorySource::None => "none",
        }
    }
}

/// One bucket of a site's history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistoryBucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Mean number of free spaces over the bucket; `None` without any known state in it.
    pub free: Option<f64>,
    /// Mean number of occupied spaces over the bucket; `None` as for `free`.
    pub occupied: Option<f64>,
    /// Share of the bucket's time (× devices, for bays) for which a state was known, 0..=1.
    pub coverage: f64,
}

/// Running integrals of one bucket, in seconds (× devices, × value).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Acc {
    /// ∫ known dt: how long a state was known.
    known: f64,
    /// ∫ value dt (counters: free spaces; bays: 1 while taken).
    value: f64,
}

/// Folds piecewise-constant device states into a bucket grid. Feed each device's readings in
/// time order, devices one after another; [`Weigher::finish`] turns the integrals into means.
#[derive(Debug)]
pub struct Weigher {
    grid: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    acc: Vec<Acc>,
    hold: Duration,
    /// The previous reading of the current device.
    prev: Option<(DevEui, Observed)>,
}

fn seconds(d: Duration) -> f64 {
    d.num_microseconds().map_or(f64::MAX, |us| us as f64 / 1e6)
}

impl Weigher {
    /// `grid` must be sorted and gap-free (as [`Store::bucket_grid`] returns it).
    pub fn new(grid: Vec<(DateTime<Utc>, DateTime<Utc>)>, hold: Duration) -> Self {
        let acc = vec![Acc::default(); grid.len()];
        Weigher {
            grid,
            acc,
            hold,
            prev: None,
        }
    }

    /// The next reading (`value` already mapped to what is integrated).
    pub fn push(&mut self, dev: DevEui, point: Observed) {
        if let Some((prev_dev, prev)) = self.prev {
            let next = (prev_dev == dev).then_some(point.time);
            self.segment(prev, next);
        }
        self.prev = Some((dev, point));
    }

    /// Adds the state `p` from `p.time` until `next` (or `hold` after it, whichever is first).
    fn segment(&mut self, p: Observed, next: Option<DateTime<Utc>>) {
        let held = p.time + self.hold;
        let end = next.map_or(held, |n| n.min(held));
        if end <= p.time {
            return;
        }
        // The first bucket ending after the segment starts.
        let first = self.grid.partition_point(|(_, b_end)| *b_end <= p.time);
        for i in first..self.grid.len() {
            let (b_start, b_end) = self.grid[i];
            if b_start >= end {
                break;
            }
            let overlap = seconds(end.min(b_end) - p.time.max(b_start));
            if overlap > 0.0 {
                self.acc[i].known += overlap;
                self.acc[i].value += overlap * p.value;
            }
        }
    }

    /// Closes the last device's last segment and computes the buckets for `source`
    /// (`capacity` is the site's static capacity, used by counters).
    pub fn finish(
        mut self,
        source: HistorySource,
        capacity: i32,
        devices: usize,
    ) -> Vec<HistoryBucket> {
        if let Some((_, p)) = self.prev.take() {
            self.segment(p, None);
        }
        let capacity = f64::from(capacity.max(0));
        self.grid
            .iter()
            .zip(&self.acc)
            .map(|(&(start, end), a)| {
                let len = seconds(end - start);
                let (free, occupied, coverage) = match source {
                    _ if a.known <= 0.0 || len <= 0.0 => (None, None, 0.0),
                    HistorySource::Counter => {
                        let free = a.value / a.known;
                        (Some(free), Some(capacity - free), (a.known / len).min(1.0))
                    }
                    HistorySource::Bays => {
                        let occupied = a.value / len;
                        let known_bays = a.known / len;
                        let cover = a.known / (len * devices.max(1) as f64);
                        (
                            (Some((known_bays - occupied).max(0.0))),
                            Some(occupied),
                            cover.min(1.0),
                        )
                    }
                    HistorySource::None => (None, None, 0.0),
                };
                HistoryBucket {
                    start,
                    end,
                    free: free.map(round3),
                    occupied: occupied.map(round3),
                    coverage: round3(coverage),
                }
            })
            .collect()
    }
}

/// Three decimals: enough for "spaces" and stable in JSON.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(sqlx::FromRow)]
struct PointRow {
    dev_eui: i64,
    time: DateTime<Utc>,
    value: f64,
}

impl Store {
    /// The site's history over `grid` (see the module doc). Counters hold for `counter_hold`,
    /// bays for `bay_hold`. Only public devices of the site are read.
    pub async fn parking_history(
        &self,
        site_uid: &str,
        capacity: i32,
        grid: Vec<(DateTime<Utc>, DateTime<Utc>)>,
        counter_hold: Duration,
        bay_hold: Duration,
    ) -> Result<(HistorySource, Vec<HistoryBucket>)> {
        let (counters, bays): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE kind = 'parking_counter'),
                    count(*) FILTER (WHERE kind = 'parking_bay')
             FROM devices WHERE site_id = $1 AND visibility = 'public'",
        )
        .bind(site_uid)
        .fetch_one(&self.pool)
        .await?;
        let (source, kind, quantity, hold, devices) = if counters > 0 {
            let q = Quantity::FreeSpaces;
            (
                HistorySource::Counter,
                "parking_counter",
                q,
                counter_hold,
                counters,
            )
        } else if bays > 0 {
            (
                HistorySource::Bays,
                "parking_bay",
                Quantity::Occupied,
                bay_hold,
                bays,
            )
        } else {
            let w = Weigher::new(grid, bay_hold);
            return Ok((
                HistorySource::None,
                w.finish(HistorySource::None, capacity, 0),
            ));
        };
        let (Some(lo), Some(hi)) = (grid.first().map(|g| g.0), grid.last().map(|g| g.1)) else {
            return Ok((source, Vec::new()));
        };
        // Counters are merged into one series (ordered by time only); bays stay separate.
        let sql = if source == HistorySource::Counter {
            "SELECT 0::bigint AS dev_eui, r.time, r.value
             FROM readings r JOIN devices d ON d.dev_eui = r.dev_eui
             WHERE d.site_id = $1 AND d.visibility = 'public' AND d.kind::text = $2
               AND r.quantity = $3 AND r.time >= $4 AND r.time < $5
             ORDER BY r.time, r.dev_eui"
        } else {
            "SELECT r.dev_eui, r.time, r.value
             FROM readings r JOIN devices d ON d.dev_eui = r.dev_eui
             WHERE d.site_id = $1 AND d.visibility = 'public' AND d.kind::text = $2
               AND r.quantity = $3 AND r.time >= $4 AND r.time < $5
             ORDER BY r.dev_eui, r.time"
        };
        let cap = f64::from(capacity.max(0));
        let mut w = Weigher::new(grid, hold);
        // A reading up to `hold` before the first bucket still holds into it.
        let mut rows = sqlx::query_as::<_, PointRow>(sql)
            .bind(site_uid)
            .bind(kind)
            .bind(quantity.id())
            .bind(lo - hold)
            .bind(hi)
            .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let value = match source {
                HistorySource::Counter => r.value.clamp(0.0, cap),
                _ if is_free(r.value) => 0.0,
                _ => 1.0,
            };
            if !value.is_finite() {
                continue;
            }
            w.push(
                DevEui::from_i64(r.dev_eui),
                Observed {
                    value,
                    time: r.time,
                },
            );
        }
        Ok((source, w.finish(source, capacity, devices as usize)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hours(from: &str, n: i64) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let start = t(from);
        (0..n)
            .map(|i| (start + Duration::hours(i), start + Duration::hours(i + 1)))
            .collect()
    }

    fn at(time: &str, value: f64) -> Observed {
        Observed {
            value,
            time: t(time),
        }
    }

    #[test]
    fn a_bay_taken_for_fifteen_minutes_counts_a_quarter_not_a_half() {
        // Two change events in one hour: free → taken at :30, taken → free at :45. A mean of
        // the events would say 0.5 taken; time-weighted it is 0.25.
        let mut w = Weigher::new(hours("2024-05-01T10:00:00Z", 2), Duration::minutes(120));
        let bay = DevEui(1);
        w.push(bay, at("2024-05-01T09:50:00Z", 0.0));
        w.push(bay, at("2024-05-01T10:30:00Z", 1.0));
        w.push(bay, at("2024-05-01T10:45:00Z", 0.0));
        let b = w.finish(HistorySource::Bays, 10, 1);
        assert_eq!(b[0].occupied, Some(0.25));
        assert_eq!(b[0].free, Some(0.75));
        assert_eq!(b[0].coverage, 1.0);
        // The free state carries forward through the next hour (within the hold window).
        assert_eq!(
            (b[1].free, b[1].occupied, b[1].coverage),
            (Some(1.0), Some(0.0), 1.0)
        );
    }

    #[test]
    fn a_silent_bay_stops_counting_after_the_hold_window() {
        let mut w = Weigher::new(hours("2024-05-01T10:00:00Z", 3), Duration::minutes(20));
        w.push(DevEui(1), at("2024-05-01T10:00:00Z", 1.0));
        w.push(DevEui(1), at("2024-05-01T10:20:00Z", 1.0));
        // A second bay, free all along with heartbeats every 10 minutes for two hours.
        for m in (0..120).step_by(10) {
            let time = t("2024-05-01T10:00:00Z") + Duration::minutes(m);
            w.push(DevEui(2), Observed { value: 0.0, time });
        }
        let b = w.finish(HistorySource::Bays, 2, 2);
        // Hour 1: bay 1 taken 10:00–10:40 (its last reading holds 20 min), bay 2 free all hour.
        assert_eq!(b[0].occupied, Some(0.667));
        assert_eq!(b[0].free, Some(1.0));
        assert_eq!(b[0].coverage, 0.833);
        // Hour 2: only bay 2; hour 3: bay 2's last heartbeat at 11:50 holds until 12:10.
        assert_eq!(
            (b[1].free, b[1].occupied, b[1].coverage),
            (Some(1.0), Some(0.0), 0.5)
        );
        assert_eq!(b[2].free, Some(0.167));
        assert_eq!(b[2].coverage, 0.083);
    }

    #[test]
    fn counters_average_over_the_known_time_and_buckets_without_data_are_empty() {
        let mut w = Weigher::new(hours("2024-05-01T10:00:00Z", 3), Duration::minutes(30));
        let c = DevEui(0);
        w.push(c, at("2024-05-01T10:00:00Z", 100.0));
        w.push(c, at("2024-05-01T10:15:00Z", 40.0));
        // 100 for 15 min, 40 for 30 min (hold), then nothing: mean over the known 45 min.
        let b = w.finish(HistorySource::Counter, 120, 1);
        assert_eq!(b[0].free, Some(60.0));
        assert_eq!(b[0].occupied, Some(60.0));
        assert_eq!(b[0].coverage, 0.75);
        assert_eq!((b[1].free, b[1].occupied, b[1].coverage), (None, None, 0.0));
        assert_eq!(b[2].start, t("2024-05-01T12:00:00Z"));
    }

    #[test]
    fn readings_outside_the_grid_only_count_where_they_hold_into_it() {
        let mut w = Weigher::new(hours("2024-05-01T10:00:00Z", 1), Duration::minutes(30));
        w.push(DevEui(1), at("2024-05-01T09:40:00Z", 1.0)); // holds until 10:10
        w.push(DevEui(1), at("2024-05-01T11:30:00Z", 0.0)); // after the grid
        let b = w.finish(HistorySource::Bays, 1, 1);
        assert_eq!(b[0].occupied, Some(0.167));
        assert_eq!(b[0].coverage, 0.167);
    }
}
