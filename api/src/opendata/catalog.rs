//! The open-data catalogue (DCAT-AP.de as JSON-LD or Turtle), the datasets with their files and
//! last run, each dataset's manifest with download URLs, and the recorded runs: handlers and
//! their response types.

use super::{base_url, configured, file_url};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::params::{clip, utc, Params};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use stadtpuls_config::{Aggregation, Partitioning};
use stadtpuls_opendata_export::dcat::{self, CatalogInput};
use stadtpuls_opendata_export::export::format_name;
use stadtpuls_opendata_export::model::{Manifest, ManifestFile, PublishedDataset};
use stadtpuls_opendata_export::published::{licence_iri, published, published_dataset};
use stadtpuls_store::opendata::ExportRun;
use std::path::PathBuf;
use utoipa::ToSchema;

type Q = Query;

// ---- response types -------------------------------------------------------------------------

/// A time range `[start, end)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpendataPeriod {
    pub start: String,
    pub end: String,
}

/// A published data file.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpendataFile {
    /// `parquet`, `csv` or `csv_excel`.
    #[schema(example = "parquet")]
    pub format: String,
    /// `2026-11-28` (day) or `2026-11` (month).
    pub partition: String,
    /// Download URL (`/v1/opendata/files/…`).
    pub url: String,
    pub rows: u64,
    pub bytes: u64,
    /// Lower-case hex; also the file's `ETag`.
    pub sha256: String,
    pub modified: String,
}

/// A recorded export run.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpendataRun {
    pub id: i64,
    pub dataset: String,
    /// `schedule`, `catch_up`, `late_data` or `manual`.
    pub trigger: String,
    /// `running`, `ok`, `empty` or `failed`.
    pub status: String,
    pub window_start: String,
    pub window_end: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub partitions: i32,
    pub rows: i64,
    pub bytes: i64,
    pub error: Option<String>,
}

impl From<&ExportRun> for OpendataRun {
    fn from(r: &ExportRun) -> Self {
        OpendataRun {
            id: r.id,
            dataset: r.dataset.clone(),
            trigger: r.trigger.clone(),
            status: r.status.clone(),
            window_start: utc(r.window_start),
            window_end: utc(r.window_end),
            started_at: utc(r.started_at),
            finished_at: r.finished_at.map(utc),
            duration_ms: r.finished_at.map(|f| (f - r.started_at).num_milliseconds()),
            partitions: r.partitions,
            rows: r.rows,
            bytes: r.bytes,
            error: r.error.clone(),
        }
    }
}

/// An open-data dataset with what has been published of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpendataDataset {
    #[schema(example = "parking_occupancy")]
    pub name: String,
    /// The dataset's IRI in the catalogue (this resource).
    pub url: String,
    pub title_de: String,
    pub title_en: String,
    pub description_de: String,
    pub description_en: String,
    /// dcat-ap.de licence IRI.
    #[schema(example = "http://dcat-ap.de/def/licenses/dl-zero-de/2.0")]
    pub licence: String,
    /// `raw`, `15m`, `1h` or `1d`.
    #[schema(value_type = String)]
    pub aggregation: Aggregation,
    /// `day` or `month`.
    #[schema(value_type = String)]
    pub partitioning: Partitioning,
    pub formats: Vec<String>,
    /// Cron expression (city time zone).
    pub schedule: String,
    /// First partition start to last partition end; null before the first export.
    pub temporal: Option<OpendataPeriod>,
    pub modified: Option<String>,
    /// Data rows over all partitions (counted once, not per format).
    pub rows: u64,
    /// Bytes of all files, every format.
    pub bytes: u64,
    /// `[min lon, min lat, max lon, max lat]` of the sensors or groups.
    #[schema(value_type = Option<Vec<f64>>)]
    pub bbox: Option<[f64; 4]>,
    pub last_run: Option<OpendataRun>,
    pub manifest_url: String,
    pub files: Vec<OpendataFile>,
}

impl OpendataDataset {
    fn new(base: &str, d: &PublishedDataset, last_run: Option<&ExportRun>) -> Self {
        let s = &d.settings;
        let files = d
            .files
            .iter()
            .map(|f| OpendataFile {
                format: format_name(f.format).to_string(),
                partition: f.partition.clone(),
                url: file_url(base, &f.path),
                rows: f.rows,
                bytes: f.bytes,
                sha256: f.sha256.clone(),
                modified: utc(f.modified),
            })
            .collect();
        let url = format!("{base}/v1/opendata/datasets/{}", s.name);
        OpendataDataset {
            name: s.name.clone(),
            manifest_url: format!("{url}/manifest.json"),
            url,
            title_de: s.title_de.clone(),
            title_en: s.title_en.clone(),
            description_de: s.description_de.clone(),
            description_en: s.description_en.clone(),
            licence: licence_iri(s.licence).to_string(),
            aggregation: s.aggregation,
            partitioning: s.partitioning,
            formats: s
                .formats
                .iter()
                .map(|f| format_name(*f).to_string())
                .collect(),
            schedule: s.schedule.clone(),
            temporal: d.temporal().map(|(start, end)| OpendataPeriod {
                start: utc(start),
                end: utc(end),
            }),
            modified: d.modified().map(utc),
            rows: d.rows(),
            bytes: d.bytes(),
            bbox: d.bbox,
            last_run: last_run.map(OpendataRun::from),
            files,
        }
    }
}

