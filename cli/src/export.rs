//! `stadtpuls export run|list`: open-data exports by hand (a past window, or whatever is due)
//! with a progress bar, and the configured datasets with their last runs.

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use stadtpuls_config::Settings;
use stadtpuls_ingest::{Clock, SystemClock};
use stadtpuls_opendata_export::export::{Exporter, PartitionOutcome, Trigger};
use stadtpuls_opendata_export::partition::partitions_between;
use stadtpuls_store::Store;
use std::sync::Arc;

/// Exports `dataset`: the partitions overlapping `[from, to)` when given (whole partitions),
/// else what is due now (catch-up and late data). Prints a summary line.
pub async fn run(
    store: Store,
    settings: Arc<Settings>,
    dataset: &str,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let exporter = Exporter::new(store, settings.clone(), clock.clone())?;
    let ds = exporter.dataset(dataset)?.clone();
    let (parts, trigger) = match window {
        Some((from, to)) => {
            anyhow::ensure!(from < to, "--from must be before --to");
            (
                partitions_between(from, to, ds.partitioning, exporter.time_zone()),
                Trigger::Manual,
            )
        }
        None => {
            let due = exporter.due(&ds, clock.now()).await?;
            let mut parts = due.new;
            parts.extend(due.changed);
            (parts, Trigger::CatchUp)
        }
    };
    if parts.is_empty() {
        println!("{dataset}: nothing to export");
        return Ok(());
    }
    let bar = ProgressBar::new(parts.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} partitions  {msg}  ({elapsed}, eta {eta})",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    bar.set_prefix(dataset.to_string());
    let mut progress = |o: &PartitionOutcome| {
        bar.set_message(format!("{}: {} rows", o.partition.key, o.rows));
        bar.inc(1);
    };
    let summary = exporter.run(&ds, &parts, trigger, &mut progress).await?;
    bar.finish();
    println!(
        "{dataset}: {} partitions ({} empty), {} rows, {} bytes written to {}",
        summary.partitions,
        summary.empty,
        summary.rows,
        summary.bytes,
        exporter.root().display()
    );
    Ok(())
}

/// Prints the configured datasets with their published files and last run.
pub async fn list(store: Store, settings: &Settings) -> anyhow::Result<()> {
    if settings.opendata.datasets.is_empty() {
        println!("no datasets configured ([[opendata.datasets]], see `stadtpuls config template`)");
    }
    for ds in &settings.opendata.datasets {
        let files = store.export_files(&ds.name).await?;
        let runs = store.export_runs(Some(&ds.name), 1).await?;
        let bytes: i64 = files.iter().map(|f| f.bytes).sum();
        let last = runs.first().map_or_else(
            || "never run".to_string(),
            |r| {
                format!(
                    "last run {} ({}, {}, {} rows{})",
                    r.started_at.format("%Y-%m-%d %H:%M:%SZ"),
                    r.trigger,
                    r.status,
                    r.rows,
                    r.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            },
        );
        println!(
            "{:<24} {:>5} files {:>12} bytes  schedule '{}'  {last}",
            ds.name,
            files.len(),
            bytes,
            ds.schedule
        );
    }
    Ok(())
}
