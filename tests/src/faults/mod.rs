//! The fault-injection suite (issue 7): real processes — a test-owned Mosquitto, a test-owned
//! PostgreSQL + TimescaleDB cluster, `stadtpuls ingest` as a child — a publisher sending N
//! uplinks at QoS 1 while one fault happens mid-stream, and afterwards an exact count of what was
//! stored: nothing lost, nothing twice.
//!
//! `tests/tests/faults.rs` runs every scenario once (CI); `scripts/faults` runs them ≥ 10 times at
//! N = 100 000 and writes a table. Configuration comes from the environment ([`Options`]).
//!
//! One run of a scenario:
//! 1. fresh database (migrated), fresh broker (own port, own persistence file), optionally the
//!    cutting proxy between broker and ingest, then `stadtpuls ingest` (ready once subscribed);
//! 2. the publisher starts; once 30 % of the messages are acknowledged by the broker the fault
//!    is injected ([`scenarios`]); a monitor samples the stored count, the ingest's memory and
//!    its duplicate counter every 100 ms;
//! 3. the publisher finishes (every message acknowledged by the broker), the suite waits until
//!    the stored count reaches N, then counts per dedup key ([`verify`]).

pub mod publisher;
pub mod report;
pub mod scenarios;
pub mod verify;

use crate::child::{Binary, Running};
use crate::mosquitto::Broker;
use crate::postgres::PgCluster;
use crate::procs::{sample, Scratch};
use crate::proxy::Proxy;
use crate::workload;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, DurationRound, Utc};
use publisher::Publisher;
pub use report::{Outcome, Report, Tally};
pub use scenarios::Scenario;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Suite settings, from the environment (see [`Options::from_env`]).
#[derive(Clone, Debug)]
pub struct Options {
    /// The `stadtpuls` executable.
    pub bin: PathBuf,
    /// Build it first (`cargo build -p stadtpuls`; when `STADTPULS_BIN` is not set).
    pub build: bool,
    /// Uplinks per run.
    pub n: usize,
    /// Runs per scenario.
    pub runs: usize,
    /// Publishing rate, uplinks per second.
    pub rate: f64,
    /// Distinct devices the uplinks come from.
    pub devices: usize,
    /// Scenario names to run (empty = all).
    pub only: Vec<String>,
    /// Append one JSON line per run here.
    pub record: Option<PathBuf>,
    /// Write `<stem>.md` and `<stem>.json` (the table) here.
    pub report: Option<PathBuf>,
    /// How long PostgreSQL stays down in `postgres_outage`.
    pub outage: Duration,
    /// How long `slow_database` holds its lock on `readings`.
    pub lock: Duration,
    /// Largest resident memory the ingest may reach during the database outage.
    pub rss_limit_mib: f64,
    /// Keep the scratch directory (logs, configs, cluster) even when everything passed.
    pub keep: bool,
}

impl Options {
    /// `STADTPULS_BIN` (default: `target/debug/stadtpuls`, built first), `STADTPULS_FAULTS_N` (10 000),
    /// `_RUNS` (1), `_RATE` (1 000/s), `_DEVICES` (5 000), `_SCENARIOS` (comma list),
    /// `_RECORD` (JSON lines file), `_REPORT` (path stem), `_OUTAGE_S` (30), `_LOCK_S` (20),
    /// `_RSS_LIMIT_MIB` (200), `_KEEP` (1 = keep the scratch directory).
    pub fn from_env() -> Result<Options> {
        fn num<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .replace('_', "")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a number")),
                _ => Ok(default),
            }
        }
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let only = std::env::var("STADTPULS_FAULTS_SCENARIOS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>();
        for name in &only {
            if Scenario::from_name(name).is_none() {
                bail!(
                    "STADTPULS_FAULTS_SCENARIOS: unknown scenario {name:?} (known: {})",
                    Scenario::ALL.map(|s| s.name()).join(", ")
                );
            }
        }
        let o = Options {
            bin: path("STADTPULS_BIN").unwrap_or_else(default_binary),
            build: path("STADTPULS_BIN").is_none(),
            n: num("STADTPULS_FAULTS_N", 10_000)?,
            runs: num("STADTPULS_FAULTS_RUNS", 1)?,
            rate: num("STADTPULS_FAULTS_RATE", 1000.0)?,
            devices: num("STADTPULS_FAULTS_DEVICES", 5000)?,
            only,
            record: path("STADTPULS_FAULTS_RECORD"),
            report: path("STADTPULS_FAULTS_REPORT"),
            outage: Duration::from_secs(num("STADTPULS_FAULTS_OUTAGE_S", 30)?),
            lock: Duration::from_secs(num("STADTPULS_FAULTS_LOCK_S", 20)?),
            rss_limit_mib: num("STADTPULS_FAULTS_RSS_LIMIT_MIB", 200.0)?,
            keep: std::env::var("STADTPULS_FAULTS_KEEP").is_ok_and(|v| v == "1"),
        };
        if o.n < 100 || o.devices == 0 || o.runs == 0 {
            bail!("STADTPULS_FAULTS_N must be ≥ 100, _DEVICES and _RUNS ≥ 1");
        }
        Ok(o)
    }

    /// The scenarios selected by `only`, in their fixed order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        Scenario::ALL
            .into_iter()
            .filter(|s| self.only.is_empty() || self.only.iter().any(|o| o == s.name()))
            .collect()
    }
}

