//! `GET /devices/{device_id}/state`: a device's shadow, as Mender lets the
//! caller see it. See `bridge::shadow::api`.

use bridge::shadow::api::{ShadowApi, get_state};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge::logging::init();
    let api = ShadowApi::from_env().await;
    run(service_fn(|request| async {
        Ok::<_, Error>(get_state(&api, request).await)
    }))
    .await
}
