//! The decision: from what was observed about one device to a plan of what
//! to write. Pure: no I/O, every rule a row of the tests below and of the
//! table in docs/architecture.md.

use crate::device::{DeviceStatus, UnknownStatus, Wanted};
use crate::iot::{Certificate, ThingState};
use crate::mender::{Configuration, Device};

use super::Outcome;

/// The Mender Configure keys devices read (the names of Mender's own
/// integration, so devices built for it work unchanged).
pub const CERTIFICATE_KEY: &str = "awsCertificate";
pub const PRIVATE_KEY_KEY: &str = "awsPrivateKey";
pub const ENDPOINT_KEY: &str = "awsEndpoint";
/// The Thing's name (the device id), for the device's AWS IoT client
/// configuration. Ours, not Mender's: delivered with each new certificate,
/// never a reason on its own to deliver again (see the device script).
pub const THING_NAME_KEY: &str = "awsThingName";

/// What Mender's answer about the device asks of AWS: a device Mender does
/// not know, or is decommissioning, is gone.
pub fn wanted(device: Option<&Device>) -> Result<Wanted, UnknownStatus> {
    match device {
        None => Ok(Wanted::Gone),
        Some(device) if device.decommissioning => Ok(Wanted::Gone),
        Some(device) => Ok(device.status.parse::<DeviceStatus>()?.wanted()),
    }
}

/// What must be read, beyond Mender's status and the Thing, to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// The decision is already made.
    Nothing,
    /// The Thing's certificates.
    Certificates,
    /// The Thing's certificates, the device's configuration and, once the
    /// delivered certificate is known, its policies.
    Delivery,
    /// Every principal of the Thing, certificates described.
    Principals,
}

pub fn reads(wanted: Wanted, thing: &ThingState) -> Reads {
    match (wanted, thing) {
        (_, ThingState::Absent | ThingState::Foreign) => Reads::Nothing,
        // Whether it can be claimed: the proof is in the delivery.
        (_, ThingState::Unclaimed) => Reads::Delivery,
        (Wanted::Active, ThingState::Ours) => Reads::Delivery,
        (Wanted::KeepActive | Wanted::Inactive, ThingState::Ours) => Reads::Certificates,
        (Wanted::Gone, ThingState::Ours) => Reads::Principals,
    }
}

/// Everything the decision looks at. Parts that [`reads`] did not ask for
/// are left empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub wanted: Wanted,
    pub thing: ThingState,
    /// The certificates attached to the Thing, as AWS describes them.
    pub certificates: Vec<Certificate>,
    /// Principals of the Thing that are not certificates.
    pub other_principals: Vec<String>,
    /// The device's Mender configuration (none yet is an empty one).
    pub configuration: Configuration,
    /// The policies attached to the delivered certificate.
    pub delivered_policies: Vec<String>,
    /// The organization's device policy.
    pub device_policy: String,
    /// Device policies the integration used before (it attached them):
    /// detached once the current one is attached.
    pub retired_policies: Vec<String>,
    /// Mender answered for this very device (any status): it is this
    /// organization's device.
    pub known_to_mender: bool,
    /// A run without backfill looks at a device accepted before the
    /// integration existed and unchanged since: nothing is provisioned for
    /// it (Mender's own integration leaves existing devices alone).
    pub left_alone: bool,
}

impl Observed {
    pub fn new(wanted: Wanted, thing: ThingState, device_policy: &str) -> Self {
        Observed {
            wanted,
            thing,
            certificates: Vec::new(),
            other_principals: Vec::new(),
            configuration: Configuration::new(),
            delivered_policies: Vec::new(),
            device_policy: device_policy.to_owned(),
            retired_policies: Vec::new(),
            known_to_mender: true,
            left_alone: false,
        }
    }
}

