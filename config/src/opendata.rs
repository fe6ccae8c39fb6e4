//! Open-data settings: the catalogue (publisher, contact, spatial coverage) and the datasets
//! that are exported on a schedule, with the privacy rules checked at startup.

use serde::{Deserialize, Serialize};

/// `[opendata]`: where files go, how they are written, and the DCAT-AP.de catalogue.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OpendataSettings {
    /// Directory the exports are written to (served under `/v1/opendata/files/`).
    pub output_dir: String,
    /// Public URL of the API (e.g. `https://data.dortmund.de`) for download URLs in manifests
    /// and the catalogue; empty = `http.public_base_url`, else the request's host.
    pub base_url: String,
    /// zstd level of Parquet files (1..=22; 9..15 is the GeoParquet community's advice).
    pub zstd_level: i32,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Memory (MiB) for putting a raw partition's readings into file order (about 24 bytes
    /// each); a partition that needs more is read in several passes, one per slice of sensors.
    pub sort_memory_mb: usize,
    /// A missed schedule is caught up for at most this many days back; partitions this recent
    /// are also re-checked for late data and re-exported when it changed them.
    pub catch_up_days: u32,
    /// Days back that are re-checked for late data at every run.
    pub late_data_days: u32,
    /// At most this many `/v1/exports/…` downloads run at once (more get 503).
    pub max_concurrent_exports: usize,
    pub catalog: CatalogSettings,
    pub datasets: Vec<DatasetSettings>,
}

impl Default for OpendataSettings {
    fn default() -> Self {
        Self {
            output_dir: "opendata".into(),
            base_url: String::new(),
            zstd_level: 12,
            row_group_rows: 131_072,
            sort_memory_mb: 512,
            catch_up_days: 31,
            late_data_days: 3,
            max_concurrent_exports: 2,
            catalog: CatalogSettings::default(),
            datasets: Vec::new(),
        }
    }
}

/// `[opendata.catalog]`: DCAT-AP.de catalogue metadata.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSettings {
    pub title_de: String,
    pub title_en: String,
    pub description_de: String,
    pub description_en: String,
    /// `foaf:name` of the publisher.
    pub publisher_name: String,
    /// IRI identifying the publisher (its homepage).
    pub publisher_url: String,
    /// Contact point (GovData convention 1: an e-mail or a contact-form URL is required).
    pub contact_name: String,
    pub contact_email: String,
    /// `dcatde:politicalGeocodingURI` and `dct:spatial` (Dortmund: regional key 059130000000).
    pub political_geocoding_uri: String,
    /// `dcatde:politicalGeocodingLevelURI`.
    pub political_geocoding_level_uri: String,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            title_de: "Stadtpuls Sensordaten".into(),
            title_en: "Stadtpuls sensor data".into(),
            description_de: "Offene Messdaten der städtischen LoRaWAN-Sensoren.".into(),
            description_en: "Open measurements of the city's LoRaWAN sensors.".into(),
            publisher_name: "Stadt Dortmund".into(),
            publisher_url: "https://www.dortmund.de".into(),
            contact_name: "Open Data".into(),
            contact_email: "opendata@dortmund.de".into(),
            political_geocoding_uri:
                "http://dcat-ap.de/def/politicalGeocoding/regionalKey/059130000000".into(),
            political_geocoding_level_uri:
                "http://dcat-ap.de/def/politicalGeocoding/Level/municipality".into(),
        }
    }
}

/// How a dataset's readings are exported.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Aggregation {
    /// Every reading, per sensor.
    #[serde(rename = "raw")]
    Raw,
    #[serde(rename = "15m")]
    Minutes15,
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
}

/// One file per day or per month (in the city's time zone).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    Day,
    Month,
}

/// File formats of a dataset.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// GeoParquet 1.1, zstd.
    Parquet,
    /// RFC 4180, UTF-8, comma.
    Csv,
    /// A second CSV for spreadsheet users: `;` separator and a UTF-8 BOM.
    CsvExcel,
}

/// Licences of the DCAT-AP.de list.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Licence {
    /// Datenlizenz Deutschland – Zero – 2.0.
    #[serde(rename = "dl-zero-de/2.0")]
    DlZeroDe20,
    /// Datenlizenz Deutschland – Namensnennung – 2.0 (attribution required).
    #[serde(rename = "dl-by-de/2.0")]
    DlByDe20,
}

