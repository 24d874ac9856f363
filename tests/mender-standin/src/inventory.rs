//! Inventory (`/api/management/v1/inventory`): the devices of a group, as
//! Mender's inventory lists them (`GET /groups/{name}/devices`). A group
//! exists while a device is in it; a device's group is set when the test
//! adds it ([`crate::MenderStandin::add_device`]).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::auth::Caller;
use crate::http::{ApiError, App, json_response};
use crate::paging::Paging;

const GROUPS_PATH: &str = "/api/management/v1/inventory/groups";

/// `GET /groups/{name}/devices`: a page of the group's device ids, with
/// `X-Total-Count` and `Link` headers; 404 for a group no device of the
/// organization is in, 403 for one the caller's RBAC groups exclude.
pub(crate) async fn group_devices(
    AxumState(shared): App,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let paging = Paging::parse(&pairs)?;
    let state = shared.lock();
    let in_group: Vec<&str> = state
        .devices
        .iter()
        .filter(|d| d.tenant_id == caller.tenant_id && d.group.as_deref() == Some(name.as_str()))
        .map(|d| d.id.as_str())
        .collect();
    if in_group.is_empty() {
        return Err(ApiError::not_found("group not found"));
    }
    if !caller.can_see_group(Some(&name)) {
        return Err(ApiError::forbidden());
    }
    let (page, has_next) = paging.page_of(in_group.iter());
    let ids: Vec<Value> = page.into_iter().map(|id| Value::from(*id)).collect();
    let total = in_group.len();
    drop(state);

    let mut response = json_response(StatusCode::OK, Value::Array(ids));
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    let path = format!("{GROUPS_PATH}/{name}/devices");
    paging.add_links(&mut response, &path, &pairs, has_next);
    Ok(response)
}
