//! Integration setup through the runner's iot-manager `integrations` routes, against
//! moto and the Mender stand-in: creation, replacement, removal, every
//! refusal, nothing left behind when a step fails, only allowed
//! organizations enrolling, and failed setups rate-limited.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bridge::config::Enrollment;
use bridge::wiring::Wiring;
use integration_tests::fault_proxy::{Fault, FaultRule};
use integration_tests::resilience::{
    RecordingBus, Reply, TEST_SECRET_ACCESS_KEY as SECRET_KEY, lambda_request,
};
use integration_tests::stack::{
    Answer, POLICY, REGION, Stack, TENANT, api, key_pair_setup, test_budget, test_config,
};
use reqwest::Method;
use serde_json::{Value, json};

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

/// `POST integrations`: a new integration.
async fn create(stack: &Stack, token: &str, body: &Value) -> Answer {
    stack
        .call(Method::POST, &api("/integrations"), Some(token), Some(body))
        .await
}

/// `PUT integrations/{id}`: all of that integration replaced.
async fn replace(stack: &Stack, token: &str, id: &Value, body: &Value) -> Answer {
    let path = api(&format!("/integrations/{}", id.as_str().unwrap()));
    stack
        .call(Method::PUT, &path, Some(token), Some(body))
        .await
}

/// `GET integrations/{id}`.
async fn read(stack: &Stack, token: &str, id: &Value) -> Answer {
    let path = api(&format!("/integrations/{}", id.as_str().unwrap()));
    stack.call(Method::GET, &path, Some(token), None).await
}

/// The fields a 400 names, sorted.
fn invalid_fields(answer: &Answer) -> Vec<&str> {
    let mut fields: Vec<&str> = answer.body["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {}", answer.text))
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    fields.sort();
    fields
}

/// Secrets the bridge holds (not scheduled for deletion), by name.
async fn stored_secrets(stack: &Stack) -> BTreeMap<String, Value> {
    let config = stack.direct.clone();
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let listed = client.list_secrets().send().await.unwrap();
    let mut values = BTreeMap::new();
    for secret in listed.secret_list() {
        if secret.deleted_date().is_some() {
            continue;
        }
        let value = client
            .get_secret_value()
            .secret_id(secret.name().unwrap())
            .send()
            .await
            .unwrap();
        let text = value.secret_string().unwrap();
        values.insert(
            secret.name().unwrap().to_owned(),
            serde_json::from_str(text).unwrap(),
        );
    }
    values
}

/// The one stored secret of a kind (`credentials` or `webhook`).
fn secret_of<'a>(secrets: &'a BTreeMap<String, Value>, kind: &str) -> &'a Value {
    let prefix = format!("{}{kind}/", integration_tests::stack::SECRETS_PREFIX);
    let mut found = secrets.iter().filter(|(name, _)| name.starts_with(&prefix));
    let (_, value) = found.next().unwrap_or_else(|| panic!("no {kind} secret"));
    assert!(found.next().is_none(), "one {kind} secret");
    value
}

/// Every item of the bridge's table, by key (index entries, counters).
async fn table_items(stack: &Stack) -> HashMap<String, HashMap<String, AttributeValue>> {
    let config = stack.direct.clone();
    let scanned = aws_sdk_dynamodb::Client::new(&config)
        .scan()
        .table_name(integration_tests::stack::TABLE)
        .send()
        .await
        .unwrap();
    scanned
        .items()
        .iter()
        .map(|item| (item["pk"].as_s().unwrap().clone(), item.clone()))
        .collect()
}

/// A number attribute of an item.
fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item[name].as_n().unwrap().parse().unwrap()
}

/// The operations the bridge sent through a proxy, in order.
fn operations(proxy: &integration_tests::fault_proxy::FaultProxy) -> Vec<String> {
    proxy.calls().into_iter().map(|c| c.operation).collect()
}

/// Confirming the caller's token: the one Mender call a refusal may cost.
const USERS_ME: &str = "GET /api/management/v1/useradm/users/me";

/// The admin's personal access tokens, as Mender lists them.
async fn personal_tokens(stack: &Stack) -> Vec<Value> {
    let answer = integration_tests::http()
        .get(format!(
            "{}/api/management/v1/useradm/settings/tokens",
            stack.mender.url()
        ))
        .bearer_auth(&stack.admin_token)
        .send()
        .await
        .unwrap();
    answer.json::<Vec<Value>>().await.unwrap()
}

/// A new organization in Mender with an admin; the admin's token.
fn add_admin(stack: &Stack, tenant: &str) -> String {
    stack.mender.add_tenant(tenant, true);
    let admin = stack.mender.add_user(
        tenant,
        &format!("admin@{tenant}.test"),
        &["RBAC_ROLE_PERMIT_ALL"],
        None,
    );
    stack.mender.issue_token(&admin, Duration::from_secs(3600))
}

