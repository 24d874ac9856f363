//! The Device Shadow API through the runner's `devices/{id}/state` routes,
//! against moto and the Mender stand-in: Mender's permissions, what reaches
//! the user (state only), replace and merge, optimistic locking, limits
//! checked before AWS is called, and outages.

use std::time::Duration;

use bridge::index::IntegrationIndex;
use integration_tests::fault_proxy::{Fault, FaultRule};
use integration_tests::stack::{Stack, TABLE, TENANT, api, settings_store, test_settings};
use reqwest::Method;
use serde_json::{Value, json};

/// An answer of the shadow API.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    etag: Option<String>,
}

/// One request to the shadow routes; `path_tail` is appended to
/// `devices/{device}/state/{integration_id}` (a query string, say).
async fn call(
    stack: &Stack,
    method: Method,
    device: &str,
    path_tail: &str,
    token: Option<&str>,
    body: Option<String>,
    if_match: Option<&str>,
) -> Reply {
    let url = format!("{}{}{path_tail}", stack.url, stack.state_path(device));
    let mut request = integration_tests::http().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("every answer is JSON, got {status}: {text:?}"));
    let reply = Reply { status, body, etag };
    check_shape(&reply);
    reply
}

/// Success is exactly `{"desired", "reported"}` with an ETag; failure is
/// `{"error", "request_id", "code"}`. Nothing of AWS's metadata ever shows.
fn check_shape(reply: &Reply) {
    let mut keys: Vec<&str> = reply
        .body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {reply:?}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    if reply.status == 200 {
        assert_eq!(keys, ["desired", "reported"], "{reply:?}");
        assert!(reply.etag.is_some(), "{reply:?}");
        let text = reply.body.to_string();
        for aws_only in ["metadata", "timestamp", "delta", "\"version\""] {
            assert!(!text.contains(aws_only), "{aws_only} in {text}");
        }
    } else {
        assert_eq!(keys, ["code", "error", "request_id"], "{reply:?}");
    }
}

async fn get(stack: &Stack, device: &str, token: &str) -> Reply {
    call(stack, Method::GET, device, "", Some(token), None, None).await
}

async fn put(stack: &Stack, device: &str, token: &str, body: Value) -> Reply {
    let body = Some(body.to_string());
    call(stack, Method::PUT, device, "", Some(token), body, None).await
}

async fn patch(stack: &Stack, device: &str, token: &str, body: Value) -> Reply {
    let body = Some(body.to_string());
    call(stack, Method::PATCH, device, "", Some(token), body, None).await
}

/// A device accepted in Mender, with its Thing provisioned by the bridge.
async fn provisioned_device(stack: &Stack, group: Option<&str>) -> String {
    let device = stack.mender.add_device(TENANT, "pending", group);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    let attributes = stack.thing_attributes(&device).await.expect("Thing exists");
    assert_eq!(attributes["managed_by"], "mender-iot-bridge");
    device
}

/// The test's own data-plane client, straight to moto (the device's view).
fn data_plane(stack: &Stack) -> aws_sdk_iotdataplane::Client {
    aws_sdk_iotdataplane::Client::new(&stack.inspect)
}

/// Writes to the shadow as the device (or anyone else) would, bypassing the
/// bridge; the new version.
async fn write_directly(stack: &Stack, device: &str, document: Value) -> u64 {
    let output = data_plane(stack)
        .update_thing_shadow()
        .thing_name(device)
        .payload(aws_sdk_iotdataplane::primitives::Blob::new(
            document.to_string(),
        ))
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(output.payload().unwrap().as_ref()).unwrap();
    answer["version"].as_u64().unwrap()
}

