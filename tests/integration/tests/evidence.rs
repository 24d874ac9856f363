//! Removal and disabling only on affirmative evidence: a reconcile run
//! removes a Thing only when Mender answered for that very device that it
//! is gone, after Mender's device listing proved healthy in the same run,
//! and never more than the safety limit without the admin's confirmation.

use std::time::Instant;

use bridge::reconcile::{RunRequest, RunState, step};
use integration_tests::fault_proxy::{Fault, FaultRule};
use integration_tests::resilience::divert_webhooks;
use integration_tests::stack::{Stack, TENANT, captured_logs};
use reqwest::Method;
use serde_json::{Value, json};

/// `count` accepted devices, provisioned by a run.
async fn provisioned_fleet(stack: &Stack, count: usize) -> Vec<String> {
    let devices: Vec<String> = (0..count)
        .map(|_| stack.mender.add_device(TENANT, "accepted", None))
        .collect();
    let done = run(stack, None).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["provisioned"], count, "{done}");
    devices
}

/// A run through the API as the admin, confirming `confirm`.
async fn run(stack: &Stack, confirm: Option<&str>) -> Value {
    let body = confirm.map(|id| json!({ "confirm": id }));
    stack.reconcile_run(&stack.admin_token, body.as_ref()).await
}

/// The alarm-worthy line: ERROR, the fixed message, this run.
fn held_logged(run_id: &str) -> bool {
    captured_logs().lines().any(|line| {
        line.contains("ERROR") && line.contains("reconcile run held") && line.contains(run_id)
    })
}

async fn things(stack: &Stack) -> Vec<String> {
    let mut names: Vec<String> = stack
        .iot()
        .list_things()
        .max_results(250)
        .send()
        .await
        .unwrap()
        .things()
        .iter()
        .filter_map(|t| t.thing_name().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mender_that_answers_404_for_everything_removes_nothing() {
    let stack = Stack::start().await;
    provisioned_fleet(&stack, 10).await;
    let before = things(&stack).await;
    let certificates = stack.certificates().await;

    // A wrong Mender URL, or a gateway answering 404 for every path.
    stack
        .mender_proxy
        .inject(FaultRule::always("*", Fault::Refuse(404, "")));
    let reconciler = stack.bus.reconciler();
    let started = reconciler
        .runs
        .start(
            TENANT,
            &stack.integration_id,
            RunRequest::Sync { confirmed: false },
        )
        .await
        .unwrap();
    let run = step(
        reconciler,
        &started.run_id,
        Instant::now() + std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(run.state, RunState::Held, "{run:?}");
    assert!(
        run.held
            .as_deref()
            .is_some_and(|r| r.contains("device listing")),
        "{run:?}"
    );
    assert_eq!(run.counts.removed + run.counts.disabled, 0);
    assert_eq!(things(&stack).await, before);
    assert_eq!(stack.certificates().await, certificates, "nothing disabled");
    assert!(held_logged(&run.run_id), "an ERROR line for the alarm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_more_than_the_safety_limit_waits_for_the_admin() {
    let stack = Stack::start().await;
    let fleet = provisioned_fleet(&stack, 50).await;
    let before = things(&stack).await;
    assert_eq!(before.len(), 50);

    // 8 of 50 devices (16 %, more than 5) are gone from Mender, and no
    // webhook said so: a run would remove them.
    divert_webhooks(&stack);
    let gone = &fleet[..8];
    for device in gone {
        stack.mender.decommission(device).await;
    }
    let held = run(&stack, None).await;
    assert_eq!(held["state"], "held", "{held}");
    assert_eq!(held["counts"]["deferred"], 8, "{held}");
    assert_eq!(held["counts"]["removed"], 0, "{held}");
    assert_eq!(held["managed"], 50, "{held}");
    let reason = held["held"].as_str().unwrap();
    assert!(reason.contains("8 of the 50"), "{reason}");
    assert_eq!(things(&stack).await, before, "nothing removed");
    assert!(
        held_logged(held["run_id"].as_str().unwrap()),
        "an ERROR line for the alarm"
    );

    // Only a held run of this organization can be confirmed.
    let refused = stack
        .call(
            Method::POST,
            &stack.integration_path("/reconcile"),
            Some(&stack.admin_token),
            Some(&json!({"confirm": uuid::Uuid::new_v4().to_string()})),
        )
        .await;
    assert_eq!(refused.status, 404, "{}", refused.text);
    let refused = stack
        .call(
            Method::POST,
            &stack.integration_path("/reconcile"),
            Some(&stack.admin_token),
            Some(&json!({"confirm": "yes"})),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);

    // The admin confirms: exactly those are removed.
    let confirmed = run(&stack, held["run_id"].as_str()).await;
    assert_eq!(confirmed["state"], "done", "{confirmed}");
    assert_eq!(confirmed["confirmed"], true, "{confirmed}");
    assert_eq!(confirmed["counts"]["removed"], 8, "{confirmed}");
    let mut kept: Vec<String> = fleet[8..].to_vec();
    kept.sort();
    assert_eq!(things(&stack).await, kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_within_the_limit_need_no_confirmation() {
    let stack = Stack::start().await;
    let fleet = provisioned_fleet(&stack, 50).await;
    divert_webhooks(&stack);
    for device in &fleet[..3] {
        stack.mender.decommission(device).await;
    }
    let done = run(&stack, None).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["deferred"], 3, "{done}");
    assert_eq!(done["counts"]["removed"], 3, "{done}");
    assert_eq!(things(&stack).await.len(), 47);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_devices_are_left_alone_unless_the_admin_asks() {
    use integration_tests::stack::{POLICY, key_pair_setup};
    let mut stack = Stack::bare().await;
    // A fleet Mender accepted before the integration existed.
    let existing: Vec<String> = (0..3)
        .map(|_| stack.mender.add_device(TENANT, "accepted", None))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut body = key_pair_setup(POLICY);
    let created = stack.set_up(&stack.admin_token, &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["backfill"], false);
    stack.integration_id = created.body["id"].as_str().unwrap().to_owned();

    // The schedule's run leaves them alone.
    let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    bridge::reconcile::handle(
        stack.bus.reconciler(),
        &stack.bus,
        scheduled,
        Instant::now(),
    )
    .await
    .unwrap();
    stack.bus.wait_idle().await;
    assert!(things(&stack).await.is_empty(), "nothing provisioned");

    // A device accepted afterwards is provisioned (its webhook, or a run).
    let accepted_later = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&accepted_later).await;
    let unannounced = stack.mender.add_device(TENANT, "accepted", None);
    let done = run(&stack, None).await;
    assert_eq!(done["state"], "done", "{done}");
    let mut expected = vec![accepted_later.clone(), unannounced.clone()];
    expected.sort();
    assert_eq!(things(&stack).await, expected);

    // The admin turns backfill on: the next run provisions the rest.
    body["backfill"] = json!(true);
    let changed = stack.set_up(&stack.admin_token, &body).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["backfill"], true);
    let done = run(&stack, None).await;
    assert_eq!(done["counts"]["provisioned"], 3, "{done}");
    let mut all: Vec<String> = existing.into_iter().chain(expected).collect();
    all.sort();
    assert_eq!(things(&stack).await, all);
}