/// Nothing of a setup exists: no Mender webhook, no token, no secret, no index entry.
async fn assert_nothing_left(stack: &Stack, context: &str) {
    assert!(
        stack.mender.webhook_integration(TENANT).is_none(),
        "{context}: Mender webhook left"
    );
    assert!(
        personal_tokens(stack).await.is_empty(),
        "{context}: token left"
    );
    assert!(
        stored_secrets(stack).await.is_empty(),
        "{context}: secret left"
    );
    let answer = stack
        .call(
            Method::GET,
            &api("/integrations"),
            Some(&stack.admin_token),
            None,
        )
        .await;
    assert_eq!(
        (answer.status, &answer.body),
        (200, &json!([])),
        "{context}: {}",
        answer.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_then_acceptance_provisions_with_nothing_seeded_by_hand() {
    let stack = Stack::bare().await;
    let created = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body["webhook_url"],
        format!("{}/webhooks/{id}", stack.url)
    );
    assert_eq!(
        created.body["credentials"]["aws"]["secret_access_key"],
        "<omitted>"
    );
    assert_eq!(created.body["credentials"]["aws"]["access_key_id"], KEY_ID);

    // Mender now signs webhooks to the bridge with the stored secret.
    let webhook = stack
        .mender
        .webhook_integration(TENANT)
        .expect("webhook registered");
    assert_eq!(webhook.url, format!("{}/webhooks/{id}", stack.url));
    assert_eq!(webhook.secret.len(), 64);
    // Two secrets: what the ingress may read, and the credentials.
    let secrets = stored_secrets(&stack).await;
    assert_eq!(secrets.len(), 2, "{:?}", secrets.keys());
    let stored = secret_of(&secrets, "credentials");
    let verifying = secret_of(&secrets, "webhook");
    assert_eq!(verifying["webhook_secret"], webhook.secret);
    assert_eq!(verifying["tenant_id"], TENANT);
    assert_eq!(verifying["integration_id"], id.as_str());
    assert!(verifying.get("mender").is_none() && verifying.get("aws").is_none());
    assert!(stored.get("webhook_secret").is_none());
    assert_eq!(stored["tenant_id"], TENANT);
    assert_eq!(
        personal_tokens(&stack).await.len(),
        1,
        "the bridge made its own token"
    );

    let device = stack.mender.add_device(TENANT, "pending", None);
    let deliveries = stack.mender.accept(&device).await;
    assert!(
        deliveries.iter().all(|d| d.result == Ok(202)),
        "{deliveries:?}"
    );
    stack.bus.wait_idle().await;
    assert!(
        stack.bus.dead_letters().is_empty(),
        "{:?}",
        stack.bus.dead_letters()
    );
    let principals = stack.thing_principals(&device).await;
    assert_eq!(principals.len(), 1);
    assert!(
        stack
            .mender
            .configuration(&device)
            .unwrap()
            .contains_key("awsCertificate")
    );

    // Reading it back shows no secret value; so does the listing.
    let listed = stack
        .call(
            Method::GET,
            &api("/integrations"),
            Some(&stack.admin_token),
            None,
        )
        .await;
    assert_eq!((listed.status, &listed.body[0]["id"]), (200, &json!(id)));
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    let read = read(&stack, &stack.admin_token, &json!(id)).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, listed.body[0]);
    for secret in [
        SECRET_KEY,
        webhook.secret.as_str(),
        stored["mender"]["token"].as_str().unwrap(),
    ] {
        assert!(!read.text.contains(secret), "secret in GET");
        assert!(!created.text.contains(secret), "secret in POST answer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_credentials_keeps_id_webhook_and_secrets() {
    let stack = Stack::bare().await;
    let created = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201);
    let before = stored_secrets(&stack).await;

    let mut changed = key_pair_setup(POLICY);
    changed["credentials"]["aws"]["access_key_id"] = json!("AKIAI44QH8DHBEXAMPLE");
    changed["description"] = json!("rotated");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let replaced = replace(&stack, &stack.admin_token, &created.body["id"], &changed).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.body["id"], created.body["id"]);
    assert_eq!(replaced.body["webhook_url"], created.body["webhook_url"]);
    assert_eq!(
        replaced.body["credentials"]["aws"]["access_key_id"],
        "AKIAI44QH8DHBEXAMPLE"
    );
    assert_eq!(replaced.body["created_at"], created.body["created_at"]);
    assert_ne!(replaced.body["updated_at"], created.body["updated_at"]);

    let after = stored_secrets(&stack).await;
    assert_eq!(secret_of(&after, "webhook"), secret_of(&before, "webhook"));
    assert_eq!(
        secret_of(&after, "credentials")["mender"],
        secret_of(&before, "credentials")["mender"]
    );
    assert_eq!(personal_tokens(&stack).await.len(), 1);

    // Mender's own route: the credentials alone (Mender's `Credentials`),
    // 204, the rest of the integration kept.
    let path = api(&format!(
        "/integrations/{}/credentials",
        created.body["id"].as_str().unwrap()
    ));
    let mut credentials = key_pair_setup(POLICY)["credentials"].clone();
    credentials["aws"]["access_key_id"] = json!("AKIAJ3XAMPLEKEY00000");
    let answer = stack
        .call(
            Method::PUT,
            &path,
            Some(&stack.admin_token),
            Some(&credentials),
        )
        .await;
    assert_eq!((answer.status, answer.text.as_str()), (204, ""));
    let shown = read(&stack, &stack.admin_token, &created.body["id"]).await;
    assert_eq!(
        shown.body["credentials"]["aws"]["access_key_id"],
        "AKIAJ3XAMPLEKEY00000"
    );
    assert_eq!(shown.body["description"], "rotated", "the rest is kept");
    assert_eq!(shown.body["id"], created.body["id"]);
    credentials["aws"]["region"] = json!("mars-north-9x");
    credentials["aws"]["external_id"] = json!("mine");
    let refused = stack
        .call(
            Method::PUT,
            &path,
            Some(&stack.admin_token),
            Some(&credentials),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        invalid_fields(&refused),
        ["aws.external_id", "aws.region"],
        "named within the body"
    );
    let elsewhere = api("/integrations/6f2a1a0e-1f3a-4d7e-9a51-0c2b8d1e7f00/credentials");
    let answer = stack
        .call(
            Method::PUT,
            &elsewhere,
            Some(&stack.admin_token),
            Some(&key_pair_setup(POLICY)["credentials"]),
        )
        .await;
    assert_eq!(answer.status, 404, "{}", answer.text);
    assert_eq!(
        read(&stack, &stack.admin_token, &created.body["id"])
            .await
            .body,
        shown.body,
        "refusals changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_confirmed_admins_of_the_organization_may_set_up() {
    let stack = Stack::bare().await;
    let observer =
        stack
            .mender
            .add_user(TENANT, "observer@acme.test", &["RBAC_ROLE_OBSERVER"], None);
    let observer_token = stack
        .mender
        .issue_token(&observer, Duration::from_secs(3600));
    let admin = stack.mender.add_user(
        TENANT,
        "other-admin@acme.test",
        &["RBAC_ROLE_PERMIT_ALL"],
        None,
    );
    let expired = stack.mender.issue_token(&admin, Duration::from_secs(0));
    let revoked = stack.mender.issue_token(&admin, Duration::from_secs(3600));
    stack.mender.revoke_token(&revoked);
    stack.mender.add_tenant("globex", true);
    let foreign_admin = stack.mender.add_user(
        "globex",
        "admin@globex.test",
        &["RBAC_ROLE_PERMIT_ALL"],
        None,
    );
    let foreign = stack
        .mender
        .issue_token(&foreign_admin, Duration::from_secs(3600));

    let created = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201);
    let path = api(&format!(
        "/integrations/{}",
        created.body["id"].as_str().unwrap()
    ));
    for (method, path) in [
        (Method::GET, api("/integrations")),
        (Method::POST, api("/integrations")),
        (Method::GET, path.clone()),
        (Method::PUT, path.clone()),
        (Method::DELETE, path.clone()),
        (Method::PUT, format!("{path}/credentials")),
    ] {
        let body =
            (method != Method::GET && method != Method::DELETE).then(|| key_pair_setup(POLICY));
        for (name, token, expected) in [
            ("no token", None, 401),
            ("not a token", Some("garbage"), 401),
            ("expired", Some(expired.as_str()), 401),
            ("revoked", Some(revoked.as_str()), 401),
            ("read-only user", Some(observer_token.as_str()), 403),
        ] {
            let answer = stack
                .call(method.clone(), &path, token, body.as_ref())
                .await;
            assert_eq!(answer.status, expected, "{method} {name}: {}", answer.text);
            assert!(
                answer.body["error"].is_string(),
                "{method} {name}: {}",
                answer.text
            );
        }
    }
    // Another organization's admin sees only its own (absent) integration.
    let answer = stack
        .call(Method::GET, &api("/integrations"), Some(&foreign), None)
        .await;
    assert_eq!((answer.status, answer.body), (200, json!([])));
    for method in [Method::GET, Method::DELETE] {
        let answer = stack
            .call(method.clone(), &path, Some(&foreign), None)
            .await;
        assert_eq!(answer.status, 404, "{method}: {}", answer.text);
    }
    let answer = stack
        .call(
            Method::PUT,
            &path,
            Some(&foreign),
            Some(&key_pair_setup(POLICY)),
        )
        .await;
    assert_eq!(answer.status, 404, "{}", answer.text);
    let ours = read(&stack, &stack.admin_token, &created.body["id"]).await;
    assert_eq!(ours.status, 200, "the foreign admin changed nothing");
    assert_eq!(ours.body, created.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bodies_are_refused_before_anything_is_stored() {
    let stack = Stack::bare().await;
    let mut bad = key_pair_setup(POLICY);
    bad["credentials"]["aws"]["region"] = json!("mars-north-9x");
    bad["credentials"]["aws"]["device_policy_name"] = json!("");
    bad["provider"] = json!("webhook");
    let answer = create(&stack, &stack.admin_token, &bad).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(
        invalid_fields(&answer),
        [
            "credentials.aws.device_policy_name",
            "credentials.aws.region",
            "provider"
        ]
    );

    let raw = integration_tests::http()
        .post(format!("{}{}", stack.url, api("/integrations")))
        .bearer_auth(&stack.admin_token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let oversized = json!({"description": "x".repeat(20_000)});
    assert_eq!(
        create(&stack, &stack.admin_token, &oversized).await.status,
        413
    );
    assert_nothing_left(&stack, "invalid body").await;
    assert_eq!(
        stack.aws_proxy.count("DescribeEndpoint"),
        0,
        "AWS was not asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_aws_refuses_are_422_with_the_reason() {
    let stack = Stack::bare().await;
    let mut missing_policy = key_pair_setup(POLICY);
    missing_policy["credentials"]["aws"]["device_policy_name"] = json!("no-such-policy");
    let answer = create(&stack, &stack.admin_token, &missing_policy).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(answer.body["aws_error_code"], "ResourceNotFoundException");
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("no-such-policy")
    );

    for (code, status, words) in [
        ("UnrecognizedClientException", 403, "wrong"),
        ("AccessDeniedException", 403, "not allowed"),
    ] {
        stack.aws_proxy.inject(FaultRule::once(
            "DescribeEndpoint",
            Fault::Refuse(status, code),
        ));
        let answer = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
        assert_eq!(answer.status, 422, "{code}: {}", answer.text);
        assert_eq!(answer.body["aws_error_code"], code);
        assert!(
            answer.body["error"].as_str().unwrap().contains(words),
            "{}",
            answer.text
        );
        assert!(!answer.text.contains(SECRET_KEY));
    }
    assert_nothing_left(&stack, "refused credentials").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_with_another_mender_integration_gets_409() {
    let stack = Stack::bare().await;
    stack
        .mender
        .register_webhook(TENANT, "https://example.test/hook", "abcdef");
    let answer = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(answer.status, 409, "{}", answer.text);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("already has an integration")
    );
    assert!(personal_tokens(&stack).await.is_empty());
    assert!(stored_secrets(&stack).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_setup_step_leaves_nothing_and_the_retry_works() {
    let stack = Stack::bare().await;
    let steps: &[(&str, bool)] = &[
        ("PutItem", true),
        ("POST /api/management/v1/iot-manager/integrations", false),
        ("POST /api/management/v1/useradm/settings/tokens", false),
        ("CreateSecret", true),
    ];
    for (operation, aws) in steps {
        let proxy = if *aws {
            &stack.aws_proxy
        } else {
            &stack.mender_proxy
        };
        proxy.inject(FaultRule::always(operation, Fault::ServerError));
        let answer = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
        proxy.clear();
        assert!(answer.status >= 500, "{operation}: {}", answer.text);
        assert!(
            answer.body["error"].is_string(),
            "{operation}: {}",
            answer.text
        );
        assert!(proxy.count(operation) > 0, "{operation} never called");
        assert_nothing_left(&stack, operation).await;
    }
    let answer = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_answer_was_lost_is_made_again_not_left_behind() {
    // Mender makes the token but its answer never arrives; the retry finds
    // the name taken (409). The name carries the new integration's id, so
    // the token is the setup's own: it is replaced, and the admin has one
    // token, the one the integration holds.
    let stack = Stack::bare().await;
    const TOKENS: &str = "POST /api/management/v1/useradm/settings/tokens";
    stack
        .mender_proxy
        .inject(FaultRule::once(TOKENS, Fault::Crash));
    let answer = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    stack.mender_proxy.clear();
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(
        stack.mender_proxy.count(TOKENS),
        3,
        "lost, refused as a duplicate, made again"
    );
    let tokens = personal_tokens(&stack).await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let id = tokens[0]["id"].as_str().unwrap();
    let held = serde_json::to_string(&stored_secrets(&stack).await).unwrap();
    assert!(held.contains(id), "the integration holds token {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_setting_up_at_once_make_one_integration() {
    let stack = Stack::bare().await;
    let other = stack
        .mender
        .add_user(TENANT, "second@acme.test", &["RBAC_ROLE_PERMIT_ALL"], None);
    let other_token = stack.mender.issue_token(&other, Duration::from_secs(3600));
    let body = key_pair_setup(POLICY);
    let (a, b) = tokio::join!(
        create(&stack, &stack.admin_token, &body),
        create(&stack, &other_token, &body)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} {}", a.text, b.text);
    assert_eq!(stored_secrets(&stack).await.len(), 2, "one integration");
    assert!(stack.mender.webhook_integration(TENANT).is_some());
    // Whoever lost is told a setup is under way or which integration there
    // is, and can replace it.
    let (won, lost) = if a.status == 201 { (a, b) } else { (b, a) };
    let id = won.body["id"].as_str().unwrap();
    assert!(
        lost.text.contains(id) || lost.text.contains("in progress"),
        "{}",
        lost.text
    );
    assert_eq!(
        replace(&stack, &other_token, &won.body["id"], &body)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_webhook_token_and_secret_and_leaves_things() {
    let stack = Stack::bare().await;
    let created = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201);
    let path = api(&format!(
        "/integrations/{}",
        created.body["id"].as_str().unwrap()
    ));
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        path,
        "Location names the new integration"
    );
    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(stack.thing_principals(&device).await.len(), 1);

    let answer = stack
        .call(Method::DELETE, &path, Some(&stack.admin_token), None)
        .await;
    assert_eq!(answer.status, 204, "{}", answer.text);
    assert_nothing_left(&stack, "after delete").await;
    // Both secrets are recoverable for a while, not destroyed.
    let config = stack.direct.clone();
    let listed = aws_sdk_secretsmanager::Client::new(&config)
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.secret_list().len(), 2);
    assert!(
        listed
            .secret_list()
            .iter()
            .all(|secret| secret.deleted_date().is_some())
    );
    // Devices stay in AWS IoT Core.
    assert!(stack.thing_attributes(&device).await.is_some());
    assert_eq!(
        stack
            .call(Method::DELETE, &path, Some(&stack.admin_token), None)
            .await
            .status,
        404
    );
    // And the organization can set up again.
    assert_eq!(
        create(&stack, &stack.admin_token, &key_pair_setup(POLICY))
            .await
            .status,
        201
    );
}

const ROLE: &str = "arn:aws:iam::123456789012:role/mender-iot-bridge-acme";

fn role_body(role_arn: &str) -> Value {
    json!({"provider": "iot-core", "credentials": {"type": "aws", "aws": {
        "role_arn": role_arn, "region": REGION, "device_policy_name": POLICY}}})
}

async fn external_id(stack: &Stack, token: &str) -> Answer {
    stack
        .call(Method::GET, &api("/external-id"), Some(token), None)
        .await
}

/// The form fields of every AssumeRole the bridge sent.
fn assume_role_requests(stack: &Stack) -> Vec<String> {
    stack
        .aws_proxy
        .calls()
        .into_iter()
        .filter(|call| call.operation == "AssumeRole")
        .map(|call| String::from_utf8_lossy(&call.body).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_chooses_the_external_id_and_names_the_organization() {
    let stack = Stack::bare().await;

    // Before any integration: the id and the trust policy to write with it,
    // the same however often asked.
    let trust = external_id(&stack, &stack.admin_token).await;
    assert_eq!(trust.status, 200, "{}", trust.text);
    let id = trust.body["external_id"].as_str().unwrap().to_owned();
    assert!(id.len() >= 32, "{id}");
    assert_eq!(
        external_id(&stack, &stack.admin_token).await.body,
        trust.body
    );
    let session = bridge::aws::session_name(TENANT);
    assert_eq!(trust.body["role_session_name"], session.as_str());
    assert_eq!(
        trust.body["trust_policy"]["Statement"][0]["Condition"]["StringEquals"],
        json!({"sts:ExternalId": id, "sts:RoleSessionName": session})
    );
    // Another organization gets another id.
    let other = add_admin(&stack, "globex");
    let theirs = external_id(&stack, &other).await;
    assert_ne!(theirs.body["external_id"], id.as_str());

    // An external id sent is refused, and nothing is made.
    let mut chosen = role_body(ROLE);
    chosen["credentials"]["aws"]["external_id"] = json!("acme-external-id");
    let refused = create(&stack, &stack.admin_token, &chosen).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.body["fields"][0]["field"],
        "credentials.aws.external_id"
    );
    assert!(
        refused
            .text
            .contains("GET /api/management/v1/iot-manager/external-id"),
        "{}",
        refused.text
    );
    assert_nothing_left(&stack, "external id sent").await;

    let created = create(&stack, &stack.admin_token, &role_body(ROLE)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["credentials"]["aws"]["role_arn"], ROLE);
    assert_eq!(
        created.body["credentials"]["aws"]["external_id"],
        id.as_str()
    );
    assert!(
        created.body["credentials"]["aws"]
            .get("secret_access_key")
            .is_none()
    );
    let stored = stored_secrets(&stack).await;
    assert!(
        !secret_of(&stored, "credentials")
            .to_string()
            .contains("secret_access_key"),
        "no long-lived key stored"
    );

    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    assert!(
        stack.bus.dead_letters().is_empty(),
        "{:?}",
        stack.bus.dead_letters()
    );
    assert_eq!(stack.thing_principals(&device).await.len(), 1);
    // Setup's check and the lifecycle both assumed the role with the
    // organization's id and session name, which the trust policy pins.
    let assumed = assume_role_requests(&stack);
    assert!(assumed.len() >= 2, "{assumed:?}");
    for request in &assumed {
        assert!(request.contains(&format!("ExternalId={id}")), "{request}");
        assert!(
            request.contains(&format!("RoleSessionName={session}")),
            "{request}"
        );
    }
    // A retry of the setup keeps the same id.
    let again = replace(
        &stack,
        &stack.admin_token,
        &created.body["id"],
        &role_body(ROLE),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["credentials"]["aws"]["external_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_another_organization_uses_is_refused_with_409() {
    let stack = Stack::bare().await;
    let globex = add_admin(&stack, "globex");
    let created = create(&stack, &stack.admin_token, &role_body(ROLE)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let acme_before = read(&stack, &stack.admin_token, &created.body["id"]).await;

    // The same role, however its ARN is spelled (IAM role names ignore
    // case and path), is acme's.
    stack.aws_proxy.reset_calls();
    for spelling in [
        ROLE.to_owned(),
        ROLE.replace("mender-iot-bridge-acme", "Mender-IoT-Bridge-ACME"),
        ROLE.replace("role/", "role/some/path/"),
    ] {
        let refused = create(&stack, &globex, &role_body(&spelling)).await;
        assert_eq!(refused.status, 409, "{spelling}: {}", refused.text);
        assert!(
            refused.text.contains("another organization"),
            "{}",
            refused.text
        );
    }
    assert!(
        assume_role_requests(&stack).is_empty(),
        "the role was never assumed for globex"
    );
    assert!(stack.mender.webhook_integration("globex").is_none());
    assert_eq!(
        read(&stack, &stack.admin_token, &created.body["id"])
            .await
            .body,
        acme_before.body,
        "acme's integration is unchanged"
    );

    // A role of its own works, and a failed setup gives its role up again.
    let mut failing = role_body("arn:aws:iam::123456789012:role/mender-iot-bridge-globex");
    failing["credentials"]["aws"]["device_policy_name"] = json!("no-such-policy");
    assert_eq!(create(&stack, &globex, &failing).await.status, 422);
    let own = replace(
        &stack,
        &stack.admin_token,
        &created.body["id"],
        &role_body("arn:aws:iam::123456789012:role/mender-iot-bridge-globex"),
    )
    .await;
    assert_eq!(
        own.status, 200,
        "acme may take the role globex gave up: {}",
        own.text
    );

    // Acme moved off its first role: globex may have it now.
    let taken = create(&stack, &globex, &role_body(ROLE)).await;
    assert_eq!(taken.status, 201, "{}", taken.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_is_the_admins_choice() {
    let stack = Stack::bare().await;
    let existing = stack.mender.add_device(TENANT, "accepted", None);
    let mut body = key_pair_setup(POLICY);
    body["backfill"] = json!(true);
    let created = create(&stack, &stack.admin_token, &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(
        created.body["backfill_run_id"].is_string(),
        "{}",
        created.text
    );
    stack.bus.wait_idle().await;
    assert_eq!(
        stack.thing_principals(&existing).await.len(),
        1,
        "the accepted device was backfilled"
    );

    // Without the flag (the default), devices already accepted stay as they are.
    let plain = Stack::bare().await;
    let untouched = plain.mender.add_device(TENANT, "accepted", None);
    let created = create(&plain, &plain.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201);
    assert!(created.body.get("backfill_run_id").is_none());
    plain.bus.wait_idle().await;
    assert!(plain.thing_attributes(&untouched).await.is_none());

    let mut wrong = key_pair_setup(POLICY);
    wrong["backfill"] = json!("yes");
    let answer = create(&plain, &plain.admin_token, &wrong).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["fields"][0]["field"], "backfill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_not_allowed_gets_403_and_nothing_is_touched() {
    let stack = Stack::bare_enrolling(Enrollment::parse("globex, initech")).await;
    let role = json!({"provider": "iot-core", "credentials": {"type": "aws", "aws": {
        "role_arn": "arn:aws:iam::123456789012:role/mender-iot-bridge", "external_id": "guess",
        "region": REGION, "device_policy_name": POLICY}}});
    let mut with_token = key_pair_setup(POLICY);
    with_token["mender_token"] = json!(stack.admin_token);
    for (name, body) in [
        ("key pair", key_pair_setup(POLICY)),
        ("role", role),
        ("mender token", with_token),
        ("not a setup", json!({"provider": 7})),
    ] {
        let answer = create(&stack, &stack.admin_token, &body).await;
        assert_eq!(answer.status, 403, "{name}: {}", answer.text);
        assert_eq!(answer.body["code"], "forbidden", "{name}");
        let error = answer.body["error"].as_str().unwrap();
        assert!(
            error.contains(TENANT) && error.contains("not allowed"),
            "{name}: {error}"
        );
    }
    let trust = external_id(&stack, &stack.admin_token).await;
    assert_eq!(trust.status, 403, "no external id either: {}", trust.text);
    // Nothing reached AWS (not even the bridge's own table), and Mender was
    // only asked who the caller is.
    assert_eq!(
        stack.aws_proxy.count("*"),
        0,
        "{:?}",
        operations(&stack.aws_proxy)
    );
    let mender = operations(&stack.mender_proxy);
    assert!(mender.iter().all(|op| op == USERS_ME), "{mender:?}");
    // No index entry, no failure counted: the table is empty.
    assert!(table_items(&stack).await.is_empty());
    assert_nothing_left(&stack, "not allowed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_removed_from_the_list_can_read_and_remove_but_not_change() {
    // Set up while it was allowed.
    let stack = Stack::bare().await;
    let created = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    // Then the operator lists only another organization: a new deployment
    // of the integration function, on the same AWS and Mender.
    let mut config = test_config(&stack.mender_proxy.url(), &stack.url, test_budget());
    config.enrollment = Enrollment::parse("globex");
    let removed_api =
        Wiring::new(config, stack.aws.clone()).integration_api(RecordingBus::default());
    let path = api(&format!(
        "/integrations/{}",
        created.body["id"].as_str().unwrap()
    ));
    let call = |method: Method, path: &str, body: Option<Value>| {
        let request = lambda_request(
            method,
            path,
            &[],
            &[],
            Some(&stack.admin_token),
            body.as_ref(),
        );
        let removed_api = &removed_api;
        async move { Reply::from(bridge::integration::handle(removed_api, request).await) }
    };

    let read = call(Method::GET, &path, None).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["id"], created.body["id"]);

    stack.aws_proxy.reset_calls();
    let mut rotated = key_pair_setup(POLICY);
    rotated["credentials"]["aws"]["access_key_id"] = json!("AKIAI44QH8DHBEXAMPLE");
    let changed = call(Method::PUT, &path, Some(rotated.clone())).await;
    assert_eq!(changed.status, 403, "{}", changed.text);
    let credentials = rotated["credentials"].clone();
    let changed = call(
        Method::PUT,
        &format!("{path}/credentials"),
        Some(credentials),
    )
    .await;
    assert_eq!(changed.status, 403, "{}", changed.text);
    assert_eq!(stack.aws_proxy.count("*"), 0, "PUT touched AWS");
    let still = call(Method::GET, &path, None).await;
    assert_eq!(still.body, read.body, "the integration is unchanged");

    let removed = call(Method::DELETE, &path, None).await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_nothing_left(&stack, "removed").await;
    let again = call(
        Method::POST,
        &api("/integrations"),
        Some(key_pair_setup(POLICY)),
    )
    .await;
    assert_eq!(
        again.status, 403,
        "and it cannot set up anew: {}",
        again.text
    );
    assert_nothing_left(&stack, "refused anew").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_allows_any_organization_and_a_list_only_its_own() {
    let any = Stack::bare_enrolling(Enrollment::parse("*")).await;
    let trial = add_admin(&any, "6500f00dcafe0000000000aa");
    for token in [&any.admin_token, &trial] {
        let created = create(&any, token, &key_pair_setup(POLICY)).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    assert!(any.mender.webhook_integration(TENANT).is_some());
    assert!(
        any.mender
            .webhook_integration("6500f00dcafe0000000000aa")
            .is_some()
    );

    let listed = Stack::bare_enrolling(Enrollment::parse(&format!("globex,{TENANT}"))).await;
    let outsider = add_admin(&listed, "initech");
    let created = create(&listed, &listed.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let refused = create(&listed, &outsider, &key_pair_setup(POLICY)).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(listed.mender.webhook_integration("initech").is_none());
    assert_eq!(
        stored_secrets(&listed).await.len(),
        2,
        "only the listed one's two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_setups_are_rate_limited_per_organization() {
    let stack = Stack::bare().await;
    let limit = bridge::integration::failures::SetupLimit::DEFAULT;
    let mut missing_policy = key_pair_setup(POLICY);
    missing_policy["credentials"]["aws"]["device_policy_name"] = json!("no-such-policy");

    // Malformed bodies never reach Mender or AWS: they do not count.
    for _ in 0..limit.max_failures + 1 {
        let answer = create(&stack, &stack.admin_token, &json!({"provider": "iot-core"})).await;
        assert_eq!(answer.status, 400, "{}", answer.text);
    }
    // Nor do outages: they tell nothing about the credentials.
    stack
        .aws_proxy
        .inject(FaultRule::always("DescribeEndpoint", Fault::ServerError));
    for _ in 0..limit.max_failures + 1 {
        let answer = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
        assert_eq!(answer.status, 503, "{}", answer.text);
    }
    stack.aws_proxy.clear();
    assert!(
        !table_items(&stack)
            .await
            .contains_key(&format!("setup-failures#{TENANT}"))
    );

    // Refusals of the credentials count, up to the limit.
    for attempt in 1..=limit.max_failures {
        let answer = create(&stack, &stack.admin_token, &missing_policy).await;
        assert_eq!(answer.status, 422, "attempt {attempt}: {}", answer.text);
    }
    let counter = table_items(&stack).await[&format!("setup-failures#{TENANT}")].clone();
    assert_eq!(number(&counter, "failures"), limit.max_failures);
    let now = bridge::clock::epoch_seconds();
    let ends_at = number(&counter, "expires_at");
    assert!(
        ends_at > now && ends_at <= now + limit.window_seconds,
        "the window ends (and TTL deletes the item) within {} s: {ends_at} at {now}",
        limit.window_seconds
    );

    // Over the limit: 429 before any Mender or AWS call but the count's read,
    // even with a body that would succeed, and whatever the body.
    stack.aws_proxy.reset_calls();
    stack.mender_proxy.reset_calls();
    for body in [
        key_pair_setup(POLICY),
        missing_policy.clone(),
        json!({"not": "a setup"}),
    ] {
        let answer = create(&stack, &stack.admin_token, &body).await;
        assert_eq!(answer.status, 429, "{}", answer.text);
        assert_eq!(answer.body["code"], "too_many_requests");
        let retry: u64 = answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=limit.window_seconds).contains(&retry),
            "Retry-After {retry}"
        );
        assert_eq!(answer.body["retry_after_seconds"], retry);
        assert!(
            answer.body["error"]
                .as_str()
                .unwrap()
                .contains("try again in"),
            "{}",
            answer.text
        );
    }
    assert_eq!(
        operations(&stack.aws_proxy),
        ["GetItem", "GetItem", "GetItem"],
        "only the count was read"
    );
    let mender = operations(&stack.mender_proxy);
    assert!(mender.iter().all(|op| op == USERS_ME), "{mender:?}");
    assert_nothing_left(&stack, "rate-limited").await;
    assert_eq!(
        number(
            &table_items(&stack).await[&format!("setup-failures#{TENANT}")],
            "failures"
        ),
        limit.max_failures,
        "refusals over the limit do not count"
    );

    // Another organization is not affected.
    stack.mender.add_tenant("globex", true);
    let other = stack.mender.add_user(
        "globex",
        "admin@globex.test",
        &["RBAC_ROLE_PERMIT_ALL"],
        None,
    );
    let other_token = stack.mender.issue_token(&other, Duration::from_secs(3600));
    let created = create(&stack, &other_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201, "{}", created.text);

    // A window that is over no longer refuses, even before TTL deletes the
    // item; the next failure opens a new window.
    let direct = stack.direct.clone();
    aws_sdk_dynamodb::Client::new(&direct)
        .put_item()
        .table_name(integration_tests::stack::TABLE)
        .item("pk", AttributeValue::S(format!("setup-failures#{TENANT}")))
        .item("failures", AttributeValue::N("50".into()))
        .item("expires_at", AttributeValue::N((now - 1).to_string()))
        .send()
        .await
        .unwrap();
    let answer = create(&stack, &stack.admin_token, &missing_policy).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    let counter = table_items(&stack).await[&format!("setup-failures#{TENANT}")].clone();
    assert_eq!(number(&counter, "failures"), 1);
    assert!(number(&counter, "expires_at") > now);
    let created = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(created.status, 201, "{}", created.text);
}

/// An organization without Mender Configure cannot receive credentials:
/// setup says so (422) instead of every device event failing later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_without_mender_configure_is_refused_with_422() {
    let stack = Stack::bare().await;
    stack.mender.set_configure_addon(TENANT, false);
    let refused = create(&stack, &stack.admin_token, &key_pair_setup(POLICY)).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.body["code"], "mender_unsuitable");
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("Configure add-on"),
        "{}",
        refused.text
    );
    assert_eq!(
        stack.aws_proxy.count("DescribeEndpoint"),
        0,
        "refused before AWS is asked"
    );
    assert_nothing_left(&stack, "without Configure").await;

    // With the add-on, the same setup works.
    stack.mender.set_configure_addon(TENANT, true);
    assert_eq!(
        create(&stack, &stack.admin_token, &key_pair_setup(POLICY))
            .await
            .status,
        201
    );
}

/// A script written for Mender's iot-manager API, pointed at the bridge:
/// every request shaped as Mender's spec says, every answer held to that
/// spec (status, content type, body schema), nothing of the bridge's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_written_for_menders_iot_manager_api_works_against_the_bridge() {
    let mut stack = Stack::bare().await;
    let specs = mender_standin::openapi::Specs::load_mender()
        .unwrap()
        .strict();
    let token = stack.admin_token.clone();
    let exchange = async |stack: &Stack, method: Method, path: String, body: Option<Value>| {
        let answer = stack
            .call(method.clone(), &path, Some(&token), body.as_ref())
            .await;
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (path, None),
        };
        // The bridge answers a creation with the integration, a body Mender's
        // spec leaves out (docs/api.md): the rest of the answer is held to it.
        let created = method == Method::POST && answer.status == 201;
        let exchange = mender_standin::Exchange {
            method: method.to_string(),
            path,
            query,
            request_text: body.as_ref().map(Value::to_string).unwrap_or_default(),
            request_body: body,
            status: answer.status,
            response_content_type: answer
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned()),
            response_body: (!answer.text.is_empty() && !created).then(|| answer.body.clone()),
            response_text: if created {
                String::new()
            } else {
                answer.text.clone()
            },
        };
        assert_eq!(specs.check(&exchange), Ok(()), "{}", answer.text);
        answer
    };

    // Mender's `Integration`, as Mender's UI sends it.
    let integration = json!({
        "provider": "iot-core",
        "credentials": { "type": "aws", "aws": {
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET_KEY,
            "region": REGION,
            "device_policy_name": POLICY,
        }},
        "description": "fleet",
    });
    let created = exchange(
        &stack,
        Method::POST,
        api("/integrations"),
        Some(integration),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let location = created.headers["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    stack.integration_id = id.clone();
    let listed = exchange(
        &stack,
        Method::GET,
        api("/integrations?page=1&per_page=20"),
        None,
    )
    .await;
    assert_eq!(listed.body[0]["id"], id.as_str());

    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    assert_eq!(stack.thing_principals(&device).await.len(), 1);

    // Mender's `DeviceState`, keyed by integration; replaced for one.
    let states = exchange(
        &stack,
        Method::GET,
        api(&format!("/devices/{device}/state")),
        None,
    )
    .await;
    assert_eq!(
        states.body,
        json!({ id.clone(): {"desired": {}, "reported": {}} })
    );
    let state = api(&format!("/devices/{device}/state/{id}"));
    let desired = json!({"desired": {"interval": 60}});
    let replaced = exchange(&stack, Method::PUT, state.clone(), Some(desired)).await;
    assert_eq!(
        replaced.body,
        json!({"desired": {"interval": 60}, "reported": {}})
    );
    let read = exchange(&stack, Method::GET, state, None).await;
    assert_eq!(read.body, replaced.body);

    // Mender's `Event`s, of this integration.
    let events = exchange(
        &stack,
        Method::GET,
        api(&format!("/events?page=1&per_page=20&integration_id={id}")),
        None,
    )
    .await;
    assert_eq!(events.body[0]["data"]["id"], device.as_str());
    assert_eq!(events.body[0]["type"], "device-provisioned");

    // Mender's `Credentials` alone.
    let credentials = key_pair_setup(POLICY)["credentials"].clone();
    let path = api(&format!("/integrations/{id}/credentials"));
    let changed = exchange(&stack, Method::PUT, path, Some(credentials)).await;
    assert_eq!(changed.status, 204, "{}", changed.text);

    // Unregistered: the device keeps what it holds in AWS. Mender's spec
    // declares a `DeviceState` body on this 204, which HTTP forbids (a 204
    // has no content): the bridge sends none (docs/api.md).
    let unlinked = stack
        .call(
            Method::DELETE,
            &api(&format!("/devices/{device}")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((unlinked.status, unlinked.text.as_str()), (204, ""));
    assert_eq!(stack.thing_principals(&device).await.len(), 1);

    let removed = exchange(
        &stack,
        Method::DELETE,
        api(&format!("/integrations/{id}")),
        None,
    )
    .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    let listed = exchange(&stack, Method::GET, api("/integrations"), None).await;
    assert_eq!(listed.body, json!([]));
}
