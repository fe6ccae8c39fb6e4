//! Cayenne LPP: repeated `[channel][type][value, big endian]` records. Covers the original
//! IPSO-derived types and the extended set (ChirpStack's); keys are `<type name>_<channel>` as
//! TTS/TTN name them (`temperature_3`), with plain decimal values (no float32 artefacts).

use super::{insert, scaled, CodecError, Reader};
use serde_json::{json, Map, Value};

/// How to read one LPP type.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Unsigned big-endian integer of `bytes`, divided by `divisor`.
    Unsigned { bytes: usize, divisor: f64 },
    /// Signed big-endian integer of `bytes`, divided by `divisor`.
    Signed { bytes: usize, divisor: f64 },
    /// Three signed 16-bit axes `x`, `y`, `z`, divided by `divisor`.
    Axes { divisor: f64 },
    /// Three bytes `r`, `g`, `b`.
    Colour,
    /// Latitude, longitude (3 bytes, 0.0001°) and altitude (3 bytes, 0.01 m), all signed.
    Gps,
}

/// LPP type id → key name and layout.
fn lookup(type_id: u8) -> Option<(&'static str, Layout)> {
    use Layout::*;
    Some(match type_id {
        0 => (
            "digital_in",
            Unsigned {
                bytes: 1,
                divisor: 1.0,
            },
        ),
        1 => (
            "digital_out",
            Unsigned {
                bytes: 1,
                divisor: 1.0,
            },
        ),
        2 => (
            "analog_in",
            Signed {
                bytes: 2,
                divisor: 100.0,
            },
        ),
        3 => (
            "analog_out",
            Signed {
                bytes: 2,
                divisor: 100.0,
            },
        ),
        100 => (
            "generic_sensor",
            Unsigned {
                bytes: 4,
                divisor: 1.0,
            },
        ),
        101 => (
            "luminosity",
            Unsigned {
                bytes: 2,
                divisor: 1.0,
            },
        ),
        102 => (
            "presence",
            Unsigned {
                bytes: 1,
                divisor: 1.0,
            },
        ),
        103 => (
            "temperature",
            Signed {
                bytes: 2,
                divisor: 10.0,
            },
        ),
        104 => (
            "relative_humidity",
            Unsigned {
                bytes: 1,
                divisor: 2.0,
            },
        ),
        113 => ("accelerometer", Axes { divisor: 1000.0 }),
        115 => (
            "barometric_pressure",
            Unsigned {
                bytes: 2,
                divisor: 10.0,
            },
        ),
        116 => (
            "voltage",
            Unsigned {
                bytes: 2,
                divisor: 100.0,
            },
        ),
        117 => (
            "current",
            Unsigned {
                bytes: 2,
                divisor: 1000.0,
            },
        ),
        118 => (
            "frequency",
            Unsigned {
                bytes: 4,
                divisor: 1.0,
            },
        ),
        120 => (
            "percentage",
            Unsigned {
                bytes: 1,
                divisor: 1.0,
            },
        ),
        121 => (
            "altitude",
            Signed {
                bytes: 2,
                divisor: 1.0,
            },
        ),
        125 => (
            "concentration",
            Unsigned {
                bytes: 2,
                divisor: 1.0,
            },
        ),
        128 => (
            "power",
            Unsigned {
                bytes: 2,
                divisor: 1.0,
            },
        ),
        130 => (
            "distance",
            Unsigned {
                bytes: 4,
                divisor: 1000.0,
            },
        ),
        131 => (
            "energy",
            Unsigned {
                bytes: 4,
                divisor: 1000.0,
            },
        ),
        132 => (
            "direction",
            Unsigned {
                bytes: 2,
                divisor: 1.0,
            },
        ),
        133 => (
            "unix_time",
            Unsigned {
                bytes: 4,
                divisor: 1.0,
            },
        ),
        134 => ("gyrometer", Axes { divisor: 100.0 }),
        135 => ("colour", Colour),
        136 => ("gps", Gps),
        142 => (
            "switch",
            Unsigned {
                bytes: 1,
                divisor: 1.0,
            },
        ),
        _ => return None,
    })
}

/// Integers stay JSON integers; scaled values become decimals.
fn number(raw: i64, divisor: f64) -> Value {
    if divisor == 1.0 {
        Value::from(raw)
    } else {
        scaled(raw, divisor)
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<Map<String, Value>, CodecError> {
    let mut out = Map::new();
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let start = r.pos;
        let channel = r.u8(start)?;
        let type_id = r.u8(start)?;
        let (name, layout) = lookup(type_id).ok_or(CodecError::UnknownType {
            offset: start,
            code: u16::from(type_id),
        })?;
        let value = match layout {
            Layout::Unsigned { bytes, divisor } => {
                // At most 4 bytes, so the value fits an i64.
                number(r.uint_be(bytes, start)? as i64, divisor)
            }
            Layout::Signed { bytes, divisor } => number(r.int_be(bytes, start)?, divisor),
            Layout::Axes { divisor } => json!({
                "x": scaled(r.int_be(2, start)?, divisor),
                "y": scaled(r.int_be(2, start)?, divisor),
                "z": scaled(r.int_be(2, start)?, divisor),
            }),
            Layout::Colour => json!({
                "r": r.u8(start)?,
                "g": r.u8(start)?,
                "b": r.u8(start)?,
            }),
            Layout::Gps => json!({
                "latitude": scaled(r.int_be(3, start)?, 10_000.0),
                "longitude": scaled(r.int_be(3, start)?, 10_000.0),
                "altitude": scaled(r.int_be(3, start)?, 100.0),
            }),
        };
        insert(&mut out, format!("{name}_{channel}"), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn gps_and_axes() {
        // GPS example from the LPP documentation: 42.3519, -87.9094, 10 m on channel 1.
        let out = decode(&[
            0x01, 0x88, 0x06, 0x76, 0x5f, 0xf2, 0x96, 0x0a, 0x00, 0x03, 0xe8,
        ])
        .unwrap();
        assert_eq!(
            out["gps_1"],
            json!({"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0})
        );
        let out = decode(&[0x06, 0x71, 0x04, 0xd2, 0xfb, 0x2e, 0x00, 0x00]).unwrap();
        assert_eq!(
            out["accelerometer_6"],
            json!({"x": 1.234, "y": -1.234, "z": 0.0})
        );
    }

    #[test]
    fn truncated_and_unknown() {
        assert_eq!(
            decode(&[0x03, 0x67, 0x01]),
            Err(CodecError::Truncated {
                offset: 0,
                needed: 1
            })
        );
        assert_eq!(
            decode(&[0x03]),
            Err(CodecError::Truncated {
                offset: 0,
                needed: 1
            })
        );
        assert_eq!(
            decode(&[0x03, 0x67, 0x01, 0x10, 0x05, 0xEE]),
            Err(CodecError::UnknownType {
                offset: 4,
                code: 0xEE
            })
        );
    }
}
