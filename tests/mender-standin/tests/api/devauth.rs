//! Device authentication: reading, listing, status changes, dismissal,
//! decommissioning and preauthorization, with tenants and RBAC groups.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const PUBKEY: &str =
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";

#[tokio::test]
async fn get_device_returns_mender_shape() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "pending", Some("lab"));
    let resp = env.get(&device_path(&id), &env.admin).await;
    assert_eq!(resp.status, 200);
    let device = resp.json();
    assert_eq!(device["id"], json!(id));
    assert_eq!(device["status"], "pending");
    assert_eq!(device["decommissioning"], false);
    assert!(device["identity_data"].is_object());
    assert!(device["created_ts"].is_string() && device["updated_ts"].is_string());
    let sets = device["auth_sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1);
    for key in ["id", "identity_data", "pubkey", "ts", "status"] {
        assert!(sets[0].get(key).is_some(), "auth set lacks {key}: {device}");
    }
    assert_eq!(sets[0]["status"], "pending");
    assert!(
        sets[0]["pubkey"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
}

#[tokio::test]
async fn unknown_and_foreign_devices_are_404() {
    let env = env().await;
    let resp = env
        .get(
            &device_path("8c3c3f6c-0000-4000-8000-000000000000"),
            &env.admin,
        )
        .await;
    assert_eq!(resp.status, 404);
    resp.error();

    env.standin.add_tenant("other", true);
    let foreign = env.standin.add_device("other", "accepted", None);
    assert_eq!(
        env.get(&device_path(&foreign), &env.admin).await.status,
        404
    );
    // Not listed either, and not writable.
    let list = env.get(DEVICES, &env.admin).await.json();
    assert!(!list.to_string().contains(&foreign));
    let aid = {
        let other_admin = env
            .standin
            .add_user("other", "a@other", &["RBAC_ROLE_PERMIT_ALL"], None);
        let token = env.standin.issue_token(&other_admin, HOUR);
        let device = env.get(&device_path(&foreign), &token).await;
        assert_eq!(device.status, 200, "its own tenant sees it");
        device.json()["auth_sets"][0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let put = env
        .put(
            &status_path(&foreign, &aid),
            &env.admin,
            json!({"status": "rejected"}),
        )
        .await;
    assert_eq!(put.status, 404);
    assert_eq!(
        env.standin.device_status(&foreign).as_deref(),
        Some("accepted")
    );
}

#[tokio::test]
async fn rbac_device_groups_restrict_access() {
    let env = env().await;
    let lab = env.standin.add_device(TENANT, "accepted", Some("lab"));
    let field = env.standin.add_device(TENANT, "accepted", Some("field"));
    let ungrouped = env.standin.add_device(TENANT, "accepted", None);
    let lab_user = env.user_token(&["RBAC_ROLE_PERMIT_ALL"], Some(&["lab"]));

    assert_eq!(env.get(&device_path(&lab), &lab_user).await.status, 200);
    let forbidden = env.get(&device_path(&field), &lab_user).await;
    assert_eq!(forbidden.status, 403);
    forbidden.error();
    assert_eq!(
        env.get(&device_path(&ungrouped), &lab_user).await.status,
        403
    );

    // Listing shows only permitted devices.
    let list = env.get(DEVICES, &lab_user).await.json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![lab.as_str()]);

    // Writes outside the groups are refused too.
    let aid = env.auth_set_id(&field).await;
    let put = env
        .put(
            &status_path(&field, &aid),
            &lab_user,
            json!({"status": "rejected"}),
        )
        .await;
    assert_eq!(put.status, 403);
    assert_eq!(
        env.delete(&device_path(&field), &lab_user).await.status,
        403
    );
    assert_eq!(
        env.standin.device_status(&field).as_deref(),
        Some("accepted")
    );

    // Without RBAC, groups do not restrict.
    env.standin.add_tenant("oss", false);
    let oss_device = env.standin.add_device("oss", "pending", Some("lab"));
    let oss_user = env.standin.add_user("oss", "u@oss", &[], Some(&["other"]));
    let oss_token = env.standin.issue_token(&oss_user, HOUR);
    assert_eq!(
        env.get(&device_path(&oss_device), &oss_token).await.status,
        200
    );
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// `(rel, target)` of each `Link` header.
fn links(resp: &Resp) -> Vec<(String, String)> {
    resp.headers_all("link")
        .iter()
        .map(|l| {
            let (target, rel) = l.split_once(">; rel=").expect("link format");
            (
                rel.trim_matches('"').to_string(),
                target.trim_start_matches('<').to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn list_paginates_with_link_headers() {
    let env = env().await;
    let accepted: Vec<String> = (0..5)
        .map(|_| env.standin.add_device(TENANT, "accepted", None))
        .collect();
    env.standin.add_device(TENANT, "pending", None);

    let page1 = env
        .get(&format!("{DEVICES}?status=accepted&per_page=2"), &env.admin)
        .await;
    assert_eq!(page1.status, 200);
    assert_eq!(ids(&page1.json()), accepted[0..2].to_vec(), "oldest first");
    assert_eq!(
        links(&page1),
        vec![
            (
                "first".into(),
                format!("{DEVICES}?page=1&per_page=2&status=accepted")
            ),
            (
                "next".into(),
                format!("{DEVICES}?page=2&per_page=2&status=accepted")
            ),
        ]
    );
    // One header per link, as Mender sends them: the first is rel="first".
    assert!(page1.header("link").unwrap().ends_with("rel=\"first\""));

    let page2 = env
        .get(
            &format!("{DEVICES}?status=accepted&per_page=2&page=2"),
            &env.admin,
        )
        .await;
    assert_eq!(ids(&page2.json()), accepted[2..4].to_vec());
    let rels: Vec<String> = links(&page2).into_iter().map(|(rel, _)| rel).collect();
    assert_eq!(rels, ["first", "prev", "next"]);

    let page3 = env
        .get(
            &format!("{DEVICES}?status=accepted&per_page=2&page=3"),
            &env.admin,
        )
        .await;
    assert_eq!(ids(&page3.json()), accepted[4..5].to_vec());
    let rels: Vec<String> = links(&page3).into_iter().map(|(rel, _)| rel).collect();
    assert_eq!(rels, ["first", "prev"], "no next on the last page");

    // Following rel="next" from page 1 walks every device exactly once.
    let mut seen = Vec::new();
    let mut next = Some(format!("{DEVICES}?status=accepted&per_page=2"));
    while let Some(path) = next {
        let resp = env.get(&path, &env.admin).await;
        seen.extend(ids(&resp.json()));
        next = links(&resp)
            .into_iter()
            .find(|(rel, _)| rel == "next")
            .map(|(_, t)| t);
    }
    assert_eq!(seen, accepted);

    // Defaults: page 1, 20 per page, every status.
    let all = env.get(DEVICES, &env.admin).await;
    assert_eq!(ids(&all.json()).len(), 6);
    assert_eq!(
        links(&all),
        vec![("first".into(), format!("{DEVICES}?page=1&per_page=20"))]
    );
    // Past the end: an empty page.
    let empty = env.get(&format!("{DEVICES}?page=9"), &env.admin).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json(), json!([]));
}

#[tokio::test]
async fn list_filters_by_id_and_rejects_bad_parameters() {
    let env = env().await;
    let a = env.standin.add_device(TENANT, "pending", None);
    let _b = env.standin.add_device(TENANT, "pending", None);
    let c = env.standin.add_device(TENANT, "rejected", None);
    let by_id = env
        .get(&format!("{DEVICES}?id={a}&id={c}"), &env.admin)
        .await;
    assert_eq!(ids(&by_id.json()), vec![a, c]);

    for query in [
        "status=bogus",
        "status=decommissioned",
        "page=0",
        "page=-1",
        "page=x",
        "per_page=0",
        "per_page=501",
        "per_page=abc",
    ] {
        let resp = env.get(&format!("{DEVICES}?{query}"), &env.admin).await;
        assert_eq!(resp.status, 400, "{query}");
        resp.error();
    }
    assert_eq!(
        env.get(&format!("{DEVICES}?per_page=500"), &env.admin)
            .await
            .status,
        200
    );

    let count = env
        .get(&format!("{DEVICES}/count?status=pending"), &env.admin)
        .await;
    assert_eq!(count.status, 200);
    assert_eq!(count.json(), json!({"count": 2}));
}

#[tokio::test]
async fn status_changes_through_the_api() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "pending", None);
    let aid = env.auth_set_id(&id).await;
    let path = status_path(&id, &aid);

    for status in ["accepted", "rejected", "accepted", "pending"] {
        let resp = env.put(&path, &env.admin, json!({"status": status})).await;
        assert_eq!(resp.status, 204, "{status}: {}", resp.text);
        assert!(resp.text.is_empty());
        assert_eq!(env.standin.device_status(&id).as_deref(), Some(status));
        let device = env.get(&device_path(&id), &env.admin).await.json();
        assert_eq!(device["status"], status);
        assert_eq!(device["auth_sets"][0]["status"], status);
        let get = env.get(&path, &env.admin).await;
        assert_eq!(get.json(), json!({"status": status}));
    }
}

#[tokio::test]
async fn status_change_errors() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "pending", None);
    let other = env.standin.add_device(TENANT, "pending", None);
    let aid = env.auth_set_id(&id).await;
    let other_aid = env.auth_set_id(&other).await;
    let path = status_path(&id, &aid);

    // Observers are read-only.
    let resp = env
        .put(&path, &env.observer, json!({"status": "accepted"}))
        .await;
    assert_eq!(resp.status, 403);
    resp.error();
    assert_eq!(env.standin.device_status(&id).as_deref(), Some("pending"));

    // Bad bodies.
    for body in [
        json!({}),
        json!({"status": "preauthorized"}),
        json!({"status": "noauth"}),
        json!({"status": "bogus"}),
        json!({"status": 1}),
        json!("accepted"),
    ] {
        let resp = env.put(&path, &env.admin, body.clone()).await;
        assert_eq!(resp.status, 400, "{body}");
        resp.error();
    }
    assert_eq!(
        env.raw(Method::PUT, &path, &env.admin, "{").await.status,
        400
    );

    // Unknown device or auth set: 404; another device's auth set: 400.
    let accept = json!({"status": "accepted"});
    let unknown = status_path("8c3c3f6c-0000-4000-8000-000000000000", &aid);
    assert_eq!(
        env.put(&unknown, &env.admin, accept.clone()).await.status,
        404
    );
    let unknown_aid = status_path(&id, "8c3c3f6c-0000-4000-8000-000000000001");
    assert_eq!(
        env.put(&unknown_aid, &env.admin, accept.clone())
            .await
            .status,
        404
    );
    let mismatch = env
        .put(&status_path(&id, &other_aid), &env.admin, accept.clone())
        .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        env.standin.device_status(&other).as_deref(),
        Some("pending")
    );

    // No token: 401.
    let anonymous = env.call(Method::PUT, &path, None, Some(accept)).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn dismiss_makes_the_device_noauth() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "accepted", None);
    let aid = env.auth_set_id(&id).await;
    let path = format!("{}/auth/{aid}", device_path(&id));

    assert_eq!(env.delete(&path, &env.observer).await.status, 403);
    let resp = env.delete(&path, &env.admin).await;
    assert_eq!(resp.status, 204);
    let device = env.get(&device_path(&id), &env.admin).await.json();
    assert_eq!(device["status"], "noauth");
    assert_eq!(device["auth_sets"], json!([]));
    // The auth set is gone.
    assert_eq!(env.delete(&path, &env.admin).await.status, 404);
}

#[tokio::test]
async fn dismissing_a_preauthorized_device_deletes_it() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "preauthorized", None);
    let aid = env.auth_set_id(&id).await;
    let resp = env
        .delete(&format!("{}/auth/{aid}", device_path(&id)), &env.admin)
        .await;
    assert_eq!(resp.status, 204);
    assert_eq!(env.get(&device_path(&id), &env.admin).await.status, 404);
    assert_eq!(env.standin.device_status(&id), None);
}

