//! Pure decoding of what LoRaWAN network servers publish: (dialect, topic, payload bytes) →
//! canonical [`Uplink`] or [`DeviceEvent`]; device payload codecs; key → quantity mapping.
//! It is also the home of the domain types every layer shares: the checked WGS84
//! [`Position`], the registry's [`DeviceKind`] and [`Visibility`], and the one GeoJSON reader
//! ([`geojson`]).
//!
//! Invariant: this crate does no IO, never reads the clock, and depends on no async runtime or
//! database crate (the optional `sqlx` feature, enabled by the store only, derives the
//! PostgreSQL enum mappings; `utoipa` derives OpenAPI schemas for the API).

mod chirpstack_v3;
mod chirpstack_v4;
pub mod codecs;
mod device;
pub mod geojson;
pub mod mapping;
mod model;
mod position;
pub mod quantity;
mod sniff;
mod tts_v3;
mod wire;

pub use codecs::{decode_payload, Codec, CodecError};
pub use device::{DeviceKind, UnknownName, Visibility};
pub use geojson::GeoJsonError;
pub use mapping::{KeyTable, Mapped, Reading};
pub use model::*;
pub use position::{Axis, Position, PositionError};
pub use quantity::Quantity;

use chrono::{DateTime, Utc};

/// Decodes one MQTT message from a network server into a canonical uplink or event.
///
/// `topic` may be empty; when given it supplies the event type (ChirpStack
/// `.../event/<type>`, TTS `.../up`, `.../join`, ...) and, for ChirpStack, a DevEUI that must
/// match the payload's. `now` is only a fallback for messages without any timestamp and the
/// reference for rejecting implausible ones (before 2000, or more than a day after `now`).
pub fn decode(
    dialect: Dialect,
    topic: &str,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Decoded, DecodeError> {
    let msg = wire::parse_object(payload)?;
    let server = match dialect {
        Dialect::Auto => sniff::detect(&msg, topic).ok_or(DecodeError::UnknownDialect)?,
        Dialect::ChirpstackV4 => NetworkServer::ChirpstackV4,
        Dialect::ChirpstackV3 => NetworkServer::ChirpstackV3,
        Dialect::TtsV3 => NetworkServer::TtsV3,
    };
    let ctx = wire::Ctx { topic, now };
    decoder_for(server)(&msg, &ctx).map(to_microseconds)
}

/// Canonical times have microsecond precision, like PostgreSQL's `timestamptz`: a value that
/// survives a round trip through the database unchanged can be compared with what was written.
fn to_microseconds(d: Decoded) -> Decoded {
    use chrono::SubsecRound;
    let us = |t: DateTime<Utc>| t.trunc_subsecs(6);
    match d {
        Decoded::Uplink(mut u) => {
            u.observed_at = us(u.observed_at);
            u.received_at = us(u.received_at);
            Decoded::Uplink(u)
        }
        Decoded::Event(DeviceEvent::Status {
            dev_eui,
            battery_percent,
            external_power,
            margin,
            at,
        }) => Decoded::Event(DeviceEvent::Status {
            dev_eui,
            battery_percent,
            external_power,
            margin,
            at: at.map(us),
        }),
        Decoded::Event(DeviceEvent::Location {
            dev_eui,
            location,
            at,
        }) => Decoded::Event(DeviceEvent::Location {
            dev_eui,
            location,
            at: at.map(us),
        }),
        skipped @ Decoded::Skipped { .. } => skipped,
    }
}

/// Signature every dialect module implements. Adding a network server = a module with this
/// function, a `NetworkServer`/`Dialect` variant, an arm here and a row in `sniff::SIGNATURES`.
type DialectDecoder = fn(&serde_json::Value, &wire::Ctx<'_>) -> Result<Decoded, DecodeError>;

fn decoder_for(server: NetworkServer) -> DialectDecoder {
    match server {
        NetworkServer::ChirpstackV4 => chirpstack_v4::decode,
        NetworkServer::ChirpstackV3 => chirpstack_v3::decode,
        NetworkServer::TtsV3 => tts_v3::decode,
    }
}

/// Why a message could not be decoded. Each variant has a stable [`DecodeError::reason`] used as
/// a metrics label and dead-letter reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DecodeError {
    /// The payload is not valid JSON (or not UTF-8).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// An object names the same key twice: which value counts depends on the parser.
    #[error("duplicate key {0}")]
    DuplicateKey(String),
    /// A string or key holds U+0000, which PostgreSQL text and jsonb cannot store.
    #[error("U+0000 in '{0}', which cannot be stored")]
    NulCharacter(String),
    /// Valid JSON, but not an object at the top level.
    #[error("expected a JSON object at the top level")]
    NotAnObject,
    /// A field the dialect requires is absent.
    #[error("missing field '{0}'")]
    MissingField(&'static str),
    /// A field has the wrong JSON type or an unusable value.
    #[error("field '{field}': {problem}")]
    InvalidField {
        field: &'static str,
        problem: String,
    },
    /// A DevEUI that is not 8 bytes / 16 hex digits.
    #[error("invalid DevEUI '{0}'")]
    InvalidDevEui(String),
    /// Base64 or hex that does not decode.
    #[error("field '{field}': invalid {encoding}")]
    InvalidEncoding {
        field: &'static str,
        encoding: &'static str,
    },
    /// A timestamp that does not parse or lies implausibly far in the future/past.
    #[error("field '{field}': invalid or implausible timestamp '{value}'")]
    InvalidTimestamp { field: &'static str, value: String },
    /// `auto` could not tell which network server sent this.
    #[error("cannot tell the network-server dialect of this message")]
    UnknownDialect,
    /// The topic says one device, the payload another.
    #[error("topic names DevEUI {topic} but payload says {payload}")]
    TopicMismatch { topic: String, payload: String },
}

impl DecodeError {
    /// Short stable label (metrics, dead letters).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::DuplicateKey(_) => "duplicate_key",
            DecodeError::NulCharacter(_) => "nul_character",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::InvalidField { .. } => "invalid_field",
            DecodeError::InvalidDevEui(_) => "invalid_dev_eui",
            DecodeError::InvalidEncoding { .. } => "invalid_encoding",
            DecodeError::InvalidTimestamp { .. } => "invalid_timestamp",
            DecodeError::UnknownDialect => "unknown_dialect",
            DecodeError::TopicMismatch { .. } => "topic_mismatch",
        }
    }
}
