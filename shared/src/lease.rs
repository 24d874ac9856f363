//! Per-device leases in DynamoDB, so that one device is converged by one
//! invocation at a time. A lease expires by itself if its holder dies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::retry::Backoff;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("device {0} is being converged by another invocation")]
    Held(String),
    #[error("DynamoDB failed: {0}")]
    Unavailable(String),
}

const RELEASE_RETRY: Backoff = Backoff {
    attempts: 4,
    base: Duration::from_millis(100),
    max: Duration::from_secs(1),
};

#[derive(Clone, Debug)]
pub struct Leases {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Longer than any invocation, so a live holder never loses its lease.
    duration: Duration,
}

/// A held lease; give it back with [`Leases::release`].
#[derive(Debug)]
pub struct Lease {
    key: String,
    owner: String,
}

impl Leases {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        duration: Duration,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            duration,
        }
    }

    pub async fn acquire(&self, tenant_id: &str, device_id: &str) -> Result<Lease, LeaseError> {
        let key = format!("lease#{tenant_id}#{device_id}");
        let owner = uuid::Uuid::new_v4().to_string();
        let now = epoch_seconds();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.clone()))
            .item("owner", AttributeValue::S(owner.clone()))
            .item(
                "expires_at",
                AttributeValue::N((now + self.duration.as_secs()).to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Lease { key, owner }),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => {
                Err(LeaseError::Held(device_id.to_owned()))
            }
            Err(error) => Err(LeaseError::Unavailable(
                DisplayErrorContext(error).to_string(),
            )),
        }
    }

    /// Gives the lease back if it is still ours; an expired lease taken over
    /// by someone else is left to them. Retried beyond the SDK's own
    /// retries: a lease left behind blocks the device until it expires.
    pub async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        RELEASE_RETRY
            .retry(|_| true, || self.release_once(&lease))
            .await
    }

    async fn release_once(&self, lease: &Lease) -> Result<(), LeaseError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(lease.key.clone()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(lease.owner.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(error) => Err(LeaseError::Unavailable(
                DisplayErrorContext(error).to_string(),
            )),
        }
    }
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
