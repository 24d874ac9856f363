//! A device's record: what a convergence last saw when it found nothing to
//! change. A reconcile run compares AWS's bulk listings with it (see
//! `crate::reconcile::triage`), so a device whose listings agree with its
//! record needs no reads of its own.
//!
//! A record is written from a full observation that planned nothing, or
//! by a provisioning that made a new Thing and everything on it, from what
//! AWS and Mender acknowledged: it says what was seen or made, never what
//! was meant to be. Provisioning forgets it before it makes anything, and a
//! change the survey deferred
//! forgets it too (the second pass must look); a provisioning that stopped
//! half-way has its record forgotten when a run resolves its intent
//! (`super::sweep`). Other changes show in the listings (a certificate
//! retired or made INACTIVE, a Thing gone) or leave the record true. Drift
//! that no listing shows (a configuration edited in Mender, a policy
//! detached by hand) is the deep check's.
//!
//! Records live in their own table, by integration and device id, and
//! expire a week after the device was last looked at: without one, the
//! run looks.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use super::Outcome;
use super::plan::Observed;
use crate::device::Wanted;
use crate::iot::ThingState;
use crate::retry::Backoff;
use crate::table::{EXPIRES_AT, TableError, number, string, text_of};

/// How long a record is kept after the device was last looked at.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a record answers a lifecycle event by itself (see
/// [`DeviceRecord::answers`]): the second webhook of an acceptance comes
/// seconds after the first, or minutes in a bulk acceptance.
pub const ANSWERS_EVENTS_FOR: Duration = Duration::from_secs(15 * 60);
/// The partition key: the integration.
const INTEGRATION: &str = "integration_id";
/// The sort key: the device.
const DEVICE: &str = "device_id";
/// The most keys one `BatchGetItem` takes.
const BATCH: usize = 100;
/// The most items one `BatchWriteItem` takes.
const WRITE_BATCH: usize = 25;
/// Keys and items DynamoDB left unprocessed (throttled) are sent again.
const UNPROCESSED: Backoff = Backoff {
    attempts: 8,
    base: Duration::from_millis(50),
    max: Duration::from_secs(2),
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub device_id: String,
    /// What Mender's status asked for when the device was looked at.
    pub wanted: Wanted,
    /// Mender's `updated_ts` of the device then: a change of its status or
    /// auth sets since shows in Mender's listing.
    pub mender_updated_ts: Option<String>,
    /// The certificates attached to the Thing, with their status; none when
    /// nothing stands in AWS for the device.
    pub certificates: Vec<RecordedCertificate>,
    /// The device policy on the delivered certificate (an accepted device).
    pub policy: Option<String>,
    /// Nothing was provisioned because the device is older than the
    /// integration, which has no backfill.
    pub left_alone: bool,
    /// When the device was looked at, epoch seconds.
    pub checked_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCertificate {
    pub id: String,
    pub active: bool,
}

impl DeviceRecord {
    /// Pure: the record of a full observation whose plan changed nothing
    /// (in sync with a Thing of the integration's, or nothing in AWS and
    /// nothing wanted there); `None` for any other outcome.
    pub fn of(
        device_id: &str,
        observed: &Observed,
        mender_updated_ts: Option<&str>,
        outcome: Outcome,
        now: u64,
    ) -> Option<DeviceRecord> {
        let seen = matches!(
            (outcome, &observed.thing),
            (Outcome::InSync, ThingState::Ours) | (Outcome::Nothing, ThingState::Absent)
        );
        seen.then(|| DeviceRecord {
            device_id: device_id.to_owned(),
            wanted: observed.wanted,
            mender_updated_ts: mender_updated_ts.map(str::to_owned),
            certificates: observed
                .certificates
                .iter()
                .map(|c| RecordedCertificate {
                    id: c.id.clone(),
                    active: c.active,
                })
                .collect(),
            policy: (observed.wanted == Wanted::Active && observed.thing == ThingState::Ours)
                .then(|| observed.device_policy.clone()),
            left_alone: observed.left_alone,
            checked_at: now,
        })
    }

    /// Pure: the record of a provisioning that created the Thing and
    /// attached to it the one certificate it issued, ACTIVE, with the
    /// device policy, and delivered it: nothing else stands on that Thing.
    pub fn provisioned(
        device_id: &str,
        mender_updated_ts: Option<&str>,
        certificate_id: &str,
        device_policy: &str,
        now: u64,
    ) -> DeviceRecord {
        DeviceRecord {
            device_id: device_id.to_owned(),
            wanted: Wanted::Active,
            mender_updated_ts: mender_updated_ts.map(str::to_owned),
            certificates: vec![RecordedCertificate {
                id: certificate_id.to_owned(),
                active: true,
            }],
            policy: Some(device_policy.to_owned()),
            left_alone: false,
            checked_at: now,
        }
    }

    /// Whether the record answers a lifecycle event without further reads:
    /// Mender still says what it said (the same status, the same
    /// `updated_ts`), about a Thing that is still the integration's, and the
    /// record is recent. Such an event carries no news (the second webhook
    /// of an acceptance, a redelivery); drift behind it is a run's to find.
    pub fn answers(&self, wanted: Wanted, mender_updated_ts: Option<&str>, now: u64) -> bool {
        self.wanted == wanted
            && self.mender_updated_ts.as_deref() == mender_updated_ts
            && mender_updated_ts.is_some()
            && now.saturating_sub(self.checked_at) <= ANSWERS_EVENTS_FOR.as_secs()
    }

    /// Whether the deep check is due: the device was last looked at more
    /// than `age` before the run began (a device looked at during the run
    /// is not looked at again).
    pub fn due(&self, run_started: u64, age: Duration) -> bool {
        self.checked_at < run_started && self.checked_at + age.as_secs() <= run_started
    }
}

/// The records in their table.
#[derive(Clone, Debug)]
pub struct DeviceRecords {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DeviceRecords {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub async fn put(&self, integration_id: &str, record: &DeviceRecord) -> Result<(), TableError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(integration_id, record)))
            .send()
            .await?;
        Ok(())
    }

    /// Writes many records, 25 a request (what a fleet seeded for the
    /// bench starts from).
    pub async fn put_many(
        &self,
        integration_id: &str,
        records: &[DeviceRecord],
    ) -> Result<(), TableError> {
        for chunk in records.chunks(WRITE_BATCH) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|record| {
                    let put = PutRequest::builder()
                        .set_item(Some(item(integration_id, record)))
                        .build()
                        .expect("an item is set");
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            let mut attempt = 0;
            while !requests.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await?;
                requests = output
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if !requests.is_empty() {
                    attempt += 1;
                    if attempt >= UNPROCESSED.attempts {
                        return Err(TableError("DynamoDB left record writes unprocessed".into()));
                    }
                    tokio::time::sleep(UNPROCESSED.delay(attempt)).await;
                }
            }
        }
        Ok(())
    }

    /// The device's record, if there is one (a consistent read).
    pub async fn get(
        &self,
        integration_id: &str,
        device_id: &str,
    ) -> Result<Option<DeviceRecord>, TableError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(INTEGRATION, string(integration_id))
            .key(DEVICE, string(device_id))
            .consistent_read(true)
            .send()
            .await?;
        Ok(output
            .item()
            .and_then(|item| serde_json::from_str(&text_of(item, "body")).ok()))
    }

    pub async fn forget(&self, integration_id: &str, device_id: &str) -> Result<(), TableError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(INTEGRATION, string(integration_id))
            .key(DEVICE, string(device_id))
            .send()
            .await?;
        Ok(())
    }

    /// The records of these devices that exist, by device id.
    pub async fn get_many(
        &self,
        integration_id: &str,
        device_ids: &[&str],
    ) -> Result<HashMap<String, DeviceRecord>, TableError> {
        let mut found = HashMap::new();
        for chunk in device_ids.chunks(BATCH) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([
                        (INTEGRATION.to_owned(), string(integration_id)),
                        (DEVICE.to_owned(), string(*id)),
                    ])
                })
                .collect();
            let mut attempt = 0;
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .expect("keys are set");
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Ok(record) = serde_json::from_str::<DeviceRecord>(&text_of(item, "body"))
                    {
                        found.insert(record.device_id.clone(), record);
                    }
                }
                keys = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !keys.is_empty() {
                    attempt += 1;
                    if attempt >= UNPROCESSED.attempts {
                        return Err(TableError("DynamoDB left record reads unprocessed".into()));
                    }
                    tokio::time::sleep(UNPROCESSED.delay(attempt)).await;
                }
            }
        }
        Ok(found)
    }
}

