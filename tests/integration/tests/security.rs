//! Security: hostile webhooks (forged, replayed, reordered, cross-tenant)
//! cannot make AWS hold anything Mender does not say; and no secret value
//! (private key, secret access key, token, webhook secret) ever reaches a
//! log line or an answer, even with every crate logging at TRACE.
//!
//! This binary keeps its own log capture at TRACE for every crate,
//! installed before any stack starts (the stacks' own debug-level capture
//! then finds a subscriber in place and stays out of the way).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use integration_tests::resilience::{
    TEST_SECRET_ACCESS_KEY, assert_no_secrets, audit, divert_webhooks, known_secrets, leaked,
    record_figures, stored_secret_values,
};
use integration_tests::stack::{POLICY, Stack, TENANT, api, key_pair_setup};

/// An integration id no organization has.
const SOME_ID: &str = "6f2a1a0e-1f3a-4d7e-9a51-0c2b8d1e7f00";
use reqwest::Method;
use serde_json::{Value, json};

/// Every log line of this test binary, at TRACE, from every crate.
fn trace_logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(move || Capture(writer.clone()))
            .with_ansi(false)
            .try_init()
            .expect("the TRACE capture is the first subscriber of this binary");
        logs
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The test binary's tests share one subscriber: whichever runs first
/// installs it, the others wait for that.
fn install_capture() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        trace_logs();
    });
}

