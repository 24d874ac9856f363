//! `POST /webhooks/{integration_id}`: verifies Mender's webhook and publishes
//! it to the bus. See `bridge::ingress`.

use bridge::http::AsBuilt;
use bridge::ingress::handle;
use bridge::wiring::Wiring;
use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let wiring = Wiring::from_env().await;
    let ingress = wiring.ingress(wiring.event_bus());
    run(service_fn(|request| async {
        Ok::<_, Error>(AsBuilt(handle(&ingress, request).await))
    }))
    .await
}
