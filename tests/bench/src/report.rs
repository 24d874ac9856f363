//! The machine, the package sizes, and `docs/performance.md` rendered from
//! the measured JSON.

use std::fmt::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::functions::FUNCTIONS;
use crate::scenarios::LATENCIES_MS;

pub fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory_gib": (memory_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "load_average_at_start": loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

/// Each function's bootstrap and zip, as `make package` left them.
pub fn sizes(lambda_dir: &Path) -> Value {
    let mut rows = Vec::new();
    for arch in ["arm64", "x86_64"] {
        for function in FUNCTIONS {
            let dir = lambda_dir.join(arch).join(function);
            let size = |name: &str| std::fs::metadata(dir.join(name)).ok().map(|m| m.len());
            if let Some(binary) = size("bootstrap") {
                rows.push(json!({
                    "function": function,
                    "arch": arch,
                    "binary_bytes": binary,
                    "zip_bytes": size("bootstrap.zip"),
                }));
            }
        }
    }
    Value::Array(rows)
}

const MB: f64 = 1_000_000.0;
const SIZE_TARGET_MB: f64 = 6.0;
/// Issue 17: every function's init at most 5 ms (it was 10 ms before).
const INIT_TARGET_MS: f64 = 5.0;
const MEMORY_TARGET_MB: f64 = 32.0;
const PROVISIONING_TARGET: f64 = 0.6;
/// Issue 17: 1,000 devices within 75 s (the quotas' floor is 66.7 s), at
/// most 6 registry calls a device.
const BULK_SECONDS: f64 = 75.0;
const BULK_CALLS_PER_DEVICE: f64 = 6.0;

