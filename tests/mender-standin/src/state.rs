//! The stand-in's in-memory model of a Mender server: tenants, users, tokens,
//! devices with their authentication sets, device configurations and
//! integrations, plus the record of what happened (exchanges, deliveries).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Delivery, Exchange};

/// Device and auth-set statuses, as Mender spells them.
pub(crate) const ACCEPTED: &str = "accepted";
pub(crate) const PENDING: &str = "pending";
pub(crate) const REJECTED: &str = "rejected";
pub(crate) const PREAUTHORIZED: &str = "preauthorized";
pub(crate) const NOAUTH: &str = "noauth";
pub(crate) const DECOMMISSIONED: &str = "decommissioned";

pub(crate) const ROLE_PERMIT_ALL: &str = "RBAC_ROLE_PERMIT_ALL";
pub(crate) const ROLE_OBSERVER: &str = "RBAC_ROLE_OBSERVER";

/// The open-source tenant: no RBAC, no `mender.tenant` claim.
pub(crate) const DEFAULT_TENANT: &str = "default";

#[derive(Default)]
pub(crate) struct State {
    pub tenants: HashMap<String, Tenant>,
    pub users: HashMap<String, User>,
    /// Keyed by the raw token string.
    pub tokens: HashMap<String, Token>,
    /// In creation order ("sorted by age", as Mender lists them).
    pub devices: Vec<Device>,
    /// Mender Configure records, keyed by (tenant, device id).
    pub configs: HashMap<(String, String), DeviceConfig>,
    /// At most one integration per tenant, as in Mender.
    pub integrations: HashMap<String, Integration>,
    pub deliveries: Vec<Delivery>,
    pub exchanges: Vec<Exchange>,
    /// Whether exchanges are kept (see `MenderStandin::keep_exchanges`).
    pub forget_exchanges: bool,
}

pub(crate) struct Tenant {
    pub rbac: bool,
    /// Whether the organization has the Configure add-on (its
    /// `x-mender-addon: configure` routes answer 403 without it).
    pub configure: bool,
}

pub(crate) struct User {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub roles: Vec<String>,
    /// `None`: every device group.
    pub device_groups: Option<Vec<String>>,
    pub created_ts: OffsetDateTime,
}

pub(crate) struct Token {
    pub jti: String,
    pub user_id: String,
    pub created_ts: OffsetDateTime,
    /// `None`: never expires (a personal access token with `expires_in` 0).
    pub expires: Option<OffsetDateTime>,
    pub revoked: bool,
    /// Set for personal access tokens.
    pub pat: Option<Pat>,
}

pub(crate) struct Pat {
    pub name: String,
    pub last_used: Option<OffsetDateTime>,
}

#[derive(Clone)]
pub(crate) struct Device {
    pub id: String,
    pub tenant_id: String,
    pub group: Option<String>,
    pub identity_data: Map<String, Value>,
    pub created_ts: OffsetDateTime,
    pub updated_ts: OffsetDateTime,
    pub status: String,
    pub auth_sets: Vec<AuthSet>,
    /// Whether the device was ever accepted (decides `device-provisioned`).
    pub provisioned: bool,
}

#[derive(Clone)]
pub(crate) struct AuthSet {
    pub id: String,
    pub identity_data: Map<String, Value>,
    pub pubkey: String,
    pub ts: OffsetDateTime,
    pub status: String,
}

#[derive(Default)]
pub(crate) struct DeviceConfig {
    pub configured: BTreeMap<String, String>,
    pub reported: BTreeMap<String, String>,
    pub deployment_id: Option<String>,
    pub updated_ts: Option<OffsetDateTime>,
    pub reported_ts: Option<OffsetDateTime>,
    pub deployments: Vec<String>,
    /// What the last deployment sent: the configured values when it was made.
    pub deployed: Option<BTreeMap<String, String>>,
}

#[derive(Clone)]
pub(crate) struct Integration {
    pub id: String,
    pub provider: String,
    /// The credentials object as registered (secrets included).
    pub credentials: Value,
    pub description: Option<String>,
}

impl Integration {
    /// URL and hex-decoded secret of a webhook integration.
    pub fn webhook_target(&self) -> Option<(String, Option<Vec<u8>>)> {
        if self.provider != "webhook" {
            return None;
        }
        let http = self.credentials.get("http")?;
        let url = http.get("url")?.as_str()?.to_string();
        let secret = http
            .get("secret")
            .and_then(Value::as_str)
            .and_then(|s| hex::decode(s).ok());
        Some((url, secret))
    }

    pub fn secret_hex(&self) -> Option<&str> {
        self.credentials.get("http")?.get("secret")?.as_str()
    }
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// RFC 3339 with as many fractional digits as needed (Go's `RFC3339Nano`).
pub(crate) fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Mender derives the device status from its authentication sets.
pub(crate) fn status_from_auth_sets(sets: &[AuthSet]) -> &'static str {
    let has = |s: &str| sets.iter().any(|a| a.status == s);
    if has(ACCEPTED) {
        ACCEPTED
    } else if has(PREAUTHORIZED) {
        PREAUTHORIZED
    } else if has(PENDING) {
        PENDING
    } else if has(REJECTED) {
        REJECTED
    } else {
        NOAUTH
    }
}

impl State {
    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.id == id)
    }

    pub fn device_mut(&mut self, id: &str) -> Option<&mut Device> {
        self.devices.iter_mut().find(|d| d.id == id)
    }

    /// A device of the given tenant (another tenant's device does not exist).
    pub fn tenant_device(&self, tenant_id: &str, id: &str) -> Option<&Device> {
        self.device(id).filter(|d| d.tenant_id == tenant_id)
    }

    /// Creates the Mender Configure record of a device, as provisioning does.
    pub fn ensure_config(&mut self, tenant_id: &str, device_id: &str) {
        self.configs
            .entry((tenant_id.to_string(), device_id.to_string()))
            .or_default();
    }

    /// The configuration record of a device, looked up by device id alone.
    pub fn config_of(&self, device_id: &str) -> Option<&DeviceConfig> {
        if let Some(dev) = self.device(device_id) {
            return self
                .configs
                .get(&(dev.tenant_id.clone(), device_id.to_string()));
        }
        self.configs
            .iter()
            .find(|((_, id), _)| id == device_id)
            .map(|(_, c)| c)
    }

    pub fn config_of_mut(&mut self, device_id: &str) -> Option<&mut DeviceConfig> {
        let key = match self.device(device_id) {
            Some(dev) => (dev.tenant_id.clone(), device_id.to_string()),
            None => self
                .configs
                .keys()
                .find(|(_, id)| id == device_id)
                .cloned()?,
        };
        self.configs.get_mut(&key)
    }
}

/// A made-up but PEM-shaped public key (the stand-in never verifies it).
pub(crate) fn fake_pubkey() -> String {
    use base64::Engine;
    let mut bytes = Vec::with_capacity(91);
    while bytes.len() < 91 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.truncate(91);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
}

/// Made-up identity data, unique per device (Mender requires that).
pub(crate) fn fake_identity() -> Map<String, Value> {
    let b = *uuid::Uuid::new_v4().as_bytes();
    let mac = format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    );
    let mut m = Map::new();
    m.insert("mac".into(), Value::String(mac));
    m
}
