//! `PUT` and `PATCH /devices/{device_id}/state`: an admin replaces or merges
//! a device's desired state. See `bridge::shadow::api`.

use bridge::shadow::api::{ShadowApi, update_state};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge::logging::init();
    let api = ShadowApi::from_env().await;
    run(service_fn(|request| async {
        Ok::<_, Error>(update_state(&api, request).await)
    }))
    .await
}
