//! The crash matrix: an invocation that simply stops. For each operation
//! and every call it makes to AWS or Mender, the call reaches its service
//! and then the handler is dropped (its future, with everything it had not
//! done yet, and no undo). Then the system goes on as it would in AWS: the
//! lease expires and the event is retried, the scheduled run comes, the
//! admin retries the request. The end state must be the one without the
//! crash.
//!
//! The crash points are not listed by hand: each operation first runs once
//! without a crash, and every call the fault proxies saw becomes a point.
//! Each case runs on a stack of its own.
//!
//! Before the bridge recorded certificate intents, the crash right after
//! `CreateCertificateFromCsr` left a certificate attached to nothing, for
//! good; before setups cleaned up after abandoned ones, a crash after
//! Mender's webhook was registered blocked every later setup
//! (docs/reliability.md).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bridge::events::{BusEnvelope, DetailType, EventBus, ReconcileRequest};
use bridge::lifecycle::handle;
use bridge::reconcile::RunState;
use integration_tests::fault_proxy::{Fault, FaultProxy, FaultRule};
use integration_tests::resilience::{
    Cold, RecordingBus, Reply, audit, divert_webhooks, envelope, nothing_left, record_figures,
    snapshot, stored_shadow,
};
use integration_tests::stack::{
    POLICY, Stack, TABLE, TENANT, emulator_config, key_pair_setup, test_budget,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Operation {
    Provision,
    Disable,
    Decommission,
    ShadowWrite,
    /// `PUT /integration` creating the organization's integration.
    Setup,
    /// `DELETE /integration`.
    Removal,
    /// One invocation of a reconcile run that provisions two devices.
    RunStep,
    /// `POST /devices/{device_id}/rotation` on a device that applied its
    /// certificate.
    Rotation,
}

const OPERATIONS: [Operation; 8] = [
    Operation::Provision,
    Operation::Disable,
    Operation::Decommission,
    Operation::ShadowWrite,
    Operation::Setup,
    Operation::Removal,
    Operation::RunStep,
    Operation::Rotation,
];

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

/// One case's stack, and what its invocation is asked to do.
struct Subject {
    stack: Stack,
    work: Work,
}

/// What the invocation is asked to do; it crosses into a process of its
/// own as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Work {
    operation: Operation,
    admin_token: String,
    /// The integration the shadow write's and the removal's routes name.
    integration_id: String,
    /// The devices whose end state is checked.
    devices: Vec<String>,
    /// The lifecycle event.
    event: Option<BusEnvelope>,
    /// The reconcile run a step advances.
    run_id: String,
    /// The shadow write's desired state.
    desired: Value,
}

/// A stack for `operation`, and its subject. Runs treat every certificate
/// intent as stale at once: Lambda's 15-minute limit, shortened as a test
/// shortens lease expiries.
async fn arrange(operation: Operation) -> Subject {
    let stack = match operation {
        Operation::Setup | Operation::Removal => Stack::bare().await,
        _ => {
            let stack =
                Stack::start_configured(|config| config.invocation_limit = Duration::ZERO).await;
            divert_webhooks(&stack);
            stack
        }
    };
    let mut work = Work {
        operation,
        admin_token: stack.admin_token.clone(),
        integration_id: stack.integration_id.clone(),
        devices: Vec::new(),
        event: None,
        run_id: String::new(),
        desired: json!({"led": "on"}),
    };
    // Arranged through the stack's own (warm) handlers.
    {
        let stack = &stack;
        let provisioned = || async {
            let device = stack.mender.add_device(TENANT, "accepted", None);
            let event = envelope(stack, DetailType::DeviceAccepted, &device);
            handle(stack.lifecycle(), event).await.unwrap();
            device
        };
        match operation {
            Operation::Provision => {
                let device = stack.mender.add_device(TENANT, "accepted", None);
                work.event = Some(envelope(stack, DetailType::DeviceAccepted, &device));
                work.devices.push(device);
            }
            Operation::Disable => {
                let device = provisioned().await;
                stack.mender.reject(&device).await;
                work.event = Some(envelope(stack, DetailType::DeviceDisabled, &device));
                work.devices.push(device);
            }
            Operation::Decommission => {
                let device = provisioned().await;
                stack.mender.decommission(&device).await;
                work.event = Some(envelope(stack, DetailType::DeviceDecommissioned, &device));
                work.devices.push(device);
            }
            Operation::ShadowWrite => work.devices.push(provisioned().await),
            Operation::Rotation => {
                let device = provisioned().await;
                let applied = stack.mender.configuration(&device).unwrap();
                stack.mender.report_configuration(&device, applied);
                work.devices.push(device);
            }
            Operation::Setup => {}
            Operation::Removal => {
                let created = Cold::new(stack, test_budget())
                    .await
                    .create_integration(&stack.admin_token, &key_pair_setup(POLICY))
                    .await;
                assert_eq!(created.status, 201, "{}", created.text);
                work.integration_id = created.body["id"].as_str().unwrap().to_owned();
            }
            Operation::RunStep => {
                for _ in 0..2 {
                    let device = stack.mender.add_device(TENANT, "accepted", None);
                    work.devices.push(device);
                }
                let reconciler = stack.bus.reconciler();
                let run = bridge::reconcile::start(
                    &reconciler.runs,
                    &RecordingBus::default(),
                    TENANT,
                    &stack.integration_id,
                    bridge::reconcile::RunRequest::Sync { confirmed: false },
                )
                .await
                .unwrap();
                work.run_id = run.run_id;
            }
        }
    }
    Subject { stack, work }
}

