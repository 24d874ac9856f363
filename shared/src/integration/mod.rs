//! Integration setup: one integration per organization, set up, changed and
//! removed by the organization's admin. Everything secret goes to Secrets
//! Manager; any failure half-way is undone.
//!
//! Only organizations the operator allows ([`Enrollment`]) may set up, and
//! their failed setups are rate-limited ([`failures`]).
//!
//! [`routes`] answers the requests, [`validation`] checks bodies,
//! [`credentials`] tries the credentials before they are stored,
//! [`trust`] keeps each organization to its own role, and [`steps`] makes
//! (and unmakes) the integration.

pub mod credentials;
pub mod events;
pub mod failures;
pub mod routes;
pub mod runs;
pub mod steps;
pub mod trust;
pub mod unlink;
pub mod validation;

pub use routes::handle;

use aws_config::SdkConfig;

use self::failures::SetupFailures;
use self::trust::Trust;
use crate::auth::Authenticator;
use crate::config::Enrollment;
use crate::event_log::EventLog;
use crate::events::EventBus;
use crate::index::IntegrationIndex;
use crate::lease::Leases;
use crate::reconcile::{ReconcileError, ReconcileRun, RunRequest, RunStore};
use crate::settings::{IntegrationSettings, SettingsStore, WebhookSecret};
use crate::tenant::Tenants;

pub struct IntegrationApi<B> {
    pub auth: Authenticator,
    pub settings: SettingsStore<IntegrationSettings>,
    pub webhooks: SettingsStore<WebhookSecret>,
    pub index: IntegrationIndex,
    /// The deployment's AWS configuration, for trying tenants' credentials.
    pub aws: SdkConfig,
    pub http: reqwest::Client,
    pub mender_url: String,
    /// Where Mender reaches the bridge: webhook URLs are built from it.
    pub public_url: String,
    /// Reconcile runs, started through the bus.
    pub runs: RunStore,
    pub bus: B,
    /// Which organizations may set up (and change) an integration.
    pub enrollment: Enrollment,
    /// Failed setups per organization, and their limit.
    pub setup_failures: SetupFailures,
    /// External ids, and which organization uses which role.
    pub trust: Trust,
    /// What the bridge did to the organization's devices.
    pub event_log: EventLog,
    /// The organizations' clients and the devices' leases, for unlinking
    /// a device.
    pub tenants: Tenants,
    pub leases: Leases,
}

impl<B> IntegrationApi<B> {
    /// Where Mender delivers the integration's webhooks.
    pub fn webhook_url(&self, integration_id: &str) -> String {
        format!("{}/webhooks/{integration_id}", self.public_url)
    }
}

impl<B: EventBus> IntegrationApi<B> {
    /// Starts a run (sync or rotation) of the integration's organization.
    pub async fn start_run(
        &self,
        settings: &IntegrationSettings,
        request: RunRequest,
    ) -> Result<ReconcileRun, ReconcileError> {
        crate::reconcile::start(
            &self.runs,
            &self.bus,
            &settings.tenant_id,
            &settings.integration_id,
            request,
        )
        .await
    }
}
