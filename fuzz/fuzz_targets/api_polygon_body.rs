//! The GeoJSON body of `POST …/search` (`geo::polygon_body`).
#![no_main]

use geo::CoordsIter;
use libfuzzer_sys::fuzz_target;
use stadtpuls_api::geo::{polygon_body, GeoQuery, MAX_POLYGON_POSITIONS};

fuzz_target!(|data: &[u8]| match polygon_body(data) {
    Ok(GeoQuery::Polygon(mp)) => {
        assert!(mp.coords_count() <= MAX_POLYGON_POSITIONS);
        for c in mp.coords_iter() {
            assert!(
                (-180.0..=180.0).contains(&c.x) && (-90.0..=90.0).contains(&c.y),
                "{c:?}"
            );
        }
    }
    Ok(other) => panic!("a body gave {other:?}"),
    Err(e) => stadtpuls_fuzz::check_client_error(e),
});
