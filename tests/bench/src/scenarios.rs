//! The in-process measurements: provisioning's critical path, bulk
//! acceptance under AWS's rate quotas, the ingress, and the shadow routes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridge::config::CallBudget;
use bridge::converge::Outcome;
use bridge::converge::plan::CERTIFICATE_KEY;
use bridge::events::{DetailType, EventBus, PublishError};
use bridge::lifecycle::Lifecycle;
use bridge::stage::Concurrency;
use bridge::wiring::Wiring;
use integration_tests::fault_proxy::{Fault, FaultRule, IOT_REGISTRY_READS, IOT_REGISTRY_WRITES};
use integration_tests::stack::{Stack, TENANT, test_budget, test_config};
use lambda_http::RequestExt;
use serde_json::{Value, json};

use crate::functions::provisioned_device;
use crate::stats::{median, ms, percentile};

pub const LATENCIES_MS: [u64; 3] = [0, 20, 50];

fn set_latency(stack: &Stack, latency: Duration) {
    stack.aws_proxy.set_latency(latency);
    stack.mender_proxy.set_latency(latency);
}

/// The lifecycle handler as the deployed function builds it, with
/// `concurrency` for its reconciles.
fn lifecycle(stack: &Stack, concurrency: Concurrency) -> Lifecycle {
    let mut config = test_config(&stack.mender_proxy.url(), &stack.url, test_budget());
    config.concurrency = concurrency;
    Wiring::new(config, stack.aws.clone()).lifecycle()
}

/// One device-accepted invocation for a new device, end to end (lease,
/// reconcile, release): wall time, and the calls it made.
async fn provision_once(stack: &Stack, lifecycle: &Lifecycle) -> (Duration, usize) {
    let device = stack.mender.add_device(TENANT, "accepted", None);
    stack.aws_proxy.reset_calls();
    stack.mender_proxy.reset_calls();
    let started = Instant::now();
    let report = bridge::lifecycle::handle(
        lifecycle,
        integration_tests::resilience::envelope(stack, DetailType::DeviceAccepted, &device),
    )
    .await
    .expect("provisioning succeeds");
    let elapsed = started.elapsed();
    assert_eq!(report.outcome, Some(Outcome::Provisioned));
    let calls = stack.aws_proxy.count("*") + stack.mender_proxy.count("*");
    (elapsed, calls)
}

pub async fn provisioning(runs: usize) -> Value {
    let stack = Stack::start().await;
    let modes = [
        ("concurrent", Concurrency::Concurrent),
        ("sequential", Concurrency::Sequential),
    ];
    let handlers: Vec<_> = modes
        .iter()
        .map(|(name, mode)| (*name, lifecycle(&stack, *mode)))
        .collect();
    // Warm: settings read, tenant built, endpoint looked up (once per instance).
    for (_, handler) in &handlers {
        provision_once(&stack, handler).await;
    }
    let mut by_latency = Vec::new();
    let mut medians: HashMap<(&str, u64), f64> = HashMap::new();
    for latency in LATENCIES_MS {
        set_latency(&stack, Duration::from_millis(latency));
        let mut row = serde_json::Map::new();
        row.insert("latency_ms".into(), json!(latency));
        for (name, handler) in &handlers {
            let mut times = Vec::new();
            let mut calls = 0;
            for _ in 0..runs {
                let (elapsed, made) = provision_once(&stack, handler).await;
                times.push(elapsed);
                calls = made;
            }
            let m = ms(median(&times));
            medians.insert((name, latency), m);
            eprintln!("provisioning L={latency} ms {name}: median {m} ms, {calls} calls");
            row.insert(
                name.to_string(),
                json!({ "median_ms": m, "runs": runs, "calls": calls }),
            );
        }
        let ratio = medians[&("concurrent", latency)] / medians[&("sequential", latency)];
        row.insert("ratio".into(), json!(round(ratio, 3)));
        by_latency.push(Value::Object(row));
    }
    set_latency(&stack, Duration::ZERO);
    // Each round trip on the critical path waits L once more: the slope of
    // the medians against L (least squares) counts them.
    let round_trips = |name: &str| {
        round(
            slope(LATENCIES_MS.map(|l| (l as f64, medians[&(name, l)]))),
            1,
        )
    };
    json!({
        "runs_per_point": runs,
        "by_latency": by_latency,
        "round_trips_concurrent": round_trips("concurrent"),
        "round_trips_sequential": round_trips("sequential"),
        "ratio_at_50ms": round(medians[&("concurrent", 50)] / medians[&("sequential", 50)], 3),
    })
}

