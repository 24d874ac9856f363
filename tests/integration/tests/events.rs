//! The sample events in `tests/events/` (what `sam local invoke -e` and
//! `cargo lambda invoke --data-file` send) fed through the handlers the
//! functions run, against the local stack: each must deserialize as Lambda
//! would deserialize it and get the documented answer.
//!
//! The files name a sample integration, device and token (see
//! `tests/events/README.md`); the tests put the stack's own in their place
//! and re-sign the webhook.

use std::collections::{BTreeMap, BTreeSet};

use bridge::converge::Outcome;
use bridge::events::{BusEnvelope, DetailType, ReconcileRequest};
use bridge::lifecycle::handle;
use integration_tests::fault_proxy::{Fault, FaultRule};
use integration_tests::fixtures::{
    SAMPLE_DEVICE_ID, SAMPLE_RUN_ID, SAMPLE_TENANT, SAMPLE_WEBHOOK_SECRET, events_dir, fixture,
    read,
};
use integration_tests::stack::{Stack, TENANT};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

/// An API Gateway (HTTP API, payload 2.0) fixture as the function receives it.
fn http_request(name: &str, stack: &Stack, device_id: &str) -> Request {
    let event = fixture(name, stack, device_id, SAMPLE_RUN_ID);
    lambda_http::request::from_str(&event.to_string())
        .unwrap_or_else(|e| panic!("{name} is not an API Gateway HTTP API event: {e}"))
}

fn bus_event(name: &str, stack: &Stack, device_id: &str) -> BusEnvelope {
    serde_json::from_value(fixture(name, stack, device_id, SAMPLE_RUN_ID))
        .unwrap_or_else(|e| panic!("{name} is not an EventBridge event of the bridge: {e}"))
}

fn answer(response: Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = bridge::http::body_bytes(response.body());
    (status, serde_json::from_slice(body).unwrap_or(Value::Null))
}

/// Mender's webhooks go nowhere, so the fixtures are the only events.
fn silence_webhooks(stack: &Stack) {
    stack
        .mender
        .register_webhook(TENANT, "http://127.0.0.1:9/nowhere", &stack.webhook_secret);
}