fn item(integration_id: &str, record: &DeviceRecord) -> HashMap<String, AttributeValue> {
    let body = serde_json::to_string(record).expect("a record serializes");
    HashMap::from([
        (INTEGRATION.to_owned(), string(integration_id)),
        (DEVICE.to_owned(), string(record.device_id.clone())),
        ("body".to_owned(), string(body)),
        (
            EXPIRES_AT.to_owned(),
            number(record.checked_at + RETENTION.as_secs()),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iot::Certificate;

    fn certificate(id: &str, active: bool) -> Certificate {
        Certificate {
            id: id.into(),
            arn: format!("arn:aws:iot:eu-west-1:1:cert/{id}"),
            active,
            pem: String::new(),
        }
    }

    #[test]
    fn only_an_observation_that_changed_nothing_is_recorded() {
        let observed = |wanted, thing| {
            let mut observed = Observed::new(wanted, thing, "policy");
            observed.certificates = vec![certificate("c1", true)];
            observed
        };
        use Outcome::*;
        use ThingState::*;
        use Wanted::*;
        for (wanted, thing, outcome, recorded, policy) in [
            (Active, Ours, InSync, true, Some("policy")),
            (Inactive, Ours, InSync, true, None),
            (KeepActive, Ours, InSync, true, None),
            (Inactive, Absent, Nothing, true, None),
            (Active, Absent, Nothing, true, None),
            (Active, Ours, Provisioned, false, None),
            (Active, Ours, Repaired, false, None),
            (Inactive, Ours, Disabled, false, None),
            (Active, Foreign, Conflict, false, None),
            (Active, Unclaimed, Conflict, false, None),
            (Inactive, Ours, Deferred, false, None),
            (Active, Ours, Rotated, false, None),
            (Gone, Ours, Removed, false, None),
        ] {
            let record = DeviceRecord::of(
                "d",
                &observed(wanted, thing.clone()),
                Some("ts"),
                outcome,
                7,
            );
            assert_eq!(
                record.is_some(),
                recorded,
                "{wanted:?} {thing:?} {outcome:?}"
            );
            if let Some(record) = record {
                assert_eq!(record.policy.as_deref(), policy);
                assert_eq!((record.wanted, record.checked_at), (wanted, 7));
                assert_eq!(record.mender_updated_ts.as_deref(), Some("ts"));
            }
        }
    }

    #[test]
    fn a_recent_record_of_the_same_mender_state_answers_an_event() {
        let record = DeviceRecord::provisioned("d", Some("ts"), "c1", "policy", 1_000);
        assert_eq!(record.certificates.len(), 1);
        assert_eq!(record.policy.as_deref(), Some("policy"));
        let fresh = ANSWERS_EVENTS_FOR.as_secs();
        for (wanted, updated_ts, now, answers) in [
            (Wanted::Active, Some("ts"), 1_000, true),
            (Wanted::Active, Some("ts"), 1_000 + fresh, true),
            (Wanted::Active, Some("ts"), 1_001 + fresh, false),
            (Wanted::Inactive, Some("ts"), 1_000, false),
            (Wanted::Active, Some("later"), 1_000, false),
            (Wanted::Active, None, 1_000, false),
        ] {
            assert_eq!(
                record.answers(wanted, updated_ts, now),
                answers,
                "{wanted:?} {updated_ts:?} {now}"
            );
        }
        // Without Mender's timestamp nothing tells a later state apart.
        let untimed = DeviceRecord::provisioned("d", None, "c1", "policy", 1_000);
        assert!(!untimed.answers(Wanted::Active, None, 1_000));
    }

    #[test]
    fn the_deep_check_is_due_after_its_age_never_for_a_device_looked_at_in_the_run() {
        let record = |checked_at| DeviceRecord {
            device_id: "d".into(),
            wanted: Wanted::Active,
            mender_updated_ts: None,
            certificates: Vec::new(),
            policy: None,
            left_alone: false,
            checked_at,
        };
        let hour = Duration::from_secs(3600);
        for (checked_at, run_started, age, due) in [
            (1_000, 1_000 + 3600, hour, true),
            (1_001, 1_000 + 3600, hour, false),
            (999, 1_000, Duration::ZERO, true),
            (1_000, 1_000, Duration::ZERO, false),
            (1_001, 1_000, Duration::ZERO, false),
        ] {
            assert_eq!(
                record(checked_at).due(run_started, age),
                due,
                "{checked_at} {run_started} {age:?}"
            );
        }
    }
}
