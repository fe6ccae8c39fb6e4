//! The in-memory geo index (rstar) of located things and the queries it answers.

use super::distance_m;
use ::geo::{BoundingRect, Intersects, MultiPolygon, Point};
use rstar::primitives::GeomWithData;
use rstar::{RTree, AABB};
use stadtpuls_gateways::{Axis, Position};
use stadtpuls_store::BBox;

/// A lower bound for the length of one degree of latitude anywhere on WGS84, in metres.
/// The true minimum (at the equator) is a(1-e²)·π/180 = 110 574.27 m; the margin absorbs rounding.
const MIN_M_PER_DEG_LAT: f64 = 110_000.0;
/// A lower bound for a·π/180 (111 319.49 m), the length of one degree of longitude on the equator.
const MIN_M_PER_DEG_LON_EQUATOR: f64 = 111_000.0;

/// What to select.
#[derive(Clone, Debug, PartialEq)]
pub enum GeoQuery {
    /// Everything in the index.
    All,
    /// Points inside a WGS84 box (edges inclusive). `min_lon > max_lon` means the box crosses
    /// the antimeridian.
    BBox(BBox),
    /// Points within `radius_m` geodesic metres of the centre (inclusive).
    Radius { lat: f64, lon: f64, radius_m: f64 },
    /// The `n` points geodesically nearest to the centre.
    Nearest { lat: f64, lon: f64, n: usize },
    /// Points inside or on the boundary of the polygons (`[lon, lat]`, planar in degrees).
    Polygon(MultiPolygon<f64>),
}

/// One selected item.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit<T> {
    pub id: T,
    pub lat: f64,
    pub lon: f64,
    /// Geodesic metres from the query centre; `Some` for Radius and Nearest only.
    pub distance_m: Option<f64>,
}

/// Position in `GeoIndex::items` stored in the tree at `[lon, lat]`.
type Entry = GeomWithData<[f64; 2], usize>;

#[derive(Clone, Debug)]
struct Item<T> {
    id: T,
    at: Position,
}

/// Immutable index, rebuilt (cheaply: one bulk load) when the registry changes; share as `Arc`.
#[derive(Clone, Debug)]
pub struct GeoIndex<T> {
    /// Valid items in insertion order; the tree refers to them by position.
    items: Vec<Item<T>>,
    tree: RTree<Entry>,
    skipped: usize,
}

impl<T: Clone> Default for GeoIndex<T> {
    /// An empty index.
    fn default() -> Self {
        GeoIndex::new(std::iter::empty())
    }
}

impl<T: Clone> GeoIndex<T> {
    /// Indexes `(id, lat, lon)` triples. Items whose coordinates are not finite or lie outside
    /// WGS84 (lat -90..90, lon -180..180) are skipped and counted in [`GeoIndex::skipped`].
    pub fn new(items: impl IntoIterator<Item = (T, f64, f64)>) -> Self {
        let mut kept = Vec::new();
        let mut skipped = 0;
        for (id, lat, lon) in items {
            match Position::new(lat, lon) {
                Ok(at) => kept.push(Item { id, at }),
                Err(_) => skipped += 1,
            }
        }
        let entries = kept
            .iter()
            .enumerate()
            .map(|(i, it)| Entry::new([it.at.lon(), it.at.lat()], i))
            .collect();
        GeoIndex {
            items: kept,
            tree: RTree::bulk_load(entries),
            skipped,
        }
    }

    /// Number of indexed (valid) items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many items `new` left out for invalid coordinates (worth a log line or a counter).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Runs a query. Order: All, BBox and Polygon in insertion order; Radius and Nearest by
    /// ascending geodesic distance (ties in insertion order), Nearest at most `n` items.
    ///
    /// Queries from [`parse_geo_query`] are valid; a hand-built query with a non-finite or
    /// out-of-range centre or a negative/NaN radius selects nothing. A centre longitude
    /// outside -180..180 is wrapped.
    pub fn query(&self, q: &GeoQuery) -> Vec<Hit<T>> {
        match q {
            GeoQuery::All => (0..self.items.len()).map(|i| self.hit(i, None)).collect(),
            GeoQuery::BBox(b) => self.in_bbox(b),
            GeoQuery::Radius { lat, lon, radius_m } => self.within(*lat, *lon, *radius_m),
            GeoQuery::Nearest { lat, lon, n } => self.nearest(*lat, *lon, *n),
            GeoQuery::Polygon(mp) => self.in_polygon(mp),
        }
    }

