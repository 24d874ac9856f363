//! What a Mender device status means for the bridge: the one place that
//! decides, for webhooks and for convergence alike.

use std::fmt;
use std::str::FromStr;

use crate::events::DetailType;

/// A device's authentication status in Mender (devauth v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    Accepted,
    Preauthorized,
    Pending,
    Rejected,
    Noauth,
    Decommissioned,
}

/// What AWS IoT Core is made to hold for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wanted {
    /// A Thing with one ACTIVE certificate, delivered to the device.
    Active,
    /// Preauthorized: keep an existing certificate active, create nothing.
    KeepActive,
    /// Every certificate INACTIVE; the Thing stays.
    Inactive,
    /// No Thing and no certificate.
    Gone,
}

/// A status the bridge does not know. It is refused, never guessed at:
/// disabling or provisioning on a status nobody defined would be a guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for DeviceStatus {
    type Err = UnknownStatus;

    fn from_str(status: &str) -> Result<Self, Self::Err> {
        Ok(match status {
            "accepted" => DeviceStatus::Accepted,
            "preauthorized" => DeviceStatus::Preauthorized,
            "pending" => DeviceStatus::Pending,
            "rejected" => DeviceStatus::Rejected,
            "noauth" => DeviceStatus::Noauth,
            "decommissioned" => DeviceStatus::Decommissioned,
            other => return Err(UnknownStatus(other.to_owned())),
        })
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceStatus::Accepted => "accepted",
            DeviceStatus::Preauthorized => "preauthorized",
            DeviceStatus::Pending => "pending",
            DeviceStatus::Rejected => "rejected",
            DeviceStatus::Noauth => "noauth",
            DeviceStatus::Decommissioned => "decommissioned",
        })
    }
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 6] = [
        DeviceStatus::Accepted,
        DeviceStatus::Preauthorized,
        DeviceStatus::Pending,
        DeviceStatus::Rejected,
        DeviceStatus::Noauth,
        DeviceStatus::Decommissioned,
    ];

    pub fn wanted(self) -> Wanted {
        match self {
            DeviceStatus::Accepted => Wanted::Active,
            DeviceStatus::Preauthorized => Wanted::KeepActive,
            DeviceStatus::Pending | DeviceStatus::Rejected | DeviceStatus::Noauth => {
                Wanted::Inactive
            }
            DeviceStatus::Decommissioned => Wanted::Gone,
        }
    }
}

impl Wanted {
    /// Which lifecycle function converges a device that should hold this.
    pub fn detail_type(self) -> DetailType {
        match self {
            Wanted::Active | Wanted::KeepActive => DetailType::DeviceAccepted,
            Wanted::Inactive => DetailType::DeviceDisabled,
            Wanted::Gone => DetailType::DeviceDecommissioned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_one_meaning() {
        use DetailType::*;
        for (status, wanted, detail_type) in [
            (DeviceStatus::Accepted, Wanted::Active, DeviceAccepted),
            (
                DeviceStatus::Preauthorized,
                Wanted::KeepActive,
                DeviceAccepted,
            ),
            (DeviceStatus::Pending, Wanted::Inactive, DeviceDisabled),
            (DeviceStatus::Rejected, Wanted::Inactive, DeviceDisabled),
            (DeviceStatus::Noauth, Wanted::Inactive, DeviceDisabled),
            (
                DeviceStatus::Decommissioned,
                Wanted::Gone,
                DeviceDecommissioned,
            ),
        ] {
            assert_eq!(status.wanted(), wanted, "{status}");
            assert_eq!(status.wanted().detail_type(), detail_type, "{status}");
            assert_eq!(status.to_string().parse::<DeviceStatus>(), Ok(status));
        }
    }

    #[test]
    fn unknown_statuses_are_refused() {
        for unknown in ["", "Accepted", "weird", "accepted "] {
            assert_eq!(
                unknown.parse::<DeviceStatus>(),
                Err(UnknownStatus(unknown.to_owned()))
            );
        }
    }
}
