//! An organization's integration, ready to use: its settings and the
//! clients made from them, cached per instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::auth::Caller;
use crate::converge::record::DeviceRecords;
use crate::http::ApiError;
use crate::index::IntegrationIndex;
use crate::intent::CertificateIntents;
use crate::iot::{IotError, IotRegistry, Owner};
use crate::mender::MenderClient;
use crate::pace::Pace;
use crate::settings::{IntegrationSettings, SettingsError, SettingsStore};
use crate::stage::Concurrency;
use crate::throttling::ThrottledCalls;

pub struct Tenant {
    pub settings: Arc<IntegrationSettings>,
    pub iot: IotRegistry,
    pub mender: MenderClient,
    /// Certificates about to be made, recorded first (see `crate::intent`).
    pub intents: CertificateIntents,
    /// What convergence last saw of each device (see `crate::converge::record`).
    pub records: DeviceRecords,
    /// How convergence runs independent calls: always concurrently in the
    /// deployed functions (see [`Concurrency`]).
    pub concurrency: Concurrency,
    /// How long a provisioning waits out throttling (see
    /// [`crate::throttling::Patience`]).
    pub throttle_patience: Duration,
    /// AWS's throttled answers to the organization's IoT clients.
    pub throttled: ThrottledCalls,
    /// The organization's AWS configuration the clients are made from.
    config: SdkConfig,
    /// The deployment's IoT data plane endpoint, when one is configured.
    data_plane_endpoint: Option<String>,
    data_endpoint: OnceCell<String>,
    data_plane: OnceCell<aws_sdk_iotdataplane::Client>,
}

/// The registry client. A bulk acceptance keeps the registry throttled for
/// minutes; the SDK's retry quota (a circuit breaker for outages, shared by
/// every call of the instance) would run dry after about a hundred
/// throttled retries and turn throttling into failed, undone provisionings
/// that only add load. Attempts per call stay bounded by the `CallPolicy`.
fn registry_client(config: &SdkConfig, throttled: &ThrottledCalls) -> aws_sdk_iot::Client {
    use aws_sdk_iot::config::retry::{RetryPartition, TokenBucket};
    let config = aws_sdk_iot::config::Builder::from(config)
        .retry_partition(
            RetryPartition::custom("iot-registry")
                .token_bucket(TokenBucket::unlimited())
                .build(),
        )
        .interceptor(throttled.clone())
        .build();
    aws_sdk_iot::Client::from_conf(config)
}

impl Tenant {
    async fn new(tenants: &Tenants, settings: Arc<IntegrationSettings>) -> Self {
        let config =
            crate::aws::tenant_config(&tenants.base, &settings.tenant_id, &settings.aws).await;
        let throttled = ThrottledCalls::default();
        Tenant {
            iot: IotRegistry::new(
                registry_client(&config, &throttled),
                Owner {
                    tenant_id: settings.tenant_id.clone(),
                    integration_id: settings.integration_id.clone(),
                    adopt_unmarked: settings.adopt_existing,
                },
                tenants
                    .write_pace
                    .map(|per_second| Arc::new(Pace::per_second(per_second))),
            ),
            mender: MenderClient::new(
                tenants.http.clone(),
                &tenants.mender_url,
                settings.mender.token.clone(),
            ),
            intents: tenants.intents.clone(),
            records: tenants.records.clone(),
            concurrency: tenants.concurrency,
            throttle_patience: tenants.throttle_patience,
            throttled,
            settings,
            config,
            data_plane_endpoint: tenants.data_plane_endpoint.clone(),
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
                let mut config = aws_sdk_iotdataplane::config::Builder::from(&self.config)
                    .interceptor(self.throttled.clone());
                match &self.data_plane_endpoint {
                    Some(endpoint) => config = config.endpoint_url(endpoint),
                    None if self.config.endpoint_url().is_none() => {
                        let host = self.data_endpoint().await?;
                        config = config.endpoint_url(format!("https://{host}"));
                    }
                    None => {}
                }
                Ok(aws_sdk_iotdataplane::Client::from_conf(config.build()))
            })
            .await
    }
}

