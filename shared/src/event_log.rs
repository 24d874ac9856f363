//! The event log: one record per change the bridge made to a device's AWS
//! resources, and per convergence that failed, kept for a week (the table's
//! TTL) and listed by `GET /api/management/v1/iot-manager/events` in
//! Mender's `Event` shape.
//!
//! Records are written after the change, best effort: a change is never
//! undone or retried because its record could not be written (the failure
//! is logged), so an invocation that stops between the two leaves no
//! record.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

use crate::clock::epoch_millis;
use crate::converge::Outcome;
use crate::events::DetailType;
use crate::http::Paging;
use crate::reconcile::RunKind;
use crate::table::{EXPIRES_AT, TableError, number, number_of, string, text_of};

/// How long records are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The partition key: the organization.
const TENANT: &str = "tenant_id";
/// The sort key: milliseconds since the epoch (13 digits, so text order is
/// time order) and the record's id.
const SK: &str = "sk";

/// What asked for the convergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// A Mender webhook, routed as this detail-type.
    Webhook(DetailType),
    /// A run of the organization's.
    Run { kind: RunKind, run_id: &'a str },
    /// An admin's request for one device (`/devices/{id}/rotation`).
    Api,
}

impl Source<'_> {
    fn name(&self) -> &'static str {
        match self {
            Source::Webhook(_) => "webhook",
            Source::Run {
                kind: RunKind::Sync,
                ..
            } => "sync-run",
            Source::Run {
                kind: RunKind::Rotation,
                ..
            } => "rotation-run",
            Source::Api => "api",
        }
    }
}

/// What a record says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    /// A change (or a conflict found).
    Outcome(Outcome),
    /// The convergence failed, for this reason.
    Failed(String),
    /// An admin unlinked the device: the bridge no longer manages its Thing.
    Unlinked,
}

/// One record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub integration_id: String,
    pub device_id: String,
    /// Mender's event type (see [`mender_type`]).
    pub event_type: String,
    /// `provisioned`, `repaired`, `disabled`, `removed`, `rotated`,
    /// `conflict`, `failed` or `unlinked`.
    pub outcome: String,
    pub reason: Option<String>,
    pub source: String,
    pub run_id: Option<String>,
    pub epoch_millis: u64,
}

/// Pure: the record of a convergence, if it is one the log keeps: changes,
/// conflicts and failures, not convergences that found nothing to do.
pub fn record_of(
    integration_id: &str,
    device_id: &str,
    source: Source<'_>,
    happened: &Happened,
    epoch_millis: u64,
) -> Option<Record> {
    let conflict =
        "a Thing of this name exists that the bridge does not manage; it was left untouched";
    let (outcome, reason) = match happened {
        Happened::Outcome(Outcome::Provisioned) => ("provisioned", None),
        Happened::Outcome(Outcome::Repaired) => ("repaired", None),
        Happened::Outcome(Outcome::Disabled) => ("disabled", None),
        Happened::Outcome(Outcome::Removed) => ("removed", None),
        Happened::Outcome(Outcome::Rotated) => ("rotated", None),
        Happened::Outcome(Outcome::Conflict) => ("conflict", Some(conflict.to_owned())),
        Happened::Outcome(
            Outcome::InSync | Outcome::Nothing | Outcome::HandedOver | Outcome::Deferred,
        ) => return None,
        Happened::Failed(reason) => ("failed", Some(reason.clone())),
        Happened::Unlinked => ("unlinked", None),
    };
    Some(Record {
        id: uuid::Uuid::new_v4().to_string(),
        integration_id: integration_id.to_owned(),
        device_id: device_id.to_owned(),
        event_type: mender_type(source, happened).to_owned(),
        outcome: outcome.to_owned(),
        reason,
        source: source.name().to_owned(),
        run_id: match source {
            Source::Run { run_id, .. } => Some(run_id.to_owned()),
            Source::Webhook(_) | Source::Api => None,
        },
        epoch_millis,
    })
}

