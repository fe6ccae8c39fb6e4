//! Reading the raw export's `COPY … TO STDOUT (FORMAT binary)` scan, and the columns the
//! export hands to the file writers.
//!
//! The raw open-data export reads whole day partitions (10 M readings in the benchmark city).
//! Fetched as rows, each reading costs a protocol message decoded into a row object and a
//! by-name column lookup per field; binary COPY delivers the same tuples as length-prefixed
//! fixed-width fields that are read straight into plain structs.
//!
//! The format (PostgreSQL manual, "COPY", binary format): an 11-byte signature, a 32-bit flags
//! field, a 32-bit header-extension length and that many bytes; then per tuple a 16-bit field
//! count followed by, per field, a 32-bit length (-1 = NULL) and the value in the type's binary
//! send format (big endian); then a 16-bit -1 as the trailer. PostgreSQL sends one tuple per
//! CopyData message, but nothing here relies on message boundaries.

use crate::StoreError;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Readings of a raw dataset, column by column, in the files' order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawColumns {
    /// Observation times, microseconds since the Unix epoch (UTC).
    pub time_us: Vec<i64>,
    /// The sensor ids, concatenated (ASCII hex); row `i`'s id is `ids[id_ends[i-1]..id_ends[i]]`.
    pub ids: String,
    pub id_ends: Vec<usize>,
    pub quantity: Vec<i16>,
    pub value: Vec<f64>,
    pub lon: Vec<f64>,
    pub lat: Vec<f64>,
}

impl RawColumns {
    pub fn with_capacity(rows: usize) -> RawColumns {
        RawColumns {
            time_us: Vec::with_capacity(rows),
            ids: String::with_capacity(rows * 32),
            id_ends: Vec::with_capacity(rows),
            quantity: Vec::with_capacity(rows),
            value: Vec::with_capacity(rows),
            lon: Vec::with_capacity(rows),
            lat: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.time_us.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time_us.is_empty()
    }

    /// Row `i`'s sensor id.
    pub fn id(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.id_ends[i - 1] };
        &self.ids[start..self.id_ends[i]]
    }
}

/// What a malformed COPY stream looked like (a bug or a changed query, never user input).
fn bad(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column: "binary COPY of the raw export",
        problem: what.into(),
    }
}

/// One reading as the raw export scans it: `(dev_eui int8, quantity int2, time timestamptz,
/// value float8)`, none NULL.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScannedReading {
    pub dev_eui: i64,
    pub quantity: i16,
    /// Microseconds since the Unix epoch (UTC).
    pub time_us: i64,
    pub value: f64,
}

/// Incremental parser of a binary COPY stream of [`ScannedReading`] tuples.
#[derive(Debug, Default)]
pub struct ReadingCopyParser {
    /// Bytes received but not yet parsed (an incomplete header or tuple).
    pending: Vec<u8>,
    header_done: bool,
    trailer_seen: bool,
}

/// Big-endian readers over a byte slice; `None` when it is too short.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            i64::from_be_bytes(a)
        })
    }

    /// A field's length prefix, checked against the expected fixed width.
    fn field(&mut self, col: &str, width: i32) -> Option<Result<(), StoreError>> {
        let len = self.i32()?;
        Some(match len {
            -1 => Err(bad(format!("{col} is NULL"))),
            l if l != width => Err(bad(format!("{col} has {l} bytes, expected {width}"))),
            _ => Ok(()),
        })
    }
}

