//! The writer: collects messages into batches (size / linger / max wait), commits each batch in
//! one transaction, and only then acknowledges exactly the MQTT packets the batch held.

use crate::directory::Directory;
use crate::mqtt::{Acker, InboundMessage};
use crate::pipeline::{self, Steps};
use crate::{IngestContext, IngestError};
use stadtpuls_store::{Batch, BatchOutcome, DeadLetter, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Collects and commits batches until `shutdown`; then commits what it already holds and what
/// is waiting in the channel, acknowledges it, and returns.
///
/// `ingest.writers` tasks share the channel: one collects the next batch while others wait for
/// their commit, so decoding, the database's work and the round trips overlap instead of taking
/// turns (with a single writer the database idles while a batch is collected, and the other way
/// round). Each batch is still one transaction, acknowledged only after its commit; rows are
/// written in a fixed key order so that concurrent batches cannot deadlock.
pub async fn run(
    ctx: IngestContext,
    directory: Directory,
    rx: mpsc::Receiver<InboundMessage>,
    acker: Acker,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    if let Err(e) = directory.refresh(&ctx.store).await {
        tracing::warn!(error = %e, "initial device directory load failed; retrying in the background");
    }
    let rx = Arc::new(Mutex::new(rx));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..ctx.settings.ingest.writers.max(1) {
        writers.spawn(writer_loop(
            ctx.clone(),
            directory.clone(),
            rx.clone(),
            acker.clone(),
            shutdown.clone(),
        ));
    }
    while let Some(done) = writers.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a writer task failed");
        }
    }
    Ok(())
}

async fn writer_loop(
    ctx: IngestContext,
    directory: Directory,
    rx: Arc<Mutex<mpsc::Receiver<InboundMessage>>>,
    acker: Acker,
    shutdown: CancellationToken,
) {
    let s = &ctx.settings.ingest;
    let max = s.batch_max_messages;
    let linger = Duration::from_millis(s.batch_linger_ms);
    let max_wait = Duration::from_millis(s.batch_max_wait_ms);
    loop {
        // Only one writer collects at a time, so a batch is a contiguous run of messages.
        let msgs = {
            let mut rx = tokio::select! {
                _ = shutdown.cancelled() => break,
                g = rx.lock() => g,
            };
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            let deadline = Instant::now() + max_wait;
            let mut msgs = Vec::with_capacity(max.min(1024));
            msgs.push(first);
            while msgs.len() < max {
                // Take what is already waiting without sleeping.
                match rx.try_recv() {
                    Ok(m) => {
                        msgs.push(m);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                let wait = linger.min(deadline.saturating_duration_since(Instant::now()));
                if wait.is_zero() {
                    break;
                }
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(m)) => msgs.push(m),
                    Ok(None) | Err(_) => break,
                }
            }
            msgs
        };
        commit(&ctx, &directory, &acker, msgs, &shutdown).await;
    }
    // Shutdown: commit what was queued when this writer got here, then stop. The session
    // keeps reading from the broker until the writers are done (their acks must still go
    // out), so "until the channel is empty" could last forever whenever the broker delivers
    // faster than a commit takes (a loaded machine): the shutdown then hit its 10 s limit.
    // What arrives later stays unacknowledged and the broker delivers it again.
    let mut budget = rx.lock().await.len();
    while budget > 0 {
        let chunk: Vec<InboundMessage> = {
            let mut rx = rx.lock().await;
            let mut chunk = Vec::new();
            while chunk.len() < max.min(budget) {
                match rx.try_recv() {
                    Ok(m) => chunk.push(m),
                    Err(_) => break,
                }
            }
            chunk
        };
        if chunk.is_empty() {
            break;
        }
        budget -= chunk.len();
        commit(&ctx, &directory, &acker, chunk, &shutdown).await;
    }
}

