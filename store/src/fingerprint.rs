//! The open-data fingerprint of a set of readings, summed in Rust from rows already being read.
//!
//! A partition's fingerprint is recorded when it is exported and recomputed later by
//! PostgreSQL (`FINGERPRINT_SQL` in [`crate::opendata`]) to notice late data. The raw export
//! reads every reading of the partition anyway, so it sums the fingerprint from those rows
//! instead of making the database read them a second time; both sides must agree to the bit.
//!
//! PostgreSQL's side is `hashfloat8extended(value, seed)`: zero (either sign) hashes to the
//! seed, every NaN is first made the one canonical NaN, and any other value is hashed as its 8
//! bytes in memory with Bob Jenkins' lookup3 (`hash_bytes_extended` in PostgreSQL's
//! `common/hashfn.c`). The bytes in memory, and so the hash, follow the server's byte order:
//! [`Fingerprint`] computes the little-endian result, and the export checks one value against
//! the server before trusting it (see `Store::fingerprint_port_matches`).

/// `(seed, value)` whose hash the export asks the server for and compares with
/// [`hash_float8_extended`]'s.
pub const PROBE: (i64, f64) = (1_311_768_467_463_790_320, 21.5);

/// lookup3's `mix`.
#[inline]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// lookup3's `final`.
#[inline]
fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// `hashfloat8extended(key, seed)` as a little-endian PostgreSQL server computes it.
pub fn hash_float8_extended(key: f64, seed: i64) -> i64 {
    if key == 0.0 {
        return seed;
    }
    let key = if key.is_nan() { f64::NAN } else { key };
    let bytes = key.to_le_bytes();
    let seed = seed as u64;
    // An 8-byte key: the initial state, the seed as a 12-byte block of its own (when not
    // zero), then the key's two words as the last, partial block.
    let init = 0x9e37_79b9_u32.wrapping_add(8).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    b = b.wrapping_add(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]));
    a = a.wrapping_add(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    finish(&mut a, &mut b, &mut c);
    ((u64::from(b) << 32) | u64::from(c)) as i64
}

/// Count and the two hash sums of `FINGERPRINT_SQL`, added up row by row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    count: i64,
    by_value: i128,
    by_time: i128,
}

impl Fingerprint {
    /// Adds one reading (`time_us`: microseconds since the Unix epoch).
    #[inline]
    pub fn add(&mut self, dev_eui: i64, quantity: i16, time_us: i64, value: f64) {
        self.count += 1;
        self.by_value += i128::from(hash_float8_extended(value, dev_eui));
        // date_part('epoch', timestamptz) is the microseconds as float8 divided by 1e6;
        // `dev_eui # quantity` widens the smallint with its sign.
        let epoch = time_us as f64 / 1_000_000.0;
        self.by_time += i128::from(hash_float8_extended(epoch, dev_eui ^ i64::from(quantity)));
    }

    /// Sums of disjoint sets of rows.
    pub fn merge(&mut self, other: &Fingerprint) {
        self.count += other.count;
        self.by_value += other.by_value;
        self.by_time += other.by_time;
    }

    pub fn count(&self) -> i64 {
        self.count
    }

    /// The text PostgreSQL's query produces (`h1:count:sum:sum`; empty sums are 0).
    pub fn text(&self) -> String {
        format!("h1:{}:{}:{}", self.count, self.by_value, self.by_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by PostgreSQL 15 on x86-64 (`SELECT hashfloat8extended(v, s)`).
    #[test]
    fn matches_postgresql() {
        let cases: [(f64, i64, i64); 10] = [
            (21.5, 0, 5_030_208_146_763_408_263),
            (21.5, 1, -4_004_041_737_715_068_647),
            (PROBE.1, PROBE.0, -648_407_496_407_214_314),
            (-3.25, -42, -7_958_743_579_465_582_165),
            (0.0, 77, 77),
            (-0.0, 77, 77),
            (f64::NAN, 5, 3_120_264_080_904_756_184),
            (-f64::NAN, 5, 3_120_264_080_904_756_184),
            (1_768_435_200.123_456, 99, -2_993_276_598_163_093_778),
            (1e300, i64::MIN, 4_141_997_132_874_101_106),
        ];
        for (v, seed, want) in cases {
            assert_eq!(
                hash_float8_extended(v, seed),
                want,
                "value {v}, seed {seed}"
            );
        }
    }

    #[test]
    fn epoch_seconds_as_postgresql_computes_them() {
        // date_part('epoch', '2026-01-15 10:11:12.345678+00') = float8 0x41da5a2f50161f97.
        let us = 1_768_471_872_345_678_i64;
        assert_eq!((us as f64 / 1_000_000.0).to_bits(), 0x41da_5a2f_5016_1f97);
    }

    #[test]
    fn text_and_merge() {
        assert_eq!(Fingerprint::default().text(), "h1:0:0:0");
        let (mut a, mut b, mut all) = (
            Fingerprint::default(),
            Fingerprint::default(),
            Fingerprint::default(),
        );
        a.add(1, 2, 3_000_000, 4.5);
        b.add(-7, 1, 9_000_000, -1.0);
        all.add(1, 2, 3_000_000, 4.5);
        all.add(-7, 1, 9_000_000, -1.0);
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.count(), 2);
        assert!(a.text().starts_with("h1:2:"));
    }
}
