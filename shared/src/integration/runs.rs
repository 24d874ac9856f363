//! The run routes, under the integration (`integrations/{id}/…`):
//! `POST reconcile` starts a sync run, `POST rotation` a rotation run (both
//! through the bus, one run of either kind at a time per organization), and
//! `GET {reconcile,rotation}/{run_id}` follows one.

use std::collections::HashSet;

use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use super::IntegrationApi;
use crate::auth::Caller;
use crate::events::EventBus;
use crate::http::{ApiError, FieldProblem, body_bytes, json_response};
use crate::reconcile::{MAX_DEVICE_IDS, ReconcileError, RunKind, RunRequest, RunState, Scope};
use crate::settings::IntegrationSettings;

/// A rotation body names up to [`MAX_DEVICE_IDS`] ids of up to 128
/// characters: this holds them, and nothing much larger.
pub const MAX_ROTATION_BODY_BYTES: usize = 160 * 1024;

/// `POST integrations/{id}/reconcile`: a sync run of every device; with
/// `{"confirm": "<run_id>"}`, one that carries out what that held run would
/// have disabled and removed.
pub async fn start_sync<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    settings: &IntegrationSettings,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let confirmed = match confirmation(body_bytes(request.body()))? {
        None => false,
        Some(held) => match own_run(api, caller, &held).await? {
            Some(run) if run.state == RunState::Held => true,
            Some(_) => {
                return Err(ApiError::Conflict(format!(
                    "reconcile run {held} is not held; only a held run can be confirmed"
                )));
            }
            None => return Err(ApiError::NotFound(format!("no reconcile run {held}"))),
        },
    };
    start(api, settings, RunRequest::Sync { confirmed }).await
}

/// `POST integrations/{id}/rotation`: a rotation run of every accepted device,
/// of a Mender group (`{"group": "…"}`, which the caller must be able to
/// list in Mender), or of the devices named (`{"device_ids": […]}`).
pub async fn start_rotation<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    settings: &IntegrationSettings,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let body = body_bytes(request.body());
    if body.len() > MAX_ROTATION_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_ROTATION_BODY_BYTES,
        });
    }
    let scope = rotation_scope(body)?;
    if let Some(Scope::Group(group)) = &scope {
        let listed = caller.mender(&api.auth).group_devices(group, 1, 1).await;
        match listed {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(ApiError::InvalidFields(vec![FieldProblem::new(
                    "group",
                    format!(
                        "Mender has no group `{group}` (a group exists while a device is in it)"
                    ),
                )]));
            }
            Err(error) if error.is_transient() => {
                return Err(ApiError::ServiceUnavailable(
                    "Mender is unavailable; try again".into(),
                ));
            }
            Err(error) => {
                tracing::error!(%error, "Mender's group listing failed");
                return Err(ApiError::BadGateway(format!(
                    "Mender did not list group `{group}` as its API says"
                )));
            }
        }
    }
    start(api, settings, RunRequest::Rotation(scope)).await
}

/// What names the organization's last run of a kind in place of its id
/// (run ids are UUIDs, so it names no other).
pub const LATEST: &str = "latest";

/// `GET integrations/{id}/{reconcile,rotation}/{run_id}`: a run of the
/// integration, of the kind its route names; `…/latest` the one started last.
pub async fn get<B>(
    api: &IntegrationApi<B>,
    settings: &IntegrationSettings,
    kind: RunKind,
    run_id: &str,
) -> Result<Response<Body>, ApiError> {
    let run = if run_id == LATEST {
        api.runs.latest(&settings.tenant_id, kind).await
    } else {
        api.runs.get(run_id).await
    };
    let run = run
        .map_err(runs_unavailable)?
        .filter(|run| {
            run.kind == kind
                && run.tenant_id == settings.tenant_id
                && run.integration_id == settings.integration_id
        })
        .ok_or_else(|| match run_id {
            LATEST => ApiError::NotFound(format!(
                "the integration has no {} run yet (runs are kept 30 days)",
                segment(kind)
            )),
            _ => ApiError::NotFound(format!("no {} run {run_id}", segment(kind))),
        })?;
    Ok(json_response(
        200,
        &serde_json::to_value(&run).expect("a run serializes"),
    ))
}

