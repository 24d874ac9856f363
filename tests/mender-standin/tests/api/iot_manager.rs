//! Integrations: registration, one per tenant, validation, admin only.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

fn webhook(url: &str, secret: Option<&str>) -> Value {
    let mut http = json!({"url": url});
    if let Some(secret) = secret {
        http["secret"] = json!(secret);
    }
    json!({
        "provider": "webhook",
        "credentials": {"type": "http", "http": http},
        "description": "bridge",
    })
}

#[tokio::test]
async fn register_list_and_remove_a_webhook() {
    let env = env().await;
    let secret = "00ff".repeat(16);
    let resp = env
        .post(
            INTEGRATIONS,
            &env.admin,
            webhook("https://bridge.example/webhook", Some(&secret)),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert!(resp.text.is_empty());
    let location = resp.header("location").unwrap();
    let id = location
        .strip_prefix(&format!("{INTEGRATIONS}/"))
        .expect("Location …/integrations/{id}");
    assert!(uuid::Uuid::parse_str(id).is_ok());

    let integration = env.standin.webhook_integration(TENANT).unwrap();
    assert_eq!(integration.id, id);
    assert_eq!(integration.url, "https://bridge.example/webhook");
    assert_eq!(integration.secret, secret);

    let list = env.get(INTEGRATIONS, &env.admin).await;
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], json!(id));
    assert_eq!(list[0]["provider"], "webhook");
    assert_eq!(list[0]["description"], "bridge");
    assert_eq!(list[0]["credentials"]["type"], "http");
    assert_eq!(
        list[0]["credentials"]["http"]["url"],
        "https://bridge.example/webhook"
    );
    assert_eq!(
        list[0]["credentials"]["http"]["secret"], "<omitted>",
        "Mender never shows the secret back"
    );

    // Only one integration per organization, of any kind.
    let second = env
        .post(
            INTEGRATIONS,
            &env.admin,
            webhook("https://other.example/", None),
        )
        .await;
    assert_eq!(second.status, 409);
    second.error();
    let aws = json!({
        "provider": "iot-core",
        "credentials": {"type": "aws", "aws": {
            "access_key_id": "AKIA", "secret_access_key": "s",
            "region": "eu-west-1", "device_policy_name": "p"}},
    });
    assert_eq!(env.post(INTEGRATIONS, &env.admin, aws).await.status, 409);

    let removed = env
        .delete(&format!("{INTEGRATIONS}/{id}"), &env.admin)
        .await;
    assert_eq!(removed.status, 204);
    assert!(env.standin.webhook_integration(TENANT).is_none());
    assert_eq!(env.get(INTEGRATIONS, &env.admin).await.json(), json!([]));
    let again = env
        .delete(&format!("{INTEGRATIONS}/{id}"), &env.admin)
        .await;
    assert_eq!(again.status, 404);
    again.error();

    // After removal a new one may be registered.
    let third = env
        .post(
            INTEGRATIONS,
            &env.admin,
            webhook("http://127.0.0.1:9/hook", Some("ab")),
        )
        .await;
    assert_eq!(third.status, 201);
}

#[tokio::test]
async fn integrations_are_per_tenant() {
    let env = env().await;
    env.standin.add_tenant("other", true);
    let other_admin = env
        .standin
        .add_user("other", "a@other", &["RBAC_ROLE_PERMIT_ALL"], None);
    let other_token = env.standin.issue_token(&other_admin, HOUR);
    assert_eq!(
        env.post(
            INTEGRATIONS,
            &env.admin,
            webhook("https://a.example/", None)
        )
        .await
        .status,
        201
    );
    assert_eq!(
        env.post(
            INTEGRATIONS,
            &other_token,
            webhook("https://b.example/", None)
        )
        .await
        .status,
        201
    );
    let mine = env.get(INTEGRATIONS, &env.admin).await.json();
    assert_eq!(mine[0]["credentials"]["http"]["url"], "https://a.example/");
    // Another tenant's integration cannot be removed from here.
    let theirs = env.standin.webhook_integration("other").unwrap();
    let resp = env
        .delete(&format!("{INTEGRATIONS}/{}", theirs.id), &env.admin)
        .await;
    assert_eq!(resp.status, 404);
    assert!(env.standin.webhook_integration("other").is_some());
}

