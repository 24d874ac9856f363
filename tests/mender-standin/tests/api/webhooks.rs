//! Webhook emission: events per transition, payloads, signatures, delivery
//! semantics.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mender_standin::openapi::Specs;
use mender_standin::{Delivery, webhook_signature};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::*;

const SECRET: &str = "8d1f2e3c4b5a69780112233445566778899aabbccddeeff00112233445566778";

async fn env_with_receiver() -> (Env, Receiver) {
    let env = env().await;
    let receiver = Receiver::start().await;
    env.standin.register_webhook(TENANT, &receiver.url, SECRET);
    (env, receiver)
}

fn types(deliveries: &[Delivery]) -> Vec<String> {
    let mut types: Vec<String> = deliveries.iter().map(|d| d.event_type.clone()).collect();
    types.sort();
    types
}

fn event<'a>(deliveries: &'a [Delivery], kind: &str) -> &'a Delivery {
    deliveries
        .iter()
        .find(|d| d.event_type == kind)
        .unwrap_or_else(|| panic!("no {kind} in {deliveries:?}"))
}

#[tokio::test]
async fn deliveries_are_signed_with_the_hex_decoded_secret() {
    let (env, receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "pending", None);
    let deliveries = env.standin.reject(&id).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].result, Ok(200));
    assert!(deliveries[0].succeeded());

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/hook");
    assert_eq!(
        request.body, deliveries[0].body,
        "the recorded body is what was sent"
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("x-men-algorithm"),
        Some("MEN-HMAC-SHA256-Payload")
    );
    let signature = request.header("x-men-signature").expect("signature header");
    assert_eq!(signature, signature.to_lowercase());
    let key = hex::decode(SECRET).unwrap();
    assert_eq!(signature, hmac_hex(&key, request.body.as_bytes()));
    assert_ne!(
        signature,
        hmac_hex(SECRET.as_bytes(), request.body.as_bytes()),
        "keyed with the decoded bytes, not the hex text"
    );
    assert_eq!(
        webhook_signature(SECRET, request.body.as_bytes()).as_deref(),
        Some(signature)
    );
}

#[tokio::test]
async fn envelope_and_status_change_payload() {
    let (env, receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "accepted", None);
    env.standin.reject(&id).await;
    let body = receiver.received()[0].json();
    let fields: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, BTreeSet::from(["id", "type", "data", "time"]));
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(body["type"], "device-status-changed");
    assert_eq!(
        body["data"],
        json!({"id": id, "status": "rejected"}),
        "id and status only"
    );
    let time = OffsetDateTime::parse(body["time"].as_str().unwrap(), &Rfc3339).expect("RFC 3339");
    assert!((OffsetDateTime::now_utc() - time).whole_seconds().abs() < 10);
    assert!(
        !body.to_string().contains(TENANT),
        "no tenant id in the body"
    );
}

