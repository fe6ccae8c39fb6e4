//! The results: one JSON file per date under `bench/results/` and `bench/RESULTS.md`, with the
//! machine, the versions, every run, medians with min–max, ratios and the targets.

use crate::db::CityFacts;
use crate::exports::ExportResults;
use crate::ingest::{Backlog, IngestRun, System};
use crate::queries::QueryResult;
use crate::stats::Summary;
use crate::Bench;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub git_commit: String,
    pub machine: serde_json::Value,
    pub versions: serde_json::Value,
    pub postgres_settings: serde_json::Value,
    pub parameters: serde_json::Value,
    pub city: Option<CityFacts>,
    pub ingest: Vec<IngestRun>,
    pub backlog: Option<Backlog>,
    pub queries: Vec<QueryResult>,
    pub exports: Option<ExportResults>,
    pub ingest_summary: Vec<IngestSummary>,
    pub targets: Vec<Target>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IngestSummary {
    pub system: System,
    pub table: &'static str,
    pub max_inflight_messages: u32,
    pub effective_window: u32,
    pub uplinks_per_s: Summary,
    pub lost: i64,
    pub duplicates: u64,
    pub consumer_cpu_s_per_1000: Option<f64>,
    pub consumer_peak_rss_mib: Option<f64>,
    pub machine_cpu_s_per_1000: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

fn cmd(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

impl Report {
    pub async fn new(url: &str, b: &Bench, scale: u32, sections: &str) -> Result<Report> {
        let pool = sqlx::PgPool::connect(url).await?;
        let pg: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&pool)
            .await?;
        let ts: Option<String> = sqlx::query_scalar(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'",
        )
        .fetch_optional(&pool)
        .await?
        .flatten();
        let mut settings = serde_json::Map::new();
        for name in [
            "shared_buffers",
            "work_mem",
            "synchronous_commit",
            "fsync",
            "wal_level",
            "max_wal_size",
            "checkpoint_timeout",
            "max_connections",
            "shared_preload_libraries",
        ] {
            let v: String = sqlx::query_scalar(&format!("SHOW {name}"))
                .fetch_one(&pool)
                .await?;
            settings.insert(name.into(), v.into());
        }
        pool.close().await;
        let py = std::process::Command::new(&b.python)
            .arg(b.root.join("bench/python/versions.py"))
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .unwrap_or_default();
        let dirty = !cmd("git", &["status", "--porcelain", "--untracked-files=no"]).eq("unknown");
        Ok(Report {
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            git_commit: format!(
                "{}{}",
                cmd("git", &["rev-parse", "--short=12", "HEAD"]),
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
            machine: serde_json::json!({
                "cpu": cpu_model(),
                "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "memory_gib": (mem_total_gib() * 10.0).round() / 10.0,
                "kernel": cmd("uname", &["-r"]),
            }),
            versions: serde_json::json!({
                "stadtpuls": cmd(&b.bin.path.to_string_lossy(), &["--version"]),
                "rustc": cmd("rustc", &["-V"]),
                "postgresql": pg,
                "timescaledb": ts.unwrap_or_else(|| "missing".into()),
                "mosquitto": stadtpuls_tests::mosquitto::mosquitto_version(),
                "python": py,
            }),
            postgres_settings: serde_json::Value::Object(settings),
            parameters: serde_json::json!({
                "uplinks_per_run": b.uplinks,
                "runs": b.runs,
                "load_seconds": b.load_duration.as_secs(),
                "city_scale": scale,
                "sections": sections,
                "ingest_toml": b.ingest_toml,
            }),
            city: None,
            ingest: Vec::new(),
            backlog: None,
            queries: Vec::new(),
            exports: None,
            ingest_summary: Vec::new(),
            targets: Vec::new(),
        })
    }

    fn summarise(&mut self) {
        let mut groups: Vec<(System, &'static str, u32)> = Vec::new();
        for r in &self.ingest {
            let k = (r.system, r.table, r.max_inflight_messages);
            if !groups.contains(&k) {
                groups.push(k);
            }
        }
        self.ingest_summary = groups
            .into_iter()
            .map(|(system, table, inflight)| {
                let runs: Vec<&IngestRun> = self
                    .ingest
                    .iter()
                    .filter(|r| {
                        (r.system, r.table, r.max_inflight_messages) == (system, table, inflight)
                    })
                    .collect();
                let med = |f: &dyn Fn(&IngestRun) -> Option<f64>| {
                    let v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
                    (!v.is_empty()).then(|| Summary::of(&v).median)
                };
                IngestSummary {
                    system,
                    table,
                    max_inflight_messages: inflight,
                    effective_window: runs[0].effective_window,
                    uplinks_per_s: Summary::of(
                        &runs.iter().map(|r| r.uplinks_per_s).collect::<Vec<_>>(),
                    ),
                    lost: runs.iter().map(|r| r.lost).sum(),
                    duplicates: runs.iter().map(|r| r.duplicates).sum(),
                    consumer_cpu_s_per_1000: med(&|r| r.consumer_cpu_s_per_1000),
                    consumer_peak_rss_mib: runs
                        .iter()
                        .filter_map(|r| r.consumer_peak_rss_mib)
                        .reduce(f64::max),
                    machine_cpu_s_per_1000: med(&|r| Some(r.machine_cpu_s_per_1000))
                        .unwrap_or(f64::NAN),
                }
            })
            .collect();
        self.targets = self.compute_targets();
    }

    fn rate(&self, system: System, table: &str, inflight: u32) -> Option<f64> {
        self.ingest_summary
            .iter()
            .find(|s| s.system == system && s.table == table && s.max_inflight_messages == inflight)
            .map(|s| s.uplinks_per_s.median)
    }

    fn compute_targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let mut add = |what: String, target: &str, measured: String, met: bool| {
            t.push(Target {
                what,
                target: target.into(),
                measured,
                met,
            })
        };
        for inflight in [20u32, 1000] {
            let (a, b, c) = (
                self.rate(System::BrokerOnly, "-", inflight),
                self.rate(System::Stadtpuls, "empty", inflight),
                self.rate(System::NaivePython, "empty", inflight),
            );
            if let (Some(a), Some(b)) = (a, b) {
                add(
                    format!("ingest (b)/(a), max_inflight_messages {inflight}"),
                    "≥ 0.5 (stretch 0.8)",
                    format!("{:.2} ({b:.0} / {a:.0} uplinks/s)", b / a),
                    b / a >= 0.5,
                );
            }
            if let (Some(b), Some(c)) = (b, c) {
                add(
                    format!("ingest (b)/(c), max_inflight_messages {inflight}"),
                    "≥ 2",
                    format!("{:.2} ({b:.0} / {c:.0} uplinks/s)", b / c),
                    b / c >= 2.0,
                );
            }
        }
        if !self.ingest.is_empty() {
            let st: Vec<&IngestRun> = self
                .ingest
                .iter()
                .filter(|r| r.system == System::Stadtpuls)
                .collect();
            let lost: i64 = st.iter().map(|r| r.lost).sum();
            let dup: u64 = st.iter().map(|r| r.duplicates).sum();
            let sent: u64 = st.iter().map(|r| r.sent).sum();
            add(
                "Stadtpuls: lost / duplicated uplinks, all runs".into(),
                "0 / 0",
                format!("{lost} / {dup} of {sent}"),
                lost == 0 && dup == 0,
            );
        }
        if let (Some(big), Some(empty)) = (
            self.rate(System::Stadtpuls, "100M", 1000),
            self.rate(System::Stadtpuls, "empty", 1000),
        ) {
            add(
                "ingest into ≥ 100 M readings ÷ into empty".into(),
                "≥ 0.8",
                format!("{:.2} ({big:.0} / {empty:.0} uplinks/s)", big / empty),
                big / empty >= 0.8,
            );
        }
        if let Some(bl) = &self.backlog {
            add(
                format!(
                    "ingest peak RSS while {} queued messages drain",
                    bl.messages
                ),
                "≤ 150 MB",
                format!(
                    "{:.0} MiB ({:.0} uplinks/s, {} stored)",
                    bl.peak_rss_mib, bl.uplinks_per_s, bl.stored
                ),
                bl.peak_rss_mib * 1.048_576 <= 150.0 && bl.stored == bl.messages,
            );
        }
        for q in &self.queries {
            let measured = match q.mode {
                "open-loop" => format!(
                    "p99 {:.2} ms (p50 {:.2}) at {:.0} req/s",
                    q.p99_ms.median,
                    q.p50_ms.median,
                    q.achieved_rate.map_or(0.0, |a| a.median)
                ),
                _ => format!("median {:.2} ms, max {:.2} ms", q.p50_ms.median, q.max_ms),
            };
            add(q.name.to_string(), q.target, measured, q.met);
        }
        if let Some(e) = &self.exports {
            add(
                "export day to Parquet ÷ COPY csv rows/s".into(),
                "≥ 0.5",
                format!(
                    "{:.2} ({:.0} / {:.0} rows/s)",
                    e.parquet_vs_copy, e.parquet_rows_per_s.median, e.copy_csv_rows_per_s.median
                ),
                e.parquet_vs_copy >= 0.5,
            );
            add(
                "Parquet size ÷ DuckDB zstd".into(),
                "≤ 1.2",
                format!(
                    "{:.2} ({} / {} bytes)",
                    e.size_vs_duckdb, e.parquet_bytes, e.duckdb_zstd_bytes
                ),
                e.size_vs_duckdb <= 1.2,
            );
        }
        t
    }

    /// Writes `results/<date>.json` and `RESULTS.md`; a run of only some sections writes
    /// `results/<date>-<sections>.json` and `RESULTS-<sections>.md` instead, so that it never
    /// replaces a full run's summary.
    pub fn write(&mut self, out: &Path, full: bool) -> Result<()> {
        self.summarise();
        let dir = out.join("results");
        std::fs::create_dir_all(&dir)?;
        let tag = if full {
            String::new()
        } else {
            format!(
                "-{}",
                self.parameters["sections"]
                    .as_str()
                    .unwrap_or("")
                    .replace(',', "-")
            )
        };
        let json = dir.join(format!("{}{tag}.json", &self.date[..10]));
        std::fs::write(&json, serde_json::to_string_pretty(self)?)?;
        let md = self.markdown(&json);
        let md_path = out.join(format!("RESULTS{tag}.md"));
        std::fs::write(&md_path, &md)?;
        println!("\n{md}");
        println!("written: {} and {}", json.display(), md_path.display());
        Ok(())
    }

    fn markdown(&self, json: &Path) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Benchmark results\n");
        let _ = writeln!(
            s,
            "Written by `scripts/bench` ({}, commit {}); raw data: `{}`. Medians of {} runs, \
             [min–max] in brackets. All systems share the machine with the broker and PostgreSQL.\n",
            self.date,
            self.git_commit,
            json.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default(),
            self.parameters["runs"]
        );
        let _ = writeln!(s, "## Machine and versions\n");
        let _ = writeln!(s, "- machine: {}", self.machine);
        let _ = writeln!(s, "- versions: {}", self.versions);
        let _ = writeln!(s, "- PostgreSQL settings: {}", self.postgres_settings);
        let _ = writeln!(s, "- parameters: {}", self.parameters);
        if let Some(c) = &self.city {
            let _ = writeln!(
                s,
                "- city: {} readings ({:.1} GiB), {} located devices, {} parking sites, {} buildings; \
                 export day {} readings; loaded in {:.0} s{}",
                c.readings,
                c.table_bytes as f64 / 1024f64.powi(3),
                c.devices,
                c.parking_sites,
                c.buildings,
                c.export_day_readings,
                c.load_seconds,
                if c.reused { " (reused from an earlier run)" } else { "" }
            );
        }
        let _ = writeln!(s, "\n## Targets\n");
        let _ = writeln!(s, "| what | target | measured | met |\n|---|---|---|---|");
        for t in &self.targets {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.what,
                t.target,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            );
        }
        if !self.ingest_summary.is_empty() {
            let _ = writeln!(s, "\n## Ingest\n");
            let _ = writeln!(
                s,
                "ChirpStack v4 `up` events (about 1.1 kB, three readings each) from 10 000 devices, QoS 1, \
                 MQTT 3.1.1 (the broker's window is `max_inflight_messages`). Rate = uplinks stored ÷ \
                 time from the first publish to the last commit.\n"
            );
            let _ = writeln!(
                s,
                "| system | table | max_inflight | uplinks/s | lost | dup | consumer CPU-s/1000 | consumer peak RSS MiB | machine CPU-s/1000 |\n|---|---|---|---|---|---|---|---|---|"
            );
            for g in &self.ingest_summary {
                let _ = writeln!(
                    s,
                    "| {:?} | {} | {} | {:.0} [{:.0}–{:.0}] | {} | {} | {} | {} | {:.3} |",
                    g.system,
                    g.table,
                    g.max_inflight_messages,
                    g.uplinks_per_s.median,
                    g.uplinks_per_s.min,
                    g.uplinks_per_s.max,
                    g.lost,
                    g.duplicates,
                    g.consumer_cpu_s_per_1000
                        .map_or("-".into(), |v| format!("{v:.3}")),
                    g.consumer_peak_rss_mib
                        .map_or("-".into(), |v| format!("{v:.0}")),
                    g.machine_cpu_s_per_1000
                );
            }
        }
        if let Some(bl) = &self.backlog {
            let _ = writeln!(
                s,
                "\nBacklog: {} messages queued for a stopped ingest drained in {:.1} s ({:.0} uplinks/s), \
                 peak RSS {:.0} MiB, {:.3} CPU-s per 1000, {} stored.",
                bl.messages, bl.seconds, bl.uplinks_per_s, bl.peak_rss_mib, bl.cpu_s_per_1000, bl.stored
            );
        }
        if !self.queries.is_empty() {
            let _ = writeln!(s, "\n## Queries\n");
            let _ = writeln!(
                s,
                "| name | request | mode | p50 ms | p99 ms | max ms | achieved req/s | errors | items |\n|---|---|---|---|---|---|---|---|---|"
            );
            for q in &self.queries {
                let _ = writeln!(
                    s,
                    "| {} | `{}` | {} | {:.2} [{:.2}–{:.2}] | {:.2} [{:.2}–{:.2}] | {:.2} | {} | {} | {} |",
                    q.name,
                    q.request,
                    q.target_rate.map_or("single".into(), |r| format!("open loop {r:.0}/s")),
                    q.p50_ms.median,
                    q.p50_ms.min,
                    q.p50_ms.max,
                    q.p99_ms.median,
                    q.p99_ms.min,
                    q.p99_ms.max,
                    q.max_ms,
                    q.achieved_rate.map_or("-".into(), |a| format!("{:.0}", a.median)),
                    q.errors,
                    q.items_per_response
                );
            }
        }
        if let Some(e) = &self.exports {
            let _ = writeln!(s, "\n## Exports\n");
            let _ = writeln!(
                s,
                "- export day: {} rows; `COPY … TO STDOUT (FORMAT csv)` {:.0} [{:.0}–{:.0}] rows/s ({} bytes)\n\
                 - `stadtpuls export run` → GeoParquet: {:.0} [{:.0}–{:.0}] rows/s ({:.1} s), ratio {:.2}, peak RSS {:.0} MiB\n\
                 - file: {} bytes; DuckDB {} zstd of the same rows: {} bytes ({:.2}×)\n\
                 - `/v1/exports/readings.csv`: {} rows, {} bytes, {:.0} [{:.0}–{:.0}] rows/s; API RSS {:.0} MiB before, peak growth {:.0} MiB",
                e.rows,
                e.copy_csv_rows_per_s.median,
                e.copy_csv_rows_per_s.min,
                e.copy_csv_rows_per_s.max,
                e.copy_csv_bytes,
                e.parquet_rows_per_s.median,
                e.parquet_rows_per_s.min,
                e.parquet_rows_per_s.max,
                e.parquet_seconds.median,
                e.parquet_vs_copy,
                e.parquet_peak_rss_mib,
                e.parquet_bytes,
                e.duckdb_version,
                e.duckdb_zstd_bytes,
                e.size_vs_duckdb,
                e.stream_csv_rows,
                e.stream_csv_bytes,
                e.stream_csv_rows_per_s.median,
                e.stream_csv_rows_per_s.min,
                e.stream_csv_rows_per_s.max,
                e.api_rss_before_mib,
                e.stream_csv_peak_rss_growth_mib
            );
        }
        s
    }
}
