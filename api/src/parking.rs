//! Parking endpoints (ParkAPI v3 shapes): sites with realtime free capacity, and spots (bays).
//!
//! Public, no key. Sites come from `parking_sites`; their realtime fields from the site's public
//! `parking_counter`/`parking_bay` devices by the rules of [`stadtpuls_store::parking`]. A site
//! without realtime data has `has_realtime_data: false` and *no* `realtime_*` keys at all (as
//! ParkAPI serves it), rather than nulls. "Now" is always `st.clock.now()`.
//!
//! Site lists (`/v1/parking/sites`, `…/search`) answer from a [`ParkingCache`]: the sites, their
//! realtime signals and a [`GeoIndex`] over them, rebuilt in the background when older than
//! `http.parking_cache_ms` (default 1 s; sensors report every few minutes) while requests keep
//! getting the previous one. Computing the signals reads every bay's latest value, which at a
//! city app's request rate would cost more than the machine has. Spots and single sites still
//! query per request.

use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query};
use crate::geo::round_m;
use crate::geo::{GeoIndex, GeoQuery, Hit};
use crate::paging::{parse_page, List};
use crate::params::clip;
use crate::params::utc;
use crate::params::Params;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use stadtpuls_store::parking::{self, ParkingWindows, SiteSignals};
use stadtpuls_store::ParkingSite as StoredSite;
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type Q = Query;

/// The parking routes (public, no key).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sites))
        .routes(routes!(sites_search))
        .routes(routes!(site))
        .routes(routes!(history))
        .routes(routes!(spots))
        .routes(routes!(spots_search))
}

fn windows(st: &AppState) -> ParkingWindows {
    let p = &st.settings.parking;
    ParkingWindows::from_minutes(
        p.stale_after_minutes,
        p.bay_fresh_minutes,
        p.counter_fresh_minutes,
    )
}

/// A parking site (ParkAPI v3). Without realtime data (`has_realtime_data: false`) the
/// `realtime_*` keys are absent, as are `address`, `operator_name` and `opening_hours` when
/// unknown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkingSite {
    pub uid: String,
    pub name: String,
    #[schema(example = "CAR")]
    pub purpose: String,
    #[serde(rename = "type")]
    #[schema(example = "CAR_PARK")]
    pub site_type: String,
    pub lat: f64,
    pub lon: f64,
    pub capacity: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_name: Option<String>,
    /// OSM `opening_hours` syntax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opening_hours: Option<String>,
    #[schema(format = DateTime)]
    pub static_data_updated_at: String,
    pub has_realtime_data: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_free_capacity: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_capacity: Option<i64>,
    /// `OPEN`, `CLOSED` or `UNKNOWN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_opening_status: Option<&'static str>,
    /// The newest measurement time used.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub realtime_data_updated_at: Option<String>,
    /// Geodesic distance in metres from `lat`/`lon` (radius and nearest queries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

impl ParkingSite {
    /// A site as a ParkAPI v3 item: static fields, and realtime fields when there are any.
    fn of(
        site: &StoredSite,
        signals: &SiteSignals,
        now: DateTime<Utc>,
        w: &ParkingWindows,
    ) -> Self {
        let realtime = parking::site_realtime(
            site.capacity,
            site.opening_hours.as_deref(),
            signals,
            now,
            w,
        );
        ParkingSite {
            uid: site.uid.clone(),
            name: site.name.clone(),
            purpose: site.purpose.clone(),
            site_type: site.site_type.clone(),
            lat: site.lat,
            lon: site.lon,
            capacity: site.capacity,
            address: site.address.clone(),
            operator_name: site.operator_name.clone(),
            opening_hours: site.opening_hours.clone(),
            static_data_updated_at: utc(site.static_data_updated_at),
            has_realtime_data: realtime.is_some(),
            realtime_free_capacity: realtime.as_ref().map(|r| r.free_capacity),
            realtime_capacity: realtime.as_ref().map(|r| r.capacity),
            realtime_opening_status: realtime.as_ref().map(|r| r.opening_status.as_str()),
            realtime_data_updated_at: realtime.as_ref().map(|r| utc(r.updated_at)),
            distance_m: None,
        }
    }
}