/// The invocation the crash stops (and, unstopped, the one that finds the
/// crash points): fresh handler instances, as after a cold start; a run
/// step's follow-ups go to `bus`.
async fn invoke(work: &Work, cold: &Cold, bus: &impl EventBus) -> Result<(), String> {
    let answered = |reply: Reply, ok: &[u16]| {
        if ok.contains(&reply.status) {
            Ok(())
        } else {
            Err(format!("{}: {}", reply.status, reply.text))
        }
    };
    match work.operation {
        Operation::Provision | Operation::Disable | Operation::Decommission => {
            let event = work.event.clone().expect("a lifecycle event");
            handle(&cold.lifecycle, event)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Operation::ShadowWrite => answered(
            cold.put_state(
                &work.devices[0],
                &work.integration_id,
                &work.admin_token,
                &json!({"desired": work.desired}),
            )
            .await,
            &[200],
        ),
        // A retried rotation finds the first one waiting if it delivered (409).
        Operation::Rotation => answered(
            cold.rotate(&work.devices[0], &work.admin_token).await,
            &[201, 409],
        ),
        // A retried setup may find the first one complete (409).
        Operation::Setup => {
            let reply = cold
                .create_integration(&work.admin_token, &key_pair_setup(POLICY))
                .await;
            match reply.status {
                409 if reply.text.contains("already has integration") => Ok(()),
                _ => answered(reply, &[201]),
            }
        }
        // A retried removal may find the integration already gone (404).
        Operation::Removal => answered(
            cold.delete_integration(&work.admin_token, &work.integration_id)
                .await,
            &[204, 404],
        ),
        Operation::RunStep => {
            let request = json!({
                "detail-type": DetailType::ReconcileRequested.as_str(),
                "detail": ReconcileRequest { run_id: work.run_id.clone() },
            });
            let far = Instant::now() + Duration::from_secs(600);
            bridge::reconcile::handle(&cold.reconciler, bus, request, far)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }
}

/// `work` done in this process by cold handlers of `stack`; the stack's
/// bus carries out a run's follow-up steps.
async fn invoke_here(stack: &Stack, work: &Work) -> Result<(), String> {
    invoke(work, &Cold::new(stack, test_budget()).await, &stack.bus).await
}

/// The items of the bridge's table whose key starts with `prefix`.
async fn items(stack: &Stack, prefix: &str) -> Vec<String> {
    let scanned = aws_sdk_dynamodb::Client::new(&stack.direct)
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

/// Time passes for what a dead holder left: its device leases expire (for
/// the next taker that is as if they were gone), and so does a setup's
/// claim on its organization.
async fn expire_holds(stack: &Stack) {
    let client = aws_sdk_dynamodb::Client::new(&stack.direct);
    for key in items(stack, "lease#").await {
        client
            .delete_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(key))
            .send()
            .await
            .unwrap();
    }
    for key in items(stack, "integration#").await {
        client
            .update_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(key))
            .update_expression("SET claim_expires_at = :past")
            .condition_expression("#state = :creating")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":past", AttributeValue::N("0".into()))
            .expression_attribute_values(":creating", AttributeValue::S("creating".into()))
            .send()
            .await
            .ok();
    }
}