    fn hit(&self, i: usize, distance_m: Option<f64>) -> Hit<T> {
        let it = &self.items[i];
        Hit {
            id: it.id.clone(),
            lat: it.at.lat(),
            lon: it.at.lon(),
            distance_m,
        }
    }

    /// Positions inside any of `envelopes`, ascending.
    fn located(&self, envelopes: &[AABB<[f64; 2]>]) -> Vec<usize> {
        let mut found: Vec<usize> = envelopes
            .iter()
            .flat_map(|env| self.tree.locate_in_envelope(env).map(|e| e.data))
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    fn in_bbox(&self, b: &BBox) -> Vec<Hit<T>> {
        let envelopes = if b.min_lon <= b.max_lon {
            vec![lon_lat_box(b.min_lon, b.max_lon, b.min_lat, b.max_lat)]
        } else {
            // Crosses the antimeridian: [min_lon, 180] ∪ [-180, max_lon].
            vec![
                lon_lat_box(b.min_lon, 180.0, b.min_lat, b.max_lat),
                lon_lat_box(-180.0, b.max_lon, b.min_lat, b.max_lat),
            ]
        };
        self.located(&envelopes)
            .into_iter()
            .map(|i| self.hit(i, None))
            .collect()
    }

    fn in_polygon(&self, mp: &MultiPolygon<f64>) -> Vec<Hit<T>> {
        let Some(rect) = mp.bounding_rect() else {
            return Vec::new();
        };
        let env = lon_lat_box(rect.min().x, rect.max().x, rect.min().y, rect.max().y);
        self.located(&[env])
            .into_iter()
            .filter(|&i| {
                let it = &self.items[i];
                // `Intersects` (not `Contains`): a point on an outer or hole boundary counts as inside.
                mp.intersects(&Point::new(it.at.lon(), it.at.lat()))
            })
            .map(|i| self.hit(i, None))
            .collect()
    }

    /// Candidates a radius query has to measure exactly (a superset of the answer).
    fn radius_candidates(&self, lat: f64, lon: f64, radius_m: f64) -> Vec<usize> {
        self.located(&search_envelopes(lat, lon, radius_m))
    }

    fn within(&self, lat: f64, lon: f64, radius_m: f64) -> Vec<Hit<T>> {
        let Some((lat, lon)) = centre(lat, lon) else {
            return Vec::new();
        };
        if radius_m.is_nan() || radius_m < 0.0 {
            return Vec::new();
        }
        let mut measured: Vec<(f64, usize)> = self
            .radius_candidates(lat, lon, radius_m)
            .into_iter()
            .map(|i| {
                (
                    distance_m(lat, lon, self.items[i].at.lat(), self.items[i].at.lon()),
                    i,
                )
            })
            .filter(|&(d, _)| d <= radius_m)
            .collect();
        measured.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        measured
            .into_iter()
            .map(|(d, i)| self.hit(i, Some(d)))
            .collect()
    }

    /// Exact k-nearest by geodesic metres.
    ///
    /// Nearest in degree space is not nearest in metres (at 51° N a degree of longitude is 0.63 of
    /// a degree of latitude), but it is a cheap way to find *some* n points: if the n points the
    /// R-tree calls nearest lie at most `D` metres away, then the circle of radius `D` holds at
    /// least n points, so the true n nearest are all within `D`. One exact radius query with `D`
    /// therefore yields every true candidate; sort by metres and keep n. The seeds are found
    /// again by that query because their distance is computed by the same function.
    fn nearest(&self, lat: f64, lon: f64, n: usize) -> Vec<Hit<T>> {
        let Some((lat, lon)) = centre(lat, lon) else {
            return Vec::new();
        };
        if n == 0 || self.items.is_empty() {
            return Vec::new();
        }
        let bound = if n >= self.items.len() {
            f64::INFINITY
        } else {
            self.tree
                .nearest_neighbor_iter(&[lon, lat])
                .take(n)
                .map(|e| distance_m(lat, lon, e.geom()[1], e.geom()[0]))
                .fold(0.0, f64::max)
        };
        let mut hits = self.within(lat, lon, bound);
        hits.truncate(n);
        hits
    }
}

/// The degree-space envelopes (one, or two across the antimeridian) that contain every point
/// within `radius_m` geodesic metres of (`lat`, `lon`).
///
/// Why this never misses a point: along the geodesic from the centre to a point at distance
/// s ≤ r, every step has length ≥ M·|dφ| ≥ M_min·|dφ| and ≥ N·cos φ·|dλ| ≥ a·cos φ·|dλ|
/// (M, N the meridional and prime-vertical radii; N ≥ a). So |Δφ| ≤ r / M_min, every point of
/// the path has |φ| ≤ φ_max = |lat| + r / M_min, and |Δλ| ≤ r / (a·cos φ_max). Both bounds use
/// rounded-down constants. If φ_max reaches a pole, the circle may contain it and all longitudes
/// are searched; if the longitude span reaches 180°, too.
fn search_envelopes(lat: f64, lon: f64, radius_m: f64) -> Vec<AABB<[f64; 2]>> {
    let dlat = radius_m / MIN_M_PER_DEG_LAT;
    let lat_lo = (lat - dlat).max(-90.0);
    let lat_hi = (lat + dlat).min(90.0);
    let phi_max = lat.abs() + dlat;
    if phi_max >= 89.999 {
        return vec![lon_lat_box(-180.0, 180.0, lat_lo, lat_hi)];
    }
    let dlon = radius_m / (MIN_M_PER_DEG_LON_EQUATOR * phi_max.to_radians().cos());
    if dlon.is_nan() || dlon >= 180.0 {
        return vec![lon_lat_box(-180.0, 180.0, lat_lo, lat_hi)];
    }
    let (lon_lo, lon_hi) = (lon - dlon, lon + dlon);
    if lon_lo < -180.0 {
        vec![
            lon_lat_box(-180.0, lon_hi, lat_lo, lat_hi),
            lon_lat_box(lon_lo + 360.0, 180.0, lat_lo, lat_hi),
        ]
    } else if lon_hi > 180.0 {
        vec![
            lon_lat_box(lon_lo, 180.0, lat_lo, lat_hi),
            lon_lat_box(-180.0, lon_hi - 360.0, lat_lo, lat_hi),
        ]
    } else {
        vec![lon_lat_box(lon_lo, lon_hi, lat_lo, lat_hi)]
    }
}

fn lon_lat_box(min_lon: f64, max_lon: f64, min_lat: f64, max_lat: f64) -> AABB<[f64; 2]> {
    AABB::from_corners([min_lon, min_lat], [max_lon, max_lat])
}

/// A usable query centre, with the longitude wrapped into -180..180.
fn centre(lat: f64, lon: f64) -> Option<(f64, f64)> {
    if Axis::Lat.check(lat).is_err() || !lon.is_finite() {
        return None;
    }
    let lon = Axis::Lon
        .check(lon)
        .unwrap_or_else(|_| (lon + 180.0).rem_euclid(360.0) - 180.0);
    Some((lat, lon))
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ::geo::{Destination, Geodesic};

    /// Deterministic pseudo-random numbers (xorshift64*) for the brute-force comparisons.
    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
        fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.unit()
        }
    }

    /// A point `metres` away from (`lat`, `lon`) on `bearing`, as (lat, lon).
    fn destination(lat: f64, lon: f64, bearing: f64, metres: f64) -> (f64, f64) {
        let p = Geodesic::destination(Point::new(lon, lat), bearing, metres);
        (p.y(), p.x())
    }

    pub(in crate::geo) fn ids<T: Clone>(hits: &[Hit<T>]) -> Vec<T> {
        hits.iter().map(|h| h.id.clone()).collect()
    }

    /// Every point within `radius_m`, by measuring all of them, ordered like `query`.
    fn brute_radius(points: &[(usize, f64, f64)], lat: f64, lon: f64, radius_m: f64) -> Vec<usize> {
        let mut v: Vec<(f64, usize)> = points
            .iter()
            .map(|&(id, la, lo)| (distance_m(lat, lon, la, lo), id))
            .filter(|&(d, _)| d <= radius_m)
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v.into_iter().map(|(_, id)| id).collect()
    }

    pub(in crate::geo) const DORTMUND_HBF: (f64, f64) = (51.5178, 7.4593);
    pub(in crate::geo) const PHOENIX_SEE: (f64, f64) = (51.4893, 7.5079);

    #[test]
    fn radius_includes_999_m_and_excludes_1001_m_in_every_direction() {
        let (lat, lon) = DORTMUND_HBF;
        let mut points = Vec::new();
        for (k, bearing) in [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
            .into_iter()
            .enumerate()
        {
            let (a, b) = destination(lat, lon, bearing, 999.0);
            points.push((format!("in-{k}"), a, b));
            let (a, b) = destination(lat, lon, bearing, 1001.0);
            points.push((format!("out-{k}"), a, b));
        }
        let index = GeoIndex::new(points);
        let hits = index.query(&GeoQuery::Radius {
            lat,
            lon,
            radius_m: 1000.0,
        });
        let mut got = ids(&hits);
        got.sort();
        assert_eq!(got, (0..8).map(|k| format!("in-{k}")).collect::<Vec<_>>());
        for h in &hits {
            let d = h.distance_m.unwrap();
            assert!((d - 999.0).abs() < 1e-6, "{} at {d}", h.id);
        }
        assert!(hits.windows(2).all(|w| w[0].distance_m <= w[1].distance_m));
    }

    #[test]
    fn radius_finds_points_across_the_antimeridian_and_over_a_pole() {
        let index = GeoIndex::new([
            ("east-of-dateline", 0.0, -179.995),
            ("far", 0.0, -179.9),
            ("over-pole", 89.995, 180.0),
            ("near-pole", 89.999, 90.0),
        ]);
        let hits = index.query(&GeoQuery::Radius {
            lat: 0.0,
            lon: 179.995,
            radius_m: 1200.0,
        });
        assert_eq!(ids(&hits), ["east-of-dateline"]);
        assert!((hits[0].distance_m.unwrap() - 1113.2).abs() < 0.1);

        let hits = index.query(&GeoQuery::Radius {
            lat: 89.995,
            lon: 0.0,
            radius_m: 1200.0,
        });
        assert_eq!(ids(&hits), ["near-pole", "over-pole"]);
    }

    #[test]
    fn radius_and_nearest_agree_with_brute_force() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        // Clusters around a city, the antimeridian and the poles, plus scattered points.
        let centres = [
            (51.5, 7.46),
            (0.0, 180.0),
            (0.0, -180.0),
            (89.9, 0.0),
            (-89.9, 100.0),
            (65.0, 179.9),
        ];
        let mut points = Vec::new();
        for id in 0..3000 {
            let (la, lo) = if id % 10 == 9 {
                (rng.range(-90.0, 90.0), rng.range(-180.0, 180.0))
            } else {
                let (cla, clo) = centres[id % centres.len()];
                let (la, lo) =
                    destination(cla, clo, rng.range(0.0, 360.0), rng.range(0.0, 60_000.0));
                (la, lo)
            };
            points.push((id, la, lo));
        }
        let index = GeoIndex::new(points.clone());
        assert_eq!(index.len(), points.len());
        for q in 0..120 {
            let (cla, clo) = centres[q % centres.len()];
            let (lat, lon) = destination(cla, clo, rng.range(0.0, 360.0), rng.range(0.0, 20_000.0));
            let radius_m = [500.0, 5_000.0, 40_000.0, 100_000.0][q % 4];
            let got = ids(&index.query(&GeoQuery::Radius { lat, lon, radius_m }));
            assert_eq!(
                got,
                brute_radius(&points, lat, lon, radius_m),
                "radius {radius_m} at ({lat},{lon})"
            );

            let n = [1, 7, 50][q % 3];
            let got = ids(&index.query(&GeoQuery::Nearest { lat, lon, n }));
            let mut all = brute_radius(&points, lat, lon, f64::INFINITY);
            all.truncate(n);
            assert_eq!(got, all, "nearest {n} at ({lat},{lon})");
        }
    }

    #[test]
    fn nearest_orders_by_metres_where_degrees_disagree() {
        // At 51° N, 0.010° east ≈ 700 m but 0.008° north ≈ 890 m: degree order says north first.
        let (lat, lon) = (51.0, 7.0);
        let index = GeoIndex::new([
            ("north", lat + 0.008, lon),
            ("east", lat, lon + 0.010),
            ("far", lat + 0.1, lon),
        ]);
        let hits = index.query(&GeoQuery::Nearest { lat, lon, n: 1 });
        assert_eq!(ids(&hits), ["east"]);
        let hits = index.query(&GeoQuery::Nearest { lat, lon, n: 2 });
        assert_eq!(ids(&hits), ["east", "north"]);
        let east = hits[0].distance_m.unwrap();
        let north = hits[1].distance_m.unwrap();
        assert!((east - distance_m(lat, lon, lat, lon + 0.010)).abs() < 1e-9);
        assert!(
            (690.0..710.0).contains(&east) && (880.0..900.0).contains(&north),
            "{east} {north}"
        );
        // More than there are: all of them, in distance order.
        assert_eq!(
            ids(&index.query(&GeoQuery::Nearest { lat, lon, n: 10 })),
            ["east", "north", "far"]
        );
        assert!(GeoIndex::<u8>::new([])
            .query(&GeoQuery::Nearest { lat, lon, n: 3 })
            .is_empty());
    }

    #[test]
    fn a_one_km_radius_in_ten_thousand_points_measures_only_nearby_ones() {
        // A 100 × 100 grid at ~110 m spacing around Dortmund (≈ 11 km × 7 km).
        let points: Vec<(usize, f64, f64)> = (0..10_000)
            .map(|i| {
                (
                    i,
                    51.45 + (i / 100) as f64 * 0.001,
                    7.40 + (i % 100) as f64 * 0.0016,
                )
            })
            .collect();
        let index = GeoIndex::new(points.clone());
        let (lat, lon) = (51.50, 7.48);
        let candidates = index.radius_candidates(lat, lon, 1000.0);
        let hits = index.query(&GeoQuery::Radius {
            lat,
            lon,
            radius_m: 1000.0,
        });
        assert_eq!(ids(&hits), brute_radius(&points, lat, lon, 1000.0));
        // ≈ π·1 km² / (111 m · 111 m) ≈ 260 hits; the envelope is a little wider than the circle.
        assert!(hits.len() > 200, "{}", hits.len());
        assert!(
            candidates.len() < 2 * hits.len(),
            "{} candidates for {} hits",
            candidates.len(),
            hits.len()
        );
    }

    #[test]
    fn bbox_is_inclusive_in_insertion_order_and_may_cross_the_antimeridian() {
        let index = GeoIndex::new([
            ("c", 51.52, 7.47),
            ("edge", 51.50, 7.40),
            ("out", 51.60, 7.47),
            ("a", 51.51, 7.45),
            ("fiji", -17.0, 179.5),
            ("samoa", -14.0, -171.0),
        ]);
        let bbox = |min_lon, min_lat, max_lon, max_lat| {
            GeoQuery::BBox(BBox {
                min_lon,
                min_lat,
                max_lon,
                max_lat,
            })
        };
        assert_eq!(
            ids(&index.query(&bbox(7.40, 51.50, 7.50, 51.55))),
            ["c", "edge", "a"]
        );
        assert_eq!(
            ids(&index.query(&bbox(179.0, -20.0, -170.0, -10.0))),
            ["fiji", "samoa"]
        );
        assert_eq!(
            index.query(&bbox(7.40, 51.50, 7.50, 51.55))[0].distance_m,
            None
        );
        assert_eq!(
            ids(&index.query(&GeoQuery::All)),
            ["c", "edge", "out", "a", "fiji", "samoa"]
        );
    }

    #[test]
    fn invalid_coordinates_are_skipped_and_counted() {
        let index = GeoIndex::new([
            (1, 51.5, 7.4),
            (2, 95.0, 7.4),
            (3, 51.5, -181.0),
            (4, f64::NAN, 7.4),
            (5, 51.5, f64::INFINITY),
            (6, -90.0, 180.0),
        ]);
        assert_eq!(
            (index.len(), index.skipped(), index.is_empty()),
            (2, 4, false)
        );
        assert_eq!(ids(&index.query(&GeoQuery::All)), [1, 6]);
        assert!(GeoIndex::<u8>::new([]).is_empty());
        // Hand-built queries with unusable centres select nothing.
        assert!(index
            .query(&GeoQuery::Radius {
                lat: f64::NAN,
                lon: 7.4,
                radius_m: 10.0
            })
            .is_empty());
        assert!(index
            .query(&GeoQuery::Radius {
                lat: 51.5,
                lon: 7.4,
                radius_m: -1.0
            })
            .is_empty());
        assert_eq!(
            ids(&index.query(&GeoQuery::Radius {
                lat: 51.5,
                lon: 367.4,
                radius_m: 1.0
            })),
            [1]
        );
    }

    #[test]
    fn search_envelope_widens_to_all_longitudes_near_a_pole() {
        let envs = search_envelopes(89.5, 10.0, 100_000.0);
        assert_eq!(envs.len(), 1);
        assert_eq!(envs[0].upper(), [180.0, 90.0]);
        assert_eq!(envs[0].lower()[0], -180.0);
        assert!((envs[0].lower()[1] - (89.5 - 100_000.0 / 110_000.0)).abs() < 1e-9);
        let envs = search_envelopes(10.0, 179.99, 5_000.0);
        assert_eq!(envs.len(), 2, "split at the antimeridian");
        assert!(envs[1].upper()[0] < -179.9 && envs[0].upper()[0] == 180.0);
    }
}
