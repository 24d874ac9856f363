//! AWS SDK configuration: the deployment's own (the bridge's role) and each
//! organization's (its key pair or assumed role, its region).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::settings::{AwsCredentials, AwsSettings};

/// Retries and timeouts for every AWS call: throttling, 5xx, timeouts and
/// broken connections are retried with exponential backoff and jitter by the
/// SDK before an error reaches the bridge.
#[derive(Clone, Copy, Debug)]
pub struct CallPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
        }
    }
}

impl CallPolicy {
    /// The default, with `AWS_ATTEMPT_TIMEOUT_MS` honoured (tests shorten it).
    pub fn from_env() -> Self {
        let mut policy = CallPolicy::default();
        if let Some(ms) = std::env::var("AWS_ATTEMPT_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            policy.attempt_timeout = Duration::from_millis(ms);
            policy.operation_timeout =
                Duration::from_millis(ms * u64::from(policy.max_attempts) + 2_000);
        }
        policy
    }

    pub fn apply(&self, builder: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
        builder
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts)
                    .with_initial_backoff(self.initial_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(self.attempt_timeout)
                    .operation_timeout(self.operation_timeout)
                    .build(),
            )
    }
}

/// The deployment's own AWS configuration (Lambda role credentials, region,
/// `AWS_ENDPOINT_URL` overrides), loaded once at init.
pub async fn load_base_config(policy: CallPolicy) -> SdkConfig {
    policy
        .apply(aws_config::defaults(BehaviorVersion::latest()))
        .load()
        .await
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