/// Parses one tuple's fields at the cursor: `Ok(None)` when the input ends inside it.
fn tuple(c: &mut Cursor<'_>) -> Result<Option<ScannedReading>, StoreError> {
    macro_rules! need {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    macro_rules! field {
        ($name:expr, $w:expr) => {
            need!(c.field($name, $w))?
        };
    }
    field!("dev_eui", 8);
    let dev_eui = need!(c.i64());
    field!("quantity", 2);
    let quantity = need!(c.i16());
    field!("time", 8);
    let t = need!(c.i64());
    field!("value", 8);
    let value = f64::from_bits(need!(c.i64()) as u64);
    let time_us = t
        .checked_add(PG_EPOCH_US)
        .ok_or_else(|| bad(format!("time {t} out of range")))?;
    Ok(Some(ScannedReading {
        dev_eui,
        quantity,
        time_us,
        value,
    }))
}

impl ReadingCopyParser {
    /// Parses what `bytes` completes, handing each tuple to `out`.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut out: impl FnMut(ScannedReading),
    ) -> Result<(), StoreError> {
        if self.trailer_seen {
            return if bytes.is_empty() {
                Ok(())
            } else {
                Err(bad("data after the trailer"))
            };
        }
        // Parse straight from `bytes` when nothing is pending (the usual case: whole tuples
        // per message); otherwise from the joined buffer.
        let joined;
        let input: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            self.pending.extend_from_slice(bytes);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        let mut c = Cursor { buf: input, pos: 0 };
        if !self.header_done {
            let start = c.pos;
            match (c.take(11), c.i32(), c.i32()) {
                (Some(sig), Some(_flags), Some(ext)) => {
                    if sig != SIGNATURE {
                        return Err(bad("missing PGCOPY signature"));
                    }
                    let ext = usize::try_from(ext).map_err(|_| bad("negative header extension"))?;
                    if c.take(ext).is_none() {
                        self.pending = input[start..].to_vec();
                        return Ok(());
                    }
                    self.header_done = true;
                }
                _ => {
                    self.pending = input[start..].to_vec();
                    return Ok(());
                }
            }
        }
        loop {
            let start = c.pos;
            let Some(fields) = c.i16() else {
                self.pending = input[start..].to_vec();
                return Ok(());
            };
            if fields == -1 {
                self.trailer_seen = true;
                if c.pos != input.len() {
                    return Err(bad("data after the trailer"));
                }
                return Ok(());
            }
            if fields != 4 {
                return Err(bad(format!("tuple of {fields} fields, expected 4")));
            }
            match tuple(&mut c)? {
                None => {
                    self.pending = input[start..].to_vec();
                    return Ok(());
                }
                Some(t) => out(t),
            }
        }
    }

    /// Checks that the stream ended with its trailer and nothing half-parsed.
    pub fn finish(&self) -> Result<(), StoreError> {
        if !self.trailer_seen || !self.pending.is_empty() {
            return Err(bad("stream ended before the trailer"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b
    }

    fn tuple_bytes(dev: i64, q: i16, t_pg: i64, v: f64) -> Vec<u8> {
        let mut b = 4i16.to_be_bytes().to_vec();
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&dev.to_be_bytes());
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(&q.to_be_bytes());
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&t_pg.to_be_bytes());
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&v.to_bits().to_be_bytes());
        b
    }

    fn stream() -> Vec<u8> {
        let mut s = header();
        s.extend(tuple_bytes(0x70b3_d57e_d005_0001, 1, 0, 21.5));
        s.extend(tuple_bytes(-5, 2, 1_000_000, -3.25));
        s.extend((-1i16).to_be_bytes());
        s
    }

    fn parse(bytes: &[u8]) -> Result<Vec<ScannedReading>, StoreError> {
        let mut out = Vec::new();
        ReadingCopyParser::default().feed(bytes, |r| out.push(r))?;
        Ok(out)
    }

    #[test]
    fn parses_tuples_whatever_the_chunking() {
        let s = stream();
        for chunk in [1, 2, 3, 7, 13, s.len()] {
            let mut p = ReadingCopyParser::default();
            let mut out = Vec::new();
            for part in s.chunks(chunk) {
                p.feed(part, |r| out.push(r)).unwrap();
            }
            p.finish().unwrap();
            assert_eq!(
                out,
                vec![
                    ScannedReading {
                        dev_eui: 0x70b3_d57e_d005_0001,
                        quantity: 1,
                        time_us: PG_EPOCH_US,
                        value: 21.5
                    },
                    ScannedReading {
                        dev_eui: -5,
                        quantity: 2,
                        time_us: PG_EPOCH_US + 1_000_000,
                        value: -3.25
                    },
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn malformed_streams_are_errors_not_panics() {
        let e = parse(b"NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
        assert!(e.unwrap_err().to_string().contains("signature"));

        // A NULL value.
        let mut s = header();
        let mut t = tuple_bytes(1, 1, 0, 1.0);
        let at = t.len() - 12;
        t[at..at + 4].copy_from_slice(&(-1i32).to_be_bytes());
        t.truncate(at + 4);
        s.extend(t);
        assert!(parse(&s).unwrap_err().to_string().contains("value is NULL"));

        // Wrong width, wrong field count, time out of range, truncated stream, data after
        // the trailer.
        let mut s = header();
        let mut t = tuple_bytes(1, 1, 0, 1.0);
        t[2..6].copy_from_slice(&4i32.to_be_bytes());
        s.extend(t);
        let e = parse(&s).unwrap_err().to_string();
        assert!(e.contains("dev_eui has 4 bytes"), "{e}");

        let mut s = header();
        s.extend(6i16.to_be_bytes());
        assert!(parse(&s).unwrap_err().to_string().contains("6 fields"));

        let mut s = header();
        s.extend(tuple_bytes(1, 1, i64::MAX, 1.0));
        assert!(parse(&s).unwrap_err().to_string().contains("out of range"));

        let s = stream();
        let mut p = ReadingCopyParser::default();
        p.feed(&s[..s.len() - 5], |_| {}).unwrap();
        assert!(p.finish().is_err());

        let mut s = stream();
        s.push(0);
        assert!(parse(&s)
            .unwrap_err()
            .to_string()
            .contains("after the trailer"));
    }
}
