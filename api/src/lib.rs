//! The Stadtpuls HTTP API (axum): health, metrics, quantities, devices, readings, latest values.
//!
//! Only this crate knows HTTP DTOs; errors become problem+json in exactly one place ([`error`]).

pub mod admin;
pub mod aggregates;
pub mod auth;
pub mod buildings;
pub mod error;
pub mod exports;
pub mod extract;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
mod handlers;
pub mod live;
pub mod openapi;
pub mod opendata;
pub mod paging;
pub mod params;
pub mod parking;
pub mod ratelimit;
pub mod registry_index;
pub mod routes;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use stadtpuls_config::Settings;
use stadtpuls_store::clock::Clock;
use stadtpuls_store::health::IngestHealth;
use stadtpuls_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    /// Present when ingest runs in the same process (`run`); `api` alone has none.
    pub ingest: Option<Arc<IngestHealth>>,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// In-memory geo index of public devices; [`serve`] keeps it fresh.
    pub devices: registry_index::DeviceIndex,
    /// Committed readings for `/v1/stream`; [`serve`] feeds it from LISTEN/NOTIFY.
    pub live: live::LiveFeed,
    /// Parking sites with realtime signals, shared for `http.parking_cache_ms`.
    pub parking: parking::ParkingCache,
    /// Slots for `/v1/exports/…` downloads (`opendata.max_concurrent_exports`).
    pub exports: exports::ExportPermits,
}

/// The full router with its middleware, and the OpenAPI document of its routes.
pub fn router(state: AppState) -> Router {
    let (served, api) = api_routes().split_for_parts();
    let api = openapi::finish(api);
    let guard = routes::Guard::new(&routes::table(&api));
    let http = &state.settings.http;
    let body_limit = http.max_body_bytes;
    let timeout = Duration::from_secs(http.request_timeout_secs);
    served
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(handlers::not_found)
        // Innermost, where the matched route is known: only documented routes are served.
        .layer(axum::middleware::from_fn_with_state(guard, routes::guard))
        .layer(axum::middleware::from_fn_with_state(
            ratelimit::Limiter::new(
                http.rate_limit_per_second,
                http.rate_limit_burst,
                http.trusted_proxies.clone(),
            ),
            ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn(record_http_metrics))
        // Bodies are read by `extract::JsonBody`, which answers 413 problem+json past this.
        .layer(DefaultBodyLimit::max(body_limit))
        // Files served with byte ranges (open-data downloads) are sent as they are: gzip would
        // drop Content-Length and Accept-Ranges and change the bytes their ETag names.
        .layer(
            CompressionLayer::new().compress_when(DefaultPredicate::new().and(
                |_: axum::http::StatusCode,
                 _: axum::http::Version,
                 h: &axum::http::HeaderMap,
                 _: &axum::http::Extensions| {
                    !h.contains_key(axum::http::header::ACCEPT_RANGES)
                },
            )),
        )
        .layer(cors(&state.settings.http.cors_allowed_origins))
        .layer(axum::middleware::from_fn_with_state(timeout, deadline))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Middleware: a response (its head; a streamed body may take longer) within
/// `http.request_timeout_secs`, else 408 problem+json.
async fn deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::Timeout {
            secs: limit.as_secs(),
        }
        .into_response(),
    }
}

/// Every route with its documentation: the router is built from the handlers' `#[utoipa::path]`
/// annotations, so the OpenAPI document lists exactly the routes that exist.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(handlers::health))
        .routes(routes!(handlers::metrics))
        .routes(routes!(handlers::quantities))
        .routes(routes!(handlers::devices))
        .routes(routes!(handlers::devices_search))
        .routes(routes!(handlers::device))
        .routes(routes!(handlers::readings))
        .routes(routes!(handlers::aggregates))
        .routes(routes!(handlers::latest))
        .routes(routes!(handlers::latest_search))
        .routes(routes!(live::stream))
        .merge(parking::routes())
        .merge(buildings::routes())
        .merge(admin::routes())
        .merge(exports::routes())
        .merge(opendata::routes())
}

/// The OpenAPI document (as served at `/openapi.json`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::finish(api_routes().into_openapi())
}

/// CORS for browser apps (and admin UIs): any of the configured origins (`*` = any).
fn cors(origins: &[String]) -> CorsLayer {
    use axum::http::{header, HeaderValue, Method};
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        base.allow_origin(tower_http::cors::Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        base.allow_origin(list)
    }
}

/// Request count and latency per route (the matched pattern, not the raw path, so that
/// DevEUIs do not explode the label set), method and status.
async fn record_http_metrics(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("stadtpuls_http_requests_total", &labels).increment(1);
    metrics::histogram!("stadtpuls_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `/health` and `/metrics` only, for a process without the API (`stadtpuls ingest` with
/// `ingest.ops_listen`): the same handlers as the API's, nothing else.
pub async fn serve_ops(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/health", axum::routing::get(handlers::health))
        .route("/metrics", axum::routing::get(handlers::metrics))
        .fallback(handlers::not_found)
        .with_state(state);
    tracing::info!(%addr, "health and metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Serves the API on `listener` until `shutdown` is cancelled (graceful: in-flight requests finish).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    // Build the geo index before the first request, then keep it fresh in the background.
    if let Err(e) = state.devices.refresh(&state.store).await {
        tracing::warn!(error = %e, "device geo index not built yet; retrying in the background");
    }
    let period = Duration::from_millis(state.settings.ingest.registry_refresh_ms);
    tokio::spawn(
        state
            .devices
            .clone()
            .refresh_loop(state.store.clone(), period, shutdown.clone()),
    );
    // LISTEN on the database: live readings fan out to SSE clients, registry changes wake the
    // geo index.
    tokio::spawn(state.live.clone().run(
        state.store.clone(),
        state.devices.clone(),
        shutdown.clone(),
    ));
    tracing::info!(%addr, "HTTP API listening");
    // Connect info gives the rate limiter the peer address.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_slow_handler_is_a_408_problem() {
        let router: Router = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/fast", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_secs(1),
                deadline,
            ));
        let call = |path: &'static str| {
            let router = router.clone();
            async move {
                let r = router
                    .oneshot(Request::get(path).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = r.status();
                let ct = r.headers().get(header::CONTENT_TYPE).cloned();
                let body = r.into_body().collect().await.unwrap().to_bytes();
                (status, ct, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        assert_eq!(call("/fast").await.2, "ok");
        let (status, ct, body) = call("/slow").await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(ct.unwrap(), "application/problem+json");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            problem["detail"],
            "no answer within 1 s; try a smaller request"
        );
    }
}
