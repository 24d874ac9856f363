//! `make bench`: every performance measurement of docs/performance.md, run
//! on this machine, written to `docs/performance.json` and rendered into
//! `docs/performance.md`. Not part of `make test`: nothing here asserts a
//! time.
//!
//! ```text
//! bench [--only cold,sam,size,memory,provisioning,bulk,ingress,shadow,fleet]
//!       [--bin-dir target/lambda/x86_64] [--lambda-dir target/lambda] [--docs docs]
//! ```
//!
//! With `--only`, the other sections are kept from the existing JSON.

mod fleet;
mod functions;
mod heap;
mod report;
mod runtime;
mod scenarios;
mod stats;

use std::path::PathBuf;

use serde_json::{Value, json};

/// Counts the heap, for the fleet section's peak (see `heap`).
#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

struct Args {
    only: Option<Vec<String>>,
    bin_dir: PathBuf,
    lambda_dir: PathBuf,
    docs: PathBuf,
}

fn args() -> Args {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut args = Args {
        only: None,
        bin_dir: root.join("target/lambda/x86_64"),
        lambda_dir: root.join("target/lambda"),
        docs: root.join("docs"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--only" => args.only = Some(value.split(',').map(str::to_owned).collect()),
            "--bin-dir" => args.bin_dir = value.into(),
            "--lambda-dir" => args.lambda_dir = value.into(),
            "--docs" => args.docs = value.into(),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    scenarios::quiet_logs();
    let args = args();
    let json_path = args.docs.join("performance.json");
    let mut results: Value = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|_| args.only.is_some())
        .unwrap_or_else(|| json!({}));
    let wanted = |section: &str| {
        args.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    };
    let n = |name: &str, default: usize| env_number(name, default as f64) as usize;

    results["machine"] = report::machine();
    if wanted("size") {
        results["size"] = report::sizes(&args.lambda_dir);
        save(&json_path, &results);
    }
    if wanted("cold") {
        // Relative to the repository, so the report names no one's home.
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let shown = args.bin_dir.strip_prefix(&root).unwrap_or(&args.bin_dir);
        results["cold_start_binaries"] = json!(shown.display().to_string());
        let cold = functions::cold_start(&args.bin_dir, n("BENCH_COLD_STARTS", 20));
        measure(&mut results, &json_path, "cold_start", cold).await;
    }
    if wanted("sam") {
        // Written by `make sam-local` (which `make bench` runs first): a
        // figure of SAM and Docker, not of the bench process.
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("target/sam-local/first-invocations.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                results["sam_local"] = serde_json::from_str(&text).unwrap();
                save(&json_path, &results);
            }
            Err(e) => eprintln!(
                "no `sam local` figures ({}: {e}): run `make sam-local`",
                path.display()
            ),
        }
    }
    if wanted("memory") {
        let memory = functions::memory(&args.bin_dir, n("BENCH_MEMORY_INVOCATIONS", 1000));
        measure(&mut results, &json_path, "memory", memory).await;
    }
    if wanted("provisioning") {
        let provisioning = scenarios::provisioning(n("BENCH_PROVISIONING_RUNS", 7));
        measure(&mut results, &json_path, "provisioning", provisioning).await;
    }
    if wanted("shadow") {
        let shadow = scenarios::shadow(n("BENCH_SHADOW_RUNS", 15));
        measure(&mut results, &json_path, "shadow", shadow).await;
    }
    if wanted("ingress") {
        let ingress = scenarios::ingress(
            n("BENCH_INGRESS_EVENTS", 20_000),
            n("BENCH_INGRESS_HTTP_EVENTS", 3_000),
        );
        measure(&mut results, &json_path, "ingress", ingress).await;
    }
    if wanted("bulk") {
        let bulk = scenarios::bulk(
            n("BENCH_BULK_DEVICES", 1000),
            env_number("BENCH_BULK_QUOTA_DIVISOR", 1.0),
            n("BENCH_BULK_RESERVED_CONCURRENCY", 20),
        );
        measure(&mut results, &json_path, "bulk", bulk).await;
    }
    if wanted("fleet") {
        let fleet = async {
            let mut sizes = json!({});
            for n in [
                n("BENCH_FLEET_SMALL", 10_000),
                n("BENCH_FLEET_DEVICES", 100_000),
            ] {
                sizes[n.to_string()] = fleet::fleet(n).await;
            }
            sizes["deep_check"] = fleet::deep_check(
                n("BENCH_FLEET_SMALL", 10_000),
                n("BENCH_DEEP_CHECK_LOOKS", 120) as u64,
            )
            .await;
            sizes
        };
        measure(&mut results, &json_path, "fleet", fleet).await;
    }
    let markdown = report::markdown(&results);
    std::fs::write(args.docs.join("performance.md"), markdown).unwrap();
    eprintln!(
        "wrote {} and performance.md",
        json_path.canonicalize().unwrap_or(json_path).display()
    );
}

/// Runs one section (a future does nothing until awaited), with the load
/// average it started under, and saves, so an interrupted run keeps what
/// it measured.
async fn measure(
    results: &mut Value,
    path: &std::path::Path,
    key: &str,
    section: impl std::future::Future<Output = Value>,
) {
    let load = report::load_average();
    results[key] = section.await;
    results[key]["load_average_before"] = json!(load);
    save(path, results);
}

fn save(path: &std::path::Path, results: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(results).unwrap() + "\n").unwrap();
}
