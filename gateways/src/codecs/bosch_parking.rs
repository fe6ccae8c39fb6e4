//! Bosch Parking Lot Sensor (TPS110) uplinks:
//! fPort 1 parking status `[flags]`; fPort 2 heartbeat `[flags, temperature °C as i8 (optional)]`;
//! fPort 3 startup `[3 × u32 LE debug codes][firmware major, minor, patch][reset cause][flags]`.
//! Bit 0 of `flags` is the occupancy. `occupied` is emitted as 0/1.

use super::{insert, CodecError, Reader};
use serde_json::{Map, Value};

pub(super) fn decode(f_port: u8, bytes: &[u8]) -> Result<Map<String, Value>, CodecError> {
    let mut out = Map::new();
    let mut r = Reader::new(bytes);
    match f_port {
        1 => {
            insert(&mut out, "type", "parking status");
            insert(&mut out, "occupied", r.u8(0)? & 1);
        }
        2 => {
            insert(&mut out, "type", "heartbeat");
            insert(&mut out, "occupied", r.u8(0)? & 1);
            if !r.is_empty() {
                insert(&mut out, "temperature", r.int_be(1, 1)?);
            }
        }
        3 => {
            insert(&mut out, "type", "startup");
            let mut debug_codes = Vec::new();
            for _ in 0..3 {
                let start = r.pos;
                let code = r.uint_le(4, start)?;
                if code != 0 {
                    debug_codes.push(Value::from(code));
                }
            }
            insert(&mut out, "debugCodes", debug_codes);
            let fw = r.take(3, 12)?;
            insert(
                &mut out,
                "firmwareVersion",
                format!("{}.{}.{}", fw[0], fw[1], fw[2]),
            );
            let cause = match r.u8(15)? {
                1 => "watchdog",
                2 => "power on",
                3 => "system request",
                _ => "other",
            };
            insert(&mut out, "resetCause", cause);
            insert(&mut out, "occupied", r.u8(16)? & 1);
        }
        other => return Err(CodecError::UnsupportedPort(other)),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn ports() {
        assert_eq!(
            Value::Object(decode(1, &[0x00]).unwrap()),
            json!({"type": "parking status", "occupied": 0})
        );
        assert_eq!(
            Value::Object(decode(2, &[0x01]).unwrap()),
            json!({"type": "heartbeat", "occupied": 1})
        );
        assert_eq!(
            decode(3, &[0x24, 0x03]),
            Err(CodecError::Truncated {
                offset: 0,
                needed: 2
            })
        );
        assert_eq!(decode(9, &[0x01]), Err(CodecError::UnsupportedPort(9)));
    }
}
