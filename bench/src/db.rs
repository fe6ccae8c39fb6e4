//! The benchmark's databases on its private PostgreSQL: `bench_empty` (migrated, the city's
//! registry, no readings; the template of every ingest run) and `bench_city` (the same plus a
//! year of readings, ≥ 100 M rows, and the export day). The city is loaded once and reused
//! while the SQL in `store/bench/` is unchanged.

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::str::FromStr;
use std::time::{Duration, Instant};

const CITY_SQL: &str = include_str!("../../store/bench/city.sql");
const FUNCTIONS_SQL: &str = include_str!("../../store/bench/functions.sql");
const READINGS_SQL: &str = include_str!("../../store/bench/readings.sql");
const EXPORT_DAY_SQL: &str = include_str!("../../store/bench/export_day.sql");
const RESET_SQL: &str = include_str!("../../store/bench/reset.sql");

/// Connection to the private server and the names of the benchmark's databases.
#[derive(Debug)]
pub struct Db {
    admin: PgPool,
    base_url: String,
    empty: String,
    city: String,
    /// Readings per device and year are divided by this (1 = the full 100 M).
    scale: u32,
}

/// What the loaded city holds (read from the database, so also true when reused).
#[derive(Clone, Debug, serde::Serialize)]
pub struct CityFacts {
    pub readings: i64,
    pub devices: i64,
    pub parking_sites: i64,
    pub buildings: i64,
    pub export_day_readings: i64,
    pub table_bytes: i64,
    pub load_seconds: f64,
    pub reused: bool,
}

