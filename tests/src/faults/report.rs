//! One run's outcome, the JSON-lines record, and the table `scripts/faults` publishes.

use super::scenarios::{Fault, Scenario};
use super::verify::{readings_for, Counts};
use super::Options;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What one run of one scenario showed.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    /// Whether loss fails the run (`false`: an upstream limit that is measured).
    pub required: bool,
    pub run: usize,
    /// Uplinks in the workload.
    pub n: u64,
    /// Uplinks the broker acknowledged to the publisher.
    pub sent: u64,
    /// Distinct dedup keys stored.
    pub stored: u64,
    pub readings: u64,
    pub lost: u64,
    /// Of `lost`: messages the broker acknowledged just before it was SIGKILLed, in its
    /// PUBACK-before-save window ([`Scenario::broker_ack_window`]): the broker's loss.
    pub lost_in_broker_window: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    /// Uplinks the ingest received again after storing them (its duplicate counter, summed over
    /// its processes; for a SIGKILLed process the last value scraped before the kill).
    pub redelivered: u64,
    /// PUBLISH packets the publisher sent again after losing its connection.
    pub resent: u64,
    pub publisher_disconnects: u64,
    /// Seconds from the end of the fault until everything the broker had acknowledged by then
    /// was stored.
    pub recovery_s: Option<f64>,
    /// Seconds from the end of the fault until all N were stored (includes the rest of the
    /// stream).
    pub caught_up_s: Option<f64>,
    /// `sigterm`: seconds from the signal to the exit, and the exit code.
    pub exit_s: Option<f64>,
    pub exit_code: Option<i32>,
    /// Largest ingest RSS sampled during the run and during the fault.
    pub peak_rss_mib: f64,
    pub fault_peak_rss_mib: f64,
    /// `postgres_outage`: `/health` answers during the outage (`status/writer`).
    pub health: Vec<String>,
    /// `slow_database`: uplinks stored while `readings` was locked.
    pub stored_while_locked: Option<u64>,
    pub note: String,
    /// Why the run failed (besides the counts).
    pub problems: Vec<String>,
    #[serde(skip)]
    pub log_tail: String,
}

/// A run's counts (see [`Outcome`] for each field); [`Outcome::expected`] is the rule they are
/// held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub sent: u64,
    pub stored: u64,
    pub readings: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
}

impl Outcome {
    pub fn new(scenario: Scenario, run: usize, n: u64) -> Outcome {
        Outcome {
            scenario,
            required: scenario.required(),
            run,
            n,
            sent: 0,
            stored: 0,
            readings: 0,
            lost: 0,
            lost_in_broker_window: 0,
            duplicated: 0,
            unexpected: 0,
            redelivered: 0,
            resent: 0,
            publisher_disconnects: 0,
            recovery_s: None,
            caught_up_s: None,
            exit_s: None,
            exit_code: None,
            peak_rss_mib: 0.0,
            fault_peak_rss_mib: 0.0,
            health: Vec::new(),
            stored_while_locked: None,
            note: String::new(),
            problems: Vec::new(),
            log_tail: String::new(),
        }
    }

    pub fn absorb_fault(&mut self, f: &Fault) {
        if let Some((s, code)) = f.exit {
            self.exit_s = Some(s);
            self.exit_code = code;
        }
        self.health = f.health.clone();
        self.stored_while_locked = f.blocked;
        self.note = f.note.clone();
    }

    pub fn absorb_counts(&mut self, c: &Counts) {
        self.stored = c.stored;
        self.readings = c.readings;
        self.lost = c.lost;
        self.duplicated = c.duplicated;
        self.unexpected = c.unexpected;
    }

    /// What the database and the publisher showed, in the order the table prints it.
    pub fn tally(&self) -> Tally {
        Tally {
            sent: self.sent,
            stored: self.stored,
            readings: self.readings,
            lost: self.lost,
            duplicated: self.duplicated,
            unexpected: self.unexpected,
        }
    }

