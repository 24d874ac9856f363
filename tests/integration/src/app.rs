//! The local runner's HTTP side: every API route of the deployed system,
//! served by the same handlers the Lambda functions run.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use bridge::http::ApiError;
use bridge::ingress::{self, Ingress};
use bridge::integration::{self, IntegrationApi};
use bridge::rotation::{self, RotationApi};
use bridge::shadow::api::{ShadowApi, get_state, update_state};
use lambda_http::RequestExt;

use bridge::wiring::Wiring;

use crate::bus::{InProcessBus, LOCAL_RETRIES};

/// API Gateway HTTP APIs accept payloads up to 10 MB.
const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

pub struct LocalApp {
    pub ingress: Ingress<InProcessBus>,
    pub integration: IntegrationApi<InProcessBus>,
    pub shadow: ShadowApi,
    pub rotation: RotationApi,
}

impl LocalApp {
    /// Every handler, wired as the deployed functions are, with the
    /// in-process bus in EventBridge's place.
    pub fn new(wiring: &Wiring) -> Self {
        let lifecycle = Arc::new(wiring.lifecycle());
        let reconciler = Arc::new(wiring.reconciler(&lifecycle));
        let bus = InProcessBus::new(lifecycle, reconciler, LOCAL_RETRIES);
        LocalApp {
            ingress: wiring.ingress(bus.clone()),
            shadow: wiring.shadow_api(),
            rotation: wiring.rotation_api(),
            integration: wiring.integration_api(bus),
        }
    }
}

/// Every route and method the local runner serves; the SAM template must
/// declare the same.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/console/{asset}"),
    ("POST", "/webhooks/{integration_id}"),
    ("GET", "/api/management/v1/iot-manager/integrations"),
    ("POST", "/api/management/v1/iot-manager/integrations"),
    (
        "GET",
        "/api/management/v1/iot-manager/integrations/{integration_id}",
    ),
    (
        "PUT",
        "/api/management/v1/iot-manager/integrations/{integration_id}",
    ),
    (
        "DELETE",
        "/api/management/v1/iot-manager/integrations/{integration_id}",
    ),
    (
        "PUT",
        "/api/management/v1/iot-manager/integrations/{integration_id}/credentials",
    ),
    (
        "POST",
        "/api/management/v1/iot-manager/integrations/{integration_id}/reconcile",
    ),
    (
        "GET",
        "/api/management/v1/iot-manager/integrations/{integration_id}/reconcile/{run_id}",
    ),
    (
        "POST",
        "/api/management/v1/iot-manager/integrations/{integration_id}/rotation",
    ),
    (
        "GET",
        "/api/management/v1/iot-manager/integrations/{integration_id}/rotation/{run_id}",
    ),
    ("GET", "/api/management/v1/iot-manager/external-id"),
    ("GET", "/api/management/v1/iot-manager/events"),
    (
        "DELETE",
        "/api/management/v1/iot-manager/devices/{device_id}",
    ),
    (
        "GET",
        "/api/management/v1/iot-manager/devices/{device_id}/state",
    ),
    (
        "GET",
        "/api/management/v1/iot-manager/devices/{device_id}/state/{integration_id}",
    ),
    (
        "PUT",
        "/api/management/v1/iot-manager/devices/{device_id}/state/{integration_id}",
    ),
    (
        "PATCH",
        "/api/management/v1/iot-manager/devices/{device_id}/state/{integration_id}",
    ),
    (
        "POST",
        "/api/management/v1/iot-manager/devices/{device_id}/rotation",
    ),
    (
        "GET",
        "/api/management/v1/iot-manager/devices/{device_id}/rotation",
    ),
    (
        "DELETE",
        "/api/management/v1/iot-manager/devices/{device_id}/rotation",
    ),
];

