//! `stadtpuls devices import FILE`: the device registry from GeoJSON or CSV.
//!
//! GeoJSON: a FeatureCollection of Point features whose properties carry `dev_eui`, `name`,
//! `kind`, `codec`, `visibility`, optional `site_id`, `building_id`, `room_id`. CSV: a header
//! row with `dev_eui,name,lat,lon,kind,codec,visibility` (+ optional `site_id,building_id,room_id`).
//! Features that describe places (a `place_type` property) are skipped here: `places import`
//! reads them from the same file.

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use stadtpuls_gateways::codecs::Codec;
use stadtpuls_gateways::geojson::{self, Feature};
use stadtpuls_gateways::{DevEui, DeviceKind, Position, Visibility};
use stadtpuls_store::NewDevice;
use std::collections::HashSet;
use std::path::Path;

/// Reads and validates a registry file; errors name the record and field.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<NewDevice>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let devices = parse(&text).with_context(|| format!("in {}", path.display()))?;
    let mut seen = HashSet::new();
    for d in &devices {
        if !seen.insert(d.dev_eui) {
            bail!("DevEUI {} appears more than once", d.dev_eui);
        }
    }
    Ok(devices)
}

/// GeoJSON when the text starts with `{`, CSV otherwise.
pub fn parse(text: &str) -> anyhow::Result<Vec<NewDevice>> {
    if text.trim_start().starts_with('{') {
        parse_geojson(text)
    } else {
        parse_csv(text)
    }
}

struct Fields<'a> {
    dev_eui: &'a str,
    name: Option<&'a str>,
    kind: Option<&'a str>,
    codec: Option<&'a str>,
    visibility: Option<&'a str>,
    location: Option<Position>,
    site_id: Option<&'a str>,
    building_id: Option<&'a str>,
    room_id: Option<&'a str>,
}

fn build(f: Fields<'_>) -> anyhow::Result<NewDevice> {
    let dev_eui = DevEui::parse_hex(f.dev_eui.trim())
        .map_err(|_| anyhow!("dev_eui '{}' is not 16 hex digits", f.dev_eui))?;
    let kind = match f.kind.map(str::trim).filter(|s| !s.is_empty()) {
        Some(k) => k.parse::<DeviceKind>()?,
        None => DeviceKind::Other,
    };
    let codec = match f.codec.map(str::trim).filter(|s| !s.is_empty()) {
        Some(c) => {
            c.parse::<Codec>().map_err(|e| anyhow!("codec: {e}"))?;
            Some(c.to_string())
        }
        None => None,
    };
    let visibility = match f.visibility.map(str::trim).filter(|s| !s.is_empty()) {
        Some(v) => v.parse::<Visibility>()?,
        None => Visibility::Private,
    };
    let opt = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
    Ok(NewDevice {
        dev_eui,
        name: opt(f.name),
        kind,
        codec,
        visibility,
        location: f.location,
        site_id: opt(f.site_id),
        building_id: opt(f.building_id),
        room_id: opt(f.room_id),
    })
}

/// The features of a GeoJSON FeatureCollection (the shared reader; errors name the JSON path).
pub fn features(text: &str) -> anyhow::Result<Vec<Feature>> {
    Ok(geojson::feature_collection(text)?)
}

/// True for registry features that describe a place rather than a device.
pub fn is_place(feature: &Feature) -> bool {
    feature
        .properties
        .as_ref()
        .is_some_and(|p| p.contains_key("place_type"))
}

/// A position read from numbers (CSV columns, `lat`/`lon` properties).
pub fn position(lat: f64, lon: f64) -> anyhow::Result<Position> {
    Position::new(lat, lon).map_err(|_| anyhow!("position lat={lat} lon={lon} is outside WGS84"))
}

fn parse_geojson(text: &str) -> anyhow::Result<Vec<NewDevice>> {
    features(text)?
        .iter()
        .filter(|f| !is_place(f))
        .map(|f| {
            let i = f.index;
            let props = f
                .properties
                .as_ref()
                .ok_or_else(|| anyhow!("feature {i}: no properties"))?;
            let s = |k: &str| props.get(k).and_then(Value::as_str);
            let location = f
                .geometry
                .as_ref()
                .map(|g| geojson::point(g, "geometry."))
                .transpose()
                .with_context(|| format!("feature {i}"))?;
            let dev_eui =
                s("dev_eui").ok_or_else(|| anyhow!("feature {i}: property dev_eui missing"))?;
            build(Fields {
                dev_eui,
                name: s("name"),
                kind: s("kind"),
                codec: s("codec"),
                visibility: s("visibility"),
                location,
                site_id: s("site_id"),
                building_id: s("building_id"),
                room_id: s("room_id"),
            })
            .with_context(|| format!("feature {i} ({dev_eui})"))
        })
        .collect()
}

