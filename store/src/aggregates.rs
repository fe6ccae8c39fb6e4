//! Time aggregation of readings (`time_bucket`), with every bucket of a window present.
//!
//! One query per request builds the bucket grid with `generate_series`, aggregates the readings
//! with `time_bucket` and left-joins the two, so empty buckets come back with a count of 0.
//!
//! Alignment: 15 min and 1 h buckets are aligned to UTC (multiples of the width since the Unix
//! epoch; `time_bucket` without a time zone counts from 2000-01-03 00:00 UTC, which for these
//! widths is the same grid); in every zone whose offset is a whole hour, as all of Europe, these
//! are also local quarter-hours and hours, and none of them is ambiguous across a DST change. 1 d buckets run from local midnight to local midnight in
//! the city's time zone, so they are 23 h or 25 h long on DST change days.

use crate::{Result, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use stadtpuls_gateways::{DevEui, Quantity};
use std::fmt;
use std::str::FromStr;

/// Most buckets one aggregation may return (the API reports larger requests as a 400).
pub const MAX_BUCKETS: i64 = 10_000;

/// Width of an aggregation bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BucketWidth {
    Minutes15,
    Hour,
    Day,
}

impl BucketWidth {
    pub const ALL: [BucketWidth; 3] = [BucketWidth::Minutes15, BucketWidth::Hour, BucketWidth::Day];

    /// The width as a PostgreSQL interval literal (bound as text and cast in SQL).
    pub fn as_interval(self) -> &'static str {
        match self {
            BucketWidth::Minutes15 => "15 minutes",
            BucketWidth::Hour => "1 hour",
            BucketWidth::Day => "1 day",
        }
    }

    /// The name used in the API (`bucket=`).
    pub fn as_str(self) -> &'static str {
        match self {
            BucketWidth::Minutes15 => "15m",
            BucketWidth::Hour => "1h",
            BucketWidth::Day => "1d",
        }
    }

    /// Length of a bucket; for days the usual 24 h (a local day can be 23 h or 25 h).
    pub fn nominal(self) -> TimeDelta {
        match self {
            BucketWidth::Minutes15 => TimeDelta::minutes(15),
            BucketWidth::Hour => TimeDelta::hours(1),
            BucketWidth::Day => TimeDelta::hours(24),
        }
    }

    /// How many buckets [`Store::aggregates`] returns for `[from, to)`: exact for 15 min and
    /// 1 h; for days an upper bound that holds in any time zone whose DST shift is at most an
    /// hour (local midnights are then at least 23 h apart). 0 when `to <= from`.
    pub fn bucket_count(self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        if to <= from {
            return 0;
        }
        let (from, last) = (from.timestamp_micros(), to.timestamp_micros() - 1);
        match self {
            BucketWidth::Minutes15 | BucketWidth::Hour => {
                let w = self.nominal().num_microseconds().unwrap_or(i64::MAX);
                last.div_euclid(w) - from.div_euclid(w) + 1
            }
            BucketWidth::Day => {
                let shortest_day = TimeDelta::hours(23).num_microseconds().unwrap_or(i64::MAX);
                (last - from) / shortest_day + 2
            }
        }
    }
}

impl FromStr for BucketWidth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BucketWidth::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| format!("unknown bucket width '{s}' (expected 15m, 1h or 1d)"))
    }
}

impl fmt::Display for BucketWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An aggregate function a client can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Agg {
    Avg,
    Min,
    Max,
    Count,
    /// Plain sum, or for cumulative counters the sum of increments (see [`Store::aggregates`]).
    Sum,
}

impl Agg {
    pub const ALL: [Agg; 5] = [Agg::Avg, Agg::Min, Agg::Max, Agg::Count, Agg::Sum];

    /// The name used in the API (`agg=`) and as the JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Count => "count",
            Agg::Sum => "sum",
        }
    }
}

impl FromStr for Agg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Agg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown aggregate '{s}' (expected avg, min, max, count or sum)")
            })
    }
}

impl fmt::Display for Agg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a quantity is a cumulative counter stored as reported (its `sum` means increments).
pub fn is_cumulative_counter(q: Quantity) -> bool {
    matches!(q, Quantity::PeopleIn | Quantity::PeopleOut)
}

/// One bucket `[start, end)`; the values are `None` when the bucket holds no reading.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AggregateBucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub count: i64,
    pub avg: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub sum: Option<f64>,
}

