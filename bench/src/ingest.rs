//! Ingest benchmark: (a) broker-only ceiling, (b) `stadtpuls ingest`, (c) the naive Python
//! consumer, each on a fresh broker and a fresh database, at two broker in-flight windows; then
//! Stadtpuls into the city database holding 100 M readings, and a 1 M-message backlog drain.

use crate::db::Db;
use crate::Bench;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use serde::Serialize;
use stadtpuls_tests::child::Running;
use stadtpuls_tests::mosquitto::{Broker, BrokerConfig};
use stadtpuls_tests::procs::{machine_cpu, reset_peak, sample, Owned};
use stadtpuls_tests::workload::{self, Counter, Msg};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// What each system is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// (a) a subscriber that only counts: the broker's ceiling on this machine.
    BrokerOnly,
    /// (b) `stadtpuls ingest`.
    Stadtpuls,
    /// (c) paho-mqtt + psycopg, COPY per 1000 messages, acks on receipt.
    NaivePython,
}

/// One measured run.
#[derive(Clone, Debug, Serialize)]
pub struct IngestRun {
    pub system: System,
    /// `empty` or `100M` (readings already in the table).
    pub table: &'static str,
    pub max_inflight_messages: u32,
    pub protocol: &'static str,
    /// Unacknowledged QoS 1 messages the broker sends this client at once.
    pub effective_window: u32,
    pub sent: u64,
    pub stored: u64,
    pub lost: i64,
    pub duplicates: u64,
    pub seconds: f64,
    pub uplinks_per_s: f64,
    /// Consumer process CPU (user + system) per 1 000 uplinks.
    pub consumer_cpu_s_per_1000: Option<f64>,
    pub consumer_peak_rss_mib: Option<f64>,
    /// Whole machine (broker, publisher, database, consumer) busy CPU seconds per 1 000.
    pub machine_cpu_s_per_1000: f64,
}

/// The backlog drain (peak RSS while 1 M queued messages are ingested).
#[derive(Clone, Debug, Serialize)]
pub struct Backlog {
    pub messages: u64,
    pub stored: u64,
    pub seconds: f64,
    pub uplinks_per_s: f64,
    pub peak_rss_mib: f64,
    pub cpu_s_per_1000: f64,
}

