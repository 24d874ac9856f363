//! An organization's admin sets the bridge up and follows it, in Mender's
//! iot-manager API (see `bridge::integration`):
//! `GET`, `POST /api/management/v1/iot-manager/integrations`;
//! `GET`, `PUT`, `DELETE /api/management/v1/iot-manager/integrations/{integration_id}`;
//! `PUT /api/management/v1/iot-manager/integrations/{integration_id}/credentials`;
//! `GET /api/management/v1/iot-manager/external-id` (for a role's trust policy, first);
//! sync runs, `POST /api/management/v1/iot-manager/integrations/{integration_id}/reconcile` and
//! `GET /api/management/v1/iot-manager/integrations/{integration_id}/reconcile/{run_id}`;
//! rotation runs, `POST /api/management/v1/iot-manager/integrations/{integration_id}/rotation` and
//! `GET /api/management/v1/iot-manager/integrations/{integration_id}/rotation/{run_id}`;
//! the event log, `GET /api/management/v1/iot-manager/events`; and unlinking a device,
//! `DELETE /api/management/v1/iot-manager/devices/{device_id}`.

use bridge::http::AsBuilt;
use bridge::integration::handle;
use bridge::wiring::Wiring;
use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let wiring = Wiring::from_env().await;
    let api = wiring.integration_api(wiring.event_bus());
    run(service_fn(|request| async {
        Ok::<_, Error>(AsBuilt(handle(&api, request).await))
    }))
    .await
}
