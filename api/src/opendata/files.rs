//! The file server: files under `opendata.output_dir`, streamed with a strong `ETag`,
//! `Last-Modified`, conditional requests and one byte range per request.

use super::FILES_PREFIX;
use crate::error::ApiError;
use crate::params::clip;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Bytes per chunk of a streamed file.
const CHUNK: usize = 64 * 1024;

/// The requested file path relative to the output directory, decoded and checked: 400 for
/// anything that could address another directory (`..`, `.`, empty segments, an absolute
/// path, backslashes, NUL, bad escapes), 404 for hidden names (temporary files and the like).
pub(crate) fn relative_path(raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::bad("path", why.to_string());
    // `percent_decode_str` passes a malformed escape through as it is; here that is a 400.
    let bytes = raw.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(bad("invalid percent-encoding"));
    }
    let path = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| bad("not UTF-8"))?
        .into_owned();
    if path.contains('\0') || path.contains('\\') {
        return Err(bad("must not contain NUL or backslashes"));
    }
    if path.starts_with('/') {
        return Err(bad("must be relative"));
    }
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(bad("must not contain empty, '.' or '..' segments"));
        }
        if segment.starts_with('.') {
            return Err(ApiError::NotFound(format!("file '{}'", clip(&path))));
        }
    }
    Ok(path)
}

/// The media type a file is served with; only exported kinds of files are served at all.
fn content_type(path: &std::path::Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "parquet" => Some("application/vnd.apache.parquet"),
        "csv" => Some("text/csv; charset=utf-8; header=present"),
        "json" => Some("application/json"),
        _ => None,
    }
}

fn http_date(t: DateTime<Utc>) -> String {
    httpdate::fmt_http_date(t.into())
}

fn parse_http_date(v: &HeaderValue) -> Option<DateTime<Utc>> {
    httpdate::parse_http_date(v.to_str().ok()?.trim())
        .ok()
        .map(DateTime::<Utc>::from)
}

/// `If-None-Match` against our (strong) tag, by weak comparison (RFC 9110 §13.1.2).
fn none_match(v: &HeaderValue, etag: &str) -> bool {
    let Ok(v) = v.to_str() else { return false };
    v.trim() == "*"
        || v.split(',')
            .map(|t| t.trim())
            .any(|t| t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// What `Range` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// Absent, not `bytes`, several ranges or malformed: the whole file (RFC 9110 allows a
    /// server to ignore `Range`).
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

pub(crate) fn parse_range(v: &str, size: u64) -> Ranged {
    let Some((unit, spec)) = v.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last N bytes.
        return match last.parse::<u64>() {
            Ok(0) => Ranged::Unsatisfiable,
            Ok(_) if size == 0 => Ranged::Unsatisfiable,
            Ok(n) => Ranged::Part(size.saturating_sub(n), size - 1),
            Err(_) => Ranged::Whole,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return Ranged::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return Ranged::Whole,
        }
    };
    if start >= size {
        Ranged::Unsatisfiable
    } else {
        Ranged::Part(start, end.min(size - 1))
    }
}

/// The strong validator of a file: its recorded SHA-256 when it is a data file the exporter
/// recorded with this size (so clients can check it against the manifest), else size and
/// modification time.
async fn etag_for(
    st: &AppState,
    rel: &str,
    size: u64,
    mtime: Option<DateTime<Utc>>,
) -> Result<String, ApiError> {
    let dataset = rel
        .split('/')
        .next()
        .and_then(|s| s.strip_prefix("dataset="))
        .filter(|name| {
            st.settings
                .opendata
                .datasets
                .iter()
                .any(|d| d.name == *name)
        });
    if dataset.is_some() {
        if let Some(f) = st.store.export_file(rel).await? {
            if u64::try_from(f.bytes).ok() == Some(size) {
                return Ok(format!("\"{}\"", f.sha256));
            }
        }
    }
    let (secs, nanos) = mtime.map_or((0, 0), |t| (t.timestamp(), t.timestamp_subsec_nanos()));
    Ok(format!("\"{size:x}-{secs:x}.{nanos:x}\""))
}

/// Streams `len` bytes of `file` from its current position, in chunks.
fn stream(file: tokio::fs::File, len: u64) -> Body {
    let chunks = futures_util::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let mut buf = vec![0u8; want];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            // Truncated underneath us: end the body early rather than pad it.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being served",
            ));
        }
        buf.truncate(n);
        Ok::<_, std::io::Error>(Some((Bytes::from(buf), (file, left - n as u64))))
    });
    Body::from_stream(chunks)
}

