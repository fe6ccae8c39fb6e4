//! The open-data API end to end: an export run into a temporary directory with a fixed clock,
//! then the dataset listing, manifests whose URLs download the very bytes (same SHA-256),
//! conditional and range requests, path traversal and symlinks that must not lead out of the
//! export directory, the DCAT-AP.de catalogue as JSON-LD and as Turtle (parsed back), and the
//! recorded runs.
//!
//! Each behaviour is its own test on its own seeded app ([`seeded`]: fresh database, the same
//! three uplinks, the same export with a fixed clock, its own export directory). Each
//! `#[tokio::test]` has its own runtime, and an app spawned on one runtime dies with it, so a
//! single app shared between tests would need a runtime of its own and clients that outlive
//! the tests' runtimes; seeding per test costs about a second and keeps the tests independent
//! (the traversal test plants files in its directory that no other test sees).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::Digest;
use stadtpuls_config::{DatasetSettings, Partitioning, Settings};
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_opendata_export::export::{Exporter, RunSummary, Trigger};
use stadtpuls_opendata_export::partition::partitions_between;
use stadtpuls_store::clock::Clock;
use stadtpuls_store::testing::{uplink_record, utc};
use stadtpuls_store::{Batch, DeviceKind, Visibility};
use stadtpuls_tests::{device, TestApp};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

const DATASET: &str = "parking_occupancy";
const DL_ZERO: &str = "http://dcat-ap.de/def/licenses/dl-zero-de/2.0";

fn datasets() -> Vec<DatasetSettings> {
    let parking = json!({
        "name": DATASET,
        "title_de": "Belegung von Parkplätzen",
        "title_en": "Parking bay occupancy",
        "description_de": "Belegung einzelner Stellplätze.",
        "quantities": ["occupied"],
        "kinds": ["parking_bay"],
        "formats": ["parquet", "csv"],
    });
    // Configured but never exported: listed without files or runs.
    let hourly = json!({
        "name": "parking_hourly",
        "title_de": "Belegung stündlich",
        "description_de": "Belegung je Stunde.",
        "quantities": ["occupied"],
        "kinds": ["parking_bay"],
        "aggregation": "1h",
        "partitioning": "month",
        "licence": "dl-by-de/2.0",
    });
    vec![
        serde_json::from_value(parking).unwrap(),
        serde_json::from_value(hourly).unwrap(),
    ]
}

