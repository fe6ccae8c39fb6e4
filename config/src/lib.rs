//! Stadtpuls settings: one typed tree, layered compiled defaults → optional TOML file →
//! environment variables `STADTPULS__<SECTION>__<KEY>`, validated before any connection is made.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use stadtpuls_gateways::{DeviceKind, Dialect, Quantity};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod opendata;
mod template;
pub use opendata::*;
pub use template::template;

/// Parses a dataset schedule: a cron expression with optional seconds (5 or 6 fields).
pub fn parse_schedule(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expr)
}

/// Prefix of every environment variable that overrides a setting.
pub const ENV_PREFIX: &str = "STADTPULS__";

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a value did not fit the settings tree.
    #[error("invalid configuration: {0}")]
    Load(String),
    /// A value parsed but is not acceptable; `key` is the dotted setting name.
    #[error("invalid configuration: {key}: {problem}")]
    Invalid { key: String, problem: String },
    /// The file named by `--config` does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
}

/// The whole settings tree.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub mqtt: MqttSettings,
    pub ingest: IngestSettings,
    pub http: HttpSettings,
    pub retention: RetentionSettings,
    pub mapping: MappingSettings,
    pub city: CitySettings,
    pub parking: ParkingSettings,
    pub buildings: BuildingSettings,
    pub devices: DeviceSettings,
    pub opendata: OpendataSettings,
    pub simulator: SimulatorSettings,
    pub log: LogSettings,
}

/// A string that never shows up in logs or `Debug` output.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"[redacted]\"")
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// postgres:// URL. May contain a password, so it is redacted in Debug output.
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
    /// Every statement is cancelled after this long (0 = no limit).
    pub statement_timeout_ms: u64,
    /// Run pending migrations when `run`, `ingest` or `api` start.
    pub migrate_on_start: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/stadtpuls".into(),
            max_connections: 10,
            connect_timeout_secs: 5,
            statement_timeout_ms: 30_000,
            migrate_on_start: true,
        }
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

/// Replaces the password of a URL (`scheme://user:pass@host`) by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// One MQTT topic filter and the dialect its messages carry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub filter: String,
    #[serde(default)]
    pub dialect: Dialect,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// Stable client id: the broker keeps the persistent session (queued QoS 1 messages) under it.
    pub client_id: String,
    pub username: String,
    pub password: Secret,
    pub tls: bool,
    /// PEM file with the CA certificates to trust for TLS (empty = the system bundle,
    /// `/etc/ssl/certs/ca-certificates.crt`).
    pub ca_file: String,
    pub keep_alive_secs: u64,
    /// `false` keeps the broker-side session across reconnects and restarts (no loss while down).
    pub clean_session: bool,
    /// Largest MQTT packet accepted from the broker. Payloads above `ingest.max_payload_bytes`
    /// but below this are dead-lettered; larger packets break the connection, so keep this
    /// at or above the broker's own limit.
    pub max_packet_bytes: usize,
    /// Prepended to every subscription filter and stripped from topics before decoding
    /// (for bridged brokers, and so that tests can isolate their traffic).
    pub topic_prefix: String,
    pub subscriptions: Vec<Subscription>,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "stadtpuls-ingest".into(),
            username: String::new(),
            password: Secret::default(),
            tls: false,
            ca_file: String::new(),
            keep_alive_secs: 30,
            clean_session: false,
            max_packet_bytes: 2 * 1024 * 1024,
            topic_prefix: String::new(),
            subscriptions: default_subscriptions(),
        }
    }
}

