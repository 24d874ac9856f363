//! Cold start, first-invocation latency and peak memory of each function's
//! release binary, against the local Runtime API and a local stack (moto,
//! the Mender stand-in), fed the sample events of `tests/events/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge::events::DetailType;
use integration_tests::fixtures::{SAMPLE_RUN_ID, fixture};
use integration_tests::resilience::envelope;
use integration_tests::stack::{
    DEVICE_RECORD_TABLE, EVENT_LOG_TABLE, SECRETS_PREFIX, Stack, TABLE, TENANT,
};
use serde_json::{Value, json};

use crate::runtime::{Env, Function};
use crate::stats::{median, ms};

pub const FUNCTIONS: &[&str] = &[
    "console",
    "device-accepted",
    "device-decommissioned",
    "device-disabled",
    "device-rotation",
    "integration",
    "reconcile",
    "shadow-get",
    "shadow-update",
    "webhook-ingress",
];

/// A sample event made real for this stack: its integration, a device, a
/// Mender token (and the webhook re-signed).
fn event_for(stack: &Stack, function: &str, device: &str) -> Value {
    let sample = |name: &str| fixture(&format!("{name}.json"), stack, device, SAMPLE_RUN_ID);
    match function {
        "device-accepted"
        | "device-disabled"
        | "device-decommissioned"
        | "shadow-get"
        | "webhook-ingress" => sample(function),
        "integration" => sample("integration-get"),
        "console" => sample("console-page"),
        "shadow-update" => sample("shadow-update-patch"),
        "device-rotation" => sample("device-rotation-get"),
        "reconcile" => sample("reconcile-scheduled"),
        other => panic!("no sample event for {other}"),
    }
}

/// Did the function do its job (not only answer)?
fn succeeded(function: &str, ok: bool, body: &str) -> bool {
    if !ok {
        return false;
    }
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match function {
        "console" | "device-rotation" | "integration" | "shadow-get" | "shadow-update" => {
            answer["statusCode"] == 200
        }
        "webhook-ingress" => answer["statusCode"] == 202,
        _ => true,
    }
}

fn function_env(stack: &Stack) -> Env {
    [
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_ENDPOINT_URL", stack.aws_proxy.url()),
        ("MENDER_URL", stack.mender_proxy.url()),
        ("TABLE_NAME", TABLE.to_owned()),
        ("EVENT_LOG_TABLE", EVENT_LOG_TABLE.to_owned()),
        ("DEVICE_RECORD_TABLE", DEVICE_RECORD_TABLE.to_owned()),
        ("SECRETS_PREFIX", SECRETS_PREFIX.to_owned()),
        ("EVENT_BUS_NAME", "default".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "error".to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A device accepted in Mender, provisioned in AWS (its Thing is ours).
pub async fn provisioned_device(stack: &Stack) -> String {
    let device = stack.mender.add_device(TENANT, "accepted", None);
    let accepted = envelope(stack, DetailType::DeviceAccepted, &device);
    bridge::lifecycle::handle(stack.lifecycle(), accepted)
        .await
        .expect("the device is provisioned");
    device
}

pub fn binary(dir: &Path, function: &str) -> PathBuf {
    dir.join(function).join("bootstrap")
}

/// The device each function's events name.
async fn device_for(stack: &Stack, function: &str, provisioned: &str) -> String {
    match function {
        // A new device per start: the first invocation provisions it.
        "device-accepted" => stack.mender.add_device(TENANT, "accepted", None),
        "device-disabled" => stack.mender.add_device(TENANT, "rejected", None),
        "device-decommissioned" => uuid::Uuid::new_v4().to_string(),
        _ => provisioned.to_owned(),
    }
}

/// Each function started `starts` times, in rounds (every function once,
/// then again): a slow spell of the machine then falls on every function
/// alike, not on the one whose turn it was.
pub async fn cold_start(bin_dir: &Path, starts: usize) -> Value {
    let stack = Stack::start().await;
    let provisioned = provisioned_device(&stack).await;
    let env = function_env(&stack);
    let present: Vec<&str> = FUNCTIONS
        .iter()
        .copied()
        .filter(|function| binary(bin_dir, function).exists())
        .collect();
    let mut measured: BTreeMap<&str, (Vec<Duration>, Vec<Duration>, usize)> = BTreeMap::new();
    for _ in 0..starts {
        for &function in &present {
            let device = device_for(&stack, function, &provisioned).await;
            let event = event_for(&stack, function, &device);
            let mut f = Function::start(&binary(bin_dir, function), function, &env).await;
            let (inits, firsts, failures) = measured.entry(function).or_default();
            inits.push(f.init_time().await);
            let answer = f.api.invoke(event).await;
            if !succeeded(function, answer.ok, &answer.body) {
                *failures += 1;
                eprintln!("{function}: first invocation failed: {}", answer.body);
            }
            firsts.push(answer.latency);
            f.stop().await;
        }
    }
    let mut results = serde_json::Map::new();
    for function in FUNCTIONS {
        let Some((inits, firsts, failures)) = measured.get(function) else {
            let missing = binary(bin_dir, function);
            results.insert(
                function.to_string(),
                json!({ "error": format!("{} is missing", missing.display()) }),
            );
            continue;
        };
        eprintln!(
            "cold start {function}: init {:.2} ms, first invocation {:.1} ms",
            ms(median(inits)),
            ms(median(firsts))
        );
        results.insert(
            function.to_string(),
            json!({
                "starts": starts,
                "init_ms_median": ms(median(inits)),
                "init_ms_min": ms(*inits.iter().min().unwrap()),
                "init_ms_max": ms(*inits.iter().max().unwrap()),
                "first_invocation_ms_median": ms(median(firsts)),
                "failed_first_invocations": failures,
            }),
        );
    }
    Value::Object(results)
}

pub async fn memory(bin_dir: &Path, invocations: usize) -> Value {
    let stack = Stack::start().await;
    let provisioned = provisioned_device(&stack).await;
    let env = function_env(&stack);
    let mut results = serde_json::Map::new();
    for function in FUNCTIONS {
        let binary = binary(bin_dir, function);
        if !binary.exists() {
            continue;
        }
        let device = device_for(&stack, function, &provisioned).await;
        let mut f = Function::start(&binary, function, &env).await;
        let after_init = {
            f.init_time().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            f.peak_rss_kib()
        };
        let (mut failures, mut latencies) = (0, Vec::new());
        let started = std::time::Instant::now();
        for _ in 0..invocations {
            // Each shadow write under its own version: If-Match-free PATCH.
            let answer = f.api.invoke(event_for(&stack, function, &device)).await;
            if !succeeded(function, answer.ok, &answer.body) {
                failures += 1;
            }
            latencies.push(answer.latency);
        }
        let elapsed = started.elapsed();
        let peak = f.peak_rss_kib();
        f.stop().await;
        eprintln!(
            "memory {function}: peak {:?} KiB after {invocations} invocations ({failures} failed)",
            peak
        );
        results.insert(
            function.to_string(),
            json!({
                "invocations": invocations,
                "peak_rss_mib": peak.map(|k| k as f64 / 1024.0),
                "rss_after_init_mib": after_init.map(|k| k as f64 / 1024.0),
                "failed_invocations": failures,
                "invocation_ms_median": ms(median(&latencies)),
                "seconds": elapsed.as_secs_f64(),
            }),
        );
    }
    Value::Object(results)
}
