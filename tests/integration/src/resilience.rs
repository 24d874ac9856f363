//! Helpers for the resilience and security suites (fault matrix,
//! concurrency properties, hostile webhooks, secret scans): cold handler
//! instances with a chosen call policy, direct calls of the HTTP handlers,
//! a global audit of what AWS holds, and the list of secret values no log
//! line or answer may contain.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use bridge::config::{CallBudget, CallPolicy};
use bridge::events::{BusEnvelope, DetailType, EventBus, LifecycleEvent, PublishError};
use bridge::integration::IntegrationApi;
use bridge::lifecycle::Lifecycle;
use bridge::reconcile::Reconciler;
use bridge::rotation::RotationApi;
use bridge::shadow::api::ShadowApi;
use bridge::wiring::Wiring;
use lambda_http::RequestExt;

use crate::moto::free_port;
use crate::stack::{Stack, TENANT, emulator_config, test_config};

/// For injected timeouts: a call that hangs costs 2.5 s per attempt, so a
/// persistent timeout fails within seconds, while a retried call still has
/// room on a busy 2-core machine where the emulator is slow (1.5 s was seen
/// to time out honest retries under load).
pub fn short_timeouts() -> CallBudget {
    CallBudget {
        aws: CallPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            attempt_timeout: Duration::from_millis(2500),
            operation_timeout: Duration::from_millis(10_000),
            throttle_patience: Duration::ZERO,
        },
        mender_timeout: Duration::from_millis(2500),
    }
}

/// A bus that only records: setup never publishes unless asked to backfill.
#[derive(Clone, Default)]
pub struct RecordingBus {
    pub published: Arc<Mutex<Vec<(DetailType, serde_json::Value)>>>,
}

impl EventBus for RecordingBus {
    async fn publish(
        &self,
        detail_type: DetailType,
        detail: &serde_json::Value,
    ) -> Result<(), PublishError> {
        self.published
            .lock()
            .unwrap()
            .push((detail_type, detail.clone()));
        Ok(())
    }
}

/// Fresh instances of the handlers (nothing cached: settings, tenants,
/// endpoint, confirmed tokens), as a cold Lambda start would have them,
/// talking to the stack's fault proxies with `policy`.
pub struct Cold {
    pub lifecycle: Lifecycle,
    pub integration: IntegrationApi<RecordingBus>,
    pub shadow: ShadowApi,
    pub reconciler: Reconciler,
    pub rotation: RotationApi,
}

impl Cold {
    pub async fn new(stack: &Stack, budget: CallBudget) -> Cold {
        let aws = emulator_config(&stack.aws_proxy.url(), "us-east-1", budget.aws).await;
        Cold::with(aws, &stack.mender_proxy.url(), &stack.url, budget)
    }

    pub fn with(aws: SdkConfig, mender_url: &str, public_url: &str, budget: CallBudget) -> Cold {
        let wiring = Wiring::new(test_config(mender_url, public_url, budget), aws);
        Cold {
            lifecycle: wiring.lifecycle(),
            reconciler: wiring.reconciler(&wiring.lifecycle()),
            integration: wiring.integration_api(RecordingBus::default()),
            shadow: wiring.shadow_api(),
            rotation: wiring.rotation_api(),
        }
    }

    /// `POST integrations` as `token`.
    pub async fn create_integration(&self, token: &str, body: &serde_json::Value) -> Reply {
        self.integration_route(http::Method::POST, "", token, Some(body))
            .await
    }

    /// `GET integrations` as `token`: the organization's integrations.
    pub async fn integrations(&self, token: &str) -> Reply {
        self.integration_route(http::Method::GET, "", token, None)
            .await
    }

    /// `DELETE integrations/{id}` as `token`.
    pub async fn delete_integration(&self, token: &str, id: &str) -> Reply {
        self.integration_route(http::Method::DELETE, &format!("/{id}"), token, None)
            .await
    }

