//! Invoked by the bus for `device-decommissioned` events: converges the device to what
//! Mender says. See `bridge::lifecycle`.

use bridge::events::BusEnvelope;
use bridge::lifecycle::handle;
use bridge::wiring::Wiring;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let lifecycle = Wiring::from_env().await.lifecycle();
    run(service_fn(|event: LambdaEvent<BusEnvelope>| async {
        Ok::<_, Error>(handle(&lifecycle, event.payload).await?)
    }))
    .await
}
