//! The lifecycle functions' handler: one device event in, that device
//! converged under its lease.

use std::time::Duration;

use serde::Serialize;

use crate::converge::{ConvergeError, Outcome, Trigger, converge};
use crate::event_log::{EventLog, Happened, Source};
use crate::events::BusEnvelope;
use crate::iot::is_valid_thing_name;
use crate::lease::{Acquired, Lease, LeaseError, Leases, Released};
use crate::metrics::MetricsSink;
use crate::settings::SettingsError;
use crate::tenant::{Tenant, Tenants};

pub struct Lifecycle {
    pub tenants: Tenants,
    pub leases: Leases,
    /// Where per-organization metrics go (see [`crate::metrics`]).
    pub metrics: MetricsSink,
    /// What the bridge did to devices, for the organization to read.
    pub event_log: EventLog,
}

/// Longer than the lifecycle functions' timeout.
pub const LEASE_DURATION: Duration = Duration::from_secs(120);

/// Passes one invocation makes for a device before it leaves the rest to a
/// retry of its event.
pub const MAX_PASSES: usize = 4;

/// Any error fails the invocation, so that EventBridge retries it (and, in
/// the end, sends it to the dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Converge(#[from] ConvergeError),
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
    // Mender named this very device in a signed event: every change is
    // allowed (its status is read from Mender again).
    let converged =
        converge_under_lease(&lifecycle.leases, &tenant, &event.device_id, Trigger::Event).await;
    let source = Source::Webhook(envelope.detail_type);
    lifecycle
        .record(&tenant, &event.device_id, source, &converged)
        .await;
    let outcome = converged?;
    Ok(Report {
        device_id: event.device_id,
        outcome: Some(outcome),
    })
}

impl Lifecycle {
    /// A device's convergence in the organization's metrics and event log:
    /// what it changed, or that it failed (a refused rotation changed
    /// nothing and failed nothing), and how often AWS throttled it
    /// meanwhile.
    pub async fn record(
        &self,
        tenant: &Tenant,
        device_id: &str,
        source: Source<'_>,
        converged: &Result<Outcome, LifecycleError>,
    ) {
        let (metric, happened) = match converged {
            Ok(outcome) => (
                crate::metrics::outcome_metric(*outcome),
                Happened::Outcome(*outcome),
            ),
            Err(LifecycleError::Converge(ConvergeError::Refused(_))) => return,
            Err(error) => (
                Some(crate::metrics::FAILED),
                Happened::Failed(error.to_string()),
            ),
        };
        let mut values: Vec<(&str, f64)> = metric.map(|metric| (metric, 1.0)).into_iter().collect();
        values.extend(crate::metrics::throttled_value(tenant));
        self.metrics.emit(tenant.id(), &values);
        self.event_log
            .record(
                tenant.id(),
                &tenant.settings.integration_id,
                device_id,
                source,
                &happened,
            )
            .await;
    }
}

/// What the pass loop does after a pass whose lease release went `released`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPass {
    /// Done: the lease is given back.
    Done,
    /// Another event asked for a rerun meanwhile: converge again.
    Again,
    /// Events keep arriving: give the lease up and let the bus retry.
    GiveUp,
}

/// Pure: what follows pass number `pass` (1-based).
pub fn after_pass(pass: usize, released: &Result<Released, LeaseError>) -> AfterPass {
    match released {
        Ok(Released::RerunRequested) if pass < MAX_PASSES => AfterPass::Again,
        Ok(Released::RerunRequested) => AfterPass::GiveUp,
        // An unreleased lease expires by itself; the work is done either way.
        Ok(Released::Released) | Err(_) => AfterPass::Done,
    }
}

/// Pure: what a device's passes report: a pass that found nothing to do
/// does not hide what an earlier one did.
pub fn report(earlier: Option<Outcome>, latest: Outcome) -> Outcome {
    match (earlier, latest) {
        (Some(earlier), Outcome::InSync) => earlier,
        (_, latest) => latest,
    }
}

/// Converges one device under its lease, again for as long as other events
/// ask for it meanwhile (see `crate::lease`), up to [`MAX_PASSES`]. A later
/// pass that finds Mender saying what the last one converged to reads
/// Mender and the Thing, nothing more.
pub async fn converge_under_lease(
    leases: &Leases,
    tenant: &Tenant,
    device_id: &str,
    trigger: Trigger,
) -> Result<Outcome, LifecycleError> {
    let lease = match leases.acquire(tenant.id(), device_id).await? {
        Acquired::Lease(lease) => lease,
        Acquired::HandedOver => return Ok(Outcome::HandedOver),
    };
    let mut reported: Option<Outcome> = None;
    let mut settled = None;
    for pass in 1.. {
        let trigger = if pass == 1 { trigger } else { trigger.again() };
        let (outcome, wanted) = match converge(tenant, device_id, settled, trigger).await {
            Ok(converged) => converged,
            Err(error) => {
                give_up(leases, lease).await;
                return Err(error.into());
            }
        };
        settled = Some(wanted);
        reported = Some(report(reported, outcome));
        let released = leases.release(&lease).await;
        if let Err(error) = &released {
            tracing::warn!(%error, "could not release the lease");
        }
        match after_pass(pass, &released) {
            AfterPass::Again => continue,
            AfterPass::Done => break,
            AfterPass::GiveUp => {
                give_up(leases, lease).await;
                return Err(LeaseError::Held(device_id.to_owned()).into());
            }
        }
    }
    Ok(reported.unwrap_or(Outcome::InSync))
}

async fn give_up(leases: &Leases, lease: Lease) {
    if let Err(error) = leases.abandon(lease).await {
        tracing::warn!(%error, "could not release the lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableError;

    #[test]
    fn passes_go_on_while_reruns_are_asked_for_up_to_the_limit() {
        let rerun = || Ok(Released::RerunRequested);
        let released = || Ok(Released::Released);
        let failed = || Err(LeaseError::Unavailable(TableError("down".into())));
        for (pass, result, expected) in [
            (1, released(), AfterPass::Done),
            (1, rerun(), AfterPass::Again),
            (MAX_PASSES - 1, rerun(), AfterPass::Again),
            (MAX_PASSES, rerun(), AfterPass::GiveUp),
            (MAX_PASSES, released(), AfterPass::Done),
            (1, failed(), AfterPass::Done),
        ] {
            assert_eq!(
                after_pass(pass, &result),
                expected,
                "pass {pass}: {result:?}"
            );
        }
    }

    #[test]
    fn a_quiet_pass_keeps_what_an_earlier_one_did() {
        use Outcome::*;
        for (earlier, latest, expected) in [
            (None, InSync, InSync),
            (None, Provisioned, Provisioned),
            (Some(Provisioned), InSync, Provisioned),
            (Some(Provisioned), Disabled, Disabled),
            (Some(Disabled), Repaired, Repaired),
        ] {
            assert_eq!(report(earlier, latest), expected);
        }
    }
}
