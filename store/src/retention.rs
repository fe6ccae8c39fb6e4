//! Retention (drop old chunks) and reprocessing (rebuild readings from raw uplinks, replay dead letters).

use crate::write::{insert_readings, upsert_latest, Conflicts};
use crate::{Result, Store};
use chrono::{DateTime, Duration, Utc};
use stadtpuls_gateways::{DevEui, Reading};

/// How many days to keep each table (0 = forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub uplinks_days: u32,
    pub dead_letters_days: u32,
    pub readings_days: u32,
}

/// Chunks dropped per table by one retention run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub uplinks_chunks: usize,
    pub dead_letters_chunks: usize,
    pub readings_chunks: usize,
}

/// A stored raw uplink, as reprocessing needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RawUplink {
    pub dedup_key: String,
    pub dev_eui: DevEui,
    pub observed_at: DateTime<Utc>,
    pub f_port: Option<i16>,
    pub payload: Vec<u8>,
    pub decoded: Option<serde_json::Value>,
    pub codec: Option<String>,
}

/// A stored dead letter, for replay.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct StoredDeadLetter {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub topic: String,
    pub reason: String,
    pub payload: Vec<u8>,
    pub payload_size: i32,
}

impl Store {
    /// Drops whole chunks older than each table's retention, measured from `now`.
    pub async fn apply_retention(
        &self,
        policy: RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<RetentionOutcome> {
        let drop = |table: &'static str, days: u32| async move {
            if days == 0 {
                return Ok::<usize, crate::StoreError>(0);
            }
            let cutoff = now - Duration::days(i64::from(days));
            let dropped: Vec<String> = sqlx::query_scalar(
                "SELECT drop_chunks($1::regclass, older_than => $2::timestamptz)::text",
            )
            .bind(table)
            .bind(cutoff)
            .fetch_all(&self.pool)
            .await?;
            Ok(dropped.len())
        };
        Ok(RetentionOutcome {
            uplinks_chunks: drop("uplinks", policy.uplinks_days).await?,
            dead_letters_chunks: drop("dead_letters", policy.dead_letters_days).await?,
            readings_chunks: drop("readings", policy.readings_days).await?,
        })
    }

    /// Raw uplinks observed in `[from, to)`, ordered by time, with the device's codec,
    /// in pages of `limit` after `after` (the last `(observed_at, dedup_key)` seen).
    pub async fn raw_uplinks(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<RawUplink>> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            String,
            i64,
            DateTime<Utc>,
            Option<i16>,
            Vec<u8>,
            Option<serde_json::Value>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT u.dedup_key, u.dev_eui, u.observed_at, u.f_port, u.payload, u.decoded, d.codec
                 FROM uplinks u LEFT JOIN devices d USING (dev_eui)
                 WHERE u.observed_at >= $1 AND u.observed_at < $2
                   AND ($3::timestamptz IS NULL OR (u.observed_at, u.dedup_key) > ($3, $4::text))
                 ORDER BY u.observed_at, u.dedup_key
                 LIMIT $5",
        )
        .bind(from)
        .bind(to)
        .bind(after.as_ref().map(|a| a.0))
        .bind(after.as_ref().map(|a| a.1.clone()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(dedup_key, e, observed_at, f_port, payload, decoded, codec)| RawUplink {
                    dedup_key,
                    dev_eui: DevEui::from_i64(e),
                    observed_at,
                    f_port,
                    payload,
                    decoded,
                    codec,
                },
            )
            .collect())
    }

    /// Replaces the readings of the given uplinks' devices at the uplinks' times by `readings`
    /// and records the new unmapped keys. Used by `reprocess` after a mapping or codec fix.
    pub async fn replace_readings(
        &self,
        uplinks: &[(RawUplink, Vec<String>)],
        readings: &[(DevEui, Reading)],
    ) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let eui: Vec<i64> = uplinks.iter().map(|(u, _)| u.dev_eui.as_i64()).collect();
        let at: Vec<DateTime<Utc>> = uplinks.iter().map(|(u, _)| u.observed_at).collect();
        sqlx::query(
            "DELETE FROM readings r USING UNNEST($1::bigint[], $2::timestamptz[]) AS x(e, t)
             WHERE r.dev_eui = x.e AND r.time = x.t",
        )
        .bind(&eui)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        let keys: Vec<String> = uplinks.iter().map(|(u, _)| u.dedup_key.clone()).collect();
        let unmapped: Vec<serde_json::Value> = uplinks
            .iter()
            .map(|(_, un)| serde_json::json!(un))
            .collect();
        sqlx::query(
            "UPDATE uplinks u SET unmapped = ARRAY(SELECT jsonb_array_elements_text(x.un))
             FROM UNNEST($1::text[], $2::timestamptz[], $3::jsonb[]) AS x(k, t, un)
             WHERE u.dedup_key = x.k AND u.observed_at = x.t",
        )
        .bind(&keys)
        .bind(&at)
        .bind(&unmapped)
        .execute(&mut *tx)
        .await?;
        let n = if readings.is_empty() {
            0
        } else {
            insert_readings(&mut tx, readings, Conflicts::Skip).await?
        };
        if !readings.is_empty() {
            upsert_latest(&mut tx, readings).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Dead letters received in `[from, to)` that were not replayed yet.
    pub async fn dead_letters(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StoredDeadLetter>> {
        Ok(sqlx::query_as(
            "SELECT id, received_at, topic, reason, payload, payload_size FROM dead_letters
             WHERE received_at >= $1 AND received_at < $2 AND replayed_at IS NULL
             ORDER BY received_at, id LIMIT $3",
        )
        .bind(from)
        .bind(to)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks dead letters as replayed (their content went through the pipeline again).
    pub async fn mark_replayed(&self, ids: &[i64], at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE dead_letters SET replayed_at = $2 WHERE id = ANY($1)")
            .bind(ids)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
