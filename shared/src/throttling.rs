//! How often AWS throttled an organization's calls. Each of the
//! organization's AWS IoT Core clients counts the throttled answers it gets
//! (every attempt, whether the SDK retried it or not); the count goes out as
//! the `AwsThrottledCalls` metric, so an operator sees an account near its
//! quotas before anything fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
        .is_some_and(|name| THROTTLING_ERRORS.contains(&name.trim()));
    status == 429 || named
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
