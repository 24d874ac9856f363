//! `POST /webhooks/{integration_id}`: verifies Mender's webhook and publishes
//! it to the bus. See `bridge::ingress`.

use bridge::ingress::{Ingress, handle};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge::logging::init();
    let ingress = Ingress::from_env().await;
    run(service_fn(|request| async {
        Ok::<_, Error>(handle(&ingress, request).await)
    }))
    .await
}