fn parse_csv(text: &str) -> anyhow::Result<Vec<NewDevice>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().context("reading the CSV header")?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let eui_col = col("dev_eui").ok_or_else(|| anyhow!("CSV header has no dev_eui column"))?;
    let (lat_col, lon_col) = (col("lat"), col("lon"));
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("line {line}"))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).filter(|s| !s.is_empty());
        let num = |c: Option<usize>, what: &str| -> anyhow::Result<Option<f64>> {
            get(c)
                .map(|s| {
                    s.parse::<f64>()
                        .map_err(|_| anyhow!("line {line}: {what} '{s}' is not a number"))
                })
                .transpose()
        };
        let location = match (num(lat_col, "lat")?, num(lon_col, "lon")?) {
            (Some(lat), Some(lon)) => {
                Some(position(lat, lon).with_context(|| format!("line {line}"))?)
            }
            (None, None) => None,
            _ => bail!("line {line}: give both lat and lon or neither"),
        };
        out.push(
            build(Fields {
                dev_eui: rec.get(eui_col).unwrap_or(""),
                name: get(col("name")),
                kind: get(col("kind")),
                codec: get(col("codec")),
                visibility: get(col("visibility")),
                location,
                site_id: get(col("site_id")),
                building_id: get(col("building_id")),
                room_id: get(col("room_id")),
            })
            .with_context(|| format!("line {line}"))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn geojson_and_csv_give_the_same_devices() {
        let gj = r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","geometry":{"type":"Point","coordinates":[7.4653,51.5136]},
           "properties":{"dev_eui":"70B3D57ED0000001","name":"Bay 1","kind":"parking_bay","codec":"bosch_parking","visibility":"public","site_id":"hbf"}},
          {"type":"Feature","geometry":null,"properties":{"dev_eui":"70b3d57ed0000002","kind":"room_climate","room_id":"r101"}}]}"#;
        let csv = "dev_eui,name,lat,lon,kind,codec,visibility,site_id,room_id\n\
                   70B3D57ED0000001,Bay 1,51.5136,7.4653,parking_bay,bosch_parking,public,hbf,\n\
                   70b3d57ed0000002,,,,room_climate,,,,r101\n";
        let a = parse(gj).unwrap();
        let b = parse(csv).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].dev_eui.to_string(), "70b3d57ed0000001");
        assert_eq!(a[0].location, Some(Position::new(51.5136, 7.4653).unwrap()));
        assert_eq!(a[0].kind, DeviceKind::ParkingBay);
        assert_eq!(a[0].visibility, Visibility::Public);
        assert_eq!(a[0].site_id.as_deref(), Some("hbf"));
        assert_eq!(a[1].visibility, Visibility::Private, "private by default");
        assert_eq!(a[1].location, None);
        assert_eq!(a[1].room_id.as_deref(), Some("r101"));
    }

    #[test]
    fn bad_records_name_the_problem() {
        let cases = [
            ("dev_eui,kind\n0102,other\n", "line 2"),
            ("dev_eui,kind\n0102030405060708,carpark\n", "carpark"),
            ("dev_eui,codec\n0102030405060708,zip\n", "codec"),
            ("dev_eui,lat,lon\n0102030405060708,95,7\n", "outside WGS84"),
            (
                "dev_eui,lat,lon\n0102030405060708,51,\n",
                "both lat and lon",
            ),
            ("dev_eui,visibility\n0102030405060708,secret\n", "secret"),
            (
                r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"LineString","coordinates":[]},"properties":{"dev_eui":"0102030405060708"}}]}"#,
                "Point",
            ),
            ("name\nx\n", "dev_eui"),
            (
                r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[181,51]},"properties":{"dev_eui":"0102030405060708"}}]}"#,
                "feature 0: geometry.coordinates: longitude 181 lies outside -180..180",
            ),
            (
                r#"{"type":"Feature"}"#,
                "type: expected a GeoJSON FeatureCollection",
            ),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(needle), "{text:?}: '{err}' lacks '{needle}'");
        }
    }
}