/// Integration id → ready tenant. Settings are re-read from Secrets Manager
/// after their TTL; the clients (and the endpoint they looked up) are kept
/// while the settings are unchanged.
pub struct Tenants {
    /// Shared with [`Tenants::paced`] copies: one settings cache per instance.
    store: Arc<SettingsStore<IntegrationSettings>>,
    base: SdkConfig,
    http: reqwest::Client,
    mender_url: String,
    data_plane_endpoint: Option<String>,
    intents: CertificateIntents,
    records: DeviceRecords,
    concurrency: Concurrency,
    throttle_patience: Duration,
    /// Writes per second of each organization's registry client, when paced.
    write_pace: Option<u32>,
    built: Mutex<HashMap<String, Arc<Tenant>>>,
}

impl Tenants {
    pub fn new(
        store: SettingsStore<IntegrationSettings>,
        base: SdkConfig,
        http: reqwest::Client,
        mender_url: impl Into<String>,
        data_plane_endpoint: Option<String>,
        intents: CertificateIntents,
        records: DeviceRecords,
    ) -> Self {
        Self {
            store: Arc::new(store),
            base,
            http,
            mender_url: mender_url.into(),
            data_plane_endpoint,
            intents,
            records,
            concurrency: Concurrency::Concurrent,
            throttle_patience: Duration::ZERO,
            write_pace: None,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The same organizations, read through the same settings cache, with
    /// their AWS IoT Core writes at `per_second` (a run's; see
    /// `crate::pace`), in bursts of up to a second's worth.
    pub fn paced(&self, per_second: Option<u32>) -> Tenants {
        Tenants {
            store: self.store.clone(),
            base: self.base.clone(),
            http: self.http.clone(),
            mender_url: self.mender_url.clone(),
            data_plane_endpoint: self.data_plane_endpoint.clone(),
            intents: self.intents.clone(),
            records: self.records.clone(),
            concurrency: self.concurrency,
            throttle_patience: self.throttle_patience,
            write_pace: per_second,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// Tenants whose reconciles run with `concurrency` (the provisioning
    /// benchmark's sequential baseline; see [`Concurrency`]).
    pub fn with_concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Tenants whose provisionings wait out throttling this long (see
    /// [`crate::throttling::Patience`]).
    pub fn with_throttle_patience(mut self, patience: Duration) -> Self {
        self.throttle_patience = patience;
        self
    }

    pub async fn get(&self, integration_id: &str) -> Result<Arc<Tenant>, SettingsError> {
        let settings = self.store.get(integration_id).await?;
        self.ready(integration_id, settings).await
    }

    /// The caller's organization, for the API: its active integration,
    /// which must be the caller's organization's (404 otherwise).
    pub async fn of_caller(
        &self,
        index: &IntegrationIndex,
        caller: &Caller,
    ) -> Result<Arc<Tenant>, ApiError> {
        let no_integration = || {
            ApiError::NotFound(format!(
                "organization {} has no AWS IoT Core integration",
                caller.tenant_id
            ))
        };
        let integration_id = index
            .active_integration(&caller.tenant_id)
            .await?
            .ok_or_else(no_integration)?;
        let tenant = self
            .get(&integration_id)
            .await
            .map_err(|error| match error {
                SettingsError::NotFound(_) => no_integration(),
                other => other.into(),
            })?;
        if tenant.id() != caller.tenant_id {
            tracing::error!(
                integration_id,
                "the index names an integration of another organization"
            );
            return Err(no_integration());
        }
        Ok(tenant)
    }

    /// As [`Tenants::get`], with the settings read afresh: a reconcile run
    /// acts on the integration as it is now (backfill, safety limit).
    pub async fn get_fresh(&self, integration_id: &str) -> Result<Arc<Tenant>, SettingsError> {
        let settings = self.store.refresh(integration_id).await?;
        self.ready(integration_id, settings).await
    }

    /// The tenant for these settings: the one built before if they are
    /// unchanged, a new one otherwise.
    async fn ready(
        &self,
        integration_id: &str,
        settings: Arc<IntegrationSettings>,
    ) -> Result<Arc<Tenant>, SettingsError> {
        if let Some(tenant) = self.built.lock().unwrap().get(integration_id)
            && tenant.settings == settings
        {
            return Ok(tenant.clone());
        }
        let tenant = Arc::new(Tenant::new(self, settings).await);
        self.built
            .lock()
            .unwrap()
            .insert(integration_id.to_owned(), tenant.clone());
        Ok(tenant)
    }
}
