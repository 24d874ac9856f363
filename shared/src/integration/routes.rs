//! The routes of Mender's iot-manager management API that concern the
//! integration, under Mender's prefix ([`crate::http::API_PREFIX`]):
//! `GET`, `POST integrations` (list, create), `DELETE integrations/{id}`,
//! `PUT integrations/{id}/credentials`, `GET events` ([`events`]),
//! `DELETE devices/{device_id}` ([`unlink`]); and the
//! bridge's additions beside them: `GET`, `PUT integrations/{id}` (show,
//! replace everything), `GET external-id` (what a role's trust policy
//! needs, before setup), and the runs ([`runs`]):
//! `POST integrations/{id}/{reconcile,rotation}` and
//! `GET integrations/{id}/{reconcile,rotation}/{run_id}`.

use http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};

use super::IntegrationApi;
use super::credentials::{check_aws, check_configure, check_mender_token};
use super::events;
use super::failures;
use super::runs;
use super::steps::{self, setup_in_progress};
use super::trust::role_key;
use super::unlink;
use super::validation::{Setup, parse_credentials, parse_setup};
use crate::auth::{Caller, token_expiry};
use crate::clock::{epoch_seconds, rfc3339_of};
use crate::events::EventBus;
use crate::http::{API_PREFIX, ApiError, Paging, body_bytes, json_response};
use crate::index::ACTIVE;
use crate::reconcile::{RunKind, RunRequest};
use crate::settings::{AwsCredentials, IntegrationSettings, SettingsError};

/// Setup bodies are small; anything larger is not one.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What a request's path addresses (after Mender's prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `integrations`: list (`GET`), create (`POST`).
    Integrations,
    /// `integrations/{id}`: show (`GET`), replace (`PUT`), remove (`DELETE`).
    Integration(String),
    /// `integrations/{id}/credentials`: replace the credentials (`PUT`).
    Credentials(String),
    /// `integrations/{id}/{reconcile,rotation}`: start a run (`POST`).
    Runs(String, RunKind),
    /// `integrations/{id}/{reconcile,rotation}/{run_id}`: follow one (`GET`).
    Run(String, RunKind, String),
    /// `external-id` (`GET`).
    ExternalId,
    /// `events` (`GET`): the organization's event log.
    Events,
    /// `devices/{device_id}` (`DELETE`): unlink the device ([`unlink`]).
    Device,
}

impl Route {
    /// The route of a path, by its segments after `iot-manager` (whatever
    /// comes before, such as a stage name, is not ours to judge).
    pub fn of(path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let at = segments.iter().position(|s| *s == "iot-manager")?;
        let owned = |segment: &str| segment.to_owned();
        Some(match &segments[at + 1..] {
            ["integrations"] => Route::Integrations,
            ["integrations", id] => Route::Integration(owned(id)),
            ["integrations", id, "credentials"] => Route::Credentials(owned(id)),
            ["integrations", id, kind] => Route::Runs(owned(id), runs::kind_of(kind)?),
            ["integrations", id, kind, run_id] => {
                Route::Run(owned(id), runs::kind_of(kind)?, owned(run_id))
            }
            ["external-id"] => Route::ExternalId,
            ["events"] => Route::Events,
            ["devices", _] => Route::Device,
            _ => return None,
        })
    }

