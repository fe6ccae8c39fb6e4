//! The faults, one per scenario: how each is injected mid-stream, which broker it needs, and
//! what a run must show beyond "nothing lost, nothing twice".

use super::publisher::Progress;
use super::{Monitor, Options, Outcome, Rig};
use crate::mosquitto::{BrokerConfig, Persistence};
use crate::postgres::PgCluster;
use anyhow::{Context, Result};
use sqlx::{Connection, Executor, PgConnection};
use std::time::{Duration, Instant};

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// `stadtpuls` killed with SIGKILL, restarted after 1 s.
    IngestSigkill,
    /// The broker stopped with SIGTERM (it saves its state), started again after 1 s.
    BrokerRestart,
    /// The broker killed with SIGKILL and restarted; it saves its state after every change
    /// (`autosave_on_changes true`, `autosave_interval 1`).
    BrokerSigkill,
    /// The same kill with Mosquitto's default saving (on shutdown and every 30 min): what is
    /// lost is the broker's, measured and reported, never a failure.
    BrokerSigkillUnsaved,
    /// PostgreSQL stopped (fast shutdown) for `Options::outage`, then started.
    PostgresOutage,
    /// A transaction holds `ACCESS EXCLUSIVE` on `readings` for `Options::lock`.
    SlowDatabase,
    /// The ingest's broker connection reset (no FIN) by the proxy, which refuses new
    /// connections for 2 s.
    ConnectionCut,
    /// `stadtpuls` sent SIGTERM; it must commit and acknowledge what it holds and exit (status
    /// 0) within 10 s; then restarted.
    Sigterm,
}

/// When and how a fault happened.
#[derive(Clone, Debug)]
pub struct Fault {
    pub start: Instant,
    /// When the fault was over (the process, broker or database back, the lock released).
    pub end: Instant,
    /// Messages the broker had acknowledged to the publisher when the fault ended.
    pub backlog: u64,
    /// `sigterm`: seconds from the signal to the exit, and the exit code (`None`: killed).
    pub exit: Option<(f64, Option<i32>)>,
    /// `postgres_outage`: `/health` answers during the outage, `status/writer`.
    pub health: Vec<String>,
    /// `slow_database`: uplinks stored while the lock was held (only batches that were already
    /// past their `readings` insert can commit).
    pub blocked: Option<u64>,
    pub note: String,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::IngestSigkill,
        Scenario::BrokerRestart,
        Scenario::BrokerSigkill,
        Scenario::BrokerSigkillUnsaved,
        Scenario::PostgresOutage,
        Scenario::SlowDatabase,
        Scenario::ConnectionCut,
        Scenario::Sigterm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::IngestSigkill => "ingest_sigkill",
            Scenario::BrokerRestart => "broker_restart",
            Scenario::BrokerSigkill => "broker_sigkill",
            Scenario::BrokerSigkillUnsaved => "broker_sigkill_unsaved",
            Scenario::PostgresOutage => "postgres_outage",
            Scenario::SlowDatabase => "slow_database",
            Scenario::ConnectionCut => "connection_cut",
            Scenario::Sigterm => "sigterm",
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One line for the report.
    pub fn description(self, o: &Options) -> String {
        match self {
            Scenario::IngestSigkill => "stadtpuls ingest SIGKILLed, restarted after 1 s".into(),
            Scenario::BrokerRestart => "Mosquitto stopped with SIGTERM (saves its state), restarted after 1 s".into(),
            Scenario::BrokerSigkill => "Mosquitto SIGKILLed, restarted; autosave_on_changes, autosave_interval 1".into(),
            Scenario::BrokerSigkillUnsaved => "Mosquitto SIGKILLed, restarted; default saving (shutdown / 30 min) — upstream limit, measured".into(),
            Scenario::PostgresOutage => format!("PostgreSQL stopped (fast) for {} s, then started", o.outage.as_secs()),
            Scenario::SlowDatabase => format!("ACCESS EXCLUSIVE lock on readings held {} s", o.lock.as_secs()),
            Scenario::ConnectionCut => "ingest↔broker TCP connection reset by a proxy (no FIN), refused for 2 s".into(),
            Scenario::Sigterm => "stadtpuls ingest sent SIGTERM, restarted after it exited".into(),
        }
    }

    /// Whether a run that loses or duplicates anything fails the suite.
    pub fn required(self) -> bool {
        self != Scenario::BrokerSigkillUnsaved
    }

    pub fn broker_config(self) -> BrokerConfig {
        BrokerConfig::durable(match self {
            Scenario::BrokerSigkill => Persistence::EveryChanges(1),
            _ => Persistence::OnShutdown,
        })
    }

    /// The publish rate (uplinks/s) the harness's deadlines assume: the requested rate, except
    /// where the broker itself is slower. A Mosquitto that rewrites and syncs its whole
    /// persistence file after every change acknowledged about 250 uplinks/s on 2 cores at
    /// N = 100 000 (about 400 s a run); the deadlines assume 150/s so that a busy machine makes a
    /// run slow, not failed. A stalled publisher still fails, only later.
    pub fn publish_rate(self, requested: f64) -> f64 {
        match self {
            Scenario::BrokerSigkill => requested.min(150.0),
            _ => requested,
        }
        .max(1.0)
    }

    /// For a broker SIGKILL with saving after every change: how long before (and after) the
    /// kill a PUBACK may have left the broker without the message reaching its persistence
    /// file. Mosquitto 2.0 sends the PUBACK while handling the PUBLISH and saves later in the
    /// same loop iteration, so a SIGKILL in between loses a message it acknowledged
    /// (reproduced without Stadtpuls by `bench/python/mosquitto_sigkill_window.py`: killed
    /// right after a PUBACK, that message was lost in 3 of 3 rounds). Lost messages the broker
    /// acknowledged in this window are the broker's and reported as such; any other loss fails.
    pub fn broker_ack_window(self) -> Option<(Duration, Duration)> {
        match self {
            Scenario::BrokerSigkill => Some((Duration::from_secs(1), Duration::from_millis(500))),
            _ => None,
        }
    }

