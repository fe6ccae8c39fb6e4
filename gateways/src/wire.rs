//! Helpers shared by the dialect modules: JSON parsing, timestamps, base64, topics and
//! small conversions from wire shapes into canonical types.

use crate::{DecodeError, DevEui, Location, Position};
use base64::Engine as _;
use chrono::{DateTime, Datelike, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// What every dialect decoder gets besides the message itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// MQTT topic the message arrived on (may be empty when unknown).
    pub topic: &'a str,
    /// Fallback time for messages without one; also the reference for plausibility checks.
    pub now: DateTime<Utc>,
}

/// Parses the raw MQTT payload into a JSON object.
pub(crate) fn parse_object(payload: &[u8]) -> Result<Value, DecodeError> {
    let text = std::str::from_utf8(payload)
        .map_err(|e| DecodeError::InvalidJson(format!("not UTF-8: {e}")))?;
    let value = parse_json(text)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(DecodeError::NotAnObject)
    }
}

/// Parses JSON text, stricter than `serde_json::from_str`: an object with a key twice is
/// `DuplicateKey` (parsers disagree on which value counts), a U+0000 in any string or key is
/// `NulCharacter` (PostgreSQL text and jsonb cannot store it).
pub(crate) fn parse_json(text: &str) -> Result<Value, DecodeError> {
    use serde_json::error::Category;
    let Strict(value) = serde_json::from_str(text).map_err(|e| match e.classify() {
        // `Strict` accepts every JSON type, so its only data error is a duplicate key.
        Category::Data => DecodeError::DuplicateKey(e.to_string()),
        _ => DecodeError::InvalidJson(e.to_string()),
    })?;
    if let Some(mut path) = nul_path(&value) {
        path.reverse();
        let path = path.join(".");
        return Err(DecodeError::NulCharacter(path.chars().take(200).collect()));
    }
    Ok(value)
}

/// The way to the first string or key in `value` holding U+0000 (keys escaped), innermost
/// segment first; `None` if there is none. Segments are made only on the way back out of a
/// find, so the check of an ordinary message allocates nothing.
fn nul_path(value: &Value) -> Option<Vec<String>> {
    let (segment, mut path) = match value {
        Value::String(s) => return s.contains('\0').then(Vec::new),
        Value::Array(items) => {
            (items.iter().enumerate()).find_map(|(i, v)| nul_path(v).map(|p| (i.to_string(), p)))?
        }
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let inner = if k.contains('\0') {
                Some(Vec::new())
            } else {
                nul_path(v)
            };
            inner.map(|p| (k.escape_debug().to_string(), p))
        })?,
        _ => return None,
    };
    path.push(segment);
    Some(path)
}

/// A JSON value built like `serde_json::Value`, but a repeated object key is an error.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As `serde_json::Value` does; the parser yields only finite floats anyway.
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&key) {
                let key = crate::model::truncate_for_error(&key);
                return Err(serde::de::Error::custom(format!("{key:?}")));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Deserializes a wire struct from (part of) a message. serde does not report which field
/// failed, so the error names the part that was being read (`field`) and carries serde's text.
pub(crate) fn read<T: DeserializeOwned>(
    value: &Value,
    field: &'static str,
) -> Result<T, DecodeError> {
    T::deserialize(value).map_err(|e| DecodeError::InvalidField {
        field,
        problem: e.to_string(),
    })
}

/// Looks up a dotted path (`result.end_device_ids`) in a JSON value.
pub(crate) fn path<'v>(value: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(value, |v, key| v.get(key))
}

/// True if the object has the key (with any value, including `null`).
pub(crate) fn has(value: &Value, key: &str) -> bool {
    value.as_object().is_some_and(|m| m.contains_key(key))
}

/// Parses an optional RFC 3339 timestamp and rejects implausible values.
///
/// Absent, empty and Go zero-value timestamps (`0001-01-01T00:00:00Z`, which TTS storage output
/// uses for "unset") count as absent. Anything before 2000 or more than one day after `now` is
/// `InvalidTimestamp`: such clocks are broken and would poison time-series queries.
pub(crate) fn time_opt(
    field: &'static str,
    raw: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DecodeError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let invalid = || DecodeError::InvalidTimestamp {
        field,
        value: crate::model::truncate_for_error(raw),
    };
    let t = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| invalid())?
        .with_timezone(&Utc);
    if t.year() <= 1 {
        return Ok(None);
    }
    if t.year() < 2000 || t > now + Duration::days(1) {
        return Err(invalid());
    }
    Ok(Some(t))
}

