//! Runs a scenario over every endpoint (happy paths and errors) and checks
//! every recorded exchange against Mender's OpenAPI specs.

use std::collections::BTreeSet;

use mender_standin::openapi::Specs;
use reqwest::Method;
use serde_json::json;

use crate::common::*;

const PUBKEY: &str =
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";

/// Exercises every route the stand-in serves, including refusals.
async fn scenario(env: &Env) {
    let receiver = Receiver::start().await;
    let lab_user = env.user_token(&["RBAC_ROLE_PERMIT_ALL"], Some(&["lab"]));

    // useradm
    env.get(ME, &env.admin).await;
    env.get(ME, &env.observer).await;
    env.get(ME, "nonsense").await;
    env.call(Method::GET, ME, None, None).await;
    let pat = env
        .post(TOKENS, &env.admin, json!({"name": "ci", "expires_in": 600}))
        .await;
    assert_eq!(pat.status, 200);
    env.post(TOKENS, &env.admin, json!({"name": "ci"})).await; // 409
    env.post(
        TOKENS,
        &env.admin,
        json!({"name": "x", "expires_in": 99_999_999}),
    )
    .await; // 400
    env.post(TOKENS, &env.admin, json!({"name": "forever"}))
        .await;
    let tokens = env.get(TOKENS, &env.admin).await.json();
    env.get(ME, &pat.text).await;
    let pat_id = tokens[0]["id"].as_str().unwrap().to_string();
    env.delete(&format!("{TOKENS}/{pat_id}"), &env.admin).await;
    env.get(ME, &pat.text).await; // 401

    // iot-manager
    let hook = json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": receiver.url, "secret": "abcd"}}, "description": "bridge"});
    env.post(INTEGRATIONS, &env.observer, hook.clone()).await; // 403
    env.get(INTEGRATIONS, &env.observer).await; // 403
    let bad = json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": "https://x.example/", "secret": "XYZ"}}});
    env.post(INTEGRATIONS, &env.admin, bad).await; // 400
    let created = env.post(INTEGRATIONS, &env.admin, hook.clone()).await;
    assert_eq!(created.status, 201);
    env.post(INTEGRATIONS, &env.admin, hook.clone()).await; // 409
    env.get(INTEGRATIONS, &env.admin).await;
    env.delete(&format!("{INTEGRATIONS}/not-a-uuid"), &env.admin)
        .await; // 400
    env.delete(
        &format!("{INTEGRATIONS}/8c3c3f6c-0000-4000-8000-000000000000"),
        &env.admin,
    )
    .await; // 404
    let location = created.header("location").unwrap();
    env.delete(&location, &env.admin).await; // 204
    env.post(INTEGRATIONS, &env.admin, hook).await; // 201 again, for the webhooks below

    // devauth
    let pending: Vec<String> = (0..3)
        .map(|_| env.standin.add_device(TENANT, "pending", Some("lab")))
        .collect();
    let field = env.standin.add_device(TENANT, "accepted", Some("field"));
    env.get(&format!("{DEVICES}?per_page=2"), &env.admin).await;
    env.get(
        &format!("{DEVICES}?per_page=2&page=2&status=pending"),
        &env.admin,
    )
    .await;
    env.get(&format!("{DEVICES}?status=bogus"), &env.admin)
        .await; // 400
    env.get(&format!("{DEVICES}?per_page=501"), &env.admin)
        .await; // 400
    env.get(
        &format!("{DEVICES}?id={}&id={field}", pending[0]),
        &env.admin,
    )
    .await;
    env.get(DEVICES, &lab_user).await;
    env.get(&format!("{DEVICES}/count?status=accepted"), &env.admin)
        .await;
    env.get(&device_path(&pending[0]), &env.admin).await;
    env.get(&device_path(&field), &lab_user).await; // 403
    env.get(
        &device_path("8c3c3f6c-0000-4000-8000-000000000000"),
        &env.admin,
    )
    .await; // 404

    let aid = env.auth_set_id(&pending[0]).await;
    let status = status_path(&pending[0], &aid);
    env.put(&status, &env.observer, json!({"status": "accepted"}))
        .await; // 403
    env.put(&status, &env.admin, json!({"status": "preauthorized"}))
        .await; // 400
    env.put(
        &status_path(&pending[0], "nope"),
        &env.admin,
        json!({"status": "accepted"}),
    )
    .await; // 404
    env.put(&status, &env.admin, json!({"status": "accepted"}))
        .await; // 204
    env.get(&status, &env.admin).await;
    env.put(&status, &env.admin, json!({"status": "rejected"}))
        .await;
    env.put(&status, &env.admin, json!({"status": "accepted"}))
        .await;

    let aid1 = env.auth_set_id(&pending[1]).await;
    env.delete(
        &format!("{}/auth/{aid1}", device_path(&pending[1])),
        &env.admin,
    )
    .await; // 204
    env.delete(
        &format!("{}/auth/{aid1}", device_path(&pending[1])),
        &env.admin,
    )
    .await; // 404
    env.delete(&device_path(&pending[2]), &env.observer).await; // 403
    env.delete(&device_path(&pending[2]), &env.admin).await; // 204
    env.delete(&device_path(&pending[2]), &env.admin).await; // 404

    let preauth = json!({"identity_data": {"mac": "00:11:22:33:44:55"}, "pubkey": PUBKEY});
    env.post(DEVICES, &env.admin, preauth.clone()).await; // 201
    env.post(DEVICES, &env.admin, preauth).await; // 409
    env.post(DEVICES, &env.admin, json!({"identity_data": {"mac": "x"}}))
        .await; // 400

    // deviceconfig
    let accepted = &pending[0];
    env.get(&config_path(accepted), &env.admin).await;
    env.put(
        &config_path(accepted),
        &env.admin,
        json!({"awsEndpoint": "x-ats.iot.eu-west-1.amazonaws.com"}),
    )
    .await;
    env.put(&config_path(accepted), &env.admin, json!({"n": 1}))
        .await; // 400
    env.put(&config_path(accepted), &env.observer, json!({}))
        .await; // 403
    env.get(&config_path(accepted), &env.observer).await;
    env.get(&config_path(&field), &lab_user).await; // 403
    env.get(
        &config_path("8c3c3f6c-0000-4000-8000-000000000000"),
        &env.admin,
    )
    .await; // 404
    let deploy = format!("{}/deploy", config_path(accepted));
    env.post(&deploy, &env.admin, json!({"retries": 2})).await;
    env.post(&deploy, &env.admin, json!({"retries": "2"})).await; // 400
    env.post(
        &format!("{}/deploy", config_path(&pending[2])),
        &env.admin,
        json!({}),
    )
    .await; // 404

    env.standin.wait_deliveries().await;
}