/// The calls `operation` makes on each side, without a crash.
async fn crash_points(operation: Operation) -> (Vec<String>, Vec<String>) {
    let subject = arrange(operation).await;
    let stack = &subject.stack;
    stack.aws_proxy.reset_calls();
    stack.mender_proxy.reset_calls();
    invoke_here(stack, &subject.work).await.unwrap();
    stack.bus.wait_idle().await;
    let names = |proxy: &FaultProxy| proxy.calls().into_iter().map(|c| c.operation).collect();
    (names(&stack.aws_proxy), names(&stack.mender_proxy))
}

/// How an invocation stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Its future is dropped, in this process.
    Dropped,
    /// Its process is killed (SIGKILL): with it go tasks it spawned.
    Killed,
}

/// One case: `operation` stopped right after its `call`-th call on `side`
/// reached the service; then what AWS and the admin do next. What is wrong
/// with the end state.
async fn crash(operation: Operation, side: Side, call: usize, stop: Stop) -> Vec<String> {
    let subject = arrange(operation).await;
    let stack = &subject.stack;
    let proxy = proxy(stack, side);
    proxy.inject(FaultRule {
        operation: "*".to_owned(),
        fault: Fault::Crash,
        times: Some(1),
        every: call as u32,
    });
    let mut problems = Vec::new();
    let ended_early = match stop {
        Stop::Dropped => tokio::select! {
            result = invoke_here(stack, &subject.work) => Some(format!("{result:?}")),
            () = proxy.crashed() => None,
        },
        Stop::Killed => kill_at_crash(&subject, proxy).await,
    };
    if let Some(ended) = ended_early {
        problems.push(format!(
            "the invocation ended before its call {call}: {ended}"
        ));
    }
    proxy.clear();

    expire_holds(stack).await;
    // Lambda retries the event; the admin retries the request.
    if let Err(error) = invoke_here(stack, &subject.work).await {
        problems.push(format!("the retry failed: {error}"));
    }
    stack.bus.wait_idle().await;
    if !stack.integration_id.is_empty() {
        // The scheduled run comes.
        let run = stack.reconcile_run(&stack.admin_token, None).await;
        if run["state"] != "done" {
            problems.push(format!("the scheduled run did not finish: {run}"));
        }
    }
    problems.extend(end_state(operation, &subject).await);
    problems
}

/// Does the subject's work in a process of its own (this test binary,
/// running [`work_in_a_process`]) and kills it once the crash call has
/// reached its service. How it ended if it ended first.
async fn kill_at_crash(subject: &Subject, proxy: &FaultProxy) -> Option<String> {
    let stack = &subject.stack;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "work_in_a_process", "--ignored", "--quiet"])
        .env(CHILD_WORK, serde_json::to_string(&subject.work).unwrap())
        .env(CHILD_AWS, stack.aws_proxy.url())
        .env(CHILD_MENDER, stack.mender_proxy.url())
        .env(CHILD_PUBLIC_URL, &stack.url)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let crashed = proxy.crashed();
    tokio::pin!(crashed);
    loop {
        tokio::select! {
            () = &mut crashed => {
                child.kill().unwrap();
                child.wait().unwrap();
                return None;
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                if let Some(status) = child.try_wait().unwrap() {
                    return Some(format!("the process exited: {status}"));
                }
            }
        }
    }
}

const CHILD_WORK: &str = "CRASH_MATRIX_CHILD_WORK";
const CHILD_AWS: &str = "CRASH_MATRIX_CHILD_AWS";
const CHILD_MENDER: &str = "CRASH_MATRIX_CHILD_MENDER";
const CHILD_PUBLIC_URL: &str = "CRASH_MATRIX_CHILD_PUBLIC_URL";

/// The killed half of a process-kill case: the work, done by cold
/// handlers in this process, which the parent kills mid-call. Does nothing
/// unless the parent started it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started by the crash matrix in a process of its own"]
async fn work_in_a_process() {
    let Ok(work) = std::env::var(CHILD_WORK) else {
        return;
    };
    let variable = |name| std::env::var(name).unwrap();
    let aws = emulator_config(&variable(CHILD_AWS), "us-east-1", test_budget().aws).await;
    let cold = Cold::with(
        aws,
        &variable(CHILD_MENDER),
        &variable(CHILD_PUBLIC_URL),
        test_budget(),
    );
    let work: Work = serde_json::from_str(&work).unwrap();
    invoke(&work, &cold, &RecordingBus::default())
        .await
        .unwrap();
}

