//! End-to-end: on-demand exports (`/v1/exports/readings.{csv,ndjson,geojson,parquet}`): exact
//! contents in every format, raw and bucketed, who sees which device, geo filters, parameter
//! errors, empty files, keyset paging over many rows and the concurrency cap.
#![allow(clippy::unwrap_used)]

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::RecordBatch;
use chrono::{DateTime, TimeDelta, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::statistics::Statistics;
use serde_json::{json, Value};
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_store::keys::Scope;
use stadtpuls_store::testing::uplink_record;
use stadtpuls_store::{Batch, DeviceKind, Visibility};
use stadtpuls_tests::{device, TestApp};

const A: &str = "70b3d57ed0000001";
/// Above 0x7fff…: negative as a PostgreSQL bigint, still sorted after A.
const B: &str = "f000000000000002";
const PRIVATE: &str = "70b3d57ed0000003";
const UNLOCATED: &str = "70b3d57ed0000004";

const WINDOW: &str = "from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z";
const RAW_HEADER: &str = "observed_at,dev_eui,quantity,unit,value,lon,lat\r\n";

fn t(s: &str) -> DateTime<Utc> {
    stadtpuls_store::testing::utc(s)
}

fn eui(s: &str) -> DevEui {
    DevEui::parse_hex(s).unwrap()
}

/// Writes readings through the store's normal write path (which keeps `latest_readings`).
async fn write(app: &TestApp, readings: &[(&str, Quantity, &str, f64)]) {
    let batch = Batch {
        uplinks: readings
            .iter()
            .enumerate()
            .map(|(i, (e, q, at, v))| {
                uplink_record(&format!("up-{i}-{e}"), eui(e), t(at), &[(*q, *v)])
            })
            .collect(),
        ..Default::default()
    };
    let out = app.store.write_batch(&batch).await.unwrap();
    assert_eq!(out.readings, readings.len());
}

/// Devices A and B (public), a private one and an unlocated public one, with readings in and
/// just outside 2024-05-01 (UTC).
async fn city() -> TestApp {
    let app = TestApp::start_with(&[
        device(
            A,
            DeviceKind::OutdoorClimate,
            None,
            Visibility::Public,
            Some((51.5, 7.46)),
        ),
        device(
            B,
            DeviceKind::OutdoorClimate,
            None,
            Visibility::Public,
            Some((51.52, 7.47)),
        ),
        device(
            PRIVATE,
            DeviceKind::OutdoorClimate,
            None,
            Visibility::Private,
            Some((51.51, 7.465)),
        ),
        device(
            UNLOCATED,
            DeviceKind::OutdoorClimate,
            None,
            Visibility::Public,
            None,
        ),
    ])
    .await;
    use Quantity::{Humidity, Temperature};
    write(
        &app,
        &[
            (A, Temperature, "2024-04-30T23:59:59Z", 98.0),
            (A, Temperature, "2024-05-01T10:00:00Z", 21.5),
            (A, Temperature, "2024-05-01T10:30:00Z", 22.0),
            (A, Temperature, "2024-05-01T11:15:00Z", 23.0),
            (A, Temperature, "2024-05-02T00:00:00Z", 99.0),
            (A, Humidity, "2024-05-01T10:00:00Z", 40.0),
            (B, Temperature, "2024-05-01T10:05:00.25Z", 18.25),
            (PRIVATE, Temperature, "2024-05-01T10:00:00Z", 30.0),
            (UNLOCATED, Temperature, "2024-05-01T10:00:00Z", 5.0),
        ],
    )
    .await;
    app
}

async fn get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(format!("{}{path}", app.base));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Status 200 with the format's content type and file name; the body as text.
async fn text(app: &TestApp, path: &str, key: Option<&str>) -> String {
    let r = get(app, path, key).await;
    let status = r.status().as_u16();
    let (ct, cd) = (
        header(&r, "content-type"),
        header(&r, "content-disposition"),
    );
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    let ext = path.split('?').next().unwrap().rsplit('.').next().unwrap();
    let want = match ext {
        "csv" => "text/csv; charset=utf-8; header=present",
        "ndjson" => "application/x-ndjson",
        "geojson" => "application/geo+json",
        other => panic!("{other}"),
    };
    assert_eq!(ct, want, "{path}");
    assert!(
        cd.starts_with("attachment; filename=\"readings-") && cd.ends_with(&format!(".{ext}\"")),
        "{cd}"
    );
    body
}

fn ndjson(body: &str) -> Vec<Value> {
    assert!(body.is_empty() || body.ends_with('\n'), "{body}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The record batches of a Parquet download, and whether its columns are zstd-compressed.
async fn parquet(app: &TestApp, path: &str, key: Option<&str>) -> (Vec<RecordBatch>, bool) {
    let r = get(app, path, key).await;
    assert_eq!(r.status().as_u16(), 200, "{path}");
    assert_eq!(header(&r, "content-type"), "application/vnd.apache.parquet");
    assert!(header(&r, "content-disposition").ends_with(".parquet\""));
    let bytes = r.bytes().await.unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).unwrap();
    let zstd = builder
        .metadata()
        .row_groups()
        .iter()
        .flat_map(|g| g.columns())
        .all(|c| matches!(c.compression(), Compression::ZSTD(_)));
    // GeoParquet 1.1: `geo` metadata with the bbox covering, and min/max statistics of the
    // bbox leaf columns in every row group.
    let md = builder.metadata();
    let geo = md
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .find(|kv| kv.key == "geo")
        .and_then(|kv| kv.value.clone())
        .unwrap();
    let geo: Value = serde_json::from_str(&geo).unwrap();
    assert_eq!(geo["version"], "1.1.0");
    assert_eq!(geo["primary_column"], "geometry");
    assert_eq!(geo["columns"]["geometry"]["encoding"], "WKB");
    assert_eq!(
        geo["columns"]["geometry"]["covering"],
        json!({"bbox": {
            "xmin": ["bbox", "xmin"], "ymin": ["bbox", "ymin"],
            "xmax": ["bbox", "xmax"], "ymax": ["bbox", "ymax"],
        }})
    );
    for rg in md.row_groups() {
        for leaf in ["bbox.xmin", "bbox.ymin", "bbox.xmax", "bbox.ymax"] {
            let c = rg
                .columns()
                .iter()
                .find(|c| c.column_path().string() == leaf)
                .unwrap();
            assert!(
                matches!(c.statistics(), Some(Statistics::Double(s)) if s.min_opt().is_some()),
                "{path}: {leaf} has no statistics"
            );
        }
    }
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    // Every row's geometry is the WKB point of its position, its bbox that point.
    for b in &batches {
        let bbox = b.column_by_name("bbox").unwrap().as_struct();
        let geometry = b.column_by_name("geometry").unwrap().as_binary::<i32>();
        let leaf = |name: &str| -> Vec<f64> {
            let c = bbox.column_by_name(name).unwrap();
            c.as_primitive::<Float64Type>().values().to_vec()
        };
        assert_eq!(leaf("xmin"), leaf("xmax"));
        assert_eq!(leaf("ymin"), leaf("ymax"));
        for (i, (x, y)) in leaf("xmin").into_iter().zip(leaf("ymin")).enumerate() {
            let wkb = geometry.value(i);
            assert_eq!(wkb[..5], [1, 1, 0, 0, 0]);
            assert_eq!(wkb[5..13], x.to_le_bytes());
            assert_eq!(wkb[13..21], y.to_le_bytes());
        }
    }
    validate_geoparquet(&bytes, path);
    if !batches.is_empty() {
        assert_eq!(
            geo["columns"]["geometry"]["bbox"]
                .as_array()
                .map(|b| b.len()),
            Some(4),
            "{path}: a file with rows has a geo bbox"
        );
    }
    (batches, zstd)
}

/// geoparquet-validator (from the readers' venv, `STADTPULS_PY_READERS`, as the open-data
/// export's reader check): no test of the core, covering or distribution class may fail.
fn validate_geoparquet(bytes: &[u8], what: &str) {
    let python = match std::env::var("STADTPULS_PY_READERS") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("STADTPULS_SKIP_PY_READERS").is_ok() => return,
        _ => panic!(
            "STADTPULS_PY_READERS is not set: run scripts/test, or set it to the python of \
             `tests/python/setup_venv.sh | tail -n1` (STADTPULS_SKIP_PY_READERS=1 skips)"
        ),
    };
    let file = std::env::temp_dir().join(format!(
        "stadtpuls-download-{}.parquet",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, bytes).unwrap();
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import sys, geoparquet_validator as g\n\
             r = g.check(sys.argv[1])\n\
             failed = [f\"{o['id']}: {o['message']}\" for o in r['outcomes'] if o['status'] == 'fail']\n\
             print('\\n'.join(failed))\n\
             sys.exit(1 if failed else 0)",
        )
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{what}: geoparquet-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn strings(b: &RecordBatch, name: &str) -> Vec<String> {
    let c = b.column_by_name(name).unwrap().as_string::<i32>();
    c.iter().map(|v| v.unwrap().to_string()).collect()
}

fn floats(b: &RecordBatch, name: &str) -> Vec<f64> {
    let c = b
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>();
    c.values().to_vec()
}

fn times(b: &RecordBatch, name: &str) -> Vec<DateTime<Utc>> {
    let c = b
        .column_by_name(name)
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    c.values()
        .iter()
        .map(|m| DateTime::from_timestamp_micros(*m).unwrap())
        .collect()
}

#[tokio::test]
async fn raw_exports_in_every_format() {
    let app = city().await;

    // CSV: exact text. Ordered by DevEUI (as hex), quantity (/v1/quantities order), time; only
    // located public devices; `to` is exclusive.
    let csv = text(&app, &format!("/v1/exports/readings.csv?{WINDOW}"), None).await;
    let expected = [
        RAW_HEADER,
        "2024-05-01T10:00:00Z,70b3d57ed0000001,temperature,°C,21.5,7.46,51.5\r\n",
        "2024-05-01T10:30:00Z,70b3d57ed0000001,temperature,°C,22,7.46,51.5\r\n",
        "2024-05-01T11:15:00Z,70b3d57ed0000001,temperature,°C,23,7.46,51.5\r\n",
        "2024-05-01T10:00:00Z,70b3d57ed0000001,humidity,%RH,40,7.46,51.5\r\n",
        "2024-05-01T10:05:00.250Z,f000000000000002,temperature,°C,18.25,7.47,51.52\r\n",
    ]
    .concat();
    assert_eq!(csv, expected);
    let r = get(&app, &format!("/v1/exports/readings.csv?{WINDOW}"), None).await;
    assert_eq!(
        header(&r, "content-disposition"),
        "attachment; filename=\"readings-20240501T000000Z-20240502T000000Z.csv\""
    );

    // Quantities repeat or come as a list.
    let only_humidity = text(
        &app,
        &format!("/v1/exports/readings.csv?{WINDOW}&quantity=humidity"),
        None,
    )
    .await;
    assert_eq!(
        only_humidity,
        format!("{RAW_HEADER}2024-05-01T10:00:00Z,70b3d57ed0000001,humidity,%RH,40,7.46,51.5\r\n")
    );
    let both = text(
        &app,
        &format!("/v1/exports/readings.csv?{WINDOW}&quantity=humidity&quantity=temperature"),
        None,
    )
    .await;
    assert_eq!(both, expected);
    let listed = text(
        &app,
        &format!("/v1/exports/readings.csv?{WINDOW}&quantity=temperature,humidity"),
        None,
    )
    .await;
    assert_eq!(listed, expected);

    // NDJSON: one object per line with the CSV's columns.
    let lines = ndjson(&text(&app, &format!("/v1/exports/readings.ndjson?{WINDOW}"), None).await);
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        json!({"observed_at": "2024-05-01T10:00:00Z", "dev_eui": A, "quantity": "temperature",
               "unit": "°C", "value": 21.5, "lon": 7.46, "lat": 51.5})
    );
    assert_eq!(
        lines[4],
        json!({"observed_at": "2024-05-01T10:05:00.250Z", "dev_eui": B, "quantity": "temperature",
               "unit": "°C", "value": 18.25, "lon": 7.47, "lat": 51.52})
    );

    // GeoJSON: a FeatureCollection of points at the devices' positions.
    let fc: Value = serde_json::from_str(
        &text(
            &app,
            &format!("/v1/exports/readings.geojson?{WINDOW}"),
            None,
        )
        .await,
    )
    .unwrap();
    assert_eq!(fc["type"], "FeatureCollection");
    let features = fc["features"].as_array().unwrap();
    assert_eq!(features.len(), 5);
    assert_eq!(
        features[3],
        json!({"type": "Feature",
               "geometry": {"type": "Point", "coordinates": [7.46, 51.5]},
               "properties": {"observed_at": "2024-05-01T10:00:00Z", "dev_eui": A,
                              "quantity": "humidity", "unit": "%RH", "value": 40.0}})
    );
    assert_eq!(features[4]["geometry"]["coordinates"], json!([7.47, 51.52]));

    // Parquet: read back with the parquet crate; UTC microsecond timestamps, zstd.
    let (batches, zstd) = parquet(
        &app,
        &format!("/v1/exports/readings.parquet?{WINDOW}"),
        None,
    )
    .await;
    assert!(zstd);
    let schema = batches[0].schema();
    let columns: Vec<(&str, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().to_string()))
        .filter(|(name, _)| *name != "bbox")
        .collect();
    assert_eq!(
        columns,
        [
            ("observed_at", "Timestamp(µs, \"UTC\")".to_string()),
            ("dev_eui", "Utf8".into()),
            ("quantity", "Utf8".into()),
            ("unit", "Utf8".into()),
            ("value", "Float64".into()),
            ("lon", "Float64".into()),
            ("lat", "Float64".into()),
            ("geometry", "Binary".into()),
        ]
    );
    assert_eq!(schema.field(8).name(), "bbox");
    let all = single(&batches);
    assert_eq!(
        times(all, "observed_at"),
        [
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T10:30:00Z"),
            t("2024-05-01T11:15:00Z"),
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T10:05:00.25Z"),
        ]
    );
    assert_eq!(strings(all, "dev_eui"), [A, A, A, A, B]);
    assert_eq!(
        strings(all, "quantity"),
        [
            "temperature",
            "temperature",
            "temperature",
            "humidity",
            "temperature"
        ]
    );
    assert_eq!(strings(all, "unit"), ["°C", "°C", "°C", "%RH", "°C"]);
    assert_eq!(floats(all, "value"), [21.5, 22.0, 23.0, 40.0, 18.25]);
    assert_eq!(floats(all, "lon"), [7.46, 7.46, 7.46, 7.46, 7.47]);
    assert_eq!(floats(all, "lat"), [51.5, 51.5, 51.5, 51.5, 51.52]);
    let bbox = all.column_by_name("bbox").unwrap().as_struct();
    let xmin = bbox.column_by_name("xmin").unwrap();
    assert_eq!(
        xmin.as_primitive::<Float64Type>().values().to_vec(),
        [7.46, 7.46, 7.46, 7.46, 7.47]
    );

    // Geo filters: a bbox around B, a radius around A.
    let b_only = text(
        &app,
        &format!("/v1/exports/readings.csv?{WINDOW}&bbox=7.468,51.515,7.475,51.525"),
        None,
    )
    .await;
    assert_eq!(
        b_only,
        format!("{RAW_HEADER}2024-05-01T10:05:00.250Z,f000000000000002,temperature,°C,18.25,7.47,51.52\r\n")
    );
    let near_a = text(
        &app,
        &format!(
            "/v1/exports/readings.csv?{WINDOW}&lat=51.5&lon=7.46&radius=100&quantity=humidity"
        ),
        None,
    )
    .await;
    assert_eq!(near_a, only_humidity);
    app.stop().await;
}

/// The one record batch of a small download (the reader returns up to 1024 rows per batch).
fn single(batches: &[RecordBatch]) -> &RecordBatch {
    assert_eq!(batches.len(), 1);
    &batches[0]
}

#[tokio::test]
async fn bucketed_exports_match_the_aggregates_api() {
    let app = city().await;

    let csv = text(
        &app,
        &format!(
            "/v1/exports/readings.csv?{WINDOW}&quantity=temperature&bucket=1h&agg=count,max,avg"
        ),
        None,
    )
    .await;
    assert_eq!(
        csv,
        [
            "bucket_start,dev_eui,quantity,unit,avg,max,count\r\n",
            "2024-05-01T10:00:00Z,70b3d57ed0000001,temperature,°C,21.75,22,2\r\n",
            "2024-05-01T11:00:00Z,70b3d57ed0000001,temperature,°C,23,23,1\r\n",
            "2024-05-01T10:00:00Z,f000000000000002,temperature,°C,18.25,18.25,1\r\n",
        ]
        .concat()
    );

    // Day buckets run from local midnight (Europe/Berlin) and cover whole days, also where
    // they reach outside the window: the readings at 23:59:59Z and 00:00Z count.
    let lines = ndjson(
        &text(
            &app,
            &format!("/v1/exports/readings.ndjson?{WINDOW}&quantity=temperature&bucket=1d"),
            None,
        )
        .await,
    );
    assert_eq!(
        lines,
        [
            json!({"bucket_start": "2024-04-30T22:00:00Z", "dev_eui": A, "quantity": "temperature",
                   "unit": "°C", "avg": 41.125, "min": 21.5, "max": 98.0, "count": 4}),
            json!({"bucket_start": "2024-05-01T22:00:00Z", "dev_eui": A, "quantity": "temperature",
                   "unit": "°C", "avg": 99.0, "min": 99.0, "max": 99.0, "count": 1}),
            json!({"bucket_start": "2024-04-30T22:00:00Z", "dev_eui": B, "quantity": "temperature",
                   "unit": "°C", "avg": 18.25, "min": 18.25, "max": 18.25, "count": 1}),
        ]
    );
    // The same values as the device aggregates API (which also lists empty buckets).
    let (status, agg) = app
        .get_json(&format!(
            "/v1/devices/{A}/aggregates?quantity=temperature&bucket=1d&{WINDOW}"
        ))
        .await;
    assert_eq!(status, 200, "{agg}");
    let items = agg["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for (item, line) in items.iter().zip(&lines) {
        assert_eq!(item["start"], line["bucket_start"]);
        for k in ["avg", "min", "max", "count"] {
            assert_eq!(item[k], line[k], "{k}");
        }
    }

    // GeoJSON features of buckets carry the device position as geometry.
    let fc: Value = serde_json::from_str(
        &text(
            &app,
            &format!(
                "/v1/exports/readings.geojson?{WINDOW}&quantity=temperature&bucket=1h&agg=min"
            ),
            None,
        )
        .await,
    )
    .unwrap();
    let features = fc["features"].as_array().unwrap();
    assert_eq!(features.len(), 3);
    assert_eq!(
        features[2],
        json!({"type": "Feature",
               "geometry": {"type": "Point", "coordinates": [7.47, 51.52]},
               "properties": {"bucket_start": "2024-05-01T10:00:00Z", "dev_eui": B,
                              "quantity": "temperature", "unit": "°C", "min": 18.25}})
    );

    // Parquet: count is INT64, the aggregates DOUBLE.
    let (batches, _) = parquet(
        &app,
        &format!("/v1/exports/readings.parquet?{WINDOW}&quantity=temperature&bucket=1h"),
        None,
    )
    .await;
    let b = single(&batches);
    let names: Vec<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "bucket_start",
            "dev_eui",
            "quantity",
            "unit",
            "avg",
            "min",
            "max",
            "count",
            "geometry",
            "bbox"
        ]
    );
    assert_eq!(
        times(b, "bucket_start"),
        [
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T11:00:00Z"),
            t("2024-05-01T10:00:00Z")
        ]
    );
    assert_eq!(floats(b, "avg"), [21.75, 23.0, 18.25]);
    assert_eq!(floats(b, "min"), [21.5, 23.0, 18.25]);
    let counts = b
        .column_by_name("count")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(counts.values().to_vec(), [2, 1, 1]);
    // The buckets' geometry is the device position (A, A, B).
    let ymax = b.column_by_name("bbox").unwrap().as_struct();
    let ymax = ymax.column_by_name("ymax").unwrap();
    assert_eq!(
        ymax.as_primitive::<Float64Type>().values().to_vec(),
        [51.5, 51.5, 51.52]
    );
    app.stop().await;
}

