//! Two organizations whose integrations share one AWS account and region:
//! each one's webhooks, reconcile runs (on demand and scheduled), shadow
//! calls, decommissions and integration removal leave the other's Things,
//! certificates, attachments and shadows exactly as they were. And Things
//! the bridge made before Things named their integration are claimed only on
//! proof.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bridge::converge::Outcome;
use bridge::events::DetailType;
use bridge::iot::{INTEGRATION_ATTRIBUTE, MARKER_ATTRIBUTE, MARKER_VALUE, TENANT_ATTRIBUTE};
use integration_tests::resilience::envelope;
use integration_tests::stack::{Organization, POLICY, Stack, TENANT, api, key_pair_setup};
use reqwest::Method;
use serde_json::{Value, json};

/// One Thing as AWS holds it: attributes, each principal with its status
/// and policies, and the classic shadow's desired and reported state.
#[derive(Debug, PartialEq)]
struct ThingRecord {
    attributes: BTreeMap<String, String>,
    principals: Vec<(String, String, Vec<String>)>,
    shadow: Option<Value>,
}

/// Every Thing an organization's integration owns, field by field.
async fn owned_by(stack: &Stack, organization: &Organization) -> BTreeMap<String, ThingRecord> {
    let iot = stack.iot();
    let data = aws_sdk_iotdataplane::Client::new(&stack.inspect);
    let status: BTreeMap<String, String> = stack
        .certificates()
        .await
        .into_iter()
        .map(|(_, arn, status)| (arn, status))
        .collect();
    let listed = iot
        .list_things()
        .attribute_name(INTEGRATION_ATTRIBUTE)
        .attribute_value(&organization.integration_id)
        .max_results(250)
        .send()
        .await
        .unwrap();
    let mut records = BTreeMap::new();
    for thing in listed.things() {
        let name = thing.thing_name().unwrap().to_owned();
        let attributes = thing
            .attributes()
            .map(|a| a.clone().into_iter().collect())
            .unwrap_or_default();
        let mut principals = Vec::new();
        for arn in stack.thing_principals(&name).await {
            let policies = iot
                .list_attached_policies()
                .target(&arn)
                .send()
                .await
                .unwrap()
                .policies()
                .iter()
                .filter_map(|p| p.policy_name().map(str::to_owned))
                .collect();
            let state = status.get(&arn).cloned().unwrap_or_default();
            principals.push((arn, state, policies));
        }
        principals.sort();
        let shadow = data
            .get_thing_shadow()
            .thing_name(&name)
            .send()
            .await
            .ok()
            .and_then(|o| o.payload().map(|p| p.as_ref().to_vec()))
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .map(|mut doc| doc["state"].take());
        records.insert(
            name,
            ThingRecord {
                attributes,
                principals,
                shadow,
            },
        );
    }
    records
}

/// `count` devices of `organization`, accepted in Mender (the webhooks
/// provision them).
async fn accepted_devices(stack: &Stack, organization: &Organization, count: usize) -> Vec<String> {
    let mut devices = Vec::new();
    for _ in 0..count {
        let device = stack
            .mender
            .add_device(&organization.tenant_id, "pending", None);
        stack.mender.accept(&device).await;
        devices.push(device);
    }
    stack.bus.wait_idle().await;
    devices
}

