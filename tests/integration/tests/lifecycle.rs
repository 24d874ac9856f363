//! Device lifecycle, end to end: Mender stand-in → webhook → ingress → bus →
//! lifecycle handler → moto, through the fault proxies.

use std::collections::BTreeMap;

use bridge::converge::Outcome;
use bridge::converge::plan::{CERTIFICATE_KEY, ENDPOINT_KEY, PRIVATE_KEY_KEY};
use bridge::events::DetailType;
use bridge::lifecycle::handle;
use integration_tests::fault_proxy::{Fault, FaultRule, IOT_REGISTRY_READS};
use integration_tests::resilience::envelope;
use integration_tests::stack::{Stack, TENANT, captured_logs};
use serde_json::json;

/// The device's certificates as (id, status), from the emulator.
async fn device_certificates(stack: &Stack, device_id: &str) -> Vec<(String, String)> {
    let attached = stack.thing_principals(device_id).await;
    stack
        .certificates()
        .await
        .into_iter()
        .filter(|(_, arn, _)| attached.contains(arn))
        .map(|(id, _, status)| (id, status))
        .collect()
}

async fn accept_and_settle(stack: &Stack, device_id: &str) {
    let deliveries = stack.mender.accept(device_id).await;
    assert!(
        deliveries.iter().all(|d| d.result == Ok(202)),
        "{deliveries:?}"
    );
    stack.bus.wait_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_device_gets_thing_certificate_policy_and_configuration() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.set_configuration(
        &device,
        BTreeMap::from([("timezone".to_owned(), "UTC".to_owned())]),
    );

    let deliveries = stack.mender.accept(&device).await;
    let mut types: Vec<_> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
    types.sort();
    assert_eq!(types, ["device-provisioned", "device-status-changed"]);
    stack.bus.wait_idle().await;
    assert!(
        stack.bus.dead_letters().is_empty(),
        "{:?}",
        stack.bus.dead_letters()
    );

    // One Thing, ours.
    let attributes = stack
        .thing_attributes(&device)
        .await
        .expect("the Thing exists");
    assert_eq!(
        attributes.get("managed_by").map(String::as_str),
        Some("mender-iot-bridge")
    );

    // Exactly one certificate, ACTIVE, attached to the Thing and the policy.
    let certificates = stack.certificates().await;
    assert_eq!(certificates.len(), 1, "{certificates:?}");
    let (id, arn, status) = &certificates[0];
    assert_eq!(status, "ACTIVE");
    assert_eq!(stack.thing_principals(&device).await, vec![arn.clone()]);
    assert_eq!(stack.policy_targets().await, vec![arn.clone()]);

    // Mender holds the three keys beside the ones it had, and a deployment ran.
    let configuration = stack.mender.configuration(&device).unwrap();
    assert_eq!(
        configuration.get("timezone").map(String::as_str),
        Some("UTC")
    );
    let pem = stack
        .iot()
        .describe_certificate()
        .certificate_id(id)
        .send()
        .await
        .unwrap();
    let pem = pem
        .certificate_description()
        .unwrap()
        .certificate_pem()
        .unwrap()
        .to_owned();
    assert_eq!(configuration[CERTIFICATE_KEY], pem);
    assert!(
        !configuration[ENDPOINT_KEY].is_empty() && !configuration[ENDPOINT_KEY].contains("://")
    );
    let private_key = &configuration[PRIVATE_KEY_KEY];
    assert!(
        private_key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 PEM"
    );
    assert_eq!(stack.mender.deployments(&device).len(), 1);

    // The key is P-256, and the certificate AWS issued for the bridge's
    // CSR (the emulator signs each CSR's own key with a test CA) is for it.
    let key = rcgen::KeyPair::from_pem(private_key).unwrap();
    assert!(key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256));
    let (_, certificate) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let certificate = certificate.parse_x509().unwrap();
    use rcgen::PublicKeyData;
    assert_eq!(
        certificate.public_key().raw,
        key.subject_public_key_info().as_slice()
    );
    let common_name = certificate
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(common_name, device);

    // Every call the bridge made to Mender, and every answer, is as Mender's
    // specs say.
    let specs = mender_standin::openapi::Specs::load_mender().unwrap();
    let exchanges = stack.mender.exchanges();
    assert!(exchanges.len() >= 4, "{exchanges:?}");
    for exchange in &exchanges {
        assert_eq!(
            specs.check(exchange),
            Ok(()),
            "{} {}",
            exchange.method,
            exchange.path
        );
    }

    // The key never reached a log.
    assert!(!captured_logs().contains(private_key.lines().nth(1).unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_acceptance_events_make_one_certificate() {
    let stack = Stack::start().await;
    // Ten rounds of each order: provisioned first, status first, together.
    let mut devices = Vec::new();
    for round in 0..30 {
        let device = stack.mender.add_device(TENANT, "accepted", None);
        devices.push((round % 3, device));
    }
    let deliveries = devices.iter().map(|(order, device)| {
        let provisioned = json!({"id": uuid::Uuid::new_v4().to_string(), "type": "device-provisioned",
            "data": {"id": device, "status": "accepted", "auth_sets": [], "created_ts": "2026-01-01T00:00:00Z"},
            "time": "2026-01-01T00:00:00.000000001Z"});
        let changed = json!({"id": uuid::Uuid::new_v4().to_string(), "type": "device-status-changed",
            "data": {"id": device, "status": "accepted"}, "time": "2026-01-01T00:00:00.000000002Z"});
        let stack = &stack;
        async move {
            let (first, second) = if *order == 0 { (provisioned, changed) } else { (changed, provisioned) };
            let stagger = if *order == 2 { 0 } else { 2 };
            let later = async {
                tokio::time::sleep(std::time::Duration::from_millis(stagger)).await;
                stack.post_webhook(&second).await
            };
            let (a, b) = tokio::join!(stack.post_webhook(&first), later);
            assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
        }
    });
    futures::future::join_all(deliveries).await;
    stack.bus.wait_idle().await;
    assert!(
        stack.bus.dead_letters().is_empty(),
        "{:?}",
        stack.bus.dead_letters()
    );

    assert_eq!(stack.certificates().await.len(), devices.len());
    for (_, device) in &devices {
        let certificates = device_certificates(&stack, device).await;
        assert_eq!(certificates.len(), 1, "{device}: {certificates:?}");
        assert_eq!(certificates[0].1, "ACTIVE");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_reaccept_and_dismiss_toggle_the_same_certificate() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "pending", None);
    accept_and_settle(&stack, &device).await;
    let original = device_certificates(&stack, &device).await;
    assert_eq!(original.len(), 1);
    assert_eq!(original[0].1, "ACTIVE");

    stack.mender.reject(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(
        device_certificates(&stack, &device).await,
        vec![(original[0].0.clone(), "INACTIVE".to_owned())]
    );

    accept_and_settle(&stack, &device).await;
    assert_eq!(
        device_certificates(&stack, &device).await,
        original,
        "re-acceptance reuses the certificate"
    );
    assert_eq!(stack.certificates().await.len(), 1);
    assert_eq!(
        stack.mender.deployments(&device).len(),
        1,
        "nothing new to deliver"
    );

    stack.mender.dismiss(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(
        stack.mender.device_status(&device).as_deref(),
        Some("noauth")
    );
    assert_eq!(
        device_certificates(&stack, &device).await,
        vec![(original[0].0.clone(), "INACTIVE".to_owned())]
    );
    assert!(stack.bus.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_and_reject_delivered_in_reverse_never_end_active() {
    let stack = Stack::start().await;
    // A provisioned device that is re-accepted and then rejected, whose two
    // events arrive in the opposite order.
    let device = stack.mender.add_device(TENANT, "pending", None);
    accept_and_settle(&stack, &device).await;
    // Change Mender's state without its webhooks, then deliver them reversed.
    stack.mender.webhook_integration(TENANT).unwrap();
    let status = |s: &str| {
        json!({"id": uuid::Uuid::new_v4().to_string(), "type": "device-status-changed",
        "data": {"id": device, "status": s}, "time": "2026-01-01T00:00:00Z"})
    };
    stack.mender.reject(&device).await;
    stack.bus.wait_idle().await;
    stack.post_webhook(&status("rejected")).await;
    stack.post_webhook(&status("accepted")).await;
    stack.bus.wait_idle().await;
    let certificates = device_certificates(&stack, &device).await;
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0].1, "INACTIVE");

    // A device rejected before it was ever provisioned: the late "accepted"
    // event creates nothing.
    let fresh = stack.mender.add_device(TENANT, "rejected", None);
    let fresh_status = |s: &str| {
        json!({"id": uuid::Uuid::new_v4().to_string(), "type": "device-status-changed",
        "data": {"id": fresh, "status": s}, "time": "2026-01-01T00:00:00Z"})
    };
    stack.post_webhook(&fresh_status("rejected")).await;
    stack.post_webhook(&fresh_status("accepted")).await;
    stack.bus.wait_idle().await;
    assert!(stack.thing_attributes(&fresh).await.is_none());
    assert_eq!(stack.certificates().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_removes_everything_and_repeats_harmlessly() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "pending", None);
    accept_and_settle(&stack, &device).await;
    assert_eq!(stack.certificates().await.len(), 1);
    // The device's shadows, classic and named: AWS keeps them when the
    // Thing goes, so the bridge deletes them itself.
    let shadows = aws_sdk_iotdataplane::Client::new(&stack.inspect);
    for name in [None, Some("telemetry"), Some("settings")] {
        shadows
            .update_thing_shadow()
            .thing_name(&device)
            .set_shadow_name(name.map(str::to_owned))
            .payload(aws_sdk_iotdataplane::primitives::Blob::new(
                r#"{"state":{"reported":{"on":true}}}"#,
            ))
            .send()
            .await
            .unwrap();
    }
    stack.aws_proxy.reset_calls();

    let deliveries = stack.mender.decommission(&device).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].event_type, "device-decommissioned");
    stack.bus.wait_idle().await;
    assert!(stack.thing_attributes(&device).await.is_none());
    assert!(stack.certificates().await.is_empty());
    assert!(stack.policy_targets().await.is_empty());
    // Listed and deleted one by one before the Thing (the emulator, unlike
    // AWS, would drop them with the Thing: hence the count of calls).
    assert_eq!(stack.aws_proxy.count("ListNamedShadowsForThing"), 1);
    assert_eq!(stack.aws_proxy.count("DeleteThingShadow"), 3);

    let again = json!({"id": uuid::Uuid::new_v4().to_string(), "type": "device-decommissioned",
        "data": {"id": device}, "time": "2026-01-01T00:00:00Z"});
    assert_eq!(stack.post_webhook(&again).await.status(), 202);
    stack.bus.wait_idle().await;
    assert!(stack.bus.dead_letters().is_empty());
    let last = stack.bus.deliveries().pop().unwrap();
    assert_eq!(last.result.unwrap().outcome, Some(Outcome::Nothing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_thing_of_the_same_name_is_left_untouched() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "accepted", None);
    stack
        .iot()
        .create_thing()
        .thing_name(&device)
        .send()
        .await
        .unwrap();
    let report = handle(
        stack.lifecycle(),
        envelope(&stack, DetailType::DeviceAccepted, &device),
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Conflict));
    assert!(stack.certificates().await.is_empty());
    assert_eq!(
        stack.thing_attributes(&device).await,
        Some(Default::default())
    );
    assert!(
        !stack
            .mender
            .configuration(&device)
            .unwrap_or_default()
            .contains_key(CERTIFICATE_KEY)
    );
}

/// An event for a device already provisioned writes nothing. An
/// acceptance's webhook that comes after the provisioning is done finds the
/// record the provisioning kept: it reads the Thing and nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_provisioned_device_causes_no_aws_writes() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "pending", None);
    accept_and_settle(&stack, &device).await;
    stack.aws_proxy.reset_calls();
    let configuration_reads = || {
        stack
            .mender_proxy
            .count("GET /api/management/v1/deviceconfig/configurations/device/{id}")
    };
    let read_before = configuration_reads();
    let report = handle(
        stack.lifecycle(),
        envelope(&stack, DetailType::DeviceAccepted, &device),
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, Some(Outcome::InSync));
    let iot_writes: Vec<_> = stack
        .aws_proxy
        .calls()
        .into_iter()
        .filter(|c| {
            ![
                "DescribeThing",
                "ListThingPrincipals",
                "DescribeCertificate",
                "ListAttachedPolicies",
                "GetItem",
                "PutItem",
                "DeleteItem",
                "GetSecretValue",
            ]
            .contains(&c.operation.as_str())
        })
        .collect();
    assert!(iot_writes.is_empty(), "{iot_writes:?}");
    assert_eq!(stack.mender.deployments(&device).len(), 1);
    // The provisioning kept the device's record, of the Mender state the
    // event still finds: the Thing is read, nothing else in the registry
    // or in Mender's configuration.
    let registry: Vec<String> = stack
        .aws_proxy
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .filter(|o| IOT_REGISTRY_READS.contains(&o.as_str()))
        .collect();
    assert_eq!(registry, ["DescribeThing"]);
    assert_eq!(configuration_reads(), read_before);
}

/// Every call provisioning makes, in AWS and in Mender. The endpoint comes
/// first: it is looked up once per tenant and then cached.
const PROVISIONING_CALLS: &[(&str, bool)] = &[
    ("DescribeEndpoint", true),
    ("PutItem", true),
    ("DescribeThing", true),
    ("CreateThing", true),
    ("CreateCertificateFromCsr", true),
    ("AttachPolicy", true),
    ("AttachThingPrincipal", true),
    ("GET /api/management/v2/devauth/devices/{id}", false),
    (
        "GET /api/management/v1/deviceconfig/configurations/device/{id}",
        false,
    ),
    (
        "PUT /api/management/v1/deviceconfig/configurations/device/{id}",
        false,
    ),
    (
        "POST /api/management/v1/deviceconfig/configurations/device/{id}/deploy",
        false,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_provisioning_step_leaves_nothing_and_the_retry_completes() {
    let stack = Stack::start().await;
    for (provisioned, (operation, aws)) in PROVISIONING_CALLS.iter().enumerate() {
        let proxy = if *aws {
            &stack.aws_proxy
        } else {
            &stack.mender_proxy
        };
        let device = stack.mender.add_device(TENANT, "accepted", None);
        let before = BTreeMap::from([("keep".to_owned(), "me".to_owned())]);
        stack.mender.set_configuration(&device, before.clone());

        proxy.inject(FaultRule::always(operation, Fault::ServerError));
        let failed = handle(
            stack.lifecycle(),
            envelope(&stack, DetailType::DeviceAccepted, &device),
        )
        .await;
        proxy.clear();
        assert!(failed.is_err(), "{operation}: {failed:?}");
        assert!(proxy.count(operation) > 0, "{operation} was never called");
        assert_eq!(
            stack.certificates().await.len(),
            provisioned,
            "{operation}: orphaned certificate"
        );
        assert_eq!(
            stack.policy_targets().await.len(),
            provisioned,
            "{operation}: dangling policy attachment"
        );
        assert!(
            stack.thing_attributes(&device).await.is_none(),
            "{operation}: orphaned Thing"
        );
        assert_eq!(
            stack.mender.configuration(&device).unwrap(),
            before,
            "{operation}: configuration not restored"
        );

        let retried = handle(
            stack.lifecycle(),
            envelope(&stack, DetailType::DeviceAccepted, &device),
        )
        .await
        .unwrap();
        assert_eq!(retried.outcome, Some(Outcome::Provisioned), "{operation}");
        assert_eq!(
            device_certificates(&stack, &device).await.len(),
            1,
            "{operation}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_transient_failure_at_any_step_is_absorbed() {
    let stack = Stack::start().await;
    for fault in [Fault::Throttle, Fault::ServerError, Fault::Reset] {
        for (operation, aws) in PROVISIONING_CALLS {
            let proxy = if *aws {
                &stack.aws_proxy
            } else {
                &stack.mender_proxy
            };
            let device = stack.mender.add_device(TENANT, "accepted", None);
            proxy.inject(FaultRule::once(operation, fault.clone()));
            let report = handle(
                stack.lifecycle(),
                envelope(&stack, DetailType::DeviceAccepted, &device),
            )
            .await;
            proxy.clear();
            assert_eq!(
                report.unwrap().outcome,
                Some(Outcome::Provisioned),
                "{operation} {fault:?}"
            );
            assert_eq!(
                device_certificates(&stack, &device).await.len(),
                1,
                "{operation} {fault:?}"
            );
        }
    }
}

/// Holds provisioning in its last stage (asking Mender to send the
/// configuration to the device) for `duration`.
fn hold_deployment(stack: &Stack, duration: std::time::Duration) {
    stack.mender_proxy.inject(FaultRule::once(
        "POST /api/management/v1/deviceconfig/configurations/device/{id}/deploy",
        Fault::Latency(duration),
    ));
}

/// The outcome of every event the bus delivered (all must have succeeded).
fn outcomes(stack: &Stack) -> Vec<Outcome> {
    stack
        .bus
        .deliveries()
        .iter()
        .map(|d| d.result.as_ref().unwrap().outcome.unwrap())
        .collect()
}

/// Events for a device that is being converged are handed to the invocation
/// holding its lease, which converges again before letting go: nothing
/// waits, fails or is retried, and the last pass sees Mender's last word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_a_busy_device_are_handed_to_the_lease_holder() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "pending", None);
    hold_deployment(&stack, std::time::Duration::from_secs(2));
    let accepted = stack.mender.accept(&device).await;
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    // The keys reach Mender's configuration in the stage before deployment.
    let mut waited = 0;
    while !stack
        .mender
        .configuration(&device)
        .unwrap_or_default()
        .contains_key(CERTIFICATE_KEY)
    {
        assert!(waited < 500, "provisioning never reached deployment");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    let rejected = stack.mender.reject(&device).await;
    assert!(rejected.iter().all(|d| d.result == Ok(202)), "{rejected:?}");
    stack.bus.wait_idle().await;

    let deliveries = stack.bus.deliveries();
    assert_eq!(deliveries.len(), 3);
    assert!(stack.bus.dead_letters().is_empty());
    assert!(deliveries.iter().all(|d| d.attempts == 1), "{deliveries:?}");
    let outcomes = outcomes(&stack);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::HandedOver)
            .count(),
        2,
        "{outcomes:?}"
    );
    // The holder's last pass saw the rejection: one certificate, INACTIVE.
    let certificates = device_certificates(&stack, &device).await;
    assert_eq!(certificates.len(), 1, "{certificates:?}");
    assert_eq!(certificates[0].1, "INACTIVE");
    assert_eq!(stack.certificates().await.len(), 1);
}

/// Only a young lease is trusted with a hand-over: an older one may belong to
/// an invocation that died, so the event fails instead (and is retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_young_lease_takes_a_hand_over() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "accepted", None);
    let direct = stack.direct.clone();
    let dynamo = aws_sdk_dynamodb::Client::new(&direct);
    let key = format!("lease#{TENANT}#{device}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let plant_lease = |taken_at: u64| {
        dynamo
            .put_item()
            .table_name(integration_tests::stack::TABLE)
            .item("pk", AttributeValue::S(key.clone()))
            .item("owner", AttributeValue::S("an-invocation".into()))
            .item("taken_at", AttributeValue::N(taken_at.to_string()))
            .item("expires_at", AttributeValue::N((now + 60).to_string()))
            .send()
    };
    let rerun_requested = || async {
        let item = dynamo
            .get_item()
            .table_name(integration_tests::stack::TABLE)
            .key("pk", AttributeValue::S(key.clone()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        item.contains_key("rerun")
    };
    let event = || envelope(&stack, DetailType::DeviceAccepted, &device);

    plant_lease(now - 60).await.unwrap();
    let error = handle(stack.lifecycle(), event()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("being converged by another invocation"),
        "{error}"
    );
    assert!(!rerun_requested().await);

    plant_lease(now).await.unwrap();
    let report = handle(stack.lifecycle(), event()).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::HandedOver));
    assert!(rerun_requested().await);
    assert!(stack.thing_attributes(&device).await.is_none());
}

/// The second webhook of an acceptance, handed to the holder, costs the
/// holder one more look at Mender, and no registry reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pass_that_finds_nothing_new_reads_no_certificates() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "pending", None);
    hold_deployment(&stack, std::time::Duration::from_secs(1));
    stack.aws_proxy.reset_calls();
    accept_and_settle(&stack, &device).await;

    let outcomes = outcomes(&stack);
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.contains(&Outcome::Provisioned), "{outcomes:?}");
    assert!(outcomes.contains(&Outcome::HandedOver), "{outcomes:?}");
    let count = |operation: &str| {
        stack
            .aws_proxy
            .calls()
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    };
    assert_eq!(count("DescribeThing"), 1, "the first pass's");
    assert_eq!(count("ListThingPrincipals"), 0);
    assert_eq!(count("DescribeCertificate"), 0);
    assert_eq!(device_certificates(&stack, &device).await.len(), 1);
}

