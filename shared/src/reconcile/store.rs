//! Run records and the per-organization run lock, in the bridge's table.

use super::ReconcileError;
use super::run::{ReconcileRun, RunKind, RunRequest, RunState};
use crate::clock::{epoch_seconds, now_rfc3339};
use crate::table::{
    EXPIRES_AT, Key, PK, TableError, conditional, number, number_of, read_item, string, text_of,
};

/// A run's lock outlives a stuck invocation by this much at most.
const LOCK_SECONDS: u64 = 15 * 60;
/// Run records are kept this long.
const RUN_RETENTION_SECONDS: u64 = 30 * 24 * 3600;

#[derive(Clone, Debug)]
pub struct RunStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl RunStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Starts a run for the organization unless one (of any kind) is under way.
    pub async fn start(
        &self,
        tenant_id: &str,
        integration_id: &str,
        request: RunRequest,
    ) -> Result<ReconcileRun, ReconcileError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let now = epoch_seconds();
        let locked = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, Key::RunLock { tenant_id }.value())
            .item("run_id", string(run_id.clone()))
            .item(EXPIRES_AT, number(now + LOCK_SECONDS))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        if !conditional(locked)? {
            let holder = self.lock_holder(tenant_id).await?.unwrap_or_default();
            return Err(ReconcileError::AlreadyRunning(holder));
        }
        let run = ReconcileRun::new(run_id, tenant_id, integration_id, request, now_rfc3339());
        self.save(&run).await?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, latest_key(tenant_id, run.kind))
            .item("run_id", string(run.run_id.clone()))
            .item(EXPIRES_AT, number(now + RUN_RETENTION_SECONDS))
            .send()
            .await
            .map_err(TableError::from)?;
        Ok(run)
    }

    /// The run of `kind` the organization started last, while its record is kept.
    pub async fn latest(
        &self,
        tenant_id: &str,
        kind: RunKind,
    ) -> Result<Option<ReconcileRun>, TableError> {
        let item = read_item(
            &self.client,
            &self.table,
            Key::LatestRun {
                tenant_id,
                kind: kind.as_str(),
            },
        )
        .await?;
        match item {
            Some(item) => self.get(&text_of(&item, "run_id")).await,
            None => Ok(None),
        }
    }

    /// Where the organization's next deep check begins: a page of Mender's
    /// device listing (the first when none was recorded).
    pub async fn deep_check_cursor(&self, tenant_id: &str) -> Result<u32, TableError> {
        let item = read_item(
            &self.client,
            &self.table,
            Key::DeepCheckCursor { tenant_id },
        )
        .await?;
        let page = item.map(|item| number_of(&item, "page")).unwrap_or(1);
        Ok(u32::try_from(page).unwrap_or(1).max(1))
    }

    pub async fn set_deep_check_cursor(
        &self,
        tenant_id: &str,
        page: u32,
    ) -> Result<(), TableError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, Key::DeepCheckCursor { tenant_id }.value())
            .item("page", number(u64::from(page)))
            .send()
            .await?;
        Ok(())
    }

    async fn lock_holder(&self, tenant_id: &str) -> Result<Option<String>, TableError> {
        let item = read_item(&self.client, &self.table, Key::RunLock { tenant_id }).await?;
        Ok(item.map(|item| text_of(&item, "run_id")))
    }

    pub async fn get(&self, run_id: &str) -> Result<Option<ReconcileRun>, TableError> {
        let item = read_item(&self.client, &self.table, Key::Run { run_id }).await?;
        let body = item
            .as_ref()
            .and_then(|item| item.get("body"))
            .and_then(|v| v.as_s().ok());
        Ok(body.and_then(|body| serde_json::from_str(body).ok()))
    }

    /// Checkpoints the run; while it runs, also extends its lock, and
    /// releases the lock once it has ended.
    pub async fn save(&self, run: &ReconcileRun) -> Result<(), TableError> {
        let body = serde_json::to_string(run).expect("a run serializes");
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                PK,
                Key::Run {
                    run_id: &run.run_id,
                }
                .value(),
            )
            .item("tenant_id", string(run.tenant_id.clone()))
            .item("body", string(body))
            .item(EXPIRES_AT, number(epoch_seconds() + RUN_RETENTION_SECONDS))
            .send()
            .await?;
        if run.state != RunState::Running {
            return self.release(run).await;
        }
        // A lock that is no longer this run's is left to its holder.
        let extended = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, lock_key(run))
            .update_expression("SET expires_at = :until")
            .condition_expression("run_id = :run")
            .expression_attribute_values(":until", number(epoch_seconds() + LOCK_SECONDS))
            .expression_attribute_values(":run", string(run.run_id.clone()))
            .send()
            .await;
        conditional(extended)?;
        Ok(())
    }

    /// Releases the organization's run lock if this ended run still holds
    /// it (an invocation that stopped after saving the end may not have).
    pub async fn release(&self, run: &ReconcileRun) -> Result<(), TableError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, lock_key(run))
            .condition_expression("run_id = :run")
            .expression_attribute_values(":run", string(run.run_id.clone()))
            .send()
            .await;
        conditional(released)?;
        Ok(())
    }
}

fn latest_key(tenant_id: &str, kind: RunKind) -> aws_sdk_dynamodb::types::AttributeValue {
    Key::LatestRun {
        tenant_id,
        kind: kind.as_str(),
    }
    .value()
}

/// The organization's run lock, as held by `run`.
fn lock_key(run: &ReconcileRun) -> aws_sdk_dynamodb::types::AttributeValue {
    Key::RunLock {
        tenant_id: &run.tenant_id,
    }
    .value()
}