async fn run(stack: &Stack, organization: &Organization) -> Value {
    stack
        .reconcile_run_of(
            &organization.integration_id,
            &organization.admin_token,
            None,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_organizations_in_one_account_leave_each_other_exactly_as_they_were() {
    let stack = Stack::start().await;
    let acme = stack.organization();
    let globex = stack.seed_organization("globex").await;

    let acme_devices = accepted_devices(&stack, &acme, 4).await;
    let globex_devices = accepted_devices(&stack, &globex, 4).await;
    // A shadow of each organization's device, so shadows are compared too.
    for (organization, device) in [(&acme, &acme_devices[0]), (&globex, &globex_devices[0])] {
        let written = stack
            .call(
                Method::PUT,
                &api(&format!(
                    "/devices/{device}/state/{}",
                    organization.integration_id
                )),
                Some(&organization.admin_token),
                Some(&json!({"desired": {"owner": organization.tenant_id}})),
            )
            .await;
        assert_eq!(written.status, 200, "{}", written.text);
    }
    let acme_before = owned_by(&stack, &acme).await;
    let globex_before = owned_by(&stack, &globex).await;
    assert_eq!(acme_before.len(), 4);
    assert_eq!(globex_before.len(), 4);
    for (name, record) in &acme_before {
        assert_eq!(record.attributes[TENANT_ATTRIBUTE], TENANT, "{name}");
        assert_eq!(record.attributes[MARKER_ATTRIBUTE], MARKER_VALUE, "{name}");
        assert_eq!(record.principals.len(), 1, "{name}");
        assert_eq!(record.principals[0].1, "ACTIVE", "{name}");
        assert_eq!(record.principals[0].2, [POLICY], "{name}");
    }

    // Each organization's on-demand run: the other's Things are no orphans.
    for (organization, other, other_before) in [
        (&acme, &globex, &globex_before),
        (&globex, &acme, &acme_before),
    ] {
        let done = run(&stack, organization).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["counts"]["removed"], 0, "{done}");
        assert_eq!(done["counts"]["seen"], 4, "{done}");
        assert_eq!(&owned_by(&stack, other).await, other_before);
    }

    // The schedule: a run for each organization, neither touches the other.
    let reconciler = stack.bus.reconciler();
    let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    bridge::reconcile::handle(reconciler, &stack.bus, scheduled, Instant::now())
        .await
        .unwrap();
    stack.bus.wait_idle().await;
    assert_eq!(owned_by(&stack, &acme).await, acme_before);
    assert_eq!(owned_by(&stack, &globex).await, globex_before);

    // A Thing of acme's named like a globex device (as another Mender server
    // of acme's could have): globex's acceptance is a conflict, nothing more.
    let shared_name = stack.mender.add_device("globex", "pending", None);
    stack
        .iot()
        .create_thing()
        .thing_name(&shared_name)
        .attribute_payload(acme.owner().marker(false))
        .send()
        .await
        .unwrap();
    let acme_with_shared = owned_by(&stack, &acme).await;
    stack.mender.accept(&shared_name).await;
    stack.bus.wait_idle().await;
    let report = bridge::lifecycle::handle(
        stack.lifecycle(),
        bridge::events::BusEnvelope {
            detail_type: DetailType::DeviceAccepted,
            detail: bridge::events::LifecycleEvent {
                tenant_id: globex.tenant_id.clone(),
                integration_id: globex.integration_id.clone(),
                ..envelope(&stack, DetailType::DeviceAccepted, &shared_name).detail
            },
        },
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Conflict));
    assert_eq!(owned_by(&stack, &acme).await, acme_with_shared);

    // Globex rejects, decommissions, reads and writes shadows, removes its
    // integration: acme's Things stay exactly as they were.
    stack.mender.reject(&globex_devices[1]).await;
    stack.mender.decommission(&globex_devices[2]).await;
    stack.bus.wait_idle().await;
    let shadow = stack
        .call(
            Method::PATCH,
            &api(&format!(
                "/devices/{}/state/{}",
                globex_devices[0], globex.integration_id
            )),
            Some(&globex.admin_token),
            Some(&json!({"desired": {"mode": "eco"}})),
        )
        .await;
    assert_eq!(shadow.status, 200, "{}", shadow.text);
    // Acme's admin cannot reach globex's shadow, nor globex's acme's.
    let crossed = stack
        .call(
            Method::GET,
            &api(&format!(
                "/devices/{}/state/{}",
                acme_devices[0], globex.integration_id
            )),
            Some(&globex.admin_token),
            None,
        )
        .await;
    assert_eq!(crossed.status, 404, "{}", crossed.text);
    assert_eq!(owned_by(&stack, &acme).await, acme_with_shared);
    let globex_after = owned_by(&stack, &globex).await;
    assert!(
        !globex_after.contains_key(&globex_devices[2]),
        "decommissioned"
    );
    assert_eq!(
        globex_after[&globex_devices[1]].principals[0].1, "INACTIVE",
        "rejected"
    );

    let removed = stack
        .call(
            Method::DELETE,
            &api(&format!("/integrations/{}", globex.integration_id)),
            Some(&globex.admin_token),
            None,
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_eq!(owned_by(&stack, &acme).await, acme_with_shared);
    // Acme's own run then removes the Thing it owns whose device its Mender
    // does not know (that one only), and nothing of globex's.
    let done = run(&stack, &acme).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["removed"], 1, "{done}");
    assert_eq!(owned_by(&stack, &acme).await, acme_before);
    assert_eq!(owned_by(&stack, &globex).await, globex_after, "Things stay");
}