/// Runs the pipeline over `msgs`, writes the batch (retrying transient errors), acks.
async fn commit(
    ctx: &IngestContext,
    directory: &Directory,
    acker: &Acker,
    msgs: Vec<InboundMessage>,
    shutdown: &CancellationToken,
) {
    let steps = Steps {
        keys: &ctx.keys,
        directory,
        max_payload_bytes: ctx.settings.ingest.max_payload_bytes,
        store_simulated: ctx.settings.ingest.store_simulated,
        now: ctx.clock.now(),
    };
    let mut batch = Batch::default();
    for m in &msgs {
        // `dev_eui` is recorded by the pipeline once the message is decoded.
        let span = tracing::debug_span!(
            "message",
            topic = %m.topic,
            dev_eui = tracing::field::Empty
        );
        let _g = span.enter();
        pipeline::collect(&mut batch, pipeline::process(m, steps));
    }
    let started = Instant::now();
    let Some(outcome) = write_with_retry(ctx, batch, shutdown).await else {
        // Shutdown while the database was unreachable: nothing is acked; the broker redelivers.
        return;
    };
    metrics::histogram!("stadtpuls_ingest_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("stadtpuls_ingest_uplinks_stored_total")
        .increment(outcome.new_uplinks as u64);
    metrics::counter!("stadtpuls_ingest_uplinks_duplicate_total")
        .increment(outcome.duplicate_uplinks as u64);
    metrics::counter!("stadtpuls_ingest_readings_stored_total").increment(outcome.readings as u64);
    metrics::counter!("stadtpuls_devices_auto_registered_total")
        .increment(outcome.registered_devices as u64);
    ctx.health.batch_committed();
    acker.ack_all(&msgs);
}

/// Writes the batch; transient errors are retried with back-off (the channel fills meanwhile,
/// which is the back-pressure). A batch the database rejects for good is split so that only
/// the offending messages become dead letters. `None` = gave up because of shutdown.
async fn write_with_retry(
    ctx: &IngestContext,
    batch: Batch,
    shutdown: &CancellationToken,
) -> Option<BatchOutcome> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match ctx.store.write_batch(&batch).await {
            Ok(o) => {
                if ctx.health.db_failing() {
                    tracing::info!("database writes succeed again");
                }
                ctx.health.set_db_failing(false);
                return Some(o);
            }
            Err(e) if e.is_transient() => {
                ctx.health.set_db_failing(true);
                ctx.health.record_error(format!("database: {e}"));
                metrics::counter!("stadtpuls_ingest_write_retries_total").increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "batch write failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        // Last chance within the shutdown grace period.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        return ctx.store.write_batch(&batch).await.ok();
                    }
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => match split_and_write(ctx, batch.clone(), e).await {
                Some(o) => return Some(o),
                None => {
                    // Not even the dead letters were stored: nothing may be acknowledged.
                    // Try the whole batch again (what was stored is recognised by its key).
                    ctx.health.set_db_failing(true);
                    metrics::counter!("stadtpuls_ingest_write_retries_total").increment(1);
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            },
        }
    }
}

/// Writes each part of a rejected batch on its own; parts the database refuses again are
/// dead-lettered with reason `store_rejected`. `None` when those dead letters could not be
/// stored either: then the batch must not be acknowledged.
async fn split_and_write(
    ctx: &IngestContext,
    batch: Batch,
    first_error: StoreError,
) -> Option<BatchOutcome> {
    tracing::error!(error = %first_error, "database rejected a batch; writing its messages one by one");
    let mut total = BatchOutcome::default();
    let mut rejected = Vec::new();
    let mut singles: Vec<Batch> = Vec::new();
    for u in batch.uplinks {
        singles.push(Batch {
            uplinks: vec![u],
            ..Default::default()
        });
    }
    for e in batch.events {
        singles.push(Batch {
            events: vec![e],
            ..Default::default()
        });
    }
    for d in batch.dead_letters {
        singles.push(Batch {
            dead_letters: vec![d],
            ..Default::default()
        });
    }
    for single in singles {
        match ctx.store.write_batch(&single).await {
            Ok(o) => merge(&mut total, o),
            Err(e) => {
                let (topic, payload, at) = match single.uplinks.first() {
                    Some(u) => (u.topic.clone(), u.uplink.payload.clone(), u.ingested_at),
                    None => (String::from("(event)"), Vec::new(), ctx.clock.now()),
                };
                metrics::counter!("stadtpuls_ingest_dead_letters_total", "reason" => "store_rejected").increment(1);
                rejected.push(DeadLetter {
                    received_at: at,
                    topic,
                    reason: "store_rejected".into(),
                    detail: e.to_string(),
                    payload_size: payload.len(),
                    payload,
                });
            }
        }
    }
    if !rejected.is_empty() {
        match ctx
            .store
            .write_batch(&Batch {
                dead_letters: rejected,
                ..Default::default()
            })
            .await
        {
            Ok(o) => merge(&mut total, o),
            Err(e) => {
                tracing::error!(error = %e, "could not even store the dead letters of a rejected batch; retrying it, nothing acknowledged");
                return None;
            }
        }
    }
    Some(total)
}

fn merge(total: &mut BatchOutcome, o: BatchOutcome) {
    total.new_uplinks += o.new_uplinks;
    total.duplicate_uplinks += o.duplicate_uplinks;
    total.readings += o.readings;
    total.registered_devices += o.registered_devices;
    total.dead_letters += o.dead_letters;
    total.stored.extend(o.stored);
}