/// A single parking spot (a bay sensor).
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkingSpot {
    /// The bay's DevEUI.
    pub uid: String,
    #[schema(required = true)]
    pub name: Option<String>,
    #[schema(required = true)]
    pub parking_site_uid: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// `AVAILABLE`, `TAKEN` or `UNKNOWN` (no fresh state).
    pub status: &'static str,
    #[schema(required = true, format = DateTime)]
    pub realtime_data_updated_at: Option<String>,
    /// Geodesic distance in metres from `lat`/`lon` (radius and nearest queries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

/// One bucket of a site's history: time-weighted mean numbers of free and occupied spaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryBucket {
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    #[schema(required = true)]
    pub free: Option<f64>,
    #[schema(required = true)]
    pub occupied: Option<f64>,
    /// Share of the bucket (× devices for bays) with a known state.
    #[schema(minimum = 0, maximum = 1)]
    pub coverage: f64,
}

/// A parking site's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkingHistory {
    pub uid: String,
    pub capacity: i32,
    /// `counter`, `bays` or `none`.
    pub source: &'static str,
    /// `15m`, `1h` or `1d`.
    pub bucket: &'static str,
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    pub items: Vec<HistoryBucket>,
}

/// `GET /v1/parking/sites?bbox=|lat=&lon=&radius=|lat=&lon=&nearest=`
#[utoipa::path(
    get,
    path = "/v1/parking/sites",
    operation_id = "parking_sites",
    tag = "parking",
    params(crate::openapi::GeoParams, crate::openapi::PageParams),
    responses(
        (status = 200, description = "OK", body = List<ParkingSite>),
        crate::openapi::BadRequest,
    ),
)]
pub async fn sites(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Result<Json<List<ParkingSite>>, ApiError> {
    let mut p = Params::new(q);
    let geo = crate::geo::parse_geo_query(&mut p)?;
    let page = parse_page(&mut p, st.settings.http.max_page_size)?;
    p.finish()?;
    let all = sites_for(&st, &geo).await?;
    Ok(Json(List::page(&st, &headers, &uri, all, page)))
}

/// `POST /v1/parking/sites/search` with a GeoJSON Polygon/MultiPolygon body.
#[utoipa::path(
    post,
    path = "/v1/parking/sites/search",
    operation_id = "parking_sites_search",
    tag = "parking",
    request_body(content = crate::openapi::PolygonBody, description = "GeoJSON Polygon or MultiPolygon", content_type = "application/json"),
    params(crate::openapi::PageParams),
    responses(
        (status = 200, description = "OK", body = List<ParkingSite>),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
    ),
)]
pub async fn sites_search(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
    JsonBody(body): JsonBody,
) -> Result<Json<List<ParkingSite>>, ApiError> {
    let mut p = Params::new(q);
    let page = parse_page(&mut p, st.settings.http.max_page_size)?;
    p.finish()?;
    let geo = crate::geo::polygon_body(&body)?;
    let all = sites_for(&st, &geo).await?;
    Ok(Json(List::page(&st, &headers, &uri, all, page)))
}

/// Sites, their realtime signals at `now`, and a geo index over them.
#[derive(Debug)]
pub struct ParkingSnapshot {
    taken: std::time::Instant,
    now: DateTime<Utc>,
    sites: HashMap<String, StoredSite>,
    signals: HashMap<String, SiteSignals>,
    index: GeoIndex<String>,
}

/// The shared snapshot behind the site lists; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ParkingCache {
    current: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<ParkingSnapshot>>>>,
    /// Held by whoever rebuilds, so that one request (or task) does it at a time.
    rebuilding: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A stale snapshot is still served while a newer one is built, up to this many `ttl`s old;
/// beyond that (or when the clock went backwards) the request waits for the rebuild.
const STALE_TTLS: u32 = 10;

