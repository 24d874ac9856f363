//! Reconcile runs: make AWS IoT Core match Mender for every device of an
//! organization. Backfills devices accepted before the integration existed
//! and repairs whatever missed webhooks left behind.
//!
//! A run walks Mender's devices page by page, then the Things carrying the
//! bridge's marker (to remove those whose device Mender no longer knows),
//! converging each device under the same lease as the lifecycle functions.
//! It checkpoints after every page, so a run that reaches an invocation's
//! time limit continues in the next invocation where it stopped. One run per
//! organization at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::events::{DetailType, EventBridgeBus, EventBus, ReconcileRequest};
use crate::index::{IntegrationIndex, epoch_seconds};
use crate::iot::IotError;
use crate::lifecycle::{Lifecycle, LifecycleError, converge};
use crate::mender::MenderError;
use crate::reconcile::Outcome;
use crate::retry::Backoff;
use crate::settings::{Environment, SettingsError};
use crate::tenant::Tenant;

/// Devices (or Things) per page; one checkpoint per page.
pub const PAGE_SIZE: u32 = 100;
/// Devices converged at once. Each provisioning makes about ten AWS calls;
/// with AWS IoT Core's default quotas (tens of requests per second for the
/// write APIs) this keeps a run near, not over, them; the SDK's adaptive
/// retry absorbs the rest.
pub const CONCURRENCY: usize = 8;
/// Failures kept with their reasons; all are counted.
const MAX_FAILURES_LISTED: usize = 100;
/// A run's lock outlives a stuck invocation by this much at most.
const LOCK_SECONDS: u64 = 15 * 60;
/// Run records are kept this long.
const RUN_RETENTION_SECONDS: u64 = 30 * 24 * 3600;
/// A device that failed (its lease held by a webhook being handled, AWS
/// still throttling after the SDK's own retries, Mender briefly away) is
/// tried again before the run counts it as failed.
const DEVICE_RETRY: Backoff = Backoff {
    attempts: 6,
    base: Duration::from_millis(300),
    max: Duration::from_secs(3),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Done,
    Failed,
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "walking", rename_all = "snake_case")]
pub enum Phase {
    Devices { page: u32 },
    Things { next_token: Option<String> },
    Finished,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Mender devices looked at.
    pub seen: u64,
    pub provisioned: u64,
    pub repaired: u64,
    pub disabled: u64,
    pub removed: u64,
    pub in_sync: u64,
    /// Things of a device's name that the bridge does not manage.
    pub conflicts: u64,
    /// Devices a webhook was converging at the time; it converged them
    /// again afterwards.
    #[serde(default)]
    pub handed_over: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub device_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    pub run_id: String,
    pub tenant_id: String,
    pub integration_id: String,
    pub state: RunState,
    pub phase: Phase,
    pub counts: Counts,
    pub failures: Vec<Failure>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// How many invocations the run has taken so far.
    pub invocations: u32,
}

