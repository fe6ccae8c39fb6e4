//! In-memory geo index of located things (rstar), queried in metres (geodesic).
//!
//! Three pieces, used by every list endpoint that returns located things:
//! * [`parse_geo_query`] / [`parse_polygon`] turn query parameters or a GeoJSON body into a
//!   [`GeoQuery`] (parse at the edge; bad input is a 400 naming the parameter);
//! * [`GeoIndex`] answers a [`GeoQuery`] from an immutable R-tree rebuilt when the registry changes;
//! * [`distance_m`] is the one distance function: geodesic metres on the WGS84 ellipsoid (Karney).
//!
//! Invariants: distances are never computed in degrees; the R-tree (degree space) only narrows the
//! candidates with an envelope proven to contain every point of the geodesic circle, and the exact
//! geodesic distance decides. Coordinates are `(lat, lon)` in function arguments and `[lon, lat]`
//! (x, y) inside the tree and in GeoJSON.

use crate::error::ApiError;
use crate::params::clip;
use crate::params::Params;
use ::geo::{BoundingRect, CoordsIter, Distance, Geodesic, Intersects};
use ::geo::{Coord, LineString, MultiPolygon, Point, Polygon};
use rstar::primitives::GeomWithData;
use rstar::{RTree, AABB};
use serde_json::Value;
use stadtpuls_store::BBox;

/// Largest accepted `radius` in metres.
pub const MAX_RADIUS_M: f64 = 100_000.0;
/// Largest accepted `nearest` count.
pub const MAX_NEAREST: usize = 1000;
/// Largest accepted number of positions in a search polygon; containment costs
/// O(positions) per candidate point, so this bounds the work one request can cause.
pub const MAX_POLYGON_POSITIONS: usize = 50_000;

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
    lat: f64,
    lon: f64,
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
            if valid_lat(lat) && valid_lon(lon) {
                kept.push(Item { id, lat, lon });
            } else {
                skipped += 1;
            }
        }
        let entries = kept
            .iter()
            .enumerate()
            .map(|(i, it)| Entry::new([it.lon, it.lat], i))
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
            lat: it.lat,
            lon: it.lon,
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
                mp.intersects(&Point::new(it.lon, it.lat))
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
                    distance_m(lat, lon, self.items[i].lat, self.items[i].lon),
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
    if !valid_lat(lat) || !lon.is_finite() {
        return None;
    }
    let lon = if valid_lon(lon) {
        lon
    } else {
        (lon + 180.0).rem_euclid(360.0) - 180.0
    };
    Some((lat, lon))
}

fn valid_lat(lat: f64) -> bool {
    lat.is_finite() && (-90.0..=90.0).contains(&lat)
}

fn valid_lon(lon: f64) -> bool {
    lon.is_finite() && (-180.0..=180.0).contains(&lon)
}

/// Geodesic distance in metres (WGS84 ellipsoid, Karney via `geo::Geodesic`).
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    Geodesic::distance(Point::new(lon1, lat1), Point::new(lon2, lat2))
}

