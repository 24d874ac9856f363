//! Device authentication (`/api/management/v2/devauth`): devices, their
//! authentication sets and the status transitions that emit webhooks.
//!
//! The transitions follow Mender's deviceauth: the device status is derived
//! from its authentication sets; a status change is reported when the new
//! device status differs from the old status of the authentication set that
//! changed; dismissing a preauthorized set deletes the device.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::http::{ApiError, App, json_response, parse_json};
use crate::paging::Paging;
use crate::state::{
    ACCEPTED, AuthSet, DECOMMISSIONED, Device, NOAUTH, PENDING, PREAUTHORIZED, REJECTED, State,
    fake_identity, fake_pubkey, new_id, now, status_from_auth_sets, ts,
};
use crate::webhooks::Event;

const DEVICES_PATH: &str = "/api/management/v2/devauth/devices";
const LIST_STATUSES: [&str; 5] = [PENDING, ACCEPTED, REJECTED, PREAUTHORIZED, NOAUTH];

// ---------------------------------------------------------------------------
// The model: transitions on the state, shared by the HTTP handlers and the
// library helpers.

/// Recomputes a device's status after its auth set whose status was
/// `previous` changed; reports a change the way Mender does.
fn update_device_status(device: &mut Device, previous: &str) -> Vec<Event> {
    let status = status_from_auth_sets(&device.auth_sets);
    device.status = status.to_string();
    device.updated_ts = now();
    if status == previous {
        Vec::new()
    } else {
        vec![Event::status_changed(&device.id, status)]
    }
}

impl State {
    /// Adds a device directly (no webhook). `status` `noauth` gives a device
    /// without authentication sets; `accepted` counts as provisioned.
    pub fn insert_device(
        &mut self,
        tenant_id: &str,
        status: &str,
        group: Option<&str>,
    ) -> Result<String, String> {
        if !self.tenants.contains_key(tenant_id) {
            return Err(format!("unknown tenant {tenant_id:?}"));
        }
        if !LIST_STATUSES.contains(&status) {
            return Err(format!(
                "invalid device status {status:?}, expected one of {LIST_STATUSES:?}"
            ));
        }
        let created = now();
        let identity_data = fake_identity();
        let auth_sets = if status == NOAUTH {
            Vec::new()
        } else {
            vec![AuthSet {
                id: new_id(),
                identity_data: identity_data.clone(),
                pubkey: fake_pubkey(),
                ts: created,
                status: status.to_string(),
            }]
        };
        let id = new_id();
        self.devices.push(Device {
            id: id.clone(),
            tenant_id: tenant_id.to_string(),
            group: group.map(str::to_string),
            identity_data,
            created_ts: created,
            updated_ts: created,
            status: status.to_string(),
            auth_sets,
            provisioned: status == ACCEPTED,
        });
        if status == ACCEPTED {
            self.ensure_config(tenant_id, &id);
        }
        Ok(id)
    }

    /// The device sends a new authentication request: a new pending set.
    pub fn submit_auth_request(&mut self, device_id: &str) -> Option<(String, Vec<Event>)> {
        let device = self.device_mut(device_id)?;
        let previous = device.status.clone();
        let aid = new_id();
        device.auth_sets.push(AuthSet {
            id: aid.clone(),
            identity_data: device.identity_data.clone(),
            pubkey: fake_pubkey(),
            ts: now(),
            status: PENDING.to_string(),
        });
        let events = update_device_status(device, &previous);
        Some((aid, events))
    }

    /// `PUT …/devices/{id}/auth/{aid}/status`.
    pub fn set_auth_status(
        &mut self,
        device_id: &str,
        aid: &str,
        status: &str,
    ) -> Result<Vec<Event>, ApiError> {
        let device = self
            .device_mut(device_id)
            .ok_or_else(|| ApiError::not_found("device not found"))?;
        let index = device
            .auth_sets
            .iter()
            .position(|a| a.id == aid)
            .ok_or_else(|| ApiError::not_found("authentication set not found"))?;
        let previous = device.auth_sets[index].status.clone();
        if previous == status {
            return Ok(Vec::new());
        }
        let was_accepted = device.status == ACCEPTED;
        if status == ACCEPTED {
            // Only one set may be accepted (or preauthorized) at a time.
            for (i, set) in device.auth_sets.iter_mut().enumerate() {
                if i != index && (set.status == ACCEPTED || set.status == PREAUTHORIZED) {
                    set.status = REJECTED.to_string();
                }
            }
        }
        device.auth_sets[index].status = status.to_string();
        let mut events = update_device_status(device, &previous);

        if status == ACCEPTED && !was_accepted && !device.provisioned {
            device.provisioned = true;
            events.push(Event::provisioned(device));
            let tenant_id = device.tenant_id.clone();
            self.ensure_config(&tenant_id, device_id);
        }
        Ok(events)
    }

