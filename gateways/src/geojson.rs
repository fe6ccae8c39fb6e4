//! The one GeoJSON (RFC 7946) reader: FeatureCollections of registry files, Point geometries,
//! and the Polygon/MultiPolygon areas of search requests and parking-site outlines.
//!
//! Every error is a [`GeoJsonError`] whose `path` is the JSON path of the offending value
//! (`features[2].geometry.coordinates`, `coordinates[0][3]`, `$` for the document itself), so the
//! message tells the author where to look. Positions are `[lon, lat]` with an optional third
//! element (altitude, a number, ignored) and become checked [`Position`]s.

use crate::position::{Axis, Position, PositionError};
use serde_json::{Map, Value};
use std::fmt;

/// What is wrong with a GeoJSON document, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct GeoJsonError {
    /// JSON path of the offending value; `$` is the whole document.
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl fmt::Display) -> GeoJsonError {
    GeoJsonError {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// One feature of a FeatureCollection, as the registry readers need it.
#[derive(Clone, Debug, PartialEq)]
pub struct Feature {
    /// Position in the collection (for messages: "feature 3").
    pub index: usize,
    /// `properties` when it is an object; `None` when absent, `null` or not an object.
    pub properties: Option<Map<String, Value>>,
    /// `geometry`, `None` when absent or `null` (RFC 7946: an unlocated feature).
    pub geometry: Option<Value>,
}

/// The features of a GeoJSON FeatureCollection given as text.
pub fn feature_collection(text: &str) -> Result<Vec<Feature>, GeoJsonError> {
    let mut doc: Value =
        serde_json::from_str(text).map_err(|e| err("$", format!("not valid JSON: {e}")))?;
    if geojson_type(&doc, "")? != "FeatureCollection" {
        return Err(err("type", "expected a GeoJSON FeatureCollection"));
    }
    let features = match doc.get_mut("features").map(Value::take) {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(err(
                "features",
                format!("expected an array, got {}", json_kind(&other)),
            ))
        }
        None => return Err(err("features", "a FeatureCollection needs 'features'")),
    };
    features
        .into_iter()
        .enumerate()
        .map(|(index, f)| {
            let Value::Object(mut f) = f else {
                return Err(err(
                    &format!("features[{index}]"),
                    format!("expected a Feature object, got {}", json_kind(&f)),
                ));
            };
            let properties = match f.remove("properties") {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            };
            let geometry = f.remove("geometry").filter(|g| !g.is_null());
            Ok(Feature {
                index,
                properties,
                geometry,
            })
        })
        .collect()
}

/// The `type` member of a GeoJSON object (`Point`, `Polygon`, ...), if it is one.
pub fn type_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

/// A Point geometry's position; `prefix` is the JSON path of `geometry` plus a dot (or "").
pub fn point(geometry: &Value, prefix: &str) -> Result<Position, GeoJsonError> {
    let kind = geojson_type(geometry, prefix)?;
    if kind != "Point" {
        return Err(err(
            &format!("{prefix}type"),
            format!("expected a Point geometry, got '{}'", clip(kind)),
        ));
    }
    let path = format!("{prefix}coordinates");
    let coords = geometry
        .get("coordinates")
        .ok_or_else(|| err(&path, "missing"))?;
    position(coords, &path)
}

/// One polygon: the exterior ring first, then the holes; each ring closed (first = last) with
/// at least 4 positions.
pub type PolygonRings = Vec<Vec<Position>>;

/// A Polygon, a MultiPolygon, or a Feature whose geometry is one of those, as a list of
/// polygons. Ring orientation and self-intersection are not checked (RFC 7946 asks parsers not
/// to reject on winding order).
pub fn polygons(v: &Value) -> Result<Vec<PolygonRings>, GeoJsonError> {
    if geojson_type(v, "")? == "Feature" {
        let geometry = v.get("geometry").filter(|g| !g.is_null()).ok_or_else(|| {
            err(
                "geometry",
                "a Feature needs a Polygon or MultiPolygon geometry",
            )
        })?;
        geometry_polygons(geometry, "geometry.")
    } else {
        geometry_polygons(v, "")
    }
}

/// The `type` member of a GeoJSON object; `prefix` is the JSON path of `v` ("" or "geometry.").
fn geojson_type<'a>(v: &'a Value, prefix: &str) -> Result<&'a str, GeoJsonError> {
    let obj = v.as_object().ok_or_else(|| {
        let at = if prefix.is_empty() {
            "$"
        } else {
            prefix.trim_end_matches('.')
        };
        err(
            at,
            format!("expected a GeoJSON object, got {}", json_kind(v)),
        )
    })?;
    match obj.get("type") {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(err(
            &format!("{prefix}type"),
            format!("expected a string, got {}", json_kind(other)),
        )),
        None => Err(err(&format!("{prefix}type"), "missing")),
    }
}

fn geometry_polygons(g: &Value, prefix: &str) -> Result<Vec<PolygonRings>, GeoJsonError> {
    let kind = geojson_type(g, prefix)?;
    let path = format!("{prefix}coordinates");
    let coords = || g.get("coordinates").ok_or_else(|| err(&path, "missing"));
    match kind {
        "Polygon" => Ok(vec![polygon(coords()?, &path)?]),
        "MultiPolygon" => {
            let polys = array(coords()?, &path)?;
            if polys.is_empty() {
                return Err(err(&path, "a MultiPolygon needs at least one polygon"));
            }
            polys
                .iter()
                .enumerate()
                .map(|(i, p)| polygon(p, &format!("{path}[{i}]")))
                .collect()
        }
        other => Err(err(
            &format!("{prefix}type"),
            format!(
                "'{}' is not supported; expected Polygon, MultiPolygon or a Feature with one of them",
                clip(other)
            ),
        )),
    }
}

