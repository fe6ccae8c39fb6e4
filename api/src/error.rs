//! The one place where errors become HTTP responses (RFC 9457 problem+json).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// RFC 9457 problem details: the body of every error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what went wrong.
    #[schema(example = "about:blank")]
    pub r#type: &'static str,
    #[schema(example = "Bad Request")]
    pub title: &'static str,
    #[schema(example = 400, minimum = 400, maximum = 599)]
    pub status: u16,
    #[schema(example = "radius: must be a number of metres in (0, 100000]")]
    pub detail: String,
    /// The query parameter or body field to blame (400 only; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query or path parameter is malformed or out of range.
    #[error("invalid parameter '{param}': {message}")]
    BadParam { param: String, message: String },
    /// No usable credentials: missing, malformed, unknown or revoked key.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Valid credentials that do not grant access to this resource.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The resource does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// Too much of a limited resource is in use right now (e.g. every export slot); retry later.
    #[error("busy: {detail}")]
    Busy {
        detail: String,
        retry_after_secs: u32,
    },
    /// None of the representations the client accepts is available (e.g. the catalogue is
    /// JSON-LD or Turtle).
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// The request body is longer than `http.max_body_bytes`.
    #[error("payload too large: more than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A request body in a media type the route does not read (the API reads JSON only).
    #[error("unsupported media type '{0}'")]
    UnsupportedMediaType(String),
    /// The path exists, but not with this method; `allow` lists the methods it has.
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: String, allow: String },
    /// The client exceeded its rate limit (`http.rate_limit_per_second`).
    #[error("rate limited for {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// The handler did not answer within `http.request_timeout_secs`.
    #[error("no answer within {secs} s")]
    Timeout { secs: u64 },
    /// A byte range outside a file of `size` bytes.
    #[error("range not satisfiable in {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// Something that is not the caller's fault and not the database's (a file the server
    /// wrote itself is unreadable, a response could not be built); details go to the log only.
    #[error("internal: {context}: {cause}")]
    Internal {
        context: &'static str,
        cause: String,
    },
    /// The database failed; details go to the log only.
    #[error("store: {0}")]
    Store(#[from] stadtpuls_store::StoreError),
}

impl ApiError {
    /// An [`ApiError::Internal`] with `cause` for the log.
    pub fn internal(context: &'static str, cause: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            context,
            cause: cause.to_string(),
        }
    }

    pub fn bad(param: &str, message: impl Into<String>) -> Self {
        ApiError::BadParam {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, title, detail, param) = match &self {
            ApiError::BadParam { param, message } => {
                metrics::counter!("stadtpuls_api_bad_requests_total", "param" => param.clone())
                    .increment(1);
                (
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    format!("{param}: {message}"),
                    Some(param.clone()),
                )
            }
            ApiError::Unauthorized(why) => {
                metrics::counter!("stadtpuls_api_auth_failures_total", "status" => "401")
                    .increment(1);
                (StatusCode::UNAUTHORIZED, "Unauthorized", why.clone(), None)
            }
            ApiError::Forbidden(why) => {
                metrics::counter!("stadtpuls_api_auth_failures_total", "status" => "403")
                    .increment(1);
                (StatusCode::FORBIDDEN, "Forbidden", why.clone(), None)
            }
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "Not Found",
                format!("{what} not found"),
                None,
            ),
            ApiError::Busy { detail, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                detail.clone(),
                None,
            ),
            ApiError::NotAcceptable(why) => (
                StatusCode::NOT_ACCEPTABLE,
                "Not Acceptable",
                why.clone(),
                None,
            ),
            ApiError::PayloadTooLarge { limit } => {
                metrics::counter!("stadtpuls_api_bad_requests_total", "param" => "body")
                    .increment(1);
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Content Too Large",
                    format!("body: longer than {limit} bytes (http.max_body_bytes)"),
                    Some("body".to_string()),
                )
            }
            ApiError::UnsupportedMediaType(got) => {
                metrics::counter!("stadtpuls_api_bad_requests_total", "param" => "content-type")
                    .increment(1);
                (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported Media Type",
                    format!(
                        "content-type: '{}' is not JSON; send application/json",
                        crate::params::clip(got)
                    ),
                    Some("content-type".to_string()),
                )
            }
            ApiError::MethodNotAllowed { method, allow } => {
                metrics::counter!("stadtpuls_api_bad_requests_total", "param" => "method")
                    .increment(1);
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Method Not Allowed",
                    format!("{method} is not allowed here; allowed: {allow}"),
                    None,
                )
            }
            ApiError::TooManyRequests { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                format!("rate limit exceeded; retry in {retry_after_secs} s"),
                None,
            ),
            ApiError::Timeout { secs } => {
                tracing::warn!(timeout_secs = secs, "request timed out");
                (
                    StatusCode::REQUEST_TIMEOUT,
                    "Request Timeout",
                    format!("no answer within {secs} s; try a smaller request"),
                    None,
                )
            }
            ApiError::RangeNotSatisfiable { size } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "Range Not Satisfiable",
                format!("the file has {size} bytes"),
                None,
            ),
            ApiError::Internal { context, cause } => {
                tracing::error!(error = %cause, "{context}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                    "internal error".to_string(),
                    None,
                )
            }
            ApiError::Store(stadtpuls_store::StoreError::Invalid { field, problem }) => {
                metrics::counter!("stadtpuls_api_bad_requests_total", "param" => field.to_string())
                    .increment(1);
                (
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    format!("{field}: {problem}"),
                    Some(field.to_string()),
                )
            }
            ApiError::Store(e) if e.is_transient() => {
                tracing::error!(error = %e, "database unavailable while answering a request");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "the database is unavailable; retry later".to_string(),
                    None,
                )
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "request failed in the store");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                    "internal error".to_string(),
                    None,
                )
            }
        };
        let body = Problem {
            r#type: "about:blank",
            title,
            status: status.as_u16(),
            detail,
            parameter: param,
        };
        // A struct of strings and a number always serialises.
        let body = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        match &self {
            ApiError::Busy {
                retry_after_secs, ..
            } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(*retry_after_secs),
                );
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from((*retry_after_secs).max(1)),
                );
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                if let Ok(v) = header::HeaderValue::from_str(allow) {
                    response.headers_mut().insert(header::ALLOW, v);
                }
            }
            _ => {}
        }
        if let ApiError::RangeNotSatisfiable { size } = &self {
            if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            response.headers_mut().insert(
                header::ACCEPT_RANGES,
                header::HeaderValue::from_static("bytes"),
            );
        }
        response
    }
}
