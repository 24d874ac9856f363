//! The functions as SAM runs them: `sam local start-lambda` invoking every function with
//! its sample event from tests/events/, and `sam local start-api` over every
//! route SAM mounts, in Docker against moto and the Mender stand-in, each
//! answer and its effect in AWS and Mender checked.
//!
//! Needs Docker and the SAM build: `make sam-local` prepares both and runs
//! these (CI too, from `make test`); a plain `cargo test` skips them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use integration_tests::fixtures::{SAMPLE_DEVICE_ID, SAMPLE_RUN_ID, fixture};
use integration_tests::moto::free_port;
use integration_tests::sam::{self, BUS, Invocation, SamLocal, record_first_invocations};
use integration_tests::stack::{Stack, TENANT, create_event_bus};
use serde_json::{Value, json};

/// The bus the ingress publishes to, with an archive that counts what arrives.
async fn create_bus(stack: &Stack) -> aws_sdk_eventbridge::Client {
    let config = stack.direct.clone();
    create_event_bus(&config, BUS).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let bus = events.describe_event_bus().name(BUS).send().await.unwrap();
    events
        .create_archive()
        .archive_name("published")
        .event_source_arn(bus.arn().unwrap())
        .send()
        .await
        .unwrap();
    events
}

async fn published(events: &aws_sdk_eventbridge::Client) -> i64 {
    let archive = events
        .describe_archive()
        .archive_name("published")
        .send()
        .await
        .unwrap();
    archive.event_count()
}

/// Every function of template.yaml.
fn template_functions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(sam::repository().join("template.yaml")).unwrap();
    let template: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    resources
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, _)| id.as_str().unwrap().to_owned())
        .collect()
}

/// Runs the sample events through `sam local start-lambda`, remembering each
/// function's first invocation.
struct Invoker {
    sam: SamLocal,
    firsts: BTreeMap<String, (Duration, Option<f64>)>,
}

impl Invoker {
    /// The sample `sample`, made real for `stack`, through `function`.
    async fn invoke(
        &mut self,
        stack: &Stack,
        function: &str,
        sample: &str,
        device: &str,
        run: &str,
    ) -> Invocation {
        let event = fixture(sample, stack, device, run);
        let invocation = self.sam.invoke(function, &event).await;
        println!(
            "sam local start-lambda: {function} with tests/events/{sample}: {:.1} s (the function: {:?} ms)",
            invocation.wall.as_secs_f64(),
            invocation.duration_ms
        );
        self.firsts
            .entry(function.to_owned())
            .or_insert((invocation.wall, invocation.duration_ms));
        invocation
    }

