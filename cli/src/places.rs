//! `stadtpuls places import FILE`: parking sites, buildings and rooms from GeoJSON or CSV.
//!
//! GeoJSON: features with a `place_type` property (`parking_site`, `building`, `room`); other
//! features (devices) are skipped, so one registry file can hold both. Parking sites carry the
//! ParkAPI v3 static fields `uid, name, type, purpose, capacity`, optional `address,
//! operator_name, opening_hours`; their geometry is a Point, or a Polygon/MultiPolygon outline
//! with the site's point in `lat`/`lon` properties. Buildings: `id, name`, optional Point and
//! `address`. Rooms: `building_id, id, name`, optional `floor, usage`.
//! CSV: one row per place with a `place_type` column and the same field names (`id` is the uid of
//! a parking site; `lat`/`lon` columns give the point).

use crate::registry;
use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use serde_json::{Map, Value};
use stadtpuls_gateways::{geojson, Position};
use stadtpuls_store::{Building, ParkingSite, Room};
use std::path::Path;

/// Everything a places file holds.
#[derive(Debug, Default, PartialEq)]
pub struct Places {
    pub sites: Vec<ParkingSite>,
    pub buildings: Vec<Building>,
    pub rooms: Vec<Room>,
}

/// One place as read: where it came from (for errors), its properties, its geometry.
type Record = (String, Map<String, Value>, Option<Value>);

/// Reads and validates a places file; errors name the record and field.
pub fn read_file(path: &Path) -> anyhow::Result<Places> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

/// GeoJSON when the text starts with `{`, CSV otherwise.
pub fn parse(text: &str) -> anyhow::Result<Places> {
    let records: Vec<Record> = if text.trim_start().starts_with('{') {
        registry::features(text)?
            .into_iter()
            .filter(registry::is_place)
            .map(|f| {
                // A place has properties: `is_place` found `place_type` in them.
                let props = f.properties.unwrap_or_default();
                (format!("feature {}", f.index), props, f.geometry)
            })
            .collect()
    } else {
        csv_records(text)?
    };
    let mut places = Places::default();
    for (what, props, geometry) in records {
        add(&mut places, &props, geometry).with_context(|| what.clone())?;
    }
    Ok(places)
}

fn csv_records(text: &str) -> anyhow::Result<Vec<Record>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().context("reading the CSV header")?.clone();
    if !headers.iter().any(|h| h == "place_type") {
        bail!("CSV header has no place_type column");
    }
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("line {line}"))?;
        let mut props = Map::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            if !v.is_empty() {
                props.insert(h.to_string(), Value::String(v.to_string()));
            }
        }
        // `id` of a parking site row is its uid, whatever the column order.
        if props.get("place_type").and_then(Value::as_str) == Some("parking_site")
            && !props.contains_key("uid")
        {
            if let Some(id) = props.remove("id") {
                props.insert("uid".into(), id);
            }
        }
        out.push((format!("line {line}"), props, None));
    }
    Ok(out)
}

fn text<'a>(props: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    props
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn required(props: &Map<String, Value>, key: &str) -> anyhow::Result<String> {
    text(props, key)
        .map(String::from)
        .ok_or_else(|| anyhow!("property {key} is missing"))
}

/// A number given as JSON number or numeric string (CSV).
fn number(props: &Map<String, Value>, key: &str) -> anyhow::Result<Option<f64>> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| anyhow!("{key} '{s}' is not a number")),
        Some(other) => bail!("{key} must be a number, not {other}"),
    }
}

/// The point of a place: a Point geometry, or `lat`/`lon` properties.
fn point(props: &Map<String, Value>, geometry: Option<&Value>) -> anyhow::Result<Option<Position>> {
    if let Some(g) = geometry.filter(|g| geojson::type_of(g) == Some("Point")) {
        return Ok(Some(geojson::point(g, "geometry.")?));
    }
    match (number(props, "lat")?, number(props, "lon")?) {
        (Some(lat), Some(lon)) => Ok(Some(registry::position(lat, lon)?)),
        (None, None) => Ok(None),
        _ => bail!("give both lat and lon or neither"),
    }
}