/// `[[opendata.datasets]]`: one exported dataset.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetSettings {
    /// `[a-z0-9_]`, 1..64: folder name (`dataset=<name>`) and catalogue id.
    pub name: String,
    pub title_de: String,
    #[serde(default)]
    pub title_en: String,
    pub description_de: String,
    #[serde(default)]
    pub description_en: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// EU data theme code (TRAN, ENVI, …).
    #[serde(default = "default_theme")]
    pub theme: String,
    /// Quantity names; at least one.
    pub quantities: Vec<String>,
    /// Device kinds; empty = every kind (which counts as indoor data for the privacy rules).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Buildings whose devices (private ones included) this dataset may contain, aggregated.
    #[serde(default)]
    pub buildings: Vec<String>,
    /// Parking sites (uids) whose devices this dataset is limited to; empty = no limit.
    #[serde(default)]
    pub sites: Vec<String>,
    /// The dataset's own publisher (`dct:publisher`), e.g. a municipal company; empty = the
    /// catalogue's.
    #[serde(default)]
    pub publisher_name: String,
    #[serde(default)]
    pub publisher_url: String,
    #[serde(default = "default_aggregation")]
    pub aggregation: Aggregation,
    /// Aggregates of aggregated datasets.
    #[serde(default = "default_aggs")]
    pub aggs: Vec<String>,
    #[serde(default = "default_partitioning")]
    pub partitioning: Partitioning,
    /// Cron expression in the city's time zone (seconds minutes hours day-of-month month
    /// day-of-week), e.g. `0 30 2 * * *` = daily at 02:30.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    #[serde(default = "default_formats")]
    pub formats: Vec<ExportFormat>,
    #[serde(default = "default_licence")]
    pub licence: Licence,
    /// Attribution text for dl-by-de/2.0 (`dcatde:licenseAttributionByText`); default the
    /// publisher's name.
    #[serde(default)]
    pub attribution: String,
    /// Indoor cells resting on fewer rooms or desks than this are suppressed (at least 3).
    #[serde(default = "default_min_group")]
    pub min_group_size: u32,
}

fn default_theme() -> String {
    "TRAN".into()
}
fn default_aggregation() -> Aggregation {
    Aggregation::Raw
}
fn default_aggs() -> Vec<String> {
    vec!["avg".into(), "min".into(), "max".into()]
}
fn default_partitioning() -> Partitioning {
    Partitioning::Day
}
fn default_schedule() -> String {
    "0 30 2 * * *".into()
}
fn default_formats() -> Vec<ExportFormat> {
    vec![ExportFormat::Parquet, ExportFormat::Csv]
}
fn default_licence() -> Licence {
    Licence::DlZeroDe20
}
fn default_min_group() -> u32 {
    3
}

/// Device kinds whose data describe people indoors (presence, desk use, room climate).
pub const INDOOR_KINDS: &[&str] = &["room_climate", "desk_occupancy", "people_counter"];

/// EU data-theme codes (DCAT-AP.de convention 30).
pub const THEMES: &[&str] = &[
    "AGRI", "ECON", "EDUC", "ENER", "ENVI", "GOVE", "HEAL", "INTR", "JUST", "REGI", "SOCI", "TECH",
    "TRAN",
];

impl DatasetSettings {
    /// Whether the dataset may contain indoor data (and so falls under the privacy rules).
    pub fn may_contain_indoor(&self) -> bool {
        self.kinds.is_empty()
            || self
                .kinds
                .iter()
                .any(|k| INDOOR_KINDS.contains(&k.as_str()))
            || !self.buildings.is_empty()
    }

    /// Checks names, values and the privacy rules; `Err((key suffix, problem))`.
    pub fn check(&self, kinds: &[&str], quantities: &[&str]) -> Result<(), (String, String)> {
        let bad = |key: &str, problem: String| Err((key.to_string(), problem));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return bad(
                "name",
                format!("'{}' must be 1..64 of [a-z0-9_]", self.name),
            );
        }
        if self.title_de.trim().is_empty() || self.description_de.trim().is_empty() {
            return bad(
                "title_de",
                "title_de and description_de are required (DCAT-AP.de)".into(),
            );
        }
        if self.quantities.is_empty() {
            return bad("quantities", "at least one quantity".into());
        }
        for q in &self.quantities {
            if !quantities.contains(&q.as_str()) {
                return bad("quantities", format!("unknown quantity '{q}'"));
            }
        }
        for k in &self.kinds {
            if !kinds.contains(&k.as_str()) {
                return bad("kinds", format!("unknown device kind '{k}'"));
            }
        }
        if !THEMES.contains(&self.theme.as_str()) {
            return bad(
                "theme",
                format!(
                    "'{}' is not an EU data theme ({})",
                    self.theme,
                    THEMES.join(", ")
                ),
            );
        }
        for a in &self.aggs {
            if !["avg", "min", "max"].contains(&a.as_str()) {
                return bad("aggs", format!("'{a}' is not avg, min or max"));
            }
        }
        if self.aggregation != Aggregation::Raw && self.aggs.is_empty() {
            return bad(
                "aggs",
                "an aggregated dataset needs at least one of avg, min, max".into(),
            );
        }
        if self.formats.is_empty() {
            return bad("formats", "at least one format".into());
        }
        if self.aggregation == Aggregation::Day && self.partitioning == Partitioning::Day {
            // Allowed, but one row per group and day: fine. Nothing to check.
        }
        // Privacy (notes §6): indoor presence, desk/room occupancy and indoor climate only
        // aggregated over ≥ 15 min and over groups of at least 3 rooms/desks.
        if self.may_contain_indoor() {
            let why = if self.kinds.is_empty() {
                "selects every device kind, indoor ones included".to_string()
            } else if !self.buildings.is_empty() {
                "includes buildings".to_string()
            } else {
                "includes indoor device kinds".to_string()
            };
            if self.aggregation == Aggregation::Raw {
                return bad(
                    "aggregation",
                    format!("the dataset {why}: indoor data may only be published aggregated over ≥ 15 min buckets (15m, 1h or 1d), never raw"),
                );
            }
            if self.min_group_size < 3 {
                return bad(
                    "min_group_size",
                    format!("the dataset {why}: indoor cells need at least 3 rooms or desks"),
                );
            }
        }
        Ok(())
    }
}
