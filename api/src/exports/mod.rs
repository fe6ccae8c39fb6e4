//! `GET /v1/exports/readings.{csv,ndjson,geojson,parquet}`: on-demand downloads of readings,
//! raw or in time buckets, with the query API's filters and no row limit.
//!
//! Every stage of the pipeline is bounded:
//! the store's query loop (`stadtpuls_store::exports`: short keyset-paged statements) → a
//! channel of a few row chunks → an encoder on a blocking thread (CSV, NDJSON, GeoJSON, or
//! Parquet row groups) writing into a [`body::BodyWriter`] → a channel of a few [`BLOCK_BYTES`]
//! blocks → the HTTP body ([`body::Download`]). A slow client slows the encoder and thereby the
//! queries. A client that goes away drops the body: the encoder's next write fails, it drops
//! the row channel, and the query loop ends after its current statement. A client that stops
//! reading for [`CLIENT_IDLE`] is given up on.
//!
//! At most `opendata.max_concurrent_exports` exports run at once (per API process): an export
//! holds its permit while it produces data (until its encoder ends); further requests get 503
//! with `Retry-After`. Errors before the first byte are problem+json; a later one aborts the
//! response (the chunked body never ends properly), so a truncated file is never mistaken for
//! a complete one.
//!
//! Who sees what: without a key (and with a building key) located public devices; with an admin
//! key located private devices too. Rows carry the DevEUI, as the query API does.
//!
//! Modules: request parameters (`params.rs`), the handlers and the pipeline (`handlers.rs`),
//! the HTTP body fed from a blocking thread (`body.rs`), and the columns of a download
//! (`columns.rs`); the encoder is the open-data export's ([`stadtpuls_opendata_export::encode`]),
//! so a Parquet download is GeoParquet like the published files.

mod body;
mod columns;
mod handlers;
mod params;

use crate::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use handlers::{export_csv, export_geojson, export_ndjson, export_parquet};
pub use params::{file_name, parse_export, ExportRequest, Format, EXPORT_AGGS};

/// Bytes the encoder collects before handing a block to the HTTP body.
pub const BLOCK_BYTES: usize = 64 * 1024;
/// Blocks between the encoder and the HTTP body.
const BODY_BLOCKS: usize = 4;
/// How long the encoder waits for a client that does not take the next block.
pub const CLIENT_IDLE: Duration = Duration::from_secs(60);
/// `Retry-After` when every export slot is taken.
pub const RETRY_AFTER_SECS: u32 = 10;
/// zstd level of Parquet downloads. On-demand files favour speed and a small footprint (a
/// level-12 context alone takes tens of MB) over the last percent of size; the published
/// open-data files use `opendata.zstd_level`.
pub const PARQUET_ZSTD_LEVEL: i32 = 3;
/// Rows per Parquet row group of a download: the writer holds one row group in memory.
pub const PARQUET_ROW_GROUP_ROWS: usize = 65_536;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::export_csv))
        .routes(routes!(handlers::export_ndjson))
        .routes(routes!(handlers::export_geojson))
        .routes(routes!(handlers::export_parquet))
}

/// The export slots of one API process (`opendata.max_concurrent_exports`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ExportPermits(Arc<Semaphore>);

impl ExportPermits {
    pub fn new(max_concurrent: usize) -> Self {
        ExportPermits(Arc::new(Semaphore::new(max_concurrent)))
    }

    fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}