    /// `integrations{tail}` as `token`.
    async fn integration_route(
        &self,
        method: http::Method,
        tail: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Reply {
        let path = crate::stack::api(&format!("/integrations{tail}"));
        let request = lambda_request(method, &path, &[], &[], Some(token), body);
        Reply::from(bridge::integration::handle(&self.integration, request).await)
    }

    /// `PUT devices/{device}/state/{integration_id}` as `token`.
    pub async fn put_state(
        &self,
        device: &str,
        integration_id: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Reply {
        let request = lambda_request(
            http::Method::PUT,
            &crate::stack::api(&format!("/devices/{device}/state/{integration_id}")),
            &[("device_id", device), ("integration_id", integration_id)],
            &[],
            Some(token),
            Some(body),
        );
        Reply::from(bridge::shadow::api::update_state(&self.shadow, request).await)
    }

    /// `POST devices/{device}/rotation` as `token`.
    pub async fn rotate(&self, device: &str, token: &str) -> Reply {
        let request = lambda_request(
            http::Method::POST,
            &crate::stack::api(&format!("/devices/{device}/rotation")),
            &[("device_id", device)],
            &[],
            Some(token),
            None,
        );
        Reply::from(bridge::rotation::handle(&self.rotation, request).await)
    }
}

/// A request as API Gateway hands it to a function.
pub fn lambda_request(
    method: http::Method,
    path: &str,
    path_parameters: &[(&str, &str)],
    query: &[(&str, &str)],
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> lambda_http::Request {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("https://bridge.test{path}"));
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            lambda_http::Body::Text(body.to_string())
        }
        None => lambda_http::Body::Empty,
    };
    let to_map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    builder
        .body(body)
        .expect("a valid request")
        .with_path_parameters(to_map(path_parameters))
        .with_query_string_parameters(to_map(query))
}

/// A handler's answer: status, JSON body (`Null` if none), text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
}

impl From<lambda_http::Response<lambda_http::Body>> for Reply {
    fn from(response: lambda_http::Response<lambda_http::Body>) -> Reply {
        let status = response.status().as_u16();
        let text = String::from_utf8_lossy(bridge::http::body_bytes(response.body())).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply { status, body, text }
    }
}

impl Reply {
    /// A refusal that says what is wrong: JSON `{error, code}`, and a status
    /// that tells the caller to come back later (not a bare 500).
    pub fn is_clear_outage(&self) -> bool {
        matches!(self.status, 502..=504)
            && self.body["error"].as_str().is_some_and(|e| !e.is_empty())
            && self.body["code"].is_string()
    }
}

/// A bus event for one device of the stack's integration.
pub fn envelope(stack: &Stack, detail_type: DetailType, device_id: &str) -> BusEnvelope {
    BusEnvelope {
        detail_type,
        detail: LifecycleEvent {
            tenant_id: TENANT.to_owned(),
            integration_id: stack.integration_id.clone(),
            device_id: device_id.to_owned(),
            mender_event_id: uuid::Uuid::new_v4().to_string(),
            mender_event_type: "device-status-changed".to_owned(),
            time: "2026-01-01T00:00:00Z".to_owned(),
        },
    }
}

/// Points the organization's Mender webhook at a closed port, so that
/// state changes made through the stand-in's library API reach the bridge
/// only when a test delivers them itself.
pub fn divert_webhooks(stack: &Stack) {
    let sink = format!("http://127.0.0.1:{}/nowhere", free_port());
    stack
        .mender
        .register_webhook(TENANT, &sink, &stack.webhook_secret);
}

/// What AWS IoT holds, by Thing: its certificates as (arn, status).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IotSnapshot {
    pub things: BTreeMap<String, Vec<(String, String)>>,
    /// Certificates attached to no Thing: orphans.
    pub orphans: Vec<String>,
    /// Policy attachments to certificates that no longer exist.
    pub dangling_policy_targets: Vec<String>,
}

/// Lists every Thing, certificate and policy target in the emulator.
pub async fn snapshot(stack: &Stack) -> IotSnapshot {
    let iot = stack.iot();
    let certificates = stack.certificates().await;
    let status: HashMap<String, String> = certificates
        .iter()
        .map(|(_, arn, status)| (arn.clone(), status.clone()))
        .collect();
    let listed = iot.list_things().max_results(250).send().await.unwrap();
    let mut things = BTreeMap::new();
    let mut attached = BTreeSet::new();
    for thing in listed.things() {
        let name = thing.thing_name().unwrap().to_owned();
        let principals = stack.thing_principals(&name).await;
        let mut held = Vec::new();
        for arn in principals {
            attached.insert(arn.clone());
            let state = status
                .get(&arn)
                .cloned()
                .unwrap_or_else(|| "MISSING".to_owned());
            held.push((arn, state));
        }
        things.insert(name, held);
    }
    let orphans = certificates
        .iter()
        .filter(|(_, arn, _)| !attached.contains(arn))
        .map(|(_, arn, _)| arn.clone())
        .collect();
    let dangling_policy_targets = stack
        .policy_targets()
        .await
        .into_iter()
        .filter(|arn| !status.contains_key(arn))
        .collect();
    IotSnapshot {
        things,
        orphans,
        dangling_policy_targets,
    }
}

