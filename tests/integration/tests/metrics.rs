//! The functions' metrics (CloudWatch Embedded Metric Format): what each
//! device's convergence and each reconcile run records, per organization.

use bridge::metrics::{
    AWS_THROTTLED, DISABLED, FAILED, NAMESPACE, PROVISIONED, REMOVED, RUN_DEVICES, RUN_DURATION,
    RUN_PROGRESS, RUNS_HELD,
};
use integration_tests::fault_proxy::{Fault, FaultRule};
use integration_tests::stack::{Stack, TENANT};
use reqwest::Method;
use serde_json::Value;

/// The sum of a metric over the records so far, checking each record's
/// format on the way.
fn total(records: &[Value], metric: &str) -> f64 {
    records
        .iter()
        .filter(|record| record.get(metric).is_some())
        .map(|record| {
            let definition = &record["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(definition["Namespace"], NAMESPACE, "{record}");
            assert_eq!(
                definition["Dimensions"],
                serde_json::json!([["Organization"]])
            );
            assert!(
                definition["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["Name"] == metric),
                "{metric} is declared: {record}"
            );
            assert!(record["_aws"]["Timestamp"].as_i64().unwrap() > 0);
            assert_eq!(record["Organization"], TENANT, "{record}");
            record[metric].as_f64().unwrap()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_changes_failures_and_runs_are_counted_per_organization() {
    let stack = Stack::start().await;
    let records = || stack.lifecycle().metrics.records();

    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(total(&records(), PROVISIONED), 1.0);

    stack.mender.reject(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(total(&records(), DISABLED), 1.0);

    stack.mender.decommission(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(total(&records(), REMOVED), 1.0);

    // A convergence that fails counts each failed attempt.
    let failing = stack.mender.add_device(TENANT, "pending", None);
    stack
        .aws_proxy
        .inject(FaultRule::always("CreateThing", Fault::ServerError));
    stack.mender.accept(&failing).await;
    stack.bus.wait_idle().await;
    stack.aws_proxy.clear();
    let failures = total(&records(), FAILED);
    assert!(failures >= 1.0, "{failures}");
    // Every attempt of an event that never succeeded failed; an event that
    // succeeded at last failed on every attempt but its last.
    let failed_attempts: u32 = stack
        .bus
        .deliveries()
        .iter()
        .filter(|d| d.event.device_id == failing)
        .map(|d| d.attempts - u32::from(d.result.is_ok()))
        .sum();
    assert_eq!(failures as u32, failed_attempts, "one per failed attempt");

    // A run: the devices it saw, how long it took, not held.
    let before = total(&records(), PROVISIONED);
    let done = stack.reconcile_run(&stack.admin_token, None).await;
    assert_eq!(done["state"], "done", "{done}");
    let records = records();
    assert_eq!(
        total(&records, RUN_DEVICES),
        done["counts"]["seen"].as_f64().unwrap()
    );
    // Its progress, page by page: one survey walk of every device (nothing
    // was deferred, so no second pass, and no orphan Things).
    assert_eq!(
        total(&records, RUN_PROGRESS),
        done["counts"]["seen"].as_f64().unwrap()
    );
    assert!(total(&records, RUN_DURATION) >= 0.0);
    assert!(records.iter().any(|r| r.get(RUN_DURATION).is_some()));
    assert_eq!(total(&records, RUNS_HELD), 0.0);
    // The run provisioned the device that failed before, and says so.
    assert_eq!(
        total(&records, PROVISIONED) - before,
        done["counts"]["provisioned"].as_f64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_throttling_is_counted_per_organization_by_convergences_and_runs() {
    let stack = Stack::start().await;
    let records = || stack.lifecycle().metrics.records();

    // Two throttled attempts the SDK retried: the device is provisioned,
    // and the throttling shows.
    stack.aws_proxy.inject(FaultRule::times(
        "CreateCertificateFromCsr",
        Fault::Throttle,
        2,
    ));
    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(total(&records(), PROVISIONED), 1.0);
    assert_eq!(total(&records(), AWS_THROTTLED), 2.0);

    // A run's throttled reads count too (its listing of the Things: the
    // device was just provisioned and its record agrees, so the run reads
    // nothing of its own).
    stack
        .aws_proxy
        .inject(FaultRule::times("ListThings", Fault::Throttle, 3));
    let done = stack.reconcile_run(&stack.admin_token, None).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(total(&records(), AWS_THROTTLED), 5.0);

    // So do the shadow routes': a read and a write, each throttled once.
    let path = stack.state_path(&device);
    let token = Some(stack.admin_token.as_str());
    for operation in ["GetThingShadow", "UpdateThingShadow"] {
        stack
            .aws_proxy
            .inject(FaultRule::times(operation, Fault::Throttle, 1));
    }
    let read = stack.call(Method::GET, &path, token, None).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let desired = serde_json::json!({"desired": {"interval": 60}});
    let written = stack.call(Method::PUT, &path, token, Some(&desired)).await;
    assert_eq!(written.status, 200, "{}", written.text);
    assert_eq!(total(&records(), AWS_THROTTLED), 7.0);
}
