//! The commented TOML template printed by `stadtpuls config template`. Tests check that it
//! parses to exactly the compiled defaults and that it sets every key of the serialized
//! defaults and no other (`template_drift` in `tests.rs`), so the two cannot drift apart.

/// Every setting with its default and what it does.
pub fn template() -> &'static str {
    TEMPLATE
}

const TEMPLATE: &str = r#"# Stadtpuls configuration. Every setting is shown with its default.
# Order of precedence: compiled defaults < this file (--config FILE) < environment variables
# named STADTPULS__<SECTION>__<KEY>, e.g. STADTPULS__DATABASE__URL, STADTPULS__MQTT__HOST,
# STADTPULS__HTTP__LISTEN.

[database]
# PostgreSQL 15+ with the TimescaleDB extension (Apache edition is enough).
url = "postgres://postgres@127.0.0.1:5432/stadtpuls"
max_connections = 10
connect_timeout_secs = 5
# Every statement is cancelled after this long (0 = no limit).
statement_timeout_ms = 30000
# Apply pending migrations when run/ingest/api start (migrate does it explicitly).
migrate_on_start = true

[mqtt]
host = "127.0.0.1"
port = 1883
# Stable client id: with clean_session = false the broker keeps QoS 1 messages for us while we
# are away. Two processes must never share it.
client_id = "stadtpuls-ingest"
# The Things Stack: username "app-id@tenant" (TTN: "app-id@ttn"), password an API key,
# tls = true and port = 8883.
username = ""
password = ""
tls = false
# PEM file with CA certificates to trust; empty = the system bundle
# (/etc/ssl/certs/ca-certificates.crt).
ca_file = ""
keep_alive_secs = 30
clean_session = false
# Largest MQTT packet accepted from the broker (bytes). Keep it >= the broker's own limit.
max_packet_bytes = 2097152
# Prepended to every filter below and stripped before decoding (bridged brokers, test isolation).
topic_prefix = ""

# Which dialect each topic filter carries: auto, chirpstack_v4, chirpstack_v3 or tts_v3.
# ChirpStack v3 and v4 share topic shapes, so "auto" tells them apart by the JSON.
[[mqtt.subscriptions]]
filter = "application/+/device/+/event/+"
dialect = "auto"

[[mqtt.subscriptions]]
filter = "v3/+/devices/+/up"
dialect = "tts_v3"

[[mqtt.subscriptions]]
filter = "v3/+/devices/+/join"
dialect = "tts_v3"

[[mqtt.subscriptions]]
filter = "v3/+/devices/+/location/solved"
dialect = "tts_v3"

[ingest]
# Bounded channel between the MQTT session and the writer (back-pressure, bounded memory).
channel_capacity = 2048
# A batch is committed when it holds batch_max_messages, when no message arrived for
# batch_linger_ms, or when its oldest message waited batch_max_wait_ms. Messages are
# acknowledged to the broker only after their batch committed.
batch_max_messages = 500
batch_linger_ms = 5
batch_max_wait_ms = 200
# Batches committed concurrently: one is collected and decoded while others commit. Each takes
# a database connection (keep it below database.max_connections).
writers = 2
# Larger payloads are dead-lettered with reason payload_too_large.
max_payload_bytes = 262144
# Store readings of The Things Stack "simulated" uplinks (console test messages).
store_simulated = false
# How often registry changes (e.g. codecs set by `stadtpuls devices import`) reach the ingest.
registry_refresh_ms = 5000
# /health and /metrics of a standalone `stadtpuls ingest` (e.g. "127.0.0.1:9091"; "" = off).
# `stadtpuls run` serves them on http.listen.
ops_listen = ""

[http]
listen = "127.0.0.1:8080"
# Base URL used in "next" links; empty = derived from the request's Host header.
public_base_url = ""
# Largest request body in bytes (admin writes, polygon searches); longer ones get 413.
max_body_bytes = 1048576
# A request without an answer after this long gets 408 (a streamed export may run longer).
request_timeout_secs = 30
# Largest page (limit=) of any list.
max_page_size = 10000
# Longest from..to window of one readings, aggregates, history or export request (400 beyond);
# bucketed requests are also capped at 10000 buckets.
max_window_days = 367
# Parking site lists reuse one snapshot of the sites' realtime occupancy for this long
# (sensors report every few minutes; 0 = compute per request).
parking_cache_ms = 1000
# Origins allowed to call the API from browser apps ("*" = any); [] = no CORS headers.
cors_allowed_origins = ["*"]
# Requests per second (and burst) one client address may make; 0 = no limit.
# Over the limit: 429 with Retry-After.
rate_limit_per_second = 50
rate_limit_burst = 100
# Reverse proxies whose X-Forwarded-For header names the client, e.g. ["127.0.0.1"].
trusted_proxies = []

[retention]
# Days to keep each table; 0 keeps forever.
uplinks_days = 90
dead_letters_days = 30
readings_days = 0
interval_minutes = 60

