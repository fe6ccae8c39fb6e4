//! Key → quantity mapping: turns a decoded payload object (whatever codec produced it) into
//! canonical [`Reading`]s, and reports every key it could not use.
//!
//! Rules, in the order they apply to each leaf of the object:
//! * Keys match case-insensitively, ignoring `_`, `-` and spaces (`batteryVoltage` =
//!   `battery_voltage`), except `_` between two digits, so that `pm1_0` does not become `pm10`.
//! * Nested objects are walked with dotted paths (`air.temperature`). A leaf is looked up by its
//!   full path first (`soil.temperature`, `wind.speed`), then by its own key, then by its key
//!   without `_<digits>` segments (Cayenne `temperature_3`, `line_1_in`). A leaf whose key is all
//!   digits takes its parent's key (ChirpStack Cayenne `{"temperatureSensor": {"3": 27.2}}`).
//! * `{value, unit}` / `{displayName, unit, value}` objects are one leaf with a unit.
//! * Values: numbers; numeric strings, optionally with a unit (`"2000 mm"`, `"25 ℃"`);
//!   booleans (0/1) only for dimensionless quantities (occupied, motion, counts) — a `battery:
//!   false` low-battery flag is not a 0 % battery.
//! * A unit is converted to the quantity's canonical unit; an unknown unit leaves the key
//!   unmapped rather than storing a wrong number (e.g. `bar` on a hydrostatic level sensor is
//!   not barometric pressure). Without a unit the table's factor applies.
//! * Nothing inside configuration/flag objects (`flags`, `payloadmask`, `config`, ...) maps.
//! * `battery` is ambiguous across vendors (percent for Milesight, volts for Browan and the TTS
//!   normalized schema): a unitless fractional value ≤ 5 is taken as volts.
//! * If a quantity occurs twice, the first leaf in key order (keys sorted bytewise, so
//!   `temperature_1` before `temperature_2`) wins and the others are reported as unmapped.
//! * Everything not turned into a reading — unknown keys, text, arrays, nulls, non-finite
//!   numbers, duplicates — is listed in [`Mapped::unmapped`] by full key path.

use crate::Quantity;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

/// One measured value in canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub quantity: Quantity,
    /// In [`Quantity::unit`].
    pub value: f64,
    pub observed_at: DateTime<Utc>,
}

/// Result of [`KeyTable::map_object`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Mapped {
    pub readings: Vec<Reading>,
    /// Full key paths (`air.temperature`, `temperatureSensor.5`) that produced no reading.
    pub unmapped: Vec<String>,
}

/// What a key means.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rule {
    /// `None`: known, deliberately not mapped (blocks the fallback lookups).
    quantity: Option<Quantity>,
    /// Multiplier for unitless values.
    factor: f64,
    /// Unitless values are ambiguous for this key (e.g. `level`: mm? %?) and are not mapped.
    unit_required: bool,
}

/// Key → quantity table; [`KeyTable::builtin`] plus entries from configuration.
#[derive(Clone, Debug, Default)]
pub struct KeyTable {
    rules: HashMap<String, Rule>,
}

