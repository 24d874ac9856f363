//! How often AWS throttled an organization's calls. Each of the
//! organization's AWS IoT Core clients counts the throttled answers it gets
//! (every attempt, whether the SDK retried it or not); the count goes out as
//! the `AwsThrottledCalls` metric, so an operator sees an account near its
//! quotas before anything fails. A provisioning waits throttling out a while
//! longer than the SDK does ([`Patience`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::retry::Backoff;

use aws_sdk_iot::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_iot::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;

/// AWS's error types for throttling (REST protocols also answer 429).
const THROTTLING_ERRORS: [&str; 4] = [
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
];

/// Throttled answers since the count was last taken, shared by the clients
/// it is given to as their interceptor.
#[derive(Debug, Clone, Default)]
pub struct ThrottledCalls(Arc<AtomicU64>);

impl ThrottledCalls {
    /// The count so far, starting again from zero.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// Pure: whether an answer is AWS throttling the caller: 429, or an error
/// type (`x-amzn-ErrorType`, `Name:details`) that is throttling.
pub fn is_throttling(status: u16, error_type: Option<&str>) -> bool {
    let named = error_type
        .and_then(|value| value.split(':').next())
        .is_some_and(is_throttling_error);
    status == 429 || named
}

/// Pure: whether an error code is AWS throttling the caller.
pub fn is_throttling_error(code: &str) -> bool {
    THROTTLING_ERRORS.contains(&code.trim())
}

/// The backoff between a provisioning's own tries at a throttled call.
const WAITING_OUT: Backoff = Backoff {
    attempts: u32::MAX,
    base: Duration::from_secs(1),
    max: Duration::from_secs(4),
};

/// Until when a provisioning waits out throttling. A call AWS still
/// throttles once the SDK's attempts are spent is tried again, after a
/// backoff, for as long as the patience lasts: undoing a half-made
/// provisioning and making it again later spends the same quotas twice,
/// which only feeds the throttling. Throttled means refused, so trying a
/// create again makes nothing twice.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    until: Instant,
}

impl Patience {
    /// Patience lasting `patience` from now.
    pub fn lasting(patience: Duration) -> Patience {
        Patience {
            until: Instant::now() + patience,
        }
    }

    /// Runs `call` until it is not `throttled`, or the next try would come
    /// after the patience ran out (then the last throttled answer).
    pub async fn wait_out<T, E, F, Fut>(
        self,
        throttled: impl Fn(&E) -> bool,
        mut call: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(error) if throttled(&error) => {
                    let delay = WAITING_OUT.delay(attempt);
                    if Instant::now() + delay >= self.until {
                        return Err(error);
                    }
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

impl Intercept for ThrottledCalls {
    fn name(&self) -> &'static str {
        "ThrottledCalls"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let error_type = response.headers().get("x-amzn-errortype");
        if is_throttling(response.status().as_u16(), error_type) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THROTTLED: &str = "ThrottlingException";

    /// Waits out the answers `answer` gives (by call number) with
    /// `patience`: the result, and how many calls were made.
    async fn wait_out(
        patience: Duration,
        mut answer: impl FnMut(u32) -> Result<u32, &'static str>,
    ) -> (Result<u32, &'static str>, u32) {
        let mut calls = 0;
        let result = Patience::lasting(patience)
            .wait_out(
                |e: &&str| is_throttling_error(e),
                || {
                    calls += 1;
                    let answered = answer(calls);
                    async move { answered }
                },
            )
            .await;
        (result, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_waited_out_while_the_patience_lasts_and_nothing_else_is() {
        let minute = Duration::from_secs(60);
        // Throttled three times, then done: within a minute's patience.
        let answer = |call| if call <= 3 { Err(THROTTLED) } else { Ok(call) };
        assert_eq!(wait_out(minute, answer).await, (Ok(4), 4));

        // Throttled for good: given up once the patience is spent.
        let started = Instant::now();
        let (result, calls) = wait_out(Duration::from_secs(20), |_| Err(THROTTLED)).await;
        assert_eq!(result, Err(THROTTLED));
        assert!(calls > 1, "{calls}");
        assert!(started.elapsed() < Duration::from_secs(20));

        // Another error is answered at once, however patient.
        let failed = |_| Err("InternalFailureException");
        assert_eq!(
            wait_out(minute, failed).await,
            (Err("InternalFailureException"), 1)
        );
        // No patience: throttling is answered at once too.
        assert_eq!(
            wait_out(Duration::ZERO, |_| Err(THROTTLED)).await,
            (Err(THROTTLED), 1)
        );
    }

    #[test]
    fn throttling_is_a_429_or_a_throttling_error_type() {
        for (status, error_type, throttled) in [
            (429, None, true),
            (400, Some("ThrottlingException"), true),
            (
                400,
                Some("ThrottlingException:http://internal.amazon.com/"),
                true,
            ),
            (400, Some("ProvisionedThroughputExceededException"), true),
            (400, Some("ResourceNotFoundException"), false),
            (400, Some("NotThrottlingException"), false),
            (500, None, false),
            (200, None, false),
        ] {
            assert_eq!(
                is_throttling(status, error_type),
                throttled,
                "{status} {error_type:?}"
            );
        }
        let calls = ThrottledCalls::default();
        calls.0.fetch_add(2, Ordering::Relaxed);
        assert_eq!((calls.take(), calls.take()), (2, 0));
    }
}
