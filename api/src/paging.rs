//! Paging of list endpoints: `limit` and an opaque `cursor`, answered with `total_count` and a
//! `next` link (absent on the last page).
//!
//! Readings page by keyset (`time`, `quantity`; see [`crate::params::Params::cursor`]). Lists
//! whose order is computed in memory (devices and parking sites/spots by distance, bbox or id)
//! page by position: their cursor is `o<offset>`. A registry change between two pages can shift
//! such a list by the items added or removed, which for a registry that changes rarely is the
//! accepted price of ordering by distance.

use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;
use axum::http::{header, HeaderMap, Uri};
use serde::Serialize;
use utoipa::ToSchema;

/// Items per page when the request gives no `limit`.
pub const DEFAULT_LIMIT: u32 = 1000;

/// One page of an in-memory list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

/// `limit` (1..=`max`, default [`DEFAULT_LIMIT`]) and `cursor` (`o<offset>`). Pure.
pub fn parse_page(p: &mut Params, max: u32) -> Result<Page, ApiError> {
    let limit = p.limit(DEFAULT_LIMIT, max)? as usize;
    let offset = match p.string("cursor") {
        None => 0,
        Some(raw) => raw
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::bad("cursor", "not a cursor from a 'next' link"))?,
    };
    Ok(Page { offset, limit })
}

/// One page of a list.
// `deny_unknown_fields` only for the schema: `additionalProperties: false` tells this shape
// apart from others with `items` and `total_count` (e.g. in `/v1/devices`' `oneOf`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct List<T> {
    pub items: Vec<T>,
    /// All items matching, over all pages.
    pub total_count: usize,
    /// The next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl<T> List<T> {
    /// The page `page` of `all`, with a `next` link when more follow.
    pub fn page(st: &AppState, headers: &HeaderMap, uri: &Uri, all: Vec<T>, page: Page) -> Self {
        let total = all.len();
        let end = page.offset.saturating_add(page.limit).min(total);
        let items: Vec<T> = all
            .into_iter()
            .skip(page.offset)
            .take(end.saturating_sub(page.offset))
            .collect();
        let next = (end < total).then(|| next_link(st, headers, uri, &format!("o{end}")));
        List {
            items,
            total_count: total,
            next,
        }
    }
}

/// A list that is never paged: every item, and their number.
#[derive(Debug, Serialize, ToSchema)]
pub struct All<T> {
    pub items: Vec<T>,
    pub total_count: usize,
}

impl<T> From<Vec<T>> for All<T> {
    fn from(items: Vec<T>) -> Self {
        All {
            total_count: items.len(),
            items,
        }
    }
}

/// The same request with `cursor` replaced, as an absolute URL (`http.public_base_url`, else
/// the request's `Host`).
pub fn next_link(st: &AppState, headers: &HeaderMap, uri: &Uri, cursor: &str) -> String {
    let base = if st.settings.http.public_base_url.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    } else {
        st.settings
            .http
            .public_base_url
            .trim_end_matches('/')
            .to_string()
    };
    // The same query with the cursor replaced (form_urlencoded decodes and re-encodes).
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k != "cursor" {
            query.append_pair(&k, &v);
        }
    }
    query.append_pair("cursor", cursor);
    format!("{base}{}?{}", uri.path(), query.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Page, ApiError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_page(&mut Params::new(map), 10_000)
    }

    #[test]
    fn page_parameters() {
        assert_eq!(
            parse(&[]).unwrap(),
            Page {
                offset: 0,
                limit: 1000
            }
        );
        assert_eq!(
            parse(&[("limit", "5"), ("cursor", "o10")]).unwrap(),
            Page {
                offset: 10,
                limit: 5
            }
        );
        for (k, v) in [
            ("cursor", "10"),
            ("cursor", "o-1"),
            ("cursor", "ox"),
            ("limit", "0"),
        ] {
            match parse(&[(k, v)]) {
                Err(ApiError::BadParam { param, .. }) => assert_eq!(param, k),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
    }
}
