//! The functions as SAM runs them locally: `sam local start-lambda` (each
//! function invoked through the Lambda API, its container kept warm after
//! its first invocation) and `sam local start-api`, on the build of
//! template.yaml (`sam build --config-env local`, made by `make
//! sam-local`), in Docker, against a test stack's moto and Mender stand-in.
//!
//! The functions' environment is infra/sam-local-env.json (what a user
//! passes against `make dev`) with the stack's own addresses put in. The
//! functions' containers are on Docker's bridge network (SAM 1.170 does not
//! honour `--docker-network host`), where they reach the host as
//! `host.docker.internal` (samconfig.toml's `add_host`): the stack's moto and
//! stand-in are on loopback, so two proxies listen on the bridge's gateway
//! address for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fault_proxy::FaultProxy;
use crate::moto::free_port;
use crate::stack::{DEVICE_RECORD_TABLE, EVENT_LOG_TABLE, SECRETS_PREFIX, Stack, TABLE};

/// The bus the ingress publishes to, created in the stack's moto.
pub const BUS: &str = "mender-iot-bridge-sam-local";

pub fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Where the test writes its event files, environment and figures.
pub fn work_dir() -> PathBuf {
    repository().join("target/sam-local")
}

/// The committed environment file, as it is.
pub fn committed_environment() -> Value {
    let path = repository().join("infra/sam-local-env.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// One invocation: the function's answer and how long it took.
#[derive(Debug)]
pub struct Invocation {
    pub answer: Value,
    /// The whole request to SAM: on a function's first invocation its
    /// container's start and the function's init too.
    pub wall: Duration,
    /// The invocation's `Duration` in the emulator's REPORT line: from the
    /// event handed to the function to its answer.
    pub duration_ms: Option<f64>,
    /// What SAM logged during the invocation (the function's lines).
    pub logs: String,
}

impl Invocation {
    /// An HTTP answer (API Gateway payload 2.0): status and JSON body.
    pub fn http(&self) -> (u16, Value) {
        let status = self.answer["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("not an HTTP answer: {}\n{}", self.answer, self.logs));
        // The functions answer JSON as text, never base64.
        assert_ne!(self.answer["isBase64Encoded"], true, "{}", self.answer);
        let body = self.answer["body"].as_str().unwrap_or("");
        (
            status as u16,
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }
}

pub struct SamLocal {
    environment: PathBuf,
    /// `sam local start-lambda`, started by the first invocation.
    lambda: tokio::sync::OnceCell<SamServer>,
    /// Moto and the Mender stand-in, where the containers reach them.
    _gateways: [FaultProxy; 2],
}

/// The address of the host on Docker's bridge network: Docker's
/// `host-gateway`, the `docker0` interface's address.
fn docker_host_gateway() -> std::net::IpAddr {
    let output = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "docker0"])
        .output()
        .expect("ip runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|address| address.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address on docker0: {text:?}"))
}

impl SamLocal {
    /// Writes the functions' environment for `stack` (Mender webhooks to
    /// `public_url`) and checks that the build exists.
    pub async fn start(stack: &Stack, public_url: &str) -> SamLocal {
        let template = build_template();
        assert!(
            template.exists(),
            "{template:?} is missing: run `make sam-local` (it runs `sam build --config-env local`)"
        );
        let gateway = docker_host_gateway();
        let mender = FaultProxy::start_on(gateway, &stack.mender.url())
            .await
            .unwrap();
        let moto = FaultProxy::start_on(gateway, &stack.moto.url)
            .await
            .unwrap();
        let from_containers =
            |proxy: &FaultProxy| format!("http://host.docker.internal:{}", proxy.addr().port());
        let mut environment = committed_environment();
        let values: BTreeMap<&str, String> = BTreeMap::from([
            ("MENDER_URL", from_containers(&mender)),
            ("AWS_ENDPOINT_URL", from_containers(&moto)),
            ("SECRETS_PREFIX", SECRETS_PREFIX.to_owned()),
            ("TABLE_NAME", TABLE.to_owned()),
            ("EVENT_LOG_TABLE", EVENT_LOG_TABLE.to_owned()),
            ("DEVICE_RECORD_TABLE", DEVICE_RECORD_TABLE.to_owned()),
            ("EVENT_BUS_NAME", BUS.to_owned()),
            ("PUBLIC_URL", public_url.to_owned()),
            ("ALLOWED_ORGANIZATIONS", crate::stack::TENANT.to_owned()),
        ]);
        let parameters = environment["Parameters"]
            .as_object_mut()
            .expect("infra/sam-local-env.json has Parameters");
        for (name, value) in values {
            assert!(
                parameters.contains_key(name),
                "infra/sam-local-env.json does not set {name}"
            );
            parameters.insert(name.to_owned(), value.into());
        }
        std::fs::create_dir_all(work_dir()).unwrap();
        let path = work_dir().join(format!("env-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, environment.to_string()).unwrap();
        SamLocal {
            environment: path,
            lambda: tokio::sync::OnceCell::new(),
            _gateways: [mender, moto],
        }
    }

    /// `function` invoked with `event` through the Lambda API of `sam
    /// local start-lambda` (as `aws lambda invoke` would).
    pub async fn invoke(&self, function: &str, event: &Value) -> Invocation {
        let lambda = self
            .lambda
            .get_or_init(|| async {
                let lambda = self.serve("start-lambda", free_port());
                lambda.ready(Duration::from_secs(120)).await;
                lambda
            })
            .await;
        let logged = lambda.log_text().len();
        let started = Instant::now();
        let response = crate::http()
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                lambda.url
            ))
            .json(event)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{function}: sam local start-lambda: {e}"));
        let wall = started.elapsed();
        let text = response.text().await.unwrap_or_default();
        let logs = lambda.logged_since(logged, Duration::from_secs(5)).await;
        // Kept for a failed run: target/sam-local/<function>.log (the last).
        std::fs::write(work_dir().join(format!("{function}.log")), &logs).unwrap();
        let answer = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{function}: no JSON answer: {text}\n{logs}"));
        Invocation {
            answer,
            wall,
            duration_ms: reported_duration(&logs),
            logs,
        }
    }

    /// `sam local start-api` on `port`, until dropped.
    pub fn start_api(&self, port: u16) -> SamServer {
        self.serve("start-api", port)
    }

    /// `sam local <command>` on `port`, with warm containers (each
    /// function's container started by its first invocation, then kept),
    /// until dropped.
    fn serve(&self, command: &str, port: u16) -> SamServer {
        let log_path = work_dir().join(format!("{command}-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = self
            .sam(&["local", command])
            .args(["--port", &port.to_string(), "--warm-containers", "LAZY"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sam runs");
        SamServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log_path,
        }
    }

    /// `sam <subcommand>` on the local build, with the `local` configuration of
    /// samconfig.toml, this stack's environment, the local base image, and
    /// AWS credentials for moto (SAM hands them to the functions).
    fn sam(&self, subcommand: &[&str]) -> Command {
        let mut command = Command::new(repository().join(".venv/bin/sam"));
        command
            .current_dir(repository())
            .args(subcommand)
            // The build's template is SAM's default; samconfig.toml is read
            // from the working directory.
            .args(["--config-env", "local", "--env-vars"])
            .arg(&self.environment)
            .arg("--skip-pull-image")
            .env("SAM_CLI_TELEMETRY", "0")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null());
        command
    }
}

impl Drop for SamLocal {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.environment);
    }
}

/// `sam local start-api` or `start-lambda`, running.
pub struct SamServer {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl SamServer {
    /// Waits until SAM answers (its routes are mounted), at most `limit`.
    pub async fn ready(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if crate::http().get(&self.url).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("sam local did not start:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What SAM logged after the first `from` bytes, once the emulator's
    /// REPORT line of the invocation is among it (SAM copies a container's
    /// output as it comes), or after `limit`.
    async fn logged_since(&self, from: usize, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let text = self.log_text();
            let logged = text.get(from..).unwrap_or_default().to_owned();
            if logged.contains("REPORT RequestId") || started.elapsed() > limit {
                return logged;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The routes SAM mounted, from its start-up lines ("Mounting
    /// <Function> at http://…/path [METHODS]"): (method, path) -> function.
    pub fn mounted_routes(&self) -> BTreeMap<(String, String), String> {
        let mut routes = BTreeMap::new();
        for line in self.log_text().lines() {
            let Some(rest) = line.split("Mounting ").nth(1) else {
                continue;
            };
            let Some((function, rest)) = rest.split_once(" at ") else {
                continue;
            };
            let Some((url, methods)) = rest.split_once(" [") else {
                continue;
            };
            let path = url.trim_start_matches(&self.url).to_owned();
            for method in methods.trim_end_matches(']').split(',') {
                routes.insert(
                    (method.trim().to_owned(), path.clone()),
                    function.to_owned(),
                );
            }
        }
        routes
    }
}

impl Drop for SamServer {
    fn drop(&mut self) {
        // SIGINT: SAM stops the function containers it started.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn build_template() -> PathBuf {
    repository().join(".aws-sam/build/template.yaml")
}

/// "Duration: 12.34 ms" from the emulator's REPORT line (not its "Init
/// Duration", which SAM's emulator does not measure as Lambda does).
fn reported_duration(logs: &str) -> Option<f64> {
    let report = logs
        .lines()
        .find(|line| line.starts_with("REPORT RequestId"))?;
    let rest = report.split("\tDuration: ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Records the first invocation of each function (`make bench` reads it).
pub fn record_first_invocations(path: &Path, firsts: &BTreeMap<String, (Duration, Option<f64>)>) {
    let rows: Vec<Value> = firsts
        .iter()
        .map(|(function, (wall, duration_ms))| {
            json!({"function": function, "wall_ms": wall.as_secs_f64() * 1000.0, "duration_ms": duration_ms})
        })
        .collect();
    std::fs::write(path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
}