    /// The one rule for a run's counts: what [`Outcome::tally`] must equal. The verdict
    /// ([`Outcome::count_problems`], [`Outcome::passed`]), the console line, the table and
    /// `tests/tests/faults.rs` all go by it.
    ///
    /// - A required scenario: the broker acknowledged all N; the only loss allowed is in the
    ///   broker's PUBACK-before-save window ([`Scenario::broker_ack_window`]: messages
    ///   Mosquitto acknowledged just before its SIGKILL and never saved), so `lost` must equal
    ///   `lost_in_broker_window` (0 for every scenario but `broker_sigkill`).
    /// - A scenario that measures an upstream limit (not required): loss is measured, not
    ///   judged; `sent` and `lost` are taken as they are.
    /// - Always: every sent key not lost is stored once, exactly 3 readings per stored uplink,
    ///   nothing stored twice, nothing stored that was never sent.
    pub fn expected(&self) -> Tally {
        let (sent, lost) = if self.required {
            (self.n, self.lost_in_broker_window)
        } else {
            (self.sent, self.lost)
        };
        let stored = self.n.saturating_sub(lost);
        Tally {
            sent,
            stored,
            readings: readings_for(stored),
            lost,
            duplicated: 0,
            unexpected: 0,
        }
    }

    /// Where [`Outcome::tally`] differs from [`Outcome::expected`], in words; empty exactly
    /// when they are equal.
    pub fn count_problems(&self) -> Vec<String> {
        let (got, want) = (self.tally(), self.expected());
        let mut p = Vec::new();
        if got.sent != want.sent {
            p.push(format!(
                "the broker acknowledged {} of {}",
                got.sent, self.n
            ));
        }
        if got.lost != want.lost {
            p.push(format!(
                "{} uplinks lost (besides {} in the broker's PUBACK-before-save window)",
                got.lost.saturating_sub(self.lost_in_broker_window),
                self.lost_in_broker_window
            ));
        }
        if got.duplicated > 0 {
            p.push(format!("{} rows stored twice", got.duplicated));
        }
        if got.unexpected > 0 {
            p.push(format!("{} stored uplinks were never sent", got.unexpected));
        }
        if got.readings != readings_for(got.stored) {
            p.push(format!(
                "{} readings for {} uplinks (want {})",
                got.readings,
                got.stored,
                readings_for(got.stored)
            ));
        }
        if p.is_empty() && got != want {
            p.push(format!("counts {got:?}, want {want:?}"));
        }
        p
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.count_problems().is_empty()
    }

    /// One line for the console.
    pub fn summary(&self) -> String {
        let head = if self.passed() { "ok" } else { "FAILED" };
        let mut s = format!(
            "{head}: sent {}, stored {}, readings {}, lost {}{}, duplicated {}, redelivered {}, resent {}, recovery {}",
            self.sent,
            self.stored,
            self.readings,
            self.lost,
            if self.lost_in_broker_window > 0 {
                format!(" ({} in the broker's PUBACK-before-save window)", self.lost_in_broker_window)
            } else {
                String::new()
            },
            self.duplicated,
            self.redelivered,
            self.resent,
            secs(self.recovery_s)
        );
        if let Some(e) = self.exit_s {
            s.push_str(&format!(", exit {e:.1} s (status {:?})", self.exit_code));
        }
        if !self.health.is_empty() {
            s.push_str(&format!(", health {:?}", self.health));
        }
        if self.fault_peak_rss_mib > 0.0 {
            s.push_str(&format!(
                ", RSS during fault ≤ {:.0} MiB",
                self.fault_peak_rss_mib
            ));
        }
        if !self.note.is_empty() {
            s.push_str(&format!(", {}", self.note));
        }
        for p in self.problems.iter().chain(&self.count_problems()) {
            s.push_str(&format!("\n    problem: {p}"));
        }
        s
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} s"))
}

#[derive(Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    outcome: &'a Outcome,
    passed: bool,
}

/// Appends `out` as one JSON line to `path`.
pub fn append_record(path: &Path, out: &Outcome) -> Result<()> {
    let line = serde_json::to_string(&Record {
        outcome: out,
        passed: out.passed(),
    })?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{line}")?;
    Ok(())
}

/// All runs of a suite.
#[derive(Debug)]
pub struct Report {
    pub opts: Options,
    pub runs: Vec<Outcome>,
    /// Kept scratch directory (logs), if any.
    pub scratch: Option<PathBuf>,
    pub started: chrono::DateTime<chrono::Utc>,
    /// The checkout's commit when the suite started (the binary is built from it by
    /// `scripts/faults`; HEAD may move while a long suite runs).
    pub commit: String,
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: Scenario,
    pub required: bool,
    pub runs: usize,
    pub passed: usize,
    pub sent: u64,
    pub stored: u64,
    pub lost: u64,
    pub lost_in_broker_window: u64,
    pub duplicated: u64,
    pub redelivered: u64,
    pub resent: u64,
    pub recovery_median_s: Option<f64>,
    pub recovery_max_s: Option<f64>,
    pub exit_median_s: Option<f64>,
    pub exit_max_s: Option<f64>,
    pub peak_rss_max_mib: f64,
}

