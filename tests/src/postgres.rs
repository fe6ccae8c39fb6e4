//! A private PostgreSQL + TimescaleDB cluster: `initdb` in a scratch directory, a free port, the
//! unix socket in the data directory, `postgres` as a child process that can be stopped (fast
//! shutdown), killed and started again. Durability settings stay at their defaults (fsync on).
//!
//! PostgreSQL refuses to run as root; when the tests run as root the cluster's files and
//! processes belong to the `postgres` user.

use crate::procs::{free_port, is_root, signal, user_ids};
use anyhow::{bail, Context, Result};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) private cluster.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    pub data: PathBuf,
    bin: PathBuf,
    ids: Option<(u32, u32)>,
    postmaster: Option<Child>,
}

/// Where `initdb`, `postgres` and `pg_ctl` live: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian), else `PATH`.
pub fn pg_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PG_BIN") {
        return p.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).unwrap_or_default()
}

impl PgCluster {
    /// `initdb` in `<dir>/pg` and start the server on a free port.
    pub async fn create(dir: &Path) -> Result<PgCluster> {
        let data = dir.join("pg");
        std::fs::create_dir_all(&data)?;
        let ids = if is_root() {
            let ids = user_ids("postgres").context(
                "running as root, but there is no postgres user to own the test cluster",
            )?;
            chown(dir, ids)?;
            chown(&data, ids)?;
            Some(ids)
        } else {
            None
        };
        let bin = pg_bin();
        let mut c = Command::new(bin.join("initdb"));
        c.arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .current_dir(dir);
        let out = as_owner(&mut c, ids)
            .output()
            .with_context(|| format!("running {}", bin.join("initdb").display()))?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port()?;
        let conf = format!(
            "\n# added by stadtpuls-tests\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{data}'\n\
             shared_preload_libraries = 'timescaledb'\n\
             timescaledb.telemetry_level = off\n\
             max_connections = 100\n\
             shared_buffers = 256MB\n\
             log_min_messages = warning\n",
            data = data.display()
        );
        let path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&conf);
        std::fs::write(&path, text)?;
        let mut pg = PgCluster {
            port,
            data,
            bin,
            ids,
            postmaster: None,
        };
        pg.start().await?;
        Ok(pg)
    }

    /// The maintenance database's URL.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn start(&mut self) -> Result<()> {
        if self.postmaster.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(
            self.data
                .parent()
                .unwrap_or(&self.data)
                .join("postgres.log"),
        )?;
        let mut c = Command::new(self.bin.join("postgres"));
        c.arg("-D")
            .arg(&self.data)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = as_owner(&mut c, self.ids)
            .spawn()
            .context("starting postgres")?;
        self.postmaster = Some(child);
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if PgConnection::connect(&self.admin_url()).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .postmaster
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.postmaster = None;
                bail!("postgres exited at start: {status} (see postgres.log)");
            }
            if Instant::now() > until {
                bail!("postgres did not accept connections within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fast shutdown (`SIGINT`, what `pg_ctl stop -m fast` sends): sessions are disconnected,
    /// open transactions rolled back, then the server exits.
    pub async fn stop(&mut self) -> Result<()> {
        self.stop_with("INT", Duration::from_secs(60)).await
    }

    /// Immediate shutdown (`SIGQUIT`): no checkpoint; crash recovery at the next start.
    pub async fn stop_immediately(&mut self) -> Result<()> {
        self.stop_with("QUIT", Duration::from_secs(30)).await
    }

    async fn stop_with(&mut self, sig: &str, within: Duration) -> Result<()> {
        let Some(mut child) = self.postmaster.take() else {
            return Ok(());
        };
        signal(child.id(), sig)?;
        let until = Instant::now() + within;
        while child.try_wait()?.is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                bail!("postgres did not stop within {within:?} after SIG{sig}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin_url())
            .await?;
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database name {name:?}: only ASCII letters, digits and _");
        }
        // Identifiers cannot be bound; the name was checked above.
        pool.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .with_context(|| format!("creating database {name}"))?;
        pool.close().await;
        Ok(self.url(name))
    }

    /// Drops database `name` (disconnecting its sessions).
    pub async fn drop_database(&self, name: &str) -> Result<()> {
        let mut c = PgConnection::connect(&self.admin_url()).await?;
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database name {name:?}: only ASCII letters, digits and _");
        }
        c.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.postmaster.take() {
            // Immediate shutdown; SIGKILL if that does not end it within 10 s.
            let _ = signal(child.id(), "QUIT");
            let until = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `c` as the cluster's owner (when the tests run as root).
fn as_owner(c: &mut Command, ids: Option<(u32, u32)>) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = ids {
        c.uid(uid).gid(gid).env("HOME", "/tmp").env_remove("PGDATA");
    }
    c
}

fn chown(path: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))
}
