//! The columns of a download and the rows that fill them: a [`Layout`] is the encoder's table,
//! [`Row`]s become its record batches, and [`encode`] writes the whole file.

use super::body::BodyWriter;
use super::params::Format;
use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_opendata_export::encode::{
    self, EncodeError, Encoder, ParquetOptions, Points, Table,
};
use stadtpuls_store::aggregates::Agg;
use stadtpuls_store::exports::{ExportBucket, ExportChunks, ExportReading};
use std::io;
use std::sync::Arc;

/// A value column after `time, dev_eui, quantity, unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Col {
    Value,
    Lon,
    Lat,
    Avg,
    Min,
    Max,
    Count,
}

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Value => "value",
            Col::Lon => "lon",
            Col::Lat => "lat",
            Col::Avg => "avg",
            Col::Min => "min",
            Col::Max => "max",
            Col::Count => "count",
        }
    }
}

/// One cell of a value column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Cell {
    F(f64),
    I(i64),
}

/// The columns of an export.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Layout {
    /// `observed_at` (raw) or `bucket_start`.
    time: &'static str,
    values: Vec<Col>,
}

impl Layout {
    pub(super) fn raw() -> Self {
        Layout {
            time: "observed_at",
            values: vec![Col::Value, Col::Lon, Col::Lat],
        }
    }

    pub(super) fn buckets(aggs: &[Agg]) -> Self {
        let values = aggs
            .iter()
            .filter_map(|a| match a {
                Agg::Avg => Some(Col::Avg),
                Agg::Min => Some(Col::Min),
                Agg::Max => Some(Col::Max),
                Agg::Count => Some(Col::Count),
                Agg::Sum => None,
            })
            .collect();
        Layout {
            time: "bucket_start",
            values,
        }
    }

    fn schema(&self) -> SchemaRef {
        let mut fields = vec![
            Field::new(self.time, encode::utc_micros(), false),
            Field::new("dev_eui", DataType::Utf8, false),
            Field::new("quantity", DataType::Utf8, false),
            Field::new("unit", DataType::Utf8, false),
        ];
        fields.extend(self.values.iter().map(|c| {
            let ty = if *c == Col::Count {
                DataType::Int64
            } else {
                DataType::Float64
            };
            Field::new(c.name(), ty, false)
        }));
        Arc::new(Schema::new(fields))
    }
}

/// What every exported row has.
pub(super) trait Row: Send + 'static {
    fn time(&self) -> DateTime<Utc>;
    fn dev_eui(&self) -> DevEui;
    fn quantity(&self) -> Quantity;
    /// `(lon, lat)` of the device.
    fn position(&self) -> (f64, f64);
    /// The cell of a column of this row's layout.
    fn cell(&self, col: Col) -> Cell;
}

impl Row for ExportReading {
    fn time(&self) -> DateTime<Utc> {
        self.time
    }
    fn dev_eui(&self) -> DevEui {
        self.dev_eui
    }
    fn quantity(&self) -> Quantity {
        self.quantity
    }
    fn position(&self) -> (f64, f64) {
        (self.lon, self.lat)
    }
    fn cell(&self, col: Col) -> Cell {
        Cell::F(match col {
            Col::Lon => self.lon,
            Col::Lat => self.lat,
            // Only `value` is left in the raw layout.
            _ => self.value,
        })
    }
}

impl Row for ExportBucket {
    fn time(&self) -> DateTime<Utc> {
        self.start
    }
    fn dev_eui(&self) -> DevEui {
        self.dev_eui
    }
    fn quantity(&self) -> Quantity {
        self.quantity
    }
    fn position(&self) -> (f64, f64) {
        (self.lon, self.lat)
    }
    fn cell(&self, col: Col) -> Cell {
        match col {
            Col::Count => Cell::I(self.count),
            Col::Min => Cell::F(self.min),
            Col::Max => Cell::F(self.max),
            Col::Lon => Cell::F(self.lon),
            Col::Lat => Cell::F(self.lat),
            // Only `avg` is left in the bucket layout.
            Col::Avg | Col::Value => Cell::F(self.avg),
        }
    }
}

impl Layout {
    /// The encoder's table: these columns, no declared sort order.
    fn table(&self) -> Table {
        Table {
            schema: self.schema(),
            created_by: "stadtpuls api export",
        }
    }
}

