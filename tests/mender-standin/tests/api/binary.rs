//! The `mender-standin` binary: seeds the demo tenant and prints `KEY=value`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// Kills the child process when dropped (also when a test fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_seeds_the_demo_tenant_and_prints_shell_variables() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mender-standin"))
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let _running = Running(child);

    let vars = tokio::task::spawn_blocking(move || {
        let mut vars = BTreeMap::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            let (key, value) = line.split_once('=').expect("KEY=value");
            assert!(
                key.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "shell-friendly key: {key}"
            );
            assert!(
                !value.contains(|c: char| c.is_whitespace() || "'\"$`\\;&|".contains(c)),
                "value needs no quoting: {value}"
            );
            vars.insert(key.to_string(), value.to_string());
            if key == "MENDER_DEVICE_3" {
                break;
            }
        }
        vars
    })
    .await
    .expect("read stdout");

    let url = &vars["MENDER_URL"];
    assert_eq!(vars["MENDER_TENANT_ID"], "demo");
    let devices: Vec<&str> = vars["MENDER_DEVICE_IDS"].split(',').collect();
    assert_eq!(
        devices,
        [
            &vars["MENDER_DEVICE_1"],
            &vars["MENDER_DEVICE_2"],
            &vars["MENDER_DEVICE_3"]
        ]
    );

    let http = reqwest::Client::new();
    let get =
        |path: String, token: &str| http.get(format!("{url}{path}")).bearer_auth(token).send();
    let me: Value = get(
        "/api/management/v1/useradm/users/me".into(),
        &vars["MENDER_ADMIN_TOKEN"],
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(me["roles"], json!(["RBAC_ROLE_PERMIT_ALL"]));
    let observer: Value = get(
        "/api/management/v1/useradm/users/me".into(),
        &vars["MENDER_OBSERVER_TOKEN"],
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(observer["roles"], json!(["RBAC_ROLE_OBSERVER"]));

    let list: Value = get(
        "/api/management/v2/devauth/devices?status=pending".into(),
        &vars["MENDER_ADMIN_TOKEN"],
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, devices);

    // Scripts can add devices.
    let created: Value = http
        .post(format!("{url}/_standin/devices"))
        .json(&json!({"tenant_id": "demo", "status": "accepted"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let device = get(
        format!("/api/management/v2/devauth/devices/{id}"),
        &vars["MENDER_OBSERVER_TOKEN"],
    )
    .await
    .unwrap();
    assert_eq!(device.status(), 200);
}
