//! Bookkeeping of open-data exports: runs, exported partitions (with their fingerprints) and
//! published files.

use super::{ExportFileRecord, ExportRun, PartitionRecord};
use crate::{Result, Store};
use chrono::{DateTime, Utc};

impl Store {
    /// Records the start of a run; returns its id.
    pub async fn start_export_run(
        &self,
        dataset: &str,
        trigger: &str,
        window: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO export_runs (dataset, trigger, window_start, window_end, started_at, status)
             VALUES ($1, $2, $3, $4, $5, 'running') RETURNING id",
        )
        .bind(dataset)
        .bind(trigger)
        .bind(window.0)
        .bind(window.1)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records how a run ended.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_export_run(
        &self,
        id: i64,
        status: &str,
        partitions: i32,
        rows: i64,
        bytes: i64,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE export_runs SET status = $2, partitions = $3, rows = $4, bytes = $5,
                    error = $6, finished_at = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(partitions)
        .bind(rows)
        .bind(bytes)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces what is recorded for one partition: its fingerprint and its files (none for an
    /// empty partition), in one transaction.
    pub async fn record_partition(
        &self,
        partition: &PartitionRecord,
        dataset: &str,
        files: &[ExportFileRecord],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM export_files WHERE dataset = $1 AND partition = $2")
            .bind(dataset)
            .bind(&partition.partition)
            .execute(&mut *tx)
            .await?;
        for f in files {
            sqlx::query(
                "INSERT INTO export_files (dataset, partition, format, path, rows, bytes, sha256,
                                           modified, window_start, window_end)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&f.dataset)
            .bind(&f.partition)
            .bind(&f.format)
            .bind(&f.path)
            .bind(f.rows)
            .bind(f.bytes)
            .bind(&f.sha256)
            .bind(f.modified)
            .bind(f.window_start)
            .bind(f.window_end)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO export_partitions (dataset, partition, window_start, window_end,
                                            fingerprint, rows, exported_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (dataset, partition) DO UPDATE SET window_start = EXCLUDED.window_start,
               window_end = EXCLUDED.window_end, fingerprint = EXCLUDED.fingerprint,
               rows = EXCLUDED.rows, exported_at = EXCLUDED.exported_at",
        )
        .bind(dataset)
        .bind(&partition.partition)
        .bind(partition.window_start)
        .bind(partition.window_end)
        .bind(&partition.fingerprint)
        .bind(partition.rows)
        .bind(partition.exported_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every exported partition of a dataset, oldest first.
    pub async fn exported_partitions(&self, dataset: &str) -> Result<Vec<PartitionRecord>> {
        Ok(sqlx::query_as(
            "SELECT partition, window_start, window_end, fingerprint, rows, exported_at
             FROM export_partitions WHERE dataset = $1 ORDER BY window_start",
        )
        .bind(dataset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The published files of a dataset, by partition then format.
    pub async fn export_files(&self, dataset: &str) -> Result<Vec<ExportFileRecord>> {
        Ok(sqlx::query_as(
            "SELECT dataset, partition, format, path, rows, bytes, sha256, modified, window_start,
                    window_end
             FROM export_files WHERE dataset = $1 ORDER BY window_start, format",
        )
        .bind(dataset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The published file at `path` (relative to the export directory), if recorded.
    pub async fn export_file(&self, path: &str) -> Result<Option<ExportFileRecord>> {
        Ok(sqlx::query_as(
            "SELECT dataset, partition, format, path, rows, bytes, sha256, modified, window_start,
                    window_end
             FROM export_files WHERE path = $1",
        )
        .bind(path)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The newest runs (of one dataset, if given), newest first.
    pub async fn export_runs(&self, dataset: Option<&str>, limit: i64) -> Result<Vec<ExportRun>> {
        Ok(sqlx::query_as(
            "SELECT id, dataset, trigger, window_start, window_end, started_at, finished_at,
                    status, partitions, rows, bytes, error
             FROM export_runs WHERE $1::text IS NULL OR dataset = $1
             ORDER BY started_at DESC, id DESC LIMIT $2",
        )
        .bind(dataset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