#[tokio::test]
async fn every_exchange_conforms_to_the_specs() {
    let specs = Specs::load_mender().expect("load the Mender specs");
    let env = env().await;
    scenario(&env).await;

    let exchanges: Vec<_> = env
        .standin
        .exchanges()
        .into_iter()
        .filter(|e| e.path.starts_with("/api/"))
        .collect();
    assert!(exchanges.len() > 50, "{} exchanges", exchanges.len());
    if let Err(errors) = specs.check_all(&exchanges) {
        panic!("{} non-conformities:\n{}", errors.len(), errors.join("\n"));
    }

    // The scenario covers every operation the stand-in serves, and every
    // kind of refusal.
    let operations: BTreeSet<String> = exchanges
        .iter()
        .filter_map(|e| specs.operation_of(&e.method, &e.path))
        .collect();
    let expected = [
        "GET /api/management/v1/useradm/users/me",
        "GET /api/management/v1/useradm/settings/tokens",
        "POST /api/management/v1/useradm/settings/tokens",
        "DELETE /api/management/v1/useradm/settings/tokens/{id}",
        "GET /api/management/v2/devauth/devices",
        "POST /api/management/v2/devauth/devices",
        "GET /api/management/v2/devauth/devices/count",
        "GET /api/management/v2/devauth/devices/{id}",
        "DELETE /api/management/v2/devauth/devices/{id}",
        "DELETE /api/management/v2/devauth/devices/{id}/auth/{aid}",
        "GET /api/management/v2/devauth/devices/{id}/auth/{aid}/status",
        "PUT /api/management/v2/devauth/devices/{id}/auth/{aid}/status",
        "GET /api/management/v1/deviceconfig/configurations/device/{deviceId}",
        "PUT /api/management/v1/deviceconfig/configurations/device/{deviceId}",
        "POST /api/management/v1/deviceconfig/configurations/device/{deviceId}/deploy",
        "GET /api/management/v1/iot-manager/integrations",
        "POST /api/management/v1/iot-manager/integrations",
        "DELETE /api/management/v1/iot-manager/integrations/{id}",
    ];
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(operations, expected);
    let statuses: BTreeSet<u16> = exchanges.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        BTreeSet::from([200, 201, 204, 400, 401, 403, 404, 409])
    );
}

#[tokio::test]
async fn strict_mode_reports_what_the_specs_leave_out() {
    // Without the allowances, the gateway's 401/403 and iot-manager's 409
    // are undeclared: the allowances are what lets them through.
    let specs = Specs::load_mender().expect("specs").strict();
    let env = env().await;
    let field = env.standin.add_device(TENANT, "accepted", Some("field"));
    let lab_user = env.user_token(&["RBAC_ROLE_PERMIT_ALL"], Some(&["lab"]));
    env.get(&device_path(&field), &lab_user).await; // 403
    env.get(DEVICES, "nonsense").await; // 401
    let hook = json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": "https://x.example/"}}});
    env.post(INTEGRATIONS, &env.admin, hook.clone()).await; // 201
    env.post(INTEGRATIONS, &env.admin, hook).await; // 409

    let exchanges = env.standin.exchanges();
    let verdicts: Vec<(u16, bool)> = exchanges
        .iter()
        .map(|e| (e.status, specs.check(e).is_ok()))
        .collect();
    assert_eq!(
        verdicts,
        [(403, false), (401, false), (201, true), (409, false)]
    );
    let lenient = Specs::load_mender().unwrap();
    assert!(lenient.check_all(&exchanges).is_ok());
}

#[tokio::test]
async fn the_local_stack_route_is_not_mender() {
    let env = env().await;
    let resp = env
        .call(
            Method::POST,
            "/_standin/devices",
            None,
            Some(json!({"tenant_id": TENANT, "status": "pending"})),
        )
        .await;
    assert_eq!(resp.status, 201);
    let id = resp.json()["id"].as_str().unwrap().to_string();
    assert_eq!(env.standin.device_status(&id).as_deref(), Some("pending"));
    for body in [
        json!({"tenant_id": "nope", "status": "pending"}),
        json!({"tenant_id": TENANT, "status": "dismissed"}),
        json!({"tenant_id": TENANT}),
    ] {
        let bad = env
            .call(Method::POST, "/_standin/devices", None, Some(body))
            .await;
        assert_eq!(bad.status, 400);
        bad.error();
    }
    let specs = Specs::load_mender().unwrap();
    let exchange = env.standin.exchanges().remove(0);
    assert!(specs.check(&exchange).is_err(), "not a Mender operation");
}