fn add(
    places: &mut Places,
    props: &Map<String, Value>,
    geometry: Option<Value>,
) -> anyhow::Result<()> {
    match text(props, "place_type") {
        Some("parking_site") => {
            let outline = match geometry {
                Some(g) if matches!(geojson::type_of(&g), Some("Polygon" | "MultiPolygon")) => {
                    // The same reader (and rules) as the API's outlines and search areas.
                    geojson::polygons(&g).map_err(|e| anyhow!("geometry.{e}"))?;
                    Some(g)
                }
                Some(g) if geojson::type_of(&g) == Some("Point") => {
                    return add_site(places, props, Some(&g), None);
                }
                Some(g) => bail!(
                    "a parking site's geometry must be a Point, Polygon or MultiPolygon, not {}",
                    g.get("type").unwrap_or(&Value::Null)
                ),
                None => None,
            };
            add_site(places, props, None, outline)
        }
        Some("building") => {
            let p = point(props, geometry.as_ref())?;
            places.buildings.push(Building {
                id: required(props, "id")?,
                name: required(props, "name")?,
                lat: p.map(Position::lat),
                lon: p.map(Position::lon),
                address: text(props, "address").map(String::from),
            });
            Ok(())
        }
        Some("room") => {
            places.rooms.push(Room {
                building_id: required(props, "building_id")?,
                id: required(props, "id")?,
                name: required(props, "name")?,
                floor: text(props, "floor").map(String::from),
                usage: text(props, "usage").map(String::from),
            });
            Ok(())
        }
        Some(other) => bail!("place_type '{other}' is not one of parking_site, building, room"),
        None => bail!("property place_type is missing"),
    }
}