/// A Thing marked `managed_by` only, as the bridge made them before Things
/// named their integration, with `certificate_delivered` saying whether the
/// device's Mender configuration holds its certificate.
async fn legacy_thing(stack: &Stack, certificate_delivered: bool) -> String {
    unowned_thing(
        stack,
        Some((MARKER_ATTRIBUTE, MARKER_VALUE)),
        certificate_delivered,
    )
    .await
}

/// A Thing as Mender's own AWS IoT Core integration leaves it: no
/// attribute at all, the device policy on its certificate.
async fn native_thing(stack: &Stack, certificate_delivered: bool) -> String {
    let device = unowned_thing(stack, None, certificate_delivered).await;
    let iot = stack.iot();
    let principals = stack.thing_principals(&device).await;
    iot.attach_policy()
        .policy_name(POLICY)
        .target(&principals[0])
        .send()
        .await
        .unwrap();
    device
}

/// An accepted device's Thing the integration did not make, marked with
/// `attribute` (if any), with an ACTIVE certificate attached; the device's
/// configuration in Mender holds that certificate when
/// `certificate_delivered`, another one otherwise.
async fn unowned_thing(
    stack: &Stack,
    attribute: Option<(&str, &str)>,
    certificate_delivered: bool,
) -> String {
    let device = stack.mender.add_device(TENANT, "accepted", None);
    let iot = stack.iot();
    let mut attributes = aws_sdk_iot::types::AttributePayload::builder();
    if let Some((name, value)) = attribute {
        attributes = attributes.attributes(name, value);
    }
    iot.create_thing()
        .thing_name(&device)
        .attribute_payload(attributes.build())
        .send()
        .await
        .unwrap();
    let key = bridge::certificates::DeviceKey::generate(&device).unwrap();
    let certificate = iot
        .create_certificate_from_csr()
        .certificate_signing_request(&key.csr_pem)
        .set_as_active(true)
        .send()
        .await
        .unwrap();
    let arn = certificate.certificate_arn().unwrap();
    iot.attach_thing_principal()
        .thing_name(&device)
        .principal(arn)
        .send()
        .await
        .unwrap();
    let pem = if certificate_delivered {
        certificate.certificate_pem().unwrap().to_owned()
    } else {
        "-----BEGIN CERTIFICATE-----\nsomeone else's\n-----END CERTIFICATE-----".to_owned()
    };
    stack.mender.set_configuration(
        &device,
        BTreeMap::from([
            ("awsCertificate".to_owned(), pem),
            ("awsPrivateKey".to_owned(), key.private_key_pem().to_owned()),
            ("awsEndpoint".to_owned(), "e.iot".to_owned()),
        ]),
    );
    device
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn things_made_before_ownership_are_claimed_only_on_proof() {
    let stack = Stack::start().await;
    let proven = legacy_thing(&stack, true).await;
    let unproven = legacy_thing(&stack, false).await;
    let before = stack.thing_attributes(&unproven).await;

    let done = run(&stack, &stack.organization()).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["conflicts"], 1, "{done}");

    // Proven: claimed, and converged like any Thing of the integration.
    let claimed = stack.thing_attributes(&proven).await.unwrap();
    assert_eq!(claimed[INTEGRATION_ATTRIBUTE], stack.integration_id);
    assert_eq!(claimed[TENANT_ATTRIBUTE], TENANT);
    assert_eq!(claimed[MARKER_ATTRIBUTE], MARKER_VALUE);
    let principals = stack.thing_principals(&proven).await;
    assert_eq!(principals.len(), 1, "kept its delivered certificate");
    // Unproven: untouched, its certificate still attached and ACTIVE.
    assert_eq!(stack.thing_attributes(&unproven).await, before);
    let certificates = stack.certificates().await;
    let attached = stack.thing_principals(&unproven).await;
    assert_eq!(attached.len(), 1);
    assert!(
        certificates
            .iter()
            .any(|(_, arn, status)| *arn == attached[0] && status == "ACTIVE")
    );
}

