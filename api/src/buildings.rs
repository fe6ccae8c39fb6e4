//! Building endpoints (key-scoped): buildings, rooms with their latest climate, room history.

use crate::AppState;
use axum::Router;

/// The building routes (an API key is required).
pub fn routes() -> Router<AppState> {
    Router::new()
}
