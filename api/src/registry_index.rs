//! The in-memory geo index of public, located devices, rebuilt when the registry changes.
//!
//! Changes arrive as PostgreSQL notifications (from any process: imports, the admin API,
//! network location events; [`crate::live::LiveFeed::run`] forwards them to
//! [`DeviceIndex::registry_changed`]), and as a safety net a cheap fingerprint
//! (`max(updated_at), count(*)`) is polled every `ingest.registry_refresh_ms`.

use crate::geo::GeoIndex;
use chrono::{DateTime, Utc};
use stadtpuls_gateways::DevEui;
use stadtpuls_store::{Store, Visibility};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

type Stamp = (Option<DateTime<Utc>>, i64);

#[derive(Debug, Default)]
struct Inner {
    public: Arc<GeoIndex<DevEui>>,
    /// Every located device, private ones included (admin views).
    all: Arc<GeoIndex<DevEui>>,
    /// Positions of the same public devices, by DevEUI.
    positions: Arc<HashMap<DevEui, (f64, f64)>>,
    stamp: Option<Stamp>,
}

/// Shared handle; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DeviceIndex {
    inner: Arc<RwLock<Inner>>,
    /// Woken by registry notifications; the refresh loop waits on it.
    changed: Arc<tokio::sync::Notify>,
}

impl DeviceIndex {
    /// The current index of public devices (a snapshot: later rebuilds do not change it).
    pub fn public(&self) -> Arc<GeoIndex<DevEui>> {
        self.inner
            .read()
            .map(|g| g.public.clone())
            .unwrap_or_default()
    }

    /// The current index of all located devices, private ones included (for admin keys).
    pub fn all(&self) -> Arc<GeoIndex<DevEui>> {
        self.inner.read().map(|g| g.all.clone()).unwrap_or_default()
    }

    /// `(lat, lon)` of a located public device; `None` for private or unlocated ones.
    pub fn public_position(&self, dev_eui: DevEui) -> Option<(f64, f64)> {
        self.inner.read().ok()?.positions.get(&dev_eui).copied()
    }

    /// Rebuilds the index if the registry changed since the last build. Returns whether it did.
    pub async fn refresh(&self, store: &Store) -> Result<bool, stadtpuls_store::StoreError> {
        let stamp = store.registry_stamp().await?;
        if self
            .inner
            .read()
            .map(|g| g.stamp == Some(stamp))
            .unwrap_or(false)
        {
            return Ok(false);
        }
        let located = store.located_devices().await?;
        let all = GeoIndex::new(located.iter().map(|&(e, lat, lon, _)| (e, lat, lon)));
        let public: Vec<(DevEui, f64, f64)> = located
            .into_iter()
            .filter(|d| d.3 == Visibility::Public)
            .map(|(e, lat, lon, _)| (e, lat, lon))
            .collect();
        let positions: HashMap<DevEui, (f64, f64)> = public
            .iter()
            .map(|(e, lat, lon)| (*e, (*lat, *lon)))
            .collect();
        let public = GeoIndex::new(public);
        if let Ok(mut g) = self.inner.write() {
            g.public = Arc::new(public);
            g.all = Arc::new(all);
            g.positions = Arc::new(positions);
            g.stamp = Some(stamp);
        }
        Ok(true)
    }

    /// Asks the refresh loop to check the registry now (several calls before it runs count
    /// as one).
    pub fn registry_changed(&self) {
        self.changed.notify_one();
    }

    /// Refreshes on every registry notification and every `period` until cancelled.
    pub async fn refresh_loop(self, store: Store, period: Duration, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
                _ = self.changed.notified() => {}
            }
            if let Err(e) = self.refresh(&store).await {
                tracing::warn!(error = %e, "device geo index refresh failed; serving the previous one");
            }
        }
    }
}
