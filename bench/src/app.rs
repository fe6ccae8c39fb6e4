//! `stadtpuls` as a child process: its configuration file, start, readiness and metrics.

use crate::procs::{free_port, Owned};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// Where and how to run `stadtpuls`.
#[derive(Clone, Debug)]
pub struct Binary {
    pub path: PathBuf,
    pub work: PathBuf,
}

/// A running `stadtpuls ingest` or `stadtpuls api`.
#[derive(Debug)]
pub struct Running {
    pub proc: Owned,
    /// `http://127.0.0.1:<port>`: the API, or the ingest's health/metrics address.
    pub base: String,
}

impl Binary {
    /// Writes a configuration file for one run and returns its path. `extra` is appended TOML.
    pub fn config(&self, name: &str, database_url: &str, extra: &str) -> Result<PathBuf> {
        let path = self.work.join(format!("{name}.toml"));
        let text = format!(
            "# written by stadtpuls-bench\n\
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
        let port = free_port()?;
        let mut cmd = Command::new(&self.path);
        cmd.arg("--config")
            .arg(config)
            .arg(command)
            .env(listen_env, format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let proc = Owned::spawn(&format!("stadtpuls {command}"), &mut cmd)?;
        let r = Running {
            proc,
            base: format!("http://127.0.0.1:{port}"),
        };
        r.wait_healthy(ready).await?;
        Ok(r)
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
    async fn wait_healthy(&self, ok: impl Fn(&serde_json::Value) -> bool) -> Result<()> {
        let http = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/health", self.base)).send().await {
                if let Ok(v) = r.json::<serde_json::Value>().await {
                    if ok(&v) {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > until {
                bail!("{} did not become healthy at {}", self.proc.name, self.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of an unlabelled counter from `/metrics` (0 when not yet recorded).
    pub async fn counter(&self, http: &reqwest::Client, name: &str) -> Result<f64> {
        let text = http
            .get(format!("{}/metrics", self.base))
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
