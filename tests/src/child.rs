//! `stadtpuls` as a child process: its configuration file, start, readiness, metrics and
//! (optionally) its log, kept in a file and the last lines in memory for failure messages.

use crate::procs::{free_port, Owned};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Where and how to run `stadtpuls`.
#[derive(Clone, Debug)]
pub struct Binary {
    pub path: PathBuf,
    /// Configuration files (and captured logs) go here.
    pub work: PathBuf,
    /// Capture stderr into `<work>/<name>.log` and [`Running::log_tail`] instead of passing it
    /// through.
    pub capture_logs: bool,
}

/// How many log lines a [`Running`] keeps in memory.
const TAIL_LINES: usize = 200;

/// A running `stadtpuls ingest` or `stadtpuls api`.
#[derive(Debug)]
pub struct Running {
    pub proc: Owned,
    /// `http://127.0.0.1:<port>`: the API, or the ingest's health/metrics address.
    pub base: String,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Binary {
    /// Writes a configuration file for one run and returns its path. `extra` is appended TOML.
    pub fn config(&self, name: &str, database_url: &str, extra: &str) -> Result<PathBuf> {
        let path = self.work.join(format!("{name}.toml"));
        let text = format!(
            "# written by stadtpuls-tests\n\
             [database]\nurl = \"{database_url}\"\nmigrate_on_start = false\nmax_connections = 16\n\
             [log]\nlevel = \"warn\"\n\
             {extra}\n"
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// `stadtpuls ingest`, health and metrics on a free port; ready once subscribed.
    pub async fn ingest(&self, config: &Path) -> Result<Running> {
        self.serve(config, "ingest", "STADTPULS__INGEST__OPS_LISTEN", |h| {
            h["ingest"]["subscribed"] == true
        })
        .await
    }

    /// `stadtpuls ingest` without waiting for it to be ready (e.g. while the broker is down).
    pub async fn ingest_unready(&self, config: &Path) -> Result<Running> {
        self.spawn(config, "ingest", "STADTPULS__INGEST__OPS_LISTEN")
    }

    /// `stadtpuls api` on a free port; ready once it reaches the database.
    pub async fn api(&self, config: &Path) -> Result<Running> {
        self.serve(config, "api", "STADTPULS__HTTP__LISTEN", |h| {
            h["database"] == "ok"
        })
        .await
    }

    /// `stadtpuls <command>` with its HTTP address (`listen_env`) on a free port, once `/health`
    /// satisfies `ready`.
    async fn serve(
        &self,
        config: &Path,
        command: &str,
        listen_env: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<Running> {
        let mut r = self.spawn(config, command, listen_env)?;
        if let Err(e) = r.wait_healthy(ready).await {
            return Err(e.context(format!("log tail:\n{}", r.log_tail(50))));
        }
        Ok(r)
    }

    fn spawn(&self, config: &Path, command: &str, listen_env: &str) -> Result<Running> {
        let port = free_port()?;
        let mut cmd = Command::new(&self.path);
        cmd.arg("--config")
            .arg(config)
            .arg(command)
            .env(listen_env, format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(if self.capture_logs {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        if self.capture_logs {
            cmd.env("STADTPULS__LOG__LEVEL", "info");
        }
        let mut proc = Owned::spawn(&format!("stadtpuls {command}"), &mut cmd)?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = proc.child.stderr.take() {
            let stem = config
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("stadtpuls");
            let log = self.work.join(format!("{stem}.log"));
            let tail = tail.clone();
            // Log reader: appends every line to the log file and keeps the last ones.
            tokio::spawn(async move {
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .await
                    .ok();
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                    }
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == TAIL_LINES {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            });
        }
        Ok(Running {
            proc,
            base: format!("http://127.0.0.1:{port}"),
            tail,
        })
    }

    /// Runs `stadtpuls <args>` to completion, sampling its memory; returns (wall time, peak RSS
    /// in KiB, CPU seconds).
    pub async fn run_to_end(&self, config: &Path, args: &[&str]) -> Result<(Duration, u64, f64)> {
        let mut cmd = Command::new(&self.path);
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let started = Instant::now();
        let mut proc = Owned::spawn("stadtpuls", &mut cmd)?;
        let pid = proc.pid();
        let mut peak = 0;
        let mut cpu = 0.0;
        loop {
            if let Ok(s) = crate::procs::sample(pid) {
                peak = peak.max(s.hwm_kib);
                cpu = s.cpu_secs;
            }
            if let Some(status) = proc.child.try_wait()? {
                if !status.success() {
                    bail!("stadtpuls {args:?} failed: {status}");
                }
                return Ok((started.elapsed(), peak, cpu));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Running {
    /// Waits until `/health` satisfies `ok` (60 s at most; fails early if the process exits).
    pub async fn wait_healthy(&mut self, ok: impl Fn(&serde_json::Value) -> bool) -> Result<()> {
        let http = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(v) = self.health(&http).await {
                if ok(&v) {
                    return Ok(());
                }
            }
            self.proc.check_running()?;
            if Instant::now() > until {
                bail!("{} did not become healthy at {}", self.proc.name, self.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/health` as JSON (whatever its status code).
    pub async fn health(&self, http: &reqwest::Client) -> Result<serde_json::Value> {
        Ok(http
            .get(format!("{}/health", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .json()
            .await?)
    }

    /// The last `n` lines the process logged (with `capture_logs`).
    pub fn log_tail(&self, n: usize) -> String {
        let t = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        let skip = t.len().saturating_sub(n);
        t.into_iter().skip(skip).collect::<Vec<_>>().join("\n")
    }

    /// The value of an unlabelled counter from `/metrics` (0 when not yet recorded).
    pub async fn counter(&self, http: &reqwest::Client, name: &str) -> Result<f64> {
        let text = http
            .get(format!("{}/metrics", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .text()
            .await?;
        Ok(metric(&text, name).unwrap_or(0.0))
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub async fn stop(self) -> Result<()> {
        self.proc
            .stop(Duration::from_secs(15))
            .await
            .context("stopping stadtpuls")
    }
}

/// `name value` from Prometheus text (first sample whose name matches exactly, no labels).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let v = rest.strip_prefix(' ')?;
        v.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn reads_unlabelled_counters_only() {
        let text = "# TYPE a counter\na_total 12\na_total_x 3\nb{x=\"1\"} 4\n";
        assert_eq!(metric(text, "a_total"), Some(12.0));
        assert_eq!(metric(text, "b"), None);
        assert_eq!(metric(text, "c"), None);
    }
}
