//! What the registry says a device is: its kind and who may see its readings.
//!
//! The enums live here, below config, store, api and cli, so every layer names the same values.
//! The store maps them to PostgreSQL enums through the `sqlx` feature, the API documents them
//! through the `utoipa` feature; by default this crate stays free of both.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A name that is not one of an enumeration's values; the message lists the valid ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: '{value}' is not one of {expected}")]
pub struct UnknownName {
    /// What was being parsed (`kind`, `visibility`).
    pub field: &'static str,
    pub value: String,
    /// The valid names, comma separated.
    pub expected: String,
}

/// What a device measures; later features (parking, buildings) select devices by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(
    feature = "sqlx",
    sqlx(type_name = "device_kind", rename_all = "snake_case")
)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    ParkingBay,
    ParkingCounter,
    RoomClimate,
    DeskOccupancy,
    PeopleCounter,
    OutdoorClimate,
    AirQuality,
    Other,
}

impl DeviceKind {
    pub const ALL: &'static [DeviceKind] = &[
        DeviceKind::ParkingBay,
        DeviceKind::ParkingCounter,
        DeviceKind::RoomClimate,
        DeviceKind::DeskOccupancy,
        DeviceKind::PeopleCounter,
        DeviceKind::OutdoorClimate,
        DeviceKind::AirQuality,
        DeviceKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::ParkingBay => "parking_bay",
            DeviceKind::ParkingCounter => "parking_counter",
            DeviceKind::RoomClimate => "room_climate",
            DeviceKind::DeskOccupancy => "desk_occupancy",
            DeviceKind::PeopleCounter => "people_counter",
            DeviceKind::OutdoorClimate => "outdoor_climate",
            DeviceKind::AirQuality => "air_quality",
            DeviceKind::Other => "other",
        }
    }

    /// Every kind's name, comma separated (for messages).
    pub fn names() -> String {
        DeviceKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        DeviceKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName {
                field: "kind",
                value: s.to_string(),
                expected: DeviceKind::names(),
            })
    }
}

/// Whether a device's readings may be served without a key. Private is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(
    feature = "sqlx",
    sqlx(type_name = "visibility", rename_all = "snake_case")
)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    #[default]
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Visibility {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "public" => Ok(Visibility::Public),
            "private" => Ok(Visibility::Private),
            other => Err(UnknownName {
                field: "visibility",
                value: other.to_string(),
                expected: "public, private".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for &k in DeviceKind::ALL {
            assert_eq!(k.as_str().parse::<DeviceKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        for v in [Visibility::Public, Visibility::Private] {
            assert_eq!(v.as_str().parse::<Visibility>().unwrap(), v);
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::json!(v.as_str())
            );
        }
        assert_eq!(Visibility::default(), Visibility::Private);
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        assert_eq!(
            "carpark".parse::<DeviceKind>().unwrap_err().to_string(),
            "invalid kind: 'carpark' is not one of parking_bay, parking_counter, room_climate, \
             desk_occupancy, people_counter, outdoor_climate, air_quality, other"
        );
        assert_eq!(
            "secret".parse::<Visibility>().unwrap_err().to_string(),
            "invalid visibility: 'secret' is not one of public, private"
        );
    }

    #[cfg(feature = "utoipa")]
    #[test]
    fn the_openapi_schema_lists_the_serde_names() {
        use utoipa::PartialSchema;
        let kind = serde_json::to_value(DeviceKind::schema()).unwrap();
        let names: Vec<&str> = DeviceKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kind["enum"], serde_json::json!(names));
        let vis = serde_json::to_value(Visibility::schema()).unwrap();
        assert_eq!(vis["enum"], serde_json::json!(["public", "private"]));
    }
}
