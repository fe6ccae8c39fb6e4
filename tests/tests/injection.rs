//! SQL-injection-shaped and otherwise hostile strings in every string parameter the OpenAPI
//! document lists (query and path, walked from `/openapi.json`, so new parameters are covered),
//! and in the text fields of the admin bodies: each answer is a 4xx problem (a 400 naming the
//! parameter) or, where the value is just an unknown or new id, 200/201/404 — never a 5xx. The
//! readings are all still there afterwards.
#![allow(clippy::unwrap_used)]

mod seed;

use reqwest::Method;
use serde_json::{json, Value};
use stadtpuls_tests::TestApp;

/// The hostile values: SQL fragments, NUL, path traversal, odd Unicode, a very long string,
/// percent and quote characters, numbers that are not.
fn hostile() -> Vec<String> {
    vec![
        "' OR 1=1--".into(),
        "'; DROP TABLE readings;--".into(),
        "1) UNION SELECT dev_eui, quantity, time, value FROM readings--".into(),
        "\" OR \"\"=\"".into(),
        "1; SELECT pg_sleep(10)".into(),
        "$1".into(),
        "abc\0def".into(),
        "\0".into(),
        "../../../../etc/passwd".into(),
        "..".into(),
        "%00%27".into(),
        "\\x00\\'".into(),
        "Grüße 🚗 \u{202E}ﷺ\u{FEFF}".into(),
        "\u{FFFF}\u{1F4A9}".into(),
        "a".repeat(10_000),
        "NaN".into(),
        "-1e400".into(),
        "{}".into(),
        "[]".into(),
    ]
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a path segment or a
/// query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Valid values for the query parameters some routes require, so that a 400 can only be about
/// the hostile one.
const BASELINE: &[(&str, &str)] = &[("quantity", "temperature"), ("bucket", "1h")];

/// A body that gets past the body checks of each write route, so the path ids reach the store.
fn body_for(method: &Method, path: &str) -> Option<Value> {
    let polygon = json!({"type": "Polygon",
        "coordinates": [[[7.4, 51.5], [7.5, 51.5], [7.5, 51.6], [7.4, 51.5]]]});
    match (method.as_str(), path) {
        ("POST", _) => Some(polygon),
        ("PUT", "/v1/admin/parking/sites/{uid}") => Some(json!({
            "name": "Site", "type": "CAR_PARK", "capacity": 10, "lat": 51.5, "lon": 7.4})),
        ("PUT", "/v1/admin/buildings/{id}") => Some(json!({"name": "Building"})),
        ("PUT", "/v1/admin/buildings/{id}/rooms/{room}") => Some(json!({"name": "Room"})),
        ("PUT", "/v1/admin/devices/{dev_eui}") => {
            Some(json!({"kind": "other", "visibility": "private"}))
        }
        _ => None,
    }
}

/// Whether a parameter's schema is a string (possibly nullable, an enum, or a `$ref` to one).
fn is_string(doc: &Value, schema: &Value) -> bool {
    let schema = match schema["$ref"].as_str() {
        Some(r) => doc.pointer(r.strip_prefix('#').unwrap()).unwrap(),
        None => schema,
    };
    match &schema["type"] {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => schema["enum"]
            .as_array()
            .is_some_and(|e| e.iter().all(Value::is_string)),
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

async fn send(
    app: &TestApp,
    method: &Method,
    url: &str,
    key: &str,
    body: Option<&Value>,
) -> Answer {
    let mut req = app.http.request(method.clone(), url).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    // A stream that accepted the value stays open: its body is not read.
    let body = if content_type == "text/event-stream" {
        Value::Null
    } else {
        let bytes = r.bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Answer {
        status,
        content_type,
        body,
    }
}

async fn readings(app: &TestApp) -> i64 {
    stadtpuls_store::testing::fetch_one::<(i64,)>(&app.store, "SELECT count(*) FROM readings")
        .await
        .0
}

#[tokio::test]
async fn hostile_strings_in_every_string_parameter_are_client_errors() {
    let app = TestApp::start().await;
    let keys = seed::seed(&app).await;
    // Some readings, through the real pipeline.
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(10);
    for i in 0..3 {
        app.publish_up(
            seed::ROOM_SENSOR,
            t0 + chrono::Duration::minutes(i),
            json!({"temperature": 21.0 + i as f64, "humidity": 40.0}),
        )
        .await;
    }
    app.wait_for("6 readings", || async { readings(&app).await == 6 })
        .await;

    let (_, doc) = app.get_json("/openapi.json").await;
    let values = hostile();
    let mut requests = 0;
    let mut parameters = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for p in &params {
                let (name, place) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
                if !is_string(&doc, &p["schema"]) || !["query", "path"].contains(&place) {
                    continue;
                }
                parameters += 1;
                for value in &values {
                    let mut path = template.replace(&format!("{{{name}}}"), &encode(value));
                    path = seed::concrete(&path);
                    let mut query: Vec<String> = BASELINE
                        .iter()
                        .filter(|(k, _)| {
                            *k != name
                                && params.iter().any(|q| q["name"] == *k && q["in"] == "query")
                        })
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    if place == "query" {
                        query.push(format!("{name}={}", encode(value)));
                    }
                    let url = format!("{}{path}?{}", app.base, query.join("&"));
                    let body = body_for(&method, template);
                    let a = send(&app, &method, &url, &keys.admin, body.as_ref()).await;
                    requests += 1;
                    let what = format!("{method} {template} {name}={:?}: {a:?}", clip(value));
                    assert!(
                        (400..500).contains(&a.status) || [200, 201].contains(&a.status),
                        "{what}"
                    );
                    if a.status >= 400 {
                        assert_eq!(a.content_type, "application/problem+json", "{what}");
                    }
                    if a.status == 400 {
                        assert_eq!(a.body["parameter"], json!(name), "{what}");
                    }
                }
            }
        }
    }
    assert!(parameters >= 40, "{parameters} string parameters");
    assert_eq!(requests, parameters * values.len());

    // Text fields of the admin bodies.
    let fields = [
        (
            "/v1/admin/buildings/rathaus",
            json!({"name": "Rathaus"}),
            ["name", "address"],
        ),
        (
            "/v1/admin/buildings/rathaus/rooms/101",
            json!({"name": "Ratssaal"}),
            ["name", "usage"],
        ),
    ];
    for (path, base, names) in fields {
        for name in names {
            for value in &values {
                let mut body = base.clone();
                body[name] = json!(value);
                let url = format!("{}{path}", app.base);
                let a = send(&app, &Method::PUT, &url, &keys.admin, Some(&body)).await;
                let what = format!("PUT {path} {name}={:?}: {a:?}", clip(value));
                assert!([200, 400].contains(&a.status), "{what}");
                if a.status == 400 {
                    assert_eq!(a.body["parameter"], json!(name), "{what}");
                }
                if value.contains('\0') {
                    assert_eq!(a.status, 400, "{what}");
                }
            }
        }
    }

    // Nothing was dropped or rewritten.
    assert_eq!(readings(&app).await, 6);
    let (status, body) = app
        .get_json(&format!("/v1/devices/{}/readings", seed::BAY))
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Malformed requests of every other kind — bodies too long, not JSON, of the wrong shape;
/// path segments that are not UTF-8; windows over the limit; methods a route does not have —
/// are 4xx problem+json naming what is wrong, and counted.
#[tokio::test]
async fn malformed_requests_are_specific_problems() {
    let app = TestApp::start_custom(&[], |s| {
        s.http.max_body_bytes = 4096;
        s.http.max_window_days = 31;
    })
    .await;
    let keys = seed::seed(&app).await;
    let url = |p: &str| format!("{}{p}", app.base);
    let building = url("/v1/admin/buildings/rathaus");

    // (request, status, parameter, a phrase of the detail)
    let put = |body: Vec<u8>, content_type: Option<&str>| {
        let mut r = app.http.put(&building).bearer_auth(&keys.admin).body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        r
    };
    let long = format!("{{\"name\": \"{}\"}}", "x".repeat(5000)).into_bytes();
    let get = |p: &str| app.http.get(url(p)).bearer_auth(&keys.admin);
    let ok_body = br#"{"name": "Rathaus"}"#.to_vec();
    let cases = vec![
        (put(long, Some("application/json")), 413, Some("body"), "longer than 4096 bytes"),
        (put(ok_body.clone(), Some("text/plain")), 415, Some("content-type"), "'text/plain' is not JSON"),
        (
            put(ok_body.clone(), Some("application/x-www-form-urlencoded")),
            415,
            Some("content-type"),
            "is not JSON",
        ),
        (put(b"{not json".to_vec(), Some("application/json")), 400, Some("body"), "key must be a string"),
        (put(b"{\"name\": ".to_vec(), Some("application/json")), 400, Some("name"), "EOF"),
        (put(b"{\"name\": 5}".to_vec(), None), 400, Some("name"), "invalid type"),
        (put(b"{\"name\": \"a\\u0000b\"}".to_vec(), None), 400, Some("name"), "NUL"),
        (put(b"[\"x\", \"Rathaus\"]".to_vec(), None), 400, Some("body"), "expected a JSON object"),
        (put(Vec::new(), None), 400, Some("body"), "expected a JSON object"),
        (get("/v1/buildings/%FF%FE"), 400, Some("id"), "not valid UTF-8"),
        (get("/v1/buildings/a%00b"), 400, Some("id"), "NUL"),
        (get("/v1/devices?bbox=%00"), 400, Some("bbox"), "NUL"),
        (get("/v1/devices/0b00000000000001/readings?from=2024-01-01T00:00:00Z&to=2024-03-01T00:00:00Z"),
            400, Some("from"), "at most 31 days per request"),
        (get("/v1/devices/0b00000000000001/aggregates?quantity=co2&bucket=1d&from=2024-01-01T00:00:00Z&to=2024-03-01T00:00:00Z"),
            400, Some("from"), "at most 31 days per request"),
        (get("/v1/exports/readings.csv?from=2024-01-01T00:00:00Z&to=2024-03-01T00:00:00Z"),
            400, Some("from"), "at most 31 days per export"),
        (get("/v1/parking/sites/hbf-nord/history?bucket=1d&from=2024-01-01T00:00:00Z&to=2024-03-01T00:00:00Z"),
            400, Some("from"), "at most 31 days per request"),
        (get("/v1/devices/0b00000000000001/readings?limit=abc"), 400, Some("limit"), "between 1 and"),
        (app.http.patch(url("/v1/buildings/rathaus")).bearer_auth(&keys.admin), 405, None,
            "PATCH is not allowed here; allowed: GET, HEAD"),
        (app.http.delete(url("/v1/quantities")), 405, None, "allowed: GET, HEAD"),
        (get("/v1/nowhere"), 404, None, "route /v1/nowhere not found"),
    ];
    for (request, status, parameter, phrase) in cases {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        let r = app.http.execute(request).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], json!(status), "{what}: {body}");
        assert_eq!(body["parameter"], json!(parameter), "{what}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(phrase), "{what}: {detail}");
    }
    // Nothing above changed the building.
    let (status, body) = app
        .send(
            Method::GET,
            "/v1/buildings/rathaus",
            Some(&keys.admin),
            None,
        )
        .await;
    assert_eq!((status, &body["name"]), (200, &json!("Rathaus")));
    // A body at the limit is fine.
    let padded = format!(
        "{{\"name\": \"Rathaus\", \"address\": \"{}\"}}",
        "x".repeat(4060)
    );
    let r = put(padded.into_bytes(), Some("application/json; charset=utf-8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Every rejection is counted, by the parameter it names.
    let metrics = app.get_text("/metrics").await;
    for param in [
        "body",
        "content-type",
        "name",
        "id",
        "bbox",
        "from",
        "limit",
        "method",
    ] {
        let line = format!("stadtpuls_api_bad_requests_total{{param=\"{param}\"}}");
        assert!(metrics.contains(&line), "{line} missing");
    }
    app.stop().await;
}
