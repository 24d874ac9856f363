//! `POST`, `GET`, `DELETE /api/management/v1/iot-manager/devices/{device_id}/rotation`: an admin rotates
//! a device's certificate make before break, follows it, or cancels it.
//! See `bridge::rotation`.

use bridge::http::AsBuilt;
use bridge::rotation::handle;
use bridge::wiring::Wiring;
use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let api = Wiring::from_env().await.rotation_api();
    run(service_fn(|request| async {
        Ok::<_, Error>(AsBuilt(handle(&api, request).await))
    }))
    .await
}
