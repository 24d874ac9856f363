//! The routes: `GET`, `PUT`, `DELETE /integration` (an organization's admin
//! sets the bridge up), `GET /integration/external-id` (what the role's
//! trust policy needs, before setup), and the runs ([`runs`]):
//! `POST /integration/reconcile`, `GET /integration/reconcile/{run_id}`
//! (sync runs), `POST /integration/rotation`,
//! `GET /integration/rotation/{run_id}` (rotation runs), and the event log
//! in Mender's shape, `GET /api/management/v1/iot-manager/events` ([`events`]).

use http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use super::IntegrationApi;
use super::credentials::{check_aws, check_configure, check_mender_token};
use super::events;
use super::failures;
use super::runs;
use super::steps::{self, setup_in_progress};
use super::trust::role_key;
use super::validation::{Setup, parse_setup};
use crate::auth::{Caller, token_expiry};
use crate::clock::{epoch_seconds, rfc3339_of};
use crate::events::EventBus;
use crate::http::{ApiError, body_bytes, json_response};
use crate::index::ACTIVE;
use crate::reconcile::{RunKind, RunRequest};
use crate::settings::{AwsCredentials, IntegrationSettings, SettingsError};

/// Setup bodies are small; anything larger is not one.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What a request's path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Integration,
    ExternalId,
    /// Where runs of a kind are started.
    Runs(RunKind),
    Run(RunKind, String),
    /// The organization's event log.
    Events,
}

impl Route {
    /// The route of a path, by its segments (whatever comes before
    /// `integration`, such as a stage name, is not ours to judge).
    pub fn of(path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [.., "iot-manager", "events"] => Some(Route::Events),
            [.., "integration"] => Some(Route::Integration),
            [.., "integration", "external-id"] => Some(Route::ExternalId),
            [.., "integration", runs] => Some(Route::Runs(run_kind(runs)?)),
            [.., "integration", runs, run_id] => {
                Some(Route::Run(run_kind(runs)?, (*run_id).to_owned()))
            }
            _ => None,
        }
    }
}

/// The kind of run a path segment names.
fn run_kind(segment: &str) -> Option<RunKind> {
    match segment {
        "reconcile" => Some(RunKind::Sync),
        "rotation" => Some(RunKind::Rotation),
        _ => None,
    }
}

pub async fn handle<B: EventBus>(api: &IntegrationApi<B>, request: Request) -> Response<Body> {
    let result = route(api, &request).await;
    crate::http::answer(&request, result)
}

async fn route<B: EventBus>(
    api: &IntegrationApi<B>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let route = Route::of(request.uri().path())
        .ok_or_else(|| ApiError::NotFound("no such route".into()))?;
    let method = request.method();
    let allowed = match (&route, method) {
        (Route::Integration, &Method::GET | &Method::PUT | &Method::DELETE) => true,
        (Route::Runs(_), &Method::POST)
        | (Route::Run(..), &Method::GET)
        | (Route::ExternalId, &Method::GET)
        | (Route::Events, &Method::GET) => true,
        (Route::Integration, _) => {
            return Err(ApiError::MethodNotAllowed("use GET, PUT or DELETE".into()));
        }
        _ => false,
    };
    if !allowed {
        return Err(ApiError::MethodNotAllowed(
            "use GET /integration/external-id, POST /integration/reconcile, \
             GET /integration/reconcile/{run_id}, POST /integration/rotation, \
             GET /integration/rotation/{run_id} or GET /api/management/v1/iot-manager/events"
                .into(),
        ));
    }
    let caller = api.auth.admin(request.headers()).await?;
    match (route, method) {
        (Route::Integration, &Method::GET) => {
            let settings = current(api, &caller).await?;
            Ok(json_response(200, &view(api, &settings)))
        }
        (Route::Integration, &Method::PUT) => put(api, &caller, request).await,
        (Route::Integration, _) => {
            finish_stopped_removal(api, &caller).await?;
            let settings = current(api, &caller).await?;
            steps::delete(api, &caller, &settings).await?;
            Ok(Response::builder()
                .status(204)
                .body(Body::Empty)
                .expect("a valid response"))
        }
        (Route::ExternalId, _) => {
            enrolled(api, &caller)?;
            let external_id = api.trust.external_id(&caller.tenant_id).await?;
            Ok(json_response(
                200,
                &json!({
                    "external_id": external_id,
                    "role_session_name": crate::aws::session_name(&caller.tenant_id),
                    "trust_policy": api.trust.policy(&external_id, &caller.tenant_id),
                }),
            ))
        }
        (Route::Runs(RunKind::Sync), _) => {
            let settings = current(api, &caller).await?;
            runs::start_sync(api, &caller, &settings, request).await
        }
        (Route::Runs(RunKind::Rotation), _) => {
            let settings = current(api, &caller).await?;
            runs::start_rotation(api, &caller, &settings, request).await
        }
        (Route::Run(kind, run_id), _) => runs::get(api, &caller, kind, &run_id).await,
        (Route::Events, _) => events::list(api, &caller, request).await,
    }
}