#[tokio::test]
async fn first_acceptance_sends_provisioned_and_status_changed() {
    let (env, receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "pending", None);
    let deliveries = env.standin.accept(&id).await;
    assert_eq!(
        types(&deliveries),
        ["device-provisioned", "device-status-changed"]
    );
    assert!(
        deliveries
            .iter()
            .all(|d| d.device_id == id && d.result == Ok(200))
    );
    assert_eq!(receiver.received().len(), 2);

    let changed = event(&deliveries, "device-status-changed").json();
    assert_eq!(changed["data"], json!({"id": id, "status": "accepted"}));

    let provisioned = event(&deliveries, "device-provisioned").json();
    let data = &provisioned["data"];
    assert_eq!(data["id"], json!(id));
    assert_eq!(data["status"], "accepted");
    assert!(data["created_ts"].is_string());
    let sets = data["auth_sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0]["device_id"], json!(id));
    assert_eq!(sets[0]["status"], "accepted");
    for key in ["id", "identity_data", "pubkey", "ts"] {
        assert!(sets[0].get(key).is_some(), "auth set lacks {key}");
    }
    // Same auth set as devauth shows.
    let device = env.get(&device_path(&id), &env.admin).await.json();
    assert_eq!(sets[0]["id"], device["auth_sets"][0]["id"]);
    assert_eq!(sets[0]["pubkey"], device["auth_sets"][0]["pubkey"]);
}

#[tokio::test]
async fn the_two_first_acceptance_events_are_sent_concurrently() {
    let (env, receiver) = env_with_receiver().await;
    receiver.set_delay(Duration::from_millis(1000));
    let id = env.standin.add_device(TENANT, "pending", None);
    let started = Instant::now();
    let deliveries = env.standin.accept(&id).await;
    assert_eq!(deliveries.len(), 2);
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "sequential would take 2 s, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn first_acceptance_order_is_not_fixed() {
    let (env, _receiver) = env_with_receiver().await;
    let mut firsts = BTreeSet::new();
    for _ in 0..40 {
        let id = env.standin.add_device(TENANT, "pending", None);
        let deliveries = env.standin.accept(&id).await;
        firsts.insert(deliveries[0].event_type.clone());
        if firsts.len() == 2 {
            break;
        }
    }
    assert_eq!(firsts.len(), 2, "both orders occur");
}

#[tokio::test]
async fn re_acceptance_sends_only_the_status_change() {
    let (env, _receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "pending", None);
    assert_eq!(env.standin.accept(&id).await.len(), 2);

    let rejected = env.standin.reject(&id).await;
    assert_eq!(types(&rejected), ["device-status-changed"]);
    assert_eq!(rejected[0].json()["data"]["status"], "rejected");

    let again = env.standin.accept(&id).await;
    assert_eq!(types(&again), ["device-status-changed"]);
    assert_eq!(again[0].json()["data"]["status"], "accepted");

    // Accepting an accepted device changes nothing and sends nothing.
    assert!(env.standin.accept(&id).await.is_empty());

    // A device added as accepted counts as provisioned already.
    let seeded = env.standin.add_device(TENANT, "accepted", None);
    env.standin.reject(&seeded).await;
    assert_eq!(
        types(&env.standin.accept(&seeded).await),
        ["device-status-changed"]
    );
}

#[tokio::test]
async fn pending_reject_dismiss_and_decommission() {
    let (env, _receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "accepted", None);

    let pending = env.standin.set_pending(&id).await;
    assert_eq!(types(&pending), ["device-status-changed"]);
    assert_eq!(
        pending[0].json()["data"],
        json!({"id": id, "status": "pending"})
    );

    let rejected = env.standin.reject(&id).await;
    assert_eq!(rejected[0].json()["data"]["status"], "rejected");

    let dismissed = env.standin.dismiss(&id).await;
    assert_eq!(types(&dismissed), ["device-status-changed"]);
    assert_eq!(
        dismissed[0].json()["data"],
        json!({"id": id, "status": "noauth"})
    );
    assert_eq!(env.standin.device_status(&id).as_deref(), Some("noauth"));

    let gone = env.standin.decommission(&id).await;
    assert_eq!(types(&gone), ["device-decommissioned"]);
    assert_eq!(gone[0].json()["data"], json!({"id": id}), "the id only");
    assert_eq!(env.standin.device_status(&id), None);

    // Nothing left to do.
    assert!(env.standin.decommission(&id).await.is_empty());
    assert!(env.standin.accept(&id).await.is_empty());
}

#[tokio::test]
async fn dismissing_a_preauthorized_device_reports_decommissioned() {
    let (env, _receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "preauthorized", None);
    let deliveries = env.standin.dismiss(&id).await;
    assert_eq!(types(&deliveries), ["device-status-changed"]);
    assert_eq!(
        deliveries[0].json()["data"],
        json!({"id": id, "status": "decommissioned"})
    );
    assert_eq!(env.standin.device_status(&id), None);
}

#[tokio::test]
async fn accepting_a_dismissed_device_reapplies_first() {
    let (env, _receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "accepted", None);
    env.standin.dismiss(&id).await;
    let deliveries = env.standin.accept(&id).await;
    let statuses: BTreeSet<String> = deliveries
        .iter()
        .map(|d| d.json()["data"]["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types(&deliveries),
        ["device-status-changed", "device-status-changed"]
    );
    assert_eq!(
        statuses,
        BTreeSet::from(["pending".into(), "accepted".into()])
    );
    assert_eq!(env.standin.device_status(&id).as_deref(), Some("accepted"));
}

#[tokio::test]
async fn http_transitions_emit_webhooks_too() {
    let (env, receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "pending", None);
    let aid = env.auth_set_id(&id).await;
    let resp = env
        .put(
            &status_path(&id, &aid),
            &env.admin,
            json!({"status": "accepted"}),
        )
        .await;
    assert_eq!(resp.status, 204);
    let deliveries = env.standin.wait_deliveries().await;
    assert_eq!(
        types(&deliveries),
        ["device-provisioned", "device-status-changed"]
    );
    assert_eq!(receiver.received().len(), 2);

    let dismissed = env
        .delete(&format!("{}/auth/{aid}", device_path(&id)), &env.admin)
        .await;
    assert_eq!(dismissed.status, 204);
    let deliveries = env.standin.wait_deliveries().await;
    assert_eq!(
        deliveries.last().unwrap().json()["data"]["status"],
        "noauth"
    );

    assert_eq!(env.delete(&device_path(&id), &env.admin).await.status, 204);
    let deliveries = env.standin.wait_deliveries().await;
    assert_eq!(
        deliveries.last().unwrap().event_type,
        "device-decommissioned"
    );

    // Preauthorizing reports the new status.
    let body = json!({"identity_data": {"sn": "42"}, "pubkey": "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"});
    assert_eq!(env.post(DEVICES, &env.admin, body).await.status, 201);
    let deliveries = env.standin.wait_deliveries().await;
    assert_eq!(deliveries.len(), 5);
    assert_eq!(deliveries[4].json()["data"]["status"], "preauthorized");

    // Refused requests emit nothing.
    let other = env.standin.add_device(TENANT, "pending", None);
    let other_aid = env.auth_set_id(&other).await;
    let refused = env
        .put(
            &status_path(&other, &other_aid),
            &env.observer,
            json!({"status": "accepted"}),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(env.standin.wait_deliveries().await.len(), 5);
}

#[tokio::test]
async fn failures_are_recorded_once_without_retry_or_redirect() {
    let (env, receiver) = env_with_receiver().await;
    receiver.set_status(500);
    let id = env.standin.add_device(TENANT, "accepted", None);
    let failed = env.standin.reject(&id).await;
    assert_eq!(failed[0].result, Ok(500));
    assert!(!failed[0].succeeded());
    assert_eq!(receiver.received().len(), 1, "tried once");

    receiver.set_status(302);
    let redirected = env.standin.set_pending(&id).await;
    assert_eq!(redirected[0].result, Ok(302));
    assert!(!redirected[0].succeeded());
    let paths: Vec<String> = receiver.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/hook", "/hook"], "redirect not followed");

    // Unreachable receiver: a transport error.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    env.standin.register_webhook(TENANT, &url, SECRET);
    let unreachable = env.standin.reject(&id).await;
    assert_eq!(unreachable.len(), 1);
    assert!(
        unreachable[0].result.is_err(),
        "{:?}",
        unreachable[0].result
    );
    assert_eq!(unreachable[0].url, url);

    assert_eq!(env.standin.deliveries().len(), 3, "every attempt recorded");
}

#[tokio::test]
async fn no_integration_no_webhook_and_tenants_are_separate() {
    let env = env().await;
    let receiver = Receiver::start().await;
    env.standin.add_tenant("other", true);
    env.standin.register_webhook("other", &receiver.url, SECRET);

    let id = env.standin.add_device(TENANT, "pending", None);
    assert!(env.standin.accept(&id).await.is_empty());
    assert!(receiver.received().is_empty());

    let theirs = env.standin.add_device("other", "pending", None);
    assert_eq!(env.standin.accept(&theirs).await.len(), 2);
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn unsigned_when_registered_without_secret() {
    let env = env().await;
    let receiver = Receiver::start().await;
    env.standin.register_webhook(TENANT, &receiver.url, "");
    assert_eq!(env.standin.webhook_integration(TENANT).unwrap().secret, "");
    let id = env.standin.add_device(TENANT, "accepted", None);
    env.standin.reject(&id).await;
    let request = &receiver.received()[0];
    assert_eq!(request.header("x-men-signature"), None);
    assert_eq!(request.header("x-men-algorithm"), None);
}

#[tokio::test]
async fn integration_registered_over_http_receives_webhooks() {
    let env = env().await;
    let receiver = Receiver::start().await;
    let body = json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": receiver.url, "secret": SECRET}}});
    assert_eq!(env.post(INTEGRATIONS, &env.admin, body).await.status, 201);
    let id = env.standin.add_device(TENANT, "pending", None);
    assert_eq!(env.standin.accept(&id).await.len(), 2);
    let request = &receiver.received()[0];
    let key = hex::decode(SECRET).unwrap();
    assert_eq!(
        request.header("x-men-signature").unwrap(),
        hmac_hex(&key, request.body.as_bytes())
    );
}

#[tokio::test]
async fn payloads_match_the_iot_manager_event_schema() {
    let specs = Specs::load_mender().expect("specs");
    let (env, _receiver) = env_with_receiver().await;
    let id = env.standin.add_device(TENANT, "pending", None);
    let mut deliveries = env.standin.accept(&id).await;
    deliveries.extend(env.standin.dismiss(&id).await);
    deliveries.extend(env.standin.decommission(&id).await);
    assert_eq!(deliveries.len(), 4);
    for delivery in &deliveries {
        let body: Value = delivery.json();
        specs
            .validate(
                "iot-manager/management_v1.yaml#/components/schemas/Event",
                &body,
            )
            .unwrap_or_else(|e| panic!("{}: {e:?}", delivery.body));
    }
    // And the validator is not vacuous here.
    let wrong = json!({"id": "x", "type": "device-exploded", "data": {}});
    assert!(
        specs
            .validate(
                "iot-manager/management_v1.yaml#/components/schemas/Event",
                &wrong
            )
            .is_err()
    );
}
