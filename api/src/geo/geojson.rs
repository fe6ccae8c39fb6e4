//! GeoJSON search areas: the Polygon/MultiPolygon body of `POST …/search` requests, read with
//! the one GeoJSON reader (`stadtpuls_gateways::geojson`) into a `geo` MultiPolygon.

use super::GeoQuery;
use crate::error::ApiError;
use ::geo::{Coord, CoordsIter, LineString, MultiPolygon, Polygon};
use serde_json::Value;
use stadtpuls_gateways::geojson;

/// Largest accepted number of positions in a search polygon; containment costs
/// O(positions) per candidate point, so this bounds the work one request can cause.
pub const MAX_POLYGON_POSITIONS: usize = 50_000;

/// The polygon of a `POST …/search` request: a JSON body holding a GeoJSON Polygon or
/// MultiPolygon. Errors name `body` (not JSON) or what [`parse_polygon`] names.
pub fn polygon_body(body: &[u8]) -> Result<GeoQuery, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("body", format!("not valid JSON: {e}")))?;
    Ok(GeoQuery::Polygon(parse_polygon(&value)?))
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
    let polygons = geojson::polygons(body).map_err(|e| ApiError::bad("body", e.to_string()))?;
    let mp = MultiPolygon(
        polygons
            .into_iter()
            .map(|rings| {
                let mut rings = rings.into_iter().map(|ring| {
                    LineString(
                        ring.into_iter()
                            .map(|p| Coord {
                                x: p.lon(),
                                y: p.lat(),
                            })
                            .collect(),
                    )
                });
                // The reader guarantees an exterior ring.
                let exterior = rings.next().unwrap_or_else(|| LineString(Vec::new()));
                Polygon::new(exterior, rings.collect())
            })
            .collect(),
    );
    let positions = mp.coords_count();
    if positions > MAX_POLYGON_POSITIONS {
        return Err(ApiError::bad(
            "body",
            format!(
                "coordinates: {positions} positions; at most {MAX_POLYGON_POSITIONS} are accepted"
            ),
        ));
    }
    Ok(mp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::geo::index::tests::ids;
    use crate::geo::GeoIndex;
    use serde_json::json;

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
}