    /// The methods the route answers.
    fn methods(&self) -> &'static [Method] {
        match self {
            Route::Integrations => &[Method::GET, Method::POST],
            Route::Integration(_) => &[Method::GET, Method::PUT, Method::DELETE],
            Route::Credentials(_) => &[Method::PUT],
            Route::Runs(..) => &[Method::POST],
            Route::Run(..) | Route::ExternalId | Route::Events => &[Method::GET],
            Route::Device => &[Method::DELETE],
        }
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
    if !route.methods().contains(method) {
        let allowed: Vec<&str> = route.methods().iter().map(Method::as_str).collect();
        return Err(ApiError::MethodNotAllowed(format!(
            "{method} is not supported here; use {}",
            allowed.join(" or ")
        )));
    }
    let caller = api.auth.admin(request.headers()).await?;
    match route {
        Route::Integrations if method == Method::GET => list(api, &caller, request).await,
        Route::Integrations => submit(api, &caller, request, Submission::Create).await,
        Route::Integration(id) => match *method {
            Method::GET => Ok(json_response(
                200,
                &view(api, &integration(api, &caller, &id).await?),
            )),
            Method::PUT => submit(api, &caller, request, Submission::Replace(id)).await,
            _ => {
                finish_stopped_removal(api, &caller).await?;
                let settings = integration(api, &caller, &id).await?;
                steps::delete(api, &caller, &settings).await?;
                Ok(no_content())
            }
        },
        Route::Credentials(id) => submit(api, &caller, request, Submission::Credentials(id)).await,
        Route::ExternalId => {
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
        Route::Runs(id, RunKind::Sync) => {
            let settings = integration(api, &caller, &id).await?;
            runs::start_sync(api, &caller, &settings, request).await
        }
        Route::Runs(id, RunKind::Rotation) => {
            let settings = integration(api, &caller, &id).await?;
            runs::start_rotation(api, &caller, &settings, request).await
        }
        Route::Run(id, kind, run_id) => {
            let settings = integration(api, &caller, &id).await?;
            runs::get(api, &settings, kind, &run_id).await
        }
        Route::Events => events::list(api, &caller, request).await,
        Route::Device => unlink::unlink(api, &caller, request).await,
    }
}

/// `GET integrations`: the organization's one integration, or none, in
/// Mender's paging.
async fn list<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let query = request.query_string_parameters_ref();
    let paging = Paging::parse(|name| query.and_then(|q| q.first(name)))?;
    let listed = match current(api, caller).await {
        Ok(settings) if paging.page == 1 => vec![view(api, &settings)],
        Ok(_) | Err(ApiError::NotFound(_)) => vec![],
        Err(error) => return Err(error),
    };
    Ok(json_response(200, &Value::Array(listed)))
}

fn no_content() -> Response<Body> {
    Response::builder()
        .status(204)
        .body(Body::Empty)
        .expect("a valid response")
}

/// Where an integration is read, replaced and removed.
pub fn integration_path(id: &str) -> String {
    format!("{API_PREFIX}/integrations/{id}")
}

fn already_integrated(id: &str) -> ApiError {
    ApiError::Conflict(format!(
        "this organization already has integration {id}: replace its credentials with \
         PUT {path}/credentials, all of it with PUT {path}, or remove it first",
        path = integration_path(id)
    ))
}

/// A removal that stopped after deleting the integration's secrets left
/// its index entry active: the entry goes now, so that the organization
/// has no integration (`DELETE` answers 404, `POST` creates one).
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

/// The caller's organization's integration, if `id` names it (another
/// organization's is as good as none).
async fn integration<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    id: &str,
) -> Result<IntegrationSettings, ApiError> {
    match current(api, caller).await {
        Ok(settings) if settings.integration_id == id => Ok(settings),
        Ok(_) | Err(ApiError::NotFound(_)) => Err(ApiError::NotFound(format!(
            "this organization has no integration {id}"
        ))),
        Err(error) => Err(error),
    }
}

/// What a setup request asks for.
enum Submission {
    /// `POST integrations`: a new integration (the body: all of it).
    Create,
    /// `PUT integrations/{id}`: all of this one replaced.
    Replace(String),
    /// `PUT integrations/{id}/credentials`: this one's credentials
    /// replaced (the body: Mender's `Credentials`), the rest kept.
    Credentials(String),
}

