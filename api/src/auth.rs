//! API-key authentication: `Authorization: Bearer …` → a principal (admin or one building).
//!
//! Handlers take [`Authenticated`] (a key is required) or [`MaybeAuthenticated`] (public, but key
//! holders see more) and then check access with [`require_admin`] / [`require_building`] or
//! [`Principal::can_see_building`]. Rejections are `ApiError::Unauthorized` (401, with
//! `WWW-Authenticate: Bearer`) or `ApiError::Forbidden` (403); bad input never becomes a 500.
//!
//! Invariant: a 401 never tells whether a key prefix exists — an unknown, wrong or revoked key
//! all get the same message.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use stadtpuls_store::keys::{self, Scope};
use stadtpuls_store::Store;

const MISSING: &str = "missing API key (Authorization: Bearer …)";
const EXPECTED: &str = "expected 'Authorization: Bearer <API key>'";

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An admin key: sees everything.
    Admin,
    /// A key for one building (by building id).
    Building(String),
}

impl Principal {
    /// Whether data of building `id` may be shown to this caller.
    pub fn can_see_building(&self, id: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Building(own) => own == id,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }
}

impl From<Scope> for Principal {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Admin => Principal::Admin,
            Scope::Building(id) => Principal::Building(id),
        }
    }
}

/// Extractor for endpoints that require a valid key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub Principal);

/// Extractor for public endpoints that show more to key holders: no `Authorization` header →
/// `None`; a header that is present but not a valid key → 401 (a typo should not silently
/// downgrade the caller to anonymous).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaybeAuthenticated(pub Option<Principal>);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(&state.store, &parts.headers).await? {
            Some(principal) => Ok(Authenticated(principal)),
            None => Err(ApiError::Unauthorized(MISSING.into())),
        }
    }
}

impl FromRequestParts<AppState> for MaybeAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(MaybeAuthenticated(
            authenticate(&state.store, &parts.headers).await?,
        ))
    }
}

/// `Ok(None)` without an `Authorization` header, the principal for a valid key, 401 otherwise.
/// Store failures stay `ApiError::Store` (503/500): they are not the caller's fault.
async fn authenticate(store: &Store, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    let Some(token) = bearer_token(headers)? else {
        return Ok(None);
    };
    let Some(prefix) = keys::key_prefix(token) else {
        return Err(ApiError::Unauthorized(
            "malformed API key: expected a key as issued, starting with 'sp_'".into(),
        ));
    };
    match store.verify_key(token).await? {
        Some(key) => Ok(Some(key.scope.into())),
        None => {
            // The prefix is not secret; it lets an operator match the rejection to a key.
            tracing::debug!(key_prefix = prefix, "rejected unknown or revoked API key");
            Err(ApiError::Unauthorized("unknown or revoked API key".into()))
        }
    }
}

/// 403 unless the caller holds an admin key.
pub fn require_admin(p: &Principal) -> Result<(), ApiError> {
    match p {
        Principal::Admin => Ok(()),
        Principal::Building(_) => Err(ApiError::Forbidden(
            "this endpoint requires an admin API key".into(),
        )),
    }
}

/// 403 unless the caller may see building `id` (its own building key, or an admin key).
pub fn require_building(p: &Principal, id: &str) -> Result<(), ApiError> {
    match p {
        Principal::Building(own) if !p.can_see_building(id) => Err(ApiError::Forbidden(format!(
            "this API key is for building '{own}' and does not grant access to building '{id}'"
        ))),
        Principal::Admin | Principal::Building(_) => Ok(()),
    }
}

