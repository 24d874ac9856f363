//! CloudWatch metrics as Embedded Metric Format (EMF) records: one JSON
//! line each in the function's log, which CloudWatch turns into metrics,
//! so they cost no API call. Every metric is per organization
//! (dimension `Organization`); docs/operations.md says what each means.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::converge::Outcome;
use crate::reconcile::{ReconcileRun, RunState};

pub const NAMESPACE: &str = "MenderIotBridge";
pub const DIMENSION: &str = "Organization";

pub const PROVISIONED: &str = "DevicesProvisioned";
pub const REPAIRED: &str = "DevicesRepaired";
pub const DISABLED: &str = "DevicesDisabled";
pub const REMOVED: &str = "DevicesRemoved";
pub const ROTATED: &str = "DevicesRotated";
pub const CONFLICTS: &str = "DeviceConflicts";
pub const FAILED: &str = "DeviceFailures";
pub const RUN_DEVICES: &str = "ReconcileRunDevicesSeen";
pub const RUN_PROGRESS: &str = "ReconcileRunDevicesWalked";
pub const RUN_DURATION: &str = "ReconcileRunDuration";
pub const RUNS_HELD: &str = "ReconcileRunsHeld";
pub const RUNS_FAILED: &str = "ReconcileRunsFailed";
pub const TOKEN_DAYS_LEFT: &str = "MenderTokenDaysLeft";
pub const AWS_THROTTLED: &str = "AwsThrottledCalls";

/// Every metric the bridge emits (the dashboard in template.yaml shows
/// each, as the template test checks).
pub const ALL: [&str; 14] = [
    PROVISIONED,
    REPAIRED,
    DISABLED,
    REMOVED,
    ROTATED,
    CONFLICTS,
    FAILED,
    RUN_DEVICES,
    RUN_PROGRESS,
    RUN_DURATION,
    RUNS_HELD,
    RUNS_FAILED,
    TOKEN_DAYS_LEFT,
    AWS_THROTTLED,
];

/// The metric a device's convergence counts in, if any.
pub fn outcome_metric(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Provisioned => Some(PROVISIONED),
        Outcome::Repaired => Some(REPAIRED),
        Outcome::Disabled => Some(DISABLED),
        Outcome::Removed => Some(REMOVED),
        Outcome::Rotated => Some(ROTATED),
        Outcome::Conflict => Some(CONFLICTS),
        Outcome::InSync | Outcome::Nothing | Outcome::HandedOver | Outcome::Deferred => None,
    }
}

/// AWS's throttled answers to the organization since they were last
/// counted, if any (see [`crate::throttling`]).
pub fn throttled_value(tenant: &crate::tenant::Tenant) -> Option<(&'static str, f64)> {
    match tenant.throttled.take() {
        0 => None,
        calls => Some((AWS_THROTTLED, calls as f64)),
    }
}

/// The metrics of a run that ended: how many devices it looked at, what it
/// changed, how long it took, and whether it was held or failed.
pub fn run_values(run: &ReconcileRun) -> Vec<(&'static str, f64)> {
    let counts = &run.counts;
    let mut values = vec![
        (RUN_DEVICES, counts.seen as f64),
        (PROVISIONED, counts.provisioned as f64),
        (REPAIRED, counts.repaired as f64),
        (DISABLED, counts.disabled as f64),
        (REMOVED, counts.removed as f64),
        (ROTATED, counts.rotated as f64),
        (CONFLICTS, counts.conflicts as f64),
        (FAILED, counts.failed as f64),
        (RUNS_HELD, f64::from(u8::from(run.state == RunState::Held))),
        (
            RUNS_FAILED,
            f64::from(u8::from(run.state == RunState::Failed)),
        ),
    ];
    if let Some(seconds) = run_seconds(run) {
        values.push((RUN_DURATION, seconds));
    }
    values
}

