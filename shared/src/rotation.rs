//! `POST`, `GET`, `DELETE /devices/{device_id}/rotation`: an admin rotates
//! a device's certificate make before break, follows the rotation, or
//! cancels it while the device has not applied it.
//!
//! A rotation is not stored anywhere: where it stands is what Mender
//! Configure and AWS hold ([`plan::rotation`]), so it cannot disagree with
//! them, and every convergence (webhook or run) understands it. Starting
//! and cancelling are convergences under the device's lease with their own
//! plans ([`plan::rotate`], [`plan::cancel_rotation`]).

use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use crate::auth::Authenticator;
use crate::converge::plan::{self, Rotation};
use crate::converge::{ConvergeError, Outcome, Trigger, observe_device};
use crate::event_log::Source;
use crate::http::{ApiError, device_id, json_response};
use crate::index::IntegrationIndex;
use crate::lease::LeaseError;
use crate::lifecycle::{Lifecycle, LifecycleError, converge_under_lease};
use crate::tenant::Tenant;

pub struct RotationApi {
    pub auth: Authenticator,
    pub index: IntegrationIndex,
    pub lifecycle: Lifecycle,
}

/// `POST` (start), `GET` (follow), `DELETE` (cancel) `/devices/{device_id}/rotation`.
pub async fn handle(api: &RotationApi, request: Request) -> Response<Body> {
    let result = respond(api, &request).await;
    crate::http::answer(&request, result)
}

async fn respond(api: &RotationApi, request: &Request) -> Result<Response<Body>, ApiError> {
    let (trigger, status) = match *request.method() {
        http::Method::GET => (None, 200),
        http::Method::POST => (Some(Trigger::Rotate), 201),
        http::Method::DELETE => (Some(Trigger::CancelRotation), 200),
        ref other => {
            return Err(ApiError::MethodNotAllowed(format!(
                "{other} is not supported here; use GET, POST or DELETE"
            )));
        }
    };
    let caller = api.auth.admin(request.headers()).await?;
    let device_id = device_id(request, "a certificate")?;
    let tenant = api.lifecycle.tenants.of_caller(&api.index, &caller).await?;
    api.auth.require_device_access(&caller, &device_id).await?;
    if let Some(trigger) = trigger {
        let converged =
            converge_under_lease(&api.lifecycle.leases, &tenant, &device_id, trigger).await;
        api.lifecycle
            .record(&tenant, &device_id, Source::Api, &converged)
            .await;
        match converged {
            Ok(Outcome::HandedOver) => return Err(busy()),
            Ok(_) => {}
            Err(error) => return Err(failed(&tenant, &device_id, error)),
        }
    }
    let observed = observe_device(&tenant, &device_id)
        .await
        .map_err(|error| failed(&tenant, &device_id, error.into()))?;
    Ok(json_response(status, &describe(&device_id, &observed)?))
}

/// Where the device's rotation stands, as the API shows it (docs/api.md).
fn describe(device_id: &str, observed: &plan::Observed) -> Result<Value, ApiError> {
    let (state, certificate, previous) = match plan::rotation(observed) {
        Rotation::NotProvisioned(why) => return Err(ApiError::NotFound(why.to_owned())),
        Rotation::Idle { certificate } => ("idle", certificate, vec![]),
        Rotation::Waiting { delivered, held } => ("waiting", delivered, vec![held]),
        Rotation::Applied {
            delivered,
            previous,
        } => ("applied", delivered, previous),
        Rotation::Unreported { delivered } => ("unreported", delivered, vec![]),
    };
    Ok(json!({
        "device_id": device_id,
        "state": state,
        "certificate_id": certificate.id,
        "previous_certificate_ids": previous.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        "delivered_at": observed.delivered_at,
        "reported_at": observed.reported_at,
    }))
}

/// Another invocation holds the device's lease: nothing was done.
fn busy() -> ApiError {
    ApiError::Conflict("the device is being converged right now; try again in a moment".into())
}

/// A refusal in words (409); AWS, Mender or the bridge's table away (503);
/// anything else logged and answered without its details.
fn failed(tenant: &Tenant, device_id: &str, error: LifecycleError) -> ApiError {
    match error {
        LifecycleError::Converge(ConvergeError::Refused(refused)) => ApiError::Conflict(refused.0),
        LifecycleError::Lease(LeaseError::Held(_)) => busy(),
        LifecycleError::Lease(LeaseError::Unavailable(_))
        | LifecycleError::Converge(ConvergeError::Intent(_)) => {
            tracing::warn!(tenant = tenant.id(), device_id, %error, "the bridge's table is unavailable");
            ApiError::ServiceUnavailable("the bridge's table is unavailable; try again".into())
        }
        LifecycleError::Converge(ConvergeError::Status(unknown)) => ApiError::Conflict(format!(
            "Mender reports an {unknown}; the device is left as it is"
        )),
        LifecycleError::Settings(error) => error.into(),
        LifecycleError::Converge(ConvergeError::Iot(error)) if error.is_transient() => {
            ApiError::ServiceUnavailable("AWS IoT Core is unavailable; try again".into())
        }
        LifecycleError::Converge(ConvergeError::Mender(error)) if error.is_transient() => {
            ApiError::ServiceUnavailable("Mender is unavailable; try again".into())
        }
        error => {
            tracing::error!(tenant = tenant.id(), device_id, %error, "a rotation request failed");
            ApiError::BadGateway(
                "AWS or Mender refused the bridge (the bridge's log says which); nothing the device holds was changed"
                    .into(),
            )
        }
    }
}
