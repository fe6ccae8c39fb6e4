//! Query benchmark against `stadtpuls api` on the city database: open-loop load at a fixed
//! request rate (latency counted from each request's scheduled time, so a slow server cannot
//! hide queueing), and single requests for the heavy views.

use crate::stats::Summary;
use crate::Bench;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use stadtpuls_tests::child::Running;
use std::time::Duration;
use tokio::time::Instant;

/// Result of one query benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    pub name: &'static str,
    pub request: String,
    /// `open-loop` at `target_rate`, or `single` (sequential requests).
    pub mode: &'static str,
    pub target_rate: Option<f64>,
    /// Per run: achieved rate (successful responses per second).
    pub achieved_rate: Option<Summary>,
    /// Per run: 50th / 99th percentile latency in ms (open loop), or per request (single).
    pub p50_ms: Summary,
    pub p99_ms: Summary,
    pub max_ms: f64,
    pub errors: u64,
    /// e.g. features per response, buckets per response.
    pub items_per_response: u64,
    pub target: &'static str,
    pub met: bool,
}

/// Latencies (ms) of one open-loop run, and how many requests failed.
struct LoadRun {
    latencies: Vec<f64>,
    errors: u64,
    achieved: f64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sends `rate` requests per second for `dur`, cycling through `urls`, each at its scheduled
/// time whatever the previous ones are doing (open loop).
async fn open_loop(
    http: &reqwest::Client,
    urls: &[String],
    auth: Option<&str>,
    rate: f64,
    dur: Duration,
) -> LoadRun {
    let n = (rate * dur.as_secs_f64()) as usize;
    let start = Instant::now() + Duration::from_millis(20);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        let mut req = http.get(&urls[i % urls.len()]);
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        set.spawn(async move {
            let ok = match req.send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            let done = Instant::now();
            (done.duration_since(at).as_secs_f64() * 1000.0, ok, done)
        });
    }
    let mut latencies = Vec::with_capacity(n);
    let mut errors = 0;
    let mut last = start;
    while let Some(r) = set.join_next().await {
        if let Ok((ms, ok, done)) = r {
            last = last.max(done);
            if ok {
                latencies.push(ms);
            } else {
                errors += 1;
            }
        } else {
            errors += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let achieved = latencies.len() as f64 / last.duration_since(start).as_secs_f64();
    LoadRun {
        latencies,
        errors,
        achieved,
    }
}

/// One request; returns (ms, body).
async fn timed(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
) -> Result<(f64, serde_json::Value)> {
    let mut req = http.get(url);
    if let Some(a) = auth {
        req = req.bearer_auth(a);
    }
    let t = Instant::now();
    let r = req.send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        bail!("{url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok((
        ms,
        serde_json::from_slice(&body).context("response is not JSON")?,
    ))
}

/// Points around the centre with parking sites within 1 km (the city app's typical question).
fn parking_points() -> Vec<(f64, f64)> {
    (0..50)
        .map(|i| {
            let f = i as f64;
            (
                51.500 + 0.030 * ((f * 0.37) % 1.0),
                7.430 + 0.060 * ((f * 0.61) % 1.0),
            )
        })
        .collect()
}

/// District boxes (`minLon,minLat,maxLon,maxLat`) of about 500 located devices each, away from
/// the parking area so that they hold mostly climate stations.
fn districts() -> Vec<String> {
    (0..5)
        .map(|i| {
            let lat = 51.425 + 0.032 * i as f64;
            format!("7.305,{lat:.3},7.385,{:.3}", lat + 0.05)
        })
        .collect()
}

async fn load_test(
    b: &Bench,
    http: &reqwest::Client,
    name: &'static str,
    urls: Vec<String>,
    rate: f64,
    target_p99: f64,
    items: u64,
) -> Result<QueryResult> {
    // Warm-up, not recorded: every request once in turn (it reads its pages into the cache
    // without a queue forming behind it), then three seconds at the same rate. A run that
    // started on a cold cache near saturation kept the queue it built in its first second.
    for url in &urls {
        timed(http, url, None).await?;
    }
    open_loop(http, &urls, None, rate, Duration::from_secs(3)).await;
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut ach = Vec::new();
    let mut max: f64 = 0.0;
    let mut errors = 0;
    for _ in 0..b.runs {
        let r = open_loop(http, &urls, None, rate, b.load_duration).await;
        p50.push(pct(&r.latencies, 50.0));
        p99.push(pct(&r.latencies, 99.0));
        max = max.max(r.latencies.last().copied().unwrap_or(f64::NAN));
        ach.push(r.achieved);
        errors += r.errors;
    }
    let p99s = Summary::of(&p99);
    let achieved = Summary::of(&ach);
    let met = p99s.median <= target_p99 && errors == 0 && achieved.median >= 0.95 * rate;
    println!(
        "  {name:<22} {rate:>6.0} req/s: p50 {:.2} ms, p99 {:.2} ms, achieved {:.0}/s, errors {errors}",
        Summary::of(&p50).median,
        p99s.median,
        achieved.median
    );
    Ok(QueryResult {
        name,
        request: api_path(&urls[0]),
        mode: "open-loop",
        target_rate: Some(rate),
        achieved_rate: Some(achieved),
        p50_ms: Summary::of(&p50),
        p99_ms: p99s,
        max_ms: max,
        errors,
        items_per_response: items,
        target: if target_p99 <= 5.0 {
            "p99 ≤ 5 ms"
        } else {
            "p99 ≤ 15 ms"
        },
        met,
    })
}

async fn single_test(
    http: &reqwest::Client,
    name: &'static str,
    urls: Vec<String>,
    auth: Option<&str>,
    target_ms: f64,
    target: &'static str,
    items: impl Fn(&serde_json::Value) -> u64,
) -> Result<QueryResult> {
    let mut ms = Vec::new();
    let mut n_items = 0;
    for url in &urls {
        // Warm: the same request once before the measured one.
        timed(http, url, auth).await?;
        let (t, body) = timed(http, url, auth).await?;
        n_items = items(&body);
        ms.push(t);
    }
    let s = Summary::of(&ms);
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "  {name:<22} single: median {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests, {n_items} items)",
        s.median,
        pct(&sorted, 99.0),
        s.max,
        ms.len()
    );
    Ok(QueryResult {
        name,
        request: api_path(&urls[0]),
        mode: "single",
        target_rate: None,
        achieved_rate: None,
        p50_ms: s,
        p99_ms: Summary::of(&[pct(&sorted, 99.0)]),
        max_ms: s.max,
        errors: 0,
        items_per_response: n_items,
        target,
        met: s.median <= target_ms,
    })
}

