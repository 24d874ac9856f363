//! The crash matrix: an invocation that simply stops. For provisioning, and
//! every call it makes to AWS or Mender, the call reaches its service and
//! then the handler is dropped (its future, with everything it had not done
//! yet, and no undo). Then the system goes on as it would in AWS: the lease
//! expires, the event is retried, the scheduled run comes. The end state
//! must be the one without the crash: the Thing, exactly one ACTIVE
//! certificate, delivered, no certificate attached to nothing, no lease or
//! intent left in the table.
//!
//! Before the bridge recorded certificate intents, the crash right after
//! `CreateCertificateFromCsr` left a certificate attached to nothing, for
//! good (docs/reliability.md).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bridge::events::DetailType;
use bridge::lifecycle::handle;
use integration_tests::fault_proxy::{Fault, FaultProxy, FaultRule};
use integration_tests::resilience::{audit, divert_webhooks, envelope, record_figures};
use integration_tests::stack::{Stack, TABLE, TENANT, emulator_config};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Aws,
    Mender,
}

fn proxy(stack: &Stack, side: Side) -> &FaultProxy {
    match side {
        Side::Aws => &stack.aws_proxy,
        Side::Mender => &stack.mender_proxy,
    }
}

/// A stack whose runs treat every certificate intent as stale at once:
/// Lambda's 15-minute limit, shortened as a test shortens lease expiries.
async fn stack() -> Stack {
    let stack = Stack::start_configured(|config| config.invocation_limit = Duration::ZERO).await;
    divert_webhooks(&stack);
    stack
}

/// The items of the bridge's table whose key starts with `prefix`.
async fn items(stack: &Stack, prefix: &str) -> Vec<String> {
    let config = emulator_config(
        &stack.moto.url,
        "us-east-1",
        bridge::config::CallBudget::BACKGROUND.aws,
    )
    .await;
    let scanned = aws_sdk_dynamodb::Client::new(&config)
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    scanned
        .items()
        .iter()
        .filter_map(|item| item.get("pk").and_then(|pk| pk.as_s().ok()))
        .filter(|pk| pk.starts_with(prefix))
        .cloned()
        .collect()
}

/// Lambda's view of a dead holder's lease: expired. Deleting it is what
/// the expiry amounts to for the next taker.
async fn expire_leases(stack: &Stack) {
    let config = emulator_config(
        &stack.moto.url,
        "us-east-1",
        bridge::config::CallBudget::BACKGROUND.aws,
    )
    .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    for key in items(stack, "lease#").await {
        client
            .delete_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(key))
            .send()
            .await
            .unwrap();
    }
}

/// The calls a provisioning makes on each side, without a crash.
async fn calls_of_a_provisioning() -> (Vec<String>, Vec<String>) {
    let stack = stack().await;
    let device = stack.mender.add_device(TENANT, "accepted", None);
    stack.aws_proxy.reset_calls();
    stack.mender_proxy.reset_calls();
    let event = envelope(&stack, DetailType::DeviceAccepted, &device);
    handle(stack.lifecycle(), event).await.unwrap();
    let names = |proxy: &FaultProxy| proxy.calls().into_iter().map(|c| c.operation).collect();
    (names(&stack.aws_proxy), names(&stack.mender_proxy))
}

/// One crash point: provisioning stopped right after its `call`-th call
/// on `side` reached the service; then the retry and the run. What is wrong
/// with the end state.
async fn crash_provisioning(side: Side, call: usize) -> Vec<String> {
    let stack = stack().await;
    let device = stack.mender.add_device(TENANT, "accepted", None);
    let event = envelope(&stack, DetailType::DeviceAccepted, &device);
    let proxy = proxy(&stack, side);
    proxy.inject(FaultRule {
        operation: "*".to_owned(),
        fault: Fault::Crash,
        times: Some(1),
        every: call as u32,
    });
    let mut problems = Vec::new();
    tokio::select! {
        result = handle(stack.lifecycle(), event.clone()) => {
            problems.push(format!("the handler ended before its call {call}: {result:?}"));
        }
        () = proxy.crashed() => {}
    }
    proxy.clear();

    // The lease expires and Lambda retries the event.
    expire_leases(&stack).await;
    if let Err(error) = handle(stack.lifecycle(), event).await {
        problems.push(format!("the retried event failed: {error}"));
    }
    // The scheduled run comes.
    let run = stack.reconcile_run(&stack.admin_token, None).await;
    if run["state"] != "done" {
        problems.push(format!("the run did not finish: {run}"));
    }

    if let Err(found) = audit(&stack, std::slice::from_ref(&device)).await {
        problems.extend(found);
    }
    let certificates = stack.certificates().await;
    if certificates.len() != 1 {
        problems.push(format!("certificates in AWS: {certificates:?}"));
    }
    let delivered = stack
        .mender
        .configuration(&device)
        .and_then(|c| c.get("awsCertificate").cloned())
        .unwrap_or_default();
    let described = stack
        .iot()
        .describe_certificate()
        .certificate_id(certificates.first().map(|c| c.0.as_str()).unwrap_or("none"))
        .send()
        .await
        .ok()
        .and_then(|d| d.certificate_description)
        .and_then(|d| d.certificate_pem);
    if described.as_deref() != Some(delivered.as_str()) {
        problems.push("the device was not given its ACTIVE certificate".to_owned());
    }
    for prefix in ["lease#", "certificate-intent#", "reconcile#"] {
        let left = items(&stack, prefix).await;
        if !left.is_empty() {
            problems.push(format!("left in the table: {left:?}"));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_stopped_after_any_call_ends_as_if_it_had_not() {
    let started = Instant::now();
    let (aws, mender) = calls_of_a_provisioning().await;
    assert!(
        aws.iter().any(|c| c == "CreateCertificateFromCsr"),
        "{aws:?}"
    );
    let mut failures = Vec::new();
    let mut cases = 0;
    for (side, calls) in [(Side::Aws, &aws), (Side::Mender, &mender)] {
        for (index, name) in calls.iter().enumerate() {
            cases += 1;
            let problems = crash_provisioning(side, index + 1).await;
            let point = format!("{side:?} call {} ({name})", index + 1);
            println!(
                "crash after {point}: {}",
                if problems.is_empty() { "ok" } else { "FAILED" }
            );
            if !problems.is_empty() {
                failures.push(format!("{point}: {problems:?}"));
            }
        }
    }
    record_figures(
        "crash_matrix",
        &json!({
            "operation": "provisioning",
            "crash_points": {"aws": aws, "mender": mender},
            "cases": cases,
            "failed": failures.len(),
            "seconds": started.elapsed().as_secs(),
        }),
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} crash points failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
