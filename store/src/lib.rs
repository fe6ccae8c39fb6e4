//! All Stadtpuls SQL: embedded migrations and typed, parameterised queries over PostgreSQL +
//! TimescaleDB. No other crate contains SQL.
//!
//! Besides SQL it holds the little runtime state that the ingest and the API both need and that
//! must sit below both: the injected [`clock`] and the ingest's [`health`] record.

pub mod aggregates;
pub mod buildings;
pub mod clock;
pub mod copy_out;
mod devices;
pub mod exports;
pub mod fingerprint;
pub mod health;
pub mod keys;
pub mod live;
pub mod opendata;
pub mod parking;
pub mod parking_history;
mod places;
mod readings;
mod retention;
pub mod testing;
mod write;

pub use devices::*;
pub use places::*;
pub use readings::*;
pub use retention::*;
pub use write::*;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// Errors of the store. Whether an error is worth retrying is told by [`StoreError::is_transient`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A query or connection failed. (Not marked as `source`: the message already carries the
    /// cause, and error chains would print it twice.)
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// The database lacks the TimescaleDB extension or it is not preloaded.
    #[error("TimescaleDB is not available in this database: {0}")]
    NoTimescale(String),
    /// A value read back from the database is not what the schema promises.
    #[error("unexpected data in column {column}: {problem}")]
    Corrupt {
        column: &'static str,
        problem: String,
    },
    /// The server did not answer in time (refused or unreachable).
    #[error("{0}")]
    Unreachable(String),
    /// Input rejected before it reached the database (e.g. an unknown enum value).
    #[error("invalid {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

impl StoreError {
    /// Connection loss, pool timeouts, serialisation failures and similar: retrying the same
    /// work later can succeed. Constraint violations and bad data cannot.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Tls(_) => true,
                sqlx::Error::Database(db) => {
                    let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                    // 08: connection exception, 40: transaction rollback (serialisation,
                    // deadlock), 53: insufficient resources, 57P: operator intervention
                    // (admin shutdown, cannot connect now), 55P03: lock not available,
                    // 57014: statement timeout or cancel (e.g. a batch that waited behind a
                    // lock longer than `statement_timeout`: good data, to be written again).
                    code.starts_with("08")
                        || code.starts_with("40")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || code == "55P03"
                        || code == "57014"
                }
                _ => false,
            },
            StoreError::Unreachable(_) => true,
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Migrations embedded at compile time from `store/migrations`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects without a statement timeout (tests, tools); see [`Store::connect_with`].
    pub async fn connect(
        url: &str,
        max_connections: u32,
        connect_timeout: Duration,
    ) -> Result<Store> {
        Store::connect_with(url, max_connections, connect_timeout, None).await
    }

    /// Connects: one direct connection is tried first, then the pool is opened. With
    /// `statement_timeout`, every statement of every pooled connection is cancelled after it.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        connect_timeout: Duration,
        statement_timeout: Option<Duration>,
    ) -> Result<Store> {
        use sqlx::Connection;
        let mut opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
            .application_name("stadtpuls");
        if let Some(t) = statement_timeout.filter(|t| !t.is_zero()) {
            opts = opts.options([("statement_timeout", format!("{}ms", t.as_millis()))]);
        }
        // One direct connection first, so that a refused connection or a wrong password is
        // reported as such rather than as a pool timeout.
        match tokio::time::timeout(connect_timeout, sqlx::PgConnection::connect_with(&opts)).await {
            Ok(conn) => conn?.close().await?,
            Err(_) => {
                return Err(StoreError::Unreachable(format!(
                    "no connection to {}:{} within {} s; is PostgreSQL running and reachable?",
                    opts.get_host(),
                    opts.get_port(),
                    connect_timeout.as_secs_f64()
                )))
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(connect_timeout)
            .connect_with(opts)
            .await?;
        Ok(Store { pool })
    }

    /// Wraps an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations (idempotent). Fails clearly when TimescaleDB is missing.
    pub async fn migrate(&self) -> Result<()> {
        let available: Option<String> = sqlx::query_scalar(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'",
        )
        .fetch_optional(&self.pool)
        .await?;
        if available.is_none() {
            return Err(StoreError::NoTimescale(
                "the timescaledb extension is not installed on the server (run scripts/setup)"
                    .into(),
            ));
        }
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(ref inner)
                if inner.to_string().contains("shared_preload_libraries") =>
            {
                StoreError::NoTimescale(
                    "timescaledb must be in shared_preload_libraries (run scripts/setup)".into(),
                )
            }
            other => StoreError::Migrate(other),
        })
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// `(name, unit, description, id)` of every quantity as the database knows them.
    pub async fn quantities(&self) -> Result<Vec<(i16, String, String, String)>> {
        Ok(
            sqlx::query_as("SELECT id, name, unit, description FROM quantities ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