[mapping.keys]
# Extra decoded-object keys mapped to canonical quantities, on top of the built-in table
# (see GET /v1/quantities for the quantity names). Examples:
# "MyTempSensor" = "temperature"
# "pressure_pa" = { quantity = "pressure", factor = 0.01 }

[city]
# IANA time zone; day buckets of aggregates start at local midnight here.
timezone = "Europe/Berlin"

[parking]
# A site without data from any of its devices for this long reports no realtime data.
stale_after_minutes = 30
# A bay's (counter's) latest state counts while it sent any uplink within this window:
# twice the heartbeat interval, since bays report on change plus a heartbeat.
bay_fresh_minutes = 20
counter_fresh_minutes = 10

[buildings]
# Rooms above this CO₂ level (ppm) are flagged.
co2_alert_ppm = 1000.0
# Room sensors silent for this long are flagged as stale.
stale_after_minutes = 60
# Battery below this percentage counts as low (GET /v1/devices?status=low_battery).
low_battery_percent = 20.0

[devices]
# GET /v1/devices?status=silent (admin key) lists devices not heard for this long (minutes)...
silent_after_minutes = 60

# ...or for this long for the kinds listed here (parking_bay, parking_counter, room_climate,
# desk_occupancy, people_counter, outdoor_climate, air_quality, other). Choose about twice a
# kind's heartbeat interval: bays and counters report on change plus a heartbeat.
[devices.silent_after_minutes_by_kind]
parking_bay = 20
parking_counter = 20

[opendata]
# Exports are written here and served under /v1/opendata/files/.
output_dir = "opendata"
# Public URL of the API for download URLs in manifests and the DCAT catalogue (empty: the
# http.public_base_url, else the request's host).
base_url = ""
# Parquet: zstd level and rows per row group.
zstd_level = 12
row_group_rows = 131072
# Memory (MiB) for putting a raw partition into file order, about 24 bytes per reading; a
# bigger partition is read in several passes.
sort_memory_mb = 512
# A missed schedule (downtime) is caught up for at most this many days back.
catch_up_days = 31
# Partitions of the last days are re-checked at every run and re-exported when late data
# changed them.
late_data_days = 3
# At most this many GET /v1/exports/... downloads at once.
max_concurrent_exports = 2

# DCAT-AP.de catalogue (GET /v1/opendata/catalog).
[opendata.catalog]
title_de = "Stadtpuls Sensordaten"
title_en = "Stadtpuls sensor data"
description_de = "Offene Messdaten der städtischen LoRaWAN-Sensoren."
description_en = "Open measurements of the city's LoRaWAN sensors."
publisher_name = "Stadt Dortmund"
publisher_url = "https://www.dortmund.de"
contact_name = "Open Data"
contact_email = "opendata@dortmund.de"
political_geocoding_uri = "http://dcat-ap.de/def/politicalGeocoding/regionalKey/059130000000"
political_geocoding_level_uri = "http://dcat-ap.de/def/politicalGeocoding/Level/municipality"

# Datasets are added as [[opendata.datasets]] tables, e.g.
#
# [[opendata.datasets]]
# name = "parking_occupancy"                  # [a-z0-9_], the folder dataset=<name>
# title_de = "Belegung von Parkplätzen"
# title_en = "Parking occupancy"
# description_de = "Belegung einzelner Stellplätze und freie Plätze der Parkhäuser."
# description_en = "Occupancy of single bays and free spaces of car parks."
# keywords = ["Parken", "LoRaWAN"]
# theme = "TRAN"                              # EU data theme
# quantities = ["occupied", "free_spaces"]
# kinds = ["parking_bay", "parking_counter"]  # empty = all kinds (counts as indoor data)
# buildings = []                              # buildings whose devices may appear (aggregated)
# sites = []                                  # only these parking sites' devices (uids); [] = all
# publisher_name = ""                         # the dataset's own publisher; "" = the catalogue's
# publisher_url = ""
# aggregation = "raw"                         # raw, 15m, 1h or 1d
# aggs = ["avg", "min", "max"]                # aggregated datasets
# partitioning = "day"                        # day or month (city time zone)
# schedule = "0 30 2 * * *"                   # cron, city time zone: daily at 02:30
# formats = ["parquet", "csv"]                # also "csv_excel" (';' and a BOM)
# licence = "dl-zero-de/2.0"                  # or "dl-by-de/2.0" (+ attribution = "...")
# min_group_size = 3                          # indoor cells need this many rooms/desks
#
# Privacy: a dataset that may contain indoor data (kinds room_climate, desk_occupancy,
# people_counter, no kinds at all, or buildings) must be aggregated (15m, 1h or 1d) with
# min_group_size >= 3; the configuration is rejected otherwise.

[simulator]
# Total uplinks per second across all simulated devices.
rate = 20.0
# Single-bay parking sensors; the other device groups scale with this number.
parking_bays = 60
seed = 42
registry_file = ".stadtpuls/sim-devices.geojson"
# Stop after this many uplinks (0 = until stopped).
max_messages = 0

[log]
# tracing filter directives, e.g. "info" or "stadtpuls_ingest=debug,info".
level = "info"
# text or json
format = "text"
"#;
