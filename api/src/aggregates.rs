//! Parameters of time-aggregation requests (`bucket`, `agg`, window limits) and the response
//! type of one bucket, for `GET /v1/devices/{dev_eui}/aggregates` and the room history.

use crate::error::ApiError;
use crate::params::clip;
use crate::params::utc;
use crate::params::Params;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use stadtpuls_gateways::Quantity;
use stadtpuls_store::aggregates::{
    is_cumulative_counter, Agg, AggregateBucket as StoredBucket, BucketWidth, MAX_BUCKETS,
};
use utoipa::ToSchema;

/// The default of `http.max_window_days`, the longest window of one request: a leap year plus
/// a day of margin, so a calendar year of hourly buckets (8 784) always fits, whatever the time
/// zone of its bounds.
pub const MAX_WINDOW_DAYS: u32 = 367;

/// Aggregates asked for when `agg` is absent.
pub const DEFAULT_AGGS: [Agg; 4] = [Agg::Avg, Agg::Min, Agg::Max, Agg::Count];

/// A validated aggregation request.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateQuery {
    pub quantity: Quantity,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub width: BucketWidth,
    /// In the order first asked for, without duplicates.
    pub aggs: Vec<Agg>,
}

/// Reads `quantity` (required), `bucket` (required: 15m, 1h or 1d), `agg` (comma list,
/// default `avg,min,max,count`; duplicates ignored; `sum` only for cumulative counters),
/// `from` and `to` (RFC 3339; default the day before `now`). The window must not be empty,
/// may be at most `max_days` (`http.max_window_days`) long and hold at most [`MAX_BUCKETS`]
/// buckets.
///
/// Parameters it does not know are left in `p`; the handler rejects them with
/// [`Params::finish`].
pub fn parse_aggregate_query(
    p: &mut Params,
    now: DateTime<Utc>,
    max_days: u32,
) -> Result<AggregateQuery, ApiError> {
    let quantity = p
        .quantity()?
        .ok_or_else(|| ApiError::bad("quantity", "required, e.g. quantity=temperature"))?;
    let (from, to, width) = parse_window(p, now, max_days)?;
    let aggs = aggs(p, quantity)?;
    Ok(AggregateQuery {
        quantity,
        from,
        to,
        width,
        aggs,
    })
}

/// `bucket` (required), `to` (default `now`) and `from` (default a day before `to`) of any
/// bucketed request, checked against the window and bucket limits. Pure.
pub fn parse_window(
    p: &mut Params,
    now: DateTime<Utc>,
    max_days: u32,
) -> Result<(DateTime<Utc>, DateTime<Utc>, BucketWidth), ApiError> {
    let width = bucket(p)?;
    let to = p.time("to")?.unwrap_or(now);
    let from = p.time("from")?.unwrap_or(to - TimeDelta::days(1));
    check_span(from, to, max_days, "request")?;
    check_buckets(from, to, width)?;
    Ok((from, to, width))
}

fn bucket(p: &mut Params) -> Result<BucketWidth, ApiError> {
    let raw = p
        .string("bucket")
        .ok_or_else(|| ApiError::bad("bucket", "required: 15m, 1h or 1d"))?;
    raw.parse().map_err(|_| {
        ApiError::bad(
            "bucket",
            format!("'{}' is not a bucket width: 15m, 1h or 1d", clip(&raw)),
        )
    })
}

fn aggs(p: &mut Params, quantity: Quantity) -> Result<Vec<Agg>, ApiError> {
    let Some(raw) = p.string("agg") else {
        return Ok(DEFAULT_AGGS.to_vec());
    };
    let mut aggs = Vec::new();
    for name in raw.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(ApiError::bad(
                "agg",
                "empty entry; expected a comma list like avg,min,max,count",
            ));
        }
        let agg: Agg = name.parse().map_err(|_| {
            ApiError::bad(
                "agg",
                format!(
                    "unknown aggregate '{}': expected avg, min, max, count or sum",
                    clip(name)
                ),
            )
        })?;
        if agg == Agg::Sum && !is_cumulative_counter(quantity) {
            return Err(ApiError::bad(
                "agg",
                format!(
                    "sum is only available for the cumulative counters people_in and people_out, \
                     not for {quantity}"
                ),
            ));
        }
        if !aggs.contains(&agg) {
            aggs.push(agg);
        }
    }
    Ok(aggs)
}