fn add_site(
    places: &mut Places,
    props: &Map<String, Value>,
    point_geometry: Option<&Value>,
    outline: Option<Value>,
) -> anyhow::Result<()> {
    let at = point(props, point_geometry)?
        .ok_or_else(|| anyhow!("a parking site needs a Point geometry or lat/lon properties"))?;
    let capacity =
        number(props, "capacity")?.ok_or_else(|| anyhow!("property capacity is missing"))?;
    if capacity.fract() != 0.0 || !(0.0..=1_000_000.0).contains(&capacity) {
        bail!("capacity {capacity} is not a whole number of spaces");
    }
    let site = ParkingSite {
        uid: required(props, "uid")?,
        name: required(props, "name")?,
        site_type: required(props, "type")?,
        purpose: text(props, "purpose").unwrap_or("CAR").to_string(),
        capacity: capacity as i32,
        lat: at.lat(),
        lon: at.lon(),
        geometry: outline,
        address: text(props, "address").map(String::from),
        operator_name: text(props, "operator_name").map(String::from),
        opening_hours: text(props, "opening_hours").map(String::from),
        static_data_updated_at: Utc::now(),
    };
    site.validate()?;
    places.sites.push(site);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GJ: &str = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","geometry":{"type":"Point","coordinates":[7.4589,51.5186]},
       "properties":{"place_type":"parking_site","uid":"hbf","name":"Parkhaus Hbf","type":"CAR_PARK","capacity":420,"opening_hours":"24/7"}},
      {"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[7.46,51.51],[7.47,51.51],[7.47,51.52],[7.46,51.51]]]},
       "properties":{"place_type":"parking_site","uid":"kamp","name":"Kampstraße","type":"ON_STREET","purpose":"CAR","capacity":"31","lat":51.5136,"lon":7.465}},
      {"type":"Feature","geometry":{"type":"Point","coordinates":[7.4653,51.5139]},"properties":{"place_type":"building","id":"rathaus","name":"Rathaus"}},
      {"type":"Feature","geometry":null,"properties":{"place_type":"room","building_id":"rathaus","id":"r101","name":"Raum 101","floor":"1","usage":"office"}},
      {"type":"Feature","geometry":{"type":"Point","coordinates":[7.4,51.5]},"properties":{"dev_eui":"0102030405060708","kind":"parking_bay"}}]}"#;

    #[test]
    fn geojson_places_are_read_and_devices_skipped() {
        let p = parse(GJ).unwrap();
        assert_eq!(p.sites.len(), 2);
        assert_eq!(
            (
                p.sites[0].uid.as_str(),
                p.sites[0].capacity,
                p.sites[0].lat,
                p.sites[0].lon
            ),
            ("hbf", 420, 51.5186, 7.4589)
        );
        assert_eq!(p.sites[0].purpose, "CAR", "default purpose");
        assert_eq!(p.sites[0].opening_hours.as_deref(), Some("24/7"));
        assert_eq!(p.sites[1].geometry.as_ref().unwrap()["type"], "Polygon");
        assert_eq!((p.sites[1].lat, p.sites[1].capacity), (51.5136, 31));
        assert_eq!(
            p.buildings,
            vec![Building {
                id: "rathaus".into(),
                name: "Rathaus".into(),
                lat: Some(51.5139),
                lon: Some(7.4653),
                address: None
            }]
        );
        assert_eq!(p.rooms[0].building_id, "rathaus");
        assert_eq!(p.rooms[0].floor.as_deref(), Some("1"));
        // The device feature is for `devices import`, which in turn skips the places.
        let devices = registry::parse(GJ).unwrap();
        assert_eq!(devices.len(), 1);
    }

    #[test]
    fn csv_places() {
        let csv = "place_type,id,name,type,capacity,lat,lon,building_id,floor\n\
                   parking_site,hbf,Parkhaus Hbf,CAR_PARK,420,51.5186,7.4589,,\n\
                   building,rathaus,Rathaus,,,51.5139,7.4653,,\n\
                   room,r101,Raum 101,,,,,rathaus,1\n";
        let p = parse(csv).unwrap();
        assert_eq!(p.sites[0].uid, "hbf");
        assert_eq!(p.sites[0].capacity, 420);
        assert_eq!(p.buildings[0].lat, Some(51.5139));
        assert_eq!(
            (p.rooms[0].building_id.as_str(), p.rooms[0].id.as_str()),
            ("rathaus", "r101")
        );
    }

    #[test]
    fn bad_places_name_the_problem() {
        let site = |extra: &str| {
            format!(
                r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","geometry":{{"type":"Point","coordinates":[7.4,51.5]}},"properties":{{"place_type":"parking_site","uid":"x","name":"X",{extra}}}}}]}}"#
            )
        };
        let cases = [
            (site(r#""type":"CAR_PARK""#), "capacity"),
            (site(r#""type":"GARAGE","capacity":3"#), "GARAGE"),
            (
                site(r#""type":"CAR_PARK","capacity":3,"purpose":"BOAT""#),
                "BOAT",
            ),
            (site(r#""type":"CAR_PARK","capacity":-3"#), "capacity"),
            (site(r#""type":"CAR_PARK","capacity":2.5"#), "whole number"),
            ("place_type,id,name\ncastle,x,X\n".to_string(), "castle"),
            ("place_type,id\nroom,r1\n".to_string(), "building_id"),
            ("id,name\nx,y\n".to_string(), "place_type"),
            (
                "place_type,id,name,lat,lon\nbuilding,b,B,95,7\n".to_string(),
                "outside WGS84",
            ),
            (
                r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[7.46,51.51],[7.47,51.51],[7.47,51.52],[7.46,51.52]]]},"properties":{"place_type":"parking_site","uid":"x","name":"X","type":"CAR_PARK","capacity":3,"lat":51.5,"lon":7.4}}]}"#.to_string(),
                "feature 0: geometry.coordinates[0]: ring is not closed",
            ),
            (
                r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[7.4,95]},"properties":{"place_type":"building","id":"b","name":"B"}}]}"#.to_string(),
                "feature 0: geometry.coordinates: latitude 95 lies outside -90..90",
            ),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains(needle), "{text}: '{err}' lacks '{needle}'");
        }
    }
}
