//! What is published right now, read back from the export bookkeeping: every configured dataset
//! with its recorded files and the bounding box of its sensors (or groups). This feeds the
//! open-data API (dataset listing, manifest URLs, DCAT catalogue), so it reads only what the
//! exporter recorded and never touches the files themselves.

use crate::export::{format_name, selection};
use crate::model::{PublishedDataset, PublishedFile};
use stadtpuls_config::{DatasetSettings, ExportFormat, Licence, Settings};
use stadtpuls_store::opendata::ExportFileRecord;
use stadtpuls_store::{Store, StoreError};

const FORMATS: [ExportFormat; 3] = [
    ExportFormat::Parquet,
    ExportFormat::Csv,
    ExportFormat::CsvExcel,
];

/// The format a file was recorded under (the inverse of [`format_name`]).
pub fn parse_format(name: &str) -> Option<ExportFormat> {
    FORMATS.into_iter().find(|f| format_name(*f) == name)
}

/// The dcat-ap.de licence IRI (the one the catalogue puts on every distribution).
pub fn licence_iri(licence: Licence) -> &'static str {
    match licence {
        Licence::DlZeroDe20 => "http://dcat-ap.de/def/licenses/dl-zero-de/2.0",
        Licence::DlByDe20 => "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
    }
}

impl PublishedDataset {
    /// The format whose files count the dataset's rows: Parquet when published, else the first
    /// configured one (every format of a partition holds the same rows, so summing over all
    /// formats would count each row several times).
    pub fn row_format(&self) -> Option<ExportFormat> {
        if self.files.iter().any(|f| f.format == ExportFormat::Parquet) {
            Some(ExportFormat::Parquet)
        } else {
            self.settings.formats.first().copied()
        }
    }

    /// Data rows over all partitions.
    pub fn rows(&self) -> u64 {
        self.row_format()
            .map_or(0, |format| self.files_of(format).map(|f| f.rows).sum())
    }

    /// Bytes of all data files, every format.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

fn file(record: ExportFileRecord) -> Option<PublishedFile> {
    let Some(format) = parse_format(&record.format) else {
        tracing::warn!(dataset = %record.dataset, format = %record.format, path = %record.path,
            "recorded export file has an unknown format; not listed");
        return None;
    };
    Some(PublishedFile {
        path: record.path,
        format,
        partition: record.partition,
        rows: u64::try_from(record.rows).unwrap_or(0),
        bytes: u64::try_from(record.bytes).unwrap_or(0),
        sha256: record.sha256,
        modified: record.modified,
        start: record.window_start,
        end: record.window_end,
    })
}

/// One configured dataset as published: its files by partition, then in the configured format
/// order; the bbox of its located sensors or groups once it has files.
pub async fn published_dataset(
    store: &Store,
    ds: &DatasetSettings,
) -> Result<PublishedDataset, StoreError> {
    let mut files: Vec<PublishedFile> = store
        .export_files(&ds.name)
        .await?
        .into_iter()
        .filter_map(file)
        .collect();
    let rank = |f: ExportFormat| {
        ds.formats
            .iter()
            .position(|c| *c == f)
            .unwrap_or(ds.formats.len())
    };
    files.sort_by(|a, b| {
        (a.start, &a.partition, rank(a.format)).cmp(&(b.start, &b.partition, rank(b.format)))
    });
    // Before the first export nothing is published, so nothing has an extent; that also saves
    // the sensors query for datasets that never ran.
    let bbox = if files.is_empty() {
        None
    } else {
        bbox(store, ds).await?
    };
    Ok(PublishedDataset {
        settings: ds.clone(),
        files,
        bbox,
    })
}

/// `[min lon, min lat, max lon, max lat]` of the dataset's sensors table (what the exporter
/// writes to `meta/<name>/sensors.*`).
async fn bbox(store: &Store, ds: &DatasetSettings) -> Result<Option<[f64; 4]>, StoreError> {
    let sensors = store.export_sensors(&selection(ds)).await?;
    Ok(sensors
        .iter()
        .filter_map(|s| Some((s.lon?, s.lat?)))
        .filter(|(lon, lat)| lon.is_finite() && lat.is_finite())
        .fold(None, |acc: Option<[f64; 4]>, (lon, lat)| {
            Some(match acc {
                None => [lon, lat, lon, lat],
                Some([a, b, c, d]) => [a.min(lon), b.min(lat), c.max(lon), d.max(lat)],
            })
        }))
}

/// Every configured dataset with what has been published of it, in configuration order.
pub async fn published(
    store: &Store,
    settings: &Settings,
) -> Result<Vec<PublishedDataset>, StoreError> {
    let mut out = Vec::with_capacity(settings.opendata.datasets.len());
    for ds in &settings.opendata.datasets {
        out.push(published_dataset(store, ds).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::dcat::{to_turtle, CatalogInput};
    use chrono::{TimeZone, Utc};

    #[test]
    fn format_names_round_trip() {
        for f in FORMATS {
            assert_eq!(parse_format(format_name(f)), Some(f));
        }
        assert_eq!(parse_format("xlsx"), None);
    }

    #[test]
    fn licence_iris_are_the_catalogues() {
        let settings = Settings::default();
        for licence in [Licence::DlZeroDe20, Licence::DlByDe20] {
            let ds: DatasetSettings = serde_json::from_value(serde_json::json!({
                "name": "x", "title_de": "X", "description_de": "X",
                "quantities": ["occupied"], "kinds": ["parking_bay"],
            }))
            .unwrap();
            let dataset = PublishedDataset {
                settings: DatasetSettings { licence, ..ds },
                files: Vec::new(),
                bbox: None,
            };
            let turtle = to_turtle(&CatalogInput {
                catalog: &settings.opendata.catalog,
                base_url: "https://data.example.org",
                datasets: &[dataset],
                now: Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap(),
            })
            .unwrap();
            assert!(
                turtle.contains(&format!("<{}>", licence_iri(licence))),
                "{turtle}"
            );
        }
    }
}