/// The shadow as AWS holds it: (desired, reported, version).
async fn stored(stack: &Stack, device: &str, name: Option<&str>) -> (Value, Value, u64) {
    let output = data_plane(stack)
        .get_thing_shadow()
        .thing_name(device)
        .set_shadow_name(name.map(str::to_owned))
        .send()
        .await
        .unwrap();
    let document: Value = serde_json::from_slice(output.payload().unwrap().as_ref()).unwrap();
    let section = |name: &str| {
        document["state"]
            .get(name)
            .cloned()
            .unwrap_or_else(|| json!({}))
    };
    (
        section("desired"),
        section("reported"),
        document["version"].as_u64().unwrap(),
    )
}

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Every UpdateThingShadow payload the bridge sent.
fn updates_sent(stack: &Stack) -> Vec<Value> {
    stack
        .aws_proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == "UpdateThingShadow")
        .map(|c| serde_json::from_slice(&c.body).unwrap())
        .collect()
}

/// Returns once the bridge has sent `count` UpdateThingShadow calls in all
/// (a delayed one is seen on arrival at the proxy, before it reaches moto).
async fn until_updates_sent(stack: &Stack, count: usize) {
    for _ in 0..1000 {
        if stack.aws_proxy.count("UpdateThingShadow") >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the bridge never sent update number {count}");
}

/// How many of the bridge's writes AWS refused as based on a stale version.
fn refused_as_stale(stack: &Stack) -> usize {
    stack
        .aws_proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "UpdateThingShadow" && c.status == Some(409))
        .count()
}

