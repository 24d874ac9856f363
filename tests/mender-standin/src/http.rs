//! The HTTP surface: routes, Mender-style errors, and the middleware that
//! records every exchange.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{Exchange, Shared, devauth, deviceconfig, inventory, iot_manager, standin, useradm};

/// Largest request body the stand-in reads (Mender Configure's own limit,
/// 1 MiB, is enforced by its handler with a 400).
const MAX_BODY: usize = 4 * 1024 * 1024;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The state every handler gets.
pub(crate) type App = State<Arc<Shared>>;

/// An error answered the way Mender does: `{"error": …, "request_id": …}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden")
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
}

/// The id of the request being served (also sent as `X-MEN-RequestID`).
pub(crate) fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "request_id": request_id()});
        (self.status, axum::Json(body)).into_response()
    }
}

/// Parses a JSON request body, answering 400 the way Mender does.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
}

/// A JSON response with the given status.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    const USERADM: &str = "/api/management/v1/useradm";
    const DEVAUTH: &str = "/api/management/v2/devauth";
    const DEVICECONFIG: &str = "/api/management/v1/deviceconfig/configurations/device";
    const IOT_MANAGER: &str = "/api/management/v1/iot-manager";
    const INVENTORY: &str = "/api/management/v1/inventory";

    Router::new()
        .route(&format!("{USERADM}/users/me"), get(useradm::me))
        .route(
            &format!("{USERADM}/settings/tokens"),
            get(useradm::list_tokens).post(useradm::create_token),
        )
        .route(
            &format!("{USERADM}/settings/tokens/{{id}}"),
            delete(useradm::delete_token),
        )
        .route(
            &format!("{DEVAUTH}/devices"),
            get(devauth::list_devices).post(devauth::preauthorize),
        )
        .route(&format!("{DEVAUTH}/devices/count"), get(devauth::count))
        .route(
            &format!("{DEVAUTH}/devices/{{id}}"),
            get(devauth::get_device).delete(devauth::decommission),
        )
        .route(
            &format!("{DEVAUTH}/devices/{{id}}/auth/{{aid}}"),
            delete(devauth::dismiss),
        )
        .route(
            &format!("{DEVAUTH}/devices/{{id}}/auth/{{aid}}/status"),
            put(devauth::set_status).get(devauth::get_status),
        )
        .route(
            &format!("{DEVICECONFIG}/{{id}}"),
            get(deviceconfig::get_configuration).put(deviceconfig::set_configuration),
        )
        .route(
            &format!("{DEVICECONFIG}/{{id}}/deploy"),
            post(deviceconfig::deploy),
        )
        .route(
            &format!("{INVENTORY}/groups/{{name}}/devices"),
            get(inventory::group_devices),
        )
        .route(
            &format!("{IOT_MANAGER}/integrations"),
            get(iot_manager::list).post(iot_manager::create),
        )
        .route(
            &format!("{IOT_MANAGER}/integrations/{{id}}"),
            delete(iot_manager::remove),
        )
        .route("/_standin/devices", post(standin::create_device))
        .route("/_standin/deliveries", get(standin::deliveries))
        .fallback(not_found)
        // The recording middleware bounds bodies (with a Mender-style 400).
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

async fn not_found() -> ApiError {
    ApiError::not_found("not found")
}

/// Buffers request and response, serves the request under a fresh request
/// id, and records the exchange.
async fn record(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);

    let (request_bytes, response) = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            let req = Request::from_parts(parts, Body::from(bytes.clone()));
            let response = REQUEST_ID
                .scope(request_id.clone(), async move {
                    // Render errors (which read the request id) in scope.
                    next.run(req).await
                })
                .await;
            (bytes, response)
        }
        Err(_) => {
            let response = REQUEST_ID
                .scope(request_id.clone(), async {
                    ApiError::bad_request("request body too large").into_response()
                })
                .await;
            (Bytes::new(), response)
        }
    };

    let (mut parts, body) = response.into_parts();
    let mut response_bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    if parts.status.is_client_error() || parts.status.is_server_error() {
        // Rejections axum produces itself (bad path encoding, wrong method…)
        // become Mender-style errors too.
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !is_json {
            let text = String::from_utf8_lossy(&response_bytes).trim().to_string();
            let message = if text.is_empty() {
                parts
                    .status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_string()
            } else {
                text
            };
            let body = json!({"error": message, "request_id": request_id});
            response_bytes = Bytes::from(body.to_string());
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        parts.headers.insert("x-men-requestid", value);
    }

    let request_text = String::from_utf8_lossy(&request_bytes).into_owned();
    let response_text = String::from_utf8_lossy(&response_bytes).into_owned();
    let exchange = Exchange {
        method,
        path,
        query,
        request_body: parse_optional_json(&request_text),
        request_text,
        status: parts.status.as_u16(),
        response_content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        response_body: parse_optional_json(&response_text),
        response_text,
    };
    let mut state = shared.lock();
    if !state.forget_exchanges {
        state.exchanges.push(exchange);
    }
    drop(state);

    Response::from_parts(parts, Body::from(response_bytes))
}

fn parse_optional_json(text: &str) -> Option<Value> {
    if text.trim().is_empty() {
        None
    } else {
        serde_json::from_str(text).ok()
    }
}
