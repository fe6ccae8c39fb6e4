//! Device directory: the registry facts ingest needs per message (the payload codec), cached in
//! memory and refreshed incrementally so registry imports by other processes take effect.

use chrono::{DateTime, Utc};
use stadtpuls_gateways::codecs::Codec;
use stadtpuls_gateways::DevEui;
use stadtpuls_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
struct Inner {
    codecs: HashMap<DevEui, Codec>,
    seen_until: Option<DateTime<Utc>>,
}

/// Shared device → codec map.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    inner: Arc<RwLock<Inner>>,
}

impl Directory {
    /// The codec configured for a device, if any.
    pub fn codec(&self, dev_eui: DevEui) -> Option<Codec> {
        self.inner
            .read()
            .ok()
            .and_then(|g| g.codecs.get(&dev_eui).copied())
    }

    /// Pulls registry changes since the last refresh.
    pub async fn refresh(&self, store: &Store) -> Result<usize, stadtpuls_store::StoreError> {
        let since = self.inner.read().ok().and_then(|g| g.seen_until);
        let entries = store.directory_since(since).await?;
        let n = entries.len();
        if let Ok(mut g) = self.inner.write() {
            for e in entries {
                match e.codec.as_deref().map(str::parse::<Codec>) {
                    Some(Ok(c)) => {
                        g.codecs.insert(e.dev_eui, c);
                    }
                    Some(Err(err)) => {
                        tracing::warn!(dev_eui = %e.dev_eui, error = %err, "device has an unknown codec; its raw payloads stay undecoded");
                        g.codecs.remove(&e.dev_eui);
                    }
                    None => {
                        g.codecs.remove(&e.dev_eui);
                    }
                }
                g.seen_until = Some(g.seen_until.map_or(e.updated_at, |s| s.max(e.updated_at)));
            }
        }
        Ok(n)
    }
}

/// Refreshes the directory at start and then every `period` until cancelled.
pub async fn refresh_loop(
    store: Store,
    dir: Directory,
    period: Duration,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = dir.refresh(&store).await {
            tracing::debug!(error = %e, "device directory refresh failed; keeping the cached one");
        }
    }
}