#[test]
fn every_fixture_is_valid_and_every_route_and_rule_has_one() {
    let mut routes = BTreeSet::new();
    let mut detail_types = BTreeSet::new();
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        if event["version"] == "2.0" {
            let request = lambda_http::request::from_str(&text)
                .unwrap_or_else(|e| panic!("{name}: not an HTTP API event: {e}"));
            let route_key = event["routeKey"].as_str().unwrap();
            let (method, route) = route_key.split_once(' ').unwrap();
            assert_eq!(request.method().as_str(), method, "{name}");
            assert_eq!(event["requestContext"]["routeKey"], route_key, "{name}");
            // The path parameters are what the route's template extracts from rawPath.
            let raw_path = event["rawPath"].as_str().unwrap();
            assert_eq!(request.uri().path(), raw_path, "{name}");
            let mut extracted = BTreeMap::new();
            let route_parts: Vec<&str> = route.split('/').collect();
            let path_parts: Vec<&str> = raw_path.split('/').collect();
            assert_eq!(
                route_parts.len(),
                path_parts.len(),
                "{name}: {raw_path} is not {route}"
            );
            for (template, actual) in route_parts.iter().zip(&path_parts) {
                match template.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(parameter) => {
                        extracted.insert(parameter.to_owned(), Value::from(*actual));
                    }
                    None => assert_eq!(template, actual, "{name}: {raw_path} is not {route}"),
                }
            }
            let given: BTreeMap<String, Value> = event["pathParameters"]
                .as_object()
                .map(|p| p.clone().into_iter().collect())
                .unwrap_or_default();
            assert_eq!(given, extracted, "{name}: pathParameters");
            routes.insert((method.to_owned(), route.to_owned()));
        } else if event["source"] == "aws.events" {
            assert_eq!(event["detail-type"], "Scheduled Event", "{name}");
            detail_types.insert("Scheduled Event".to_owned());
        } else if event["detail-type"] == DetailType::ReconcileRequested.as_str() {
            let request: ReconcileRequest = serde_json::from_value(event["detail"].clone())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(request.run_id, SAMPLE_RUN_ID, "{name}");
            assert_eq!(event["source"], bridge::events::SOURCE, "{name}");
            detail_types.insert(DetailType::ReconcileRequested.as_str().to_owned());
        } else {
            let envelope: BusEnvelope =
                serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(event["source"], bridge::events::SOURCE, "{name}");
            assert_eq!(envelope.detail.tenant_id, SAMPLE_TENANT, "{name}");
            detail_types.insert(envelope.detail_type.as_str().to_owned());
        }
    }

    // Every route has a fixture (the template's routes are the runner's, as
    // tests/template.rs checks), and so has every rule and the schedule.
    let expected: BTreeSet<(String, String)> = integration_tests::app::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routes, expected, "one HTTP fixture per route");
    let rules: BTreeSet<String> = DetailType::ALL
        .iter()
        .map(|d| d.as_str().to_owned())
        .chain(["Scheduled Event".to_owned()])
        .collect();
    assert_eq!(
        detail_types, rules,
        "one bus fixture per rule, and the schedule"
    );

    // The sample webhook is signed with the documented sample secret, so it
    // is accepted as-is by an integration that has that secret.
    let webhook: Value = serde_json::from_str(&read("webhook-ingress.json")).unwrap();
    let body = webhook["body"].as_str().unwrap();
    assert_eq!(
        webhook["headers"]["x-men-signature"],
        bridge::webhook::sign(SAMPLE_WEBHOOK_SECRET, body.as_bytes())
    );
    assert_eq!(webhook["headers"]["content-length"], body.len().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_fixture_is_published_and_provisions_the_device() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "accepted", None);

    let request = http_request("webhook-ingress.json", &stack, &device);
    let (status, body) = answer(bridge::ingress::handle(&stack.app.ingress, request).await);
    assert_eq!(
        (status, body),
        (
            202,
            json!({"status": "published", "event_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                   "detail_type": "device-accepted"})
        )
    );
    stack.bus.wait_idle().await;
    let deliveries = stack.bus.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let report = deliveries[0]
        .result
        .as_ref()
        .expect("the lifecycle handler succeeded");
    assert_eq!(report.outcome, Some(Outcome::Provisioned));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_fixtures_converge_the_device() {
    let stack = Stack::start().await;
    silence_webhooks(&stack);
    let device = stack.mender.add_device(TENANT, "accepted", None);

    let report = handle(
        stack.lifecycle(),
        bus_event("device-accepted.json", &stack, &device),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.device_id.as_str(), report.outcome),
        (device.as_str(), Some(Outcome::Provisioned))
    );

    stack.mender.reject(&device).await;
    let report = handle(
        stack.lifecycle(),
        bus_event("device-disabled.json", &stack, &device),
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Disabled));

    stack.mender.decommission(&device).await;
    let report = handle(
        stack.lifecycle(),
        bus_event("device-decommissioned.json", &stack, &device),
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Removed));
    assert!(
        stack.thing_attributes(&device).await.is_none(),
        "the Thing is gone"
    );

    // Each change is in the event log, newest first, in Mender's shape.
    let events = event_log(&stack, &device).await;
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("device-decommissioned", "removed"),
            ("device-status-changed", "disabled"),
            ("device-provisioned", "provisioned"),
        ]
    );
    for event in &events {
        assert_eq!(event["data"], json!({ "id": device }));
        assert_eq!(event["source"], "webhook");
        assert_eq!(
            event["delivery_statuses"],
            json!([{ "integration_id": stack.integration_id, "success": true }])
        );
    }

    // A provisioning that fails is there too, with why.
    let failing = stack.mender.add_device(TENANT, "accepted", None);
    stack
        .aws_proxy
        .inject(FaultRule::always("CreateThing", Fault::ServerError));
    let failed = handle(
        stack.lifecycle(),
        bus_event("device-accepted.json", &stack, &failing),
    )
    .await;
    stack.aws_proxy.clear();
    let error = failed
        .expect_err("AWS IoT Core failed every attempt")
        .to_string();
    let events = event_log(&stack, &failing).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(
        (&event["type"], &event["outcome"], &event["reason"]),
        (
            &json!("device-provisioned"),
            &json!("failed"),
            &json!(error)
        )
    );
    assert_eq!(
        event["delivery_statuses"],
        json!([{ "integration_id": stack.integration_id, "success": false, "error": error }])
    );
}

