//! The AWS emulator: moto in server mode, with AWS IoT's certificates made
//! real (`tests/emulator/iot_emulator.py`: each CSR's own key, signed by a
//! test CA), one process per test stack, on a free loopback port, stopped
//! (and its CA directory removed) when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub url: String,
    /// The test CA and what it issued (`EMULATOR_CA_DIR`).
    pub ca_dir: PathBuf,
    child: Child,
}

/// The Python of `.venv`, where `make setup` installs the pinned moto.
pub fn venv_python() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv/bin/python"
    ))
}

/// The emulator's launcher and its other commands (`crl`, `server-cert`).
pub fn emulator_script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../emulator/iot_emulator.py"
    ))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Moto {
    /// Starts moto on a port it picks itself (`-p 0`), read back from its
    /// start-up line: no window in which another process could take the port.
    pub async fn start() -> Moto {
        let python = venv_python();
        assert!(
            python.exists(),
            "{} is missing: run `make setup`",
            python.display()
        );
        let ca_dir = std::env::temp_dir().join(format!("bridge-emulator-{}", uuid::Uuid::new_v4()));
        let mut child = Command::new(&python)
            .arg(emulator_script())
            .args(["serve", "-H", "127.0.0.1", "-p", "0"])
            .env("EMULATOR_CA_DIR", &ca_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        // Reads the port, then keeps draining the request log so moto never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line.split("Running on http://127.0.0.1:").nth(1) {
                    let _ = port_tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port =
            tokio::task::spawn_blocking(move || port_rx.recv_timeout(Duration::from_secs(30)))
                .await
                .ok()
                .and_then(|r| r.ok())
                .flatten()
                .expect("moto reports its port");
        let moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            ca_dir,
            child,
        };
        moto.wait_ready().await;
        moto
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if client
                .get(format!("{}/moto-api/", self.url))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto did not start on {}", self.url);
    }

    /// Clears every service's state.
    pub async fn reset(&self) {
        reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.url))
            .send()
            .await
            .expect("moto reset");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.ca_dir);
    }
}
