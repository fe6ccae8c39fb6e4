//! The DCAT-AP.de 2.0 catalogue of the published open-data datasets: one RDF graph (catalogue,
//! publisher, contact point, datasets, distributions) built once from the catalogue settings and
//! what has been published, then serialised to JSON-LD and to Turtle for the harvesters of
//! Open.NRW, GovData and data.europa.eu. It follows the GovData conventions: a `vcard:hasEmail`
//! contact point (K1), the political geocoding in `dcatde:politicalGeocodingURI` and in
//! `dct:spatial` (K8, K11), EU data themes (K30) and file types with IANA media types (K31),
//! a `dct:license` from the dcat-ap.de list on every distribution (K32) with
//! `dcatde:licenseAttributionByText` for dl-by-de (K35), no place or time in titles (K19, they go
//! to `dct:spatial` and `dct:temporal`) and no `dct:source` (K21). A partitioned time series is
//! one dataset with one distribution per format (not one per file): its `dcat:accessURL` is the
//! dataset's manifest and every published file of the format is a `dcat:downloadURL`, in
//! partition order. Auxiliary nodes (contact point, period, location) get `#fragment` IRIs
//! instead of blank nodes, so the output is deterministic and harvesters see stable
//! identifiers; the bounding box is a GeoSPARQL WKT literal in the default CRS84 (lon lat).

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use oxjsonld::JsonLdSerializer;
use oxrdf::vocab::{geosparql, rdf, xsd};
use oxrdf::{Graph, Literal, NamedNode, Term, Triple};
use oxttl::TurtleSerializer;
use serde_json::{Map, Value};
use stadtpuls_config::{CatalogSettings, ExportFormat, Licence, Partitioning};

use crate::model::{file_type_iri, media_type, PublishedDataset, PublishedFile};

const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const DCATDE: &str = "http://dcat-ap.de/def/dcatde/";
const FOAF: &str = "http://xmlns.com/foaf/0.1/";
const VCARD: &str = "http://www.w3.org/2006/vcard/ns#";
const XSD: &str = "http://www.w3.org/2001/XMLSchema#";
const GSP: &str = "http://www.opengis.net/ont/geosparql#";

/// Prefixes of both serialisations (Turtle `@prefix`, JSON-LD `@context`).
const PREFIXES: &[(&str, &str)] = &[
    ("dcat", DCAT),
    ("dct", DCT),
    ("dcatde", DCATDE),
    ("foaf", FOAF),
    ("vcard", VCARD),
    ("xsd", XSD),
    ("gsp", GSP),
];

const LANGUAGE_DEU: &str = "http://publications.europa.eu/resource/authority/language/DEU";
const DATA_THEME: &str = "http://publications.europa.eu/resource/authority/data-theme/";
const FREQUENCY_DAILY: &str = "http://publications.europa.eu/resource/authority/frequency/DAILY";
const FREQUENCY_MONTHLY: &str =
    "http://publications.europa.eu/resource/authority/frequency/MONTHLY";
const LICENCE_DL_ZERO_DE: &str = "http://dcat-ap.de/def/licenses/dl-zero-de/2.0";
const LICENCE_DL_BY_DE: &str = "http://dcat-ap.de/def/licenses/dl-by-de/2.0";
const IANA_MEDIA_TYPES: &str = "http://www.iana.org/assignments/media-types/";
const GEOPARQUET_1_1: &str = "https://geoparquet.org/releases/v1.1.0/";

/// What the catalogue describes.
#[derive(Clone, Copy, Debug)]
pub struct CatalogInput<'a> {
    pub catalog: &'a CatalogSettings,
    /// Absolute base URL without trailing slash, e.g. "https://data.example.org"; IRIs and URLs
    /// are built from it.
    pub base_url: &'a str,
    pub datasets: &'a [PublishedDataset],
    /// dct:modified of the catalogue (newest dataset modification, or this when none).
    pub now: DateTime<Utc>,
}

/// Why the catalogue could not be built or serialised.
#[derive(Debug, thiserror::Error)]
pub enum DcatError {
    /// An IRI built from the base URL or a catalogue setting is not a valid absolute IRI.
    #[error("invalid IRI for {what} '{iri}': {error}")]
    InvalidIri {
        what: &'static str,
        iri: String,
        error: oxrdf::IriParseError,
    },
    /// The Turtle serialiser failed.
    #[error("Turtle serialisation failed: {0}")]
    Turtle(std::io::Error),
    /// The JSON-LD serialiser failed.
    #[error("JSON-LD serialisation failed: {0}")]
    JsonLd(std::io::Error),
    /// The JSON-LD document could not be re-read to compact its keys.
    #[error("JSON-LD compaction failed: {0}")]
    Json(serde_json::Error),
    /// A serialiser produced bytes that are not UTF-8.
    #[error("serialised catalogue is not UTF-8: {0}")]
    Utf8(std::string::FromUtf8Error),
}

/// The catalogue as an RDF graph.
pub fn graph(input: &CatalogInput) -> Result<Graph, DcatError> {
    Ok(triples(input)?.into_iter().collect())
}

/// The catalogue as JSON-LD (one `@graph`, keys compacted with the `dcat`, `dct`, … prefixes).
pub fn to_jsonld(input: &CatalogInput) -> Result<String, DcatError> {
    let mut serializer = JsonLdSerializer::new();
    for (name, namespace) in PREFIXES {
        serializer =
            serializer
                .with_prefix(*name, *namespace)
                .map_err(|error| DcatError::InvalidIri {
                    what: "prefix",
                    iri: (*namespace).to_string(),
                    error,
                })?;
    }
    let mut writer = serializer.for_writer(Vec::new());
    for triple in &triples(input)? {
        writer
            .serialize_quad(triple.as_ref().in_graph(oxrdf::GraphNameRef::DefaultGraph))
            .map_err(DcatError::JsonLd)?;
    }
    let bytes = writer.finish().map_err(DcatError::JsonLd)?;
    compact_jsonld(&bytes)
}