    /// A run started with the sample `start` (202), advanced by its bus
    /// event to its end, then read with the sample `read` (200).
    async fn run(&mut self, stack: &Stack, start: &str, read: &str, device: &str) -> Value {
        let integration = "IntegrationFunction";
        let (status, started) = self
            .invoke(stack, integration, start, device, SAMPLE_RUN_ID)
            .await
            .http();
        assert_eq!(status, 202, "{started}");
        let run = started["run_id"].as_str().unwrap().to_owned();
        let advanced = self
            .invoke(
                stack,
                "ReconcileFunction",
                "reconcile-requested.json",
                device,
                &run,
            )
            .await
            .answer;
        assert_eq!(advanced["state"], "done", "{advanced}");
        let (status, reported) = self
            .invoke(stack, integration, read, device, &run)
            .await
            .http();
        assert_eq!(
            (status, &reported["state"]),
            (200, &json!("done")),
            "{reported}"
        );
        reported
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and `sam build`: make sam-local"]
async fn every_function_under_sam_local_start_lambda() {
    let mut stack = Stack::bare().await;
    let events = create_bus(&stack).await;
    // Mender's webhooks go nowhere here: the samples are the only events.
    let mut sam = Invoker {
        sam: SamLocal::start(&stack, "http://127.0.0.1:9").await,
        firsts: BTreeMap::new(),
    };
    let (device, run) = (SAMPLE_DEVICE_ID, SAMPLE_RUN_ID);
    let integration = "IntegrationFunction";

    let (status, trust) = sam
        .invoke(
            &stack,
            integration,
            "integration-external-id.json",
            device,
            run,
        )
        .await
        .http();
    assert_eq!(status, 200, "{trust}");
    assert!(trust["external_id"].is_string(), "{trust}");

    // Setup, through the function: secrets in moto, the webhook in Mender.
    let (status, created) = sam
        .invoke(&stack, integration, "integration-create.json", device, run)
        .await
        .http();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let webhook = stack.mender.webhook_integration(TENANT).unwrap();
    assert_eq!(webhook.url, format!("http://127.0.0.1:9/webhooks/{id}"));
    stack.integration_id = id;
    stack.webhook_secret = webhook.secret;
    let shown = sam
        .invoke(&stack, integration, "integration-get.json", device, run)
        .await
        .http();
    assert_eq!(shown, (200, created));

    // The console's page, as the function serves it.
    let page = sam
        .invoke(&stack, "ConsoleFunction", "console-page.json", device, run)
        .await
        .answer;
    assert_eq!(page["statusCode"], 200, "{page}");
    assert_eq!(
        page["headers"]["content-security-policy"],
        bridge::console::CONTENT_SECURITY_POLICY
    );

    // Mender's webhook, verified and published to the bus.
    let device = &stack.mender.add_device(TENANT, "accepted", None);
    let (status, body) = sam
        .invoke(
            &stack,
            "WebhookIngressFunction",
            "webhook-ingress.json",
            device,
            run,
        )
        .await
        .http();
    assert_eq!(
        (status, &body["detail_type"]),
        (202, &json!("device-accepted")),
        "{body}"
    );
    assert_eq!(published(&events).await, 1, "one event on the bus");

    // Provisioning: a Thing, an ACTIVE certificate, keys in Mender Configure.
    let report = sam
        .invoke(
            &stack,
            "DeviceAcceptedFunction",
            "device-accepted.json",
            device,
            run,
        )
        .await
        .answer;
    assert_eq!(
        report,
        json!({"device_id": device, "outcome": "provisioned"})
    );
    assert_eq!(stack.thing_principals(device).await.len(), 1);
    assert_eq!(certificate_statuses(&stack).await, ["ACTIVE"]);
    let configuration = stack.mender.configuration(device).unwrap();
    assert!(
        configuration.contains_key("awsCertificate"),
        "{configuration:?}"
    );

    // The shadow, read, replaced and merged.
    let answer = sam
        .invoke(&stack, "ShadowGetFunction", "shadow-get.json", device, run)
        .await
        .http();
    assert_eq!(answer, (200, json!({"desired": {}, "reported": {}})));
    let answer = sam
        .invoke(
            &stack,
            "ShadowUpdateFunction",
            "shadow-update-put.json",
            device,
            run,
        )
        .await
        .http();
    let replaced = json!({"desired": {"interval": 60, "led": {"color": "green"}}, "reported": {}});
    assert_eq!(answer, (200, replaced));
    let answer = sam
        .invoke(
            &stack,
            "ShadowUpdateFunction",
            "shadow-update-patch.json",
            device,
            run,
        )
        .await
        .http();
    assert_eq!(
        answer,
        (
            200,
            json!({"desired": {"led": {"color": "red"}}, "reported": {}})
        )
    );

    // A rotation: the device has applied its configuration and says so;
    // a new certificate is delivered beside the old; cancelled, it goes.
    stack
        .mender
        .report_configuration(device, configuration.clone());
    let mut states = Vec::new();
    for name in [
        "device-rotation-get.json",
        "device-rotation-post.json",
        "device-rotation-delete.json",
    ] {
        let (status, body) = sam
            .invoke(&stack, "DeviceRotationFunction", name, device, run)
            .await
            .http();
        states.push((status, body["state"].clone()));
        if name == "device-rotation-post.json" {
            assert_eq!(certificate_statuses(&stack).await, ["ACTIVE", "ACTIVE"]);
        }
    }
    assert_eq!(
        states,
        [
            (200, json!("idle")),
            (201, json!("waiting")),
            (200, json!("idle"))
        ]
    );
    assert_eq!(stack.mender.configuration(device).unwrap(), configuration);
    assert_eq!(certificate_statuses(&stack).await, ["ACTIVE"]);

    // A run started through the API, advanced by its bus event, reported.
    let reported = sam
        .run(
            &stack,
            "integration-reconcile-post.json",
            "integration-reconcile-get.json",
            device,
        )
        .await;
    assert_eq!(reported["counts"]["in_sync"], 1, "{reported}");
    // The schedule starts one for the organization; its bus event advances it.
    let scheduled = sam
        .invoke(
            &stack,
            "ReconcileFunction",
            "reconcile-scheduled.json",
            device,
            run,
        )
        .await
        .answer;
    let scheduled_run = scheduled["started"][0]
        .as_str()
        .unwrap_or_else(|| panic!("one run started: {scheduled}"))
        .to_owned();
    let advanced = sam
        .invoke(
            &stack,
            "ReconcileFunction",
            "reconcile-requested.json",
            device,
            &scheduled_run,
        )
        .await
        .answer;
    assert_eq!(advanced["state"], "done", "{advanced}");

    // A rotation run of the device, started through the API, advanced by
    // its bus event and reported; cancelled, the device is as before.
    let reported = sam
        .run(
            &stack,
            "integration-rotation-post.json",
            "integration-rotation-get.json",
            device,
        )
        .await;
    assert_eq!(reported["counts"]["rotated"], 1, "{reported}");
    assert_eq!(certificate_statuses(&stack).await, ["ACTIVE", "ACTIVE"]);
    let (status, cancelled) = sam
        .invoke(
            &stack,
            "DeviceRotationFunction",
            "device-rotation-delete.json",
            device,
            run,
        )
        .await
        .http();
    assert_eq!(
        (status, &cancelled["state"]),
        (200, &json!("idle")),
        "{cancelled}"
    );
    assert_eq!(certificate_statuses(&stack).await, ["ACTIVE"]);

    // Rejected: the certificate becomes INACTIVE.
    stack.mender.reject(device).await;
    let report = sam
        .invoke(
            &stack,
            "DeviceDisabledFunction",
            "device-disabled.json",
            device,
            run,
        )
        .await
        .answer;
    assert_eq!(report["outcome"], "disabled", "{report}");
    assert_eq!(certificate_statuses(&stack).await, ["INACTIVE"]);

    // Decommissioned: Thing and certificate are gone.
    stack.mender.decommission(device).await;
    let report = sam
        .invoke(
            &stack,
            "DeviceDecommissionedFunction",
            "device-decommissioned.json",
            device,
            run,
        )
        .await
        .answer;
    assert_eq!(report["outcome"], "removed", "{report}");
    assert!(stack.thing_attributes(device).await.is_none());
    assert!(stack.certificates().await.is_empty());

    // Each function that changed the device recorded it in the event log.
    let (status, events) = sam
        .invoke(&stack, integration, "integration-events.json", device, run)
        .await
        .http();
    assert_eq!(status, 200, "{events}");
    let outcomes: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap(),
                e["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes[..2],
        [("removed", "webhook"), ("disabled", "webhook")],
        "{events}"
    );
    assert_eq!(outcomes.last(), Some(&("provisioned", "webhook")));
    for rotated in [("rotated", "api"), ("rotated", "rotation-run")] {
        assert!(outcomes.contains(&rotated), "{rotated:?}: {events}");
    }

    // Removal: the integration and Mender's webhook are gone.
    let answer = sam
        .invoke(&stack, integration, "integration-delete.json", device, run)
        .await
        .http();
    assert_eq!(answer, (204, Value::Null));
    let (status, _) = sam
        .invoke(&stack, integration, "integration-get.json", device, run)
        .await
        .http();
    assert_eq!(status, 404);
    assert!(stack.mender.webhook_integration(TENANT).is_none());

    let invoked: BTreeSet<String> = sam.firsts.keys().cloned().collect();
    assert_eq!(invoked, template_functions(), "every function was invoked");
    record_first_invocations(&sam::work_dir().join("first-invocations.json"), &sam.firsts);
}

async fn certificate_statuses(stack: &Stack) -> Vec<String> {
    stack
        .certificates()
        .await
        .into_iter()
        .map(|(_, _, status)| status)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and `sam build`: make sam-local"]
async fn every_route_under_sam_local_start_api() {
    let mut stack = Stack::bare().await;
    let events = create_bus(&stack).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // Mender's webhooks go to SAM's API, as they would to API Gateway.
    let sam = SamLocal::start(&stack, &url).await;
    let api = sam.start_api(port);
    api.ready(Duration::from_secs(120)).await;
    let mounted = api.mounted_routes();
    let client = integration_tests::http();
    let token = stack.admin_token.clone();
    let exercised = RefCell::new(BTreeSet::new());
    let call = async |method: &str, route: &str, path: &str, body: Option<Value>| {
        exercised
            .borrow_mut()
            .insert((method.to_owned(), route.to_owned()));
        let mut request = client
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get(bridge::http::REQUEST_ID_HEADER)
            .is_some();
        let text = response.text().await.unwrap();
        println!("{method} {path}: {status}");
        assert!(request_id, "{method} {path}: no request id header");
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
        )
    };

    // The console: its page and script, with the page's policy.
    for path in ["/", "/console/console.js"] {
        let route = if path == "/" { "/" } else { "/console/{asset}" };
        let (status, _) = call("GET", route, path, None).await;
        assert_eq!(status, 200, "{path}");
    }
    let page = client.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(
        page.headers()["content-security-policy"],
        bridge::console::CONTENT_SECURITY_POLICY
    );

    const P: &str = "/api/management/v1/iot-manager";
    let (status, trust) = call(
        "GET",
        &format!("{P}/external-id"),
        &format!("{P}/external-id"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{trust}");
    let setup = integration_tests::stack::key_pair_setup(integration_tests::stack::POLICY);
    let integrations = format!("{P}/integrations");
    let (status, integration) =
        call("POST", &integrations, &integrations, Some(setup.clone())).await;
    assert_eq!(status, 201, "{integration}");
    let id = integration["id"].as_str().unwrap().to_owned();
    assert_eq!(integration["webhook_url"], format!("{url}/webhooks/{id}"));
    let (status, listed) = call("GET", &integrations, &integrations, None).await;
    assert_eq!((status, &listed), (200, &json!([integration])));
    let route = format!("{P}/integrations/{{integration_id}}");
    let path = format!("{P}/integrations/{id}");
    let (status, shown) = call("GET", &route, &path, None).await;
    assert_eq!((status, &shown), (200, &integration));
    let (status, replaced) = call("PUT", &route, &path, Some(setup.clone())).await;
    assert_eq!(status, 200, "{replaced}");
    let (status, _) = call(
        "PUT",
        &format!("{route}/credentials"),
        &format!("{path}/credentials"),
        Some(setup["credentials"].clone()),
    )
    .await;
    assert_eq!(status, 204);

    // Mender delivers its webhook to the ingress through SAM's API.
    let device = stack.mender.add_device(TENANT, "pending", None);
    let deliveries = stack.mender.accept(&device).await;
    assert!(!deliveries.is_empty());
    for delivery in &deliveries {
        assert_eq!(delivery.url, format!("{url}/webhooks/{id}"));
        assert_eq!(delivery.result, Ok(202), "{delivery:?}");
    }
    exercised
        .borrow_mut()
        .insert(("POST".to_owned(), "/webhooks/{integration_id}".to_owned()));
    assert_eq!(published(&events).await, deliveries.len() as i64);

    // Provisioned by its function (no bus runs locally), then the shadow routes.
    stack.integration_id = id.clone();
    let event = fixture("device-accepted.json", &stack, &device, SAMPLE_RUN_ID);
    let report = sam.invoke("DeviceAcceptedFunction", &event).await.answer;
    assert_eq!(report["outcome"], "provisioned", "{report}");

    let all = format!("{P}/devices/{{device_id}}/state");
    let (status, shadows) = call("GET", &all, &format!("{P}/devices/{device}/state"), None).await;
    assert_eq!(
        (status, shadows),
        (200, json!({ id.clone(): {"desired": {}, "reported": {}} }))
    );
    let route = format!("{P}/devices/{{device_id}}/state/{{integration_id}}");
    let path = format!("{P}/devices/{device}/state/{id}");
    let (status, shadow) = call("GET", &route, &path, None).await;
    assert_eq!(
        (status, shadow),
        (200, json!({"desired": {}, "reported": {}}))
    );
    let desired = json!({"desired": {"interval": 60}});
    let (status, shadow) = call("PUT", &route, &path, Some(desired)).await;
    assert_eq!(
        (status, shadow),
        (200, json!({"desired": {"interval": 60}, "reported": {}}))
    );
    let merge = json!({"desired": {"led": "red"}});
    let (status, shadow) = call("PATCH", &route, &path, Some(merge)).await;
    assert_eq!(
        (status, shadow),
        (
            200,
            json!({"desired": {"interval": 60, "led": "red"}, "reported": {}})
        )
    );
    let (status, error) = call("PUT", &route, &path, Some(json!({"desired": 7}))).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"].is_string(), "{error}");

    // The rotation routes: the device never reported its configuration,
    // so a rotation is refused (409) and none can be cancelled.
    let route = format!("{P}/devices/{{device_id}}/rotation");
    let path = format!("{P}/devices/{device}/rotation");
    let (status, rotation) = call("GET", &route, &path, None).await;
    assert_eq!((status, &rotation["state"]), (200, &json!("unreported")));
    for method in ["POST", "DELETE"] {
        let (status, error) = call(method, &route, &path, None).await;
        assert_eq!(status, 409, "{method}: {error}");
        assert!(error["error"].is_string(), "{error}");
    }

    let runs = |kind: &str| format!("{P}/integrations/{{integration_id}}/{kind}");
    let runs_path = |kind: &str| format!("{P}/integrations/{id}/{kind}");
    let (status, started) = call("POST", &runs("reconcile"), &runs_path("reconcile"), None).await;
    assert_eq!(status, 202, "{started}");
    let run = started["run_id"].as_str().unwrap();
    let (status, reported) = call(
        "GET",
        &format!("{}/{{run_id}}", runs("reconcile")),
        &format!("{}/{run}", runs_path("reconcile")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{reported}");
    assert_eq!(reported["run_id"], run, "{reported}");
    // A rotation run: refused while the sync run holds the organization's
    // run lock, and the sync run is not one.
    let (status, error) = call(
        "POST",
        &runs("rotation"),
        &runs_path("rotation"),
        Some(json!({"device_ids": [device]})),
    )
    .await;
    assert_eq!(status, 409, "{error}");
    assert!(error["error"].as_str().unwrap().contains(run), "{error}");
    let (status, error) = call(
        "GET",
        &format!("{}/{{run_id}}", runs("rotation")),
        &format!("{}/{run}", runs_path("rotation")),
        None,
    )
    .await;
    assert_eq!(status, 404, "{error}");

    let route = format!("{P}/events");
    let (status, events) = call("GET", &route, &format!("{route}?device_id={device}"), None).await;
    assert_eq!(status, 200, "{events}");
    assert_eq!(events[0]["outcome"], "provisioned", "{events}");

    // Unlinked: the bridge lets go of the device's Thing.
    let (status, _) = call(
        "DELETE",
        &format!("{P}/devices/{{device_id}}"),
        &format!("{P}/devices/{device}"),
        None,
    )
    .await;
    assert_eq!(status, 204);

    let route = format!("{P}/integrations/{{integration_id}}");
    let path = format!("{P}/integrations/{id}");
    let (status, _) = call("DELETE", &route, &path, None).await;
    assert_eq!(status, 204);
    let (status, error) = call("GET", &route, &path, None).await;
    assert_eq!(status, 404, "{error}");
    assert!(stack.mender.webhook_integration(TENANT).is_none());

    let exercised = exercised.into_inner();
    // SAM answers OPTIONS on every path itself (CORS preflights); the
    // template's routes are the others.
    let mounted: BTreeSet<(String, String)> = mounted
        .into_keys()
        .filter(|(method, _)| method != "OPTIONS")
        .collect();
    assert_eq!(exercised, mounted, "every route SAM mounts was exercised");
    for (method, route) in &exercised {
        println!("exercised through sam local start-api: {method} {route}");
    }
}
