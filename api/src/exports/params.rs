//! Export parameters: the raw query string → a validated [`ExportRequest`] (pure).

use crate::error::ApiError;
use crate::geo::GeoQuery;
use crate::params::{clip, Params};
use chrono::{DateTime, TimeDelta, Utc};
use stadtpuls_gateways::Quantity;
use stadtpuls_store::aggregates::{Agg, BucketWidth};
use std::collections::HashMap;

/// A download format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
    GeoJson,
    Parquet,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::GeoJson => "geojson",
            Format::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Ndjson => "application/x-ndjson",
            Format::GeoJson => "application/geo+json",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// A validated export request.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportRequest {
    /// In `/v1/quantities` order, without duplicates.
    pub quantities: Vec<Quantity>,
    /// All, a bbox or a radius (never nearest or a polygon).
    pub geo: GeoQuery,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Bucket width and the aggregates asked for (in column order: avg, min, max, count).
    pub buckets: Option<(BucketWidth, Vec<Agg>)>,
}

/// Aggregates an export can carry, in column order.
pub const EXPORT_AGGS: [Agg; 4] = [Agg::Avg, Agg::Min, Agg::Max, Agg::Count];

/// Parses the raw query string of an export (pure):
/// - `quantity`: repeated and/or comma lists; absent = every quantity;
/// - `bbox` or `lat`+`lon`+`radius` (`nearest` is a 400: an export has no order by distance);
/// - `from`/`to` (RFC 3339; default the day before `now`), `from` before `to`, at most
///   `max_days` (`http.max_window_days`) days apart (else 400 naming `from`);
/// - `bucket=15m|1h|1d` and, only with it, `agg` (comma list of avg, min, max, count;
///   default all four).
///
/// Any other parameter, or one other than `quantity` given twice, is a 400 naming it.
pub fn parse_export(
    query: Option<&str>,
    now: DateTime<Utc>,
    max_days: u32,
) -> Result<ExportRequest, ApiError> {
    let mut quantity_values = Vec::new();
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        crate::extract::check_text(&k, &k)?;
        crate::extract::check_text(&k, &v)?;
        if k == "quantity" {
            quantity_values.push(v.into_owned());
        } else if map.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(ApiError::bad(&k, "given more than once"));
        }
    }
    let quantities = quantities(&quantity_values)?;
    let mut p = Params::new(map);
    let geo = crate::geo::parse_geo_query(&mut p)?;
    if matches!(geo, GeoQuery::Nearest { .. }) {
        return Err(ApiError::bad(
            "nearest",
            "an export selects by bbox or lat+lon+radius, not nearest",
        ));
    }
    let to = p.time("to")?.unwrap_or(now);
    let from = p.time("from")?.unwrap_or(to - TimeDelta::days(1));
    crate::aggregates::check_span(from, to, max_days, "export")?;
    let bucket = p.string("bucket");
    let agg = p.string("agg");
    let buckets = match (bucket, agg) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ApiError::bad(
                "agg",
                "only with bucket=15m|1h|1d (raw exports carry every value)",
            ))
        }
        (Some(b), agg) => {
            let width: BucketWidth = b.parse().map_err(|_| {
                ApiError::bad(
                    "bucket",
                    format!("'{}' is not a bucket width: 15m, 1h or 1d", clip(&b)),
                )
            })?;
            Some((width, aggs(agg.as_deref())?))
        }
    };
    p.finish()?;
    Ok(ExportRequest {
        quantities,
        geo,
        from,
        to,
        buckets,
    })
}

fn quantities(values: &[String]) -> Result<Vec<Quantity>, ApiError> {
    let mut asked = Vec::new();
    // Empty values count as absent, as everywhere else.
    for name in values
        .iter()
        .filter(|v| !v.is_empty())
        .flat_map(|v| v.split(','))
    {
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::bad(
                "quantity",
                "empty entry; expected names like temperature,co2",
            ));
        }
        let q: Quantity = name.parse().map_err(|_| {
            ApiError::bad(
                "quantity",
                format!("unknown quantity '{}' (see /v1/quantities)", clip(name)),
            )
        })?;
        asked.push(q);
    }
    if asked.is_empty() {
        return Ok(Quantity::ALL.to_vec());
    }
    Ok(Quantity::ALL
        .iter()
        .copied()
        .filter(|q| asked.contains(q))
        .collect())
}

fn aggs(raw: Option<&str>) -> Result<Vec<Agg>, ApiError> {
    let Some(raw) = raw else {
        return Ok(EXPORT_AGGS.to_vec());
    };
    let mut asked = Vec::new();
    for name in raw.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(ApiError::bad(
                "agg",
                "empty entry; expected a comma list like avg,min,max,count",
            ));
        }
        match name.parse::<Agg>() {
            Ok(agg) if EXPORT_AGGS.contains(&agg) => asked.push(agg),
            _ => {
                return Err(ApiError::bad(
                    "agg",
                    format!(
                        "'{}' is not an export aggregate: avg, min, max or count",
                        clip(name)
                    ),
                ))
            }
        }
    }
    Ok(EXPORT_AGGS
        .into_iter()
        .filter(|a| asked.contains(a))
        .collect())
}

