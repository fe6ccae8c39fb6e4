//! The one encoder of exported rows, shared by the scheduled open-data files (`writer.rs`) and
//! the API's on-demand downloads: Arrow record batches of a table's columns, plus the position
//! of every row, → GeoParquet 1.1, RFC 4180 CSV, NDJSON or a GeoJSON FeatureCollection, written
//! into any [`Write`].
//!
//! GeoParquet files get two columns after the table's own: `geometry` (a WKB point, lon/lat)
//! and the GeoParquet 1.1 bbox covering `bbox` {xmin, ymin, xmax, ymax} (DOUBLE; for a point
//! its coordinates twice), declared under `covering` in the `geo` metadata. Parquet writes
//! min/max statistics of every row group's bbox leaf columns, which is what lets a reader skip
//! row groups by area. CSV and JSON carry the table's columns only.
//!
//! Blocking (compression, output IO): run it on a blocking thread.

use arrow_array::builder::BinaryBuilder;
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, SecondsFormat, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde_json::{json, Map, Value};
use std::io::{self, Write};
use std::sync::Arc;

/// The geometry column of every GeoParquet file.
pub const GEOMETRY: &str = "geometry";
/// The bbox covering column of every GeoParquet file.
pub const BBOX: &str = "bbox";
/// The covering column's fields, in GeoParquet order.
const BBOX_FIELDS: [&str; 4] = ["xmin", "ymin", "xmax", "ymax"];

/// Why a file could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The output refused a write.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Writing CSV failed.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// The Parquet layer failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building a record batch failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Writing JSON failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A batch does not match the table it is written to (a bug of the caller).
    #[error("batch does not fit the table: {0}")]
    Mismatch(String),
}

impl EncodeError {
    /// The kind of the output's IO error, when that is what stopped the encoder (e.g. a client
    /// that went away), whichever layer reported it.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            EncodeError::Io(e) => Some(e.kind()),
            EncodeError::Csv(e) => match e.kind() {
                csv::ErrorKind::Io(e) => Some(e.kind()),
                _ => None,
            },
            EncodeError::Json(e) => e.io_error_kind(),
            EncodeError::Parquet(parquet::errors::ParquetError::External(e)) => {
                e.downcast_ref::<io::Error>().map(io::Error::kind)
            }
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, EncodeError>;

/// Parquet settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    pub zstd_level: i32,
    /// Rows per row group (the writer holds one row group in memory).
    pub row_group_rows: usize,
}

/// What a file is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// GeoParquet 1.1 with the bbox covering column.
    Parquet(ParquetOptions),
    /// RFC 4180 with a header row and CRLF; `excel`: `;` separator and a UTF-8 BOM.
    Csv { excel: bool },
    /// One JSON object per row, the table's columns as keys.
    Ndjson,
    /// One Point feature per row, the columns other than `lon`/`lat` as properties.
    GeoJson,
}

/// The columns of a file, without `geometry` and `bbox`. Column types: UTC microsecond
/// timestamps, UTF-8 strings, DOUBLE and INT64.
#[derive(Clone, Debug)]
pub struct Table {
    pub schema: SchemaRef,
    /// The Parquet `created_by`.
    pub created_by: &'static str,
}

impl Table {
    /// The GeoParquet file's schema: the table's columns, `geometry`, `bbox`.
    pub fn parquet_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(GEOMETRY, DataType::Binary, false));
        fields.push(Field::new(BBOX, DataType::Struct(bbox_fields()), false));
        Arc::new(Schema::new(fields))
    }

    /// The header of a CSV file: the table's column names.
    pub fn header(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}

fn bbox_fields() -> Fields {
    BBOX_FIELDS
        .iter()
        .map(|n| Field::new(*n, DataType::Float64, false))
        .collect()
}

/// The timestamp type of time columns.
pub fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
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

