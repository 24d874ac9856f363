//! Failed setups, counted per organization, so that setting up is
//! no oracle for role ARNs, external ids, keys or Mender tokens: after
//! [`SetupLimit::DEFAULT`]'s failures in a fixed window, setup answers 429
//! (with when to retry) until the window ends, before any Mender or AWS call.
//!
//! One DynamoDB item per organization, `setup-failures#<tenant>`, holding
//! the window's count and its end in `expires_at`, which the table's TTL
//! then deletes (TTL deletes late: a window is over when its end has
//! passed, whether or not the item is still there).
//!
//! What counts ([`counts`]): a refusal of what the caller sent, once it was
//! well formed — the Mender token refused (400), AWS refusing the
//! credentials, role or policy (422), a setup step refused (401, 403, 409).
//! What does not: malformed bodies (400, 413; checked before anything is
//! asked of Mender or AWS, so they reveal nothing), outages (5xx; not the
//! caller's doing, and a retry must work once they end), and successes,
//! which do not reset the count either (a window simply runs out).
//!
//! [`SetupLimit::decide`] is the whole rule, pure; [`SetupFailures`] only
//! reads and writes the item.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::clock::epoch_seconds;
use crate::http::ApiError;
use crate::table::{EXPIRES_AT, Key, PK, TableError, conditional, number, number_of, read_item};

/// How many failed setups an organization may have in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupLimit {
    pub max_failures: u64,
    pub window_seconds: u64,
}

impl SetupLimit {
    /// Five failures per 15 minutes.
    pub const DEFAULT: SetupLimit = SetupLimit {
        max_failures: 5,
        window_seconds: 15 * 60,
    };

    /// Whether a setup may run at `now`, given the organization's window.
    pub fn decide(&self, window: Option<Window>, now: u64) -> Decision {
        match window {
            Some(window) if now < window.ends_at && window.failures >= self.max_failures => {
                Decision::Refuse {
                    retry_after_seconds: window.ends_at - now,
                }
            }
            _ => Decision::Allow,
        }
    }
}

/// An organization's failed setups since a window opened (at its first
/// failure), and when the window ends (epoch seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub failures: u64,
    pub ends_at: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Refuse { retry_after_seconds: u64 },
}

/// Whether a setup that failed with `error` counts against the limit.
pub fn counts(error: &ApiError) -> bool {
    (400..500).contains(&error.status()) && !matches!(error, ApiError::TooManyRequests { .. })
}

/// The organizations' failure counts in the bridge's table.
#[derive(Clone, Debug)]
pub struct SetupFailures {
    client: aws_sdk_dynamodb::Client,
    table: String,
    pub limit: SetupLimit,
}

const FAILURES: &str = "failures";

fn key(tenant_id: &str) -> AttributeValue {
    Key::SetupFailures { tenant_id }.value()
}

