//! Open-data endpoints (public, no key): the DCAT-AP.de catalogue (JSON-LD, or Turtle by
//! `Accept`), the datasets with their files and last run, each dataset's manifest with absolute
//! download URLs, the recorded export runs, and the files under `opendata.output_dir` themselves:
//! streamed from disk with a strong `ETag` (the recorded SHA-256 of a data file, else size and
//! modification time), `Last-Modified`, conditional requests (304) and one byte range per
//! request (206, 416), so DuckDB, pandas or `curl -C -` read them straight over HTTP. A file
//! path is checked segment by segment (no `..`, `.`, empty, absolute, backslash or NUL
//! segments), then canonicalised and required to stay inside the canonical output directory,
//! so neither an encoded `..` nor a symlink leads out of it.

use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::params::{clip, utc, Params};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stadtpuls_config::DatasetSettings;
use stadtpuls_opendata_export::dcat::{self, CatalogInput};
use stadtpuls_opendata_export::export::format_name;
use stadtpuls_opendata_export::model::PublishedDataset;
use stadtpuls_opendata_export::published::{licence_iri, published, published_dataset};
use stadtpuls_store::opendata::ExportRun;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type Q = Query;

/// The route of the files (axum's catch-all syntax) and how the OpenAPI document names it.
const FILES_ROUTE: &str = "/v1/opendata/files/{*path}";
const FILES_DOC: &str = "/v1/opendata/files/{path}";
const FILES_PREFIX: &str = "/v1/opendata/files/";

/// Bytes per chunk of a streamed file.
const CHUNK: usize = 64 * 1024;

/// The open-data routes (public, no key).
pub fn routes() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(catalog))
        .routes(routes!(datasets))
        .routes(routes!(dataset))
        .routes(routes!(manifest))
        .routes(routes!(runs))
        .routes(routes!(file));
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
    let mut url = format!("{base}{FILES_PREFIX}");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/=".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

fn configured<'a>(st: &'a AppState, name: &str) -> Result<&'a DatasetSettings, ApiError> {
    st.settings
        .opendata
        .datasets
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("dataset '{}'", clip(name))))
}

fn run_json(r: &ExportRun) -> Value {
    json!({
        "id": r.id,
        "dataset": r.dataset,
        "trigger": r.trigger,
        "status": r.status,
        "window_start": utc(r.window_start),
        "window_end": utc(r.window_end),
        "started_at": utc(r.started_at),
        "finished_at": r.finished_at.map(utc),
        "duration_ms": r.finished_at.map(|f| (f - r.started_at).num_milliseconds()),
        "partitions": r.partitions,
        "rows": r.rows,
        "bytes": r.bytes,
        "error": r.error,
    })
}

fn dataset_json(base: &str, d: &PublishedDataset, last_run: Option<&ExportRun>) -> Value {
    let s = &d.settings;
    let files: Vec<Value> = d
        .files
        .iter()
        .map(|f| {
            json!({
                "format": format_name(f.format),
                "partition": f.partition,
                "url": file_url(base, &f.path),
                "rows": f.rows,
                "bytes": f.bytes,
                "sha256": f.sha256,
                "modified": utc(f.modified),
            })
        })
        .collect();
    let dataset_url = format!("{base}/v1/opendata/datasets/{}", s.name);
    json!({
        "name": s.name,
        "url": dataset_url,
        "title_de": s.title_de,
        "title_en": s.title_en,
        "description_de": s.description_de,
        "description_en": s.description_en,
        "licence": licence_iri(s.licence),
        "aggregation": s.aggregation,
        "partitioning": s.partitioning,
        "formats": s.formats.iter().map(|f| format_name(*f)).collect::<Vec<_>>(),
        "schedule": s.schedule,
        "temporal": d.temporal().map(|(start, end)| json!({"start": utc(start), "end": utc(end)})),
        "modified": d.modified().map(utc),
        "rows": d.rows(),
        "bytes": d.bytes(),
        "bbox": d.bbox,
        "last_run": last_run.map(run_json),
        "manifest_url": format!("{dataset_url}/manifest.json"),
        "files": files,
    })
}

