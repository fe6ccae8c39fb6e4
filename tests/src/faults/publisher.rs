//! The fault suite's publisher: QoS 1 at a steady rate, and resilient itself — broker restarts
//! and cut connections must not lose a message on the publishing side, or the suite would
//! measure the publisher instead of the ingest.
//!
//! It does its own bookkeeping instead of relying on rumqttc's resend after a reconnect: rumqttc
//! 0.24 puts the unacknowledged PUBLISHes and the requests not yet numbered into one queue, the
//! new ones then get packet ids the old ones still hold, and its single "collision" slot is
//! overwritten when that happens twice — those messages are never sent again (seen here: 45 of
//! 10 000 never acknowledged after a broker SIGKILL). So every connection gets a fresh client and
//! event loop; requests go through its channel in order, and the n-th `Outgoing::Publish` event
//! names the packet id of the n-th request, which maps PUBACKs to messages. When a connection
//! breaks, the client and event loop are thrown away and every unacknowledged message is sent
//! again, oldest first, on the next one. A message counts as published once its PUBACK arrived;
//! every PUBLISH beyond one per message is a resend (the broker may then hold it twice — storage
//! deduplicates, and the suite checks that it did). `EventLoop::poll` is never cancelled (it is
//! not documented as cancel-safe: a cancelled flush could leave half a packet behind).