/// What to write, as data: printable and testable before anything is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to write.
    Keep(Outcome),
    /// Mark an unclaimed Thing as this integration's, then decide again.
    Claim,
    /// Issue a certificate, attach it, deliver it, activate it (undone as a
    /// whole if a step fails); then retire `replaces`.
    Provision {
        create_thing: bool,
        /// The configuration read while deciding, when it was read.
        configuration: Option<Configuration>,
        replaces: Vec<Certificate>,
    },
    /// Keep the delivered certificate and put right what is missing.
    Repair {
        certificate: Certificate,
        attach_policy: bool,
        activate: bool,
        retire: Vec<Certificate>,
        /// The configuration to add the endpoint to, when it lacks one.
        add_endpoint_to: Option<Configuration>,
        /// Device policies the integration used before, still attached:
        /// detached after the current one is attached, so the certificate
        /// is never without a policy of the integration's.
        detach_policies: Vec<String>,
    },
    /// Set these certificates' status.
    SetActive {
        certificates: Vec<Certificate>,
        active: bool,
    },
    /// Retire every certificate, detach the other principals, delete the Thing.
    Remove {
        certificates: Vec<Certificate>,
        other_principals: Vec<String>,
    },
}

impl Plan {
    /// Whether the plan takes access away: disables certificates or removes
    /// the Thing. (Retiring a replaced certificate is not: the device holds
    /// its successor.)
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Plan::SetActive { active: false, .. } | Plan::Remove { .. }
        )
    }

    /// What the device's convergence reports once the plan is carried out.
    pub fn outcome(&self) -> Outcome {
        match self {
            Plan::Keep(outcome) => *outcome,
            // The plan made after claiming says what happened.
            Plan::Claim => Outcome::InSync,
            Plan::Provision { .. } => Outcome::Provisioned,
            Plan::Repair { .. } => Outcome::Repaired,
            Plan::SetActive { active: true, .. } => Outcome::Repaired,
            Plan::SetActive { active: false, .. } => Outcome::Disabled,
            Plan::Remove { .. } => Outcome::Removed,
        }
    }
}

/// The certificate the device holds: the configuration carries its PEM and
/// a private key beside it.
pub fn delivered<'a>(
    configuration: &Configuration,
    certificates: &'a [Certificate],
) -> Option<&'a Certificate> {
    let holds = |key: &str| configuration.get(key).is_some_and(|v| !v.trim().is_empty());
    let pem = configuration.get(CERTIFICATE_KEY).map(|pem| pem.trim())?;
    if pem.is_empty() || !holds(PRIVATE_KEY_KEY) {
        return None;
    }
    certificates.iter().find(|c| c.pem.trim() == pem)
}

/// Pure: whether a device last changed (Mender's `updated_ts`) no later
/// than the integration was created. An unreadable time counts as older:
/// when in doubt, a device is left as it is.
pub fn older_than_integration(updated_ts: Option<&str>, integration_created_at: &str) -> bool {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let parse = |text: &str| OffsetDateTime::parse(text, &Rfc3339).ok();
    match (updated_ts.and_then(parse), parse(integration_created_at)) {
        (Some(updated), Some(created)) => updated <= created,
        _ => true,
    }
}

/// Unambiguous evidence that an unclaimed Thing is this organization's
/// device: this organization's Mender knows the device, and a certificate
/// attached to the Thing is the one in the device's configuration. A
/// device id alone is no proof: two Mender servers can share one.
pub fn proves_ownership(observed: &Observed) -> bool {
    observed.known_to_mender && delivered(&observed.configuration, &observed.certificates).is_some()
}

/// The decision table (docs/architecture.md, "Mender says → AWS is made to hold").
pub fn plan(observed: &Observed) -> Plan {
    match (observed.wanted, &observed.thing) {
        (_, ThingState::Foreign) => Plan::Keep(Outcome::Conflict),
        (_, ThingState::Unclaimed) if proves_ownership(observed) => Plan::Claim,
        (_, ThingState::Unclaimed) => Plan::Keep(Outcome::Conflict),
        (Wanted::Active, ThingState::Absent) if observed.left_alone => Plan::Keep(Outcome::Nothing),
        (Wanted::Active, ThingState::Absent) => Plan::Provision {
            create_thing: true,
            configuration: None,
            replaces: Vec::new(),
        },
        (_, ThingState::Absent) => Plan::Keep(Outcome::Nothing),
        (Wanted::Active, ThingState::Ours) => keep_delivered(observed),
        (Wanted::KeepActive, ThingState::Ours) => set_all(observed, true),
        (Wanted::Inactive, ThingState::Ours) => set_all(observed, false),
        (Wanted::Gone, ThingState::Ours) => Plan::Remove {
            certificates: observed.certificates.clone(),
            other_principals: observed.other_principals.clone(),
        },
    }
}

