//! An organization's integration, ready to use: its settings and the
//! clients made from them, cached per instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::iot::{IotError, IotRegistry};
use crate::mender::MenderClient;
use crate::settings::{IntegrationSettings, SettingsError, SettingsStore};

pub struct Tenant {
    pub settings: Arc<IntegrationSettings>,
    pub iot: IotRegistry,
    pub mender: MenderClient,
    data_endpoint: OnceCell<String>,
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
            iot: IotRegistry::new(aws_sdk_iot::Client::new(&config)),
            mender: MenderClient::new(http, mender_url, settings.mender.token.clone()),
            settings,
            data_endpoint: OnceCell::new(),
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
}

/// Integration id → ready tenant. Settings are re-read from Secrets Manager
/// after their TTL; the clients (and the endpoint they looked up) are kept
/// while the settings are unchanged.
pub struct Tenants {
    store: SettingsStore,
    base: SdkConfig,
    http: reqwest::Client,
    mender_url: String,
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
            built: Mutex::new(HashMap::new()),
        }
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
        let tenant =
            Arc::new(Tenant::new(&self.base, self.http.clone(), &self.mender_url, settings).await);
        self.built
            .lock()
            .unwrap()
            .insert(integration_id.to_owned(), tenant.clone());
        Ok(tenant)
    }
}