fn run_seconds(run: &ReconcileRun) -> Option<f64> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let started = OffsetDateTime::parse(&run.started_at, &Rfc3339).ok()?;
    let ended = OffsetDateTime::parse(run.ended_at.as_deref()?, &Rfc3339).ok()?;
    Some((ended - started).as_seconds_f64().max(0.0))
}

/// One EMF record of `values` for an organization, at `timestamp_ms`. Pure.
pub fn record(organization: &str, values: &[(&str, f64)], timestamp_ms: i64) -> Value {
    let unit = |name: &str| match name {
        RUN_DURATION => "Seconds",
        TOKEN_DAYS_LEFT => "None",
        _ => "Count",
    };
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, _)| json!({ "Name": name, "Unit": unit(name) }))
        .collect();
    let mut record = Map::new();
    record.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": definitions,
            }]
        }),
    );
    record.insert(DIMENSION.into(), json!(organization));
    for (name, value) in values {
        record.insert((*name).to_owned(), json!(value));
    }
    Value::Object(record)
}

/// Where records go.
#[derive(Clone, Debug)]
pub enum MetricsSink {
    /// Standard output, where Lambda's log capture hands them to
    /// CloudWatch (the deployed functions).
    Stdout,
    /// Kept in memory, for the tests and the bench to read back.
    Memory(Arc<Mutex<Vec<Value>>>),
}

impl MetricsSink {
    pub fn memory() -> MetricsSink {
        MetricsSink::Memory(Arc::default())
    }

    /// Emits `values` for an organization, now.
    pub fn emit(&self, organization: &str, values: &[(&str, f64)]) {
        if values.is_empty() {
            return;
        }
        let now = time::OffsetDateTime::now_utc();
        let record = record(
            organization,
            values,
            (now.unix_timestamp_nanos() / 1_000_000) as i64,
        );
        match self {
            MetricsSink::Stdout => println!("{record}"),
            MetricsSink::Memory(records) => records.lock().unwrap().push(record),
        }
    }

    /// What was emitted so far (empty for [`MetricsSink::Stdout`]).
    pub fn records(&self) -> Vec<Value> {
        match self {
            MetricsSink::Stdout => Vec::new(),
            MetricsSink::Memory(records) => records.lock().unwrap().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_embedded_metric_format() {
        let record = record("acme", &[(PROVISIONED, 1.0), (RUN_DURATION, 2.5)], 1_700);
        assert_eq!(
            record,
            json!({
                "_aws": {
                    "Timestamp": 1_700,
                    "CloudWatchMetrics": [{
                        "Namespace": "MenderIotBridge",
                        "Dimensions": [["Organization"]],
                        "Metrics": [
                            {"Name": "DevicesProvisioned", "Unit": "Count"},
                            {"Name": "ReconcileRunDuration", "Unit": "Seconds"}
                        ]
                    }]
                },
                "Organization": "acme",
                "DevicesProvisioned": 1.0,
                "ReconcileRunDuration": 2.5
            })
        );
    }

    #[test]
    fn only_changes_conflicts_and_failures_are_counted() {
        for (outcome, metric) in [
            (Outcome::Provisioned, Some(PROVISIONED)),
            (Outcome::Repaired, Some(REPAIRED)),
            (Outcome::Disabled, Some(DISABLED)),
            (Outcome::Removed, Some(REMOVED)),
            (Outcome::Rotated, Some(ROTATED)),
            (Outcome::Conflict, Some(CONFLICTS)),
            (Outcome::InSync, None),
            (Outcome::Nothing, None),
            (Outcome::HandedOver, None),
            (Outcome::Deferred, None),
        ] {
            assert_eq!(outcome_metric(outcome), metric, "{outcome:?}");
        }
    }

    #[test]
    fn the_memory_sink_keeps_what_was_emitted() {
        let sink = MetricsSink::memory();
        sink.emit("acme", &[]);
        sink.emit("acme", &[(FAILED, 1.0)]);
        let records = sink.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["DeviceFailures"], 1.0);
        assert_eq!(records[0]["Organization"], "acme");
        assert!(MetricsSink::Stdout.records().is_empty());
    }
}
