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

/// An organization's AWS configuration: its region and credentials, on top
/// of the deployment's (which keeps endpoint overrides, retries, timeouts).
pub async fn tenant_config(base: &SdkConfig, aws: &AwsSettings) -> SdkConfig {
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
                .session_name("mender-iot-bridge")
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
