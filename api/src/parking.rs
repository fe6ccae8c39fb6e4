//! Parking endpoints (ParkAPI v3 shapes): sites with realtime free capacity, spots, history.

use crate::AppState;
use axum::Router;

/// The parking routes (public, no key).
pub fn routes() -> Router<AppState> {
    Router::new()
}
