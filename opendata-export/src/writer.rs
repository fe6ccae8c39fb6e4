//! File writers: rows → Arrow record batches → GeoParquet 1.1 (zstd, dictionary-encoded strings,
//! explicit row groups, `sorting_columns`, `geo` metadata with bbox), and the same rows as
//! RFC 4180 CSV. Every file is written under a temporary name while its SHA-256 and size are
//! computed on the fly, and renamed into place only when complete.
//!
//! Blocking (file IO and compression): run it on a blocking thread.

use arrow_array::builder::{BinaryBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, SecondsFormat, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};
use stadtpuls_config::ExportFormat;
use stadtpuls_gateways::Quantity;
use stadtpuls_store::copy_out::RawColumns;
use stadtpuls_store::opendata::{AggRow, SensorRow};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file system refused (create, write, rename).
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The Parquet or Arrow layer failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building a record batch failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Writing CSV failed.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// A reading names a quantity id this build does not know.
    #[error("unknown quantity id {0}")]
    UnknownQuantity(i16),
}

type Result<T> = std::result::Result<T, WriteError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Counts and hashes what passes through (the writer of every export file).
pub struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W> std::fmt::Debug for HashingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingWriter")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// What a finished file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Raw or aggregated columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Raw,
    Aggregated,
}

impl Shape {
    /// The Arrow schema of the data files.
    pub fn schema(self) -> SchemaRef {
        let time = Field::new(
            "observed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        );
        let s = |name: &str| Field::new(name, DataType::Utf8, false);
        let f = |name: &str| Field::new(name, DataType::Float64, false);
        let geometry = Field::new("geometry", DataType::Binary, false);
        let fields = match self {
            Shape::Raw => vec![
                time,
                s("sensor_id"),
                s("quantity"),
                s("unit"),
                f("value"),
                f("lon"),
                f("lat"),
                geometry,
            ],
            Shape::Aggregated => vec![
                time,
                s("group_id"),
                s("quantity"),
                s("unit"),
                s("agg"),
                f("value"),
                Field::new("count", DataType::Int64, false),
                f("lon"),
                f("lat"),
                geometry,
            ],
        };
        Arc::new(Schema::new(fields))
    }

    /// The sort order of the rows, as column indexes (recorded as `sorting_columns`).
    pub fn sort_columns(self) -> &'static [usize] {
        match self {
            // sensor_id, quantity, observed_at
            Shape::Raw => &[1, 2, 0],
            // group_id, quantity, agg, observed_at
            Shape::Aggregated => &[1, 2, 4, 0],
        }
    }
}

/// One output row, in the column order of [`Shape::schema`] (geometry is derived).
#[derive(Clone, Debug, PartialEq)]
pub struct OutRow {
    pub time: DateTime<Utc>,
    /// `sensor_id` or `group_id`.
    pub id: String,
    pub quantity: Quantity,
    /// Aggregated rows only.
    pub agg: Option<(&'static str, i64)>,
    pub value: f64,
    pub lon: f64,
    pub lat: f64,
}

/// A WKB point (little endian): lon is x, lat is y.
pub fn wkb_point(lon: f64, lat: f64) -> [u8; 21] {
    let mut b = [0u8; 21];
    b[0] = 1;
    b[1..5].copy_from_slice(&1u32.to_le_bytes());
    b[5..13].copy_from_slice(&lon.to_le_bytes());
    b[13..21].copy_from_slice(&lat.to_le_bytes());
    b
}

/// The quantity of every row of a raw chunk (ids the build does not know are an error).
fn quantities(cols: &RawColumns) -> Result<Vec<Quantity>> {
    cols.quantity
        .iter()
        .map(|&q| Quantity::from_id(q).ok_or(WriteError::UnknownQuantity(q)))
        .collect()
}

/// A raw chunk as a record batch of [`Shape::Raw`], column by column.
pub fn raw_batch(cols: &RawColumns) -> Result<RecordBatch> {
    let n = cols.len();
    let qs = quantities(cols)?;
    let time = TimestampMicrosecondArray::from(cols.time_us.clone()).with_timezone("UTC");
    let mut id = StringBuilder::with_capacity(n, cols.ids.len());
    let mut quantity = StringBuilder::with_capacity(n, n * 12);
    let mut unit = StringBuilder::with_capacity(n, n * 4);
    let mut geometry = BinaryBuilder::with_capacity(n, n * 21);
    for (i, q) in qs.iter().enumerate() {
        id.append_value(cols.id(i));
        quantity.append_value(q.name());
        unit.append_value(q.unit());
        geometry.append_value(wkb_point(cols.lon[i], cols.lat[i]));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time),
        Arc::new(id.finish()),
        Arc::new(quantity.finish()),
        Arc::new(unit.finish()),
        Arc::new(Float64Array::from(cols.value.clone())),
        Arc::new(Float64Array::from(cols.lon.clone())),
        Arc::new(Float64Array::from(cols.lat.clone())),
        Arc::new(geometry.finish()),
    ];
    Ok(RecordBatch::try_new(Shape::Raw.schema(), columns)?)
}