/// `$CARGO_TARGET_DIR/debug/stadtpuls`, else the workspace's `target/debug/stadtpuls`.
pub fn default_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("debug").join("stadtpuls")
}

/// `cargo build -p stadtpuls --bin stadtpuls` (a no-op when it is up to date). `cargo test`
/// builds only the binaries of the package under test, and a stale binary would test old code.
/// Cargo does not hold the build lock while tests run, so this does not wait for the caller.
fn build_binary() -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = std::process::Command::new(cargo);
    c.args(["build", "--quiet", "-p", "stadtpuls", "--bin", "stadtpuls"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Cargo sets these for the test process. Build scripts (ring's, for one) rerun when they
    // change, so passing them on would rebuild half the tree here and again in the next
    // `cargo test`.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let set_by_cargo = ["CARGO_MANIFEST_", "CARGO_PKG_"]
            .iter()
            .any(|p| k.starts_with(p))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&k.as_ref());
        if set_by_cargo {
            c.env_remove(k.as_ref());
        }
    }
    let status = c.status().context("running cargo build -p stadtpuls")?;
    if !status.success() {
        bail!("cargo build -p stadtpuls failed: {status}");
    }
    Ok(())
}

/// Runs every selected scenario `runs` times, one after the other (they would disturb each
/// other's timing otherwise), records each run and returns them all. A failed run does not stop
/// the suite: the report shows every run, the caller decides.
pub async fn run_all(o: &Options) -> Result<Report> {
    if o.build {
        build_binary()?;
    }
    if !o.bin.exists() {
        bail!(
            "{} does not exist: build it with `cargo build -p stadtpuls` or set STADTPULS_BIN",
            o.bin.display()
        );
    }
    let mut scratch = Scratch::new("stadtpuls-faults")?;
    let work = scratch.path.clone();
    let mut pg = PgCluster::create(&work)
        .await
        .context("starting the test-owned PostgreSQL cluster")?;
    let bin = Binary {
        path: o.bin.clone(),
        work: work.clone(),
        capture_logs: true,
    };
    let mut report = Report::new(o);
    println!(
        "faults: {} scenario(s) × {} run(s), N = {}, {} uplinks/s, {} devices; scratch {}",
        o.scenarios().len(),
        o.runs,
        o.n,
        o.rate,
        o.devices,
        work.display()
    );
    let mut key = 0u32;
    for run in 1..=o.runs {
        for sc in o.scenarios() {
            key += 1;
            let started = Instant::now();
            let out = run_one(o, &mut pg, &bin, sc, run, key).await;
            println!(
                "faults: {:<22} run {:>2}: {} ({:.0} s)",
                sc.name(),
                run,
                out.summary(),
                started.elapsed().as_secs_f64()
            );
            if let Some(path) = &o.record {
                report::append_record(path, &out)?;
            }
            report.runs.push(out);
        }
    }
    if o.keep || !report.failures().is_empty() {
        scratch.keep();
        report.scratch = Some(work);
    }
    if let Some(stem) = &o.report {
        report.write(stem)?;
    }
    Ok(report)
}

