//! A private Mosquitto on a free port, with its configuration (and persistence file) in a
//! directory of its own; it can be stopped, killed and started again on the same port with the
//! same persistence file.

use crate::procs::{free_port, wait_for_port, Owned};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// When Mosquitto writes its in-memory state (sessions, subscriptions, queued messages) to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing is written; a restart forgets every session and queued message.
    Off,
    /// Written on a clean shutdown (SIGTERM) and every `autosave_interval` seconds (30 min): a
    /// SIGKILL loses what changed since the last save.
    OnShutdown,
    /// Written after every `n` changes (`autosave_on_changes true`) and on clean shutdown.
    EveryChanges(u32),
}

/// The settings a broker is started with.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `max_inflight_messages`: unacknowledged QoS 1 messages per client (Mosquitto's default
    /// is 20).
    pub max_inflight: u32,
    /// `max_queued_messages` per offline or busy client (0 = unlimited).
    pub max_queued: u32,
    pub persistence: Persistence,
}

impl BrokerConfig {
    /// What the benchmark uses: no persistence, unlimited queues.
    pub fn volatile(max_inflight: u32) -> BrokerConfig {
        BrokerConfig {
            max_inflight,
            max_queued: 0,
            persistence: Persistence::Off,
        }
    }

    /// A durable broker as a deployment should run it: persistence on, deep queues.
    pub fn durable(persistence: Persistence) -> BrokerConfig {
        BrokerConfig {
            max_inflight: 1000,
            max_queued: 1_000_000,
            persistence,
        }
    }

    fn text(&self, port: u16, dir: &Path) -> String {
        let persistence = match self.persistence {
            Persistence::Off => "persistence false\n".to_string(),
            Persistence::OnShutdown => format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1800\n",
                dir.display()
            ),
            Persistence::EveryChanges(n) => format!(
                "persistence true\npersistence_location {}/\nautosave_on_changes true\nautosave_interval {n}\n",
                dir.display()
            ),
        };
        format!(
            "# written by stadtpuls-tests\n\
             listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             # Run as whoever started it (as root Mosquitto would switch to its own user, which\n\
             # cannot write the persistence directory).\n\
             user {user}\n\
             {persistence}\
             max_inflight_messages {inflight}\n\
             max_queued_messages {queued}\n\
             max_queued_bytes 0\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n",
            user = std::env::var("USER").unwrap_or_else(|_| "root".into()),
            inflight = self.max_inflight,
            queued = self.max_queued,
        )
    }
}

/// A private Mosquitto.
#[derive(Debug)]
pub struct Broker {
    pub port: u16,
    pub max_inflight: u32,
    pub config: BrokerConfig,
    conf: PathBuf,
    proc: Option<Owned>,
    _dir: PathBuf,
}

impl Broker {
    /// Starts Mosquitto on a free port with its files in `<work>/mosquitto-<port>`.
    pub async fn start(work: &Path, config: BrokerConfig) -> Result<Broker> {
        let port = free_port()?;
        let dir = work.join(format!("mosquitto-{port}"));
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, config.text(port, &dir))?;
        let mut b = Broker {
            port,
            max_inflight: config.max_inflight,
            config,
            conf,
            proc: None,
            _dir: dir,
        };
        b.restart().await?;
        Ok(b)
    }

    /// Starts the broker again (same port, configuration and persistence file) after
    /// [`Broker::kill`] or [`Broker::terminate`].
    pub async fn restart(&mut self) -> Result<()> {
        // Its warnings and errors go to `mosquitto.log` beside the configuration.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.conf.with_file_name("mosquitto.log"))?;
        let proc = Owned::spawn(
            "mosquitto",
            Command::new(mosquitto())
                .arg("-c")
                .arg(&self.conf)
                .stdout(Stdio::null())
                .stderr(log),
        )?;
        self.proc = Some(proc);
        wait_for_port(self.port, Duration::from_secs(10)).await
    }

    /// SIGKILL: no chance to save anything.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.kill().await?;
        }
        Ok(())
    }

    /// SIGTERM: Mosquitto saves its state (with persistence on) and exits.
    pub async fn terminate(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.terminate(Duration::from_secs(30))
                .await
                .context("stopping mosquitto")?;
        }
        Ok(())
    }

    /// The broker's pid, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Owned::pid)
    }

    pub async fn stop(mut self) -> Result<()> {
        self.terminate().await
    }
}

/// The Mosquitto executable: `$MOSQUITTO`, else `/usr/sbin/mosquitto` when present (Debian
/// installs it there, outside a normal user's `PATH`), else `mosquitto` on `PATH`.
pub fn mosquitto() -> PathBuf {
    if let Some(p) = std::env::var_os("MOSQUITTO") {
        return p.into();
    }
    let sbin = PathBuf::from("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("mosquitto")
    }
}

/// `mosquitto -h`'s first line, e.g. `mosquitto version 2.0.11`.
pub fn mosquitto_version() -> String {
    std::process::Command::new(mosquitto())
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}