/// The token of an `Authorization: Bearer <token>` header. Pure.
///
/// `Ok(None)` when there is no such header; 401 when it is present but unusable: not visible
/// ASCII, repeated, empty, another scheme, no token, or more than one token. The scheme is
/// case-insensitive (RFC 9110 §11.1); scheme and token may be separated by several spaces
/// (RFC 6750 §2.1: `1*SP`).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let unauthorized = |why: &str| ApiError::Unauthorized(format!("{why}; {EXPECTED}"));
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(unauthorized("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not plain ASCII"))?;
    let mut words = value.split_ascii_whitespace();
    let Some(scheme) = words.next() else {
        return Err(unauthorized("the Authorization header is empty"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        // The scheme is not echoed: it is caller input, and might be a credential itself.
        return Err(unauthorized("unsupported authorization scheme"));
    }
    match (words.next(), words.next()) {
        (Some(token), None) => Ok(Some(token)),
        (None, _) => Err(unauthorized("no API key after 'Bearer'")),
        (Some(_), Some(_)) => Err(unauthorized("more than one token after 'Bearer'")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{HeaderValue, Request, StatusCode};
    use axum::routing::get;
    use axum::{Json, Router};
    use http_body_util::BodyExt;
    use stadtpuls_config::Settings;
    use stadtpuls_store::clock::SystemClock;
    use std::sync::Arc;
    use tower::ServiceExt;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    /// `Ok(Some(token))`, `Ok(None)` or the 401 message.
    type Parsed = Result<Option<String>, String>;

    fn parse(values: &[&[u8]]) -> Parsed {
        match bearer_token(&headers(values)) {
            Ok(t) => Ok(t.map(str::to_string)),
            Err(ApiError::Unauthorized(why)) => Err(why),
            Err(other) => panic!("{values:?}: unexpected {other:?}"),
        }
    }

    #[test]
    fn bearer_token_table() {
        let ok = |t: &str| Ok(Some(t.to_string()));
        let err = |why: &str| Err(format!("{why}; {EXPECTED}"));
        let cases: &[(&[&[u8]], Parsed)] = &[
            (&[], Ok(None)),
            (&[b"Bearer sp_abc"], ok("sp_abc")),
            (&[b"bearer sp_abc"], ok("sp_abc")),
            (&[b"BEARER sp_abc"], ok("sp_abc")),
            (&[b"Bearer   sp_abc"], ok("sp_abc")),
            (&[b"Bearer sp_abc "], ok("sp_abc")),
            (&[b"Basic x"], err("unsupported authorization scheme")),
            (&[b"Basic"], err("unsupported authorization scheme")),
            (&[b"Token sp_abc"], err("unsupported authorization scheme")),
            (&[b"Bearersp_abc"], err("unsupported authorization scheme")),
            (&[b"sp_abc"], err("unsupported authorization scheme")),
            (&[b"Bearer"], err("no API key after 'Bearer'")),
            (&[b"Bearer "], err("no API key after 'Bearer'")),
            (&[b"Bearer a b"], err("more than one token after 'Bearer'")),
            (&[b""], err("the Authorization header is empty")),
            (&[b"   "], err("the Authorization header is empty")),
            (
                &[b"Bearer sp_\xff\xfe"],
                err("the Authorization header is not plain ASCII"),
            ),
            (
                &[b"Bearer sp_a", b"Bearer sp_b"],
                err("more than one Authorization header"),
            ),
        ];
        for (input, want) in cases {
            let shown: Vec<_> = input.iter().map(|v| String::from_utf8_lossy(v)).collect();
            assert_eq!(&parse(input), want, "{shown:?}");
        }
    }

    #[test]
    fn principal_scopes() {
        let admin = Principal::Admin;
        let rathaus = Principal::Building("rathaus".into());
        assert!(admin.is_admin());
        assert!(!rathaus.is_admin());
        assert!(admin.can_see_building("rathaus"));
        assert!(admin.can_see_building("schule"));
        assert!(rathaus.can_see_building("rathaus"));
        assert!(!rathaus.can_see_building("schule"));
        assert!(!rathaus.can_see_building("Rathaus"));
        assert!(!rathaus.can_see_building(""));

        assert!(require_admin(&admin).is_ok());
        assert!(require_building(&admin, "schule").is_ok());
        assert!(require_building(&rathaus, "rathaus").is_ok());
        match require_admin(&rathaus) {
            Err(ApiError::Forbidden(why)) => {
                assert_eq!(why, "this endpoint requires an admin API key")
            }
            other => panic!("{other:?}"),
        }
        match require_building(&rathaus, "schule") {
            Err(ApiError::Forbidden(why)) => assert_eq!(
                why,
                "this API key is for building 'rathaus' and does not grant access to building 'schule'"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Principal::from(Scope::Building("x".into())),
            Principal::Building("x".into())
        );
        assert_eq!(Principal::from(Scope::Admin), Principal::Admin);
    }

    // End to end through a real router and a fresh database.

    async fn whoami(Authenticated(p): Authenticated) -> Json<String> {
        Json(format!("{p:?}"))
    }

    async fn building(
        Authenticated(p): Authenticated,
        axum::extract::Path(id): axum::extract::Path<String>,
    ) -> Result<Json<String>, ApiError> {
        require_building(&p, &id)?;
        Ok(Json(id))
    }

    async fn public(MaybeAuthenticated(p): MaybeAuthenticated) -> Json<String> {
        Json(format!("{p:?}"))
    }

    async fn app() -> (Router, Store) {
        let store = stadtpuls_store::testing::fresh_store().await.unwrap();
        let state = AppState {
            store: store.clone(),
            settings: Arc::new(Settings::default()),
            clock: Arc::new(SystemClock),
            ingest: None,
            metrics: None,
            devices: Default::default(),
            live: Default::default(),
            parking: Default::default(),
            exports: crate::exports::ExportPermits::new(1),
        };
        let router = Router::new()
            .route("/whoami", get(whoami))
            .route("/buildings/{id}", get(building))
            .route("/public", get(public))
            .with_state(state);
        (router, store)
    }

    /// Status, `WWW-Authenticate` and body (the `detail` for problem+json) of one request.
    type Outcome = (StatusCode, Option<String>, String);

    async fn call(router: &Router, path: &str, auth: Option<&str>) -> Outcome {
        let mut request = Request::get(path);
        if let Some(a) = auth {
            request = request.header(header::AUTHORIZATION, a);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let body = match json.get("detail") {
            Some(detail) => detail.as_str().unwrap().to_string(),
            None => json.as_str().unwrap().to_string(),
        };
        (status, challenge, body)
    }

    #[tokio::test]
    async fn extractor_end_to_end() {
        let (router, store) = app().await;
        stadtpuls_store::testing::fetch_one::<(String,)>(
            &store,
            "INSERT INTO buildings (id, name) VALUES ('rathaus', 'Rathaus') RETURNING id",
        )
        .await;
        let admin = store.create_key(Scope::Admin, None).await.unwrap();
        let rathaus = store
            .create_key(Scope::Building("rathaus".into()), None)
            .await
            .unwrap();
        let revoked = store.create_key(Scope::Admin, None).await.unwrap();
        assert!(store.revoke_key(&revoked.prefix).await.unwrap());
        let bearer = |k: &str| format!("Bearer {k}");
        let mut wrong_secret = admin.secret.clone();
        let last = if wrong_secret.ends_with('A') {
            "B"
        } else {
            "A"
        };
        wrong_secret.replace_range(wrong_secret.len() - 1.., last);
        let unknown_prefix = format!("sp_zzzzzzzz_{}", &admin.secret[12..]);

        let ok = |body: &str| (StatusCode::OK, None, body.to_string());
        let denied = |detail: &str| (StatusCode::FORBIDDEN, None, detail.to_string());
        let challenge = Some("Bearer".to_string());
        let unauthorized = |detail: &str| {
            (
                StatusCode::UNAUTHORIZED,
                challenge.clone(),
                detail.to_string(),
            )
        };
        let header_problem = |why: &str| unauthorized(&format!("{why}; {EXPECTED}"));
        let unknown = unauthorized("unknown or revoked API key");
        let malformed =
            unauthorized("malformed API key: expected a key as issued, starting with 'sp_'");
        let other_building = "this API key is for building 'rathaus' and does not grant access \
                              to building 'schule'";
        let (admin_key, rathaus_key) = (bearer(&admin.secret), bearer(&rathaus.secret));
        let cases: Vec<(&str, Option<String>, Outcome)> = vec![
            ("/whoami", None, unauthorized(MISSING)),
            (
                "/whoami",
                Some("Basic dXNlcjpwdw==".into()),
                header_problem("unsupported authorization scheme"),
            ),
            (
                "/whoami",
                Some("Bearer".into()),
                header_problem("no API key after 'Bearer'"),
            ),
            ("/whoami", Some("Bearer nonsense".into()), malformed),
            ("/whoami", Some(bearer(&wrong_secret)), unknown.clone()),
            ("/whoami", Some(bearer(&unknown_prefix)), unknown.clone()),
            ("/whoami", Some(bearer(&revoked.secret)), unknown.clone()),
            ("/whoami", Some(admin_key.clone()), ok("Admin")),
            (
                "/whoami",
                Some(format!("bearer  {}", rathaus.secret)),
                ok("Building(\"rathaus\")"),
            ),
            (
                "/buildings/rathaus",
                Some(rathaus_key.clone()),
                ok("rathaus"),
            ),
            (
                "/buildings/schule",
                Some(rathaus_key.clone()),
                denied(other_building),
            ),
            ("/buildings/schule", Some(admin_key), ok("schule")),
            ("/buildings/schule", None, unauthorized(MISSING)),
            ("/public", None, ok("None")),
            (
                "/public",
                Some(rathaus_key),
                ok("Some(Building(\"rathaus\"))"),
            ),
            ("/public", Some(bearer(&revoked.secret)), unknown),
            (
                "/public",
                Some("Bearer a b".into()),
                header_problem("more than one token after 'Bearer'"),
            ),
        ];
        for (path, auth, want) in cases {
            assert_eq!(
                call(&router, path, auth.as_deref()).await,
                want,
                "{path} {auth:?}"
            );
        }
    }
}