/// `GET /v1/opendata/files/{path}`: a published file.
#[utoipa::path(
    get,
    path = "/v1/opendata/files/{*path}",
    operation_id = "opendata_file",
    tag = "opendata",
    description = "A file under the export directory, e.g. \
                   `dataset=parking_occupancy/date=2026-11-28/part-0.parquet` or \
                   `meta/parking_occupancy/manifest.json`. Strong `ETag` (the SHA-256 of a data \
                   file, as in the manifest), `Last-Modified`, `If-None-Match` / \
                   `If-Modified-Since` (304), one `Range: bytes=…` (206, 416), `If-Range`.",
    params(("path" = String, Path, description = "Path relative to the export directory (may contain `/`)")),
    responses(
        (status = 200, description = "The file", content(
            (String = "application/vnd.apache.parquet"),
            (String = "text/csv"),
            (String = "application/json"),
        )),
        (status = 206, description = "The requested byte range (`Content-Range`)"),
        (status = 304, description = "Not modified (`If-None-Match` / `If-Modified-Since`)"),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::RangeNotSatisfiable,
    ),
)]
pub async fn file(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let raw = uri.path().strip_prefix(FILES_PREFIX).unwrap_or_default();
    let rel = relative_path(raw)?;
    let not_found = || ApiError::NotFound(format!("file '{}'", clip(&rel)));
    // Canonical paths on both sides: a symlink (or anything else) that resolves outside the
    // output directory is not there.
    let root = tokio::fs::canonicalize(&st.settings.opendata.output_dir)
        .await
        .map_err(|_| not_found())?;
    let full = tokio::fs::canonicalize(root.join(&rel))
        .await
        .map_err(|_| not_found())?;
    let Ok(inside) = full.strip_prefix(&root) else {
        return Err(not_found());
    };
    let Some(content_type) = content_type(&full) else {
        return Err(not_found());
    };
    let inside = inside
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    // Size and time from the open handle: an export renaming a new file into place meanwhile
    // does not mix two versions into one response.
    let mut f = tokio::fs::File::open(&full)
        .await
        .map_err(|_| not_found())?;
    let meta = f.metadata().await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let size = meta.len();
    let mtime = meta.modified().ok().map(DateTime::<Utc>::from);
    let etag = etag_for(&st, &inside, size, mtime).await?;

    let mut res = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        // Late data replace files in place: caches must revalidate (cheap, via the ETag).
        .header(header::CACHE_CONTROL, "no-cache");
    if let Some(t) = mtime {
        res = res.header(header::LAST_MODIFIED, http_date(t));
    }

    // RFC 9110 §13.2.2: If-None-Match, when present, decides instead of If-Modified-Since.
    let not_modified = match headers.get(header::IF_NONE_MATCH) {
        Some(v) => none_match(v, &etag),
        None => match (headers.get(header::IF_MODIFIED_SINCE), mtime) {
            (Some(v), Some(t)) => {
                parse_http_date(v).is_some_and(|since| t.timestamp() <= since.timestamp())
            }
            _ => false,
        },
    };
    if not_modified {
        return res
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| ApiError::internal("open data: 304 response", e));
    }

    // If-Range: the range only applies to the version the client already has part of.
    let range_applies = match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => match v.to_str() {
            Ok(s) if s.trim().starts_with('"') => s.trim() == etag,
            _ => parse_http_date(v)
                .zip(mtime)
                .is_some_and(|(d, t)| d.timestamp() == t.timestamp()),
        },
    };
    let ranged = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) if range_applies => parse_range(v, size),
        _ => Ranged::Whole,
    };
    let built = match ranged {
        Ranged::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
        Ranged::Whole => res
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, size)
            .body(stream(f, size)),
        Ranged::Part(start, end) => {
            if let Err(e) = f.seek(std::io::SeekFrom::Start(start)).await {
                return Err(ApiError::internal("open data: seek", e));
            }
            let len = end - start + 1;
            res.status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_LENGTH, len)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"))
                .body(stream(f, len))
        }
    };
    built.map_err(|e| ApiError::internal("open data: file response", e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges() {
        use Ranged::*;
        assert_eq!(parse_range("bytes=0-3", 10), Part(0, 3));
        assert_eq!(parse_range("bytes=4-", 10), Part(4, 9));
        assert_eq!(parse_range("bytes=5-100", 10), Part(5, 9));
        assert_eq!(parse_range("bytes=-4", 10), Part(6, 9));
        assert_eq!(parse_range("bytes=-40", 10), Part(0, 9));
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=999999999-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=3-1", 10), Whole);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), Whole);
        assert_eq!(parse_range("items=0-1", 10), Whole);
        assert_eq!(parse_range("bytes=x-", 10), Whole);
    }

    #[test]
    fn paths() {
        assert_eq!(
            relative_path("dataset=p/date=2026-11-28/part-0.parquet").unwrap(),
            "dataset=p/date=2026-11-28/part-0.parquet"
        );
        assert_eq!(relative_path("a%20b.csv").unwrap(), "a b.csv");
        for bad in [
            "..%2F..%2Fetc%2Fpasswd",
            "%2e%2e/x",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "%2Fetc%2Fpasswd",
            "..%5Cx",
            "a%00.csv",
            "a%zz",
            "%ff.csv",
        ] {
            let e = relative_path(bad).unwrap_err();
            assert!(matches!(e, ApiError::BadParam { .. }), "{bad}: {e}");
        }
        assert!(matches!(
            relative_path("meta/.manifest.json.tmp-1"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn tags_and_dates() {
        let tag = "\"abc\"";
        assert!(none_match(&HeaderValue::from_static("\"abc\""), tag));
        assert!(none_match(
            &HeaderValue::from_static("\"x\", W/\"abc\""),
            tag
        ));
        assert!(none_match(&HeaderValue::from_static("*"), tag));
        assert!(!none_match(&HeaderValue::from_static("\"abd\""), tag));
        let t = DateTime::parse_from_rfc3339("2026-11-28T10:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(t), "Sat, 28 Nov 2026 10:15:00 GMT");
        assert_eq!(
            parse_http_date(&HeaderValue::from_str(&http_date(t)).unwrap()),
            Some(t)
        );
    }
}