async fn start<B: EventBus>(
    api: &IntegrationApi<B>,
    settings: &IntegrationSettings,
    request: RunRequest,
) -> Result<Response<Body>, ApiError> {
    match api.start_run(settings, request).await {
        Ok(run) => Ok(json_response(
            202,
            &json!({ "run_id": run.run_id, "kind": run.kind, "state": run.state }),
        )),
        Err(ReconcileError::AlreadyRunning(run_id)) => Err(ApiError::Conflict(format!(
            "a run is already under way for this organization: {run_id}"
        ))),
        Err(error) => Err(runs_unavailable(error)),
    }
}

/// A run of the caller's organization (another's is as good as none).
async fn own_run<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    run_id: &str,
) -> Result<Option<crate::reconcile::ReconcileRun>, ApiError> {
    let run = api.runs.get(run_id).await.map_err(runs_unavailable)?;
    Ok(run.filter(|run| run.tenant_id == caller.tenant_id))
}

/// The path segment that names runs of a kind (`…/reconcile`, `…/rotation`).
pub fn segment(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Sync => "reconcile",
        RunKind::Rotation => "rotation",
    }
}

/// The kind of run a path segment names.
pub fn kind_of(segment_text: &str) -> Option<RunKind> {
    [RunKind::Sync, RunKind::Rotation]
        .into_iter()
        .find(|kind| segment(*kind) == segment_text)
}

/// A body as a JSON object, or `None` when there is none (or `{}`).
fn object(body: &[u8]) -> Result<Option<serde_json::Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) if fields.is_empty() => Ok(None),
        Ok(Value::Object(fields)) => Ok(Some(fields)),
        Ok(_) => Err(ApiError::BadRequest("body must be a JSON object".into())),
        Err(e) => Err(ApiError::BadRequest(format!("body is not valid JSON: {e}"))),
    }
}

/// Pure: the held run a `POST …/reconcile` body confirms, if any.
fn confirmation(body: &[u8]) -> Result<Option<String>, ApiError> {
    let Some(fields) = object(body)? else {
        return Ok(None);
    };
    match fields.get("confirm") {
        Some(Value::String(id)) if fields.len() == 1 && uuid::Uuid::parse_str(id).is_ok() => {
            Ok(Some(id.clone()))
        }
        _ => Err(ApiError::InvalidFields(vec![FieldProblem::new(
            "confirm",
            "must be the id of a held reconcile run",
        )])),
    }
}

/// Pure: the devices a `POST …/rotation` body names; `None` for
/// every accepted device. Every problem is named at once.
fn rotation_scope(body: &[u8]) -> Result<Option<Scope>, ApiError> {
    let Some(fields) = object(body)? else {
        return Ok(None);
    };
    let mut problems: Vec<FieldProblem> = fields
        .keys()
        .filter(|field| !["group", "device_ids"].contains(&field.as_str()))
        .map(|field| FieldProblem::new(field, "unknown field; use `group` or `device_ids`"))
        .collect();
    let scope = match (fields.get("group"), fields.get("device_ids")) {
        (Some(_), Some(_)) => {
            problems.push(FieldProblem::new(
                "group",
                "name a group or device ids, not both",
            ));
            None
        }
        (Some(group), None) => group_name(group)
            .map_err(|problem| problems.push(problem))
            .ok(),
        (None, Some(ids)) => device_ids(ids)
            .map_err(|problem| problems.push(problem))
            .ok(),
        (None, None) => None,
    };
    match (problems.is_empty(), scope) {
        (true, scope) => Ok(scope),
        (false, _) => Err(ApiError::InvalidFields(problems)),
    }
}

fn group_name(value: &Value) -> Result<Scope, FieldProblem> {
    match value.as_str() {
        Some(name)
            if !name.is_empty() && name.len() <= 1024 && !name.chars().any(char::is_control) =>
        {
            Ok(Scope::Group(name.to_owned()))
        }
        _ => Err(FieldProblem::new(
            "group",
            "must be the name of a Mender device group (1 to 1024 characters)",
        )),
    }
}