#[tokio::test]
async fn private_devices_need_an_admin_key() {
    let app = city().await;
    let admin = app.admin_key().await;
    app.store
        .put_building(&stadtpuls_store::Building {
            id: "rathaus".into(),
            name: "Rathaus".into(),
            lat: None,
            lon: None,
            address: None,
        })
        .await
        .unwrap();
    let building = app
        .store
        .create_key(Scope::Building("rathaus".into()), None)
        .await
        .unwrap()
        .secret;
    let path = format!("/v1/exports/readings.csv?{WINDOW}&quantity=temperature");
    let devices = |csv: &str| -> Vec<String> {
        let mut d: Vec<String> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect();
        d.dedup();
        d
    };
    // The unlocated device never appears: every row has a position.
    let anonymous = text(&app, &path, None).await;
    assert_eq!(devices(&anonymous), [A, B]);
    assert_eq!(text(&app, &path, Some(&building)).await, anonymous);
    let full = text(&app, &path, Some(&admin)).await;
    assert_eq!(devices(&full), [A, PRIVATE, B]);
    assert!(full
        .contains("\r\n2024-05-01T10:00:00Z,70b3d57ed0000003,temperature,°C,30,7.465,51.51\r\n"));
    // The private device inside a bbox, for the admin only.
    let bbox = format!("{path}&bbox=7.464,51.505,7.466,51.515");
    assert_eq!(text(&app, &bbox, None).await, RAW_HEADER);
    assert_eq!(devices(&text(&app, &bbox, Some(&admin)).await), [PRIVATE]);
    // A key that is not valid is a 401, not an anonymous export.
    let r = get(&app, &path, Some("sp_nope")).await;
    assert_eq!(r.status().as_u16(), 401);
    app.stop().await;
}

