//! Running exports: one dataset over a list of partitions (by hand, on schedule, to catch up,
//! or because late data changed a partition), recorded as runs; and the per-dataset metadata
//! files (sensors table, manifest).

use crate::encode::utc_text as utc;
use crate::model::{Manifest, ManifestFile};
use crate::partition::{complete_partitions, time_zone, Partition};
use crate::writer::{
    write_raw, write_rows, AggRegrouper, ParquetOptions, Shape, Sink, WriteError, Written,
};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use stadtpuls_config::{Aggregation, DatasetSettings, ExportFormat, Settings};
use stadtpuls_gateways::Quantity;
use stadtpuls_store::aggregates::BucketWidth;
use stadtpuls_store::clock::Clock;
use stadtpuls_store::opendata::{ExportFileRecord, PartitionRecord, Selection};
use stadtpuls_store::{DeviceKind, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::Instrument;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The database failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Writing a file failed.
    #[error("write: {0}")]
    Write(#[from] WriteError),
    /// No dataset of that name is configured.
    #[error("no dataset '{0}' is configured (see [[opendata.datasets]])")]
    UnknownDataset(String),
    /// The configuration cannot be used (validated at startup, so a bug if it happens).
    #[error("configuration: {0}")]
    Config(String),
    /// The blocking writer task panicked or was cancelled.
    #[error("writer task: {0}")]
    Task(String),
    /// A partition of a run failed (the run is recorded as failed with the cause).
    #[error("partition {partition}: {source}")]
    Partition {
        partition: String,
        source: Box<ExportError>,
    },
}

type Result<T> = std::result::Result<T, ExportError>;

/// Why a run happens (recorded with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    CatchUp,
    LateData,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::LateData => "late_data",
            Trigger::Manual => "manual",
        }
    }
}

/// What exporting one partition did.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionOutcome {
    pub partition: Partition,
    /// Data rows per file (the same in every format); 0 = empty, no file.
    pub rows: u64,
    /// Bytes of all files of the partition.
    pub bytes: u64,
    pub files: Vec<Written>,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    pub run_id: i64,
    pub partitions: usize,
    pub empty: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// Partitions a dataset needs exported now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Due {
    /// Complete partitions never exported (within the catch-up horizon).
    pub new: Vec<Partition>,
    /// Exported partitions whose source rows changed since (late data).
    pub changed: Vec<Partition>,
}

/// Exports datasets into `opendata.output_dir`.
#[derive(Clone, Debug)]
pub struct Exporter {
    store: Store,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    tz: Tz,
    root: PathBuf,
}

/// The partitions of a run, for its span: `2026-11-27..2026-11-28` (or the one key).
fn partition_span(parts: &[Partition]) -> String {
    match (parts.first(), parts.last()) {
        (Some(a), Some(b)) if a.key != b.key => format!("{}..{}", a.key, b.key),
        (Some(a), _) => a.key.clone(),
        _ => String::new(),
    }
}

/// `text` as a known kind (names were validated with the configuration).
fn kind(name: &str) -> Option<DeviceKind> {
    name.parse().ok()
}

/// The store selection of a dataset.
pub fn selection(ds: &DatasetSettings) -> Selection {
    Selection {
        quantities: ds
            .quantities
            .iter()
            .filter_map(|q| q.parse::<Quantity>().ok())
            .collect(),
        kinds: ds.kinds.iter().filter_map(|k| kind(k)).collect(),
        buildings: ds.buildings.clone(),
        raw: ds.aggregation == Aggregation::Raw,
        sites: ds.sites.clone(),
    }
}

fn width(a: Aggregation) -> Option<BucketWidth> {
    match a {
        Aggregation::Raw => None,
        Aggregation::Minutes15 => Some(BucketWidth::Minutes15),
        Aggregation::Hour => Some(BucketWidth::Hour),
        Aggregation::Day => Some(BucketWidth::Day),
    }
}

/// File name of a format inside a partition folder.
fn file_name(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Parquet => "part-0.parquet",
        ExportFormat::Csv => "part-0.csv",
        ExportFormat::CsvExcel => "part-0.excel.csv",
    }
}

/// The name a format is recorded and listed under.
pub fn format_name(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Parquet => "parquet",
        ExportFormat::Csv => "csv",
        ExportFormat::CsvExcel => "csv_excel",
    }
}

