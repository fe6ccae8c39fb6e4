//! `stadtpuls-bench`: the benchmark suite behind `scripts/bench`. Measures ingest (against a
//! broker-only ceiling and a naive Python consumer), queries at fixed request rates, and exports
//! (against PostgreSQL's COPY and DuckDB's Parquet), all in one run on the same machine, so
//! that ratios compare like with like. Writes `bench/results/<date>.json` and `bench/RESULTS.md`.
//!
//! It expects a private PostgreSQL with TimescaleDB (`--database-url`), Mosquitto on `PATH`, a
//! release build of `stadtpuls` and a Python with `bench/python/requirements.txt`; the script
//! sets all of that up.

mod db;
mod exports;
mod ingest;
mod queries;
mod report;
mod stats;

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Stadtpuls benchmark suite (run it through scripts/bench)")]
struct Args {
    /// The private server's maintenance database, e.g. postgres://postgres@127.0.0.1:55432/postgres.
    #[arg(long)]
    database_url: String,
    /// Release build of the stadtpuls binary.
    #[arg(long)]
    stadtpuls: PathBuf,
    /// Python with bench/python/requirements.txt installed.
    #[arg(long)]
    python: PathBuf,
    /// Repository root.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Scratch space (configs, export files).
    #[arg(long, default_value = "target/bench/work")]
    work: PathBuf,
    /// Uplinks per ingest run.
    #[arg(long, default_value_t = 500_000)]
    uplinks: usize,
    /// Queued messages for the backlog drain.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: usize,
    /// Repetitions of every measurement (medians and min–max are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of each open-loop query run.
    #[arg(long, default_value_t = 10)]
    load_seconds: u64,
    /// Divide the city's readings by this (1 = ≥ 100 M; e.g. 100 for a quick smoke run).
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Sections to run (comma list of ingest, big, backlog, queries, exports).
    #[arg(long, default_value = "ingest,big,backlog,queries,exports")]
    sections: String,
    /// Extra TOML appended to the ingest's [mqtt] section (e.g. batch settings under [ingest]).
    #[arg(long, default_value = "")]
    ingest_toml: String,
    /// Where to write the results (JSON per date) and RESULTS.md.
    #[arg(long, default_value = "bench")]
    out: PathBuf,
}

/// Shared settings of one benchmark run.
#[derive(Debug)]
pub struct Bench {
    pub bin: stadtpuls_tests::child::Binary,
    pub python: PathBuf,
    pub root: PathBuf,
    pub work: PathBuf,
    pub uplinks: usize,
    pub runs: usize,
    pub load_duration: Duration,
    pub ingest_toml: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let root = std::fs::canonicalize(&args.root)?;
    std::fs::create_dir_all(&args.work)?;
    let work = std::fs::canonicalize(&args.work)?;
    let b = Bench {
        bin: stadtpuls_tests::child::Binary {
            path: std::fs::canonicalize(&args.stadtpuls).context("--stadtpuls")?,
            work: work.clone(),
            capture_logs: false,
        },
        python: args.python.clone(),
        root: root.clone(),
        work,
        uplinks: args.uplinks,
        runs: args.runs.max(1),
        load_duration: Duration::from_secs(args.load_seconds),
        ingest_toml: args.ingest_toml.clone(),
    };
    let sections: Vec<&str> = args.sections.split(',').map(str::trim).collect();
    let on = |s: &str| sections.contains(&s);
    let mut rep = report::Report::new(&args.database_url, &b, args.scale, &args.sections).await?;

    let db = db::Db::connect(&args.database_url, args.scale).await?;
    println!("== city dataset");
    rep.city = Some(db.ensure().await?);
    println!("{:?}", rep.city);

    if on("queries") || on("exports") {
        let cfg = b.bin.config(
            "api",
            &db.city_url(),
            "[http]\nrate_limit_per_second = 0\nrequest_timeout_secs = 600\n",
        )?;
        let api = b.bin.api(&cfg).await?;
        let store =
            stadtpuls_store::Store::connect(&db.city_url(), 1, Duration::from_secs(10)).await?;
        let key = store
            .create_key(
                stadtpuls_store::keys::Scope::Building("bench-b1".into()),
                Some("benchmark"),
            )
            .await?
            .secret;
        if on("queries") {
            println!("== queries");
            rep.queries = queries::run(&b, &api, &key).await?;
        }
        if on("exports") {
            println!("== exports");
            rep.exports = Some(exports::run(&b, &db, &api).await?);
        }
        api.stop().await?;
    }
    if on("ingest") {
        println!("== ingest");
        rep.ingest = ingest::run_matrix(&b, &db).await?;
    }
    if on("big") {
        println!("== ingest into the city database");
        rep.ingest.extend(ingest::run_big(&b, &db).await?);
        db.reset().await?;
    }
    if on("backlog") {
        println!("== backlog drain");
        rep.backlog = Some(ingest::backlog(&b, &db, args.backlog).await?);
        println!("{:?}", rep.backlog);
    }
    let full = ["ingest", "big", "backlog", "queries", "exports"]
        .iter()
        .all(|s| on(s));
    rep.write(&args.out, full)?;
    Ok(())
}
