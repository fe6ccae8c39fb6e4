//! Milesight AM300-series uplinks (AM319; AM307/AM308 use a subset; the AM10x channels for
//! activity and illumination are understood too): repeated `[channel id][channel type][value]`
//! with little-endian values and a fixed value length per (id, type) pair.

use super::{insert, scaled, CodecError, Reader};
use serde_json::{json, Map, Value};

/// Bytes of one AM319 history record (0x20 0xCE): timestamp, temperature, humidity, PIR, light
/// level, CO2, TVOC, pressure, PM2.5, PM10, HCHO/O3.
const AM319_HISTORY_LEN: usize = 22;

pub(super) fn decode(bytes: &[u8]) -> Result<Map<String, Value>, CodecError> {
    let mut out = Map::new();
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let s = r.pos;
        let channel = r.u8(s)?;
        let kind = r.u8(s)?;
        match (channel, kind) {
            // Device information (sent once after power-on).
            (0xFF, 0x01) => insert(&mut out, "ipso_version", r.u8(s)?),
            (0xFF, 0x09) => insert(&mut out, "hardware_version", version(r.take(2, s)?)),
            (0xFF, 0x0A) => insert(&mut out, "firmware_version", version(r.take(2, s)?)),
            (0xFF, 0x0B) => insert(&mut out, "device_status", r.u8(s)?),
            (0xFF, 0x0F) => insert(&mut out, "lorawan_class", r.u8(s)?),
            (0xFF, 0x16) => insert(&mut out, "sn", hex::encode(r.take(8, s)?)),
            // Measurements.
            (0x01, 0x75) => insert(&mut out, "battery", r.u8(s)?),
            (0x03, 0x67) => insert(&mut out, "temperature", scaled(r.int_le(2, s)?, 10.0)),
            (0x04, 0x68) => insert(&mut out, "humidity", scaled(i64::from(r.u8(s)?), 2.0)),
            (0x05, 0x00) => {
                let pir = if r.u8(s)? == 1 { "trigger" } else { "idle" };
                insert(&mut out, "pir", pir);
            }
            (0x05, 0x6A) => insert(&mut out, "activity", r.uint_le(2, s)?),
            (0x06, 0xCB) => insert(&mut out, "light_level", r.u8(s)?),
            (0x06, 0x65) => {
                insert(&mut out, "illumination", r.uint_le(2, s)?);
                insert(&mut out, "infrared_and_visible", r.uint_le(2, s)?);
                insert(&mut out, "infrared", r.uint_le(2, s)?);
            }
            (0x07, 0x7D) => insert(&mut out, "co2", r.uint_le(2, s)?),
            (0x08, 0x7D) => insert(&mut out, "tvoc", r.uint_le(2, s)?),
            (0x09, 0x73) => insert(&mut out, "pressure", scaled(r.uint_le(2, s)? as i64, 10.0)),
            (0x0A, 0x7D) => insert(&mut out, "hcho", scaled(r.uint_le(2, s)? as i64, 100.0)),
            (0x0B, 0x7D) => insert(&mut out, "pm2_5", r.uint_le(2, s)?),
            (0x0C, 0x7D) => insert(&mut out, "pm10", r.uint_le(2, s)?),
            (0x0D, 0x7D) => insert(&mut out, "o3", scaled(r.uint_le(2, s)? as i64, 100.0)),
            (0x0E, 0x01) => {
                let beep = if r.u8(s)? == 1 { "yes" } else { "no" };
                insert(&mut out, "beep", beep);
            }
            (0x20, 0xCE) => {
                let record = history(&mut Reader::new(r.take(AM319_HISTORY_LEN, s)?))?;
                match out.get_mut("history").and_then(Value::as_array_mut) {
                    Some(list) => list.push(record),
                    None => insert(&mut out, "history", vec![record]),
                }
            }
            _ => {
                return Err(CodecError::UnknownType {
                    offset: s,
                    code: u16::from_be_bytes([channel, kind]),
                })
            }
        }
    }
    Ok(out)
}

/// `[major, minor]` as `major.minor`.
fn version(b: &[u8]) -> String {
    b.iter().map(u8::to_string).collect::<Vec<_>>().join(".")
}

/// One stored measurement set; the length was checked by the caller.
fn history(r: &mut Reader<'_>) -> Result<Value, CodecError> {
    Ok(json!({
        "timestamp": r.uint_le(4, 0)?,
        "temperature": scaled(r.int_le(2, 0)?, 10.0),
        "humidity": scaled(r.uint_le(2, 0)? as i64, 2.0),
        "pir": if r.u8(0)? == 1 { "trigger" } else { "idle" },
        "light_level": r.u8(0)?,
        "co2": r.uint_le(2, 0)?,
        "tvoc": r.uint_le(2, 0)?,
        "pressure": scaled(r.uint_le(2, 0)? as i64, 10.0),
        "pm2_5": r.uint_le(2, 0)?,
        "pm10": r.uint_le(2, 0)?,
        "hcho": scaled(r.uint_le(2, 0)? as i64, 100.0),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn device_info_and_errors() {
        let out = decode(&[
            0xFF, 0x01, 0x01, 0xFF, 0x0A, 0x01, 0x02, 0x03, 0x67, 0x10, 0xFF,
        ])
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"ipso_version": 1, "firmware_version": "1.2", "temperature": -24.0})
        );
        assert_eq!(
            decode(&[0x07, 0x7D, 0xA8]),
            Err(CodecError::Truncated {
                offset: 0,
                needed: 1
            })
        );
        assert_eq!(
            decode(&[0x01]),
            Err(CodecError::Truncated {
                offset: 0,
                needed: 1
            })
        );
        assert_eq!(
            decode(&[0x01, 0x75, 0x55, 0x42, 0x42]),
            Err(CodecError::UnknownType {
                offset: 3,
                code: 0x4242
            })
        );
    }

    #[test]
    fn history_record() {
        let mut bytes = vec![0x20, 0xCE];
        bytes.extend_from_slice(&[0x00, 0x00, 0x00, 0x65]); // timestamp 0x65000000
        bytes.extend_from_slice(&[0xEE, 0x00, 0x7C, 0x00, 0x01, 0x02, 0xA8, 0x03]);
        bytes.extend_from_slice(&[0x25, 0x00, 0x66, 0x27, 0x20, 0x00, 0x30, 0x00, 0x04, 0x00]);
        let out = decode(&bytes).unwrap();
        assert_eq!(out["history"][0]["timestamp"], json!(0x6500_0000u32));
        assert_eq!(out["history"][0]["temperature"], json!(23.8));
        assert_eq!(out["history"][0]["hcho"], json!(0.04));
        assert_eq!(decode(&bytes[..10]).unwrap_err().reason(), "truncated");
    }
}