#[tokio::test]
async fn decommission_removes_the_device() {
    let env = env().await;
    let id = env.standin.add_device(TENANT, "accepted", None);
    assert!(env.standin.configuration(&id).is_some());

    assert_eq!(
        env.delete(&device_path(&id), &env.observer).await.status,
        403
    );
    let resp = env.delete(&device_path(&id), &env.admin).await;
    assert_eq!(resp.status, 204);
    assert_eq!(env.get(&device_path(&id), &env.admin).await.status, 404);
    assert_eq!(env.standin.device_status(&id), None);
    assert_eq!(
        env.standin.configuration(&id),
        None,
        "Configure record gone too"
    );
    let again = env.delete(&device_path(&id), &env.admin).await;
    assert_eq!(again.status, 404);
    again.error();
}

#[tokio::test]
async fn preauthorize_creates_a_preauthorized_device() {
    let env = env().await;
    let body = json!({"identity_data": {"mac": "00:11:22:33:44:55"}, "pubkey": PUBKEY});
    let resp = env.post(DEVICES, &env.admin, body.clone()).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert!(resp.text.is_empty());
    let location = resp.header("location").unwrap();
    let id = location
        .strip_prefix("devices/")
        .expect("Location devices/{id}");

    let device = env.get(&device_path(id), &env.admin).await.json();
    assert_eq!(device["status"], "preauthorized");
    assert_eq!(device["identity_data"], json!({"mac": "00:11:22:33:44:55"}));
    assert_eq!(device["auth_sets"][0]["pubkey"], PUBKEY);
    assert_eq!(device["auth_sets"][0]["status"], "preauthorized");

    // The same identity again: 409 with the existing device.
    let conflict = env.post(DEVICES, &env.admin, body).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["id"], json!(id));

    // Accepting it (the device connects) provisions it.
    let aid = env.auth_set_id(id).await;
    let put = env
        .put(
            &status_path(id, &aid),
            &env.admin,
            json!({"status": "accepted"}),
        )
        .await;
    assert_eq!(put.status, 204);
    assert_eq!(env.standin.device_status(id).as_deref(), Some("accepted"));
}

