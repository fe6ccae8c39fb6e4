//! Ingest: the MQTT session → decode → batch → store → acknowledge-after-commit pipeline.
//!
//! Tasks (all stop when `shutdown` is cancelled):
//! - [`mqtt`]: owns the rumqttc event loop; (re)subscribes on every ConnAck, stamps each
//!   PUBLISH with `received_at` and hands it to a bounded channel without awaiting the writer
//!   (a local queue takes the excess; when that is full the session stops reading the socket,
//!   so the broker holds the rest); sends the writers' acks on the connection they belong to.
//! - [`writer`]: decodes and maps messages ([`pipeline`]), collects them into batches, commits
//!   each batch in one transaction and only then hands exactly its packets' acks to the session.
//! - [`directory`]: keeps the device → codec cache fresh from the registry.
//! - retention: drops old chunks on a timer.

pub mod directory;
pub mod mqtt;
pub mod pipeline;
pub mod writer;

pub use stadtpuls_store::health::{IngestHealth, MqttState};

use stadtpuls_config::Settings;
use stadtpuls_gateways::{KeyTable, Quantity};
use stadtpuls_store::{RetentionPolicy, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use stadtpuls_store::clock::{Clock, SystemClock};

/// Why ingest could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The MQTT settings cannot be turned into a connection (e.g. unreadable CA file).
    #[error("MQTT configuration: {0}")]
    MqttConfig(String),
    /// The store failed in a way retrying will not fix.
    #[error("store: {0}")]
    Store(#[from] stadtpuls_store::StoreError),
    /// A task ended unexpectedly.
    #[error("ingest task failed: {0}")]
    Task(String),
}

/// Everything the ingest tasks share. Passed in, never global.
#[derive(Debug, Clone)]
pub struct IngestContext {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub health: Arc<IngestHealth>,
    pub keys: Arc<KeyTable>,
}

impl IngestContext {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, IngestError> {
        let keys = Arc::new(key_table(&settings)?);
        Ok(IngestContext {
            settings,
            store,
            clock,
            health: Arc::new(IngestHealth::default()),
            keys,
        })
    }
}

/// The built-in key table extended by `[mapping.keys]`.
pub fn key_table(settings: &Settings) -> Result<KeyTable, IngestError> {
    let mut keys = KeyTable::builtin();
    for (key, m) in &settings.mapping.keys {
        let q: Quantity = m
            .quantity_name()
            .parse()
            .map_err(|e: String| IngestError::MqttConfig(format!("mapping.keys.{key}: {e}")))?;
        keys.extend(key, q, m.factor());
    }
    Ok(keys)
}

/// Runs the whole ingest until `shutdown` is cancelled; in-flight batches are committed and
/// acknowledged before it returns.
pub async fn run(ctx: IngestContext, shutdown: CancellationToken) -> Result<(), IngestError> {
    describe_metrics();
    mqtt::check_topics(&ctx.settings.mqtt).map_err(|e| IngestError::MqttConfig(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(ctx.settings.ingest.channel_capacity);
    let session = mqtt::Session::new(&ctx)?;
    let acker = session.acker();
    let directory = directory::Directory::default();

    // Device directory refresher: picks up registry imports made by other processes.
    let period = Duration::from_millis(ctx.settings.ingest.registry_refresh_ms);
    let dir_task = tokio::spawn(directory::refresh_loop(
        ctx.store.clone(),
        directory.clone(),
        period,
        shutdown.clone(),
    ));
    // Retention: drop chunks past their age on a timer.
    let retention_task = tokio::spawn(retention_loop(ctx.clone(), shutdown.clone()));
    // The MQTT session: polls the event loop, forwards PUBLISH packets into `tx`. It stops
    // when the writer has finished (so acks of the last batch still reach the broker).
    let writer_done = CancellationToken::new();
    let mqtt_task = tokio::spawn(session.run(ctx.clone(), tx, writer_done.clone()));
    // The writer: batches, commits, acks. Drains what it holds when shutdown is cancelled.
    let result = writer::run(ctx.clone(), directory, rx, acker, shutdown.clone()).await;
    // The session sends the writers' last acks, then disconnects.
    writer_done.cancel();
    let _ = mqtt_task.await;
    shutdown.cancel();
    let _ = dir_task.await;
    let _ = retention_task.await;
    result
}

async fn retention_loop(ctx: IngestContext, shutdown: CancellationToken) {
    let r = &ctx.settings.retention;
    let policy = RetentionPolicy {
        uplinks_days: r.uplinks_days,
        dead_letters_days: r.dead_letters_days,
        readings_days: r.readings_days,
    };
    let mut every = tokio::time::interval(Duration::from_secs(r.interval_minutes * 60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match ctx.store.apply_retention(policy, ctx.clock.now()).await {
            Ok(o) => tracing::info!(
                uplinks_chunks = o.uplinks_chunks,
                dead_letters_chunks = o.dead_letters_chunks,
                readings_chunks = o.readings_chunks,
                "retention applied"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "retention run failed; will retry at the next interval")
            }
        }
    }
}

/// Help texts for `/metrics` (no-op without a recorder).
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "stadtpuls_mqtt_messages_received_total",
        "MQTT PUBLISH packets received"
    );
    describe_counter!(
        "stadtpuls_mqtt_disconnects_total",
        "Lost broker connections"
    );
    describe_counter!(
        "stadtpuls_mqtt_acks_skipped_total",
        "Acks not sent because their connection was gone (the broker redelivers)"
    );
    describe_gauge!(
        "stadtpuls_ingest_overflow_messages",
        "Messages waiting in the session because the writer channel is full"
    );
    describe_counter!(
        "stadtpuls_ingest_uplinks_stored_total",
        "New uplinks committed"
    );
    describe_counter!(
        "stadtpuls_ingest_uplinks_duplicate_total",
        "Redelivered uplinks recognised by their dedup key and not stored again"
    );
    describe_counter!(
        "stadtpuls_ingest_readings_stored_total",
        "Readings committed"
    );
    describe_counter!(
        "stadtpuls_ingest_unmapped_keys_total",
        "Decoded keys that map to no quantity (kept in the raw uplink)"
    );
    describe_counter!(
        "stadtpuls_ingest_dead_letters_total",
        "Messages dead-lettered, by reason"
    );
    describe_counter!(
        "stadtpuls_ingest_skipped_total",
        "Valid messages with nothing to store (join, ack, …), by kind"
    );
    describe_counter!(
        "stadtpuls_ingest_events_total",
        "Device status and location events"
    );
    describe_counter!(
        "stadtpuls_ingest_codec_errors_total",
        "Raw payloads the device's codec could not decode"
    );
    describe_counter!(
        "stadtpuls_ingest_write_retries_total",
        "Batch writes retried after a transient database error"
    );
    describe_counter!(
        "stadtpuls_devices_auto_registered_total",
        "Unknown devices registered automatically (private)"
    );
    describe_histogram!(
        "stadtpuls_ingest_commit_seconds",
        Unit::Seconds,
        "Time to commit one batch"
    );
}
