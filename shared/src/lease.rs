//! Per-device leases in DynamoDB, so that one device is converged by one
//! invocation at a time. A lease expires by itself if its holder dies.
//!
//! An event for a device whose lease is held is not retried later: it asks
//! the holder to converge once more before it lets go (the `rerun` flag),
//! and is done. Mender sends two webhooks for every accepted device, so
//! this halves the invocations a bulk acceptance keeps busy, and no event
//! waits on another's lease. The holder's second pass reads Mender again,
//! so whatever the handed-over event announced is seen.
//!
//! Only a young lease takes requests: its holder may have died (a crash, a
//! timeout), and a dead holder honours nothing. An event that finds an older
//! lease fails and is retried (Lambda retries failed asynchronous
//! invocations after about one and three minutes), by which time the lease
//! has expired. The dead holder's own event is retried the same way, so
//! whatever was handed to it is converged then.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::clock::epoch_seconds;
use crate::retry::Backoff;
use crate::table::{EXPIRES_AT, Key, PK, TableError, conditional, number, string};

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("device {0} is being converged by another invocation")]
    Held(String),
    #[error(transparent)]
    Unavailable(#[from] TableError),
}

const RELEASE_RETRY: Backoff = Backoff {
    attempts: 4,
    base: Duration::from_millis(100),
    max: Duration::from_secs(1),
};

/// A lease that vanishes between a failed take-over and the rerun request
/// is tried again this often before the event fails (and is retried).
const ACQUIRE_ATTEMPTS: u32 = 3;

/// A lease younger than this has a live holder: converging a device takes
/// seconds, even throttled.
const HANDOVER_WINDOW_SECONDS: u64 = 30;

#[derive(Clone, Debug)]
pub struct Leases {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Longer than any invocation, so a live holder never loses its lease.
    duration: Duration,
}

/// A held lease; give it back with [`Leases::release`] or [`Leases::abandon`].
#[derive(Debug)]
pub struct Lease {
    key: String,
    owner: String,
}

/// What [`Leases::acquire`] got.
#[derive(Debug)]
pub enum Acquired {
    Lease(Lease),
    /// Another invocation holds the lease and will converge the device
    /// again before releasing it.
    HandedOver,
}

/// What [`Leases::release`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Released {
    Released,
    /// Another event arrived meanwhile: the lease is still held, converge
    /// again and release again.
    RerunRequested,
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

    /// Takes the device's lease or, if a live holder has it, asks the
    /// holder to converge again.
    pub async fn acquire(&self, tenant_id: &str, device_id: &str) -> Result<Acquired, LeaseError> {
        let key = Key::Lease {
            tenant_id,
            device_id,
        }
        .text();
        for _ in 0..ACQUIRE_ATTEMPTS {
            if let Some(lease) = self.take(&key).await? {
                return Ok(Acquired::Lease(lease));
            }
            if self.request_rerun(&key).await? {
                return Ok(Acquired::HandedOver);
            }
        }
        Err(LeaseError::Held(device_id.to_owned()))
    }

    async fn take(&self, key: &str) -> Result<Option<Lease>, LeaseError> {
        let owner = uuid::Uuid::new_v4().to_string();
        let now = epoch_seconds();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, string(key))
            .item("owner", string(owner.clone()))
            .item("taken_at", number(now))
            .item(EXPIRES_AT, number(now + self.duration.as_secs()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        match conditional(result)? {
            true => Ok(Some(Lease {
                key: key.to_owned(),
                owner,
            })),
            false => Ok(None),
        }
    }

    /// Flags a young lease for a rerun; false if there is none (any more),
    /// or it is too old to trust its holder with the request.
    async fn request_rerun(&self, key: &str) -> Result<bool, LeaseError> {
        let now = epoch_seconds();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, string(key))
            .update_expression("SET rerun = :yes")
            .condition_expression(
                "attribute_exists(pk) AND expires_at >= :now AND taken_at >= :young",
            )
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", number(now))
            .expression_attribute_values(
                ":young",
                number(now.saturating_sub(HANDOVER_WINDOW_SECONDS)),
            )
            .send()
            .await;
        Ok(conditional(result)?)
    }

    /// Gives the lease back, unless a rerun was requested: then the request
    /// is cleared and the lease kept. A lease that expired and was taken by
    /// someone else is left to them.
    pub async fn release(&self, lease: &Lease) -> Result<Released, LeaseError> {
        RELEASE_RETRY
            .retry(|_| true, || self.release_once(lease))
            .await
    }

    async fn release_once(&self, lease: &Lease) -> Result<Released, LeaseError> {
        if self
            .delete_if(lease, "#owner = :owner AND attribute_not_exists(rerun)")
            .await?
        {
            return Ok(Released::Released);
        }
        // Either a rerun was requested or the lease is no longer ours.
        let cleared = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, string(lease.key.clone()))
            .update_expression("REMOVE rerun")
            .condition_expression("#owner = :owner AND attribute_exists(rerun)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", string(lease.owner.clone()))
            .send()
            .await;
        match conditional(cleared)? {
            true => Ok(Released::RerunRequested),
            false => Ok(Released::Released),
        }
    }

    /// Gives the lease back whatever was requested meanwhile: for a holder
    /// that failed, whose event is retried and converges again anyway.
    pub async fn abandon(&self, lease: Lease) -> Result<(), LeaseError> {
        RELEASE_RETRY
            .retry(|_| true, || self.delete_if(&lease, "#owner = :owner"))
            .await
            .map(|_| ())
    }

    /// Deletes the lease's item if `condition` (on `#owner`, `:owner`) holds.
    async fn delete_if(&self, lease: &Lease, condition: &str) -> Result<bool, LeaseError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, string(lease.key.clone()))
            .condition_expression(condition)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", string(lease.owner.clone()))
            .send()
            .await;
        Ok(conditional(result)?)
    }
}