type BucketRow = (
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

/// The bucket grid as a CTE named `grid (bucket_start, bucket_end)`, shared by every bucketed
/// query so that a device's aggregates, a room's history and a parking site's history line up.
/// Parameters: $1 from, $2 to, $3 width as an interval literal, $4 time zone, $5 day buckets?
///
/// Sub-day widths step through UTC from the bucket holding `from`; days step through local
/// dates and turn each local midnight into an instant with `AT TIME ZONE`, so a DST day ends
/// 23 h or 25 h after it starts. The last bucket is the one holding `to - 1µs`.
macro_rules! grid_cte {
    () => {
        "grid AS (
    SELECT s AS bucket_start, s + $3::interval AS bucket_end
    FROM generate_series(time_bucket($3::interval, $1::timestamptz),
                         $2::timestamptz - interval '1 microsecond',
                         $3::interval) AS s
    WHERE NOT $5
    UNION ALL
    SELECT d AT TIME ZONE $4, (d + interval '1 day') AT TIME ZONE $4
    FROM generate_series(($1::timestamptz AT TIME ZONE $4)::date::timestamp,
                         (($2::timestamptz - interval '1 microsecond') AT TIME ZONE $4)::date::timestamp,
                         interval '1 day') AS d
    WHERE $5
),
span AS (
    SELECT min(bucket_start) AS lo, max(bucket_end) AS hi FROM grid
)"
    };
}
pub(crate) use grid_cte;

/// The aggregation query. Parameters: $1–$5 as for [`grid_cte`], $6 dev_eui, $7 quantity,
/// $8 cumulative counter?
///
/// - `grid`, `span`: every bucket of the window; `span` runs from the first bucket's start to
///   the last bucket's end. Values always describe whole buckets, so a bucket reads the same
///   whatever window it was asked for in.
/// - `points`: the readings in the span (the fixed ±2 days bound only lets TimescaleDB skip
///   chunks early), and for counters also the last reading before it, so the first increment
///   is known.
/// - `steps`: what each reading adds to `sum`: its value, or for counters the increment over
///   the previous reading, where a drop means the counter was reset and counts from zero again.
///   A counter's very first reading has no known increment (NULL).
/// - `agg`: per `time_bucket` (with the time zone for days, which yields local midnights as
///   the grid does); the reading before the span is left out here.
/// - The final WHERE is a one-time filter that evaluates the time zone for every width, so an
///   unknown one fails the same way for 15m as for 1d.
const AGGREGATE_SQL: &str = concat!(
    "WITH ",
    grid_cte!(),
    ",
points AS (
    SELECT r.time, r.value
    FROM readings r, span
    WHERE r.dev_eui = $6 AND r.quantity = $7
      AND r.time >= span.lo AND r.time < span.hi
      AND r.time >= $1::timestamptz - interval '2 days'
      AND r.time < $2::timestamptz + interval '2 days'
    UNION ALL
    (SELECT r.time, r.value
     FROM readings r, span
     WHERE $8 AND r.dev_eui = $6 AND r.quantity = $7 AND r.time < span.lo
     ORDER BY r.time DESC
     LIMIT 1)
),
steps AS (
    SELECT time, value,
           CASE WHEN NOT $8 THEN value
                WHEN lag(value) OVER w IS NULL THEN NULL
                WHEN value >= lag(value) OVER w THEN value - lag(value) OVER w
                ELSE value
           END AS summand
    FROM points
    WINDOW w AS (ORDER BY time)
),
agg AS (
    SELECT CASE WHEN $5 THEN time_bucket($3::interval, s.time, $4)
                ELSE time_bucket($3::interval, s.time)
           END AS bucket_start,
           count(*) AS n, avg(s.value) AS avg, min(s.value) AS min, max(s.value) AS max,
           sum(s.summand) AS sum
    FROM steps s, span
    WHERE s.time >= span.lo
    GROUP BY 1
)
SELECT g.bucket_start, g.bucket_end, coalesce(a.n, 0), a.avg, a.min, a.max, a.sum
FROM grid g LEFT JOIN agg a USING (bucket_start)
WHERE (now() AT TIME ZONE $4) IS NOT NULL
ORDER BY g.bucket_start"
);

/// Just the grid: `(bucket_start, bucket_end)` of every bucket, for callers that weigh values
/// in Rust (parking history). Parameters as for [`grid_cte`].
const GRID_SQL: &str = concat!(
    "WITH ",
    grid_cte!(),
    "
SELECT bucket_start, bucket_end FROM grid
WHERE (now() AT TIME ZONE $4) IS NOT NULL
ORDER BY bucket_start"
);

/// PostgreSQL's answer to an unknown time zone: SQLSTATE 22023, `time zone "…" not recognized`.
fn is_unknown_time_zone(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("22023") && db.message().starts_with("time zone")
        }
        _ => false,
    }
}

