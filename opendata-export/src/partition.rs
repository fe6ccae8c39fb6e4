//! Partitions: the local days or months (in the city's time zone) that files are cut into, as
//! UTC windows. Pure; the tests cover DST days and month ends.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use stadtpuls_config::Partitioning;

/// One partition: its key as it appears in the folder name and its UTC window `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Partition {
    /// `2026-11-28` (day) or `2026-11` (month).
    pub key: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Partition {
    /// The Hive folder name: `date=2026-11-28` or `month=2026-11`.
    pub fn folder(&self, p: Partitioning) -> String {
        match p {
            Partitioning::Day => format!("date={}", self.key),
            Partitioning::Month => format!("month={}", self.key),
        }
    }
}

/// Local midnight of `day` in `tz` as UTC. On the (in Europe nonexistent) day without a
/// midnight the first existing instant after it is used.
fn midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc)),
    }
}

fn first_of_next_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d)
}

/// The partition holding instant `t`.
pub fn partition_of(t: DateTime<Utc>, p: Partitioning, tz: Tz) -> Partition {
    let local = t.with_timezone(&tz).date_naive();
    match p {
        Partitioning::Day => {
            let next = local.succ_opt().unwrap_or(local);
            Partition {
                key: local.format("%Y-%m-%d").to_string(),
                start: midnight(local, tz),
                end: midnight(next, tz),
            }
        }
        Partitioning::Month => {
            let first = local.with_day(1).unwrap_or(local);
            Partition {
                key: first.format("%Y-%m").to_string(),
                start: midnight(first, tz),
                end: midnight(first_of_next_month(first), tz),
            }
        }
    }
}

/// Every partition overlapping `[from, to)`, oldest first.
pub fn partitions_between(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    p: Partitioning,
    tz: Tz,
) -> Vec<Partition> {
    let mut out = Vec::new();
    let mut cur = partition_of(from, p, tz);
    while cur.start < to {
        let next = partition_of(cur.end, p, tz);
        out.push(cur);
        if next.start <= out[out.len() - 1].start {
            break; // cannot happen with a valid time zone; guards against a loop
        }
        cur = next;
    }
    out
}

/// Every partition that has ended by `now` and started at or after `since`, oldest first.
pub fn complete_partitions(
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    p: Partitioning,
    tz: Tz,
) -> Vec<Partition> {
    partitions_between(since, now, p, tz)
        .into_iter()
        .filter(|part| part.end <= now && part.start >= partition_of(since, p, tz).start)
        .collect()
}

/// Parses a city time zone (validated at startup, so an error here is a configuration bug).
pub fn time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|e| format!("unknown time zone '{name}': {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn day_partitions_follow_local_midnight_across_dst() {
        // 2026-03-29: Berlin springs forward, the local day has 23 hours.
        let parts = partitions_between(
            t("2026-03-28T12:00:00Z"),
            t("2026-03-30T12:00:00Z"),
            Partitioning::Day,
            BERLIN,
        );
        let got: Vec<(&str, DateTime<Utc>, DateTime<Utc>)> = parts
            .iter()
            .map(|p| (p.key.as_str(), p.start, p.end))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "2026-03-28",
                    t("2026-03-27T23:00:00Z"),
                    t("2026-03-28T23:00:00Z")
                ),
                (
                    "2026-03-29",
                    t("2026-03-28T23:00:00Z"),
                    t("2026-03-29T22:00:00Z")
                ),
                (
                    "2026-03-30",
                    t("2026-03-29T22:00:00Z"),
                    t("2026-03-30T22:00:00Z")
                ),
            ]
        );
        assert_eq!(parts[0].folder(Partitioning::Day), "date=2026-03-28");
        // 23:30 UTC on the 28th is already the 29th in Berlin.
        assert_eq!(
            partition_of(t("2026-03-28T23:30:00Z"), Partitioning::Day, BERLIN).key,
            "2026-03-29"
        );
    }

    #[test]
    fn month_partitions_and_completeness() {
        let parts = partitions_between(
            t("2026-11-15T00:00:00Z"),
            t("2027-01-02T00:00:00Z"),
            Partitioning::Month,
            BERLIN,
        );
        let keys: Vec<&str> = parts.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["2026-11", "2026-12", "2027-01"]);
        assert_eq!(parts[1].start, t("2026-11-30T23:00:00Z"));
        assert_eq!(parts[1].end, t("2026-12-31T23:00:00Z"));
        assert_eq!(parts[1].folder(Partitioning::Month), "month=2026-12");
        // At 2027-01-02 only November and December are complete; since mid-November the
        // November partition (which began before `since`) still counts as its start is taken
        // from the partition holding `since`.
        let done = complete_partitions(
            t("2026-11-15T00:00:00Z"),
            t("2027-01-02T00:00:00Z"),
            Partitioning::Month,
            BERLIN,
        );
        let keys: Vec<&str> = done.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["2026-11", "2026-12"]);
        // A day partition is complete exactly at local midnight.
        let done = complete_partitions(
            t("2026-11-27T00:00:00Z"),
            t("2026-11-28T23:00:00Z"),
            Partitioning::Day,
            BERLIN,
        );
        let keys: Vec<&str> = done.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["2026-11-27", "2026-11-28"]);
        assert!(time_zone("Mars/Olympus").is_err());
    }
}