pub fn router(app: Arc<LocalApp>) -> Router {
    let api = |path: &str| format!("{}{path}", bridge::http::API_PREFIX);
    Router::new()
        .route("/", get(console))
        .route("/console/{asset}", get(console))
        .route("/webhooks/{integration_id}", post(webhook))
        .route(
            &api("/integrations"),
            get(integration_route).post(integration_route),
        )
        .route(
            &api("/integrations/{integration_id}"),
            get(integration_route)
                .put(integration_route)
                .delete(integration_route),
        )
        .route(
            &api("/integrations/{integration_id}/credentials"),
            put(integration_route),
        )
        .route(
            &api("/integrations/{integration_id}/reconcile"),
            post(integration_route),
        )
        .route(
            &api("/integrations/{integration_id}/reconcile/{run_id}"),
            get(integration_route),
        )
        .route(
            &api("/integrations/{integration_id}/rotation"),
            post(integration_route),
        )
        .route(
            &api("/integrations/{integration_id}/rotation/{run_id}"),
            get(integration_route),
        )
        .route(&api("/external-id"), get(integration_route))
        .route(&api("/events"), get(integration_route))
        .route(&api("/devices/{device_id}"), delete(integration_route))
        .route(&api("/devices/{device_id}/state"), get(shadow_get))
        .route(
            &api("/devices/{device_id}/state/{integration_id}"),
            get(shadow_get).put(shadow_update).patch(shadow_update),
        )
        .route(
            &api("/devices/{device_id}/rotation"),
            get(rotation_route)
                .post(rotation_route)
                .delete(rotation_route),
        )
        .fallback(|| async {
            from_lambda(ApiError::NotFound("no such route".into()).into_response())
        })
        .method_not_allowed_fallback(|| async {
            from_lambda(
                ApiError::MethodNotAllowed("method not allowed on this route".into())
                    .into_response(),
            )
        })
        .with_state(app)
}

async fn console(request: Request) -> Response {
    serve_lambda(request, HashMap::new(), |r| async move {
        bridge::console::handle(&r)
    })
    .await
}

async fn webhook(
    State(app): State<Arc<LocalApp>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    serve_lambda(request, params, |r| async move {
        ingress::handle(&app.ingress, r).await
    })
    .await
}

async fn integration_route(
    State(app): State<Arc<LocalApp>>,
    params: Option<Path<HashMap<String, String>>>,
    request: Request,
) -> Response {
    let params = params.map(|Path(params)| params).unwrap_or_default();
    serve_lambda(request, params, |r| async move {
        integration::handle(&app.integration, r).await
    })
    .await
}

async fn shadow_get(
    State(app): State<Arc<LocalApp>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    serve_lambda(request, params, |r| async move {
        get_state(&app.shadow, r).await
    })
    .await
}

async fn shadow_update(
    State(app): State<Arc<LocalApp>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    serve_lambda(request, params, |r| async move {
        update_state(&app.shadow, r).await
    })
    .await
}

async fn rotation_route(
    State(app): State<Arc<LocalApp>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    serve_lambda(request, params, |r| async move {
        rotation::handle(&app.rotation, r).await
    })
    .await
}

/// Runs a Lambda HTTP handler on an axum request, as API Gateway would.
async fn serve_lambda<F, Fut>(
    request: Request,
    params: HashMap<String, String>,
    handler: F,
) -> Response
where
    F: FnOnce(lambda_http::Request) -> Fut,
    Fut: std::future::Future<Output = lambda_http::Response<lambda_http::Body>>,
{
    match to_lambda(request, params).await {
        Ok(request) => from_lambda(handler(request).await),
        Err(response) => response,
    }
}

/// An axum request as API Gateway would hand it to the function.
async fn to_lambda(
    request: Request,
    params: HashMap<String, String>,
) -> Result<lambda_http::Request, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_PAYLOAD).await.map_err(|_| {
        (
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload over API Gateway's limit",
        )
            .into_response()
    })?;
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) if text.is_empty() => lambda_http::Body::Empty,
        Ok(text) => lambda_http::Body::Text(text),
        Err(error) => lambda_http::Body::Binary(error.into_bytes()),
    };
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    Ok(http::Request::from_parts(parts, body)
        .with_path_parameters(params)
        .with_query_string_parameters(query))
}

fn from_lambda(response: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = bridge::http::body_bytes(&body).to_vec();
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