impl Report {
    pub fn new(opts: &Options) -> Report {
        Report {
            opts: opts.clone(),
            runs: Vec::new(),
            scratch: None,
            started: chrono::Utc::now(),
            commit: git_commit(),
        }
    }

    pub fn failures(&self) -> Vec<&Outcome> {
        self.runs.iter().filter(|o| !o.passed()).collect()
    }

    /// Every failed run with its problems and the ingest's last log lines.
    pub fn failure_text(&self) -> String {
        let mut s = String::new();
        for o in self.failures() {
            s.push_str(&format!(
                "\n== {} run {}: {}\n{}\n",
                o.scenario.name(),
                o.run,
                o.summary(),
                o.log_tail
            ));
        }
        if let Some(d) = &self.scratch {
            s.push_str(&format!(
                "\nlogs, configs and the cluster are kept in {}\n",
                d.display()
            ));
        }
        s
    }

    pub fn rows(&self) -> Vec<Row> {
        self.opts
            .scenarios()
            .into_iter()
            .filter_map(|sc| {
                let runs: Vec<&Outcome> = self.runs.iter().filter(|o| o.scenario == sc).collect();
                if runs.is_empty() {
                    return None;
                }
                let sum = |f: fn(&Outcome) -> u64| runs.iter().map(|o| f(o)).sum::<u64>();
                let rec: Vec<f64> = runs.iter().filter_map(|o| o.recovery_s).collect();
                let exit: Vec<f64> = runs.iter().filter_map(|o| o.exit_s).collect();
                Some(Row {
                    scenario: sc,
                    required: sc.required(),
                    runs: runs.len(),
                    passed: runs.iter().filter(|o| o.passed()).count(),
                    sent: sum(|o| o.sent),
                    stored: sum(|o| o.stored),
                    lost: sum(|o| o.lost),
                    lost_in_broker_window: sum(|o| o.lost_in_broker_window),
                    duplicated: sum(|o| o.duplicated),
                    redelivered: sum(|o| o.redelivered),
                    resent: sum(|o| o.resent),
                    recovery_median_s: median(&rec),
                    recovery_max_s: rec.iter().copied().reduce(f64::max),
                    exit_median_s: median(&exit),
                    exit_max_s: exit.iter().copied().reduce(f64::max),
                    peak_rss_max_mib: runs.iter().map(|o| o.peak_rss_mib).fold(0.0, f64::max),
                })
            })
            .collect()
    }

