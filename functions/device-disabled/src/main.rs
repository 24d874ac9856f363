//! Invoked by the bus for `device-disabled` events: converges the device to what
//! Mender says. See `bridge::lifecycle`.

use bridge::events::BusEnvelope;
use bridge::lifecycle::{Lifecycle, handle};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge::logging::init();
    let lifecycle = Lifecycle::from_env().await;
    run(service_fn(|event: LambdaEvent<BusEnvelope>| async {
        Ok::<_, Error>(handle(&lifecycle, event.payload).await?)
    }))
    .await
}
