//! Fault-injection suite (issue 7), CI mode: every scenario once at N = 10 000 against a
//! test-owned Mosquitto, a test-owned PostgreSQL + TimescaleDB cluster and the `stadtpuls`
//! binary as a child process. `scripts/faults` runs the same scenarios ≥ 10 times at
//! N = 100 000 and writes the table; the settings are in `stadtpuls_tests::faults::Options`.
//!
//! The binary under test is `target/debug/stadtpuls`, which the test builds first (a no-op when
//! it is up to date), or `STADTPULS_BIN`.

use stadtpuls_tests::faults::{self, Options};

/// One test runs every scenario in turn: they start processes, measure recovery times and
/// stop a database cluster, so they must not share the machine with each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fault_loses_what_the_broker_kept_nor_stores_anything_twice() {
    let opts = Options::from_env().expect("fault suite settings");
    let report = faults::run_all(&opts).await.expect("fault suite harness");
    // Per required run, the suite's one rule (`Outcome::expected`, which the report's verdict
    // and table use too): N acknowledged by the broker, N stored and 3 N readings, 0
    // duplicated, and 0 lost except messages Mosquitto acknowledged in its PUBACK-before-save
    // window just before a SIGKILL (`broker_sigkill` only; then stored = N − that loss).
    for run in report.runs.iter().filter(|r| r.required) {
        assert_eq!(run.tally(), run.expected(), "{}", report.failure_text());
        let allowed = run.lost_in_broker_window;
        assert_eq!(
            (run.sent, run.stored, run.readings, run.lost, run.duplicated),
            (run.n, run.n - allowed, 3 * (run.n - allowed), allowed, 0),
            "{}",
            report.failure_text()
        );
        if run.scenario.broker_ack_window().is_none() {
            assert_eq!(allowed, 0, "{}", report.failure_text());
        }
    }
    assert!(report.failures().is_empty(), "{}", report.failure_text());
    assert_eq!(report.runs.len(), opts.scenarios().len() * opts.runs);
}
