//! Per-client rate limit: 429 with `Retry-After`. Every request counts, with or without an
//! `Authorization` header: skipping requests that merely carry one would let anybody bypass
//! the limit with a made-up key.
//!
//! The client is the TCP peer, or the address in `X-Forwarded-For` when the peer is one of
//! `http.trusted_proxies` (otherwise anybody could pick their own bucket by sending the header).

use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

/// The limiter shared by all requests; `None` inside when limiting is off.
#[derive(Clone)]
pub struct Limiter {
    inner: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    trusted: Arc<Vec<IpAddr>>,
    /// Requests seen; every so often idle clients' buckets are dropped (bounded memory).
    seen: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("enabled", &self.inner.is_some())
            .field("trusted", &self.trusted)
            .finish()
    }
}

impl Limiter {
    pub fn new(per_second: u32, burst: u32, trusted: Vec<IpAddr>) -> Self {
        let inner = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Limiter {
            inner,
            trusted: Arc::new(trusted),
            seen: Arc::default(),
        }
    }
}

/// The client address: the peer, or the last `X-Forwarded-For` hop a trusted proxy added.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .next_back()
        .unwrap_or(peer)
}

/// Middleware: one token bucket per client address.
pub async fn limit(State(limiter): State<Limiter>, req: Request, next: Next) -> Response {
    let Some(l) = &limiter.inner else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let ip = client_ip(peer, req.headers(), &limiter.trusted);
    if limiter
        .seen
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        % 10_000
        == 9_999
    {
        // Buckets of clients idle long enough to be full again carry no information.
        l.retain_recent();
    }
    match l.check_key(&ip) {
        Ok(()) => next.run(req).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            metrics::counter!("stadtpuls_api_rate_limited_total").increment(1);
            ApiError::TooManyRequests {
                retry_after_secs: secs,
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 192.0.2.7"),
        );
        assert_eq!(
            client_ip(proxy, &h, &[proxy]),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(stranger, &h, &[proxy]),
            stranger,
            "untrusted peers cannot choose their address"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
        h.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_ip(proxy, &h, &[proxy]), proxy);
    }

    #[test]
    fn the_burst_passes_then_the_limit_bites() {
        let l = Limiter::new(1, 3, vec![]);
        let rl = l.inner.clone().unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|_| rl.check_key(&ip).is_ok()));
        assert!(rl.check_key(&ip).is_err());
        assert!(
            rl.check_key(&other).is_ok(),
            "clients have separate buckets"
        );
        assert!(Limiter::new(0, 0, vec![]).inner.is_none());
    }
}
