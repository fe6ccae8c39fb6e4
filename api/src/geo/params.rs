//! The geo query parameters: `bbox`, or `lat`+`lon` with `radius` (metres) or `nearest` (a
//! count), read into a [`GeoQuery`]; and the position check for numbers in JSON bodies.

use super::GeoQuery;
use crate::error::ApiError;
use crate::params::clip;
use crate::params::Params;
use stadtpuls_gateways::{Axis, Position, PositionError};

/// Largest accepted `radius` in metres.
pub const MAX_RADIUS_M: f64 = 100_000.0;
/// Largest accepted `nearest` count.
pub const MAX_NEAREST: usize = 1000;

/// Reads `bbox` | `lat`+`lon`+`radius` | `lat`+`lon`+`nearest` from query parameters; none of
/// them is [`GeoQuery::All`]. Consumes those five parameters (empty values count as absent, as
/// in [`Params`]), so [`Params::finish`] still reports the rest.
///
/// Errors are [`ApiError::BadParam`] naming the parameter: values that are not numbers,
/// non-finite or outside WGS84 (`lat`/`lon`); `lat` without `lon` and vice versa (names the
/// missing one); `lat`/`lon` without `radius` or `nearest` (`radius`); `radius`/`nearest` without
/// `lat`/`lon` (`lat`); `radius` with `nearest` (`nearest`); `bbox` with any of the others
/// (`bbox`); `radius` not in (0, 100 000] metres; `nearest` not an integer in 1..=1000.
pub fn parse_geo_query(p: &mut Params) -> Result<GeoQuery, ApiError> {
    let bbox = p.bbox()?;
    // `Params` has no public generic `take`; rebuild it without our keys instead, which is the
    // same thing through its public API.
    let mut rest = p.raw().clone();
    let mut take = |name: &str| rest.remove(name).filter(|v| !v.is_empty());
    let (lat, lon, radius, nearest) = (take("lat"), take("lon"), take("radius"), take("nearest"));
    *p = Params::new(rest);

    let lat = lat.map(|v| coordinate(Axis::Lat, &v)).transpose()?;
    let lon = lon.map(|v| coordinate(Axis::Lon, &v)).transpose()?;
    let radius_m = radius.map(|v| parse_radius(&v)).transpose()?;
    let nearest = nearest.map(|v| parse_nearest(&v)).transpose()?;

    if let Some(bbox) = bbox {
        if lat.is_some() || lon.is_some() || radius_m.is_some() || nearest.is_some() {
            return Err(ApiError::bad(
                "bbox",
                "cannot be combined with lat/lon/radius/nearest; select by one of bbox, lat+lon+radius or lat+lon+nearest",
            ));
        }
        return Ok(GeoQuery::BBox(bbox));
    }
    match (lat, lon, radius_m, nearest) {
        (None, None, None, None) => Ok(GeoQuery::All),
        (Some(_), None, _, _) => Err(ApiError::bad("lon", "required together with lat")),
        (None, Some(_), _, _) => Err(ApiError::bad("lat", "required together with lon")),
        (None, None, _, _) => Err(ApiError::bad(
            "lat",
            "lat and lon are required with radius or nearest",
        )),
        (Some(lat), Some(lon), Some(radius_m), None) => Ok(GeoQuery::Radius { lat, lon, radius_m }),
        (Some(lat), Some(lon), None, Some(n)) => Ok(GeoQuery::Nearest { lat, lon, n }),
        (Some(_), Some(_), None, None) => Err(ApiError::bad(
            "radius",
            "lat/lon need either radius (metres) or nearest (a count)",
        )),
        (Some(_), Some(_), Some(_), Some(_)) => Err(ApiError::bad(
            "nearest",
            "cannot be combined with radius; use one of them",
        )),
    }
}

/// A position given as numbers (e.g. in a JSON body): finite and inside WGS84; errors name
/// `lat` or `lon`.
pub fn position(lat: f64, lon: f64) -> Result<Position, ApiError> {
    Position::new(lat, lon).map_err(position_error)
}

fn position_error(e: PositionError) -> ApiError {
    ApiError::bad(e.axis().name(), e.problem())
}

/// A latitude or longitude in degrees, named after its axis in errors.
fn coordinate(axis: Axis, raw: &str) -> Result<f64, ApiError> {
    let v: f64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::bad(axis.name(), format!("'{}' is not a number", clip(raw))))?;
    axis.check(v).map_err(position_error)
}

fn parse_radius(raw: &str) -> Result<f64, ApiError> {
    let v: f64 = raw.trim().parse().map_err(|_| {
        ApiError::bad(
            "radius",
            format!("'{}' is not a number of metres", clip(raw)),
        )
    })?;
    if !(v.is_finite() && v > 0.0 && v <= MAX_RADIUS_M) {
        return Err(ApiError::bad(
            "radius",
            format!("must be more than 0 and at most {MAX_RADIUS_M} metres"),
        ));
    }
    Ok(v)
}

