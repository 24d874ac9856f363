//! A device's shadows in the AWS IoT data plane: read and update, nothing
//! more. Errors keep AWS's code so callers can tell a version conflict from
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

fn unexpected(operation: &'static str, reason: String) -> IotError {
    IotError {
        operation,
        code: "UnexpectedAnswer".to_owned(),
        message: reason,
    }
}
