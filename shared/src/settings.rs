//! Per-organization integration settings: their format in Secrets Manager
//! (documented in `docs/settings.md`), and a short-lived per-instance cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A value that must never reach a log, an error or a response: its `Debug`
/// and `Display` print a placeholder. Serialization writes the value, since
/// it is only ever serialized into Secrets Manager.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One organization's integration, as stored in its secret
/// `{SECRETS_PREFIX}{integration_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSettings {
    pub schema_version: u32,
    pub integration_id: String,
    /// The Mender organization (`mender.tenant` claim; `default` without one).
    pub tenant_id: String,
    pub aws: AwsSettings,
    /// Hex; the HMAC key of Mender's webhook signatures is its decoded bytes.
    pub webhook_secret: Secret,
    pub mender: MenderSettings,
    #[serde(default)]
    pub description: String,
    /// How much a reconcile run may disable or remove unasked.
    #[serde(default)]
    pub safety_limit: SafetyLimit,
    /// Whether reconcile runs provision devices accepted before the
    /// integration existed (and unchanged since). Off: left as they are.
    #[serde(default)]
    pub backfill: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsSettings {
    pub region: String,
    pub device_policy_name: String,
    pub credentials: AwsCredentials,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AwsCredentials {
    /// An IAM user's key pair.
    AccessKey {
        access_key_id: String,
        secret_access_key: Secret,
    },
    /// A role the bridge assumes through STS for every call.
    AssumeRole {
        role_arn: String,
        external_id: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenderSettings {
    /// The bridge's own token for the organization (a personal access token).
    pub token: Secret,
    /// Mender's id of the webhook integration pointing at the bridge.
    #[serde(default)]
    pub webhook_integration_id: Option<String>,
    /// Mender's id of the personal access token, when the bridge created it.
    #[serde(default)]
    pub token_id: Option<String>,
}

/// How much a run may disable or remove without the admin's confirmation:
/// a run is held when it would change more than `percent` % of the
/// integration's managed Things *and* more than `devices` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyLimit {
    pub percent: u64,
    pub devices: u64,
}

impl Default for SafetyLimit {
    fn default() -> Self {
        SafetyLimit {
            percent: 10,
            devices: 5,
        }
    }
}

impl SafetyLimit {
    /// Pure: whether `changes` disables or removals among `managed` Things
    /// are too many to make unasked.
    pub fn exceeded_by(&self, changes: u64, managed: u64) -> bool {
        changes > self.devices && changes * 100 > managed * self.percent
    }
}

pub const SCHEMA_VERSION: u32 = 1;

impl IntegrationSettings {
    /// A new integration's settings, created now.
    pub fn new(
        integration_id: &str,
        tenant_id: &str,
        aws: AwsSettings,
        webhook_secret: Secret,
        mender: MenderSettings,
        description: String,
    ) -> Self {
        let now = crate::clock::now_rfc3339();
        IntegrationSettings {
            schema_version: SCHEMA_VERSION,
            integration_id: integration_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            aws,
            webhook_secret,
            mender,
            description,
            safety_limit: SafetyLimit::default(),
            backfill: false,
            created_at: now.clone(),
            updated_at: now,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("no integration with id {0}")]
    NotFound(String),
    #[error("integration {0} has unreadable settings")]
    Invalid(String),
    #[error("Secrets Manager failed: {0}")]
    Unavailable(String),
}

/// Reads integration settings from Secrets Manager, keeping each for
/// `ttl` per instance.
pub struct SettingsStore {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Arc<IntegrationSettings>)>>,
}

impl SettingsStore {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn secret_name(&self, integration_id: &str) -> String {
        format!("{}{}", self.prefix, integration_id)
    }

    /// The settings of one integration. Ids that cannot be ours are refused
    /// without asking Secrets Manager.
    pub async fn get(
        &self,
        integration_id: &str,
    ) -> Result<Arc<IntegrationSettings>, SettingsError> {
        if uuid::Uuid::parse_str(integration_id).is_err() {
            return Err(SettingsError::NotFound(integration_id.to_owned()));
        }
        if let Some((read_at, settings)) = self.cache.lock().unwrap().get(integration_id)
            && read_at.elapsed() < self.ttl
        {
            return Ok(settings.clone());
        }
        self.refresh(integration_id).await
    }

    /// The settings of one integration as Secrets Manager holds them now
    /// (cached afresh).
    pub async fn refresh(
        &self,
        integration_id: &str,
    ) -> Result<Arc<IntegrationSettings>, SettingsError> {
        if uuid::Uuid::parse_str(integration_id).is_err() {
            return Err(SettingsError::NotFound(integration_id.to_owned()));
        }
        let settings = Arc::new(self.read(integration_id).await?);
        self.cache.lock().unwrap().insert(
            integration_id.to_owned(),
            (Instant::now(), settings.clone()),
        );
        Ok(settings)
    }

    async fn read(&self, integration_id: &str) -> Result<IntegrationSettings, SettingsError> {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        let output = self
            .client
            .get_secret_value()
            .secret_id(self.secret_name(integration_id))
            .send()
            .await
            .map_err(|error| match error.as_service_error() {
                Some(GetSecretValueError::ResourceNotFoundException(_)) => {
                    SettingsError::NotFound(integration_id.to_owned())
                }
                // A secret scheduled for deletion answers InvalidRequest.
                Some(GetSecretValueError::InvalidRequestException(_)) => {
                    SettingsError::NotFound(integration_id.to_owned())
                }
                _ => SettingsError::Unavailable(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(error).to_string(),
                ),
            })?;
        let text = output.secret_string().unwrap_or_default();
        // serde's message could quote a secret value; say only what failed.
        let settings: IntegrationSettings = serde_json::from_str(text)
            .map_err(|_| SettingsError::Invalid(integration_id.to_owned()))?;
        if settings.integration_id != integration_id || settings.schema_version != SCHEMA_VERSION {
            return Err(SettingsError::Invalid(integration_id.to_owned()));
        }
        Ok(settings)
    }

    /// Deletes an integration's secret: after `recovery_days` (7–30) when
    /// given, so an operator can restore it; at once otherwise (for a
    /// setup that never completed).
    pub async fn delete(
        &self,
        integration_id: &str,
        recovery_days: Option<i64>,
    ) -> Result<(), SettingsError> {
        use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
        let request = self
            .client
            .delete_secret()
            .secret_id(self.secret_name(integration_id));
        let request = match recovery_days {
            Some(days) => request.recovery_window_in_days(days),
            None => request.force_delete_without_recovery(true),
        };
        self.cache.lock().unwrap().remove(integration_id);
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(DeleteSecretError::ResourceNotFoundException(_))
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(SettingsError::Unavailable(
                aws_sdk_secretsmanager::error::DisplayErrorContext(error).to_string(),
            )),
        }
    }

    /// Writes (creates or replaces) an integration's settings.
    pub async fn put(&self, settings: &IntegrationSettings) -> Result<(), SettingsError> {
        use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
        let name = self.secret_name(&settings.integration_id);
        let text =
            serde_json::to_string(settings).map_err(|_| SettingsError::Invalid(name.clone()))?;
        let unavailable = |e: String| SettingsError::Unavailable(e);
        let created = self
            .client
            .create_secret()
            .name(&name)
            .secret_string(&text)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(CreateSecretError::ResourceExistsException(_))
                ) =>
            {
                self.client
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(&text)
                    .send()
                    .await
                    .map_err(|e| {
                        unavailable(
                            aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                        )
                    })?;
            }
            Err(error) => {
                return Err(unavailable(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(error).to_string(),
                ));
            }
        }
        self.cache.lock().unwrap().remove(&settings.integration_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let settings = IntegrationSettings::new(
            "i",
            "t",
            AwsSettings {
                region: "eu-west-1".into(),
                device_policy_name: "p".into(),
                credentials: AwsCredentials::AccessKey {
                    access_key_id: "AKIAEXAMPLE".into(),
                    secret_access_key: Secret::new("very-secret-key"),
                },
            },
            Secret::new("abcdef0123"),
            MenderSettings {
                token: Secret::new("token-value"),
                webhook_integration_id: None,
                token_id: None,
            },
            String::new(),
        );
        let debug = format!("{settings:?}");
        for secret in ["very-secret-key", "abcdef0123", "token-value"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        // The stored form keeps the values, and reads back the same.
        let stored = serde_json::to_string(&settings).unwrap();
        assert!(stored.contains("very-secret-key"));
        assert_eq!(
            serde_json::from_str::<IntegrationSettings>(&stored).unwrap(),
            settings
        );
    }

    #[test]
    fn role_credentials_have_their_own_shape() {
        let credentials: AwsCredentials = serde_json::from_str(
            r#"{"type":"assume_role","role_arn":"arn:aws:iam::123456789012:role/bridge","external_id":"x"}"#,
        )
        .unwrap();
        assert!(matches!(credentials, AwsCredentials::AssumeRole { .. }));
    }
}