/// A non-empty window `[from, to)` of at most `max_days` days; 400 naming `from` otherwise
/// (`what` is "request" or "export", for the message). Pure.
pub fn check_span(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max_days: u32,
    what: &str,
) -> Result<(), ApiError> {
    if from >= to {
        return Err(ApiError::bad(
            "from",
            format!("must be before to ({})", utc(to)),
        ));
    }
    let length = to - from;
    if length > TimeDelta::days(i64::from(max_days)) {
        let days = length.num_seconds() as f64 / 86_400.0;
        return Err(ApiError::bad(
            "from",
            format!(
                "the window is {days:.1} days long; at most {max_days} days per {what} \
                 (http.max_window_days)"
            ),
        ));
    }
    Ok(())
}

fn check_buckets(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    width: BucketWidth,
) -> Result<(), ApiError> {
    let buckets = width.bucket_count(from, to);
    if buckets > MAX_BUCKETS {
        return Err(ApiError::bad(
            "bucket",
            format!(
                "{width} over this window makes {buckets} buckets; at most {MAX_BUCKETS} per \
                 request: choose a wider bucket or a shorter window"
            ),
        ));
    }
    Ok(())
}

/// One aggregation bucket `[start, end)`: `count` always, and of the other aggregates only
/// those asked for with `agg` (null when the bucket holds no reading).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AggregateBucket {
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    #[schema(minimum = 0)]
    pub count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub avg: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub min: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub max: Option<Option<f64>>,
    /// Counters only: the increments within the bucket (resets handled).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub sum: Option<Option<f64>>,
}