/// Reads `bbox` | `lat`+`lon`+`radius` | `lat`+`lon`+`nearest` from query parameters; none of
/// them is [`GeoQuery::All`]. Consumes those five parameters (empty values count as absent, as
/// in [`Params`]), so [`Params::finish`] still reports the rest.
///
/// Errors are [`ApiError::BadParam`] naming the parameter: values that are not numbers,
/// non-finite or outside WGS84 (`lat`/`lon`); `lat` without `lon` and vice versa (names the
/// missing one); `lat`/`lon` without `radius` or `nearest` (`radius`); `radius`/`nearest` without
/// `lat`/`lon` (`lat`); `radius` with `nearest` (`nearest`); `bbox` with any of the others
/// (`bbox`); `radius` not in (0, 100 000] metres; `nearest` not an integer in 1..=1000.
pub fn parse_geo_query(p: &mut Params) -> Result<GeoQuery, ApiError> {
    let bbox = p.bbox()?;
    // `Params` has no public generic `take`; rebuild it without our keys instead, which is the
    // same thing through its public API.
    let mut rest = p.raw().clone();
    let mut take = |name: &str| rest.remove(name).filter(|v| !v.is_empty());
    let (lat, lon, radius, nearest) = (take("lat"), take("lon"), take("radius"), take("nearest"));
    *p = Params::new(rest);

    let lat = lat.map(|v| coordinate("lat", &v, 90.0)).transpose()?;
    let lon = lon.map(|v| coordinate("lon", &v, 180.0)).transpose()?;
    let radius_m = radius.map(|v| parse_radius(&v)).transpose()?;
    let nearest = nearest.map(|v| parse_nearest(&v)).transpose()?;

    if let Some(bbox) = bbox {
        if lat.is_some() || lon.is_some() || radius_m.is_some() || nearest.is_some() {
            return Err(ApiError::bad(
                "bbox",
                "cannot be combined with lat/lon/radius/nearest; select by one of bbox, lat+lon+radius or lat+lon+nearest",
            ));
        }
        return Ok(GeoQuery::BBox(bbox));
    }
    match (lat, lon, radius_m, nearest) {
        (None, None, None, None) => Ok(GeoQuery::All),
        (Some(_), None, _, _) => Err(ApiError::bad("lon", "required together with lat")),
        (None, Some(_), _, _) => Err(ApiError::bad("lat", "required together with lon")),
        (None, None, _, _) => Err(ApiError::bad(
            "lat",
            "lat and lon are required with radius or nearest",
        )),
        (Some(lat), Some(lon), Some(radius_m), None) => Ok(GeoQuery::Radius { lat, lon, radius_m }),
        (Some(lat), Some(lon), None, Some(n)) => Ok(GeoQuery::Nearest { lat, lon, n }),
        (Some(_), Some(_), None, None) => Err(ApiError::bad(
            "radius",
            "lat/lon need either radius (metres) or nearest (a count)",
        )),
        (Some(_), Some(_), Some(_), Some(_)) => Err(ApiError::bad(
            "nearest",
            "cannot be combined with radius; use one of them",
        )),
    }
}

/// The polygon of a `POST …/search` request: a JSON body holding a GeoJSON Polygon or
/// MultiPolygon. Errors name `body` (not JSON) or what [`parse_polygon`] names.
pub fn polygon_body(body: &[u8]) -> Result<GeoQuery, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("body", format!("not valid JSON: {e}")))?;
    Ok(GeoQuery::Polygon(parse_polygon(&value)?))
}

/// Distances as the API reports them: metres, to the centimetre.
pub fn round_m(m: f64) -> f64 {
    (m * 100.0).round() / 100.0
}

/// Checks a position given as numbers (e.g. in a JSON body): finite and inside WGS84; errors
/// name `lat` or `lon`.
pub fn check_wgs84(lat: f64, lon: f64) -> Result<(), ApiError> {
    for (name, v, limit) in [("lat", lat, 90.0), ("lon", lon, 180.0)] {
        if !v.is_finite() || !(-limit..=limit).contains(&v) {
            return Err(ApiError::bad(
                name,
                format!("{v} lies outside -{limit}..{limit} (WGS84 degrees)"),
            ));
        }
    }
    Ok(())
}

/// A latitude (`limit` 90) or longitude (`limit` 180) in degrees.
fn coordinate(name: &str, raw: &str, limit: f64) -> Result<f64, ApiError> {
    let v: f64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::bad(name, format!("'{}' is not a number", clip(raw))))?;
    if !v.is_finite() {
        return Err(ApiError::bad(name, "must be a finite number"));
    }
    if !(-limit..=limit).contains(&v) {
        return Err(ApiError::bad(
            name,
            format!("{v} lies outside -{limit}..{limit} (WGS84 degrees)"),
        ));
    }
    Ok(v)
}

fn parse_radius(raw: &str) -> Result<f64, ApiError> {
    let v: f64 = raw.trim().parse().map_err(|_| {
        ApiError::bad(
            "radius",
            format!("'{}' is not a number of metres", clip(raw)),
        )
    })?;
    if !(v.is_finite() && v > 0.0 && v <= MAX_RADIUS_M) {
        return Err(ApiError::bad(
            "radius",
            format!("must be more than 0 and at most {MAX_RADIUS_M} metres"),
        ));
    }
    Ok(v)
}