/// Where the end state differs from the one without the crash.
async fn end_state(operation: Operation, subject: &Subject) -> Vec<String> {
    let stack = &subject.stack;
    let mut problems = Vec::new();
    if operation == Operation::Rotation {
        // Two certificates by design: checked below, the rest as always.
        let snapshot = snapshot(stack).await;
        problems.extend(snapshot.orphans.iter().map(|c| format!("orphaned {c}")));
        problems.extend(
            snapshot
                .dangling_policy_targets
                .iter()
                .map(|c| format!("policy on missing {c}")),
        );
    } else if let Err(found) = audit(stack, &subject.work.devices).await {
        problems.extend(found);
    }
    for prefix in ["lease#", "certificate-intent#", "reconcile#"] {
        let left = items(stack, prefix).await;
        if !left.is_empty() {
            problems.push(format!("left in the table: {left:?}"));
        }
    }
    match operation {
        Operation::Provision | Operation::RunStep => {
            let certificates = stack.certificates().await;
            if certificates.len() != subject.work.devices.len() {
                problems.push(format!("certificates in AWS: {certificates:?}"));
            }
            for device in &subject.work.devices {
                problems.extend(delivery_problems(stack, device).await);
            }
        }
        Operation::Disable => {
            let certificates = stack.certificates().await;
            if certificates.len() != 1 || certificates[0].2 != "INACTIVE" {
                problems.push(format!("certificates in AWS: {certificates:?}"));
            }
        }
        Operation::Decommission => {
            let certificates = stack.certificates().await;
            if !certificates.is_empty() {
                problems.push(format!("certificates in AWS: {certificates:?}"));
            }
        }
        Operation::Rotation => problems.extend(waiting(stack, &subject.work.devices[0]).await),
        Operation::ShadowWrite => {
            let (desired, _) = stored_shadow(stack, &subject.work.devices[0]).await;
            if desired != subject.work.desired {
                problems.push(format!("the shadow holds {desired}"));
            }
        }
        Operation::Setup => {
            problems.extend(one_integration(stack).await);
            let entries = items(stack, "integration#").await;
            if entries.len() != 1 {
                problems.push(format!("index entries: {entries:?}"));
            }
        }
        Operation::Removal => {
            problems.extend(nothing_left(stack, &stack.admin_token).await);
            let entries = items(stack, "integration#").await;
            if !entries.is_empty() {
                problems.push(format!("index entries left: {entries:?}"));
            }
        }
    }
    if operation == Operation::RunStep {
        let run = stack.bus.reconciler().runs.get(&subject.work.run_id).await;
        let state = run.ok().flatten().map(|run| run.state);
        if state != Some(RunState::Done) {
            problems.push(format!("the crashed run ended {state:?}"));
        }
    }
    problems
}

/// A rotation waits for the device: two ACTIVE certificates on its Thing,
/// the one it reports holding and a new one delivered (the first check
/// holds with or without a crash; it is what the device relies on).
async fn waiting(stack: &Stack, device: &str) -> Vec<String> {
    let pem = |configuration: Option<std::collections::BTreeMap<String, String>>| {
        configuration
            .and_then(|c| c.get("awsCertificate").cloned())
            .unwrap_or_default()
    };
    let delivered = pem(stack.mender.configuration(device));
    let reported = pem(stack.mender.reported_configuration(device));
    let held: Vec<(String, String)> = stack
        .thing_certificates(device)
        .await
        .into_values()
        .collect();
    let active = |pem: &str| {
        held.iter()
            .any(|(status, p)| p == pem && status == "ACTIVE")
    };
    let mut problems = Vec::new();
    if !active(&reported) {
        problems.push(format!("{device}: the certificate it holds is not ACTIVE"));
    }
    if delivered == reported || !active(&delivered) {
        problems.push(format!("{device}: no new ACTIVE certificate was delivered"));
    }
    if held.len() != 2 {
        problems.push(format!(
            "{device}: {} certificates on its Thing",
            held.len()
        ));
    }
    problems.extend(sent(stack, device));
    problems
}