impl ParkingCache {
    fn current(&self) -> Option<std::sync::Arc<ParkingSnapshot>> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    /// The snapshot. Younger than `ttl` (by wall clock and by `now`, so an injected clock that
    /// jumps also rebuilds it): as is. Older, up to [`STALE_TTLS`] × `ttl`: as is, while one
    /// background task builds the next, so no request waits for a rebuild. Missing or older:
    /// built by this request. `ttl` zero = always built by the request.
    async fn get(
        &self,
        st: &AppState,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<std::sync::Arc<ParkingSnapshot>, ApiError> {
        let age = |s: &ParkingSnapshot| {
            let by_clock = (now - s.now).to_std().ok()?;
            Some(by_clock.max(s.taken.elapsed()))
        };
        if let Some(s) = self.current() {
            match age(&s) {
                Some(a) if a < ttl => return Ok(s),
                Some(a) if a < ttl * STALE_TTLS => {
                    if let Ok(guard) = self.rebuilding.clone().try_lock_owned() {
                        let (cache, st) = (self.clone(), st.clone());
                        tokio::spawn(async move {
                            let _guard = guard;
                            let now = st.clock.now();
                            if let Err(e) = cache.rebuild(&st, now).await {
                                tracing::warn!(error = %e, "parking snapshot not rebuilt");
                            }
                        });
                    }
                    return Ok(s);
                }
                _ => {}
            }
        }
        let _guard = self.rebuilding.lock().await;
        // Someone else may have rebuilt it while this request waited.
        if let Some(s) = self.current() {
            if age(&s).is_some_and(|a| a < ttl) {
                return Ok(s);
            }
        }
        self.rebuild(st, now).await
    }

    async fn rebuild(
        &self,
        st: &AppState,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<ParkingSnapshot>, ApiError> {
        let w = windows(st);
        let sites = st.store.parking_sites().await?;
        let signals: HashMap<String, SiteSignals> = st
            .store
            .parking_signals(None, now, &w)
            .await?
            .into_iter()
            .map(|s| (s.site_uid.clone(), s))
            .collect();
        let index = GeoIndex::new(sites.iter().map(|s| (s.uid.clone(), s.lat, s.lon)));
        let snap = std::sync::Arc::new(ParkingSnapshot {
            taken: std::time::Instant::now(),
            now,
            sites: sites.into_iter().map(|s| (s.uid.clone(), s)).collect(),
            signals,
            index,
        });
        if let Ok(mut g) = self.current.write() {
            *g = Some(snap.clone());
        }
        Ok(snap)
    }
}

/// Every site the geo query selects, as ParkAPI items, in the query's order.
async fn sites_for(st: &AppState, geo: &GeoQuery) -> Result<Vec<ParkingSite>, ApiError> {
    let now = st.clock.now();
    let w = windows(st);
    let ttl = std::time::Duration::from_millis(st.settings.http.parking_cache_ms);
    let snap = st.parking.get(st, now, ttl).await?;
    let items: Vec<ParkingSite> = snap
        .index
        .query(geo)
        .iter()
        .filter_map(|hit| {
            let site = snap.sites.get(&hit.id)?;
            let none = SiteSignals::none(&site.uid);
            let s = snap.signals.get(&site.uid).unwrap_or(&none);
            let mut v = ParkingSite::of(site, s, now, &w);
            v.distance_m = hit.distance_m.map(round_m);
            Some(v)
        })
        .collect();
    Ok(items)
}

/// `GET /v1/parking/sites/{uid}`: one site, 404 when unknown.
#[utoipa::path(
    get,
    path = "/v1/parking/sites/{uid}",
    operation_id = "parking_site",
    tag = "parking",
    params(("uid" = String, Path, description = "Site uid")),
    responses(
        (status = 200, description = "OK", body = ParkingSite),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
    ),
)]
pub async fn site(
    State(st): State<AppState>,
    Path(uid): Path<String>,
    Query(q): Q,
) -> Result<Json<ParkingSite>, ApiError> {
    Params::new(q).finish()?;
    let now = st.clock.now();
    let w = windows(&st);
    let site = st
        .store
        .parking_site(&uid)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("parking site '{}'", clip(&uid))))?;
    let signals = st
        .store
        .parking_signals(Some(&uid), now, &w)
        .await?
        .into_iter()
        .next()
        .unwrap_or_else(|| SiteSignals::none(&uid));
    Ok(Json(ParkingSite::of(&site, &signals, now, &w)))
}

