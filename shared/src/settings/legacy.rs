//! Upgrading from schema 1, which kept an integration in one secret,
//! `{prefix}{integration_id}`, that the unauthenticated webhook ingress had
//! to be allowed to read whole (AWS credentials and Mender token included).
//!
//! Two steps around the deploy (docs/deploy.md, "Upgrading"), so no
//! function ever looks for a secret that is not there:
//! [`Migration::copy`] before it, while the old functions still read
//! schema 1; [`Migration::finish`] after it, which carries over what changed
//! meanwhile and deletes the schema-1 secrets (restorable for 7 days).
//!
//! Schema 1 kept no record of which organization uses which role; both
//! steps claim each copied integration's role for its organization, so that
//! no other organization can set up with it afterwards.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use aws_sdk_secretsmanager::types::Tag;

use super::store::{SettingsError, delete_secret, unavailable};
use super::{IntegrationSettings, SCHEMA_VERSION, Secret, SettingsStore, Stored, WebhookSecret};
use crate::integration::trust::Trust;

/// A deleted schema-1 secret can be restored for this long.
const RECOVERY_DAYS: i64 = 7;

/// A schema-1 secret as two schema-2 ones; `None` when `text` is not a
/// schema-1 integration. Pure.
pub fn split(text: &str) -> Option<(IntegrationSettings, WebhookSecret)> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    if value.get("schema_version") != Some(&json!(1)) {
        return None;
    }
    let webhook_secret = value.as_object_mut()?.remove("webhook_secret")?;
    let webhook_secret = Secret::new(webhook_secret.as_str()?);
    value["schema_version"] = json!(SCHEMA_VERSION);
    let settings: IntegrationSettings = serde_json::from_value(value).ok()?;
    let webhook = WebhookSecret::new(
        &settings.integration_id,
        &settings.tenant_id,
        webhook_secret,
    );
    Some((settings, webhook))
}

/// What a step did, by integration id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Written in schema 2 from their schema-1 secret.
    pub copied: Vec<String>,
    /// Schema-1 secrets deleted ([`finish`] only).
    pub retired: Vec<String>,
    /// Schema-2 secrets deleted because their integration was removed
    /// between the two steps ([`finish`] only).
    pub removed: Vec<String>,
    /// Schema-1 secrets that could not be read as an integration; left as
    /// they are for the operator to look at.
    pub unreadable: Vec<String>,
    /// Integrations whose role another organization's integration claimed
    /// first: two organizations share a role, for the operator to resolve.
    pub role_conflicts: Vec<String>,
}

/// A schema-1 secret: its integration id, and whether its integration was
/// removed (the secret scheduled for deletion by the old functions, not
/// retired by [`Migration::finish`]).
struct Legacy {
    integration_id: String,
    removed: bool,
    retired: bool,
}

/// The tag [`Migration::finish`] puts on a schema-1 secret it retires, so
/// that a second run tells it from one whose integration was removed.
const RETIRED_TAG: &str = "mender-iot-bridge:migrated-to-schema";

/// The schema-1 secrets under a prefix, the schema-2 stores they move to,
/// and the bridge's table, where roles are claimed.
pub struct Migration {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    credentials: SettingsStore<IntegrationSettings>,
    webhooks: SettingsStore<WebhookSecret>,
    trust: Trust,
}