/// A removal that stopped after deleting the integration's secrets left
/// its index entry active: the entry goes now, so that the organization
/// has no integration (`DELETE` answers 404, `PUT` creates one).
async fn finish_stopped_removal<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
) -> Result<(), ApiError> {
    let Some(id) = api.index.active_integration(&caller.tenant_id).await? else {
        return Ok(());
    };
    if let Err(SettingsError::NotFound(_)) = api.settings.refresh(&id).await {
        api.index.remove(&caller.tenant_id, &id).await?;
        tracing::warn!(
            tenant = caller.tenant_id,
            integration_id = id,
            "finished a removal that stopped after deleting the integration's secrets"
        );
    }
    Ok(())
}

/// The caller's organization's integration, read fresh.
async fn current<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
) -> Result<IntegrationSettings, ApiError> {
    let id = api.index.active_integration(&caller.tenant_id).await?;
    let id = id.ok_or_else(|| ApiError::NotFound("this organization has no integration".into()))?;
    Ok(IntegrationSettings::clone(
        &*api.settings.refresh(&id).await?,
    ))
}

/// `PUT /integration`: only an allowed organization, not over its limit of
/// failed setups, gets as far as Mender and AWS; a refusal of what it sent
/// counts against the limit (see [`failures`]).
async fn put<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    enrolled(api, caller)?;
    api.setup_failures.check(&caller.tenant_id).await?;
    let body = body_bytes(request.body());
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let setup = parse_setup(body)?;
    finish_stopped_removal(api, caller).await?;
    let result = set_up(api, caller, setup).await;
    if let Err(error) = &result
        && failures::counts(error)
        && let Err(table) = api.setup_failures.record(&caller.tenant_id).await
    {
        tracing::warn!(tenant = caller.tenant_id, error = %table, "could not count a failed setup");
    }
    result
}

/// Only an organization the operator allows may set up, or see what
/// setting up needs.
fn enrolled<B>(api: &IntegrationApi<B>, caller: &Caller) -> Result<(), ApiError> {
    if api.enrollment.allows(&caller.tenant_id) {
        return Ok(());
    }
    tracing::warn!(
        tenant = caller.tenant_id,
        "setup refused: the organization is not allowed"
    );
    Err(ApiError::Forbidden(format!(
        "organization {} is not allowed to set up an integration with this bridge; \
         ask the bridge's operator to add it to the allowed organizations",
        caller.tenant_id
    )))
}

/// A well-formed setup: a role claimed for the organization (with the
/// bridge's external id), then the rest; a role claimed for a setup that
/// failed is given up again.
async fn set_up<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    mut setup: Setup,
) -> Result<Response<Body>, ApiError> {
    let role = setup.aws.credentials.role_arn().map(str::to_owned);
    if let AwsCredentials::AssumeRole {
        role_arn,
        external_id,
    } = &mut setup.aws.credentials
    {
        if !api.trust.claim_role(role_arn, &caller.tenant_id).await? {
            tracing::warn!(
                tenant = caller.tenant_id,
                "setup refused: the role is another organization's"
            );
            return Err(ApiError::Conflict(
                "credentials.aws.role_arn is used by another organization's integration; \
                 each organization needs a role of its own"
                    .into(),
            ));
        }
        *external_id = Some(api.trust.external_id(&caller.tenant_id).await?);
    }
    let result = connect(api, caller, setup).await;
    if result.is_err()
        && let Some(role) = role
    {
        let in_use = current(api, caller).await.ok().and_then(|settings| {
            settings
                .aws
                .credentials
                .role_arn()
                .map(|used| role_key(used) == role_key(&role))
        });
        if in_use != Some(true)
            && let Err(error) = api.trust.release_role(&role, &caller.tenant_id).await
        {
            tracing::warn!(%error, "could not give up the role of a failed setup");
        }
    }
    result
}

