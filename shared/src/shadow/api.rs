//! Mender's `GET devices/{device_id}/state` (the state for each
//! integration) and `GET`, `PUT devices/{device_id}/state/{integration_id}`,
//! with the bridge's `PATCH` (merge) and `?name=<shadow>` beside them: the
//! Device Shadow under Mender's permissions.
//!
//! Who may do what is Mender's answer: reading needs Mender to show the
//! device to the caller's token; writing needs an admin who can see it too.
//! Everything a request could get wrong is checked before AWS is called.

use std::sync::Arc;

use lambda_http::{Body, Request, RequestExt, Response};

use super::store::{DeviceShadows, ShadowAddress};
use super::{
    ABSENT_VERSION, Change, DocumentError, MAX_BODY_BYTES, Precondition, Section, ShadowState,
    StoredShadow, check_size, create_request, difference, etag, parse_change_request,
    target_desired, update_request, validate_shadow_name,
};
use crate::auth::{Authenticator, Caller};
use crate::http::{ApiError, body_bytes, device_id, json_response};
use crate::index::IntegrationIndex;
use crate::iot::{IotError, ThingState};
use crate::metrics::MetricsSink;
use crate::tenant::{Tenant, Tenants};

pub struct ShadowApi {
    pub auth: Authenticator,
    pub index: IntegrationIndex,
    pub tenants: Tenants,
    /// Where AWS's throttling of the organization's shadow calls is counted.
    pub metrics: MetricsSink,
}

/// Rounds of read, compute, versioned write before giving up on a shadow
/// that keeps changing (or that had to be created first).
const ATTEMPTS: usize = 3;

/// `GET devices/{device_id}/state[/{integration_id}]`.
pub async fn get_state(api: &ShadowApi, request: Request) -> Response<Body> {
    let result = read(api, &request).await;
    crate::http::answer(&request, result)
}

/// `PUT` (replace) and `PATCH` (merge) `devices/{device_id}/state/{integration_id}`.
pub async fn update_state(api: &ShadowApi, request: Request) -> Response<Body> {
    let result = write(api, &request).await;
    crate::http::answer(&request, result)
}

async fn read(api: &ShadowApi, request: &Request) -> Result<Response<Body>, ApiError> {
    let caller = api.auth.authenticate(request.headers()).await?;
    let address = shadow_address(request)?;
    let named = integration_id(request);
    let (shadows, tenant) = api.open(&caller, &address, named).await?;
    let stored = shadows.get(&address).await;
    api.count_throttling(&tenant);
    let integration_id = &tenant.settings.integration_id;
    let (state, version) = match stored.map_err(aws_error)? {
        Some(StoredShadow { state, version }) => (state, version),
        None => (ShadowState::default(), ABSENT_VERSION),
    };
    Ok(match named {
        Some(_) => state_response(&state, version),
        // Mender's map from integration id to state: the bridge's one.
        None => no_store(json_response(
            200,
            &serde_json::json!({ integration_id: state.to_json() }),
        )),
    })
}

/// The `{integration_id}` a device's state route names, if it names one.
fn integration_id(request: &Request) -> Option<&str> {
    request
        .path_parameters_ref()
        .and_then(|p| p.first("integration_id"))
}

async fn write(api: &ShadowApi, request: &Request) -> Result<Response<Body>, ApiError> {
    let change = match *request.method() {
        http::Method::PUT => Change::Replace,
        http::Method::PATCH => Change::Merge,
        ref other => {
            return Err(ApiError::MethodNotAllowed(format!(
                "{other} is not supported here; use GET, PUT or PATCH"
            )));
        }
    };
    let caller = api.auth.admin(request.headers()).await?;
    let address = shadow_address(request)?;
    let named = integration_id(request).ok_or_else(|| {
        ApiError::MethodNotAllowed(
            "write the state of one integration: …/state/{integration_id}".into(),
        )
    })?;
    let body = body_bytes(request.body());
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let requested = parse_change_request(body).map_err(document_error)?;
    let precondition = request
        .headers()
        .get(http::header::IF_MATCH)
        .map(|value| Precondition::parse(value.to_str().unwrap_or_default()));
    let (shadows, tenant) = api.open(&caller, &address, Some(named)).await?;
    let result = apply(
        &shadows,
        &address,
        change,
        &requested,
        precondition.as_ref(),
    )
    .await;
    api.count_throttling(&tenant);
    result
}

