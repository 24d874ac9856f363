//! The webhook ingress through the local runner's real route: every refusal
//! is a JSON error that says what is wrong, and publishes nothing.

use integration_tests::stack::{Stack, TENANT};
use serde_json::{Value, json};

async fn post(
    stack: &Stack,
    integration_id: &str,
    body: &[u8],
    signature: Option<String>,
) -> (u16, Value) {
    let mut request = integration_tests::http()
        .post(format!("{}/webhooks/{integration_id}", stack.url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-men-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn signed(stack: &Stack, body: &[u8]) -> Option<String> {
    Some(bridge::webhook::sign(&stack.webhook_secret, body))
}

fn status_changed(device: &str, status: &str) -> Vec<u8> {
    json!({"id": uuid::Uuid::new_v4().to_string(), "type": "device-status-changed",
        "data": {"id": device, "status": status}, "time": "2026-01-01T00:00:00Z"})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_bad_requests_with_clear_json_errors_and_publishes_nothing() {
    let stack = Stack::start().await;
    let id = stack.integration_id.clone();
    let body = status_changed("device-1", "accepted");

    let unknown = uuid::Uuid::new_v4().to_string();
    let exploded = status_changed("device-1", "exploded");
    let bad_device = status_changed("a/b", "accepted");
    // (case, integration id, body, signature, expected status, message)
    type Case<'a> = (&'a str, String, Vec<u8>, Option<String>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "unknown integration",
            unknown.clone(),
            body.clone(),
            signed(&stack, &body),
            404,
            "no integration",
        ),
        (
            "not an integration id",
            "not-a-uuid".into(),
            body.clone(),
            signed(&stack, &body),
            404,
            "no integration",
        ),
        (
            "no signature",
            id.clone(),
            body.clone(),
            None,
            401,
            "missing X-Men-Signature",
        ),
        (
            "wrong signature",
            id.clone(),
            body.clone(),
            Some("00".repeat(32)),
            401,
            "does not match",
        ),
        (
            "not hex",
            id.clone(),
            body.clone(),
            Some("not-hex".into()),
            401,
            "does not match",
        ),
        (
            "signature of another body",
            id.clone(),
            body.clone(),
            signed(&stack, &status_changed("device-2", "accepted")),
            401,
            "does not match",
        ),
        (
            "malformed JSON",
            id.clone(),
            b"{not json".to_vec(),
            signed(&stack, b"{not json"),
            400,
            "not valid JSON",
        ),
        (
            "no type",
            id.clone(),
            br#"{"id":"e"}"#.to_vec(),
            signed(&stack, br#"{"id":"e"}"#),
            400,
            "missing `type`",
        ),
        (
            "no device",
            id.clone(),
            br#"{"id":"e","type":"device-decommissioned","data":{}}"#.to_vec(),
            signed(
                &stack,
                br#"{"id":"e","type":"device-decommissioned","data":{}}"#,
            ),
            400,
            "data.id",
        ),
        (
            "unknown status",
            id.clone(),
            exploded.clone(),
            signed(&stack, &exploded),
            400,
            "unknown device status",
        ),
        (
            "device id that cannot name a Thing",
            id.clone(),
            bad_device.clone(),
            signed(&stack, &bad_device),
            400,
            "data.id",
        ),
    ];
    for (name, integration, body, signature, expected, message) in cases {
        let (status, error) = post(&stack, &integration, &body, signature).await;
        assert_eq!(status, expected, "{name}: {error}");
        let text = error["error"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{name}: {error}");
        assert!(error["code"].is_string(), "{name}: {error}");
        assert!(
            !text.contains(&stack.webhook_secret),
            "{name}: secret in the error"
        );
    }

    // Over 64 KiB: refused before anything else is looked at.
    let oversized = vec![b' '; 64 * 1024 + 1];
    let (status, error) = post(&stack, &unknown, &oversized, None).await;
    assert_eq!(status, 413, "{error}");
    assert!(error["error"].as_str().unwrap().contains("65536"));

    stack.bus.wait_idle().await;
    assert!(
        stack.bus.deliveries().is_empty(),
        "a refused webhook was published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_classifies_and_publishes_device_events() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "rejected", None);
    let body = status_changed(&device, "rejected");
    let (status, answer) = post(&stack, &stack.integration_id, &body, signed(&stack, &body)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["detail_type"], "device-disabled");
    stack.bus.wait_idle().await;
    let deliveries = stack.bus.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].event.device_id, device);
    assert_eq!(deliveries[0].event.tenant_id, TENANT);
    assert_eq!(deliveries[0].event.integration_id, stack.integration_id);
    assert_eq!(deliveries[0].detail_type.as_str(), "device-disabled");

    // Events the bridge does not act on are acknowledged, not published.
    let inventory = json!({"id": "e1", "type": "device-inventory-changed",
        "data": {"device_id": device, "tenant_id": TENANT, "inventory": []}, "time": "2026-01-01T00:00:00Z"})
    .to_string();
    let (status, answer) = post(
        &stack,
        &stack.integration_id,
        inventory.as_bytes(),
        signed(&stack, inventory.as_bytes()),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(answer["status"], "ignored");
    stack.bus.wait_idle().await;
    assert_eq!(stack.bus.deliveries().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_outage_is_a_503_not_a_crash() {
    use integration_tests::fault_proxy::{Fault, FaultRule};
    let stack = Stack::start().await;
    stack
        .aws_proxy
        .inject(FaultRule::always("GetSecretValue", Fault::ServerError));
    let body = status_changed("device-1", "accepted");
    let (status, error) = post(&stack, &stack.integration_id, &body, signed(&stack, &body)).await;
    assert_eq!(status, 503, "{error}");
    assert!(error["error"].as_str().unwrap().contains("try again"));
}

/// Every answer carries Mender's `X-MEN-RequestID`: the caller's when it
/// sent one, a new one otherwise; an error's body names the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_mender_request_id() {
    let stack = Stack::start().await;
    let send = |request_id: Option<&str>, signature: Option<String>, body: Vec<u8>| {
        let mut request = integration_tests::http()
            .post(format!("{}/webhooks/{}", stack.url, stack.integration_id))
            .header("content-type", "application/json")
            .body(body);
        if let Some(id) = request_id {
            request = request.header("X-MEN-RequestID", id);
        }
        if let Some(signature) = signature {
            request = request.header("x-men-signature", signature);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let header = response
                .headers()
                .get("x-men-requestid")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, header, body)
        }
    };

    let (status, header, body) = send(Some("trace-123"), None, b"{}".to_vec()).await;
    assert_eq!(status, 401);
    assert_eq!(header.as_deref(), Some("trace-123"));
    assert_eq!(body["request_id"], "trace-123");

    let (status, header, body) = send(None, None, b"{}".to_vec()).await;
    assert_eq!(status, 401);
    let made = header.expect("a request id");
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    assert_eq!(body["request_id"], made.as_str());

    let device = stack.mender.add_device(TENANT, "accepted", None);
    let accepted = status_changed(&device, "accepted");
    let signature = signed(&stack, &accepted);
    let (status, header, _) = send(Some("trace-456"), signature, accepted).await;
    assert_eq!(status, 202);
    assert_eq!(header.as_deref(), Some("trace-456"));
    stack.bus.wait_idle().await;
}
