//! Changing the integration's device policy moves every certificate the
//! bridge manages to the new one, in a run started by the change: the new
//! policy is attached before the old one is detached, so no certificate is
//! ever without one, and policies someone else attached stay.

use std::collections::BTreeSet;

use integration_tests::stack::{POLICY, Stack, TENANT, create_device_policy, key_pair_setup};
use reqwest::Method;

const NEW_POLICY: &str = "mender-device-policy-v2";

/// The policies attached to the certificate of a device's Thing.
async fn policies(stack: &Stack, device: &str) -> (String, BTreeSet<String>) {
    let principals = stack.thing_principals(device).await;
    assert_eq!(principals.len(), 1, "{device}");
    let attached = stack
        .iot()
        .list_attached_policies()
        .target(&principals[0])
        .send()
        .await
        .unwrap();
    let names = attached
        .policies()
        .iter()
        .filter_map(|p| p.policy_name().map(str::to_owned))
        .collect();
    (principals[0].clone(), names)
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| name.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_policy_replaces_the_old_one_on_every_certificate() {
    let stack = Stack::bare().await;
    let admin = stack.admin_token.clone();
    let put = |policy: &'static str| {
        let stack = &stack;
        let admin = admin.clone();
        async move { stack.set_up(&admin, &key_pair_setup(policy)).await }
    };
    assert_eq!(put(POLICY).await.status, 201);
    let mut devices = Vec::new();
    for _ in 0..3 {
        let device = stack.mender.add_device(TENANT, "pending", None);
        stack.mender.accept(&device).await;
        devices.push(device);
    }
    stack.bus.wait_idle().await;
    // An operator's own policy on one certificate is not the bridge's.
    create_device_policy(&stack.inspect, NEW_POLICY).await;
    create_device_policy(&stack.inspect, "ops-extra").await;
    let (operated, _) = policies(&stack, &devices[0]).await;
    stack
        .iot()
        .attach_policy()
        .policy_name("ops-extra")
        .target(&operated)
        .send()
        .await
        .unwrap();

    stack.aws_proxy.reset_calls();
    let changed = put(NEW_POLICY).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let run_id = changed.body["policy_run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a run started: {}", changed.text))
        .to_owned();
    stack.bus.wait_idle().await;
    let run = stack
        .call(
            Method::GET,
            &integration_tests::stack::api(&format!(
                "/integrations/{}/reconcile/{run_id}",
                changed.body["id"].as_str().unwrap()
            )),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(run.body["state"], "done", "{}", run.text);
    assert_eq!(run.body["counts"]["repaired"], 3, "{}", run.text);

    let calls = stack.aws_proxy.calls();
    for (index, device) in devices.iter().enumerate() {
        let (certificate, attached) = policies(&stack, device).await;
        let expected = if index == 0 {
            names(&[NEW_POLICY, "ops-extra"])
        } else {
            names(&[NEW_POLICY])
        };
        assert_eq!(attached, expected, "{device}");
        // Attached before the old one was detached.
        let position = |operation: &str| {
            calls
                .iter()
                .position(|call| {
                    call.operation == operation
                        && String::from_utf8_lossy(&call.body).contains(&certificate)
                })
                .unwrap_or_else(|| panic!("no {operation} for {device}"))
        };
        assert!(
            position("AttachPolicy") < position("DetachPolicy"),
            "{device}"
        );
    }

    // Each device's move is in the event log, under the policy's run.
    let events = stack
        .call(
            Method::GET,
            &integration_tests::stack::api(&format!(
                "/events?integration_id={}",
                changed.body["id"].as_str().unwrap()
            )),
            Some(&admin),
            None,
        )
        .await;
    let moved: Vec<&str> = events
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "repaired" && e["run_id"] == run_id.as_str())
        .map(|e| e["data"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        moved.iter().copied().collect::<BTreeSet<_>>(),
        devices.iter().map(String::as_str).collect(),
        "{}",
        events.text
    );

    // The same policy again: nothing to move, no run.
    let again = put(NEW_POLICY).await;
    assert_eq!(again.status, 200);
    assert!(again.body.get("policy_run_id").is_none(), "{}", again.text);

    // Devices accepted from now on get the new policy only.
    let later = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&later).await;
    stack.bus.wait_idle().await;
    assert_eq!(policies(&stack, &later).await.1, names(&[NEW_POLICY]));
}
