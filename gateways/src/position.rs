//! A WGS84 position whose constructor rejects what is not one: the one place the coordinate
//! range check is written.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which coordinate of a position a value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    Lat,
    Lon,
}

impl Axis {
    /// `lat` or `lon`, as parameters and fields are named.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Lat => "lat",
            Axis::Lon => "lon",
        }
    }

    /// The word used in messages about a single coordinate.
    pub fn word(self) -> &'static str {
        match self {
            Axis::Lat => "latitude",
            Axis::Lon => "longitude",
        }
    }

    /// The largest magnitude in degrees: 90 for latitude, 180 for longitude.
    pub fn limit(self) -> f64 {
        match self {
            Axis::Lat => 90.0,
            Axis::Lon => 180.0,
        }
    }

    /// `value` if it is a finite number within `-limit..=limit`.
    pub fn check(self, value: f64) -> Result<f64, PositionError> {
        if !value.is_finite() {
            Err(PositionError::NotFinite { axis: self })
        } else if !(-self.limit()..=self.limit()).contains(&value) {
            Err(PositionError::OutOfRange { axis: self, value })
        } else {
            Ok(value)
        }
    }
}

/// Why two numbers are not a WGS84 position. Displays as `<lat|lon> <problem>`, e.g.
/// `lat 95 lies outside -90..90 (WGS84 degrees)`.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum PositionError {
    /// NaN or infinite.
    #[error("{} {}", .axis.name(), self.problem())]
    NotFinite { axis: Axis },
    /// Finite but beyond ±90° (latitude) or ±180° (longitude).
    #[error("{} {}", .axis.name(), self.problem())]
    OutOfRange { axis: Axis, value: f64 },
}

impl PositionError {
    /// The coordinate at fault.
    pub fn axis(&self) -> Axis {
        match self {
            PositionError::NotFinite { axis } | PositionError::OutOfRange { axis, .. } => *axis,
        }
    }

    /// The message without the coordinate's name, for errors that name it elsewhere (an HTTP
    /// parameter, a field).
    pub fn problem(&self) -> String {
        match self {
            PositionError::NotFinite { .. } => "must be a finite number".into(),
            PositionError::OutOfRange { axis, value } => format!(
                "{value} lies outside -{limit}..{limit} (WGS84 degrees)",
                limit = axis.limit()
            ),
        }
    }
}

/// A point on the WGS84 ellipsoid in degrees: latitude in -90..=90, longitude in -180..=180,
/// both finite. Serialises as `{"lat": …, "lon": …}`; deserialising checks the ranges too.
#[derive(Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPosition")]
pub struct Position {
    lat: f64,
    lon: f64,
}

impl Position {
    /// Checks latitude first, then longitude; the error names the coordinate at fault.
    pub fn new(lat: f64, lon: f64) -> Result<Self, PositionError> {
        Ok(Position {
            lat: Axis::Lat.check(lat)?,
            lon: Axis::Lon.check(lon)?,
        })
    }

    /// From GeoJSON order `[lon, lat]`.
    pub fn from_lon_lat(lon: f64, lat: f64) -> Result<Self, PositionError> {
        Position::new(lat, lon)
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Position({}, {})", self.lat, self.lon)
    }
}

#[derive(Deserialize)]
struct RawPosition {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawPosition> for Position {
    type Error = PositionError;
    fn try_from(r: RawPosition) -> Result<Self, Self::Error> {
        Position::new(r.lat, r.lon)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_the_closed_ranges_and_rejects_the_rest() {
        for (lat, lon) in [(0.0, 0.0), (-90.0, 180.0), (90.0, -180.0), (51.5, 7.46)] {
            let p = Position::new(lat, lon).unwrap();
            assert_eq!((p.lat(), p.lon()), (lat, lon));
        }
        let cases = [
            (95.0, 7.0, "lat 95 lies outside -90..90 (WGS84 degrees)"),
            (-90.5, 7.0, "lat -90.5 lies outside -90..90 (WGS84 degrees)"),
            (
                51.0,
                -181.0,
                "lon -181 lies outside -180..180 (WGS84 degrees)",
            ),
            (f64::NAN, 7.0, "lat must be a finite number"),
            (51.0, f64::INFINITY, "lon must be a finite number"),
            (f64::NAN, 200.0, "lat must be a finite number"),
        ];
        for (lat, lon, message) in cases {
            assert_eq!(Position::new(lat, lon).unwrap_err().to_string(), message);
        }
        assert_eq!(
            Position::new(0.0, 181.0).unwrap_err(),
            PositionError::OutOfRange {
                axis: Axis::Lon,
                value: 181.0
            }
        );
        assert_eq!(Position::from_lon_lat(7.0, 51.0), Position::new(51.0, 7.0));
    }

    #[test]
    fn serde_is_lat_lon_and_checked() {
        let p = Position::new(51.5, 7.25).unwrap();
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"lat":51.5,"lon":7.25}"#
        );
        assert_eq!(
            serde_json::from_str::<Position>(r#"{"lat":51.5,"lon":7.25}"#).unwrap(),
            p
        );
        let err = serde_json::from_str::<Position>(r#"{"lat":91,"lon":7}"#).unwrap_err();
        assert!(err.to_string().contains("lat 91 lies outside"), "{err}");
    }
}