/// What Mender says a device should have in AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A Thing with exactly one ACTIVE certificate.
    Active,
    /// A Thing whose certificates (at most one) are INACTIVE, or nothing if it
    /// was never provisioned.
    Inactive,
    /// No Thing.
    Gone,
}

impl Expected {
    /// From the stand-in's device status (`None`: decommissioned).
    pub fn of(status: Option<&str>) -> Expected {
        match status {
            Some("accepted") => Expected::Active,
            None | Some("decommissioned") => Expected::Gone,
            // preauthorized keeps what exists; never provisioned here
            _ => Expected::Inactive,
        }
    }
}

/// Checks that AWS holds exactly what Mender says for `devices`, and that
/// nothing anywhere is orphaned. Returns every discrepancy.
pub async fn audit(stack: &Stack, devices: &[String]) -> Result<IotSnapshot, Vec<String>> {
    let snapshot = snapshot(stack).await;
    let mut problems = Vec::new();
    if !snapshot.orphans.is_empty() {
        problems.push(format!(
            "certificates attached to no Thing: {:?}",
            snapshot.orphans
        ));
    }
    if !snapshot.dangling_policy_targets.is_empty() {
        problems.push(format!(
            "policy attached to missing certificates: {:?}",
            snapshot.dangling_policy_targets
        ));
    }
    problems.extend(device_problems(stack, &snapshot, devices));
    if problems.is_empty() {
        Ok(snapshot)
    } else {
        Err(problems)
    }
}

/// Where AWS differs from what Mender says about each of `devices`.
pub fn device_problems(stack: &Stack, snapshot: &IotSnapshot, devices: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for device in devices {
        let status = stack.mender.device_status(device);
        let held = snapshot.things.get(device);
        let ok = match (Expected::of(status.as_deref()), held) {
            (_, Some(certs)) if certs.len() > 1 => false,
            (Expected::Active, Some(certs)) => {
                certs.len() == 1 && certs[0].1 == "ACTIVE" && {
                    // …and the device was given a key for it.
                    let configuration = stack.mender.configuration(device).unwrap_or_default();
                    configuration.contains_key(bridge::converge::plan::PRIVATE_KEY_KEY)
                }
            }
            (Expected::Active, None) => false,
            (Expected::Inactive, Some(certs)) => certs.iter().all(|(_, s)| s == "INACTIVE"),
            (Expected::Inactive, None) => true,
            (Expected::Gone, held) => held.is_none(),
        };
        if !ok {
            problems.push(format!(
                "{device}: Mender says {status:?}, AWS holds {held:?}"
            ));
        }
    }
    problems
}

/// The secret access key every test integration uses.
pub const TEST_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Secret values the stack knows of: the webhook secret, the admin's and
/// the bridge's Mender tokens, the test AWS secret key, and every private
/// key delivered to `devices`.
pub async fn known_secrets(stack: &Stack, devices: &[String]) -> Vec<String> {
    let mut secrets = vec![TEST_SECRET_ACCESS_KEY.to_owned(), stack.admin_token.clone()];
    if !stack.webhook_secret.is_empty() {
        secrets.push(stack.webhook_secret.clone());
    }
    if let Some(webhook) = stack.mender.webhook_integration(TENANT)
        && !webhook.secret.is_empty()
    {
        secrets.push(webhook.secret);
    }
    secrets.extend(stored_secret_values(stack).await);
    for device in devices {
        if let Some(key) = stack
            .mender
            .configuration(device)
            .and_then(|c| c.get(bridge::converge::plan::PRIVATE_KEY_KEY).cloned())
        {
            secrets.push(key);
        }
    }
    secrets.sort();
    secrets.dedup();
    secrets
}