struct Figure {
    name: String,
    value: String,
    target: &'static str,
    met: Option<bool>,
    command: &'static str,
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn figures(r: &Value) -> Vec<Figure> {
    let mut out = Vec::new();
    if let Some(cold) = r["cold_start"].as_object() {
        for function in FUNCTIONS {
            let Some(c) = cold.get(*function) else {
                continue;
            };
            let init = f(&c["init_ms_median"]);
            out.push(Figure {
                name: format!("cold start, init: `{function}` (median of {})", c["starts"]),
                value: format!("{init:.2} ms"),
                target: "≤ 5 ms",
                met: Some(init <= INIT_TARGET_MS),
                command: "cargo run -p bench -- --only cold",
            });
            out.push(Figure {
                name: format!("cold start, first invocation: `{function}` (median)"),
                value: format!(
                    "{:.1} ms{}",
                    f(&c["first_invocation_ms_median"]),
                    match c["failed_first_invocations"].as_u64() {
                        Some(0) | None => String::new(),
                        Some(n) => format!(" ({n} failed)"),
                    }
                ),
                target: "—",
                met: None,
                command: "cargo run -p bench -- --only cold",
            });
        }
    }
    if let Some(invocations) = r["sam_local"].as_array() {
        for invocation in invocations {
            out.push(Figure {
                name: format!(
                    "`sam local start-lambda`, first invocation: `{}` (of which the function {:.0} ms)",
                    invocation["function"].as_str().unwrap_or_default(),
                    f(&invocation["duration_ms"])
                ),
                value: format!("{:.1} s", f(&invocation["wall_ms"]) / 1000.0),
                target: "—",
                met: None,
                command: "make sam-local",
            });
        }
    }
    if let Some(sizes) = r["size"].as_array() {
        for s in sizes {
            let binary = f(&s["binary_bytes"]) / MB;
            out.push(Figure {
                name: format!(
                    "size: `{}` {} (stripped binary / zip)",
                    s["function"].as_str().unwrap_or_default(),
                    s["arch"].as_str().unwrap_or_default()
                ),
                value: format!("{binary:.2} MB / {:.2} MB", f(&s["zip_bytes"]) / MB),
                target: "binary ≤ 6 MB",
                met: Some(binary <= SIZE_TARGET_MB),
                command: "make package",
            });
        }
    }
    if let Some(memory) = r["memory"].as_object() {
        for function in FUNCTIONS {
            let Some(m) = memory.get(*function) else {
                continue;
            };
            let peak = f(&m["peak_rss_mib"]) * 1.048576;
            out.push(Figure {
                name: format!(
                    "peak RSS over {} invocations: `{function}`{}",
                    m["invocations"],
                    match m["failed_invocations"].as_u64() {
                        Some(0) | None => String::new(),
                        Some(n) => format!(" ({n} failed)"),
                    }
                ),
                value: format!("{peak:.1} MB"),
                target: "≤ 32 MB",
                met: Some(peak <= MEMORY_TARGET_MB),
                command: "cargo run -p bench -- --only memory",
            });
        }
    }
    let p = &r["provisioning"];
    if let Some(rows) = p["by_latency"].as_array() {
        for row in rows {
            let ratio = f(&row["ratio"]);
            let latency = row["latency_ms"].as_u64().unwrap_or(0);
            out.push(Figure {
                name: format!("provisioning, L = {latency} ms: concurrent / sequential (medians)"),
                value: format!(
                    "{:.1} ms / {:.1} ms = {ratio:.2}",
                    f(&row["concurrent"]["median_ms"]),
                    f(&row["sequential"]["median_ms"])
                ),
                target: if latency == 50 { "≤ 0.6" } else { "—" },
                met: (latency == 50).then_some(ratio <= PROVISIONING_TARGET),
                command: "cargo run -p bench -- --only provisioning",
            });
        }
        out.push(Figure {
            name: "provisioning: sequential round trips on the critical path (concurrent / sequential)".into(),
            value: format!(
                "{} / {}",
                p["round_trips_concurrent"], p["round_trips_sequential"]
            ),
            target: "—",
            met: None,
            command: "cargo run -p bench -- --only provisioning",
        });
    }
    let b = &r["bulk"];
    if b.is_object() {
        out.push(Figure {
            name: format!(
                "bulk acceptance of {} devices: total time (quota bound)",
                b["devices"]
            ),
            value: format!(
                "{:.1} s ({:.1} s, ratio {:.2})",
                f(&b["seconds"]),
                f(&b["lower_bound_seconds"]),
                f(&b["bound_ratio"])
            ),
            target: "≤ 75 s",
            met: Some(f(&b["seconds"]) <= BULK_SECONDS),
            command: "cargo run -p bench -- --only bulk",
        });
        let per_device = f(&b["registry_calls_per_device"]);
        out.push(Figure {
            name: "bulk acceptance: AWS IoT registry calls per new device".into(),
            value: format!("{per_device:.2}"),
            target: "≤ 6",
            met: Some(per_device <= BULK_CALLS_PER_DEVICE),
            command: "cargo run -p bench -- --only bulk",
        });
        let undone = b["things_deleted"].as_u64().unwrap_or(0)
            + b["certificates_deleted"].as_u64().unwrap_or(0);
        out.push(Figure {
            name: "bulk acceptance: Things / certificates created and deleted again".into(),
            value: format!("{} / {}", b["things_deleted"], b["certificates_deleted"]),
            target: "0",
            met: Some(undone == 0),
            command: "cargo run -p bench -- --only bulk",
        });
        let failed = b["failed_events"].as_u64().unwrap_or(0)
            + b["audit"]["devices_incomplete"].as_u64().unwrap_or(0);
        out.push(Figure {
            name: "bulk acceptance: events that failed every delivery / devices left incomplete"
                .into(),
            value: format!(
                "{} / {}",
                b["failed_events"], b["audit"]["devices_incomplete"]
            ),
            target: "0",
            met: Some(failed == 0),
            command: "cargo run -p bench -- --only bulk",
        });
        let orphans = b["audit"]["orphaned_certificates"].as_u64().unwrap_or(0);
        out.push(Figure {
            name: "bulk acceptance: orphaned certificates".into(),
            value: orphans.to_string(),
            target: "0",
            met: Some(orphans == 0),
            command: "cargo run -p bench -- --only bulk",
        });
        out.push(Figure {
            name: "bulk acceptance: throttled AWS calls (retried by the SDK) / bus re-deliveries / events handed to the lease holder"
                .into(),
            value: format!(
                "{} / {} / {}",
                b["throttled_calls"], b["bus_retries"], b["handed_over"]
            ),
            target: "—",
            met: None,
            command: "cargo run -p bench -- --only bulk",
        });
    }
    out.extend(fleet_figures(&r["fleet"]));
    for (key, label) in [
        ("in_process", "in-process"),
        (
            "local_runner_http",
            "through the local runner (HTTP, loopback)",
        ),
    ] {
        let i = &r["ingress"][key];
        if i.is_object() {
            out.push(Figure {
                name: format!("ingress {label}: events/s, p50 / p99"),
                value: format!(
                    "{:.0} /s, {:.3} ms / {:.3} ms",
                    f(&i["events_per_second"]),
                    f(&i["p50_ms"]),
                    f(&i["p99_ms"])
                ),
                target: "—",
                met: None,
                command: "cargo run -p bench -- --only ingress",
            });
        }
    }
    if let Some(rows) = r["shadow"]["by_latency"].as_array() {
        for row in rows {
            out.push(Figure {
                name: format!(
                    "shadow, L = {} ms: GET / PUT / PATCH (medians)",
                    row["latency_ms"]
                ),
                value: format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    f(&row["GET"]["median_ms"]),
                    f(&row["PUT"]["median_ms"]),
                    f(&row["PATCH"]["median_ms"])
                ),
                target: "—",
                met: None,
                command: "cargo run -p bench -- --only shadow",
            });
        }
        let trips = &r["shadow"]["round_trips"];
        out.push(Figure {
            name: "shadow: sequential round trips per request, GET / PUT / PATCH".into(),
            value: format!("{} / {} / {}", trips["GET"], trips["PUT"], trips["PATCH"]),
            target: "—",
            met: None,
            command: "cargo run -p bench -- --only shadow",
        });
    }
    out
}

