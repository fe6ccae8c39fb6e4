//! Geo selection for every list endpoint that returns located things, in metres (geodesic).
//!
//! Three pieces, one module each:
//! * [`params`]: [`parse_geo_query`] turns query parameters (`bbox`, `lat`+`lon`+`radius`,
//!   `lat`+`lon`+`nearest`) into a [`GeoQuery`] (parse at the edge; bad input is a 400 naming the
//!   parameter);
//! * [`geojson`]: [`polygon_body`] / [`parse_polygon`] turn a GeoJSON Polygon/MultiPolygon body
//!   into a [`GeoQuery::Polygon`], through the one GeoJSON reader in `stadtpuls_gateways`;
//! * [`index`]: [`GeoIndex`] answers a [`GeoQuery`] from an immutable R-tree rebuilt when the
//!   registry changes.
//!
//! [`distance_m`] is the one distance function: geodesic metres on the WGS84 ellipsoid (Karney).
//!
//! Invariants: distances are never computed in degrees; the R-tree (degree space) only narrows the
//! candidates with an envelope proven to contain every point of the geodesic circle, and the exact
//! geodesic distance decides. Coordinates are `(lat, lon)` in function arguments and `[lon, lat]`
//! (x, y) inside the tree and in GeoJSON. Every coordinate range check is
//! `stadtpuls_gateways::Position`'s.

pub mod geojson;
pub mod index;
pub mod params;

pub use geojson::{parse_polygon, polygon_body, MAX_POLYGON_POSITIONS};
pub use index::{GeoIndex, GeoQuery, Hit};
pub use params::{parse_geo_query, position, MAX_NEAREST, MAX_RADIUS_M};

use ::geo::{Distance, Geodesic, Point};

/// Geodesic distance in metres (WGS84 ellipsoid, Karney via `geo::Geodesic`).
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    Geodesic::distance(Point::new(lon1, lat1), Point::new(lon2, lat2))
}

/// Distances as the API reports them: metres, to the centimetre.
pub fn round_m(m: f64) -> f64 {
    (m * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::index::tests::{DORTMUND_HBF, PHOENIX_SEE};
    use super::*;

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
}