/// The credentials tried, then the integration replaced or created.
async fn connect<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    setup: Setup,
) -> Result<Response<Body>, ApiError> {
    if let Some(token) = &setup.mender_token {
        check_mender_token(api, caller, token).await?;
    }
    check_configure(api, caller).await?;
    check_aws(&api.aws, &caller.tenant_id, &setup.aws).await?;

    match api.index.lookup(&caller.tenant_id).await? {
        Some(entry) if entry.state == ACTIVE => {
            let (settings, policy_changed) =
                steps::replace(api, &entry.integration_id, setup).await?;
            let mut answer = view(api, &settings);
            if policy_changed {
                // Every certificate moves to the new policy now, not at
                // the next scheduled run.
                start_run_for(api, &settings, "policy", &mut answer).await;
            }
            Ok(json_response(200, &answer))
        }
        Some(entry) if entry.claim_expires_at >= epoch_seconds() => Err(setup_in_progress()),
        _ => {
            let backfill = setup.backfill;
            let settings = steps::create(api, caller, setup).await?;
            let mut answer = view(api, &settings);
            if backfill {
                start_run_for(api, &settings, "backfill", &mut answer).await;
            }
            Ok(json_response(201, &answer))
        }
    }
}

/// Starts a reconcile run for `reason` and says so in `answer`
/// (`<reason>_run_id`). The integration is stored either way: a run that
/// could not start is reported (`<reason>_error`) and can be started again
/// by hand.
async fn start_run_for<B: EventBus>(
    api: &IntegrationApi<B>,
    settings: &IntegrationSettings,
    reason: &str,
    answer: &mut Value,
) {
    match api
        .start_run(settings, RunRequest::Sync { confirmed: false })
        .await
    {
        Ok(run) => answer[format!("{reason}_run_id")] = json!(run.run_id),
        Err(error) => {
            tracing::error!(%error, reason, "could not start a reconcile run");
            answer[format!("{reason}_error")] = json!(format!(
                "the {reason} run could not start; use POST /integration/reconcile"
            ));
        }
    }
}

/// The integration as callers see it: no secret value, ever.
fn view<B>(api: &IntegrationApi<B>, settings: &IntegrationSettings) -> Value {
    let aws = &settings.aws;
    let mut credentials =
        json!({ "region": aws.region, "device_policy_name": aws.device_policy_name });
    match &aws.credentials {
        AwsCredentials::AccessKey { access_key_id, .. } => {
            credentials["access_key_id"] = json!(access_key_id);
            credentials["secret_access_key"] = json!("<omitted>");
        }
        AwsCredentials::AssumeRole {
            role_arn,
            external_id,
        } => {
            credentials["role_arn"] = json!(role_arn);
            credentials["external_id"] = json!(external_id);
        }
    }
    json!({
        "id": settings.integration_id,
        "provider": "iot-core",
        "credentials": { "type": "aws", "aws": credentials },
        "description": settings.description,
        "webhook_url": api.webhook_url(&settings.integration_id),
        "backfill": settings.backfill,
        "adopt_existing": settings.adopt_existing,
        "safety_limit": settings.safety_limit,
        "mender_token_expires_at": token_expiry(settings.mender.token.expose()).map(rfc3339_of),
        "mender_token_renewal": if settings.mender.token_id.is_some() { "automatic" } else { "admin" },
        "created_at": settings.created_at,
        "updated_at": settings.updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path_segments() {
        for (path, expected) in [
            ("/integration", Some(Route::Integration)),
            ("/integration/", Some(Route::Integration)),
            ("/prod/integration", Some(Route::Integration)),
            ("/integration/reconcile", Some(Route::Runs(RunKind::Sync))),
            (
                "/integration/reconcile/abc",
                Some(Route::Run(RunKind::Sync, "abc".to_owned())),
            ),
            (
                "/integration/rotation",
                Some(Route::Runs(RunKind::Rotation)),
            ),
            (
                "/integration/rotation/abc",
                Some(Route::Run(RunKind::Rotation, "abc".to_owned())),
            ),
            ("/integration/external-id", Some(Route::ExternalId)),
            ("/api/management/v1/iot-manager/events", Some(Route::Events)),
            (
                "/prod/api/management/v1/iot-manager/events",
                Some(Route::Events),
            ),
            ("/api/management/v1/iot-manager/event", None),
            ("/integration/reconciled", None),
            ("/integration/reconcile/a/b", None),
            ("/integration/rotations", None),
            ("/devices/x/state", None),
            ("/", None),
        ] {
            assert_eq!(Route::of(path), expected, "{path}");
        }
    }
}
