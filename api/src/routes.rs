//! The served routes as data — method, path and who may call each — read from the OpenAPI
//! document the router is built from, and the [`guard`] that refuses every other route.
//!
//! `api_routes()` registers each handler through `utoipa_axum::routes!`, which takes method and
//! path from the handler's `#[utoipa::path]`; the `security` of that annotation says who may
//! call it (see [`Access`]). So [`routes`] is the router's own route list, and tests walk it
//! (`tests/tests/auth_routes.rs` sends every private route no key, a malformed, a revoked and a
//! wrong-scope key). A route added to the router some other way (`.route(…)`) is not in the
//! document; the guard answers it 404 and logs an error, so it cannot be served unchecked.

use crate::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The security scheme every private route names.
pub const SCHEME: &str = "api_key";
/// Scope of routes that need an admin key: `security(("api_key" = ["admin"]))`.
pub const SCOPE_ADMIN: &str = "admin";
/// Scope of routes about the building in their `{id}` parameter: a key for that building, or
/// an admin key: `security(("api_key" = ["building"]))`.
pub const SCOPE_BUILDING: &str = "building";

/// Who may call a route, as its `security` in the OpenAPI document says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// No `security`: anyone; an `Authorization` header is not read.
    Public,
    /// `security: [{}, {"api_key": []}]`: anyone; a valid key shows more, and a key that is
    /// sent must be valid (401 otherwise).
    KeyOptional,
    /// `security: [{"api_key": []}]`: any valid key (what it shows depends on the key).
    AnyKey,
    /// `security: [{"api_key": ["building"]}]`: a key for the building in the path, or admin.
    Building,
    /// `security: [{"api_key": ["admin"]}]`: an admin key.
    Admin,
}

impl Access {
    /// Whether a request without a key is turned away (401).
    pub fn needs_key(self) -> bool {
        match self {
            Access::Public | Access::KeyOptional => false,
            Access::AnyKey | Access::Building | Access::Admin => true,
        }
    }

    /// Reads an operation's `security` (as JSON); `None` for a form not listed above.
    fn from_security(security: &serde_json::Value) -> Option<Access> {
        let requirements = match security {
            serde_json::Value::Null => return Some(Access::Public),
            serde_json::Value::Array(r) if r.is_empty() => return Some(Access::Public),
            serde_json::Value::Array(r) => r,
            _ => return None,
        };
        // Each requirement: `{}` (no key) or `{"api_key": [scopes]}`.
        let mut anonymous = false;
        let mut scopes = Vec::new();
        for r in requirements {
            let r = r.as_object()?;
            match r.len() {
                0 => anonymous = true,
                1 => scopes.push(r.get(SCHEME)?.as_array()?.as_slice()),
                _ => return None,
            }
        }
        let [scope] = scopes[..] else {
            return None;
        };
        match (anonymous, scope) {
            (true, []) => Some(Access::KeyOptional),
            (false, []) => Some(Access::AnyKey),
            (false, [s]) if s == SCOPE_BUILDING => Some(Access::Building),
            (false, [s]) if s == SCOPE_ADMIN => Some(Access::Admin),
            _ => None,
        }
    }
}

/// One served route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// The path as the OpenAPI document writes it, e.g. `/v1/buildings/{id}`.
    pub path: String,
    /// `None` when the route's `security` is none of [`Access`]'s forms (a test fails on it).
    pub access: Option<Access>,
}

/// Routes served besides the documented ones: the document itself and Swagger UI (public).
pub const DOC_ROUTES: &[&str] = &["/openapi.json", "/docs", "/docs/", "/docs/{rest}"];

/// Every route the API serves, in path order: the documented operations and [`DOC_ROUTES`].
pub fn routes() -> Vec<Route> {
    table(&crate::openapi_document())
}

/// The routes of `doc` plus [`DOC_ROUTES`].
pub(crate) fn table(doc: &utoipa::openapi::OpenApi) -> Vec<Route> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::OPTIONS, &item.options),
            (Method::HEAD, &item.head),
            (Method::PATCH, &item.patch),
            (Method::TRACE, &item.trace),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            let security = serde_json::to_value(&op.security).unwrap_or_default();
            out.push(Route {
                method,
                path: path.clone(),
                access: Access::from_security(&security),
            });
        }
    }
    out.extend(DOC_ROUTES.iter().map(|p| Route {
        method: Method::GET,
        path: (*p).to_string(),
        access: Some(Access::Public),
    }));
    out
}

/// The path of an axum route pattern as the document writes it: a catch-all `{*rest}` is
/// `{rest}` there (OpenAPI has no catch-all parameter). Pure.
pub fn document_path(pattern: &str) -> String {
    pattern.replace("{*", "{")
}

/// State of [`guard`]: the methods of every served path.
#[derive(Clone, Debug)]
pub struct Guard(Arc<BTreeMap<String, Vec<Method>>>);

impl Guard {
    pub fn new(routes: &[Route]) -> Self {
        let mut paths: BTreeMap<String, Vec<Method>> = BTreeMap::new();
        for r in routes {
            paths
                .entry(r.path.clone())
                .or_default()
                .push(r.method.clone());
        }
        Guard(Arc::new(paths))
    }
}

