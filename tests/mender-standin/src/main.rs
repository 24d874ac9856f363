//! The Mender stand-in as a process, for the local dev stack.
//!
//! Listens on `LISTEN_ADDR` (default `127.0.0.1:8081`), seeds tenant `demo`
//! (RBAC) with an admin, an observer and three pending devices, and prints
//! shell-friendly `KEY=value` lines on stdout:
//!
//! ```text
//! MENDER_URL=http://127.0.0.1:8081
//! MENDER_TENANT_ID=demo
//! MENDER_ADMIN_TOKEN=…
//! MENDER_OBSERVER_TOKEN=…
//! MENDER_DEVICE_IDS=id1,id2,id3
//! MENDER_DEVICE_1=id1
//! …
//! ```
//!
//! Logs go to stderr (`RUST_LOG`, default `info`). Scripts can create more
//! devices with `POST /_standin/devices {"tenant_id":"demo","status":"pending"}`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use mender_standin::MenderStandin;
use tracing_subscriber::EnvFilter;

const TENANT: &str = "demo";
const TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("LISTEN_ADDR {listen:?}: {e}"))?;
    let standin = MenderStandin::start_on(addr).await?;

    standin.add_tenant(TENANT, true);
    let admin = standin.add_user(
        TENANT,
        "admin@demo.example",
        &["RBAC_ROLE_PERMIT_ALL"],
        None,
    );
    let observer = standin.add_user(
        TENANT,
        "observer@demo.example",
        &["RBAC_ROLE_OBSERVER"],
        None,
    );
    let admin_token = standin.issue_token(&admin, TOKEN_TTL);
    let observer_token = standin.issue_token(&observer, TOKEN_TTL);
    let devices: Vec<String> = (0..3)
        .map(|_| standin.add_device(TENANT, "pending", None))
        .collect();

    let mut out = std::io::stdout().lock();
    writeln!(out, "MENDER_URL={}", standin.url())?;
    writeln!(out, "MENDER_TENANT_ID={TENANT}")?;
    writeln!(out, "MENDER_ADMIN_TOKEN={admin_token}")?;
    writeln!(out, "MENDER_OBSERVER_TOKEN={observer_token}")?;
    writeln!(out, "MENDER_DEVICE_IDS={}", devices.join(","))?;
    for (i, id) in devices.iter().enumerate() {
        writeln!(out, "MENDER_DEVICE_{}={id}", i + 1)?;
    }
    out.flush()?;
    drop(out);
    tracing::info!(url = %standin.url(), "mender stand-in ready");

    std::future::pending::<()>().await;
    Ok(())
}
