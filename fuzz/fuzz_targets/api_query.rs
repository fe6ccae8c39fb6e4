//! API query-string parsing: every `Params` accessor, paging, aggregates, geo parameters,
//! exports, `dev_eui` and `status`. Input: a raw query string (what follows `?`).
#![no_main]

use chrono::TimeDelta;
use libfuzzer_sys::fuzz_target;
use stadtpuls_api::aggregates::{parse_aggregate_query, MAX_WINDOW_DAYS};
use stadtpuls_api::exports::parse_export;
use stadtpuls_api::geo::{parse_geo_query, GeoQuery, MAX_NEAREST, MAX_RADIUS_M};
use stadtpuls_api::paging::parse_page;
use stadtpuls_api::params::{self, Params};
use stadtpuls_fuzz::{check_client_error, now};
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    // As axum's `Query<HashMap<String, String>>` builds it: the last of repeated keys wins.
    let map: HashMap<String, String> = form_urlencoded::parse(data).into_owned().collect();
    let fresh = || Params::new(map.clone());

    let mut p = fresh();
    let _ = p.string("sort");
    ok(p.quantity());
    ok(p.time("from"));
    if let Some(n) = ok(p.limit(100, 1000)) {
        assert!((1..=1000).contains(&n));
    }
    if let Some(Some(b)) = ok(p.bbox()) {
        check_bbox(&b);
    }
    ok(p.cursor());
    ok(p.parsed::<f64>("value", "a number"));
    ok(p.finish());

    if let Some(page) = ok(parse_page(&mut fresh(), 10_000)) {
        assert!((1..=10_000).contains(&page.limit));
    }
    if let Some(q) = ok(parse_aggregate_query(&mut fresh(), now(), MAX_WINDOW_DAYS)) {
        assert!(q.from < q.to && q.to - q.from <= TimeDelta::days(MAX_WINDOW_DAYS.into()));
        assert!(!q.aggs.is_empty());
    }
    if let Some(g) = ok(parse_geo_query(&mut fresh())) {
        check_geo(&g);
    }
    if let Some(e) = ok(parse_export(std::str::from_utf8(data).ok(), now(), MAX_WINDOW_DAYS)) {
        assert!(e.from < e.to && e.to - e.from <= TimeDelta::days(MAX_WINDOW_DAYS.into()));
        assert!(!e.quantities.is_empty());
        check_geo(&e.geo);
    }
    for v in map.values() {
        ok(params::dev_eui(v));
        ok(stadtpuls_api::buildings::parse_status(v));
    }
});

/// The value, or `None` after checking that the error is a 4xx.
fn ok<T>(r: Result<T, stadtpuls_api::error::ApiError>) -> Option<T> {
    r.map_err(check_client_error).ok()
}

fn check_bbox(b: &stadtpuls_store::BBox) {
    let lon = -180.0..=180.0;
    let lat = -90.0..=90.0;
    assert!(
        lon.contains(&b.min_lon) && lon.contains(&b.max_lon),
        "{b:?}"
    );
    assert!(
        lat.contains(&b.min_lat) && lat.contains(&b.max_lat),
        "{b:?}"
    );
    assert!(b.min_lon <= b.max_lon && b.min_lat <= b.max_lat, "{b:?}");
}

fn check_geo(g: &GeoQuery) {
    let position =
        |lat: f64, lon: f64| (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
    match g {
        GeoQuery::BBox(b) => check_bbox(b),
        GeoQuery::Radius { lat, lon, radius_m } => {
            assert!(
                position(*lat, *lon) && *radius_m > 0.0 && *radius_m <= MAX_RADIUS_M,
                "{g:?}"
            );
        }
        GeoQuery::Nearest { lat, lon, n } => {
            assert!(
                position(*lat, *lon) && (1..=MAX_NEAREST).contains(n),
                "{g:?}"
            );
        }
        GeoQuery::All | GeoQuery::Polygon(_) => {}
    }
}