/// Migrating from Mender's own integration: its Things carry no marker.
/// They are conflicts until the admin asks to adopt existing Things; then
/// each is adopted only on proof (its attached certificate is the one in
/// the device's configuration), keeps its certificate and configuration,
/// and is managed from then on. One without proof stays untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn things_of_menders_own_integration_are_adopted_when_asked_and_on_proof() {
    let stack = Stack::start().await;
    let acme = stack.organization();
    let proven = native_thing(&stack, true).await;
    let unproven = native_thing(&stack, false).await;
    let configuration = stack.mender.configuration(&proven);
    let principals = stack.thing_principals(&proven).await;

    // Not asked: both are conflicts, and nothing is written.
    stack.aws_proxy.reset_calls();
    let done = run(&stack, &acme).await;
    assert_eq!(done["counts"]["conflicts"], 2, "{done}");
    assert_eq!(stack.thing_attributes(&proven).await, Some(HashMap::new()));
    assert_eq!(writes(&stack), Vec::<String>::new());

    // Asked.
    let mut body = key_pair_setup(POLICY);
    body["adopt_existing"] = json!(true);
    let changed = stack
        .call(
            Method::PUT,
            &api(&format!("/integrations/{}", acme.integration_id)),
            Some(&acme.admin_token),
            Some(&body),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["adopt_existing"], true);
    stack.aws_proxy.reset_calls();
    let done = run(&stack, &acme).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["conflicts"], 1, "{done}");

    // Proven: adopted with its certificate and configuration as they were.
    let adopted = stack.thing_attributes(&proven).await.unwrap();
    assert_eq!(adopted[MARKER_ATTRIBUTE], MARKER_VALUE);
    assert_eq!(adopted[INTEGRATION_ATTRIBUTE], stack.integration_id);
    assert_eq!(stack.thing_principals(&proven).await, principals);
    assert_eq!(stack.mender.configuration(&proven), configuration);
    assert_eq!(stack.aws_proxy.count("CreateCertificateFromCsr"), 0);
    // Unproven: untouched.
    assert_eq!(
        stack.thing_attributes(&unproven).await,
        Some(HashMap::new())
    );
    assert_eq!(stack.thing_principals(&unproven).await.len(), 1);

    // Managed from then on: rejected in Mender, its certificate goes INACTIVE.
    stack.mender.reject(&proven).await;
    stack.bus.wait_idle().await;
    let status = stack
        .certificates()
        .await
        .into_iter()
        .find(|(_, arn, _)| *arn == principals[0])
        .map(|(_, _, status)| status);
    assert_eq!(status.as_deref(), Some("INACTIVE"));
}

/// The AWS IoT registry writes the bridge made, by operation.
fn writes(stack: &Stack) -> Vec<String> {
    stack
        .aws_proxy
        .calls()
        .into_iter()
        .map(|call| call.operation)
        .filter(|operation| {
            // DynamoDB's leases and run records are not the registry.
            !operation.ends_with("Item")
                && ["Create", "Update", "Delete", "Attach", "Detach"]
                    .iter()
                    .any(|verb| operation.starts_with(verb))
        })
        .collect()
}