/// The secret values inside every integration secret in Secrets Manager
/// (deleted ones too): webhook secrets, tokens, secret access keys.
pub async fn stored_secret_values(stack: &Stack) -> Vec<String> {
    let direct = stack.direct.clone();
    let client = aws_sdk_secretsmanager::Client::new(&direct);
    let Ok(listed) = client
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
    else {
        return Vec::new();
    };
    let mut values = Vec::new();
    for secret in listed.secret_list() {
        let Some(name) = secret.name() else { continue };
        let Ok(value) = client.get_secret_value().secret_id(name).send().await else {
            continue;
        };
        let Some(text) = value.secret_string() else {
            continue;
        };
        let Ok(stored) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        for pointer in [
            "/webhook_secret",
            "/mender/token",
            "/aws/credentials/secret_access_key",
        ] {
            if let Some(value) = stored.pointer(pointer).and_then(|v| v.as_str()) {
                values.push(value.to_owned());
            }
        }
    }
    values
}

/// The fragments of a secret that give it away: the whole value, and for a
/// PEM key each line of its body; for a JWT its signature.
fn fingerprints(secret: &str) -> Vec<String> {
    let mut prints = vec![secret.to_owned()];
    if secret.contains("-----BEGIN") {
        prints.extend(
            secret
                .lines()
                .filter(|line| !line.starts_with("-----") && line.len() >= 16)
                .map(str::to_owned),
        );
    }
    if secret.matches('.').count() == 2
        && let Some(signature) = secret.rsplit('.').next()
        && signature.len() >= 16
    {
        prints.push(signature.to_owned());
    }
    prints
}

/// Every secret of `secrets` that `text` gives away (by fingerprint).
pub fn leaked<'a>(text: &str, secrets: &'a [String]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|secret| secret.len() >= 8)
        .filter(|secret| {
            fingerprints(secret)
                .iter()
                .any(|p| text.contains(p.as_str()))
        })
        .map(String::as_str)
        .collect()
}

/// Fails if `text` (log lines, an answer) contains any of `secrets`.
pub fn assert_no_secrets(what: &str, text: &str, secrets: &[String]) {
    let found = leaked(text, secrets);
    assert!(
        found.is_empty(),
        "{what} contains {} secret value(s) (first chars: {:?})",
        found.len(),
        found
            .iter()
            .map(|s| s.chars().take(6).collect::<String>())
            .collect::<Vec<_>>()
    );
}

/// Where the suites record their figures for docs/reliability.md.
pub fn record_figures(name: &str, figures: &serde_json::Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/reliability");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(figures).unwrap_or_default(),
    );
}

/// The shadow's desired state and version, read straight from the emulator.
pub async fn stored_shadow(stack: &Stack, device: &str) -> (serde_json::Value, u64) {
    let client = aws_sdk_iotdataplane::Client::new(&stack.inspect);
    match client.get_thing_shadow().thing_name(device).send().await {
        Ok(output) => {
            let document: serde_json::Value =
                serde_json::from_slice(output.payload().unwrap().as_ref()).unwrap();
            (
                document["state"]["desired"].clone(),
                document["version"].as_u64().unwrap_or(0),
            )
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            (serde_json::Value::Null, 0)
        }
        Err(error) => panic!("GetThingShadow {device}: {error:?}"),
    }
}

/// Nothing of a setup exists: no Mender webhook, none of the admin's
/// tokens, no live secret, no integration.
pub async fn nothing_left(stack: &Stack, admin_token: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if stack.mender.webhook_integration(TENANT).is_some() {
        problems.push("Mender webhook left".into());
    }
    let tokens = stack.personal_tokens(admin_token).await;
    if !tokens.is_empty() {
        problems.push(format!("{} personal access token(s) left", tokens.len()));
    }
    let live = stack.live_secrets().await;
    if !live.is_empty() {
        problems.push(format!("secrets left: {live:?}"));
    }
    let answer = stack
        .call(
            reqwest::Method::GET,
            &crate::stack::api("/integrations"),
            Some(&stack.admin_token),
            None,
        )
        .await;
    if answer.body != serde_json::json!([]) {
        problems.push(format!("integration still listed: {}", answer.text));
    }
    problems
}
