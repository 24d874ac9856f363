//! The bridge's own Mender token, looked after by the schedule: renewed a
//! month before it expires (a new personal access token made with the old,
//! stored, the old one revoked in Mender), kept when far from expiry, never
//! touched when the admin gave it, counted down in a metric every tick; a
//! failed renewal keeps the old token working and is tried again. Replacing
//! the bridge's token at setup revokes the one the bridge made.

use std::time::{Duration, Instant};

use bridge::auth::{token_expiry, token_id};
use bridge::clock::{epoch_seconds, rfc3339_of};
use bridge::metrics::TOKEN_DAYS_LEFT;
use bridge::settings::{IntegrationSettings, Secret};
use integration_tests::fault_proxy::{Fault, FaultRule};
use integration_tests::stack::{POLICY, Stack, TENANT, key_pair_setup, settings_store};
use serde_json::{Value, json};

const DAY: u64 = 86_400;

/// A personal access token made with `token`, named `name`, living `days`.
async fn personal_token(stack: &Stack, token: &str, name: &str, days: u64) -> String {
    let answer = integration_tests::http()
        .post(format!(
            "{}/api/management/v1/useradm/settings/tokens",
            stack.mender.url()
        ))
        .bearer_auth(token)
        .json(&json!({"name": name, "expires_in": days * DAY}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "creating token {name}");
    let text = answer.text().await.unwrap();
    serde_json::from_str::<String>(&text).unwrap_or(text)
}

/// The names of the personal access tokens of `token`'s user.
async fn token_names(stack: &Stack, token: &str) -> Vec<String> {
    stack
        .personal_tokens(token)
        .await
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether Mender still accepts `token`.
async fn accepted(stack: &Stack, token: &str) -> bool {
    integration_tests::http()
        .get(format!(
            "{}/api/management/v1/useradm/users/me",
            stack.mender.url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

async fn settings(stack: &Stack) -> IntegrationSettings {
    settings_of(stack, &stack.integration_id).await
}

async fn settings_of(stack: &Stack, integration_id: &str) -> IntegrationSettings {
    let store = settings_store::<IntegrationSettings>(&stack.direct);
    IntegrationSettings::clone(&*store.refresh(integration_id).await.unwrap())
}

/// The integration's Mender token becomes a personal access token living
/// `days`, made by the bridge (its id stored) or given by the admin.
async fn give_token(stack: &Stack, days: u64, made_by_bridge: bool) -> String {
    let mut settings = settings(stack).await;
    let name = if made_by_bridge {
        format!("mender-iot-bridge-{}", stack.integration_id)
    } else {
        "the admin's token for the bridge".to_owned()
    };
    let token = personal_token(stack, settings.mender.token.expose(), &name, days).await;
    settings.mender.token_id = made_by_bridge.then(|| token_id(&token)).flatten();
    settings.mender.token = Secret::new(token.clone());
    settings_store(&stack.direct).put(&settings).await.unwrap();
    token
}

/// One tick of the schedule, and the runs it starts.
async fn tick(stack: &Stack) {
    let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    bridge::reconcile::handle(
        stack.bus.reconciler(),
        &stack.bus,
        scheduled,
        Instant::now() + Duration::from_secs(600),
    )
    .await
    .unwrap();
    stack.bus.wait_idle().await;
}

/// The last days-left figure the schedule reported for the organization.
fn last_days_left(stack: &Stack) -> Option<f64> {
    stack
        .lifecycle()
        .metrics
        .records()
        .iter()
        .rev()
        .find_map(|record| record[TOKEN_DAYS_LEFT].as_f64())
}

fn days_until(expires_at: Option<u64>) -> f64 {
    expires_at.unwrap().saturating_sub(epoch_seconds()) as f64 / DAY as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_within_a_month_of_expiry_is_renewed_and_the_old_one_revoked() {
    let stack = Stack::start().await;
    let device = stack.mender.add_device(TENANT, "accepted", None);
    let old = give_token(&stack, 20, true).await;
    // A token an earlier renewal made and did not get to store: revoked too.
    let leftover_name = format!("mender-iot-bridge-{}-1700000000", stack.integration_id);
    personal_token(&stack, &old, &leftover_name, 300).await;
    personal_token(&stack, &old, "ci", 300).await;

    tick(&stack).await;

    let renewed = settings(&stack).await;
    let new = renewed.mender.token.expose().to_owned();
    assert_ne!(new, old, "the token was renewed");
    assert_eq!(renewed.mender.token_id, token_id(&new));
    let left = days_until(token_expiry(&new));
    assert!((364.0..=365.0).contains(&left), "{left} days");
    assert!(accepted(&stack, &new).await);
    assert!(!accepted(&stack, &old).await, "the old token is revoked");
    let names = token_names(&stack, &new).await;
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"ci".to_owned()),
        "other tokens stay: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(&format!("mender-iot-bridge-{}-", stack.integration_id))),
        "{names:?}"
    );
    let reported = last_days_left(&stack).unwrap();
    assert!((364.0..=365.0).contains(&reported), "{reported}");
    // The run the tick started worked with the new token.
    assert!(
        stack.thing_attributes(&device).await.is_some(),
        "the device was provisioned"
    );

    // The next tick has nothing to renew.
    tick(&stack).await;
    assert_eq!(settings(&stack).await.mender.token.expose(), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_far_from_expiry_or_given_by_the_admin_is_kept_and_counted_down() {
    let stack = Stack::start().await;
    for (days, made_by_bridge) in [(200, true), (10, false)] {
        let token = give_token(&stack, days, made_by_bridge).await;
        tick(&stack).await;
        let kept = settings(&stack).await;
        assert_eq!(kept.mender.token.expose(), token, "{days} days");
        assert!(accepted(&stack, &token).await);
        let reported = last_days_left(&stack).unwrap();
        assert!(
            (days as f64 - 1.0..=days as f64).contains(&reported),
            "{days} days: reported {reported}"
        );
    }
    // The admin's token nears its expiry: the error the alarm counts.
    let logs = integration_tests::stack::captured_logs();
    assert!(
        logs.lines().any(|line| {
            line.contains("the bridge's Mender token expires within two weeks")
                && line.contains(&stack.integration_id)
        }),
        "no alarm line logged for this integration"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_keeps_the_old_token_and_the_next_tick_renews() {
    let stack = Stack::start().await;
    let old = give_token(&stack, 5, true).await;
    stack.mender_proxy.inject(FaultRule {
        operation: "POST /api/management/v1/useradm/settings/tokens".to_owned(),
        fault: Fault::Refuse(503, "Service Unavailable"),
        times: None,
        every: 1,
    });
    tick(&stack).await;
    assert_eq!(settings(&stack).await.mender.token.expose(), old);
    assert!(accepted(&stack, &old).await, "the old token still works");
    let reported = last_days_left(&stack).unwrap();
    assert!((4.0..=5.0).contains(&reported), "{reported}");

    stack.mender_proxy.clear();
    tick(&stack).await;
    let new = settings(&stack).await.mender.token.expose().to_owned();
    assert_ne!(new, old);
    assert!(!accepted(&stack, &old).await, "the old token is revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_bridges_token_at_setup_revokes_the_one_it_made() {
    let stack = Stack::bare().await;
    let put = |body: Value| {
        let stack = &stack;
        async move { stack.set_up(&stack.admin_token, &body).await }
    };
    let created = put(key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["mender_token_renewal"], "automatic");
    let integration_id = created.body["id"].as_str().unwrap();
    let made_token = settings_of(&stack, integration_id).await.mender.token;
    assert_eq!(
        created.body["mender_token_expires_at"],
        json!(token_expiry(made_token.expose()).map(rfc3339_of)),
    );
    let made = token_names(&stack, &stack.admin_token).await;
    assert_eq!(made.len(), 1, "{made:?}");

    let given = personal_token(
        &stack,
        &stack.admin_token,
        "the admin's token for the bridge",
        90,
    )
    .await;
    let mut body = key_pair_setup(POLICY);
    body["mender_token"] = json!(given);
    let replaced = put(body).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.body["mender_token_renewal"], "admin");
    assert_eq!(
        token_names(&stack, &stack.admin_token).await,
        ["the admin's token for the bridge"],
        "the token the bridge made is revoked"
    );
}
