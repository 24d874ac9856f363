//! Exponential backoff with full jitter, for calls the AWS SDK does not
//! retry by itself (Mender, and AWS answers that mean "not yet").

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based): a random time up
    /// to `base * 2^(attempt-1)`, capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        ceiling.mul_f64(fastrand::f64())
    }

    /// Runs `op` until it succeeds, fails with an error `retryable` rejects,
    /// or the attempts are used up.
    pub async fn retry<T, E, F, Fut>(
        &self,
        retryable: impl Fn(&E) -> bool,
        mut op: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(error) if attempt < self.attempts && retryable(&error) => {
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_and_is_capped() {
        let backoff = Backoff {
            attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..100 {
            assert!(backoff.delay(1) <= Duration::from_millis(100));
            assert!(backoff.delay(3) <= Duration::from_millis(400));
            assert!(backoff.delay(30) <= Duration::from_secs(1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_retryable_errors_and_stops_after_the_attempts() {
        let backoff = Backoff {
            attempts: 3,
            base: Duration::from_millis(10),
            max: Duration::from_millis(10),
        };
        let mut calls = 0;
        let result: Result<(), &str> = backoff
            .retry(
                |e| *e == "again",
                || {
                    calls += 1;
                    async { Err("again") }
                },
            )
            .await;
        assert_eq!(result, Err("again"));
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: Result<(), &str> = backoff
            .retry(
                |e| *e == "again",
                || {
                    calls += 1;
                    async { Err("fatal") }
                },
            )
            .await;
        assert_eq!(result, Err("fatal"));
        assert_eq!(calls, 1);
    }
}
