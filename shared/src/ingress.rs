//! The webhook ingress: `POST /webhooks/{integration_id}`.
//!
//! Size, integration and signature are checked before the body is parsed;
//! then the event is classified and published for the lifecycle functions.

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::events::{EventBus, LifecycleEvent};
use crate::http::{ApiError, body_bytes, json_response};
use crate::iot::is_valid_thing_name;
use crate::settings::{SettingsError, SettingsStore, WebhookSecret};
use crate::webhook::{self, Classification, MAX_BODY_BYTES, SIGNATURE_HEADER, WebhookError};

pub struct Ingress<B> {
    /// Only the webhook secrets: the ingress cannot read credentials.
    pub webhooks: SettingsStore<WebhookSecret>,
    pub bus: B,
}

pub async fn handle<B: EventBus>(ingress: &Ingress<B>, request: Request) -> Response<Body> {
    let result = receive(ingress, &request).await;
    crate::http::answer(&request, result)
}

async fn receive<B: EventBus>(
    ingress: &Ingress<B>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let integration_id = request
        .path_parameters_ref()
        .and_then(|p| p.first("integration_id"))
        .unwrap_or_default()
        .to_owned();
    let body = body_bytes(request.body());
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let webhook = ingress
        .webhooks
        .get(&integration_id)
        .await
        .map_err(|error| match error {
            SettingsError::NotFound(_) => {
                ApiError::NotFound(format!("no integration with id `{integration_id}`"))
            }
            other => other.into(),
        })?;
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    webhook::verify_signature(webhook.webhook_secret.expose(), body, signature).map_err(
        |error| {
            tracing::warn!(integration_id, %error, "webhook refused");
            ApiError::Unauthorized(error.to_string())
        },
    )?;

    let (event, classification) =
        webhook::parse(body).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let detail_type = match classification {
        Classification::Ignore => {
            tracing::info!(
                integration_id,
                event_id = event.id,
                event_type = event.event_type,
                "event ignored"
            );
            return Ok(json_response(
                202,
                &json!({ "status": "ignored", "event_id": event.id }),
            ));
        }
        Classification::Publish(detail_type) => detail_type,
    };
    if !is_valid_thing_name(&event.device_id) {
        return Err(ApiError::BadRequest(
            WebhookError::MissingField("a valid data.id").to_string(),
        ));
    }
    let lifecycle_event = LifecycleEvent {
        tenant_id: webhook.tenant_id.clone(),
        integration_id,
        device_id: event.device_id,
        mender_event_id: event.id,
        mender_event_type: event.event_type,
        time: event.time,
    };
    ingress
        .bus
        .publish(
            detail_type,
            &serde_json::to_value(&lifecycle_event).expect("an event serializes"),
        )
        .await
        .map_err(|error| {
            tracing::error!(%error, "publishing failed");
            ApiError::ServiceUnavailable("the event could not be queued; try again".into())
        })?;
    tracing::info!(
        tenant = lifecycle_event.tenant_id,
        device_id = lifecycle_event.device_id,
        event_id = lifecycle_event.mender_event_id,
        detail_type = detail_type.as_str(),
        "event published"
    );
    Ok(json_response(
        202,
        &json!({ "status": "published", "event_id": lifecycle_event.mender_event_id, "detail_type": detail_type.as_str() }),
    ))
}