/// Decodes base64 as network servers send it (standard alphabet, padding optional).
pub(crate) fn base64(field: &'static str, raw: &str) -> Result<Vec<u8>, DecodeError> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    ENGINE
        .decode(raw.trim())
        .map_err(|_| DecodeError::InvalidEncoding {
            field,
            encoding: "base64",
        })
}

/// Parses a DevEUI given as 16 hex digits.
pub(crate) fn dev_eui_hex(raw: Option<&str>, field: &'static str) -> Result<DevEui, DecodeError> {
    match raw {
        None | Some("") => Err(DecodeError::MissingField(field)),
        Some(s) => DevEui::parse_hex(s),
    }
}

/// Narrows a wire fPort to the LoRaWAN range.
pub(crate) fn f_port(raw: Option<u32>, field: &'static str) -> Result<Option<u8>, DecodeError> {
    raw.map(|p| {
        u8::try_from(p).map_err(|_| DecodeError::InvalidField {
            field,
            problem: format!("{p} is not a LoRaWAN port (0..=255)"),
        })
    })
    .transpose()
}

/// A network server's decoded-payload object, kept only when it is a non-empty object.
pub(crate) fn non_empty_object(value: Option<Value>) -> Option<Value> {
    value.filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
}

/// Fails with `TopicMismatch` if the topic named a DevEUI different from the payload's.
pub(crate) fn check_topic(topic: Option<DevEui>, payload: DevEui) -> Result<(), DecodeError> {
    match topic {
        Some(t) if t != payload => Err(DecodeError::TopicMismatch {
            topic: t.to_string(),
            payload: payload.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A position as most network servers spell it (`latitude`, `longitude`, `altitude`, `source`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireLocation {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub altitude: Option<f64>,
    #[serde(deserialize_with = "lenient_string")]
    pub source: Option<String>,
}

impl WireLocation {
    /// Canonical location, or `None` unless both latitude and longitude are given and form a
    /// WGS84 position (a gateway or uplink position that is not one is left out).
    pub fn to_location(&self) -> Option<Location> {
        self.checked("location").ok().flatten()
    }

    /// Like [`WireLocation::to_location`], but a position outside WGS84 is an error naming
    /// `field` (for location events, where the position is the whole message).
    pub fn checked(&self, field: &'static str) -> Result<Option<Location>, DecodeError> {
        let finite = |v: &f64| v.is_finite();
        let (Some(lat), Some(lon)) = (self.latitude.filter(finite), self.longitude.filter(finite))
        else {
            return Ok(None);
        };
        let position = Position::new(lat, lon).map_err(|e| DecodeError::InvalidField {
            field,
            problem: e.to_string(),
        })?;
        Ok(Some(Location {
            position,
            alt: self.altitude.filter(finite),
            source: self.source.clone().filter(|s| !s.is_empty()),
        }))
    }
}

/// Accepts a string or a number (ChirpStack v3 enums, TTS numeric enums) as an optional string.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Accepts an unsigned 64-bit integer as a JSON number or a decimal string (protobuf JSON
/// renders uint64 as a string, e.g. TTS `"frequency": "868100000"`).
pub(crate) fn u64_number_or_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is not an unsigned integer"))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("'{s}' is not an unsigned integer"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// What a ChirpStack integration topic says about the message.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ChirpstackTopic<'a> {
    /// DevEUI from the `device/<deveui>` segment, when it parses as one.
    pub dev_eui: Option<DevEui>,
    /// Event type: the segment after `event` (v3.11+/v4), an old v3 suffix (`rx` → `up`), or
    /// `down` for command/downlink topics.
    pub event: Option<&'a str>,
}

impl<'a> ChirpstackTopic<'a> {
    /// Reads `application/<app>/device/<deveui>/event/<type>` (and the pre-3.11 v3 forms
    /// `.../device/<deveui>/rx|join|ack|error|status|location`). Unknown shapes give no facts;
    /// a device segment that is not a DevEUI (custom topic template) is ignored.
    pub fn parse(topic: &'a str) -> Self {
        let segments: Vec<&str> = topic.split('/').collect();
        let mut parsed = ChirpstackTopic::default();
        if let Some(i) = segments.iter().position(|s| *s == "device") {
            parsed.dev_eui = segments.get(i + 1).and_then(|s| DevEui::parse_hex(s).ok());
            parsed.event = match segments.get(i + 2..).unwrap_or_default() {
                ["event", kind, ..] => Some(*kind),
                ["rx"] => Some("up"),
                ["command", ..] | ["tx"] => Some("down"),
                [kind] => Some(*kind),
                _ => None,
            };
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn now() -> DateTime<Utc> {
        "2024-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn timestamps_are_checked_for_plausibility() {
        let ok = time_opt("t", Some("2024-06-01T12:00:00+02:00"), now()).unwrap();
        assert_eq!(ok.unwrap().to_rfc3339(), "2024-06-01T10:00:00+00:00");
        assert_eq!(time_opt("t", None, now()), Ok(None));
        assert_eq!(time_opt("t", Some(""), now()), Ok(None));
        assert_eq!(time_opt("t", Some("0001-01-01T00:00:00Z"), now()), Ok(None));
        for bad in ["1999-12-31T23:59:59Z", "2024-06-02T00:00:01Z", "yesterday"] {
            let err = time_opt("t", Some(bad), now()).unwrap_err();
            assert_eq!(err.reason(), "invalid_timestamp", "{bad}");
        }
        // Exactly one day ahead is still accepted (gateway clocks drift).
        assert!(time_opt("t", Some("2024-06-02T00:00:00Z"), now())
            .unwrap()
            .is_some());
    }

    #[test]
    fn json_with_duplicate_keys_or_nul_characters_is_rejected() {
        let cases = [
            (
                r#"{"a":1,"a":2}"#,
                DecodeError::DuplicateKey(r#""a" at line 1 column 13"#.into()),
            ),
            (
                r#"{"a":[{"b":1,"c":{"b":2,"b":3}}]}"#,
                DecodeError::DuplicateKey(r#""b" at line 1 column 30"#.into()),
            ),
            (
                r#"{"a":[1,{"b":"x\u0000"}]}"#,
                DecodeError::NulCharacter("a.1.b".into()),
            ),
            (
                r#"{"a":{"k\u0000":1}}"#,
                DecodeError::NulCharacter("a.k\\0".into()),
            ),
            (
                r#"{"a":1,}"#,
                DecodeError::InvalidJson("trailing comma at line 1 column 8".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_json(text), Err(want), "{text}");
        }
        // The same key in sibling objects is fine; values are those serde_json gives.
        let ok = r#"{"a":[{"b":1.5},{"b":-2}],"c":18446744073709551615,"d":[null,true,"\u00e9"]}"#;
        assert_eq!(
            parse_json(ok).unwrap(),
            serde_json::from_str::<Value>(ok).unwrap()
        );
        // serde_json's recursion limit still applies.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse_json(&deep).unwrap_err().reason(), "invalid_json");
    }

    #[test]
    fn base64_accepts_missing_padding_and_rejects_garbage() {
        assert_eq!(base64("data", "ARI=").unwrap(), vec![0x01, 0x12]);
        assert_eq!(base64("data", "ARI").unwrap(), vec![0x01, 0x12]);
        assert_eq!(
            base64("data", "..."),
            Err(DecodeError::InvalidEncoding {
                field: "data",
                encoding: "base64"
            })
        );
    }

    #[test]
    fn chirpstack_topics() {
        let t = ChirpstackTopic::parse("application/abc/device/0102030405060708/event/up");
        assert_eq!(t.dev_eui, Some(DevEui(0x0102030405060708)));
        assert_eq!(t.event, Some("up"));
        let old = ChirpstackTopic::parse("application/1/device/0202020202020202/rx");
        assert_eq!(old.event, Some("up"));
        let cmd = ChirpstackTopic::parse("application/1/device/0202020202020202/command/down");
        assert_eq!(cmd.event, Some("down"));
        let custom = ChirpstackTopic::parse("sensors/device/kitchen/event/up");
        assert_eq!(custom.dev_eui, None);
        assert_eq!(custom.event, Some("up"));
        assert_eq!(ChirpstackTopic::parse(""), ChirpstackTopic::default());
    }

    #[test]
    fn f_port_range() {
        assert_eq!(f_port(Some(255), "fPort"), Ok(Some(255)));
        assert_eq!(f_port(None, "fPort"), Ok(None));
        assert_eq!(
            f_port(Some(256), "fPort").unwrap_err().reason(),
            "invalid_field"
        );
    }
}
