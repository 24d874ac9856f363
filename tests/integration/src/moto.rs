//! The AWS emulator: moto in server mode, with AWS IoT's certificates made
//! real (`tests/emulator/iot_emulator.py`: each CSR's own key, signed by a
//! test CA), one process per test stack (forked from a warm one), on a
//! free loopback port, stopped (and its CA directory removed) when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Moto {
    pub url: String,
    /// The test CA and what it issued (`EMULATOR_CA_DIR`).
    pub ca_dir: PathBuf,
    /// The connection the emulator was forked for: it ends when this
    /// closes (or this process ends).
    connection: UnixStream,
}

/// The Python of `.venv`, where `make setup` installs the pinned moto.
pub fn venv_python() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv/bin/python"
    ))
}

/// The emulator's launcher and its other commands (`crl`, `server-cert`).
fn emulator_script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../emulator/iot_emulator.py"
    ))
}

/// Runs one of the emulator script's commands (`crl`, `server-cert`) against
/// the CA in `ca_dir`; panics with its stderr if it fails.
pub fn emulator_command(ca_dir: &Path, arguments: &[&str]) {
    let output = Command::new(venv_python())
        .arg(emulator_script())
        .args(arguments)
        .env("EMULATOR_CA_DIR", ca_dir)
        .output()
        .expect("the emulator script runs");
    assert!(
        output.status.success(),
        "iot_emulator.py {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One warm emulator process per test process (`iot_emulator.py
/// forkserver`): moto imported once, each emulator a fork of it. Starting
/// moto afresh costs about a second of CPU, and the suites start hundreds.
/// It ends when this process does: it holds our end of its stdin.
struct ForkServer {
    socket: PathBuf,
    _stdin: ChildStdin,
    _process: Child,
}

static FORK_SERVER: OnceLock<ForkServer> = OnceLock::new();

impl ForkServer {
    fn get() -> &'static ForkServer {
        FORK_SERVER.get_or_init(|| {
            let python = venv_python();
            assert!(
                python.exists(),
                "{} is missing: run `make setup`",
                python.display()
            );
            let socket = std::env::temp_dir()
                .join(format!("bridge-emulators-{}.sock", uuid::Uuid::new_v4()));
            let mut child = Command::new(&python)
                .arg(emulator_script())
                .arg("forkserver")
                .arg(&socket)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("the emulator fork server starts");
            ForkServer {
                socket,
                _stdin: child.stdin.take().expect("stdin is piped"),
                _process: child,
            }
        })
    }

    /// A connection, once the server listens (its imports take a moment).
    fn connect(&self) -> UnixStream {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(stream) => return stream,
                Err(error) if Instant::now() > deadline => {
                    panic!("the emulator fork server does not listen: {error}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Moto {
    /// Starts moto on a port it picks itself (`-p 0`), read back from its
    /// start-up line: no window in which another process could take the port.
    pub async fn start() -> Moto {
        let ca_dir = std::env::temp_dir().join(format!("bridge-emulator-{}", uuid::Uuid::new_v4()));
        let request = serde_json::json!({
            "env": {"EMULATOR_CA_DIR": ca_dir},
            "args": ["-H", "127.0.0.1", "-p", "0"],
        });
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        // Sends the connection and the emulator's port, then keeps draining
        // its log so that it never blocks on a full socket.
        std::thread::spawn(move || {
            let mut stream = ForkServer::get().connect();
            writeln!(stream, "{request}").expect("a request to the fork server");
            let kept = stream.try_clone().expect("a clone of the connection");
            let mut kept = Some(kept);
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(port) = line.split("Running on http://127.0.0.1:").nth(1)
                    && let Some(connection) = kept.take()
                {
                    let _ =
                        started_tx.send(port.trim().parse::<u16>().ok().map(|p| (connection, p)));
                }
            }
        });
        let (connection, port) =
            tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(90)))
                .await
                .ok()
                .and_then(|r| r.ok())
                .flatten()
                .expect("the emulator reports its port");
        let moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            ca_dir,
            connection,
        };
        moto.wait_ready().await;
        moto
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = crate::http();
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
        crate::http()
            .post(format!("{}/moto-api/reset", self.url))
            .send()
            .await
            .expect("moto reset");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The emulator exits when its connection closes.
        let _ = self.connection.shutdown(std::net::Shutdown::Both);
        let _ = std::fs::remove_dir_all(&self.ca_dir);
    }
}
