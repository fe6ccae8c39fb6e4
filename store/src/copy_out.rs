//! Reading `COPY … TO STDOUT (FORMAT binary)` into columns.
//!
//! The raw open-data export reads whole day partitions (10 M readings in the benchmark city).
//! Fetched as rows, each reading costs a protocol message decoded into a row object, a
//! by-name column lookup per field and a `String` for its sensor id; binary COPY delivers the
//! same tuples as length-prefixed fields that are copied straight into column vectors.
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

/// Readings of a raw dataset, column by column, in the query's order.
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

/// Incremental parser of a binary COPY stream whose tuples are
/// `(timestamptz, text, int2, float8, float8, float8)` without NULLs.
#[derive(Debug, Default)]
pub struct RawCopyParser {
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
    fn field(&mut self, col: &str, width: Option<i32>) -> Option<Result<usize, StoreError>> {
        let len = self.i32()?;
        Some(match (len, width) {
            (-1, _) => Err(bad(format!("{col} is NULL"))),
            (l, Some(w)) if l != w => Err(bad(format!("{col} has {l} bytes, expected {w}"))),
            (l, _) if l < 0 => Err(bad(format!("{col} has length {l}"))),
            (l, _) => Ok(l as usize),
        })
    }
}

/// One parsed tuple, borrowed from the input.
struct Tuple<'a> {
    time_us: i64,
    id: &'a [u8],
    quantity: i16,
    value: f64,
    lon: f64,
    lat: f64,
}

/// Parses one tuple at the cursor: `Ok(None)` when the input ends inside it.
fn tuple<'a>(c: &mut Cursor<'a>) -> Result<Option<Tuple<'a>>, StoreError> {
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
    field!("time", Some(8));
    let t = need!(c.i64());
    let n = field!("sensor_id", None);
    let id = need!(c.take(n));
    field!("quantity", Some(2));
    let quantity = need!(c.i16());
    field!("value", Some(8));
    let value = f64::from_bits(need!(c.i64()) as u64);
    field!("lon", Some(8));
    let lon = f64::from_bits(need!(c.i64()) as u64);
    field!("lat", Some(8));
    let lat = f64::from_bits(need!(c.i64()) as u64);
    let time_us = t
        .checked_add(PG_EPOCH_US)
        .ok_or_else(|| bad(format!("time {t} out of range")))?;
    Ok(Some(Tuple {
        time_us,
        id,
        quantity,
        value,
        lon,
        lat,
    }))
}

impl RawCopyParser {
    /// Parses what `bytes` completes, appending the tuples to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut RawColumns) -> Result<(), StoreError> {
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
            if fields != 6 {
                return Err(bad(format!("tuple of {fields} fields, expected 6")));
            }
            match tuple(&mut c)? {
                None => {
                    self.pending = input[start..].to_vec();
                    return Ok(());
                }
                Some(t) => {
                    let id =
                        std::str::from_utf8(t.id).map_err(|_| bad("sensor_id is not UTF-8"))?;
                    out.time_us.push(t.time_us);
                    out.ids.push_str(id);
                    out.id_ends.push(out.ids.len());
                    out.quantity.push(t.quantity);
                    out.value.push(t.value);
                    out.lon.push(t.lon);
                    out.lat.push(t.lat);
                }
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

    fn tuple_bytes(t_pg: i64, id: &str, q: i16, v: f64, lon: f64, lat: f64) -> Vec<u8> {
        let mut b = 6i16.to_be_bytes().to_vec();
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&t_pg.to_be_bytes());
        b.extend_from_slice(&(id.len() as i32).to_be_bytes());
        b.extend_from_slice(id.as_bytes());
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(&q.to_be_bytes());
        for f in [v, lon, lat] {
            b.extend_from_slice(&8i32.to_be_bytes());
            b.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        b
    }

    fn stream() -> Vec<u8> {
        let mut s = header();
        s.extend(tuple_bytes(0, "ab12", 1, 21.5, 7.46, 51.51));
        s.extend(tuple_bytes(1_000_000, "cd", 2, -3.25, 7.4, 51.5));
        s.extend((-1i16).to_be_bytes());
        s
    }

    #[test]
    fn parses_tuples_whatever_the_chunking() {
        let s = stream();
        for chunk in [1, 2, 3, 7, 13, s.len()] {
            let mut p = RawCopyParser::default();
            let mut out = RawColumns::default();
            for part in s.chunks(chunk) {
                p.feed(part, &mut out).unwrap();
            }
            p.finish().unwrap();
            assert_eq!(out.len(), 2, "chunk {chunk}");
            assert_eq!(out.time_us, vec![PG_EPOCH_US, PG_EPOCH_US + 1_000_000]);
            assert_eq!((out.id(0), out.id(1)), ("ab12", "cd"));
            assert_eq!(out.quantity, vec![1, 2]);
            assert_eq!(out.value, vec![21.5, -3.25]);
            assert_eq!(out.lon, vec![7.46, 7.4]);
            assert_eq!(out.lat, vec![51.51, 51.5]);
        }
    }

    #[test]
    fn malformed_streams_are_errors_not_panics() {
        let mut p = RawCopyParser::default();
        let e = p.feed(
            b"NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0",
            &mut RawColumns::default(),
        );
        assert!(e.unwrap_err().to_string().contains("signature"));

        // A NULL value.
        let mut s = header();
        let mut t = tuple_bytes(0, "ab", 1, 1.0, 2.0, 3.0);
        let at = t.len() - 12;
        t[at..at + 4].copy_from_slice(&(-1i32).to_be_bytes());
        t.truncate(at + 4);
        s.extend(t);
        let e = RawCopyParser::default().feed(&s, &mut RawColumns::default());
        assert!(e.unwrap_err().to_string().contains("lat is NULL"));

        // Wrong width, wrong field count, truncated stream, data after the trailer.
        let mut s = header();
        let mut t = tuple_bytes(0, "ab", 1, 1.0, 2.0, 3.0);
        t[2..6].copy_from_slice(&4i32.to_be_bytes());
        s.extend(t);
        let e = RawCopyParser::default().feed(&s, &mut RawColumns::default());
        assert!(e.unwrap_err().to_string().contains("time has 4 bytes"));

        let mut s = header();
        s.extend(5i16.to_be_bytes());
        let e = RawCopyParser::default().feed(&s, &mut RawColumns::default());
        assert!(e.unwrap_err().to_string().contains("5 fields"));

        let s = stream();
        let mut p = RawCopyParser::default();
        p.feed(&s[..s.len() - 5], &mut RawColumns::default())
            .unwrap();
        assert!(p.finish().is_err());

        let mut s = stream();
        s.push(0);
        let e = RawCopyParser::default().feed(&s, &mut RawColumns::default());
        assert!(e.unwrap_err().to_string().contains("after the trailer"));
    }
}