/// Posts `body` (raw) to the runner's webhook route with a signature header.
async fn post_raw(stack: &Stack, integration_id: &str, body: &str, signature: Option<&str>) -> u16 {
    let mut request = integration_tests::http()
        .post(format!("{}/webhooks/{integration_id}", stack.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("x-men-signature", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

fn status_event(device: &str, status: &str) -> Value {
    json!({"id": uuid::Uuid::new_v4().to_string(), "type": "device-status-changed",
        "data": {"id": device, "status": status}, "time": "2026-01-01T00:00:00Z"})
}

/// The certificates attached to the device's Thing, as (arn, status).
async fn device_state(stack: &Stack, device: &str) -> Option<Vec<String>> {
    stack.thing_attributes(device).await?;
    let statuses = stack.certificates().await;
    let attached = stack.thing_principals(device).await;
    Some(
        statuses
            .into_iter()
            .filter(|(_, arn, _)| attached.contains(arn))
            .map(|(_, _, status)| status)
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_reordered_webhooks_cannot_move_aws_away_from_mender() {
    install_capture();
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "pending", None);
    let accepted = stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(
        device_state(&stack, &device).await,
        Some(vec!["ACTIVE".into()])
    );
    // Keep Mender's genuine, signed deliveries to replay later.
    let genuine_accept = accepted
        .iter()
        .find(|d| d.event_type == "device-status-changed")
        .expect("a signed status change")
        .body
        .clone();
    let delivered_before = stack.bus.deliveries().len();

    // 1. Forged: wrong key, the secret's text as the key, no signature, a
    //    signature of another body, an empty one. Each is refused (401) and
    //    nothing reaches the bus.
    let decommission = json!({"id": "forged", "type": "device-decommissioned",
        "data": {"id": device}, "time": "2026-01-01T00:00:00Z"})
    .to_string();
    let wrong_key = bridge::webhook::sign(&"ab".repeat(32), decommission.as_bytes());
    let text_key = {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(stack.webhook_secret.as_bytes()).unwrap();
        mac.update(decommission.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let other_body = bridge::webhook::sign(&stack.webhook_secret, genuine_accept.as_bytes());
    for (what, signature) in [
        ("wrong key", Some(wrong_key.as_str())),
        ("secret text as key", Some(text_key.as_str())),
        ("no signature", None),
        ("another body's signature", Some(other_body.as_str())),
        ("empty", Some("")),
    ] {
        assert_eq!(
            post_raw(&stack, &stack.integration_id, &decommission, signature).await,
            401,
            "{what}"
        );
    }
    // A genuine body altered after signing.
    let genuine_signature = bridge::webhook::sign(&stack.webhook_secret, genuine_accept.as_bytes());
    let altered = genuine_accept.replace("accepted", "rejected");
    assert_eq!(
        post_raw(
            &stack,
            &stack.integration_id,
            &altered,
            Some(&genuine_signature)
        )
        .await,
        401
    );
    // Signed for this integration, sent to another id: unknown there.
    assert_eq!(
        post_raw(
            &stack,
            &uuid::Uuid::new_v4().to_string(),
            &genuine_accept,
            Some(&genuine_signature)
        )
        .await,
        404
    );
    stack.bus.wait_idle().await;
    assert_eq!(
        stack.bus.deliveries().len(),
        delivered_before,
        "nothing was published"
    );
    assert_eq!(
        device_state(&stack, &device).await,
        Some(vec!["ACTIVE".into()])
    );

    // 2. Replayed: Mender rejects the device; its old, genuinely signed
    //    `accepted` event is replayed (again and again). The certificate
    //    stays INACTIVE: the bridge asks Mender, not the payload.
    stack.mender.reject(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(
        device_state(&stack, &device).await,
        Some(vec!["INACTIVE".into()])
    );
    for _ in 0..3 {
        assert_eq!(
            post_raw(
                &stack,
                &stack.integration_id,
                &genuine_accept,
                Some(&genuine_signature)
            )
            .await,
            202,
            "a replay is well signed: accepted as a trigger"
        );
    }
    stack.bus.wait_idle().await;
    assert_eq!(
        device_state(&stack, &device).await,
        Some(vec!["INACTIVE".into()])
    );

    // 3. A signed decommission event for a device Mender still has: the
    //    device keeps its Thing and certificate.
    let live = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&live).await;
    stack.bus.wait_idle().await;
    assert_eq!(
        stack
            .post_webhook(&json!({"id": "replayed", "type": "device-decommissioned",
        "data": {"id": live}, "time": "2026-01-01T00:00:00Z"}))
            .await
            .status(),
        202
    );
    assert_eq!(
        stack
            .post_webhook(&status_event(&live, "decommissioned"))
            .await
            .status(),
        202
    );
    stack.bus.wait_idle().await;
    assert_eq!(
        device_state(&stack, &live).await,
        Some(vec!["ACTIVE".into()])
    );

    // 4. Reordered: a rejection happens, then an acceptance, and their
    //    events arrive newest first, then oldest again.
    divert_webhooks(&stack);
    let flipping = stack.mender.add_device(TENANT, "pending", None);
    let first = stack.mender.accept(&flipping).await;
    let second = stack.mender.reject(&flipping).await;
    let third = stack.mender.accept(&flipping).await;
    for delivery in third.iter().chain(&second).chain(&first).chain(&second) {
        assert_eq!(stack.post_webhook(&delivery.json()).await.status(), 202);
    }
    stack.bus.wait_idle().await;
    assert_eq!(
        device_state(&stack, &flipping).await,
        Some(vec!["ACTIVE".into()])
    );

    // 5. Cross-tenant: a device of another organization named in a
    //    well-signed event of ours. Mender does not show it to our
    //    organization's token, so nothing is made.
    stack.mender.add_tenant("globex", true);
    let foreign = stack.mender.add_device("globex", "accepted", None);
    assert_eq!(
        stack
            .post_webhook(&status_event(&foreign, "accepted"))
            .await
            .status(),
        202
    );
    // 6. A device Mender never had, and ids that cannot name a Thing.
    assert_eq!(
        stack
            .post_webhook(&status_event("never-existed", "accepted"))
            .await
            .status(),
        202
    );
    for bad in ["../../etc", "a b", &"x".repeat(200)] {
        assert_eq!(
            stack
                .post_webhook(&status_event(bad, "accepted"))
                .await
                .status(),
            400,
            "{bad}"
        );
    }
    stack.bus.wait_idle().await;
    assert!(stack.thing_attributes(&foreign).await.is_none());
    assert!(stack.thing_attributes("never-existed").await.is_none());

    // Our organization's devices are as Mender says (the foreign one is
    // another organization's: checked absent above).
    let devices = vec![device.clone(), live, flipping];
    if let Err(problems) = audit(&stack, &devices).await {
        panic!("AWS does not hold what Mender says: {problems:?}");
    }
    assert!(
        stack.bus.dead_letters().is_empty(),
        "{:?}",
        stack.bus.dead_letters()
    );
    let secrets = known_secrets(&stack, &devices).await;
    assert_no_secrets("the logs", &trace_logs(), &secrets);
}

/// A whole organization's life at TRACE level (every crate: the bridge,
/// the AWS SDK, hyper, reqwest): setup through the API, acceptance,
/// shadow writes and reads, rejection, decommissioning, removal, and
/// refusals on the way. No secret appears in any log line or answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_scenario_at_trace_level_leaks_no_secret() {
    install_capture();
    let stack = Stack::bare().await;
    let mut answers = Vec::new();
    let admin = Some(stack.admin_token.as_str());

    // Refusals that carry secrets in their requests first: nothing is echoed.
    let mut bad = key_pair_setup(POLICY);
    bad["credentials"]["aws"]["secret_access_key"] = json!(format!("{TEST_SECRET_ACCESS_KEY}XX"));
    bad["mender_token"] = json!("not-a-token-but-secret-looking-0123456789");
    let refused = stack
        .call(Method::POST, &api("/integrations"), admin, Some(&bad))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    answers.push(refused.text);
    let mut wrong_token = key_pair_setup(POLICY);
    wrong_token["mender_token"] = json!(stack.admin_token.replace('.', "x"));
    answers.push(
        stack
            .call(
                Method::POST,
                &api("/integrations"),
                admin,
                Some(&wrong_token),
            )
            .await
            .text,
    );

    let created = stack
        .call(
            Method::POST,
            &api("/integrations"),
            admin,
            Some(&key_pair_setup(POLICY)),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let integration_id = created.body["id"].as_str().unwrap().to_owned();
    let integration = api(&format!("/integrations/{integration_id}"));
    answers.push(created.text);
    answers.push(
        stack
            .call(Method::GET, &integration, admin, None)
            .await
            .text,
    );
    answers.push(
        stack
            .call(
                Method::PUT,
                &integration,
                admin,
                Some(&key_pair_setup(POLICY)),
            )
            .await
            .text,
    );

    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(stack.thing_principals(&device).await.len(), 1);
    let path = api(&format!("/devices/{device}/state/{integration_id}"));
    for body in [
        json!({"desired": {"interval": 60}}),
        json!({"desired": {"interval": null}}),
    ] {
        let answer = stack.call(Method::PUT, &path, admin, Some(&body)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answers.push(answer.text);
    }
    answers.push(stack.call(Method::GET, &path, admin, None).await.text);
    answers.push(
        stack
            .call(Method::GET, &path, Some("garbage"), None)
            .await
            .text,
    );

    // A forged webhook and a bad body.
    assert_eq!(
        post_raw(&stack, &integration_id, "{}", Some(&"00".repeat(32))).await,
        401
    );

    // Gather every secret while it still exists: the webhook secret Mender
    // holds, the bridge's token and the AWS key in Secrets Manager, the
    // device's private key in its configuration.
    let mut secrets = known_secrets(&stack, std::slice::from_ref(&device)).await;
    secrets.extend(stored_secret_values(&stack).await);
    assert!(
        secrets.len() >= 5,
        "the scan knows the secrets it looks for: {} found",
        secrets.len()
    );

    stack.mender.reject(&device).await;
    stack.bus.wait_idle().await;
    stack.mender.decommission(&device).await;
    stack.bus.wait_idle().await;
    assert!(stack.thing_attributes(&device).await.is_none());
    let removed = stack.call(Method::DELETE, &integration, admin, None).await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    answers.push(
        stack
            .call(Method::DELETE, &integration, admin, None)
            .await
            .text,
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    let logs = trace_logs();
    let lines = logs.lines().count();
    assert!(lines > 1000, "TRACE captured only {lines} lines");
    assert!(
        logs.contains("device converged"),
        "the bridge's own lines are captured"
    );
    let answers = answers.join("\n");
    let leaks_in_logs = leaked(&logs, &secrets).len();
    let leaks_in_answers = leaked(&answers, &secrets).len();
    record_figures(
        "secret_scan",
        &json!({"log_lines": lines, "log_bytes": logs.len(), "answers": answers.lines().count(),
            "secrets_checked": secrets.len(), "leaks_in_logs": leaks_in_logs, "leaks_in_answers": leaks_in_answers}),
    );
    println!(
        "secret scan: {lines} log lines at TRACE, {} answers, {} secret values: {leaks_in_logs} in logs, {leaks_in_answers} in answers",
        answers.lines().count(),
        secrets.len()
    );
    assert_no_secrets("the answers", &answers, &secrets);
    assert_no_secrets("the TRACE logs", &logs, &secrets);
}

/// The scan can fail: a log line carrying a secret is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scan_finds_a_planted_secret() {
    install_capture();
    let key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
    let secrets = vec![key.to_owned(), "0123456789abcdef0123".to_owned()];
    tracing::debug!(
        line = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
        "planted"
    );
    assert_eq!(leaked(&trace_logs(), &secrets), vec![key]);
    assert!(leaked("nothing here", &secrets).is_empty());
}

/// Roles fail closed: only open-source Mender (no roles, no organization
/// claim) makes every user an admin; an organization's token whose user has
/// no roles is no admin by omission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_roles_is_an_admin_only_in_open_source_mender() {
    install_capture();
    let stack = Stack::start().await;
    let long = Duration::from_secs(3600);
    // An Enterprise organization whose users carry no roles.
    stack.mender.add_tenant("initech", false);
    let user = stack
        .mender
        .add_user("initech", "user@initech.test", &[], None);
    let token = stack.mender.issue_token(&user, long);
    let answer = stack
        .call(Method::GET, &api("/integrations"), Some(&token), None)
        .await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    let answer = stack
        .call(
            Method::POST,
            &api(&format!("/integrations/{SOME_ID}/reconcile")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(answer.status, 403, "{}", answer.text);

    // Open source: the same user shape is the organization's admin (it has
    // no integration yet, so 404 rather than 403).
    stack.mender.add_tenant("default", false);
    let user = stack.mender.add_user("default", "user@oss.test", &[], None);
    let token = stack.mender.issue_token(&user, long);
    let answer = stack
        .call(
            Method::GET,
            &api(&format!("/integrations/{SOME_ID}")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(answer.status, 404, "{}", answer.text);
}