/// Turns aggregated cells into output rows in the file's sort order. The query delivers cells
/// ordered by group, quantity and bucket; within each (group, quantity) run this emits every
/// bucket of `avg`, then of `max`, then of `min` (alphabetical, as `sorting_columns` says),
/// keeping the aggregates the dataset asks for. A run may continue in the next chunk, so the
/// last run is kept in `pending` until the caller flushes it.
#[derive(Debug, Default)]
pub struct AggRegrouper {
    pending: Vec<AggRow>,
}

impl AggRegrouper {
    /// Adds a chunk; returns the rows of every run completed by it.
    pub fn push(&mut self, chunk: Vec<AggRow>, aggs: &[String]) -> Result<Vec<OutRow>> {
        let mut out = Vec::new();
        for row in chunk {
            let same_run = self
                .pending
                .last()
                .is_some_and(|p| p.group_id == row.group_id && p.quantity == row.quantity);
            if !same_run && !self.pending.is_empty() {
                let run = std::mem::take(&mut self.pending);
                emit_run(&run, aggs, &mut out)?;
            }
            self.pending.push(row);
        }
        Ok(out)
    }

    /// The rows of the last run.
    pub fn flush(&mut self, aggs: &[String]) -> Result<Vec<OutRow>> {
        let mut out = Vec::new();
        let run = std::mem::take(&mut self.pending);
        emit_run(&run, aggs, &mut out)?;
        Ok(out)
    }
}

fn emit_run(run: &[AggRow], aggs: &[String], out: &mut Vec<OutRow>) -> Result<()> {
    for name in ["avg", "max", "min"] {
        if !aggs.iter().any(|a| a == name) {
            continue;
        }
        for r in run {
            let (Some(lon), Some(lat)) = (r.lon, r.lat) else {
                continue;
            };
            let value = match name {
                "avg" => r.avg,
                "max" => r.max,
                _ => r.min,
            };
            out.push(OutRow {
                time: r.bucket,
                id: r.group_id.clone(),
                quantity: Quantity::from_id(r.quantity)
                    .ok_or(WriteError::UnknownQuantity(r.quantity))?,
                agg: Some((name, r.count)),
                value,
                lon,
                lat,
            });
        }
    }
    Ok(())
}

