//! Integrations (`/api/management/v1/iot-manager/integrations`).
//!
//! A tenant has at most one integration of any kind (409 otherwise). Only
//! admins may list, create or remove integrations. Secrets are never shown
//! back: Mender renders them as `"<omitted>"`.

use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::http::{ApiError, App, json_response, parse_json};
use crate::state::{Integration, new_id};

pub(crate) const INTEGRATIONS_PATH: &str = "/api/management/v1/iot-manager/integrations";
const OMITTED: &str = "<omitted>";
const DESCRIPTION_MAX: usize = 1024;

/// Mender's rule for webhook secrets: lowercase hex, 1 to 64 characters,
/// and decodable (so an even number of digits).
pub(crate) fn valid_secret(secret: &str) -> bool {
    (1..=64).contains(&secret.len())
        && secret.len().is_multiple_of(2)
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn string_field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match object.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ApiError::bad_request(format!(
            "{name}: must be a non-empty string"
        ))),
        None => Err(ApiError::bad_request(format!("{name}: cannot be blank"))),
    }
}

/// Validates a registration body into (provider, credentials, description).
fn parse_integration(body: &Value) -> Result<(String, Value, Option<String>), ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request(
            "malformed request body: expected an object",
        ));
    };
    let provider = string_field(fields, "provider")?;
    let expected_type = match provider {
        "iot-hub" => "sas",
        "iot-core" => "aws",
        "webhook" => "http",
        other => {
            return Err(ApiError::bad_request(format!(
                "provider: unknown provider {other:?}"
            )));
        }
    };
    let Some(credentials) = fields.get("credentials").and_then(Value::as_object) else {
        return Err(ApiError::bad_request("credentials: cannot be blank"));
    };
    let kind = string_field(credentials, "type")?;
    if kind != expected_type {
        return Err(ApiError::bad_request(format!(
            "provider: '{provider}' incompatible with credential type '{kind}'"
        )));
    }
    match kind {
        "http" => {
            let Some(http) = credentials.get("http").and_then(Value::as_object) else {
                return Err(ApiError::bad_request(
                    "credentials: (http: cannot be blank.)",
                ));
            };
            let url = string_field(http, "url")?;
            match reqwest::Url::parse(url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => return Err(ApiError::bad_request(format!("url: invalid URL {url:?}"))),
            }
            match http.get("secret") {
                None => {}
                Some(Value::String(secret)) if valid_secret(secret) => {}
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "secret: value error: {other} is not a hexadecimal string of at most 64 digits"
                    )));
                }
            }
        }
        "aws" => {
            let Some(aws) = credentials.get("aws").and_then(Value::as_object) else {
                return Err(ApiError::bad_request(
                    "credentials: (aws: cannot be blank.)",
                ));
            };
            for field in [
                "access_key_id",
                "secret_access_key",
                "region",
                "device_policy_name",
            ] {
                string_field(aws, field)?;
            }
        }
        _ => {
            string_field(credentials, "connection_string")?;
        }
    }
    let description = match fields.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.chars().count() <= DESCRIPTION_MAX => Some(d.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "description: must be a string of at most {DESCRIPTION_MAX} characters"
            )));
        }
    };
    Ok((
        provider.to_string(),
        Value::Object(credentials.clone()),
        description,
    ))
}

fn integration_json(integration: &Integration) -> Value {
    let mut credentials = integration.credentials.clone();
    if let Some(secret) = credentials.pointer_mut("/http/secret") {
        *secret = json!(OMITTED);
    }
    if let Some(secret) = credentials.pointer_mut("/aws/secret_access_key") {
        *secret = json!(OMITTED);
    }
    if let Some(secret) = credentials.pointer_mut("/connection_string") {
        *secret = json!(OMITTED);
    }
    let mut body = Map::new();
    body.insert("id".into(), json!(integration.id));
    body.insert("provider".into(), json!(integration.provider));
    body.insert("credentials".into(), credentials);
    if let Some(description) = &integration.description {
        body.insert("description".into(), json!(description));
    }
    Value::Object(body)
}

pub(crate) async fn list(AxumState(shared): App, caller: Caller) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let state = shared.lock();
    let list: Vec<Value> = state
        .integrations
        .get(&caller.tenant_id)
        .map(integration_json)
        .into_iter()
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(list)))
}

pub(crate) async fn create(
    AxumState(shared): App,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let body: Value = parse_json(&body)?;
    let (provider, credentials, description) = parse_integration(&body)?;

    let mut state = shared.lock();
    if state.integrations.contains_key(&caller.tenant_id) {
        return Err(ApiError::conflict("integration already exists"));
    }
    let id = new_id();
    state.integrations.insert(
        caller.tenant_id.clone(),
        Integration {
            id: id.clone(),
            provider,
            credentials,
            description,
        },
    );
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{INTEGRATIONS_PATH}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub(crate) async fn remove(
    AxumState(shared): App,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::bad_request("integration ID must be a valid UUID"));
    }
    let mut state = shared.lock();
    let matches = state
        .integrations
        .get(&caller.tenant_id)
        .is_some_and(|i| i.id == id);
    if !matches {
        return Err(ApiError::not_found("integration not found"));
    }
    state.integrations.remove(&caller.tenant_id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