/// Keys real codecs emit, per quantity. Quantity names themselves (`pm2_5`, `free_spaces`) are
/// added automatically.
const BUILTIN: &[(Quantity, &[&str])] = &[
    (
        Quantity::Temperature,
        &[
            "temperature",
            "temp",
            "tempc",
            "temp_c",
            "tempc_sht",
            "air_temperature",
            "ambient_temperature",
            "temperature_sensor",
        ],
    ),
    (
        Quantity::Humidity,
        &[
            "humidity",
            "hum",
            "humi",
            "hum_sht",
            "rh",
            "relative_humidity",
            "air_humidity",
            "humidity_sensor",
        ],
    ),
    (
        Quantity::Co2,
        &["co2", "co2_concentration", "carbon_dioxide", "co2_ppm"],
    ),
    (
        Quantity::Pressure,
        &[
            "pressure",
            "barometric_pressure",
            "air_pressure",
            "atmospheric_pressure",
            "barometer",
            "barometer_sensor",
            "baro",
        ],
    ),
    (
        Quantity::Pm2_5,
        &["pm25", "pm2.5", "pm2_5_mass_concentration"],
    ),
    (Quantity::Pm10, &["pm10_mass_concentration"]),
    (Quantity::Tvoc, &["tvoc", "total_voc", "tvoc_ppb"]),
    (
        Quantity::Illuminance,
        &[
            "illuminance",
            "illumination",
            "lux",
            "luminosity",
            "light",
            "light_intensity",
            "illuminance_sensor",
        ],
    ),
    (
        Quantity::Noise,
        &[
            "noise",
            "laeq",
            "la_eq",
            "leq",
            "noise_level",
            "sound_level",
            "decibel",
        ],
    ),
    (
        Quantity::BatteryVoltage,
        &["batv", "bat_v", "battery_v", "vbat", "volt", "battery_volt"],
    ),
    (
        Quantity::Battery,
        &[
            "battery",
            "battery_level",
            "battery_percent",
            "battery_percentage",
        ],
    ),
    (
        Quantity::Occupied,
        &["occupied", "occupancy", "p_state", "parking_occupied"],
    ),
    (
        Quantity::FreeSpaces,
        &["free_slots", "free_places", "available_spaces"],
    ),
    (
        Quantity::PeopleIn,
        &["people_count_in", "line_in", "line_total_in"],
    ),
    (
        Quantity::PeopleOut,
        &["people_count_out", "line_out", "line_total_out"],
    ),
    (Quantity::Hcho, &["formaldehyde", "ch2o"]),
    (Quantity::Distance, &["distance_m"]),
    (Quantity::WindSpeed, &["windspeed", "wind.speed"]),
    (
        Quantity::WindDirection,
        &["winddirection", "wind.direction"],
    ),
    (Quantity::Rainfall, &["precipitation", "rain"]),
    (Quantity::SoilMoisture, &["soil.moisture"]),
    (
        Quantity::Motion,
        &[
            "activity",
            "activity_counter",
            "presence",
            "presence_sensor",
            "action.motion.detected",
            "action.motion.count",
        ],
    ),
];

/// Keys whose name implies a non-canonical unit.
const SCALED: &[(&str, Quantity, f64)] = &[
    ("pressure_pa", Quantity::Pressure, 0.01),
    ("barometric_pressure_pa", Quantity::Pressure, 0.01),
    ("battery_mv", Quantity::BatteryVoltage, 0.001),
    ("distance_mm", Quantity::Distance, 0.001),
    ("distance_cm", Quantity::Distance, 0.01),
];

/// Keys that only map when the value says its unit.
const UNIT_REQUIRED: &[(&str, Quantity)] = &[("level", Quantity::Distance)];

/// Paths that would otherwise reach a wrong quantity through the leaf-key fallback.
const NOT_MAPPED: &[&str] = &["soil.temperature"];

/// Objects holding configuration or flags rather than measurements (paxcounter
/// `payloadmask.battery: 0` is "battery data not sent", not 0 %). Nothing below them maps.
const NOT_MEASUREMENTS: &[&str] = &[
    "flags",
    "payloadmask",
    "mask",
    "config",
    "configuration",
    "settings",
    "thresholds",
    "alarms",
];

/// Keys of a `{value, unit}` object besides `value`.
const VALUE_OBJECT_KEYS: &[&str] = &[
    "unit",
    "displayName",
    "display_name",
    "name",
    "label",
    "description",
    "timestamp",
    "time",
];