fn unknown_time_zone(tz: &str) -> StoreError {
    StoreError::Invalid {
        field: "timezone",
        problem: format!(
            "unknown time zone '{}' (expected an IANA name like Europe/Berlin)",
            tz.chars().take(64).collect::<String>()
        ),
    }
}

/// The limits every bucketed query shares: a non-empty window of at most [`MAX_BUCKETS`]
/// buckets. Errors name the parameter to blame (`from`, `bucket`).
pub fn check_window(from: DateTime<Utc>, to: DateTime<Utc>, width: BucketWidth) -> Result<()> {
    if to <= from {
        return Err(StoreError::Invalid {
            field: "from",
            problem: format!("the window must not be empty ({from} is not before {to})"),
        });
    }
    let buckets = width.bucket_count(from, to);
    if buckets > MAX_BUCKETS {
        return Err(StoreError::Invalid {
            field: "bucket",
            problem: format!("{buckets} buckets of {width}; at most {MAX_BUCKETS}"),
        });
    }
    Ok(())
}

/// Maps PostgreSQL's unknown-time-zone error to `Invalid { field: "timezone" }`.
fn tz_error(tz: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| {
        if is_unknown_time_zone(&e) {
            unknown_time_zone(tz)
        } else {
            StoreError::from(e)
        }
    }
}

impl Store {
    /// The buckets `[start, end)` covering `[from, to)` (the grid of [`Store::aggregates`]),
    /// with the same limits and errors.
    pub async fn bucket_grid(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        width: BucketWidth,
        tz: &str,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        check_window(from, to, width)?;
        sqlx::query_as(GRID_SQL)
            .bind(from)
            .bind(to)
            .bind(width.as_interval())
            .bind(tz)
            .bind(width == BucketWidth::Day)
            .fetch_all(&self.pool)
            .await
            .map_err(tz_error(tz))
    }

    /// Aggregates of one quantity of one device in buckets covering `[from, to)`: the first
    /// bucket is the one containing `from`, the last the one containing `to - 1µs`, and every
    /// bucket in between is present, an empty one with count 0 and `None` values. Each bucket's
    /// values cover the whole bucket, also where it reaches outside the window. 15 min and 1 h
    /// buckets are aligned to UTC, 1 d buckets to local midnight in `tz` (see the module doc).
    ///
    /// `avg`, `min` and `max` are over the values as stored. `sum` is the plain sum, except
    /// for cumulative counters ([`is_cumulative_counter`]): there it is the sum of increments
    /// between consecutive readings, each counted in the bucket of its later reading, starting
    /// from the last reading before the first bucket; a drop in value is taken as a counter
    /// reset, whose increment is the new value itself. A counter bucket whose only reading is
    /// the device's very first has no known increment: its `sum` is `None` although `count` is 1.
    ///
    /// Errors: `to <= from` (`Invalid { field: "from" }`), more than [`MAX_BUCKETS`] buckets
    /// (`Invalid { field: "bucket" }`) and a time zone PostgreSQL does not know
    /// (`Invalid { field: "timezone" }`, checked for every width). No extra round trip is spent
    /// on checking `tz`; callers with a configured zone may check it once with
    /// [`Store::check_time_zone`].
    pub async fn aggregates(
        &self,
        dev_eui: DevEui,
        quantity: Quantity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        width: BucketWidth,
        tz: &str,
    ) -> Result<Vec<AggregateBucket>> {
        check_window(from, to, width)?;
        let rows: Vec<BucketRow> = sqlx::query_as(AGGREGATE_SQL)
            .bind(from)
            .bind(to)
            .bind(width.as_interval())
            .bind(tz)
            .bind(width == BucketWidth::Day)
            .bind(dev_eui.as_i64())
            .bind(quantity.id())
            .bind(is_cumulative_counter(quantity))
            .fetch_all(&self.pool)
            .await
            .map_err(tz_error(tz))?;
        Ok(rows
            .into_iter()
            .map(|(start, end, count, avg, min, max, sum)| AggregateBucket {
                start,
                end,
                count,
                avg,
                min,
                max,
                sum,
            })
            .collect())
    }

    /// Fails with `Invalid { field: "timezone" }` unless PostgreSQL knows `tz`; meant for
    /// checking the configured city time zone once at startup.
    pub async fn check_time_zone(&self, tz: &str) -> Result<()> {
        sqlx::query("SELECT now() AT TIME ZONE $1")
            .bind(tz)
            .execute(&self.pool)
            .await
            .map_err(tz_error(tz))?;
        Ok(())
    }
}