/// The fleet section: per fleet size, the run that finds nothing to change
/// and the one with planted drift; then the deep check's share.
fn fleet_figures(fleet: &Value) -> Vec<Figure> {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let command = "cargo run -p bench -- --only fleet";
    let mut out = Vec::new();
    let Some(sizes) = fleet.as_object() else {
        return out;
    };
    let mut runs: Vec<&Value> = sizes.values().filter(|v| v["devices"].is_u64()).collect();
    runs.retain(|v| v["no_change"].is_object());
    runs.sort_by_key(|v| v["devices"].as_u64());
    let heap = |run: &Value| f(&run["no_change"]["heap_peak_mb"]);
    if let [smallest, .., largest] = runs[..] {
        // Issue 17: a run's memory does not grow with the organization.
        let growth = heap(largest) - heap(smallest);
        out.push(Figure {
            name: format!(
                "reconcile run, nothing to change: peak heap at {} devices against {}",
                largest["devices"], smallest["devices"]
            ),
            value: format!(
                "{:.1} MB against {:.1} MB ({growth:+.1} MB)",
                heap(largest),
                heap(smallest)
            ),
            target: "flat: ≤ +1 MB",
            met: Some(growth <= 1.0),
            command,
        });
    }
    for run in runs {
        let n = run["devices"].as_u64().unwrap_or(0);
        let none = &run["no_change"];
        out.push(Figure {
            name: format!("reconcile run, {n} devices, nothing to change: wall time"),
            value: format!("{:.1} s", f(&none["seconds"])),
            target: "≤ 300 s",
            met: Some(f(&none["seconds"]) <= 300.0 && run["no_change_ok"] == true),
            command,
        });
        out.push(Figure {
            name: format!(
                "reconcile run, {n} devices, nothing to change: AWS IoT registry / Mender calls per 100 devices"
            ),
            value: format!(
                "{:.2} / {:.2}",
                f(&run["registry_calls_per_100"]),
                f(&run["mender_calls_per_100"])
            ),
            target: "≤ 2 / ≤ 1",
            met: Some(
                f(&run["registry_calls_per_100"]) <= 2.0 && f(&run["mender_calls_per_100"]) <= 1.0,
            ),
            command,
        });
        out.push(Figure {
            name: format!(
                "reconcile run, {n} devices, nothing to change: peak heap of the run (in the bench process)"
            ),
            value: format!("{:.1} MB", f(&none["heap_peak_mb"])),
            target: "≤ 64 MB",
            met: Some(f(&none["heap_peak_mb"]) <= 64.0),
            command,
        });
        let drift = &run["drift"];
        out.push(Figure {
            name: format!(
                "reconcile run, {n} devices, {} drifted (1 %): converged in the run / wall time",
                run["drift_planted"]
            ),
            value: format!(
                "{} / {:.1} s",
                if run["drift_converged_in_the_run"] == true {
                    "all"
                } else {
                    "**not all**"
                },
                f(&drift["seconds"])
            ),
            target: "all",
            met: Some(run["drift_converged_in_the_run"] == true),
            command,
        });
    }
    let deep = &fleet["deep_check"];
    if deep.is_object() {
        let reads = &deep["reads"];
        out.push(Figure {
            name: format!(
                "deep check, {} looks: share of the ListThingPrincipals / DescribeCertificate / ListAttachedPolicies quotas while it runs",
                deep["looks"]
            ),
            value: format!(
                "{:.2} / {:.2} / {:.2}",
                f(&reads["ListThingPrincipals"]["share"]),
                f(&reads["DescribeCertificate"]["share"]),
                f(&reads["ListAttachedPolicies"]["share"])
            ),
            target: "≤ 0.2",
            met: Some(
                ["ListThingPrincipals", "DescribeCertificate", "ListAttachedPolicies"]
                    .iter()
                    .all(|op| f(&reads[*op]["share"]) <= 0.2),
            ),
            command,
        });
    }
    out
}

