//! Device payload codecs: raw FRMPayload bytes → a JSON object whose keys the
//! [`crate::mapping::KeyTable`] understands. Used when the network server sent no decoded object.
//!
//! Invariant: every codec is total — truncated or garbage input is a [`CodecError`], never a panic.

mod bosch_parking;
mod cayenne_lpp;
mod milesight_am319;

use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// A built-in payload codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Cayenne LPP with the extended type set; keys `<type>_<channel>` as TTS names them.
    CayenneLpp,
    /// Bosch Parking Lot Sensor (TPS110): parking status, heartbeat, startup.
    BoschParking,
    /// Milesight AM300 series channel/type TLV (AM319, AM307, AM308; AM10x channels too).
    MilesightAm319,
}

impl Codec {
    pub const ALL: &'static [Codec] = &[
        Codec::CayenneLpp,
        Codec::BoschParking,
        Codec::MilesightAm319,
    ];

    /// Name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Codec::CayenneLpp => "cayenne_lpp",
            Codec::BoschParking => "bosch_parking",
            Codec::MilesightAm319 => "milesight_am319",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Codec {
    type Err = CodecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Codec::ALL
            .iter()
            .copied()
            .find(|c| c.name() == s)
            .ok_or_else(|| CodecError::UnknownCodec(crate::model::truncate_for_error(s)))
    }
}

/// Why a payload could not be decoded by a codec.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The configured codec name is not one of [`Codec::ALL`].
    #[error("unknown codec '{0}' (expected cayenne_lpp, bosch_parking or milesight_am319)")]
    UnknownCodec(String),
    /// The payload has no bytes.
    #[error("empty payload")]
    Empty,
    /// The payload ends in the middle of a record.
    #[error("payload truncated: record at byte {offset} needs {needed} more byte(s)")]
    Truncated { offset: usize, needed: usize },
    /// A record type (Cayenne type, Milesight channel/type pair) the codec does not know; since
    /// these formats carry no record lengths, decoding cannot continue past it.
    #[error("unknown record type 0x{code:x} at byte {offset}")]
    UnknownType { offset: usize, code: u16 },
    /// The device does not send application data on this fPort.
    #[error("fPort {0} is not used by this device")]
    UnsupportedPort(u8),
}

impl CodecError {
    /// Short stable label (metrics, dead letters).
    pub fn reason(&self) -> &'static str {
        match self {
            CodecError::UnknownCodec(_) => "unknown_codec",
            CodecError::Empty => "empty_payload",
            CodecError::Truncated { .. } => "truncated",
            CodecError::UnknownType { .. } => "unknown_type",
            CodecError::UnsupportedPort(_) => "unsupported_port",
        }
    }
}

/// Decodes `bytes` received on `f_port` with `codec` into a JSON object.
pub fn decode_payload(codec: Codec, f_port: u8, bytes: &[u8]) -> Result<Value, CodecError> {
    if bytes.is_empty() {
        return Err(CodecError::Empty);
    }
    let object = match codec {
        Codec::CayenneLpp => cayenne_lpp::decode(bytes)?,
        Codec::BoschParking => bosch_parking::decode(f_port, bytes)?,
        Codec::MilesightAm319 => milesight_am319::decode(bytes)?,
    };
    Ok(Value::Object(object))
}

/// Bounds-checked cursor over a payload.
#[derive(Debug)]
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Next `n` bytes; `record_start` is reported in the error when they are missing.
    fn take(&mut self, n: usize, record_start: usize) -> Result<&'a [u8], CodecError> {
        let available = self.bytes.len().saturating_sub(self.pos);
        if available < n {
            return Err(CodecError::Truncated {
                offset: record_start,
                needed: n - available,
            });
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self, record_start: usize) -> Result<u8, CodecError> {
        Ok(self.take(1, record_start)?[0])
    }

    /// Big-endian unsigned integer of `n` ≤ 8 bytes.
    fn uint_be(&mut self, n: usize, record_start: usize) -> Result<u64, CodecError> {
        Ok(self
            .take(n, record_start)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Big-endian two's-complement integer of `n` bytes (1..=8).
    fn int_be(&mut self, n: usize, record_start: usize) -> Result<i64, CodecError> {
        let raw = self.uint_be(n, record_start)?;
        let shift = 64 - 8 * n as u32;
        Ok(((raw << shift) as i64) >> shift)
    }

    /// Little-endian unsigned integer of `n` ≤ 8 bytes.
    fn uint_le(&mut self, n: usize, record_start: usize) -> Result<u64, CodecError> {
        Ok(self
            .take(n, record_start)?
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Little-endian two's-complement integer of `n` bytes (1..=8).
    fn int_le(&mut self, n: usize, record_start: usize) -> Result<i64, CodecError> {
        let raw = self.uint_le(n, record_start)?;
        let shift = 64 - 8 * n as u32;
        Ok(((raw << shift) as i64) >> shift)
    }
}

/// A JSON number from a scaled integer. Dividing (rather than multiplying by 0.1) gives the
/// nearest f64 to the decimal value, so 272 / 10 prints as `27.2`.
fn scaled(raw: i64, divisor: f64) -> Value {
    let v = raw as f64 / divisor;
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn insert(map: &mut Map<String, Value>, key: impl Into<String>, value: impl Into<Value>) {
    map.insert(key.into(), value.into());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Codec::ALL {
            assert_eq!(c.name().parse::<Codec>(), Ok(*c));
        }
        assert_eq!(
            "lpp".parse::<Codec>().unwrap_err().reason(),
            "unknown_codec"
        );
    }

    #[test]
    fn reader_bounds_and_signs() {
        let mut r = Reader::new(&[0xFF, 0x38, 0x01]);
        assert_eq!(r.int_be(2, 0).unwrap(), -200);
        assert_eq!(
            r.uint_le(2, 2),
            Err(CodecError::Truncated {
                offset: 2,
                needed: 1
            })
        );
        let mut r = Reader::new(&[0x38, 0xFF, 0x80, 0x00, 0x00]);
        assert_eq!(r.int_le(2, 0).unwrap(), -200);
        assert_eq!(r.int_be(3, 2).unwrap(), -8_388_608);
        assert!(r.is_empty());
    }

    #[test]
    fn empty_payload_is_an_error_for_every_codec() {
        for c in Codec::ALL {
            assert_eq!(decode_payload(*c, 1, &[]), Err(CodecError::Empty));
        }
    }
}