fn fingerprint(scale: u32) -> String {
    // FNV-1a over the SQL and the scale: editing the SQL reloads the city.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [CITY_SQL, FUNCTIONS_SQL, READINGS_SQL, EXPORT_DAY_SQL]
        .concat()
        .bytes()
        .chain(scale.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Db {
    pub async fn connect(url: &str, scale: u32) -> Result<Db> {
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let base_url = url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or_default();
        let suffix = if scale == 1 {
            String::new()
        } else {
            format!("_s{scale}")
        };
        Ok(Db {
            admin,
            base_url,
            empty: format!("bench_empty{suffix}"),
            city: format!("bench_city{suffix}"),
            scale,
        })
    }

    pub fn url(&self, db: &str) -> String {
        format!("{}/{db}", self.base_url)
    }

    pub fn city_url(&self) -> String {
        self.url(&self.city)
    }

    async fn exists(&self, db: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(db)
                .fetch_optional(&self.admin)
                .await?
                .is_some(),
        )
    }

    pub async fn drop(&self, db: &str) -> Result<()> {
        self.admin
            .execute(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)").as_str())
            .await?;
        Ok(())
    }

    /// A new database `name` copied from the empty template; returns its URL.
    pub async fn fresh_empty(&self, name: &str) -> Result<String> {
        self.drop(name).await?;
        self.copy_of(&self.empty, name).await?;
        Ok(self.url(name))
    }

    /// `CREATE DATABASE name TEMPLATE template`, retried while a just-closed connection to the
    /// template is still going away.
    async fn copy_of(&self, template: &str, name: &str) -> Result<()> {
        let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        let mut tries = 0;
        loop {
            match self.admin.execute(sql.as_str()).await {
                Ok(_) => return Ok(()),
                Err(e) if tries < 50 && e.to_string().contains("being accessed") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("creating {name}")),
            }
        }
    }

    async fn conn(&self, url: &str) -> Result<PgConnection> {
        let opts = PgConnectOptions::from_str(url)?;
        Ok(PgConnection::connect_with(&opts).await?)
    }

    pub async fn exec_on(&self, url: &str, sql: &str) -> Result<()> {
        let mut c = self.conn(url).await?;
        sqlx::raw_sql(sql).execute(&mut c).await?;
        Ok(())
    }

    async fn meta(&self, db: &str, key: &str) -> Option<String> {
        let mut c = self.conn(&self.url(db)).await.ok()?;
        sqlx::query_scalar("SELECT value FROM bench.meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut c)
            .await
            .ok()
            .flatten()
    }

    /// Makes sure both databases exist and are current; loads the city when not.
    pub async fn ensure(&self) -> Result<CityFacts> {
        let want = fingerprint(self.scale);
        if self.meta(&self.empty, "fingerprint").await.as_deref() != Some(want.as_str()) {
            println!("city: creating {} (migrations + registry)", self.empty);
            self.drop(&self.city).await?;
            self.drop(&self.empty).await?;
            self.admin
                .execute(format!("CREATE DATABASE \"{}\"", self.empty).as_str())
                .await?;
            let url = self.url(&self.empty);
            let store = stadtpuls_store::Store::connect(&url, 1, Duration::from_secs(10)).await?;
            store.migrate().await?;
            drop(store);
            let mut c = self.conn(&url).await?;
            sqlx::raw_sql(CITY_SQL).execute(&mut c).await?;
            sqlx::raw_sql(FUNCTIONS_SQL).execute(&mut c).await?;
            if self.scale > 1 {
                sqlx::query("UPDATE bench.plan SET slots = greatest(1, slots / $1)")
                    .bind(self.scale as i32)
                    .execute(&mut c)
                    .await?;
            }
            sqlx::query("INSERT INTO bench.meta VALUES ('fingerprint', $1)")
                .bind(&want)
                .execute(&mut c)
                .await?;
            sqlx::raw_sql("VACUUM ANALYZE").execute(&mut c).await?;
        }
        // Migrations added since the databases were made (the fingerprint covers only the
        // benchmark's own SQL), then the tables that ingest updates in place rewritten, so that
        // their storage settings apply to the loaded rows too.
        for db in [&self.empty, &self.city] {
            if self.exists(db).await? {
                let url = self.url(db);
                let store =
                    stadtpuls_store::Store::connect(&url, 1, Duration::from_secs(10)).await?;
                store.migrate().await?;
                drop(store);
                self.exec_on(&url, "VACUUM FULL devices, latest_readings")
                    .await?;
            }
        }
        let mut reused = true;
        if self.meta(&self.city, "loaded").await.as_deref() != Some(want.as_str()) {
            reused = false;
            self.load_city().await?;
            let mut c = self.conn(&self.city_url()).await?;
            sqlx::query("INSERT INTO bench.meta VALUES ('loaded', $1)")
                .bind(&want)
                .execute(&mut c)
                .await?;
        }
        self.reset().await?;
        let mut c = self.conn(&self.city_url()).await?;
        let q = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        Ok(CityFacts {
            readings: q("SELECT count(*) FROM readings").fetch_one(&mut c).await?,
            devices: q("SELECT count(*) FROM devices WHERE lat IS NOT NULL").fetch_one(&mut c).await?,
            parking_sites: q("SELECT count(*) FROM parking_sites").fetch_one(&mut c).await?,
            buildings: q("SELECT count(*) FROM buildings").fetch_one(&mut c).await?,
            export_day_readings: q(
                "SELECT count(*) FROM readings WHERE time >= '2026-01-14T23:00:00Z' AND time < '2026-01-15T23:00:00Z'",
            )
            .fetch_one(&mut c)
            .await?,
            table_bytes: q("SELECT hypertable_size('readings')").fetch_one(&mut c).await?,
            load_seconds: sqlx::query_scalar::<_, String>(
                "SELECT value FROM bench.meta WHERE key = 'load_seconds'",
            )
            .fetch_one(&mut c)
            .await?
            .parse()
            .unwrap_or(0.0),
            reused,
        })
    }

    async fn load_city(&self) -> Result<()> {
        self.drop(&self.city).await?;
        self.copy_of(&self.empty, &self.city).await?;
        let mut c = self.conn(&self.city_url()).await?;
        sqlx::raw_sql("SET synchronous_commit = off; SET work_mem = '256MB'; SET TIME ZONE 'UTC'")
            .execute(&mut c)
            .await?;
        let started = Instant::now();
        let year = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).context("date")?;
        let mut rows = 0u64;
        for week in 0..53 {
            let from = year + chrono::Days::new(7 * week);
            let to = (from + chrono::Days::new(7)).min(year + chrono::Days::new(365));
            let r = sqlx::query(READINGS_SQL)
                .bind(from.and_hms_opt(0, 0, 0).context("time")?.and_utc())
                .bind(to.and_hms_opt(0, 0, 0).context("time")?.and_utc())
                .execute(&mut c)
                .await
                .with_context(|| format!("loading week {week}"))?;
            rows += r.rows_affected();
            let s = started.elapsed().as_secs_f64();
            println!(
                "city: week {:>2}/53 loaded, {rows} readings, {:.0} rows/s",
                week + 1,
                rows as f64 / s
            );
        }
        let r = sqlx::query(EXPORT_DAY_SQL)
            .bind((683 / self.scale).max(1) as i32)
            .execute(&mut c)
            .await?;
        println!("city: export day loaded, {} readings", r.rows_affected());
        sqlx::raw_sql("VACUUM ANALYZE").execute(&mut c).await?;
        sqlx::query("INSERT INTO bench.meta VALUES ('load_seconds', $1)")
            .bind(format!("{:.1}", started.elapsed().as_secs_f64()))
            .execute(&mut c)
            .await?;
        Ok(())
    }

    /// Back to the loaded state (see `store/bench/reset.sql`).
    pub async fn reset(&self) -> Result<()> {
        self.exec_on(&self.city_url(), RESET_SQL).await
    }

    /// (uplinks, readings) stored since `since` in database `url`.
    pub async fn stored_counts(
        &self,
        url: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<(u64, u64)> {
        let mut c = self.conn(url).await?;
        let uplinks: i64 =
            sqlx::query_scalar("SELECT count(*) FROM uplinks WHERE observed_at >= $1")
                .bind(since)
                .fetch_one(&mut c)
                .await?;
        let readings: i64 = sqlx::query_scalar("SELECT count(*) FROM readings WHERE time >= $1")
            .bind(since)
            .fetch_one(&mut c)
            .await?;
        Ok((uplinks as u64, readings as u64))
    }

    /// (rows, distinct rows) in the naive consumer's table.
    pub async fn naive_counts(&self, url: &str) -> Result<(u64, u64)> {
        let mut c = self.conn(url).await?;
        let (rows, distinct): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT (dev_eui, key, time)) FROM naive_readings",
        )
        .fetch_one(&mut c)
        .await?;
        Ok((rows as u64, distinct as u64))
    }

    /// A dedicated connection to the city (for the COPY baseline).
    pub async fn city_conn(&self) -> Result<PgConnection> {
        self.conn(&self.city_url()).await
    }
}
