//! Mender Configure: read, replace, deploy, limits and access.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::common::*;

#[tokio::test]
async fn put_replaces_and_get_reads_the_configuration() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "accepted", None);
    let path = config_path(&id);

    let empty = env.get(&path, &env.admin).await;
    assert_eq!(empty.status, 200);
    let body = empty.json();
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["configured"], json!({}));
    assert_eq!(body["reported"], json!({}));

    let first = json!({"awsEndpoint": "abc-ats.iot.eu-west-1.amazonaws.com", "keep": "1"});
    let resp = env.put(&path, &env.admin, first.clone()).await;
    assert_eq!(resp.status, 204);
    assert!(resp.text.is_empty());
    let read = env.get(&path, &env.observer).await.json();
    assert_eq!(read["configured"], first);
    assert!(read["updated_ts"].is_string());

    // PUT replaces: keys not sent are gone.
    let second = json!({"awsCertificate": "-----BEGIN CERTIFICATE-----\n…"});
    assert_eq!(env.put(&path, &env.admin, second.clone()).await.status, 204);
    assert_eq!(
        env.get(&path, &env.admin).await.json()["configured"],
        second
    );
    let expected: BTreeMap<String, String> = [(
        "awsCertificate".to_string(),
        "-----BEGIN CERTIFICATE-----\n…".to_string(),
    )]
    .into();
    assert_eq!(env.standin.configuration(&id), Some(expected));
}

#[tokio::test]
async fn library_can_seed_a_configuration() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "accepted", None);
    let config: BTreeMap<String, String> = [("a".to_string(), "b".to_string())].into();
    env.standin.set_configuration(&id, config);
    let read = env.get(&config_path(&id), &env.admin).await.json();
    assert_eq!(read["configured"], json!({"a": "b"}));
}

#[tokio::test]
async fn deploy_records_deployments_in_order() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "accepted", None);
    let deploy = format!("{}/deploy", config_path(&id));
    let mut ids = Vec::new();
    for body in [json!({"retries": 0}), json!({"retries": 3}), json!({})] {
        let resp = env.post(&deploy, &env.admin, body).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        let deployment = resp.json()["deployment_id"].as_str().unwrap().to_string();
        assert!(uuid::Uuid::parse_str(&deployment).is_ok(), "{deployment}");
        ids.push(deployment);
    }
    assert_eq!(env.standin.deployments(&id), ids);
    let read = env.get(&config_path(&id), &env.admin).await.json();
    assert_eq!(read["deployment_id"], json!(ids[2]));

    for body in [json!({"retries": -1}), json!({"retries": "2"}), json!([1])] {
        let resp = env.post(&deploy, &env.admin, body.clone()).await;
        assert_eq!(resp.status, 400, "{body}");
        resp.error();
    }
    assert_eq!(
        env.raw(Method::POST, &deploy, &env.admin, "").await.status,
        400
    );
    assert_eq!(env.standin.deployments(&id).len(), 3);
}

#[tokio::test]
async fn limits_are_enforced() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "accepted", None);
    let path = config_path(&id);

    let mut many = Map::new();
    for i in 0..101 {
        many.insert(format!("k{i}"), json!("v"));
    }
    let long = "x".repeat(4097);
    for body in [
        Value::Object(many.clone()),
        json!({"n": 1}),
        json!({"b": true}),
        json!({"nested": {"a": "b"}}),
        json!({"null": null}),
        json!({(long.clone()): "v"}),
        json!({"k": long}),
        json!({"": "v"}),
        json!(["a"]),
        json!("a"),
    ] {
        let resp = env.put(&path, &env.admin, body.clone()).await;
        assert_eq!(
            resp.status,
            400,
            "{}",
            &body.to_string()[..body.to_string().len().min(80)]
        );
        resp.error();
    }
    assert_eq!(
        env.raw(Method::PUT, &path, &env.admin, "{").await.status,
        400
    );
    // Bodies over 1 MiB (valid JSON padded with blanks).
    for size in [1024 * 1024 + 1, 3 * 1024 * 1024] {
        let padded = format!("{{\"a\": \"b\"{}}}", " ".repeat(size));
        let resp = env.raw(Method::PUT, &path, &env.admin, &padded).await;
        assert_eq!(resp.status, 400, "{size} bytes");
        resp.error();
    }
    assert_eq!(
        env.standin.configuration(&id),
        Some(BTreeMap::new()),
        "nothing stored"
    );

    // Exactly at the limits is fine.
    many.remove("k100");
    assert_eq!(many.len(), 100);
    assert_eq!(
        env.put(&path, &env.admin, Value::Object(many)).await.status,
        204
    );
    let at_limit = json!({("k".repeat(4096)): "v".repeat(4096)});
    assert_eq!(env.put(&path, &env.admin, at_limit).await.status, 204);
}

