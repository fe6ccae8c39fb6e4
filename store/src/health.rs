//! Live state of the ingest for `/health` and metrics: broker connection, database trouble.
//!
//! It lives here, below both the ingest (which updates it) and the API (which reports it), so
//! that the API does not depend on the ingest and its MQTT client; like [`crate::clock`] it is
//! not SQL, just state both sides share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// State of the broker connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqttState {
    Connecting,
    Connected,
    Disconnected,
}

impl MqttState {
    /// The name `/health` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttState::Connecting => "connecting",
            MqttState::Connected => "connected",
            MqttState::Disconnected => "disconnected",
        }
    }
}

/// Shared, lock-light health record updated by the ingest tasks.
#[derive(Debug)]
pub struct IngestHealth {
    connected: AtomicBool,
    subscribed: AtomicBool,
    ever_connected: AtomicBool,
    db_failing: AtomicBool,
    reconnects: AtomicU64,
    last_error: Mutex<Option<String>>,
    committed_batches: AtomicU64,
}

impl Default for IngestHealth {
    fn default() -> Self {
        IngestHealth {
            connected: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            db_failing: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            last_error: Mutex::new(None),
            committed_batches: AtomicU64::new(0),
        }
    }
}

impl IngestHealth {
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        if !up {
            self.subscribed.store(false, Ordering::Relaxed);
        } else if self.ever_connected.swap(true, Ordering::Relaxed) {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The broker confirmed every subscription of the current connection.
    pub fn set_subscribed(&self) {
        self.subscribed.store(true, Ordering::Relaxed);
    }

    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    pub fn mqtt_state(&self) -> MqttState {
        match (
            self.connected.load(Ordering::Relaxed),
            self.ever_connected.load(Ordering::Relaxed),
        ) {
            (true, _) => MqttState::Connected,
            (false, false) => MqttState::Connecting,
            (false, true) => MqttState::Disconnected,
        }
    }

    pub fn set_db_failing(&self, failing: bool) {
        self.db_failing.store(failing, Ordering::Relaxed);
    }

    pub fn db_failing(&self) -> bool {
        self.db_failing.load(Ordering::Relaxed)
    }

    pub fn record_error(&self, e: impl ToString) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e.to_string());
        }
    }

    pub fn batch_committed(&self) {
        self.committed_batches.fetch_add(1, Ordering::Relaxed);
    }

    /// JSON summary for `/health`.
    /// Reconnects to the broker since start.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Batches committed since start.
    pub fn committed_batches(&self) -> u64 {
        self.committed_batches.load(Ordering::Relaxed)
    }

    /// The last error recorded, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}
