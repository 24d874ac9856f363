//! `PUT` and `PATCH /api/management/v1/iot-manager/devices/{device_id}/state/{integration_id}`:
//! an admin replaces or merges a device's desired state. See
//! `bridge::shadow::api`.

use bridge::http::AsBuilt;
use bridge::shadow::api::update_state;
use bridge::wiring::Wiring;
use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let api = Wiring::from_env().await.shadow_api();
    run(service_fn(|request| async {
        Ok::<_, Error>(AsBuilt(update_state(&api, request).await))
    }))
    .await
}