/// Output rows as a record batch of `shape`.
pub fn to_batch(shape: Shape, rows: &[OutRow]) -> Result<RecordBatch> {
    let n = rows.len();
    let time: TimestampMicrosecondArray = rows
        .iter()
        .map(|r| Some(r.time.timestamp_micros()))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let mut id = StringBuilder::with_capacity(n, n * 16);
    let mut quantity = StringBuilder::with_capacity(n, n * 8);
    let mut unit = StringBuilder::with_capacity(n, n * 2);
    let mut agg = StringBuilder::with_capacity(n, n * 3);
    let mut value = Float64Builder::with_capacity(n);
    let mut count = Int64Builder::with_capacity(n);
    let mut lon = Float64Builder::with_capacity(n);
    let mut lat = Float64Builder::with_capacity(n);
    let mut geometry = BinaryBuilder::with_capacity(n, n * 21);
    for r in rows {
        id.append_value(&r.id);
        quantity.append_value(r.quantity.name());
        unit.append_value(r.quantity.unit());
        if let Some((a, c)) = r.agg {
            agg.append_value(a);
            count.append_value(c);
        }
        value.append_value(r.value);
        lon.append_value(r.lon);
        lat.append_value(r.lat);
        geometry.append_value(wkb_point(r.lon, r.lat));
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(time),
        Arc::new(id.finish()),
        Arc::new(quantity.finish()),
        Arc::new(unit.finish()),
    ];
    if shape == Shape::Aggregated {
        columns.push(Arc::new(agg.finish()));
    }
    columns.push(Arc::new(value.finish()));
    if shape == Shape::Aggregated {
        columns.push(Arc::new(count.finish()));
    }
    columns.push(Arc::new(lon.finish()));
    columns.push(Arc::new(lat.finish()));
    columns.push(Arc::new(geometry.finish()));
    Ok(RecordBatch::try_new(shape.schema(), columns)?)
}

/// Running `[min lon, min lat, max lon, max lat]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox(pub Option<[f64; 4]>);

impl BBox {
    pub fn add(&mut self, lon: f64, lat: f64) {
        self.0 = Some(match self.0 {
            None => [lon, lat, lon, lat],
            Some([a, b, c, d]) => [a.min(lon), b.min(lat), c.max(lon), d.max(lat)],
        });
    }

    /// The GeoParquet 1.1 `geo` metadata value for a WKB point column named `geometry`.
    pub fn geo_metadata(&self) -> String {
        let mut column = serde_json::json!({
            "encoding": "WKB",
            "geometry_types": ["Point"],
        });
        if let Some(b) = self.0 {
            column["bbox"] = serde_json::json!(b);
        }
        serde_json::json!({
            "version": "1.1.0",
            "primary_column": "geometry",
            "columns": { "geometry": column },
        })
        .to_string()
    }
}

/// Parquet settings of the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    pub zstd_level: i32,
    pub row_group_rows: usize,
}

/// The temporary path a file is written under.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

fn create(path: &Path) -> Result<HashingWriter<BufWriter<File>>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = File::create(path).map_err(io(path))?;
    Ok(HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
    })
}