/// The `/v1/…` part of a request URL, for the report.
fn api_path(url: &str) -> String {
    url.split_once("/v1")
        .map(|(_, r)| format!("/v1{r}"))
        .unwrap_or_default()
}

fn features(v: &serde_json::Value) -> u64 {
    v["features"].as_array().map_or(0, |a| a.len() as u64)
}

pub async fn run(b: &Bench, api: &Running, building_key: &str) -> Result<Vec<QueryResult>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = &api.base;
    let mut out = Vec::new();

    let sites: Vec<String> = parking_points()
        .iter()
        .map(|(lat, lon)| format!("{base}/v1/parking/sites?lat={lat:.5}&lon={lon:.5}&radius=1000"))
        .collect();
    let (_, sample) = timed(&http, &sites[0], None).await?;
    let n = sample["items"].as_array().map_or(0, |a| a.len() as u64);
    out.push(load_test(b, &http, "parking_sites_1km", sites, 1000.0, 5.0, n).await?);

    let district: Vec<String> = districts()
        .iter()
        .map(|bbox| format!("{base}/v1/latest?bbox={bbox}"))
        .collect();
    let mut counts = Vec::new();
    for u in &district {
        counts.push(features(&timed(&http, u, None).await?.1) as f64);
    }
    let mean = Summary::of(&counts).median as u64;
    out.push(
        load_test(
            b,
            &http,
            "latest_district_bbox",
            district,
            200.0,
            15.0,
            mean,
        )
        .await?,
    );

    let city: Vec<String> = (0..20).map(|_| format!("{base}/v1/latest")).collect();
    out.push(
        single_test(
            &http,
            "latest_whole_city",
            city,
            None,
            100.0,
            "≤ 100 ms",
            features,
        )
        .await?,
    );

    // Climate stations (index 2671..) have a temperature series over the whole year.
    let aggs: Vec<String> = (0..20)
        .map(|i| {
            let eui = 0x70b3_d57e_d000_0000u64 + 3000 + 211 * i;
            format!(
                "{base}/v1/devices/{eui:016x}/aggregates?quantity=temperature&bucket=1h\
                 &from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"
            )
        })
        .collect();
    out.push(
        single_test(
            &http,
            "device_hourly_year",
            aggs,
            None,
            100.0,
            "≤ 100 ms",
            |v| v["items"].as_array().map_or(0, |a| a.len() as u64),
        )
        .await?,
    );

    let building: Vec<String> = (0..20)
        .map(|_| format!("{base}/v1/buildings/bench-b1"))
        .collect();
    out.push(
        single_test(
            &http,
            "building_view",
            building,
            Some(building_key),
            20.0,
            "≤ 20 ms",
            |v| v["rooms"].as_array().map_or(0, |a| a.len() as u64),
        )
        .await?,
    );
    Ok(out)
}