/// Accepted, and the Thing is ours: keep the delivered certificate (active,
/// with the policy), retire any other; issue a new one if none was delivered.
fn keep_delivered(observed: &Observed) -> Plan {
    let Some(certificate) = delivered(&observed.configuration, &observed.certificates) else {
        return Plan::Provision {
            create_thing: false,
            configuration: Some(observed.configuration.clone()),
            replaces: observed.certificates.clone(),
        };
    };
    let retire: Vec<Certificate> = observed
        .certificates
        .iter()
        .filter(|c| c.id != certificate.id)
        .cloned()
        .collect();
    let attach_policy = !observed
        .delivered_policies
        .contains(&observed.device_policy);
    let activate = !certificate.active;
    let add_endpoint_to = (!observed.configuration.contains_key(ENDPOINT_KEY))
        .then(|| observed.configuration.clone());
    // Only policies the integration itself attached before: any other
    // policy on the certificate is someone else's to manage.
    let detach_policies: Vec<String> = observed
        .delivered_policies
        .iter()
        .filter(|p| **p != observed.device_policy && observed.retired_policies.contains(p))
        .cloned()
        .collect();
    if !attach_policy
        && !activate
        && retire.is_empty()
        && add_endpoint_to.is_none()
        && detach_policies.is_empty()
    {
        return Plan::Keep(Outcome::InSync);
    }
    Plan::Repair {
        certificate: certificate.clone(),
        attach_policy,
        activate,
        retire,
        add_endpoint_to,
        detach_policies,
    }
}