/// Lowercases and drops `_`, `-`, spaces — but keeps `_` between two digits.
fn normalise(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::with_capacity(key.len());
    for (i, c) in chars.iter().enumerate() {
        let between_digits = *c == '_'
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if matches!(c, '_' | '-' | ' ') && !between_digits {
            continue;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `temperature_3` → `temperature`, `line_1_total_in` → `line_total_in`; `None` if unchanged.
fn without_digit_segments(key: &str) -> Option<String> {
    let kept: Vec<&str> = key
        .split('_')
        .filter(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let stripped = kept.join("_");
    (stripped != key && !stripped.is_empty()).then_some(stripped)
}

/// One configured mapping, e.g. `"soil_temp_c = temperature"` or `"pressure_pa = pressure * 0.01"`.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyEntry {
    pub key: String,
    pub quantity: Quantity,
    pub factor: f64,
}

impl FromStr for KeyEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, rhs) = s.split_once('=').ok_or_else(|| {
            format!("'{s}': expected 'key = quantity' or 'key = quantity * factor'")
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("'{s}': empty key"));
        }
        let (quantity, factor) = match rhs.split_once('*') {
            Some((q, f)) => {
                let factor: f64 = f
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{s}': factor '{}' is not a number", f.trim()))?;
                (q, factor)
            }
            None => (rhs, 1.0),
        };
        if !factor.is_finite() || factor == 0.0 {
            return Err(format!("'{s}': factor must be finite and non-zero"));
        }
        Ok(KeyEntry {
            key: key.to_string(),
            quantity: quantity.trim().parse()?,
            factor,
        })
    }
}

/// Parses one configuration entry; see [`KeyEntry`].
pub fn parse_entry(entry: &str) -> Result<KeyEntry, String> {
    entry.parse()
}

impl KeyTable {
    /// An empty table (nothing maps).
    pub fn empty() -> Self {
        KeyTable::default()
    }

    /// The keys emitted by common codecs (device repository, ChirpStack/TTS Cayenne, TTS
    /// normalized payload, the built-in [`crate::codecs`]).
    pub fn builtin() -> Self {
        let mut table = KeyTable::empty();
        for q in Quantity::ALL {
            table.extend(q.name(), *q, 1.0);
        }
        for (quantity, keys) in BUILTIN {
            for key in *keys {
                table.extend(key, *quantity, 1.0);
            }
        }
        for (key, quantity, factor) in SCALED {
            table.extend(key, *quantity, *factor);
        }
        for (key, quantity) in UNIT_REQUIRED {
            table.insert(
                key,
                Rule {
                    quantity: Some(*quantity),
                    factor: 1.0,
                    unit_required: true,
                },
            );
        }
        for key in NOT_MAPPED {
            table.insert(
                key,
                Rule {
                    quantity: None,
                    factor: 1.0,
                    unit_required: false,
                },
            );
        }
        table
    }

    /// Adds or replaces a key. `factor` converts unitless values to the quantity's unit.
    pub fn extend(&mut self, key: &str, quantity: Quantity, factor: f64) {
        self.insert(
            key,
            Rule {
                quantity: Some(quantity),
                factor,
                unit_required: false,
            },
        );
    }

    /// Adds a parsed configuration entry.
    pub fn add(&mut self, entry: &KeyEntry) {
        self.extend(&entry.key, entry.quantity, entry.factor);
    }

    fn insert(&mut self, key: &str, rule: Rule) {
        let normalised: Vec<String> = key.split('.').map(normalise).collect();
        self.rules.insert(normalised.join("."), rule);
    }

    /// The rule for a leaf at `path` (segments from the root).
    fn rule_for(&self, path: &[&str]) -> Option<Rule> {
        let mut segments: Vec<&str> = path.to_vec();
        // ChirpStack Cayenne: `temperatureSensor.3` is channel 3 of `temperatureSensor`.
        if segments.len() > 1
            && segments
                .last()
                .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()))
        {
            segments.pop();
        }
        let (leaf, parents) = segments.split_last()?;
        if parents
            .iter()
            .any(|p| NOT_MEASUREMENTS.contains(&normalise(p).as_str()))
        {
            return None;
        }
        let full: Vec<String> = segments.iter().map(|s| normalise(s)).collect();
        let mut candidates = vec![full.join("."), normalise(leaf)];
        if let Some(stripped) = without_digit_segments(&leaf.to_lowercase()) {
            candidates.push(normalise(&stripped));
        }
        candidates.iter().find_map(|c| self.rules.get(c).copied())
    }

    /// Maps every leaf of `obj` to a reading observed at `observed_at`; see the module docs.
    pub fn map_object(&self, obj: &Value, observed_at: DateTime<Utc>) -> Mapped {
        let mut walk = Walk {
            table: self,
            observed_at,
            seen: HashSet::new(),
            out: Mapped::default(),
        };
        match obj {
            Value::Object(map) => walk.object(&mut Vec::new(), map),
            _ => walk.out.unmapped.push(String::new()),
        }
        walk.out
    }
}