/// A setup: only an allowed organization, not over its limit of failed
/// setups, gets as far as reading its integration, Mender and AWS (a body
/// that is not one is refused before any of them); a refusal of what it
/// sent counts against the limit (see [`failures`]).
async fn submit<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    request: &Request,
    submission: Submission,
) -> Result<Response<Body>, ApiError> {
    enrolled(api, caller)?;
    api.setup_failures.check(&caller.tenant_id).await?;
    let body = body_bytes(request.body());
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let credentials_only = matches!(submission, Submission::Credentials(_));
    let (setup, replacing) = match submission {
        Submission::Create => {
            let setup = parse_setup(body)?;
            finish_stopped_removal(api, caller).await?;
            if let Some(id) = api.index.active_integration(&caller.tenant_id).await? {
                return Err(already_integrated(&id));
            }
            (setup, None)
        }
        Submission::Replace(id) => {
            let setup = parse_setup(body)?;
            finish_stopped_removal(api, caller).await?;
            integration(api, caller, &id).await?;
            (setup, Some(id))
        }
        Submission::Credentials(id) => {
            let aws = parse_credentials(body)?;
            finish_stopped_removal(api, caller).await?;
            let settings = integration(api, caller, &id).await?;
            let setup = Setup {
                aws,
                description: settings.description,
                mender_token: None,
                backfill: settings.backfill,
                safety_limit: settings.safety_limit,
                adopt_existing: settings.adopt_existing,
            };
            (setup, Some(id))
        }
    };
    let result = set_up(api, caller, setup, replacing.as_deref()).await;
    if let Err(error) = &result
        && failures::counts(error)
        && let Err(table) = api.setup_failures.record(&caller.tenant_id).await
    {
        tracing::warn!(tenant = caller.tenant_id, error = %table, "could not count a failed setup");
    }
    match result {
        Ok(_) if credentials_only => Ok(no_content()),
        other => other,
    }
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
    replacing: Option<&str>,
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
    let result = connect(api, caller, setup, replacing).await;
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

/// The credentials tried, then the integration replaced (`replacing` it)
/// or created.
async fn connect<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    setup: Setup,
    replacing: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    if let Some(token) = &setup.mender_token {
        check_mender_token(api, caller, token).await?;
    }
    check_configure(api, caller).await?;
    check_aws(&api.aws, &caller.tenant_id, &setup.aws).await?;

    match (api.index.lookup(&caller.tenant_id).await?, replacing) {
        (Some(entry), Some(id)) if entry.state == ACTIVE && entry.integration_id == id => {
            let (settings, policy_changed) = steps::replace(api, id, setup).await?;
            let mut answer = view(api, &settings);
            if policy_changed {
                // Every certificate moves to the new policy now, not at
                // the next scheduled run.
                start_run_for(api, &settings, "policy", &mut answer).await;
            }
            Ok(json_response(200, &answer))
        }
        // Removed (or replaced by another) while this request was checked.
        (_, Some(id)) => Err(ApiError::NotFound(format!(
            "this organization has no integration {id}"
        ))),
        (Some(entry), None) if entry.state == ACTIVE => {
            Err(already_integrated(&entry.integration_id))
        }
        (Some(entry), None) if entry.claim_expires_at >= epoch_seconds() => {
            Err(setup_in_progress())
        }
        (_, None) => {
            let backfill = setup.backfill;
            let settings = steps::create(api, caller, setup).await?;
            let mut answer = view(api, &settings);
            if backfill {
                start_run_for(api, &settings, "backfill", &mut answer).await;
            }
            let mut response = json_response(201, &answer);
            let location = integration_path(&settings.integration_id)
                .parse()
                .expect("an integration's path is a valid header");
            response
                .headers_mut()
                .insert(http::header::LOCATION, location);
            Ok(response)
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
                "the {reason} run could not start; start one with POST {}/reconcile",
                integration_path(&settings.integration_id)
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
        let id = || "i1".to_owned();
        for (path, expected) in [
            (
                "/api/management/v1/iot-manager/integrations",
                Some(Route::Integrations),
            ),
            (
                "/api/management/v1/iot-manager/integrations/",
                Some(Route::Integrations),
            ),
            (
                "/prod/api/management/v1/iot-manager/integrations",
                Some(Route::Integrations),
            ),
            (
                "/api/management/v1/iot-manager/integrations/i1",
                Some(Route::Integration(id())),
            ),
            (
                "/api/management/v1/iot-manager/integrations/i1/credentials",
                Some(Route::Credentials(id())),
            ),
            (
                "/api/management/v1/iot-manager/integrations/i1/reconcile",
                Some(Route::Runs(id(), RunKind::Sync)),
            ),
            (
                "/api/management/v1/iot-manager/integrations/i1/reconcile/r1",
                Some(Route::Run(id(), RunKind::Sync, "r1".to_owned())),
            ),
            (
                "/api/management/v1/iot-manager/integrations/i1/rotation",
                Some(Route::Runs(id(), RunKind::Rotation)),
            ),
            (
                "/api/management/v1/iot-manager/integrations/i1/rotation/r1",
                Some(Route::Run(id(), RunKind::Rotation, "r1".to_owned())),
            ),
            (
                "/api/management/v1/iot-manager/external-id",
                Some(Route::ExternalId),
            ),
            ("/api/management/v1/iot-manager/events", Some(Route::Events)),
            (
                "/api/management/v1/iot-manager/devices/d1",
                Some(Route::Device),
            ),
            ("/api/management/v1/iot-manager/devices/d1/state", None),
            (
                "/api/management/v1/iot-manager/integrations/iot-manager",
                Some(Route::Integration("iot-manager".to_owned())),
            ),
            ("/api/management/v1/iot-manager/event", None),
            (
                "/api/management/v1/iot-manager/integrations/i1/reconciled",
                None,
            ),
            (
                "/api/management/v1/iot-manager/integrations/i1/reconcile/a/b",
                None,
            ),
            ("/api/management/v1/iot-manager", None),
            ("/integration", None),
            ("/", None),
        ] {
            assert_eq!(Route::of(path), expected, "{path}");
        }
    }
}
