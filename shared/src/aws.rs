//! AWS SDK configuration: the deployment's own (the bridge's role) and each
//! organization's (its key pair or assumed role, its region).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::config::CallPolicy;
use crate::settings::{AwsCredentials, AwsSettings};

/// `base` with `policy`'s retries and timeouts: throttling, 5xx, timeouts
/// and broken connections are retried with exponential backoff and jitter
/// by the SDK before an error reaches the bridge.
pub fn with_policy(base: &SdkConfig, policy: CallPolicy) -> SdkConfig {
    base.to_builder()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(policy.max_attempts)
                .with_initial_backoff(policy.initial_backoff),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(policy.attempt_timeout)
                .operation_timeout(policy.operation_timeout)
                .build(),
        )
        .build()
}

/// The role session name the bridge assumes an organization's role with:
/// it names the organization, so the role's trust policy can pin it
/// (`sts:RoleSessionName`) and CloudTrail shows whose calls they are.
/// STS allows 64 of `[A-Za-z0-9_+=,.@-]`; Mender's tenant ids (24 hex
/// digits, or `default`) fit as they are. Pure.
pub fn session_name(tenant_id: &str) -> String {
    let name: String = format!("mender-iot-bridge-{tenant_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.chars().take(64).collect()
}

/// An organization's AWS configuration: its region and credentials, on top
/// of the deployment's (which keeps endpoint overrides, retries, timeouts).
pub async fn tenant_config(base: &SdkConfig, tenant_id: &str, aws: &AwsSettings) -> SdkConfig {
    let region = Region::new(aws.region.clone());
    let credentials = match &aws.credentials {
        AwsCredentials::AccessKey {
            access_key_id,
            secret_access_key,
        } => SharedCredentialsProvider::new(Credentials::new(
            access_key_id,
            secret_access_key.expose(),
            None,
            None,
            "mender-iot-bridge",
        )),
        AwsCredentials::AssumeRole {
            role_arn,
            external_id,
        } => {
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                .session_name(session_name(tenant_id))
                .region(region.clone())
                .configure(base);
            if let Some(external_id) = external_id {
                provider = provider.external_id(external_id);
            }
            SharedCredentialsProvider::new(provider.build().await)
        }
    };
    base.to_builder()
        .region(region)
        .credentials_provider(credentials)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_names_the_organization() {
        assert_eq!(
            session_name("5f1e2d3c4b5a697887960a1b"),
            "mender-iot-bridge-5f1e2d3c4b5a697887960a1b"
        );
        assert_eq!(session_name("default"), "mender-iot-bridge-default");
        assert_eq!(session_name("a b/c"), "mender-iot-bridge-a_b_c");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
    }
}