/// ChirpStack (v3 and v4 share the topic shape, so `auto`) and The Things Stack v3.
pub fn default_subscriptions() -> Vec<Subscription> {
    let s = |filter: &str, dialect| Subscription {
        filter: filter.into(),
        dialect,
    };
    vec![
        s("application/+/device/+/event/+", Dialect::Auto),
        s("v3/+/devices/+/up", Dialect::TtsV3),
        s("v3/+/devices/+/join", Dialect::TtsV3),
        s("v3/+/devices/+/location/solved", Dialect::TtsV3),
    ]
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Capacity of the bounded channel between the MQTT session and the writer.
    pub channel_capacity: usize,
    /// A batch is written when it holds this many messages…
    pub batch_max_messages: usize,
    /// …or when no further message arrived for this long…
    pub batch_linger_ms: u64,
    /// …or when its oldest message waited this long.
    pub batch_max_wait_ms: u64,
    /// Batches committed concurrently (one collects while others commit); each needs a
    /// database connection.
    pub writers: usize,
    /// Payloads larger than this are dead-lettered (reason `payload_too_large`).
    pub max_payload_bytes: usize,
    /// Accept readings of TTS `simulated` uplinks (console test messages).
    pub store_simulated: bool,
    /// How often registry changes (codecs set by `devices import`) are picked up.
    pub registry_refresh_ms: u64,
    /// Address for `/health` and `/metrics` of a standalone `stadtpuls ingest` process, e.g.
    /// `127.0.0.1:9091` (empty = none). `run` serves both on the API's address instead.
    pub ops_listen: String,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            channel_capacity: 2048,
            batch_max_messages: 500,
            batch_linger_ms: 5,
            batch_max_wait_ms: 200,
            writers: 2,
            max_payload_bytes: 256 * 1024,
            store_simulated: false,
            registry_refresh_ms: 5000,
            ops_listen: String::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address the API listens on, e.g. `127.0.0.1:8080` (`:0` picks a free port).
    pub listen: String,
    /// URL under which clients reach the API (used in `next` links); empty = from the request.
    pub public_base_url: String,
    /// Largest request body (admin writes, polygon searches); longer ones get 413.
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    /// Largest `limit` a readings page may ask for.
    pub max_page_size: u32,
    /// Longest `from`..`to` window of one readings, aggregates, history or export request
    /// (longer ones get 400 naming `from`). The default fits a leap year of hourly buckets
    /// whatever the time zone; bucketed requests are also capped at 10 000 buckets.
    pub max_window_days: u32,
    /// Origins allowed to call the API from a browser (`*` = any). Empty = no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// How long parking site lists reuse one snapshot of the sites' realtime signals
    /// (0 = compute per request).
    pub parking_cache_ms: u64,
    /// Requests per second one client (address) may make (0 = no limit)…
    pub rate_limit_per_second: u32,
    /// …with bursts up to this many.
    pub rate_limit_burst: u32,
    /// Peers whose `X-Forwarded-For` header names the client (reverse proxies). Others' is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_base_url: String::new(),
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            max_page_size: 10_000,
            max_window_days: 367,
            cors_allowed_origins: vec!["*".into()],
            parking_cache_ms: 1000,
            rate_limit_per_second: 50,
            rate_limit_burst: 100,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Raw uplinks older than this are dropped (0 = keep forever).
    pub uplinks_days: u32,
    /// Dead letters older than this are dropped (0 = keep forever).
    pub dead_letters_days: u32,
    /// Readings older than this are dropped (0 = keep forever).
    pub readings_days: u32,
    /// How often the retention job runs.
    pub interval_minutes: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            uplinks_days: 90,
            dead_letters_days: 30,
            readings_days: 0,
            interval_minutes: 60,
        }
    }
}

/// Extra decoded-object keys to map onto canonical quantities, on top of the built-in table.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MappingSettings {
    pub keys: BTreeMap<String, KeyMapping>,
}

/// `"MyTemp" = "temperature"` or `"Pa" = { quantity = "pressure", factor = 0.01 }`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeyMapping {
    Quantity(String),
    Scaled {
        quantity: String,
        #[serde(default = "one")]
        factor: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl KeyMapping {
    pub fn quantity_name(&self) -> &str {
        match self {
            KeyMapping::Quantity(q) => q,
            KeyMapping::Scaled { quantity, .. } => quantity,
        }
    }
    pub fn factor(&self) -> f64 {
        match self {
            KeyMapping::Quantity(_) => 1.0,
            KeyMapping::Scaled { factor, .. } => *factor,
        }
    }
}

/// Realtime parking rules.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ParkingSettings {
    /// A site without data from any of its devices for this long reports no realtime data.
    pub stale_after_minutes: u32,
    /// A bay's latest state counts while it sent any uplink within this window (twice its
    /// heartbeat interval: bays report on change plus a heartbeat).
    pub bay_fresh_minutes: u32,
    /// The same for entrance counters reporting `free_spaces`.
    pub counter_fresh_minutes: u32,
}

