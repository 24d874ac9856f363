//! Reconcile runs: backfill and drift repair across a whole organization,
//! resumption after a time limit, throttling, and the
//! `integrations/{id}/reconcile` routes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bridge::config::DeepCheck;
use bridge::converge::plan::{CERTIFICATE_KEY, PRIVATE_KEY_KEY};
use bridge::events::DetailType;
use bridge::lifecycle::handle;
use bridge::reconcile::{Census, ReconcileRun, RunRequest, RunState, step};
use futures::StreamExt;
use integration_tests::fault_proxy::{Fault, FaultRule, IOT_REGISTRY_READS, IOT_REGISTRY_WRITES};
use integration_tests::resilience::envelope;
use integration_tests::stack::{POLICY, Stack, TENANT};
use reqwest::Method;

fn iot_writes(stack: &Stack) -> usize {
    IOT_REGISTRY_WRITES
        .iter()
        .map(|op| stack.aws_proxy.count(op))
        .sum()
}

/// Every call to AWS IoT Core's registry (its read quotas are the scarce ones).
fn registry_calls(stack: &Stack) -> usize {
    iot_writes(stack)
        + IOT_REGISTRY_READS
            .iter()
            .map(|op| stack.aws_proxy.count(op))
            .sum::<usize>()
}

/// Provisions devices the way a webhook would, a few at a time.
async fn provision(stack: &Stack, devices: &[String]) {
    futures::stream::iter(devices)
        .for_each_concurrent(8, |device| async move {
            let envelope = envelope(stack, DetailType::DeviceAccepted, device);
            handle(stack.lifecycle(), envelope).await.unwrap();
        })
        .await;
}

/// Runs a whole reconcile through the API and waits until it is done.
async fn run_through_api(stack: &Stack) -> ReconcileRun {
    serde_json::from_value(stack.reconcile_run(&stack.admin_token, None).await).unwrap()
}

/// Deletes a device's Thing and certificates behind the bridge's back.
async fn delete_thing(stack: &Stack, device: &str) {
    let iot = stack.iot();
    for arn in stack.thing_principals(device).await {
        let id = arn.rsplit('/').next().unwrap();
        iot.detach_policy()
            .policy_name(POLICY)
            .target(&arn)
            .send()
            .await
            .unwrap();
        iot.detach_thing_principal()
            .thing_name(device)
            .principal(&arn)
            .send()
            .await
            .unwrap();
        iot.update_certificate()
            .certificate_id(id)
            .new_status("INACTIVE".into())
            .send()
            .await
            .unwrap();
        iot.delete_certificate()
            .certificate_id(id)
            .send()
            .await
            .unwrap();
    }
    iot.delete_thing().thing_name(device).send().await.unwrap();
}

/// A Thing marked as the stack's integration's, with an ACTIVE certificate attached.
async fn plant_active_thing(stack: &Stack, name: &str) {
    let iot = stack.iot();
    iot.create_thing()
        .thing_name(name)
        .attribute_payload(stack.owner().marker(false))
        .send()
        .await
        .unwrap();
    let key = bridge::certificates::DeviceKey::generate(name).unwrap();
    let certificate = iot
        .create_certificate_from_csr()
        .certificate_signing_request(&key.csr_pem)
        .set_as_active(true)
        .send()
        .await
        .unwrap();
    let arn = certificate.certificate_arn().unwrap();
    iot.attach_policy()
        .policy_name(POLICY)
        .target(arn)
        .send()
        .await
        .unwrap();
    iot.attach_thing_principal()
        .thing_name(name)
        .principal(arn)
        .send()
        .await
        .unwrap();
}