use crate::workload::Msg;
use anyhow::{bail, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Unacknowledged PUBLISHes per connection (rumqttc's in-flight window).
const WINDOW: u16 = 500;

/// Counters of a running publisher.
#[derive(Debug, Default)]
pub struct Progress {
    /// Messages sent at least once (the pacing position).
    pub queued: AtomicU64,
    /// Messages acknowledged by the broker.
    pub acked: AtomicU64,
    /// PUBLISH packets handed to the connection, first sends and resends.
    pub transmissions: AtomicU64,
    /// Connections lost.
    pub disconnects: AtomicU64,
}

impl Progress {
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }
}

/// What publishing took.
#[derive(Clone, Debug)]
pub struct Published {
    pub messages: u64,
    pub acked: u64,
    /// When the broker acknowledged each message (its first PUBACK).
    pub acked_at: Vec<Option<Instant>>,
    /// PUBLISH packets sent again after a lost connection.
    pub resent: u64,
    pub disconnects: u64,
    pub seconds: f64,
}

/// A publisher running in the background.
#[derive(Debug)]
pub struct Publisher {
    pub progress: Arc<Progress>,
    book: Arc<Mutex<Book>>,
    total: u64,
    started: Instant,
    pacer: tokio::task::JoinHandle<()>,
    poller: tokio::task::JoinHandle<()>,
}

/// The publisher's bookkeeping, shared by the pacer and the poller.
#[derive(Debug)]
struct Book {
    /// The current connection's client (replaced after every lost connection).
    client: AsyncClient,
    /// Messages requested on the current connection whose packet id is not known yet, in
    /// request order.
    sent: VecDeque<usize>,
    /// Packet id → message, on the current connection.
    inflight: HashMap<u16, usize>,
    /// Messages to send again, oldest first.
    resend: BTreeSet<usize>,
    /// When each message's first PUBACK arrived.
    acked: Vec<Option<Instant>>,
    /// The next message not sent yet.
    next: usize,
}

/// Hands messages to the client: resends first, then new ones when the rate says so.
async fn pace(
    book: Arc<Mutex<Book>>,
    p: Arc<Progress>,
    msgs: Arc<Vec<Msg>>,
    rate: f64,
    started: Instant,
) {
    loop {
        let mut wait = Duration::from_millis(5);
        {
            let Ok(mut b) = book.lock() else { return };
            loop {
                let idx = match b.resend.first() {
                    Some(&i) => i,
                    None if b.next < msgs.len() => {
                        let due = started + Duration::from_secs_f64(b.next as f64 / rate.max(1e-9));
                        let now = Instant::now();
                        if rate > 0.0 && due > now {
                            wait = (due - now).min(Duration::from_millis(50));
                            break;
                        }
                        b.next
                    }
                    None => {
                        wait = Duration::from_millis(50);
                        break;
                    }
                };
                let m = &msgs[idx];
                // Full channel: rumqttc's window is full; wait for acks.
                if b.client
                    .try_publish(m.topic.clone(), QoS::AtLeastOnce, false, m.payload.to_vec())
                    .is_err()
                {
                    break;
                }
                if b.resend.first() == Some(&idx) {
                    b.resend.pop_first();
                } else {
                    b.next += 1;
                    p.queued.store(b.next as u64, Ordering::Relaxed);
                }
                b.sent.push_back(idx);
                p.transmissions.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// Drives the connection: maps packet ids to messages, counts acks, and starts over with a
/// fresh client after a lost connection.
async fn poll(book: Arc<Mutex<Book>>, p: Arc<Progress>, mut eventloop: EventLoop, o: MqttOptions) {
    let mut connected = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => connected = true,
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Ok(mut b) = book.lock() {
                    if let Some(idx) = b.sent.pop_front() {
                        b.inflight.insert(pkid, idx);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => {
                if let Ok(mut b) = book.lock() {
                    if let Some(idx) = b.inflight.remove(&a.pkid) {
                        if b.acked[idx].is_none() {
                            b.acked[idx] = Some(Instant::now());
                            p.acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(_) => {
                if std::mem::take(&mut connected) {
                    p.disconnects.fetch_add(1, Ordering::Relaxed);
                }
                let (client, fresh) = AsyncClient::new(o.clone(), 64);
                eventloop = fresh;
                if let Ok(mut guard) = book.lock() {
                    let b = &mut *guard;
                    b.client = client;
                    let again = b.sent.drain(..).chain(b.inflight.drain().map(|x| x.1));
                    b.resend.extend(again.filter(|&idx| b.acked[idx].is_none()));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Publisher {
    /// Starts publishing `msgs` at `rate` messages per second (0 = as fast as the window
    /// allows) to `127.0.0.1:<port>`.
    pub fn start(port: u16, client_id: &str, msgs: Arc<Vec<Msg>>, rate: f64) -> Publisher {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_inflight(WINDOW);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_clean_session(true);
        let progress = Arc::new(Progress::default());
        let total = msgs.len() as u64;
        let started = Instant::now();
        let (client, eventloop) = AsyncClient::new(o.clone(), 64);
        let shared = Arc::new(Mutex::new(Book {
            client,
            sent: VecDeque::new(),
            inflight: HashMap::new(),
            resend: BTreeSet::new(),
            acked: vec![None; msgs.len()],
            next: 0,
        }));
        let pacer = tokio::spawn(pace(shared.clone(), progress.clone(), msgs, rate, started));
        let poller = tokio::spawn(poll(shared.clone(), progress.clone(), eventloop, o));
        Publisher {
            progress,
            book: shared,
            total,
            started,
            pacer,
            poller,
        }
    }

    /// Waits until every message is acknowledged by the broker.
    pub async fn finish(self, within: Duration) -> Result<Published> {
        let until = Instant::now() + within;
        while self.progress.acked() < self.total {
            if self.pacer.is_finished() || self.poller.is_finished() {
                bail!("publisher stopped early");
            }
            if Instant::now() > until {
                bail!(
                    "publisher: {} of {} messages acknowledged within {within:?}",
                    self.progress.acked(),
                    self.total
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let p = &self.progress;
        let acked_at = match self.book.lock() {
            Ok(b) => b.acked.clone(),
            Err(_) => bail!("publisher bookkeeping poisoned"),
        };
        Ok(Published {
            messages: self.total,
            acked: p.acked(),
            acked_at,
            resent: p
                .transmissions
                .load(Ordering::Relaxed)
                .saturating_sub(self.total),
            disconnects: p.disconnects.load(Ordering::Relaxed),
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.pacer.abort();
        self.poller.abort();
    }
}
