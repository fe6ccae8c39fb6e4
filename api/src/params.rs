//! Query-parameter parsing with errors that name the parameter.

use crate::error::ApiError;
use chrono::{DateTime, Utc};
use stadtpuls_gateways::{Axis, DevEui, Quantity};
use stadtpuls_store::BBox;
use std::collections::HashMap;

/// Raw query parameters; every accessor removes what it reads so leftovers can be reported.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn new(map: HashMap<String, String>) -> Self {
        Params(map)
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name).filter(|v| !v.is_empty())
    }

    /// Rejects parameters no accessor asked for (typos should not silently widen a query).
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.keys().min() {
            Some(k) => Err(ApiError::bad(k, "unknown parameter")),
            None => Ok(()),
        }
    }

    /// A raw string parameter (empty counts as absent).
    pub fn string(&mut self, name: &str) -> Option<String> {
        self.take(name)
    }

    /// A parameter parsed with `FromStr`; the error names it and echoes (a clip of) the value.
    pub fn parsed<T: std::str::FromStr>(
        &mut self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, ApiError> {
        self.take(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| ApiError::bad(name, format!("'{}' is not {what}", clip(&v))))
            })
            .transpose()
    }

    pub fn quantity(&mut self) -> Result<Option<Quantity>, ApiError> {
        self.take("quantity")
            .map(|v| {
                v.parse::<Quantity>().map_err(|_| {
                    ApiError::bad(
                        "quantity",
                        format!("unknown quantity '{}' (see /v1/quantities)", clip(&v)),
                    )
                })
            })
            .transpose()
    }

    pub fn time(&mut self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.take(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(&v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad(
                            name,
                            format!(
                                "'{}' is not an RFC 3339 time like 2024-05-01T12:00:00Z",
                                clip(&v)
                            ),
                        )
                    })
            })
            .transpose()
    }

    pub fn limit(&mut self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.take("limit") {
            None => Ok(default.min(max)),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad(
                    "limit",
                    format!("must be an integer between 1 and {max}"),
                )),
            },
        }
    }

    /// `bbox=minLon,minLat,maxLon,maxLat` in WGS84.
    pub fn bbox(&mut self) -> Result<Option<BBox>, ApiError> {
        let Some(v) = self.take("bbox") else {
            return Ok(None);
        };
        let parts: Vec<f64> = v
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                ApiError::bad("bbox", "expected four numbers minLon,minLat,maxLon,maxLat")
            })?;
        let [min_lon, min_lat, max_lon, max_lat] = parts[..] else {
            return Err(ApiError::bad(
                "bbox",
                "expected four numbers minLon,minLat,maxLon,maxLat",
            ));
        };
        if parts.iter().any(|p| !p.is_finite()) {
            return Err(ApiError::bad("bbox", "coordinates must be finite numbers"));
        }
        let outside = |axis: Axis, a: f64, b: f64| axis.check(a).is_err() || axis.check(b).is_err();
        if outside(Axis::Lon, min_lon, max_lon) {
            return Err(ApiError::bad(
                "bbox",
                "longitudes must lie within -180..180 (WGS84)",
            ));
        }
        if outside(Axis::Lat, min_lat, max_lat) {
            return Err(ApiError::bad(
                "bbox",
                "latitudes must lie within -90..90 (WGS84)",
            ));
        }
        if min_lon > max_lon || min_lat > max_lat {
            return Err(ApiError::bad(
                "bbox",
                "minimum must not exceed maximum (minLon,minLat,maxLon,maxLat)",
            ));
        }
        Ok(Some(BBox {
            min_lon,
            min_lat,
            max_lon,
            max_lat,
        }))
    }

    /// Opaque keyset cursor `<unix micros>.<quantity id>` as produced in `next` links.
    pub fn cursor(&mut self) -> Result<Option<stadtpuls_store::ReadingCursor>, ApiError> {
        let Some(v) = self.take("cursor") else {
            return Ok(None);
        };
        let bad = || ApiError::bad("cursor", "not a cursor from a 'next' link");
        let (t, q) = v.split_once('.').ok_or_else(bad)?;
        let micros: i64 = t.parse().map_err(|_| bad())?;
        let qid: i16 = q.parse().map_err(|_| bad())?;
        let time = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
        let quantity = Quantity::from_id(qid).ok_or_else(bad)?;
        Ok(Some(stadtpuls_store::ReadingCursor { time, quantity }))
    }

    /// Any other raw value (already-consumed parameters are gone).
    pub fn raw(&self) -> &HashMap<String, String> {
        &self.0
    }
}

