//! A device's shadows in the AWS IoT data plane: read, update, and delete
//! them all when the device goes. Errors keep AWS's code so callers can tell a version conflict from
//! an outage.

use aws_sdk_iotdataplane::primitives::Blob;
use serde_json::Value;

use super::{StoredShadow, parse_stored, parse_update_version};
use crate::iot::IotError;

/// Which shadow of a Thing: the classic one, or a named one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowAddress {
    pub thing: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug)]
pub struct DeviceShadows {
    client: aws_sdk_iotdataplane::Client,
}

impl DeviceShadows {
    pub fn new(client: aws_sdk_iotdataplane::Client) -> Self {
        Self { client }
    }

    /// The shadow, or `None` when it does not exist (yet, or any more).
    pub async fn get(&self, address: &ShadowAddress) -> Result<Option<StoredShadow>, IotError> {
        let result = self
            .client
            .get_thing_shadow()
            .thing_name(&address.thing)
            .set_shadow_name(address.name.clone())
            .send()
            .await;
        match result {
            Ok(output) => {
                let payload = output.payload().map(Blob::as_ref).unwrap_or_default();
                parse_stored(payload)
                    .map(Some)
                    .map_err(|reason| unexpected("GetThingShadow", reason))
            }
            Err(error) => {
                let error = IotError::from_sdk("GetThingShadow", error);
                if error.is_not_found() {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Sends an UpdateThingShadow payload; the document's new version.
    pub async fn update(&self, address: &ShadowAddress, request: &Value) -> Result<u64, IotError> {
        let output = self
            .client
            .update_thing_shadow()
            .thing_name(&address.thing)
            .set_shadow_name(address.name.clone())
            .payload(Blob::new(request.to_string()))
            .send()
            .await
            .map_err(|e| IotError::from_sdk("UpdateThingShadow", e))?;
        let payload = output.payload().map(Blob::as_ref).unwrap_or_default();
        parse_update_version(payload).map_err(|reason| unexpected("UpdateThingShadow", reason))
    }
}

impl DeviceShadows {
    /// Deletes every shadow of `thing`, named ones and the classic one:
    /// AWS keeps them when the Thing is deleted. Shadows already gone count
    /// as deleted. How many were deleted.
    pub async fn delete_all(&self, thing: &str) -> Result<usize, IotError> {
        let mut names: Vec<Option<String>> = vec![None];
        let mut token = None;
        loop {
            let page = self
                .client
                .list_named_shadows_for_thing()
                .thing_name(thing)
                .page_size(100)
                .set_next_token(token)
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    let error = IotError::from_sdk("ListNamedShadowsForThing", error);
                    if error.is_not_found() {
                        break;
                    }
                    return Err(error);
                }
            };
            names.extend(page.results().iter().cloned().map(Some));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut deleted = 0;
        for name in names {
            let result = self
                .client
                .delete_thing_shadow()
                .thing_name(thing)
                .set_shadow_name(name)
                .send()
                .await;
            match result {
                Ok(_) => deleted += 1,
                Err(error) => {
                    let error = IotError::from_sdk("DeleteThingShadow", error);
                    if !error.is_not_found() {
                        return Err(error);
                    }
                }
            }
        }
        Ok(deleted)
    }
}

fn unexpected(operation: &'static str, reason: String) -> IotError {
    IotError {
        operation,
        code: "UnexpectedAnswer".to_owned(),
        message: reason,
    }
}
