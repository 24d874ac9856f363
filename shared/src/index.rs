//! Which integration an organization has: one DynamoDB item per tenant,
//! `pk = integration#<tenant>`, holding the integration id. A conditional
//! write makes "one integration per organization" hold under concurrency.

use crate::clock::epoch_seconds;
use crate::settings::SettingsError;
use crate::table::{
    Key, PK, TableError, conditional, number, number_of, read_item, string, text_of,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub integration_id: String,
    /// `creating` while setup runs; `active` once the secret is complete.
    pub state: String,
    /// For `creating`: when an abandoned setup may be taken over.
    pub claim_expires_at: u64,
}

impl IndexEntry {
    /// A setup that stopped before it was complete: its claim ran out, so
    /// its invocation (far shorter than a claim) has ended.
    pub fn abandoned(&self, now: u64) -> bool {
        self.state == CREATING && self.claim_expires_at < now
    }
}

#[derive(Clone, Debug)]
pub struct IntegrationIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

pub const ACTIVE: &str = "active";
pub const CREATING: &str = "creating";

fn key(tenant_id: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    Key::Integration { tenant_id }.value()
}

impl From<TableError> for SettingsError {
    fn from(error: TableError) -> Self {
        SettingsError::Unavailable(error.0)
    }
}

impl IntegrationIndex {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub async fn lookup(&self, tenant_id: &str) -> Result<Option<IndexEntry>, SettingsError> {
        let item = read_item(&self.client, &self.table, Key::Integration { tenant_id }).await?;
        Ok(item.as_ref().map(|item| IndexEntry {
            integration_id: text_of(item, "integration_id"),
            state: text_of(item, "state"),
            claim_expires_at: number_of(item, "claim_expires_at"),
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
                .expression_attribute_values(":prefix", string(Key::INTEGRATION_PREFIX))
                .expression_attribute_values(":active", string(ACTIVE))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(TableError::from)?;
            for item in page.items() {
                let pk = text_of(item, PK);
                let tenant = pk.trim_start_matches(Key::INTEGRATION_PREFIX).to_owned();
                found.push((tenant, text_of(item, "integration_id")));
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
            .item(PK, key(tenant_id))
            .item("integration_id", string(integration_id))
            .item("state", string(CREATING))
            .item("claim_expires_at", number(now + claim_seconds))
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :creating AND claim_expires_at < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":creating", string(CREATING))
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        Ok(conditional(result)?)
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
            .item(PK, key(tenant_id))
            .item("integration_id", string(integration_id))
            .item("state", string(ACTIVE))
            .condition_expression("integration_id = :id")
            .expression_attribute_values(":id", string(integration_id))
            .send()
            .await
            .map_err(TableError::from)?;
        Ok(())
    }

    /// Removes the organization's entry if it still names this integration.
    pub async fn remove(&self, tenant_id: &str, integration_id: &str) -> Result<(), SettingsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, key(tenant_id))
            .condition_expression("integration_id = :id")
            .expression_attribute_values(":id", string(integration_id))
            .send()
            .await;
        // Gone already, or naming another integration: nothing to remove.
        conditional(result)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_setup_whose_claim_ran_out_is_abandoned() {
        let entry = |state: &str, claim_expires_at| IndexEntry {
            integration_id: "i1".into(),
            state: state.into(),
            claim_expires_at,
        };
        for (state, expires, now, abandoned) in [
            (CREATING, 100, 101, true),
            (CREATING, 100, 100, false),
            (CREATING, 100, 50, false),
            (ACTIVE, 0, 101, false),
        ] {
            assert_eq!(
                entry(state, expires).abandoned(now),
                abandoned,
                "{state} expiring {expires} at {now}"
            );
        }
    }
}