/// Why an export stopped early.
#[derive(Debug, thiserror::Error)]
pub(super) enum ExportError {
    #[error("{0}")]
    Encode(#[from] EncodeError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("store: {0}")]
    Store(#[from] stadtpuls_store::StoreError),
}

impl ExportError {
    /// The client went away or stopped reading: nothing is wrong on our side.
    pub(super) fn client_gone(&self) -> bool {
        let kind = match self {
            ExportError::Encode(e) => e.io_kind(),
            _ => None,
        };
        matches!(
            kind,
            Some(io::ErrorKind::BrokenPipe | io::ErrorKind::TimedOut)
        )
    }
}

/// What the shared encoder writes for a download format.
fn encoding(format: Format, parquet: ParquetOptions) -> encode::Format {
    match format {
        Format::Csv => encode::Format::Csv { excel: false },
        Format::Ndjson => encode::Format::Ndjson,
        Format::GeoJson => encode::Format::GeoJson,
        Format::Parquet => encode::Format::Parquet(parquet),
    }
}

/// Writes the whole file: `first`, then every chunk from `rows`, then the end.
pub(super) fn encode<R: Row>(
    format: Format,
    layout: &Layout,
    first: Vec<R>,
    rows: &mut ExportChunks<R>,
    out: BodyWriter,
    parquet: ParquetOptions,
) -> Result<(), ExportError> {
    let mut encoder = Encoder::new(out, encoding(format, parquet), layout.table())?;
    write(&mut encoder, layout, &first)?;
    drop(first);
    while let Some(chunk) = rows.blocking_recv() {
        write(&mut encoder, layout, &chunk?)?;
    }
    encoder.finish()?;
    Ok(())
}

fn write<R: Row>(
    encoder: &mut Encoder<BodyWriter>,
    layout: &Layout,
    rows: &[R],
) -> Result<(), ExportError> {
    if rows.is_empty() {
        return Ok(());
    }
    let (lon, lat): (Vec<f64>, Vec<f64>) = rows.iter().map(Row::position).unzip();
    encoder.write(
        &to_batch(layout, rows)?,
        Points {
            lon: &lon,
            lat: &lat,
        },
    )?;
    Ok(())
}

/// Rows as a record batch of the layout's schema.
fn to_batch<R: Row>(layout: &Layout, rows: &[R]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let n = rows.len();
    let time: TimestampMicrosecondArray = rows
        .iter()
        .map(|r| Some(r.time().timestamp_micros()))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let mut dev_eui = StringBuilder::with_capacity(n, n * 16);
    let mut quantity = StringBuilder::with_capacity(n, n * 12);
    let mut unit = StringBuilder::with_capacity(n, n * 4);
    for r in rows {
        dev_eui.append_value(r.dev_eui().to_string());
        quantity.append_value(r.quantity().name());
        unit.append_value(r.quantity().unit());
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(time),
        Arc::new(dev_eui.finish()),
        Arc::new(quantity.finish()),
        Arc::new(unit.finish()),
    ];
    for c in &layout.values {
        if *c == Col::Count {
            let mut b = Int64Builder::with_capacity(n);
            for r in rows {
                if let Cell::I(v) = r.cell(*c) {
                    b.append_value(v);
                }
            }
            columns.push(Arc::new(b.finish()));
        } else {
            let mut b = Float64Builder::with_capacity(n);
            for r in rows {
                if let Cell::F(v) = r.cell(*c) {
                    b.append_value(v);
                }
            }
            columns.push(Arc::new(b.finish()));
        }
    }
    RecordBatch::try_new(layout.schema(), columns)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::exports::EXPORT_AGGS;
    use arrow_schema::TimeUnit;

    #[test]
    fn layouts() {
        assert_eq!(
            Layout::raw().table().header(),
            [
                "observed_at",
                "dev_eui",
                "quantity",
                "unit",
                "value",
                "lon",
                "lat"
            ]
        );
        assert_eq!(
            Layout::buckets(&[Agg::Min, Agg::Count]).table().header(),
            [
                "bucket_start",
                "dev_eui",
                "quantity",
                "unit",
                "min",
                "count"
            ]
        );
        let schema = Layout::buckets(&EXPORT_AGGS).schema();
        assert_eq!(schema.field(8 - 1).data_type(), &DataType::Int64);
        assert_eq!(
            schema.field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }
}