/// `GET /v1/parking/spots?site_uid=&bbox=|lat=&lon=&radius=|lat=&lon=&nearest=`: public bays
/// with a location, with their ParkAPI spot status. An unknown `site_uid` selects nothing.
#[utoipa::path(
    get,
    path = "/v1/parking/spots",
    operation_id = "parking_spots",
    tag = "parking",
    params(crate::openapi::SpotParams, crate::openapi::GeoParams, crate::openapi::PageParams),
    responses(
        (status = 200, description = "OK", body = List<ParkingSpot>),
        crate::openapi::BadRequest,
    ),
)]
pub async fn spots(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Result<Json<List<ParkingSpot>>, ApiError> {
    let mut p = Params::new(q);
    let site_uid = p.string("site_uid");
    let geo = crate::geo::parse_geo_query(&mut p)?;
    let page = parse_page(&mut p, st.settings.http.max_page_size)?;
    p.finish()?;
    let items = spots_for(&st, site_uid.as_deref(), &geo).await?;
    Ok(Json(List::page(&st, &headers, &uri, items, page)))
}

/// `POST /v1/parking/spots/search?site_uid=` with a GeoJSON Polygon/MultiPolygon body.
#[utoipa::path(
    post,
    path = "/v1/parking/spots/search",
    operation_id = "parking_spots_search",
    tag = "parking",
    request_body(
        content = crate::openapi::PolygonBody,
        description = "GeoJSON Polygon or MultiPolygon",
        content_type = "application/json"
    ),
    params(crate::openapi::SpotParams, crate::openapi::PageParams),
    responses(
        (status = 200, description = "OK", body = List<ParkingSpot>),
        crate::openapi::BadRequest,
        crate::openapi::TooLarge,
        crate::openapi::NotJson,
    ),
)]
pub async fn spots_search(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
    JsonBody(body): JsonBody,
) -> Result<Json<List<ParkingSpot>>, ApiError> {
    let mut p = Params::new(q);
    let site_uid = p.string("site_uid");
    let page = parse_page(&mut p, st.settings.http.max_page_size)?;
    p.finish()?;
    let geo = crate::geo::polygon_body(&body)?;
    let items = spots_for(&st, site_uid.as_deref(), &geo).await?;
    Ok(Json(List::page(&st, &headers, &uri, items, page)))
}

/// Public located bays (of `site_uid` only, if given) that the geo query selects, as ParkAPI
/// spots, in the query's order.
async fn spots_for(
    st: &AppState,
    site_uid: Option<&str>,
    geo: &GeoQuery,
) -> Result<Vec<ParkingSpot>, ApiError> {
    let now = st.clock.now();
    let bay_fresh = windows(st).bay_fresh;
    let bays = st.store.parking_bays(site_uid).await?;
    let index = GeoIndex::new(bays.iter().enumerate().map(|(i, b)| (i, b.lat, b.lon)));
    Ok(index
        .query(geo)
        .iter()
        .filter_map(|hit: &Hit<usize>| {
            let bay = bays.get(hit.id)?;
            let status = parking::spot_status(bay, now, bay_fresh);
            let updated_at = match status {
                parking::SpotStatus::Unknown => None,
                _ => bay.occupied.map(|o| utc(o.time)),
            };
            Some(ParkingSpot {
                uid: bay.dev_eui.to_string(),
                name: bay.name.clone(),
                parking_site_uid: bay.site_uid.clone(),
                lat: bay.lat,
                lon: bay.lon,
                status: status.as_str(),
                realtime_data_updated_at: updated_at,
                distance_m: hit.distance_m.map(round_m),
            })
        })
        .collect())
}

/// `GET /v1/parking/sites/{uid}/history?from=&to=&bucket=15m|1h|1d`: free and occupied spaces
/// per bucket, time-weighted (each reading holds until the next one, at most its kind's
/// freshness window; see `stadtpuls_store::parking_history`). Every bucket of the window is
/// present; one without any known state has `free`/`occupied` null and `coverage` 0.
#[utoipa::path(
    get,
    path = "/v1/parking/sites/{uid}/history",
    operation_id = "parking_site_history",
    tag = "parking",
    params(("uid" = String, Path, description = "Site uid"), crate::openapi::WindowParams),
    responses(
        (status = 200, description = "OK", body = ParkingHistory),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
    ),
)]
pub async fn history(
    State(st): State<AppState>,
    Path(uid): Path<String>,
    Query(q): Q,
) -> Result<Json<ParkingHistory>, ApiError> {
    let mut p = Params::new(q);
    let (from, to, width) =
        crate::aggregates::parse_window(&mut p, st.clock.now(), st.settings.http.max_window_days)?;
    p.finish()?;
    let site = st
        .store
        .parking_site(&uid)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("parking site '{}'", clip(&uid))))?;
    let tz = &st.settings.city.timezone;
    let grid = st.store.bucket_grid(from, to, width, tz).await?;
    let w = windows(&st);
    let (source, buckets) = st
        .store
        .parking_history(&site.uid, site.capacity, grid, w.counter_fresh, w.bay_fresh)
        .await?;
    let items = buckets
        .iter()
        .map(|b| HistoryBucket {
            start: utc(b.start),
            end: utc(b.end),
            free: b.free,
            occupied: b.occupied,
            coverage: b.coverage,
        })
        .collect();
    Ok(Json(ParkingHistory {
        uid: site.uid,
        capacity: site.capacity,
        source: source.as_str(),
        bucket: width.as_str(),
        timezone: tz.clone(),
        from: utc(from),
        to: utc(to),
        items,
    }))
}