/// A certificate provisioning could neither attach to the Thing nor delete
/// is parked on the Thing, never left attached to nothing (where no
/// reconcile would find it); the retry finds it there and retires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeletable_unattached_certificate_is_parked_on_the_thing() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "accepted", None);
    // Attaching fails for every attempt the SDK makes (4 in tests) and no
    // more; deleting fails for good.
    stack.aws_proxy.inject(FaultRule::times(
        "AttachThingPrincipal",
        Fault::ServerError,
        4,
    ));
    stack
        .aws_proxy
        .inject(FaultRule::always("DeleteCertificate", Fault::ServerError));
    let event = || envelope(&stack, DetailType::DeviceAccepted, &device);
    assert!(handle(stack.lifecycle(), event()).await.is_err());

    let certificates = stack.certificates().await;
    assert_eq!(certificates.len(), 1, "{certificates:?}");
    let (_, arn, status) = &certificates[0];
    assert_eq!(status, "INACTIVE");
    assert_eq!(stack.thing_principals(&device).await, vec![arn.clone()]);

    stack.aws_proxy.clear();
    let report = handle(stack.lifecycle(), event()).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::Provisioned));
    let certificates = device_certificates(&stack, &device).await;
    assert_eq!(certificates.len(), 1, "{certificates:?}");
    assert_eq!(certificates[0].1, "ACTIVE");
    assert_eq!(stack.certificates().await.len(), 1);
}
