//! Open-data exports: datasets configured in `[[opendata.datasets]]` are written on a schedule
//! as GeoParquet 1.1 and CSV files in a Hive layout, described by a manifest per dataset and a
//! DCAT-AP.de catalogue.
//!
//! # Files (all paths relative to `opendata.output_dir`)
//!
//! ```text
//! dataset=<name>/date=YYYY-MM-DD/part-0.parquet     day partitions (city time zone), or
//! dataset=<name>/month=YYYY-MM/part-0.parquet       month partitions
//! dataset=<name>/date=YYYY-MM-DD/part-0.csv         the same rows as CSV (RFC 4180)
//! dataset=<name>/date=YYYY-MM-DD/part-0.excel.csv   optional: ';' separator and a UTF-8 BOM
//! meta/<name>/manifest.json                         every file: path, rows, bytes, SHA-256
//! meta/<name>/sensors.parquet, sensors.csv          one row per sensor (or group) with geometry
//! ```
//!
//! Metadata lives outside `dataset=<name>/`, so `read_parquet('dataset=<name>/*/*.parquet')`
//! reads data only. Every file is written to a temporary name and renamed into place. A
//! partition without rows produces no file (the run is recorded as empty).
//!
//! # Row order
//!
//! Rows are spatially ordered at sensor granularity, so that a Parquet row group covers a
//! compact area and its `bbox` statistics let readers skip it (GeoParquet's distribution best
//! practice): sensors (raw) or groups (aggregated) in the order of the Hilbert index of their
//! position, ties by id byte-wise; within a sensor by `quantity, observed_at` (aggregated:
//! `quantity, agg, observed_at`). Each sensor's (group's) series is thus one contiguous run in
//! time order. The index is `hilbert_index(lon, lat)` of the store (migration 0006): the
//! distance along a Hilbert curve of order 24 over the whole WGS84 range (cells of about
//! 1.5 m × 1.2 m at 50° N), so a sensor keeps its place from file to file. No Parquet
//! `sorting_columns` are declared: the first key is not a column, and no column order holds for
//! the whole file. The sensors tables have the same order.
//!
//! # Columns
//!
//! Raw datasets:
//!
//! | column | Parquet | CSV |
//! |---|---|---|
//! | `observed_at` | INT64 TIMESTAMP(MICROS, isAdjustedToUTC) | `2026-11-28T10:15:00Z` |
//! | `sensor_id` | string, dictionary | 32 hex digits, random per device (never derived from the DevEUI) |
//! | `quantity` | string, dictionary | e.g. `occupied` |
//! | `unit` | string, dictionary | e.g. `1`, `°C` |
//! | `value` | DOUBLE | `.` decimal |
//! | `lon`, `lat` | DOUBLE | WGS84 degrees |
//! | `geometry` | BINARY, WKB point (GeoParquet 1.1 `geo` metadata with bbox) | not in CSV |
//! | `bbox` | struct {xmin, ymin, xmax, ymax} of DOUBLE: the GeoParquet 1.1 bbox covering (declared under `covering` in `geo`), with min/max statistics per row group so readers skip row groups by area | not in CSV |
//!
//! Aggregated datasets (`15m`, `1h`, `1d`) replace `sensor_id` by `group_id` (a parking site's
//! uid, a building id, or the sensor id of a device in no place) and add `agg` (`avg`, `min`,
//! `max`; one row per aggregate) and `count` (readings in the cell, INT64); `observed_at` is
//! the bucket start and the geometry the group's.
//!
//! The encoder of these files ([`encode`]) also writes the API's on-demand downloads
//! (`/v1/exports/readings.*`), so their Parquet is GeoParquet with the same `geometry` and
//! `bbox` columns. The sensors tables carry `geometry` and `bbox` too.

pub mod dcat;
pub mod encode;
pub mod export;
pub mod model;
pub mod partition;
pub mod published;
pub mod scheduler;
pub mod writer;
