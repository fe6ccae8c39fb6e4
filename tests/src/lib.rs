//! End-to-end test harness: the real app (`stadtpuls::app::run`) in-process on port 0, a fresh
//! TimescaleDB database per test, fixtures published through the real Mosquitto. Each test has
//! its own topic prefix and client ids, so tests never see each other's messages or sessions.
//!
//! Also the harness of real processes shared by the fault-injection suite (`faults`,
//! `tests/tests/faults.rs`) and the benchmark (`bench/`): private Mosquitto ([`mosquitto`]) and
//! PostgreSQL ([`postgres`]), `stadtpuls` as a child ([`child`]), a connection-cutting proxy
//! ([`proxy`]), the uplink workload ([`workload`]) and `/proc` sampling ([`procs`]).
#![allow(clippy::unwrap_used)]

pub mod child;
pub mod faults;
pub mod mosquitto;
pub mod postgres;
pub mod procs;
pub mod proxy;
pub mod wait;
pub mod workload;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};
use stadtpuls::app::{self, Parts};
use stadtpuls_config::Settings;
use stadtpuls_gateways::{DevEui, Position};
use stadtpuls_store::{DeviceKind, NewDevice, Store, Visibility};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The metrics recorder is process-wide; install it once for this test binary.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
        .clone()
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

pub fn mqtt_host() -> (String, u16) {
    let host = std::env::var("STADTPULS_TEST_MQTT_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("STADTPULS_TEST_MQTT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1883);
    (host, port)
}