#[tokio::test]
async fn unknown_devices_and_access() {
    let env = env().await;
    let unknown = "8c3c3f6c-0000-4000-8000-000000000000";
    let resp = env.get(&config_path(unknown), &env.admin).await;
    assert_eq!(resp.status, 404);
    resp.error();
    let deploy = env
        .post(
            &format!("{}/deploy", config_path(unknown)),
            &env.admin,
            json!({"retries": 0}),
        )
        .await;
    assert_eq!(deploy.status, 404);

    // A device never accepted has no Configure record yet.
    let pending = env.standin.add_device(TENANT, "pending", None);
    assert_eq!(
        env.get(&config_path(&pending), &env.admin).await.status,
        404
    );
    // Accepting it creates one.
    env.standin.accept(&pending).await;
    assert_eq!(
        env.get(&config_path(&pending), &env.admin).await.status,
        200
    );

    // Observers read but do not write.
    let id = env.standin.add_device(TENANT, "accepted", Some("lab"));
    assert_eq!(env.get(&config_path(&id), &env.observer).await.status, 200);
    let put = env
        .put(&config_path(&id), &env.observer, json!({"a": "b"}))
        .await;
    assert_eq!(put.status, 403);
    put.error();
    let observer_deploy = env
        .post(
            &format!("{}/deploy", config_path(&id)),
            &env.observer,
            json!({}),
        )
        .await;
    assert_eq!(observer_deploy.status, 403);

    // RBAC groups.
    let field_user = env.user_token(&["RBAC_ROLE_PERMIT_ALL"], Some(&["field"]));
    assert_eq!(env.get(&config_path(&id), &field_user).await.status, 403);
    assert_eq!(
        env.put(&config_path(&id), &field_user, json!({"a": "b"}))
            .await
            .status,
        403
    );
    let field_deploy = env
        .post(
            &format!("{}/deploy", config_path(&id)),
            &field_user,
            json!({}),
        )
        .await;
    assert_eq!(field_deploy.status, 403);
    let lab_user = env.user_token(&["RBAC_ROLE_PERMIT_ALL"], Some(&["lab"]));
    assert_eq!(
        env.put(&config_path(&id), &lab_user, json!({"a": "b"}))
            .await
            .status,
        204
    );

    // Another tenant's device is unknown here.
    env.standin.add_tenant("other", true);
    let foreign = env.standin.add_device("other", "accepted", None);
    assert_eq!(
        env.get(&config_path(&foreign), &env.admin).await.status,
        404
    );

    // No token.
    let anonymous = env.call(Method::GET, &config_path(&id), None, None).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn put_on_a_device_without_record_upserts_like_mender() {
    // Mender's deviceconfig upserts on PUT (the spec declares no 404 there).
    let env = env().await;
    let unknown = "8c3c3f6c-0000-4000-8000-00000000abcd";
    let resp = env
        .put(&config_path(unknown), &env.admin, json!({"a": "b"}))
        .await;
    assert_eq!(resp.status, 204);
    let read = env.get(&config_path(unknown), &env.admin).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["configured"], json!({"a": "b"}));
    // A group-restricted user cannot create records for devices it cannot see.
    let lab_user = env.user_token(&["RBAC_ROLE_PERMIT_ALL"], Some(&["lab"]));
    let other = "8c3c3f6c-0000-4000-8000-00000000abce";
    assert_eq!(
        env.put(&config_path(other), &lab_user, json!({}))
            .await
            .status,
        403
    );
}