    /// Writes `<stem>.md` (the table) and `<stem>.json` (table, parameters and every run).
    pub fn write(&self, stem: &Path) -> Result<()> {
        if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let o = &self.opts;
        let rows = self.rows();
        let json = serde_json::json!({
            "started": self.started,
            "finished": chrono::Utc::now(),
            "commit": self.commit,
            "parameters": {
                "n": o.n, "runs": o.runs, "rate_per_s": o.rate, "devices": o.devices,
                "outage_s": o.outage.as_secs(), "lock_s": o.lock.as_secs(),
                "rss_limit_mib": o.rss_limit_mib,
                "binary": o.bin.display().to_string(),
            },
            "versions": {
                "mosquitto": crate::mosquitto::mosquitto_version(),
                "postgres_bin": crate::postgres::pg_bin().display().to_string(),
            },
            "table": rows,
            "runs": self.runs.iter().map(|r| serde_json::json!({"passed": r.passed(), "outcome": r})).collect::<Vec<_>>(),
        });
        std::fs::write(
            stem.with_extension("json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        let mut md = format!(
            "# Fault-injection results\n\n\
             Written by `scripts/faults` ({}, commit {}); raw data: `{}`.\n\
             Each run: {} ChirpStack v4 uplinks (3 readings each) from {} devices at QoS 1, {}/s, \
             one fault once 30 % are with the broker. `{}`, PostgreSQL + TimescaleDB (fsync on), \
             Mosquitto with persistence, all test-owned.\n\n\
             | scenario | runs | passed | sent | stored | lost | duplicated | redelivered | resent by publisher | recovery median / max | SIGTERM exit median / max | peak RSS |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
            self.started.format("%Y-%m-%dT%H:%M:%SZ"),
            self.commit,
            stem.with_extension("json")
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or(""),
            o.n,
            o.devices,
            o.rate,
            o.bin.display(),
        );
        for r in &rows {
            md.push_str(&format!(
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {:.0} MiB |\n",
                r.scenario.name(),
                if r.required { "" } else { " (upstream limit)" },
                r.runs,
                r.passed,
                r.sent,
                r.stored,
                if r.lost_in_broker_window > 0 {
                    format!("{} ({} by the broker¹)", r.lost, r.lost_in_broker_window)
                } else {
                    r.lost.to_string()
                },
                r.duplicated,
                r.redelivered,
                r.resent,
                secs(r.recovery_median_s),
                secs(r.recovery_max_s),
                match (r.exit_median_s, r.exit_max_s) {
                    (Some(a), Some(b)) => format!("{a:.1} s / {b:.1} s"),
                    _ => "-".into(),
                },
                r.peak_rss_max_mib,
            ));
        }
        md.push_str(
            "\nsent: uplinks the broker acknowledged to the publisher; stored: distinct dedup keys in \
             `uplinks` (readings are checked to be exactly 3 per stored uplink); lost: sent keys not \
             stored; duplicated: rows beyond the first per dedup key or per (device, quantity, time); \
             redelivered: uplinks the ingest received again after storing them (its duplicate \
             counter); recovery: from the end of the fault until everything the broker had \
             acknowledged by then was stored.\n\n\
             ¹ Lost by the broker: Mosquitto sends the PUBACK while handling a PUBLISH and saves \
             its persistence file later in the same loop iteration, so a SIGKILL in between loses a \
             message it has acknowledged, whatever the subscriber does (reproduced without \
             Stadtpuls: `bench/python/mosquitto_sigkill_window.py`). Counted here: lost messages \
             the broker acknowledged between 1 s before and 0.5 s after the kill; any other loss \
             fails the run.\n\n## Scenarios\n\n",
        );
        for sc in o.scenarios() {
            md.push_str(&format!("- `{}`: {}\n", sc.name(), sc.description(o)));
        }
        let failed = self.failures();
        if !failed.is_empty() {
            md.push_str("\n## Failed runs\n\n");
            for f in failed {
                md.push_str(&format!(
                    "- `{}` run {}: {}\n",
                    f.scenario.name(),
                    f.run,
                    f.summary().replace('\n', " ")
                ));
            }
        }
        std::fs::write(stem.with_extension("md"), md)?;
        Ok(())
    }
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(s[s.len() / 2])
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `broker_sigkill` run of 100 with `lost` uplinks, `in_window` of them acknowledged by
    /// the broker just before the kill.
    fn run(lost: u64, in_window: u64) -> Outcome {
        let mut o = Outcome::new(Scenario::BrokerSigkill, 1, 100);
        o.sent = 100;
        o.stored = 100 - lost;
        o.readings = readings_for(100 - lost);
        o.lost = lost;
        o.lost_in_broker_window = in_window;
        o
    }

    #[test]
    fn loss_in_the_broker_window_is_the_only_loss_a_required_run_may_show() {
        let clean = run(0, 0);
        assert!(clean.passed(), "{:?}", clean.count_problems());
        assert_eq!(clean.expected(), clean.tally());

        let broker = run(1, 1);
        assert!(broker.passed(), "{:?}", broker.count_problems());
        assert_eq!(
            broker.expected(),
            Tally {
                sent: 100,
                stored: 99,
                readings: 297,
                lost: 1,
                duplicated: 0,
                unexpected: 0
            }
        );

        let ours = run(2, 1);
        assert!(!ours.passed());
        assert_eq!(
            ours.count_problems(),
            vec!["1 uplinks lost (besides 1 in the broker's PUBACK-before-save window)"]
        );
        assert!(ours.summary().starts_with("FAILED"), "{}", ours.summary());
    }

    #[test]
    fn a_run_that_measures_an_upstream_limit_is_not_failed_for_loss_but_for_duplicates() {
        let mut o = Outcome::new(Scenario::ALL[0], 1, 100);
        o.required = false;
        o.sent = 90;
        o.stored = 80;
        o.readings = readings_for(80);
        o.lost = 20;
        assert!(o.passed(), "{:?}", o.count_problems());
        o.duplicated = 1;
        assert_eq!(o.count_problems(), vec!["1 rows stored twice"]);
    }

    #[test]
    fn a_wrong_count_is_a_problem_even_when_no_message_names_it() {
        let mut o = run(0, 0);
        o.stored = 99;
        o.readings = readings_for(99);
        assert_eq!(
            o.count_problems(),
            vec![format!("counts {:?}, want {:?}", o.tally(), o.expected())]
        );
    }
}