/// `path` relative to `root`, with `/`.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

impl Exporter {
    pub fn new(store: Store, settings: Arc<Settings>, clock: Arc<dyn Clock>) -> Result<Self> {
        let tz = time_zone(&settings.city.timezone).map_err(ExportError::Config)?;
        let root = PathBuf::from(&settings.opendata.output_dir);
        Ok(Exporter {
            store,
            settings,
            clock,
            tz,
            root,
        })
    }

    /// The export directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The configured datasets.
    pub fn datasets(&self) -> &[DatasetSettings] {
        &self.settings.opendata.datasets
    }

    /// A configured dataset by name.
    pub fn dataset(&self, name: &str) -> Result<&DatasetSettings> {
        self.settings
            .opendata
            .datasets
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| ExportError::UnknownDataset(name.to_string()))
    }

    fn parquet_options(&self) -> ParquetOptions {
        ParquetOptions {
            zstd_level: self.settings.opendata.zstd_level,
            row_group_rows: self.settings.opendata.row_group_rows,
        }
    }

    /// Exports one partition in every configured format and records it (its files replace
    /// earlier ones; an empty partition removes them).
    pub async fn export_partition(
        &self,
        ds: &DatasetSettings,
        part: &Partition,
    ) -> Result<PartitionOutcome> {
        self.store.assign_sensor_ids().await?;
        let sel = selection(ds);
        let dir = self
            .root
            .join(format!("dataset={}", ds.name))
            .join(part.folder(ds.partitioning));
        let shape = match ds.aggregation {
            Aggregation::Raw => Shape::Raw,
            _ => Shape::Aggregated,
        };
        let formats = ds.formats.clone();
        let opts = self.parquet_options();
        let aggs = ds.aggs.clone();
        let (written, fingerprint) = match width(ds.aggregation) {
            None => {
                // Rows and fingerprint from one snapshot, the fingerprint summed alongside.
                let (mut rx, fingerprint) = self
                    .store
                    .export_raw_with_fingerprint(
                        &sel,
                        part.start,
                        part.end,
                        self.settings
                            .opendata
                            .sort_memory_mb
                            .saturating_mul(1 << 20),
                    )
                    .await?;
                let dir = dir.clone();
                let written = tokio::task::spawn_blocking(move || {
                    write_partition(&dir, &formats, shape, opts, |sinks| {
                        while let Some(chunk) = rx.blocking_recv() {
                            write_raw(sinks, &chunk?)?;
                        }
                        Ok(())
                    })
                })
                .await;
                // The writer's error first: a failed read reaches it with its cause.
                let written = written.map_err(|e| ExportError::Task(e.to_string()))??;
                let fingerprint = fingerprint
                    .await
                    .map_err(|e| ExportError::Task(e.to_string()))??;
                (written, fingerprint.1)
            }
            Some(w) => {
                let (_, fingerprint) = self
                    .store
                    .export_fingerprint(&sel, part.start, part.end)
                    .await?;
                let mut rx = self.store.export_aggregated(
                    &sel,
                    part.start,
                    part.end,
                    w,
                    &self.settings.city.timezone,
                    ds.min_group_size,
                );
                let dir = dir.clone();
                let written = tokio::task::spawn_blocking(move || {
                    write_partition(&dir, &formats, shape, opts, |sinks| {
                        let mut regroup = AggRegrouper::default();
                        while let Some(chunk) = rx.blocking_recv() {
                            let rows = regroup.push(chunk?, &aggs)?;
                            write_rows(sinks, shape, &rows)?;
                        }
                        write_rows(sinks, shape, &regroup.flush(&aggs)?)?;
                        Ok(())
                    })
                })
                .await
                .map_err(|e| ExportError::Task(e.to_string()))??;
                (written, fingerprint)
            }
        };

        let now = self.clock.now();
        let rows = written.first().map_or(0, |w| w.rows);
        if written.is_empty() {
            // Nothing (left) to publish: earlier files of this partition go.
            for f in &ds.formats {
                let _ = std::fs::remove_file(dir.join(file_name(*f)));
            }
            let _ = std::fs::remove_dir(&dir);
        }
        let files: Vec<ExportFileRecord> = written
            .iter()
            .zip(&ds.formats)
            .map(|(w, f)| ExportFileRecord {
                dataset: ds.name.clone(),
                partition: part.key.clone(),
                format: format_name(*f).to_string(),
                path: relative(&self.root, &w.path),
                rows: w.rows as i64,
                bytes: w.bytes as i64,
                sha256: w.sha256.clone(),
                modified: now,
                window_start: part.start,
                window_end: part.end,
            })
            .collect();
        let record = PartitionRecord {
            partition: part.key.clone(),
            window_start: part.start,
            window_end: part.end,
            fingerprint,
            rows: rows as i64,
            exported_at: now,
        };
        self.store
            .record_partition(&record, &ds.name, &files)
            .await?;
        Ok(PartitionOutcome {
            partition: part.clone(),
            rows,
            bytes: written.iter().map(|w| w.bytes).sum(),
            files: written,
        })
    }

    /// Exports `parts` of `ds` as one recorded run, then rewrites the dataset's metadata.
    /// `progress` is called after each partition.
    ///
    /// One span per run (`export_run`: dataset, trigger, the partitions, the run id), one per
    /// partition inside it. A failure is recorded with the run and returned, not logged: the
    /// caller that handles it logs it (the scheduler) or reports it (the CLI).
    #[tracing::instrument(
        name = "export_run",
        skip_all,
        fields(
            dataset = %ds.name,
            trigger = trigger.as_str(),
            partitions = %partition_span(parts),
            run = tracing::field::Empty,
        )
    )]
    pub async fn run(
        &self,
        ds: &DatasetSettings,
        parts: &[Partition],
        trigger: Trigger,
        progress: &mut (dyn FnMut(&PartitionOutcome) + Send),
    ) -> Result<RunSummary> {
        let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
            return Ok(RunSummary::default());
        };
        let started = self.clock.now();
        let run_id = self
            .store
            .start_export_run(&ds.name, trigger.as_str(), (first.start, last.end), started)
            .await?;
        tracing::Span::current().record("run", run_id);
        let mut summary = RunSummary {
            run_id,
            ..RunSummary::default()
        };
        for part in parts {
            let span = tracing::info_span!("export_partition", partition = %part.key);
            match self.export_partition(ds, part).instrument(span).await {
                Ok(outcome) => {
                    summary.partitions += 1;
                    summary.empty += usize::from(outcome.rows == 0);
                    summary.rows += outcome.rows;
                    summary.bytes += outcome.bytes;
                    progress(&outcome);
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.finish(run_id, "failed", &summary, Some(&msg)).await;
                    return Err(ExportError::Partition {
                        partition: part.key.clone(),
                        source: Box::new(e),
                    });
                }
            }
        }
        if let Err(e) = self.write_meta(ds).await {
            let msg = e.to_string();
            self.finish(run_id, "failed", &summary, Some(&msg)).await;
            return Err(e);
        }
        let status = if summary.rows == 0 { "empty" } else { "ok" };
        self.finish(run_id, status, &summary, None).await;
        tracing::info!(
            dataset = %ds.name, trigger = trigger.as_str(), partitions = summary.partitions,
            rows = summary.rows, bytes = summary.bytes, "export run finished"
        );
        Ok(summary)
    }

    async fn finish(&self, id: i64, status: &str, s: &RunSummary, error: Option<&str>) {
        let now = self.clock.now();
        if let Err(e) = self
            .store
            .finish_export_run(
                id,
                status,
                i32::try_from(s.partitions).unwrap_or(i32::MAX),
                s.rows as i64,
                s.bytes as i64,
                error,
                now,
            )
            .await
        {
            tracing::error!(run = id, error = %e, "could not record the end of an export run");
        }
    }

    /// Rewrites `meta/<name>/sensors.{parquet,csv}` and `meta/<name>/manifest.json`.
    pub async fn write_meta(&self, ds: &DatasetSettings) -> Result<()> {
        let sel = selection(ds);
        let sensors = self.store.export_sensors(&sel).await?;
        let files = self.store.export_files(&ds.name).await?;
        let dir = self.root.join("meta").join(&ds.name);
        let opts = self.parquet_options();
        let id_column = if sel.raw { "sensor_id" } else { "group_id" };
        let root = self.root.clone();
        let now = self.clock.now();
        let name = ds.name.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let meta = crate::writer::write_sensors(&dir, id_column, &sensors, opts)?;
            let manifest = Manifest {
                dataset: name,
                modified: Some(utc(now)),
                files: files
                    .iter()
                    .map(|f| ManifestFile {
                        format: f.format.clone(),
                        partition: Some(f.partition.clone()),
                        path: f.path.clone(),
                        rows: u64::try_from(f.rows).unwrap_or_default(),
                        bytes: u64::try_from(f.bytes).unwrap_or_default(),
                        sha256: f.sha256.clone(),
                        modified: utc(f.modified),
                        start: Some(utc(f.window_start)),
                        end: Some(utc(f.window_end)),
                    })
                    .collect(),
                sensors: meta
                    .iter()
                    .map(|w| ManifestFile {
                        format: if w.path.extension().is_some_and(|e| e == "parquet") {
                            "parquet"
                        } else {
                            "csv"
                        }
                        .to_string(),
                        partition: None,
                        path: relative(&root, &w.path),
                        rows: w.rows,
                        bytes: w.bytes,
                        sha256: w.sha256.clone(),
                        modified: utc(now),
                        start: None,
                        end: None,
                    })
                    .collect(),
            };
            let path = dir.join("manifest.json");
            let tmp = dir.join(format!("manifest.json.tmp-{}", std::process::id()));
            let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|source| WriteError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            Ok(())
        })
        .await
        .map_err(|e| ExportError::Task(e.to_string()))?
    }

    /// What `ds` needs exported at `now`: complete partitions within the catch-up horizon that
    /// were never exported, and exported ones within the late-data window whose source rows
    /// changed.
    pub async fn due(&self, ds: &DatasetSettings, now: DateTime<Utc>) -> Result<Due> {
        let o = &self.settings.opendata;
        let exported = self.store.exported_partitions(&ds.name).await?;
        let horizon = now - Duration::days(i64::from(o.catch_up_days));
        let new: Vec<Partition> = complete_partitions(horizon, now, ds.partitioning, self.tz)
            .into_iter()
            .filter(|p| !exported.iter().any(|e| e.partition == p.key))
            .collect();
        let late_since = now - Duration::days(i64::from(o.late_data_days));
        let sel = selection(ds);
        let mut changed = Vec::new();
        for e in exported.iter().filter(|e| e.window_end > late_since) {
            let (_, fp) = self
                .store
                .export_fingerprint(&sel, e.window_start, e.window_end)
                .await?;
            if fp != e.fingerprint {
                changed.push(Partition {
                    key: e.partition.clone(),
                    start: e.window_start,
                    end: e.window_end,
                });
            }
        }
        Ok(Due { new, changed })
    }

    /// Exports what `ds` needs at `now` (see [`Exporter::due`]): new partitions under
    /// `trigger`, changed ones as late data.
    pub async fn catch_up(
        &self,
        ds: &DatasetSettings,
        now: DateTime<Utc>,
        trigger: Trigger,
    ) -> Result<(RunSummary, RunSummary)> {
        let due = self.due(ds, now).await?;
        let new = self.run(ds, &due.new, trigger, &mut |_| {}).await?;
        let late = self
            .run(ds, &due.changed, Trigger::LateData, &mut |_| {})
            .await?;
        Ok((new, late))
    }
}

/// Opens a sink per format, lets `fill` write the rows, then finishes them all — or discards
/// them all when `fill` failed or wrote nothing (then the result is empty).
fn write_partition(
    dir: &Path,
    formats: &[ExportFormat],
    shape: Shape,
    opts: ParquetOptions,
    fill: impl FnOnce(&mut Vec<Sink>) -> Result<()>,
) -> Result<Vec<Written>> {
    let mut sinks = Vec::with_capacity(formats.len());
    for f in formats {
        match Sink::open(&dir.join(file_name(*f)), *f, shape, opts) {
            Ok(s) => sinks.push(s),
            Err(e) => {
                sinks.into_iter().for_each(Sink::discard);
                return Err(e.into());
            }
        }
    }
    let filled = fill(&mut sinks);
    let rows = sinks.first().map_or(0, Sink::rows);
    if filled.is_err() || rows == 0 {
        sinks.into_iter().for_each(Sink::discard);
        return filled.map(|()| Vec::new());
    }
    sinks
        .into_iter()
        .map(|s| s.finish().map_err(ExportError::from))
        .collect()
}