fn device_ids(value: &Value) -> Result<Scope, FieldProblem> {
    let problem = |message: String| FieldProblem::new("device_ids", message);
    let Some(ids) = value.as_array().filter(|ids| !ids.is_empty()) else {
        return Err(problem(format!(
            "must be a list of 1 to {MAX_DEVICE_IDS} Mender device ids"
        )));
    };
    if ids.len() > MAX_DEVICE_IDS {
        return Err(problem(format!(
            "names {} devices, more than {MAX_DEVICE_IDS}; rotate a Mender group instead",
            ids.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut valid = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        match id.as_str() {
            Some(id) if !crate::iot::is_valid_thing_name(id) => {
                return Err(problem(format!(
                    "[{index}] `{id}` cannot be a device id (1 to 128 of a-z, A-Z, 0-9, `:`, `_`, `-`)"
                )));
            }
            Some(id) if !seen.insert(id) => {
                return Err(problem(format!("[{index}] `{id}` is named twice")));
            }
            Some(id) => valid.push(id.to_owned()),
            None => return Err(problem(format!("[{index}] must be a string"))),
        }
    }
    Ok(Scope::DeviceIds(valid))
}

fn runs_unavailable(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "runs unavailable");
    ApiError::ServiceUnavailable("runs are unavailable; try again".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_names_one_run() {
        let id = "5a11e000-0000-4000-8000-000000000003";
        assert_eq!(confirmation(b"").unwrap(), None);
        assert_eq!(confirmation(b" {} ").unwrap(), None);
        assert_eq!(
            confirmation(format!(r#"{{"confirm":"{id}"}}"#).as_bytes()).unwrap(),
            Some(id.to_owned())
        );
        for bad in [
            &br#"{"confirm":"yes"}"#[..],
            br#"{"confirm":true}"#,
            br#"{"confirm":"5a11e000-0000-4000-8000-000000000003","x":1}"#,
        ] {
            assert!(matches!(confirmation(bad), Err(ApiError::InvalidFields(_))));
        }
        for bad in [&b"{"[..], b"[]"] {
            assert!(matches!(confirmation(bad), Err(ApiError::BadRequest(_))));
        }
    }

    #[test]
    fn a_rotation_names_every_device_a_group_or_ids() {
        let group = |name: &str| Some(Scope::Group(name.to_owned()));
        let ids = |ids: &[&str]| {
            Some(Scope::DeviceIds(
                ids.iter().map(|id| id.to_string()).collect(),
            ))
        };
        for (body, expected) in [
            (&b""[..], None),
            (b"{}", None),
            (br#"{"group":"field-test"}"#, group("field-test")),
            (
                br#"{"group":"Gr\u00fcne Ger\u00e4te"}"#,
                group("Grüne Geräte"),
            ),
            (br#"{"device_ids":["a1","b-2"]}"#, ids(&["a1", "b-2"])),
        ] {
            assert_eq!(
                rotation_scope(body).unwrap(),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_rotation_body_that_names_nothing_clearly_is_refused_with_every_problem() {
        let too_many: Vec<String> = (0..=MAX_DEVICE_IDS).map(|i| format!("d{i}")).collect();
        let too_many = serde_json::to_vec(&json!({ "device_ids": too_many })).unwrap();
        for (body, fields, says) in [
            (&br#"{"group":""}"#[..], vec!["group"], "1 to 1024"),
            (br#"{"group":7}"#, vec!["group"], "1 to 1024"),
            (br#"{"group":"a\nb"}"#, vec!["group"], "1 to 1024"),
            (
                br#"{"group":"a","device_ids":["b"]}"#,
                vec!["group"],
                "not both",
            ),
            (br#"{"device_ids":[]}"#, vec!["device_ids"], "1 to 1000"),
            (br#"{"device_ids":"a"}"#, vec!["device_ids"], "1 to 1000"),
            (
                br#"{"device_ids":["a","a"]}"#,
                vec!["device_ids"],
                "[1] `a` is named twice",
            ),
            (
                br#"{"device_ids":["a b"]}"#,
                vec!["device_ids"],
                "cannot be a device id",
            ),
            (
                br#"{"device_ids":[1]}"#,
                vec!["device_ids"],
                "[0] must be a string",
            ),
            (&too_many, vec!["device_ids"], "more than 1000"),
            (
                br#"{"grop":"a","device_ids":[1]}"#,
                vec!["grop", "device_ids"],
                "unknown field",
            ),
        ] {
            let Err(ApiError::InvalidFields(problems)) = rotation_scope(body) else {
                panic!("accepted: {}", String::from_utf8_lossy(body));
            };
            let named: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
            assert_eq!(named, fields, "{}", String::from_utf8_lossy(body));
            assert!(
                problems.iter().any(|p| p.problem.contains(says)),
                "{problems:?}"
            );
        }
        for bad in [&b"["[..], b"[\"a\"]", b"\"all\""] {
            assert!(matches!(rotation_scope(bad), Err(ApiError::BadRequest(_))));
        }
    }
}
