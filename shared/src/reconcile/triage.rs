//! Pure: whether a device Mender listed needs a look of its own, or its
//! record and the bulk listings agree that nothing changed since it was
//! last looked at. Only evidence that agrees everywhere spares the look;
//! anything missing, different or unusual asks for one.

use super::listing::PageListing;
use crate::converge::Outcome;
use crate::converge::plan;
use crate::converge::record::DeviceRecord;
use crate::mender::Device;

/// What the integration asks of a device now, beyond Mender's status.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub device_policy: &'a str,
    pub backfill: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triage {
    /// Nothing changed: the outcome a look would have reported.
    Unchanged(Outcome),
    /// The device is read and converged.
    Look,
}

pub fn triage(
    device: &Device,
    record: Option<&DeviceRecord>,
    aws: &PageListing,
    expected: Expected,
) -> Triage {
    let Some(record) = record else {
        return Triage::Look;
    };
    let same_in_mender = plan::wanted(Some(device)).is_ok_and(|w| w == record.wanted)
        && device.updated_ts == record.mender_updated_ts;
    if !same_in_mender {
        return Triage::Look;
    }
    if record.certificates.is_empty() {
        // Nothing in AWS, and nothing wanted there (or left alone, and
        // backfill still off).
        let changed = aws.has_thing(&device.id) || (record.left_alone && expected.backfill);
        return if !changed {
            Triage::Unchanged(Outcome::Nothing)
        } else {
            Triage::Look
        };
    }
    let unchanged = aws.has_thing(&device.id)
        // Two certificates are a rotation under way: it ends when the
        // device reports the new one, which only a look reads.
        && record.certificates.len() == 1
        && record
            .certificates
            .iter()
            .all(|c| aws.certificate_active(&c.id) == Some(c.active))
        && record
            .policy
            .as_deref()
            .is_none_or(|policy| policy == expected.device_policy);
    if unchanged {
        Triage::Unchanged(Outcome::InSync)
    } else {
        Triage::Look
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converge::record::RecordedCertificate;
    use crate::device::Wanted;

    fn device(status: &str) -> Device {
        Device {
            id: "d1".into(),
            status: status.into(),
            decommissioning: false,
            updated_ts: Some("t1".into()),
        }
    }

    fn record(wanted: Wanted, certificates: &[(&str, bool)]) -> DeviceRecord {
        DeviceRecord {
            device_id: "d1".into(),
            wanted,
            mender_updated_ts: Some("t1".into()),
            certificates: certificates
                .iter()
                .map(|(id, active)| RecordedCertificate {
                    id: (*id).into(),
                    active: *active,
                })
                .collect(),
            policy: (wanted == Wanted::Active && !certificates.is_empty())
                .then(|| "policy".to_owned()),
            left_alone: false,
            checked_at: 0,
        }
    }

    const EXPECTED: Expected = Expected {
        device_policy: "policy",
        backfill: false,
    };

    #[test]
    fn only_agreement_everywhere_spares_the_look() {
        let listing = PageListing::new(["d1"], [("c1", true), ("c2", false), ("c3", true)]);
        let without_thing = PageListing::new([], [("c1", true)]);
        let active = record(Wanted::Active, &[("c1", true)]);
        let changed_in_mender = DeviceRecord {
            mender_updated_ts: Some("t0".into()),
            ..active.clone()
        };
        let other_policy = DeviceRecord {
            policy: Some("old-policy".into()),
            ..active.clone()
        };
        let left_alone = DeviceRecord {
            left_alone: true,
            ..record(Wanted::Active, &[])
        };
        use Outcome::{InSync, Nothing};
        use Triage::{Look, Unchanged};
        for (name, status, record, aws, expected, triaged) in [
            (
                "in sync",
                "accepted",
                Some(&active),
                &listing,
                EXPECTED,
                Unchanged(InSync),
            ),
            ("no record", "accepted", None, &listing, EXPECTED, Look),
            (
                "status changed",
                "rejected",
                Some(&active),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "unknown status",
                "sleepy",
                Some(&active),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "devauth changed",
                "accepted",
                Some(&changed_in_mender),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "Thing gone or no longer ours",
                "accepted",
                Some(&active),
                &without_thing,
                EXPECTED,
                Look,
            ),
            (
                "policy changed",
                "accepted",
                Some(&other_policy),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "certificate made INACTIVE",
                "accepted",
                Some(&record(Wanted::Active, &[("c2", true)])),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "certificate deleted",
                "accepted",
                Some(&record(Wanted::Active, &[("c9", true)])),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "a rotation under way",
                "accepted",
                Some(&record(Wanted::Active, &[("c1", true), ("c3", true)])),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "disabled, still INACTIVE",
                "rejected",
                Some(&record(Wanted::Inactive, &[("c2", false)])),
                &listing,
                EXPECTED,
                Unchanged(InSync),
            ),
            (
                "disabled, made ACTIVE by hand",
                "rejected",
                Some(&record(Wanted::Inactive, &[("c1", false)])),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "nothing, still nothing",
                "pending",
                Some(&record(Wanted::Inactive, &[])),
                &without_thing,
                EXPECTED,
                Unchanged(Nothing),
            ),
            (
                "nothing, now a Thing",
                "pending",
                Some(&record(Wanted::Inactive, &[])),
                &listing,
                EXPECTED,
                Look,
            ),
            (
                "left alone",
                "accepted",
                Some(&left_alone),
                &without_thing,
                EXPECTED,
                Unchanged(Nothing),
            ),
            (
                "left alone, backfill turned on",
                "accepted",
                Some(&left_alone),
                &without_thing,
                Expected {
                    backfill: true,
                    ..EXPECTED
                },
                Look,
            ),
        ] {
            assert_eq!(
                triage(&device(status), record, aws, expected),
                triaged,
                "{name}"
            );
        }
    }
}
