//! Stand-in-only routes under `/_standin/` (no Mender equivalent, no
//! authentication) so that scripts can seed and inspect the stand-in.

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{ApiError, App, json_response, parse_json};

#[derive(Deserialize)]
struct NewDevice {
    tenant_id: String,
    status: String,
    #[serde(default)]
    group: Option<String>,
}

/// `POST /_standin/devices` `{"tenant_id", "status", "group"?}` → 201 `{"id"}`.
/// Like [`crate::MenderStandin::add_device`]: no webhook.
pub(crate) async fn create_device(
    AxumState(shared): App,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NewDevice = parse_json(&body)?;
    let id = shared
        .lock()
        .insert_device(
            &request.tenant_id,
            &request.status,
            request.group.as_deref(),
        )
        .map_err(ApiError::bad_request)?;
    Ok(json_response(StatusCode::CREATED, json!({ "id": id })))
}

/// `GET /_standin/deliveries`: every webhook delivery so far.
pub(crate) async fn deliveries(AxumState(shared): App) -> Response {
    let list: Vec<Value> = shared
        .lock()
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "event_type": d.event_type,
                "device_id": d.device_id,
                "url": d.url,
                "status_code": d.result.as_ref().ok(),
                "error": d.result.as_ref().err(),
                "body": d.body,
            })
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(list))
}
