//! Mender Configure (`/api/management/v1/deviceconfig`).
//!
//! As in Mender, a device has a configuration record from its first
//! acceptance until it is decommissioned; `GET` and `deploy` answer 404
//! without one, while `PUT` creates it (Mender upserts, and the spec declares
//! no 404 for `PUT`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::devauth::visible_device;
use crate::http::{ApiError, App, json_response, parse_json};
use crate::state::{State, new_id, now, ts};

pub(crate) const MAX_KEYS: usize = 100;
pub(crate) const MAX_LEN: usize = 4096;
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// 403 when the organization lacks the Configure add-on, when the device
/// exists and the caller's groups exclude it, or when a group-restricted
/// caller names a device it cannot see at all.
fn check_access(state: &State, caller: &Caller, device_id: &str) -> Result<(), ApiError> {
    if state
        .tenants
        .get(&caller.tenant_id)
        .is_some_and(|tenant| !tenant.configure)
    {
        return Err(ApiError::forbidden());
    }
    match visible_device(state, caller, device_id) {
        Ok(_) => Ok(()),
        Err(e) if e.status == StatusCode::FORBIDDEN => Err(e),
        Err(_) if caller.device_groups.is_some() => Err(ApiError::forbidden()),
        Err(_) => Ok(()),
    }
}

pub(crate) async fn get_configuration(
    AxumState(shared): App,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = shared.lock();
    check_access(&state, &caller, &id)?;
    let config = state
        .configs
        .get(&(caller.tenant_id.clone(), id.clone()))
        .ok_or_else(|| ApiError::not_found("device not found"))?;
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("configured".into(), json!(config.configured));
    body.insert("reported".into(), json!(config.reported));
    if let Some(deployment_id) = &config.deployment_id {
        body.insert("deployment_id".into(), json!(deployment_id));
    }
    if let Some(updated) = config.updated_ts {
        body.insert("updated_ts".into(), json!(ts(updated)));
    }
    if let Some(reported) = config.reported_ts {
        body.insert("reported_ts".into(), json!(ts(reported)));
    }
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

/// Mender's limits on a configuration: a flat object of strings, keys and
/// values at most 4096 characters, at most 100 keys.
pub(crate) fn validate_configuration(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let Some(fields) = value.as_object() else {
        return Err("the configuration must be a JSON object".into());
    };
    if fields.len() > MAX_KEYS {
        return Err(format!(
            "too many configuration keys: {} (max {MAX_KEYS})",
            fields.len()
        ));
    }
    let mut config = BTreeMap::new();
    for (key, value) in fields {
        if key.is_empty() {
            return Err("key: cannot be blank".into());
        }
        if key.chars().count() > MAX_LEN {
            return Err(format!("key: the length must be no more than {MAX_LEN}"));
        }
        let Some(value) = value.as_str() else {
            return Err(format!("value of {key:?}: must be a string"));
        };
        if value.chars().count() > MAX_LEN {
            return Err(format!(
                "value of {key:?}: the length must be no more than {MAX_LEN}"
            ));
        }
        config.insert(key.clone(), value.to_string());
    }
    Ok(config)
}

pub(crate) async fn set_configuration(
    AxumState(shared): App,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    if body.len() > MAX_BODY {
        return Err(ApiError::bad_request("request body too large"));
    }
    let value: Value = parse_json(&body)?;
    let config = validate_configuration(&value)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;

    let mut state = shared.lock();
    check_access(&state, &caller, &id)?;
    let record = state
        .configs
        .entry((caller.tenant_id.clone(), id))
        .or_default();
    record.configured = config;
    record.updated_ts = Some(now());
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn deploy(
    AxumState(shared): App,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let mut state = shared.lock();
    check_access(&state, &caller, &id)?;
    let key = (caller.tenant_id.clone(), id);
    if !state.configs.contains_key(&key) {
        return Err(ApiError::not_found("device not found"));
    }

    let request: Value = parse_json(&body)?;
    let Some(fields) = request.as_object() else {
        return Err(ApiError::bad_request(
            "malformed request body: expected an object",
        ));
    };
    if let Some(retries) = fields.get("retries")
        && retries.as_u64().is_none()
    {
        return Err(ApiError::bad_request(
            "retries: must be a non-negative integer",
        ));
    }
    if fields
        .get("update_control_map")
        .is_some_and(|m| !m.is_object())
    {
        return Err(ApiError::bad_request(
            "update_control_map: must be an object",
        ));
    }

    let deployment_id = new_id();
    if let Some(record) = state.configs.get_mut(&key) {
        record.deployment_id = Some(deployment_id.clone());
        record.deployments.push(deployment_id.clone());
        record.deployed = Some(record.configured.clone());
    }
    Ok(json_response(
        StatusCode::OK,
        json!({ "deployment_id": deployment_id }),
    ))
}