async fn last_run(st: &AppState, name: &str) -> Result<Option<ExportRun>, ApiError> {
    Ok(st
        .store
        .export_runs(Some(name), 1)
        .await?
        .into_iter()
        .next())
}

/// What the catalogue can be served as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rdf {
    JsonLd,
    Turtle,
}

/// Picks the catalogue's serialisation from `Accept`: per offer the quality of the most
/// specific matching range (exact, `type/*`, `*/*`); the higher quality wins, JSON-LD on a tie
/// or without `Accept`; `None` when neither is acceptable. `application/json` counts as JSON-LD
/// (it is JSON).
fn negotiate(headers: &HeaderMap) -> Option<Rdf> {
    let ranges: Vec<(String, f32)> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())?;
            Some((media, q))
        })
        .collect();
    if ranges.is_empty() {
        return Some(Rdf::JsonLd);
    }
    let quality = |exact: &[&str], family: &str| -> f32 {
        let level = |media: &str| -> Option<u8> {
            if exact.contains(&media) {
                Some(2)
            } else if media == family {
                Some(1)
            } else if media == "*/*" {
                Some(0)
            } else {
                None
            }
        };
        let best = ranges.iter().filter_map(|(m, _)| level(m)).max();
        best.map_or(0.0, |top| {
            ranges
                .iter()
                .filter(|(m, _)| level(m) == Some(top))
                .map(|(_, q)| *q)
                .fold(0.0, f32::max)
        })
    };
    let jsonld = quality(
        &["application/ld+json", "application/json"],
        "application/*",
    );
    let turtle = quality(&["text/turtle"], "text/*");
    if jsonld <= 0.0 && turtle <= 0.0 {
        None
    } else if turtle > jsonld {
        Some(Rdf::Turtle)
    } else {
        Some(Rdf::JsonLd)
    }
}

/// `GET /v1/opendata/catalog`: the DCAT-AP.de catalogue.
#[utoipa::path(
    get,
    path = "/v1/opendata/catalog",
    operation_id = "opendata_catalog",
    tag = "opendata",
    description = "The DCAT-AP.de 2.0 catalogue of all datasets, one distribution per file \
                   format (access URL: the manifest; download URLs: every file). JSON-LD by \
                   default, Turtle with `Accept: text/turtle`.",
    responses(
        (status = 200, description = "The catalogue", content(
            (Object = "application/ld+json"),
            (String = "text/turtle"),
        )),
        crate::openapi::BadRequest,
        crate::openapi::NotAcceptable,
        crate::openapi::TooManyRequests,
        crate::openapi::Unavailable,
    ),
)]
pub async fn catalog(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Result<Response, ApiError> {
    Params::new(q).finish()?;
    let Some(rdf) = negotiate(&headers) else {
        return Err(ApiError::NotAcceptable(
            "the catalogue is available as application/ld+json or text/turtle".into(),
        ));
    };
    let base = base_url(&st, &headers, &uri)?;
    let datasets = published(&st.store, &st.settings).await?;
    let input = CatalogInput {
        catalog: &st.settings.opendata.catalog,
        base_url: &base,
        datasets: &datasets,
        now: st.clock.now(),
    };
    let (text, content_type) = match rdf {
        Rdf::JsonLd => (dcat::to_jsonld(&input), "application/ld+json"),
        Rdf::Turtle => (dcat::to_turtle(&input), "text/turtle; charset=utf-8"),
    };
    match text {
        Ok(text) => Ok((
            [
                (header::CONTENT_TYPE, content_type),
                (header::VARY, "Accept"),
            ],
            text,
        )
            .into_response()),
        Err(e) => Err(ApiError::internal("open data: catalogue", e)),
    }
}

/// `GET /v1/opendata/datasets`: every configured dataset with its files and last run.
#[utoipa::path(
    get,
    path = "/v1/opendata/datasets",
    operation_id = "opendata_datasets",
    tag = "opendata",
    responses(
        (status = 200, description = "OK", body = crate::openapi::OpendataDatasetList),
        crate::openapi::BadRequest,
        crate::openapi::TooManyRequests,
        crate::openapi::Unavailable,
    ),
)]
pub async fn datasets(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    Params::new(q).finish()?;
    let base = base_url(&st, &headers, &uri)?;
    let all = published(&st.store, &st.settings).await?;
    let mut items = Vec::with_capacity(all.len());
    for d in &all {
        let run = last_run(&st, &d.settings.name).await?;
        items.push(dataset_json(&base, d, run.as_ref()));
    }
    Ok(Json(json!({ "items": items, "total_count": all.len() })))
}

