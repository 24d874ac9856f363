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
pub mod record;
pub mod sweep;

pub use apply::{converge, observe_device};

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
    /// The device's certificates would be disabled or its Thing removed,
    /// and this convergence was not allowed to (a reconcile run's survey;
    /// see `crate::reconcile`).
    Deferred,
    /// A rotation started: a new certificate was issued, attached and
    /// delivered; the one the device holds stays ACTIVE.
    Rotated,
}

/// What asked for a convergence, which decides what it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A lifecycle event: Mender named this very device. Everything the
    /// plan says is carried out.
    Event,
    /// A reconcile run's survey: nothing that disables or removes (such
    /// plans end as [`Outcome::Deferred`]), and devices that were accepted
    /// before the integration existed are provisioned only with backfill.
    Survey,
    /// A reconcile run's second pass: what the survey deferred, with the
    /// same rule for devices older than the integration.
    Apply,
    /// An admin starts a rotation of the device's certificate
    /// (`crate::rotation`): the rotation's plan, not the usual one.
    Rotate,
    /// An admin cancels a rotation the device has not applied.
    CancelRotation,
}

impl Trigger {
    pub fn may_take_access_away(self) -> bool {
        self != Trigger::Survey
    }

    /// Whether the integration's backfill setting decides about devices
    /// accepted before it existed (a run); an event always converges.
    pub fn heeds_backfill(self) -> bool {
        matches!(self, Trigger::Survey | Trigger::Apply)
    }

    /// What a further pass under the same lease does (another event came
    /// meanwhile): a rotation is started or cancelled once, then the device
    /// is converged as for any event.
    pub fn again(self) -> Trigger {
        match self {
            Trigger::Rotate | Trigger::CancelRotation => Trigger::Event,
            other => other,
        }
    }
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
    /// A certificate intent could not be written: nothing was created or detached.
    #[error(transparent)]
    Intent(#[from] crate::table::TableError),
    /// A rotation that cannot start or be cancelled: nothing was changed.
    #[error(transparent)]
    Refused(#[from] plan::Refused),
}