pub fn encode_cursor(c: &stadtpuls_store::ReadingCursor) -> String {
    format!("{}.{}", c.time.timestamp_micros(), c.quantity.id())
}

pub fn dev_eui(raw: &str) -> Result<DevEui, ApiError> {
    DevEui::parse_hex(raw)
        .map_err(|_| ApiError::bad("dev_eui", format!("'{}' is not 16 hex digits", clip(raw))))
}

/// A time as the API writes it everywhere: RFC 3339 in UTC with `Z`, sub-second digits only
/// when there are any.
pub fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// At most 64 characters of user input go back into error messages.
pub fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn err_param(e: ApiError) -> String {
        match e {
            ApiError::BadParam { param, .. } => param,
            other => panic!("expected BadParam, got {other:?}"),
        }
    }

    #[test]
    fn bbox_accepts_valid_and_names_the_param_otherwise() {
        let b = p(&[("bbox", "7.4,51.5,7.5,51.6")]).bbox().unwrap().unwrap();
        assert_eq!(
            (b.min_lon, b.min_lat, b.max_lon, b.max_lat),
            (7.4, 51.5, 7.5, 51.6)
        );
        for bad in [
            "7.4,51.5,7.5",
            "a,b,c,d",
            "7.5,51.5,7.4,51.6",
            "190,0,191,1",
            "0,-91,1,0",
            "NaN,0,1,1",
            "inf,0,1,1",
        ] {
            assert_eq!(
                err_param(p(&[("bbox", bad)]).bbox().unwrap_err()),
                "bbox",
                "{bad}"
            );
        }
    }

    #[test]
    fn times_limits_quantities_cursors() {
        let t = p(&[("from", "2024-05-01T12:00:00+02:00")])
            .time("from")
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T10:00:00+00:00");
        assert_eq!(
            err_param(p(&[("from", "yesterday")]).time("from").unwrap_err()),
            "from"
        );
        assert_eq!(p(&[]).limit(100, 1000).unwrap(), 100);
        assert_eq!(p(&[("limit", "5")]).limit(100, 1000).unwrap(), 5);
        for bad in ["0", "-1", "1001", "x"] {
            assert_eq!(
                err_param(p(&[("limit", bad)]).limit(100, 1000).unwrap_err()),
                "limit"
            );
        }
        assert_eq!(
            p(&[("quantity", "co2")]).quantity().unwrap(),
            Some(Quantity::Co2)
        );
        assert_eq!(
            err_param(p(&[("quantity", "warmth")]).quantity().unwrap_err()),
            "quantity"
        );
        let c = stadtpuls_store::ReadingCursor {
            time: t,
            quantity: Quantity::Humidity,
        };
        assert_eq!(
            p(&[("cursor", &encode_cursor(&c))]).cursor().unwrap(),
            Some(c)
        );
        assert_eq!(
            err_param(p(&[("cursor", "1.99")]).cursor().unwrap_err()),
            "cursor"
        );
        assert_eq!(err_param(p(&[("foo", "1")]).finish().unwrap_err()), "foo");
        assert_eq!(err_param(dev_eui("0102").unwrap_err()), "dev_eui");
        assert_eq!(
            dev_eui("A81758FFFE0312A9").unwrap().to_string(),
            "a81758fffe0312a9"
        );
    }
}
