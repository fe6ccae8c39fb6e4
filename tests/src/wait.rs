//! Waiting on an observable signal (a database row, a counter in `/metrics`, a field of
//! `/health`) instead of sleeping for a while and hoping: every wait in the end-to-end tests
//! goes through [`until`] (or [`until_some`]), which polls with a bounded timeout and, when the
//! time is up, panics naming what it waited for. [`poll`] is the same loop without the panic,
//! for a test whose assertions after the wait show what is missing.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long the end-to-end tests wait for a signal unless they say otherwise.
pub const DEFAULT: Duration = Duration::from_secs(20);

/// How often the condition is polled.
const POLL: Duration = Duration::from_millis(50);

/// Polls `cond` until it returns true; panics after `timeout` with a message naming `what`.
pub async fn until<F, Fut>(what: &str, timeout: Duration, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut cond = cond;
    until_some(what, timeout, || {
        let f = cond();
        async move { f.await.then_some(()) }
    })
    .await
}

/// Polls `probe` until it returns `Some`, and returns that value; panics after `timeout` with a
/// message naming `what`.
pub async fn until_some<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll(timeout, probe).await {
        Some(v) => v,
        None => panic!(
            "timed out after {:.1} s waiting for: {what}",
            timeout.as_secs_f64()
        ),
    }
}

/// Polls `probe` until it returns `Some` (that value) or `timeout` has passed (`None`), for a
/// caller whose own assertions then say better what is missing.
pub async fn poll<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if started.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_signal_is_there() {
        let mut polls = 0;
        let v = until_some("the third poll", DEFAULT, || {
            polls += 1;
            let n = polls;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 0.1 s waiting for: a signal that never comes")]
    async fn names_what_it_waited_for_when_the_time_is_up() {
        until(
            "a signal that never comes",
            Duration::from_millis(100),
            || async { false },
        )
        .await;
    }
}