fn polygon(v: &Value, path: &str) -> Result<PolygonRings, GeoJsonError> {
    let rings = array(v, path)?;
    if rings.is_empty() {
        return Err(err(path, "a polygon needs an exterior ring"));
    }
    rings
        .iter()
        .enumerate()
        .map(|(i, r)| ring(r, &format!("{path}[{i}]")))
        .collect()
}

fn ring(v: &Value, path: &str) -> Result<Vec<Position>, GeoJsonError> {
    let positions = array(v, path)?;
    if positions.len() < 4 {
        return Err(err(
            path,
            format!(
                "a linear ring needs at least 4 positions (first = last), got {}",
                positions.len()
            ),
        ));
    }
    let ring: Vec<Position> = positions
        .iter()
        .enumerate()
        .map(|(i, p)| position(p, &format!("{path}[{i}]")))
        .collect::<Result<_, _>>()?;
    if ring.first() != ring.last() {
        return Err(err(
            path,
            "ring is not closed: the last position must equal the first",
        ));
    }
    Ok(ring)
}

/// `[lon, lat]` or `[lon, lat, alt]`; the longitude is checked first.
fn position(v: &Value, path: &str) -> Result<Position, GeoJsonError> {
    let parts = array(v, path)?;
    if !(2..=3).contains(&parts.len()) {
        return Err(err(
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
            err(
                &format!("{path}[{i}]"),
                format!("expected a number, got {}", json_kind(part)),
            )
        })?;
    }
    let [lon, lat, _] = numbers;
    let out_of_range = |e: PositionError| {
        let axis = e.axis();
        let value = if axis == Axis::Lon { lon } else { lat };
        err(
            path,
            format!(
                "{} {value} lies outside -{limit}..{limit}",
                axis.word(),
                limit = axis.limit()
            ),
        )
    };
    Axis::Lon.check(lon).map_err(out_of_range)?;
    Position::new(lat, lon).map_err(out_of_range)
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, GeoJsonError> {
    v.as_array()
        .ok_or_else(|| err(path, format!("expected an array, got {}", json_kind(v))))
}

/// Long names are shortened in messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
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
    fn feature_collections_give_properties_and_geometry() {
        let fc = r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","geometry":{"type":"Point","coordinates":[7.46,51.51]},"properties":{"a":1}},
          {"type":"Feature","geometry":null,"properties":null}]}"#;
        let f = feature_collection(fc).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].index, 0);
        assert_eq!(f[0].properties.as_ref().unwrap()["a"], 1);
        let p = point(f[0].geometry.as_ref().unwrap(), "geometry.").unwrap();
        assert_eq!((p.lat(), p.lon()), (51.51, 7.46));
        assert_eq!((&f[1].properties, &f[1].geometry), (&None, &None));
    }

    #[test]
    fn feature_collection_errors_name_the_path() {
        let cases = [
            ("{", "$: not valid JSON"),
            (
                r#"{"type":"Feature"}"#,
                "type: expected a GeoJSON FeatureCollection",
            ),
            (
                r#"{"type":"FeatureCollection"}"#,
                "features: a FeatureCollection needs 'features'",
            ),
            (
                r#"{"type":"FeatureCollection","features":{}}"#,
                "features: expected an array, got an object",
            ),
            (
                r#"{"type":"FeatureCollection","features":[1]}"#,
                "features[0]: expected a Feature object, got a number",
            ),
            (r#"[]"#, "$: expected a GeoJSON object, got an array"),
        ];
        for (text, expected) in cases {
            let e = feature_collection(text).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{text}: got '{e}'");
        }
    }

    #[test]
    fn point_errors_name_the_path() {
        let cases = [
            (
                json!({"type": "LineString", "coordinates": []}),
                "geometry.type: expected a Point geometry, got 'LineString'",
            ),
            (json!({"type": "Point"}), "geometry.coordinates: missing"),
            (
                json!({"type": "Point", "coordinates": [7]}),
                "geometry.coordinates: a position is [lon, lat]",
            ),
            (
                json!({"type": "Point", "coordinates": [7, "51"]}),
                "geometry.coordinates[1]: expected a number, got a string",
            ),
            (
                json!({"type": "Point", "coordinates": [7, 95]}),
                "geometry.coordinates: latitude 95 lies outside -90..90",
            ),
            (
                json!({"type": "Point", "coordinates": [181, 95]}),
                "geometry.coordinates: longitude 181 lies outside -180..180",
            ),
        ];
        for (g, expected) in cases {
            let e = point(&g, "geometry.").unwrap_err().to_string();
            assert!(e.starts_with(expected), "{g}: got '{e}'");
        }
        let p = point(&json!({"type": "Point", "coordinates": [7, 51, 120]}), "").unwrap();
        assert_eq!((p.lat(), p.lon()), (51.0, 7.0));
    }

    #[test]
    fn polygons_multipolygons_and_features() {
        let poly = json!({"type": "Polygon", "coordinates": [square(7.0, 51.0, 8.0, 52.0), square(7.4, 51.4, 7.6, 51.6)]});
        let p = polygons(&poly).unwrap();
        assert_eq!((p.len(), p[0].len(), p[0][0].len()), (1, 2, 5));
        assert_eq!(p[0][0][1], Position::new(51.0, 8.0).unwrap());
        let multi = json!({"type": "MultiPolygon", "coordinates": [[square(7.0, 51.0, 7.1, 51.1)], [square(8.0, 52.0, 8.1, 52.1)]]});
        assert_eq!(polygons(&multi).unwrap().len(), 2);
        let feature = json!({"type": "Feature", "properties": {}, "geometry": multi});
        assert_eq!(polygons(&feature).unwrap(), polygons(&multi).unwrap());
    }
}
