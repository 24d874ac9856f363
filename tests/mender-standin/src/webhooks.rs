//! Webhook events, built and delivered the way Mender's iot-manager does:
//! one POST per event to the tenant's webhook integration, JSON body
//! `{"id","type","data","time"}`, signed with HMAC-SHA256 keyed with the
//! hex-decoded secret, tried once with a 10 s timeout, redirects not followed.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::state::{Device, State, new_id, now, ts};
use crate::{Delivery, Shared};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const ALGORITHM_HEADER: &str = "X-Men-Algorithm";
pub(crate) const SIGNATURE_HEADER: &str = "X-Men-Signature";
pub(crate) const ALGORITHM: &str = "MEN-HMAC-SHA256-Payload";

pub(crate) const DEVICE_PROVISIONED: &str = "device-provisioned";
pub(crate) const DEVICE_STATUS_CHANGED: &str = "device-status-changed";
pub(crate) const DEVICE_DECOMMISSIONED: &str = "device-decommissioned";

/// Something that happened to a device and that Mender reports.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Provisioned(ProvisionedData),
    StatusChanged { device_id: String, status: String },
    Decommissioned { device_id: String },
}

impl Event {
    pub fn provisioned(device: &Device) -> Self {
        Event::Provisioned(ProvisionedData {
            id: device.id.clone(),
            status: device.status.clone(),
            auth_sets: device
                .auth_sets
                .iter()
                .map(|a| EventAuthSet {
                    id: a.id.clone(),
                    device_id: device.id.clone(),
                    identity_data: a.identity_data.clone(),
                    pubkey: a.pubkey.clone(),
                    status: a.status.clone(),
                    ts: ts(a.ts),
                })
                .collect(),
            created_ts: ts(device.created_ts),
        })
    }

    pub fn status_changed(device_id: &str, status: &str) -> Self {
        Event::StatusChanged {
            device_id: device_id.to_string(),
            status: status.to_string(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Event::Provisioned(_) => DEVICE_PROVISIONED,
            Event::StatusChanged { .. } => DEVICE_STATUS_CHANGED,
            Event::Decommissioned { .. } => DEVICE_DECOMMISSIONED,
        }
    }

    fn device_id(&self) -> &str {
        match self {
            Event::Provisioned(data) => &data.id,
            Event::StatusChanged { device_id, .. } | Event::Decommissioned { device_id } => {
                device_id
            }
        }
    }

    fn data(&self) -> Value {
        let data = match self {
            Event::Provisioned(data) => serde_json::to_value(data),
            Event::StatusChanged { device_id, status } => serde_json::to_value(StatusData {
                id: device_id,
                status,
            }),
            Event::Decommissioned { device_id } => serde_json::to_value(IdData { id: device_id }),
        };
        data.unwrap_or(Value::Null)
    }
}

// Field order follows Mender's Go structs, for bodies that look alike.

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ProvisionedData {
    id: String,
    status: String,
    auth_sets: Vec<EventAuthSet>,
    created_ts: String,
}

#[derive(Clone, Debug, Serialize)]
struct EventAuthSet {
    id: String,
    device_id: String,
    identity_data: Map<String, Value>,
    pubkey: String,
    status: String,
    ts: String,
}

#[derive(Serialize)]
struct StatusData<'a> {
    id: &'a str,
    status: &'a str,
}

#[derive(Serialize)]
struct IdData<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'a str,
    data: Value,
    time: String,
}

/// A delivery ready to be sent.
pub(crate) struct Outgoing {
    event_type: String,
    device_id: String,
    url: String,
    secret: Option<Vec<u8>>,
    body: String,
}

impl State {
    /// The deliveries `events` of `tenant_id` cause: none unless the tenant
    /// has a webhook integration.
    pub fn plan_deliveries(&self, tenant_id: &str, events: Vec<Event>) -> Vec<Outgoing> {
        let Some((url, secret)) = self
            .integrations
            .get(tenant_id)
            .and_then(|i| i.webhook_target())
        else {
            return Vec::new();
        };
        events
            .into_iter()
            .map(|event| {
                let envelope = Envelope {
                    id: new_id(),
                    kind: event.type_name(),
                    data: event.data(),
                    time: ts(now()),
                };
                Outgoing {
                    event_type: event.type_name().to_string(),
                    device_id: event.device_id().to_string(),
                    url: url.clone(),
                    secret: secret.clone(),
                    body: serde_json::to_string(&envelope).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// The client Mender's iot-manager uses for webhooks, in spirit.
pub(crate) fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Go-http-client/1.1")
        .build()
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `key`.
pub(crate) fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Sends every delivery concurrently, in random order (Mender guarantees
/// none), records each result as it completes and returns them.
pub(crate) async fn deliver_all(shared: Arc<Shared>, mut outgoing: Vec<Outgoing>) -> Vec<Delivery> {
    fastrand::shuffle(&mut outgoing);
    let mut running = JoinSet::new();
    for o in outgoing {
        let client = shared.client.clone();
        running.spawn(async move { send(&client, o).await });
    }
    let mut done = Vec::new();
    while let Some(joined) = running.join_next().await {
        if let Ok(delivery) = joined {
            shared.lock().deliveries.push(delivery.clone());
            done.push(delivery);
        }
    }
    done
}

async fn send(client: &reqwest::Client, o: Outgoing) -> Delivery {
    let mut request = client
        .post(&o.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(o.body.clone());
    if let Some(key) = &o.secret {
        request = request
            .header(ALGORITHM_HEADER, ALGORITHM)
            .header(SIGNATURE_HEADER, signature(key, o.body.as_bytes()));
    }
    let result = match request.send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) => Err(error_chain(&e)),
    };
    match &result {
        Ok(code) => {
            tracing::info!(event = %o.event_type, device = %o.device_id, url = %o.url, code, "webhook delivered")
        }
        Err(e) => {
            tracing::warn!(event = %o.event_type, device = %o.device_id, url = %o.url, error = %e, "webhook failed")
        }
    }
    Delivery {
        event_type: o.event_type,
        device_id: o.device_id,
        url: o.url,
        result,
        body: o.body,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
