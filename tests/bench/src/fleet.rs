//! A fleet at scale (issue 17): accepted devices seeded straight into moto
//! (each a Thing marked as the integration's, its ACTIVE certificate
//! attached with the device policy) and the Mender stand-in (the device,
//! its configuration carrying that certificate and key), with the device
//! records a previous run would have left. Then sync runs, in-process,
//! under AWS IoT Core's default rate quotas: one that finds nothing to
//! change, one with planted drift, and the deep check at its pace.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bridge::clock::epoch_seconds;
use bridge::config::{CallBudget, DeepCheck};
use bridge::converge::plan::{CERTIFICATE_KEY, ENDPOINT_KEY, PRIVATE_KEY_KEY, THING_NAME_KEY};
use bridge::converge::record::{DeviceRecord, RecordedCertificate};
use bridge::device::Wanted;
use bridge::reconcile::{ReconcileRun, RunState};
use integration_tests::fault_proxy::{FaultRule, IOT_REGISTRY_READS, IOT_REGISTRY_WRITES};
use integration_tests::resilience::divert_webhooks;
use integration_tests::stack::{POLICY, REGION, Stack, TENANT};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::heap;
use crate::scenarios::IOT_QUOTAS;

/// A stack as deployed: the background budget, Mender's largest pages,
/// AWS IoT Core's default quotas enforced, and `deep_check`.
async fn stack(deep_check: DeepCheck) -> Stack {
    let stack = Stack::start_configured(|config| {
        config.interactive = CallBudget::BACKGROUND;
        config.background = CallBudget::BACKGROUND;
        config.deep_check = deep_check;
        config.run_page_size = 500;
    })
    .await;
    for (op, tps) in IOT_QUOTAS {
        stack
            .aws_proxy
            .inject(FaultRule::rate_limit(op, *tps, tps.max(1.0)));
    }
    // What the harness would keep of every call is not the run's memory.
    stack.aws_proxy.keep_bodies(false);
    stack.mender_proxy.keep_bodies(false);
    stack.mender.keep_exchanges(false);
    stack
}

