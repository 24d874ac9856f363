//! Make-before-break rotation of one device's certificate, end to end: the
//! local runner's routes, the Mender stand-in (the device "applies" a
//! configuration by reporting it, as mender-configure does), moto.
//!
//! At every step: the certificates the device's delivered and reported
//! configurations carry are ACTIVE, so the device is never left holding
//! only an INACTIVE one, whether it applies the new one late, at once or
//! never.

use std::collections::BTreeMap;
use std::time::Duration;

use bridge::events::DetailType;
use integration_tests::resilience::envelope;
use integration_tests::stack::{Answer, Stack, TENANT, api};
use reqwest::Method;

/// Whether the certificate is gone from AWS altogether.
async fn deleted(stack: &Stack, id: &str) -> bool {
    stack
        .certificates()
        .await
        .iter()
        .all(|(listed, _, _)| listed != id)
}

/// The id of the Thing's certificate with this PEM.
fn id_of(certificates: &BTreeMap<String, (String, String)>, pem: &str) -> Option<String> {
    certificates
        .iter()
        .find(|(_, (_, p))| p.trim() == pem.trim())
        .map(|(id, _)| id.clone())
}

/// Whatever the device holds, delivered or applied, is ACTIVE.
async fn never_cut_off(stack: &Stack, device: &str, step: &str) {
    let certificates = stack.thing_certificates(device).await;
    let configured = stack.mender.configuration(device).unwrap_or_default();
    let reported = stack
        .mender
        .reported_configuration(device)
        .unwrap_or_default();
    for (which, configuration) in [("delivered", configured), ("reported", reported)] {
        let Some(pem) = configuration.get("awsCertificate") else {
            continue;
        };
        let id = id_of(&certificates, pem)
            .unwrap_or_else(|| panic!("{step}: the {which} certificate is not attached"));
        assert_eq!(
            certificates[&id].0, "ACTIVE",
            "{step}: the {which} certificate {id} is not ACTIVE"
        );
    }
}

/// The device applies its current configuration and reports it.
fn apply(stack: &Stack, device: &str) {
    let configured = stack.mender.configuration(device).unwrap();
    stack.mender.report_configuration(device, configured);
}

async fn rotation(stack: &Stack, method: Method, device: &str, token: &str) -> Answer {
    stack
        .call(
            method,
            &api(&format!("/devices/{device}/rotation")),
            Some(token),
            None,
        )
        .await
}

/// An accepted, provisioned device that has applied its configuration.
async fn provisioned(stack: &Stack) -> String {
    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    apply(stack, &device);
    device
}

/// A sync run through the API, to its end.
async fn sync(stack: &Stack) {
    let run = stack.reconcile_run(&stack.admin_token, None).await;
    assert_eq!(run["state"], "done", "{run}");
}

/// A lifecycle event for the device, as Mender would send on any change.
async fn event(stack: &Stack, device: &str) {
    let body = serde_json::json!({"id": uuid::Uuid::new_v4().to_string(),
        "type": "device-status-changed", "data": {"id": device, "status": "accepted"},
        "time": "2026-12-01T00:00:00Z"});
    assert_eq!(stack.post_webhook(&body).await.status(), 202);
    stack.bus.wait_idle().await;
}