/// Pure: Mender's event type for a record: the kind of change made, or, for
/// a failure, the kind of webhook that asked for it (`device-status-changed`
/// when no webhook did).
pub fn mender_type(source: Source<'_>, happened: &Happened) -> &'static str {
    const PROVISIONED: &str = "device-provisioned";
    const STATUS_CHANGED: &str = "device-status-changed";
    const DECOMMISSIONED: &str = "device-decommissioned";
    match (happened, source) {
        (Happened::Outcome(Outcome::Disabled), _) => STATUS_CHANGED,
        (Happened::Outcome(Outcome::Removed), _) => DECOMMISSIONED,
        (Happened::Outcome(_), _) => PROVISIONED,
        (Happened::Unlinked, _) => STATUS_CHANGED,
        (Happened::Failed(_), Source::Webhook(DetailType::DeviceAccepted)) => PROVISIONED,
        (Happened::Failed(_), Source::Webhook(DetailType::DeviceDecommissioned)) => DECOMMISSIONED,
        (Happened::Failed(_), _) => STATUS_CHANGED,
    }
}

/// Pure: a record in Mender's `Event` shape (`id`, `type`, `time`, `data`,
/// `delivery_statuses`), with the bridge's `outcome`, `reason`, `source`
/// and `run_id` beside it (docs/api.md).
pub fn mender_event(record: &Record) -> Value {
    let mut status = json!({
        "integration_id": record.integration_id,
        "success": record.reason.is_none(),
    });
    let mut event = json!({
        "id": record.id,
        "type": record.event_type,
        "time": crate::clock::rfc3339_of_millis(record.epoch_millis),
        "data": { "id": record.device_id },
        "outcome": record.outcome,
        "source": record.source,
    });
    if let Some(reason) = &record.reason {
        status["error"] = json!(reason);
        event["reason"] = json!(reason);
    }
    if let Some(run_id) = &record.run_id {
        event["run_id"] = json!(run_id);
    }
    event["delivery_statuses"] = json!([status]);
    event
}

/// What a listing asks for: Mender's paging (1-based pages) and filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub paging: Paging,
    pub integration_id: Option<String>,
    pub device_id: Option<String>,
}

impl Listing {
    fn wants(&self, record: &Record) -> bool {
        self.integration_id
            .as_ref()
            .is_none_or(|id| *id == record.integration_id)
            && self
                .device_id
                .as_ref()
                .is_none_or(|id| *id == record.device_id)
    }
}

#[derive(Clone)]
pub struct EventLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl EventLog {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
        }
    }

    /// Records a convergence of one of the organization's devices, if the
    /// log keeps it. Best effort: a failure is logged, not returned.
    pub async fn record(
        &self,
        tenant_id: &str,
        integration_id: &str,
        device_id: &str,
        source: Source<'_>,
        happened: &Happened,
    ) {
        let Some(record) = record_of(integration_id, device_id, source, happened, epoch_millis())
        else {
            return;
        };
        if let Err(error) = self.put(tenant_id, &record).await {
            tracing::warn!(
                tenant = tenant_id,
                device_id,
                outcome = record.outcome,
                %error,
                "could not write the event log record"
            );
        }
    }

    async fn put(&self, tenant_id: &str, record: &Record) -> Result<(), TableError> {
        let expires_at = record.epoch_millis / 1000 + RETENTION.as_secs();
        let mut item = HashMap::from([
            (TENANT.to_owned(), string(tenant_id)),
            (
                SK.to_owned(),
                string(format!("{:013}#{}", record.epoch_millis, record.id)),
            ),
            ("id".to_owned(), string(&record.id)),
            ("integration_id".to_owned(), string(&record.integration_id)),
            ("device_id".to_owned(), string(&record.device_id)),
            ("type".to_owned(), string(&record.event_type)),
            ("outcome".to_owned(), string(&record.outcome)),
            ("source".to_owned(), string(&record.source)),
            ("time_ms".to_owned(), number(record.epoch_millis)),
            (EXPIRES_AT.to_owned(), number(expires_at)),
        ]);
        if let Some(reason) = &record.reason {
            item.insert("reason".to_owned(), string(reason));
        }
        if let Some(run_id) = &record.run_id {
            item.insert("run_id".to_owned(), string(run_id));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await?;
        Ok(())
    }

    /// One page of the organization's records, newest first. Records past
    /// their week that DynamoDB has not deleted yet are left out.
    pub async fn list(
        &self,
        tenant_id: &str,
        listing: &Listing,
    ) -> Result<Vec<Record>, TableError> {
        let skip = listing.paging.skip();
        let per_page = listing.paging.per_page as usize;
        let wanted = skip + per_page;
        let oldest_kept = epoch_millis().saturating_sub(RETENTION.as_millis() as u64);
        let mut matching = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#tenant = :tenant")
                .expression_attribute_names("#tenant", TENANT)
                .expression_attribute_values(":tenant", string(tenant_id))
                .scan_index_forward(false)
                // A page of 20 reads about 20 records, not a megabyte of
                // them; filters may need more rounds.
                .limit(wanted.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in output.items.unwrap_or_default() {
                let record = record_from(&item);
                if record.epoch_millis >= oldest_kept && listing.wants(&record) {
                    matching.push(record);
                }
            }
            start = output.last_evaluated_key;
            if matching.len() >= wanted || start.is_none() {
                break;
            }
        }
        Ok(matching.into_iter().skip(skip).take(per_page).collect())
    }
}