/// Middleware: a request reaches its handler only if its route is in the table. A path the
/// table does not have is a 404 (and an error in the log: the code serves an undocumented
/// route); a method the path does not have is a 405 with `Allow` (HEAD goes where GET does).
/// Requests for no route at all reach the fallback (404) untouched.
pub async fn guard(State(table): State<Guard>, req: Request, next: Next) -> Response {
    let Some(matched) = req.extensions().get::<MatchedPath>() else {
        return next.run(req).await;
    };
    let Some(methods) = table.0.get(&document_path(matched.as_str())) else {
        tracing::error!(
            route = matched.as_str(),
            "route is served but not in the OpenAPI document; refused"
        );
        return ApiError::NotFound(format!("route {}", req.uri().path())).into_response();
    };
    let method = req.method();
    let allowed =
        methods.contains(method) || (method == Method::HEAD && methods.contains(&Method::GET));
    if allowed {
        return next.run(req).await;
    }
    let mut allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
    if methods.contains(&Method::GET) {
        allow.push("HEAD");
    }
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        allow: allow.join(", "),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use serde_json::json;
    use tower::ServiceExt;

    #[test]
    fn access_is_read_from_the_documented_security() {
        let cases = [
            (json!(null), Some(Access::Public)),
            (json!([]), Some(Access::Public)),
            (json!([{}, {"api_key": []}]), Some(Access::KeyOptional)),
            (json!([{"api_key": []}]), Some(Access::AnyKey)),
            (json!([{"api_key": ["building"]}]), Some(Access::Building)),
            (json!([{"api_key": ["admin"]}]), Some(Access::Admin)),
            (json!([{"api_key": ["root"]}]), None),
            (json!([{"api_key": ["admin", "building"]}]), None),
            (json!([{}, {"api_key": ["admin"]}]), None),
            (json!([{"other": []}]), None),
            (json!([{"api_key": []}, {"api_key": ["admin"]}]), None),
            (json!([{}]), None),
            (json!({}), None),
        ];
        for (security, want) in cases {
            assert_eq!(Access::from_security(&security), want, "{security}");
        }
    }

    #[test]
    fn every_served_route_declares_its_access() {
        let all = routes();
        assert!(all.len() > 30, "{}", all.len());
        for r in &all {
            assert!(r.access.is_some(), "{} {}", r.method, r.path);
        }
        let access = |m: Method, p: &str| {
            all.iter()
                .find(|r| r.method == m && r.path == p)
                .and_then(|r| r.access)
        };
        let cases = [
            (Method::GET, "/health", Access::Public),
            (Method::GET, "/openapi.json", Access::Public),
            (Method::GET, "/v1/devices", Access::KeyOptional),
            (Method::GET, "/v1/buildings", Access::AnyKey),
            (Method::GET, "/v1/buildings/{id}", Access::Building),
            (Method::PUT, "/v1/admin/buildings/{id}", Access::Admin),
            (Method::GET, "/v1/admin/devices", Access::Admin),
            (Method::GET, "/v1/opendata/files/{path}", Access::Public),
        ];
        for (m, p, want) in cases {
            assert_eq!(access(m.clone(), p), Some(want), "{m} {p}");
        }
    }

    async fn call(router: &Router, method: Method, path: &str) -> (StatusCode, String, String) {
        let response = router
            .clone()
            .oneshot(
                axum::http::Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let allow = response
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, allow, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_guard_refuses_routes_that_are_not_in_the_table() {
        let listed = |m: Method, p: &str| Route {
            method: m,
            path: p.into(),
            access: Some(Access::Public),
        };
        let table = [
            listed(Method::GET, "/listed/{id}"),
            listed(Method::PUT, "/files/{path}"),
        ];
        let router = Router::new()
            .route(
                "/listed/{id}",
                get(|| async { "listed" }).post(|| async { "post" }),
            )
            .route("/files/{*path}", axum::routing::put(|| async { "file" }))
            .route("/sneaky", get(|| async { "sneaky" }))
            .fallback(|| async { "fallback" })
            .layer(axum::middleware::from_fn_with_state(
                Guard::new(&table),
                guard,
            ));
        let ok = |body: &str| (StatusCode::OK, String::new(), body.to_string());
        assert_eq!(call(&router, Method::GET, "/listed/7").await, ok("listed"));
        assert_eq!(
            call(&router, Method::HEAD, "/listed/7").await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(&router, Method::PUT, "/files/a/b.csv").await,
            ok("file")
        );
        assert_eq!(call(&router, Method::GET, "/nowhere").await, ok("fallback"));

        let (status, _, body) = call(&router, Method::GET, "/sneaky").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["detail"], "route /sneaky not found");

        // A method the router has but the table does not, and one neither has.
        for m in [Method::POST, Method::DELETE] {
            let (status, allow, body) = call(&router, m.clone(), "/listed/7").await;
            assert_eq!(
                (status, allow.as_str()),
                (StatusCode::METHOD_NOT_ALLOWED, "GET, HEAD")
            );
            let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                problem["detail"],
                format!("{m} is not allowed here; allowed: GET, HEAD")
            );
        }
    }

    #[test]
    fn catch_all_patterns_read_as_document_paths() {
        assert_eq!(
            document_path("/v1/opendata/files/{*path}"),
            "/v1/opendata/files/{path}"
        );
        assert_eq!(document_path("/v1/buildings/{id}"), "/v1/buildings/{id}");
    }
}