#[derive(Debug)]
pub struct TestApp {
    pub base: String,
    pub prefix: String,
    pub store: Store,
    /// The test's own database.
    pub db_url: String,
    pub http: reqwest::Client,
    pub publisher: AsyncClient,
    /// The app's MQTT client id: its persistent session is removed when the test ends.
    client_id: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(&[]).await
    }

    /// Starts the app on a fresh database whose registry already holds `devices`.
    pub async fn start_with(devices: &[NewDevice]) -> TestApp {
        TestApp::start_custom(devices, |_| {}).await
    }

    /// Like [`TestApp::start_with`], with a chance to change the settings first.
    pub async fn start_custom(
        devices: &[NewDevice],
        adjust: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let url = stadtpuls_store::testing::create_database().await.unwrap();
        let store = Store::connect(&url, 2, Duration::from_secs(10))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.import_devices(devices).await.unwrap();
        let (host, port) = mqtt_host();
        let mut s = Settings::default();
        s.database.url = url.clone();
        s.database.max_connections = 4;
        s.mqtt.host = host.clone();
        s.mqtt.port = port;
        s.mqtt.client_id = format!("stadtpuls-test-{id}");
        s.mqtt.topic_prefix = format!("stadtpuls-test/{id}/");
        s.http.listen = "127.0.0.1:0".into();
        s.ingest.registry_refresh_ms = 100;
        // Tests poll quickly from one address; the rate-limit test turns it back on.
        s.http.rate_limit_per_second = 0;
        // Tests change readings and look at once; the parking test of the cache turns it on.
        s.http.parking_cache_ms = 0;
        adjust(&mut s);
        let settings = Arc::new(s);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app::run(
            settings.clone(),
            Parts {
                ingest: true,
                api: true,
                // Tests run exports themselves, at times they choose.
                export: false,
            },
            Some(listener),
            Some(metrics()),
            shutdown.clone(),
        ));

        let mut o = MqttOptions::new(format!("stadtpuls-test-pub-{id}"), host, port);
        o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        let (publisher, mut el) = AsyncClient::new(o, 100);
        // Publisher event loop: drives the publishes and their PubAcks.
        tokio::spawn(async move { while el.poll().await.is_ok() {} });

        let app = TestApp {
            base,
            prefix: settings.mqtt.topic_prefix.clone(),
            store,
            db_url: url,
            http: reqwest::Client::new(),
            publisher,
            client_id: settings.mqtt.client_id.clone(),
            shutdown,
            task,
        };
        // Ready when the ingest is subscribed (messages before that would not be queued).
        app.wait_for("ingest subscribed", || async {
            app.get_json("/health").await.1["ingest"]["subscribed"] == json!(true)
        })
        .await;
        app
    }

    /// A new admin API key (its secret).
    pub async fn admin_key(&self) -> String {
        self.store
            .create_key(stadtpuls_store::keys::Scope::Admin, None)
            .await
            .unwrap()
            .secret
    }

    pub async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.publisher
            .publish(
                format!("{}{topic}", self.prefix),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    /// Publishes a ChirpStack v4 uplink of `eui` observed at `time` with the decoded `object`
    /// (a fresh deduplication id each call).
    pub async fn publish_up(&self, eui: &str, time: chrono::DateTime<chrono::Utc>, object: Value) {
        let mut up: Value = serde_json::from_slice(&fixture("chirpstack-v4-up.json")).unwrap();
        up["deviceInfo"]["devEui"] = json!(eui);
        up["time"] = json!(time.to_rfc3339());
        up["deduplicationId"] = json!(uuid::Uuid::new_v4().to_string());
        up["object"] = object;
        self.publish(
            &format!("application/17c82e96-be03-4f38-aef3-f83d48582d97/device/{eui}/event/up"),
            serde_json::to_vec(&up).unwrap(),
        )
        .await;
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Any request with an optional API key and JSON body: status and JSON (or text) body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Asserts that each path answers 400 with a problem body naming the given parameter.
    pub async fn assert_bad_params(&self, cases: &[(&str, &str)]) {
        for (path, param) in cases {
            let (status, body) = self.get_json(path).await;
            assert_eq!(
                (status, &body["parameter"]),
                (400, &json!(param)),
                "{path}: {body}"
            );
        }
    }

    /// Waits until `cond` holds ([`wait::until`], at most [`wait::DEFAULT`]); on timeout it
    /// panics naming `what`.
    pub async fn wait_for<F, Fut>(&self, what: &str, cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        wait::until(what, wait::DEFAULT, cond).await
    }

    /// A counter or gauge without labels from this process's `/metrics` (0 when it has not
    /// been recorded yet). The recorder is process-wide: every app of the test binary adds to
    /// the same counters.
    pub async fn metric(&self, name: &str) -> f64 {
        child::metric(&self.get_text("/metrics").await, name).unwrap_or(0.0)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("app stops within 10 s")
            .unwrap()
            .unwrap();
        // The app used a persistent session, as in production; a clean-session connect under
        // the same id removes it, so test sessions do not pile up in the broker.
        let (host, port) = mqtt_host();
        let mut o = MqttOptions::new(self.client_id, host, port);
        o.set_clean_session(true);
        let (client, mut el) = AsyncClient::new(o, 10);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(ev) = el.poll().await {
                if matches!(ev, rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) {
                    let _ = client.disconnect().await;
                }
                if matches!(ev, rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
}

pub fn device(
    eui: &str,
    kind: DeviceKind,
    codec: Option<&str>,
    visibility: Visibility,
    location: Option<(f64, f64)>,
) -> NewDevice {
    NewDevice {
        dev_eui: DevEui::parse_hex(eui).unwrap(),
        name: Some(format!("test {eui}")),
        kind,
        codec: codec.map(String::from),
        visibility,
        location: location.map(|(lat, lon)| Position::new(lat, lon).unwrap()),
        site_id: None,
        building_id: None,
        room_id: None,
    }
}

/// `(quantity, value, unit)` of a readings response, sorted by quantity.
pub fn readings_of(body: &Value) -> Vec<(String, f64, String)> {
    let mut v: Vec<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["quantity"].as_str().unwrap().to_string(),
                r["value"].as_f64().unwrap(),
                r["unit"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
