//! An in-memory stand-in for the Mender management APIs the bridge uses.
//!
//! It answers the useradm, deviceauth (v2), deviceconfig and iot-manager
//! management endpoints as Mender's OpenAPI specs and server code do, and
//! emits signed webhooks like Mender's iot-manager. Tests start it
//! in-process ([`MenderStandin::start`]); the local stack runs the
//! `mender-standin` binary.
//!
//! Every HTTP exchange is recorded ([`MenderStandin::exchanges`]) and can be
//! checked against the specs with [`openapi::Specs`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

mod auth;
mod devauth;
mod deviceconfig;
mod http;
mod inventory;
mod iot_manager;
pub mod openapi;
mod paging;
mod standin;
mod state;
mod useradm;
mod webhooks;

use state::{
    ACCEPTED, DEFAULT_TENANT, Device, Integration, PENDING, REJECTED, State, Tenant, User,
};
use webhooks::{Event, Outgoing};

/// One webhook delivery attempt, as Mender's iot-manager records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// `device-provisioned`, `device-status-changed` or `device-decommissioned`.
    pub event_type: String,
    pub device_id: String,
    pub url: String,
    /// The HTTP status the receiver answered (any status, see
    /// [`Delivery::succeeded`]), or the transport error (connection refused,
    /// timeout after 10 s, …).
    pub result: Result<u16, String>,
    /// The exact body that was sent (and signed).
    pub body: String,
}

impl Delivery {
    /// Mender's rule: delivered, and answered with a status below 300.
    pub fn succeeded(&self) -> bool {
        matches!(self.result, Ok(code) if code < 300)
    }

    /// The body, parsed.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A tenant's webhook integration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookIntegration {
    pub id: String,
    pub url: String,
    /// The secret as registered (hex); empty when registered without one
    /// (deliveries are then unsigned).
    pub secret: String,
}

/// One HTTP request the stand-in served, and its answer.
///
/// Other crates may build these themselves to check requests of their own
/// with [`openapi::Specs::check`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exchange {
    /// Upper case, e.g. `GET`.
    pub method: String,
    /// The path, without query.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// The request body parsed as JSON; `None` when empty or not JSON.
    pub request_body: Option<serde_json::Value>,
    /// The raw request body.
    pub request_text: String,
    pub status: u16,
    pub response_content_type: Option<String>,
    /// The response body parsed as JSON; `None` when empty or not JSON.
    pub response_body: Option<serde_json::Value>,
    /// The raw response body.
    pub response_text: String,
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with the hex-decoded
/// `secret_hex`, as in `X-Men-Signature`. `None` if the secret is not hex.
pub fn webhook_signature(secret_hex: &str, body: &[u8]) -> Option<String> {
    let key = hex::decode(secret_hex).ok()?;
    Some(webhooks::signature(&key, body))
}