/// State of one `map_object` call.
struct Walk<'t> {
    table: &'t KeyTable,
    observed_at: DateTime<Utc>,
    seen: HashSet<Quantity>,
    out: Mapped,
}

impl Walk<'_> {
    fn object<'v>(&mut self, path: &mut Vec<&'v str>, map: &'v Map<String, Value>) {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            path.push(key);
            match &map[key] {
                Value::Object(inner) if is_value_object(inner) => {
                    let unit = inner.get("unit").and_then(Value::as_str);
                    self.leaf(path, &inner["value"], unit);
                }
                Value::Object(inner) if !inner.is_empty() => self.object(path, inner),
                value => self.leaf(path, value, None),
            }
            path.pop();
        }
    }

    fn leaf(&mut self, path: &[&str], value: &Value, unit: Option<&str>) {
        let reading = self
            .table
            .rule_for(path)
            .and_then(|rule| resolve(rule, value, unit))
            .filter(|(_, v)| v.is_finite());
        match reading {
            Some((quantity, value)) if self.seen.insert(quantity) => {
                self.out.readings.push(Reading {
                    quantity,
                    value,
                    observed_at: self.observed_at,
                })
            }
            _ => self.out.unmapped.push(path.join(".")),
        }
    }
}

/// `{"value": 12.3, "unit": "°C", ...}`: a scalar `value` and only descriptive keys besides.
fn is_value_object(map: &Map<String, Value>) -> bool {
    let scalar = matches!(
        map.get("value"),
        Some(Value::Number(_) | Value::String(_) | Value::Bool(_))
    );
    scalar
        && map
            .keys()
            .all(|k| k == "value" || VALUE_OBJECT_KEYS.contains(&k.as_str()))
}

/// Splits `"23.5 °C"` into 23.5 and `°C`.
fn number_with_unit(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E')))
        .map_or(s.len(), |(i, _)| i);
    // A trailing `e` belongs to the unit, not the exponent.
    let mut number = &s[..end];
    while number.ends_with(['e', 'E']) {
        number = &number[..number.len() - 1];
    }
    let value = number.parse::<f64>().ok()?;
    Some((value, s[number.len()..].trim()))
}

/// The reading a rule gives for a value, or `None` if it does not apply.
fn resolve(rule: Rule, value: &Value, unit: Option<&str>) -> Option<(Quantity, f64)> {
    let quantity = rule.quantity?;
    let (v, text_unit) = match value {
        Value::Number(n) => (n.as_f64()?, ""),
        Value::Bool(b) if quantity.unit() == "1" => (f64::from(u8::from(*b)), ""),
        Value::String(s) => number_with_unit(s)?,
        _ => return None,
    };
    let unit = unit
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(text_unit);
    if !unit.is_empty() {
        return convert(quantity, v, unit);
    }
    if rule.unit_required {
        return None;
    }
    if quantity == Quantity::Battery && rule.factor == 1.0 && v.fract() != 0.0 && v <= 5.0 {
        return Some((Quantity::BatteryVoltage, v));
    }
    Some((quantity, v * rule.factor))
}