fn record_from(item: &HashMap<String, AttributeValue>) -> Record {
    let optional = |name| Some(text_of(item, name)).filter(|text| !text.is_empty());
    Record {
        id: text_of(item, "id"),
        integration_id: text_of(item, "integration_id"),
        device_id: text_of(item, "device_id"),
        event_type: text_of(item, "type"),
        outcome: text_of(item, "outcome"),
        reason: optional("reason"),
        source: text_of(item, "source"),
        run_id: optional("run_id"),
        epoch_millis: number_of(item, "time_ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: Source<'static> = Source::Run {
        kind: RunKind::Sync,
        run_id: "r1",
    };

    #[test]
    fn changes_conflicts_and_failures_are_kept_nothing_else() {
        let failed = || Happened::Failed("AWS IoT Core failed: throttled".into());
        for (happened, source, kept) in [
            (
                Happened::Outcome(Outcome::Provisioned),
                Source::Api,
                Some(("provisioned", "device-provisioned", None)),
            ),
            (
                Happened::Outcome(Outcome::Repaired),
                RUN,
                Some(("repaired", "device-provisioned", None)),
            ),
            (
                Happened::Outcome(Outcome::Rotated),
                Source::Api,
                Some(("rotated", "device-provisioned", None)),
            ),
            (
                Happened::Outcome(Outcome::Disabled),
                RUN,
                Some(("disabled", "device-status-changed", None)),
            ),
            (
                Happened::Outcome(Outcome::Removed),
                RUN,
                Some(("removed", "device-decommissioned", None)),
            ),
            (
                Happened::Outcome(Outcome::Conflict),
                RUN,
                Some((
                    "conflict",
                    "device-provisioned",
                    Some(
                        "a Thing of this name exists that the bridge does not manage; it was left untouched",
                    ),
                )),
            ),
            (
                failed(),
                Source::Webhook(DetailType::DeviceAccepted),
                Some((
                    "failed",
                    "device-provisioned",
                    Some("AWS IoT Core failed: throttled"),
                )),
            ),
            (
                failed(),
                Source::Webhook(DetailType::DeviceDisabled),
                Some((
                    "failed",
                    "device-status-changed",
                    Some("AWS IoT Core failed: throttled"),
                )),
            ),
            (
                failed(),
                Source::Webhook(DetailType::DeviceDecommissioned),
                Some((
                    "failed",
                    "device-decommissioned",
                    Some("AWS IoT Core failed: throttled"),
                )),
            ),
            (
                failed(),
                RUN,
                Some((
                    "failed",
                    "device-status-changed",
                    Some("AWS IoT Core failed: throttled"),
                )),
            ),
            (
                Happened::Unlinked,
                Source::Api,
                Some(("unlinked", "device-status-changed", None)),
            ),
            (Happened::Outcome(Outcome::InSync), RUN, None),
            (Happened::Outcome(Outcome::Nothing), RUN, None),
            (Happened::Outcome(Outcome::HandedOver), RUN, None),
            (Happened::Outcome(Outcome::Deferred), RUN, None),
        ] {
            let record = record_of("i1", "d1", source, &happened, 1_700_000_000_123);
            let seen = record.as_ref().map(|r| {
                (
                    r.outcome.as_str(),
                    r.event_type.as_str(),
                    r.reason.as_deref(),
                )
            });
            assert_eq!(seen, kept, "{happened:?} from {source:?}");
        }
    }

    #[test]
    fn a_record_reads_as_menders_event_with_the_bridges_fields_beside() {
        let failed = record_of(
            "i1",
            "d1",
            RUN,
            &Happened::Failed("Mender failed: 503".into()),
            1_700_000_000_123,
        )
        .unwrap();
        let event = mender_event(&failed);
        assert_eq!(event["id"], json!(failed.id));
        assert_eq!(event["type"], "device-status-changed");
        assert_eq!(event["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(event["data"], json!({ "id": "d1" }));
        assert_eq!(
            event["delivery_statuses"],
            json!([{ "integration_id": "i1", "success": false, "error": "Mender failed: 503" }])
        );
        assert_eq!(event["outcome"], "failed");
        assert_eq!(event["reason"], "Mender failed: 503");
        assert_eq!(event["source"], "sync-run");
        assert_eq!(event["run_id"], "r1");

        let provisioned = record_of(
            "i1",
            "d1",
            Source::Webhook(DetailType::DeviceAccepted),
            &Happened::Outcome(Outcome::Provisioned),
            1_700_000_000_000,
        )
        .unwrap();
        let event = mender_event(&provisioned);
        assert_eq!(
            event["delivery_statuses"],
            json!([{ "integration_id": "i1", "success": true }])
        );
        assert_eq!(event["source"], "webhook");
        assert!(event.get("reason").is_none() && event.get("run_id").is_none());
    }

    #[test]
    fn listings_filter_by_integration_and_device() {
        let record = record_of(
            "i1",
            "d1",
            Source::Api,
            &Happened::Outcome(Outcome::Rotated),
            1,
        )
        .unwrap();
        let listing = |integration: Option<&str>, device: Option<&str>| Listing {
            paging: Paging {
                page: 1,
                per_page: 20,
            },
            integration_id: integration.map(str::to_owned),
            device_id: device.map(str::to_owned),
        };
        for (integration, device, wanted) in [
            (None, None, true),
            (Some("i1"), None, true),
            (Some("i2"), None, false),
            (None, Some("d1"), true),
            (Some("i1"), Some("d2"), false),
        ] {
            assert_eq!(
                listing(integration, device).wants(&record),
                wanted,
                "{integration:?} {device:?}"
            );
        }
    }
}
