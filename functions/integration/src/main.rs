//! `PUT`, `GET`, `DELETE /integration`: an organization's admin sets the
//! bridge up; `POST /integration/sync` and `GET /integration/sync/{run_id}`
//! start and follow a reconcile run. See `bridge::integration`.

use bridge::integration::{IntegrationApi, handle};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge::logging::init();
    let api = IntegrationApi::from_env().await;
    run(service_fn(|request| async {
        Ok::<_, Error>(handle(&api, request).await)
    }))
    .await
}
