//! Exports against the real database: files read back in Rust value by value, privacy
//! (suppression, no identifiers), catch-up and late data under an injected clock, and the same
//! files opened by pyarrow, DuckDB, pandas and GeoPandas (`tests/python/check_exports.py`).
#![allow(clippy::unwrap_used)]

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch};
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::statistics::Statistics;
use serde_json::{json, Value};
use stadtpuls_config::{DatasetSettings, Settings};
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_opendata_export::export::{Exporter, Trigger};
use stadtpuls_store::clock::Clock;
use stadtpuls_store::testing::{fetch_all, fresh_store, uplink_record, utc};
use stadtpuls_store::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
struct TestClock(Mutex<DateTime<Utc>>);

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

const PARKING: &str = r#"
name = "parking_occupancy"
title_de = "Belegung von Parkplätzen"
description_de = "Belegung einzelner Stellplätze."
quantities = ["occupied"]
kinds = ["parking_bay"]
formats = ["parquet", "csv", "csv_excel"]
"#;

const INDOOR: &str = r#"
name = "indoor_co2"
title_de = "CO2 in Gebäuden"
description_de = "CO2 je Gebäude, stündlich."
theme = "ENVI"
quantities = ["co2"]
kinds = ["room_climate"]
buildings = ["rathaus", "schule"]
aggregation = "1h"
aggs = ["avg", "max"]
"#;

fn dataset(toml_text: &str) -> DatasetSettings {
    toml::from_str(toml_text).unwrap()
}

fn device(eui: u64, kind: DeviceKind, vis: Visibility, at: Option<(f64, f64)>) -> NewDevice {
    NewDevice {
        dev_eui: DevEui(eui),
        name: Some(format!("Gerät {eui:x}")),
        kind,
        codec: None,
        visibility: vis,
        location: at.map(|(lat, lon)| stadtpuls_gateways::Position::new(lat, lon).unwrap()),
        site_id: None,
        building_id: None,
        room_id: None,
    }
}

fn in_room(eui: u64, building: &str, room: &str) -> NewDevice {
    NewDevice {
        building_id: Some(building.into()),
        room_id: Some(room.into()),
        ..device(eui, DeviceKind::RoomClimate, Visibility::Private, None)
    }
}

fn building(id: &str, lat: f64, lon: f64) -> Building {
    Building {
        id: id.into(),
        name: format!("Gebäude {id}"),
        lat: Some(lat),
        lon: Some(lon),
        address: None,
    }
}

fn room(b: &str, id: &str) -> Room {
    Room {
        building_id: b.into(),
        id: id.into(),
        name: id.into(),
        floor: None,
        usage: Some("office".into()),
    }
}

const ALL_DEVICES: [u64; 9] = [
    0xA01, 0xA02, 0xA03, 0xA04, 0xB01, 0xB02, 0xB03, 0xC01, 0xC02,
];

