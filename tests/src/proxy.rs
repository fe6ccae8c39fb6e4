//! A TCP proxy the test controls: it forwards connections to an upstream port and can cut them
//! all at once without a clean close (both sides see a reset, as when a NAT box or a firewall
//! drops the connection), and refuse new connections for a while.

use anyhow::Result;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    upstream: u16,
    /// Bumped by [`Proxy::cut`]; every connection task watches it.
    cuts: watch::Sender<u64>,
    refuse_until: Mutex<Option<Instant>>,
    live: AtomicU64,
    accepted: AtomicU64,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:<upstream>`.
    pub async fn start(upstream: u16) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            cuts: watch::channel(0).0,
            refuse_until: Mutex::new(None),
            live: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let s = shared.clone();
        // Accept loop: one forwarding task per connection.
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let refused = s
                    .refuse_until
                    .lock()
                    .map(|g| g.is_some_and(|t| Instant::now() < t))
                    .unwrap_or(false);
                if refused {
                    reset(client);
                    continue;
                }
                s.accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(forward(client, s.clone()));
            }
        });
        Ok(Proxy { port, shared, task })
    }

    /// Resets every live connection (no FIN: `SO_LINGER` 0, then close) and refuses new ones
    /// for `refuse_for`. Returns how many connections were cut.
    pub fn cut(&self, refuse_for: Duration) -> u64 {
        if let Ok(mut g) = self.shared.refuse_until.lock() {
            *g = Some(Instant::now() + refuse_for);
        }
        let live = self.shared.live.load(Ordering::Relaxed);
        self.shared.cuts.send_modify(|c| *c += 1);
        live
    }

    /// Connections currently forwarded.
    pub fn live(&self) -> u64 {
        self.shared.live.load(Ordering::Relaxed)
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.cuts.send_modify(|c| *c += 1);
    }
}

/// Copies both ways until either side closes or the proxy cuts the connection.
async fn forward(mut client: TcpStream, s: Arc<Shared>) {
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", s.upstream)).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let mut cuts = s.cuts.subscribe();
    cuts.borrow_and_update();
    s.live.fetch_add(1, Ordering::Relaxed);
    let cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => false,
        _ = cuts.changed() => true,
    };
    s.live.fetch_sub(1, Ordering::Relaxed);
    if cut {
        reset(client);
        reset(upstream);
    }
}

/// Closes with a reset instead of a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}
