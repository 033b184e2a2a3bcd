//! Waiting on real conditions: poll with short exponential backoff until a
//! condition holds or a deadline passes, then say what is still missing.
//! Never a fixed sleep.

use std::future::Future;
use std::time::{Duration, Instant};

/// What a probe reports on each poll: done, or not yet with a description of
/// what is still missing (used in the timeout error).
pub enum Poll<T> {
    Ready(T),
    Pending(String),
}

/// Poll `probe` starting every `first` and backing off up to `max_interval`,
/// until it is ready or `timeout` passes. On timeout the error names `what`
/// and the last "missing" description.
pub async fn until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    first: Duration,
    max_interval: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut interval = first;
    loop {
        match probe().await {
            Poll::Ready(v) => return Ok(v),
            Poll::Pending(missing) => {
                let now = Instant::now();
                if now >= deadline {
                    anyhow::bail!(
                        "timed out after {:.1}s waiting for {what}: {missing}",
                        timeout.as_secs_f64()
                    );
                }
                tokio::time::sleep(interval.min(deadline - now)).await;
                interval = (interval * 3 / 2).min(max_interval);
            }
        }
    }
}

/// The usual cadence: first re-check after 10 ms, at most every 200 ms.
pub async fn until_default<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    until(
        what,
        timeout,
        Duration::from_millis(10),
        Duration::from_millis(200),
        probe,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_when_ready_and_names_what_is_missing_on_timeout() {
        let mut n = 0;
        let v = until_default("counter", Duration::from_secs(2), || {
            n += 1;
            let n = n;
            async move {
                if n >= 3 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending(format!("n={n}"))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        let err = until_default::<(), _, _>("the moon", Duration::from_millis(50), || async {
            Poll::Pending("still rising".into())
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("the moon") && err.contains("still rising"),
            "{err}"
        );
    }
}
