//! Convergence: make AWS IoT Core hold what Mender says about one device.
//!
//! Mender is the source of truth; webhook payloads are only triggers. The
//! same convergence serves every lifecycle event and every reconcile run,
//! so duplicates, reordering and replays are harmless.
//!
//! Observe, decide, act: [`apply::converge`] reads Mender and AWS, [`plan`]
//! decides (pure, tested as a table), and the shell carries the plan out
//! and undoes a provisioning that fails half-way.

pub mod apply;
pub mod plan;

pub use apply::converge;

use crate::device::UnknownStatus;
use crate::iot::IotError;
use crate::mender::MenderError;

/// What converging a device did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A certificate was issued, attached and delivered.
    Provisioned,
    /// The device's AWS state was already right; nothing was written.
    InSync,
    /// An existing Thing's certificate was re-activated or repaired.
    Repaired,
    /// The Thing's certificates were made INACTIVE.
    Disabled,
    /// Thing, certificates and attachments were deleted.
    Removed,
    /// A Thing of that name exists that the bridge does not manage.
    Conflict,
    /// Nothing exists and nothing should.
    Nothing,
    /// Another invocation was converging the device; it was asked to
    /// converge once more, after this event (see `crate::lease`).
    HandedOver,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Mender(#[from] MenderError),
    #[error(transparent)]
    Iot(#[from] IotError),
    #[error("Mender reports an {0}; the device is left as it is")]
    Status(#[from] UnknownStatus),
    #[error("could not generate the device key: {0}")]
    Key(String),
}