impl SyncRun {
    fn tally(&mut self, device_id: &str, result: Result<Outcome, String>) {
        let counts = &mut self.counts;
        match result {
            Ok(Outcome::Provisioned) => counts.provisioned += 1,
            Ok(Outcome::Repaired) => counts.repaired += 1,
            Ok(Outcome::Disabled) => counts.disabled += 1,
            Ok(Outcome::Removed) => counts.removed += 1,
            Ok(Outcome::Conflict) => counts.conflicts += 1,
            Ok(Outcome::InSync | Outcome::Nothing) => counts.in_sync += 1,
            Ok(Outcome::HandedOver) => counts.handed_over += 1,
            Err(reason) => {
                counts.failed += 1;
                if self.failures.len() < MAX_FAILURES_LISTED {
                    self.failures.push(Failure {
                        device_id: device_id.to_owned(),
                        reason,
                    });
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("a reconcile run ({0}) is already under way for this organization")]
    AlreadyRunning(String),
    #[error("no reconcile run {0}")]
    NoSuchRun(String),
    #[error("DynamoDB failed: {0}")]
    Store(String),
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
}

/// Run records and the per-organization run lock, in the bridge's table.
#[derive(Clone, Debug)]
pub struct RunStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn store_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    error: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> SyncError {
    SyncError::Store(DisplayErrorContext(error).to_string())
}

impl RunStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Starts a run for the organization unless one is under way.
    pub async fn start(&self, tenant_id: &str, integration_id: &str) -> Result<SyncRun, SyncError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let now = epoch_seconds();
        let locked = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("sync#{tenant_id}")))
            .item("run_id", AttributeValue::S(run_id.clone()))
            .item(
                "expires_at",
                AttributeValue::N((now + LOCK_SECONDS).to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        if let Err(error) = locked {
            if error.code() == Some("ConditionalCheckFailedException") {
                let holder = self.lock_holder(tenant_id).await?.unwrap_or_default();
                return Err(SyncError::AlreadyRunning(holder));
            }
            return Err(store_error(error));
        }
        let run = SyncRun {
            run_id,
            tenant_id: tenant_id.to_owned(),
            integration_id: integration_id.to_owned(),
            state: RunState::Running,
            phase: Phase::Devices { page: 1 },
            counts: Counts::default(),
            failures: Vec::new(),
            started_at: crate::integration::now(),
            ended_at: None,
            invocations: 0,
        };
        self.save(&run).await?;
        Ok(run)
    }

    async fn lock_holder(&self, tenant_id: &str) -> Result<Option<String>, SyncError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("sync#{tenant_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(output
            .item()
            .and_then(|item| item.get("run_id"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    pub async fn get(&self, run_id: &str) -> Result<Option<SyncRun>, SyncError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("run#{run_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let body = output
            .item()
            .and_then(|item| item.get("body"))
            .and_then(|v| v.as_s().ok());
        Ok(body.and_then(|body| serde_json::from_str(body).ok()))
    }

    /// Checkpoints the run; while it runs, also extends its lock.
    pub async fn save(&self, run: &SyncRun) -> Result<(), SyncError> {
        let body = serde_json::to_string(run).expect("a run serializes");
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("run#{}", run.run_id)))
            .item("tenant_id", AttributeValue::S(run.tenant_id.clone()))
            .item("body", AttributeValue::S(body))
            .item(
                "expires_at",
                AttributeValue::N((epoch_seconds() + RUN_RETENTION_SECONDS).to_string()),
            )
            .send()
            .await
            .map_err(store_error)?;
        let lock = format!("sync#{}", run.tenant_id);
        let owned = AttributeValue::S(run.run_id.clone());
        let lost = |code: Option<&str>| code == Some("ConditionalCheckFailedException");
        if run.state == RunState::Running {
            let until = AttributeValue::N((epoch_seconds() + LOCK_SECONDS).to_string());
            let extended = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(lock))
                .update_expression("SET expires_at = :until")
                .condition_expression("run_id = :run")
                .expression_attribute_values(":until", until)
                .expression_attribute_values(":run", owned)
                .send()
                .await;
            match extended {
                Err(error) if !lost(error.code()) => return Err(store_error(error)),
                _ => {}
            }
        } else {
            let released = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(lock))
                .condition_expression("run_id = :run")
                .expression_attribute_values(":run", owned)
                .send()
                .await;
            match released {
                Err(error) if !lost(error.code()) => return Err(store_error(error)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// What a reconcile invocation needs: the lifecycle functions' tenants and
/// leases, plus the runs and the index of organizations.
pub struct Reconciler {
    pub lifecycle: Arc<Lifecycle>,
    pub runs: RunStore,
    pub index: IntegrationIndex,
}

impl Reconciler {
    /// The deployed reconcile function's state, and the bus it continues
    /// runs through.
    pub async fn from_env() -> (Reconciler, EventBridgeBus) {
        let env = Environment::from_env();
        let aws = crate::aws::load_base_config(crate::aws::CallPolicy::from_env()).await;
        let bus = EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&aws), &env.event_bus_name);
        let lifecycle = Lifecycle::new(
            &env,
            aws.clone(),
            crate::mender::http_client(crate::lifecycle::MENDER_TIMEOUT),
        );
        (Reconciler::new(&env, &aws, Arc::new(lifecycle)), bus)
    }

    pub fn new(env: &Environment, aws: &aws_config::SdkConfig, lifecycle: Arc<Lifecycle>) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        Reconciler {
            lifecycle,
            runs: RunStore::new(dynamodb.clone(), &env.table_name),
            index: IntegrationIndex::new(dynamodb, &env.table_name),
        }
    }
}

/// Starts a run for one organization and asks the bus to carry it out.
pub async fn start<B: EventBus>(
    runs: &RunStore,
    bus: &B,
    tenant_id: &str,
    integration_id: &str,
) -> Result<SyncRun, SyncError> {
    let run = runs.start(tenant_id, integration_id).await?;
    request_run(bus, &run.run_id).await?;
    Ok(run)
}

/// When an invocation must stop: a margin before the Lambda deadline
/// (milliseconds since the epoch), for the last checkpoint.
pub fn invocation_deadline(deadline_epoch_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let left = Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(Duration::from_secs(20))
}

async fn request_run<B: EventBus>(bus: &B, run_id: &str) -> Result<(), SyncError> {
    let detail = serde_json::to_value(ReconcileRequest {
        run_id: run_id.to_owned(),
    })
    .expect("a request serializes");
    bus.publish(DetailType::ReconcileRequested, &detail)
        .await
        .map_err(|e| SyncError::Bus(e.to_string()))
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
) -> Result<serde_json::Value, SyncError> {
    if event["detail-type"] == DetailType::ReconcileRequested.as_str() {
        let request: ReconcileRequest = serde_json::from_value(event["detail"].clone())
            .map_err(|e| SyncError::BadEvent(e.to_string()))?;
        let run = step(reconciler, &request.run_id, deadline).await?;
        if run.state == RunState::Running {
            request_run(bus, &run.run_id).await?;
        }
        return Ok(
            serde_json::json!({ "run_id": run.run_id, "state": run.state, "counts": run.counts }),
        );
    }
    // The schedule: one run per organization, unless one is under way.
    let mut started = Vec::new();
    for (tenant_id, integration_id) in reconciler.index.active_integrations().await? {
        match start(&reconciler.runs, bus, &tenant_id, &integration_id).await {
            Ok(run) => started.push(run.run_id),
            Err(SyncError::AlreadyRunning(run_id)) => {
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

/// Advances a run until it finishes or `deadline` passes (checked after each
/// page, so every invocation makes progress). The run as saved.
pub async fn step(
    reconciler: &Reconciler,
    run_id: &str,
    deadline: Instant,
) -> Result<SyncRun, SyncError> {
    let runs = &reconciler.runs;
    let mut run = runs
        .get(run_id)
        .await?
        .ok_or_else(|| SyncError::NoSuchRun(run_id.to_owned()))?;
    if run.state != RunState::Running {
        return Ok(run);
    }
    run.invocations += 1;
    let tenant = match reconciler.lifecycle.tenants.get(&run.integration_id).await {
        Err(SettingsError::NotFound(_)) => {
            run.state = RunState::Failed;
            run.failures.push(Failure {
                device_id: String::new(),
                reason: "the integration was removed".into(),
            });
            run.ended_at = Some(crate::integration::now());
            runs.save(&run).await?;
            return Ok(run);
        }
        other => other?,
    };
    loop {
        match run.phase.clone() {
            Phase::Devices { page } => {
                let devices = tenant.mender.list_devices(page, PAGE_SIZE).await?;
                let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
                run.counts.seen += ids.len() as u64;
                converge_all(reconciler, &tenant, &mut run, ids).await;
                run.phase = if devices.len() < PAGE_SIZE as usize {
                    Phase::Things { next_token: None }
                } else {
                    Phase::Devices { page: page + 1 }
                };
            }
            Phase::Things { next_token } => {
                let (things, next_token) = tenant
                    .iot
                    .managed_things(next_token, PAGE_SIZE as i32)
                    .await?;
                // Only Things whose device Mender no longer knows: the others
                // were converged in the devices phase.
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
                        Ok(false) => orphans.push(thing),
                        Err(error) => run.tally(&thing, Err(error.to_string())),
                    }
                }
                converge_all(reconciler, &tenant, &mut run, orphans).await;
                run.phase = match next_token {
                    Some(token) => Phase::Things {
                        next_token: Some(token),
                    },
                    None => Phase::Finished,
                };
            }
            Phase::Finished => {
                run.state = RunState::Done;
                run.ended_at = Some(crate::integration::now());
                runs.save(&run).await?;
                tracing::info!(tenant = run.tenant_id, run_id = run.run_id, counts = ?run.counts, "reconcile run done");
                return Ok(run);
            }
        }
        runs.save(&run).await?;
        if Instant::now() >= deadline && run.phase != Phase::Finished {
            tracing::info!(tenant = run.tenant_id, run_id = run.run_id, phase = ?run.phase, "reconcile run checkpointed");
            return Ok(run);
        }
    }
}

async fn converge_all(
    reconciler: &Reconciler,
    tenant: &Tenant,
    run: &mut SyncRun,
    devices: Vec<String>,
) {
    let results = futures::stream::iter(devices)
        .map(|device_id| async move {
            let result = DEVICE_RETRY
                .retry(
                    |_: &LifecycleError| true,
                    || converge(&reconciler.lifecycle.leases, tenant, &device_id),
                )
                .await
                .map_err(|e| e.to_string());
            (device_id, result)
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (device_id, result) in results {
        run.tally(&device_id, result);
    }
}
