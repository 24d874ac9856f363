//! `GET /api/management/v1/iot-manager/devices/{device_id}/state` and
//! `GET /api/management/v1/iot-manager/devices/{device_id}/state/{integration_id}`: a
//! device's shadow, as Mender lets the caller see it. See
//! `bridge::shadow::api`.

use bridge::http::AsBuilt;
use bridge::shadow::api::get_state;
use bridge::wiring::Wiring;
use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let api = Wiring::from_env().await.shadow_api();
    run(service_fn(|request| async {
        Ok::<_, Error>(AsBuilt(get_state(&api, request).await))
    }))
    .await
}