/// Everything one run owns. Dropping it stops the processes.
#[derive(Debug)]
pub struct Rig {
    pub opts: Options,
    pub db_url: String,
    pub broker: Broker,
    pub proxy: Option<Proxy>,
    pub bin: Binary,
    pub config: PathBuf,
    pub ingest: Option<Running>,
    /// Shared with the monitor: which process to sample.
    pub current: Arc<Mutex<Current>>,
    /// Log tails of ingest processes that ended.
    pub old_logs: Vec<String>,
}

/// The ingest process the monitor samples.
#[derive(Debug, Default)]
pub struct Current {
    pub pid: Option<u32>,
    pub base: Option<String>,
}

impl Rig {
    /// Starts `stadtpuls ingest` (again) and waits until it is subscribed.
    pub async fn start_ingest(&mut self) -> Result<()> {
        let r = self.bin.ingest(&self.config).await?;
        if let Ok(mut c) = self.current.lock() {
            c.pid = Some(r.pid());
            c.base = Some(r.base.clone());
        }
        self.ingest = Some(r);
        Ok(())
    }

    /// Takes the running ingest out of the rig (the monitor stops sampling it).
    pub fn take_ingest(&mut self) -> Option<Running> {
        if let Ok(mut c) = self.current.lock() {
            *c = Current::default();
        }
        let r = self.ingest.take();
        if let Some(r) = &r {
            self.old_logs.push(r.log_tail(50));
        }
        r
    }