/// `GET /v1/opendata/datasets/{name}`: one dataset, 404 when none of that name is configured.
#[utoipa::path(
    get,
    path = "/v1/opendata/datasets/{name}",
    operation_id = "opendata_dataset",
    tag = "opendata",
    params(("name" = String, Path, description = "Dataset name, e.g. `parking_occupancy`")),
    responses(
        (status = 200, description = "OK", body = crate::openapi::OpendataDataset),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::TooManyRequests,
        crate::openapi::Unavailable,
    ),
)]
pub async fn dataset(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    Params::new(q).finish()?;
    let ds = configured(&st, &name)?;
    let base = base_url(&st, &headers, &uri)?;
    let d = published_dataset(&st.store, ds).await?;
    let run = last_run(&st, &ds.name).await?;
    Ok(Json(dataset_json(&base, &d, run.as_ref())))
}

/// `GET /v1/opendata/datasets/{name}/manifest.json`: the exporter's manifest with a `url` per
/// file.
#[utoipa::path(
    get,
    path = "/v1/opendata/datasets/{name}/manifest.json",
    operation_id = "opendata_manifest",
    tag = "opendata",
    description = "The manifest the exporter writes to `meta/<name>/manifest.json`, every file \
                   with an absolute `url`, e.g. for `duckdb.read_parquet([urls])`. Before the \
                   first export its lists are empty.",
    params(("name" = String, Path, description = "Dataset name")),
    responses(
        (status = 200, description = "OK", body = crate::openapi::OpendataManifest),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::TooManyRequests,
    ),
)]
pub async fn manifest(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    Params::new(q).finish()?;
    let ds = configured(&st, &name)?;
    let base = base_url(&st, &headers, &uri)?;
    let path = PathBuf::from(&st.settings.opendata.output_dir)
        .join("meta")
        .join(&ds.name)
        .join("manifest.json");
    // The file on disk is the manifest (with the sensors tables' hashes, which are recorded
    // nowhere else); the API only adds URLs.
    let mut manifest: Value = match tokio::fs::read(&path).await {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return Err(ApiError::internal("open data: manifest is not JSON", e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            json!({ "dataset": ds.name, "modified": null, "files": [], "sensors": [] })
        }
        Err(e) => return Err(ApiError::internal("open data: manifest unreadable", e)),
    };
    for key in ["files", "sensors"] {
        let Some(items) = manifest.get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(url) = item
                .get("path")
                .and_then(Value::as_str)
                .map(|p| file_url(&base, p))
            {
                item.insert("url".into(), json!(url));
            }
        }
    }
    Ok(Json(manifest).into_response())
}

/// `GET /v1/opendata/runs?dataset=&limit=`: recorded export runs, newest first.
#[utoipa::path(
    get,
    path = "/v1/opendata/runs",
    operation_id = "opendata_runs",
    tag = "opendata",
    params(crate::openapi::OpendataRunsParams),
    responses(
        (status = 200, description = "OK", body = crate::openapi::OpendataRunList),
        crate::openapi::BadRequest,
        crate::openapi::TooManyRequests,
        crate::openapi::Unavailable,
    ),
)]
pub async fn runs(State(st): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let mut p = Params::new(q);
    let dataset = p.string("dataset");
    let limit = p.limit(100, 1000)?;
    p.finish()?;
    // Runs of datasets no longer configured stay listable, so any well-formed name is accepted.
    if let Some(name) = &dataset {
        let ok = name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(ApiError::bad(
                "dataset",
                format!("'{}' is not a dataset name ([a-z0-9_], 1..64)", clip(name)),
            ));
        }
    }
    let list = st
        .store
        .export_runs(dataset.as_deref(), i64::from(limit))
        .await?;
    let items: Vec<Value> = list.iter().map(run_json).collect();
    Ok(Json(json!({ "total_count": items.len(), "items": items })))
}

