//! What the ingress publishes and the lifecycle functions receive: one
//! event per Mender webhook, routed by its detail-type.

use serde::{Deserialize, Serialize};

/// The event source on the bus.
pub const SOURCE: &str = "mender-iot-bridge";

/// The routing decision, as the bus's rules match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetailType {
    DeviceAccepted,
    DeviceDisabled,
    DeviceDecommissioned,
    /// A reconcile run to start or continue (not from Mender).
    ReconcileRequested,
}

impl DetailType {
    pub const ALL: [DetailType; 4] = [
        DetailType::DeviceAccepted,
        DetailType::DeviceDisabled,
        DetailType::DeviceDecommissioned,
        DetailType::ReconcileRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DetailType::DeviceAccepted => "device-accepted",
            DetailType::DeviceDisabled => "device-disabled",
            DetailType::DeviceDecommissioned => "device-decommissioned",
            DetailType::ReconcileRequested => "reconcile-requested",
        }
    }
}

/// The event's `detail`: which device of which organization, and which
/// Mender event triggered it. The state itself is read from Mender again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    pub tenant_id: String,
    pub integration_id: String,
    pub device_id: String,
    pub mender_event_id: String,
    pub mender_event_type: String,
    /// When Mender says the event happened (RFC 3339).
    pub time: String,
}

/// The EventBridge envelope the lifecycle functions are invoked with; only
/// the fields the bridge reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusEnvelope {
    #[serde(rename = "detail-type")]
    pub detail_type: DetailType,
    pub detail: LifecycleEvent,
}

/// The `detail` of a `reconcile-requested` event: start or continue a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRequest {
    pub run_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("could not publish the event: {0}")]
pub struct PublishError(pub String);

/// Where the ingress publishes: EventBridge in AWS, the local runner's
/// in-process dispatcher locally.
pub trait EventBus: Send + Sync {
    /// Publishes one event; `detail` is its JSON body (a [`LifecycleEvent`]
    /// or a [`ReconcileRequest`], by detail-type).
    fn publish(
        &self,
        detail_type: DetailType,
        detail: &serde_json::Value,
    ) -> impl std::future::Future<Output = Result<(), PublishError>> + Send;
}

/// EventBridge `PutEvents` on one bus.
#[derive(Clone, Debug)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }
}

impl EventBus for EventBridgeBus {
    async fn publish(
        &self,
        detail_type: DetailType,
        detail: &serde_json::Value,
    ) -> Result<(), PublishError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(SOURCE)
            .detail_type(detail_type.as_str())
            .detail(detail.to_string())
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                PublishError(aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())
            })?;
        if output.failed_entry_count() > 0 {
            let reason = output
                .entries()
                .iter()
                .filter_map(|entry| entry.error_code())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(PublishError(format!(
                "EventBridge refused the entry: {reason}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_type_serializes_as_its_routing_name() {
        for detail_type in DetailType::ALL {
            assert_eq!(
                serde_json::to_value(detail_type).unwrap(),
                detail_type.as_str()
            );
        }
    }
}
