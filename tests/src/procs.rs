//! Child processes that tests and the benchmark own, and what `/proc` says about them: resident
//! memory, its peak, CPU time. Also free ports, signals and scratch directories.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A port that was free a moment ago (bind to port 0, read it, close).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_for_port(port: u16, within: Duration) -> Result<()> {
    let until = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("nothing listens on port {port} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Memory and CPU of one process, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    pub rss_kib: u64,
    /// Peak resident set since start or since [`reset_peak`].
    pub hwm_kib: u64,
    /// User + system CPU time.
    pub cpu_secs: f64,
}

pub fn sample(pid: u32) -> Result<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu_ticks = ticks(11) + ticks(12);
    Ok(ProcSample {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_secs: cpu_ticks as f64 / clock_ticks() as f64,
    })
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS (Linux `clear_refs` 5).
pub fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of {pid}"))
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU time of the whole machine (all processes), from `/proc/stat`: (busy, total) seconds.
pub fn machine_cpu() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    let t = clock_ticks() as f64;
    ((total - idle) as f64 / t, total as f64 / t)
}

/// A child that is killed when dropped (so an aborted test or benchmark leaves nothing running).
#[derive(Debug)]
pub struct Owned {
    pub name: String,
    pub child: Child,
}

impl Owned {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Owned> {
        let child = cmd
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Owned {
            name: name.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// SIGTERM, then wait (SIGKILL after `grace`).
    pub async fn stop(mut self, grace: Duration) -> Result<()> {
        self.terminate(grace).await?;
        Ok(())
    }

    /// SIGTERM, then wait up to `grace` (SIGKILL after that). Returns how the process ended
    /// (`None` if it had to be killed) and how long it took.
    pub async fn terminate(&mut self, grace: Duration) -> Result<(Option<ExitStatus>, Duration)> {
        let started = Instant::now();
        if let Some(pid) = self.child.id() {
            signal(pid, "TERM")?;
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(r) => Ok((Some(r?), started.elapsed())),
            Err(_) => {
                self.child.kill().await?;
                Ok((None, started.elapsed()))
            }
        }
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(&mut self) -> Result<()> {
        self.child
            .kill()
            .await
            .with_context(|| format!("killing {}", self.name))
    }

    /// Fails if the process already exited (it should be running).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }
}

/// Sends `signal` (a name such as `TERM`, `KILL`, `INT`) to `pid` with kill(1) (the workspace
/// forbids `unsafe`, and kill(1) is everywhere).
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg("-s")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -s {signal} {pid} failed: {status}");
    }
    Ok(())
}

/// A scratch directory, removed when dropped unless [`Scratch::keep`] was called.
#[derive(Debug)]
pub struct Scratch {
    pub path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// A new directory `<tmp>/<prefix>-<random>`.
    pub fn new(prefix: &str) -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path, keep: false })
    }

    /// Leave the directory in place (e.g. to inspect logs after a failure).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Numeric uid and gid of a system user (via id(1)); `None` if there is no such user.
pub fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = std::process::Command::new("id")
            .arg(flag)
            .arg(user)
            .output()
            .ok()?;
        if !o.status.success() {
            return None;
        }
        String::from_utf8(o.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Whether this process runs as root (PostgreSQL refuses to; its processes get another user).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}
