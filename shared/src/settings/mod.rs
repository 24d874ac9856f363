//! Per-organization integration settings: their format in Secrets Manager
//! (documented in `docs/settings.md`), read through [`SettingsStore`].
//!
//! Each integration has two secrets, so IAM can give each function only
//! what it needs: `{prefix}webhook/{id}` ([`WebhookSecret`], all the
//! unauthenticated ingress may read) and `{prefix}credentials/{id}`
//! ([`IntegrationSettings`]: AWS credentials and the Mender token).
//! [`legacy`] moves schema-1 secrets (one per integration) to this layout.

pub mod legacy;
mod store;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use store::{SettingsError, SettingsStore};

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

/// What one of an integration's secrets holds.
pub trait Stored: Serialize + DeserializeOwned + Send + Sync {
    /// The secret's name is `{prefix}{KIND}/{integration_id}`.
    const KIND: &'static str;
    fn integration_id(&self) -> &str;
    fn schema_version(&self) -> u32;
}

/// What verifying an integration's webhooks needs, in the secret
/// `{SECRETS_PREFIX}webhook/{integration_id}`: the only secret the
/// ingress may read. It exists exactly while the integration does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecret {
    pub schema_version: u32,
    pub integration_id: String,
    pub tenant_id: String,
    /// Hex; the HMAC key of Mender's webhook signatures is its decoded bytes.
    pub webhook_secret: Secret,
}

impl WebhookSecret {
    pub fn new(integration_id: &str, tenant_id: &str, webhook_secret: Secret) -> Self {
        WebhookSecret {
            schema_version: SCHEMA_VERSION,
            integration_id: integration_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            webhook_secret,
        }
    }
}

impl Stored for WebhookSecret {
    const KIND: &'static str = "webhook";
    fn integration_id(&self) -> &str {
        &self.integration_id
    }
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
}

/// One organization's integration, as stored in its secret
/// `{SECRETS_PREFIX}credentials/{integration_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSettings {
    pub schema_version: u32,
    pub integration_id: String,
    /// The Mender organization (`mender.tenant` claim; `default` without one).
    pub tenant_id: String,
    pub aws: AwsSettings,
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
    /// Whether Things this integration did not make (no marker at all:
    /// Mender's own AWS IoT integration's) are adopted, each only on proof
    /// that it is this organization's device. Off: they are conflicts.
    #[serde(default)]
    pub adopt_existing: bool,
    /// Device policies the integration used before its current one: the
    /// bridge attached them, so it detaches them (after attaching the
    /// current one) wherever it finds them on its certificates.
    #[serde(default)]
    pub retired_device_policies: Vec<String>,
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
    /// A role the bridge assumes through STS for every call, with the
    /// external id the bridge gave the organization (schema 1 could hold
    /// one the admin chose, or none, until the next setup).
    AssumeRole {
        role_arn: String,
        external_id: Option<String>,
    },
}

impl AwsCredentials {
    pub fn role_arn(&self) -> Option<&str> {
        match self {
            AwsCredentials::AssumeRole { role_arn, .. } => Some(role_arn),
            AwsCredentials::AccessKey { .. } => None,
        }
    }
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

/// Schema 1 kept everything in one secret; see [`legacy`].
pub const SCHEMA_VERSION: u32 = 2;

impl Stored for IntegrationSettings {
    const KIND: &'static str = "credentials";
    fn integration_id(&self) -> &str {
        &self.integration_id
    }
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
}

impl IntegrationSettings {
    /// A new integration's settings, created now.
    pub fn new(
        integration_id: &str,
        tenant_id: &str,
        aws: AwsSettings,
        mender: MenderSettings,
        description: String,
    ) -> Self {
        let now = crate::clock::now_rfc3339();
        IntegrationSettings {
            schema_version: SCHEMA_VERSION,
            integration_id: integration_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            aws,
            mender,
            description,
            safety_limit: SafetyLimit::default(),
            backfill: false,
            adopt_existing: false,
            retired_device_policies: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
        }
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
            MenderSettings {
                token: Secret::new("token-value"),
                webhook_integration_id: None,
                token_id: None,
            },
            String::new(),
        );
        let debug = format!("{settings:?}");
        let webhook = WebhookSecret::new("i", "t", Secret::new("abcdef0123"));
        let debug = format!("{debug} {webhook:?}");
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