/// What the server tasks and the handle share.
pub(crate) struct Shared {
    addr: SocketAddr,
    state: Mutex<State>,
    client: reqwest::Client,
    /// Number of delivery batches still running.
    in_flight: watch::Sender<usize>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends deliveries in the background (as Mender does: the management
    /// call does not wait for webhooks).
    pub(crate) fn dispatch(self: &Arc<Self>, outgoing: Vec<Outgoing>) {
        if outgoing.is_empty() {
            return;
        }
        self.in_flight.send_modify(|n| *n += 1);
        let shared = self.clone();
        tokio::spawn(async move {
            webhooks::deliver_all(shared.clone(), outgoing).await;
            shared.in_flight.send_modify(|n| *n -= 1);
        });
    }

    /// Sends deliveries and waits for every one of them.
    async fn deliver(self: &Arc<Self>, outgoing: Vec<Outgoing>) -> Vec<Delivery> {
        if outgoing.is_empty() {
            return Vec::new();
        }
        self.in_flight.send_modify(|n| *n += 1);
        let done = webhooks::deliver_all(self.clone(), outgoing).await;
        self.in_flight.send_modify(|n| *n -= 1);
        done
    }
}

/// The stand-in: a handle on a running server (cheap to clone).
#[derive(Clone)]
pub struct MenderStandin {
    shared: Arc<Shared>,
}

impl fmt::Debug for MenderStandin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MenderStandin")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl MenderStandin {
    /// Starts on `127.0.0.1` with a free port, serving in a background task.
    pub async fn start() -> std::io::Result<MenderStandin> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`, serving in a background task.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<MenderStandin> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let client = webhooks::client().map_err(std::io::Error::other)?;
        let (in_flight, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(State::default()),
            client,
            in_flight,
        });
        let app = http::router(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "mender stand-in stopped");
            }
        });
        Ok(MenderStandin { shared })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Adds (or redefines) a tenant. `"default"` is the open-source tenant:
    /// never RBAC, no `mender.tenant` claim in its tokens.
    pub fn add_tenant(&self, tenant_id: &str, rbac: bool) {
        self.shared.lock().tenants.insert(
            tenant_id.to_string(),
            Tenant {
                rbac: rbac && tenant_id != DEFAULT_TENANT,
                configure: true,
            },
        );
    }

    /// Gives the tenant the Configure add-on, or takes it away: without
    /// it, Mender answers 403 to its device configuration API.
    pub fn set_configure_addon(&self, tenant_id: &str, enabled: bool) {
        if let Some(tenant) = self.shared.lock().tenants.get_mut(tenant_id) {
            tenant.configure = enabled;
        }
    }

    /// Adds a user and returns its id. `roles` and `device_groups` only
    /// matter for RBAC tenants; `device_groups` `None` means every group.
    ///
    /// # Panics
    /// If the tenant was not added.
    pub fn add_user(
        &self,
        tenant_id: &str,
        email: &str,
        roles: &[&str],
        device_groups: Option<&[&str]>,
    ) -> String {
        let mut state = self.shared.lock();
        assert!(
            state.tenants.contains_key(tenant_id),
            "mender stand-in: unknown tenant {tenant_id:?} (call add_tenant first)"
        );
        let id = state::new_id();
        state.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                tenant_id: tenant_id.to_string(),
                email: email.to_string(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                device_groups: device_groups.map(|g| g.iter().map(|g| g.to_string()).collect()),
                created_ts: state::now(),
            },
        );
        id
    }

    /// Issues a management token for the user, valid for `ttl`.
    ///
    /// # Panics
    /// If the user does not exist.
    pub fn issue_token(&self, user_id: &str, ttl: Duration) -> String {
        self.shared
            .lock()
            .issue_token(user_id, Some(ttl), None)
            .unwrap_or_else(|| panic!("mender stand-in: unknown user {user_id:?}"))
            .0
    }

    /// Revokes a token (as a logout would); unknown tokens are ignored.
    pub fn revoke_token(&self, token: &str) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Adds a device with one authentication set of the given status (none
    /// for `noauth`), without any webhook. An `accepted` device counts as
    /// already provisioned (it has a Configure record, and accepting it again
    /// later sends no `device-provisioned`).
    ///
    /// # Panics
    /// If the tenant is unknown or the status is not one of `pending`,
    /// `accepted`, `rejected`, `preauthorized`, `noauth`.
    pub fn add_device(&self, tenant_id: &str, status: &str, group: Option<&str>) -> String {
        self.shared
            .lock()
            .insert_device(tenant_id, status, group)
            .unwrap_or_else(|e| panic!("mender stand-in: {e}"))
    }

    /// Accepts the device, as `PUT …/auth/{aid}/status {"status":"accepted"}`
    /// does with its newest authentication set. A device without any (i.e.
    /// `noauth`) first applies again, as a real one would: a new pending set
    /// (with its status change). Nothing happens if already accepted or
    /// unknown. Returns once every delivery finished.
    pub async fn accept(&self, device_id: &str) -> Vec<Delivery> {
        self.transition(device_id, |state, device| {
            let mut events = Vec::new();
            if device.auth_sets.iter().any(|a| a.status == ACCEPTED) {
                return events;
            }
            let aid = match device.auth_sets.last() {
                Some(set) => set.id.clone(),
                None => match state.submit_auth_request(&device.id) {
                    Some((aid, submitted)) => {
                        events.extend(submitted);
                        aid
                    }
                    None => return events,
                },
            };
            events.extend(
                state
                    .set_auth_status(&device.id, &aid, ACCEPTED)
                    .unwrap_or_default(),
            );
            events
        })
        .await
    }

    /// Rejects the device's accepted authentication set (or its newest one).
    pub async fn reject(&self, device_id: &str) -> Vec<Delivery> {
        self.set_status(device_id, REJECTED).await
    }

    /// Puts the device's accepted authentication set (or its newest one)
    /// back to pending.
    pub async fn set_pending(&self, device_id: &str) -> Vec<Delivery> {
        self.set_status(device_id, PENDING).await
    }

    async fn set_status(&self, device_id: &str, status: &'static str) -> Vec<Delivery> {
        self.transition(device_id, move |state, device| {
            let target = device
                .auth_sets
                .iter()
                .find(|a| a.status == ACCEPTED)
                .or_else(|| device.auth_sets.last());
            match target {
                Some(set) => state
                    .set_auth_status(&device.id, &set.id, status)
                    .unwrap_or_default(),
                None => Vec::new(),
            }
        })
        .await
    }

    /// Dismisses the device: removes its authentication sets, as
    /// `DELETE …/auth/{aid}` does for each. The device becomes `noauth`, or is
    /// deleted (`decommissioned`) when its set was only preauthorized.
    pub async fn dismiss(&self, device_id: &str) -> Vec<Delivery> {
        self.transition(device_id, |state, device| {
            let mut events = Vec::new();
            for set in device.auth_sets.iter().rev() {
                if state.device(&device.id).is_none() {
                    break;
                }
                events.extend(
                    state
                        .delete_auth_set(&device.id, &set.id)
                        .unwrap_or_default(),
                );
            }
            events
        })
        .await
    }

    /// Decommissions the device, as `DELETE …/devices/{id}` does.
    pub async fn decommission(&self, device_id: &str) -> Vec<Delivery> {
        self.transition(device_id, |state, device| {
            state.decommission_device(&device.id).unwrap_or_default()
        })
        .await
    }

    /// Applies `change` to a snapshot of the device, then delivers the
    /// resulting webhooks and waits for them.
    async fn transition(
        &self,
        device_id: &str,
        change: impl FnOnce(&mut State, &Device) -> Vec<Event>,
    ) -> Vec<Delivery> {
        let outgoing = {
            let mut state = self.shared.lock();
            let Some(device) = state.device(device_id).cloned() else {
                return Vec::new();
            };
            let events = change(&mut state, &device);
            state.plan_deliveries(&device.tenant_id, events)
        };
        self.shared.deliver(outgoing).await
    }

    /// The device's current status; `None` once it is gone.
    pub fn device_status(&self, device_id: &str) -> Option<String> {
        self.shared
            .lock()
            .device(device_id)
            .map(|d| d.status.clone())
    }

    /// The device's configured Mender Configure values, if it has a record.
    pub fn configuration(&self, device_id: &str) -> Option<BTreeMap<String, String>> {
        self.shared
            .lock()
            .config_of(device_id)
            .map(|c| c.configured.clone())
    }

    /// Replaces the device's configured values (creating its record).
    ///
    /// # Panics
    /// If the device is unknown and has no configuration record.
    pub fn set_configuration(&self, device_id: &str, config: BTreeMap<String, String>) {
        let mut state = self.shared.lock();
        if let Some(device) = state.device(device_id) {
            let tenant_id = device.tenant_id.clone();
            state.ensure_config(&tenant_id, device_id);
        }
        let record = state
            .config_of_mut(device_id)
            .unwrap_or_else(|| panic!("mender stand-in: unknown device {device_id:?}"));
        record.configured = config;
        record.updated_ts = Some(state::now());
    }

    /// The device reports the configuration it applied, as mender-configure
    /// does after a configuration deployment (Mender's device API `PUT
    /// /api/devices/v1/deviceconfig/configuration`).
    ///
    /// # Panics
    /// If the device has no configuration record.
    pub fn report_configuration(&self, device_id: &str, applied: BTreeMap<String, String>) {
        let mut state = self.shared.lock();
        let record = state
            .config_of_mut(device_id)
            .unwrap_or_else(|| panic!("mender stand-in: no configuration for {device_id:?}"));
        record.reported = applied;
        record.reported_ts = Some(state::now());
    }