/// Percent-decodes a URL path (no `+` rule: that is for query strings).
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The requested file path relative to the output directory, decoded and checked: 400 for
/// anything that could address another directory (`..`, `.`, empty segments, an absolute
/// path, backslashes, NUL, bad escapes), 404 for hidden names (temporary files and the like).
pub(crate) fn relative_path(raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::bad("path", why.to_string());
    let decoded = percent_decode(raw).ok_or_else(|| bad("invalid percent-encoding"))?;
    let path = String::from_utf8(decoded).map_err(|_| bad("not UTF-8"))?;
    if path.contains('\0') || path.contains('\\') {
        return Err(bad("must not contain NUL or backslashes"));
    }
    if path.starts_with('/') {
        return Err(bad("must be relative"));
    }
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(bad("must not contain empty, '.' or '..' segments"));
        }
        if segment.starts_with('.') {
            return Err(ApiError::NotFound(format!("file '{}'", clip(&path))));
        }
    }
    Ok(path)
}

/// The media type a file is served with; only exported kinds of files are served at all.
fn content_type(path: &std::path::Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "parquet" => Some("application/vnd.apache.parquet"),
        "csv" => Some("text/csv; charset=utf-8; header=present"),
        "json" => Some("application/json"),
        _ => None,
    }
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn parse_http_date(v: &HeaderValue) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(v.to_str().ok()?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `If-None-Match` against our (strong) tag, by weak comparison (RFC 9110 §13.1.2).
fn none_match(v: &HeaderValue, etag: &str) -> bool {
    let Ok(v) = v.to_str() else { return false };
    v.trim() == "*"
        || v.split(',')
            .map(|t| t.trim())
            .any(|t| t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// What `Range` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// Absent, not `bytes`, several ranges or malformed: the whole file (RFC 9110 allows a
    /// server to ignore `Range`).
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

pub(crate) fn parse_range(v: &str, size: u64) -> Ranged {
    let Some((unit, spec)) = v.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last N bytes.
        return match last.parse::<u64>() {
            Ok(0) => Ranged::Unsatisfiable,
            Ok(_) if size == 0 => Ranged::Unsatisfiable,
            Ok(n) => Ranged::Part(size.saturating_sub(n), size - 1),
            Err(_) => Ranged::Whole,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return Ranged::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return Ranged::Whole,
        }
    };
    if start >= size {
        Ranged::Unsatisfiable
    } else {
        Ranged::Part(start, end.min(size - 1))
    }
}

/// The strong validator of a file: its recorded SHA-256 when it is a data file the exporter
/// recorded with this size (so clients can check it against the manifest), else size and
/// modification time.
async fn etag_for(
    st: &AppState,
    rel: &str,
    size: u64,
    mtime: Option<DateTime<Utc>>,
) -> Result<String, ApiError> {
    let dataset = rel
        .split('/')
        .next()
        .and_then(|s| s.strip_prefix("dataset="))
        .filter(|name| {
            st.settings
                .opendata
                .datasets
                .iter()
                .any(|d| d.name == *name)
        });
    if dataset.is_some() {
        if let Some(f) = st.store.export_file(rel).await? {
            if u64::try_from(f.bytes).ok() == Some(size) {
                return Ok(format!("\"{}\"", f.sha256));
            }
        }
    }
    let (secs, nanos) = mtime.map_or((0, 0), |t| (t.timestamp(), t.timestamp_subsec_nanos()));
    Ok(format!("\"{size:x}-{secs:x}.{nanos:x}\""))
}

/// Streams `len` bytes of `file` from its current position, in chunks.
fn stream(file: tokio::fs::File, len: u64) -> Body {
    let chunks = futures_util::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let mut buf = vec![0u8; want];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            // Truncated underneath us: end the body early rather than pad it.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being served",
            ));
        }
        buf.truncate(n);
        Ok::<_, std::io::Error>(Some((Bytes::from(buf), (file, left - n as u64))))
    });
    Body::from_stream(chunks)
}