fn parse_nearest(raw: &str) -> Result<usize, ApiError> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_NEAREST).contains(&n) => Ok(n),
        _ => Err(ApiError::bad(
            "nearest",
            format!("must be an integer between 1 and {MAX_NEAREST}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stadtpuls_store::BBox;

    fn params(query: &str) -> Params {
        Params::new(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    #[test]
    fn geo_parameters_are_parsed_and_consumed() {
        let cases: Vec<(&str, GeoQuery)> = vec![
            ("", GeoQuery::All),
            ("lat=&lon=", GeoQuery::All),
            (
                "bbox=7.4,51.5,7.5,51.6",
                GeoQuery::BBox(BBox {
                    min_lon: 7.4,
                    min_lat: 51.5,
                    max_lon: 7.5,
                    max_lat: 51.6,
                }),
            ),
            (
                "lat=51.5&lon=7.46&radius=1000",
                GeoQuery::Radius {
                    lat: 51.5,
                    lon: 7.46,
                    radius_m: 1000.0,
                },
            ),
            (
                "lat=-90&lon=180&radius=100000",
                GeoQuery::Radius {
                    lat: -90.0,
                    lon: 180.0,
                    radius_m: 100_000.0,
                },
            ),
            (
                "lat=51.5&lon=7.46&radius=0.5",
                GeoQuery::Radius {
                    lat: 51.5,
                    lon: 7.46,
                    radius_m: 0.5,
                },
            ),
            (
                "lat=51.5&lon=7.46&nearest=5",
                GeoQuery::Nearest {
                    lat: 51.5,
                    lon: 7.46,
                    n: 5,
                },
            ),
            (
                "lat=+51.5&lon=%207.46&nearest=1000",
                GeoQuery::Nearest {
                    lat: 51.5,
                    lon: 7.46,
                    n: 1000,
                },
            ),
        ];
        for (query, expected) in cases {
            let mut p = params(&format!("{query}&limit=5"));
            assert_eq!(parse_geo_query(&mut p).unwrap(), expected, "{query}");
            assert_eq!(
                p.limit(100, 1000).unwrap(),
                5,
                "{query}: other parameters survive"
            );
            p.finish().unwrap();
        }
        let mut p = params("lat=51.5&lon=7.46&radius=10&colour=red");
        parse_geo_query(&mut p).unwrap();
        assert!(matches!(p.finish(), Err(ApiError::BadParam { param, .. }) if param == "colour"));
    }

    #[test]
    fn geo_parameter_errors_name_the_parameter() {
        let cases = [
            ("lat=abc&lon=7&radius=10", "lat", "'abc' is not a number"),
            ("lat=51&lon=east&radius=10", "lon", "'east' is not a number"),
            ("lat=95&lon=7&radius=10", "lat", "95 lies outside -90..90"),
            (
                "lat=-90.5&lon=7&nearest=1",
                "lat",
                "-90.5 lies outside -90..90",
            ),
            (
                "lat=51&lon=-181&radius=10",
                "lon",
                "-181 lies outside -180..180",
            ),
            ("lat=NaN&lon=7&radius=10", "lat", "must be a finite number"),
            ("lat=51&lon=inf&radius=10", "lon", "must be a finite number"),
            (
                "lat=51&lon=7&radius=ten",
                "radius",
                "'ten' is not a number of metres",
            ),
            (
                "lat=51&lon=7&radius=0",
                "radius",
                "must be more than 0 and at most 100000 metres",
            ),
            ("lat=51&lon=7&radius=-5", "radius", "must be more than 0"),
            (
                "lat=51&lon=7&radius=100000.5",
                "radius",
                "must be more than 0",
            ),
            ("lat=51&lon=7&radius=inf", "radius", "must be more than 0"),
            (
                "lat=51&lon=7&nearest=0",
                "nearest",
                "must be an integer between 1 and 1000",
            ),
            (
                "lat=51&lon=7&nearest=1001",
                "nearest",
                "must be an integer between 1 and 1000",
            ),
            ("lat=51&lon=7&nearest=2.5", "nearest", "must be an integer"),
            ("lat=51&lon=7&nearest=many", "nearest", "must be an integer"),
            ("lat=51&radius=10", "lon", "required together with lat"),
            ("lon=7&nearest=3", "lat", "required together with lon"),
            ("lat=51&lon=7", "radius", "lat/lon need either radius"),
            (
                "radius=10",
                "lat",
                "lat and lon are required with radius or nearest",
            ),
            ("nearest=3", "lat", "lat and lon are required"),
            (
                "lat=51&lon=7&radius=10&nearest=3",
                "nearest",
                "cannot be combined with radius",
            ),
            (
                "bbox=7.4,51.5,7.5,51.6&lat=51&lon=7",
                "bbox",
                "cannot be combined with lat/lon",
            ),
            (
                "bbox=7.4,51.5,7.5,51.6&radius=10",
                "bbox",
                "cannot be combined",
            ),
            ("bbox=7.4,51.5,7.5", "bbox", "expected four numbers"),
        ];
        for (query, param, message) in cases {
            match parse_geo_query(&mut params(query)) {
                Err(ApiError::BadParam {
                    param: p,
                    message: m,
                }) => {
                    assert_eq!(p, param, "{query}: {m}");
                    assert!(
                        m.starts_with(message),
                        "{query}: got '{m}', expected '{message}…'"
                    );
                }
                other => panic!("{query}: expected BadParam, got {other:?}"),
            }
        }
    }

    #[test]
    fn body_positions_are_checked_and_name_the_coordinate() {
        let p = position(51.5, 7.46).unwrap();
        assert_eq!((p.lat(), p.lon()), (51.5, 7.46));
        for (lat, lon, param, message) in [
            (95.0, 7.0, "lat", "95 lies outside -90..90 (WGS84 degrees)"),
            (
                51.0,
                -181.0,
                "lon",
                "-181 lies outside -180..180 (WGS84 degrees)",
            ),
        ] {
            match position(lat, lon) {
                Err(ApiError::BadParam {
                    param: p,
                    message: m,
                }) => {
                    assert_eq!((p.as_str(), m.as_str()), (param, message))
                }
                other => panic!("({lat}, {lon}): expected BadParam, got {other:?}"),
            }
        }
    }
}