const FILTER: &str = "application/+/device/+/event/up";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Workload start for run `k`: past times (ingest rejects future ones), two hours apart (a run
/// of 500 000 uplinks spans 50 minutes), after the city's export day.
fn base_time(k: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + ChronoDuration::hours(2 * i64::from(k))
}

/// A single extra uplink used to warm up and to see that the consumer is ready.
fn probe(k: u32) -> Vec<Msg> {
    workload::uplinks(
        1,
        &workload::city_dev_euis(1),
        base_time(k) - ChronoDuration::hours(1),
        900_000 + k,
    )
}

pub async fn run_matrix(b: &Bench, db: &Db) -> Result<Vec<IngestRun>> {
    let devices = workload::city_dev_euis(10_000);
    let msgs = workload::uplinks(b.uplinks, &devices, base_time(0), 0);
    let mean = msgs.iter().map(|m| m.payload.len()).sum::<usize>() as f64 / msgs.len() as f64;
    println!(
        "ingest: {} ChirpStack v4 uplinks, mean payload {mean:.0} bytes, {} devices",
        msgs.len(),
        devices.len()
    );
    let mut out = Vec::new();
    let mut k = 0u32;
    for inflight in [20u32, 1000] {
        for run in 0..b.runs {
            for system in [System::BrokerOnly, System::Stadtpuls, System::NaivePython] {
                k += 1;
                let broker = Broker::start(&b.work, BrokerConfig::volatile(inflight)).await?;
                let r = match system {
                    System::BrokerOnly => broker_only(&broker, &msgs).await,
                    System::Stadtpuls => {
                        let url = db.fresh_empty(&format!("bench_ingest_{k}")).await?;
                        let r = stadtpuls(
                            b,
                            db,
                            &broker,
                            Dest {
                                url: &url,
                                table: "empty",
                                since: base_time(0),
                            },
                            &msgs,
                            k,
                        )
                        .await;
                        db.drop(&format!("bench_ingest_{k}")).await?;
                        r
                    }
                    System::NaivePython => {
                        let url = db.fresh_empty(&format!("bench_naive_{k}")).await?;
                        let r = naive(b, db, &broker, &url, &msgs, k).await;
                        db.drop(&format!("bench_naive_{k}")).await?;
                        r
                    }
                }
                .with_context(|| {
                    format!("{system:?} run {run} at max_inflight_messages {inflight}")
                })?;
                broker.stop().await?;
                println!(
                    "  {:<13} inflight {:>4} run {}: {:>8.0} uplinks/s, stored {}/{}, dup {}",
                    format!("{system:?}"),
                    inflight,
                    run + 1,
                    r.uplinks_per_s,
                    r.stored,
                    r.sent,
                    r.duplicates
                );
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Stadtpuls into the city database (≥ 100 M readings), `runs` times at in-flight 1000.
pub async fn run_big(b: &Bench, db: &Db) -> Result<Vec<IngestRun>> {
    let devices = workload::city_dev_euis(10_000);
    let mut out = Vec::new();
    for run in 0..b.runs {
        let k = 100 + run as u32;
        let msgs = workload::uplinks(b.uplinks, &devices, base_time(k), k);
        let broker = Broker::start(&b.work, BrokerConfig::volatile(1000)).await?;
        let city = db.city_url();
        db.exec_on(&city, "TRUNCATE uplinks").await?;
        let r = stadtpuls(
            b,
            db,
            &broker,
            Dest {
                url: &city,
                table: "100M",
                since: base_time(k),
            },
            &msgs,
            k,
        )
        .await?;
        broker.stop().await?;
        println!(
            "  Stadtpuls into 100M readings, run {}: {:>8.0} uplinks/s, stored {}/{}",
            run + 1,
            r.uplinks_per_s,
            r.stored,
            r.sent
        );
        out.push(r);
    }
    Ok(out)
}

async fn broker_only(broker: &Broker, msgs: &[Msg]) -> Result<IngestRun> {
    let n = msgs.len() as u64;
    let mut counter = Counter::start(broker.port, "bench-counter", FILTER, n).await?;
    let (busy0, _) = machine_cpu();
    let published = workload::publish(broker.port, "bench-publisher", msgs).await?;
    let done = counter.finished(Duration::from_secs(1800)).await?;
    let (busy1, _) = machine_cpu();
    // Anything beyond n arriving shortly after would be a duplicate.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = counter.received.load(std::sync::atomic::Ordering::Relaxed);
    counter.stop();
    let secs = done.duration_since(published.started).as_secs_f64();
    Ok(IngestRun {
        system: System::BrokerOnly,
        table: "-",
        max_inflight_messages: broker.max_inflight,
        protocol: "MQTT 3.1.1",
        effective_window: broker.max_inflight,
        sent: n,
        stored: received.min(n),
        lost: n as i64 - received as i64,
        duplicates: received.saturating_sub(n),
        seconds: secs,
        uplinks_per_s: n as f64 / secs,
        consumer_cpu_s_per_1000: None,
        consumer_peak_rss_mib: None,
        machine_cpu_s_per_1000: (busy1 - busy0) / n as f64 * 1000.0,
    })
}

/// Waits until the ingest's stored-uplinks counter reaches `target`.
async fn wait_stored(
    ing: &mut Running,
    http: &reqwest::Client,
    target: f64,
    within: Duration,
) -> Result<Instant> {
    let until = Instant::now() + within;
    loop {
        let v = ing
            .counter(http, "stadtpuls_ingest_uplinks_stored_total")
            .await?;
        if v >= target {
            return Ok(Instant::now());
        }
        ing.proc.check_running()?;
        if Instant::now() > until {
            bail!("stadtpuls stored {v} of {target} uplinks within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where a Stadtpuls run writes: the database, how the report names its table, and the
/// earliest time of the run's uplinks (for counting what it stored).
struct Dest<'a> {
    url: &'a str,
    table: &'static str,
    since: DateTime<Utc>,
}

/// The configuration of `stadtpuls ingest` against `broker` (with `--ingest-toml` appended).
fn ingest_config(b: &Bench, name: &str, url: &str, broker: &Broker) -> Result<std::path::PathBuf> {
    b.bin.config(
        name,
        url,
        &format!(
            "[mqtt]\nport = {}\nclient_id = \"bench-ingest\"\n{}",
            broker.port, b.ingest_toml
        ),
    )
}

async fn stadtpuls(
    b: &Bench,
    db: &Db,
    broker: &Broker,
    dest: Dest<'_>,
    msgs: &[Msg],
    k: u32,
) -> Result<IngestRun> {
    let Dest {
        url,
        table,
        since: base,
    } = dest;
    let n = msgs.len() as u64;
    let cfg = ingest_config(b, &format!("ingest-{k}"), url, broker)?;
    let mut ing = b.bin.ingest(&cfg).await?;
    let http = reqwest::Client::new();
    workload::publish(broker.port, "bench-probe", &probe(k)).await?;
    wait_stored(&mut ing, &http, 1.0, Duration::from_secs(30)).await?;
    let pid = ing.pid();
    reset_peak(pid)?;
    let s0 = sample(pid)?;
    let (busy0, _) = machine_cpu();
    let port = broker.port;
    let all = msgs.to_vec();
    let publisher =
        tokio::spawn(async move { workload::publish(port, "bench-publisher", &all).await });
    let started = Instant::now();
    let done = wait_stored(&mut ing, &http, (n + 1) as f64, Duration::from_secs(1800)).await?;
    let published = publisher.await??;
    let (busy1, _) = machine_cpu();
    let s1 = sample(pid)?;
    let dup = ing
        .counter(&http, "stadtpuls_ingest_uplinks_duplicate_total")
        .await?;
    ing.stop().await?;
    let first = published.started.min(started);
    let secs = done.duration_since(first).as_secs_f64();
    let (uplinks, readings) = db
        .stored_counts(url, base - ChronoDuration::hours(1))
        .await?;
    if readings != 3 * uplinks {
        bail!("stadtpuls stored {uplinks} uplinks but {readings} readings (expected 3 each)");
    }
    Ok(IngestRun {
        system: System::Stadtpuls,
        table,
        max_inflight_messages: broker.max_inflight,
        protocol: "MQTT 3.1.1",
        effective_window: broker.max_inflight,
        sent: n,
        stored: uplinks.saturating_sub(1),
        lost: (n + 1) as i64 - uplinks as i64,
        duplicates: dup as u64,
        seconds: secs,
        uplinks_per_s: n as f64 / secs,
        consumer_cpu_s_per_1000: Some((s1.cpu_secs - s0.cpu_secs) / n as f64 * 1000.0),
        consumer_peak_rss_mib: Some(s1.hwm_kib as f64 / 1024.0),
        machine_cpu_s_per_1000: (busy1 - busy0) / n as f64 * 1000.0,
    })
}

async fn naive(
    b: &Bench,
    db: &Db,
    broker: &Broker,
    url: &str,
    msgs: &[Msg],
    k: u32,
) -> Result<IngestRun> {
    let n = msgs.len() as u64;
    let script = b.root.join("bench/python/naive_ingest.py");
    let mut cmd = Command::new(&b.python);
    cmd.arg(&script)
        .arg("--port")
        .arg(broker.port.to_string())
        .arg("--dsn")
        .arg(url)
        .arg("--client-id")
        .arg("bench-naive")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut proc = Owned::spawn("naive_ingest.py", &mut cmd)?;
    let pid = proc.pid();
    let stdout = proc.child.stdout.take().context("python stdout")?;
    let (tx, mut rx) = tokio::sync::watch::channel((false, 0u64, 0.0f64));
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let mut it = l.split_whitespace();
            match it.next() {
                Some("ready") => {
                    tx.send_modify(|s| s.0 = true);
                }
                Some("committed") => {
                    let c = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                    let t = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
                    tx.send_modify(|s| {
                        s.1 = c;
                        s.2 = t;
                    });
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| s.0))
        .await
        .context("naive consumer did not subscribe")??;
    workload::publish(broker.port, "bench-probe", &probe(k)).await?;
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| s.1 >= 1))
        .await
        .context("naive consumer did not store the probe")??;
    reset_peak(pid)?;
    let s0 = sample(pid)?;
    let (busy0, _) = machine_cpu();
    let t0 = unix_now();
    workload::publish(broker.port, "bench-publisher", msgs).await?;
    let end = tokio::time::timeout(Duration::from_secs(1800), rx.wait_for(|s| s.1 > n))
        .await
        .context("naive consumer did not store everything")??
        .2;
    let (busy1, _) = machine_cpu();
    let s1 = sample(pid)?;
    proc.stop(Duration::from_secs(5)).await?;
    let (rows, distinct) = db.naive_counts(url).await?;
    let secs = end - t0;
    Ok(IngestRun {
        system: System::NaivePython,
        table: "empty",
        max_inflight_messages: broker.max_inflight,
        protocol: "MQTT 3.1.1",
        effective_window: broker.max_inflight,
        sent: n,
        stored: (distinct / 3).saturating_sub(1),
        lost: (n + 1) as i64 - (distinct / 3) as i64,
        duplicates: (rows - distinct) / 3,
        seconds: secs,
        uplinks_per_s: n as f64 / secs,
        consumer_cpu_s_per_1000: Some((s1.cpu_secs - s0.cpu_secs) / n as f64 * 1000.0),
        consumer_peak_rss_mib: Some(s1.hwm_kib as f64 / 1024.0),
        machine_cpu_s_per_1000: (busy1 - busy0) / n as f64 * 1000.0,
    })
}

/// Queues `messages` for a stopped ingest (persistent session), then starts it and records its
/// peak RSS until the backlog is stored.
pub async fn backlog(b: &Bench, db: &Db, messages: usize) -> Result<Backlog> {
    let devices = workload::city_dev_euis(10_000);
    let k = 200;
    let msgs = workload::uplinks(messages, &devices, base_time(k), k);
    let broker = Broker::start(&b.work, BrokerConfig::volatile(1000)).await?;
    let url = db.fresh_empty("bench_backlog").await?;
    let cfg = ingest_config(b, "ingest-backlog", &url, &broker)?;
    // First start creates the persistent session and its subscription.
    b.bin.ingest(&cfg).await?.stop().await?;
    println!("  queueing {messages} messages for the stopped ingest");
    workload::publish(broker.port, "bench-publisher", &msgs).await?;
    let mut ing = b.bin.ingest(&cfg).await?;
    let started = Instant::now();
    let pid = ing.pid();
    let http = reqwest::Client::new();
    let mut peak = 0u64;
    loop {
        let s = sample(pid)?;
        peak = peak.max(s.hwm_kib);
        let v = ing
            .counter(&http, "stadtpuls_ingest_uplinks_stored_total")
            .await?;
        if v >= messages as f64 {
            break;
        }
        ing.proc.check_running()?;
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("backlog not drained: {v} of {messages}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let s = sample(pid)?;
    peak = peak.max(s.hwm_kib);
    ing.stop().await?;
    broker.stop().await?;
    let (uplinks, _) = db
        .stored_counts(&url, base_time(k) - ChronoDuration::hours(1))
        .await?;
    db.drop("bench_backlog").await?;
    Ok(Backlog {
        messages: messages as u64,
        stored: uplinks,
        seconds: secs,
        uplinks_per_s: messages as f64 / secs,
        peak_rss_mib: peak as f64 / 1024.0,
        cpu_s_per_1000: s.cpu_secs / messages as f64 * 1000.0,
    })
}
