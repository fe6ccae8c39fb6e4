//! The OpenAPI document: it parses, lists every route the API serves (and only those), every
//! `$ref` resolves, and the documented security matches what the routes enforce.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::Value;
use stadtpuls_tests::TestApp;
use std::collections::BTreeSet;

/// Every operation of the API. Adding a route means adding it here too: the test then proves it
/// is documented and served.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/v1/quantities"),
    ("get", "/v1/devices"),
    ("post", "/v1/devices/search"),
    ("get", "/v1/devices/{dev_eui}"),
    ("get", "/v1/devices/{dev_eui}/readings"),
    ("get", "/v1/devices/{dev_eui}/aggregates"),
    ("get", "/v1/latest"),
    ("post", "/v1/latest/search"),
    ("get", "/v1/stream"),
    ("get", "/v1/parking/sites"),
    ("post", "/v1/parking/sites/search"),
    ("get", "/v1/parking/sites/{uid}"),
    ("get", "/v1/parking/sites/{uid}/history"),
    ("get", "/v1/parking/spots"),
    ("post", "/v1/parking/spots/search"),
    ("get", "/v1/buildings"),
    ("post", "/v1/buildings/search"),
    ("get", "/v1/buildings/{id}"),
    ("get", "/v1/buildings/{id}/rooms/{room}/history"),
    ("get", "/v1/admin/devices"),
    ("put", "/v1/admin/parking/sites/{uid}"),
    ("delete", "/v1/admin/parking/sites/{uid}"),
    ("put", "/v1/admin/buildings/{id}"),
    ("delete", "/v1/admin/buildings/{id}"),
    ("put", "/v1/admin/buildings/{id}/rooms/{room}"),
    ("delete", "/v1/admin/buildings/{id}/rooms/{room}"),
    ("put", "/v1/admin/devices/{dev_eui}"),
    ("get", "/v1/exports/readings.csv"),
    ("get", "/v1/exports/readings.ndjson"),
    ("get", "/v1/exports/readings.geojson"),
    ("get", "/v1/exports/readings.parquet"),
    ("get", "/v1/opendata/catalog"),
    ("get", "/v1/opendata/datasets"),
    ("get", "/v1/opendata/datasets/{name}"),
    ("get", "/v1/opendata/datasets/{name}/manifest.json"),
    ("get", "/v1/opendata/runs"),
    ("get", "/v1/opendata/files/{path}"),
];

/// Follows a local `#/components/...` reference.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` anywhere below `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|x| refs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_matches_the_router() {
    // The in-process document is the one served.
    let offline = serde_json::to_value(stadtpuls_api::openapi_document()).unwrap();
    let app = TestApp::start().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc, offline);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Stadtpuls API");
    // It parses as an OpenAPI document.
    let parsed: utoipa::openapi::OpenApi = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(parsed.paths.paths.len(), 36);

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);

    // Operation ids are unique (client generators name methods after them).
    let ids: Vec<&str> = OPERATIONS
        .iter()
        .map(|(m, p)| doc["paths"][p][m]["operationId"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert!(unique.contains("parking_site_history"));

    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(all_refs.len() > 50, "{}", all_refs.len());
    for r in &all_refs {
        assert!(resolve(&doc, r).is_some(), "dangling $ref {r}");
    }

    // Each documented operation is served: concrete paths answer something other than the
    // fallback's "route … not found". Operations documented with `security` reject a request
    // without a key (401); the others do not ask for one.
    for (method, path) in OPERATIONS {
        let op = &doc["paths"][path][method];
        assert!(op["responses"].get("200").is_some() || op["responses"].get("201").is_some());
        assert!(
            !op["tags"].as_array().unwrap().is_empty(),
            "{method} {path}"
        );
        let concrete = path
            .replace("{dev_eui}", "70b3d57ed0000001")
            .replace("{uid}", "nope")
            .replace("{id}", "nope")
            .replace("{room}", "nope");
        if *path == "/v1/stream" {
            continue; // a stream answers 200 and stays open; covered by the live tests
        }
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, body) = app.send(m, &concrete, None, None).await;
        let fallback = body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("route "));
        assert!(!fallback, "{method} {path} is documented but not served");
        // `security: [{}, {"api_key": []}]` means a key is optional (it shows more).
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| !s.iter().any(|r| r.as_object().unwrap().is_empty()));
        assert_eq!(status == 401, secured, "{method} {path}: {status} {body}");
    }

    // A route that is not documented is not served either.
    let (status, body) = app.get_json("/v1/undocumented").await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (404, "route /v1/undocumented not found")
    );

    // Swagger UI, from the vendored copy.
    let html = app.get_text("/docs/").await;
    assert!(html.contains("swagger-ui"), "{html}");
    app.stop().await;
}