/// Reads the shadow, computes the new desired state, and writes the
/// difference under the version it was computed against. A missing shadow
/// is first created empty, so that the write itself is versioned too.
async fn apply(
    shadows: &DeviceShadows,
    address: &ShadowAddress,
    change: Change,
    requested: &Section,
    precondition: Option<&Precondition>,
) -> Result<Response<Body>, ApiError> {
    let version_moved = || {
        ApiError::PreconditionFailed(
            "the shadow changed since the version in If-Match; read it again".into(),
        )
    };
    let replaced_concurrently = || {
        ApiError::Conflict(
            "the desired state was changed by someone else meanwhile; read it again and retry"
                .into(),
        )
    };
    // The version of the empty shadow this request created, if it did.
    let mut created = None;
    // The desired state a replacement was computed against, once a write of
    // it was refused as stale.
    let mut refused_basis: Option<Section> = None;
    for _ in 0..ATTEMPTS {
        let Some(current) = shadows.get(address).await.map_err(aws_error)? else {
            if precondition.is_some_and(|p| !p.matches(ABSENT_VERSION)) {
                return Err(version_moved());
            }
            if target_desired(change, &Section::new(), requested).is_empty() {
                // Nothing to write: no reason to create the shadow.
                return Ok(state_response(&ShadowState::default(), ABSENT_VERSION));
            }
            created = Some(
                shadows
                    .update(address, &create_request())
                    .await
                    .map_err(aws_error)?,
            );
            continue;
        };
        if let Some(precondition) = precondition {
            // "No shadow" still holds if the only change is our empty creation.
            let still_absent = created == Some(current.version)
                && current.state.is_empty()
                && precondition.matches(ABSENT_VERSION);
            if !precondition.matches(current.version) && !still_absent {
                return Err(version_moved());
            }
        }
        if change == Change::Replace
            && refused_basis
                .as_ref()
                .is_some_and(|basis| *basis != current.state.desired)
        {
            // Going on would overwrite a change its author was told succeeded.
            return Err(replaced_concurrently());
        }
        let new_state = ShadowState {
            desired: target_desired(change, &current.state.desired, requested),
            reported: current.state.reported.clone(),
        };
        check_size(&new_state).map_err(document_error)?;
        let patch = difference(&current.state.desired, &new_state.desired);
        if patch.is_empty() {
            return Ok(state_response(&new_state, current.version));
        }
        match shadows
            .update(address, &update_request(&patch, current.version))
            .await
        {
            Ok(version) => return Ok(state_response(&new_state, version)),
            Err(error) if is_version_conflict(&error) => {
                if precondition.is_some() {
                    return Err(version_moved());
                }
                // Someone wrote in between. A merge is simply redone on the
                // new document; a replacement only if the desired state it
                // was computed against is still the same (the device may
                // have reported meanwhile).
                refused_basis = Some(current.state.desired);
            }
            Err(error) => return Err(aws_error(error)),
        }
    }
    Err(ApiError::Conflict(
        "the shadow kept changing while this request was applied; retry".into(),
    ))
}

impl ShadowApi {
    /// The data plane of the caller's organization, and its integration's
    /// id, once the route names that integration (if it names one), the
    /// caller may see the device and the device has a Thing of the
    /// bridge's.
    async fn open(
        &self,
        caller: &Caller,
        address: &ShadowAddress,
        named: Option<&str>,
    ) -> Result<(DeviceShadows, Arc<Tenant>), ApiError> {
        let tenant = self.tenants.of_caller(&self.index, caller).await?;
        if let Some(named) = named.filter(|named| *named != tenant.settings.integration_id) {
            return Err(ApiError::NotFound(format!(
                "this organization has no integration {named}"
            )));
        }
        self.auth
            .require_device_access(caller, &address.thing)
            .await?;
        match tenant.iot.thing(&address.thing).await.map_err(aws_error)? {
            ThingState::Ours => {}
            // Another organization's Thing of the same name, or one not yet
            // claimed by this organization's integration, is not shown.
            ThingState::Absent | ThingState::Foreign | ThingState::Unclaimed => {
                return Err(ApiError::NotFound(format!(
                    "device {} has no Thing managed by this organization's integration in AWS IoT Core (is it accepted in Mender?)",
                    address.thing
                )));
            }
        }
        let client = tenant.data_plane().await.map_err(aws_error)?;
        Ok((DeviceShadows::new(client.clone()), tenant.clone()))
    }

    /// AWS's throttled answers to the organization's calls, in its metrics
    /// (any this request's earlier failure skipped are counted with the next).
    fn count_throttling(&self, tenant: &Tenant) {
        if let Some(throttled) = crate::metrics::throttled_value(tenant) {
            self.metrics.emit(tenant.id(), &[throttled]);
        }
    }
}

/// The device and shadow a request addresses, checked.
fn shadow_address(request: &Request) -> Result<ShadowAddress, ApiError> {
    let thing = device_id(request, "a shadow")?;
    let name = request
        .query_string_parameters_ref()
        .and_then(|q| q.first("name"))
        .map(|name| validate_shadow_name(name).map(|()| name.to_owned()))
        .transpose()
        .map_err(document_error)?;
    Ok(ShadowAddress { thing, name })
}

fn state_response(state: &ShadowState, version: u64) -> Response<Body> {
    let mut response = no_store(json_response(200, &state.to_json()));
    response.headers_mut().insert(
        http::header::ETAG,
        etag(version)
            .parse()
            .expect("a quoted number is a valid header"),
    );
    response
}

/// The state is per user and changes any time: never cached.
fn no_store(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

fn document_error(error: DocumentError) -> ApiError {
    match error {
        DocumentError::TooLarge { .. } => ApiError::DocumentTooLarge(error.to_string()),
        other => ApiError::BadRequest(other.to_string()),
    }
}

fn is_version_conflict(error: &IotError) -> bool {
    error.code == "ConflictException"
}

/// How an AWS failure reads to the API's caller. The SDK has already
/// retried throttling, 5xx and timeouts.
fn aws_error(error: IotError) -> ApiError {
    match error.code.as_str() {
        "RequestEntityTooLargeException" => ApiError::DocumentTooLarge(format!(
            "AWS IoT refused the shadow as too large: {}",
            error.message
        )),
        "InvalidRequestException" => {
            ApiError::BadRequest(format!("AWS IoT refused the document: {}", error.message))
        }
        "ConflictException" => ApiError::Conflict(
            "the shadow was changed by someone else meanwhile; read it again and retry".into(),
        ),
        "ResourceNotFoundException" => {
            ApiError::NotFound("the device's Thing no longer exists in AWS IoT Core".into())
        }
        _ if error.is_transient() => {
            tracing::warn!(%error, "AWS IoT is unavailable");
            ApiError::ServiceUnavailable("AWS IoT Core is unavailable; try again".into())
        }
        _ => {
            tracing::error!(%error, "AWS IoT refused a call");
            ApiError::BadGateway(format!(
                "AWS IoT Core refused {} ({}); check the integration's AWS credentials and permissions",
                error.operation, error.code
            ))
        }
    }
}