impl Default for ParkingSettings {
    fn default() -> Self {
        Self {
            stale_after_minutes: 30,
            bay_fresh_minutes: 20,
            counter_fresh_minutes: 10,
        }
    }
}

/// Building climate rules.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BuildingSettings {
    /// Rooms above this CO₂ level are flagged (ppm).
    pub co2_alert_ppm: f64,
    /// A room sensor silent for this long is flagged as stale.
    pub stale_after_minutes: u32,
    /// Devices whose battery is below this percentage count as low (`status=low_battery`).
    pub low_battery_percent: f64,
}

impl Default for BuildingSettings {
    fn default() -> Self {
        Self {
            co2_alert_ppm: 1000.0,
            stale_after_minutes: 60,
            low_battery_percent: 20.0,
        }
    }
}

/// Operator views of the device fleet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceSettings {
    /// `status=silent` lists devices not heard for this long (minutes), unless their kind has
    /// its own window below.
    pub silent_after_minutes: u32,
    /// Per-kind silence windows (minutes), keyed by kind name ([`DeviceKind`]).
    pub silent_after_minutes_by_kind: BTreeMap<String, u32>,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            silent_after_minutes: 60,
            silent_after_minutes_by_kind: BTreeMap::from([
                ("parking_bay".to_string(), 20),
                ("parking_counter".to_string(), 20),
            ]),
        }
    }
}

/// Facts about the city the platform serves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CitySettings {
    /// IANA time zone: day buckets start at local midnight here. Checked against the
    /// database's time-zone list at startup.
    pub timezone: String,
}