impl Migration {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        prefix: &str,
        table: aws_sdk_dynamodb::Client,
        table_name: &str,
    ) -> Self {
        Migration {
            credentials: SettingsStore::new(client.clone(), prefix, Duration::ZERO),
            webhooks: SettingsStore::new(client.clone(), prefix, Duration::ZERO),
            client,
            prefix: prefix.to_owned(),
            // Trust policies are not written here: no bridge roles needed.
            trust: Trust::new(table, table_name, ""),
        }
    }

    /// Step 1, before deploying: every schema-1 integration written in
    /// schema 2 as well. Idempotent; the schema-1 secrets stay as they are.
    pub async fn copy(&self) -> Result<Report, SettingsError> {
        let mut report = Report::default();
        for legacy in self.list().await? {
            if legacy.removed || legacy.retired {
                continue;
            }
            match self.read(&legacy.integration_id).await? {
                Some((settings, webhook)) => {
                    self.write(&settings, &webhook, &mut report).await?;
                    report.copied.push(legacy.integration_id);
                }
                None => report.unreadable.push(legacy.integration_id),
            }
        }
        Ok(report)
    }

    /// Step 2, after deploying: what the old functions changed after step 1
    /// is carried over (a schema-1 secret newer than its copy, or never
    /// copied), copies of integrations removed meanwhile are deleted, and
    /// the schema-1 secrets are deleted.
    pub async fn finish(&self) -> Result<Report, SettingsError> {
        let mut report = Report::default();
        for legacy in self.list().await? {
            let id = legacy.integration_id;
            if legacy.retired {
                continue;
            }
            if legacy.removed {
                if self.copy_of(&id).await?.is_some() {
                    self.webhooks.delete(&id, Some(RECOVERY_DAYS)).await?;
                    self.credentials.delete(&id, Some(RECOVERY_DAYS)).await?;
                    report.removed.push(id);
                }
                continue;
            }
            let Some((settings, webhook)) = self.read(&id).await? else {
                report.unreadable.push(id);
                continue;
            };
            let copy = self.copy_of(&id).await?;
            if copy.is_none_or(|copy| newer(&settings.updated_at, &copy.updated_at)) {
                self.write(&settings, &webhook, &mut report).await?;
                report.copied.push(id.clone());
            }
            self.client
                .tag_resource()
                .secret_id(self.legacy_name(&id))
                .tags(
                    Tag::builder()
                        .key(RETIRED_TAG)
                        .value(SCHEMA_VERSION.to_string())
                        .build(),
                )
                .send()
                .await
                .map_err(unavailable)?;
            delete_secret(&self.client, &self.legacy_name(&id), Some(RECOVERY_DAYS)).await?;
            report.retired.push(id);
        }
        Ok(report)
    }

    fn legacy_name(&self, integration_id: &str) -> String {
        format!("{}{integration_id}", self.prefix)
    }

    /// The schema-1 secrets: those named `{prefix}{uuid}`.
    async fn list(&self) -> Result<Vec<Legacy>, SettingsError> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_secrets()
                .include_planned_deletion(true)
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(&self.prefix)
                        .build(),
                )
                .set_next_token(token)
                .send()
                .await
                .map_err(unavailable)?;
            for secret in page.secret_list() {
                let id = secret
                    .name()
                    .and_then(|name| name.strip_prefix(self.prefix.as_str()));
                if let Some(id) = id
                    && uuid::Uuid::parse_str(id).is_ok()
                {
                    let retired = secret.tags().iter().any(|t| t.key() == Some(RETIRED_TAG));
                    found.push(Legacy {
                        integration_id: id.to_owned(),
                        removed: secret.deleted_date().is_some() && !retired,
                        retired,
                    });
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    /// A schema-1 secret, split; `None` when it is not a schema-1
    /// integration of that id.
    async fn read(
        &self,
        integration_id: &str,
    ) -> Result<Option<(IntegrationSettings, WebhookSecret)>, SettingsError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(self.legacy_name(integration_id))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(split(output.secret_string().unwrap_or_default())
            .filter(|(settings, _)| settings.integration_id() == integration_id))
    }

    async fn copy_of(
        &self,
        integration_id: &str,
    ) -> Result<Option<Arc<IntegrationSettings>>, SettingsError> {
        match self.credentials.refresh(integration_id).await {
            Ok(copy) => Ok(Some(copy)),
            Err(SettingsError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The role claimed, then the credentials: a webhook secret exists
    /// only for a complete integration. A role another organization claimed
    /// is reported; the integration is copied all the same, since the old
    /// functions already use it and stopping it would stop a fleet.
    async fn write(
        &self,
        settings: &IntegrationSettings,
        webhook: &WebhookSecret,
        report: &mut Report,
    ) -> Result<(), SettingsError> {
        if let Some(role) = settings.aws.credentials.role_arn()
            && !self.trust.claim_role(role, &settings.tenant_id).await?
        {
            report.role_conflicts.push(settings.integration_id.clone());
        }
        self.credentials.put(settings).await?;
        self.webhooks.put(webhook).await
    }
}

/// Whether timestamp `a` is later than `b` (RFC 3339; unreadable is not).
fn newer(a: &str, b: &str) -> bool {
    match (
        OffsetDateTime::parse(a, &Rfc3339),
        OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_one_secret_splits_in_two() {
        let one = json!({
            "schema_version": 1,
            "integration_id": "8a0c5c47-6a7e-4c8e-9a55-2f1c3d4e5f60",
            "tenant_id": "acme",
            "aws": {"region": "eu-west-1", "device_policy_name": "p",
                    "credentials": {"type": "assume_role", "role_arn": "arn:aws:iam::123456789012:role/r", "external_id": null}},
            "webhook_secret": "00ff",
            "mender": {"token": "t"},
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-02T00:00:00Z"
        });
        let (settings, webhook) = split(&one.to_string()).unwrap();
        assert_eq!(settings.schema_version, SCHEMA_VERSION);
        assert_eq!(settings.tenant_id, "acme");
        assert_eq!(settings.updated_at, "2026-01-02T00:00:00Z");
        assert_eq!(
            webhook,
            WebhookSecret::new(&settings.integration_id, "acme", Secret::new("00ff"))
        );
        assert!(!serde_json::to_string(&settings).unwrap().contains("00ff"));

        let mut two = one.clone();
        two["schema_version"] = json!(2);
        let mut keyless = one.clone();
        keyless.as_object_mut().unwrap().remove("webhook_secret");
        for not_one in [
            two.to_string(),
            keyless.to_string(),
            "{".into(),
            "[]".into(),
        ] {
            assert!(split(&not_one).is_none(), "{not_one}");
        }
    }

    #[test]
    fn timestamps_compare_as_times() {
        assert!(newer("2026-01-01T00:00:01Z", "2026-01-01T00:00:00.9Z"));
        assert!(!newer("2026-01-01T00:00:00.9Z", "2026-01-01T00:00:01Z"));
        assert!(!newer("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"));
        assert!(!newer("yesterday", "2026-01-01T00:00:00Z"));
    }
}