fn configure(s: &mut Settings, dir: &Path) {
    s.opendata.output_dir = dir.display().to_string();
    s.opendata.datasets = datasets();
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stadtpuls-{what}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// GET an absolute URL with extra headers.
async fn get(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.http.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Sends `GET target` as written, bypassing URL normalisation (clients resolve `..` and
/// `%2e%2e` before sending; an attacker does not). Returns the status and the whole response.
async fn raw_get(app: &TestApp, target: &str) -> (u16, String) {
    let addr = app.base.strip_prefix("http://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

/// An app serving one export: two public bays, three occupancy uplinks on two Berlin days,
/// exported by a manual run with the clock fixed at 2026-10-03T03:00:00Z, so every value the
/// tests expect is deterministic.
struct Seeded {
    app: TestApp,
    /// The export directory.
    dir: PathBuf,
    run: RunSummary,
}

/// (format, partition, file under the dataset directory, rows) of every exported data file,
/// in the order the listing gives them.
const DATA_FILES: [(&str, &str, &str, u64); 4] = [
    ("parquet", "2026-10-01", "date=2026-10-01/part-0.parquet", 2),
    ("csv", "2026-10-01", "date=2026-10-01/part-0.csv", 2),
    ("parquet", "2026-10-02", "date=2026-10-02/part-0.parquet", 1),
    ("csv", "2026-10-02", "date=2026-10-02/part-0.csv", 1),
];

async fn seeded() -> Seeded {
    let dir = temp_dir("opendata-api");
    let devices = [
        device(
            "70b3d57ed0000a01",
            DeviceKind::ParkingBay,
            None,
            Visibility::Public,
            Some((51.5178, 7.4593)),
        ),
        device(
            "70b3d57ed0000a02",
            DeviceKind::ParkingBay,
            None,
            Visibility::Public,
            Some((51.518, 7.46)),
        ),
    ];
    let app = TestApp::start_custom(&devices, |s| configure(s, &dir)).await;
    let occ = |eui: &str, at: &str, v: f64| {
        uplink_record(
            &format!("{eui}-{at}"),
            DevEui::parse_hex(eui).unwrap(),
            utc(at),
            &[(Quantity::Occupied, v)],
        )
    };
    app.store
        .write_batch(&Batch {
            uplinks: vec![
                // Berlin days (CEST): 2026-10-01 = [09-30T22:00Z, 10-01T22:00Z).
                occ("70b3d57ed0000a01", "2026-10-01T08:00:00Z", 1.0),
                occ("70b3d57ed0000a01", "2026-10-01T09:00:00Z", 0.0),
                occ("70b3d57ed0000a02", "2026-10-02T10:00:00Z", 1.0),
            ],
            ..Batch::default()
        })
        .await
        .unwrap();

    // Export two past days with a fixed clock: every value below is deterministic.
    let mut settings = Settings::default();
    configure(&mut settings, &dir);
    let now = utc("2026-10-03T03:00:00Z");
    let exporter = Exporter::new(
        app.store.clone(),
        Arc::new(settings),
        Arc::new(FixedClock(now)),
    )
    .unwrap();
    let ds = exporter.dataset(DATASET).unwrap().clone();
    let parts = partitions_between(
        utc("2026-09-30T22:00:00Z"),
        utc("2026-10-02T22:00:00Z"),
        Partitioning::Day,
        exporter.time_zone(),
    );
    let run = exporter
        .run(&ds, &parts, Trigger::Manual, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((run.partitions, run.rows), (2, 3));
    Seeded { app, dir, run }
}

impl Seeded {
    fn files_url(&self) -> String {
        format!("{}/v1/opendata/files", self.app.base)
    }

    fn dataset_iri(&self) -> String {
        format!("{}/v1/opendata/datasets/{DATASET}", self.app.base)
    }

    /// A file of the export directory, by its path relative to it.
    fn on_disk(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(rel)).unwrap()
    }

    /// The listing's `files` of the exported dataset, from the files on disk.
    fn expected_files(&self) -> Vec<Value> {
        DATA_FILES
            .iter()
            .map(|(format, partition, file, rows)| {
                let rel = format!("dataset={DATASET}/{file}");
                let bytes = self.on_disk(&rel);
                json!({
                    "format": format,
                    "partition": partition,
                    "url": format!("{}/{rel}", self.files_url()),
                    "rows": rows,
                    "bytes": bytes.len(),
                    "sha256": sha256(&bytes),
                    "modified": "2026-10-03T03:00:00Z",
                })
            })
            .collect()
    }

    /// Bytes of the data files, all and Parquet only.
    fn data_bytes(&self, only_format: Option<&str>) -> usize {
        DATA_FILES
            .iter()
            .filter(|(format, ..)| only_format.is_none_or(|f| f == *format))
            .map(|(_, _, file, _)| self.on_disk(&format!("dataset={DATASET}/{file}")).len())
            .sum()
    }

    /// The run as `/v1/opendata/runs` and the listing's `last_run` show it.
    fn expected_run(&self) -> Value {
        json!({
            "id": self.run.run_id,
            "dataset": DATASET,
            "trigger": "manual",
            "status": "ok",
            "window_start": "2026-09-30T22:00:00Z",
            "window_end": "2026-10-02T22:00:00Z",
            "started_at": "2026-10-03T03:00:00Z",
            "finished_at": "2026-10-03T03:00:00Z",
            "duration_ms": 0,
            "partitions": 2,
            "rows": 3,
            "bytes": self.data_bytes(None),
            "error": null,
        })
    }

    /// The exported dataset as the listing shows it.
    fn expected_item(&self) -> Value {
        let dataset_iri = self.dataset_iri();
        json!({
            "name": DATASET,
            "url": dataset_iri,
            "title_de": "Belegung von Parkplätzen",
            "title_en": "Parking bay occupancy",
            "description_de": "Belegung einzelner Stellplätze.",
            "description_en": "",
            "licence": DL_ZERO,
            "aggregation": "raw",
            "partitioning": "day",
            "formats": ["parquet", "csv"],
            "schedule": "0 30 2 * * *",
            "temporal": {"start": "2026-09-30T22:00:00Z", "end": "2026-10-02T22:00:00Z"},
            "modified": "2026-10-03T03:00:00Z",
            "rows": 3,
            "bytes": self.data_bytes(None),
            "bbox": [7.4593, 51.5178, 7.46, 51.518],
            "last_run": self.expected_run(),
            "manifest_url": format!("{dataset_iri}/manifest.json"),
            "files": self.expected_files(),
        })
    }

    /// The exported dataset's item of the listing (checked in full by
    /// `the_dataset_listing_shows_exported_and_configured_datasets`).
    async fn listed_item(&self) -> Value {
        let (status, list) = self.app.get_json("/v1/opendata/datasets").await;
        assert_eq!(
            (status, &list["items"][0]["name"]),
            (200, &json!(DATASET)),
            "{list}"
        );
        list["items"][0].clone()
    }

    async fn finish(self) {
        self.app.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn the_dataset_listing_shows_exported_and_configured_datasets() {
    let s = seeded().await;
    let app = &s.app;
    let (status, list) = app.get_json("/v1/opendata/datasets").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_count"], 2);
    let item = &list["items"][0];
    assert_eq!(item, &s.expected_item());
    // Configured but never exported: listed without files or runs.
    let hourly = &list["items"][1];
    assert_eq!(hourly["name"], "parking_hourly");
    assert_eq!(
        hourly["licence"],
        "http://dcat-ap.de/def/licenses/dl-by-de/2.0"
    );
    assert_eq!(
        (
            &hourly["aggregation"],
            &hourly["partitioning"],
            &hourly["rows"]
        ),
        (&json!("1h"), &json!("month"), &json!(0))
    );
    assert_eq!(hourly["files"], json!([]));
    assert!(hourly["last_run"].is_null() && hourly["temporal"].is_null());
    assert!(hourly["bbox"].is_null() && hourly["modified"].is_null());

    let (status, one) = app
        .get_json(&format!("/v1/opendata/datasets/{DATASET}"))
        .await;
    assert_eq!((status, &one), (200, item));
    s.finish().await;
}

#[tokio::test]
async fn an_unknown_dataset_is_a_404_and_an_unknown_parameter_a_400() {
    let s = seeded().await;
    let app = &s.app;
    for path in [
        "/v1/opendata/datasets/nope",
        "/v1/opendata/datasets/nope/manifest.json",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["detail"], "dataset 'nope' not found");
    }
    app.assert_bad_params(&[("/v1/opendata/datasets?x=1", "x")])
        .await;
    s.finish().await;
}

#[tokio::test]
async fn manifest_urls_download_exactly_the_recorded_bytes() {
    let s = seeded().await;
    let (app, base, files_url) = (&s.app, &s.app.base, s.files_url());
    let item = s.listed_item().await;
    let (status, manifest) = app
        .get_json(&item["manifest_url"].as_str().unwrap()[base.len()..])
        .await;
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(manifest["dataset"], DATASET);
    assert_eq!(manifest["modified"], "2026-10-03T03:00:00Z");
    let files = manifest["files"].as_array().unwrap();
    let sensors = manifest["sensors"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    assert_eq!(sensors.len(), 2, "sensors.parquet and sensors.csv");
    for f in files.iter().chain(sensors) {
        let path = f["path"].as_str().unwrap();
        let url = f["url"].as_str().unwrap();
        assert_eq!(url, format!("{files_url}/{path}"));
        let r = get(app, url, &[]).await;
        assert_eq!(r.status(), 200, "{url}");
        let content_type = header(&r, "content-type").to_string();
        let etag = header(&r, "etag").to_string();
        assert_eq!(header(&r, "accept-ranges"), "bytes");
        assert!(r.headers().contains_key("last-modified"));
        let body = r.bytes().await.unwrap();
        assert_eq!(body.as_ref(), s.on_disk(path).as_slice(), "{url}");
        assert_eq!(json!(sha256(&body)), f["sha256"], "{url}");
        assert_eq!(json!(body.len()), f["bytes"], "{url}");
        if path.ends_with(".parquet") {
            assert_eq!(content_type, "application/vnd.apache.parquet");
        } else {
            assert_eq!(content_type, "text/csv; charset=utf-8; header=present");
        }
        if path.starts_with("dataset=") {
            // Data files carry their recorded hash as the validator.
            assert_eq!(etag, format!("\"{}\"", sha256(&body)));
        } else {
            assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        }
    }
    let files_in_manifest: Vec<&str> = files.iter().map(|f| f["url"].as_str().unwrap()).collect();
    let listed: Vec<&str> = item["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        files_in_manifest.iter().collect::<BTreeSet<_>>(),
        listed.iter().collect::<BTreeSet<_>>()
    );
    let r = get(
        app,
        &format!("{files_url}/meta/{DATASET}/manifest.json"),
        &[],
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), header(&r, "content-type")),
        (200, "application/json")
    );
    let (status, empty) = app
        .get_json("/v1/opendata/datasets/parking_hourly/manifest.json")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&empty["files"], &empty["sensors"]),
        (&json!([]), &json!([]))
    );
    s.finish().await;
}

#[tokio::test]
async fn files_answer_validators_and_conditional_requests() {
    let s = seeded().await;
    let app = &s.app;
    let rel = format!("dataset={DATASET}/date=2026-10-01/part-0.parquet");
    let url = format!("{}/{rel}", s.files_url());
    let bytes = s.on_disk(&rel);
    let size = bytes.len();
    let etag = format!("\"{}\"", sha256(&bytes));
    let r = get(app, &url, &[]).await;
    let last_modified = header(&r, "last-modified").to_string();
    assert_eq!(header(&r, "content-length"), size.to_string());
    assert_eq!(header(&r, "cache-control"), "no-cache");

    let r = get(app, &url, &[("If-None-Match", &etag)]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "etag"), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get(app, &url, &[("If-None-Match", "\"other\", W/\"x\"")]).await;
    assert_eq!(r.status(), 200);
    let r = get(app, &url, &[("If-Modified-Since", &last_modified)]).await;
    assert_eq!(r.status(), 304);
    let r = get(
        app,
        &url,
        &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status(), 200);
    // If-None-Match decides when both are sent.
    let r = get(
        app,
        &url,
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", &last_modified),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);

    // A client asking for gzip still gets the file as it is (size, ranges and ETag intact).
    let r = get(app, &url, &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(header(&r, "content-length"), size.to_string());
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    let r = app.http.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), size.to_string());
    assert_eq!(header(&r, "etag"), etag);
    s.finish().await;
}

#[tokio::test]
async fn files_answer_range_requests() {
    let s = seeded().await;
    let app = &s.app;
    let rel = format!("dataset={DATASET}/date=2026-10-01/part-0.parquet");
    let url = format!("{}/{rel}", s.files_url());
    let bytes = s.on_disk(&rel);
    let size = bytes.len();
    let etag = format!("\"{}\"", sha256(&bytes));
    let r = get(app, &url, &[("Range", "bytes=0-3")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), format!("bytes 0-3/{size}"));
    assert_eq!(header(&r, "content-length"), "4");
    assert_eq!(header(&r, "etag"), etag);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"PAR1");
    let r = get(app, &url, &[("Range", "bytes=-4")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {}-{}/{size}", size - 4, size - 1)
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"PAR1", "footer magic");
    let r = get(app, &url, &[("Range", "bytes=4-"), ("If-Range", &etag)]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[4..]);
    let r = get(
        app,
        &url,
        &[("Range", "bytes=0-3"), ("If-Range", "\"stale\"")],
    )
    .await;
    assert_eq!(r.status(), 200, "a changed file is sent whole");
    assert_eq!(r.bytes().await.unwrap().len(), size);
    let r = get(app, &url, &[("Range", "bytes=999999999-")]).await;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), format!("bytes */{size}"));
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    s.finish().await;
}

#[tokio::test]
async fn nothing_outside_the_export_directory_nor_unexported_files_are_served() {
    let s = seeded().await;
    let (app, base, dir) = (&s.app, &s.app.base, &s.dir);
    let outside = temp_dir("opendata-outside");
    std::fs::write(outside.join("secret.csv"), "TOP-SECRET\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.csv"), dir.join("leak.csv")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("outlink")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not exported").unwrap();
    std::fs::write(dir.join(".hidden.csv"), "hidden").unwrap();
    let outside_name = outside.file_name().unwrap().to_str().unwrap();
    let attempts = [
        ("/v1/opendata/files/..%2F..%2Fetc%2Fpasswd".to_string(), 400),
        ("/v1/opendata/files/%2e%2e/x".to_string(), 400),
        (
            "/v1/opendata/files/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd".to_string(),
            400,
        ),
        ("/v1/opendata/files/../../../../etc/passwd".to_string(), 400),
        (
            format!("/v1/opendata/files/dataset={DATASET}/../../{outside_name}/secret.csv"),
            400,
        ),
        (
            format!("/v1/opendata/files/..%2F{outside_name}%2Fsecret.csv"),
            400,
        ),
        ("/v1/opendata/files/%2Fetc%2Fpasswd".to_string(), 400),
        ("/v1/opendata/files/..%5C..%5Cetc%5Cpasswd".to_string(), 400),
        ("/v1/opendata/files/x.csv%00.parquet".to_string(), 400),
        ("/v1/opendata/files/a//b.csv".to_string(), 400),
        ("/v1/opendata/files/leak.csv".to_string(), 404),
        ("/v1/opendata/files/outlink/secret.csv".to_string(), 404),
        ("/v1/opendata/files/notes.txt".to_string(), 404),
        ("/v1/opendata/files/.hidden.csv".to_string(), 404),
        ("/v1/opendata/files/meta".to_string(), 404),
        (
            format!("/v1/opendata/files/dataset={DATASET}/date=2026-10-05/part-0.parquet"),
            404,
        ),
    ];
    for (target, want) in &attempts {
        let (status, text) = raw_get(app, target).await;
        assert_eq!(status, *want, "{target}: {text}");
        assert!(
            text.contains("application/problem+json"),
            "{target}: {text}"
        );
        assert!(
            !text.contains("TOP-SECRET") && !text.contains("root:"),
            "{target} leaked: {text}"
        );
    }
    // The same through an ordinary client (which may normalise the dots away first).
    for path in [
        "/v1/opendata/files/..%2F..%2Fetc%2Fpasswd",
        "/v1/opendata/files/%2e%2e/x",
    ] {
        let r = get(app, &format!("{base}{path}"), &[]).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!([400, 404].contains(&status), "{path}: {status} {text}");
        assert!(!text.contains("root:"), "{path} leaked: {text}");
    }
    s.finish().await;
    let _ = std::fs::remove_dir_all(&outside);
}

#[tokio::test]
async fn the_catalogue_is_json_ld_by_default() {
    let s = seeded().await;
    let (app, base) = (&s.app, &s.app.base);
    let dataset_iri = s.dataset_iri();
    let item = s.listed_item().await;
    let r = get(app, &format!("{base}/v1/opendata/catalog"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/ld+json");
    let text = r.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let nodes = doc["@graph"].as_array().unwrap();
    let node = nodes
        .iter()
        .find(|n| n["@id"] == json!(dataset_iri))
        .unwrap_or_else(|| panic!("no dataset node in {text}"));
    assert!(node["@type"]
        .as_array()
        .unwrap()
        .contains(&json!("dcat:Dataset")));
    assert!(text.contains(DL_ZERO), "{text}");
    for f in item["files"].as_array().unwrap() {
        let f = f["url"].as_str().unwrap();
        assert!(text.contains(f), "{f} not in the catalogue");
    }
    s.finish().await;
}

#[tokio::test]
async fn the_catalogue_is_turtle_on_request_and_406_for_other_types() {
    let s = seeded().await;
    let (app, base) = (&s.app, &s.app.base);
    let dataset_iri = s.dataset_iri();
    let item = s.listed_item().await;
    let first_file = item["files"][0]["url"].as_str().unwrap();
    let parquet_bytes = s.data_bytes(Some("parquet"));
    let r = get(
        app,
        &format!("{base}/v1/opendata/catalog"),
        &[("Accept", "text/turtle")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/turtle; charset=utf-8");
    let turtle = r.text().await.unwrap();
    let triples: BTreeSet<String> = oxttl::TurtleParser::new()
        .for_slice(turtle.as_bytes())
        .map(|t| t.unwrap().to_string())
        .collect();
    let parquet = format!("{dataset_iri}#parquet");
    for expected in [
        format!(
            "<{base}/v1/opendata/catalog> <http://www.w3.org/ns/dcat#dataset> <{dataset_iri}>"
        ),
        format!(
            "<{dataset_iri}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://www.w3.org/ns/dcat#Dataset>"
        ),
        format!("<{dataset_iri}> <http://www.w3.org/ns/dcat#distribution> <{parquet}>"),
        format!("<{parquet}> <http://purl.org/dc/terms/license> <{DL_ZERO}>"),
        format!(
            "<{parquet}> <http://www.w3.org/ns/dcat#accessURL> <{dataset_iri}/manifest.json>"
        ),
        format!("<{parquet}> <http://www.w3.org/ns/dcat#downloadURL> <{first_file}>"),
        format!(
            "<{parquet}> <http://www.w3.org/ns/dcat#byteSize> \"{parquet_bytes}\"^^<http://www.w3.org/2001/XMLSchema#decimal>"
        ),
        format!(
            "<{dataset_iri}#period> <http://www.w3.org/ns/dcat#startDate> \"2026-09-30T22:00:00Z\"^^<http://www.w3.org/2001/XMLSchema#dateTime>"
        ),
    ] {
        assert!(
            triples.contains(&expected),
            "missing {expected} in:\n{turtle}"
        );
    }
    let r = get(
        app,
        &format!("{base}/v1/opendata/catalog"),
        &[("Accept", "application/xml")],
    )
    .await;
    assert_eq!(r.status(), 406);
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["status"], 406);
    s.finish().await;
}

#[tokio::test]
async fn export_runs_are_listed_per_dataset() {
    let s = seeded().await;
    let app = &s.app;
    let (status, runs) = app
        .get_json(&format!("/v1/opendata/runs?dataset={DATASET}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(runs, json!({"total_count": 1, "items": [s.expected_run()]}));
    let (_, runs) = app
        .get_json("/v1/opendata/runs?dataset=parking_hourly")
        .await;
    assert_eq!(runs["total_count"], 0);
    let (_, runs) = app.get_json("/v1/opendata/runs?limit=1").await;
    assert_eq!(runs["total_count"], 1);
    app.assert_bad_params(&[
        ("/v1/opendata/runs?dataset=Bad-Name", "dataset"),
        ("/v1/opendata/runs?limit=0", "limit"),
        ("/v1/opendata/runs?limit=1001", "limit"),
        ("/v1/opendata/runs?since=x", "since"),
    ])
    .await;
    s.finish().await;
}
