//! The `stadtpuls` binary's library: wiring of ingest + API into one process ([`app`]),
//! registry import ([`registry`]), reprocessing ([`reprocess`]) and the traffic simulator
//! ([`simulate`]). `main.rs` only parses the command line and calls into here; tests call the
//! same functions in-process.

pub mod app;
pub mod export;
pub mod keys;
pub mod places;
pub mod registry;
pub mod reprocess;
pub mod simulate;