/// Converts `v` in `unit` to the canonical unit of `q`; `None` for units that do not fit.
fn convert(q: Quantity, v: f64, unit: &str) -> Option<(Quantity, f64)> {
    use Quantity::*;
    let u = unit
        .trim()
        .to_lowercase()
        .replace([' ', '⋅', '·'], "")
        .replace('μ', "µ")
        .replace('³', "3")
        .replace("⁻3", "-3");
    let per_m3 = |s: &str| {
        ["/m3", "m-3"]
            .iter()
            .find_map(|suffix| s.strip_suffix(suffix))
            .map(str::to_string)
    };
    let mass = per_m3(&u);
    let value = match (q, u.as_str()) {
        (Temperature, "°c" | "℃" | "c" | "degc" | "celsius") => v,
        (Temperature, "°f" | "℉" | "f") => (v - 32.0) / 1.8,
        (Temperature, "k") => v - 273.15,
        (Humidity | SoilMoisture, "%" | "%rh" | "rh") => v,
        (Co2, "ppm") => v,
        (Pressure, "hpa" | "mbar" | "mb") => v,
        (Pressure, "pa") => v / 100.0,
        (Pressure, "kpa") => v * 10.0,
        (Pm2_5 | Pm10, _) if matches!(mass.as_deref(), Some("µg" | "ug")) => v,
        (Tvoc, "ppb") => v,
        (Tvoc, "ppm") => v * 1000.0,
        (Illuminance, "lx" | "lux") => v,
        (Noise, "db" | "dba" | "db(a)") => v,
        (BatteryVoltage, "v") => v,
        (BatteryVoltage, "mv") => v / 1000.0,
        (Battery, "%") => v,
        (Battery, "v") => return Some((BatteryVoltage, v)),
        (Battery, "mv") => return Some((BatteryVoltage, v / 1000.0)),
        (Hcho, _) if mass.as_deref() == Some("mg") => v,
        (Hcho, _) if matches!(mass.as_deref(), Some("µg" | "ug")) => v / 1000.0,
        (Distance, "m") => v,
        (Distance, "cm") => v / 100.0,
        (Distance, "mm") => v / 1000.0,
        (Distance, "km") => v * 1000.0,
        (WindSpeed, "m/s") => v,
        (WindSpeed, "km/h") => v / 3.6,
        (WindDirection, "°" | "deg") => v,
        (Rainfall, "mm") => v,
        (Occupied | FreeSpaces | PeopleIn | PeopleOut | Motion, "1") => v,
        _ => return None,
    };
    Some((q, value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        "2024-01-01T00:00:00Z".parse().unwrap()
    }

    fn pairs(m: &Mapped) -> Vec<(Quantity, f64)> {
        m.readings.iter().map(|r| (r.quantity, r.value)).collect()
    }

    #[test]
    fn normalisation_keeps_digit_underscores() {
        assert_eq!(normalise("TempC_SHT"), "tempcsht");
        assert_eq!(normalise("batteryVoltage"), normalise("battery_voltage"));
        assert_eq!(normalise("pm2_5"), "pm2_5");
        assert_eq!(normalise("pm1_0"), "pm1_0");
        assert_eq!(
            without_digit_segments("line_1_total_in").as_deref(),
            Some("line_total_in")
        );
        assert_eq!(without_digit_segments("temperature"), None);
    }

    #[test]
    fn values_units_and_duplicates() {
        let table = KeyTable::builtin();
        let m = table.map_object(
            &json!({
                "level": "2000 mm",
                "temperature": "25 ℃",
                "temperature_2": 30,
                "Hum_SHT": "55.5",
                "occupied": true,
                "battery": false,
                "pressure": {"value": 96412, "unit": "Pa"},
                "wind": {"speed": {"value": 36, "unit": "km/h"}},
                "soil": {"temperature": 12.0, "moisture": 31},
                "co2": {"value": 400, "unit": "furlongs"},
                "distance": "No Sensor",
                "tags": [1, 2],
                "nothing": null
            }),
            at(),
        );
        assert_eq!(
            pairs(&m),
            vec![
                (Quantity::Humidity, 55.5),
                (Quantity::Distance, 2.0),
                (Quantity::Occupied, 1.0),
                (Quantity::Pressure, 964.12),
                (Quantity::SoilMoisture, 31.0),
                (Quantity::Temperature, 25.0),
                (Quantity::WindSpeed, 10.0),
            ]
        );
        assert_eq!(
            m.unmapped,
            vec![
                "battery",
                "co2",
                "distance",
                "nothing",
                "soil.temperature",
                "tags",
                "temperature_2"
            ]
        );
        assert!(m.readings.iter().all(|r| r.observed_at == at()));
    }

    #[test]
    fn tts_normalized_payload() {
        let m = KeyTable::builtin().map_object(
            &json!({
                "air": {"temperature": 21.3, "relativeHumidity": 45, "co2": 800, "lightIntensity": 300, "pressure": 1012},
                "battery": 3.1,
                "action": {"motion": {"detected": true}},
                "water": {"temperature": {"current": 9.5}}
            }),
            at(),
        );
        assert_eq!(
            pairs(&m),
            vec![
                (Quantity::Motion, 1.0),
                (Quantity::Co2, 800.0),
                (Quantity::Illuminance, 300.0),
                (Quantity::Pressure, 1012.0),
                (Quantity::Humidity, 45.0),
                (Quantity::Temperature, 21.3),
                (Quantity::BatteryVoltage, 3.1),
            ]
        );
        assert_eq!(m.unmapped, vec!["water.temperature.current"]);
    }

    #[test]
    fn battery_percent_or_volts() {
        let table = KeyTable::builtin();
        let volts = table.map_object(&json!({"battery": 3.6}), at());
        assert_eq!(pairs(&volts), vec![(Quantity::BatteryVoltage, 3.6)]);
        let percent = table.map_object(&json!({"battery": 92}), at());
        assert_eq!(pairs(&percent), vec![(Quantity::Battery, 92.0)]);
        let mv = table.map_object(&json!({"battery": {"value": 3062, "unit": "mV"}}), at());
        assert_eq!(pairs(&mv), vec![(Quantity::BatteryVoltage, 3.062)]);
    }

    #[test]
    fn chirpstack_cayenne_channels() {
        let m = KeyTable::builtin().map_object(
            &json!({"temperatureSensor": {"3": 27.2, "5": 25.5}, "humiditySensor": {"1": 32}, "digitalInput": {"3": 1}}),
            at(),
        );
        assert_eq!(
            pairs(&m),
            vec![(Quantity::Humidity, 32.0), (Quantity::Temperature, 27.2)]
        );
        assert_eq!(m.unmapped, vec!["digitalInput.3", "temperatureSensor.5"]);
    }

    #[test]
    fn extend_and_parse_entries() {
        let mut table = KeyTable::empty();
        assert_eq!(
            table.map_object(&json!({"temperature": 1}), at()).unmapped,
            vec!["temperature"]
        );
        let entry = parse_entry(" water_pressure_pa = pressure * 0.01 ").unwrap();
        assert_eq!(
            entry,
            KeyEntry {
                key: "water_pressure_pa".into(),
                quantity: Quantity::Pressure,
                factor: 0.01
            }
        );
        table.add(&entry);
        table.extend("t_out", Quantity::Temperature, 1.0);
        let m = table.map_object(&json!({"Water_Pressure_Pa": 101300, "T_OUT": -3.5}), at());
        assert_eq!(
            pairs(&m),
            vec![(Quantity::Temperature, -3.5), (Quantity::Pressure, 1013.0)]
        );
        assert!(parse_entry("x = nonsense").is_err());
        assert!(parse_entry("x = co2 * zero").is_err());
        assert!(parse_entry("no equals sign").is_err());
        assert!(parse_entry(" = co2").is_err());
    }

    #[test]
    fn non_finite_and_non_objects() {
        let table = KeyTable::builtin();
        let m = table.map_object(&json!({"temperature": "1e999 °C"}), at());
        assert_eq!(m.readings, vec![]);
        assert_eq!(m.unmapped, vec!["temperature"]);
        assert_eq!(table.map_object(&json!([1]), at()).unmapped, vec![""]);
        assert_eq!(number_with_unit("12e"), Some((12.0, "e")));
        assert_eq!(number_with_unit("-0.5°C"), Some((-0.5, "°C")));
        assert_eq!(number_with_unit("mm"), None);
    }
}