async fn city() -> Store {
    let store = fresh_store().await.unwrap();
    use DeviceKind::ParkingBay as Bay;
    use Visibility::{Private, Public};
    store
        .import_places(
            &[],
            &[
                building("rathaus", 51.5136, 7.4653),
                building("schule", 51.5, 7.45),
            ],
            &[
                room("rathaus", "r1"),
                room("rathaus", "r2"),
                room("rathaus", "r3"),
                room("schule", "s1"),
                room("schule", "s2"),
            ],
        )
        .await
        .unwrap();
    store
        .import_devices(&[
            NewDevice {
                site_id: Some("hbf".into()),
                ..device(0xA01, Bay, Public, Some((51.5178, 7.4593)))
            },
            device(0xA02, Bay, Public, Some((51.518, 7.46))),
            device(0xA03, Bay, Private, Some((51.519, 7.461))),
            device(0xA04, Bay, Public, None),
            in_room(0xB01, "rathaus", "r1"),
            in_room(0xB02, "rathaus", "r2"),
            in_room(0xB03, "rathaus", "r3"),
            in_room(0xC01, "schule", "s1"),
            in_room(0xC02, "schule", "s2"),
        ])
        .await
        .unwrap();
    let occ = |eui: u64, at: &str, v: f64| {
        uplink_record(
            &format!("{eui}-{at}"),
            DevEui(eui),
            utc(at),
            &[(Quantity::Occupied, v)],
        )
    };
    let co2 = |eui: u64, at: &str, v: f64| {
        uplink_record(
            &format!("{eui}-{at}"),
            DevEui(eui),
            utc(at),
            &[(Quantity::Co2, v)],
        )
    };
    let batch = Batch {
        uplinks: vec![
            occ(0xA01, "2026-11-28T10:00:00Z", 1.0),
            occ(0xA01, "2026-11-28T10:30:00Z", 0.0),
            occ(0xA02, "2026-11-27T09:00:00Z", 1.0),
            // 00:30 in Berlin: the 28th's partition.
            occ(0xA02, "2026-11-27T23:30:00Z", 0.0),
            occ(0xA03, "2026-11-28T11:00:00Z", 1.0), // private
            occ(0xA04, "2026-11-28T11:00:00Z", 1.0), // no location
            co2(0xB01, "2026-11-28T10:05:00Z", 600.0),
            co2(0xB01, "2026-11-28T10:35:00Z", 700.0),
            co2(0xB02, "2026-11-28T10:10:00Z", 800.0),
            co2(0xB03, "2026-11-28T10:15:00Z", 900.0),
            co2(0xB01, "2026-11-28T11:05:00Z", 500.0), // one room only: suppressed
            co2(0xC01, "2026-11-28T10:00:00Z", 1000.0), // schule: two rooms, suppressed
            co2(0xC02, "2026-11-28T10:10:00Z", 1100.0),
        ],
        ..Batch::default()
    };
    store.write_batch(&batch).await.unwrap();
    store
}

fn out_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stadtpuls-export-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn exporter(store: &Store, dir: &Path, clock: Arc<TestClock>) -> (Exporter, Arc<Settings>) {
    let mut s = Settings::default();
    s.opendata.output_dir = dir.display().to_string();
    s.opendata.catch_up_days = 3;
    s.opendata.row_group_rows = 2;
    s.opendata.datasets = vec![dataset(PARKING), dataset(INDOOR)];
    s.validate().unwrap();
    let s = Arc::new(s);
    (Exporter::new(store.clone(), s.clone(), clock).unwrap(), s)
}

/// `(sensor_id, observed_at, value)` of a raw Parquet file, sorted as written.
fn read_raw_parquet(path: &Path) -> Vec<(String, i64, f64)> {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let b = batch.unwrap();
        let ids = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        let times = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap();
        let values = b
            .column(4)
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.push((ids.value(i).to_string(), times.value(i), values.value(i)));
        }
    }
    out
}

