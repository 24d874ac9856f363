//! The local runner's HTTP side: every API route of the deployed system,
//! served by the same handlers the Lambda functions run.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bridge::http::ApiError;
use bridge::ingress::{self, Ingress};
use bridge::integration::{self, IntegrationApi};
use bridge::shadow::api::{ShadowApi, get_state, update_state};
use lambda_http::RequestExt;

use aws_config::SdkConfig;
use bridge::auth::{Authenticator, DEFAULT_CACHE_TTL};
use bridge::index::IntegrationIndex;
use bridge::lifecycle::{Lifecycle, MENDER_TIMEOUT};
use bridge::settings::{Environment, SettingsStore};
use bridge::sync::{Reconciler, RunStore};
use bridge::tenant::Tenants;

use crate::bus::{InProcessBus, LOCAL_RETRIES};

/// API Gateway HTTP APIs accept payloads up to 10 MB.
const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

pub struct LocalApp {
    pub ingress: Ingress<InProcessBus>,
    pub integration: IntegrationApi<InProcessBus>,
    pub shadow: ShadowApi,
}

impl LocalApp {
    /// Every handler, configured as the deployed functions are, with the
    /// in-process bus in EventBridge's place.
    pub fn new(env: &Environment, aws: SdkConfig, public_url: &str) -> Self {
        let http = bridge::mender::http_client(MENDER_TIMEOUT);
        let store = || {
            SettingsStore::new(
                aws_sdk_secretsmanager::Client::new(&aws),
                &env.secrets_prefix,
                env.settings_ttl,
            )
        };
        let lifecycle = Arc::new(Lifecycle::new(env, aws.clone(), http.clone()));
        let bus = InProcessBus::new(
            Arc::new(Reconciler::new(env, &aws, lifecycle)),
            LOCAL_RETRIES,
        );
        LocalApp {
            ingress: Ingress {
                settings: store(),
                bus: bus.clone(),
            },
            shadow: ShadowApi {
                auth: Authenticator::new(http.clone(), &env.mender_url, DEFAULT_CACHE_TTL),
                index: IntegrationIndex::new(aws_sdk_dynamodb::Client::new(&aws), &env.table_name),
                tenants: Tenants::new(store(), aws.clone(), http.clone(), &env.mender_url),
            },
            integration: IntegrationApi {
                auth: Authenticator::new(http.clone(), &env.mender_url, DEFAULT_CACHE_TTL),
                settings: store(),
                index: IntegrationIndex::new(aws_sdk_dynamodb::Client::new(&aws), &env.table_name),
                aws: aws.clone(),
                http,
                mender_url: env.mender_url.clone(),
                public_url: public_url.trim_end_matches('/').to_owned(),
                runs: RunStore::new(aws_sdk_dynamodb::Client::new(&aws), &env.table_name),
                bus,
            },
        }
    }
}

/// Every route and method the local runner serves; the SAM template must
/// declare the same.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/webhooks/{integration_id}"),
    ("GET", "/integration"),
    ("PUT", "/integration"),
    ("DELETE", "/integration"),
    ("POST", "/integration/sync"),
    ("GET", "/integration/sync/{run_id}"),
    ("GET", "/devices/{device_id}/state"),
    ("PUT", "/devices/{device_id}/state"),
    ("PATCH", "/devices/{device_id}/state"),
];

pub fn router(app: Arc<LocalApp>) -> Router {
    Router::new()
        .route("/webhooks/{integration_id}", post(webhook))
        .route("/integration", any(integration_route))
        .route("/integration/sync", post(integration_route))
        .route("/integration/sync/{run_id}", get(integration_route))
        .route(
            "/devices/{device_id}/state",
            get(shadow_get).put(shadow_update).patch(shadow_update),
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
        .map(|q| url_decode_pairs(q).collect())
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

fn url_decode_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(byte) => {
                    out.push(byte);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
