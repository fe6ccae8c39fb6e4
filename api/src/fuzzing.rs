//! Entry points for the fuzz targets in `fuzz/` to request parsers that are private to their
//! modules. Not a stable API: thin wrappers with no behaviour of their own.

use crate::error::ApiError;
pub use crate::opendata::Ranged;

/// The checked relative path of `GET /v1/opendata/files/{*path}` (raw, still percent-encoded).
pub fn relative_path(raw: &str) -> Result<String, ApiError> {
    crate::opendata::relative_path(raw)
}

/// What a `Range` header value asks of a file of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> Ranged {
    crate::opendata::parse_range(value, size)
}
