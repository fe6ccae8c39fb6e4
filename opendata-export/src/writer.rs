//! Open-data files: rows → Arrow record batches → the shared encoder ([`crate::encode`]:
//! GeoParquet 1.1 with the bbox covering column, zstd, explicit row groups; or RFC 4180 CSV).
//! The rows arrive in file order from the store (sensors by position, see the crate
//! documentation); no Parquet `sorting_columns` are declared, because the first sort key, the
//! Hilbert index of the position, is no column of the files. Every file is written under a
//! temporary name while its SHA-256 and size are computed on the fly, and renamed into place
//! only when complete.
//!
//! Blocking (file IO and compression): run it on a blocking thread.

use crate::encode::{utc_micros, EncodeError, Encoder, Format, Points, Table};
pub use crate::encode::{wkb_point, BBox, ParquetOptions};
use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
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
    /// Encoding the file failed.
    #[error("{0}")]
    Encode(#[from] EncodeError),
    /// Building a record batch failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
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
    /// The Arrow schema of the data files' own columns (GeoParquet adds `geometry` and `bbox`,
    /// see [`crate::encode`]).
    pub fn schema(self) -> SchemaRef {
        let time = Field::new("observed_at", utc_micros(), false);
        let s = |name: &str| Field::new(name, DataType::Utf8, false);
        let f = |name: &str| Field::new(name, DataType::Float64, false);
        let fields = match self {
            Shape::Raw => vec![
                time,
                s("sensor_id"),
                s("quantity"),
                s("unit"),
                f("value"),
                f("lon"),
                f("lat"),
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
            ],
        };
        Arc::new(Schema::new(fields))
    }

    /// The encoder's table of this shape. No `sorting_columns`: the rows are ordered by the
    /// Hilbert index of their sensor's (group's) position first, which no column holds, so no
    /// column order would be true of the whole file.
    pub fn table(self) -> Table {
        Table {
            schema: self.schema(),
            created_by: CREATED_BY,
        }
    }
}

/// The Parquet `created_by` of the open-data files.
const CREATED_BY: &str = "stadtpuls opendata-export";

/// One output row, in the column order of [`Shape::schema`].
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
    for (i, q) in qs.iter().enumerate() {
        id.append_value(cols.id(i));
        quantity.append_value(q.name());
        unit.append_value(q.unit());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time),
        Arc::new(id.finish()),
        Arc::new(quantity.finish()),
        Arc::new(unit.finish()),
        Arc::new(Float64Array::from(cols.value.clone())),
        Arc::new(Float64Array::from(cols.lon.clone())),
        Arc::new(Float64Array::from(cols.lat.clone())),
    ];
    Ok(RecordBatch::try_new(Shape::Raw.schema(), columns)?)
}

/// Turns aggregated cells into output rows in the file's sort order. The query delivers cells
/// ordered by group (by position), quantity and bucket; within each (group, quantity) run this
/// emits every bucket of `avg`, then of `max`, then of `min` (alphabetical, as the crate
/// documentation says), keeping the aggregates the dataset asks for. A run may continue in the
/// next chunk, so the last run is kept in `pending` until the caller flushes it.
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
    Ok(RecordBatch::try_new(shape.schema(), columns)?)
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

/// A data file being written in one format, under its temporary name.
#[derive(Debug)]
pub struct Sink {
    encoder: Encoder<HashingWriter<BufWriter<File>>>,
    tmp: PathBuf,
    path: PathBuf,
}

/// What the encoder writes for an export format.
fn encoding(format: ExportFormat, opts: ParquetOptions) -> Format {
    match format {
        ExportFormat::Parquet => Format::Parquet(opts),
        ExportFormat::Csv => Format::Csv { excel: false },
        ExportFormat::CsvExcel => Format::Csv { excel: true },
    }
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
        match Encoder::new(out, encoding(format, opts), shape.table()) {
            Ok(encoder) => Ok(Sink {
                encoder,
                tmp,
                path: path.to_path_buf(),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e.into())
            }
        }
    }

    /// Appends a batch of the file's columns (rows already in the file's sort order) and the
    /// rows' positions.
    pub fn write_batch(&mut self, batch: &RecordBatch, points: Points<'_>) -> Result<()> {
        Ok(self.encoder.write(batch, points)?)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.encoder.rows()
    }

    /// Completes the file and renames it into place.
    pub fn finish(self) -> Result<Written> {
        let rows = self.encoder.rows();
        let out = self.encoder.finish()?;
        commit(out, &self.tmp, &self.path, rows)
    }

    /// Drops the temporary file (after an error, or when nothing was written).
    pub fn discard(self) {
        let Sink { encoder, tmp, .. } = self;
        drop(encoder);
        let _ = std::fs::remove_file(tmp);
    }
}

/// Appends aggregated (or raw) output rows to every sink: one record batch for all formats.
pub fn write_rows(sinks: &mut [Sink], shape: Shape, rows: &[OutRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let batch = to_batch(shape, rows)?;
    let lon: Vec<f64> = rows.iter().map(|r| r.lon).collect();
    let lat: Vec<f64> = rows.iter().map(|r| r.lat).collect();
    let points = Points {
        lon: &lon,
        lat: &lat,
    };
    for s in sinks {
        s.write_batch(&batch, points)?;
    }
    Ok(())
}

/// Appends a raw chunk to every sink: one record batch for all formats.
pub fn write_raw(sinks: &mut [Sink], cols: &RawColumns) -> Result<()> {
    if cols.is_empty() {
        return Ok(());
    }
    let batch = raw_batch(cols)?;
    let points = Points {
        lon: &cols.lon,
        lat: &cols.lat,
    };
    for s in sinks {
        s.write_batch(&batch, points)?;
    }
    Ok(())
}

/// Writes the sensors (or groups) table of a dataset as GeoParquet and CSV:
/// `id` (`sensor_id` or `group_id`), `kind`, `name`, `lon`, `lat` (+ `geometry` and `bbox` in
/// GeoParquet).
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
    let table = Table {
        schema: Arc::new(Schema::new(vec![
            Field::new(id_column, DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("lon", DataType::Float64, false),
            Field::new("lat", DataType::Float64, false),
        ])),
        created_by: CREATED_BY,
    };
    let mut ids = StringBuilder::new();
    let mut kinds = StringBuilder::new();
    let mut names = StringBuilder::new();
    let mut lons = Vec::with_capacity(located.len());
    let mut lats = Vec::with_capacity(located.len());
    for (s, lon, lat) in &located {
        ids.append_value(&s.id);
        kinds.append_value(&s.kind);
        names.append_option(s.name.as_deref());
        lons.push(*lon);
        lats.push(*lat);
    }
    let batch = RecordBatch::try_new(
        table.schema.clone(),
        vec![
            Arc::new(ids.finish()),
            Arc::new(kinds.finish()),
            Arc::new(names.finish()),
            Arc::new(Float64Array::from(lons.clone())),
            Arc::new(Float64Array::from(lats.clone())),
        ],
    )?;
    let points = Points {
        lon: &lons,
        lat: &lats,
    };
    [
        ("sensors.parquet", Format::Parquet(opts)),
        ("sensors.csv", Format::Csv { excel: false }),
    ]
    .into_iter()
    .map(|(name, format)| {
        let path = dir.join(name);
        let tmp = temporary(&path);
        let written = create(&tmp).and_then(|out| {
            let mut encoder = Encoder::new(out, format, table.clone())?;
            encoder.write(&batch, points)?;
            let rows = encoder.rows();
            commit(encoder.finish()?, &tmp, &path, rows)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    })
    .collect()
}