fn micros(s: &str) -> i64 {
    utc(s).timestamp_micros()
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn exports_catch_up_read_back_and_open_in_python_readers() {
    let store = city().await;
    let dir = out_dir();
    let clock = Arc::new(TestClock(Mutex::new(utc("2026-11-29T03:00:00Z"))));
    let (exp, settings) = exporter(&store, &dir, clock.clone());
    let parking = &settings.opendata.datasets[0];
    let indoor = &settings.opendata.datasets[1];

    // Catch-up: the three complete days within catch_up_days = 3.
    let due = exp.due(parking, clock.now()).await.unwrap();
    let keys: Vec<&str> = due.new.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["2026-11-26", "2026-11-27", "2026-11-28"]);
    assert!(due.changed.is_empty());
    let (run, late) = exp
        .catch_up(parking, clock.now(), Trigger::CatchUp)
        .await
        .unwrap();
    assert_eq!((run.partitions, run.empty, run.rows), (3, 1, 4));
    assert_eq!(late.partitions, 0);
    let (run, _) = exp
        .catch_up(indoor, clock.now(), Trigger::CatchUp)
        .await
        .unwrap();
    assert_eq!((run.partitions, run.empty, run.rows), (3, 2, 2));

    let ids: Vec<(i64, String)> = fetch_all(
        &store,
        "SELECT dev_eui, sensor_id FROM open_sensor_ids ORDER BY dev_eui",
    )
    .await;
    let sensor = |eui: u64| {
        ids.iter()
            .find(|(e, _)| *e == eui as i64)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(sensor(0xA01).len(), 32);
    assert_ne!(sensor(0xA01), sensor(0xA02));

    // Raw Parquet, value by value.
    let day28 = dir.join("dataset=parking_occupancy/date=2026-11-28/part-0.parquet");
    // In spatial order whatever the random sensor ids: A01 (7.4593, 51.5178) has the lower
    // Hilbert index (158847400563876 against A02's 158847401305848), then time.
    assert_eq!(
        read_raw_parquet(&day28),
        vec![
            (sensor(0xA01), micros("2026-11-28T10:00:00Z"), 1.0),
            (sensor(0xA01), micros("2026-11-28T10:30:00Z"), 0.0),
            (sensor(0xA02), micros("2026-11-27T23:30:00Z"), 0.0),
        ]
    );
    let day27 =
        read_raw_parquet(&dir.join("dataset=parking_occupancy/date=2026-11-27/part-0.parquet"));
    assert_eq!(
        day27,
        vec![(sensor(0xA02), micros("2026-11-27T09:00:00Z"), 1.0)]
    );
    assert!(
        !dir.join("dataset=parking_occupancy/date=2026-11-26")
            .exists(),
        "empty day: no file"
    );

    // Parquet metadata: UTC micros, zstd, no sorting columns (the spatial order is no column
    // order), GeoParquet 1.1 with bbox, row groups.
    let file = std::fs::File::open(&day28).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(
        builder.schema().field(0).data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))
    );
    let meta = builder.metadata();
    assert_eq!(meta.num_row_groups(), 2, "row_group_rows = 2");
    let rg = meta.row_group(0);
    assert!(matches!(rg.column(0).compression(), Compression::ZSTD(_)));
    assert_eq!(rg.sorting_columns(), None);
    let geo = meta
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .find(|kv| kv.key == "geo")
        .and_then(|kv| kv.value.clone())
        .unwrap();
    let geo: Value = serde_json::from_str(&geo).unwrap();
    assert_eq!(geo["version"], "1.1.0");
    assert_eq!(geo["columns"]["geometry"]["encoding"], "WKB");
    assert_eq!(
        geo["columns"]["geometry"]["bbox"],
        json!([7.4593, 51.5178, 7.46, 51.518])
    );
    assert_eq!(
        geo["columns"]["geometry"]["covering"],
        json!({"bbox": {
            "xmin": ["bbox", "xmin"], "ymin": ["bbox", "ymin"],
            "xmax": ["bbox", "xmax"], "ymax": ["bbox", "ymax"],
        }})
    );
    // The bbox covering column: a struct after geometry, and min/max statistics of its leaves
    // in every row group that span the row group's points.
    let names: Vec<&str> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "observed_at",
            "sensor_id",
            "quantity",
            "unit",
            "value",
            "lon",
            "lat",
            "geometry",
            "bbox"
        ]
    );
    let mut extents = Vec::new();
    for rg in meta.row_groups() {
        let stat = |leaf: &str| -> (f64, f64) {
            let c = rg
                .columns()
                .iter()
                .find(|c| c.column_path().string() == leaf)
                .unwrap();
            match c.statistics() {
                Some(Statistics::Double(s)) => (*s.min_opt().unwrap(), *s.max_opt().unwrap()),
                other => panic!("{leaf}: {other:?}"),
            }
        };
        let (xmin, _) = stat("bbox.xmin");
        let (ymin, _) = stat("bbox.ymin");
        let (_, xmax) = stat("bbox.xmax");
        let (_, ymax) = stat("bbox.ymax");
        extents.push([xmin, ymin, xmax, ymax]);
    }
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let mut row = 0;
    for b in &batches {
        let lon = b
            .column_by_name("lon")
            .unwrap()
            .as_primitive::<Float64Type>();
        let lat = b
            .column_by_name("lat")
            .unwrap()
            .as_primitive::<Float64Type>();
        let bbox = b.column_by_name("bbox").unwrap().as_struct();
        assert_eq!(bbox.null_count(), 0);
        let leaf = |name: &str, i: usize| {
            bbox.column_by_name(name)
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(i)
        };
        for i in 0..b.num_rows() {
            let (x, y) = (lon.value(i), lat.value(i));
            assert_eq!(
                [
                    leaf("xmin", i),
                    leaf("ymin", i),
                    leaf("xmax", i),
                    leaf("ymax", i)
                ],
                [x, y, x, y]
            );
            // row_group_rows = 2: row i is in row group i / 2.
            let [x0, y0, x1, y1] = extents[row / 2];
            assert!(x0 <= x && x <= x1 && y0 <= y && y <= y1, "row {row}");
            row += 1;
        }
    }
    assert_eq!(row, 3);

    // CSV and the Excel variant.
    let csv =
        std::fs::read_to_string(dir.join("dataset=parking_occupancy/date=2026-11-27/part-0.csv"))
            .unwrap();
    assert_eq!(
        csv,
        format!(
            "observed_at,sensor_id,quantity,unit,value,lon,lat\r\n2026-11-27T09:00:00Z,{},occupied,1,1,7.46,51.518\r\n",
            sensor(0xA02)
        )
    );
    let excel =
        std::fs::read(dir.join("dataset=parking_occupancy/date=2026-11-27/part-0.excel.csv"))
            .unwrap();
    assert!(excel.starts_with("\u{feff}observed_at;sensor_id;".as_bytes()));

    // Aggregated: rathaus 10:00 (four rooms' readings over three rooms), avg then max; the
    // 11:00 cell (one room) and the whole schule (two rooms) are suppressed.
    let agg =
        std::fs::read_to_string(dir.join("dataset=indoor_co2/date=2026-11-28/part-0.csv")).unwrap();
    assert_eq!(
        agg,
        "observed_at,group_id,quantity,unit,agg,value,count,lon,lat\r\n\
         2026-11-28T10:00:00Z,rathaus,co2,ppm,avg,750,4,7.4653,51.5136\r\n\
         2026-11-28T10:00:00Z,rathaus,co2,ppm,max,900,4,7.4653,51.5136\r\n"
    );

    // Manifest: every file with its real size and hash; metadata outside the data folders.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(dir.join("meta/parking_occupancy/manifest.json")).unwrap(),
    )
    .unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 6, "two days × three formats");
    for f in files {
        let path = dir.join(f["path"].as_str().unwrap());
        assert_eq!(f["sha256"], json!(sha256_hex(&path)));
        assert_eq!(f["bytes"], json!(std::fs::metadata(&path).unwrap().len()));
    }
    assert!(dir.join("meta/parking_occupancy/sensors.parquet").exists());

    // A dataset limited to one parking site holds only that site's bay.
    let mut hbf = dataset(PARKING);
    hbf.name = "hbf_only".into();
    hbf.sites = vec!["hbf".into()];
    hbf.formats = vec![stadtpuls_config::ExportFormat::Csv];
    let part = stadtpuls_opendata_export::partition::partition_of(
        utc("2026-11-28T12:00:00Z"),
        hbf.partitioning,
        exp.time_zone(),
    );
    let outcome = exp.export_partition(&hbf, &part).await.unwrap();
    assert_eq!(outcome.rows, 2);
    let only =
        std::fs::read_to_string(dir.join("dataset=hbf_only/date=2026-11-28/part-0.csv")).unwrap();
    assert_eq!(only.matches(&sensor(0xA01)).count(), 2);
    assert!(!only.contains(&sensor(0xA02)));
    std::fs::remove_dir_all(dir.join("dataset=hbf_only")).unwrap();

    // Runs are recorded.
    let runs = store
        .export_runs(Some("parking_occupancy"), 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].status.as_str(),
            runs[0].trigger.as_str(),
            runs[0].partitions,
            runs[0].rows
        ),
        ("ok", "catch_up", 3, 4)
    );

    // Nothing due until data change: then only that partition, as late data.
    let due = exp.due(parking, clock.now()).await.unwrap();
    assert!(due.new.is_empty() && due.changed.is_empty(), "{due:?}");
    let late = uplink_record(
        "late",
        DevEui(0xA01),
        utc("2026-11-28T12:00:00Z"),
        &[(Quantity::Occupied, 1.0)],
    );
    store
        .write_batch(&Batch {
            uplinks: vec![late],
            ..Batch::default()
        })
        .await
        .unwrap();
    let due = exp.due(parking, clock.now()).await.unwrap();
    let keys: Vec<&str> = due.changed.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["2026-11-28"]);
    *clock.0.lock().unwrap() = utc("2026-11-29T04:00:00Z");
    let (_, late) = exp
        .catch_up(parking, clock.now(), Trigger::Schedule)
        .await
        .unwrap();
    assert_eq!((late.partitions, late.rows), (1, 4));
    assert_eq!(read_raw_parquet(&day28).len(), 4);
    let modified: Vec<(String, DateTime<Utc>)> = fetch_all(
        &store,
        "SELECT partition, modified FROM export_files WHERE dataset = 'parking_occupancy' AND format = 'parquet' ORDER BY partition",
    )
    .await;
    assert_eq!(
        modified,
        vec![
            ("2026-11-27".to_string(), utc("2026-11-29T03:00:00Z")),
            ("2026-11-28".to_string(), utc("2026-11-29T04:00:00Z")),
        ]
    );
    // A day later, the 29th is due.
    let due = exp.due(parking, utc("2026-11-30T03:00:00Z")).await.unwrap();
    let keys: Vec<&str> = due.new.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["2026-11-29"]);

    // The same files in pyarrow, DuckDB, pandas and GeoPandas.
    let forbidden: Vec<String> = ALL_DEVICES.iter().map(|e| format!("{e:016x}")).collect();
    let expected = json!({
        "time_zone": "Europe/Berlin",
        "forbidden": forbidden,
        "datasets": [
            {
                "name": "parking_occupancy", "kind": "raw", "partition_key": "date",
                "partitions": {"2026-11-26": 0, "2026-11-27": 1, "2026-11-28": 4},
                "formats": ["parquet", "csv", "csv_excel"], "excel_csv": true,
                "rows": [
                    {"observed_at": "2026-11-28T10:00:00Z", "sensor_id": sensor(0xA01), "quantity": "occupied",
                     "unit": "1", "value": 1.0, "lon": 7.4593, "lat": 51.5178, "partition": "2026-11-28"},
                    {"observed_at": "2026-11-27T23:30:00Z", "sensor_id": sensor(0xA02), "quantity": "occupied",
                     "unit": "1", "value": 0.0, "lon": 7.46, "lat": 51.518, "partition": "2026-11-28"},
                    {"observed_at": "2026-11-28T12:00:00Z", "sensor_id": sensor(0xA01), "quantity": "occupied",
                     "unit": "1", "value": 1.0, "partition": "2026-11-28"},
                    {"observed_at": "2026-11-27T09:00:00Z", "sensor_id": sensor(0xA02), "quantity": "occupied",
                     "unit": "1", "value": 1.0, "partition": "2026-11-27"}
                ],
                "bbox": [7.4, 51.5, 7.5, 51.6]
            },
            {
                "name": "indoor_co2", "kind": "aggregated", "partition_key": "date",
                "partitions": {"2026-11-26": 0, "2026-11-27": 0, "2026-11-28": 2},
                "formats": ["parquet", "csv"],
                "rows": [
                    {"observed_at": "2026-11-28T10:00:00Z", "group_id": "rathaus", "quantity": "co2", "unit": "ppm",
                     "agg": "avg", "value": 750.0, "count": 4, "lon": 7.4653, "lat": 51.5136},
                    {"observed_at": "2026-11-28T10:00:00Z", "group_id": "rathaus", "quantity": "co2", "unit": "ppm",
                     "agg": "max", "value": 900.0, "count": 4}
                ],
                "suppressed_groups": ["schule"]
            }
        ]
    });
    check_with_python_readers(&dir, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

const CITY_TEMPERATURE: &str = r#"
name = "city_temperature"
title_de = "Lufttemperatur"
description_de = "Lufttemperatur der Außensensoren."
quantities = ["temperature"]
kinds = ["outdoor_climate"]
"#;

const CITY_TEMPERATURE_HOURLY: &str = r#"
name = "city_temperature_hourly"
title_de = "Lufttemperatur, stündlich"
description_de = "Lufttemperatur der Außensensoren, Stundenmittel."
quantities = ["temperature"]
kinds = ["outdoor_climate"]
aggregation = "1h"
aggs = ["avg"]
"#;

/// `sensor_id` (or `group_id`) of every row of a Parquet file's column 1 (or of column 0 for
/// a sensors table), with consecutive repeats collapsed: the runs in file order.
fn id_runs(path: &Path, column: usize) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut runs: Vec<String> = Vec::new();
    for batch in reader {
        let b = batch.unwrap();
        let ids = b.column(column).as_string::<i32>();
        for i in 0..b.num_rows() {
            if runs.last().map(String::as_str) != Some(ids.value(i)) {
                runs.push(ids.value(i).to_string());
            }
        }
    }
    runs
}