impl AggregateBucket {
    /// A stored bucket with the aggregates in `aggs`; `start` and `end` in UTC with `Z`.
    pub fn of(b: &StoredBucket, aggs: &[Agg]) -> Self {
        let asked = |a: Agg, v: Option<f64>| aggs.contains(&a).then_some(v);
        AggregateBucket {
            start: utc(b.start),
            end: utc(b.end),
            count: b.count,
            avg: asked(Agg::Avg, b.avg),
            min: asked(Agg::Min, b.min),
            max: asked(Agg::Max, b.max),
            sum: asked(Agg::Sum, b.sum),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<AggregateQuery, ApiError> {
        let mut p = Params::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let q = parse_aggregate_query(&mut p, t("2024-05-01T12:00:00Z"), MAX_WINDOW_DAYS)?;
        // Everything it knows is consumed.
        p.finish().unwrap();
        Ok(q)
    }

    /// The parameter named by a 400, and its message.
    fn rejected(pairs: &[(&str, &str)]) -> (String, String) {
        match parse(pairs) {
            Err(ApiError::BadParam { param, message }) => (param, message),
            other => panic!("expected BadParam for {pairs:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let q = parse(&[("quantity", "co2"), ("bucket", "1h")]).unwrap();
        assert_eq!(
            q,
            AggregateQuery {
                quantity: Quantity::Co2,
                from: t("2024-04-30T12:00:00Z"),
                to: t("2024-05-01T12:00:00Z"),
                width: BucketWidth::Hour,
                aggs: vec![Agg::Avg, Agg::Min, Agg::Max, Agg::Count],
            }
        );
        // A `to` alone moves the default day with it.
        let q = parse(&[
            ("quantity", "co2"),
            ("bucket", "15m"),
            ("to", "2024-03-01T00:00:00+01:00"),
        ])
        .unwrap();
        assert_eq!(
            (q.from, q.to, q.width),
            (
                t("2024-02-28T23:00:00Z"),
                t("2024-02-29T23:00:00Z"),
                BucketWidth::Minutes15
            )
        );
    }

    #[test]
    fn agg_lists() {
        let cases: &[(&str, &str, &[Agg])] = &[
            ("temperature", "max", &[Agg::Max]),
            (
                "temperature",
                "max, min,max,count",
                &[Agg::Max, Agg::Min, Agg::Count],
            ),
            ("people_in", "sum", &[Agg::Sum]),
            ("people_out", "count,sum,sum", &[Agg::Count, Agg::Sum]),
            // Empty counts as absent.
            ("temperature", "", &DEFAULT_AGGS),
        ];
        for (quantity, agg, want) in cases {
            let q = parse(&[("quantity", quantity), ("bucket", "1d"), ("agg", agg)]).unwrap();
            assert_eq!(q.aggs, *want, "{agg}");
        }
    }

    /// Query pairs (the cases below add the parameter a 400 names and part of its message).
    type Query<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn rejections_name_the_parameter() {
        let year = [
            ("from", "2024-01-01T00:00:00Z"),
            ("to", "2025-01-01T00:00:00Z"),
        ];
        let cases: &[(Query, &str, &str)] = &[
            (&[("bucket", "1h")], "quantity", "required"),
            (&[("quantity", "warmth"), ("bucket", "1h")], "quantity", "warmth"),
            (&[("quantity", "co2")], "bucket", "required"),
            (&[("quantity", "co2"), ("bucket", "1w")], "bucket", "'1w'"),
            (&[("quantity", "co2"), ("bucket", "60m")], "bucket", "15m, 1h or 1d"),
            (
                &[("quantity", "co2"), ("bucket", "1h"), ("agg", "avg,median")],
                "agg",
                "'median'",
            ),
            (
                &[("quantity", "co2"), ("bucket", "1h"), ("agg", "avg,,max")],
                "agg",
                "empty entry",
            ),
            (
                &[("quantity", "temperature"), ("bucket", "1h"), ("agg", "avg,sum")],
                "agg",
                "only available for the cumulative counters people_in and people_out, not for temperature",
            ),
            (
                &[("quantity", "co2"), ("bucket", "1h"), ("from", "yesterday")],
                "from",
                "RFC 3339",
            ),
            (
                &[("quantity", "co2"), ("bucket", "1h"), ("from", "2024-05-01T12:00:00Z")],
                "from",
                "must be before to (2024-05-01T12:00:00Z)",
            ),
            (
                &[
                    ("quantity", "co2"),
                    ("bucket", "1d"),
                    ("from", "2023-01-01T00:00:00Z"),
                    ("to", "2024-01-04T00:00:00Z"),
                ],
                "from",
                "368.0 days long; at most 367 days",
            ),
            (
                &[("quantity", "co2"), ("bucket", "15m"), year[0], year[1]],
                "bucket",
                "15m over this window makes 35136 buckets; at most 10000",
            ),
            (
                &[
                    ("quantity", "co2"),
                    ("bucket", "15m"),
                    ("from", "2024-01-01T00:00:00Z"),
                    ("to", "2024-04-15T00:00:00Z"),
                ],
                "bucket",
                "makes 10080 buckets",
            ),
        ];
        for (pairs, param, message) in cases {
            let (p, m) = rejected(pairs);
            assert_eq!(p, *param, "{pairs:?}: {m}");
            assert!(m.contains(message), "{pairs:?}: {m}");
        }
    }

    #[test]
    fn a_leap_year_of_hours_and_the_longest_windows_pass() {
        let cases = [
            ("1h", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", 8784),
            // A Berlin year in UTC, plus the margin day.
            ("1h", "2023-12-31T23:00:00Z", "2025-01-01T23:00:00Z", 8808),
            ("1d", "2024-01-01T00:00:00Z", "2025-01-02T00:00:00Z", 384), // an upper bound
            // 15 min buckets up to 10 000 of them.
            (
                "15m",
                "2024-01-01T00:00:00Z",
                "2024-04-14T04:00:00Z",
                10_000,
            ),
        ];
        for (bucket, from, to, buckets) in cases {
            let q = parse(&[
                ("quantity", "people_in"),
                ("bucket", bucket),
                ("from", from),
                ("to", to),
                ("agg", "sum"),
            ])
            .unwrap();
            assert_eq!((q.from, q.to), (t(from), t(to)));
            assert_eq!(
                q.width.bucket_count(q.from, q.to),
                buckets,
                "{bucket} {from}"
            );
        }
    }

    #[test]
    fn bucket_json_has_the_asked_aggregates_and_utc_times() {
        use serde_json::json;
        let bucket_json = |b: &StoredBucket, aggs: &[Agg]| {
            serde_json::to_value(AggregateBucket::of(b, aggs)).unwrap()
        };
        let full = StoredBucket {
            start: t("2024-03-31T01:00:00+02:00"),
            end: t("2024-03-31T00:00:00Z"),
            count: 3,
            avg: Some(21.5),
            min: Some(20.0),
            max: Some(23.0),
            sum: Some(64.5),
        };
        assert_eq!(
            bucket_json(&full, &[Agg::Max, Agg::Avg]),
            json!({"start": "2024-03-30T23:00:00Z", "end": "2024-03-31T00:00:00Z",
                   "count": 3, "max": 23.0, "avg": 21.5})
        );
        let empty = StoredBucket {
            count: 0,
            avg: None,
            min: None,
            max: None,
            sum: None,
            ..full
        };
        assert_eq!(
            bucket_json(&empty, &DEFAULT_AGGS),
            json!({"start": "2024-03-30T23:00:00Z", "end": "2024-03-31T00:00:00Z",
                   "count": 0, "avg": null, "min": null, "max": null})
        );
        assert_eq!(
            bucket_json(&empty, &[Agg::Sum]),
            json!({"start": "2024-03-30T23:00:00Z", "end": "2024-03-31T00:00:00Z",
                   "count": 0, "sum": null})
        );
    }
}
