//! Reconcile runs: make AWS IoT Core match Mender for every device of an
//! organization. Backfills devices accepted before the integration existed
//! and repairs whatever missed webhooks left behind.
//!
//! A sync run walks Mender's devices page by page, then the Things carrying
//! the bridge's marker (to remove those whose device Mender no longer
//! knows). It compares each device with AWS's bulk listings and with the
//! device's record (`crate::converge::record`), and converges, under the
//! same lease as the lifecycle functions, only those where they disagree
//! ([`triage`]). Its survey ends with the deep check: a paced slice of the
//! devices that agreed is looked at in full, for drift no listing shows
//! (see `crate::config::DeepCheck`).
//! A rotation run walks the devices of its scope only, rotating each
//! device's certificate as `crate::rotation` does for one.
//! It checkpoints after every page, so a run that reaches an invocation's
//! time limit continues in the next invocation where it stopped. One run per
//! organization at a time. The rules of its stepping are pure ([`run`]);
//! this module is the shell that calls Mender, AWS and the table.

pub mod listing;
pub mod run;
mod spill;
pub mod store;
pub mod triage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

pub use run::{
    Census, Counts, Failure, MAX_DEVICE_IDS, Pass, Phase, ReconcileRun, RunKind, RunRequest,
    RunState, Scope,
};
pub use store::RunStore;

use crate::clock::{epoch_millis, epoch_of, epoch_seconds, now_rfc3339};
use crate::config::DeepCheck;
use crate::converge::record::DeviceRecord;
use crate::converge::{ConvergeError, Outcome, Trigger, observe_device, plan};
use crate::device::DeviceStatus;
use crate::event_log::{Happened, Source};
use crate::events::{DetailType, EventBus, ReconcileRequest};
use crate::index::IntegrationIndex;
use crate::iot::IotError;
use crate::lease::LeaseError;
use crate::lifecycle::{Lifecycle, LifecycleError, converge_under_lease};
use crate::mender::{Device, MenderError};
use crate::pace::Pace;
use crate::retry::Backoff;
use crate::settings::{IntegrationSettings, SettingsError, SettingsStore};
use crate::table::TableError;
use crate::tenant::Tenant;
use crate::token_renewal;
use listing::{AWS_PAGE_SIZE, AwsListing, Gathered, Names};
use run::{AfterWalk, NotDone, after_walk, checkpoint_here};
use triage::{Expected, Triage, triage};