/// Sensors scattered over the whole city in files of many row groups: the rows are spatially
/// ordered (one run per sensor, sensors along the Hilbert curve), so every row group covers a
/// compact area, and geoparquet-validator's distribution class passes `spatial-order` (it gives
/// a verdict from five row groups on; ordered by the random sensor ids it fails).
#[tokio::test]
async fn files_of_sensors_scattered_over_the_city_are_spatially_ordered() {
    let store = fresh_store().await.unwrap();
    // 144 outdoor sensors on a jittered 12 × 12 grid over Dortmund (about 14 × 11 km), DevEUIs
    // in row-major order, four readings each in four hours of the 28th.
    let mut devices = Vec::new();
    for i in 0..144u64 {
        let jitter = |k: u64| ((i * 7919 + k * 104_729) % 1000) as f64 / 1000.0 * 0.6;
        let lat = 51.46 + (((i / 12) as f64) + 0.2 + jitter(1)) * 0.1 / 12.0;
        let lon = 7.36 + (((i % 12) as f64) + 0.2 + jitter(2)) * 0.2 / 12.0;
        let at = ((lat * 1e5).round() / 1e5, (lon * 1e5).round() / 1e5);
        devices.push(device(
            0x5000 + i,
            DeviceKind::OutdoorClimate,
            Visibility::Public,
            Some(at),
        ));
    }
    store.import_devices(&devices).await.unwrap();
    let mut uplinks = Vec::new();
    for d in &devices {
        for h in 0..4 {
            let at = utc(&format!("2026-11-28T1{h}:15:00Z"));
            uplinks.push(uplink_record(
                &format!("{}-{h}", d.dev_eui.0),
                d.dev_eui,
                at,
                &[(Quantity::Temperature, 5.0 + h as f64)],
            ));
        }
    }
    store
        .write_batch(&Batch {
            uplinks,
            ..Batch::default()
        })
        .await
        .unwrap();

    let dir = out_dir();
    let clock = Arc::new(TestClock(Mutex::new(utc("2026-11-29T03:00:00Z"))));
    let mut s = Settings::default();
    s.opendata.output_dir = dir.display().to_string();
    s.opendata.catch_up_days = 1;
    // 12 sensors' rows per row group: 12 row groups per file.
    s.opendata.row_group_rows = 48;
    s.opendata.datasets = vec![dataset(CITY_TEMPERATURE), dataset(CITY_TEMPERATURE_HOURLY)];
    s.validate().unwrap();
    let s = Arc::new(s);
    let exp = Exporter::new(store.clone(), s.clone(), clock.clone()).unwrap();
    for ds in &s.opendata.datasets {
        let (run, _) = exp
            .catch_up(ds, clock.now(), Trigger::CatchUp)
            .await
            .unwrap();
        assert_eq!(run.rows, 576, "{}", ds.name);
    }

    for name in ["city_temperature", "city_temperature_hourly"] {
        let data = dir.join(format!("dataset={name}/date=2026-11-28/part-0.parquet"));
        let file = std::fs::File::open(&data).unwrap();
        let meta = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .metadata()
            .clone();
        assert_eq!(meta.num_row_groups(), 12, "{name}");
        assert!(meta
            .row_groups()
            .iter()
            .all(|rg| rg.sorting_columns().is_none()));
        // One run per sensor, in the sensors table's order (both by position).
        let runs = id_runs(&data, 1);
        assert_eq!(runs.len(), 144, "{name}: one run per sensor");
        let table = id_runs(&dir.join(format!("meta/{name}/sensors.parquet")), 0);
        assert_eq!(runs, table, "{name}");
    }

    let expected = json!({
        "time_zone": "Europe/Berlin",
        "datasets": [
            {
                "name": "city_temperature", "kind": "raw", "partition_key": "date",
                "partitions": {"2026-11-28": 576},
                "bbox": [7.36, 51.46, 7.56, 51.56],
                "spatial_order": "pass"
            },
            {
                "name": "city_temperature_hourly", "kind": "aggregated", "partition_key": "date",
                "partitions": {"2026-11-28": 576},
                "bbox": [7.36, 51.46, 7.56, 51.56],
                "spatial_order": "pass"
            }
        ]
    });
    check_with_python_readers(&dir, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `tests/python/check_exports.py` with the readers' venv (`STADTPULS_PY_READERS`, set by
/// `scripts/test`); fails with its output.
fn check_with_python_readers(root: &Path, expected: &Value) {
    let python = match std::env::var("STADTPULS_PY_READERS") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("STADTPULS_SKIP_PY_READERS").is_ok() => {
            eprintln!("STADTPULS_SKIP_PY_READERS set: Python reader checks skipped");
            return;
        }
        _ => panic!(
            "STADTPULS_PY_READERS is not set: run scripts/test, or set it to the python of \
             `tests/python/setup_venv.sh | tail -n1` (STADTPULS_SKIP_PY_READERS=1 skips)"
        ),
    };
    // Outside ROOT: the checker scans every file under it for the forbidden strings.
    let expected_path = root.with_extension("expected.json");
    std::fs::write(&expected_path, serde_json::to_vec_pretty(expected).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/check_exports.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(root)
        .arg(&expected_path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&expected_path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python readers failed:\n{text}");
    eprintln!("{text}");
}

/// What a tracing layer saw: `span <name> <fields>`, `record <name> <fields>`,
/// `event <LEVEL> <fields>`.
#[derive(Clone, Debug, Default)]
struct Traces(Arc<Mutex<Vec<String>>>);

#[derive(Default)]
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl<S> tracing_subscriber::Layer<S> for Traces
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        let line = format!("span {}{}", attrs.metadata().name(), f.0);
        self.0.lock().unwrap().push(line);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut f = Fields::default();
        values.record(&mut f);
        let name = ctx.span(id).map_or("?", |s| s.name());
        self.0.lock().unwrap().push(format!("record {name}{}", f.0));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let line = format!("event {}{}", event.metadata().level(), f.0);
        self.0.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn a_run_is_one_span_and_its_failure_is_returned_not_logged() {
    use tracing_subscriber::layer::SubscriberExt;
    let store = city().await;
    let dir = out_dir();
    let clock = Arc::new(TestClock(Mutex::new(utc("2026-11-29T03:00:00Z"))));
    let (exp, settings) = exporter(&store, &dir, clock.clone());
    let parking = &settings.opendata.datasets[0];
    let parts = exp.due(parking, clock.now()).await.unwrap().new;
    // The 28th cannot be written: a file stands where its folder goes.
    std::fs::create_dir_all(dir.join("dataset=parking_occupancy")).unwrap();
    std::fs::write(dir.join("dataset=parking_occupancy/date=2026-11-28"), "x").unwrap();

    // tracing caches per callsite whether anyone is interested. With a single registered
    // dispatcher it asks only the *registering thread's* default, so a callsite first hit by
    // another test's thread (no subscriber there) would be cached as "never" for this one too
    // (seen: the partition spans missing now and then). A second live dispatcher makes tracing
    // ask every registered dispatcher, this test's included.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let traces = Traces::default();
    let subscriber = tracing_subscriber::registry().with(traces.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    let e = exp
        .run(parking, &parts, Trigger::Manual, &mut |_| {})
        .await
        .unwrap_err();
    drop(guard);

    // The error names the partition; the run records the cause.
    let message = e.to_string();
    assert!(
        message.starts_with("partition 2026-11-28: write: "),
        "{message}"
    );
    let runs: Vec<(String, Option<String>)> =
        fetch_all(&store, "SELECT status, error FROM export_runs").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "failed");
    assert!(message.ends_with(runs[0].1.as_deref().unwrap()), "{runs:?}");

    let seen = traces.0.lock().unwrap().clone();
    let runs: Vec<&String> = seen
        .iter()
        .filter(|l| l.starts_with("span export_run"))
        .collect();
    assert_eq!(
        runs,
        [&"span export_run dataset=parking_occupancy trigger=manual partitions=2026-11-26..2026-11-28".to_string()],
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("record export_run run=")),
        "{seen:#?}"
    );
    let partitions: Vec<&String> = seen
        .iter()
        .filter(|l| l.starts_with("span export_partition"))
        .collect();
    assert_eq!(partitions.len(), 3, "{seen:#?}");
    assert!(partitions[2].ends_with("partition=2026-11-28"));
    // Logging is the caller's (the scheduler logs, the CLI reports): nothing here.
    let errors: Vec<&String> = seen
        .iter()
        .filter(|l| l.starts_with("event ERROR") || l.starts_with("event WARN"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