    /// Whether the ingest reaches the broker through the cutting proxy.
    pub fn needs_proxy(self) -> bool {
        self == Scenario::ConnectionCut
    }

    /// Injects the fault and returns once it is over.
    pub async fn inject(
        self,
        rig: &mut Rig,
        pg: &mut PgCluster,
        progress: &Progress,
        monitor: &Monitor,
    ) -> Result<Fault> {
        let start = Instant::now();
        let mut f = Fault {
            start,
            end: start,
            backlog: 0,
            exit: None,
            health: Vec::new(),
            blocked: None,
            note: String::new(),
        };
        match self {
            Scenario::IngestSigkill => {
                if let Some(mut ing) = rig.take_ingest() {
                    ing.proc.kill().await?;
                }
                // The fault: the ingest stays down for 1 s (time passing is the point).
                tokio::time::sleep(Duration::from_secs(1)).await;
                rig.start_ingest().await.context("restarting the ingest")?;
            }
            Scenario::Sigterm => {
                if let Some(mut ing) = rig.take_ingest() {
                    let (status, took) = ing.proc.terminate(Duration::from_secs(15)).await?;
                    f.exit = Some((took.as_secs_f64(), status.and_then(|s| s.code())));
                }
                rig.start_ingest().await.context("restarting the ingest")?;
            }
            Scenario::BrokerRestart => {
                rig.broker.terminate().await?;
                // The fault: the broker stays down for 1 s (time passing is the point).
                tokio::time::sleep(Duration::from_secs(1)).await;
                rig.broker.restart().await?;
            }
            Scenario::BrokerSigkill | Scenario::BrokerSigkillUnsaved => {
                rig.broker.kill().await?;
                // The fault: the broker stays down for 1 s (time passing is the point).
                tokio::time::sleep(Duration::from_secs(1)).await;
                rig.broker.restart().await?;
            }
            Scenario::PostgresOutage => {
                pg.stop().await?;
                let http = reqwest::Client::new();
                let until = start + rig.opts.outage;
                // The fault lasts `outage`; /health is sampled every 2 s meanwhile.
                while Instant::now() < until {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if let Some(ing) = rig.ingest.as_ref() {
                        let h = match ing.health(&http).await {
                            Ok(v) => format!(
                                "{}/{}",
                                v["status"].as_str().unwrap_or("?"),
                                v["ingest"]["writer"].as_str().unwrap_or("?")
                            ),
                            Err(e) => format!("no answer: {e}"),
                        };
                        if f.health.last() != Some(&h) {
                            f.health.push(h);
                        }
                    }
                }
                pg.start().await?;
            }
            Scenario::SlowDatabase => {
                let mut c = PgConnection::connect(&rig.db_url).await?;
                c.execute("BEGIN").await?;
                c.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
                    .await?;
                let before = monitor.stored();
                // The fault: the lock is held for `lock` (time passing is the point).
                tokio::time::sleep(rig.opts.lock).await;
                let during = monitor.stored();
                c.execute("COMMIT").await?;
                f.note = format!(
                    "stored {before} → {during} while the lock was held (acked by the broker: {})",
                    progress.acked()
                );
                f.blocked = Some(during.saturating_sub(before));
            }
            Scenario::ConnectionCut => {
                let refuse = Duration::from_secs(2);
                let proxy = rig
                    .proxy
                    .as_ref()
                    .context("connection_cut needs the proxy")?;
                let cut = proxy.cut(refuse);
                // The fault: the proxy refuses connections for `refuse`.
                tokio::time::sleep(refuse).await;
                f.note = format!("{cut} connection(s) reset");
                if cut == 0 {
                    anyhow::bail!("the proxy had no connection to cut");
                }
            }
        }
        f.end = Instant::now();
        f.backlog = progress.acked();
        Ok(f)
    }

    /// Checks beyond the counts (which [`Outcome::passed`] covers).
    pub fn check(self, out: &mut Outcome, o: &Options) {
        match self {
            Scenario::Sigterm => match out.exit_s.zip(Some(out.exit_code)) {
                Some((s, Some(0))) if s <= 10.0 => {}
                Some((s, code)) => out.problems.push(format!(
                    "SIGTERM: exit status {code:?} after {s:.1} s (want 0 within 10 s)"
                )),
                None => out.problems.push("SIGTERM: no exit recorded".into()),
            },
            Scenario::PostgresOutage => {
                if !out
                    .health
                    .iter()
                    .any(|h| h.ends_with("/retrying") && !h.starts_with("ok/"))
                {
                    out.problems.push(format!(
                        "/health never reported the writer retrying during the outage: {:?}",
                        out.health
                    ));
                }
                if out.fault_peak_rss_mib > o.rss_limit_mib {
                    out.problems.push(format!(
                        "ingest RSS reached {:.0} MiB during the outage (limit {:.0})",
                        out.fault_peak_rss_mib, o.rss_limit_mib
                    ));
                }
            }
            // Two writers of at most 500 messages can be past the lock point; more than that
            // stored means the lock did not hold the writes back (a vacuous run).
            Scenario::SlowDatabase if out.stored_while_locked.unwrap_or(0) >= 1000 => {
                out.problems.push(format!(
                    "{:?} uplinks were stored while readings was locked",
                    out.stored_while_locked
                ));
            }
            _ => {}
        }
    }
}