pub fn markdown(r: &Value) -> String {
    let m = &r["machine"];
    let mut s = String::new();
    let _ = write!(
        s,
        "# Performance\n\n\
         Every figure below was measured by `make bench` on one machine and is \
         rewritten by it (`docs/performance.json` holds the same numbers and more \
         detail). `make bench` is not part of `make test`; no test asserts a time.\n\n\
         **Machine:** {} × {} (`nproc` = {}), {} GiB memory, Linux {}. A \
         virtual machine whose cores may be shared with other work (the load \
         average below shows how busy it was), so absolute times are noisy; \
         medians and ratios are quoted, never single runs.\n\n",
        m["nproc"],
        m["cpu"].as_str().unwrap_or_default(),
        m["nproc"],
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or_default(),
    );
    let loads: Vec<String> = [
        "cold_start",
        "memory",
        "provisioning",
        "shadow",
        "ingress",
        "bulk",
        "fleet",
    ]
    .iter()
    .filter_map(|k| Some(format!("{k} {}", r[*k]["load_average_before"].as_str()?)))
    .collect();
    if !loads.is_empty() {
        let _ = writeln!(
            s,
            "Load average (1, 5, 15 min) when each section started: {}.\n",
            loads.join("; ")
        );
    }
    let figures = figures(r);
    s.push_str("## Figures\n\n| figure | value | target | met | command |\n| --- | --- | --- | --- | --- |\n");
    for fig in &figures {
        let met = match fig.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | `{}` |",
            fig.name, fig.value, fig.target, met, fig.command
        );
    }
    let missed: Vec<_> = figures.iter().filter(|f| f.met == Some(false)).collect();
    s.push_str("\n## Targets missed\n\n");
    if missed.is_empty() {
        s.push_str("None.\n");
    }
    for fig in &missed {
        let _ = writeln!(s, "* {}: {} (target {}).", fig.name, fig.value, fig.target);
    }
    s.push_str(include_str!("limits.md"));
    s.push_str(&details(r));
    s
}