/// Things marked as the integration's, each with its certificate (`name`,
/// `certificate_pem`) ACTIVE, attached, the policy on it: put into moto's
/// backend by the emulator.
async fn seed_things(stack: &Stack, devices: &[Value]) {
    let attributes = stack.owner().marker(false).attributes().cloned();
    let answer = reqwest::Client::new()
        .post(format!("{}/_emulator/seed-fleet", stack.moto.url))
        .json(&json!({
            "account": "123456789012",
            "region": REGION,
            "policy": POLICY,
            "attributes": attributes.unwrap_or_default(),
            "devices": devices,
        }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "seeding: {}", answer.status());
}

/// Seeds `n` provisioned devices; records say they were looked at
/// `checked_ago` before now. Their ids, in Mender's order.
async fn seed(stack: &Stack, n: usize, checked_ago: Duration) -> Vec<String> {
    let started = Instant::now();
    let mut certificate_ids = BTreeMap::new();
    let mut ids = Vec::with_capacity(n);
    for chunk_start in (0..n).step_by(2000) {
        let mut devices = Vec::new();
        for _ in chunk_start..(chunk_start + 2000).min(n) {
            let id = stack.mender.add_device(TENANT, "accepted", None);
            let issued = rcgen::generate_simple_self_signed(vec![id.clone()]).unwrap();
            let pem = issued.cert.pem();
            certificate_ids.insert(id.clone(), hex::encode(Sha256::digest(issued.cert.der())));
            let configuration = BTreeMap::from([
                (CERTIFICATE_KEY.to_owned(), pem.clone()),
                (
                    PRIVATE_KEY_KEY.to_owned(),
                    issued.signing_key.serialize_pem(),
                ),
                (ENDPOINT_KEY.to_owned(), "emulator.iot".to_owned()),
                (THING_NAME_KEY.to_owned(), id.clone()),
            ]);
            stack.mender.set_configuration(&id, configuration);
            devices.push(json!({ "name": id, "certificate_pem": pem }));
            ids.push(id);
        }
        seed_things(stack, &devices).await;
    }
    // The records a previous run would have left: Mender's devices as
    // its listing shows them (their `updated_ts`), each in sync.
    let tenant = stack
        .lifecycle()
        .tenants
        .get(&stack.integration_id)
        .await
        .unwrap();
    let checked_at = epoch_seconds() - checked_ago.as_secs();
    let mut records = Vec::with_capacity(n);
    for page in 1.. {
        let devices = tenant.mender.list_devices(page, 500).await.unwrap();
        records.extend(devices.iter().map(|device| DeviceRecord {
            device_id: device.id.clone(),
            wanted: Wanted::Active,
            mender_updated_ts: device.updated_ts.clone(),
            certificates: vec![RecordedCertificate {
                id: certificate_ids[&device.id].clone(),
                active: true,
            }],
            policy: Some(POLICY.to_owned()),
            left_alone: false,
            checked_at,
        }));
        if devices.len() < 500 {
            break;
        }
    }
    tenant
        .records
        .put_many(&stack.integration_id, &records)
        .await
        .unwrap();
    eprintln!(
        "fleet: {n} devices seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ids
}

/// What a run cost: its time, its heap at its peak (above the bench's
/// before it), and its calls by operation (served, not throttled).
async fn measured(stack: &Stack) -> (ReconcileRun, Value) {
    stack.aws_proxy.reset_calls();
    stack.mender_proxy.reset_calls();
    let baseline = heap::begin();
    let started = Instant::now();
    let done = stack.sync_run().await;
    let seconds = started.elapsed().as_secs_f64();
    let peak = heap::peak_above(baseline);
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for call in stack.aws_proxy.calls().iter().filter(|c| c.fault.is_none()) {
        *served.entry(call.operation.clone()).or_default() += 1;
    }
    let registry: usize = IOT_REGISTRY_READS
        .iter()
        .chain(IOT_REGISTRY_WRITES)
        .map(|op| served.get(*op).copied().unwrap_or(0))
        .sum();
    let mender = stack.mender_proxy.calls().len();
    let throttled = stack
        .aws_proxy
        .calls()
        .iter()
        .filter(|c| c.fault.is_some())
        .count();
    let figures = json!({
        "seconds": (seconds * 10.0).round() / 10.0,
        "heap_peak_mb": (peak as f64 / 1e5).round() / 10.0,
        "registry_calls": registry,
        "mender_calls": mender,
        "throttled_calls": throttled,
        "calls_served": served,
        "counts": done.counts,
        "state": done.state,
    });
    (done, figures)
}

/// A no-change run over `n` seeded devices, then one with 1 % planted
/// drift of the kinds the listings show.
pub async fn fleet(n: usize) -> Value {
    let stack = stack(DeepCheck::at(2)).await;
    let ids = seed(&stack, n, Duration::ZERO).await;

    let (unchanged, no_change) = measured(&stack).await;
    eprintln!("fleet: {n} devices, nothing to change: {no_change}");
    let per_100 = |calls: &Value| calls.as_u64().unwrap_or(0) as f64 * 100.0 / n as f64;
    let no_change_ok = unchanged.state == RunState::Done
        && unchanged.counts.in_sync == n as u64
        && unchanged.counts.failed == 0;

    // 1 %: a quarter each of Things deleted, certificates made INACTIVE,
    // devices rejected in Mender, and Things whose device Mender does not
    // know.
    let quarter = (n / 400).max(1);
    let iot = stack.iot();
    let mut planted = 0;
    for device in &ids[..quarter] {
        for arn in stack.thing_principals(device).await {
            let _ = iot
                .detach_policy()
                .policy_name(POLICY)
                .target(&arn)
                .send()
                .await;
            let _ = iot
                .detach_thing_principal()
                .thing_name(device)
                .principal(&arn)
                .send()
                .await;
        }
        iot.delete_thing().thing_name(device).send().await.unwrap();
        planted += 1;
    }
    for device in &ids[quarter..2 * quarter] {
        stack.make_inactive(device).await;
        planted += 1;
    }
    // Rejected while the bridge heard nothing (its webhooks go nowhere).
    divert_webhooks(&stack);
    for device in &ids[2 * quarter..3 * quarter] {
        stack.mender.reject(device).await;
        planted += 1;
    }
    let orphans: Vec<String> = (0..quarter)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let devices: Vec<Value> = orphans
        .iter()
        .map(|name| {
            let issued = rcgen::generate_simple_self_signed(vec![name.clone()]).unwrap();
            json!({ "name": name, "certificate_pem": issued.cert.pem() })
        })
        .collect();
    seed_things(&stack, &devices).await;
    planted += quarter;

    let (drifted, drift) = measured(&stack).await;
    eprintln!("fleet: {n} devices, {planted} drifted: {drift}");
    let counts = &drifted.counts;
    let converged = drifted.state == RunState::Done
        && counts.failed == 0
        && counts.provisioned + counts.repaired == 2 * quarter as u64
        && counts.disabled == quarter as u64
        && counts.removed == quarter as u64;
    json!({
        "devices": n,
        "no_change": no_change,
        "no_change_ok": no_change_ok,
        "registry_calls_per_100": (per_100(&no_change["registry_calls"]) * 100.0).round() / 100.0,
        "mender_calls_per_100": (per_100(&no_change["mender_calls"]) * 100.0).round() / 100.0,
        "drift": drift,
        "drift_planted": planted,
        "drift_converged_in_the_run": converged,
    })
}

/// The deep check at its pace over `n` seeded devices all due, `looks` of
/// them: the rate of the per-device reads while it runs, as a share of
/// their quotas.
pub async fn deep_check(n: usize, looks: u64) -> Value {
    let pace = DeepCheck::at(2);
    let stack = stack(DeepCheck {
        most_per_run: looks,
        ..pace
    })
    .await;
    seed(&stack, n, pace.age + Duration::from_secs(60)).await;
    stack.aws_proxy.reset_calls();
    let (done, figures) = measured(&stack).await;
    // From the first look's read to the last's, as the proxy received them.
    let looked_at: Vec<Instant> = stack
        .aws_proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "ListThingPrincipals" && c.fault.is_none())
        .map(|c| c.at)
        .collect();
    let seconds = match (looked_at.iter().min(), looked_at.iter().max()) {
        (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
        _ => 0.0,
    };
    let quotas: BTreeMap<&str, f64> = IOT_QUOTAS.iter().copied().collect();
    let share = |op: &str| {
        let calls = figures["calls_served"][op].as_u64().unwrap_or(0) as f64;
        let rate = if seconds > 0.0 {
            (calls - 1.0).max(0.0) / seconds
        } else {
            0.0
        };
        json!({
            "calls": calls,
            "per_second": (rate * 100.0).round() / 100.0,
            "quota": quotas[op],
            "share": (rate / quotas[op] * 1000.0).round() / 1000.0,
        })
    };
    eprintln!("fleet: deep check of {looks} of {n} devices over {seconds:.1} s: {figures}");
    json!({
        "devices": n,
        "looks": done.counts.deep_checked,
        "per_second_setting": pace.per_second,
        "seconds_looking": (seconds * 10.0).round() / 10.0,
        "changed": done.counts.provisioned + done.counts.repaired + done.counts.disabled + done.counts.removed,
        "reads": {
            "ListThingPrincipals": share("ListThingPrincipals"),
            "DescribeCertificate": share("DescribeCertificate"),
            "ListAttachedPolicies": share("ListAttachedPolicies"),
        },
        "run": figures,
    })
}
