//! Export benchmark: the export day (10 M readings) to GeoParquet by `stadtpuls export run`,
//! against `COPY (SELECT …) TO STDOUT (FORMAT csv)` of the same rows in the same run; our file
//! size against DuckDB's zstd Parquet of the same rows; and the streaming CSV download.

use crate::db::Db;
use crate::stats::Summary;
use crate::Bench;
use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde::Serialize;
use stadtpuls_tests::child::Running;
use stadtpuls_tests::procs::{reset_peak, sample};
use std::time::Instant;

const FROM: &str = "2026-01-14T23:00:00Z";
const TO: &str = "2026-01-15T23:00:00Z";

#[derive(Clone, Debug, Serialize)]
pub struct ExportResults {
    pub rows: u64,
    pub copy_csv_rows_per_s: Summary,
    pub copy_csv_bytes: u64,
    pub parquet_rows_per_s: Summary,
    pub parquet_seconds: Summary,
    /// Parquet rows/s ÷ COPY rows/s, median of the per-run ratios.
    pub parquet_vs_copy: f64,
    pub parquet_peak_rss_mib: f64,
    pub parquet_bytes: u64,
    pub duckdb_zstd_bytes: u64,
    pub size_vs_duckdb: f64,
    pub duckdb_version: String,
    pub stream_csv_rows: u64,
    pub stream_csv_bytes: u64,
    pub stream_csv_rows_per_s: Summary,
    /// The API process's peak RSS during the download above its RSS before it.
    pub stream_csv_peak_rss_growth_mib: f64,
    pub api_rss_before_mib: f64,
}

/// `COPY (SELECT …) TO STDOUT (FORMAT csv)` of the export day's climate readings: (rows, bytes, s).
async fn copy_baseline(db: &Db) -> Result<(u64, u64, f64)> {
    let mut c = db.city_conn().await?;
    let sql = format!(
        "COPY (SELECT r.time, r.dev_eui, r.quantity, r.value FROM readings r \
         JOIN devices d USING (dev_eui) \
         WHERE d.kind = 'outdoor_climate' AND d.visibility = 'public' \
         AND r.time >= '{FROM}' AND r.time < '{TO}') TO STDOUT (FORMAT csv)"
    );
    let t = Instant::now();
    let mut stream = c.copy_out_raw(&sql).await?;
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok((rows, bytes, t.elapsed().as_secs_f64()))
}

