//! Concurrency property: whatever order Mender's webhooks arrive in —
//! duplicated, reordered, replayed long after, in bursts, for many devices at
//! once, while Mender's state keeps changing — once every event has been
//! delivered at least once and the bus is idle, AWS holds exactly what
//! Mender says for every device, and no certificate more.
//!
//! Events go through the real ingress route (signed, size, parse, publish)
//! and the in-process bus (the lifecycle handler under per-device leases,
//! retried like EventBridge). Mender's state is changed with the stand-in's
//! library API; its own deliveries are diverted so that the test decides
//! when and how often each event arrives.
//!
//! Reproducible: the seed is fixed (`PROPTEST_RNG_SEED` overrides it) and
//! printed. `PROPTEST_CASES` sets the number of cases (CI: 8);
//! `make proptest-long` runs 256.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::join_all;
use integration_tests::resilience::{audit, divert_webhooks, record_figures};
use integration_tests::stack::{Stack, TENANT};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

const DEFAULT_SEED: u64 = 0x6d65_6e64_6572_0008;
const DEFAULT_CASES: u32 = 8;

#[derive(Clone, Copy, Debug)]
enum Action {
    Accept,
    Reject,
    Pending,
    Dismiss,
    Decommission,
}

#[derive(Clone, Debug)]
enum Step {
    /// Mender changes a device; its webhooks join the pool, undelivered.
    Change { device: usize, action: Action },
    /// Some events of the pool (any age, repeats allowed) arrive: all at
    /// once, or one after the other.
    Deliver {
        picks: Vec<prop::sample::Index>,
        burst: bool,
    },
    /// A signed status event that does not match Mender (a stale replay).
    Stale { device: usize, status: &'static str },
}

#[derive(Clone, Debug)]
struct Plan {
    devices: usize,
    steps: Vec<Step>,
    /// The order in which never-delivered events arrive at the end.
    final_order: Vec<prop::sample::Index>,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => Just(Action::Accept),
        2 => Just(Action::Reject),
        1 => Just(Action::Pending),
        1 => Just(Action::Dismiss),
        1 => Just(Action::Decommission),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    (3usize..8).prop_flat_map(|devices| {
        let step = prop_oneof![
            4 => (0..devices, action()).prop_map(|(device, action)| Step::Change { device, action }),
            3 => (prop::collection::vec(any::<prop::sample::Index>(), 1..8), any::<bool>())
                .prop_map(|(picks, burst)| Step::Deliver { picks, burst }),
            1 => (0..devices, prop::sample::select(vec!["accepted", "rejected", "decommissioned", "pending", "preauthorized"]))
                .prop_map(|(device, status)| Step::Stale { device, status }),
        ];
        (
            Just(devices),
            prop::collection::vec(step, 8..40),
            prop::collection::vec(any::<prop::sample::Index>(), 0..64),
        )
            .prop_map(|(devices, steps, final_order)| Plan {
                devices,
                steps,
                final_order,
            })
    })
}

static EVENTS: AtomicUsize = AtomicUsize::new(0);
static CHANGES: AtomicUsize = AtomicUsize::new(0);
static DEVICES: AtomicUsize = AtomicUsize::new(0);

async fn deliver(stack: &Stack, events: &[Value], burst: bool) -> Result<(), String> {
    let statuses: Vec<u16> = if burst {
        join_all(events.iter().map(|e| stack.post_webhook(e)))
            .await
            .into_iter()
            .map(|r| r.status().as_u16())
            .collect()
    } else {
        let mut statuses = Vec::new();
        for event in events {
            statuses.push(stack.post_webhook(event).await.status().as_u16());
        }
        statuses
    };
    EVENTS.fetch_add(events.len(), Ordering::Relaxed);
    if statuses.iter().all(|s| *s == 202) {
        Ok(())
    } else {
        Err(format!("ingress answered {statuses:?}"))
    }
}

async fn run(plan: Plan) -> Result<(), String> {
    let stack = Stack::start().await;
    divert_webhooks(&stack);
    let devices: Vec<String> = (0..plan.devices)
        .map(|_| stack.mender.add_device(TENANT, "pending", None))
        .collect();
    DEVICES.fetch_add(devices.len(), Ordering::Relaxed);
    let mut pool: Vec<Value> = Vec::new();
    let mut delivered = vec![false; 0];
    for step in &plan.steps {
        match step {
            Step::Change { device, action } => {
                let id = &devices[*device];
                let deliveries = match action {
                    Action::Accept => stack.mender.accept(id).await,
                    Action::Reject => stack.mender.reject(id).await,
                    Action::Pending => stack.mender.set_pending(id).await,
                    Action::Dismiss => stack.mender.dismiss(id).await,
                    Action::Decommission => stack.mender.decommission(id).await,
                };
                CHANGES.fetch_add(1, Ordering::Relaxed);
                for delivery in deliveries {
                    pool.push(delivery.json());
                    delivered.push(false);
                }
            }
            Step::Deliver { picks, burst } if !pool.is_empty() => {
                let chosen: Vec<usize> = picks.iter().map(|p| p.index(pool.len())).collect();
                let events: Vec<Value> = chosen.iter().map(|i| pool[*i].clone()).collect();
                deliver(&stack, &events, *burst).await?;
                for i in chosen {
                    delivered[i] = true;
                }
            }
            Step::Deliver { .. } => {}
            Step::Stale { device, status } => {
                let event = json!({"id": uuid::Uuid::new_v4().to_string(), "type": "device-status-changed",
                    "data": {"id": devices[*device], "status": status}, "time": "2026-01-01T00:00:00Z"});
                deliver(&stack, &[event], false).await?;
            }
        }
    }
    // Every event arrives at least once: the rest now, in the plan's order.
    let mut rest: Vec<usize> = (0..pool.len()).filter(|i| !delivered[*i]).collect();
    for (at, pick) in plan.final_order.iter().enumerate() {
        if rest.is_empty() {
            break;
        }
        let len = rest.len();
        rest.swap(at % len, pick.index(len));
    }
    let events: Vec<Value> = rest.iter().map(|i| pool[*i].clone()).collect();
    deliver(&stack, &events, true).await?;
    stack.bus.wait_idle().await;

    let dead = stack.bus.dead_letters();
    if !dead.is_empty() {
        return Err(format!("events failed every attempt: {dead:?}"));
    }
    let snapshot = audit(&stack, &devices).await.map_err(|p| p.join("; "))?;
    // No certificate more than the Things hold (the audit found no orphan).
    let held: usize = snapshot.things.values().map(Vec::len).sum();
    let total = stack.certificates().await.len();
    if held != total {
        return Err(format!("{total} certificates, Things hold {held}"));
    }
    Ok(())
}

fn seed() -> u64 {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

#[test]
fn aws_ends_as_mender_says_whatever_the_webhook_order() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed = seed();
    let config = Config {
        cases,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    println!("concurrency property: seed {seed} (PROPTEST_RNG_SEED), {cases} cases");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let result = runner.run(&plan(), |plan| {
        runtime.block_on(run(plan)).map_err(TestCaseError::fail)
    });
    let (events, changes, devices) = (
        EVENTS.load(Ordering::Relaxed),
        CHANGES.load(Ordering::Relaxed),
        DEVICES.load(Ordering::Relaxed),
    );
    println!(
        "concurrency property: {cases} cases, {devices} devices, {changes} Mender changes, {events} webhooks delivered, in {:.0?}",
        started.elapsed()
    );
    record_figures(
        "concurrency",
        &json!({"seed": seed, "cases": cases, "devices": devices, "mender_changes": changes,
            "webhooks_delivered": events, "seconds": started.elapsed().as_secs(), "passed": result.is_ok()}),
    );
    if let Err(error) = result {
        panic!("seed {seed}: {error}");
    }
}
