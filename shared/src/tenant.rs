//! An organization's integration, ready to use: its settings and the
//! clients made from them, cached per instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::iot::{IotError, IotRegistry};
use crate::mender::MenderClient;
use crate::reconcile::Concurrency;
use crate::settings::{IntegrationSettings, SettingsError, SettingsStore};

pub struct Tenant {
    pub settings: Arc<IntegrationSettings>,
    pub iot: IotRegistry,
    pub mender: MenderClient,
    /// How reconcile runs independent calls: always concurrently in the
    /// deployed functions (see [`Concurrency`]).
    pub concurrency: Concurrency,
    /// The organization's AWS configuration the clients are made from.
    config: SdkConfig,
    data_endpoint: OnceCell<String>,
    data_plane: OnceCell<aws_sdk_iotdataplane::Client>,
}

/// The registry client. A bulk acceptance keeps the registry throttled for
/// minutes; the SDK's retry quota (a circuit breaker for outages, shared by
/// every call of the instance) would run dry after about a hundred
/// throttled retries and turn throttling into failed, undone provisionings
/// that only add load. Attempts per call stay bounded by the `CallPolicy`.
fn registry_client(config: &SdkConfig) -> aws_sdk_iot::Client {
    use aws_sdk_iot::config::retry::{RetryPartition, TokenBucket};
    let config = aws_sdk_iot::config::Builder::from(config)
        .retry_partition(
            RetryPartition::custom("iot-registry")
                .token_bucket(TokenBucket::unlimited())
                .build(),
        )
        .build();
    aws_sdk_iot::Client::from_conf(config)
}

impl Tenant {
    pub async fn new(
        base: &SdkConfig,
        http: reqwest::Client,
        mender_url: &str,
        settings: Arc<IntegrationSettings>,
    ) -> Self {
        let config = crate::aws::tenant_config(base, &settings.aws).await;
        Tenant {
            iot: IotRegistry::new(registry_client(&config)),
            mender: MenderClient::new(http, mender_url, settings.mender.token.clone()),
            concurrency: Concurrency::Concurrent,
            settings,
            config,
            data_endpoint: OnceCell::new(),
            data_plane: OnceCell::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.settings.tenant_id
    }

    /// The account's `iot:Data-ATS` host, asked once per tenant.
    pub async fn data_endpoint(&self) -> Result<String, IotError> {
        self.data_endpoint
            .get_or_try_init(|| self.iot.data_endpoint())
            .await
            .cloned()
    }

    /// The IoT data plane client (Device Shadows), made once per tenant. It
    /// talks to the account's `iot:Data-ATS` endpoint unless an endpoint is
    /// configured (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_IOT_DATA_PLANE`):
    /// locally and in tests, the emulator.
    pub async fn data_plane(&self) -> Result<&aws_sdk_iotdataplane::Client, IotError> {
        self.data_plane
            .get_or_try_init(|| async {
                let mut config = aws_sdk_iotdataplane::config::Builder::from(&self.config);
                let service_override = std::env::var(DATA_PLANE_ENDPOINT_VARIABLE).ok();
                if needs_discovered_endpoint(
                    self.config.endpoint_url(),
                    service_override.as_deref(),
                ) {
                    let host = self.data_endpoint().await?;
                    config = config.endpoint_url(format!("https://{host}"));
                }
                Ok(aws_sdk_iotdataplane::Client::from_conf(config.build()))
            })
            .await
    }
}

/// The SDK's own per-service endpoint override for the IoT data plane.
pub const DATA_PLANE_ENDPOINT_VARIABLE: &str = "AWS_ENDPOINT_URL_IOT_DATA_PLANE";

/// The data plane has no fixed regional endpoint: each account has its own
/// host, which only DescribeEndpoint tells. A configured endpoint wins.
pub fn needs_discovered_endpoint(configured: Option<&str>, service_override: Option<&str>) -> bool {
    let set = |v: Option<&str>| v.is_some_and(|v| !v.trim().is_empty());
    !set(configured) && !set(service_override)
}

/// Integration id → ready tenant. Settings are re-read from Secrets Manager
/// after their TTL; the clients (and the endpoint they looked up) are kept
/// while the settings are unchanged.
pub struct Tenants {
    store: SettingsStore,
    base: SdkConfig,
    http: reqwest::Client,
    mender_url: String,
    concurrency: Concurrency,
    built: Mutex<HashMap<String, Arc<Tenant>>>,
}

impl Tenants {
    pub fn new(
        store: SettingsStore,
        base: SdkConfig,
        http: reqwest::Client,
        mender_url: impl Into<String>,
    ) -> Self {
        Self {
            store,
            base,
            http,
            mender_url: mender_url.into(),
            concurrency: Concurrency::Concurrent,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// Tenants whose reconciles run with `concurrency` (the provisioning
    /// benchmark's sequential baseline; see [`Concurrency`]).
    pub fn with_concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    pub fn store(&self) -> &SettingsStore {
        &self.store
    }

    pub async fn get(&self, integration_id: &str) -> Result<Arc<Tenant>, SettingsError> {
        let settings = self.store.get(integration_id).await?;
        if let Some(tenant) = self.built.lock().unwrap().get(integration_id)
            && tenant.settings == settings
        {
            return Ok(tenant.clone());
        }
        let mut tenant =
            Tenant::new(&self.base, self.http.clone(), &self.mender_url, settings).await;
        tenant.concurrency = self.concurrency;
        let tenant = Arc::new(tenant);
        self.built
            .lock()
            .unwrap()
            .insert(integration_id.to_owned(), tenant.clone());
        Ok(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_endpoint_is_looked_up_only_without_an_override() {
        assert!(needs_discovered_endpoint(None, None));
        assert!(needs_discovered_endpoint(None, Some(" ")));
        assert!(!needs_discovered_endpoint(
            Some("http://127.0.0.1:5000"),
            None
        ));
        assert!(!needs_discovered_endpoint(
            None,
            Some("http://127.0.0.1:5000")
        ));
    }
}
