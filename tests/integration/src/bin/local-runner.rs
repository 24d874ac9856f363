//! The whole bridge as one local process: every API route on `LISTEN_ADDR`,
//! published events handed to the lifecycle handlers in-process. Configured
//! by environment only (see the README): the functions' variables, read by
//! `bridge::config`, and `LISTEN_ADDR` for where to listen.

use std::sync::Arc;

use bridge::wiring::Wiring;
use integration_tests::app::{LocalApp, router};
use integration_tests::stack::{create_event_bus, create_tables};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut wiring = Wiring::from_env().await;
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    if wiring.config.public_url.is_empty() {
        wiring.config.public_url = format!("http://{listen}");
    }
    // In AWS the SAM template creates the tables and the bus; locally the
    // runner does (its own events go through an in-process bus; functions
    // under `sam local` publish to this one).
    create_tables(&wiring.aws_config(), &wiring.config).await;
    create_event_bus(&wiring.aws_config(), &wiring.config.event_bus_name).await;

    let app = Arc::new(LocalApp::new(&wiring));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(
        listen,
        public_url = wiring.config.public_url,
        mender_url = wiring.config.mender_url,
        "local runner ready"
    );
    axum::serve(listener, router(app)).await?;
    Ok(())
}