fn parse_nearest(raw: &str) -> Result<usize, ApiError> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_NEAREST).contains(&n) => Ok(n),
        _ => Err(ApiError::bad(
            "nearest",
            format!("must be an integer between 1 and {MAX_NEAREST}"),
        )),
    }
}

/// GeoJSON (RFC 7946) Polygon, MultiPolygon, or a Feature whose geometry is one of those →
/// MultiPolygon. Rings must be closed (first position = last) with ≥ 4 positions; positions are
/// `[lon, lat]` (an optional third element, altitude, must be a number and is ignored) within
/// WGS84. At most [`MAX_POLYGON_POSITIONS`] positions. Ring orientation and self-intersection are
/// not checked (RFC 7946 asks parsers not to reject on winding order). Polygons are planar in
/// degrees; one crossing the antimeridian must be split into a MultiPolygon, as RFC 7946 says.
///
/// Every error is `ApiError::BadParam { param: "body", .. }` whose message starts with the JSON
/// path of the offending value, e.g. `geometry.coordinates[0][3]: latitude 95 lies outside -90..90`.
pub fn parse_polygon(body: &Value) -> Result<MultiPolygon<f64>, ApiError> {
    let kind = geojson_type(body, "")?;
    let mp = if kind == "Feature" {
        let geometry = body
            .get("geometry")
            .filter(|g| !g.is_null())
            .ok_or_else(|| {
                body_err(
                    "geometry",
                    "a Feature needs a Polygon or MultiPolygon geometry",
                )
            })?;
        geometry_to_multipolygon(geometry, "geometry.")?
    } else {
        geometry_to_multipolygon(body, "")?
    };
    let positions = mp.coords_count();
    if positions > MAX_POLYGON_POSITIONS {
        return Err(body_err(
            "coordinates",
            format!("{positions} positions; at most {MAX_POLYGON_POSITIONS} are accepted"),
        ));
    }
    Ok(mp)
}

fn body_err(path: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad("body", format!("{path}: {message}"))
}

/// The `type` member of a GeoJSON object; `prefix` is the JSON path of `v` ("" or "geometry.").
fn geojson_type<'a>(v: &'a Value, prefix: &str) -> Result<&'a str, ApiError> {
    let obj = v.as_object().ok_or_else(|| {
        let at = if prefix.is_empty() {
            "$"
        } else {
            prefix.trim_end_matches('.')
        };
        body_err(
            at,
            format!("expected a GeoJSON object, got {}", json_kind(v)),
        )
    })?;
    match obj.get("type") {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(body_err(
            &format!("{prefix}type"),
            format!("expected a string, got {}", json_kind(other)),
        )),
        None => Err(body_err(&format!("{prefix}type"), "missing")),
    }
}