#[tokio::test]
async fn empty_exports_are_valid_files_and_bad_parameters_are_named() {
    let app = city().await;
    let empty = "from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z";
    assert_eq!(
        text(&app, &format!("/v1/exports/readings.csv?{empty}"), None).await,
        RAW_HEADER
    );
    assert_eq!(
        text(
            &app,
            &format!("/v1/exports/readings.csv?{empty}&bucket=15m&agg=count"),
            None
        )
        .await,
        "bucket_start,dev_eui,quantity,unit,count\r\n"
    );
    assert_eq!(
        text(&app, &format!("/v1/exports/readings.ndjson?{empty}"), None).await,
        ""
    );
    let fc: Value = serde_json::from_str(
        &text(&app, &format!("/v1/exports/readings.geojson?{empty}"), None).await,
    )
    .unwrap();
    assert_eq!(fc, json!({"type": "FeatureCollection", "features": []}));
    let (batches, _) = parquet(&app, &format!("/v1/exports/readings.parquet?{empty}"), None).await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    // A geo filter that selects no device is an empty file too.
    assert_eq!(
        text(
            &app,
            &format!("/v1/exports/readings.csv?{WINDOW}&bbox=0,0,1,1"),
            None
        )
        .await,
        RAW_HEADER
    );

    let base = "/v1/exports/readings.csv";
    app.assert_bad_params(&[
        (&format!("{base}?quantity=warmth"), "quantity"),
        (&format!("{base}?quantity=co2,,humidity"), "quantity"),
        (&format!("{base}?lat=51.5&lon=7.46&nearest=3"), "nearest"),
        (&format!("{base}?lat=51.5&radius=10"), "lon"),
        (&format!("{base}?bbox=7,51,8"), "bbox"),
        (&format!("{base}?from=yesterday"), "from"),
        (&format!("{base}?to=2024-13-01T00:00:00Z"), "to"),
        (
            &format!("{base}?from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z"),
            "from",
        ),
        (
            &format!("{base}?from=2023-01-01T00:00:00Z&to=2024-01-04T00:00:00Z"),
            "from",
        ),
        (&format!("{base}?bucket=1w"), "bucket"),
        (&format!("{base}?agg=avg"), "agg"),
        (&format!("{base}?bucket=1h&agg=sum"), "agg"),
        (&format!("{base}?bucket=1h&agg=median"), "agg"),
        (&format!("{base}?limit=10"), "limit"),
        (&format!("{base}?{WINDOW}&to=2024-05-03T00:00:00Z"), "to"),
        ("/v1/exports/readings.parquet?colour=red", "colour"),
        (
            "/v1/exports/readings.geojson?lat=51.5&lon=7.46&nearest=1",
            "nearest",
        ),
        ("/v1/exports/readings.ndjson?bucket=60m", "bucket"),
    ])
    .await;
    let (status, body) = app.get_json("/v1/exports/readings.xlsx").await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

/// Seconds of bulk readings of device A (temperature = the second, from 2024-05-01T00:00Z).
const BULK: i64 = 400_000;

#[tokio::test]
async fn many_rows_page_through_and_the_concurrency_cap_answers_503() {
    let app = TestApp::start_custom(
        &[device(
            A,
            DeviceKind::OutdoorClimate,
            None,
            Visibility::Public,
            Some((51.5, 7.46)),
        )],
        |s| s.opendata.max_concurrent_exports = 1,
    )
    .await;
    // One reading through the write path (it registers the series), the rest in bulk.
    write(
        &app,
        &[(A, Quantity::Temperature, "2024-06-01T00:00:00Z", -1.0)],
    )
    .await;
    let (inserted,): (i64,) = stadtpuls_store::testing::fetch_one(
        &app.store,
        &format!(
            "WITH ins AS (
               INSERT INTO readings (dev_eui, quantity, time, value)
               SELECT {}, 1, '2024-05-01T00:00:00Z'::timestamptz + g * interval '1 second', g
               FROM generate_series(0, {}) AS g
               RETURNING 1)
             SELECT count(*) FROM ins",
            eui(A).as_i64(),
            BULK - 1
        ),
    )
    .await;
    assert_eq!(inserted, BULK);

    // 20 000 rows: several keyset pages, each row once, in time order.
    let csv = text(
        &app,
        "/v1/exports/readings.csv?from=2024-05-01T00:00:00Z&to=2024-05-01T05:33:20Z",
        None,
    )
    .await;
    let rows: Vec<&str> = csv.split_terminator("\r\n").skip(1).collect();
    assert_eq!(rows.len(), 20_000);
    let start = t("2024-05-01T00:00:00Z");
    for (i, row) in rows.iter().enumerate() {
        let time = stadtpuls_api::params::utc(start + TimeDelta::seconds(i as i64));
        assert_eq!(
            *row,
            format!("{time},70b3d57ed0000001,temperature,°C,{i},7.46,51.5"),
            "row {i}"
        );
    }

    // One export of every bulk row (tens of MB), held open without reading: it keeps the only
    // slot, so the next export is turned away with Retry-After.
    let everything = "/v1/exports/readings.csv?from=2024-05-01T00:00:00Z&to=2024-05-06T00:00:00Z";
    let held = get(&app, everything, None).await;
    assert_eq!(held.status().as_u16(), 200);
    let small = "/v1/exports/readings.ndjson?quantity=humidity";
    let r = get(&app, small, None).await;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(header(&r, "retry-after"), "10");
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["status"], json!(503));
    assert!(
        problem["detail"].as_str().unwrap().contains("export slot"),
        "{problem}"
    );
    // Other routes are not affected.
    assert_eq!(app.get_json("/v1/quantities").await.0, 200);

    // The client goes away: the export stops and frees its slot.
    drop(held);
    app.wait_for("the export slot to be free again", || async {
        get(&app, small, None).await.status().as_u16() == 200
    })
    .await;

    // A complete download of everything while nobody else exports. The probe above may still
    // hold the slot for a moment (the server frees it when it has dropped the finished body
    // stream, which can be after the client saw the status), so a 503 here is retried until
    // the slot is free.
    let r = stadtpuls_tests::wait::until_some(
        "a free export slot for the complete download",
        stadtpuls_tests::wait::DEFAULT,
        || async {
            let r = get(&app, everything, None).await;
            (r.status().as_u16() != 503).then_some(r)
        },
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(body.matches("\r\n").count() as i64, BULK + 1);
    assert!(body.ends_with(&format!(
        "2024-05-05T15:06:39Z,70b3d57ed0000001,temperature,°C,{},7.46,51.5\r\n",
        BULK - 1
    )));
    app.stop().await;
}

