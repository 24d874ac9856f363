//! `DELETE devices/{device_id}` (admin): Mender's "unregister device
//! integrations", which "does not clean up any external state". The bridge
//! stops managing the device's Thing: its marker says so
//! ([`crate::iot::UNLINKED_VALUE`]), and nothing else changes: the Thing,
//! its certificates (still ACTIVE), their policy, the shadows and the
//! device's Mender configuration stay, so the device keeps its connection.
//! From then on the Thing is foreign to the integration: never changed,
//! never adopted, reported as a conflict while Mender has the device.

use lambda_http::{Body, Request, Response};

use super::IntegrationApi;
use crate::auth::Caller;
use crate::event_log::{Happened, Source};
use crate::http::{ApiError, device_id};
use crate::iot::{IotError, ThingState};
use crate::lease::{Acquired, LeaseError};

pub async fn unlink<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let device_id = device_id(request, "an integration")?;
    let tenant = api.tenants.of_caller(&api.index, caller).await?;
    api.auth.require_device_access(caller, &device_id).await?;
    let lease = match api.leases.acquire(tenant.id(), &device_id).await {
        Ok(Acquired::Lease(lease)) => lease,
        Ok(Acquired::HandedOver) | Err(LeaseError::Held(_)) => {
            return Err(ApiError::Conflict(
                "the device is being converged right now; try again in a moment".into(),
            ));
        }
        Err(error) => return Err(table_unavailable(&error)),
    };
    let unlinked = match tenant.iot.thing(&device_id).await {
        Ok(ThingState::Ours) => tenant.iot.unlink_thing(&device_id).await.map(|()| true),
        Ok(ThingState::Absent | ThingState::Foreign | ThingState::Unclaimed) => Ok(false),
        Err(error) => Err(error),
    };
    // A device event that arrived meanwhile asked for another convergence;
    // it would find the Thing foreign now: nothing to do again.
    if let Err(error) = api.leases.abandon(lease).await {
        tracing::warn!(%error, "could not release the lease");
    }
    match unlinked {
        Ok(true) => {
            tracing::info!(tenant = tenant.id(), device_id, "device unlinked");
            api.event_log
                .record(
                    tenant.id(),
                    &tenant.settings.integration_id,
                    &device_id,
                    Source::Api,
                    &Happened::Unlinked,
                )
                .await;
            Ok(Response::builder()
                .status(204)
                .body(Body::Empty)
                .expect("a valid response"))
        }
        Ok(false) => Err(ApiError::NotFound(format!(
            "device {device_id} has no Thing managed by this organization's integration"
        ))),
        Err(error) => Err(aws_refused(&error)),
    }
}

fn table_unavailable(error: &LeaseError) -> ApiError {
    tracing::warn!(%error, "the bridge's table is unavailable");
    ApiError::ServiceUnavailable("the bridge's table is unavailable; try again".into())
}

fn aws_refused(error: &IotError) -> ApiError {
    if error.is_transient() {
        return ApiError::ServiceUnavailable("AWS IoT Core is unavailable; try again".into());
    }
    tracing::error!(%error, "unlinking a device failed");
    ApiError::BadGateway(
        "AWS IoT Core refused the bridge (the bridge's log says why); the device is still linked"
            .into(),
    )
}