async fn statuses(stack: &Stack, device: &str) -> Vec<String> {
    let attached = stack.thing_principals(device).await;
    let mut statuses = Vec::new();
    for arn in attached {
        let id = arn.rsplit('/').next().unwrap();
        let described = stack
            .iot()
            .describe_certificate()
            .certificate_id(id)
            .send()
            .await
            .unwrap();
        statuses.push(
            described
                .certificate_description()
                .unwrap()
                .status()
                .unwrap()
                .as_str()
                .to_owned(),
        );
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_converges_a_thousand_devices_with_planted_drift_and_a_second_run_writes_nothing() {
    let stack = Stack::start().await;
    let add = |status: &str, n: usize| {
        (0..n)
            .map(|_| stack.mender.add_device(TENANT, status, None))
            .collect::<Vec<_>>()
    };
    let accepted = add("accepted", 600);
    let rejected = add("rejected", 150);
    let _pending = add("pending", 150);
    let _preauthorized = add("preauthorized", 50);
    let _noauth = add("noauth", 50);

    // 100 accepted devices were provisioned before; then drift happened.
    provision(&stack, &accepted[..100]).await;
    let missing_thing = &accepted[0..20];
    let inactive = &accepted[20..40];
    let lost_keys = &accepted[40..60];
    for device in missing_thing {
        delete_thing(&stack, device).await;
    }
    for device in inactive {
        stack.make_inactive(device).await;
    }
    for device in lost_keys {
        let mut configuration = stack.mender.configuration(device).unwrap();
        configuration.remove(CERTIFICATE_KEY);
        configuration.remove(PRIVATE_KEY_KEY);
        stack.mender.set_configuration(device, configuration);
    }
    // Rejected devices whose certificates are still ACTIVE.
    let active_but_rejected = &rejected[..10];
    for device in active_but_rejected {
        plant_active_thing(&stack, device).await;
    }
    // Things of ours whose devices Mender no longer knows.
    let orphans: Vec<String> = (0..20).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for orphan in &orphans {
        plant_active_thing(&stack, orphan).await;
    }
    // A Thing of a device's name that someone else made.
    let foreign = &accepted[599];
    stack
        .iot()
        .create_thing()
        .thing_name(foreign)
        .send()
        .await
        .unwrap();

    let run = run_through_api(&stack).await;
    assert_eq!(run.state, RunState::Done, "{run:?}");
    assert_eq!(run.counts.failed, 0, "{:?}", run.failures);
    assert_eq!(run.counts.seen, 1000);
    assert_eq!(
        run.counts.provisioned,
        499 + 20 + 20,
        "backfill + missing Things + lost keys"
    );
    assert_eq!(
        run.counts.repaired, 20,
        "inactive certificates of accepted devices"
    );
    assert_eq!(run.counts.disabled, 10);
    assert_eq!(run.counts.removed, 20);
    assert_eq!(run.counts.conflicts, 1);
    // Where the run left the devices, for the admin: every accepted device
    // provisioned but the one in conflict, the rejected ones with a Thing
    // disabled; devices with nothing in AWS are not counted.
    let census = Census {
        provisioned: 599,
        disabled: 10,
        conflict: 1,
        failed: 0,
    };
    assert_eq!((run.total, run.devices), (Some(1000), Some(census)));

    for device in &accepted[..599] {
        assert_eq!(statuses(&stack, device).await, ["ACTIVE"], "{device}");
        let configuration = stack.mender.configuration(device).unwrap();
        assert!(
            configuration.contains_key(CERTIFICATE_KEY)
                && configuration.contains_key(PRIVATE_KEY_KEY)
        );
    }
    for device in active_but_rejected {
        assert_eq!(statuses(&stack, device).await, ["INACTIVE"], "{device}");
    }
    for orphan in &orphans {
        assert!(
            stack.thing_attributes(orphan).await.is_none(),
            "orphan {orphan} left"
        );
    }
    assert_eq!(
        stack.thing_attributes(foreign).await,
        Some(Default::default()),
        "foreign Thing changed"
    );
    assert!(stack.thing_principals(foreign).await.is_empty());
    assert_eq!(
        stack.certificates().await.len(),
        599 + 10,
        "no extra certificates"
    );

    // Converged: a second run changes nothing in AWS.
    stack.aws_proxy.reset_calls();
    let second = run_through_api(&stack).await;
    assert_eq!(second.state, RunState::Done);
    assert_eq!(second.counts.failed, 0, "{:?}", second.failures);
    assert_eq!(iot_writes(&stack), 0, "{:?}", second.counts);
    assert_eq!(
        second.counts.provisioned
            + second.counts.repaired
            + second.counts.removed
            + second.counts.disabled,
        0
    );
    assert_eq!(second.devices, Some(census), "counted the same, unchanged");
    let latest = stack
        .call(
            Method::GET,
            &stack.integration_path("/reconcile/latest"),
            Some(&stack.admin_token),
            None,
        )
        .await;
    assert_eq!(
        (latest.status, &latest.body["run_id"]),
        (200, &serde_json::json!(second.run_id)),
        "{}",
        latest.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_where_it_stopped_and_ends_the_same() {
    let stack = Stack::start().await;
    let accepted: Vec<String> = (0..250)
        .map(|_| stack.mender.add_device(TENANT, "accepted", None))
        .collect();
    let orphans: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for orphan in &orphans {
        plant_active_thing(&stack, orphan).await;
    }

    let reconciler = stack.bus.reconciler();
    let mut run = reconciler
        .runs
        .start(
            TENANT,
            &stack.integration_id,
            RunRequest::Sync { confirmed: false },
        )
        .await
        .unwrap();
    // Every invocation hits its time limit at once: one page each, over two
    // walks (the survey, then applying the 3 removals it deferred).
    while run.state == RunState::Running {
        run = step(reconciler, &run.run_id, Instant::now()).await.unwrap();
        assert!(run.invocations <= 20, "no progress: {run:?}");
    }
    assert!(
        run.invocations >= 4,
        "three device pages and a Things page: {}",
        run.invocations
    );
    assert_eq!(run.counts.seen, 250);
    assert_eq!(run.counts.provisioned, 250);
    assert_eq!(run.counts.removed, 3);
    assert_eq!(run.counts.failed, 0, "{:?}", run.failures);
    for device in &accepted {
        assert_eq!(statuses(&stack, device).await, ["ACTIVE"], "{device}");
    }
    assert_eq!(stack.certificates().await.len(), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_on_every_aws_operation_slows_a_run_but_fails_nothing() {
    let stack = Stack::start().await;
    let accepted: Vec<String> = (0..60)
        .map(|_| stack.mender.add_device(TENANT, "accepted", None))
        .collect();
    // One call in four, whatever the operation, is throttled.
    stack
        .aws_proxy
        .inject(FaultRule::one_in("*", Fault::Throttle, 4));
    let run = run_through_api(&stack).await;
    let throttled = stack
        .aws_proxy
        .calls()
        .iter()
        .filter(|c| c.fault.is_some())
        .count();
    stack.aws_proxy.clear();
    assert!(throttled > 100, "throttling was injected: {throttled}");
    assert_eq!(run.state, RunState::Done);
    assert_eq!(run.counts.failed, 0, "{:?}", run.failures);
    assert_eq!(run.counts.provisioned, 60);
    for device in &accepted {
        assert_eq!(statuses(&stack, device).await, ["ACTIVE"], "{device}");
    }
    assert_eq!(
        stack.certificates().await.len(),
        60,
        "no orphaned certificates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_routes_refuse_a_second_run_other_organizations_and_non_admins() {
    let stack = Stack::start().await;
    for _ in 0..5 {
        stack.mender.add_device(TENANT, "accepted", None);
    }
    let latest = stack.integration_path("/reconcile/latest");
    let none = stack
        .call(Method::GET, &latest, Some(&stack.admin_token), None)
        .await;
    assert_eq!(none.status, 404, "{}", none.text);
    assert!(none.text.contains("no reconcile run yet"), "{}", none.text);
    let reconciler = stack.bus.reconciler();
    let held = reconciler
        .runs
        .start(
            TENANT,
            &stack.integration_id,
            RunRequest::Sync { confirmed: false },
        )
        .await
        .unwrap();
    let second = stack
        .call(
            Method::POST,
            &stack.integration_path("/reconcile"),
            Some(&stack.admin_token),
            None,
        )
        .await;
    assert_eq!(second.status, 409, "{}", second.text);
    assert!(
        second.body["error"]
            .as_str()
            .unwrap()
            .contains(&held.run_id)
    );
    let shown = stack
        .call(Method::GET, &latest, Some(&stack.admin_token), None)
        .await;
    assert_eq!(shown.body["run_id"], held.run_id.as_str(), "{}", shown.text);
    let rotation = stack.integration_path("/rotation/latest");
    let other_kind = stack
        .call(Method::GET, &rotation, Some(&stack.admin_token), None)
        .await;
    assert_eq!(other_kind.status, 404, "a sync run is not a rotation run");

    let observer =
        stack
            .mender
            .add_user(TENANT, "observer@acme.test", &["RBAC_ROLE_OBSERVER"], None);
    let observer_token = stack.mender.issue_token(&observer, Duration::from_secs(60));
    let path = stack.integration_path(&format!("/reconcile/{}", held.run_id));
    assert_eq!(
        stack
            .call(Method::GET, &path, Some(&observer_token), None)
            .await
            .status,
        403
    );
    assert_eq!(
        stack
            .call(
                Method::POST,
                &stack.integration_path("/reconcile"),
                None,
                None
            )
            .await
            .status,
        401
    );
    stack.mender.add_tenant("globex", true);
    let foreign = stack.mender.add_user(
        "globex",
        "admin@globex.test",
        &["RBAC_ROLE_PERMIT_ALL"],
        None,
    );
    let foreign_token = stack.mender.issue_token(&foreign, Duration::from_secs(60));
    for path in [&path, &latest] {
        assert_eq!(
            stack
                .call(Method::GET, path, Some(&foreign_token), None)
                .await
                .status,
            404,
            "{path}"
        );
    }
    assert_eq!(
        stack
            .call(
                Method::POST,
                &stack.integration_path("/reconcile"),
                Some(&foreign_token),
                None
            )
            .await
            .status,
        404
    );

    // The held run finishes, releasing the organization for the next one.
    let done = step(
        reconciler,
        &held.run_id,
        Instant::now() + Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(done.state, RunState::Done);
    assert_eq!(done.counts.provisioned, 5);
    let next = stack
        .call(
            Method::POST,
            &stack.integration_path("/reconcile"),
            Some(&stack.admin_token),
            None,
        )
        .await;
    assert_eq!(next.status, 202, "{}", next.text);
    stack.bus.wait_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_starts_a_run_for_every_organization_with_an_integration() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "accepted", None);
    let scheduled =
        serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    let answer = bridge::reconcile::handle(
        stack.bus.reconciler(),
        &stack.bus,
        scheduled,
        Instant::now(),
    )
    .await
    .unwrap();
    assert_eq!(answer["started"].as_array().unwrap().len(), 1, "{answer}");
    stack.bus.wait_idle().await;
    assert_eq!(statuses(&stack, &device).await, ["ACTIVE"]);
    let _ = BTreeMap::<String, String>::new();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_finds_nothing_to_change_reads_the_listings_not_each_device() {
    // As deployed: Mender's largest pages, the deep check's default share.
    let stack = Stack::start_configured(|config| {
        config.deep_check = DeepCheck::at(2);
        config.run_page_size = 500;
    })
    .await;
    let add = |status: &str, n: usize| {
        (0..n)
            .map(|_| stack.mender.add_device(TENANT, status, None))
            .collect::<Vec<_>>()
    };
    let accepted = add("accepted", 700);
    let rejected = add("rejected", 150);
    add("pending", 150);
    for device in &rejected[..40] {
        plant_active_thing(&stack, device).await;
    }
    // The first run provisions and disables; the second looks at what the
    // first changed, and records it.
    let first = stack.sync_run().await;
    assert_eq!(
        (first.counts.provisioned, first.counts.disabled),
        (700, 40),
        "{first:?}"
    );
    let second = stack.sync_run().await;
    assert_eq!(second.counts.in_sync, 1000, "{:?}", second.counts);

    stack.aws_proxy.reset_calls();
    stack.mender_proxy.reset_calls();
    let third = stack.sync_run().await;
    let (registry, mender) = (registry_calls(&stack), stack.mender_proxy.calls().len());
    println!(
        "a run with nothing to change, 1,000 devices: {registry} registry calls, {mender} Mender calls"
    );
    assert_eq!(third.state, RunState::Done);
    assert_eq!(
        (third.counts.seen, third.counts.in_sync, third.counts.failed),
        (1000, 1000, 0),
        "{:?}",
        third.failures
    );
    assert_eq!(
        third.counts.deep_checked, 0,
        "every device was looked at within the deep check's age"
    );
    assert_eq!(iot_writes(&stack), 0);
    assert_eq!(
        third.devices,
        Some(Census {
            provisioned: 700,
            disabled: 40,
            conflict: 0,
            failed: 0,
        })
    );
    // The budgets of issue 17: per 100 devices, at most 2 registry calls
    // and 1 Mender call.
    assert!(
        registry <= 2 * 10,
        "{registry} registry calls for 1,000 devices"
    );
    assert!(mender <= 10, "{mender} Mender calls for 1,000 devices");
    // The 740 Things are listed once, 250 a page: the Things phase goes
    // through the comparison's listing rather than listing them again.
    assert_eq!(stack.aws_proxy.count("ListThings"), 740usize.div_ceil(250));
    assert_eq!(third.managed, 740);
    for per_device in [
        "DescribeThing",
        "ListThingPrincipals",
        "DescribeCertificate",
    ] {
        assert_eq!(stack.aws_proxy.count(per_device), 0, "{per_device}");
    }

    // Drift the listings show is found without the deep check, in the same
    // run: a Thing deleted, a certificate made INACTIVE by hand.
    delete_thing(&stack, &accepted[0]).await;
    stack.make_inactive(&accepted[1]).await;
    stack.aws_proxy.reset_calls();
    let drifted = stack.sync_run().await;
    assert_eq!(
        (
            drifted.counts.provisioned,
            drifted.counts.repaired,
            drifted.counts.deep_checked
        ),
        (1, 1, 0),
        "{drifted:?}"
    );
    for device in &accepted[..2] {
        assert_eq!(statuses(&stack, device).await, ["ACTIVE"], "{device}");
    }
    // Only the two devices were read one by one.
    assert_eq!(stack.aws_proxy.count("DescribeThing"), 2);

    // A Thing of ours whose device Mender does not know, and nothing else
    // changed: the listing keeps no names, so the Things phase lists the
    // Things again to find it by name, and it is removed.
    let orphan = uuid::Uuid::new_v4().to_string();
    plant_active_thing(&stack, &orphan).await;
    let cleaned = stack.sync_run().await;
    assert_eq!(
        (
            cleaned.counts.removed,
            cleaned.counts.failed,
            cleaned.managed
        ),
        (1, 0, 741),
        "{cleaned:?}"
    );
    assert_eq!(
        stack.thing_attributes(&orphan).await,
        None,
        "the Thing is gone"
    );
    assert_eq!(stack.certificates().await.len(), 740);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deep_check_finds_what_no_listing_shows_a_slice_a_run_from_where_the_last_stopped() {
    let stack = Stack::start_configured(|config| {
        config.deep_check = DeepCheck {
            age: Duration::ZERO,
            per_second: None,
            most_per_run: 120,
        };
    })
    .await;
    let accepted: Vec<String> = (0..300)
        .map(|_| stack.mender.add_device(TENANT, "accepted", None))
        .collect();
    stack.sync_run().await;
    stack.sync_run().await;
    // Every device loses its keys in Mender: nothing AWS lists changes.
    for device in &accepted {
        let mut configuration = stack.mender.configuration(device).unwrap();
        configuration.remove(CERTIFICATE_KEY);
        configuration.remove(PRIVATE_KEY_KEY);
        stack.mender.set_configuration(device, configuration);
    }
    let restored = || {
        accepted
            .iter()
            .filter(|device| {
                stack
                    .mender
                    .configuration(device)
                    .unwrap()
                    .contains_key(CERTIFICATE_KEY)
            })
            .count()
    };
    // Each run looks at 120 devices in full, where the last one stopped,
    // and repairs what it finds; the third comes round to the start again.
    let mut repaired = 0;
    for (run, expected) in [(1, 120), (2, 240), (3, 300)] {
        let done = stack.sync_run().await;
        assert_eq!(
            done.counts.deep_checked, 120,
            "run {run}: {:?}",
            done.counts
        );
        assert_eq!(done.counts.failed, 0, "{:?}", done.failures);
        repaired += done.counts.provisioned;
        assert_eq!(
            (repaired, restored()),
            (expected, expected as usize),
            "run {run}"
        );
        // Counted once each, where the run left them.
        assert_eq!(done.counts.seen, 300);
        assert_eq!(done.devices.unwrap().provisioned, 300);
    }
    for device in &accepted {
        assert_eq!(statuses(&stack, device).await, ["ACTIVE"], "{device}");
    }
    assert_eq!(
        stack.certificates().await.len(),
        300,
        "the old certificates retired"
    );
}
