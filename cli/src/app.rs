//! Builds the shared state and runs ingest and/or the API until shutdown.

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use stadtpuls_api::AppState;
use stadtpuls_config::Settings;
use stadtpuls_ingest::{Clock, IngestContext, IngestHealth, SystemClock};
use stadtpuls_opendata_export::export::Exporter;
use stadtpuls_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Which parts run in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    pub ingest: bool,
    pub api: bool,
    /// The open-data export scheduler (run it in one process of a deployment).
    pub export: bool,
}

/// Connects to the database (and migrates when configured), with a clear message on failure.
pub async fn connect_store(settings: &Settings) -> anyhow::Result<Store> {
    let db = &settings.database;
    let store = Store::connect_with(
        &db.url,
        db.max_connections,
        Duration::from_secs(db.connect_timeout_secs),
        Some(Duration::from_millis(db.statement_timeout_ms)),
    )
    .await
    .with_context(|| {
        format!(
            "cannot connect to database {}",
            stadtpuls_config::redact_url(&db.url)
        )
    })?;
    if db.migrate_on_start {
        store
            .migrate()
            .await
            .context("applying database migrations")?;
    }
    Ok(store)
}

/// Runs the selected parts until `shutdown` is cancelled. `listener` is required when the API
/// runs (tests pass one bound to port 0). Returns when every part has stopped.
pub async fn run(
    settings: Arc<Settings>,
    parts: Parts,
    listener: Option<TcpListener>,
    metrics: Option<PrometheusHandle>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = connect_store(&settings).await?;
    store
        .check_time_zone(&settings.city.timezone)
        .await
        .map_err(|e| anyhow::anyhow!("city.timezone: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ingest_ctx = if parts.ingest {
        Some(
            IngestContext::new(settings.clone(), store.clone(), clock.clone())
                .context("ingest setup")?,
        )
    } else {
        None
    };
    let health: Option<Arc<IngestHealth>> = ingest_ctx.as_ref().map(|c| c.health.clone());

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(ctx) = ingest_ctx {
        let sd = shutdown.clone();
        // Ingest: MQTT session + writer; returns after committing in-flight batches.
        tasks.spawn(async move { stadtpuls_ingest::run(ctx, sd).await.context("ingest") });
    }
    if parts.export {
        let exporter = Exporter::new(store.clone(), settings.clone(), clock.clone())
            .context("open-data exporter")?;
        let (sd, clock) = (shutdown.clone(), clock.clone());
        // Export scheduler: catch-up, then each dataset on its cron schedule.
        tasks.spawn(async move {
            stadtpuls_opendata_export::scheduler::run(exporter, clock, sd).await;
            Ok(())
        });
    }
    let ops = match settings.ops_listen_addr()? {
        Some(addr) if parts.ingest && !parts.api => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (ingest.ops_listen)"))?,
        ),
        _ => None,
    };
    if parts.api || ops.is_some() {
        let state = AppState {
            store,
            settings: settings.clone(),
            clock,
            ingest: health,
            metrics,
            devices: Default::default(),
            live: Default::default(),
            parking: Default::default(),
            exports: stadtpuls_api::exports::ExportPermits::new(
                settings.opendata.max_concurrent_exports,
            ),
        };
        let sd = shutdown.clone();
        if let Some(ops) = ops {
            // Standalone ingest: health and metrics only.
            tasks.spawn(async move {
                stadtpuls_api::serve_ops(ops, state, sd)
                    .await
                    .context("health/metrics server")
            });
        } else {
            let listener = listener.context("the API needs a listener")?;
            // HTTP API: graceful shutdown lets in-flight requests finish.
            tasks.spawn(async move {
                stadtpuls_api::serve(listener, state, sd)
                    .await
                    .context("HTTP server")
            });
        }
    }
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let r = done.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = r {
            // One part failing stops the others: a half-running process hides problems.
            shutdown.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}

/// Binds the configured HTTP address with a clear error.
pub async fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    let addr = settings.listen_addr()?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (http.listen)"))
}