/// The device holds its Thing's ACTIVE certificate, delivered.
async fn delivery_problems(stack: &Stack, device: &str) -> Vec<String> {
    let delivered = stack
        .mender
        .configuration(device)
        .and_then(|c| c.get("awsCertificate").cloned())
        .unwrap_or_default();
    let principals = stack.thing_principals(device).await;
    let certificate_id = principals
        .first()
        .and_then(|arn| arn.rsplit('/').next())
        .unwrap_or("none");
    let described = stack
        .iot()
        .describe_certificate()
        .certificate_id(certificate_id)
        .send()
        .await
        .ok()
        .and_then(|d| d.certificate_description)
        .and_then(|d| d.certificate_pem);
    let mut problems = Vec::new();
    if described.as_deref() != Some(delivered.as_str()) {
        problems.push(format!("{device} was not given its ACTIVE certificate"));
    }
    problems.extend(sent(stack, device));
    problems
}

/// Mender was asked to send the device its configuration as it is now: a
/// configuration written but never deployed never reaches the device.
fn sent(stack: &Stack, device: &str) -> Option<String> {
    let configured = stack.mender.configuration(device);
    (stack.mender.deployed_configuration(device) != configured)
        .then(|| format!("{device}: its configuration was never sent to it"))
}

/// Exactly what one setup makes: the integration, readable; one Mender
/// webhook; the bridge's one personal access token; its two secrets.
async fn one_integration(stack: &Stack) -> Vec<String> {
    let mut problems = Vec::new();
    let listed = Cold::new(stack, test_budget())
        .await
        .integrations(&stack.admin_token)
        .await;
    if listed.status != 200 || listed.body.as_array().map(Vec::len) != Some(1) {
        problems.push(format!("GET integrations: {}", listed.text));
    }
    if stack.mender.webhook_integration(TENANT).is_none() {
        problems.push("no Mender webhook".into());
    }
    let tokens = stack.personal_tokens(&stack.admin_token).await;
    if tokens.len() != 1 {
        problems.push(format!("{} personal access tokens", tokens.len()));
    }
    let live = stack.live_secrets().await;
    if live.len() != 2 {
        problems.push(format!("live secrets: {live:?}"));
    }
    problems
}

/// The operations, or only the one `CRASH_MATRIX_ONLY` names.
fn operations() -> Vec<Operation> {
    let only = std::env::var("CRASH_MATRIX_ONLY").ok();
    OPERATIONS
        .into_iter()
        .filter(|operation| only.as_ref().is_none_or(|o| *o == format!("{operation:?}")))
        .collect()
}

/// Every operation stopped after each of its calls, the `stop` way.
async fn matrix(stop: Stop) {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut figures = Vec::new();
    for operation in operations() {
        let began = Instant::now();
        let (aws, mender) = crash_points(operation).await;
        let mut failed = 0;
        for (side, calls) in [(Side::Aws, &aws), (Side::Mender, &mender)] {
            for (index, name) in calls.iter().enumerate() {
                let problems = crash(operation, side, index + 1, stop).await;
                let point = format!(
                    "{operation:?} ({stop:?}) after {side:?} call {} ({name})",
                    index + 1
                );
                if problems.is_empty() {
                    println!("{point}: ok");
                } else {
                    println!("{point}: FAILED {problems:?}");
                    failed += 1;
                    failures.push(format!("{point}: {problems:?}"));
                }
            }
        }
        figures.push(json!({
            "operation": format!("{operation:?}"),
            "crash_points": {"aws": aws, "mender": mender},
            "cases": aws.len() + mender.len(),
            "failed": failed,
            "seconds": began.elapsed().as_secs(),
        }));
    }
    record_figures(
        &format!("crash_matrix_{}", format!("{stop:?}").to_lowercase()),
        &json!({"operations": figures, "seconds": started.elapsed().as_secs()}),
    );
    assert!(
        failures.is_empty(),
        "{} crash points failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_with_its_future_dropped_after_any_call_ends_as_if_it_had_not() {
    matrix(Stop::Dropped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_with_its_process_killed_after_any_call_ends_as_if_it_had_not() {
    matrix(Stop::Killed).await;
}