/// The device's records in the integration's event log, read with the
/// sample `integration-events.json`, each checked against Mender's `Event`.
async fn event_log(stack: &Stack, device: &str) -> Vec<Value> {
    let request = http_request("integration-events.json", stack, device);
    let (status, body) = answer(bridge::integration::handle(&stack.app.integration, request).await);
    assert_eq!(status, 200, "{body}");
    let events = body.as_array().expect("a list of events").clone();
    let specs = mender_standin::openapi::Specs::load_mender().unwrap();
    for event in &events {
        specs
            .validate(
                "iot-manager/management_v1.yaml#/components/schemas/Event",
                event,
            )
            .unwrap_or_else(|errors| panic!("not Mender's Event: {errors:?}\n{event}"));
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_fixtures_serve_the_page_and_its_script() {
    let stack = Stack::bare().await;
    for (name, content_type, needle) in [
        ("console-page.json", "text/html", "/console/console.js"),
        ("console-asset.json", "text/javascript", "iot-manager"),
    ] {
        let response = bridge::console::handle(&http_request(name, &stack, SAMPLE_DEVICE_ID));
        assert_eq!(response.status(), 200, "{name}");
        let headers = response.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{name}"
        );
        assert_eq!(
            headers["content-security-policy"],
            bridge::console::CONTENT_SECURITY_POLICY
        );
        let body = String::from_utf8(bridge::http::body_bytes(response.body()).to_vec()).unwrap();
        assert!(body.contains(needle), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_fixtures_read_replace_and_merge_the_desired_state() {
    let stack = Stack::start().await;
    silence_webhooks(&stack);
    let device = stack.mender.add_device(TENANT, "accepted", None);
    let report = handle(
        stack.lifecycle(),
        bus_event("device-accepted.json", &stack, &device),
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Provisioned));
    let shadow = &stack.app.shadow;

    let request = http_request("shadow-get.json", &stack, &device);
    let answered = answer(bridge::shadow::api::get_state(shadow, request).await);
    assert_eq!(answered, (200, json!({"desired": {}, "reported": {}})));
    let request = http_request("shadow-get-all.json", &stack, &device);
    let answered = answer(bridge::shadow::api::get_state(shadow, request).await);
    assert_eq!(
        answered,
        (
            200,
            json!({ stack.integration_id.clone(): {"desired": {}, "reported": {}} })
        )
    );

    let request = http_request("shadow-update-put.json", &stack, &device);
    let answered = answer(bridge::shadow::api::update_state(shadow, request).await);
    assert_eq!(
        answered,
        (
            200,
            json!({"desired": {"interval": 60, "led": {"color": "green"}}, "reported": {}})
        )
    );

    let request = http_request("shadow-update-patch.json", &stack, &device);
    let answered = answer(bridge::shadow::api::update_state(shadow, request).await);
    assert_eq!(
        answered,
        (
            200,
            json!({"desired": {"led": {"color": "red"}}, "reported": {}})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_fixtures_start_show_and_cancel_a_rotation() {
    let stack = Stack::start().await;
    silence_webhooks(&stack);
    let device = stack.mender.add_device(TENANT, "accepted", None);
    handle(
        stack.lifecycle(),
        bus_event("device-accepted.json", &stack, &device),
    )
    .await
    .unwrap();
    // The device applies what it was given, and says so.
    let delivered = stack.mender.configuration(&device).unwrap();
    stack.mender.report_configuration(&device, delivered);
    let rotation = &stack.app.rotation;
    let mut states = Vec::new();
    for name in [
        "device-rotation-get.json",
        "device-rotation-post.json",
        "device-rotation-delete.json",
    ] {
        let request = http_request(name, &stack, &device);
        let (status, body) = answer(bridge::rotation::handle(rotation, request).await);
        assert_eq!(body["device_id"], device.as_str(), "{name}: {body}");
        states.push((
            status,
            body["state"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let expected = [(200, "idle"), (201, "waiting"), (200, "idle")];
    assert_eq!(
        states,
        expected.map(|(status, state)| (status, state.to_owned()))
    );

    // Unlinked: the Thing stays, and so does its certificate, ACTIVE; the
    // bridge no longer manages it, and says so in the event log.
    let api = &stack.app.integration;
    let request = http_request("integration-device-unlink.json", &stack, &device);
    assert_eq!(
        answer(bridge::integration::handle(api, request).await),
        (204, Value::Null)
    );
    let attributes = stack
        .thing_attributes(&device)
        .await
        .expect("the Thing stays");
    assert_eq!(attributes["managed_by"], bridge::iot::UNLINKED_VALUE);
    let statuses: Vec<_> = stack
        .certificates()
        .await
        .into_iter()
        .map(|(_, _, s)| s)
        .collect();
    assert_eq!(statuses, ["ACTIVE"]);
    assert_eq!(event_log(&stack, &device).await[0]["outcome"], "unlinked");
    let request = http_request("integration-device-unlink.json", &stack, &device);
    let (status, body) = answer(bridge::integration::handle(api, request).await);
    assert_eq!(status, 404, "no longer linked: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_fixtures_set_up_show_and_remove_the_integration() {
    let mut stack = Stack::bare().await;
    let request = http_request("integration-create.json", &stack, SAMPLE_DEVICE_ID);
    let response = bridge::integration::handle(&stack.app.integration, request).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, body) = answer(response);
    assert_eq!(status, 201, "{body}");
    let id = body["id"]
        .as_str()
        .expect("the new integration's id")
        .to_owned();
    assert_eq!(
        location,
        format!("/api/management/v1/iot-manager/integrations/{id}")
    );
    assert_eq!(body["provider"], "iot-core");
    assert_eq!(
        body["credentials"]["aws"]["access_key_id"],
        "AKIAIOSFODNN7EXAMPLE"
    );
    assert_eq!(body["credentials"]["aws"]["secret_access_key"], "<omitted>");
    assert_eq!(body["credentials"]["aws"]["region"], "eu-west-1");
    assert_eq!(
        body["credentials"]["aws"]["device_policy_name"],
        "mender-device-policy"
    );
    assert_eq!(body["description"], "AWS IoT Core for the fleet");
    assert_eq!(body["webhook_url"], format!("{}/webhooks/{id}", stack.url));
    // The sample id in the other fixtures now names this integration.
    stack.integration_id = id;
    let stack = stack;
    let api = &stack.app.integration;
    let fixture =
        |name| bridge::integration::handle(api, http_request(name, &stack, SAMPLE_DEVICE_ID));

    assert_eq!(
        answer(fixture("integration-list.json").await),
        (200, json!([body]))
    );
    assert_eq!(
        answer(fixture("integration-get.json").await),
        (200, body.clone())
    );

    let (status, replaced) = answer(fixture("integration-replace.json").await);
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["description"], "AWS IoT Core for the whole fleet");
    assert_eq!(replaced["id"], body["id"]);

    assert_eq!(
        answer(fixture("integration-credentials.json").await),
        (204, Value::Null)
    );
    let (status, shown) = answer(fixture("integration-get.json").await);
    assert_eq!(status, 200);
    assert_eq!(
        shown["description"], "AWS IoT Core for the whole fleet",
        "kept"
    );

    assert_eq!(
        answer(fixture("integration-delete.json").await),
        (204, Value::Null)
    );
    let (status, _) = answer(fixture("integration-get.json").await);
    assert_eq!(status, 404, "the integration is gone");
    assert_eq!(
        answer(fixture("integration-list.json").await),
        (200, json!([]))
    );

    // Readable with no integration: a role's trust policy comes first.
    let (status, trust) = answer(fixture("integration-external-id.json").await);
    assert_eq!(status, 200, "{trust}");
    let external_id = trust["external_id"].as_str().unwrap();
    assert_eq!(
        trust["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        external_id
    );
}

/// A run started with the sample `<route>-post.json` (202), advanced by
/// `reconcile-requested.json` to its end, then read with `<route>-get.json`.
async fn run_by_fixtures(stack: &Stack, route: &str, device: &str) -> Value {
    let api = &stack.app.integration;
    let request = http_request(&format!("{route}-post.json"), stack, device);
    let (status, body) = answer(bridge::integration::handle(api, request).await);
    assert_eq!(status, 202, "{body}");
    let run_id = body["run_id"].as_str().unwrap().to_owned();
    stack.bus.wait_idle().await;
    let requested = fixture("reconcile-requested.json", stack, device, &run_id);
    let reconciler = stack.bus.reconciler();
    let advanced =
        bridge::reconcile::handle(reconciler, &stack.bus, requested, std::time::Instant::now())
            .await
            .unwrap();
    assert_eq!(advanced["state"], "done", "{advanced}");
    let text = fixture(&format!("{route}-get.json"), stack, device, &run_id);
    let request = lambda_http::request::from_str(&text.to_string()).unwrap();
    let (status, run) = answer(bridge::integration::handle(api, request).await);
    assert_eq!((status, &run["state"]), (200, &json!("done")), "{run}");
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_fixtures_start_advance_and_report_a_run() {
    let stack = Stack::start().await;
    silence_webhooks(&stack);
    let device = stack.mender.add_device(TENANT, "accepted", None);

    // The schedule starts a run for the organization.
    let scheduled = fixture("reconcile-scheduled.json", &stack, &device, SAMPLE_RUN_ID);
    let reconciler = stack.bus.reconciler();
    let started =
        bridge::reconcile::handle(reconciler, &stack.bus, scheduled, std::time::Instant::now())
            .await
            .unwrap();
    assert_eq!(
        started["started"].as_array().map(Vec::len),
        Some(1),
        "{started}"
    );
    stack.bus.wait_idle().await;
    assert_eq!(
        stack.thing_principals(&device).await.len(),
        1,
        "the run provisioned the device"
    );

    // The API starts another; the bus event advances it; the API reports it.
    let run = run_by_fixtures(&stack, "integration-reconcile", &device).await;
    assert_eq!(run["kind"], "sync");
    assert_eq!(run["counts"]["seen"], 1);
    assert_eq!(run["counts"]["in_sync"], 1);

    // A rotation run of the device (it reports holding its certificate):
    // the certificate it holds stays beside the new one.
    let configuration = stack.mender.configuration(&device).unwrap();
    stack.mender.report_configuration(&device, configuration);
    let run = run_by_fixtures(&stack, "integration-rotation", &device).await;
    assert_eq!(
        (&run["kind"], &run["scope"], &run["counts"]["rotated"]),
        (
            &json!("rotation"),
            &json!({ "device_ids": [device] }),
            &json!(1)
        ),
        "{run}"
    );
    assert_eq!(stack.thing_principals(&device).await.len(), 2);

    // Both runs' changes are in the event log, by run; the sync run that
    // found nothing to do left no record.
    let events = event_log(&stack, &device).await;
    let seen: Vec<_> = events
        .iter()
        .map(|e| (&e["outcome"], &e["source"], e.get("run_id").is_some()))
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("rotated"), &json!("rotation-run"), true),
            (&json!("provisioned"), &json!("sync-run"), true),
        ]
    );
    assert_eq!(events[0]["run_id"], run["run_id"]);
}