/// `GET /v1/opendata/files/{path}`: a published file.
#[utoipa::path(
    get,
    path = "/v1/opendata/files/{*path}",
    operation_id = "opendata_file",
    tag = "opendata",
    description = "A file under the export directory, e.g. \
                   `dataset=parking_occupancy/date=2026-11-28/part-0.parquet` or \
                   `meta/parking_occupancy/manifest.json`. Strong `ETag` (the SHA-256 of a data \
                   file, as in the manifest), `Last-Modified`, `If-None-Match` / \
                   `If-Modified-Since` (304), one `Range: bytes=…` (206, 416), `If-Range`.",
    params(("path" = String, Path, description = "Path relative to the export directory (may contain `/`)")),
    responses(
        (status = 200, description = "The file", content(
            (String = "application/vnd.apache.parquet"),
            (String = "text/csv"),
            (String = "application/json"),
        )),
        (status = 206, description = "The requested byte range (`Content-Range`)"),
        (status = 304, description = "Not modified (`If-None-Match` / `If-Modified-Since`)"),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::RangeNotSatisfiable,
        crate::openapi::TooManyRequests,
    ),
)]
pub async fn file(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let raw = uri.path().strip_prefix(FILES_PREFIX).unwrap_or_default();
    let rel = relative_path(raw)?;
    let not_found = || ApiError::NotFound(format!("file '{}'", clip(&rel)));
    // Canonical paths on both sides: a symlink (or anything else) that resolves outside the
    // output directory is not there.
    let root = tokio::fs::canonicalize(&st.settings.opendata.output_dir)
        .await
        .map_err(|_| not_found())?;
    let full = tokio::fs::canonicalize(root.join(&rel))
        .await
        .map_err(|_| not_found())?;
    let Ok(inside) = full.strip_prefix(&root) else {
        return Err(not_found());
    };
    let Some(content_type) = content_type(&full) else {
        return Err(not_found());
    };
    let inside = inside
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    // Size and time from the open handle: an export renaming a new file into place meanwhile
    // does not mix two versions into one response.
    let mut f = tokio::fs::File::open(&full)
        .await
        .map_err(|_| not_found())?;
    let meta = f.metadata().await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let size = meta.len();
    let mtime = meta.modified().ok().map(DateTime::<Utc>::from);
    let etag = etag_for(&st, &inside, size, mtime).await?;

    let mut res = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        // Late data replace files in place: caches must revalidate (cheap, via the ETag).
        .header(header::CACHE_CONTROL, "no-cache");
    if let Some(t) = mtime {
        res = res.header(header::LAST_MODIFIED, http_date(t));
    }

    // RFC 9110 §13.2.2: If-None-Match, when present, decides instead of If-Modified-Since.
    let not_modified = match headers.get(header::IF_NONE_MATCH) {
        Some(v) => none_match(v, &etag),
        None => match (headers.get(header::IF_MODIFIED_SINCE), mtime) {
            (Some(v), Some(t)) => {
                parse_http_date(v).is_some_and(|since| t.timestamp() <= since.timestamp())
            }
            _ => false,
        },
    };
    if not_modified {
        return res
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| ApiError::internal("open data: 304 response", e));
    }

    // If-Range: the range only applies to the version the client already has part of.
    let range_applies = match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => match v.to_str() {
            Ok(s) if s.trim().starts_with('"') => s.trim() == etag,
            _ => parse_http_date(v)
                .zip(mtime)
                .is_some_and(|(d, t)| d.timestamp() == t.timestamp()),
        },
    };
    let ranged = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) if range_applies => parse_range(v, size),
        _ => Ranged::Whole,
    };
    let built = match ranged {
        Ranged::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
        Ranged::Whole => res
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, size)
            .body(stream(f, size)),
        Ranged::Part(start, end) => {
            if let Err(e) = f.seek(std::io::SeekFrom::Start(start)).await {
                return Err(ApiError::internal("open data: seek", e));
            }
            let len = end - start + 1;
            res.status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_LENGTH, len)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"))
                .body(stream(f, len))
        }
    };
    built.map_err(|e| ApiError::internal("open data: file response", e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn accept(v: &str) -> Option<Rdf> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        negotiate(&h)
    }

    #[test]
    fn content_negotiation() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Rdf::JsonLd));
        assert_eq!(accept("text/turtle"), Some(Rdf::Turtle));
        assert_eq!(accept("application/ld+json"), Some(Rdf::JsonLd));
        assert_eq!(accept("application/json"), Some(Rdf::JsonLd));
        assert_eq!(accept("*/*"), Some(Rdf::JsonLd));
        assert_eq!(accept("text/*"), Some(Rdf::Turtle));
        assert_eq!(
            accept("application/ld+json;q=0.5, text/turtle"),
            Some(Rdf::Turtle)
        );
        assert_eq!(
            accept("text/turtle;q=0.9, application/ld+json"),
            Some(Rdf::JsonLd)
        );
        // A browser: */* matches, the default wins.
        assert_eq!(
            accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Some(Rdf::JsonLd)
        );
        assert_eq!(accept("application/xml"), None);
        assert_eq!(accept("text/turtle;q=0, application/xml"), None);
        // The most specific range decides: turtle is excluded although */* is fine.
        assert_eq!(accept("text/turtle;q=0, */*"), Some(Rdf::JsonLd));
    }

    #[test]
    fn ranges() {
        use Ranged::*;
        assert_eq!(parse_range("bytes=0-3", 10), Part(0, 3));
        assert_eq!(parse_range("bytes=4-", 10), Part(4, 9));
        assert_eq!(parse_range("bytes=5-100", 10), Part(5, 9));
        assert_eq!(parse_range("bytes=-4", 10), Part(6, 9));
        assert_eq!(parse_range("bytes=-40", 10), Part(0, 9));
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=999999999-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=3-1", 10), Whole);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), Whole);
        assert_eq!(parse_range("items=0-1", 10), Whole);
        assert_eq!(parse_range("bytes=x-", 10), Whole);
    }

    #[test]
    fn paths() {
        assert_eq!(
            relative_path("dataset=p/date=2026-11-28/part-0.parquet").unwrap(),
            "dataset=p/date=2026-11-28/part-0.parquet"
        );
        assert_eq!(relative_path("a%20b.csv").unwrap(), "a b.csv");
        for bad in [
            "..%2F..%2Fetc%2Fpasswd",
            "%2e%2e/x",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "%2Fetc%2Fpasswd",
            "..%5Cx",
            "a%00.csv",
            "a%zz",
            "%ff.csv",
        ] {
            let e = relative_path(bad).unwrap_err();
            assert!(matches!(e, ApiError::BadParam { .. }), "{bad}: {e}");
        }
        assert!(matches!(
            relative_path("meta/.manifest.json.tmp-1"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn urls_and_tags() {
        assert_eq!(
            file_url("http://h", "dataset=p/date=2026-11-28/part 0.csv"),
            "http://h/v1/opendata/files/dataset=p/date=2026-11-28/part%200.csv"
        );
        let tag = "\"abc\"";
        assert!(none_match(&HeaderValue::from_static("\"abc\""), tag));
        assert!(none_match(
            &HeaderValue::from_static("\"x\", W/\"abc\""),
            tag
        ));
        assert!(none_match(&HeaderValue::from_static("*"), tag));
        assert!(!none_match(&HeaderValue::from_static("\"abd\""), tag));
        let t = DateTime::parse_from_rfc3339("2026-11-28T10:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(t), "Sat, 28 Nov 2026 10:15:00 GMT");
        assert_eq!(
            parse_http_date(&HeaderValue::from_str(&http_date(t)).unwrap()),
            Some(t)
        );
    }
}