/// Least-squares slope of `points`.
fn slope<const N: usize>(points: [(f64, f64); N]) -> f64 {
    let n = N as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// AWS IoT Core's default per-account request-rate quotas (requests per
/// second) for the registry calls the bridge makes. Sources in
/// `docs/performance.md`.
pub const IOT_QUOTAS: &[(&str, f64)] = &[
    ("CreateThing", 100.0),
    ("CreateCertificateFromCsr", 15.0),
    ("AttachPolicy", 15.0),
    ("AttachThingPrincipal", 100.0),
    ("UpdateCertificate", 10.0),
    ("DescribeThing", 350.0),
    ("DescribeCertificate", 10.0),
    ("ListThingPrincipals", 10.0),
    ("ListAttachedPolicies", 15.0),
    ("DetachPolicy", 15.0),
    ("DetachThingPrincipal", 15.0),
    ("DeleteCertificate", 10.0),
    ("DeleteThing", 15.0),
    ("ListThings", 10.0),
    ("ListCertificates", 10.0),
];

/// Calls every newly accepted device needs, whatever the implementation.
const NEEDED_PER_DEVICE: &[&str] = &[
    "CreateThing",
    "CreateCertificateFromCsr",
    "AttachPolicy",
    "AttachThingPrincipal",
];

pub async fn bulk(devices: usize, divisor: f64, reserved_concurrency: usize) -> Value {
    // The deployed retry policy: how patient the bridge is with throttling
    // is part of what is measured.
    let stack = Stack::start_with(CallBudget::BACKGROUND).await;
    stack.bus.set_concurrency(Some(reserved_concurrency));
    let quotas: BTreeMap<&str, f64> = IOT_QUOTAS
        .iter()
        .map(|(op, tps)| (*op, tps / divisor))
        .collect();
    for (op, tps) in &quotas {
        // AWS allows short bursts; one second's worth here.
        stack
            .aws_proxy
            .inject(FaultRule::rate_limit(op, *tps, tps.max(1.0)));
    }
    let ids: Vec<String> = (0..devices)
        .map(|_| stack.mender.add_device(TENANT, "pending", None))
        .collect();
    stack.aws_proxy.reset_calls();

    let started = Instant::now();
    let deliveries = futures::future::join_all(ids.iter().map(|id| stack.mender.accept(id))).await;
    let webhooks_accepted = started.elapsed();
    stack.bus.wait_idle().await;
    let total = started.elapsed();

    let refused_webhooks = deliveries
        .iter()
        .flatten()
        .filter(|d| d.result != Ok(202))
        .count();
    let dead = stack.bus.dead_letters().len();
    let bus_retries: u32 = stack
        .bus
        .deliveries()
        .iter()
        .map(|d| d.attempts.saturating_sub(1))
        .sum();
    let handed_over = stack
        .bus
        .deliveries()
        .iter()
        .filter(|d| matches!(&d.result, Ok(r) if r.outcome == Some(Outcome::HandedOver)))
        .count();
    let calls = stack.aws_proxy.calls();
    let throttled = calls
        .iter()
        .filter(|c| matches!(c.fault, Some(Fault::Throttle)))
        .count();
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.fault.is_none()) {
        *served.entry(call.operation.clone()).or_default() += 1;
    }
    // The bound: the API whose quota the needed calls exhaust last.
    let bound = NEEDED_PER_DEVICE
        .iter()
        .map(|op| devices as f64 / quotas[op])
        .fold(0.0, f64::max);
    let registry_calls: usize = served
        .iter()
        .filter(|(op, _)| {
            IOT_REGISTRY_WRITES.contains(&op.as_str()) || IOT_REGISTRY_READS.contains(&op.as_str())
        })
        .map(|(_, n)| n)
        .sum();
    // Nothing is deleted in an acceptance of new devices unless a
    // provisioning was undone.
    let undone = |op: &str| served.get(op).copied().unwrap_or(0);
    let bound_made = served
        .iter()
        .filter_map(|(op, n)| quotas.get(op.as_str()).map(|q| *n as f64 / q))
        .fold(0.0, f64::max);

    let audit = audit(&stack, &ids).await;
    eprintln!(
        "bulk: {devices} devices in {:.1} s (bound {bound:.1} s), {dead} events failed, {throttled} throttled, audit {audit}",
        total.as_secs_f64()
    );
    json!({
        "devices": devices,
        "quota_divisor": divisor,
        "quotas_tps": quotas,
        "reserved_concurrency": reserved_concurrency,
        "seconds": round(total.as_secs_f64(), 2),
        "webhooks_delivered_seconds": round(webhooks_accepted.as_secs_f64(), 2),
        "lower_bound_seconds": round(bound, 2),
        "lower_bound_for_calls_made_seconds": round(bound_made, 2),
        "bound_ratio": round(bound / total.as_secs_f64(), 3),
        "failed_events": dead,
        "refused_webhooks": refused_webhooks,
        "throttled_calls": throttled,
        "bus_retries": bus_retries,
        "handed_over": handed_over,
        "calls_served": served,
        "registry_calls_per_device": round(registry_calls as f64 / devices as f64, 2),
        "things_deleted": undone("DeleteThing"),
        "certificates_deleted": undone("DeleteCertificate"),
        "audit": audit,
    })
}

