//! The fault suite's publisher: QoS 1 at a steady rate, and resilient itself — broker restarts
//! and cut connections must not lose a message on the publishing side, or the suite would
//! measure the publisher instead of the ingest.
//!
//! rumqttc keeps every PUBLISH until its PUBACK arrives; when the connection breaks it moves the
//! unacknowledged ones (and requests not yet sent) to its pending queue and sends them again
//! after reconnecting. A message counts as published once its PUBACK arrived; every PUBLISH on
//! the wire beyond one per message is a resend (the broker may then hold it twice — storage
//! deduplicates, and the suite checks that it did).

use crate::workload::Msg;
use anyhow::{bail, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters of a running publisher.
#[derive(Debug, Default)]
pub struct Progress {
    /// Messages handed to the client (the pacing position).
    pub queued: AtomicU64,
    /// PUBACKs received.
    pub acked: AtomicU64,
    /// PUBLISH packets written, first sends and resends.
    pub transmissions: AtomicU64,
    /// Connections lost.
    pub disconnects: AtomicU64,
    connected: AtomicBool,
}

impl Progress {
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }
}

/// What publishing took.
#[derive(Clone, Copy, Debug)]
pub struct Published {
    pub messages: u64,
    pub acked: u64,
    /// PUBLISH packets sent again after a lost connection.
    pub resent: u64,
    pub disconnects: u64,
    pub seconds: f64,
}

/// A publisher running in the background.
#[derive(Debug)]
pub struct Publisher {
    pub progress: Arc<Progress>,
    total: u64,
    started: Instant,
    pacer: tokio::task::JoinHandle<Result<()>>,
    poller: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing `msgs` at `rate` messages per second (0 = as fast as the broker
    /// takes them) to `127.0.0.1:<port>`.
    pub fn start(port: u16, client_id: &str, msgs: Arc<Vec<Msg>>, rate: f64) -> Publisher {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_inflight(500);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(o, 256);
        let progress = Arc::new(Progress::default());
        let total = msgs.len() as u64;

        let p = progress.clone();
        // Event loop: counts PUBACKs and transmissions; reconnects (and resends) after errors.
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        p.connected.store(true, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        p.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                        p.transmissions.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if p.connected.swap(false, Ordering::Relaxed) {
                            p.disconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });

        let p = progress.clone();
        let started = Instant::now();
        // Pacer: hands message i to the client at `started + i / rate`.
        let pacer = tokio::spawn(async move {
            for (i, m) in msgs.iter().enumerate() {
                if rate > 0.0 {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                client
                    .publish_bytes(m.topic.clone(), QoS::AtLeastOnce, false, m.payload.clone())
                    .await?;
                p.queued.fetch_add(1, Ordering::Relaxed);
            }
            // Keep the client (and so the request channel) alive until everything is acked.
            while p.acked() < msgs.len() as u64 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = client.disconnect().await;
            Ok(())
        });
        Publisher {
            progress,
            total,
            started,
            pacer,
            poller,
        }
    }

    /// Waits until every message is acknowledged by the broker.
    pub async fn finish(mut self, within: Duration) -> Result<Published> {
        let until = Instant::now() + within;
        while self.progress.acked() < self.total {
            if self.pacer.is_finished() && self.progress.acked() < self.total {
                bail!("publisher stopped early");
            }
            if Instant::now() > until {
                self.pacer.abort();
                self.poller.abort();
                bail!(
                    "publisher: {} of {} messages acknowledged within {within:?}",
                    self.progress.acked(),
                    self.total
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.pacer).await;
        self.poller.abort();
        let p = &self.progress;
        Ok(Published {
            messages: self.total,
            acked: p.acked(),
            resent: p
                .transmissions
                .load(Ordering::Relaxed)
                .saturating_sub(self.total),
            disconnects: p.disconnects.load(Ordering::Relaxed),
            seconds,
        })
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.pacer.abort();
        self.poller.abort();
    }
}
