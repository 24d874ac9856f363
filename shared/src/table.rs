//! The bridge's DynamoDB table: one partition key `pk` whose prefix says
//! what an item is, conditional writes, and the epoch-second numbers that
//! expiries and the table's TTL (`expires_at`) use.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

/// The partition key attribute.
pub const PK: &str = "pk";
/// The attribute DynamoDB's TTL deletes items by (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";

/// What an item is, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// Which integration an organization has.
    Integration { tenant_id: &'a str },
    /// One device's convergence lease.
    Lease {
        tenant_id: &'a str,
        device_id: &'a str,
    },
    /// The organization's reconcile-run lock (one run at a time).
    RunLock { tenant_id: &'a str },
    /// A reconcile run's record.
    Run { run_id: &'a str },
    /// Which run of a kind the organization started last (`sync`, `rotation`).
    LatestRun { tenant_id: &'a str, kind: &'a str },
    /// The page of Mender's device listing where the organization's next
    /// deep check begins.
    DeepCheckCursor { tenant_id: &'a str },
    /// The organization's failed setups in the current window.
    SetupFailures { tenant_id: &'a str },
    /// The external id the bridge gave the organization (kept for good).
    ExternalId { tenant_id: &'a str },
    /// Which organization's integration uses an IAM role (by
    /// [`crate::integration::trust::role_key`]).
    Role { role: &'a str },
    /// A certificate about to be made for a device, named by its key's
    /// SHA-256 (see [`crate::intent`]).
    CertificateIntent {
        tenant_id: &'a str,
        device_id: &'a str,
        key_id: &'a str,
    },
}

impl Key<'_> {
    pub const INTEGRATION_PREFIX: &'static str = "integration#";

    pub fn text(&self) -> String {
        match self {
            Key::Integration { tenant_id } => format!("{}{tenant_id}", Self::INTEGRATION_PREFIX),
            Key::Lease {
                tenant_id,
                device_id,
            } => format!("lease#{tenant_id}#{device_id}"),
            Key::RunLock { tenant_id } => format!("reconcile#{tenant_id}"),
            Key::Run { run_id } => format!("run#{run_id}"),
            Key::LatestRun { tenant_id, kind } => format!("latest-run#{tenant_id}#{kind}"),
            Key::DeepCheckCursor { tenant_id } => format!("deep-check#{tenant_id}"),
            Key::SetupFailures { tenant_id } => format!("setup-failures#{tenant_id}"),
            Key::ExternalId { tenant_id } => format!("external-id#{tenant_id}"),
            Key::Role { role } => format!("role#{role}"),
            Key::CertificateIntent {
                tenant_id,
                device_id,
                key_id,
            } => format!(
                "{}{device_id}#{key_id}",
                Key::certificate_intent_prefix(tenant_id)
            ),
        }
    }

    /// What every certificate intent of the organization's key starts with.
    pub fn certificate_intent_prefix(tenant_id: &str) -> String {
        format!("certificate-intent#{tenant_id}#")
    }

    pub fn value(&self) -> AttributeValue {
        AttributeValue::S(self.text())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("DynamoDB failed: {0}")]
pub struct TableError(pub String);

impl<E, R> From<SdkError<E, R>> for TableError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(error: SdkError<E, R>) -> Self {
        TableError(DisplayErrorContext(error).to_string())
    }
}

/// `Ok(true)` if a conditional write happened, `Ok(false)` if its condition
/// did not hold.
pub fn conditional<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, TableError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// The item under `key`, read consistently (a write just made is seen).
pub async fn read_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Key<'_>,
) -> Result<Option<HashMap<String, AttributeValue>>, TableError> {
    let output = client
        .get_item()
        .table_name(table)
        .key(PK, key.value())
        .consistent_read(true)
        .send()
        .await?;
    Ok(output.item)
}

pub fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A string attribute of an item; empty when absent.
pub fn text_of(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// A number attribute of an item; zero when absent.
pub fn number_of(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_say_what_an_item_is() {
        assert_eq!(Key::Integration { tenant_id: "t" }.text(), "integration#t");
        assert_eq!(
            Key::Lease {
                tenant_id: "t",
                device_id: "d"
            }
            .text(),
            "lease#t#d"
        );
        assert_eq!(Key::RunLock { tenant_id: "t" }.text(), "reconcile#t");
        assert_eq!(Key::Run { run_id: "r" }.text(), "run#r");
        assert_eq!(
            Key::DeepCheckCursor { tenant_id: "t" }.text(),
            "deep-check#t"
        );
        assert_eq!(
            Key::LatestRun {
                tenant_id: "t",
                kind: "sync"
            }
            .text(),
            "latest-run#t#sync"
        );
        assert_eq!(
            Key::SetupFailures { tenant_id: "t" }.text(),
            "setup-failures#t"
        );
        assert_eq!(Key::ExternalId { tenant_id: "t" }.text(), "external-id#t");
        assert_eq!(Key::Role { role: "r" }.text(), "role#r");
    }

    #[test]
    fn items_read_back() {
        let item = HashMap::from([("a".to_owned(), string("x")), ("n".to_owned(), number(42))]);
        assert_eq!(text_of(&item, "a"), "x");
        assert_eq!(number_of(&item, "n"), 42);
        assert_eq!(text_of(&item, "missing"), "");
        assert_eq!(number_of(&item, "a"), 0);
    }
}
