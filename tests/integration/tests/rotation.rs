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

use integration_tests::stack::{Answer, Stack, TENANT};
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
            &format!("/devices/{device}/rotation"),
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
            &format!("/devices/{device}/rotation"),
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