/// The catalogue as Turtle.
pub fn to_turtle(input: &CatalogInput) -> Result<String, DcatError> {
    let mut serializer = TurtleSerializer::new();
    for (name, namespace) in PREFIXES {
        serializer =
            serializer
                .with_prefix(*name, *namespace)
                .map_err(|error| DcatError::InvalidIri {
                    what: "prefix",
                    iri: (*namespace).to_string(),
                    error,
                })?;
    }
    let mut writer = serializer.for_writer(Vec::new());
    for triple in &triples(input)? {
        writer.serialize_triple(triple).map_err(DcatError::Turtle)?;
    }
    let bytes = writer.finish().map_err(DcatError::Turtle)?;
    String::from_utf8(bytes).map_err(DcatError::Utf8)
}

fn dcat(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{DCAT}{local}"))
}
fn dct(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{DCT}{local}"))
}
fn dcatde(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{DCATDE}{local}"))
}
fn foaf(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{FOAF}{local}"))
}
fn vcard(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{VCARD}{local}"))
}
/// A constant IRI of this module.
fn known(iri: &str) -> NamedNode {
    NamedNode::new_unchecked(iri)
}

/// An IRI built from the base URL or a setting: checked.
fn checked(what: &'static str, iri: String) -> Result<NamedNode, DcatError> {
    NamedNode::new(iri.as_str()).map_err(|error| DcatError::InvalidIri { what, iri, error })
}

fn lang(text: &str, tag: &str) -> Literal {
    Literal::new_language_tagged_literal_unchecked(text.trim(), tag)
}

fn date_time(at: DateTime<Utc>) -> Literal {
    Literal::new_typed_literal(
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
        xsd::DATE_TIME,
    )
}

/// Collects triples in the order they are serialised, dropping repeats.
#[derive(Debug, Default)]
struct Triples {
    list: Vec<Triple>,
    seen: HashSet<Triple>,
}

impl Triples {
    fn add(&mut self, subject: &NamedNode, predicate: NamedNode, object: impl Into<Term>) {
        let triple = Triple::new(subject.clone(), predicate, object);
        if self.seen.insert(triple.clone()) {
            self.list.push(triple);
        }
    }

    /// `de` and, when not empty, `en` language-tagged values.
    fn add_de_en(&mut self, subject: &NamedNode, predicate: NamedNode, de: &str, en: &str) {
        if !de.trim().is_empty() {
            self.add(subject, predicate.clone(), lang(de, "de"));
        }
        if !en.trim().is_empty() {
            self.add(subject, predicate, lang(en, "en"));
        }
    }
}

/// Nodes shared by the catalogue and all datasets.
#[derive(Debug)]
struct Shared {
    base: String,
    publisher: NamedNode,
    contact: Option<NamedNode>,
    geocoding: Option<NamedNode>,
    geocoding_level: Option<NamedNode>,
}

fn triples(input: &CatalogInput) -> Result<Vec<Triple>, DcatError> {
    let settings = input.catalog;
    let base = input.base_url.trim().trim_end_matches('/').to_string();
    let catalog = checked("catalogue", format!("{base}/v1/opendata/catalog"))?;
    let publisher_url = settings.publisher_url.trim();
    let homepage = if publisher_url.is_empty() {
        None
    } else {
        Some(checked("publisher_url", publisher_url.to_string())?)
    };
    let publisher = match &homepage {
        Some(url) => url.clone(),
        None => checked("publisher", format!("{}#publisher", catalog.as_str()))?,
    };
    let optional = |what: &'static str, iri: &str| {
        let iri = iri.trim();
        (!iri.is_empty())
            .then(|| checked(what, iri.to_string()))
            .transpose()
    };
    let has_contact =
        !settings.contact_name.trim().is_empty() || !settings.contact_email.trim().is_empty();
    let shared = Shared {
        contact: has_contact
            .then(|| checked("contact point", format!("{}#contact", catalog.as_str())))
            .transpose()?,
        geocoding: optional("political_geocoding_uri", &settings.political_geocoding_uri)?,
        geocoding_level: optional(
            "political_geocoding_level_uri",
            &settings.political_geocoding_level_uri,
        )?,
        base,
        publisher,
    };

    let mut out = Triples::default();
    out.add(&catalog, known(rdf::TYPE.as_str()), dcat("Catalog"));
    out.add_de_en(
        &catalog,
        dct("title"),
        &settings.title_de,
        &settings.title_en,
    );
    out.add_de_en(
        &catalog,
        dct("description"),
        &settings.description_de,
        &settings.description_en,
    );
    out.add(&catalog, dct("publisher"), shared.publisher.clone());
    out.add(&catalog, dct("language"), known(LANGUAGE_DEU));
    if let Some(homepage) = homepage {
        out.add(&catalog, foaf("homepage"), homepage);
    }
    let modified = input
        .datasets
        .iter()
        .filter_map(PublishedDataset::modified)
        .max()
        .unwrap_or(input.now);
    out.add(&catalog, dct("modified"), date_time(modified));
    if let Some(geocoding) = &shared.geocoding {
        out.add(&catalog, dct("spatial"), geocoding.clone());
    }
    let mut dataset_iris = Vec::with_capacity(input.datasets.len());
    for dataset in input.datasets {
        let iri = dataset_iri(&shared, dataset)?;
        out.add(&catalog, dcat("dataset"), iri.clone());
        dataset_iris.push(iri);
    }

    out.add(
        &shared.publisher,
        known(rdf::TYPE.as_str()),
        foaf("Organization"),
    );
    if !settings.publisher_name.trim().is_empty() {
        out.add(
            &shared.publisher,
            foaf("name"),
            Literal::new_simple_literal(settings.publisher_name.trim()),
        );
    }
    if let Some(contact) = &shared.contact {
        out.add(contact, known(rdf::TYPE.as_str()), vcard("Organization"));
        if !settings.contact_name.trim().is_empty() {
            out.add(
                contact,
                vcard("fn"),
                Literal::new_simple_literal(settings.contact_name.trim()),
            );
        }
        let email = settings.contact_email.trim();
        let email = email.strip_prefix("mailto:").unwrap_or(email);
        if !email.is_empty() {
            out.add(
                contact,
                vcard("hasEmail"),
                checked("contact_email", format!("mailto:{email}"))?,
            );
        }
    }

    for (dataset, iri) in input.datasets.iter().zip(&dataset_iris) {
        add_dataset(&mut out, input, &shared, dataset, iri)?;
    }
    Ok(out.list)
}