/// Another Mender organization whose admin has a valid token; with
/// `integrated`, the bridge holds an integration for it too.
async fn other_organization(stack: &Stack, tenant: &str, integrated: bool) -> String {
    stack.mender.add_tenant(tenant, true);
    let admin = stack.mender.add_user(
        tenant,
        &format!("admin@{tenant}.test"),
        &["RBAC_ROLE_PERMIT_ALL"],
        None,
    );
    let token = stack.mender.issue_token(&admin, Duration::from_secs(3600));
    if integrated {
        let direct = stack.direct.clone();
        let integration_id = uuid::Uuid::new_v4().to_string();
        settings_store(&direct)
            .put(&test_settings(&integration_id, tenant, &token))
            .await
            .unwrap();
        let index = IntegrationIndex::new(aws_sdk_dynamodb::Client::new(&direct), TABLE);
        assert!(index.claim(tenant, &integration_id, 60).await.unwrap());
        index.activate(tenant, &integration_id).await.unwrap();
    }
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mender_decides_who_reads_and_who_writes() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, Some("fleet-a")).await;
    let mender = &stack.mender;
    let long = Duration::from_secs(3600);

    let observer = mender.add_user(TENANT, "observer@acme.test", &["RBAC_ROLE_OBSERVER"], None);
    let outsider = mender.add_user(
        TENANT,
        "fleet-b@acme.test",
        &["RBAC_ROLE_DEPLOYMENTS_MANAGER"],
        Some(&["fleet-b"]),
    );
    let fenced_admin = mender.add_user(
        TENANT,
        "fenced-admin@acme.test",
        &["RBAC_ROLE_PERMIT_ALL"],
        Some(&["fleet-b"]),
    );
    let revoked = mender.issue_token(&observer, long);
    mender.revoke_token(&revoked);
    let expired = mender.issue_token(&observer, Duration::from_secs(1));
    let other_admin = other_organization(&stack, "globex", false).await;
    let integrated_admin = other_organization(&stack, "initech", true).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // (who, token, GET, PUT, PATCH)
    let matrix = [
        ("admin", stack.admin_token.clone(), 200, 200, 200),
        (
            "observer",
            mender.issue_token(&observer, long),
            200,
            403,
            403,
        ),
        (
            "outsider",
            mender.issue_token(&outsider, long),
            403,
            403,
            403,
        ),
        (
            "admin of other groups",
            mender.issue_token(&fenced_admin, long),
            403,
            403,
            403,
        ),
        ("invalid", "not-a-token".to_owned(), 401, 401, 401),
        ("expired", expired, 401, 401, 401),
        ("revoked", revoked, 401, 401, 401),
        ("other organization", other_admin, 404, 404, 404),
        (
            "other organization, integrated",
            integrated_admin,
            404,
            404,
            404,
        ),
    ];
    let mut writes = 0;
    for (who, token, get_status, put_status, patch_status) in matrix {
        let read = get(&stack, &device, &token).await;
        assert_eq!(read.status, get_status, "GET as {who}: {read:?}");
        let body = json!({"desired": {"written_by": who}});
        let replaced = put(&stack, &device, &token, body.clone()).await;
        assert_eq!(replaced.status, put_status, "PUT as {who}: {replaced:?}");
        let merged = patch(
            &stack,
            &device,
            &token,
            json!({"desired": {"patched_by": who}}),
        )
        .await;
        assert_eq!(merged.status, patch_status, "PATCH as {who}: {merged:?}");
        writes += usize::from(put_status == 200) + usize::from(patch_status == 200);
    }
    // Without any token at all.
    let anonymous = call(&stack, Method::GET, &device, "", None, None, None).await;
    assert_eq!(anonymous.status, 401);

    // Only the admin's writes reached AWS (plus the empty creation of the
    // shadow before the first one).
    assert_eq!(stack.aws_proxy.count("UpdateThingShadow"), writes + 1);
    let (desired, _, _) = stored(&stack, &device, None).await;
    assert_eq!(
        desired,
        json!({"written_by": "admin", "patched_by": "admin"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_show_only_desired_and_reported_with_the_version_as_etag() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;

    // No shadow yet: empty, version 0.
    let empty = get(&stack, &device, &stack.admin_token).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body, json!({"desired": {}, "reported": {}}));
    assert_eq!(empty.etag.as_deref(), Some("\"0\""));
    // Clearing the desired state of a device without a shadow writes nothing.
    let nothing = put(&stack, &device, &stack.admin_token, json!({"desired": {}})).await;
    assert_eq!(nothing.status, 200);
    assert_eq!(nothing.etag.as_deref(), Some("\"0\""));
    assert_eq!(stack.aws_proxy.count("UpdateThingShadow"), 0);

    write_directly(
        &stack,
        &device,
        json!({"state": {"reported": {"temp": 20, "fw": {"v": "1.0"}}}}),
    )
    .await;
    let version =
        write_directly(&stack, &device, json!({"state": {"desired": {"temp": 22}}})).await;
    let read = get(&stack, &device, &stack.admin_token).await;
    assert_eq!(
        read.body,
        json!({"desired": {"temp": 22}, "reported": {"temp": 20, "fw": {"v": "1.0"}}})
    );
    assert_eq!(read.etag, Some(etag(version)));

    // Mender's `GET devices/{id}/state`: the state keyed by integration id.
    let all = integration_tests::http()
        .get(format!(
            "{}{}",
            stack.url,
            api(&format!("/devices/{device}/state"))
        ))
        .bearer_auth(&stack.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 200);
    let all: Value = all.json().await.unwrap();
    assert_eq!(all, json!({ stack.integration_id.clone(): read.body }));
    // Another integration's state: not this organization's.
    let other = integration_tests::http()
        .get(format!(
            "{}{}",
            stack.url,
            api(&format!(
                "/devices/{device}/state/6f2a1a0e-1f3a-4d7e-9a51-0c2b8d1e7f00"
            ))
        ))
        .bearer_auth(&stack.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_the_desired_state_and_leaves_reported_alone() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;
    write_directly(&stack, &device, json!({"state": {"reported": {"r": 1}}})).await;
    let version = write_directly(
        &stack,
        &device,
        json!({"state": {"desired": {"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2]}}}),
    )
    .await;

    let replaced = put(
        &stack,
        &device,
        &stack.admin_token,
        json!({"desired": {"b": {"x": 1}, "c": [3], "d": "new"}}),
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let expected = json!({"desired": {"b": {"x": 1}, "c": [3], "d": "new"}, "reported": {"r": 1}});
    assert_eq!(replaced.body, expected);

    // AWS holds exactly that, at the version the answer names.
    let (desired, reported, stored_version) = stored(&stack, &device, None).await;
    assert_eq!(json!({"desired": desired, "reported": reported}), expected);
    assert_eq!(replaced.etag, Some(etag(stored_version)));
    assert_eq!(
        get(&stack, &device, &stack.admin_token).await.body,
        expected
    );

    // The write was the difference, under the version it was computed against.
    assert_eq!(
        updates_sent(&stack),
        [
            json!({"state": {"desired": {"a": null, "b": {"y": null}, "c": [3], "d": "new"}}, "version": version})
        ]
    );

    // Replacing with the same state writes nothing.
    let again = put(
        &stack,
        &device,
        &stack.admin_token,
        json!({"desired": {"b": {"x": 1}, "c": [3], "d": "new"}}),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.etag, Some(etag(stored_version)));
    assert_eq!(stack.aws_proxy.count("UpdateThingShadow"), 1);

    // An empty desired state removes everything.
    let cleared = put(&stack, &device, &stack.admin_token, json!({"desired": {}})).await;
    assert_eq!(cleared.body, json!({"desired": {}, "reported": {"r": 1}}));
    assert_eq!(stored(&stack, &device, None).await.0, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_merges_and_null_removes_a_key() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;

    // The first write to a device without a shadow creates it.
    let created = patch(
        &stack,
        &device,
        &stack.admin_token,
        json!({"desired": {"a": 1, "b": 2, "n": {"x": 1, "y": 2}}}),
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(
        created.body,
        json!({"desired": {"a": 1, "b": 2, "n": {"x": 1, "y": 2}}, "reported": {}})
    );

    let merged = patch(
        &stack,
        &device,
        &stack.admin_token,
        json!({"desired": {"a": null, "c": 3, "n": {"x": null}}}),
    )
    .await;
    assert_eq!(merged.status, 200, "{merged:?}");
    let expected = json!({"b": 2, "c": 3, "n": {"y": 2}});
    assert_eq!(merged.body["desired"], expected);
    assert_eq!(stored(&stack, &device, None).await.0, expected);
    assert_eq!(
        get(&stack, &device, &stack.admin_token).await.body["desired"],
        expected
    );

    // `desired: null` (which moto would silently ignore) is refused.
    let before = stack.aws_proxy.count("UpdateThingShadow");
    let refused = patch(
        &stack,
        &device,
        &stack.admin_token,
        json!({"desired": null}),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(stack.aws_proxy.count("UpdateThingShadow"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_shadows_are_addressed_by_name() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;
    let token = stack.admin_token.as_str();

    let body = Some(json!({"desired": {"mode": "eco"}}).to_string());
    let written = call(
        &stack,
        Method::PUT,
        &device,
        "?name=power",
        Some(token),
        body,
        None,
    )
    .await;
    assert_eq!(written.status, 200, "{written:?}");
    let named = call(
        &stack,
        Method::GET,
        &device,
        "?name=power",
        Some(token),
        None,
        None,
    )
    .await;
    assert_eq!(
        named.body,
        json!({"desired": {"mode": "eco"}, "reported": {}})
    );
    assert_eq!(
        stored(&stack, &device, Some("power")).await.0,
        json!({"mode": "eco"})
    );
    // The classic shadow is another document.
    assert_eq!(
        get(&stack, &device, token).await.body,
        json!({"desired": {}, "reported": {}})
    );

    for bad in [
        "?name=",
        "?name=a%20b",
        "?name=%24package",
        &format!("?name={}", "x".repeat(65)),
    ] {
        let refused = call(&stack, Method::GET, &device, bad, Some(token), None, None).await;
        assert_eq!(refused.status, 400, "{bad}: {refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_with_a_stale_version_is_refused() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;
    let token = stack.admin_token.as_str();
    let write = |method: Method, body: Value, tag: String| {
        let stack = &stack;
        let device = device.clone();
        async move {
            call(
                stack,
                method,
                &device,
                "",
                Some(token),
                Some(body.to_string()),
                Some(&tag),
            )
            .await
        }
    };

    // "0" is the version of a shadow that does not exist yet.
    let first = write(Method::PUT, json!({"desired": {"a": 1}}), "\"0\"".into()).await;
    assert_eq!(first.status, 200, "{first:?}");
    let seen = first.etag.clone().unwrap();
    let again = write(Method::PUT, json!({"desired": {"a": 2}}), "\"0\"".into()).await;
    assert_eq!(again.status, 412, "{again:?}");

    let second = write(Method::PATCH, json!({"desired": {"b": 1}}), seen.clone()).await;
    assert_eq!(second.status, 200, "{second:?}");
    let before = stack.aws_proxy.count("UpdateThingShadow");
    for method in [Method::PUT, Method::PATCH] {
        let stale = write(method.clone(), json!({"desired": {"c": 1}}), seen.clone()).await;
        assert_eq!(stale.status, 412, "{method} {stale:?}");
        assert_eq!(stale.body["code"], "precondition_failed");
    }
    // Refused before AWS was asked to write anything.
    assert_eq!(stack.aws_proxy.count("UpdateThingShadow"), before);
    assert_eq!(
        stored(&stack, &device, None).await.0,
        json!({"a": 1, "b": 1})
    );

    // The version moves on between the bridge's read and its write: AWS
    // refuses the write, and the caller hears 412, not a silent overwrite.
    let current = second.etag.clone().unwrap();
    let before = stack.aws_proxy.count("UpdateThingShadow");
    stack.aws_proxy.inject(FaultRule::once(
        "UpdateThingShadow",
        Fault::Latency(Duration::from_millis(1000)),
    ));
    let racing = tokio::spawn({
        let url = format!("{}{}", stack.url, stack.state_path(&device));
        let token = token.to_owned();
        async move {
            integration_tests::http()
                .put(url)
                .bearer_auth(token)
                .header("if-match", current)
                .body(json!({"desired": {"d": 1}}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    until_updates_sent(&stack, before + 1).await;
    write_directly(
        &stack,
        &device,
        json!({"state": {"reported": {"online": true}}}),
    )
    .await;
    assert_eq!(racing.await.unwrap(), 412);
    assert_eq!(stack.aws_proxy.count("UpdateThingShadow"), before + 1);
    assert_eq!(
        stored(&stack, &device, None).await.0,
        json!({"a": 1, "b": 1})
    );

    // `*` matches whatever is current.
    let any = write(Method::PATCH, json!({"desired": {"e": 1}}), "*".into()).await;
    assert_eq!(any.status, 200, "{any:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_replacements_one_wins_and_the_other_hears_so() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;
    write_directly(
        &stack,
        &device,
        json!({"state": {"desired": {"initial": true}}}),
    )
    .await;

    // Both requests read the same version before either write lands.
    stack.aws_proxy.inject(FaultRule::times(
        "UpdateThingShadow",
        Fault::Latency(Duration::from_millis(800)),
        2,
    ));
    let token = stack.admin_token.as_str();
    let (first, second) = tokio::join!(
        put(
            &stack,
            &device,
            token,
            json!({"desired": {"owner": "first"}})
        ),
        put(
            &stack,
            &device,
            token,
            json!({"desired": {"owner": "second", "extra": 1}})
        ),
    );
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let (winner, loser) = if first.status == 200 {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(loser.body["code"], "conflict");
    assert_eq!(refused_as_stale(&stack), 1);
    // The winner's state stands whole; nothing of the loser's got mixed in.
    let (desired, _, version) = stored(&stack, &device, None).await;
    assert_eq!(desired, winner.body["desired"]);
    assert_eq!(winner.etag, Some(etag(version)));
    // Every write the bridge sent carried the version it was computed against.
    assert!(updates_sent(&stack).iter().all(|u| u["version"].is_u64()));

    // Told so, the loser reads again and replaces knowingly.
    let retried = put(
        &stack,
        &device,
        token,
        json!({"desired": {"owner": "retried"}}),
    )
    .await;
    assert_eq!(retried.status, 200);
    assert_eq!(
        stored(&stack, &device, None).await.0,
        json!({"owner": "retried"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_concurrent_reports_and_merges() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;
    write_directly(&stack, &device, json!({"state": {"desired": {"a": 1}}})).await;
    let token = stack.admin_token.as_str();

    // The device reports while a replacement is in flight: the replacement
    // is redone on the new version (its desired basis did not change).
    stack.aws_proxy.inject(FaultRule::once(
        "UpdateThingShadow",
        Fault::Latency(Duration::from_millis(1000)),
    ));
    let (replaced, ()) = tokio::join!(
        put(&stack, &device, token, json!({"desired": {"b": 2}})),
        async {
            until_updates_sent(&stack, 1).await;
            write_directly(&stack, &device, json!({"state": {"reported": {"b": 1}}})).await;
        }
    );
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(
        replaced.body,
        json!({"desired": {"b": 2}, "reported": {"b": 1}})
    );
    assert_eq!(stored(&stack, &device, None).await.0, json!({"b": 2}));
    assert_eq!(refused_as_stale(&stack), 1, "the report came in between");

    // Two merges of different keys at once: both land.
    stack.aws_proxy.inject(FaultRule::times(
        "UpdateThingShadow",
        Fault::Latency(Duration::from_millis(800)),
        2,
    ));
    let (left, right) = tokio::join!(
        patch(&stack, &device, token, json!({"desired": {"left": 1}})),
        patch(&stack, &device, token, json!({"desired": {"right": 1}})),
    );
    assert_eq!(
        (left.status, right.status),
        (200, 200),
        "{left:?} {right:?}"
    );
    assert_eq!(
        stored(&stack, &device, None).await.0,
        json!({"b": 2, "left": 1, "right": 1})
    );
    assert_eq!(refused_as_stale(&stack), 2, "one merge was redone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_limits_are_refused_before_aws_is_called() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;
    // The device already reports 5 KB.
    write_directly(
        &stack,
        &device,
        json!({"state": {"reported": {"log": "r".repeat(5000)}}}),
    )
    .await;
    let token = stack.admin_token.as_str();

    fn nested(levels: usize) -> Value {
        (1..levels).fold(json!({"leaf": 1}), |inner, _| json!({ "n": inner }))
    }
    let cases: [(&str, String, u16); 11] = [
        ("not JSON", "{desired".to_owned(), 400),
        ("not an object", "[1]".to_owned(), 400),
        ("no desired", "{}".to_owned(), 400),
        (
            "desired not an object",
            r#"{"desired":[1]}"#.to_owned(),
            400,
        ),
        (
            "reported",
            json!({"desired": {}, "reported": {"a": 1}}).to_string(),
            400,
        ),
        (
            "version",
            json!({"desired": {}, "version": 1}).to_string(),
            400,
        ),
        ("7 levels", json!({"desired": nested(7)}).to_string(), 400),
        (
            "8 levels in arrays",
            json!({"desired": {"a": [[[[[[[1]]]]]]]}}).to_string(),
            400,
        ),
        (
            "document over 8 KiB",
            json!({"desired": {"big": "d".repeat(9000)}}).to_string(),
            413,
        ),
        (
            "with the device's report, over 8 KiB",
            json!({"desired": {"big": "d".repeat(3500)}}).to_string(),
            413,
        ),
        (
            "body over 64 KiB",
            json!({"desired": {"a": null, "pad": " ".repeat(70_000)}}).to_string(),
            413,
        ),
    ];
    for (what, body, status) in cases {
        for method in [Method::PUT, Method::PATCH] {
            let reply = call(
                &stack,
                method.clone(),
                &device,
                "",
                Some(token),
                Some(body.clone()),
                None,
            )
            .await;
            assert_eq!(reply.status, status, "{method} {what}: {reply:?}");
        }
    }
    assert_eq!(stack.aws_proxy.count("UpdateThingShadow"), 0);

    // Right at the limits, it goes through.
    let deepest = put(&stack, &device, token, json!({"desired": nested(6)})).await;
    assert_eq!(deepest.status, 200, "{deepest:?}");
    let fits = put(
        &stack,
        &device,
        token,
        json!({"desired": {"big": "d".repeat(3000)}}),
    )
    .await;
    assert_eq!(fits.status, 200, "{fits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_without_a_thing_of_the_bridge_have_no_state() {
    let mut stack = Stack::bare().await;
    let token = stack.admin_token.clone();
    let device = stack.mender.add_device(TENANT, "accepted", None);

    // No integration yet, so no id to name: Mender's route by device alone.
    let no_integration = integration_tests::http()
        .get(format!(
            "{}{}",
            stack.url,
            api(&format!("/devices/{device}/state"))
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let no_integration = Reply {
        status: no_integration.status().as_u16(),
        etag: None,
        body: no_integration.json().await.unwrap(),
    };
    assert_eq!(no_integration.status, 404);
    assert!(
        no_integration.body["error"]
            .as_str()
            .unwrap()
            .contains("no AWS IoT Core integration"),
        "{no_integration:?}"
    );

    stack.seed_integration().await;
    // Accepted before the integration existed: no Thing yet.
    let no_thing = get(&stack, &device, &token).await;
    assert_eq!(no_thing.status, 404);
    assert!(
        no_thing.body["error"]
            .as_str()
            .unwrap()
            .contains("no Thing"),
        "{no_thing:?}"
    );
    // A Thing of that name the bridge did not create is not its to expose.
    stack
        .iot()
        .create_thing()
        .thing_name(&device)
        .send()
        .await
        .unwrap();
    let foreign = put(&stack, &device, &token, json!({"desired": {"a": 1}})).await;
    assert_eq!(foreign.status, 404, "{foreign:?}");

    // Unknown to Mender.
    let unknown = get(&stack, "5f0c7d1e2a3b4c5d6e7f8a9b", &token).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(stack.aws_proxy.count("GetThingShadow"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_answer_503_with_a_message() {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack, None).await;
    let admin = stack
        .mender
        .add_user(TENANT, "ops@acme.test", &["RBAC_ROLE_PERMIT_ALL"], None);
    let fresh_token = || stack.mender.issue_token(&admin, Duration::from_secs(3600));

    // Mender out of reach.
    stack
        .mender_proxy
        .inject(FaultRule::always("*", Fault::Reset));
    let reply = get(&stack, &device, &fresh_token()).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.body["error"].as_str().unwrap().contains("Mender"));
    stack.mender_proxy.clear();

    // Mender failing.
    stack
        .mender_proxy
        .inject(FaultRule::always("*", Fault::ServerError));
    let reply = put(
        &stack,
        &device,
        &fresh_token(),
        json!({"desired": {"a": 1}}),
    )
    .await;
    assert_eq!(reply.status, 502, "{reply:?}");
    stack.mender_proxy.clear();

    // AWS failing, on read and on write.
    let token = fresh_token();
    stack
        .aws_proxy
        .inject(FaultRule::always("GetThingShadow", Fault::ServerError));
    let reply = get(&stack, &device, &token).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.body["error"].as_str().unwrap().contains("AWS"));
    stack.aws_proxy.clear();
    stack
        .aws_proxy
        .inject(FaultRule::always("UpdateThingShadow", Fault::Throttle));
    let reply = patch(&stack, &device, &token, json!({"desired": {"a": 1}})).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    stack.aws_proxy.clear();

    // And back.
    let reply = patch(&stack, &device, &token, json!({"desired": {"a": 1}})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}
