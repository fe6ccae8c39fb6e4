//! What has been published: the input of the manifest, the dataset listing and the DCAT
//! catalogue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stadtpuls_config::{DatasetSettings, ExportFormat};

/// `meta/<name>/manifest.json`: every data file and the sensors (or groups) tables of a
/// dataset. The API serves it with a download URL per file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub dataset: String,
    /// When the manifest was written; null in the API's answer before the first export.
    pub modified: Option<String>,
    pub files: Vec<ManifestFile>,
    pub sensors: Vec<ManifestFile>,
}

/// A file of a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// `parquet`, `csv` or `csv_excel`.
    pub format: String,
    /// Data files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Relative to `opendata.output_dir`, with `/`.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
    pub modified: String,
    /// Data files only: the partition's window `[start, end)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// One published data file.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishedFile {
    /// Relative to `opendata.output_dir`, with `/` separators, e.g.
    /// `dataset=parking_occupancy/date=2026-11-28/part-0.parquet`.
    pub path: String,
    pub format: ExportFormat,
    /// `2026-11-28` (day) or `2026-11` (month).
    pub partition: String,
    pub rows: u64,
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// When this file was (re)written.
    pub modified: DateTime<Utc>,
    /// The partition's time range `[start, end)` in UTC.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A dataset with what has been published of it so far.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishedDataset {
    pub settings: DatasetSettings,
    /// Data files, ordered by partition then format.
    pub files: Vec<PublishedFile>,
    /// `[min lon, min lat, max lon, max lat]` of the sensors or groups in the files.
    pub bbox: Option<[f64; 4]>,
}

impl PublishedDataset {
    /// First partition start and last partition end (`dct:temporal`).
    pub fn temporal(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let start = self.files.iter().map(|f| f.start).min()?;
        let end = self.files.iter().map(|f| f.end).max()?;
        Some((start, end))
    }

    /// Newest `modified` of any file (`dct:modified`).
    pub fn modified(&self) -> Option<DateTime<Utc>> {
        self.files.iter().map(|f| f.modified).max()
    }

    /// The files of one format.
    pub fn files_of(&self, format: ExportFormat) -> impl Iterator<Item = &PublishedFile> {
        self.files.iter().filter(move |f| f.format == format)
    }
}

/// IANA media type of a format.
pub fn media_type(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Parquet => "application/vnd.apache.parquet",
        ExportFormat::Csv | ExportFormat::CsvExcel => "text/csv",
    }
}

/// EU file-type vocabulary IRI of a format (DCAT-AP.de convention 31).
pub fn file_type_iri(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Parquet => {
            "http://publications.europa.eu/resource/authority/file-type/PARQUET"
        }
        ExportFormat::Csv | ExportFormat::CsvExcel => {
            "http://publications.europa.eu/resource/authority/file-type/CSV"
        }
    }
}