/// Devices converged at once. Each provisioning makes about ten AWS calls;
/// with AWS IoT Core's default quotas (tens of requests per second for the
/// write APIs) this keeps a run near, not over, them.
pub const CONCURRENCY: usize = 8;
/// A device that failed (its lease held by a webhook being handled, AWS
/// still throttling after the SDK's own retries, Mender briefly away) is
/// tried again before the run counts it as failed.
const DEVICE_RETRY: Backoff = Backoff {
    attempts: 6,
    base: Duration::from_millis(300),
    max: Duration::from_secs(3),
};
/// What an invocation keeps back from Lambda's deadline for its last checkpoint.
const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("a reconcile run ({0}) is already under way for this organization")]
    AlreadyRunning(String),
    #[error("no reconcile run {0}")]
    NoSuchRun(String),
    #[error(transparent)]
    Store(#[from] TableError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Mender(#[from] MenderError),
    #[error(transparent)]
    Iot(#[from] IotError),
    #[error("could not queue the run: {0}")]
    Bus(String),
    #[error("not a reconcile event: {0}")]
    BadEvent(String),
    /// The listings could not be kept under the temp dir (`listing`).
    #[error("could not keep the listings in the temp dir: {0}")]
    Scratch(#[from] std::io::Error),
}

/// What a reconcile invocation needs: the lifecycle functions' tenants and
/// leases, plus the runs and the index of organizations.
pub struct Reconciler {
    pub lifecycle: Arc<Lifecycle>,
    pub runs: RunStore,
    pub index: IntegrationIndex,
    /// See `Config::invocation_limit`: when a certificate intent is stale.
    pub invocation_limit: Duration,
    /// Where the schedule stores a renewed Mender token.
    pub settings: SettingsStore<IntegrationSettings>,
    pub deep_check: DeepCheck,
    /// Mender devices per page (see `Config::run_page_size`).
    pub page_size: u32,
}

/// Starts a run for one organization and asks the bus to carry it out.
pub async fn start<B: EventBus>(
    runs: &RunStore,
    bus: &B,
    tenant_id: &str,
    integration_id: &str,
    request: RunRequest,
) -> Result<ReconcileRun, ReconcileError> {
    let run = runs.start(tenant_id, integration_id, request).await?;
    request_run(bus, &run.run_id).await?;
    Ok(run)
}

/// When an invocation must stop: a margin before the Lambda deadline
/// (milliseconds since the epoch), for the last checkpoint.
pub fn invocation_deadline(deadline_epoch_ms: u64) -> Instant {
    let left = Duration::from_millis(deadline_epoch_ms.saturating_sub(epoch_millis()));
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}

async fn request_run<B: EventBus>(bus: &B, run_id: &str) -> Result<(), ReconcileError> {
    let detail = serde_json::to_value(ReconcileRequest {
        run_id: run_id.to_owned(),
    })
    .expect("a request serializes");
    bus.publish(DetailType::ReconcileRequested, &detail)
        .await
        .map_err(|e| ReconcileError::Bus(e.to_string()))
}

/// The reconcile function: invoked by the schedule (start a run for every
/// organization with an integration) or by a `reconcile-requested` event
/// (advance that run until `deadline`, then hand the rest to a fresh
/// invocation through the bus).
pub async fn handle<B: EventBus>(
    reconciler: &Reconciler,
    bus: &B,
    event: serde_json::Value,
    deadline: Instant,
) -> Result<serde_json::Value, ReconcileError> {
    if event["detail-type"] == DetailType::ReconcileRequested.as_str() {
        let request: ReconcileRequest = serde_json::from_value(event["detail"].clone())
            .map_err(|e| ReconcileError::BadEvent(e.to_string()))?;
        let run = step(reconciler, &request.run_id, deadline).await?;
        if run.state == RunState::Running {
            request_run(bus, &run.run_id).await?;
        }
        return Ok(
            serde_json::json!({ "run_id": run.run_id, "state": run.state, "counts": run.counts }),
        );
    }
    // The schedule: the bridge's Mender token looked after, and one run
    // per organization, unless one is under way.
    let mut started = Vec::new();
    for (tenant_id, integration_id) in reconciler.index.active_integrations().await? {
        look_after_token(reconciler, &tenant_id, &integration_id).await;
        let sync = RunRequest::Sync { confirmed: false };
        match start(&reconciler.runs, bus, &tenant_id, &integration_id, sync).await {
            Ok(run) => started.push(run.run_id),
            Err(ReconcileError::AlreadyRunning(run_id)) => {
                tracing::info!(
                    tenant = tenant_id,
                    run_id,
                    "a run is under way; not starting another"
                )
            }
            Err(error) => {
                tracing::error!(tenant = tenant_id, %error, "could not start a reconcile run")
            }
        }
    }
    Ok(serde_json::json!({ "started": started }))
}

/// Renews the organization's Mender token when it is due (see
/// [`crate::token_renewal`]). A failure is logged, not the schedule's: the
/// next tick tries again, and the days-left alarm watches.
async fn look_after_token(reconciler: &Reconciler, tenant_id: &str, integration_id: &str) {
    let result = match reconciler.lifecycle.tenants.get_fresh(integration_id).await {
        Ok(tenant) => {
            token_renewal::look_after(&reconciler.settings, &tenant, &reconciler.lifecycle.metrics)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = result {
        tracing::error!(tenant = tenant_id, %error, "could not renew the bridge's Mender token; the next schedule tries again");
    }
}

/// Advances a run until it finishes or `deadline` passes (checked after each
/// page, so every invocation makes progress). The run as saved.
pub async fn step(
    reconciler: &Reconciler,
    run_id: &str,
    deadline: Instant,
) -> Result<ReconcileRun, ReconcileError> {
    let runs = &reconciler.runs;
    let mut run = runs
        .get(run_id)
        .await?
        .ok_or_else(|| ReconcileError::NoSuchRun(run_id.to_owned()))?;
    if run.state != RunState::Running {
        // A retried invocation of a run that ended: its lock goes with it.
        runs.release(&run).await?;
        return Ok(run);
    }
    run.invocations += 1;
    let tenant = match reconciler
        .lifecycle
        .tenants
        .get_fresh(&run.integration_id)
        .await
    {
        Err(SettingsError::NotFound(_)) => {
            run.failures.push(Failure {
                device_id: String::new(),
                reason: "the integration was removed".into(),
            });
            run.end(RunState::Failed, now_rfc3339());
            runs.save(&run).await?;
            ended(reconciler, &run);
            return Ok(run);
        }
        other => other?,
    };
    // What this invocation listed, read once and kept while it lasts.
    // Some calls below are boxed (`Box::pin`): a run's future is polled on
    // a thread's stack, and an unboxed call's future is part of it.
    let mut listings = Listings::default();
    let deep_pace = reconciler.deep_check.per_second.map(Pace::steady);
    let page_size = reconciler.page_size;
    loop {
        // Devices walked in this page: the run's progress, as it goes.
        let mut walked = 0;
        match run.phase.clone() {
            Phase::Devices { page } => {
                if page == 1 && run.pass == Pass::Survey && run.total.is_none() {
                    run.total = expected_total(&tenant, &run).await;
                }
                let listing = match run.kind {
                    RunKind::Sync => tenant
                        .mender
                        .list_devices(page, page_size)
                        .await
                        .map(|devices| (devices.len(), Listed::Devices(devices))),
                    RunKind::Rotation => rotation_page(&tenant, &run, page, page_size)
                        .await
                        .map(|(listed, walked)| (listed, Listed::Walked(walked))),
                };
                let (listed, devices) = match listing {
                    Ok(listing) => listing,
                    Err(error) => {
                        listing_failed(reconciler, &mut run, error).await?;
                        return Ok(run);
                    }
                };
                walked = devices.len();
                if run.pass == Pass::Survey {
                    run.counts.seen += walked as u64;
                }
                let look = match devices {
                    Listed::Devices(devices) => {
                        let last = listed < page_size as usize;
                        listings.walked(page, &devices, last)?;
                        Box::pin(triage_page(&tenant, &mut run, &mut listings, devices)).await?
                    }
                    Listed::Walked(walked) => walked,
                };
                if !look.is_empty() {
                    listings.aws_stale = true;
                }
                converge_all(reconciler, &tenant, &mut run, look, None).await;
                run.phase = run
                    .phase
                    .after_page(run.kind, page_size, listed, None, false);
            }
            Phase::Things { next_token } => {
                if listings.mender.is_none() {
                    match Box::pin(Gathered::of_mender(&tenant.mender, page_size)).await {
                        Ok(gathered) => listings.mender = Some(gathered.into_names()?),
                        Err(error) => {
                            listing_failed(reconciler, &mut run, error).await?;
                            return Ok(run);
                        }
                    }
                }
                // The Things this invocation listed for the comparison, when
                // Mender knows them all; else a page of them listed now.
                let (listed, unlisted, next_token) =
                    match listings.listed_all_in_mender(run.pass, next_token.is_none())? {
                        Some(listed) => (listed, Vec::new(), None),
                        None => {
                            let (things, next_token) =
                                tenant.iot.managed_things(next_token, AWS_PAGE_SIZE).await?;
                            let listed = things.len();
                            (listed, listings.missing_from_mender(things)?, next_token)
                        }
                    };
                if run.pass == Pass::Survey {
                    run.managed += listed as u64;
                }
                let orphans = unknown_to_mender(&tenant, &mut run, unlisted).await;
                walked = orphans.len();
                converge_all(reconciler, &tenant, &mut run, orphans, None).await;
                run.phase = run
                    .phase
                    .after_page(run.kind, page_size, listed, next_token, false);
            }
            Phase::DeepCheck { page, .. } => {
                let devices = match tenant.mender.list_devices(page, page_size).await {
                    Ok(devices) => devices,
                    Err(error) => {
                        listing_failed(reconciler, &mut run, error).await?;
                        return Ok(run);
                    }
                };
                let listed = devices.len();
                let due = Box::pin(due_for_deep_check(reconciler, &tenant, &run, devices)).await?;
                converge_all(reconciler, &tenant, &mut run, due, deep_pace.as_ref()).await;
                let enough = run.counts.deep_checked >= reconciler.deep_check.most_per_run;
                run.phase = run
                    .phase
                    .after_page(run.kind, page_size, listed, None, enough);
                if run.phase == Phase::Finished {
                    let resume = match enough {
                        true => page,
                        false => Phase::deep_check_resumes(page, page_size, listed),
                    };
                    Box::pin(runs.set_deep_check_cursor(&run.tenant_id, resume)).await?;
                    run.deep_check_done = true;
                }
            }
            Phase::Finished => match after_walk(&run, tenant.settings.safety_limit) {
                AfterWalk::DeepCheck if reconciler.deep_check.most_per_run == 0 => {
                    run.deep_check_done = true;
                }
                AfterWalk::DeepCheck => {
                    let first = Box::pin(runs.deep_check_cursor(&run.tenant_id)).await?;
                    run.phase = Phase::DeepCheck {
                        page: first,
                        first,
                        wrapped: false,
                    };
                }
                AfterWalk::Apply => {
                    run.pass = Pass::Apply;
                    run.phase = Phase::Devices { page: 1 };
                }
                AfterWalk::Done => {
                    sweep_intents(reconciler, &tenant, &run).await;
                    run.end(RunState::Done, now_rfc3339());
                    runs.save(&run).await?;
                    ended(reconciler, &run);
                    tracing::info!(tenant = run.tenant_id, run_id = run.run_id, counts = ?run.counts, "reconcile run done");
                    return Ok(run);
                }
                AfterWalk::Hold => {
                    let limit = tenant.settings.safety_limit;
                    let reason = format!(
                        "{} of the {} managed devices would be disabled or removed, more than the safety limit ({} % and {} devices); nothing was disabled or removed. Check Mender (URL, token, organization), then confirm with POST {}/integrations/{}/reconcile {{\"confirm\": \"{}\"}}",
                        run.counts.deferred,
                        run.managed,
                        limit.percent,
                        limit.devices,
                        crate::http::API_PREFIX,
                        run.integration_id,
                        run.run_id
                    );
                    hold(reconciler, &mut run, reason).await?;
                    return Ok(run);
                }
            },
        }
        let progress = (walked > 0).then_some((crate::metrics::RUN_PROGRESS, walked as f64));
        let values: Vec<_> = progress
            .into_iter()
            .chain(crate::metrics::throttled_value(&tenant))
            .collect();
        reconciler.lifecycle.metrics.emit(tenant.id(), &values);
        runs.save(&run).await?;
        if checkpoint_here(&run.phase, Instant::now() >= deadline) {
            tracing::info!(tenant = run.tenant_id, run_id = run.run_id, phase = ?run.phase, "reconcile run checkpointed");
            return Ok(run);
        }
    }
}

/// What an invocation read of the bulk listings. AWS's are read again for
/// the second pass, which follows the survey's changes; they serve the
/// Things phase too, which then lists nothing more when Mender knows every
/// Thing. Mender's ids are those the devices walk listed, when this
/// invocation walked it from the first page; otherwise they are listed
/// again.
#[derive(Default)]
struct Listings {
    aws: Option<(Pass, AwsListing)>,
    /// A device was converged since AWS's listing was read: it may have
    /// made, claimed or removed a Thing, so the Things phase (which also
    /// counts the Things for the safety limit) lists them again.
    aws_stale: bool,
    mender: Option<Names>,
    walking: Option<Gathered>,
}

impl Listings {
    /// A page of the devices walk (a sync run's), `last` when it ends it.
    fn walked(&mut self, page: u32, devices: &[Device], last: bool) -> std::io::Result<()> {
        if page == 1 {
            self.walking = Some(Gathered::default());
        }
        if let Some(walking) = &mut self.walking {
            walking.add(devices.iter().map(|d| d.id.as_str()));
        }
        if last && let Some(walking) = self.walking.take() {
            self.mender = Some(walking.into_names()?);
        }
        Ok(())
    }

    async fn aws(&mut self, tenant: &Tenant, pass: Pass) -> Result<&AwsListing, ReconcileError> {
        if !matches!(&self.aws, Some((read_for, _)) if *read_for == pass) {
            self.aws = None;
            let listing = Box::pin(AwsListing::read(&tenant.iot)).await?;
            self.aws = Some((pass, listing));
            self.aws_stale = false;
        }
        Ok(&self.aws.as_ref().expect("just read").1)
    }

    /// Of these Things, those Mender's listing (read before) did not show.
    fn missing_from_mender(&self, things: Vec<String>) -> std::io::Result<Vec<String>> {
        let in_mender = self.mender_read();
        let mut missing = Vec::new();
        for thing in things {
            if !in_mender.contains(&thing)? {
                missing.push(thing);
            }
        }
        Ok(missing)
    }

    fn mender_read(&self) -> &Names {
        self.mender
            .as_ref()
            .expect("Mender's listing is read first")
    }

    /// How many Things the comparison's listing for `pass` holds, when
    /// Mender's listing showed every one of them: when this invocation read
    /// that listing, nothing was converged since, and the Things phase is
    /// `starting` (a phase some pages into its listing goes on with it).
    /// `None` when the Things are to be listed page by page: the listing
    /// keeps digests, and a Thing Mender lacks is acted on by its name.
    fn listed_all_in_mender(&self, pass: Pass, starting: bool) -> std::io::Result<Option<usize>> {
        let Some((read_for, aws)) = self.aws.as_ref().filter(|_| starting && !self.aws_stale)
        else {
            return Ok(None);
        };
        let things = aws.things();
        let all_in = *read_for == pass && things.all_in(self.mender_read())?;
        Ok(all_in.then_some(things.len()))
    }
}

/// A Mender listing that failed. Not an outage but a Mender that does not
/// answer as its API says (a wrong URL, a refused token): no evidence about
/// any device, so nothing is decided and the run is held. An outage is the
/// invocation's error: the bus tries it again.
async fn listing_failed(
    reconciler: &Reconciler,
    run: &mut ReconcileRun,
    error: MenderError,
) -> Result<(), ReconcileError> {
    if error.is_transient() {
        return Err(error.into());
    }
    let reason = format!(
        "Mender's device listing failed ({error}); nothing was disabled or removed. Check the Mender URL and the integration's token, then start a run again"
    );
    hold(reconciler, run, reason).await?;
    Ok(())
}

/// Counts the devices of a sync run's page whose records and the listings
/// agree, and returns the others, to be looked at.
async fn triage_page(
    tenant: &Tenant,
    run: &mut ReconcileRun,
    listings: &mut Listings,
    devices: Vec<Device>,
) -> Result<Vec<Walked>, ReconcileError> {
    let records = records_of(tenant, &devices).await?;
    let aws = listings.aws(tenant, run.pass).await?;
    let listed = aws.about(
        devices.iter().map(|d| d.id.as_str()),
        records
            .values()
            .flat_map(|r| &r.certificates)
            .map(|c| c.id.as_str()),
    )?;
    let expected = Expected {
        device_policy: &tenant.settings.aws.device_policy_name,
        backfill: tenant.settings.backfill,
    };
    let mut look = Vec::new();
    for device in &devices {
        let walked = Walked::of(device);
        match triage(device, records.get(&device.id), &listed, expected) {
            Triage::Unchanged(outcome) => {
                run.tally(&walked.device_id, walked.accepted, Ok(outcome))
            }
            Triage::Look => look.push(walked),
        }
    }
    Ok(look)
}

/// The records of a page's devices that have one, by device id.
async fn records_of(
    tenant: &Tenant,
    devices: &[Device],
) -> Result<HashMap<String, DeviceRecord>, TableError> {
    let ids: Vec<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    tenant
        .records
        .get_many(&tenant.settings.integration_id, &ids)
        .await
}

/// The devices of a deep check's page whose records are due, up to what
/// is left of the run's share; each with what the walk counted it as.
async fn due_for_deep_check(
    reconciler: &Reconciler,
    tenant: &Tenant,
    run: &ReconcileRun,
    devices: Vec<Device>,
) -> Result<Vec<Walked>, ReconcileError> {
    let records = records_of(tenant, &devices).await?;
    let started = epoch_of(&run.started_at).unwrap_or_else(epoch_seconds);
    let left = reconciler
        .deep_check
        .most_per_run
        .saturating_sub(run.counts.deep_checked);
    Ok(devices
        .iter()
        .filter_map(|device| {
            let record = records.get(&device.id)?;
            record
                .due(started, reconciler.deep_check.age)
                .then(|| Walked {
                    before: Some(match record.certificates.is_empty() {
                        true => Outcome::Nothing,
                        false => Outcome::InSync,
                    }),
                    ..Walked::of(device)
                })
        })
        .take(usize::try_from(left).unwrap_or(usize::MAX))
        .collect())
}

/// How many devices a run will walk, for its progress: Mender's count
/// (accepted devices only for a rotation run without a scope). Best effort:
/// without it the run goes on, and shows no total.
async fn expected_total(tenant: &Tenant, run: &ReconcileRun) -> Option<u64> {
    let status = match (&run.kind, &run.scope) {
        (RunKind::Sync, _) => None,
        (RunKind::Rotation, None) => Some(DeviceStatus::Accepted),
        (RunKind::Rotation, Some(_)) => return None,
    };
    match tenant.mender.count_devices(status).await {
        Ok(count) => Some(count),
        Err(error) => {
            tracing::warn!(tenant = run.tenant_id, run_id = run.run_id, %error, "could not count Mender's devices; the run shows no total");
            None
        }
    }
}

/// A device a run walks.
struct Walked {
    device_id: String,
    /// Whether Mender listed it as accepted.
    accepted: bool,
    /// A deep check's: what the walk counted it as.
    before: Option<Outcome>,
}

impl Walked {
    fn of(device: &Device) -> Walked {
        Walked::listed(&device.id, is_accepted(device))
    }

    fn listed(device_id: &str, accepted: bool) -> Walked {
        Walked {
            device_id: device_id.to_owned(),
            accepted,
            before: None,
        }
    }
}

fn is_accepted(device: &Device) -> bool {
    matches!(device.status.parse(), Ok(DeviceStatus::Accepted))
}

/// A page of a run's devices: Mender's listing (a sync run triages it), or
/// those a rotation run walks.
enum Listed {
    Devices(Vec<Device>),
    Walked(Vec<Walked>),
}

impl Listed {
    fn len(&self) -> usize {
        match self {
            Listed::Devices(devices) => devices.len(),
            Listed::Walked(walked) => walked.len(),
        }
    }
}

/// One page of the devices a rotation run walks: how many the listing
/// gave (which says whether there is a next page) and those to rotate:
/// the accepted ones (every status is listed), its group's or the ids it
/// was given.
async fn rotation_page(
    tenant: &Tenant,
    run: &ReconcileRun,
    page: u32,
    page_size: u32,
) -> Result<(usize, Vec<Walked>), MenderError> {
    // A group's devices and the ids given are rotated only if accepted
    // (the rotation checks); they are counted as such.
    let given = |ids: Vec<String>| {
        ids.iter()
            .map(|id| Walked::listed(id, true))
            .collect::<Vec<_>>()
    };
    match &run.scope {
        None => {
            let devices = tenant.mender.list_devices(page, page_size).await?;
            let accepted = devices.iter().filter(|d| is_accepted(d)).map(Walked::of);
            Ok((devices.len(), accepted.collect()))
        }
        Some(Scope::Group(group)) => {
            // A group that no longer exists has no devices left to rotate.
            let ids = tenant
                .mender
                .group_devices(group, page, page_size)
                .await?
                .unwrap_or_default();
            Ok((ids.len(), given(ids)))
        }
        Some(Scope::DeviceIds(all)) => {
            let ids: Vec<String> = all
                .iter()
                .skip((page as usize - 1) * page_size as usize)
                .take(page_size as usize)
                .cloned()
                .collect();
            Ok((ids.len(), given(ids)))
        }
    }
}

/// Removes what stopped provisionings left attached to nothing (see
/// `crate::intent`). A failure is logged, not the run's: the next run
/// sweeps again.
async fn sweep_intents(reconciler: &Reconciler, tenant: &Tenant, run: &ReconcileRun) {
    match crate::converge::sweep::sweep(tenant, reconciler.invocation_limit).await {
        Ok(resolved) if !resolved.is_empty() => tracing::info!(
            tenant = run.tenant_id,
            run_id = run.run_id,
            intents = resolved.len(),
            "stale certificate intents resolved"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(
            tenant = run.tenant_id,
            run_id = run.run_id,
            %error,
            "could not resolve stale certificate intents; the next run tries again"
        ),
    }
}

/// A run this invocation ended, in the organization's metrics.
fn ended(reconciler: &Reconciler, run: &ReconcileRun) {
    reconciler
        .lifecycle
        .metrics
        .emit(&run.tenant_id, &crate::metrics::run_values(run));
}

/// Ends the run held, for the admin to look at: the reason is kept on the
/// run, and logged at ERROR with a fixed message that the template's metric
/// filter turns into an alarm.
async fn hold(
    reconciler: &Reconciler,
    run: &mut ReconcileRun,
    reason: String,
) -> Result<(), TableError> {
    tracing::error!(
        tenant = run.tenant_id,
        run_id = run.run_id,
        deferred = run.counts.deferred,
        managed = run.managed,
        reason,
        "reconcile run held"
    );
    run.held = Some(reason);
    run.end(RunState::Held, now_rfc3339());
    reconciler.runs.save(run).await?;
    ended(reconciler, run);
    Ok(())
}

/// Of the managed Things Mender's listing did not show, those whose device
/// Mender no longer knows, asked one by one (a device may have been added
/// since the listing). A Thing Mender could not answer for is counted as
/// failed.
async fn unknown_to_mender(
    tenant: &Tenant,
    run: &mut ReconcileRun,
    things: Vec<String>,
) -> Vec<Walked> {
    let known = futures::stream::iter(things)
        .map(|thing| async {
            let known = tenant.mender.device(&thing).await.map(|d| d.is_some());
            (thing, known)
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut orphans = Vec::new();
    for (thing, known) in known {
        match known {
            Ok(true) => {}
            Ok(false) => orphans.push(Walked::listed(&thing, false)),
            Err(error) => run.tally(&thing, false, Err(NotDone::Failed(error.to_string()))),
        }
    }
    orphans
}

/// Converges the devices, each under its lease; a deep check's each in
/// its turn of `pace`.
async fn converge_all(
    reconciler: &Reconciler,
    tenant: &Tenant,
    run: &mut ReconcileRun,
    devices: Vec<Walked>,
    pace: Option<&Pace>,
) {
    let trigger = trigger_of(run);
    let started_at = &run.started_at.clone();
    let source = Source::Run {
        kind: run.kind,
        run_id: &run.run_id.clone(),
    };
    let results = futures::stream::iter(devices)
        .map(|walked| async move {
            if let Some(pace) = pace {
                pace.turn().await;
            }
            let device_id = &walked.device_id;
            let leases = &reconciler.lifecycle.leases;
            let result = DEVICE_RETRY
                .retry(
                    |error: &LifecycleError| !is_refusal(error),
                    || async {
                        match converge_under_lease(leases, tenant, device_id, trigger).await {
                            // A webhook was converging the device: the
                            // rotation did not start; it is tried again.
                            Ok(Outcome::HandedOver) if trigger == Trigger::Rotate => {
                                Err(LeaseError::Held(device_id.clone()).into())
                            }
                            other => other,
                        }
                    },
                )
                .await
                .map_err(|error| match error {
                    LifecycleError::Converge(ConvergeError::Refused(refused)) => {
                        NotDone::Refused(refused.0)
                    }
                    error => NotDone::Failed(error.to_string()),
                });
            let result = match result {
                Err(NotDone::Refused(reason)) if trigger == Trigger::Rotate => {
                    rotated_since(tenant, device_id, started_at, reason).await
                }
                other => other,
            };
            let happened = match &result {
                Ok(outcome) => Some(Happened::Outcome(*outcome)),
                Err(NotDone::Failed(reason)) => Some(Happened::Failed(reason.clone())),
                Err(NotDone::Refused(_)) => None,
            };
            if let Some(happened) = happened {
                let log = &reconciler.lifecycle.event_log;
                log.record(
                    tenant.id(),
                    &tenant.settings.integration_id,
                    device_id,
                    source,
                    &happened,
                )
                .await;
            }
            (walked, result)
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (walked, result) in results {
        match walked.before {
            Some(before) => run.recount(&walked.device_id, walked.accepted, before, result),
            None => run.tally(&walked.device_id, walked.accepted, result),
        }
    }
}

/// A refused rotation whose waiting rotation was delivered after the run
/// began is the run's own (rotated by an invocation that stopped before its
/// checkpoint, so the page is walked again) or an admin's meanwhile: the
/// device was rotated either way.
async fn rotated_since(
    tenant: &Tenant,
    device_id: &str,
    since: &str,
    reason: String,
) -> Result<Outcome, NotDone> {
    match observe_device(tenant, device_id).await {
        Ok(observed) if plan::rotated_since(&observed, since) => Ok(Outcome::Rotated),
        _ => Err(NotDone::Refused(reason)),
    }
}

/// A survey changes nothing that takes access away; the second pass does;
/// a rotation run rotates.
fn trigger_of(run: &ReconcileRun) -> Trigger {
    match (run.kind, run.pass) {
        (RunKind::Rotation, _) => Trigger::Rotate,
        (RunKind::Sync, Pass::Survey) => Trigger::Survey,
        (RunKind::Sync, Pass::Apply) => Trigger::Apply,
    }
}

/// A rotation the device's state does not allow: trying again changes nothing.
fn is_refusal(error: &LifecycleError) -> bool {
    matches!(error, LifecycleError::Converge(ConvergeError::Refused(_)))
}
