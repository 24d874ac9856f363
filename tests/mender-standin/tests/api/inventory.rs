//! Inventory: the devices of a group (`GET /groups/{name}/devices`), as
//! Mender's inventory management API v1 describes it (its spec is not among
//! the reference specs, so its shape is checked here).

use crate::common::{HOUR, TENANT, env};

const GROUPS: &str = "/api/management/v1/inventory/groups";

fn ids(body: &serde_json::Value) -> Vec<String> {
    body.as_array()
        .expect("a list of ids")
        .iter()
        .map(|id| id.as_str().expect("an id is a string").to_owned())
        .collect()
}

#[tokio::test]
async fn a_group_lists_its_device_ids_page_by_page() {
    let env = env().await;
    let field: Vec<String> = (0..3)
        .map(|_| env.standin.add_device(TENANT, "accepted", Some("field")))
        .collect();
    env.standin.add_device(TENANT, "accepted", Some("lab"));
    env.standin.add_device(TENANT, "accepted", None);

    let first = env
        .get(&format!("{GROUPS}/field/devices?per_page=2"), &env.admin)
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(ids(&first.json()), field[0..2].to_vec());
    assert_eq!(first.header("x-total-count").as_deref(), Some("3"));
    assert_eq!(
        first.headers_all("link"),
        vec![
            format!("<{GROUPS}/field/devices?page=1&per_page=2>; rel=\"first\""),
            format!("<{GROUPS}/field/devices?page=2&per_page=2>; rel=\"next\""),
        ]
    );
    let second = env
        .get(
            &format!("{GROUPS}/field/devices?per_page=2&page=2"),
            &env.admin,
        )
        .await;
    assert_eq!(ids(&second.json()), field[2..].to_vec());
    assert!(
        second
            .headers_all("link")
            .iter()
            .all(|l| !l.contains("next"))
    );
    // Past the end: an empty page, not an error.
    let past = env
        .get(
            &format!("{GROUPS}/field/devices?per_page=2&page=3"),
            &env.admin,
        )
        .await;
    assert_eq!((past.status, ids(&past.json()).len()), (200, 0));
}

#[tokio::test]
async fn a_group_without_devices_is_not_found_and_bad_paging_is_refused() {
    let env = env().await;
    env.standin.add_device(TENANT, "accepted", Some("field"));
    let unknown = env
        .get(&format!("{GROUPS}/nobody/devices"), &env.admin)
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error(), "group not found");
    for query in ["page=0", "per_page=x", "per_page=501"] {
        let bad = env
            .get(&format!("{GROUPS}/field/devices?{query}"), &env.admin)
            .await;
        assert_eq!(bad.status, 400, "{query}");
        assert!(!bad.error().is_empty());
    }
}

#[tokio::test]
async fn a_user_limited_to_other_groups_is_refused_the_group() {
    let env = env().await;
    env.standin.add_device(TENANT, "accepted", Some("field"));
    let lab_only = env.standin.add_user(
        TENANT,
        "lab@acme.example",
        &["RBAC_ROLE_PERMIT_ALL"],
        Some(&["lab"]),
    );
    let token = env.standin.issue_token(&lab_only, HOUR);
    let refused = env.get(&format!("{GROUPS}/field/devices"), &token).await;
    assert_eq!(refused.status, 403);
    let unauthenticated = env
        .call(
            reqwest::Method::GET,
            &format!("{GROUPS}/field/devices"),
            None,
            None,
        )
        .await;
    assert_eq!(unauthenticated.status, 401);
}
