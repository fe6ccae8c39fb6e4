//! Open-data endpoints (public, no key): the DCAT-AP.de catalogue (JSON-LD, or Turtle by
//! `Accept`), the datasets with their files and last run, each dataset's manifest with absolute
//! download URLs, the recorded export runs, and the files under `opendata.output_dir` themselves:
//! streamed from disk with a strong `ETag` (the recorded SHA-256 of a data file, else size and
//! modification time), `Last-Modified`, conditional requests (304) and one byte range per
//! request (206, 416), so DuckDB, pandas or `curl -C -` read them straight over HTTP. A file
//! path is checked segment by segment (no `..`, `.`, empty, absolute, backslash or NUL
//! segments), then canonicalised and required to stay inside the canonical output directory,
//! so neither an encoded `..` nor a symlink leads out of it.
//!
//! Modules: the catalogue, datasets, manifests and runs with their response types
//! (`catalog.rs`), and the file server (`files.rs`).

mod catalog;
mod files;

use crate::error::ApiError;
use crate::params::clip;
use crate::AppState;
use axum::http::{header, HeaderMap, Uri};
use stadtpuls_config::DatasetSettings;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use catalog::{
    OpendataDataset, OpendataDatasetList, OpendataFile, OpendataManifest, OpendataManifestFile,
    OpendataPeriod, OpendataRun, OpendataRunList,
};
pub use files::Ranged;
pub(crate) use files::{parse_range, relative_path};

/// The route of the files (axum's catch-all syntax) and how the OpenAPI document names it.
const FILES_ROUTE: &str = "/v1/opendata/files/{*path}";
const FILES_DOC: &str = "/v1/opendata/files/{path}";
const FILES_PREFIX: &str = "/v1/opendata/files/";

/// The open-data routes (public, no key).
pub fn routes() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(catalog::catalog))
        .routes(routes!(catalog::datasets))
        .routes(routes!(catalog::dataset))
        .routes(routes!(catalog::manifest))
        .routes(routes!(catalog::runs))
        .routes(routes!(files::file));
    // OpenAPI has no catch-all parameter; the document names it `{path}` (slashes allowed)
    // while the router keeps axum's `{*path}` from the same annotation.
    let paths = &mut router.get_openapi_mut().paths.paths;
    if let Some(item) = paths.remove(FILES_ROUTE) {
        paths.insert(FILES_DOC.to_string(), item);
    }
    router
}

/// Where URLs and IRIs point: `opendata.base_url`, else `http.public_base_url`, else the
/// request's host.
fn base_url(st: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<String, ApiError> {
    let o = &st.settings;
    let configured = [o.opendata.base_url.trim(), o.http.public_base_url.trim()]
        .into_iter()
        .find(|b| !b.is_empty());
    if let Some(base) = configured {
        return Ok(base.trim_end_matches('/').to_string());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    // The host ends up in IRIs, URLs and Turtle: only host[:port] may pass.
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    if !ok {
        return Err(ApiError::bad(
            "Host",
            "not a host name with an optional port",
        ));
    }
    Ok(format!("http://{host}"))
}

/// `path` (relative to the output directory) as a download URL; characters outside
/// `[A-Za-z0-9-._~/=]` are percent-encoded.
fn file_url(base: &str, path: &str) -> String {
    format!(
        "{base}{FILES_PREFIX}{}",
        percent_encoding::utf8_percent_encode(path, URL_PATH)
    )
}

/// What [`file_url`] leaves unescaped besides ASCII letters and digits.
const URL_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b'=');

fn configured<'a>(st: &'a AppState, name: &str) -> Result<&'a DatasetSettings, ApiError> {
    st.settings
        .opendata
        .datasets
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("dataset '{}'", clip(name))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            file_url("http://h", "dataset=p/date=2026-11-28/part 0.csv"),
            "http://h/v1/opendata/files/dataset=p/date=2026-11-28/part%200.csv"
        );
        assert_eq!(
            file_url("http://h", "a~b_c-d.e/ä%?#&+.csv"),
            "http://h/v1/opendata/files/a~b_c-d.e/%C3%A4%25%3F%23%26%2B.csv"
        );
    }
}