#[tokio::test]
async fn secrets_are_validated() {
    let env = env().await;
    for secret in ["", "ABCD", "abc", "xyz0", &"ab".repeat(33), "ab cd"] {
        let resp = env
            .post(
                INTEGRATIONS,
                &env.admin,
                webhook("https://bridge.example/", Some(secret)),
            )
            .await;
        assert_eq!(resp.status, 400, "secret {secret:?}");
        resp.error();
    }
    let numeric = json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": "https://x.example/", "secret": 1234}}});
    assert_eq!(
        env.post(INTEGRATIONS, &env.admin, numeric).await.status,
        400
    );
    assert!(env.standin.webhook_integration(TENANT).is_none());
    // 64 hex digits is the maximum.
    let resp = env
        .post(
            INTEGRATIONS,
            &env.admin,
            webhook("https://bridge.example/", Some(&"0a".repeat(32))),
        )
        .await;
    assert_eq!(resp.status, 201);
}

#[tokio::test]
async fn malformed_registrations_are_400() {
    let env = env().await;
    for body in [
        json!({}),
        json!({"provider": "webhook"}),
        json!({"provider": "carrier-pigeon", "credentials": {"type": "http", "http": {"url": "https://x.example/"}}}),
        json!({"provider": "webhook", "credentials": {"type": "aws", "aws": {}}}),
        json!({"provider": "iot-core", "credentials": {"type": "http", "http": {"url": "https://x.example/"}}}),
        json!({"provider": "webhook", "credentials": {"type": "http"}}),
        json!({"provider": "webhook", "credentials": {"type": "http", "http": {}}}),
        json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": "not a url"}}}),
        json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": "https://x.example/"}}, "description": "d".repeat(1025)}),
        json!([]),
    ] {
        let resp = env.post(INTEGRATIONS, &env.admin, body.clone()).await;
        assert_eq!(resp.status, 400, "{body}");
        resp.error();
    }
    assert_eq!(
        env.raw(Method::POST, INTEGRATIONS, &env.admin, "{")
            .await
            .status,
        400
    );
    assert_eq!(
        env.delete(&format!("{INTEGRATIONS}/not-a-uuid"), &env.admin)
            .await
            .status,
        400
    );
    assert!(env.standin.webhook_integration(TENANT).is_none());
}

#[tokio::test]
async fn only_admins_manage_integrations() {
    let env = env().await;
    let body = webhook("https://bridge.example/", Some("abcd"));
    for token in [
        env.observer.clone(),
        env.user_token(&["RBAC_ROLE_DEPLOYMENTS_MANAGER"], None),
    ] {
        let post = env.post(INTEGRATIONS, &token, body.clone()).await;
        assert_eq!(post.status, 403);
        post.error();
        assert_eq!(env.get(INTEGRATIONS, &token).await.status, 403);
    }
    let id = env
        .standin
        .register_webhook(TENANT, "https://bridge.example/", "abcd");
    let delete = env
        .delete(&format!("{INTEGRATIONS}/{id}"), &env.observer)
        .await;
    assert_eq!(delete.status, 403);
    assert!(env.standin.webhook_integration(TENANT).is_some());

    // Without a token: 401.
    assert_eq!(
        env.call(Method::GET, INTEGRATIONS, None, None).await.status,
        401
    );

    // Open source: every user is admin.
    env.standin.add_tenant("default", false);
    let user = env.standin.add_user("default", "root@oss", &[], None);
    let token = env.standin.issue_token(&user, HOUR);
    assert_eq!(env.post(INTEGRATIONS, &token, body).await.status, 201);
}