/// Flushes, syncs and renames the temporary file into place.
fn commit(
    mut w: HashingWriter<BufWriter<File>>,
    tmp: &Path,
    path: &Path,
    rows: u64,
) -> Result<Written> {
    w.flush().map_err(io(tmp))?;
    let file = w.inner.into_inner().map_err(|e| WriteError::Io {
        path: tmp.display().to_string(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(tmp))?;
    std::fs::rename(tmp, path).map_err(io(path))?;
    Ok(Written {
        path: path.to_path_buf(),
        rows,
        bytes: w.bytes,
        sha256: hex::encode(w.hash.finalize()),
    })
}

/// A data file being written in one format.
#[derive(Debug)]
pub enum Sink {
    Parquet {
        writer: Box<ArrowWriter<HashingWriter<BufWriter<File>>>>,
        shape: Shape,
        bbox: BBox,
        rows: u64,
        tmp: PathBuf,
        path: PathBuf,
    },
    Csv {
        writer: Box<csv::Writer<HashingWriter<BufWriter<File>>>>,
        rows: u64,
        tmp: PathBuf,
        path: PathBuf,
    },
}

/// CSV header of a shape: the Parquet columns without `geometry`.
fn csv_header(shape: Shape) -> Vec<String> {
    shape
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "geometry")
        .collect()
}

/// One CSV data row: the columns of [`csv_header`] (`agg` and `count` for aggregated rows).
fn csv_record(
    time: String,
    id: &str,
    q: Quantity,
    agg: Option<(&str, i64)>,
    value: f64,
    lon: f64,
    lat: f64,
) -> Vec<String> {
    let mut record = vec![time, id.to_string(), q.name().into(), q.unit().into()];
    if let Some((a, _)) = agg {
        record.push(a.to_string());
    }
    record.push(value.to_string());
    if let Some((_, count)) = agg {
        record.push(count.to_string());
    }
    record.push(lon.to_string());
    record.push(lat.to_string());
    record
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl Sink {
    /// Opens `path` (under a temporary name) for `format`.
    pub fn open(
        path: &Path,
        format: ExportFormat,
        shape: Shape,
        opts: ParquetOptions,
    ) -> Result<Sink> {
        let tmp = temporary(path);
        let out = create(&tmp)?;
        match format {
            ExportFormat::Parquet => {
                let sorting = shape
                    .sort_columns()
                    .iter()
                    .map(|&i| SortingColumn {
                        column_idx: i as i32,
                        descending: false,
                        nulls_first: false,
                    })
                    .collect();
                let props = WriterProperties::builder()
                    .set_writer_version(WriterVersion::PARQUET_2_0)
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
                    .set_dictionary_enabled(true)
                    // Times: per sensor a steady cadence, so delta encoding packs most of a
                    // timestamp into a few bits (a dictionary of distinct times would not).
                    .set_column_dictionary_enabled(ColumnPath::from("observed_at"), false)
                    .set_column_encoding(
                        ColumnPath::from("observed_at"),
                        Encoding::DELTA_BINARY_PACKED,
                    )
                    .set_max_row_group_row_count(Some(opts.row_group_rows))
                    .set_sorting_columns(Some(sorting))
                    .set_created_by("stadtpuls opendata-export".into())
                    .build();
                let writer = ArrowWriter::try_new(out, shape.schema(), Some(props))?;
                Ok(Sink::Parquet {
                    writer: Box::new(writer),
                    shape,
                    bbox: BBox(None),
                    rows: 0,
                    tmp,
                    path: path.to_path_buf(),
                })
            }
            ExportFormat::Csv | ExportFormat::CsvExcel => {
                let excel = format == ExportFormat::CsvExcel;
                let mut out = out;
                if excel {
                    out.write_all("\u{feff}".as_bytes()).map_err(io(&tmp))?;
                }
                let mut writer = csv::WriterBuilder::new()
                    .delimiter(if excel { b';' } else { b',' })
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                writer.write_record(csv_header(shape))?;
                Ok(Sink::Csv {
                    writer: Box::new(writer),
                    rows: 0,
                    tmp,
                    path: path.to_path_buf(),
                })
            }
        }
    }

    /// Appends rows (already in the file's sort order).
    pub fn write(&mut self, rows: &[OutRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Parquet {
                writer,
                shape,
                bbox,
                rows: n,
                ..
            } => {
                for r in rows {
                    bbox.add(r.lon, r.lat);
                }
                writer.write(&to_batch(*shape, rows)?)?;
                *n += rows.len() as u64;
            }
            Sink::Csv {
                writer, rows: n, ..
            } => {
                for r in rows {
                    writer.write_record(csv_record(
                        utc(r.time),
                        &r.id,
                        r.quantity,
                        r.agg,
                        r.value,
                        r.lon,
                        r.lat,
                    ))?;
                }
                *n += rows.len() as u64;
            }
        }
        Ok(())
    }

    /// Appends a raw chunk (already in the file's sort order).
    pub fn write_raw(&mut self, cols: &RawColumns) -> Result<()> {
        if cols.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Parquet {
                writer, bbox, rows, ..
            } => {
                for (lon, lat) in cols.lon.iter().zip(&cols.lat) {
                    bbox.add(*lon, *lat);
                }
                writer.write(&raw_batch(cols)?)?;
                *rows += cols.len() as u64;
            }
            Sink::Csv {
                writer, rows: n, ..
            } => {
                let qs = quantities(cols)?;
                for (i, q) in qs.iter().enumerate() {
                    let time = DateTime::<Utc>::from_timestamp_micros(cols.time_us[i])
                        .map(utc)
                        .unwrap_or_default();
                    writer.write_record(csv_record(
                        time,
                        cols.id(i),
                        *q,
                        None,
                        cols.value[i],
                        cols.lon[i],
                        cols.lat[i],
                    ))?;
                }
                *n += cols.len() as u64;
            }
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        match self {
            Sink::Parquet { rows, .. } | Sink::Csv { rows, .. } => *rows,
        }
    }

    /// Completes the file and renames it into place.
    pub fn finish(self) -> Result<Written> {
        match self {
            Sink::Parquet {
                mut writer,
                bbox,
                rows,
                tmp,
                path,
                ..
            } => {
                writer.append_key_value_metadata(KeyValue::new(
                    "geo".to_string(),
                    bbox.geo_metadata(),
                ));
                // Writes the footer and hands back the file.
                let out = writer.into_inner()?;
                commit(out, &tmp, &path, rows)
            }
            Sink::Csv {
                writer,
                rows,
                tmp,
                path,
            } => {
                let out = writer.into_inner().map_err(|e| WriteError::Io {
                    path: tmp.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                commit(out, &tmp, &path, rows)
            }
        }
    }

    /// Drops the temporary file (after an error, or when nothing was written).
    pub fn discard(self) {
        let tmp = match &self {
            Sink::Parquet { tmp, .. } | Sink::Csv { tmp, .. } => tmp.clone(),
        };
        drop(self);
        let _ = std::fs::remove_file(tmp);
    }
}

/// Writes the sensors (or groups) table of a dataset as GeoParquet and CSV:
/// `id` (`sensor_id` or `group_id`), `kind`, `name`, `lon`, `lat` (+ `geometry`).
pub fn write_sensors(
    dir: &Path,
    id_column: &str,
    sensors: &[SensorRow],
    opts: ParquetOptions,
) -> Result<Vec<Written>> {
    let located: Vec<(&SensorRow, f64, f64)> = sensors
        .iter()
        .filter_map(|s| Some((s, s.lon?, s.lat?)))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new(id_column, DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("lon", DataType::Float64, false),
        Field::new("lat", DataType::Float64, false),
        Field::new("geometry", DataType::Binary, false),
    ]));
    let mut bbox = BBox(None);
    let mut ids = StringBuilder::new();
    let mut kinds = StringBuilder::new();
    let mut names = StringBuilder::new();
    let mut lons = Float64Builder::new();
    let mut lats = Float64Builder::new();
    let mut geometry = BinaryBuilder::new();
    for (s, lon, lat) in &located {
        bbox.add(*lon, *lat);
        ids.append_value(&s.id);
        kinds.append_value(&s.kind);
        names.append_option(s.name.as_deref());
        lons.append_value(*lon);
        lats.append_value(*lat);
        geometry.append_value(wkb_point(*lon, *lat));
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(ids.finish()),
            Arc::new(kinds.finish()),
            Arc::new(names.finish()),
            Arc::new(lons.finish()),
            Arc::new(lats.finish()),
            Arc::new(geometry.finish()),
        ],
    )?;
    let parquet_path = dir.join("sensors.parquet");
    let tmp = temporary(&parquet_path);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
        .build();
    let mut writer = ArrowWriter::try_new(create(&tmp)?, schema, Some(props))?;
    writer.write(&batch)?;
    writer.append_key_value_metadata(KeyValue::new("geo".to_string(), bbox.geo_metadata()));
    let parquet = commit(
        writer.into_inner()?,
        &tmp,
        &parquet_path,
        located.len() as u64,
    )?;

    let csv_path = dir.join("sensors.csv");
    let tmp = temporary(&csv_path);
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(create(&tmp)?);
    w.write_record([id_column, "kind", "name", "lon", "lat"])?;
    for (s, lon, lat) in &located {
        w.write_record([
            s.id.as_str(),
            s.kind.as_str(),
            s.name.as_deref().unwrap_or(""),
            &lon.to_string(),
            &lat.to_string(),
        ])?;
    }
    let out = w.into_inner().map_err(|e| WriteError::Io {
        path: tmp.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let csv = commit(out, &tmp, &csv_path, located.len() as u64)?;
    Ok(vec![parquet, csv])
}
