//! A local Lambda Runtime API (the `2018-06-01` endpoints a custom runtime
//! polls), enough to start a function's release binary, hand it events one
//! at a time and see its answers: cold start, first-invocation latency and
//! peak memory are measured against it.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

/// What the function answered to one event.
#[derive(Debug)]
pub struct Answer {
    pub ok: bool,
    pub body: String,
    /// From handing the event out (the `next` response) to the answer.
    pub latency: Duration,
}

struct Shared {
    events: Mutex<mpsc::Receiver<Value>>,
    first_poll: std::sync::Mutex<Option<Instant>>,
    handed_out: std::sync::Mutex<Option<Instant>>,
    answers: mpsc::Sender<Answer>,
    sequence: std::sync::atomic::AtomicU64,
}

pub struct RuntimeApi {
    pub addr: String,
    shared: Arc<Shared>,
    events: mpsc::Sender<Value>,
    answers: mpsc::Receiver<Answer>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let (event_tx, event_rx) = mpsc::channel(1);
        let (answer_tx, answer_rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            events: Mutex::new(event_rx),
            first_poll: std::sync::Mutex::new(None),
            handed_out: std::sync::Mutex::new(None),
            answers: answer_tx,
            sequence: Default::default(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(|state, body| answer(state, body, true)),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(|state, body| answer(state, body, false)),
            )
            .route(
                "/2018-06-01/runtime/init/error",
                post(|state, body| answer(state, body, false)),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        RuntimeApi {
            addr,
            shared,
            events: event_tx,
            answers: answer_rx,
        }
    }

    /// When the function first asked for an event.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.lock().unwrap()
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&mut self, event: Value) -> Answer {
        self.events.send(event).await.expect("the runtime API runs");
        tokio::time::timeout(Duration::from_secs(60), self.answers.recv())
            .await
            .expect("the function answers within 60 s")
            .expect("the runtime API runs")
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared
        .first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let Some(event) = shared.events.lock().await.recv().await else {
        return http::StatusCode::GONE.into_response();
    };
    let n = shared
        .sequence
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    *shared.handed_out.lock().unwrap() = Some(Instant::now());
    (
        [
            ("lambda-runtime-aws-request-id", format!("bench-{n}")),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
            ),
            ("lambda-runtime-trace-id", format!("Root=1-bench-{n}")),
            ("content-type", "application/json".to_owned()),
        ],
        event.to_string(),
    )
        .into_response()
}

async fn answer(State(shared): State<Arc<Shared>>, body: String, ok: bool) -> Response {
    let handed_out = shared.handed_out.lock().unwrap().take();
    let latency = handed_out.map(|t| t.elapsed()).unwrap_or_default();
    let _ = shared.answers.send(Answer { ok, body, latency }).await;
    http::StatusCode::ACCEPTED.into_response()
}

/// The environment a function is started with, besides the runtime API.
pub type Env = Vec<(String, String)>;

/// One started function process.
pub struct Function {
    pub child: std::process::Child,
    pub api: RuntimeApi,
    pub started: Instant,
}

impl Function {
    pub async fn start(binary: &Path, name: &str, env: &Env) -> Function {
        let api = RuntimeApi::start().await;
        let mut command = std::process::Command::new(binary);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let child = command.spawn().expect("the function binary starts");
        Function {
            child,
            api,
            started,
        }
    }

    /// Process start → first `GET …/invocation/next`.
    pub async fn init_time(&self) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(polled) = self.api.first_poll() {
                return polled - self.started;
            }
            assert!(Instant::now() < deadline, "the function never polled");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// The process's peak resident set (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub async fn stop(self) {}
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
