//! `PUT`, `GET`, `DELETE /integration`: an organization's admin sets the
//! bridge up (`GET /integration/external-id` first, for a role's trust
//! policy); `POST /integration/reconcile` and
//! `GET /integration/reconcile/{run_id}` start and follow a sync run,
//! `POST /integration/rotation` and `GET /integration/rotation/{run_id}` a
//! rotation run; `GET /api/management/v1/iot-manager/events` reads the
//! organization's event log. See `bridge::integration`.

use bridge::integration::handle;
use bridge::wiring::Wiring;
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let wiring = Wiring::from_env().await;
    let api = wiring.integration_api(wiring.event_bus());
    run(service_fn(|request| async {
        Ok::<_, Error>(handle(&api, request).await)
    }))
    .await
}