fn details(r: &Value) -> String {
    let mut s = String::from("\n## How each figure is measured\n\n");
    let _ = writeln!(
        s,
        "All commands run from the repository root; `make bench` runs \
         `scripts/package.sh` (as `make package`), then `cargo run -p bench` \
         (every section). Sections alone: `cargo run -p bench -- --only \
         cold,sam,size,memory,provisioning,bulk,ingress,shadow` (the others are \
         kept from `docs/performance.json`). The bench process itself (moto's \
         proxies, the Mender stand-in, the local runner's handlers) is built in \
         the dev profile (dependencies at `-O1`); the functions' binaries are \
         the release builds.\n"
    );
    let _ = writeln!(
        s,
        "* **Cold start** — each function's release binary for x86_64 \
         (`{}`, built by `make package`: the root `Cargo.toml`'s release \
         profile) is started by `tests/bench` against a local Lambda Runtime \
         API (`tests/bench/src/runtime.rs`: `next`, `response`, `error`, \
         `init/error`). *Init* is process start → its first `GET \
         /2018-06-01/runtime/invocation/next`; the *first invocation* is from \
         handing it a sample event of `tests/events/` (made real for the stack: \
         integration id, device, Mender token, webhook signature) to its \
         answer, against moto and the Mender stand-in on loopback, settings not \
         yet cached. `device-accepted`'s first invocation provisions a new \
         device. Median of {} starts per function, taken in rounds (each \
         function once, then again), so that a slow spell of this shared \
         machine falls on every function alike.",
        r["cold_start_binaries"]
            .as_str()
            .unwrap_or("target/lambda/x86_64"),
        r["cold_start"]["device-accepted"]["starts"]
    );
    s.push_str(
        "* **`sam local start-lambda`** — `make sam-local` (run first by \
         `make bench`) invokes each function of `sam build --config-env \
         local` (x86_64, release, unoptimised) with its sample event through \
         the Lambda API of `sam local start-lambda`, in Docker, against moto \
         and the Mender stand-in reached through Docker's bridge. The figure \
         is the request of the function's first invocation (its container \
         made and started, the function's start and its work; SAM itself is \
         already running); in brackets, the invocation's Duration as SAM's \
         Runtime Interface Emulator reports it (event to answer; its Init \
         Duration is not measured as Lambda measures it, so it is not \
         shown). One run each: a figure of Docker and SAM as much as of the \
         bridge.\n",
    );
    s.push_str(
        "* **Size** — `make package` builds every function with cargo-lambda \
         (release profile: `opt-level = \"z\"`, fat LTO, one codegen unit, \
         stripped, panics abort; linked without unwind tables, \
         `functions/build.rs`) for arm64 and x86_64; the bootstrap and its \
         deflate zip (as Lambda receives it) are measured. MB = 10⁶ bytes.\n",
    );
    s.push_str(
        "* **Memory** — the same binaries and Runtime API: 1,000 invocations \
         one after another with the function's sample event, then `VmHWM` \
         (peak resident set) from `/proc/<pid>/status`.\n",
    );
    let p = &r["provisioning"];
    let _ = writeln!(
        s,
        "* **Provisioning critical path** — one `device-accepted` invocation \
         for a new accepted device (`bridge::lifecycle::handle`: lease, \
         reconcile, release), in-process, with a fixed latency L added to every \
         AWS and Mender call by the fault proxies (`FaultProxy::set_latency`), \
         L = {}. *Concurrent* is the deployed code; *sequential* is the same \
         code with `bridge::stage::Concurrency::Sequential` (every call of \
         a stage awaited one after another; `Config::concurrency`). The \
         instance is warm (settings, tenant and data endpoint cached). Median \
         of {} runs per point. *Round trips* on the critical path = the \
         least-squares slope of the medians against L. Read from the code, the \
         deployed path has 9 (lease; status ∥ DescribeThing; record \
         forgotten ∥ certificate intent written; CreateThing ∥ \
         CreateCertificateFromCsr ∥ configuration read; AttachPolicy ∥ \
         AttachThingPrincipal ∥ configuration write; deploy; intent \
         forgotten ∥ record kept; lease release; event log) of its 16 \
         calls; the sequential baseline has all 16.",
        LATENCIES_MS.map(|l| format!("{l} ms")).join(", "),
        p["runs_per_point"]
    );
    let b = &r["bulk"];
    let _ = writeln!(
        s,
        "* **Bulk acceptance** — {} pending devices accepted at once in the \
         Mender stand-in (`MenderStandin::accept`, which sends both signed \
         webhooks per device to the local runner); ingress, in-process bus \
         (bounded to {} concurrent lifecycle invocations, as a reserved \
         concurrency would), lifecycle handlers, against moto behind a fault \
         proxy that enforces AWS IoT Core's per-API rate quotas with token \
         buckets (`FaultRule::rate_limit`, one second of burst) and answers \
         `ThrottlingException` beyond them. Quotas divided by {} (1: AWS's \
         defaults). Total = first acceptance → bus idle. The lower bound is the \
         time the quotas allow for the calls every new device needs (one each \
         of CreateThing, CreateCertificateFromCsr, AttachPolicy, \
         AttachThingPrincipal): max over those APIs of \
         devices / quota. Afterwards every device is audited (Thing with \
         exactly one ACTIVE certificate, delivered to Mender) and every \
         certificate in AWS must be attached to a device's Thing. The bridge's \
         AWS clients use the deployed SDK retry policy \
         (`CallBudget::BACKGROUND`: {} attempts, {} ms initial backoff); an \
         event whose device's lease is held hands the device to the holder, \
         which converges it once more (docs/architecture.md); failed \
         invocations are re-delivered by the bus (12 attempts, 100 ms to 2 s \
         backoff).",
        b["devices"],
        b["reserved_concurrency"],
        b["quota_divisor"],
        bridge::config::CallBudget::BACKGROUND.aws.max_attempts,
        bridge::config::CallBudget::BACKGROUND
            .aws
            .initial_backoff
            .as_millis()
    );
    s.push_str(
        "* **Ingress** — in-process: `bridge::ingress::handle` on a signed \
         `device-status-changed` webhook (settings cached: size, integration, \
         signature check, parse, classify, publish to a counting bus), one \
         after another. Through the local runner: the same webhooks POSTed over \
         loopback HTTP with one keep-alive client to the runner's route (the \
         bus queues the published events without running them). Neither \
         includes EventBridge's PutEvents, which the deployed ingress waits \
         for.\n",
    );
    s.push_str(
        "* **Fleet** — accepted devices seeded straight into moto (each a Thing \
         marked as the integration's, its ACTIVE certificate attached with the \
         device policy, through the emulator's `/_emulator/seed-fleet`: through \
         the API, 100,000 devices are 400,000 requests) and the Mender \
         stand-in (the device, its configuration carrying that certificate and \
         key), with the device records a previous run would have left (Mender's \
         `updated_ts`, the certificate's id). Then sync runs in-process \
         (`bridge::reconcile::step` until done, as the reconcile function runs \
         them), Mender's pages of 500, AWS IoT Core's default rate quotas \
         enforced by the fault proxy (the table below; `ListThings` and \
         `ListCertificates` at 10/s), the deployed SDK retry policy. *Nothing \
         to change*: the seeded fleet as it is. *Drift*: 1 % of the devices, a \
         quarter each with the Thing deleted, the certificate made INACTIVE, \
         the device rejected in Mender (its webhook lost), and Things marked as \
         the integration's whose device Mender does not know; all must be \
         provisioned, repaired, disabled or removed by that run. Calls are \
         those the proxies served (not throttled answers). The heap figure is \
         the bench process's peak above where the run began (a counting \
         global allocator): the run's own allocations, plus the in-process \
         Mender stand-in's and proxies' transient buffers. *Deep check*: the \
         fleet's records made older than the deep check's age, a run allowed a \
         given number of looks at the deployed pace (2 a second); the rate of \
         each per-device read between the first and the last look, against its \
         quota. moto serves one request at a time and filters every Thing for \
         each `ListThings` page, so the wall times are moto's as much as the \
         bridge's.\n",
    );
    s.push_str(
        "* **Shadow** — `GET`, `PUT` and `PATCH …/devices/{id}/state/{integration_id}` through \
         the local runner (HTTP, loopback) for a provisioned device, as its \
         organization's admin, with latency L on every AWS and Mender call. \
         Median of 15 calls per point after one warm-up (which fills the \
         10-second per-token auth cache, so Mender's `users/me` is not on the \
         measured path).\n",
    );
    if let Some(quotas) = b["quotas_tps"].as_object() {
        s.push_str("\n### AWS IoT Core rate quotas used\n\n| API | requests/s (default) | used |\n| --- | ---: | ---: |\n");
        for (op, default) in crate::scenarios::IOT_QUOTAS {
            let used = quotas.get(*op).map_or("—".to_owned(), Value::to_string);
            let _ = writeln!(s, "| {op} | {default} | {used} |");
        }
        s.push_str(
            "\nSources: AWS General Reference, *AWS IoT Core endpoints and \
             quotas*, section *AWS IoT Core API throttling limits* \
             (<https://docs.aws.amazon.com/general/latest/gr/iot-core.html#throttling-limits>), \
             as archived in the AWS IoT developer guide's limits table \
             (`awsdocs/aws-iot-docs`, `developerguide`, *AWS IoT Throttling \
             Limits*: AttachPolicy 15, AttachThingPrincipal 15, \
             CreateCertificateFromCsr 15, CreateThing 15, DescribeThing 350, \
             DescribeCertificate 10, ListThingPrincipals 10, \
             ListAttachedPolicies 15, UpdateCertificate 10, …); CreateThing and \
             AttachThingPrincipal were since raised to 100 (checked against the \
             live page on 2025-06-13 by the Thingpress project's `AWS API \
             Limits` table, which also lists AttachPolicy 15, DescribeThing 350, \
             DescribeCertificate 10). All are adjustable per account and \
             Region; check the account's Service Quotas before relying on them.\n",
        );
    }
    if b.is_object() {
        let _ = writeln!(
            s,
            "\nBulk run: webhooks all delivered after {} s; calls served per API: `{}`; \
             lower bound for the calls actually made: {} s.",
            b["webhooks_delivered_seconds"],
            b["calls_served"],
            b["lower_bound_for_calls_made_seconds"]
        );
    }
    s
}
