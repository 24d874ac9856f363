//! The functions as SAM runs them locally: `sam local invoke` and `sam local
//! start-api` on the build of template.yaml (`sam build --config-env local`,
//! made by `make sam-local`), in Docker on the host's network, against a
//! test stack's moto and Mender stand-in.
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
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fault_proxy::FaultProxy;
use crate::stack::{SECRETS_PREFIX, Stack, TABLE};

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

/// One `sam local invoke`: the function's answer and how long it took.
#[derive(Debug)]
pub struct Invocation {
    pub answer: Value,
    /// The whole command: SAM, Docker, the function's start and its work.
    pub wall: Duration,
    /// The invocation's `Duration` in the emulator's REPORT line: from the
    /// event handed to the function to its answer.
    pub duration_ms: Option<f64>,
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
            _gateways: [mender, moto],
        }
    }

    /// `sam local invoke <function> -e <event>`.
    pub fn invoke(&self, function: &str, event: &Value) -> Invocation {
        let event_file = work_dir().join(format!("event-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&event_file, event.to_string()).unwrap();
        let started = Instant::now();
        let output = self
            .sam(&["local", "invoke"])
            .args([function, "--event"])
            .arg(&event_file)
            .output()
            .expect("sam runs");
        let wall = started.elapsed();
        let _ = std::fs::remove_file(&event_file);
        let logs = String::from_utf8_lossy(&output.stderr).into_owned();
        // Kept for a failed run: target/sam-local/<function>.log (the last).
        std::fs::write(work_dir().join(format!("{function}.log")), &logs).unwrap();
        let answer = last_json_line(&output)
            .unwrap_or_else(|| panic!("{function}: no answer from sam local invoke\n{logs}"));
        Invocation {
            answer,
            wall,
            duration_ms: reported_duration(&logs),
            logs,
        }
    }

    /// `sam local start-api` on `port`, until dropped.
    pub fn start_api(&self, port: u16) -> LocalApi {
        let log_path = work_dir().join(format!("start-api-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = self
            .sam(&["local", "start-api"])
            .args(["--port", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sam runs");
        LocalApi {
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

/// `sam local start-api`, running.
pub struct LocalApi {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl LocalApi {
    /// Waits until SAM serves (its routes are mounted), at most `limit`.
    pub async fn ready(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if reqwest::get(format!("{}/integration", self.url))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("sam local start-api did not start:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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

impl Drop for LocalApi {
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

/// The function's answer: SAM prints it as the last line of its output.
fn last_json_line(output: &Output) -> Option<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .and_then(|line| serde_json::from_str(line).ok())
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