/// What AWS and Mender hold after the run: every device with its Thing and
/// exactly one ACTIVE certificate, delivered; nothing else.
async fn audit(stack: &Stack, ids: &[String]) -> Value {
    let iot = stack.iot();
    let mut certificates = Vec::new();
    let mut marker = None;
    loop {
        let page = iot
            .list_certificates()
            .page_size(250)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        certificates.extend(page.certificates().iter().map(|c| {
            (
                c.certificate_arn().unwrap_or_default().to_owned(),
                c.status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            )
        }));
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    let mut attached = std::collections::HashSet::new();
    let (mut complete, mut incomplete) = (0, 0);
    for id in ids {
        let principals = stack.thing_principals(id).await;
        let active = principals
            .iter()
            .filter(|arn| {
                certificates
                    .iter()
                    .any(|(a, status)| a == *arn && status == "ACTIVE")
            })
            .count();
        let delivered = stack
            .mender
            .configuration(id)
            .is_some_and(|c| c.contains_key(CERTIFICATE_KEY));
        if principals.len() == 1 && active == 1 && delivered {
            complete += 1;
        } else {
            incomplete += 1;
        }
        attached.extend(principals);
    }
    let orphaned = certificates
        .iter()
        .filter(|(arn, _)| !attached.contains(arn))
        .count();
    json!({
        "devices_complete": complete,
        "devices_incomplete": incomplete,
        "certificates": certificates.len(),
        "orphaned_certificates": orphaned,
    })
}

/// The ingress's bus, counting and nothing more: the handler's own work.
#[derive(Default)]
struct CountingBus(AtomicUsize);

impl EventBus for CountingBus {
    async fn publish(&self, _: DetailType, _: &Value) -> Result<(), PublishError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn webhook_bodies(stack: &Stack, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let body = json!({
                "id": uuid::Uuid::new_v4().to_string(),
                "type": "device-status-changed",
                "data": { "id": uuid::Uuid::new_v4().to_string(), "status": "accepted" },
                "time": "2026-01-01T00:00:00.123456789Z",
            })
            .to_string();
            let signature = bridge::webhook::sign(&stack.webhook_secret, body.as_bytes());
            (body, signature)
        })
        .collect()
}

fn summary(latencies: &[Duration], elapsed: Duration) -> Value {
    json!({
        "events": latencies.len(),
        "events_per_second": round(latencies.len() as f64 / elapsed.as_secs_f64(), 0),
        "p50_ms": ms(percentile(latencies, 50.0)),
        "p99_ms": ms(percentile(latencies, 99.0)),
    })
}

