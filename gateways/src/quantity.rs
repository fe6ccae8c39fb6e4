//! Canonical quantities and their units. The numeric ids are stored in the database
//! (`readings.quantity`, table `quantities` in store/migrations) and must never change.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! quantities {
    ($( $variant:ident = $id:literal, $name:literal, $unit:literal, $desc:literal; )*) => {
        /// A canonical measured quantity. Every reading has exactly one, with a fixed unit.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i16)]
        pub enum Quantity { $( $variant = $id, )* }

        impl Quantity {
            pub const ALL: &'static [Quantity] = &[ $( Quantity::$variant, )* ];
            /// Stable database id.
            pub fn id(self) -> i16 { self as i16 }
            pub fn from_id(id: i16) -> Option<Quantity> {
                match id { $( $id => Some(Quantity::$variant), )* _ => None }
            }
            /// Canonical name used in the API, config and exports.
            pub fn name(self) -> &'static str {
                match self { $( Quantity::$variant => $name, )* }
            }
            /// Unit symbol (UCUM-like, human readable).
            pub fn unit(self) -> &'static str {
                match self { $( Quantity::$variant => $unit, )* }
            }
            pub fn description(self) -> &'static str {
                match self { $( Quantity::$variant => $desc, )* }
            }
        }

        impl FromStr for Quantity {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $name => Ok(Quantity::$variant), )*
                    other => Err(format!("unknown quantity '{other}'")),
                }
            }
        }
    };
}

quantities! {
    Temperature = 1, "temperature", "°C", "Air temperature";
    Humidity = 2, "humidity", "%RH", "Relative humidity";
    Co2 = 3, "co2", "ppm", "Carbon dioxide concentration";
    Pressure = 4, "pressure", "hPa", "Barometric pressure";
    Pm2_5 = 5, "pm2_5", "µg/m³", "Particulate matter ≤ 2.5 µm";
    Pm10 = 6, "pm10", "µg/m³", "Particulate matter ≤ 10 µm";
    Tvoc = 7, "tvoc", "ppb", "Total volatile organic compounds";
    Illuminance = 8, "illuminance", "lx", "Illuminance";
    Noise = 9, "noise", "dB(A)", "A-weighted sound level";
    BatteryVoltage = 10, "battery_voltage", "V", "Battery voltage";
    Battery = 11, "battery", "%", "Battery level";
    Occupied = 12, "occupied", "1", "Occupancy of a parking bay or desk (0 free, 1 occupied)";
    FreeSpaces = 13, "free_spaces", "1", "Free parking spaces reported by a counter";
    PeopleIn = 14, "people_in", "1", "People counted entering (cumulative as reported)";
    PeopleOut = 15, "people_out", "1", "People counted leaving (cumulative as reported)";
    Hcho = 16, "hcho", "mg/m³", "Formaldehyde concentration";
    Distance = 17, "distance", "m", "Distance (e.g. ultrasonic level sensors)";
    WindSpeed = 18, "wind_speed", "m/s", "Wind speed";
    WindDirection = 19, "wind_direction", "°", "Wind direction (from, clockwise from north)";
    Rainfall = 20, "rainfall", "mm", "Precipitation";
    SoilMoisture = 21, "soil_moisture", "%", "Volumetric soil moisture";
    Motion = 22, "motion", "1", "Motion / presence detected (0/1 or count)";
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut ids: Vec<i16> = Quantity::ALL.iter().map(|q| q.id()).collect();
        for q in Quantity::ALL {
            assert_eq!(Quantity::from_id(q.id()), Some(*q));
            assert_eq!(q.name().parse::<Quantity>(), Ok(*q));
        }
        ids.dedup();
        assert_eq!(ids.len(), Quantity::ALL.len());
        assert_eq!(Quantity::Co2.unit(), "ppm");
        assert_eq!(Quantity::from_id(99), None);
    }
}
