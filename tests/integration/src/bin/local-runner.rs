//! The whole bridge as one local process: every API route on `LISTEN_ADDR`,
//! published events handed to the lifecycle handlers in-process. Configured
//! by environment only (see the README).

use std::sync::Arc;

use bridge::aws::{CallPolicy, load_base_config};
use bridge::settings::Environment;
use integration_tests::app::{LocalApp, router};
use integration_tests::stack::create_table;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let env = Environment::from_env();
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let public_url = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{listen}"));
    let aws = load_base_config(CallPolicy::from_env()).await;
    // In AWS the SAM template creates the table; locally the runner does.
    create_table(&aws, &env.table_name).await;

    let app = Arc::new(LocalApp::new(&env, aws, &public_url));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(
        listen,
        public_url,
        mender_url = env.mender_url,
        "local runner ready"
    );
    axum::serve(listener, router(app)).await?;
    Ok(())
}