pub async fn ingress(in_process: usize, http: usize) -> Value {
    let stack = Stack::start().await;
    // In-process: the handler with settings cached, publishing to a counter.
    let config = test_config(&stack.mender_proxy.url(), &stack.url, test_budget());
    let ingress = Wiring::new(config, stack.aws.clone()).ingress(CountingBus::default());
    let request = |(body, signature): &(String, String)| {
        let mut params = HashMap::new();
        params.insert("integration_id".to_owned(), stack.integration_id.clone());
        http::Request::builder()
            .method("POST")
            .uri(format!("/webhooks/{}", stack.integration_id))
            .header("content-type", "application/json")
            .header("x-men-signature", signature.as_str())
            .body(lambda_http::Body::Text(body.clone()))
            .unwrap()
            .with_path_parameters(params)
    };
    let bodies = webhook_bodies(&stack, in_process);
    // Warm the settings cache.
    bridge::ingress::handle(&ingress, request(&bodies[0])).await;
    let requests: Vec<_> = bodies.iter().map(request).collect();
    let mut latencies = Vec::with_capacity(in_process);
    let started = Instant::now();
    for request in requests {
        let t = Instant::now();
        let response = bridge::ingress::handle(&ingress, request).await;
        latencies.push(t.elapsed());
        assert_eq!(response.status(), 202);
    }
    let in_process_summary = summary(&latencies, started.elapsed());
    eprintln!("ingress in-process: {in_process_summary}");

    // Through the local runner over loopback HTTP, one client, keep-alive.
    // Published events queue on the bus and are not run (no permits), so
    // the lifecycle's work does not compete.
    stack.bus.set_concurrency(Some(0));
    let client = reqwest::Client::new();
    let url = format!("{}/webhooks/{}", stack.url, stack.integration_id);
    let bodies = webhook_bodies(&stack, http);
    let mut latencies = Vec::with_capacity(http);
    let started = Instant::now();
    for (body, signature) in bodies {
        let t = Instant::now();
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-men-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        response.bytes().await.unwrap();
        latencies.push(t.elapsed());
        assert_eq!(status, 202);
    }
    let http_summary = summary(&latencies, started.elapsed());
    eprintln!("ingress via runner: {http_summary}");
    json!({ "in_process": in_process_summary, "local_runner_http": http_summary })
}

pub async fn shadow(runs: usize) -> Value {
    let stack = Stack::start().await;
    let device = provisioned_device(&stack).await;
    let client = reqwest::Client::new();
    let url = format!("{}{}", stack.url, stack.state_path(&device));
    let mut rows = Vec::new();
    let mut medians: HashMap<(&str, u64), f64> = HashMap::new();
    for latency in LATENCIES_MS {
        set_latency(&stack, Duration::from_millis(latency));
        let mut row = serde_json::Map::new();
        row.insert("latency_ms".into(), json!(latency));
        for method in ["GET", "PUT", "PATCH"] {
            let mut times = Vec::new();
            for i in 0..runs + 1 {
                let mut request = client
                    .request(method.parse().unwrap(), &url)
                    .bearer_auth(&stack.admin_token);
                request = match method {
                    "PUT" => request.json(&json!({ "desired": { "led": "on", "n": i } })),
                    "PATCH" => request.json(&json!({ "desired": { "n": i } })),
                    _ => request,
                };
                let t = Instant::now();
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                let elapsed = t.elapsed();
                assert_eq!(status, 200, "{method}: {text}");
                // The first call of each point warms the per-token auth cache.
                if i > 0 {
                    times.push(elapsed);
                }
            }
            let m = ms(median(&times));
            medians.insert((method, latency), m);
            eprintln!("shadow {method} L={latency} ms: median {m} ms");
            row.insert(method.to_owned(), json!({ "median_ms": m, "runs": runs }));
        }
        rows.push(Value::Object(row));
    }
    set_latency(&stack, Duration::ZERO);
    let round_trips: BTreeMap<&str, f64> = ["GET", "PUT", "PATCH"]
        .into_iter()
        .map(|m| {
            let points = LATENCIES_MS.map(|l| (l as f64, medians[&(m, l)]));
            (m, round(slope(points), 1))
        })
        .collect();
    json!({ "by_latency": rows, "round_trips": round_trips })
}

/// Quiet logs: the stack would otherwise keep every debug line in memory.
pub fn quiet_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("error"))
        .with_writer(std::io::stderr)
        .try_init();
}
