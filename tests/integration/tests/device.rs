//! A provisioned device really connects, as a device sees it: the bridge
//! provisions it on acceptance, the device's apply script installs what
//! Mender Configure holds for it, and a real MQTT client (mosquitto's)
//! connects with exactly the files the script wrote, over mutual TLS, to a
//! real broker that plays AWS IoT's data endpoint (`broker.rs`), with
//! certificates the emulator signed for the device's own key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use integration_tests::broker::{Broker, ENDPOINT_HOST};
use integration_tests::stack::{Stack, TENANT};
use serde_json::Value;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/device/mender-configure-aws-iot"
);

/// What the apply script installed, read from the AWS IoT Device Client
/// configuration it wrote (paths on the device, under the test's root).
struct Installed {
    endpoint: String,
    thing_name: String,
    certificate: PathBuf,
    private_key: PathBuf,
    root_ca: PathBuf,
}

/// Runs the device's apply script on `configuration` in the root `root`,
/// as mender-configure would, and reads back what it installed.
fn apply(configuration: &BTreeMap<String, String>, root: &Path, root_ca: &Path) -> Installed {
    std::fs::create_dir_all(root).unwrap();
    let file = root.join("device-config.json");
    std::fs::write(&file, serde_json::to_string(configuration).unwrap()).unwrap();
    let output = Command::new("sh")
        .arg(SCRIPT)
        .arg(&file)
        .env("ROOT", root)
        .env("AWS_IOT_SERVICE", "")
        .env("AWS_IOT_ROOT_CA", root_ca)
        .env("MENDER_AWS_IOT_CONF", root.join("no-such-file"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the apply script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let client: Value = serde_json::from_slice(
        &std::fs::read(root.join("etc/aws-iot/aws-iot-device-client.json")).unwrap(),
    )
    .unwrap();
    let on_device = |field: &str| {
        let path = client[field].as_str().unwrap_or_else(|| panic!("{field}"));
        root.join(path.trim_start_matches('/'))
    };
    Installed {
        endpoint: client["endpoint"].as_str().unwrap().to_owned(),
        thing_name: client["thing-name"].as_str().unwrap().to_owned(),
        certificate: on_device("cert"),
        private_key: on_device("key"),
        root_ca: on_device("root-ca"),
    }
}

/// mosquitto's client arguments that connect as the installed device.
fn as_device(installed: &Installed, port: u16) -> Vec<String> {
    let path = |p: &PathBuf| p.display().to_string();
    vec![
        "-V".into(),
        "mqttv5".into(),
        "-h".into(),
        installed.endpoint.clone(),
        "-p".into(),
        port.to_string(),
        "--cafile".into(),
        path(&installed.root_ca),
        "--cert".into(),
        path(&installed.certificate),
        "--key".into(),
        path(&installed.private_key),
    ]
}

/// What a QoS 1 publish of `message` as the device came to: `Ok` when the
/// broker took it, `Err` with mosquitto's words otherwise. Retained, so a
/// subscriber that comes later receives it.
fn publish(installed: &Installed, port: u16, topic: &str, message: &str) -> Result<(), String> {
    let output = Command::new("mosquitto_pub")
        .args(as_device(installed, port))
        .args(["-i", &format!("{}-pub", installed.thing_name)])
        .args(["-q", "1", "-r", "-t", topic, "-m", message])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    // A refused publish is a warning on an exit status of 0.
    if output.status.success() && !said.contains("failed") {
        Ok(())
    } else {
        Err(format!("{}: {said}", output.status))
    }
}

/// The device publishes a fresh message on its own update topic and, as a
/// second client, subscribes there: what the subscription received.
fn round_trip(installed: &Installed, port: u16) -> Result<(String, String), String> {
    let topic = format!("$aws/things/{}/shadow/update", installed.thing_name);
    let message = format!(
        r#"{{"state":{{"reported":{{"online":"{}"}}}}}}"#,
        uuid::Uuid::new_v4()
    );
    publish(installed, port, &topic, &message)?;
    let output = Command::new("mosquitto_sub")
        .args(as_device(installed, port))
        .args(["-i", &format!("{}-sub", installed.thing_name)])
        .args(["-q", "1", "-t", &topic, "-C", "1", "-W", "20"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(format!(
            "mosquitto_sub {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let received = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok((message, received))
}

/// Whether the device connects, publishes and receives its own message
/// (`true`), or the broker refuses its certificate (`false`); anything
/// else fails the test.
fn connects(installed: &Installed, port: u16) -> bool {
    match round_trip(installed, port) {
        Ok((sent, received)) => {
            assert_eq!(received, sent, "the device receives what it published");
            true
        }
        // The broker ends the TLS handshake: mosquitto says one or the other.
        Err(said) if said.contains("connection was lost") || said.contains("Protocol error") => {
            false
        }
        Err(said) => panic!("neither connected nor refused: {said}"),
    }
}

/// Once the bridge has converged, the broker refuses what AWS would.
async fn settle(stack: &Stack, broker: &Broker) {
    stack.bus.wait_idle().await;
    broker.sync_revocations().await;
}

/// A stack with an integration and a broker, a device root of its own, and
/// a device accepted in Mender and provisioned.
async fn accepted_device() -> (Stack, Broker, PathBuf, String) {
    let mut stack = Stack::bare().await;
    stack.seed_integration().await;
    let broker = Broker::start(&stack.moto).await;
    let root = std::env::temp_dir().join(format!("bridge-device-{}", uuid::Uuid::new_v4()));
    let device = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&device).await;
    stack.bus.wait_idle().await;
    (stack, broker, root, device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_device_connects_with_what_it_was_given() {
    // Accepted in Mender: provisioned, and delivered through Mender Configure.
    let (stack, broker, root, device) = accepted_device().await;
    let configuration = stack
        .mender
        .configuration(&device)
        .expect("a configuration");
    assert_eq!(configuration["awsEndpoint"], ENDPOINT_HOST);
    assert_eq!(configuration["awsThingName"], device);

    // The key is PKCS#8 P-256, and the certificate is for that very key.
    let key_pem = &configuration["awsPrivateKey"];
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    let key = rcgen::KeyPair::from_pem(key_pem).unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, pem) = x509_parser::pem::parse_x509_pem(configuration["awsCertificate"].as_bytes())
        .expect("a PEM certificate");
    let certificate = pem.parse_x509().unwrap();
    assert_eq!(
        certificate.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw(),
        "the delivered certificate is for the delivered key"
    );

    // The device installs it and connects with exactly those files.
    let installed = apply(&configuration, &root, &broker.ca_file);
    assert_eq!(installed.thing_name, device);
    assert_eq!(installed.endpoint, ENDPOINT_HOST);
    assert_eq!(
        std::fs::read_to_string(&installed.certificate).unwrap(),
        configuration["awsCertificate"]
    );
    assert!(connects(&installed, broker.port), "the device connects");
    // Another device's topic is not its to use.
    let other = stack.mender.add_device(TENANT, "pending", None);
    let refused = publish(
        &installed,
        broker.port,
        &format!("$aws/things/{other}/shadow/update"),
        "{}",
    );
    assert!(
        refused
            .as_ref()
            .is_err_and(|said| said.contains("Not authorized")),
        "{refused:?}"
    );

    // Rejected: its certificate is INACTIVE, and the broker refuses it.
    stack.mender.reject(&device).await;
    settle(&stack, &broker).await;
    assert!(
        !connects(&installed, broker.port),
        "a rejected device still connects"
    );

    // Accepted again: the same files work again.
    stack.mender.accept(&device).await;
    settle(&stack, &broker).await;
    assert_eq!(
        stack.mender.configuration(&device).as_ref(),
        Some(&configuration),
        "the same credentials, not new ones"
    );
    assert!(
        connects(&installed, broker.port),
        "the device connects again"
    );

    // Decommissioned: certificate and Thing gone, the device refused.
    stack.mender.decommission(&device).await;
    settle(&stack, &broker).await;
    assert!(
        !connects(&installed, broker.port),
        "a decommissioned device still connects"
    );
    assert!(stack.thing_attributes(&device).await.is_none());
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_keeps_connecting_across_a_rotation_of_its_certificate() {
    let (stack, broker, root, device) = accepted_device().await;
    // The device installs what it was given, and mender-configure reports it.
    let first = stack.mender.configuration(&device).unwrap();
    let installed = apply(&first, &root.join("device"), &broker.ca_file);
    stack.mender.report_configuration(&device, first.clone());
    assert!(connects(&installed, broker.port), "the device connects");
    // A copy of the first files, as someone who copied them would keep them.
    let copied = apply(&first, &root.join("copy"), &broker.ca_file);

    // The rotation delivers a new certificate; the device has not applied
    // it yet, and goes on connecting with the old one.
    let started = stack
        .call(
            reqwest::Method::POST,
            &integration_tests::stack::api(&format!("/devices/{device}/rotation")),
            Some(&stack.admin_token),
            None,
        )
        .await;
    assert_eq!(started.status, 201, "{}", started.text);
    settle(&stack, &broker).await;
    assert!(
        connects(&installed, broker.port),
        "still on the old certificate"
    );
    let second = stack.mender.configuration(&device).unwrap();
    assert_ne!(second["awsCertificate"], first["awsCertificate"]);
    assert_ne!(second["awsPrivateKey"], first["awsPrivateKey"]);

    // It applies the new one and connects with it; the old one still works
    // until the bridge sees the report.
    let installed = apply(&second, &root.join("device"), &broker.ca_file);
    assert!(connects(&installed, broker.port), "on the new certificate");
    stack.mender.report_configuration(&device, second);

    // The next sync run retires the old certificate: the device connects,
    // the copied old files no longer do.
    let run = stack.reconcile_run(&stack.admin_token, None).await;
    assert_eq!(run["state"], "done", "{run}");
    settle(&stack, &broker).await;
    assert!(
        connects(&installed, broker.port),
        "the device connects after the rotation"
    );
    assert!(
        !connects(&copied, broker.port),
        "the old certificate still connects after the rotation"
    );
    let _ = std::fs::remove_dir_all(&root);
}
