//! `GET /v1/stream`: Server-Sent Events with each reading of a public device after it is
//! committed. Readings arrive through PostgreSQL LISTEN/NOTIFY (see `stadtpuls_store::live`), so
//! an `api` process sees what a separate `ingest` process commits.

use crate::error::ApiError;
use crate::extract::Query;
use crate::geo::{distance_m, GeoQuery};
use crate::params::Params;
use crate::registry_index::DeviceIndex;
use crate::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::SecondsFormat;
use serde::Serialize;
use stadtpuls_gateways::Quantity;
use stadtpuls_store::live::{self, LiveReading};
use stadtpuls_store::Store;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// Fan-out of committed readings to the SSE clients of this process.
#[derive(Clone, Debug)]
pub struct LiveFeed {
    tx: broadcast::Sender<LiveReading>,
    /// Cancelled when the feed stops (server shutdown): open streams end, so a graceful
    /// shutdown does not wait forever for SSE clients.
    closed: CancellationToken,
}

impl Default for LiveFeed {
    fn default() -> Self {
        // A slow client that falls this far behind skips readings (and is told so).
        let (tx, _) = broadcast::channel(8192);
        LiveFeed {
            tx,
            closed: CancellationToken::new(),
        }
    }
}

impl LiveFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<LiveReading> {
        self.tx.subscribe()
    }

    /// LISTENs on the database until cancelled, forwarding readings to the SSE clients and
    /// registry changes to `devices` (which then rebuilds its geo index); reconnects on errors.
    /// Every (re)connect also counts as a registry change: notifications sent while no
    /// connection listened are lost.
    pub async fn run(self, store: Store, devices: DeviceIndex, shutdown: CancellationToken) {
        let _close_streams_on_return = self.closed.clone().drop_guard();
        let mut backoff = Duration::from_millis(200);
        loop {
            let listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = store.listen() => l,
            };
            let mut listener = match listener {
                Ok(l) => {
                    backoff = Duration::from_millis(200);
                    devices.registry_changed();
                    l
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live feed cannot LISTEN; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            loop {
                let n = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.recv() => n,
                };
                match n {
                    Ok(n) if n.channel() == live::REGISTRY_CHANNEL => devices.registry_changed(),
                    Ok(n) => {
                        for r in live::decode(n.payload()) {
                            // No receivers is fine: nobody is streaming right now.
                            let _ = self.tx.send(r);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live feed lost its LISTEN connection; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

/// The data of a `reading` event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadingEvent {
    pub dev_eui: String,
    pub quantity: &'static str,
    pub value: f64,
    pub unit: &'static str,
    #[schema(format = DateTime)]
    pub time: String,
    pub lat: f64,
    pub lon: f64,
}

/// The data of a `lagged` event: how many readings this client missed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LaggedEvent {
    pub skipped: u64,
}

/// An event's JSON data; plain structs of strings and numbers always serialise.
fn data<T: Serialize>(event: &str, body: &T) -> Event {
    Event::default()
        .event(event)
        .data(serde_json::to_string(body).unwrap_or_default())
}

/// `GET /v1/stream?quantity=&bbox=|lat=&lon=&radius=`: one `reading` event per committed
/// reading of a located public device that matches; a `lagged` event when this client fell
/// behind and readings were skipped. The stream ends when the client goes away.
#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "devices",
    params(
        crate::openapi::QuantityParam,
        ("bbox" = Option<String>, Query, description = "minLon,minLat,maxLon,maxLat"),
        ("lat" = Option<f64>, Query, description = "Centre latitude, with lon and radius"),
        ("lon" = Option<f64>, Query, description = "Centre longitude"),
        ("radius" = Option<f64>, Query, description = "Metres"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `reading` events (JSON: dev_eui, quantity, value, unit, time, lat, lon), `lagged` when this client fell behind", body = String, content_type = "text/event-stream"),
        crate::openapi::BadRequest,
    ),
)]
pub async fn stream(
    State(st): State<AppState>,
    Query(q): Query,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut p = Params::new(q);
    let quantity = p.quantity()?;
    let geo = crate::geo::parse_geo_query(&mut p)?;
    p.finish()?;
    if matches!(geo, GeoQuery::Nearest { .. }) {
        return Err(ApiError::bad(
            "nearest",
            "a stream can filter by bbox or radius, not nearest",
        ));
    }
    let devices = st.devices.clone();
    let closed = st.live.closed.clone().cancelled_owned();
    let stream = BroadcastStream::new(st.live.subscribe()).filter_map(move |item| match item {
        Ok(r) => event_for(&r, quantity, &geo, &devices).map(Ok),
        Err(BroadcastStreamRecvError::Lagged(n)) => {
            Some(Ok(data("lagged", &LaggedEvent { skipped: n })))
        }
    });
    let stream = futures_util::StreamExt::take_until(stream, closed);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The event for one reading, or `None` when the client did not ask for it.
fn event_for(
    r: &LiveReading,
    quantity: Option<Quantity>,
    geo: &GeoQuery,
    devices: &DeviceIndex,
) -> Option<Event> {
    if quantity.is_some_and(|q| q != r.quantity) {
        return None;
    }
    // Only located public devices; the index follows registry changes.
    let (lat, lon) = devices.public_position(r.dev_eui)?;
    let inside = match geo {
        GeoQuery::All => true,
        GeoQuery::BBox(b) => {
            (b.min_lon..=b.max_lon).contains(&lon) && (b.min_lat..=b.max_lat).contains(&lat)
        }
        GeoQuery::Radius {
            lat: clat,
            lon: clon,
            radius_m,
        } => distance_m(*clat, *clon, lat, lon) <= *radius_m,
        GeoQuery::Nearest { .. } | GeoQuery::Polygon(_) => false,
    };
    if !inside {
        return None;
    }
    let event = ReadingEvent {
        dev_eui: r.dev_eui.to_string(),
        quantity: r.quantity.name(),
        value: r.value,
        unit: r.quantity.unit(),
        time: r.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        lat,
        lon,
    };
    Some(data("reading", &event))
}
