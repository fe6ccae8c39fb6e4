//! Back-pressure: while the database cannot take writes, the ingest stops reading from the
//! broker once its local queue holds `ingest.channel_capacity` messages, instead of buffering
//! whatever the broker sends; when writes succeed again everything is stored once.
//!
//! Its own test binary: it reads a process-wide gauge that other ingest tests would also move.
#![allow(clippy::unwrap_used)]

use chrono::{TimeDelta, Utc};
use serde_json::json;
use stadtpuls_tests::{metrics, TestApp};
use std::time::Duration;

const CAPACITY: usize = 64;
const SENT: usize = 3000;

/// Current value of the session's overflow gauge, from the Prometheus rendering.
fn overflow_now() -> f64 {
    metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("stadtpuls_ingest_overflow_messages "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_stalled_database_does_not_grow_the_ingest_queue_beyond_its_capacity() {
    let app = TestApp::start_custom(&[], |s| {
        s.ingest.channel_capacity = CAPACITY;
        s.ingest.batch_max_messages = 32;
    })
    .await;
    let url = app.db_url.clone();

    // Hold an exclusive lock on readings: every batch write waits behind it.
    let mut locker = tokio::process::Command::new("psql")
        .args([
            url.as_str(),
            "-qc",
            "BEGIN; LOCK TABLE readings IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;",
        ])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    app.wait_for("the lock on readings", || async {
        let (n,): (i64,) = stadtpuls_store::testing::fetch_one(
            &app.store,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = 'readings' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        )
        .await;
        n == 1
    })
    .await;

    // Far more messages than the queue may hold; the broker's window (1000) would let it
    // buffer over ten times its capacity.
    let start = Utc::now() - TimeDelta::hours(1);
    for i in 0..SENT {
        app.publish_up(
            &format!("70b3d57ed00{:05x}", i % 50),
            start + TimeDelta::milliseconds(i as i64),
            json!({"temperature": i as f64 / 10.0}),
        )
        .await;
    }
    // Sample the queue every 10 ms while the lock holds (the sleep is the sampling interval,
    // the end is the locking psql's exit).
    let mut peak = 0.0f64;
    while locker.try_wait().unwrap().is_none() {
        peak = peak.max(overflow_now());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The queue filled up (so the bound was what stopped it) and, with no acks due, never
    // passed the capacity plus one read of the socket (rumqttc parses at most 10 packets per
    // read).
    assert!(
        peak >= CAPACITY as f64 && peak <= (CAPACITY + 10) as f64,
        "peak queue {peak}, capacity {CAPACITY}"
    );

    // The lock is gone: everything arrives, once. While acks are due the session reads on,
    // up to twice the capacity (sampled at every poll).
    app.wait_for(&format!("all {SENT} uplinks stored"), || {
        peak = peak.max(overflow_now());
        let store = app.store.clone();
        async move {
            let (stored,): (i64,) =
                stadtpuls_store::testing::fetch_one(&store, "SELECT count(*) FROM uplinks").await;
            stored == SENT as i64
        }
    })
    .await;
    assert!(peak <= (2 * CAPACITY + 10) as f64, "peak queue {peak}");
    let (readings, distinct): (i64, i64) = stadtpuls_store::testing::fetch_one(
        &app.store,
        "SELECT count(*), count(DISTINCT (dev_eui, time)) FROM readings",
    )
    .await;
    assert_eq!((readings, distinct), (SENT as i64, SENT as i64));
    app.stop().await;
}