pub async fn run(b: &Bench, db: &Db, api: &Running) -> Result<ExportResults> {
    let out_dir = b.work.join("opendata");
    let _ = std::fs::remove_dir_all(&out_dir);
    let cfg = b.bin.config(
        "export",
        &db.city_url(),
        &format!(
            "[opendata]\noutput_dir = \"{}\"\n\n[[opendata.datasets]]\nname = \"bench_climate_raw\"\n\
             title_de = \"Benchmark Stadtklima\"\ntitle_en = \"Benchmark urban climate\"\n\
             description_de = \"Benchmark\"\ndescription_en = \"Benchmark\"\n\
             quantities = [\"temperature\", \"humidity\"]\nkinds = [\"outdoor_climate\"]\n\
             formats = [\"parquet\"]\nschedule = \"0 0 3 * * *\"\n",
            out_dir.display()
        ),
    )?;
    let mut copy_rates = Vec::new();
    let mut parquet_rates = Vec::new();
    let mut parquet_secs = Vec::new();
    let mut ratios = Vec::new();
    let mut peak = 0u64;
    let (mut rows, mut copy_bytes) = (0, 0);
    for run in 0..b.runs {
        let (r, bytes, secs) = copy_baseline(db).await?;
        rows = r;
        copy_bytes = bytes;
        copy_rates.push(r as f64 / secs);
        let (wall, p, _cpu) = b
            .bin
            .run_to_end(
                &cfg,
                &[
                    "export",
                    "run",
                    "--dataset",
                    "bench_climate_raw",
                    "--from",
                    FROM,
                    "--to",
                    TO,
                ],
            )
            .await?;
        peak = peak.max(p);
        let rate = r as f64 / wall.as_secs_f64();
        parquet_rates.push(rate);
        parquet_secs.push(wall.as_secs_f64());
        ratios.push(rate / (r as f64 / secs));
        println!(
            "  export run {}: COPY csv {:.0} rows/s ({rows} rows), Parquet {:.0} rows/s ({:.1} s), peak RSS {:.0} MiB",
            run + 1,
            r as f64 / secs,
            rate,
            wall.as_secs_f64(),
            p as f64 / 1024.0
        );
    }
    let file = out_dir.join("dataset=bench_climate_raw/date=2026-01-15/part-0.parquet");
    let ours = std::fs::metadata(&file)
        .with_context(|| format!("{} missing", file.display()))?
        .len();
    let duck_file = b.work.join("duckdb-zstd.parquet");
    let out = tokio::process::Command::new(&b.python)
        .arg(b.root.join("bench/python/duckdb_size.py"))
        .arg(&file)
        .arg(&duck_file)
        .output()
        .await?;
    if !out.status.success() {
        bail!("duckdb_size.py: {}", String::from_utf8_lossy(&out.stderr));
    }
    let duck: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    if duck["rows"].as_u64() != Some(rows) {
        bail!("our Parquet holds {} rows, COPY gave {rows}", duck["rows"]);
    }
    let duck_bytes = duck["duckdb_bytes"].as_u64().unwrap_or(0);
    println!(
        "  Parquet {ours} bytes, DuckDB zstd {duck_bytes} bytes ({:.2}×)",
        ours as f64 / duck_bytes as f64
    );

    // Streaming CSV download of the same day through the API.
    let http = reqwest::Client::new();
    let url = format!(
        "{}/v1/exports/readings.csv?quantity=temperature,humidity&from={FROM}&to={TO}",
        api.base
    );
    let pid = api.pid();
    let before = sample(pid)?.rss_kib;
    let mut stream_rates = Vec::new();
    let mut growth = 0u64;
    let (mut s_rows, mut s_bytes) = (0, 0);
    for _ in 0..b.runs {
        reset_peak(pid)?;
        let t = Instant::now();
        let r = http.get(&url).send().await?;
        if !r.status().is_success() {
            bail!("{url}: {}", r.status());
        }
        let mut body = r.bytes_stream();
        let (mut lines, mut bytes) = (0u64, 0u64);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        let secs = t.elapsed().as_secs_f64();
        let s = sample(pid)?;
        growth = growth.max(s.hwm_kib.saturating_sub(before));
        s_rows = lines.saturating_sub(1);
        s_bytes = bytes;
        stream_rates.push(s_rows as f64 / secs);
        println!(
            "  /v1/exports/readings.csv: {s_rows} rows, {bytes} bytes in {secs:.1} s, API peak RSS {:.0} MiB (before {:.0})",
            s.hwm_kib as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }
    Ok(ExportResults {
        rows,
        copy_csv_rows_per_s: Summary::of(&copy_rates),
        copy_csv_bytes: copy_bytes,
        parquet_rows_per_s: Summary::of(&parquet_rates),
        parquet_seconds: Summary::of(&parquet_secs),
        parquet_vs_copy: Summary::of(&ratios).median,
        parquet_peak_rss_mib: peak as f64 / 1024.0,
        parquet_bytes: ours,
        duckdb_zstd_bytes: duck_bytes,
        size_vs_duckdb: ours as f64 / duck_bytes as f64,
        duckdb_version: duck["duckdb_version"].as_str().unwrap_or("").to_string(),
        stream_csv_rows: s_rows,
        stream_csv_bytes: s_bytes,
        stream_csv_rows_per_s: Summary::of(&stream_rates),
        stream_csv_peak_rss_growth_mib: growth as f64 / 1024.0,
        api_rss_before_mib: before as f64 / 1024.0,
    })
}