impl SetupFailures {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        SetupFailures {
            client,
            table: table.into(),
            limit: SetupLimit::DEFAULT,
        }
    }

    /// The organization's last window, if its item is still there.
    pub async fn window(&self, tenant_id: &str) -> Result<Option<Window>, TableError> {
        let item = read_item(&self.client, &self.table, Key::SetupFailures { tenant_id }).await?;
        Ok(item.map(|item| Window {
            failures: number_of(&item, FAILURES),
            ends_at: number_of(&item, EXPIRES_AT),
        }))
    }

    /// `Ok` when the organization may try a setup now; 429 when it failed
    /// too often, 503 when the count cannot be read (the limit holds).
    pub async fn check(&self, tenant_id: &str) -> Result<(), ApiError> {
        let window = self.window(tenant_id).await.map_err(|error| {
            tracing::error!(tenant = tenant_id, %error, "setup failures unavailable");
            ApiError::ServiceUnavailable("setup is unavailable; try again".into())
        })?;
        match self.limit.decide(window, epoch_seconds()) {
            Decision::Allow => Ok(()),
            Decision::Refuse {
                retry_after_seconds,
            } => {
                tracing::warn!(
                    tenant = tenant_id,
                    retry_after_seconds,
                    "setup refused: too many failed setups"
                );
                Err(ApiError::TooManyRequests {
                    message: format!(
                        "too many failed setups of this organization's integration ({} in {} minutes)",
                        self.limit.max_failures,
                        self.limit.window_seconds / 60
                    ),
                    retry_after_seconds,
                })
            }
        }
    }

    /// Counts one failed setup: in the open window, or in a new one that
    /// opens now (there is none, or it is over).
    pub async fn record(&self, tenant_id: &str) -> Result<(), TableError> {
        for _ in 0..3 {
            let now = epoch_seconds();
            let counted = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, key(tenant_id))
                .update_expression("ADD failures :one")
                .condition_expression("expires_at > :now")
                .expression_attribute_values(":one", number(1))
                .expression_attribute_values(":now", number(now))
                .send()
                .await;
            if conditional(counted)? {
                return Ok(());
            }
            let opened = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PK, key(tenant_id))
                .item(FAILURES, number(1))
                .item(EXPIRES_AT, number(now + self.limit.window_seconds))
                .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                .expression_attribute_values(":now", number(now))
                .send()
                .await;
            // Not opened: another failure opened a window meanwhile; count
            // in it.
            if conditional(opened)? {
                return Ok(());
            }
        }
        Err(TableError(
            "the failure count changed under every attempt".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_refuse_setup_until_the_window_ends() {
        let limit = SetupLimit {
            max_failures: 3,
            window_seconds: 600,
        };
        let window = |failures, ends_at| Some(Window { failures, ends_at });
        let refuse = |retry_after_seconds| Decision::Refuse {
            retry_after_seconds,
        };
        // (the window, now, the decision)
        let cases = [
            (None, 1_000, Decision::Allow),
            (window(0, 1_600), 1_000, Decision::Allow),
            (window(2, 1_600), 1_000, Decision::Allow),
            (window(3, 1_600), 1_000, refuse(600)),
            (window(3, 1_600), 1_599, refuse(1)),
            (window(9, 1_600), 1_300, refuse(300)),
            // The window is over, whether or not TTL deleted the item yet.
            (window(3, 1_600), 1_600, Decision::Allow),
            (window(50, 1_600), 90_000, Decision::Allow),
            // An item without an end (never written so) holds nothing.
            (window(5, 0), 1_000, Decision::Allow),
        ];
        for (window, now, decision) in cases {
            assert_eq!(limit.decide(window, now), decision, "{window:?} at {now}");
        }
        assert_eq!(
            SetupLimit::DEFAULT.decide(window(5, 10_900), 10_000),
            refuse(900)
        );
        assert_eq!(
            SetupLimit::DEFAULT.decide(window(4, 10_900), 10_000),
            Decision::Allow
        );
    }

    #[test]
    fn refusals_of_what_was_sent_count_and_outages_do_not() {
        use crate::http::FieldProblem;
        let counted = [
            ApiError::InvalidFields(vec![FieldProblem::new("mender_token", "refused")]),
            ApiError::AwsRejected {
                aws_error_code: "AssumeRoleFailed".into(),
                explanation: "x".into(),
            },
            ApiError::Conflict("another integration".into()),
            ApiError::Forbidden("Mender denied it".into()),
            ApiError::Unauthorized("token".into()),
        ];
        let not_counted = [
            ApiError::ServiceUnavailable("AWS IoT is unavailable".into()),
            ApiError::BadGateway("Mender failed".into()),
            ApiError::Internal,
            ApiError::TooManyRequests {
                message: "m".into(),
                retry_after_seconds: 1,
            },
        ];
        for error in &counted {
            assert!(counts(error), "{error:?}");
        }
        for error in &not_counted {
            assert!(!counts(error), "{error:?}");
        }
    }
}
