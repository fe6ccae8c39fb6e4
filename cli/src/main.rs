//! `stadtpuls`: parse the command line and configuration, set up logging and metrics, then
//! hand over to the library. Nothing else lives here.

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use stadtpuls::app::{self, Parts};
use stadtpuls_config::Settings;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "stadtpuls",
    version,
    about = "Smart-city LoRaWAN data platform: MQTT ingest → TimescaleDB → REST API"
)]
struct Cli {
    /// TOML configuration file (defaults < file < STADTPULS__SECTION__KEY environment).
    #[arg(long, short, global = true, env = "STADTPULS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ingest and API in one process (the default deployment).
    Run,
    /// Only the MQTT ingest.
    Ingest,
    /// Only the HTTP API.
    Api,
    /// Apply database migrations and exit.
    Migrate,
    /// Publish simulated city traffic to the broker and write the matching registry file.
    Simulate {
        /// Uplinks per second (overrides simulator.rate).
        #[arg(long)]
        rate: Option<f64>,
        /// Number of parking bay sensors; other groups scale with it.
        #[arg(long)]
        bays: Option<u32>,
        /// Stop after this many uplinks.
        #[arg(long)]
        max_messages: Option<u64>,
        /// Only write the registry file, publish nothing.
        #[arg(long)]
        registry_only: bool,
    },
    /// Device registry commands.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// API keys: create (shown once), revoke, list.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Places registry commands (parking sites, buildings, rooms).
    Places {
        #[command(subcommand)]
        command: PlacesCommand,
    },
    /// Rebuild readings from stored raw uplinks and replay dead letters.
    Reprocess {
        /// Start of the window (RFC 3339).
        #[arg(long)]
        from: DateTime<Utc>,
        /// End of the window (RFC 3339, exclusive).
        #[arg(long)]
        to: DateTime<Utc>,
        /// Do not replay dead letters.
        #[arg(long)]
        skip_dead_letters: bool,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the API's OpenAPI 3.1 document (as served at /openapi.json).
    Openapi,
    /// Open-data exports: run one by hand, list datasets and runs.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ExportCommand {
    /// Export a dataset: the partitions overlapping --from..--to, or without them whatever is
    /// due now (missed partitions and partitions changed by late data).
    Run {
        #[arg(long)]
        dataset: String,
        /// Start of the window (RFC 3339); whole partitions are exported.
        #[arg(long, requires = "to")]
        from: Option<DateTime<Utc>>,
        /// End of the window (RFC 3339, exclusive).
        #[arg(long, requires = "from")]
        to: Option<DateTime<Utc>>,
    },
    /// The configured datasets with their files and last run.
    List,
}

#[derive(Subcommand, Debug)]
enum DevicesCommand {
    /// Import (insert or update) devices from GeoJSON or CSV.
    Import { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create a key for one building (`--building ID`) or for operators (`--admin`).
    Create {
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        building: Option<String>,
        /// Free text shown in `keys list` (who holds the key).
        #[arg(long)]
        label: Option<String>,
    },
    /// Revoke a key, given its id, its prefix or the key itself.
    Revoke { key: String },
    /// List keys (never their secrets).
    List,
}

#[derive(Subcommand, Debug)]
enum PlacesCommand {
    /// Import (insert or update) parking sites, buildings and rooms from GeoJSON or CSV.
    Import { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print a commented TOML file with every setting and its default.
    Template,
    /// Print the effective configuration (secrets redacted).
    Show,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Config {
        command: ConfigCommand::Template,
    } = cli.command
    {
        print!("{}", stadtpuls_config::template());
        return std::process::ExitCode::SUCCESS;
    }
    if let Command::Openapi = cli.command {
        match serde_json::to_string_pretty(&stadtpuls_api::openapi_document()) {
            Ok(doc) => println!("{doc}"),
            Err(e) => {
                eprintln!("stadtpuls: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        return std::process::ExitCode::SUCCESS;
    }
    // The settings tree checks itself; the MQTT topic syntax is checked by the ingest, which
    // owns the MQTT client.
    let settings = match Settings::load(cli.config.as_deref())
        .and_then(|s| stadtpuls_ingest::mqtt::check_topics(&s.mqtt).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stadtpuls: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stadtpuls: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command, Arc::new(settings))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stadtpuls: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    // sqlx logs every migration notice at INFO; keep it quieter unless asked for.
    let level = &settings.log.level;
    let directives = if level.contains("sqlx") {
        level.clone()
    } else {
        format!("{level},sqlx=warn")
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn install_metrics() -> Option<PrometheusHandle> {
    match PrometheusBuilder::new().install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
            None
        }
    }
}

/// Cancels the token on SIGINT/SIGTERM; a second signal or 10 s later the process exits hard.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        // One set of listeners for both signals: a listener created after a signal was
        // delivered would report that same signal again.
        let mut signals = Signals::new();
        signals.next().await;
        tracing::info!(
            "shutting down: committing in-flight batches (send the signal again to force)"
        );
        t.cancel();
        tokio::select! {
            _ = signals.next() => tracing::warn!("second signal: exiting now"),
            _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("shutdown took longer than 10 s; exiting now"),
        }
        std::process::exit(1);
    });
    token
}

/// SIGINT and (on Unix) SIGTERM as one stream.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let (Some(term), Some(int)) = (self.term.as_mut(), self.int.as_mut()) {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn dispatch(command: Command, settings: Arc<Settings>) -> anyhow::Result<()> {
    match command {
        Command::Run | Command::Ingest | Command::Api => {
            let parts = match command {
                Command::Run => Parts {
                    ingest: true,
                    api: true,
                    export: true,
                },
                Command::Ingest => Parts {
                    ingest: true,
                    api: false,
                    export: false,
                },
                _ => Parts {
                    ingest: false,
                    api: true,
                    export: false,
                },
            };
            let listener = if parts.api {
                Some(app::bind(&settings).await?)
            } else {
                None
            };
            let metrics = install_metrics();
            let shutdown = shutdown_on_signal();
            app::run(settings, parts, listener, metrics, shutdown).await
        }
        Command::Migrate => {
            let mut s = (*settings).clone();
            s.database.migrate_on_start = true;
            app::connect_store(&s).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Simulate {
            rate,
            bays,
            max_messages,
            registry_only,
        } => {
            let mut opts = stadtpuls::simulate::SimOptions {
                rate: settings.simulator.rate,
                parking_bays: settings.simulator.parking_bays,
                seed: settings.simulator.seed,
                max_messages: settings.simulator.max_messages,
            };
            if let Some(r) = rate {
                anyhow::ensure!(r > 0.0 && r.is_finite(), "--rate must be a positive number");
                opts.rate = r;
            }
            if let Some(b) = bays {
                opts.parking_bays = b;
            }
            if let Some(m) = max_messages {
                opts.max_messages = m;
            }
            let fleet = stadtpuls::simulate::fleet(&opts);
            let path = PathBuf::from(&settings.simulator.registry_file);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let geojson =
                serde_json::to_string_pretty(&stadtpuls::simulate::registry_geojson(&fleet))?;
            std::fs::write(&path, geojson)
                .with_context(|| format!("writing {}", path.display()))?;
            println!(
                "registry of {} simulated devices written to {}",
                fleet.len(),
                path.display()
            );
            if registry_only {
                return Ok(());
            }
            let shutdown = shutdown_on_signal();
            let n = stadtpuls::simulate::run(&settings.mqtt, &opts, shutdown).await?;
            println!("published {n} uplinks");
            Ok(())
        }
        Command::Devices {
            command: DevicesCommand::Import { file },
        } => {
            let devices = stadtpuls::registry::read_file(&file)?;
            let store = app::connect_store(&settings).await?;
            let o = store
                .import_devices(&devices)
                .await
                .context("importing devices")?;
            println!(
                "{} devices imported from {}: {} new, {} updated",
                devices.len(),
                file.display(),
                o.inserted,
                o.updated
            );
            Ok(())
        }
        Command::Keys { command } => {
            let store = app::connect_store(&settings).await?;
            let out = match command {
                KeysCommand::Create {
                    admin,
                    building,
                    label,
                } => stadtpuls::keys::create(&store, admin, building, label).await?,
                KeysCommand::Revoke { key } => stadtpuls::keys::revoke(&store, &key).await?,
                KeysCommand::List => stadtpuls::keys::list(&store).await?,
            };
            println!("{out}");
            Ok(())
        }
        Command::Places {
            command: PlacesCommand::Import { file },
        } => {
            let places = stadtpuls::places::read_file(&file)?;
            let store = app::connect_store(&settings).await?;
            let o = store
                .import_places(&places.sites, &places.buildings, &places.rooms)
                .await
                .context("importing places")?;
            println!(
                "places imported from {}: {} parking sites, {} buildings, {} rooms",
                file.display(),
                o.sites,
                o.buildings,
                o.rooms
            );
            Ok(())
        }
        Command::Export {
            command: ExportCommand::Run { dataset, from, to },
        } => {
            let store = app::connect_store(&settings).await?;
            stadtpuls::export::run(store, settings.clone(), &dataset, from.zip(to)).await
        }
        Command::Export {
            command: ExportCommand::List,
        } => {
            let store = app::connect_store(&settings).await?;
            stadtpuls::export::list(store, &settings).await
        }
        Command::Reprocess {
            from,
            to,
            skip_dead_letters,
        } => {
            anyhow::ensure!(from < to, "--from must be before --to");
            let store = app::connect_store(&settings).await?;
            let mut report = stadtpuls::reprocess::readings(&store, &settings, from, to, |r| {
                eprint!("\ruplinks {:>10}  readings {:>10}", r.uplinks, r.readings);
            })
            .await?;
            eprintln!();
            if !skip_dead_letters {
                stadtpuls::reprocess::dead_letters(&store, &settings, from, to, &mut report)
                    .await?;
            }
            println!(
                "reprocessed {} uplinks into {} readings ({} unmapped keys); dead letters: {} seen, {} recovered",
                report.uplinks, report.readings, report.unmapped_keys, report.dead_letters_seen, report.dead_letters_recovered
            );
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            println!("{settings:#?}");
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Template,
        }
        | Command::Openapi => Ok(()),
    }
}