fn set_all(observed: &Observed, active: bool) -> Plan {
    let certificates: Vec<Certificate> = observed
        .certificates
        .iter()
        .filter(|c| c.active != active)
        .cloned()
        .collect();
    if certificates.is_empty() {
        return Plan::Keep(Outcome::InSync);
    }
    Plan::SetActive {
        certificates,
        active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "device-policy";

    fn certificate(id: &str, active: bool) -> Certificate {
        Certificate {
            id: id.to_owned(),
            arn: format!("arn:aws:iot:eu-west-1:123456789012:cert/{id}"),
            active,
            pem: format!("PEM {id}"),
        }
    }

    /// The delivery state of an accepted device whose Thing is ours.
    #[derive(Clone, Copy, Debug)]
    enum Delivery {
        /// No certificate attached, nothing delivered.
        None,
        /// One certificate attached; the configuration holds another.
        Stale,
        /// The configuration holds the certificate's PEM but no key.
        KeyLost,
        /// Delivered, ACTIVE, with the policy and the endpoint.
        Complete,
        /// Delivered but INACTIVE (a re-accepted device).
        Inactive,
        /// Delivered, the policy was detached.
        PolicyDetached,
        /// Delivered, the endpoint key is missing.
        EndpointMissing,
        /// Delivered, and a second certificate is attached too.
        Extra,
    }

    fn accepted(delivery: Delivery) -> Observed {
        let mut observed = Observed::new(Wanted::Active, ThingState::Ours, POLICY);
        let full = |pem: &str| {
            Configuration::from([
                (CERTIFICATE_KEY.to_owned(), pem.to_owned()),
                (PRIVATE_KEY_KEY.to_owned(), "KEY".to_owned()),
                (ENDPOINT_KEY.to_owned(), "e.iot".to_owned()),
                ("other".to_owned(), "kept".to_owned()),
            ])
        };
        observed.certificates = vec![certificate("a", true)];
        observed.configuration = full("PEM a");
        observed.delivered_policies = vec![POLICY.to_owned()];
        match delivery {
            Delivery::None => {
                observed.certificates.clear();
                observed.configuration.clear();
                observed.delivered_policies.clear();
            }
            Delivery::Stale => observed.configuration = full("PEM old"),
            Delivery::KeyLost => {
                observed.configuration.remove(PRIVATE_KEY_KEY);
            }
            Delivery::Complete => {}
            Delivery::Inactive => observed.certificates = vec![certificate("a", false)],
            Delivery::PolicyDetached => observed.delivered_policies.clear(),
            Delivery::EndpointMissing => {
                observed.configuration.remove(ENDPOINT_KEY);
            }
            Delivery::Extra => observed.certificates.push(certificate("b", true)),
        }
        observed
    }

    #[test]
    fn an_accepted_device_whose_thing_is_ours() {
        use Delivery::*;
        let a = || certificate("a", true);
        for (delivery, expected) in [
            (
                None,
                Plan::Provision {
                    create_thing: false,
                    configuration: Some(Configuration::new()),
                    replaces: vec![],
                },
            ),
            (
                Stale,
                Plan::Provision {
                    create_thing: false,
                    configuration: Some(accepted(Stale).configuration),
                    replaces: vec![a()],
                },
            ),
            (
                KeyLost,
                Plan::Provision {
                    create_thing: false,
                    configuration: Some(accepted(KeyLost).configuration),
                    replaces: vec![a()],
                },
            ),
            (Complete, Plan::Keep(Outcome::InSync)),
            (
                Inactive,
                Plan::Repair {
                    certificate: certificate("a", false),
                    attach_policy: false,
                    activate: true,
                    retire: vec![],
                    add_endpoint_to: Option::None,
                    detach_policies: vec![],
                },
            ),
            (
                PolicyDetached,
                Plan::Repair {
                    certificate: a(),
                    attach_policy: true,
                    activate: false,
                    retire: vec![],
                    add_endpoint_to: Option::None,
                    detach_policies: vec![],
                },
            ),
            (
                EndpointMissing,
                Plan::Repair {
                    certificate: a(),
                    attach_policy: false,
                    activate: false,
                    retire: vec![],
                    add_endpoint_to: Some(accepted(EndpointMissing).configuration),
                    detach_policies: vec![],
                },
            ),
            (
                Extra,
                Plan::Repair {
                    certificate: a(),
                    attach_policy: false,
                    activate: false,
                    retire: vec![certificate("b", true)],
                    add_endpoint_to: Option::None,
                    detach_policies: vec![],
                },
            ),
        ] {
            let observed = accepted(delivery);
            assert_eq!(reads(Wanted::Active, &observed.thing), Reads::Delivery);
            assert_eq!(plan(&observed), expected, "{delivery:?}");
        }
    }

    #[test]
    fn every_status_against_every_thing_state() {
        use Outcome::*;
        // (wanted, Thing, certificates attached) → (reads, outcome)
        let mixed = || vec![certificate("a", true), certificate("b", false)];
        let rows: Vec<(Wanted, ThingState, Vec<Certificate>, Reads, Outcome)> = vec![
            (
                Wanted::Active,
                ThingState::Absent,
                vec![],
                Reads::Nothing,
                Provisioned,
            ),
            (
                Wanted::Active,
                ThingState::Foreign,
                vec![],
                Reads::Nothing,
                Conflict,
            ),
            (
                Wanted::KeepActive,
                ThingState::Absent,
                vec![],
                Reads::Nothing,
                Nothing,
            ),
            (
                Wanted::KeepActive,
                ThingState::Foreign,
                vec![],
                Reads::Nothing,
                Conflict,
            ),
            (
                Wanted::KeepActive,
                ThingState::Ours,
                mixed(),
                Reads::Certificates,
                Repaired,
            ),
            (
                Wanted::KeepActive,
                ThingState::Ours,
                vec![certificate("a", true)],
                Reads::Certificates,
                InSync,
            ),
            (
                Wanted::Inactive,
                ThingState::Absent,
                vec![],
                Reads::Nothing,
                Nothing,
            ),
            (
                Wanted::Inactive,
                ThingState::Foreign,
                vec![],
                Reads::Nothing,
                Conflict,
            ),
            (
                Wanted::Inactive,
                ThingState::Ours,
                mixed(),
                Reads::Certificates,
                Disabled,
            ),
            (
                Wanted::Inactive,
                ThingState::Ours,
                vec![certificate("b", false)],
                Reads::Certificates,
                InSync,
            ),
            (
                Wanted::Inactive,
                ThingState::Ours,
                vec![],
                Reads::Certificates,
                InSync,
            ),
            (
                Wanted::Gone,
                ThingState::Absent,
                vec![],
                Reads::Nothing,
                Nothing,
            ),
            (
                Wanted::Gone,
                ThingState::Foreign,
                vec![],
                Reads::Nothing,
                Conflict,
            ),
            (
                Wanted::Gone,
                ThingState::Ours,
                mixed(),
                Reads::Principals,
                Removed,
            ),
            (
                Wanted::Gone,
                ThingState::Ours,
                vec![],
                Reads::Principals,
                Removed,
            ),
        ];
        for (wanted, thing, certificates, expected_reads, expected) in rows {
            assert_eq!(
                reads(wanted, &thing),
                expected_reads,
                "{wanted:?} {thing:?}"
            );
            let mut observed = Observed::new(wanted, thing.clone(), POLICY);
            observed.certificates = certificates.clone();
            let plan = plan(&observed);
            assert_eq!(
                plan.outcome(),
                expected,
                "{wanted:?} {thing:?} {certificates:?}: {plan:?}"
            );
        }
    }

    #[test]
    fn a_changed_policy_is_attached_and_only_the_integrations_old_ones_detached() {
        let repair = |delivered: &[&str], retired: &[&str]| {
            let mut observed = accepted(Delivery::Complete);
            observed.delivered_policies = delivered.iter().map(|p| p.to_string()).collect();
            observed.retired_policies = retired.iter().map(|p| p.to_string()).collect();
            plan(&observed)
        };
        let repaired = |attach_policy: bool, detach: &[&str]| Plan::Repair {
            certificate: certificate("a", true),
            attach_policy,
            activate: false,
            retire: vec![],
            add_endpoint_to: None,
            detach_policies: detach.iter().map(|p| p.to_string()).collect(),
        };
        // The old policy only: the new one on, then the old one off.
        assert_eq!(repair(&["old"], &["old"]), repaired(true, &["old"]));
        // Both on (a run stopped half-way): the old one off.
        assert_eq!(
            repair(&[POLICY, "old"], &["old"]),
            repaired(false, &["old"])
        );
        // A policy someone else attached is theirs: left on.
        assert_eq!(
            repair(&[POLICY, "ops"], &["old"]),
            Plan::Keep(Outcome::InSync)
        );
        assert_eq!(repair(&["ops"], &["old"]), repaired(true, &[]));
        // A retired policy that is the current one again is never detached.
        assert_eq!(repair(&[POLICY], &[POLICY]), Plan::Keep(Outcome::InSync));
    }

    #[test]
    fn an_unclaimed_thing_is_claimed_only_on_proof() {
        for wanted in [
            Wanted::Active,
            Wanted::KeepActive,
            Wanted::Inactive,
            Wanted::Gone,
        ] {
            assert_eq!(reads(wanted, &ThingState::Unclaimed), Reads::Delivery);
            // The certificate this organization delivered is attached: proof.
            let mut observed = accepted(Delivery::Complete);
            observed.wanted = wanted;
            observed.thing = ThingState::Unclaimed;
            assert_eq!(plan(&observed), Plan::Claim, "{wanted:?}");
            // Mender does not know the device: no proof, whatever is attached.
            observed.known_to_mender = false;
            assert_eq!(plan(&observed), Plan::Keep(Outcome::Conflict), "{wanted:?}");
            // Known, but the configuration holds another certificate: no proof.
            let mut other = accepted(Delivery::Stale);
            other.wanted = wanted;
            other.thing = ThingState::Unclaimed;
            assert_eq!(plan(&other), Plan::Keep(Outcome::Conflict), "{wanted:?}");
            // Known, nothing delivered (a key lost): no proof.
            let mut lost = accepted(Delivery::KeyLost);
            lost.wanted = wanted;
            lost.thing = ThingState::Unclaimed;
            assert_eq!(plan(&lost), Plan::Keep(Outcome::Conflict), "{wanted:?}");
        }
    }

    #[test]
    fn status_changes_touch_only_certificates_in_the_wrong_state() {
        let mut observed = Observed::new(Wanted::Inactive, ThingState::Ours, POLICY);
        observed.certificates = vec![certificate("a", true), certificate("b", false)];
        assert_eq!(
            plan(&observed),
            Plan::SetActive {
                certificates: vec![certificate("a", true)],
                active: false
            }
        );
        observed.wanted = Wanted::KeepActive;
        assert_eq!(
            plan(&observed),
            Plan::SetActive {
                certificates: vec![certificate("b", false)],
                active: true
            }
        );
    }

    #[test]
    fn mender_answers_become_what_aws_must_hold() {
        let device = |status: &str, decommissioning: bool| Device {
            id: "d".to_owned(),
            status: status.to_owned(),
            decommissioning,
            updated_ts: None,
        };
        assert_eq!(wanted(None), Ok(Wanted::Gone));
        assert_eq!(wanted(Some(&device("accepted", true))), Ok(Wanted::Gone));
        assert_eq!(wanted(Some(&device("accepted", false))), Ok(Wanted::Active));
        assert_eq!(
            wanted(Some(&device("rejected", false))),
            Ok(Wanted::Inactive)
        );
        assert_eq!(
            wanted(Some(&device("quarantined", false))),
            Err(UnknownStatus("quarantined".to_owned()))
        );
    }

    #[test]
    fn only_disabling_and_removing_take_access_away() {
        let a = || certificate("a", true);
        for (plan, destructive) in [
            (Plan::Keep(Outcome::InSync), false),
            (Plan::Claim, false),
            (
                Plan::Provision {
                    create_thing: false,
                    configuration: None,
                    replaces: vec![a()],
                },
                false,
            ),
            (
                Plan::Repair {
                    certificate: a(),
                    attach_policy: false,
                    activate: false,
                    retire: vec![a()],
                    add_endpoint_to: None,
                    detach_policies: vec![],
                },
                false,
            ),
            (
                Plan::SetActive {
                    certificates: vec![a()],
                    active: true,
                },
                false,
            ),
            (
                Plan::SetActive {
                    certificates: vec![a()],
                    active: false,
                },
                true,
            ),
            (
                Plan::Remove {
                    certificates: vec![],
                    other_principals: vec![],
                },
                true,
            ),
        ] {
            assert_eq!(plan.is_destructive(), destructive, "{plan:?}");
        }
    }

    #[test]
    fn without_backfill_older_devices_are_not_provisioned_by_runs() {
        let mut observed = Observed::new(Wanted::Active, ThingState::Absent, POLICY);
        observed.left_alone = true;
        assert_eq!(plan(&observed), Plan::Keep(Outcome::Nothing));
        // A Thing the bridge manages is still repaired.
        let mut ours = accepted(Delivery::Inactive);
        ours.left_alone = true;
        assert_eq!(plan(&ours).outcome(), Outcome::Repaired);
        let created = "2026-06-01T12:00:00Z";
        for (updated, older) in [
            (Some("2026-05-01T00:00:00Z"), true),
            (Some("2026-06-01T12:00:00Z"), true),
            (Some("2026-06-01T12:00:00.000001Z"), false),
            (Some("2026-07-01T00:00:00+02:00"), false),
            (Some("yesterday"), true),
            (None, true),
        ] {
            assert_eq!(
                older_than_integration(updated, created),
                older,
                "{updated:?}"
            );
        }
    }

    #[test]
    fn removal_takes_every_principal() {
        let mut observed = Observed::new(Wanted::Gone, ThingState::Ours, POLICY);
        observed.certificates = vec![certificate("a", false)];
        observed.other_principals = vec!["arn:aws:iam::123456789012:role/x".to_owned()];
        assert_eq!(
            plan(&observed),
            Plan::Remove {
                certificates: vec![certificate("a", false)],
                other_principals: vec!["arn:aws:iam::123456789012:role/x".to_owned()],
            }
        );
    }

    #[test]
    fn delivery_needs_the_certificate_and_a_key() {
        let certificates = [certificate("a", true), certificate("b", true)];
        let configuration = |pem: &str, key: &str| {
            Configuration::from([
                (CERTIFICATE_KEY.to_owned(), pem.to_owned()),
                (PRIVATE_KEY_KEY.to_owned(), key.to_owned()),
            ])
        };
        assert_eq!(
            delivered(&configuration("PEM b\n", "K"), &certificates).map(|c| c.id.as_str()),
            Some("b")
        );
        assert_eq!(delivered(&configuration("PEM b", " "), &certificates), None);
        assert_eq!(delivered(&configuration("", "K"), &certificates), None);
        assert_eq!(delivered(&configuration("PEM c", "K"), &certificates), None);
        assert_eq!(delivered(&Configuration::new(), &certificates), None);
        // A described certificate without a PEM is never the delivered one.
        let blank = [Certificate {
            pem: String::new(),
            ..certificate("a", true)
        }];
        assert_eq!(delivered(&configuration("", "K"), &blank), None);
    }
}
