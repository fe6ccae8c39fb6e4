//! Counting what a run stored, per dedup key: lost, stored twice, unexpected.

use crate::workload::{dedup_id, READINGS_PER_UPLINK};
use anyhow::Result;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;

/// What the database holds after a run of `n` uplinks.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    /// Distinct dedup keys in `uplinks`.
    pub stored: u64,
    /// Rows in `readings`.
    pub readings: u64,
    /// Sent keys with no stored uplink.
    pub lost: u64,
    /// Their message indices.
    #[serde(skip)]
    pub lost_indices: Vec<usize>,
    /// Rows beyond the first per dedup key in `uplinks`, plus rows beyond the first per
    /// (device, quantity, time) in `readings`.
    pub duplicated: u64,
    /// Stored keys that were never sent.
    pub unexpected: u64,
}

/// Counts the uplinks and readings of run `key` (dedup ids `dedup_id(key, 0..n)`).
pub async fn count(url: &str, key: u32, n: usize) -> Result<Counts> {
    let mut c = PgConnection::connect(url).await?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT dedup_key, count(*) FROM uplinks GROUP BY dedup_key")
            .fetch_all(&mut c)
            .await?;
    let (readings, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (dev_eui, quantity, time)) FROM readings")
            .fetch_one(&mut c)
            .await?;
    let stored: HashMap<String, i64> = rows.into_iter().collect();
    let lost_indices: Vec<usize> = (0..n)
        .filter(|&i| !stored.contains_key(&dedup_id(key, i)))
        .collect();
    let lost = lost_indices.len() as u64;
    let expected = n as u64 - lost;
    let dup_uplinks: i64 = stored.values().map(|c| c - 1).sum();
    Ok(Counts {
        stored: stored.len() as u64,
        readings: readings as u64,
        lost,
        lost_indices,
        duplicated: dup_uplinks as u64 + (readings - distinct) as u64,
        unexpected: stored.len() as u64 - expected,
    })
}

/// Readings a run of `n` uplinks must leave.
pub fn readings_for(n: u64) -> u64 {
    n * READINGS_PER_UPLINK
}