impl Default for CitySettings {
    fn default() -> Self {
        Self {
            timezone: "Europe/Berlin".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorSettings {
    /// Total uplinks per second across all simulated devices.
    pub rate: f64,
    /// Number of single-bay parking sensors (other device groups scale with it).
    pub parking_bays: u32,
    pub seed: u64,
    /// Where `simulate` writes the matching device registry (GeoJSON).
    pub registry_file: String,
    /// Stop after this many uplinks (0 = run until stopped).
    pub max_messages: u64,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            rate: 20.0,
            parking_bays: 60,
            seed: 42,
            registry_file: ".stadtpuls/sim-devices.geojson".into(),
            max_messages: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// tracing filter, e.g. `info` or `stadtpuls_ingest=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Settings {
    /// Loads defaults → `file` (if given) → `STADTPULS__…` environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, Env::prefixed(ENV_PREFIX).split("__"))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        let settings: Settings = fig.merge(env).extract().map_err(describe_figment_error)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that parse but cannot work; the error names the key.
    /// The `[opendata]` checks, privacy rules included (see [`DatasetSettings::check`]).
    fn validate_opendata(&self) -> Result<(), ConfigError> {
        let o = &self.opendata;
        let bad = |key: String, problem: String| ConfigError::Invalid { key, problem };
        if !(1..=22).contains(&o.zstd_level) {
            return Err(bad("opendata.zstd_level".into(), "must be 1..22".into()));
        }
        if o.row_group_rows == 0 {
            return Err(bad(
                "opendata.row_group_rows".into(),
                "must be at least 1".into(),
            ));
        }
        if o.sort_memory_mb == 0 {
            return Err(bad(
                "opendata.sort_memory_mb".into(),
                "must be at least 1".into(),
            ));
        }
        if o.max_concurrent_exports == 0 {
            return Err(bad(
                "opendata.max_concurrent_exports".into(),
                "must be at least 1".into(),
            ));
        }
        if o.output_dir.trim().is_empty() {
            return Err(bad(
                "opendata.output_dir".into(),
                "must not be empty".into(),
            ));
        }
        let quantities: Vec<&str> = Quantity::ALL.iter().map(|q| q.name()).collect();
        let kinds: Vec<&str> = DeviceKind::ALL.iter().map(|k| k.as_str()).collect();
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in o.datasets.iter().enumerate() {
            let key = |k: &str| format!("opendata.datasets[{i}].{k}");
            d.check(&kinds, &quantities)
                .map_err(|(k, problem)| bad(key(&k), format!("dataset '{}': {problem}", d.name)))?;
            if !seen.insert(d.name.as_str()) {
                return Err(bad(key("name"), format!("'{}' is used twice", d.name)));
            }
            if let Err(e) = parse_schedule(&d.schedule) {
                return Err(bad(
                    key("schedule"),
                    format!("'{}' is not a cron expression: {e}", d.schedule),
                ));
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: String| ConfigError::Invalid {
            key: key.into(),
            problem,
        };
        let url = &self.database.url;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "database.url",
                format!("'{}' is not a postgres:// URL", redact_url(url)),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(bad("database.max_connections", "must be at least 1".into()));
        }
        if self.mqtt.host.trim().is_empty() {
            return Err(bad("mqtt.host", "must not be empty".into()));
        }
        if self.mqtt.port == 0 {
            return Err(bad("mqtt.port", "must be 1..65535".into()));
        }
        if self.mqtt.client_id.trim().is_empty() || self.mqtt.client_id.len() > 128 {
            return Err(bad(
                "mqtt.client_id",
                "must be 1..128 characters (a stable id keeps the broker session)".into(),
            ));
        }
        if !self.mqtt.ca_file.is_empty() && !Path::new(&self.mqtt.ca_file).exists() {
            return Err(bad(
                "mqtt.ca_file",
                format!("file {} does not exist", self.mqtt.ca_file),
            ));
        }
        if !self.mqtt.ca_file.is_empty() && !self.mqtt.tls {
            return Err(bad("mqtt.ca_file", "is set but mqtt.tls is false".into()));
        }
        self.validate_opendata()?;
        if self.devices.silent_after_minutes == 0 {
            return Err(bad(
                "devices.silent_after_minutes",
                "must be at least 1".into(),
            ));
        }
        for (kind, minutes) in &self.devices.silent_after_minutes_by_kind {
            let key = format!("devices.silent_after_minutes_by_kind.{kind}");
            if kind.parse::<DeviceKind>().is_err() {
                return Err(bad(
                    &key,
                    format!(
                        "unknown device kind; expected one of {}",
                        DeviceKind::names()
                    ),
                ));
            }
            if *minutes == 0 {
                return Err(bad(&key, "must be at least 1".into()));
            }
        }
        if self.mqtt.keep_alive_secs < 5 {
            return Err(bad("mqtt.keep_alive_secs", "must be at least 5".into()));
        }
        if self.mqtt.subscriptions.is_empty() {
            return Err(bad(
                "mqtt.subscriptions",
                "at least one subscription is needed".into(),
            ));
        }
        // The topic syntax of `topic_prefix` and the filters is checked by the ingest, which owns
        // the MQTT client (`stadtpuls_ingest::mqtt::check_topics`, run by the binary right after
        // loading), so that config does not pull the MQTT client into every crate above it.
        if self.ingest.max_payload_bytes == 0
            || self.ingest.max_payload_bytes > self.mqtt.max_packet_bytes
        {
            return Err(bad(
                "ingest.max_payload_bytes",
                format!(
                    "must be 1..=mqtt.max_packet_bytes ({})",
                    self.mqtt.max_packet_bytes
                ),
            ));
        }
        if self.ingest.batch_max_messages == 0 {
            return Err(bad(
                "ingest.batch_max_messages",
                "must be at least 1".into(),
            ));
        }
        if self.ingest.writers == 0 || self.ingest.writers as u32 >= self.database.max_connections {
            return Err(bad(
                "ingest.writers",
                "must be at least 1 and below database.max_connections".into(),
            ));
        }
        if self.ingest.registry_refresh_ms < 100 {
            return Err(bad(
                "ingest.registry_refresh_ms",
                "must be at least 100".into(),
            ));
        }
        if !self.ingest.ops_listen.is_empty() {
            self.ops_listen_addr()?;
        }
        if self.ingest.channel_capacity < self.ingest.batch_max_messages {
            return Err(bad(
                "ingest.channel_capacity",
                "must be at least ingest.batch_max_messages".into(),
            ));
        }
        self.listen_addr()?;
        if !self.http.public_base_url.is_empty() && !self.http.public_base_url.starts_with("http") {
            return Err(bad(
                "http.public_base_url",
                "must start with http:// or https://".into(),
            ));
        }
        if self.http.max_page_size == 0 {
            return Err(bad("http.max_page_size", "must be at least 1".into()));
        }
        if self.http.max_body_bytes == 0 {
            return Err(bad("http.max_body_bytes", "must be at least 1".into()));
        }
        if !(1..=36_600).contains(&self.http.max_window_days) {
            return Err(bad(
                "http.max_window_days",
                "must be between 1 and 36600 (100 years)".into(),
            ));
        }
        if self.retention.interval_minutes == 0 {
            return Err(bad(
                "retention.interval_minutes",
                "must be at least 1".into(),
            ));
        }
        for (key, m) in &self.mapping.keys {
            if m.quantity_name().parse::<Quantity>().is_err() {
                return Err(bad(
                    &format!("mapping.keys.{key}"),
                    format!("unknown quantity '{}'", m.quantity_name()),
                ));
            }
            if !m.factor().is_finite() || m.factor() == 0.0 {
                return Err(bad(
                    &format!("mapping.keys.{key}.factor"),
                    "must be a finite, non-zero number".into(),
                ));
            }
        }
        let tz = &self.city.timezone;
        if tz.is_empty()
            || tz.len() > 64
            || !tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
        {
            return Err(bad(
                "city.timezone",
                format!("'{tz}' is not an IANA time zone name like Europe/Berlin"),
            ));
        }
        if !(self.simulator.rate > 0.0 && self.simulator.rate <= 100_000.0) {
            return Err(bad(
                "simulator.rate",
                "must be in (0, 100000] uplinks per second".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(bad(
                "log.format",
                format!("'{}' is not one of text, json", self.log.format),
            ));
        }
        Ok(())
    }

    /// The parsed `http.listen` address.
    /// `ingest.ops_listen` as an address (`None` when empty).
    pub fn ops_listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.ingest.ops_listen.is_empty() {
            return Ok(None);
        }
        self.ingest
            .ops_listen
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::Invalid {
                key: "ingest.ops_listen".into(),
                problem: format!(
                    "'{}' is not an address like 127.0.0.1:9091",
                    self.ingest.ops_listen
                ),
            })
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.listen.parse().map_err(|_| ConfigError::Invalid {
            key: "http.listen".into(),
            problem: format!(
                "'{}' is not an address like 127.0.0.1:8080",
                self.http.listen
            ),
        })
    }
}

fn describe_figment_error(e: figment::Error) -> ConfigError {
    let mut out = Vec::new();
    for err in e {
        let key = if err.path.is_empty() {
            String::new()
        } else {
            format!("{}: ", err.path.join("."))
        };
        let source = err.metadata.as_ref().map(|m| {
            let name = m.name.to_string();
            match &m.source {
                Some(figment::Source::File(p)) => format!(" (in {})", p.display()),
                _ if name.contains("environment") => {
                    format!(
                        " (from environment variable {ENV_PREFIX}{})",
                        err.path
                            .iter()
                            .map(|p| p.to_uppercase())
                            .collect::<Vec<_>>()
                            .join("__")
                    )
                }
                _ => String::new(),
            }
        });
        out.push(format!("{key}{}{}", err.kind, source.unwrap_or_default()));
    }
    ConfigError::Load(out.join("; "))
}

#[cfg(test)]
mod tests;