fn geometry_to_multipolygon(g: &Value, prefix: &str) -> Result<MultiPolygon<f64>, ApiError> {
    let kind = geojson_type(g, prefix)?;
    let path = format!("{prefix}coordinates");
    let coords = || {
        g.get("coordinates")
            .ok_or_else(|| body_err(&path, "missing"))
    };
    match kind {
        "Polygon" => Ok(MultiPolygon(vec![polygon(coords()?, &path)?])),
        "MultiPolygon" => {
            let polys = array(coords()?, &path)?;
            if polys.is_empty() {
                return Err(body_err(&path, "a MultiPolygon needs at least one polygon"));
            }
            let polys = polys
                .iter()
                .enumerate()
                .map(|(i, p)| polygon(p, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?;
            Ok(MultiPolygon(polys))
        }
        other => Err(body_err(
            &format!("{prefix}type"),
            format!(
                "'{}' is not supported; expected Polygon, MultiPolygon or a Feature with one of them",
                clip(other)
            ),
        )),
    }
}

fn polygon(v: &Value, path: &str) -> Result<Polygon<f64>, ApiError> {
    let rings = array(v, path)?;
    let mut rings = rings
        .iter()
        .enumerate()
        .map(|(i, r)| ring(r, &format!("{path}[{i}]")));
    let exterior = rings
        .next()
        .ok_or_else(|| body_err(path, "a polygon needs an exterior ring"))??;
    let holes = rings.collect::<Result<_, _>>()?;
    Ok(Polygon::new(exterior, holes))
}

fn ring(v: &Value, path: &str) -> Result<LineString<f64>, ApiError> {
    let positions = array(v, path)?;
    if positions.len() < 4 {
        return Err(body_err(
            path,
            format!(
                "a linear ring needs at least 4 positions (first = last), got {}",
                positions.len()
            ),
        ));
    }
    let coords: Vec<Coord<f64>> = positions
        .iter()
        .enumerate()
        .map(|(i, p)| position(p, &format!("{path}[{i}]")))
        .collect::<Result<_, _>>()?;
    if coords.first() != coords.last() {
        return Err(body_err(
            path,
            "ring is not closed: the last position must equal the first",
        ));
    }
    Ok(LineString(coords))
}

fn position(v: &Value, path: &str) -> Result<Coord<f64>, ApiError> {
    let parts = array(v, path)?;
    if !(2..=3).contains(&parts.len()) {
        return Err(body_err(
            path,
            format!(
                "a position is [lon, lat] (optionally with altitude), got {} elements",
                parts.len()
            ),
        ));
    }
    let mut numbers = [0.0; 3];
    for (i, part) in parts.iter().enumerate() {
        numbers[i] = part.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            body_err(
                &format!("{path}[{i}]"),
                format!("expected a number, got {}", json_kind(part)),
            )
        })?;
    }
    let [lon, lat, _] = numbers;
    if !valid_lon(lon) {
        return Err(body_err(
            path,
            format!("longitude {lon} lies outside -180..180"),
        ));
    }
    if !valid_lat(lat) {
        return Err(body_err(
            path,
            format!("latitude {lat} lies outside -90..90"),
        ));
    }
    Ok(Coord { x: lon, y: lat })
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, ApiError> {
    v.as_array()
        .ok_or_else(|| body_err(path, format!("expected an array, got {}", json_kind(v))))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ::geo::Destination;
    use serde_json::json;

    // ---------- independent reference: Vincenty (1975) inverse on WGS84 ----------
    // Written from the published formulae, not from geo/geographiclib; accurate to well under
    // a millimetre for non-antipodal points, so it checks `distance_m` to 0.5 m.
    fn vincenty(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
        let a = 6_378_137.0_f64;
        let f = 1.0 / 298.257_223_563;
        let b = a * (1.0 - f);
        let l = (lon2 - lon1).to_radians();
        let u1 = ((1.0 - f) * lat1.to_radians().tan()).atan();
        let u2 = ((1.0 - f) * lat2.to_radians().tan()).atan();
        let (su1, cu1) = u1.sin_cos();
        let (su2, cu2) = u2.sin_cos();
        let mut lambda = l;
        for _ in 0..1000 {
            let (sl, cl) = lambda.sin_cos();
            let sin_sigma = ((cu2 * sl).powi(2) + (cu1 * su2 - su1 * cu2 * cl).powi(2)).sqrt();
            let cos_sigma = su1 * su2 + cu1 * cu2 * cl;
            let sigma = sin_sigma.atan2(cos_sigma);
            let sin_alpha = cu1 * cu2 * sl / sin_sigma;
            let cos2_alpha = 1.0 - sin_alpha * sin_alpha;
            let cos_2sm = if cos2_alpha == 0.0 {
                0.0
            } else {
                cos_sigma - 2.0 * su1 * su2 / cos2_alpha
            };
            let c = f / 16.0 * cos2_alpha * (4.0 + f * (4.0 - 3.0 * cos2_alpha));
            let next = l
                + (1.0 - c)
                    * f
                    * sin_alpha
                    * (sigma
                        + c * sin_sigma
                            * (cos_2sm + c * cos_sigma * (-1.0 + 2.0 * cos_2sm * cos_2sm)));
            let converged = (next - lambda).abs() < 1e-13;
            lambda = next;
            if converged {
                let u_sq = cos2_alpha * (a * a - b * b) / (b * b);
                let big_a = 1.0
                    + u_sq / 16384.0 * (4096.0 + u_sq * (-768.0 + u_sq * (320.0 - 175.0 * u_sq)));
                let big_b = u_sq / 1024.0 * (256.0 + u_sq * (-128.0 + u_sq * (74.0 - 47.0 * u_sq)));
                let d_sigma = big_b
                    * sin_sigma
                    * (cos_2sm
                        + big_b / 4.0
                            * (cos_sigma * (-1.0 + 2.0 * cos_2sm * cos_2sm)
                                - big_b / 6.0
                                    * cos_2sm
                                    * (-3.0 + 4.0 * sin_sigma * sin_sigma)
                                    * (-3.0 + 4.0 * cos_2sm * cos_2sm)));
                return b * big_a * (sigma - d_sigma);
            }
        }
        panic!("Vincenty did not converge");
    }

    /// Meridian arc length between two latitudes: Simpson integration of the meridional radius
    /// of curvature M(φ) = a(1-e²)/(1-e² sin²φ)^{3/2} (another method independent of geo).
    fn meridian_arc(lat1: f64, lat2: f64) -> f64 {
        let a = 6_378_137.0_f64;
        let f = 1.0 / 298.257_223_563;
        let e2 = f * (2.0 - f);
        let m = |phi: f64| a * (1.0 - e2) / (1.0 - e2 * phi.sin().powi(2)).powf(1.5);
        let (x0, x1) = (lat1.to_radians(), lat2.to_radians());
        let steps = 2000;
        let h = (x1 - x0) / steps as f64;
        let mut sum = m(x0) + m(x1);
        for i in 1..steps {
            let w = if i % 2 == 1 { 4.0 } else { 2.0 };
            sum += w * m(x0 + h * i as f64);
        }
        sum * h / 3.0
    }

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

    fn ids<T: Clone>(hits: &[Hit<T>]) -> Vec<T> {
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

    const DORTMUND_HBF: (f64, f64) = (51.5178, 7.4593);
    const PHOENIX_SEE: (f64, f64) = (51.4893, 7.5079);

    #[test]
    fn distance_matches_vincenty_to_half_a_metre() {
        let cases = [
            // (lat1, lon1, lat2, lon2)
            (DORTMUND_HBF.0, DORTMUND_HBF.1, PHOENIX_SEE.0, PHOENIX_SEE.1),
            (52.5163, 13.3777, 48.1374, 11.5755), // Brandenburger Tor → Marienplatz
            (51.5178, 7.4593, 51.5178, 7.4693),   // 0.01° east at 51.5° N
            (-33.8568, 151.2153, 40.6892, -74.0445), // Sydney Opera House → Statue of Liberty
            (0.0, 179.99, 0.5, -179.99),          // across the antimeridian
            (89.9, 0.0, 89.9, 180.0),             // over the North Pole
        ];
        for (lat1, lon1, lat2, lon2) in cases {
            let ours = distance_m(lat1, lon1, lat2, lon2);
            let reference = vincenty(lat1, lon1, lat2, lon2);
            assert!(
                (ours - reference).abs() < 0.5,
                "({lat1},{lon1})→({lat2},{lon2}): {ours} vs Vincenty {reference}"
            );
        }
        let d = distance_m(DORTMUND_HBF.0, DORTMUND_HBF.1, PHOENIX_SEE.0, PHOENIX_SEE.1);
        // Pinned: 4 630.535 m from the Vincenty formulae above, reproduced with a separate
        // Python implementation of the same formulae (the "≈ 4.55 km" is a rough figure).
        assert!(
            (d - 4_630.535).abs() < 0.5,
            "Dortmund Hbf → Phoenix-See, got {d}"
        );
        assert_eq!(distance_m(51.5, 7.4, 51.5, 7.4), 0.0);
    }

    #[test]
    fn distance_along_equator_and_meridian() {
        // Along the equator the geodesic is the equator: a·π/180 per degree.
        let lon_degree = distance_m(0.0, 0.0, 0.0, 1.0);
        assert!((lon_degree - 111_319.490_8).abs() < 0.01, "{lon_degree}");
        // Along a meridian it is the meridian arc.
        let lat_degree = distance_m(0.0, 0.0, 1.0, 0.0);
        assert!(
            (lat_degree - meridian_arc(0.0, 1.0)).abs() < 0.01,
            "{lat_degree}"
        );
        assert!((lat_degree - 110_574.4).abs() < 0.1, "{lat_degree}");
        // At 51° N a degree of latitude is longer than at the equator.
        assert!((distance_m(51.0, 7.0, 52.0, 7.0) - meridian_arc(51.0, 52.0)).abs() < 0.01);
    }

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

    fn square(lon0: f64, lat0: f64, lon1: f64, lat1: f64) -> Value {
        json!([
            [lon0, lat0],
            [lon1, lat0],
            [lon1, lat1],
            [lon0, lat1],
            [lon0, lat0]
        ])
    }

    #[test]
    fn polygon_with_a_hole_and_boundaries_counting_as_inside() {
        let body = json!({
            "type": "Polygon",
            "coordinates": [square(7.0, 51.0, 8.0, 52.0), square(7.4, 51.4, 7.6, 51.6)],
        });
        let mp = parse_polygon(&body).unwrap();
        let index = GeoIndex::new([
            ("inside", 51.2, 7.2),
            ("in-hole", 51.5, 7.5),
            ("outside", 52.5, 7.5),
            ("outer-edge", 51.0, 7.5),
            ("hole-edge", 51.4, 7.5),
            ("corner", 52.0, 8.0),
        ]);
        assert_eq!(
            ids(&index.query(&GeoQuery::Polygon(mp))),
            ["inside", "outer-edge", "hole-edge", "corner"]
        );
    }

    #[test]
    fn multipolygon_and_feature_bodies() {
        let multi = json!({
            "type": "MultiPolygon",
            "coordinates": [[square(7.0, 51.0, 7.1, 51.1)], [square(8.0, 52.0, 8.1, 52.1)]],
        });
        let index = GeoIndex::new([
            ("a", 51.05, 7.05),
            ("between", 51.5, 7.5),
            ("b", 52.05, 8.05),
        ]);
        let mp = parse_polygon(&multi).unwrap();
        assert_eq!(mp.0.len(), 2);
        assert_eq!(ids(&index.query(&GeoQuery::Polygon(mp))), ["a", "b"]);

        let feature =
            json!({"type": "Feature", "properties": {"name": "Hafen"}, "geometry": multi});
        assert_eq!(
            parse_polygon(&feature).unwrap(),
            parse_polygon(&multi).unwrap()
        );
        // Altitude is allowed and ignored.
        let with_alt = json!({"type": "Polygon", "coordinates": [[[7, 51, 90], [8, 51, 90], [8, 52, 0], [7, 51, 90]]]});
        assert_eq!(
            parse_polygon(&with_alt).unwrap().0[0].exterior().0[1],
            Coord { x: 8.0, y: 51.0 }
        );
    }

    #[test]
    fn invalid_geojson_is_rejected_with_a_specific_message() {
        let ok_ring = square(7.0, 51.0, 8.0, 52.0);
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "not closed",
                json!({"type": "Polygon", "coordinates": [[[7, 51], [8, 51], [8, 52], [7, 52]]]}),
                "coordinates[0]: ring is not closed",
            ),
            (
                "too few positions",
                json!({"type": "Polygon", "coordinates": [[[7, 51], [8, 51], [7, 51]]]}),
                "coordinates[0]: a linear ring needs at least 4 positions (first = last), got 3",
            ),
            (
                "lat 95",
                json!({"type": "Polygon", "coordinates": [[[7, 51], [8, 95], [8, 52], [7, 51]]]}),
                "coordinates[0][1]: latitude 95 lies outside -90..90",
            ),
            (
                "lon 181",
                json!({"type": "Polygon", "coordinates": [[[7, 51], [181, 51], [8, 52], [7, 51]]]}),
                "coordinates[0][1]: longitude 181 lies outside -180..180",
            ),
            (
                "wrong type",
                json!({"type": "Point", "coordinates": [7, 51]}),
                "type: 'Point' is not supported; expected Polygon, MultiPolygon",
            ),
            (
                "feature with a line",
                json!({"type": "Feature", "geometry": {"type": "LineString", "coordinates": []}}),
                "geometry.type: 'LineString' is not supported",
            ),
            (
                "feature without geometry",
                json!({"type": "Feature", "geometry": null}),
                "geometry: a Feature needs a Polygon or MultiPolygon geometry",
            ),
            (
                "non-numeric",
                json!({"type": "Polygon", "coordinates": [[[7, 51], ["8", 51], [8, 52], [7, 51]]]}),
                "coordinates[0][1][0]: expected a number, got a string",
            ),
            (
                "position too short",
                json!({"type": "Polygon", "coordinates": [[[7, 51], [8], [8, 52], [7, 51]]]}),
                "coordinates[0][1]: a position is [lon, lat]",
            ),
            (
                "no rings",
                json!({"type": "Polygon", "coordinates": []}),
                "coordinates: a polygon needs an exterior ring",
            ),
            (
                "no polygons",
                json!({"type": "MultiPolygon", "coordinates": []}),
                "coordinates: a MultiPolygon needs at least one polygon",
            ),
            (
                "bad hole in a multipolygon",
                json!({"type": "MultiPolygon", "coordinates": [[ok_ring, [[7.5, 51.5], [7.6, 51.5], [7.5, 51.5]]]]}),
                "coordinates[0][1]: a linear ring needs at least 4 positions",
            ),
            (
                "missing coordinates",
                json!({"type": "Polygon"}),
                "coordinates: missing",
            ),
            (
                "coordinates not an array",
                json!({"type": "Polygon", "coordinates": "7,51"}),
                "coordinates: expected an array, got a string",
            ),
            ("missing type", json!({"coordinates": []}), "type: missing"),
            (
                "type not a string",
                json!({"type": 3}),
                "type: expected a string, got a number",
            ),
            (
                "not an object",
                json!([1, 2]),
                "$: expected a GeoJSON object, got an array",
            ),
        ];
        for (name, body, expected) in cases {
            match parse_polygon(&body) {
                Err(ApiError::BadParam { param, message }) => {
                    assert_eq!(param, "body", "{name}");
                    assert!(
                        message.starts_with(expected),
                        "{name}: got '{message}', expected '{expected}…'"
                    );
                }
                other => panic!("{name}: expected BadParam, got {other:?}"),
            }
        }
    }

    #[test]
    fn too_many_polygon_positions_are_rejected() {
        let n = MAX_POLYGON_POSITIONS + 10;
        let mut ring: Vec<Value> = (0..n - 1)
            .map(|i| {
                let t = i as f64 / (n - 1) as f64 * std::f64::consts::TAU;
                json!([7.0 + 0.1 * t.cos(), 51.0 + 0.1 * t.sin()])
            })
            .collect();
        ring.push(ring[0].clone());
        let err = parse_polygon(&json!({"type": "Polygon", "coordinates": [ring]})).unwrap_err();
        assert!(err.to_string().contains("at most 50000"), "{err}");
    }

    fn params(query: &str) -> Params {
        Params::new(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    #[test]
    fn geo_parameters_are_parsed_and_consumed() {
        let cases: Vec<(&str, GeoQuery)> = vec![
            ("", GeoQuery::All),
            ("lat=&lon=", GeoQuery::All),
            (
                "bbox=7.4,51.5,7.5,51.6",
                GeoQuery::BBox(BBox {
                    min_lon: 7.4,
                    min_lat: 51.5,
                    max_lon: 7.5,
                    max_lat: 51.6,
                }),
            ),
            (
                "lat=51.5&lon=7.46&radius=1000",
                GeoQuery::Radius {
                    lat: 51.5,
                    lon: 7.46,
                    radius_m: 1000.0,
                },
            ),
            (
                "lat=-90&lon=180&radius=100000",
                GeoQuery::Radius {
                    lat: -90.0,
                    lon: 180.0,
                    radius_m: 100_000.0,
                },
            ),
            (
                "lat=51.5&lon=7.46&radius=0.5",
                GeoQuery::Radius {
                    lat: 51.5,
                    lon: 7.46,
                    radius_m: 0.5,
                },
            ),
            (
                "lat=51.5&lon=7.46&nearest=5",
                GeoQuery::Nearest {
                    lat: 51.5,
                    lon: 7.46,
                    n: 5,
                },
            ),
            (
                "lat=+51.5&lon=%207.46&nearest=1000",
                GeoQuery::Nearest {
                    lat: 51.5,
                    lon: 7.46,
                    n: 1000,
                },
            ),
        ];
        for (query, expected) in cases {
            let mut p = params(&format!("{query}&limit=5"));
            assert_eq!(parse_geo_query(&mut p).unwrap(), expected, "{query}");
            assert_eq!(
                p.limit(100, 1000).unwrap(),
                5,
                "{query}: other parameters survive"
            );
            p.finish().unwrap();
        }
        let mut p = params("lat=51.5&lon=7.46&radius=10&colour=red");
        parse_geo_query(&mut p).unwrap();
        assert!(matches!(p.finish(), Err(ApiError::BadParam { param, .. }) if param == "colour"));
    }

    #[test]
    fn geo_parameter_errors_name_the_parameter() {
        let cases = [
            ("lat=abc&lon=7&radius=10", "lat", "'abc' is not a number"),
            ("lat=51&lon=east&radius=10", "lon", "'east' is not a number"),
            ("lat=95&lon=7&radius=10", "lat", "95 lies outside -90..90"),
            (
                "lat=-90.5&lon=7&nearest=1",
                "lat",
                "-90.5 lies outside -90..90",
            ),
            (
                "lat=51&lon=-181&radius=10",
                "lon",
                "-181 lies outside -180..180",
            ),
            ("lat=NaN&lon=7&radius=10", "lat", "must be a finite number"),
            ("lat=51&lon=inf&radius=10", "lon", "must be a finite number"),
            (
                "lat=51&lon=7&radius=ten",
                "radius",
                "'ten' is not a number of metres",
            ),
            (
                "lat=51&lon=7&radius=0",
                "radius",
                "must be more than 0 and at most 100000 metres",
            ),
            ("lat=51&lon=7&radius=-5", "radius", "must be more than 0"),
            (
                "lat=51&lon=7&radius=100000.5",
                "radius",
                "must be more than 0",
            ),
            ("lat=51&lon=7&radius=inf", "radius", "must be more than 0"),
            (
                "lat=51&lon=7&nearest=0",
                "nearest",
                "must be an integer between 1 and 1000",
            ),
            (
                "lat=51&lon=7&nearest=1001",
                "nearest",
                "must be an integer between 1 and 1000",
            ),
            ("lat=51&lon=7&nearest=2.5", "nearest", "must be an integer"),
            ("lat=51&lon=7&nearest=many", "nearest", "must be an integer"),
            ("lat=51&radius=10", "lon", "required together with lat"),
            ("lon=7&nearest=3", "lat", "required together with lon"),
            ("lat=51&lon=7", "radius", "lat/lon need either radius"),
            (
                "radius=10",
                "lat",
                "lat and lon are required with radius or nearest",
            ),
            ("nearest=3", "lat", "lat and lon are required"),
            (
                "lat=51&lon=7&radius=10&nearest=3",
                "nearest",
                "cannot be combined with radius",
            ),
            (
                "bbox=7.4,51.5,7.5,51.6&lat=51&lon=7",
                "bbox",
                "cannot be combined with lat/lon",
            ),
            (
                "bbox=7.4,51.5,7.5,51.6&radius=10",
                "bbox",
                "cannot be combined",
            ),
            ("bbox=7.4,51.5,7.5", "bbox", "expected four numbers"),
        ];
        for (query, param, message) in cases {
            match parse_geo_query(&mut params(query)) {
                Err(ApiError::BadParam {
                    param: p,
                    message: m,
                }) => {
                    assert_eq!(p, param, "{query}: {m}");
                    assert!(
                        m.starts_with(message),
                        "{query}: got '{m}', expected '{message}…'"
                    );
                }
                other => panic!("{query}: expected BadParam, got {other:?}"),
            }
        }
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