    /// The configuration the device last reported, if it has a record.
    pub fn reported_configuration(&self, device_id: &str) -> Option<BTreeMap<String, String>> {
        self.shared
            .lock()
            .config_of(device_id)
            .map(|c| c.reported.clone())
    }

    /// What the device's last configuration deployment sent it (Mender
    /// sends the configured values as they were when it was deployed).
    pub fn deployed_configuration(&self, device_id: &str) -> Option<BTreeMap<String, String>> {
        self.shared
            .lock()
            .config_of(device_id)
            .and_then(|c| c.deployed.clone())
    }

    /// The configuration deployments made for the device, oldest first.
    pub fn deployments(&self, device_id: &str) -> Vec<String> {
        self.shared
            .lock()
            .config_of(device_id)
            .map(|c| c.deployments.clone())
            .unwrap_or_default()
    }

    /// The tenant's webhook integration, if it has one.
    pub fn webhook_integration(&self, tenant_id: &str) -> Option<WebhookIntegration> {
        let state = self.shared.lock();
        let integration = state.integrations.get(tenant_id)?;
        let (url, _) = integration.webhook_target()?;
        Some(WebhookIntegration {
            id: integration.id.clone(),
            url,
            secret: integration.secret_hex().unwrap_or_default().to_string(),
        })
    }