    /// `DELETE …/devices/{id}/auth/{aid}` (dismiss).
    pub fn delete_auth_set(&mut self, device_id: &str, aid: &str) -> Result<Vec<Event>, ApiError> {
        let device = self
            .device_mut(device_id)
            .ok_or_else(|| ApiError::not_found("device not found"))?;
        let index = device
            .auth_sets
            .iter()
            .position(|a| a.id == aid)
            .ok_or_else(|| ApiError::not_found("authentication set not found"))?;
        let removed = device.auth_sets.remove(index);
        if removed.status == PREAUTHORIZED {
            // Only preauthorized: the device is deleted altogether.
            self.remove_device(device_id);
            return Ok(vec![Event::status_changed(device_id, DECOMMISSIONED)]);
        }
        Ok(update_device_status(device, &removed.status))
    }

    /// `DELETE …/devices/{id}` (decommission).
    pub fn decommission_device(&mut self, device_id: &str) -> Result<Vec<Event>, ApiError> {
        if !self.remove_device(device_id) {
            return Err(ApiError::not_found("device not found"));
        }
        Ok(vec![Event::Decommissioned {
            device_id: device_id.to_string(),
        }])
    }

    fn remove_device(&mut self, device_id: &str) -> bool {
        let Some(index) = self.devices.iter().position(|d| d.id == device_id) else {
            return false;
        };
        let device = self.devices.remove(index);
        self.configs.remove(&(device.tenant_id, device.id));
        true
    }

    /// `POST …/devices`: a new preauthorized device, or the conflicting one.
    pub fn preauthorize(
        &mut self,
        tenant_id: &str,
        identity_data: Map<String, Value>,
        pubkey: String,
    ) -> Result<(String, Vec<Event>), Box<Device>> {
        if let Some(existing) = self
            .devices
            .iter()
            .find(|d| d.tenant_id == tenant_id && d.identity_data == identity_data)
        {
            return Err(Box::new(existing.clone()));
        }
        let created = now();
        let id = new_id();
        self.devices.push(Device {
            id: id.clone(),
            tenant_id: tenant_id.to_string(),
            group: None,
            identity_data: identity_data.clone(),
            created_ts: created,
            updated_ts: created,
            status: PREAUTHORIZED.to_string(),
            auth_sets: vec![AuthSet {
                id: new_id(),
                identity_data,
                pubkey,
                ts: created,
                status: PREAUTHORIZED.to_string(),
            }],
            provisioned: false,
        });
        let events = vec![Event::status_changed(&id, PREAUTHORIZED)];
        Ok((id, events))
    }
}

/// A device as `GET /devices/{id}` shows it.
pub(crate) fn device_json(device: &Device) -> Value {
    let auth_sets: Vec<Value> = device
        .auth_sets
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "identity_data": a.identity_data,
                "pubkey": a.pubkey,
                "ts": ts(a.ts),
                "status": a.status,
            })
        })
        .collect();
    json!({
        "id": device.id,
        "identity_data": device.identity_data,
        "status": device.status,
        "created_ts": ts(device.created_ts),
        "updated_ts": ts(device.updated_ts),
        "auth_sets": auth_sets,
        "decommissioning": false,
    })
}

/// The caller's device: 404 when unknown or another tenant's, 403 when the
/// caller's RBAC device groups exclude it.
pub(crate) fn visible_device<'a>(
    state: &'a State,
    caller: &Caller,
    device_id: &str,
) -> Result<&'a Device, ApiError> {
    let device = state
        .tenant_device(&caller.tenant_id, device_id)
        .ok_or_else(|| ApiError::not_found("device not found"))?;
    if caller.can_see_group(device.group.as_deref()) {
        Ok(device)
    } else {
        Err(ApiError::forbidden())
    }
}

// ---------------------------------------------------------------------------
// HTTP handlers.

pub(crate) async fn get_device(
    AxumState(shared): App,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = shared.lock();
    let device = visible_device(&state, &caller, &id)?;
    Ok(json_response(StatusCode::OK, device_json(device)))
}

pub(crate) async fn list_devices(
    AxumState(shared): App,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = ListFilter::parse(&pairs)?;

    let state = shared.lock();
    let matching = state
        .devices
        .iter()
        .filter(|d| d.tenant_id == caller.tenant_id)
        .filter(|d| caller.can_see_group(d.group.as_deref()))
        .filter(|d| filter.status.as_ref().is_none_or(|s| &d.status == s))
        .filter(|d| filter.ids.is_empty() || filter.ids.contains(&d.id));
    let (page, has_next) = filter.paging.page_of(matching);
    let page: Vec<Value> = page.into_iter().map(device_json).collect();
    drop(state);

    let mut response = json_response(StatusCode::OK, Value::Array(page));
    filter
        .paging
        .add_links(&mut response, DEVICES_PATH, &pairs, has_next);
    Ok(response)
}

struct ListFilter {
    status: Option<String>,
    ids: Vec<String>,
    paging: Paging,
}