/// `readings-<from>-<to>.<ext>` with compact UTC times (`20240501T000000Z`).
pub fn file_name(from: DateTime<Utc>, to: DateTime<Utc>, format: Format) -> String {
    let t = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    format!("readings-{}-{}.{}", t(from), t(to), format.extension())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::aggregates::MAX_WINDOW_DAYS;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        t("2024-05-02T00:00:00Z")
    }

    fn rejected(query: &str) -> (String, String) {
        match parse_export(Some(query), now(), MAX_WINDOW_DAYS).unwrap_err() {
            ApiError::BadParam { param, message } => (param, message),
            other => panic!("{query}: expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_every_quantity_of_the_last_day_raw() {
        let r = parse_export(None, now(), MAX_WINDOW_DAYS).unwrap();
        assert_eq!(r.quantities, Quantity::ALL.to_vec());
        assert_eq!(r.geo, GeoQuery::All);
        assert_eq!((r.from, r.to), (t("2024-05-01T00:00:00Z"), now()));
        assert_eq!(r.buckets, None);
        // Empty values count as absent.
        assert_eq!(
            parse_export(Some("quantity=&bbox="), now(), MAX_WINDOW_DAYS).unwrap(),
            r
        );
    }

    #[test]
    fn quantities_repeat_or_list_and_come_in_id_order() {
        let r = parse_export(
            Some("quantity=co2,temperature&quantity=humidity&quantity=co2"),
            now(),
            MAX_WINDOW_DAYS,
        )
        .unwrap();
        assert_eq!(
            r.quantities,
            [Quantity::Temperature, Quantity::Humidity, Quantity::Co2]
        );
    }

    #[test]
    fn buckets_and_aggregates() {
        let r = parse_export(
            Some("bucket=1h&agg=count,avg,count"),
            now(),
            MAX_WINDOW_DAYS,
        )
        .unwrap();
        assert_eq!(
            r.buckets,
            Some((BucketWidth::Hour, vec![Agg::Avg, Agg::Count]))
        );
        let r = parse_export(Some("bucket=1d"), now(), MAX_WINDOW_DAYS).unwrap();
        assert_eq!(r.buckets, Some((BucketWidth::Day, EXPORT_AGGS.to_vec())));
        // A leap year of 15-minute buckets is fine: an export has no bucket limit.
        let r = parse_export(
            Some("bucket=15m&from=2024-01-01T00:00:00Z&to=2025-01-01T00:00:00Z"),
            now(),
            MAX_WINDOW_DAYS,
        )
        .unwrap();
        assert_eq!(r.buckets.unwrap().0, BucketWidth::Minutes15);
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            ("quantity=warmth", "quantity", "unknown quantity 'warmth'"),
            ("quantity=co2,,temperature", "quantity", "empty entry"),
            ("lat=51.5&lon=7.4&nearest=3", "nearest", "not nearest"),
            ("lat=51.5&lon=7.4", "radius", ""),
            ("bbox=1,2,3", "bbox", ""),
            ("from=yesterday", "from", "RFC 3339"),
            ("to=soon", "to", "RFC 3339"),
            (
                "from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z",
                "from",
                "must be before to (2024-05-01T00:00:00Z)",
            ),
            (
                "from=2023-01-01T00:00:00Z&to=2024-01-04T00:00:00Z",
                "from",
                "368.0 days long; at most 367 days",
            ),
            ("bucket=1w", "bucket", "'1w' is not a bucket width"),
            ("agg=avg", "agg", "only with bucket"),
            (
                "bucket=1h&agg=sum",
                "agg",
                "'sum' is not an export aggregate",
            ),
            ("bucket=1h&agg=avg,,max", "agg", "empty entry"),
            ("colour=red", "colour", "unknown parameter"),
            (
                "from=2024-05-01T00:00:00Z&from=2024-04-01T00:00:00Z",
                "from",
                "more than once",
            ),
        ];
        for (query, param, message) in cases {
            let (p, m) = rejected(query);
            assert_eq!(p, param, "{query}: {m}");
            assert!(m.contains(message), "{query}: {m}");
        }
    }

    #[test]
    fn file_names_use_compact_utc_times() {
        assert_eq!(
            file_name(
                t("2024-05-01T02:00:00+02:00"),
                t("2024-05-02T00:00:00.5Z"),
                Format::Parquet
            ),
            "readings-20240501T000000Z-20240502T000000Z.parquet"
        );
    }
}
