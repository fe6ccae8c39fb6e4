//! Every route's key handling, walked from the router's own route list
//! (`stadtpuls_api::routes::routes()`, read from the annotations the router is built from), so a
//! new route is checked without anyone adding it here: no key, a malformed, a revoked and a
//! wrong-scope key are refused (401/403, problem+json) and the right key is let in.
#![allow(clippy::unwrap_used)]

mod seed;

use reqwest::Method;
use serde_json::Value;
use stadtpuls_api::routes::{routes, Access, Route, DOC_ROUTES};
use stadtpuls_tests::TestApp;
use std::collections::BTreeSet;

/// What a request got back: status, `Content-Type`, `WWW-Authenticate` and the problem's
/// `detail` (empty for other bodies).
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    challenge: Option<String>,
    detail: String,
}

/// Sends `method path` with an optional `Authorization: Bearer` token; PUT and POST carry `{}`
/// (a body every write route rejects with 400 after the key checks, so nothing changes).
async fn call(app: &TestApp, method: &Method, path: &str, token: Option<&str>) -> Answer {
    let mut req = app
        .http
        .request(method.clone(), format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if *method == Method::PUT || *method == Method::POST {
        req = req.json(&serde_json::json!({}));
    }
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let status = r.status().as_u16();
    let content_type = header("content-type").unwrap_or_default();
    let challenge = header("www-authenticate");
    // An event stream stays open: its body is not read. Others are read to the end (an
    // export holds its slot until then).
    let detail = if content_type == "text/event-stream" {
        String::new()
    } else {
        let body = r.bytes().await.unwrap();
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if content_type == "application/problem+json" => {
                v["detail"].as_str().unwrap().to_string()
            }
            _ => String::new(),
        }
    };
    Answer {
        status,
        content_type,
        challenge,
        detail,
    }
}

fn assert_refused(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.status, status, "{what}: {a:?}");
    assert_eq!(a.content_type, "application/problem+json", "{what}: {a:?}");
    let challenge = (status == 401).then(|| "Bearer".to_string());
    assert_eq!(a.challenge, challenge, "{what}: {a:?}");
}

fn assert_let_in(a: &Answer, what: &str) {
    assert!(
        ![401, 403].contains(&a.status) && a.status < 500,
        "{what}: {a:?}"
    );
    // Served by the route, not by the fallback.
    assert!(!a.detail.starts_with("route "), "{what}: {a:?}");
}

#[tokio::test]
async fn every_route_checks_keys_as_its_documented_access_says() {
    let app = TestApp::start().await;
    let keys = seed::seed(&app).await;
    let all = routes();

    // The list is the router's: exactly the operations of the served document plus the
    // document and Swagger UI, each with a declared access.
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let mut documented: BTreeSet<(String, String)> = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    documented.extend(
        DOC_ROUTES
            .iter()
            .map(|p| ("GET".to_string(), p.to_string())),
    );
    let listed: BTreeSet<(String, String)> = all
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone()))
        .collect();
    assert_eq!(listed, documented);
    assert_eq!(listed.len(), all.len(), "a route is listed twice");
    for r in &all {
        assert!(
            r.access.is_some(),
            "{} {}: undeclared access",
            r.method,
            r.path
        );
    }
    // The router refuses what is not listed: a method a listed path does not have is a 405
    // with `Allow` (and a path that is not listed a 404; see `stadtpuls_api::routes`'s tests).
    let a = call(&app, &Method::PATCH, "/v1/devices", None).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (405, "application/problem+json")
    );
    assert_eq!(a.detail, "PATCH is not allowed here; allowed: GET, HEAD");

    let access_of = |r: &Route| r.access.unwrap();
    let count = |a: Access| all.iter().filter(|r| access_of(r) == a).count();
    // The walk below covers every kind of access (the counts move when routes are added).
    assert!(count(Access::Admin) >= 8, "{}", count(Access::Admin));
    assert!(count(Access::Building) >= 2, "{}", count(Access::Building));
    assert!(count(Access::AnyKey) >= 2, "{}", count(Access::AnyKey));
    assert!(
        count(Access::KeyOptional) >= 10,
        "{}",
        count(Access::KeyOptional)
    );
    assert!(count(Access::Public) >= 10, "{}", count(Access::Public));

    // Malformed: not shaped like a key; unknown: shaped like one, never issued.
    let malformed = "sp_nonsense";
    let unknown = format!("sp_zzzzzzzz_{}", &keys.admin[12..]);
    let mut checked = 0;
    for r in &all {
        let path = seed::concrete(&r.path);
        let what = |case: &str| format!("{} {} ({case})", r.method, r.path);
        let access = access_of(r);
        let without = call(&app, &r.method, &path, None).await;
        if access.needs_key() {
            assert_refused(&without, 401, &what("no key"));
            assert_eq!(without.detail, "missing API key (Authorization: Bearer …)");
        } else {
            assert_let_in(&without, &what("no key"));
        }
        if access == Access::Public {
            checked += 1;
            continue;
        }
        for (case, token) in [
            ("malformed key", malformed),
            ("unknown key", unknown.as_str()),
            ("revoked key", keys.revoked.as_str()),
        ] {
            let a = call(&app, &r.method, &path, Some(token)).await;
            assert_refused(&a, 401, &what(case));
        }
        match access {
            Access::Building => {
                let a = call(&app, &r.method, &path, Some(&keys.schule)).await;
                assert_refused(&a, 403, &what("another building's key"));
                assert!(a
                    .detail
                    .contains("does not grant access to building 'rathaus'"));
            }
            Access::Admin => {
                let a = call(&app, &r.method, &path, Some(&keys.rathaus)).await;
                assert_refused(&a, 403, &what("building key"));
                assert_eq!(a.detail, "this endpoint requires an admin API key");
            }
            Access::Public | Access::KeyOptional | Access::AnyKey => {}
        }
        // The right keys, except for deletions (below, once everything else is done).
        if r.method != Method::DELETE {
            if access != Access::Admin {
                let a = call(&app, &r.method, &path, Some(&keys.rathaus)).await;
                assert_let_in(&a, &what("its building's key"));
            }
            let a = call(&app, &r.method, &path, Some(&keys.admin)).await;
            assert_let_in(&a, &what("admin key"));
        }
        checked += 1;
    }
    assert_eq!(checked, all.len());

    // Deletions with the admin key, innermost first (a room before its building).
    let mut deletions: Vec<&Route> = all.iter().filter(|r| r.method == Method::DELETE).collect();
    assert!(deletions.len() >= 3);
    deletions.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
    for r in deletions {
        let path = seed::concrete(&r.path);
        let a = call(&app, &r.method, &path, Some(&keys.admin)).await;
        assert_eq!(a.status, 200, "DELETE {path}: {a:?}");
    }
    app.stop().await;
}