/// A time as the files write it: RFC 3339 UTC, `Z`, only as many fraction digits as needed.
pub fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Running `[min lon, min lat, max lon, max lat]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BBox(pub Option<[f64; 4]>);

impl BBox {
    pub fn add(&mut self, lon: f64, lat: f64) {
        self.0 = Some(match self.0 {
            None => [lon, lat, lon, lat],
            Some([a, b, c, d]) => [a.min(lon), b.min(lat), c.max(lon), d.max(lat)],
        });
    }

    /// The GeoParquet 1.1 `geo` metadata value: a WKB point column `geometry`, its bbox (when
    /// there are rows), and the `bbox` covering column.
    pub fn geo_metadata(&self) -> String {
        let mut column = json!({
            "encoding": "WKB",
            "geometry_types": ["Point"],
        });
        if let Some(b) = self.0 {
            column["bbox"] = json!(b);
        }
        let covering: Map<String, Value> = BBOX_FIELDS
            .iter()
            .map(|f| (f.to_string(), json!([BBOX, f])))
            .collect();
        column["covering"] = json!({ "bbox": covering });
        json!({
            "version": "1.1.0",
            "primary_column": GEOMETRY,
            "columns": { GEOMETRY: column },
        })
        .to_string()
    }
}

/// The position of every row of a batch (lon is x, lat is y, WGS84 degrees).
#[derive(Clone, Copy, Debug)]
pub struct Points<'a> {
    pub lon: &'a [f64],
    pub lat: &'a [f64],
}

/// A file being encoded into `W`.
pub struct Encoder<W: Write + Send> {
    table: Table,
    rows: u64,
    sink: Sink<W>,
}

impl<W: Write + Send> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

enum Sink<W: Write + Send> {
    Parquet {
        writer: Box<ArrowWriter<W>>,
        schema: SchemaRef,
        bbox: BBox,
    },
    Csv(Box<csv::Writer<W>>),
    Ndjson(W),
    GeoJson(W),
}

/// Writer settings of every GeoParquet file.
fn properties(table: &Table, opts: ParquetOptions) -> Result<WriterProperties> {
    let mut props = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(Some(opts.row_group_rows))
        .set_created_by(table.created_by.into())
        // Statistics (per row group and per page) of every column, the bbox columns' among
        // them: what lets readers skip row groups and pages by area. Every column's default
        // already, and the point of the covering, so said explicitly.
        .set_statistics_enabled(EnabledStatistics::Page);
    // Times: per sensor a steady cadence, so delta encoding packs most of a timestamp into a
    // few bits (a dictionary of distinct times would not).
    for f in table.schema.fields() {
        if matches!(f.data_type(), DataType::Timestamp(..)) {
            let path = ColumnPath::from(f.name().as_str());
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    Ok(props.build())
}

impl<W: Write + Send> Encoder<W> {
    /// Starts a file: the CSV header, the GeoJSON opening, or the Parquet writer.
    pub fn new(mut out: W, format: Format, table: Table) -> Result<Self> {
        let sink = match format {
            Format::Parquet(opts) => {
                let schema = table.parquet_schema();
                let props = properties(&table, opts)?;
                let writer = ArrowWriter::try_new(out, schema.clone(), Some(props))?;
                Sink::Parquet {
                    writer: Box::new(writer),
                    schema,
                    bbox: BBox(None),
                }
            }
            Format::Csv { excel } => {
                if excel {
                    out.write_all("\u{feff}".as_bytes())?;
                }
                let mut w = csv::WriterBuilder::new()
                    .delimiter(if excel { b';' } else { b',' })
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                w.write_record(table.header())?;
                Sink::Csv(Box::new(w))
            }
            Format::Ndjson => Sink::Ndjson(out),
            Format::GeoJson => {
                out.write_all(br#"{"type":"FeatureCollection","features":["#)?;
                Sink::GeoJson(out)
            }
        };
        Ok(Encoder {
            table,
            rows: 0,
            sink,
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends a batch of the table's columns (in the file's order) and the rows' positions.
    pub fn write(&mut self, batch: &RecordBatch, points: Points<'_>) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        if batch.schema().fields() != self.table.schema.fields()
            || points.lon.len() != n
            || points.lat.len() != n
        {
            return Err(EncodeError::Mismatch(format!(
                "{n} rows of {:?}, {} positions",
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>(),
                points.lon.len().min(points.lat.len())
            )));
        }
        let first = self.rows == 0;
        match &mut self.sink {
            Sink::Parquet {
                writer,
                schema,
                bbox,
            } => {
                for (lon, lat) in points.lon.iter().zip(points.lat) {
                    bbox.add(*lon, *lat);
                }
                let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
                columns.extend(geometry_columns(points));
                writer.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
            }
            Sink::Csv(w) => {
                let cols = Cols::of(batch)?;
                let mut field = String::with_capacity(64);
                for i in 0..n {
                    for (_, c) in &cols {
                        field.clear();
                        c.text(i, &mut field);
                        w.write_field(&field)?;
                    }
                    w.write_record(None::<&[u8]>)?;
                }
            }
            Sink::Ndjson(out) => {
                let cols = Cols::of(batch)?;
                for i in 0..n {
                    serde_json::to_writer(&mut *out, &object(&cols, i, |_| true))?;
                    out.write_all(b"\n")?;
                }
            }
            Sink::GeoJson(out) => {
                let cols = Cols::of(batch)?;
                for i in 0..n {
                    let feature = json!({
                        "type": "Feature",
                        "geometry": { "type": "Point", "coordinates": [points.lon[i], points.lat[i]] },
                        "properties": object(&cols, i, |name| name != "lon" && name != "lat"),
                    });
                    out.write_all(if first && i == 0 { b"\n" } else { b",\n" })?;
                    serde_json::to_writer(&mut *out, &feature)?;
                }
            }
        }
        self.rows += n as u64;
        Ok(())
    }

    /// Completes the file (the Parquet footer with the `geo` metadata, the end of the GeoJSON)
    /// and hands back the output, flushed.
    pub fn finish(self) -> Result<W> {
        let mut out = match self.sink {
            Sink::Parquet {
                mut writer, bbox, ..
            } => {
                writer.append_key_value_metadata(KeyValue::new(
                    "geo".to_string(),
                    bbox.geo_metadata(),
                ));
                // Writes the last row group and the footer.
                writer.into_inner()?
            }
            Sink::Csv(w) => w
                .into_inner()
                .map_err(|e| io::Error::new(e.error().kind(), e.error().to_string()))?,
            Sink::Ndjson(out) => out,
            Sink::GeoJson(mut out) => {
                out.write_all(b"\n]}\n")?;
                out
            }
        };
        out.flush()?;
        Ok(out)
    }
}

/// `geometry` and `bbox` of the rows.
fn geometry_columns(points: Points<'_>) -> [ArrayRef; 2] {
    let n = points.lon.len();
    let mut geometry = BinaryBuilder::with_capacity(n, n * 21);
    for (lon, lat) in points.lon.iter().zip(points.lat) {
        geometry.append_value(wkb_point(*lon, *lat));
    }
    let x: ArrayRef = Arc::new(Float64Array::from(points.lon.to_vec()));
    let y: ArrayRef = Arc::new(Float64Array::from(points.lat.to_vec()));
    let bbox = StructArray::new(bbox_fields(), vec![x.clone(), y.clone(), x, y], None);
    [Arc::new(geometry.finish()), Arc::new(bbox)]
}

/// A column of a batch, downcast once per batch.
enum Col<'a> {
    Time(&'a TimestampMicrosecondArray),
    Text(&'a StringArray),
    Float(&'a Float64Array),
    Int(&'a Int64Array),
}

struct Cols;

impl Cols {
    fn of(batch: &RecordBatch) -> Result<Vec<(&str, Col<'_>)>> {
        let schema = batch.schema_ref();
        schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, a)| {
                let any = a.as_any();
                let col = match f.data_type() {
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {
                        any.downcast_ref().map(Col::Time)
                    }
                    DataType::Utf8 => any.downcast_ref().map(Col::Text),
                    DataType::Float64 => any.downcast_ref().map(Col::Float),
                    DataType::Int64 => any.downcast_ref().map(Col::Int),
                    _ => None,
                };
                col.map(|c| (f.name().as_str(), c)).ok_or_else(|| {
                    EncodeError::Mismatch(format!("column {} of type {}", f.name(), f.data_type()))
                })
            })
            .collect()
    }
}

impl Col<'_> {
    fn is_null(&self, i: usize) -> bool {
        match self {
            Col::Time(a) => a.is_null(i),
            Col::Text(a) => a.is_null(i),
            Col::Float(a) => a.is_null(i),
            Col::Int(a) => a.is_null(i),
        }
    }

    fn time(a: &TimestampMicrosecondArray, i: usize) -> String {
        DateTime::<Utc>::from_timestamp_micros(a.value(i))
            .map(utc_text)
            .unwrap_or_default()
    }

    /// Appends the CSV field to `out`: nothing for a null.
    fn text(&self, i: usize, out: &mut String) {
        use std::fmt::Write as _;
        if self.is_null(i) {
            return;
        }
        // Writing into a String cannot fail.
        let _ = match self {
            Col::Time(a) => write!(out, "{}", Col::time(a, i)),
            Col::Text(a) => write!(out, "{}", a.value(i)),
            Col::Float(a) => write!(out, "{}", a.value(i)),
            Col::Int(a) => write!(out, "{}", a.value(i)),
        };
    }

    fn json(&self, i: usize) -> Value {
        if self.is_null(i) {
            return Value::Null;
        }
        match self {
            Col::Time(a) => json!(Col::time(a, i)),
            Col::Text(a) => json!(a.value(i)),
            Col::Float(a) => json!(a.value(i)),
            Col::Int(a) => json!(a.value(i)),
        }
    }
}

/// Row `i` as a JSON object of the columns `keep` accepts, in column order.
fn object(cols: &[(&str, Col<'_>)], i: usize, keep: impl Fn(&str) -> bool) -> Map<String, Value> {
    cols.iter()
        .filter(|(name, _)| keep(name))
        .map(|(name, c)| (name.to_string(), c.json(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::statistics::Statistics;

    fn table() -> Table {
        Table {
            schema: Arc::new(Schema::new(vec![
                Field::new("observed_at", utc_micros(), false),
                Field::new("id", DataType::Utf8, true),
                Field::new("value", DataType::Float64, false),
                Field::new("count", DataType::Int64, false),
                Field::new("lon", DataType::Float64, false),
                Field::new("lat", DataType::Float64, false),
            ])),
            created_by: "test",
        }
    }

    fn batch(t: &Table, lon: &[f64], lat: &[f64]) -> RecordBatch {
        let n = lon.len();
        let time = TimestampMicrosecondArray::from(
            (0..n as i64)
                .map(|i| 1_700_000_000_000_000 + i * 500_000)
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC");
        let ids: StringArray = (0..n).map(|i| (i != 1).then(|| format!("s{i}"))).collect();
        RecordBatch::try_new(
            t.schema.clone(),
            vec![
                Arc::new(time),
                Arc::new(ids),
                Arc::new(Float64Array::from(vec![1.5; n])),
                Arc::new(Int64Array::from(vec![3; n])),
                Arc::new(Float64Array::from(lon.to_vec())),
                Arc::new(Float64Array::from(lat.to_vec())),
            ],
        )
        .unwrap()
    }

    fn encode(format: Format, chunks: &[(&[f64], &[f64])]) -> Vec<u8> {
        let t = table();
        let mut e = Encoder::new(Vec::new(), format, t.clone()).unwrap();
        for (lon, lat) in chunks {
            e.write(&batch(&t, lon, lat), Points { lon, lat }).unwrap();
        }
        e.finish().unwrap()
    }

    #[test]
    fn csv_and_json_carry_the_table_columns() {
        let lon = [7.4, 7.5];
        let lat = [51.5, 51.6];
        let csv = String::from_utf8(encode(Format::Csv { excel: false }, &[(&lon, &lat)])).unwrap();
        assert_eq!(
            csv,
            "observed_at,id,value,count,lon,lat\r\n\
             2023-11-14T22:13:20Z,s0,1.5,3,7.4,51.5\r\n\
             2023-11-14T22:13:20.500Z,,1.5,3,7.5,51.6\r\n"
        );
        let excel = encode(Format::Csv { excel: true }, &[(&lon, &lat)]);
        assert!(excel.starts_with("\u{feff}observed_at;id;".as_bytes()));
        let nd = String::from_utf8(encode(Format::Ndjson, &[(&lon, &lat)])).unwrap();
        let second: Value = serde_json::from_str(nd.lines().nth(1).unwrap()).unwrap();
        assert_eq!(
            second,
            json!({"observed_at": "2023-11-14T22:13:20.500Z", "id": null, "value": 1.5,
                   "count": 3, "lon": 7.5, "lat": 51.6})
        );
        let geo: Value =
            serde_json::from_slice(&encode(Format::GeoJson, &[(&lon, &lat), (&lon, &lat)]))
                .unwrap();
        assert_eq!(geo["features"].as_array().unwrap().len(), 4);
        assert_eq!(
            geo["features"][1]["geometry"]["coordinates"],
            json!([7.5, 51.6])
        );
        assert_eq!(geo["features"][1]["properties"]["count"], 3);
        assert!(geo["features"][1]["properties"].get("lon").is_none());
        let empty: Value = serde_json::from_slice(&encode(Format::GeoJson, &[])).unwrap();
        assert_eq!(empty, json!({"type": "FeatureCollection", "features": []}));
    }

    #[test]
    fn parquet_has_geometry_and_a_bbox_covering_with_row_group_statistics() {
        let opts = ParquetOptions {
            zstd_level: 3,
            row_group_rows: 2,
        };
        let bytes = encode(
            Format::Parquet(opts),
            &[(&[7.4, 7.3, 7.6], &[51.5, 51.4, 51.7])],
        );
        let path = std::env::temp_dir().join(format!("encode-test-{}.parquet", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let md = reader.metadata().clone();
        let geo = md
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .find(|kv| kv.key == "geo")
            .and_then(|kv| kv.value.clone())
            .unwrap();
        let geo: Value = serde_json::from_str(&geo).unwrap();
        assert_eq!(
            geo["columns"]["geometry"]["bbox"],
            json!([7.3, 51.4, 7.6, 51.7])
        );
        assert_eq!(
            geo["columns"]["geometry"]["covering"],
            json!({"bbox": {
                "xmin": ["bbox", "xmin"], "ymin": ["bbox", "ymin"],
                "xmax": ["bbox", "xmax"], "ymax": ["bbox", "ymax"],
            }})
        );
        // Two row groups; the second holds the last point only.
        assert_eq!(md.num_row_groups(), 2);
        let leaf = |rg: usize, name: &str| -> (f64, f64) {
            let rg = md.row_group(rg);
            let c = (0..rg.num_columns())
                .map(|i| rg.column(i))
                .find(|c| c.column_path().string() == name)
                .unwrap();
            match c.statistics().unwrap() {
                Statistics::Double(s) => (*s.min_opt().unwrap(), *s.max_opt().unwrap()),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(leaf(0, "bbox.xmin"), (7.3, 7.4));
        assert_eq!(leaf(0, "bbox.ymax"), (51.4, 51.5));
        assert_eq!(leaf(1, "bbox.xmax"), (7.6, 7.6));
        // No row order is declared (the open-data files' first key, the Hilbert index, is
        // no column; the downloads declared none before either).
        assert!(md.row_group(0).sorting_columns().is_none());
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let b = &batches[0];
        assert_eq!(b.schema().field(6).name(), "geometry");
        let bbox = b.column(7).as_struct();
        assert_eq!(
            bbox.column_by_name("ymin")
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(1),
            51.4
        );
        assert_eq!(
            b.column(6).as_binary::<i32>().value(0),
            wkb_point(7.4, 51.5).as_slice()
        );
    }
}
