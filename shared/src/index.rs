//! Which integration an organization has: one DynamoDB item per tenant,
//! `pk = integration#<tenant>`, holding the integration id. A conditional
//! write makes "one integration per organization" hold under concurrency.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::settings::SettingsError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub integration_id: String,
    /// `creating` while setup runs; `active` once the secret is complete.
    pub state: String,
    /// For `creating`: when an abandoned setup may be taken over.
    pub claim_expires_at: u64,
}

#[derive(Clone, Debug)]
pub struct IntegrationIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

pub const ACTIVE: &str = "active";
pub const CREATING: &str = "creating";

fn key(tenant_id: &str) -> AttributeValue {
    AttributeValue::S(format!("integration#{tenant_id}"))
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    error: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> SettingsError {
    SettingsError::Unavailable(DisplayErrorContext(error).to_string())
}

pub fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl IntegrationIndex {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub async fn lookup(&self, tenant_id: &str) -> Result<Option<IndexEntry>, SettingsError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", key(tenant_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let text = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok(Some(IndexEntry {
            integration_id: text("integration_id"),
            state: text("state"),
            claim_expires_at: number("claim_expires_at"),
        }))
    }

    /// The organization's active integration id, if it has one.
    pub async fn active_integration(
        &self,
        tenant_id: &str,
    ) -> Result<Option<String>, SettingsError> {
        Ok(self
            .lookup(tenant_id)
            .await?
            .filter(|e| e.state == ACTIVE)
            .map(|e| e.integration_id))
    }

    /// Every organization's active integration: (tenant, integration id).
    pub async fn active_integrations(&self) -> Result<Vec<(String, String)>, SettingsError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix) AND #state = :active")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S("integration#".to_owned()),
                )
                .expression_attribute_values(":active", AttributeValue::S(ACTIVE.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                let text = |name: &str| {
                    item.get(name)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                let tenant = text("pk").trim_start_matches("integration#").to_owned();
                found.push((tenant, text("integration_id")));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(found);
            }
        }
    }

    /// Claims the organization for a new integration. `false` when another
    /// integration exists or is being set up (and its claim is still live).
    pub async fn claim(
        &self,
        tenant_id: &str,
        integration_id: &str,
        claim_seconds: u64,
    ) -> Result<bool, SettingsError> {
        let now = epoch_seconds();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", key(tenant_id))
            .item(
                "integration_id",
                AttributeValue::S(integration_id.to_owned()),
            )
            .item("state", AttributeValue::S(CREATING.to_owned()))
            .item(
                "claim_expires_at",
                AttributeValue::N((now + claim_seconds).to_string()),
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :creating AND claim_expires_at < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":creating", AttributeValue::S(CREATING.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Marks a claimed integration complete.
    pub async fn activate(
        &self,
        tenant_id: &str,
        integration_id: &str,
    ) -> Result<(), SettingsError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", key(tenant_id))
            .item(
                "integration_id",
                AttributeValue::S(integration_id.to_owned()),
            )
            .item("state", AttributeValue::S(ACTIVE.to_owned()))
            .condition_expression("integration_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(integration_id.to_owned()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Removes the organization's entry if it still names this integration.
    pub async fn remove(&self, tenant_id: &str, integration_id: &str) -> Result<(), SettingsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", key(tenant_id))
            .condition_expression("integration_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(integration_id.to_owned()))
            .send()
            .await;
        match result {
            Err(error) if error.code() != Some("ConditionalCheckFailedException") => {
                Err(unavailable(error))
            }
            _ => Ok(()),
        }
    }
}
