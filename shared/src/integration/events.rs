//! `GET /api/management/v1/iot-manager/events` (admin): the organization's
//! event log ([`crate::event_log`]), newest first, with Mender's paging
//! (`page`, `per_page`) and filter (`integration_id`), and the bridge's
//! `device_id` filter.

use lambda_http::{Body, Request, RequestExt, Response};

use super::IntegrationApi;
use crate::auth::Caller;
use crate::event_log::{Listing, mender_event};
use crate::http::{ApiError, Paging, json_response};
use crate::iot::is_valid_thing_name;

pub async fn list<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let query = request.query_string_parameters_ref();
    let listing = listing(|name| query.and_then(|q| q.first(name)))?;
    let records = api
        .event_log
        .list(&caller.tenant_id, &listing)
        .await
        .map_err(|error| {
            tracing::error!(%error, "could not read the event log");
            ApiError::ServiceUnavailable("the event log cannot be read now; try again".into())
        })?;
    let events = records.iter().map(mender_event).collect();
    Ok(json_response(200, &serde_json::Value::Array(events)))
}

/// Pure: what a query string asks for, or a 400 that names the parameter.
pub fn listing<'a>(query: impl Fn(&str) -> Option<&'a str> + Copy) -> Result<Listing, ApiError> {
    let integration_id = query("integration_id")
        .map(|id| {
            uuid::Uuid::parse_str(id)
                .map(|_| id.to_owned())
                .map_err(|_| {
                    ApiError::BadRequest(format!("integration_id must be a UUID, not {id:?}"))
                })
        })
        .transpose()?;
    let device_id = query("device_id")
        .map(|id| {
            is_valid_thing_name(id)
                .then(|| id.to_owned())
                .ok_or_else(|| ApiError::BadRequest(format!("device_id {id:?} is not a device id")))
        })
        .transpose()?;
    Ok(Listing {
        paging: Paging::parse(query)?,
        integration_id,
        device_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f2a1a0e-1f3a-4d7e-9a51-0c2b8d1e7f00";

    fn parse(pairs: &[(&'static str, &'static str)]) -> Result<Listing, String> {
        listing(|name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn query_strings_read_as_menders_paging_and_filters() {
        let listing = |page, per_page, integration: Option<&str>, device: Option<&str>| Listing {
            paging: Paging { page, per_page },
            integration_id: integration.map(str::to_owned),
            device_id: device.map(str::to_owned),
        };
        for (pairs, expected) in [
            (&[][..], Ok(listing(1, 20, None, None))),
            (
                &[("page", "3"), ("per_page", "500")][..],
                Ok(listing(3, 500, None, None)),
            ),
            (
                &[("integration_id", ID), ("device_id", "dev-1")][..],
                Ok(listing(1, 20, Some(ID), Some("dev-1"))),
            ),
            (
                &[("page", "0")][..],
                Err("page must be a whole number from 1 to 8589934, not \"0\""),
            ),
            (
                &[("per_page", "501")][..],
                Err("per_page must be a whole number from 1 to 500, not \"501\""),
            ),
            (
                &[("per_page", "-1")][..],
                Err("per_page must be a whole number from 1 to 500, not \"-1\""),
            ),
            (
                &[("page", "two")][..],
                Err("page must be a whole number from 1 to 8589934, not \"two\""),
            ),
            (
                &[("integration_id", "nope")][..],
                Err("integration_id must be a UUID, not \"nope\""),
            ),
            (
                &[("device_id", "a/b")][..],
                Err("device_id \"a/b\" is not a device id"),
            ),
        ] {
            assert_eq!(parse(pairs), expected.map_err(str::to_owned), "{pairs:?}");
        }
    }
}