    /// Registers (or replaces) the tenant's integration with a webhook, as a
    /// test shortcut; `secret_hex` empty means unsigned deliveries. Returns
    /// the integration id.
    ///
    /// # Panics
    /// If the tenant is unknown or the secret is not valid for Mender
    /// (lowercase hex, even length, at most 64 digits).
    pub fn register_webhook(&self, tenant_id: &str, url: &str, secret_hex: &str) -> String {
        assert!(
            secret_hex.is_empty() || iot_manager::valid_secret(secret_hex),
            "mender stand-in: invalid webhook secret {secret_hex:?}"
        );
        let mut state = self.shared.lock();
        assert!(
            state.tenants.contains_key(tenant_id),
            "mender stand-in: unknown tenant {tenant_id:?}"
        );
        let mut http = serde_json::Map::new();
        http.insert("url".into(), url.into());
        if !secret_hex.is_empty() {
            http.insert("secret".into(), secret_hex.into());
        }
        let id = state::new_id();
        state.integrations.insert(
            tenant_id.to_string(),
            Integration {
                id: id.clone(),
                provider: "webhook".into(),
                credentials: serde_json::json!({"type": "http", "http": http}),
                description: None,
            },
        );
        id
    }

    /// Every webhook delivery so far, in order of completion.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Waits until no webhook delivery is in flight (those triggered over
    /// HTTP run in the background), then returns every delivery so far.
    pub async fn wait_deliveries(&self) -> Vec<Delivery> {
        let mut in_flight = self.shared.in_flight.subscribe();
        // The sender lives in `shared`, so this cannot fail.
        let _ = in_flight.wait_for(|n| *n == 0).await;
        self.deliveries()
    }

    /// Every HTTP exchange served so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.lock().exchanges.clone()
    }

    /// Whether exchanges are kept (by default they are): a bench that lists
    /// 100,000 devices measures its process's memory, and reads none.
    pub fn keep_exchanges(&self, keep: bool) {
        self.shared.lock().forget_exchanges = !keep;
    }

    /// Returns the exchanges served so far and forgets them.
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        std::mem::take(&mut self.shared.lock().exchanges)
    }
}
