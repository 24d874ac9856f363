//! The lifecycle functions' handler: one device event in, that device
//! converged under its lease.

use std::time::Duration;

use serde::Serialize;

use crate::events::BusEnvelope;
use crate::iot::is_valid_thing_name;
use crate::lease::{Acquired, Lease, LeaseError, Leases, Released};
use crate::reconcile::{Outcome, ReconcileError, reconcile};
use crate::settings::{Environment, SettingsError, SettingsStore};
use crate::tenant::{Tenant, Tenants};

pub struct Lifecycle {
    pub tenants: Tenants,
    pub leases: Leases,
}

impl Lifecycle {
    /// The deployed lifecycle handler, configured from the environment.
    pub async fn from_env() -> Self {
        let env = Environment::from_env();
        let aws = crate::aws::load_base_config(crate::aws::CallPolicy::from_env()).await;
        Lifecycle::new(&env, aws, crate::mender::http_client(MENDER_TIMEOUT))
    }

    pub fn new(env: &Environment, aws: aws_config::SdkConfig, http: reqwest::Client) -> Self {
        let store = SettingsStore::new(
            aws_sdk_secretsmanager::Client::new(&aws),
            &env.secrets_prefix,
            env.settings_ttl,
        );
        Lifecycle {
            leases: Leases::new(
                aws_sdk_dynamodb::Client::new(&aws),
                &env.table_name,
                LEASE_DURATION,
            ),
            tenants: Tenants::new(store, aws, http, &env.mender_url),
        }
    }
}

/// Longer than the lifecycle functions' timeout.
pub const LEASE_DURATION: Duration = Duration::from_secs(120);
pub const MENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Any error fails the invocation, so that EventBridge retries it (and, in
/// the end, sends it to the dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub device_id: String,
    /// `None` when the event was dropped (see the log for why).
    pub outcome: Option<Outcome>,
}

pub async fn handle(
    lifecycle: &Lifecycle,
    envelope: BusEnvelope,
) -> Result<Report, LifecycleError> {
    let event = envelope.detail;
    let dropped = Report {
        device_id: event.device_id.clone(),
        outcome: None,
    };
    if !is_valid_thing_name(&event.device_id) {
        tracing::warn!(
            device_id = event.device_id,
            "not a device id; event dropped"
        );
        return Ok(dropped);
    }
    let tenant = match lifecycle.tenants.get(&event.integration_id).await {
        Err(SettingsError::NotFound(_)) => {
            tracing::warn!(
                integration_id = event.integration_id,
                "integration no longer exists; event dropped"
            );
            return Ok(dropped);
        }
        other => other?,
    };
    if tenant.id() != event.tenant_id {
        tracing::warn!(
            integration_id = event.integration_id,
            "event names another organization than its integration; dropped"
        );
        return Ok(dropped);
    }
    let outcome = converge(&lifecycle.leases, &tenant, &event.device_id).await?;
    Ok(Report {
        device_id: event.device_id,
        outcome: Some(outcome),
    })
}

/// Reconciles one device under its lease, again for as long as other
/// events ask for it meanwhile (see `crate::lease`), up to [`MAX_PASSES`].
/// A later pass that finds Mender saying what the last one converged to
/// reads Mender and the Thing, nothing more.
pub async fn converge(
    leases: &Leases,
    tenant: &Tenant,
    device_id: &str,
) -> Result<Outcome, LifecycleError> {
    let lease = match leases.acquire(tenant.id(), device_id).await? {
        Acquired::Lease(lease) => lease,
        Acquired::HandedOver => return Ok(Outcome::HandedOver),
    };
    let mut reported: Option<Outcome> = None;
    let mut settled = None;
    for _ in 0..MAX_PASSES {
        let outcome = match reconcile(tenant, device_id, settled).await {
            Ok((outcome, wanted)) => {
                settled = Some(wanted);
                outcome
            }
            Err(error) => {
                give_up(leases, lease).await;
                return Err(error.into());
            }
        };
        // A pass that found nothing to do does not hide what an earlier one did.
        reported = match (reported, outcome) {
            (Some(earlier), Outcome::InSync) => Some(earlier),
            (_, outcome) => Some(outcome),
        };
        match leases.release(&lease).await {
            Ok(Released::RerunRequested) => continue,
            Ok(Released::Released) => {}
            // It expires by itself; the work is done either way.
            Err(error) => tracing::warn!(%error, "could not release the lease"),
        }
        return Ok(reported.unwrap_or(Outcome::InSync));
    }
    // Events keep arriving: let the bus retry this one later.
    give_up(leases, lease).await;
    Err(LeaseError::Held(device_id.to_owned()).into())
}

/// Passes one invocation makes for a device before it leaves the rest to a
/// retry of its event.
pub const MAX_PASSES: usize = 4;

async fn give_up(leases: &Leases, lease: Lease) {
    if let Err(error) = leases.abandon(lease).await {
        tracing::warn!(%error, "could not release the lease");
    }
}