impl ListFilter {
    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut filter = ListFilter {
            status: None,
            ids: Vec::new(),
            paging: Paging::parse(pairs)?,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "status" if !value.is_empty() => {
                    if !LIST_STATUSES.contains(&value.as_str()) {
                        return Err(ApiError::bad_request(format!(
                            "status must be one of: {}",
                            LIST_STATUSES.join(", ")
                        )));
                    }
                    filter.status = Some(value.clone());
                }
                "id" if !value.is_empty() => filter.ids.push(value.clone()),
                _ => {}
            }
        }
        Ok(filter)
    }
}

pub(crate) async fn count(
    AxumState(shared): App,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = pairs
        .iter()
        .find(|(k, v)| k == "status" && !v.is_empty())
        .map(|(_, v)| v.clone());
    if let Some(s) = &status
        && !LIST_STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "status must be one of: {}",
            LIST_STATUSES.join(", ")
        )));
    }
    let state = shared.lock();
    let count = state
        .devices
        .iter()
        .filter(|d| d.tenant_id == caller.tenant_id)
        .filter(|d| caller.can_see_group(d.group.as_deref()))
        .filter(|d| status.as_ref().is_none_or(|s| &d.status == s))
        .count();
    Ok(json_response(StatusCode::OK, json!({ "count": count })))
}

pub(crate) async fn get_status(
    AxumState(shared): App,
    caller: Caller,
    Path((id, aid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let state = shared.lock();
    let device = visible_device(&state, &caller, &id)?;
    let set = device
        .auth_sets
        .iter()
        .find(|a| a.id == aid)
        .ok_or_else(|| ApiError::not_found("authentication set not found"))?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "status": set.status }),
    ))
}

#[derive(serde::Deserialize)]
struct StatusBody {
    status: String,
}

pub(crate) async fn set_status(
    AxumState(shared): App,
    caller: Caller,
    Path((id, aid)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let StatusBody { status } = parse_json(&body)?;
    if ![ACCEPTED, REJECTED, PENDING].contains(&status.as_str()) {
        return Err(ApiError::bad_request(format!(
            "incorrect device status: {status:?}"
        )));
    }
    let outgoing = {
        let mut state = shared.lock();
        let device = visible_device(&state, &caller, &id)?;
        if !device.auth_sets.iter().any(|a| a.id == aid) {
            let elsewhere = state.devices.iter().any(|d| {
                d.tenant_id == caller.tenant_id && d.auth_sets.iter().any(|a| a.id == aid)
            });
            return Err(if elsewhere {
                ApiError::bad_request("dev auth: dev ID and auth ID mismatch")
            } else {
                ApiError::not_found("authentication set not found")
            });
        }
        let events = state.set_auth_status(&id, &aid, &status)?;
        state.plan_deliveries(&caller.tenant_id, events)
    };
    shared.dispatch(outgoing);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn dismiss(
    AxumState(shared): App,
    caller: Caller,
    Path((id, aid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let outgoing = {
        let mut state = shared.lock();
        visible_device(&state, &caller, &id)?;
        let events = state.delete_auth_set(&id, &aid)?;
        state.plan_deliveries(&caller.tenant_id, events)
    };
    shared.dispatch(outgoing);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn decommission(
    AxumState(shared): App,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let outgoing = {
        let mut state = shared.lock();
        visible_device(&state, &caller, &id)?;
        let events = state.decommission_device(&id)?;
        state.plan_deliveries(&caller.tenant_id, events)
    };
    shared.dispatch(outgoing);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn preauthorize(
    AxumState(shared): App,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let body: Value = parse_json(&body)?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request(
            "malformed request body: expected an object",
        ));
    };
    let identity_data = match fields.get("identity_data") {
        Some(Value::Object(m)) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "identity_data: must be a non-empty object",
            ));
        }
        None => return Err(ApiError::bad_request("identity_data: cannot be blank")),
    };
    let pubkey = match fields.get("pubkey") {
        Some(Value::String(s)) if looks_like_pem(s) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("pubkey: must be a PEM public key")),
        None => return Err(ApiError::bad_request("pubkey: cannot be blank")),
    };
    if fields.get("force").is_some_and(|f| !f.is_boolean()) {
        return Err(ApiError::bad_request("force: must be a boolean"));
    }

    let result = {
        let mut state = shared.lock();
        state
            .preauthorize(&caller.tenant_id, identity_data, pubkey)
            .map(|(id, events)| (id, state.plan_deliveries(&caller.tenant_id, events)))
    };
    match result {
        Ok((id, outgoing)) => {
            shared.dispatch(outgoing);
            let mut response = StatusCode::CREATED.into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("devices/{id}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        Err(existing) => Ok(json_response(StatusCode::CONFLICT, device_json(&existing))),
    }
}

fn looks_like_pem(s: &str) -> bool {
    let s = s.trim();
    s.starts_with("-----BEGIN ") && s.contains("-----END ")
}
