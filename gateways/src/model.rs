//! Canonical, network-server-independent types that every dialect decodes into.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A LoRaWAN DevEUI: 64 bits, displayed as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevEui(pub u64);

impl DevEui {
    /// Parses 16 hex digits (any case, optional `-` or `:` separators).
    pub fn parse_hex(s: &str) -> Result<Self, crate::DecodeError> {
        let cleaned: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
        if cleaned.len() != 16 || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(crate::DecodeError::InvalidDevEui(truncate_for_error(s)));
        }
        u64::from_str_radix(&cleaned, 16)
            .map(DevEui)
            .map_err(|_| crate::DecodeError::InvalidDevEui(truncate_for_error(s)))
    }

    /// From 8 raw bytes (big endian), e.g. a base64-decoded ChirpStack v3 `devEUI`.
    pub fn from_bytes(b: &[u8]) -> Result<Self, crate::DecodeError> {
        let arr: [u8; 8] = b
            .try_into()
            .map_err(|_| crate::DecodeError::InvalidDevEui(format!("{} bytes", b.len())))?;
        Ok(DevEui(u64::from_be_bytes(arr)))
    }

    /// Bit-identical signed form, as stored in PostgreSQL `bigint` columns.
    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }

    pub fn from_i64(v: i64) -> Self {
        DevEui(v as u64)
    }
}

pub(crate) fn truncate_for_error(s: &str) -> String {
    s.chars().take(40).collect()
}

impl fmt::Display for DevEui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for DevEui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevEui({self})")
    }
}

impl FromStr for DevEui {
    type Err = crate::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DevEui::parse_hex(s)
    }
}

impl Serialize for DevEui {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DevEui {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DevEui::parse_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Which network server (and JSON flavour) produced a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkServer {
    ChirpstackV4,
    ChirpstackV3,
    TtsV3,
}

impl NetworkServer {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkServer::ChirpstackV4 => "chirpstack_v4",
            NetworkServer::ChirpstackV3 => "chirpstack_v3",
            NetworkServer::TtsV3 => "tts_v3",
        }
    }
}

/// The dialect configured for a topic filter. `Auto` sniffs the JSON shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    #[default]
    Auto,
    ChirpstackV4,
    /// ChirpStack v3, either JSON marshaler (`json` with base64 EUIs, or `json_v3` with hex EUIs).
    ChirpstackV3,
    TtsV3,
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Dialect::Auto),
            "chirpstack_v4" => Ok(Dialect::ChirpstackV4),
            "chirpstack_v3" => Ok(Dialect::ChirpstackV3),
            "tts_v3" => Ok(Dialect::TtsV3),
            other => Err(format!(
                "unknown dialect '{other}' (expected auto, chirpstack_v4, chirpstack_v3 or tts_v3)"
            )),
        }
    }
}

/// A device or gateway position as a network server reports it. Serialises flat:
/// `{"lat", "lon", "alt"?, "source"?}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(flatten)]
    pub position: crate::Position,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt: Option<f64>,
    /// Where the position came from, as the network server names it (e.g. `GPS`, `SOURCE_REGISTRY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Location {
    pub fn lat(&self) -> f64 {
        self.position.lat()
    }

    pub fn lon(&self) -> f64 {
        self.position.lon()
    }
}

/// Reception of one uplink by one gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayRx {
    pub gateway_id: String,
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
    pub location: Option<Location>,
}

/// Radio settings of the uplink transmission.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct TxInfo {
    pub frequency_hz: Option<u64>,
    pub spreading_factor: Option<u32>,
    pub bandwidth_hz: Option<u32>,
    pub dr: Option<u32>,
}

/// One uplink in canonical form, whatever network server sent it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Uplink {
    /// Stable across redeliveries of the same uplink; unique across uplinks.
    pub dedup_key: String,
    pub dev_eui: DevEui,
    pub network_server: NetworkServer,
    /// Application id as the network server names it (ChirpStack UUID / numeric id, TTS application id).
    pub application: Option<String>,
    pub device_name: Option<String>,
    /// When the uplink was sent/received on air (best time the network server offers).
    pub observed_at: DateTime<Utc>,
    /// When the network/application server received it.
    pub received_at: DateTime<Utc>,
    pub f_cnt: Option<u32>,
    pub f_port: Option<u8>,
    /// Raw FRMPayload bytes (decrypted as delivered by the network server).
    pub payload: Vec<u8>,
    /// Decoded object from the network server's codec, if it sent one.
    pub decoded: Option<serde_json::Value>,
    pub gateways: Vec<GatewayRx>,
    pub tx: TxInfo,
    /// Device position reported with this uplink (not gateway positions).
    pub device_location: Option<Location>,
    /// TTS `simulated: true` uplinks (sent from the console, not from a device).
    pub simulated: bool,
}

/// Non-uplink events a network server publishes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DeviceEvent {
    /// Device status: battery level (percent, `None` if external power/unknown) and margin.
    Status {
        dev_eui: DevEui,
        battery_percent: Option<f64>,
        external_power: bool,
        margin: Option<i32>,
        at: Option<DateTime<Utc>>,
    },
    /// A new device position (ChirpStack `location` event, TTS `location_solved`).
    Location {
        dev_eui: DevEui,
        location: Location,
        at: Option<DateTime<Utc>>,
    },
}

/// What one MQTT message turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Uplink(Box<Uplink>),
    Event(DeviceEvent),
    /// A valid message that carries nothing to store (join, ack, txack, log, downlink events…).
    Skipped {
        kind: &'static str,
        dev_eui: Option<DevEui>,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_location_serialises_flat_and_reads_back_checked() {
        let loc = Location {
            position: crate::Position::new(51.5, 7.25).unwrap(),
            alt: Some(90.0),
            source: None,
        };
        let text = serde_json::to_string(&loc).unwrap();
        assert_eq!(text, r#"{"lat":51.5,"lon":7.25,"alt":90.0}"#);
        assert_eq!(serde_json::from_str::<Location>(&text).unwrap(), loc);
        assert!(serde_json::from_str::<Location>(r#"{"lat":51.5,"lon":190}"#).is_err());
    }
}