/// Peak resident memory of this process (the app runs in it), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Not in CI (it writes two million readings): a CSV export of ~145 MB (and its Parquet
/// twin) streams through a few MB of buffers. Peak memory is per process, so run it alone:
/// `cargo test -p stadtpuls-tests --test exports -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn a_large_export_streams_in_bounded_memory() {
    const ROWS: i64 = 2_000_000;
    let app = TestApp::start_with(&[device(
        A,
        DeviceKind::OutdoorClimate,
        None,
        Visibility::Public,
        Some((51.5, 7.46)),
    )])
    .await;
    write(
        &app,
        &[(A, Quantity::Temperature, "2024-06-01T00:00:00Z", -1.0)],
    )
    .await;
    let _: (i64,) = stadtpuls_store::testing::fetch_one(
        &app.store,
        &format!(
            "WITH ins AS (
               INSERT INTO readings (dev_eui, quantity, time, value)
               SELECT {}, 1, '2024-05-01T00:00:00Z'::timestamptz + g * interval '1 second', g
               FROM generate_series(0, {}) AS g
               RETURNING 1)
             SELECT count(*) FROM ins",
            eui(A).as_i64(),
            ROWS - 1
        ),
    )
    .await;
    for ext in ["csv", "parquet"] {
        let before = peak_rss_kib();
        let mut r = get(
            &app,
            &format!(
                "/v1/exports/readings.{ext}?from=2024-05-01T00:00:00Z&to=2024-05-31T00:00:00Z"
            ),
            None,
        )
        .await;
        assert_eq!(r.status().as_u16(), 200);
        let mut bytes = 0usize;
        while let Some(chunk) = r.chunk().await.unwrap() {
            bytes += chunk.len();
        }
        let grown = peak_rss_kib().saturating_sub(before);
        println!("{ext}: {bytes} bytes streamed; peak RSS grew by {grown} KiB");
        // The pipeline's buffers and one Parquet row group, not the file.
        assert!(grown < 64 * 1024, "{ext}: {grown} KiB for {bytes} bytes");
    }
    app.stop().await;
}