/// Starts a rotation and checks what it answers and holds: the old
/// certificate and a new one, both ACTIVE, the new one delivered.
async fn start(stack: &Stack, device: &str) -> (String, String) {
    let before = stack.thing_certificates(device).await;
    assert_eq!(before.len(), 1);
    let old = before.keys().next().unwrap().clone();
    let deployments = stack.mender.deployments(device).len();
    let started = rotation(stack, Method::POST, device, &stack.admin_token).await;
    assert_eq!(started.status, 201, "{}", started.text);
    assert_eq!(started.body["state"], "waiting", "{}", started.text);
    assert_eq!(
        started.body["previous_certificate_ids"],
        serde_json::json!([old])
    );
    let new = started.body["certificate_id"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let after = stack.thing_certificates(device).await;
    assert_eq!(after.len(), 2);
    assert!(after.values().all(|(status, _)| status == "ACTIVE"));
    let configured = stack.mender.configuration(device).unwrap();
    assert_eq!(
        id_of(&after, &configured["awsCertificate"]),
        Some(new.clone())
    );
    assert!(configured["awsPrivateKey"].contains("PRIVATE KEY"));
    assert_eq!(stack.mender.deployments(device).len(), deployments + 1);
    never_cut_off(stack, device, "started").await;
    (old, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_applies_late_keeps_its_old_certificate_until_it_reports_the_new_one() {
    let stack = Stack::start().await;
    let device = provisioned(&stack).await;
    let idle = rotation(&stack, Method::GET, &device, &stack.admin_token).await;
    assert_eq!(idle.status, 200, "{}", idle.text);
    assert_eq!(idle.body["state"], "idle");

    let (old, new) = start(&stack, &device).await;
    // Events and runs meanwhile understand the rotation: nothing is undone.
    event(&stack, &device).await;
    sync(&stack).await;
    never_cut_off(&stack, &device, "converged while waiting").await;
    assert_eq!(stack.thing_certificates(&device).await.len(), 2);
    let waiting = rotation(&stack, Method::GET, &device, &stack.admin_token).await;
    assert_eq!(waiting.body["state"], "waiting", "{}", waiting.text);
    assert!(waiting.body["delivered_at"].is_string(), "{}", waiting.text);

    // The device applies it, late.
    tokio::time::sleep(Duration::from_millis(50)).await;
    apply(&stack, &device);
    let applied = rotation(&stack, Method::GET, &device, &stack.admin_token).await;
    assert_eq!(applied.body["state"], "applied", "{}", applied.text);
    assert_eq!(
        applied.body["previous_certificate_ids"],
        serde_json::json!([old])
    );
    never_cut_off(&stack, &device, "applied").await;

    // The next convergence retires the old certificate.
    sync(&stack).await;
    let left = stack.thing_certificates(&device).await;
    assert_eq!(left.keys().cloned().collect::<Vec<_>>(), vec![new.clone()]);
    assert_eq!(left[&new].0, "ACTIVE");
    assert!(
        deleted(&stack, &old).await,
        "the old certificate is deleted"
    );
    let done = rotation(&stack, Method::GET, &device, &stack.admin_token).await;
    assert_eq!(done.body["state"], "idle");
    assert_eq!(done.body["certificate_id"], new.as_str());
    never_cut_off(&stack, &device, "done").await;

    // And it can be rotated again.
    start(&stack, &device).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_applies_at_once_loses_its_old_certificate_at_the_next_event() {
    let stack = Stack::start().await;
    let device = provisioned(&stack).await;
    let (old, new) = start(&stack, &device).await;
    apply(&stack, &device);
    never_cut_off(&stack, &device, "applied at once").await;
    event(&stack, &device).await;
    let left = stack.thing_certificates(&device).await;
    assert!(!left.contains_key(&old));
    assert_eq!(left.keys().cloned().collect::<Vec<_>>(), vec![new]);
    never_cut_off(&stack, &device, "after the event").await;
    // A device that applied its last rotation can be rotated straight away.
    let again = rotation(&stack, Method::POST, &device, &stack.admin_token).await;
    assert_eq!(again.status, 201, "{}", again.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_never_applies_keeps_working_and_the_rotation_can_be_cancelled() {
    let stack = Stack::start().await;
    let device = provisioned(&stack).await;
    let held = stack.mender.configuration(&device).unwrap();
    let (old, new) = start(&stack, &device).await;
    for _ in 0..2 {
        sync(&stack).await;
        event(&stack, &device).await;
        never_cut_off(&stack, &device, "never applied").await;
    }
    let waiting = rotation(&stack, Method::GET, &device, &stack.admin_token).await;
    assert_eq!(waiting.body["state"], "waiting", "{}", waiting.text);

    let deployments = stack.mender.deployments(&device).len();
    let cancelled = rotation(&stack, Method::DELETE, &device, &stack.admin_token).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["state"], "idle", "{}", cancelled.text);
    assert_eq!(cancelled.body["certificate_id"], old.as_str());
    // The device is given back exactly the certificate and key it holds.
    let restored = stack.mender.configuration(&device).unwrap();
    assert_eq!(restored["awsCertificate"], held["awsCertificate"]);
    assert_eq!(restored["awsPrivateKey"], held["awsPrivateKey"]);
    assert_eq!(stack.mender.deployments(&device).len(), deployments + 1);
    let left = stack.thing_certificates(&device).await;
    assert_eq!(left.keys().cloned().collect::<Vec<_>>(), vec![old]);
    assert!(
        deleted(&stack, &new).await,
        "the certificate never applied is deleted"
    );
    never_cut_off(&stack, &device, "cancelled").await;

    let again = rotation(&stack, Method::DELETE, &device, &stack.admin_token).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(
        again.text.contains("no rotation is waiting"),
        "{}",
        again.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_that_could_cut_a_device_off_or_are_not_the_callers_change_nothing() {
    let stack = Stack::start().await;
    // Accepted and provisioned, but it never reported its configuration.
    let silent = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&silent).await;
    stack.bus.wait_idle().await;
    let device = provisioned(&stack).await;
    let pending = stack.mender.add_device(TENANT, "pending", None);
    let observer =
        stack
            .mender
            .add_user(TENANT, "observer@acme.test", &["RBAC_ROLE_OBSERVER"], None);
    let observer = stack.mender.issue_token(&observer, Duration::from_secs(60));

    let total = stack.certificates().await.len();
    let unreported = rotation(&stack, Method::POST, &silent, &stack.admin_token).await;
    assert_eq!(unreported.status, 409, "{}", unreported.text);
    assert!(
        unreported.text.contains("has not reported"),
        "{}",
        unreported.text
    );
    let shown = rotation(&stack, Method::GET, &silent, &stack.admin_token).await;
    assert_eq!(shown.body["state"], "unreported", "{}", shown.text);

    for (method, device, token, status) in [
        (Method::POST, device.as_str(), observer.as_str(), 403),
        (Method::GET, device.as_str(), observer.as_str(), 403),
        (Method::DELETE, device.as_str(), observer.as_str(), 403),
        (
            Method::POST,
            pending.as_str(),
            stack.admin_token.as_str(),
            409,
        ),
        (
            Method::GET,
            pending.as_str(),
            stack.admin_token.as_str(),
            404,
        ),
        (
            Method::POST,
            "no-such-device",
            stack.admin_token.as_str(),
            404,
        ),
        (Method::POST, "bad%20id", stack.admin_token.as_str(), 404),
        (
            Method::PUT,
            device.as_str(),
            stack.admin_token.as_str(),
            405,
        ),
    ] {
        let answer = rotation(&stack, method.clone(), device, token).await;
        assert_eq!(answer.status, status, "{method} {device}: {}", answer.text);
        assert!(answer.body["error"].is_string(), "{}", answer.text);
    }
    let anonymous = stack
        .call(
            Method::POST,
            &api(&format!("/devices/{device}/rotation")),
            None,
            None,
        )
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(stack.certificates().await.len(), total, "nothing was made");

    start(&stack, &device).await;
    let second = rotation(&stack, Method::POST, &device, &stack.admin_token).await;
    assert_eq!(second.status, 409, "{}", second.text);
    assert!(second.text.contains("already waiting"), "{}", second.text);
    assert_eq!(stack.certificates().await.len(), total + 1);
}

/// AWS's id of a certificate: the SHA-256 of its DER.
fn certificate_id(pem: &str) -> String {
    use sha2::Digest;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("a PEM certificate");
    hex::encode(sha2::Sha256::digest(&pem.contents))
}

/// Every device's delivered and reported certificate is ACTIVE in AWS: one
/// listing of every certificate, the ids computed from the PEMs Mender holds.
async fn no_device_cut_off(stack: &Stack, devices: &[String], step: &str) {
    let statuses: BTreeMap<String, String> = stack
        .certificates()
        .await
        .into_iter()
        .map(|(id, _, status)| (id, status))
        .collect();
    for device in devices {
        let reported = stack.mender.reported_configuration(device);
        for (which, configuration) in [
            ("delivered", stack.mender.configuration(device)),
            ("reported", reported),
        ] {
            let Some(pem) = configuration.and_then(|c| c.get("awsCertificate").cloned()) else {
                continue;
            };
            let id = certificate_id(&pem);
            assert_eq!(
                statuses.get(&id).map(String::as_str),
                Some("ACTIVE"),
                "{step}: the certificate {device} was {which} ({id})"
            );
        }
    }
}

/// The devices whose delivered configuration they have not applied yet.
fn not_applied(stack: &Stack, devices: &[String]) -> Vec<String> {
    devices
        .iter()
        .filter(|device| {
            stack.mender.configuration(device) != stack.mender.reported_configuration(device)
        })
        .cloned()
        .collect()
}

/// Converges each device as its lifecycle event would (not paced: only
/// runs are).
async fn converge_each(stack: &Stack, devices: &[String]) {
    use futures::StreamExt;
    futures::stream::iter(devices)
        .for_each_concurrent(8, |device| async move {
            let accepted = envelope(stack, DetailType::DeviceAccepted, device);
            bridge::lifecycle::handle(stack.lifecycle(), accepted)
                .await
                .unwrap();
        })
        .await;
}

/// AWS IoT Core writes per second of the fleet test's run, and each write
/// API's quota in the test (AWS's defaults are higher; a run's pace leaves
/// the account's other users their share).
const RUN_WRITES_PER_SECOND: u32 = 24;
const QUOTA_PER_SECOND: f64 = 10.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_rotation_run_keeps_its_pace_never_cuts_a_device_off_and_leaves_no_orphans() {
    use bridge::reconcile::{RunRequest, RunState, Scope, step};
    use integration_tests::fault_proxy::FaultRule;

    const GROUP: &str = "field";
    let stack = Stack::start_configured(|config| {
        config.run_aws_writes_per_second = Some(RUN_WRITES_PER_SECOND);
    })
    .await;
    let field: Vec<String> = (0..200)
        .map(|_| stack.mender.add_device(TENANT, "accepted", Some(GROUP)))
        .collect();
    let lab: Vec<String> = (0..10)
        .map(|_| stack.mender.add_device(TENANT, "accepted", Some("lab")))
        .collect();
    let pending = stack.mender.add_device(TENANT, "pending", Some(GROUP));
    let all: Vec<String> = field.iter().chain(&lab).cloned().collect();
    converge_each(&stack, &all).await;
    // Every device has applied its configuration but two; one rotation of
    // the group is already waiting.
    let (unreported, reporting) = field.split_at(2);
    for device in reporting.iter().chain(&lab) {
        apply(&stack, device);
    }
    let waiting = &reporting[0];
    let started = rotation(&stack, Method::POST, waiting, &stack.admin_token).await;
    assert_eq!(started.status, 201, "{}", started.text);
    let lab_before: Vec<_> = lab.iter().map(|d| stack.mender.configuration(d)).collect();

    // A group that is not there is refused before anything starts.
    let refused = stack
        .call(
            Method::POST,
            &stack.integration_path("/rotation"),
            Some(&stack.admin_token),
            Some(&serde_json::json!({ "group": "nowhere" })),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.text.contains("no group `nowhere`"),
        "{}",
        refused.text
    );

    const WRITES: [&str; 3] = [
        "CreateCertificateFromCsr",
        "AttachThingPrincipal",
        "AttachPolicy",
    ];
    for operation in WRITES {
        stack.aws_proxy.inject(FaultRule::rate_limit(
            operation,
            QUOTA_PER_SECOND,
            QUOTA_PER_SECOND / 2.0,
        ));
    }
    stack.aws_proxy.reset_calls();
    let reconciler = stack.bus.reconciler();
    let scope = Some(Scope::Group(GROUP.to_owned()));
    let mut run = reconciler
        .runs
        .start(TENANT, &stack.integration_id, RunRequest::Rotation(scope))
        .await
        .unwrap();
    // An admin rotates one device after the run began (as the run itself
    // would have before an invocation stopped short of its checkpoint): it
    // counts as rotated, not refused.
    let meanwhile = &reporting[1];
    let started = rotation(&stack, Method::POST, meanwhile, &stack.admin_token).await;
    assert_eq!(started.status, 201, "{}", started.text);
    stack.aws_proxy.reset_calls();
    // One page per invocation; between them, a third of the rotated devices
    // apply at once.
    let mut checkpoints = 0;
    let began = std::time::Instant::now();
    while run.state == RunState::Running {
        run = step(reconciler, &run.run_id, std::time::Instant::now())
            .await
            .unwrap();
        checkpoints += 1;
        assert!(checkpoints <= 10, "no progress: {run:?}");
        for device in not_applied(&stack, reporting).iter().step_by(3) {
            apply(&stack, device);
        }
        no_device_cut_off(&stack, &all, &format!("checkpoint {checkpoints}")).await;
    }
    assert!(checkpoints >= 3, "{checkpoints} checkpoints");
    // The run's writes kept its pace: over the whole run, a burst and then
    // the pace; in any one second, no more than a burst and a second's worth
    // (a throttled attempt's retry is the same write, counted once).
    let calls = stack.aws_proxy.calls();
    let writes: Vec<std::time::Instant> = calls
        .iter()
        .filter(|call| WRITES.contains(&call.operation.as_str()) && call.fault.is_none())
        .map(|call| call.at)
        .collect();
    assert!(writes.len() >= 3 * 196, "{} writes", writes.len());
    let elapsed = began.elapsed().as_secs_f64();
    let pace = f64::from(RUN_WRITES_PER_SECOND);
    assert!(
        writes.len() as f64 <= pace * elapsed + pace,
        "{} writes in {elapsed:.1} s",
        writes.len()
    );
    let busiest = writes
        .iter()
        .map(|from| {
            writes
                .iter()
                .filter(|at| **at >= *from && at.duration_since(*from) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        busiest <= 2 * RUN_WRITES_PER_SECOND as usize,
        "{busiest} writes in one second"
    );
    let throttled = calls.iter().filter(|call| call.fault.is_some()).count();
    println!(
        "{} writes, at most {busiest} in a second, {throttled} throttled",
        writes.len()
    );
    stack.aws_proxy.clear();

    // Reported device by device, through the API.
    let shown = stack
        .call(
            Method::GET,
            &stack.integration_path(&format!("/rotation/{}", run.run_id)),
            Some(&stack.admin_token),
            None,
        )
        .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let body = &shown.body;
    assert_eq!(body["state"], "done", "{}", shown.text);
    assert_eq!(body["counts"]["seen"], 201, "{}", shown.text);
    assert_eq!(body["counts"]["rotated"], 197, "{}", shown.text);
    assert_eq!(body["counts"]["refused"], 4, "{}", shown.text);
    assert_eq!(body["counts"]["failed"], 0, "{}", shown.text);
    let mut refusals: Vec<(String, String)> = body["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let reason = r["reason"].as_str().unwrap();
            let why = ["not reported", "already waiting", "not accepted"]
                .into_iter()
                .find(|why| reason.contains(why))
                .unwrap_or(reason);
            (r["device_id"].as_str().unwrap().to_owned(), why.to_owned())
        })
        .collect();
    refusals.sort();
    let mut expected = vec![
        (unreported[0].clone(), "not reported".to_owned()),
        (unreported[1].clone(), "not reported".to_owned()),
        (waiting.clone(), "already waiting".to_owned()),
        (pending.clone(), "not accepted".to_owned()),
    ];
    expected.sort();
    assert_eq!(refusals, expected);
    let lab_after: Vec<_> = lab.iter().map(|d| stack.mender.configuration(d)).collect();
    assert_eq!(lab_after, lab_before, "the other group is untouched");

    // Another third applies late; their next convergence retires what the
    // applied ones left behind; the rest never apply and keep both.
    for device in not_applied(&stack, reporting).iter().step_by(2) {
        apply(&stack, device);
    }
    converge_each(&stack, &all).await;
    no_device_cut_off(&stack, &all, "after converging").await;
    let never = not_applied(&stack, reporting);
    assert!(never.len() > 30, "{} never applied", never.len());
    let mut attached = std::collections::BTreeSet::new();
    for device in &all {
        let certificates = stack.thing_principals(device).await;
        let expected = if never.contains(device) { 2 } else { 1 };
        assert_eq!(certificates.len(), expected, "{device}");
        attached.extend(certificates);
    }
    let listed: std::collections::BTreeSet<String> = stack
        .certificates()
        .await
        .into_iter()
        .map(|(_, arn, _)| arn)
        .collect();
    assert_eq!(listed, attached, "no certificate is attached to nothing");
}
