//! The export scheduler, part of `stadtpuls run`: at start every dataset catches up on what it
//! missed (downtime), then each dataset runs at the times its cron expression names, in the
//! city's time zone. A run exports the complete partitions not yet exported and re-exports
//! recent ones that late data changed (see [`Exporter::due`]). One failing dataset is logged
//! and counted; it does not stop the others, and its partitions stay due for the next run.

use crate::export::{Exporter, Trigger};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use stadtpuls_config::{parse_schedule, DatasetSettings};
use stadtpuls_store::clock::Clock;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The first time after `after` that `schedule` fires, in `tz`. `None` for an expression that
/// never fires again (or does not parse; schedules are validated at startup).
pub fn next_fire(schedule: &str, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let cron = parse_schedule(schedule).ok()?;
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The datasets due at or before `now`, given each one's next fire time.
pub fn fired<'a>(
    next: &'a [(DateTime<Utc>, &'a DatasetSettings)],
    now: DateTime<Utc>,
) -> impl Iterator<Item = &'a DatasetSettings> + 'a {
    next.iter().filter(move |(t, _)| *t <= now).map(|(_, d)| *d)
}

async fn run_one(exporter: &Exporter, ds: &DatasetSettings, now: DateTime<Utc>, trigger: Trigger) {
    match exporter.catch_up(ds, now, trigger).await {
        Ok((new, late)) => {
            metrics::counter!("stadtpuls_export_runs_total", "dataset" => ds.name.clone(), "status" => "ok")
                .increment(1);
            metrics::counter!("stadtpuls_export_rows_total", "dataset" => ds.name.clone())
                .increment(new.rows + late.rows);
            metrics::counter!("stadtpuls_export_bytes_total", "dataset" => ds.name.clone())
                .increment(new.bytes + late.bytes);
        }
        Err(e) => {
            metrics::counter!("stadtpuls_export_runs_total", "dataset" => ds.name.clone(), "status" => "failed")
                .increment(1);
            // The one log line of a failed export (the exporter records it with the run and
            // returns it).
            tracing::error!(dataset = %ds.name, trigger = trigger.as_str(), error = %e, "scheduled export failed; it stays due");
        }
    }
}

/// Runs until `shutdown`: catch-up first, then each dataset at its cron times.
pub async fn run(exporter: Exporter, clock: Arc<dyn Clock>, shutdown: CancellationToken) {
    let datasets: Vec<DatasetSettings> = exporter.datasets().to_vec();
    if datasets.is_empty() {
        tracing::info!("no open-data datasets configured; the export scheduler is idle");
        return;
    }
    let tz = exporter.time_zone();
    for ds in &datasets {
        if shutdown.is_cancelled() {
            return;
        }
        run_one(&exporter, ds, clock.now(), Trigger::CatchUp).await;
    }
    loop {
        let now = clock.now();
        let next: Vec<(DateTime<Utc>, &DatasetSettings)> = datasets
            .iter()
            .filter_map(|d| Some((next_fire(&d.schedule, now, tz)?, d)))
            .collect();
        let Some(earliest) = next.iter().map(|(t, _)| *t).min() else {
            tracing::warn!("no dataset schedule fires again; the export scheduler stops");
            return;
        };
        let wait = (earliest - now).to_std().unwrap_or_default();
        tracing::debug!(next = %earliest, "export scheduler sleeping");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let now = clock.now();
        for ds in fired(&next, now) {
            if shutdown.is_cancelled() {
                return;
            }
            run_one(&exporter, ds, now, Trigger::Schedule).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn schedules_fire_in_city_time() {
        // Daily at 02:30 Berlin time: 01:30 UTC in winter, 00:30 UTC in summer.
        assert_eq!(
            next_fire("0 30 2 * * *", t("2026-11-29T03:00:00Z"), BERLIN),
            Some(t("2026-11-30T01:30:00Z"))
        );
        assert_eq!(
            next_fire("0 30 2 * * *", t("2026-07-01T03:00:00Z"), BERLIN),
            Some(t("2026-07-02T00:30:00Z"))
        );
        // Five fields (no seconds) work too: hourly at minute 5.
        assert_eq!(
            next_fire("5 * * * *", t("2026-11-29T03:00:00Z"), BERLIN),
            Some(t("2026-11-29T03:05:00Z"))
        );
        // The first of each month at 03:00.
        assert_eq!(
            next_fire("0 0 3 1 * *", t("2026-11-29T03:00:00Z"), BERLIN),
            Some(t("2026-12-01T02:00:00Z"))
        );
        assert_eq!(
            next_fire("not cron", t("2026-11-29T03:00:00Z"), BERLIN),
            None
        );
    }

    #[test]
    fn only_datasets_whose_time_has_come_run() {
        let ds = |name: &str| -> DatasetSettings {
            serde_json::from_value(serde_json::json!({
                "name": name, "title_de": "T", "description_de": "D",
                "quantities": ["occupied"], "kinds": ["parking_bay"]
            }))
            .unwrap()
        };
        let (a, b) = (ds("a"), ds("b"));
        let next = vec![
            (t("2026-11-30T01:30:00Z"), &a),
            (t("2026-11-30T02:30:00Z"), &b),
        ];
        let names = |now| {
            fired(&next, now)
                .map(|d| d.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(t("2026-11-30T01:29:59Z")), Vec::<String>::new());
        assert_eq!(names(t("2026-11-30T01:30:00Z")), ["a"]);
        assert_eq!(names(t("2026-11-30T03:00:00Z")), ["a", "b"]);
    }
}