/// All configured datasets.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpendataDatasetList {
    pub items: Vec<OpendataDataset>,
    pub total_count: u64,
}

/// Recorded export runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpendataRunList {
    pub items: Vec<OpendataRun>,
    pub total_count: u64,
}

/// A file of a manifest: as the exporter wrote it, plus its download URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpendataManifestFile {
    pub format: String,
    /// Data files only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Relative to the export directory.
    pub path: String,
    /// Download URL.
    pub url: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub modified: String,
    /// Data files only: the partition's window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

impl OpendataManifestFile {
    fn new(base: &str, f: ManifestFile) -> Self {
        // Every field by name: a field the exporter adds must be decided on here.
        let ManifestFile {
            format,
            partition,
            path,
            rows,
            bytes,
            sha256,
            modified,
            start,
            end,
        } = f;
        OpendataManifestFile {
            url: file_url(base, &path),
            format,
            partition,
            path,
            rows,
            bytes,
            sha256,
            modified,
            start,
            end,
        }
    }
}

/// A dataset's manifest: its data files and its sensors (or groups) tables.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpendataManifest {
    pub dataset: String,
    pub modified: Option<String>,
    pub files: Vec<OpendataManifestFile>,
    pub sensors: Vec<OpendataManifestFile>,
}

impl OpendataManifest {
    fn new(base: &str, m: Manifest) -> Self {
        let Manifest {
            dataset,
            modified,
            files,
            sensors,
        } = m;
        let with_urls = |files: Vec<ManifestFile>| {
            files
                .into_iter()
                .map(|f| OpendataManifestFile::new(base, f))
                .collect()
        };
        OpendataManifest {
            dataset,
            modified,
            files: with_urls(files),
            sensors: with_urls(sensors),
        }
    }
}

// ---- handlers ----------------------------------------------------------------------------------

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
        (status = 200, description = "OK", body = OpendataDatasetList),
        crate::openapi::BadRequest,
    ),
)]
pub async fn datasets(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Result<Json<OpendataDatasetList>, ApiError> {
    Params::new(q).finish()?;
    let base = base_url(&st, &headers, &uri)?;
    let all = published(&st.store, &st.settings).await?;
    let mut items = Vec::with_capacity(all.len());
    for d in &all {
        let run = last_run(&st, &d.settings.name).await?;
        items.push(OpendataDataset::new(&base, d, run.as_ref()));
    }
    Ok(Json(OpendataDatasetList {
        total_count: items.len() as u64,
        items,
    }))
}

/// `GET /v1/opendata/datasets/{name}`: one dataset, 404 when none of that name is configured.
#[utoipa::path(
    get,
    path = "/v1/opendata/datasets/{name}",
    operation_id = "opendata_dataset",
    tag = "opendata",
    params(("name" = String, Path, description = "Dataset name, e.g. `parking_occupancy`")),
    responses(
        (status = 200, description = "OK", body = OpendataDataset),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
    ),
)]
pub async fn dataset(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Json<OpendataDataset>, ApiError> {
    Params::new(q).finish()?;
    let ds = configured(&st, &name)?;
    let base = base_url(&st, &headers, &uri)?;
    let d = published_dataset(&st.store, ds).await?;
    let run = last_run(&st, &ds.name).await?;
    Ok(Json(OpendataDataset::new(&base, &d, run.as_ref())))
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
        (status = 200, description = "OK", body = OpendataManifest),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
    ),
)]
pub async fn manifest(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Json<OpendataManifest>, ApiError> {
    Params::new(q).finish()?;
    let ds = configured(&st, &name)?;
    let base = base_url(&st, &headers, &uri)?;
    let path = PathBuf::from(&st.settings.opendata.output_dir)
        .join("meta")
        .join(&ds.name)
        .join("manifest.json");
    // The file on disk is the manifest (with the sensors tables' hashes, which are recorded
    // nowhere else); the API only adds URLs.
    let manifest: Manifest = match tokio::fs::read(&path).await {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return Err(ApiError::internal("open data: manifest is not readable", e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest {
            dataset: ds.name.clone(),
            modified: None,
            files: Vec::new(),
            sensors: Vec::new(),
        },
        Err(e) => return Err(ApiError::internal("open data: manifest unreadable", e)),
    };
    Ok(Json(OpendataManifest::new(&base, manifest)))
}

/// `GET /v1/opendata/runs?dataset=&limit=`: recorded export runs, newest first.
#[utoipa::path(
    get,
    path = "/v1/opendata/runs",
    operation_id = "opendata_runs",
    tag = "opendata",
    params(crate::openapi::OpendataRunsParams),
    responses(
        (status = 200, description = "OK", body = OpendataRunList),
        crate::openapi::BadRequest,
    ),
)]
pub async fn runs(
    State(st): State<AppState>,
    Query(q): Q,
) -> Result<Json<OpendataRunList>, ApiError> {
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
    let items: Vec<OpendataRun> = list.iter().map(OpendataRun::from).collect();
    Ok(Json(OpendataRunList {
        total_count: items.len() as u64,
        items,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

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
}
