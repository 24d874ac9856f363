//! `users/me`, token validity, personal access tokens.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mender_standin::MenderStandin;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT-shaped token: {token}");
    let payload = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url payload");
    serde_json::from_slice(&payload).expect("JSON claims")
}

#[tokio::test]
async fn me_returns_the_user_with_roles_on_an_rbac_tenant() {
    let env = env().await;
    let resp = env.get(ME, &env.admin).await;
    assert_eq!(resp.status, 200);
    let user = resp.json();
    assert_eq!(user["email"], "admin@acme.example");
    assert!(user["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(user["created_ts"].is_string() && user["updated_ts"].is_string());
    assert_eq!(user["roles"], json!(["RBAC_ROLE_PERMIT_ALL"]));

    let observer = env.get(ME, &env.observer).await.json();
    assert_eq!(observer["roles"], json!(["RBAC_ROLE_OBSERVER"]));
}

#[tokio::test]
async fn open_source_tenant_has_no_roles_and_no_tenant_claim() {
    let standin = MenderStandin::start().await.unwrap();
    standin.add_tenant("default", true); // "default" is never RBAC
    let user = standin.add_user("default", "root@example.com", &["RBAC_ROLE_OBSERVER"], None);
    let token = standin.issue_token(&user, HOUR);

    let claims = claims(&token);
    assert_eq!(claims["sub"], json!(user));
    assert_eq!(claims["mender.user"], json!(true));
    assert_eq!(claims["iss"], "Mender Users");
    assert!(claims["exp"].is_i64() && claims["jti"].is_string());
    assert!(claims.get("mender.tenant").is_none(), "{claims}");

    let resp = reqwest::Client::new()
        .get(format!("{}{ME}", standin.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("roles").is_none(), "{body}");
}

#[tokio::test]
async fn tokens_carry_the_tenant_claim() {
    let env = env().await;
    let claims = claims(&env.admin);
    assert_eq!(claims["mender.tenant"], TENANT);
    let exp = claims["exp"].as_i64().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now + 3590..=now + 3610).contains(&exp),
        "exp {exp} vs now {now}"
    );
}

#[tokio::test]
async fn invalid_tokens_get_401() {
    let env = env().await;
    let no_token = env.call(Method::GET, ME, None, None).await;
    assert_eq!(no_token.status, 401);
    no_token.error();

    assert_eq!(env.get(ME, "garbage").await.status, 401);

    // A well-formed token the stand-in did not issue (signature differs).
    let mut parts: Vec<String> = env.admin.split('.').map(str::to_string).collect();
    parts[2] = URL_SAFE_NO_PAD.encode([7u8; 64]);
    assert_eq!(env.get(ME, &parts.join(".")).await.status, 401);

    // Basic auth is not a management token.
    let basic = env
        .http
        .get(format!("{}{ME}", env.standin.url()))
        .basic_auth("admin@acme.example", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
}

#[tokio::test]
async fn expired_and_revoked_tokens_get_401() {
    let env = env().await;
    let user = env
        .standin
        .add_user(TENANT, "short@acme.example", &[], None);
    let short = env.standin.issue_token(&user, Duration::from_secs(1));
    assert_eq!(env.get(ME, &short).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(env.get(ME, &short).await.status, 401);

    let expired = env.standin.issue_token(&user, Duration::ZERO);
    assert_eq!(env.get(ME, &expired).await.status, 401);

    assert_eq!(env.get(ME, &env.admin).await.status, 200);
    env.standin.revoke_token(&env.admin);
    let resp = env.get(ME, &env.admin).await;
    assert_eq!(resp.status, 401);
    resp.error();
    // Revoked means revoked everywhere, not just for useradm.
    assert_eq!(env.get(DEVICES, &env.admin).await.status, 401);
}

#[tokio::test]
async fn personal_access_token_lifecycle() {
    let env = env().await;
    let created = env
        .post(
            TOKENS,
            &env.observer,
            json!({"name": "ci", "expires_in": 3600}),
        )
        .await;
    assert_eq!(created.status, 200);
    assert_eq!(
        created.header("content-type").as_deref(),
        Some("application/json")
    );
    let pat = created.text.clone();
    assert!(!pat.starts_with('"'), "raw token, not a JSON string: {pat}");
    let claims = claims(&pat);
    assert_eq!(claims["mender.tenant"], TENANT);

    // The PAT acts as its user.
    let me = env.get(ME, &pat).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["email"], "observer@acme.example");

    // Listed, with its id being the token's jti.
    let list = env.get(TOKENS, &env.observer).await;
    assert_eq!(list.status, 200);
    let list = list.json();
    let tokens = list.as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{list}");
    assert_eq!(tokens[0]["name"], "ci");
    assert_eq!(tokens[0]["id"], claims["jti"]);
    assert!(tokens[0]["expiration_date"].is_string() && tokens[0]["created_ts"].is_string());
    assert!(tokens[0]["last_used"].is_string(), "used once already");
    // Session tokens and other users' PATs are not listed.
    assert_eq!(env.get(TOKENS, &env.admin).await.json(), json!([]));

    // Same name again: 409.
    let duplicate = env.post(TOKENS, &env.observer, json!({"name": "ci"})).await;
    assert_eq!(duplicate.status, 409);
    duplicate.error();

    // Deleting it revokes it.
    let id = tokens[0]["id"].as_str().unwrap();
    let deleted = env.delete(&format!("{TOKENS}/{id}"), &env.observer).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.text.is_empty());
    assert_eq!(env.get(ME, &pat).await.status, 401);
    assert_eq!(env.get(TOKENS, &env.observer).await.json(), json!([]));
    // Deleting again is harmless.
    assert_eq!(
        env.delete(&format!("{TOKENS}/{id}"), &env.observer)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn personal_access_token_expires() {
    let env = env().await;
    let pat = env
        .post(
            TOKENS,
            &env.admin,
            json!({"name": "brief", "expires_in": 1}),
        )
        .await
        .text;
    assert_eq!(env.get(ME, &pat).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(env.get(ME, &pat).await.status, 401);
}

#[tokio::test]
async fn personal_access_token_without_expiry() {
    let env = env().await;
    let pat = env
        .post(TOKENS, &env.admin, json!({"name": "forever"}))
        .await;
    assert_eq!(pat.status, 200);
    assert!(claims(&pat.text).get("exp").is_none());
    assert_eq!(env.get(ME, &pat.text).await.status, 200);
}

#[tokio::test]
async fn personal_access_token_bad_requests() {
    let env = env().await;
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": 5}),
        json!({"name": "x", "expires_in": 31_536_001}),
        json!({"name": "x", "expires_in": -1}),
        json!({"name": "x", "expires_in": "60"}),
        json!(["name"]),
    ] {
        let resp = env.post(TOKENS, &env.admin, body.clone()).await;
        assert_eq!(resp.status, 400, "{body}");
        resp.error();
    }
    let resp = env.raw(Method::POST, TOKENS, &env.admin, "{not json").await;
    assert_eq!(resp.status, 400);
    // A year is the maximum.
    let year = env
        .post(
            TOKENS,
            &env.admin,
            json!({"name": "year", "expires_in": 31_536_000}),
        )
        .await;
    assert_eq!(year.status, 200);
    // Without a valid token: 401.
    let anonymous = env
        .call(Method::POST, TOKENS, None, Some(json!({"name": "x"})))
        .await;
    assert_eq!(anonymous.status, 401);
}