fn dataset_iri(shared: &Shared, dataset: &PublishedDataset) -> Result<NamedNode, DcatError> {
    checked(
        "dataset",
        format!(
            "{}/v1/opendata/datasets/{}",
            shared.base, dataset.settings.name
        ),
    )
}

fn add_dataset(
    out: &mut Triples,
    input: &CatalogInput,
    shared: &Shared,
    dataset: &PublishedDataset,
    iri: &NamedNode,
) -> Result<(), DcatError> {
    let settings = &dataset.settings;
    out.add(iri, known(rdf::TYPE.as_str()), dcat("Dataset"));
    out.add_de_en(iri, dct("title"), &settings.title_de, &settings.title_en);
    out.add_de_en(
        iri,
        dct("description"),
        &settings.description_de,
        &settings.description_en,
    );
    out.add(
        iri,
        dct("identifier"),
        Literal::new_simple_literal(iri.as_str()),
    );
    for keyword in &settings.keywords {
        if !keyword.trim().is_empty() {
            out.add(iri, dcat("keyword"), lang(keyword, "de"));
        }
    }
    let theme = settings.theme.trim();
    if !theme.is_empty() {
        out.add(
            iri,
            dcat("theme"),
            checked("theme", format!("{DATA_THEME}{theme}"))?,
        );
    }
    // A dataset may name its own publisher (e.g. a municipal company); else the catalogue's.
    let own_publisher = settings.publisher_url.trim();
    if own_publisher.is_empty() {
        out.add(iri, dct("publisher"), shared.publisher.clone());
    } else {
        let publisher = checked("dataset publisher_url", own_publisher.to_string())?;
        out.add(&publisher, known(rdf::TYPE.as_str()), foaf("Organization"));
        let name = match settings.publisher_name.trim() {
            "" => own_publisher,
            name => name,
        };
        out.add(&publisher, foaf("name"), Literal::new_simple_literal(name));
        out.add(iri, dct("publisher"), publisher);
    }
    if let Some(contact) = &shared.contact {
        out.add(iri, dcat("contactPoint"), contact.clone());
    }
    if let Some(geocoding) = &shared.geocoding {
        out.add(iri, dcatde("politicalGeocodingURI"), geocoding.clone());
    }
    if let Some(level) = &shared.geocoding_level {
        out.add(iri, dcatde("politicalGeocodingLevelURI"), level.clone());
    }
    if let Some(geocoding) = &shared.geocoding {
        out.add(iri, dct("spatial"), geocoding.clone());
    }
    let bbox = dataset
        .bbox
        .filter(|bbox| bbox.iter().all(|v| v.is_finite()));
    let location = match bbox {
        Some(bbox) => {
            let location = checked("location", format!("{}#location", iri.as_str()))?;
            out.add(iri, dct("spatial"), location.clone());
            Some((location, bbox))
        }
        None => None,
    };
    let temporal = match dataset.temporal() {
        Some(range) => {
            let period = checked("period", format!("{}#period", iri.as_str()))?;
            out.add(iri, dct("temporal"), period.clone());
            Some((period, range))
        }
        None => None,
    };
    if let Some(modified) = dataset.modified() {
        out.add(iri, dct("modified"), date_time(modified));
    }
    let frequency = match settings.partitioning {
        Partitioning::Day => FREQUENCY_DAILY,
        Partitioning::Month => FREQUENCY_MONTHLY,
    };
    out.add(iri, dct("accrualPeriodicity"), known(frequency));
    out.add(iri, dcat("landingPage"), iri.clone());
    let mut formats: Vec<ExportFormat> = Vec::new();
    for format in &settings.formats {
        if !formats.contains(format) {
            formats.push(*format);
        }
    }
    let distributions = formats
        .iter()
        .map(|format| {
            checked(
                "distribution",
                format!("{}#{}", iri.as_str(), format_slug(*format)),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    for distribution in &distributions {
        out.add(iri, dcat("distribution"), distribution.clone());
    }

    if let Some((location, [min_lon, min_lat, max_lon, max_lat])) = location {
        out.add(&location, known(rdf::TYPE.as_str()), dct("Location"));
        let wkt = format!(
            "POLYGON(({min_lon} {min_lat}, {max_lon} {min_lat}, {max_lon} {max_lat}, \
             {min_lon} {max_lat}, {min_lon} {min_lat}))"
        );
        out.add(
            &location,
            dcat("bbox"),
            Literal::new_typed_literal(wkt, geosparql::WKT_LITERAL),
        );
    }
    if let Some((period, (start, end))) = temporal {
        out.add(&period, known(rdf::TYPE.as_str()), dct("PeriodOfTime"));
        out.add(&period, dcat("startDate"), date_time(start));
        out.add(&period, dcat("endDate"), date_time(end));
    }
    let manifest = checked("manifest", format!("{}/manifest.json", iri.as_str()))?;
    for (format, distribution) in formats.iter().zip(&distributions) {
        add_distribution(
            out,
            input,
            shared,
            dataset,
            *format,
            distribution,
            &manifest,
        )?;
    }
    Ok(())
}

fn format_slug(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Parquet => "parquet",
        ExportFormat::Csv => "csv",
        ExportFormat::CsvExcel => "csv_excel",
    }
}

/// German title and description of a distribution (no place or time: K19).
fn distribution_texts(format: ExportFormat, partitioning: Partitioning) -> (String, String) {
    let (partitioned, per, folder) = match partitioning {
        Partitioning::Day => (
            "täglich partitioniert",
            "eine Datei je Tag",
            "date=JJJJ-MM-TT",
        ),
        Partitioning::Month => (
            "monatlich partitioniert",
            "eine Datei je Monat",
            "month=JJJJ-MM",
        ),
    };
    let manifest = "Die Zugangs-URL führt zum Manifest mit allen Dateien (Zeilen, Bytes, SHA-256).";
    match format {
        ExportFormat::Parquet => (
            format!("GeoParquet, {partitioned}"),
            format!(
                "GeoParquet 1.1 mit zstd-Kompression, {per} im Hive-Layout \
                 (Ordner {folder}). {manifest}"
            ),
        ),
        ExportFormat::Csv => (
            format!("CSV (RFC 4180), {partitioned}"),
            format!("CSV nach RFC 4180 in UTF-8 mit Komma als Trennzeichen, {per}. {manifest}"),
        ),
        ExportFormat::CsvExcel => (
            format!("CSV für Tabellenkalkulation (Semikolon), {partitioned}"),
            format!(
                "Dieselben Zeilen wie die CSV-Distribution, mit Semikolon als Trennzeichen und \
                 UTF-8-BOM für Tabellenkalkulationen, {per}. {manifest}"
            ),
        ),
    }
}

fn add_distribution(
    out: &mut Triples,
    input: &CatalogInput,
    shared: &Shared,
    dataset: &PublishedDataset,
    format: ExportFormat,
    distribution: &NamedNode,
    manifest: &NamedNode,
) -> Result<(), DcatError> {
    let settings = &dataset.settings;
    let (title, description) = distribution_texts(format, settings.partitioning);
    out.add(
        distribution,
        known(rdf::TYPE.as_str()),
        dcat("Distribution"),
    );
    out.add(distribution, dct("title"), lang(&title, "de"));
    out.add(distribution, dct("description"), lang(&description, "de"));
    out.add(distribution, dcat("accessURL"), manifest.clone());
    let mut files: Vec<&PublishedFile> = dataset.files_of(format).collect();
    files.sort_by(|a, b| a.partition.cmp(&b.partition));
    for file in &files {
        out.add(
            distribution,
            dcat("downloadURL"),
            checked(
                "file",
                format!("{}/v1/opendata/files/{}", shared.base, file.path),
            )?,
        );
    }
    out.add(distribution, dct("format"), known(file_type_iri(format)));
    out.add(
        distribution,
        dcat("mediaType"),
        known(&format!("{IANA_MEDIA_TYPES}{}", media_type(format))),
    );
    match settings.licence {
        Licence::DlZeroDe20 => out.add(distribution, dct("license"), known(LICENCE_DL_ZERO_DE)),
        Licence::DlByDe20 => {
            out.add(distribution, dct("license"), known(LICENCE_DL_BY_DE));
            let attribution = match settings.attribution.trim() {
                "" => input.catalog.publisher_name.trim(),
                text => text,
            };
            if !attribution.is_empty() {
                out.add(
                    distribution,
                    dcatde("licenseAttributionByText"),
                    Literal::new_simple_literal(attribution),
                );
            }
        }
    }
    if !files.is_empty() {
        let bytes: u64 = files.iter().map(|f| f.bytes).sum();
        out.add(
            distribution,
            dcat("byteSize"),
            Literal::new_typed_literal(bytes.to_string(), xsd::DECIMAL),
        );
    }
    if let Some(modified) = files.iter().map(|f| f.modified).max() {
        out.add(distribution, dct("modified"), date_time(modified));
    }
    if format == ExportFormat::Parquet {
        out.add(distribution, dct("conformsTo"), known(GEOPARQUET_1_1));
    }
    Ok(())
}

/// oxjsonld writes full IRIs as keys; this rewrites keys, classes and datatypes with the
/// prefixes of the `@context` (`dct:title`, `"@type": ["dcat:Dataset"]`, `gsp:wktLiteral`) and
/// pretty-prints. `@id` values stay absolute.
fn compact_jsonld(bytes: &[u8]) -> Result<String, DcatError> {
    let mut document: Value = serde_json::from_slice(bytes).map_err(DcatError::Json)?;
    if let Some(nodes) = document.get_mut("@graph").and_then(Value::as_array_mut) {
        for node in nodes {
            if let Value::Object(node) = node {
                compact_node(node);
            }
        }
    }
    serde_json::to_string_pretty(&document).map_err(DcatError::Json)
}

fn compact_node(node: &mut Map<String, Value>) {
    for (key, mut values) in std::mem::take(node) {
        if key == rdf::TYPE.as_str() {
            let classes: Option<Vec<Value>> = values.as_array().and_then(|items| {
                items
                    .iter()
                    .map(|item| {
                        let class = item.get("@id")?.as_str()?;
                        Some(Value::String(compact_iri(class).into_owned()))
                    })
                    .collect()
            });
            if let Some(classes) = classes {
                node.insert("@type".into(), Value::Array(classes));
                continue;
            }
        }
        if let Value::Array(items) = &mut values {
            for item in items {
                if let Some(Value::String(datatype)) = item.get_mut("@type") {
                    *datatype = compact_iri(datatype).into_owned();
                }
            }
        }
        let key = if key.starts_with('@') {
            key
        } else {
            compact_iri(&key).into_owned()
        };
        node.insert(key, values);
    }
}

fn compact_iri(iri: &str) -> Cow<'_, str> {
    for (name, namespace) in PREFIXES {
        if let Some(local) = iri.strip_prefix(namespace) {
            if !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Cow::Owned(format!("{name}:{local}"));
            }
        }
    }
    Cow::Borrowed(iri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use oxjsonld::JsonLdParser;
    use oxrdf::NamedNodeRef;
    use oxttl::TurtleParser;
    use stadtpuls_config::DatasetSettings;

    const BASE: &str = "https://data.example.org";
    const CATALOG: &str = "https://data.example.org/v1/opendata/catalog";
    const PARKING: &str = "https://data.example.org/v1/opendata/datasets/parking_occupancy";
    const AIR: &str = "https://data.example.org/v1/opendata/datasets/air_quality_hourly";
    const FILES: &str = "https://data.example.org/v1/opendata/files/";
    const GEOCODING: &str = "http://dcat-ap.de/def/politicalGeocoding/regionalKey/059130000000";
    const DORTMUND: &str = "https://www.dortmund.de";

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
            .single()
            .expect("valid time")
    }

    fn file(format: ExportFormat, day: u32, bytes: u64, modified: DateTime<Utc>) -> PublishedFile {
        let ext = match format {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::CsvExcel => "excel.csv",
        };
        PublishedFile {
            path: format!("dataset=parking_occupancy/date=2026-11-{day:02}/part-0.{ext}"),
            format,
            partition: format!("2026-11-{day:02}"),
            rows: 100,
            bytes,
            sha256: "00".repeat(32),
            modified,
            // Day partitions in Europe/Berlin (UTC+1 in November).
            start: at(day - 1, 23),
            end: at(day, 23),
        }
    }

    fn datasets() -> Vec<PublishedDataset> {
        let parking: DatasetSettings = serde_json::from_value(serde_json::json!({
            "name": "parking_occupancy",
            "title_de": "Belegung städtischer Parkplätze",
            "title_en": "Occupancy of municipal car parks",
            "description_de": "Rohdaten der Belegungssensoren.",
            "keywords": ["Parken", "Belegung"],
            "quantities": ["occupied"],
            "kinds": ["parking"],
        }))
        .expect("parking settings");
        let air: DatasetSettings = serde_json::from_value(serde_json::json!({
            "name": "air_quality_hourly",
            "title_de": "Luftqualität, Stundenmittel",
            "description_de": "Stündliche Mittel-, Minimal- und Maximalwerte.",
            "theme": "ENVI",
            "quantities": ["pm10"],
            "kinds": ["air_quality"],
            "aggregation": "1h",
            "partitioning": "month",
            "formats": ["parquet", "csv", "csv_excel"],
            "licence": "dl-by-de/2.0",
        }))
        .expect("air settings");
        assert_eq!(parking.partitioning, Partitioning::Day);
        assert_eq!(parking.formats, [ExportFormat::Parquet, ExportFormat::Csv]);
        assert_eq!(parking.licence, Licence::DlZeroDe20);
        assert_eq!(air.licence, Licence::DlByDe20);
        assert!(air.attribution.is_empty());
        vec![
            PublishedDataset {
                settings: parking,
                // Deliberately not in partition order.
                files: vec![
                    file(ExportFormat::Parquet, 29, 1_200, at(30, 2)),
                    file(ExportFormat::Csv, 29, 350, at(30, 1)),
                    file(ExportFormat::Parquet, 28, 1_000, at(29, 2)),
                    file(ExportFormat::Csv, 28, 300, at(29, 3)),
                ],
                bbox: Some([7.3, 51.41, 7.64, 51.6]),
            },
            PublishedDataset {
                settings: air,
                files: Vec::new(),
                bbox: None,
            },
        ]
    }

    fn input<'a>(
        catalog: &'a CatalogSettings,
        datasets: &'a [PublishedDataset],
    ) -> CatalogInput<'a> {
        CatalogInput {
            catalog,
            base_url: BASE,
            datasets,
            now: at(30, 12),
        }
    }

    /// Triples in document order.
    fn parse_turtle(text: &str) -> Vec<Triple> {
        TurtleParser::new()
            .for_slice(text)
            .collect::<Result<_, _>>()
            .expect("valid Turtle")
    }

    fn parse_jsonld(text: &str) -> Graph {
        JsonLdParser::new()
            .for_slice(text)
            .map(|quad| {
                let quad = quad.expect("valid JSON-LD");
                assert!(quad.graph_name.is_default_graph());
                Triple::from(quad)
            })
            .collect()
    }

    fn dcat_p(local: &str) -> String {
        format!("{DCAT}{local}")
    }
    fn dct_p(local: &str) -> String {
        format!("{DCT}{local}")
    }
    fn dcatde_p(local: &str) -> String {
        format!("{DCATDE}{local}")
    }
    fn foaf_p(local: &str) -> String {
        format!("{FOAF}{local}")
    }

    fn objects(graph: &Graph, subject: &str, predicate: &str) -> Vec<Term> {
        let mut found: Vec<Term> = graph
            .objects_for_subject_predicate(
                NamedNodeRef::new_unchecked(subject),
                NamedNodeRef::new_unchecked(predicate),
            )
            .map(|term| term.into_owned())
            .collect();
        found.sort_by_key(|term| term.to_string());
        found
    }

    /// The single object of `subject predicate`.
    fn one(graph: &Graph, subject: &str, predicate: &str) -> Term {
        let mut found = objects(graph, subject, predicate);
        assert_eq!(found.len(), 1, "{subject} {predicate}: {found:?}");
        found.remove(0)
    }

    fn node(iri: &str) -> Term {
        NamedNode::new_unchecked(iri).into()
    }
    fn plain(text: &str) -> Term {
        Literal::new_simple_literal(text).into()
    }
    fn de(text: &str) -> Term {
        lang(text, "de").into()
    }
    fn en(text: &str) -> Term {
        lang(text, "en").into()
    }
    fn typed(value: &str, datatype: oxrdf::NamedNodeRef<'_>) -> Term {
        Literal::new_typed_literal(value, datatype).into()
    }
    fn time(value: &str) -> Term {
        typed(value, xsd::DATE_TIME)
    }

    #[test]
    fn turtle_holds_the_dcat_ap_de_triples() {
        let catalog = CatalogSettings::default();
        let datasets = datasets();
        let text = to_turtle(&input(&catalog, &datasets)).expect("turtle");
        assert!(text.contains("@prefix dcat: <http://www.w3.org/ns/dcat#>"));
        let parsed = parse_turtle(&text);
        let g: Graph = parsed.iter().collect();
        assert_eq!(g, graph(&input(&catalog, &datasets)).expect("graph"));
        let ty = rdf::TYPE.as_str();

        // Catalogue.
        assert_eq!(one(&g, CATALOG, ty), node(&dcat_p("Catalog")));
        assert_eq!(
            objects(&g, CATALOG, &dct_p("title")),
            [de("Stadtpuls Sensordaten"), en("Stadtpuls sensor data")]
        );
        assert_eq!(objects(&g, CATALOG, &dct_p("description")).len(), 2);
        assert_eq!(one(&g, CATALOG, &dct_p("publisher")), node(DORTMUND));
        assert_eq!(one(&g, CATALOG, &format!("{FOAF}homepage")), node(DORTMUND));
        assert_eq!(one(&g, CATALOG, &dct_p("language")), node(LANGUAGE_DEU));
        assert_eq!(one(&g, CATALOG, &dct_p("spatial")), node(GEOCODING));
        // The newest file of any dataset, not `now`.
        assert_eq!(
            one(&g, CATALOG, &dct_p("modified")),
            time("2026-11-30T02:00:00Z")
        );
        assert_eq!(
            objects(&g, CATALOG, &dcat_p("dataset")),
            [node(AIR), node(PARKING)]
        );
        assert_eq!(one(&g, DORTMUND, ty), node(&format!("{FOAF}Organization")));
        assert_eq!(
            one(&g, DORTMUND, &format!("{FOAF}name")),
            plain("Stadt Dortmund")
        );

        // The day-partitioned parking dataset.
        assert_eq!(one(&g, PARKING, ty), node(&dcat_p("Dataset")));
        assert_eq!(
            objects(&g, PARKING, &dct_p("title")),
            [
                de("Belegung städtischer Parkplätze"),
                en("Occupancy of municipal car parks")
            ]
        );
        // No English description configured: none emitted.
        assert_eq!(
            objects(&g, PARKING, &dct_p("description")),
            [de("Rohdaten der Belegungssensoren.")]
        );
        assert_eq!(one(&g, PARKING, &dct_p("identifier")), plain(PARKING));
        assert_eq!(
            objects(&g, PARKING, &dcat_p("keyword")),
            [de("Belegung"), de("Parken")]
        );
        assert_eq!(
            one(&g, PARKING, &dcat_p("theme")),
            node("http://publications.europa.eu/resource/authority/data-theme/TRAN")
        );
        assert_eq!(one(&g, PARKING, &dct_p("publisher")), node(DORTMUND));
        assert_eq!(
            one(&g, PARKING, &dcatde_p("politicalGeocodingURI")),
            node(GEOCODING)
        );
        assert_eq!(
            one(&g, PARKING, &dcatde_p("politicalGeocodingLevelURI")),
            node("http://dcat-ap.de/def/politicalGeocoding/Level/municipality")
        );
        let location = format!("{PARKING}#location");
        assert_eq!(
            objects(&g, PARKING, &dct_p("spatial")),
            [node(GEOCODING), node(&location)]
        );
        assert_eq!(one(&g, &location, ty), node(&dct_p("Location")));
        assert_eq!(
            one(&g, &location, &dcat_p("bbox")),
            typed(
                "POLYGON((7.3 51.41, 7.64 51.41, 7.64 51.6, 7.3 51.6, 7.3 51.41))",
                geosparql::WKT_LITERAL
            )
        );
        let contact = format!("{CATALOG}#contact");
        assert_eq!(one(&g, PARKING, &dcat_p("contactPoint")), node(&contact));
        assert_eq!(one(&g, &contact, ty), node(&format!("{VCARD}Organization")));
        assert_eq!(
            one(&g, &contact, &format!("{VCARD}hasEmail")),
            node("mailto:opendata@dortmund.de")
        );
        assert_eq!(one(&g, &contact, &format!("{VCARD}fn")), plain("Open Data"));
        let period = format!("{PARKING}#period");
        assert_eq!(one(&g, PARKING, &dct_p("temporal")), node(&period));
        assert_eq!(one(&g, &period, ty), node(&dct_p("PeriodOfTime")));
        assert_eq!(
            one(&g, &period, &dcat_p("startDate")),
            time("2026-11-27T23:00:00Z")
        );
        assert_eq!(
            one(&g, &period, &dcat_p("endDate")),
            time("2026-11-29T23:00:00Z")
        );
        assert_eq!(
            one(&g, PARKING, &dct_p("modified")),
            time("2026-11-30T02:00:00Z")
        );
        assert_eq!(
            one(&g, PARKING, &dct_p("accrualPeriodicity")),
            node(FREQUENCY_DAILY)
        );
        assert_eq!(one(&g, PARKING, &dcat_p("landingPage")), node(PARKING));
        let parquet = format!("{PARKING}#parquet");
        let csv = format!("{PARKING}#csv");
        assert_eq!(
            objects(&g, PARKING, &dcat_p("distribution")),
            [node(&csv), node(&parquet)]
        );
        for distribution in [&parquet, &csv] {
            assert_eq!(one(&g, distribution, ty), node(&dcat_p("Distribution")));
            assert_eq!(
                one(&g, distribution, &dct_p("license")),
                node(LICENCE_DL_ZERO_DE)
            );
            assert_eq!(
                one(&g, distribution, &dcat_p("accessURL")),
                node(&format!("{PARKING}/manifest.json"))
            );
            assert!(objects(&g, distribution, &dcatde_p("licenseAttributionByText")).is_empty());
            assert_eq!(objects(&g, distribution, &dct_p("description")).len(), 1);
        }
        assert_eq!(
            one(&g, &parquet, &dct_p("title")),
            de("GeoParquet, täglich partitioniert")
        );
        assert_eq!(
            one(&g, &csv, &dct_p("title")),
            de("CSV (RFC 4180), täglich partitioniert")
        );
        assert_eq!(
            one(&g, &parquet, &dcat_p("byteSize")),
            typed("2200", xsd::DECIMAL)
        );
        assert_eq!(
            one(&g, &csv, &dcat_p("byteSize")),
            typed("650", xsd::DECIMAL)
        );
        assert_eq!(
            one(&g, &parquet, &dct_p("modified")),
            time("2026-11-30T02:00:00Z")
        );
        // Per format: the newest CSV file, not the newest file of the dataset.
        assert_eq!(
            one(&g, &csv, &dct_p("modified")),
            time("2026-11-30T01:00:00Z")
        );
        assert_eq!(
            one(&g, &parquet, &dct_p("format")),
            node("http://publications.europa.eu/resource/authority/file-type/PARQUET")
        );
        assert_eq!(
            one(&g, &csv, &dct_p("format")),
            node("http://publications.europa.eu/resource/authority/file-type/CSV")
        );
        assert_eq!(
            one(&g, &parquet, &dcat_p("mediaType")),
            node("http://www.iana.org/assignments/media-types/application/vnd.apache.parquet")
        );
        assert_eq!(
            one(&g, &csv, &dcat_p("mediaType")),
            node("http://www.iana.org/assignments/media-types/text/csv")
        );
        assert_eq!(
            one(&g, &parquet, &dct_p("conformsTo")),
            node(GEOPARQUET_1_1)
        );
        assert!(objects(&g, &csv, &dct_p("conformsTo")).is_empty());
        // Download URLs in partition order, as they appear in the document.
        let downloads = |distribution: &str| -> Vec<Term> {
            parsed
                .iter()
                .filter(|t| {
                    t.subject.to_string() == format!("<{distribution}>")
                        && t.predicate.as_str() == dcat_p("downloadURL")
                })
                .map(|t| t.object.clone())
                .collect()
        };
        assert_eq!(
            downloads(&parquet),
            [
                node(&format!(
                    "{FILES}dataset=parking_occupancy/date=2026-11-28/part-0.parquet"
                )),
                node(&format!(
                    "{FILES}dataset=parking_occupancy/date=2026-11-29/part-0.parquet"
                )),
            ]
        );
        assert_eq!(
            downloads(&csv),
            [
                node(&format!(
                    "{FILES}dataset=parking_occupancy/date=2026-11-28/part-0.csv"
                )),
                node(&format!(
                    "{FILES}dataset=parking_occupancy/date=2026-11-29/part-0.csv"
                )),
            ]
        );

        // The month-partitioned dl-by-de dataset with nothing published yet.
        assert_eq!(
            one(&g, AIR, &dct_p("accrualPeriodicity")),
            node(FREQUENCY_MONTHLY)
        );
        assert_eq!(
            one(&g, AIR, &dcat_p("theme")),
            node("http://publications.europa.eu/resource/authority/data-theme/ENVI")
        );
        assert_eq!(
            one(&g, AIR, &dct_p("title")),
            de("Luftqualität, Stundenmittel")
        );
        assert!(objects(&g, AIR, &dct_p("temporal")).is_empty());
        assert!(objects(&g, AIR, &dct_p("modified")).is_empty());
        assert!(objects(&g, AIR, &dcat_p("keyword")).is_empty());
        assert_eq!(one(&g, AIR, &dct_p("spatial")), node(GEOCODING));
        assert!(objects(&g, &format!("{AIR}#period"), ty).is_empty());
        let excel = format!("{AIR}#csv_excel");
        assert_eq!(
            objects(&g, AIR, &dcat_p("distribution")),
            [
                node(&format!("{AIR}#csv")),
                node(&excel),
                node(&format!("{AIR}#parquet")),
            ]
        );
        assert_eq!(
            one(&g, &excel, &dct_p("title")),
            de("CSV für Tabellenkalkulation (Semikolon), monatlich partitioniert")
        );
        assert_eq!(
            one(&g, &format!("{AIR}#parquet"), &dct_p("title")),
            de("GeoParquet, monatlich partitioniert")
        );
        for slug in ["parquet", "csv", "csv_excel"] {
            let distribution = format!("{AIR}#{slug}");
            assert_eq!(
                one(&g, &distribution, &dct_p("license")),
                node(LICENCE_DL_BY_DE)
            );
            // No attribution configured: the publisher's name.
            assert_eq!(
                one(&g, &distribution, &dcatde_p("licenseAttributionByText")),
                plain("Stadt Dortmund")
            );
            assert_eq!(
                one(&g, &distribution, &dcat_p("accessURL")),
                node(&format!("{AIR}/manifest.json"))
            );
            assert!(objects(&g, &distribution, &dcat_p("downloadURL")).is_empty());
            assert!(objects(&g, &distribution, &dcat_p("byteSize")).is_empty());
            assert!(objects(&g, &distribution, &dct_p("modified")).is_empty());
        }

        // K21: no dct:source anywhere.
        assert!(parsed
            .iter()
            .all(|t| t.predicate.as_str() != dct_p("source")));
    }

    #[test]
    fn jsonld_is_the_same_graph_as_turtle() {
        let catalog = CatalogSettings::default();
        let datasets = datasets();
        let input = input(&catalog, &datasets);
        let turtle: Graph = parse_turtle(&to_turtle(&input).expect("turtle"))
            .into_iter()
            .collect();
        let text = to_jsonld(&input).expect("json-ld");
        let jsonld = parse_jsonld(&text);
        assert!(turtle.len() > 100, "only {} triples", turtle.len());
        assert_eq!(jsonld.len(), turtle.len());
        assert_eq!(jsonld, turtle);

        // Keys, classes and datatypes use the prefixes of the context.
        let document: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(document["@context"]["dcat"], DCAT);
        let nodes = document["@graph"].as_array().expect("@graph");
        let parking = nodes
            .iter()
            .find(|node| node["@id"] == PARKING)
            .expect("parking node");
        assert_eq!(parking["@type"], serde_json::json!(["dcat:Dataset"]));
        assert_eq!(
            parking["dct:modified"],
            serde_json::json!([{"@type": "xsd:dateTime", "@value": "2026-11-30T02:00:00Z"}])
        );
    }

    #[test]
    fn empty_catalogue_is_still_valid() {
        let catalog = CatalogSettings {
            title_en: String::new(),
            ..CatalogSettings::default()
        };
        let input = input(&catalog, &[]);
        let g: Graph = parse_turtle(&to_turtle(&input).expect("turtle"))
            .into_iter()
            .collect();
        let ty = rdf::TYPE.as_str();
        assert_eq!(one(&g, CATALOG, ty), node(&dcat_p("Catalog")));
        // The empty English title is left out.
        assert_eq!(
            objects(&g, CATALOG, &dct_p("title")),
            [de("Stadtpuls Sensordaten")]
        );
        assert_eq!(one(&g, CATALOG, &dct_p("publisher")), node(DORTMUND));
        assert_eq!(
            one(&g, DORTMUND, &format!("{FOAF}name")),
            plain("Stadt Dortmund")
        );
        assert_eq!(
            one(&g, CATALOG, &dct_p("modified")),
            time("2026-11-30T12:00:00Z")
        );
        assert!(objects(&g, CATALOG, &dcat_p("dataset")).is_empty());
        assert_eq!(parse_jsonld(&to_jsonld(&input).expect("json-ld")), g);
    }

    #[test]
    fn explicit_attribution_and_invalid_base_url() {
        let catalog = CatalogSettings::default();
        let mut datasets = datasets();
        datasets[1].settings.attribution = "Stadt Dortmund, Umweltamt".into();
        let g = graph(&input(&catalog, &datasets)).expect("graph");
        assert_eq!(
            one(
                &g,
                &format!("{AIR}#csv"),
                &dcatde_p("licenseAttributionByText")
            ),
            plain("Stadt Dortmund, Umweltamt")
        );

        // A dataset with its own publisher names it; the other keeps the catalogue's.
        datasets[1].settings.publisher_name = "DEW21".into();
        datasets[1].settings.publisher_url = "https://www.dew21.de".into();
        let g = graph(&input(&catalog, &datasets)).expect("graph");
        assert_eq!(
            one(&g, AIR, &dct_p("publisher")),
            node("https://www.dew21.de")
        );
        assert_eq!(
            one(&g, "https://www.dew21.de", &foaf_p("name")),
            plain("DEW21")
        );
        assert_eq!(one(&g, PARKING, &dct_p("publisher")), node(DORTMUND));

        let bad = CatalogInput {
            base_url: "not a url",
            ..input(&catalog, &datasets)
        };
        assert!(matches!(
            to_turtle(&bad),
            Err(DcatError::InvalidIri {
                what: "catalogue",
                ..
            })
        ));
    }
}
