//! The MQTT broker that plays AWS IoT Core's data endpoint for devices:
//! mosquitto (Debian's), TLS on loopback, a client certificate from the
//! emulator's test CA required and its CN taken as the client's identity,
//! each client confined to its own Thing's shadow topics (as
//! `infra/device-policy.json` confines it in AWS), and every certificate the
//! bridge deactivated or deleted refused: the emulator writes them into a
//! CRL, which the broker reloads on SIGHUP.
//!
//! What stays different from AWS: topic rules approximate the policy (the
//! client id is not tied to the Thing name), and revocation takes effect
//! when [`Broker::sync_revocations`] is called, not at once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::moto::{Moto, emulator_command, free_port};

/// The broker's configuration and topic rules, shared with `make dev`.
const CONFIG: &str = include_str!("../../emulator/mosquitto.conf");
const ACL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../emulator/mosquitto.acl");

/// The host name devices are given (`DescribeEndpoint`'s answer in the
/// emulator) and the broker's certificate names.
pub const ENDPOINT_HOST: &str = "localhost";

pub struct Broker {
    pub port: u16,
    /// The test CA: the root devices trust, as AmazonRootCA1 in AWS.
    pub ca_file: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    moto_url: String,
    ca_dir: PathBuf,
    child: Child,
}

impl Broker {
    /// Starts a broker for the devices of `moto`'s certificates.
    pub async fn start(moto: &Moto) -> Broker {
        let ca_dir = moto.ca_dir.clone();
        let moto_url = moto.url.clone();
        let setup_dir = ca_dir.clone();
        tokio::task::spawn_blocking(move || {
            emulator_command(&setup_dir, &["server-cert", ENDPOINT_HOST, "127.0.0.1"]);
            emulator_command(&setup_dir, &["crl", &moto_url]);
        })
        .await
        .unwrap();
        let dir = ca_dir.join("broker");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            CONFIG
                .replace("@PORT@", &port.to_string())
                .replace("@CA_DIR@", &ca_dir.display().to_string())
                .replace("@ACL@", ACL),
        )
        .unwrap();
        let log = dir.join("mosquitto.log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("mosquitto starts (make setup installs it)");
        let broker = Broker {
            port,
            ca_file: ca_dir.join("ca.pem"),
            dir,
            log,
            moto_url: moto.url.clone(),
            ca_dir,
            child,
        };
        broker
            .wait_for(|log| log.contains("running"), "start")
            .await;
        broker
    }

    /// Refuses, from now on, every certificate the emulator does not hold
    /// ACTIVE, and accepts again those it does.
    pub async fn sync_revocations(&self) {
        let (ca_dir, moto_url) = (self.ca_dir.clone(), self.moto_url.clone());
        tokio::task::spawn_blocking(move || emulator_command(&ca_dir, &["crl", &moto_url]))
            .await
            .unwrap();
        let reloads = self.log_text().matches("Reloading config.").count();
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_for(
            |log| log.matches("Reloading config.").count() > reloads,
            "reload",
        )
        .await;
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_for(&self, done: impl Fn(&str) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if done(&self.log_text()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "mosquitto did not {what} (in {}): {}",
            self.dir.display(),
            self.log_text()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
