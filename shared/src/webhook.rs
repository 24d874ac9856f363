//! Mender's webhooks: the signature, the envelope, and what each event means
//! for the bridge. Pure functions, no I/O.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::device::{DeviceStatus, UnknownStatus};
use crate::events::DetailType;

/// The largest webhook body the ingress reads. Mender's device events are a
/// few KiB at most, even with many auth sets.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub const SIGNATURE_HEADER: &str = "x-men-signature";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing X-Men-Signature header")]
    MissingSignature,
    #[error("X-Men-Signature does not match the body")]
    BadSignature,
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("event is missing `{0}`")]
    MissingField(&'static str),
    #[error(transparent)]
    UnknownStatus(#[from] UnknownStatus),
}

/// Checks `X-Men-Signature` (lowercase hex of HMAC-SHA256 over the raw body,
/// keyed with the hex-decoded secret) in constant time.
pub fn verify_signature(
    secret_hex: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), WebhookError> {
    let signature = signature.ok_or(WebhookError::MissingSignature)?;
    let expected = hex::decode(signature.trim()).map_err(|_| WebhookError::BadSignature)?;
    // A stored secret that is not hex can never have signed anything.
    let key = hex::decode(secret_hex).map_err(|_| WebhookError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature)
}

/// Signs a body the way Mender does; used by the stand-in and tests.
pub fn sign(secret_hex: &str, body: &[u8]) -> String {
    let key = hex::decode(secret_hex).unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A webhook as Mender sends it: `{id, type, data, time}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    pub event_type: String,
    pub device_id: String,
    pub status: Option<String>,
    pub time: String,
}

#[derive(Deserialize)]
struct Envelope {
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    data: Option<serde_json::Value>,
    time: Option<String>,
}

/// What the bridge does with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    Publish(DetailType),
    /// Events that carry nothing about a device's lifecycle
    /// (`device-inventory-changed`, future types).
    Ignore,
}

/// Parses the envelope, then classifies it. Device events must name their
/// device; status changes must carry a known status.
pub fn parse(body: &[u8]) -> Result<(WebhookEvent, Classification), WebhookError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
    let id = non_empty(envelope.id).ok_or(WebhookError::MissingField("id"))?;
    let event_type = non_empty(envelope.event_type).ok_or(WebhookError::MissingField("type"))?;
    let time = envelope.time.unwrap_or_default();
    let data = envelope.data.unwrap_or(serde_json::Value::Null);
    let field = |name: &str| data.get(name).and_then(|v| v.as_str()).map(str::to_owned);

    let classification = match event_type.as_str() {
        "device-provisioned" | "device-status-changed" | "device-decommissioned" => None,
        _ => Some(Classification::Ignore),
    };
    if let Some(ignore) = classification {
        let event = WebhookEvent {
            id,
            event_type,
            device_id: field("id").unwrap_or_default(),
            status: None,
            time,
        };
        return Ok((event, ignore));
    }

    let device_id = non_empty(field("id")).ok_or(WebhookError::MissingField("data.id"))?;
    let status = non_empty(field("status"));
    let detail_type = match (event_type.as_str(), status.as_deref()) {
        ("device-decommissioned", _) => DetailType::DeviceDecommissioned,
        // A provisioned event always means accepted, whatever else it says.
        ("device-provisioned", _) => DetailType::DeviceAccepted,
        (_, None) => return Err(WebhookError::MissingField("data.status")),
        (_, Some(status)) => status.parse::<DeviceStatus>()?.wanted().detail_type(),
    };
    let event = WebhookEvent {
        id,
        event_type,
        device_id,
        status,
        time,
    };
    Ok((event, Classification::Publish(detail_type)))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn signature_is_keyed_with_the_decoded_secret() {
        let body = br#"{"id":"1"}"#;
        let signature = sign(SECRET, body);
        assert_eq!(verify_signature(SECRET, body, Some(&signature)), Ok(()));
        // Keyed with the secret's text instead of its bytes: not Mender's scheme.
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        let text_keyed = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            verify_signature(SECRET, body, Some(&text_keyed)),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn signature_rejects_missing_malformed_and_foreign_signatures() {
        let body = br#"{"id":"1"}"#;
        assert_eq!(
            verify_signature(SECRET, body, None),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            verify_signature(SECRET, body, Some("zz")),
            Err(WebhookError::BadSignature)
        );
        let other = sign(SECRET, br#"{"id":"2"}"#);
        assert_eq!(
            verify_signature(SECRET, body, Some(&other)),
            Err(WebhookError::BadSignature)
        );
        let truncated = &sign(SECRET, body)[..10];
        assert_eq!(
            verify_signature(SECRET, body, Some(truncated)),
            Err(WebhookError::BadSignature)
        );
    }

    fn classify(body: &str) -> Result<Classification, WebhookError> {
        parse(body.as_bytes()).map(|(_, c)| c)
    }

    #[test]
    fn classifies_every_device_event() {
        use DetailType::*;
        let status = |s: &str| {
            format!(
                r#"{{"id":"e","type":"device-status-changed","data":{{"id":"d","status":"{s}"}},"time":"t"}}"#
            )
        };
        for (s, expected) in [
            ("accepted", DeviceAccepted),
            ("preauthorized", DeviceAccepted),
            ("rejected", DeviceDisabled),
            ("pending", DeviceDisabled),
            ("noauth", DeviceDisabled),
            ("decommissioned", DeviceDecommissioned),
        ] {
            assert_eq!(
                classify(&status(s)),
                Ok(Classification::Publish(expected)),
                "{s}"
            );
        }
        assert_eq!(
            classify(&status("weird")),
            Err(WebhookError::UnknownStatus(UnknownStatus("weird".into())))
        );
        let provisioned = r#"{"id":"e","type":"device-provisioned","data":{"id":"d","status":"accepted","auth_sets":[]},"time":"t"}"#;
        assert_eq!(
            classify(provisioned),
            Ok(Classification::Publish(DeviceAccepted))
        );
        let decommissioned =
            r#"{"id":"e","type":"device-decommissioned","data":{"id":"d"},"time":"t"}"#;
        assert_eq!(
            classify(decommissioned),
            Ok(Classification::Publish(DeviceDecommissioned))
        );
        let inventory =
            r#"{"id":"e","type":"device-inventory-changed","data":{"device_id":"d"},"time":"t"}"#;
        assert_eq!(classify(inventory), Ok(Classification::Ignore));
    }

    #[test]
    fn reports_what_is_missing() {
        assert!(matches!(classify("{"), Err(WebhookError::MalformedJson(_))));
        assert!(matches!(
            classify("[]"),
            Err(WebhookError::MalformedJson(_))
        ));
        assert_eq!(
            classify(r#"{"type":"device-decommissioned"}"#),
            Err(WebhookError::MissingField("id"))
        );
        assert_eq!(
            classify(r#"{"id":"e"}"#),
            Err(WebhookError::MissingField("type"))
        );
        assert_eq!(
            classify(r#"{"id":"e","type":"device-decommissioned","data":{}}"#),
            Err(WebhookError::MissingField("data.id"))
        );
        assert_eq!(
            classify(r#"{"id":"e","type":"device-status-changed","data":{"id":"d"}}"#),
            Err(WebhookError::MissingField("data.status"))
        );
    }

    #[test]
    fn keeps_the_event_identity() {
        let body = r#"{"id":"ev-1","type":"device-status-changed","data":{"id":"dev-1","status":"rejected"},"time":"2026-01-01T00:00:00.123456789Z"}"#;
        let (event, _) = parse(body.as_bytes()).unwrap();
        assert_eq!(event.id, "ev-1");
        assert_eq!(event.device_id, "dev-1");
        assert_eq!(event.status.as_deref(), Some("rejected"));
        assert_eq!(event.time, "2026-01-01T00:00:00.123456789Z");
    }
}
