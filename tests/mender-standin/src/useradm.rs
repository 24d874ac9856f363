//! User administration (`/api/management/v1/useradm`): the caller's own
//! user, and personal access tokens.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::http::{ApiError, App, json_response, parse_json};
use crate::state::ts;

/// Longest personal access token lifetime Mender allows (one year).
pub(crate) const PAT_MAX_EXPIRES_IN: u64 = 31_536_000;

/// How Go renders a `time.Time` that was never set (a token without expiry).
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(crate) async fn me(AxumState(shared): App, caller: Caller) -> Result<Response, ApiError> {
    let state = shared.lock();
    let user = state
        .users
        .get(&caller.user_id)
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    let mut body = Map::new();
    body.insert("id".into(), json!(user.id));
    body.insert("email".into(), json!(user.email));
    body.insert("created_ts".into(), json!(ts(user.created_ts)));
    body.insert("updated_ts".into(), json!(ts(user.created_ts)));
    if let Some(roles) = &caller.roles {
        body.insert("roles".into(), json!(roles));
    }
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

pub(crate) async fn create_token(
    AxumState(shared): App,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: Value = parse_json(&body)?;
    let Some(fields) = request.as_object() else {
        return Err(ApiError::bad_request("cannot parse request body as json"));
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err(ApiError::bad_request("name: must be a non-empty string")),
        None => return Err(ApiError::bad_request("name: cannot be blank")),
    };
    let expires_in = match fields.get("expires_in") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .filter(|s| *s <= PAT_MAX_EXPIRES_IN)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "expires_in: must be an integer between 0 and {PAT_MAX_EXPIRES_IN}"
                ))
            })?,
    };
    let ttl = (expires_in > 0).then(|| Duration::from_secs(expires_in));

    let mut state = shared.lock();
    let duplicate = state
        .tokens
        .values()
        .any(|t| t.user_id == caller.user_id && t.pat.as_ref().is_some_and(|p| p.name == name));
    if duplicate {
        return Err(ApiError::conflict(
            "Personal Access Token with a given name already exists",
        ));
    }
    let (raw, _jti) = state
        .issue_token(&caller.user_id, ttl, Some(&name))
        .ok_or_else(ApiError::unauthorized)?;
    // The spec declares `application/json` with a string schema; the body is
    // the raw token, as Mender sends it.
    Ok(([(header::CONTENT_TYPE, "application/json")], raw).into_response())
}

pub(crate) async fn list_tokens(
    AxumState(shared): App,
    caller: Caller,
) -> Result<Response, ApiError> {
    let state = shared.lock();
    let mut tokens: Vec<_> = state
        .tokens
        .values()
        .filter(|t| t.user_id == caller.user_id)
        .filter_map(|t| t.pat.as_ref().map(|p| (t, p)))
        .collect();
    tokens.sort_by_key(|(t, _)| t.created_ts);
    let list: Vec<Value> = tokens
        .into_iter()
        .map(|(t, p)| {
            let mut item = Map::new();
            item.insert("id".into(), json!(t.jti));
            item.insert("name".into(), json!(p.name));
            item.insert(
                "expiration_date".into(),
                json!(t.expires.map_or_else(|| GO_ZERO_TIME.to_string(), ts)),
            );
            item.insert("created_ts".into(), json!(ts(t.created_ts)));
            if let Some(last_used) = p.last_used {
                item.insert("last_used".into(), json!(ts(last_used)));
            }
            Value::Object(item)
        })
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(list)))
}

pub(crate) async fn delete_token(
    AxumState(shared): App,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let mut state = shared.lock();
    state
        .tokens
        .retain(|_, t| !(t.jti == id && t.user_id == caller.user_id && t.pat.is_some()));
    StatusCode::NO_CONTENT.into_response()
}