    /// The ingest's log tail (current and earlier processes) for failure messages.
    pub fn logs(&self) -> String {
        let mut parts = self.old_logs.clone();
        if let Some(r) = &self.ingest {
            parts.push(r.log_tail(50));
        }
        parts
            .iter()
            .enumerate()
            .map(|(i, t)| format!("--- ingest process {} (last lines) ---\n{t}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The timestamps of the workload: a day ago, on the minute (inside every retention window and
/// well before the decoder's "not in the future" limit).
fn base_time() -> DateTime<Utc> {
    let t = Utc::now() - chrono::Duration::days(1);
    t.duration_trunc(chrono::Duration::minutes(1)).unwrap_or(t)
}

async fn run_one(
    o: &Options,
    pg: &mut PgCluster,
    bin: &Binary,
    sc: Scenario,
    run: usize,
    key: u32,
) -> Outcome {
    let mut out = Outcome::new(sc, run, o.n as u64);
    let db = format!(
        "faults_{}_{run}_{}",
        sc.name(),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let mut rig = None;
    let result = drive(o, pg, bin, sc, key, &db, &mut out, &mut rig).await;
    if let Err(e) = &result {
        out.problems.push(format!("{e:#}"));
    }
    if !out.problems.is_empty() {
        if let Some(r) = &rig {
            out.log_tail = r.logs();
        }
    }
    // Stop the processes before the database goes.
    drop(rig);
    if out.passed() {
        let _ = pg.drop_database(&db).await;
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    o: &Options,
    pg: &mut PgCluster,
    bin: &Binary,
    sc: Scenario,
    key: u32,
    db: &str,
    out: &mut Outcome,
    slot: &mut Option<Rig>,
) -> Result<()> {
    // (Re)start the cluster if an earlier run left it stopped.
    pg.start().await?;
    let url = pg.create_database(db).await?;
    let store = stadtpuls_store::Store::connect(&url, 1, Duration::from_secs(10)).await?;
    store.migrate().await.context("migrating")?;
    drop(store);
    let broker = Broker::start(&bin.work, sc.broker_config()).await?;
    let proxy = if sc.needs_proxy() {
        Some(Proxy::start(broker.port).await?)
    } else {
        None
    };
    let mqtt_port = proxy.as_ref().map_or(broker.port, |p| p.port);
    let config = bin.config(
        &format!("ingest-{db}"),
        &url,
        &format!("[mqtt]\nport = {mqtt_port}\nclient_id = \"faults-{db}\"\n"),
    )?;
    let current = Arc::new(Mutex::new(Current::default()));
    *slot = Some(Rig {
        opts: o.clone(),
        db_url: url.clone(),
        broker,
        proxy,
        bin: bin.clone(),
        config,
        ingest: None,
        current: current.clone(),
        old_logs: Vec::new(),
    });
    let rig = slot.as_mut().context("rig")?;
    rig.start_ingest()
        .await
        .context("starting stadtpuls ingest")?;

    let devices: Vec<u64> = workload::city_dev_euis(o.devices as u64);
    let msgs = Arc::new(workload::uplinks(o.n, &devices, base_time(), key));
    let monitor = Monitor::start(url.clone(), current);
    let publisher = Publisher::start(
        rig.broker.port,
        &format!("faults-pub-{db}"),
        msgs.clone(),
        o.rate,
    );

    // Mid-stream: 30 % of the messages are with the broker.
    let at = (o.n as u64 * 3) / 10;
    let pace = sc.publish_rate(o.rate);
    let until =
        Instant::now() + Duration::from_secs(120) + Duration::from_secs_f64(o.n as f64 / pace);
    while publisher.progress.acked() < at {
        if Instant::now() > until {
            bail!("the publisher did not reach {at} acknowledged messages");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fault = sc.inject(rig, pg, &publisher.progress, &monitor).await?;
    out.absorb_fault(&fault);

    // The publisher has to get everything to the broker (it resends after broker faults).
    let published = publisher
        .finish(Duration::from_secs(300) + Duration::from_secs_f64(2.0 * o.n as f64 / pace))
        .await?;
    out.resent = published.resent;
    out.publisher_disconnects = published.disconnects;
    out.sent = published.acked;

    // Wait until the stored count reaches N, or stops moving (loss) for a while.
    let deadline =
        Instant::now() + Duration::from_secs(180) + Duration::from_secs_f64(o.n as f64 / 300.0);
    let mut last = (0u64, Instant::now());
    loop {
        let stored = monitor.stored();
        if stored >= o.n as u64 {
            break;
        }
        if stored != last.0 {
            last = (stored, Instant::now());
        }
        // Nothing new for a while (the publisher is done): the rest is not coming. 15 s where
        // loss is expected, 60 s where it would be a failure.
        let quiet_for = Duration::from_secs(if sc.required() { 60 } else { 15 });
        let quiet = last.1.elapsed() > quiet_for;
        // Quiet is not a verdict: the counts below decide whether what is missing was lost
        // in the broker's PUBACK-before-save window (allowed) or by us (`Outcome::expected`).
        // Still storing at the deadline is a problem of its own.
        if Instant::now() > deadline || quiet {
            if sc.required() && !quiet {
                out.problems.push(format!(
                    "stored {stored} of {} uplinks and still storing at the deadline",
                    o.n
                ));
            }
            break;
        }
        if let Some(ing) = rig.ingest.as_mut() {
            ing.proc.check_running()?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out.caught_up_s = Some(fault.end.elapsed().as_secs_f64());
    // Anything still arriving (a redelivery stored twice would show now). Not a wait for a
    // signal: there is no signal for "nothing more comes"; this is a quiet period of 1 s in
    // which a late duplicate would be stored and counted below.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let m = monitor.stop().await;
    out.recovery_s = m.recovery_after(fault.end, fault.backlog);
    out.peak_rss_mib = m.peak_rss_kib as f64 / 1024.0;
    out.fault_peak_rss_mib = m.peak_rss_kib_between(fault.start, fault.end) as f64 / 1024.0;
    out.redelivered = m.duplicates_total();

    // Stop the ingest cleanly before counting (its last duplicate counter first).
    if let Some(mut ing) = rig.take_ingest() {
        let http = reqwest::Client::new();
        if let Ok(d) = ing
            .counter(&http, "stadtpuls_ingest_uplinks_duplicate_total")
            .await
        {
            out.redelivered = m.duplicates_except(&ing.base) + d as u64;
        }
        ing.proc.terminate(Duration::from_secs(15)).await?;
    }
    let counts = verify::count(&url, key, o.n).await?;
    out.absorb_counts(&counts);
    if let Some((before, after)) = sc.broker_ack_window() {
        let (from, to) = (fault.start - before, fault.start + after);
        out.lost_in_broker_window = (counts.lost_indices.iter())
            .filter(|&&i| {
                let at = published.acked_at.get(i).copied().flatten();
                at.is_some_and(|t| from <= t && t <= to)
            })
            .count() as u64;
    }
    sc.check(out, o);
    Ok(())
}

/// Samples, every 100 ms, the stored uplinks (own connection, reconnecting through outages),
/// the ingest's resident memory and its duplicate counter.
#[derive(Debug)]
pub struct Monitor {
    state: Arc<Mutex<MonitorState>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the monitor saw.
#[derive(Clone, Debug, Default)]
pub struct MonitorState {
    /// (when, stored uplinks) whenever the count could be read.
    pub stored: Vec<(Instant, u64)>,
    /// (when, RSS KiB) of the current ingest process.
    pub rss: Vec<(Instant, u64)>,
    pub peak_rss_kib: u64,
    /// Last `stadtpuls_ingest_uplinks_duplicate_total` per process (by its base URL).
    pub duplicates: Vec<(String, u64)>,
}

impl Monitor {
    fn start(url: String, current: Arc<Mutex<Current>>) -> Monitor {
        let state = Arc::new(Mutex::new(MonitorState::default()));
        let s = state.clone();
        // Sampler: stored count, RSS and duplicate counter, until stopped.
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut conn: Option<PgConnection> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                n += 1;
                if conn.is_none() {
                    conn =
                        tokio::time::timeout(Duration::from_secs(2), PgConnection::connect(&url))
                            .await
                            .ok()
                            .and_then(Result::ok);
                }
                if let Some(c) = conn.as_mut() {
                    let q = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM uplinks");
                    match tokio::time::timeout(Duration::from_secs(5), q.fetch_one(c)).await {
                        Ok(Ok(v)) => {
                            if let Ok(mut st) = s.lock() {
                                st.stored.push((Instant::now(), v as u64));
                            }
                        }
                        _ => conn = None,
                    }
                }
                let (pid, base) = match current.lock() {
                    Ok(c) => (c.pid, c.base.clone()),
                    Err(_) => (None, None),
                };
                if let Some(pid) = pid {
                    if let Ok(p) = sample(pid) {
                        if let Ok(mut st) = s.lock() {
                            st.rss.push((Instant::now(), p.rss_kib));
                            st.peak_rss_kib = st.peak_rss_kib.max(p.rss_kib);
                        }
                    }
                }
                // The counter every 500 ms (a scrape renders every metric).
                if let (Some(base), true) = (base, n.is_multiple_of(5)) {
                    let r = tokio::time::timeout(
                        Duration::from_secs(2),
                        scrape(&http, &base, "stadtpuls_ingest_uplinks_duplicate_total"),
                    )
                    .await;
                    if let Ok(Some(v)) = r {
                        if let Ok(mut st) = s.lock() {
                            match st.duplicates.iter_mut().find(|(b, _)| *b == base) {
                                Some(e) => e.1 = v,
                                None => st.duplicates.push((base, v)),
                            }
                        }
                    }
                }
            }
        });
        Monitor { state, task }
    }

    /// The latest stored count.
    pub fn stored(&self) -> u64 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.stored.last().map(|x| x.1))
            .unwrap_or(0)
    }

    async fn stop(self) -> MonitorState {
        self.task.abort();
        let _ = self.task.await;
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn scrape(http: &reqwest::Client, base: &str, name: &str) -> Option<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    crate::child::metric(&text, name).map(|v| v as u64)
}

impl MonitorState {
    /// Seconds from `end` until the stored count reached `backlog` (what the broker had
    /// acknowledged to the publisher when the fault ended).
    pub fn recovery_after(&self, end: Instant, backlog: u64) -> Option<f64> {
        self.stored
            .iter()
            .find(|(t, v)| *t >= end && *v >= backlog)
            .map(|(t, _)| t.duration_since(end).as_secs_f64())
    }

    pub fn peak_rss_kib_between(&self, from: Instant, to: Instant) -> u64 {
        self.rss
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|x| x.1)
            .max()
            .unwrap_or(0)
    }

    pub fn duplicates_total(&self) -> u64 {
        self.duplicates.iter().map(|x| x.1).sum()
    }

    fn duplicates_except(&self, base: &str) -> u64 {
        self.duplicates
            .iter()
            .filter(|(b, _)| b != base)
            .map(|x| x.1)
            .sum()
    }
}