#[tokio::test]
async fn preauthorize_errors() {
    let env = env().await;
    let good = json!({"identity_data": {"sn": "1"}, "pubkey": PUBKEY});
    assert_eq!(env.post(DEVICES, &env.observer, good).await.status, 403);
    for body in [
        json!({"pubkey": PUBKEY}),
        json!({"identity_data": {}, "pubkey": PUBKEY}),
        json!({"identity_data": "sn=1", "pubkey": PUBKEY}),
        json!({"identity_data": {"sn": "1"}}),
        json!({"identity_data": {"sn": "1"}, "pubkey": "not a key"}),
        json!({"identity_data": {"sn": "1"}, "pubkey": PUBKEY, "force": "yes"}),
        json!([]),
    ] {
        let resp = env.post(DEVICES, &env.admin, body.clone()).await;
        assert_eq!(resp.status, 400, "{body}");
        resp.error();
    }
}

#[tokio::test]
async fn malformed_requests_get_mender_style_errors() {
    let env = env().await;
    // Invalid percent-encoding in the path.
    let bad_path = env.get(&format!("{DEVICES}/%FF%FE"), &env.admin).await;
    assert_eq!(bad_path.status, 400);
    bad_path.error();
    // A method the endpoint does not have.
    let wrong_method = env
        .call(Method::PATCH, &device_path("x"), Some(&env.admin), None)
        .await;
    assert_eq!(wrong_method.status, 405);
    wrong_method.error();
    // A path that does not exist.
    let nowhere = env
        .get("/api/management/v2/devauth/nothing/here", &env.admin)
        .await;
    assert_eq!(nowhere.status, 404);
    nowhere.error();
}
