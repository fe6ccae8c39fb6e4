//! Test support: a fresh, migrated database per test on the real PostgreSQL + TimescaleDB.
//!
//! The server is taken from `STADTPULS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each call creates `stadtpuls_test_<random>`.

use crate::{Result, Store};
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

/// URL of the maintenance database used to create test databases.
pub fn admin_url() -> String {
    std::env::var("STADTPULS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Creates a new empty database and returns its URL (not migrated).
pub async fn create_database() -> Result<String> {
    let admin = admin_url();
    let name = format!("stadtpuls_test_{}", uuid::Uuid::new_v4().simple());
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await?;
    // Identifiers cannot be bound; the name is generated above from hex digits only.
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or(admin);
    Ok(format!("{base}/{name}"))
}

/// A fresh database with all migrations applied.
pub async fn fresh_store() -> Result<Store> {
    let url = create_database().await?;
    let store = Store::connect(&url, 5, Duration::from_secs(10)).await?;
    store.migrate().await?;
    Ok(store)
}

pub use sqlx::FromRow;

/// Fetches one row of an arbitrary query as a tuple (tests read tables directly).
pub async fn fetch_one<T>(store: &Store, sql: &str) -> T
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    match sqlx::query_as::<_, T>(sql).fetch_one(store.pool()).await {
        Ok(v) => v,
        Err(e) => panic!("test query failed: {sql}: {e}"),
    }
}

/// Fetches all rows of an arbitrary query as tuples.
pub async fn fetch_all<T>(store: &Store, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    match sqlx::query_as::<_, T>(sql).fetch_all(store.pool()).await {
        Ok(v) => v,
        Err(e) => panic!("test query failed: {sql}: {e}"),
    }
}

/// A UTC time from RFC 3339 text (tests).
pub fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&chrono::Utc),
        Err(e) => panic!("test time '{s}': {e}"),
    }
}

/// A decoded ChirpStack v4 uplink of device `eui` observed at `at`, carrying `readings`, ready
/// for [`Store::write_batch`]. Tests change the fields they care about.
pub fn uplink_record(
    dedup_key: &str,
    eui: stadtpuls_gateways::DevEui,
    at: chrono::DateTime<chrono::Utc>,
    readings: &[(stadtpuls_gateways::Quantity, f64)],
) -> crate::UplinkRecord {
    use stadtpuls_gateways::{NetworkServer, Reading, TxInfo, Uplink};
    crate::UplinkRecord {
        uplink: Uplink {
            dedup_key: dedup_key.to_string(),
            dev_eui: eui,
            network_server: NetworkServer::ChirpstackV4,
            application: Some("app-1".into()),
            device_name: Some(format!("dev {eui}")),
            observed_at: at,
            received_at: at,
            f_cnt: Some(7),
            f_port: Some(2),
            payload: vec![1, 2, 3],
            decoded: None,
            gateways: vec![],
            tx: TxInfo::default(),
            device_location: None,
            simulated: false,
        },
        topic: "application/x/device/y/event/up".into(),
        ingested_at: at,
        readings: readings
            .iter()
            .map(|(quantity, value)| Reading {
                quantity: *quantity,
                value: *value,
                observed_at: at,
            })
            .collect(),
        unmapped: vec![],
    }
}
