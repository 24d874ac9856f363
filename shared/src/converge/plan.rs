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
    /// The Thing's certificates and the device's configuration: which of
    /// them the device holds.
    Holdings,
    /// Every principal of the Thing, certificates described.
    Principals,
}

pub fn reads(wanted: Wanted, thing: &ThingState) -> Reads {
    match (wanted, thing) {
        (_, ThingState::Absent | ThingState::Foreign) => Reads::Nothing,
        // Whether it can be claimed: the proof is in the delivery.
        (_, ThingState::Unclaimed) => Reads::Delivery,
        (Wanted::Active, ThingState::Ours) => Reads::Delivery,
        (Wanted::Inactive, ThingState::Ours) => Reads::Holdings,
        (Wanted::KeepActive, ThingState::Ours) => Reads::Certificates,
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
    /// The configuration the device last reported applying (Mender
    /// Configure's `reported`): the certificate it holds, as it says.
    pub reported: Configuration,
    /// When the configuration was last set and last reported, as Mender
    /// says: shown with a rotation, never decided on.
    pub delivered_at: Option<String>,
    pub reported_at: Option<String>,
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
            reported: Configuration::new(),
            delivered_at: None,
            reported_at: None,
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
        /// The delivered certificate, and the one the device still reports
        /// holding during a rotation, when INACTIVE.
        activate: Vec<Certificate>,
        retire: Vec<Certificate>,
        /// The configuration to add the endpoint to, when it lacks one.
        add_endpoint_to: Option<Configuration>,
        /// Device policies the integration used before, still attached:
        /// detached after the current one is attached, so the certificate
        /// is never without a policy of the integration's.
        detach_policies: Vec<String>,
    },
    /// Set these certificates' status, and retire those the device cannot
    /// hold (a disabled device keeps only what was delivered to it).
    SetActive {
        certificates: Vec<Certificate>,
        active: bool,
        retire: Vec<Certificate>,
    },
    /// Give the device back the certificate and key it reports holding (a
    /// cancelled rotation), then retire the certificate it never applied.
    Restore {
        configuration: Configuration,
        retire: Vec<Certificate>,
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
            Plan::Repair { .. } | Plan::Restore { .. } => Outcome::Repaired,
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
    let has_key = configuration
        .get(PRIVATE_KEY_KEY)
        .is_some_and(|key| !key.trim().is_empty());
    carried(configuration, certificates).filter(|_| has_key)
}

/// The certificate whose PEM `configuration` carries, if any.
fn carried<'a>(
    configuration: &Configuration,
    certificates: &'a [Certificate],
) -> Option<&'a Certificate> {
    let pem = configuration.get(CERTIFICATE_KEY)?.trim();
    if pem.is_empty() {
        return None;
    }
    certificates.iter().find(|c| c.pem.trim() == pem)
}

/// Pure: whether a device last changed (Mender's `updated_ts`) no later
/// than the integration was created. An unreadable time counts as older:
/// when in doubt, a device is left as it is.
pub fn older_than_integration(updated_ts: Option<&str>, integration_created_at: &str) -> bool {
    !later_than(updated_ts, integration_created_at)
}

/// Pure: whether `time` (RFC 3339) is known to be after `reference`.
fn later_than(time: Option<&str>, reference: &str) -> bool {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let parse = |text: &str| OffsetDateTime::parse(text, &Rfc3339).ok();
    match (time.and_then(parse), parse(reference)) {
        (Some(time), Some(reference)) => time > reference,
        _ => false,
    }
}

/// Pure: whether a rotation waits for the device that was delivered after
/// `since` (a rotation run's start): the run's own, by an invocation that
/// stopped before its checkpoint, or an admin's meanwhile. Either way the
/// device was rotated since the run began.
pub fn rotated_since(observed: &Observed, since: &str) -> bool {
    matches!(rotation(observed), Rotation::Waiting { .. })
        && later_than(observed.delivered_at.as_deref(), since)
}

/// The certificate the device reports holding: the one whose PEM its
/// reported configuration carries. (The key is the device's own business:
/// it applied the configuration that brought both.)
pub fn reported<'a>(
    reported: &Configuration,
    certificates: &'a [Certificate],
) -> Option<&'a Certificate> {
    carried(reported, certificates)
}

/// The certificates the device may be using: the delivered one and, while
/// it has not applied that yet, the one it reports holding.
pub fn held(observed: &Observed) -> Vec<&Certificate> {
    let mut held: Vec<&Certificate> = delivered(&observed.configuration, &observed.certificates)
        .into_iter()
        .collect();
    if let Some(reported) = reported(&observed.reported, &observed.certificates)
        && !held.iter().any(|c| c.id == reported.id)
    {
        held.push(reported);
    }
    held
}

/// The certificates attached to the Thing that are not in `kept`.
fn others(observed: &Observed, kept: &[&Certificate]) -> Vec<Certificate> {
    observed
        .certificates
        .iter()
        .filter(|c| !kept.iter().any(|k| k.id == c.id))
        .cloned()
        .collect()
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
        (Wanted::Inactive, ThingState::Ours) => disable(observed),
        (Wanted::Gone, ThingState::Ours) => Plan::Remove {
            certificates: observed.certificates.clone(),
            other_principals: observed.other_principals.clone(),
        },
    }
}

/// Accepted, and the Thing is ours: keep the delivered certificate (active,
/// with the policy), retire any other; issue a new one if none was delivered.
/// Make before break: a certificate the device reports holding stays ACTIVE
/// until it reports the delivered one instead.
fn keep_delivered(observed: &Observed) -> Plan {
    let held = held(observed);
    let Some(certificate) = delivered(&observed.configuration, &observed.certificates) else {
        return Plan::Provision {
            create_thing: false,
            configuration: Some(observed.configuration.clone()),
            replaces: others(observed, &held),
        };
    };
    let retire = others(observed, &held);
    let attach_policy = !observed
        .delivered_policies
        .contains(&observed.device_policy);
    let activate: Vec<Certificate> = held
        .iter()
        .filter(|c| !c.active)
        .map(|c| (*c).clone())
        .collect();
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
        && activate.is_empty()
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
        retire: Vec::new(),
    }
}

/// Rejected, pending, dismissed: every certificate INACTIVE. Once the
/// device provably holds one (delivered, or reported during a rotation),
/// the others are retired: a re-accepted device gets no access from them,
/// and nothing else would ever remove them. Without that proof all stay.
fn disable(observed: &Observed) -> Plan {
    let held = held(observed);
    let retire = if held.is_empty() {
        Vec::new()
    } else {
        others(observed, &held)
    };
    let certificates: Vec<Certificate> = observed
        .certificates
        .iter()
        .filter(|c| c.active && !retire.iter().any(|r| r.id == c.id))
        .cloned()
        .collect();
    if certificates.is_empty() && retire.is_empty() {
        return Plan::Keep(Outcome::InSync);
    }
    Plan::SetActive {
        certificates,
        active: false,
        retire,
    }
}

/// Where a device's certificate rotation stands, as observed: derived from
/// what Mender and AWS hold, never stored, so it cannot disagree with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// No rotation under way: the device reports holding the one
    /// certificate delivered to it. It can be rotated.
    Idle { certificate: Certificate },
    /// A new certificate was delivered; the device still reports the
    /// previous one, which stays ACTIVE until it reports the new one.
    Waiting {
        delivered: Certificate,
        held: Certificate,
    },
    /// The device reports the new certificate; the previous ones are
    /// retired at the device's next convergence.
    Applied {
        delivered: Certificate,
        previous: Vec<Certificate>,
    },
    /// The device has not reported holding the delivered certificate (or
    /// any attached one): the bridge could not tell when it switched, so it
    /// does not rotate.
    Unreported { delivered: Certificate },
    /// Not an accepted device with a certificate of the integration's.
    NotProvisioned(&'static str),
}

pub fn rotation(observed: &Observed) -> Rotation {
    if observed.wanted != Wanted::Active {
        return Rotation::NotProvisioned("the device is not accepted in Mender");
    }
    if observed.thing != ThingState::Ours {
        return Rotation::NotProvisioned(
            "the device has no Thing managed by this organization's integration",
        );
    }
    let Some(delivered) = delivered(&observed.configuration, &observed.certificates) else {
        return Rotation::NotProvisioned("no certificate has been delivered to the device yet");
    };
    match reported(&observed.reported, &observed.certificates) {
        None => Rotation::Unreported {
            delivered: delivered.clone(),
        },
        Some(held) if held.id != delivered.id => Rotation::Waiting {
            delivered: delivered.clone(),
            held: held.clone(),
        },
        Some(_) => {
            let previous = others(observed, &[delivered]);
            if previous.is_empty() {
                Rotation::Idle {
                    certificate: delivered.clone(),
                }
            } else {
                Rotation::Applied {
                    delivered: delivered.clone(),
                    previous,
                }
            }
        }
    }
}

/// Why a rotation cannot start or be cancelled, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Starting a rotation: a new key and certificate, delivered like a first
/// provisioning; the certificate the device holds is kept (see
/// [`keep_delivered`]). Only for a device that reports holding the one
/// delivered certificate: anything else would be a guess about what it uses.
pub fn rotate(observed: &Observed) -> Result<Plan, Refused> {
    match rotation(observed) {
        // Applied: the previous certificate of the last rotation is held by
        // nothing and goes once the new one is delivered.
        Rotation::Idle { .. } | Rotation::Applied { .. } => {
            let delivered = delivered(&observed.configuration, &observed.certificates);
            Ok(Plan::Provision {
                create_thing: false,
                configuration: Some(observed.configuration.clone()),
                replaces: others(observed, &delivered.into_iter().collect::<Vec<_>>()),
            })
        }
        Rotation::Waiting { delivered, .. } => Err(Refused(format!(
            "a rotation is already waiting for the device to apply certificate {}; cancel it first",
            delivered.id
        ))),
        Rotation::Unreported { .. } => Err(Refused(
            "the device has not reported holding its certificate (Mender Configure shows no reported configuration with it): rotating now could cut it off".into(),
        )),
        Rotation::NotProvisioned(why) => Err(Refused(why.into())),
    }
}

/// Cancelling a waiting rotation: the configuration gets back the
/// certificate and key the device reports holding, then the certificate it
/// never applied is retired.
pub fn cancel_rotation(observed: &Observed) -> Result<Plan, Refused> {
    match rotation(observed) {
        Rotation::Waiting { delivered, .. } => {
            let held = |key: &str| observed.reported.get(key).cloned();
            let (Some(pem), Some(key)) = (held(CERTIFICATE_KEY), held(PRIVATE_KEY_KEY)) else {
                return Err(Refused(
                    "the device's reported configuration carries no private key: the previous certificate cannot be given back".into(),
                ));
            };
            let mut configuration = observed.configuration.clone();
            configuration.insert(CERTIFICATE_KEY.to_owned(), pem);
            configuration.insert(PRIVATE_KEY_KEY.to_owned(), key);
            Ok(Plan::Restore {
                configuration,
                retire: vec![delivered],
            })
        }
        Rotation::Applied { .. } => Err(Refused(
            "the device already applied the new certificate: the rotation cannot be cancelled"
                .into(),
        )),
        _ => Err(Refused("no rotation is waiting for this device".into())),
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
                    activate: vec![certificate("a", false)],
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
                    activate: vec![],
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
                    activate: vec![],
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
                    activate: vec![],
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
                Reads::Holdings,
                Disabled,
            ),
            (
                Wanted::Inactive,
                ThingState::Ours,
                vec![certificate("b", false)],
                Reads::Holdings,
                InSync,
            ),
            (
                Wanted::Inactive,
                ThingState::Ours,
                vec![],
                Reads::Holdings,
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
            activate: vec![],
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
                active: false,
                retire: vec![],
            }
        );
        observed.wanted = Wanted::KeepActive;
        assert_eq!(
            plan(&observed),
            Plan::SetActive {
                certificates: vec![certificate("b", false)],
                active: true,
                retire: vec![],
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
                    activate: vec![],
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
                    retire: vec![],
                },
                false,
            ),
            (
                Plan::SetActive {
                    certificates: vec![a()],
                    active: false,
                    retire: vec![],
                },
                true,
            ),
            (
                Plan::Restore {
                    configuration: Configuration::new(),
                    retire: vec![a()],
                },
                false,
            ),
            (
                Plan::SetActive {
                    certificates: vec![],
                    active: false,
                    retire: vec![a()],
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

    /// An accepted device mid-rotation: "a" delivered first and reported,
    /// then "b" delivered. What the device reports decides what stays.
    fn rotating(reported_pem: Option<&str>) -> Observed {
        let mut observed = accepted(Delivery::Complete);
        observed.certificates = vec![certificate("a", true), certificate("b", true)];
        observed
            .configuration
            .insert(CERTIFICATE_KEY.to_owned(), "PEM b".to_owned());
        if let Some(pem) = reported_pem {
            observed.reported = Configuration::from([
                (CERTIFICATE_KEY.to_owned(), pem.to_owned()),
                (PRIVATE_KEY_KEY.to_owned(), format!("KEY of {pem}")),
            ]);
        }
        observed
    }

    #[test]
    fn a_rotation_keeps_the_held_certificate_until_the_device_reports_the_new_one() {
        let (a, b) = (|| certificate("a", true), || certificate("b", true));
        let repair = |activate: Vec<Certificate>, retire: Vec<Certificate>| Plan::Repair {
            certificate: b(),
            attach_policy: false,
            activate,
            retire,
            add_endpoint_to: None,
            detach_policies: vec![],
        };
        // (reported, "a" ACTIVE?) → plan
        for (reported, a_active, expected) in [
            // Still on "a": both stay.
            (Some("PEM a"), true, Plan::Keep(Outcome::InSync)),
            // Still on "a", which was disabled meanwhile: it is activated again.
            (
                Some("PEM a"),
                false,
                repair(vec![certificate("a", false)], vec![]),
            ),
            // Applied: "a" is retired.
            (Some("PEM b"), true, repair(vec![], vec![a()])),
            // Nothing reported, or a certificate not attached: "a" is held by
            // nothing the bridge can see, as before rotations existed.
            (None, true, repair(vec![], vec![a()])),
            (Some("PEM z"), true, repair(vec![], vec![a()])),
        ] {
            let mut observed = rotating(reported);
            observed.certificates[0].active = a_active;
            assert_eq!(plan(&observed), expected, "{reported:?} {a_active}");
        }
        // A device whose delivery is lost while it reports "a": the new
        // certificate replaces every other, "a" excepted.
        let mut lost = rotating(Some("PEM a"));
        lost.configuration.remove(PRIVATE_KEY_KEY);
        lost.certificates.push(certificate("c", false));
        assert_eq!(
            plan(&lost),
            Plan::Provision {
                create_thing: false,
                configuration: Some(lost.configuration.clone()),
                replaces: vec![b(), certificate("c", false)],
            }
        );
    }

    #[test]
    fn a_disabled_device_keeps_only_what_it_holds() {
        let mut observed = Observed::new(Wanted::Inactive, ThingState::Ours, POLICY);
        observed.certificates = vec![certificate("a", true), certificate("b", false)];
        // Nothing proves which one the device holds: both stay, disabled.
        assert_eq!(
            plan(&observed),
            Plan::SetActive {
                certificates: vec![certificate("a", true)],
                active: false,
                retire: vec![],
            }
        );
        // "b" was delivered: "a" is retired, "b" is already INACTIVE.
        observed.configuration = Configuration::from([
            (CERTIFICATE_KEY.to_owned(), "PEM b".to_owned()),
            (PRIVATE_KEY_KEY.to_owned(), "KEY".to_owned()),
        ]);
        assert_eq!(
            plan(&observed),
            Plan::SetActive {
                certificates: vec![],
                active: false,
                retire: vec![certificate("a", true)],
            }
        );
        // Mid-rotation, reporting "a": both are held, both disabled.
        observed.reported = Configuration::from([(CERTIFICATE_KEY.to_owned(), "PEM a".to_owned())]);
        assert_eq!(
            plan(&observed),
            Plan::SetActive {
                certificates: vec![certificate("a", true)],
                active: false,
                retire: vec![],
            }
        );
        observed.certificates[0].active = false;
        assert_eq!(plan(&observed), Plan::Keep(Outcome::InSync));
    }

    #[test]
    fn where_a_rotation_stands() {
        let (a, b) = (|| certificate("a", true), || certificate("b", true));
        let mut idle = accepted(Delivery::Complete);
        idle.reported = idle.configuration.clone();
        let mut unreported_elsewhere = rotating(Some("PEM z"));
        unreported_elsewhere.certificates.remove(0);
        let mut pending = rotating(Some("PEM a"));
        pending.wanted = Wanted::Inactive;
        let mut absent = accepted(Delivery::None);
        absent.reported = idle.configuration.clone();
        for (observed, expected) in [
            (idle.clone(), Rotation::Idle { certificate: a() }),
            (
                rotating(Some("PEM a")),
                Rotation::Waiting {
                    delivered: b(),
                    held: a(),
                },
            ),
            (
                rotating(Some("PEM b")),
                Rotation::Applied {
                    delivered: b(),
                    previous: vec![a()],
                },
            ),
            (rotating(None), Rotation::Unreported { delivered: b() }),
            (
                unreported_elsewhere,
                Rotation::Unreported { delivered: b() },
            ),
            (
                pending,
                Rotation::NotProvisioned("the device is not accepted in Mender"),
            ),
            (
                absent,
                Rotation::NotProvisioned("no certificate has been delivered to the device yet"),
            ),
        ] {
            assert_eq!(rotation(&observed), expected, "{observed:?}");
        }
    }

    #[test]
    fn a_rotation_delivered_after_a_run_began_is_the_runs() {
        let began = "2026-12-01T10:00:00Z";
        let at = |time: Option<&str>, mut observed: Observed| {
            observed.delivered_at = time.map(str::to_owned);
            observed
        };
        let mut idle = accepted(Delivery::Complete);
        idle.reported = idle.configuration.clone();
        let waiting = || rotating(Some("PEM a"));
        for (observed, expected) in [
            (at(Some("2026-12-01T10:00:01.5Z"), waiting()), true),
            (at(Some("2026-12-01T09:59:59Z"), waiting()), false),
            (at(Some(began), waiting()), false),
            (at(Some("yesterday"), waiting()), false),
            (at(None, waiting()), false),
            // Delivered since, but not waiting: not a rotation of the run's.
            (at(Some("2026-12-01T11:00:00Z"), idle), false),
            (
                at(Some("2026-12-01T11:00:00Z"), rotating(Some("PEM b"))),
                false,
            ),
        ] {
            assert_eq!(rotated_since(&observed, began), expected, "{observed:?}");
        }
    }

    #[test]
    fn a_rotation_starts_only_from_a_held_certificate_and_cancels_only_while_waiting() {
        let mut idle = accepted(Delivery::Complete);
        idle.reported = idle.configuration.clone();
        assert_eq!(
            rotate(&idle),
            Ok(Plan::Provision {
                create_thing: false,
                configuration: Some(idle.configuration.clone()),
                replaces: vec![],
            })
        );
        // Applied: the previous certificate goes with the new delivery.
        let applied = rotating(Some("PEM b"));
        assert_eq!(
            rotate(&applied),
            Ok(Plan::Provision {
                create_thing: false,
                configuration: Some(applied.configuration.clone()),
                replaces: vec![certificate("a", true)],
            })
        );
        for refused in [rotating(Some("PEM a")), rotating(None)] {
            assert!(rotate(&refused).is_err(), "{refused:?}");
        }
        // Cancelling gives back what the device reports, keeps the rest.
        let waiting = rotating(Some("PEM a"));
        let mut restored = waiting.configuration.clone();
        restored.insert(CERTIFICATE_KEY.to_owned(), "PEM a".to_owned());
        restored.insert(PRIVATE_KEY_KEY.to_owned(), "KEY of PEM a".to_owned());
        assert_eq!(
            cancel_rotation(&waiting),
            Ok(Plan::Restore {
                configuration: restored,
                retire: vec![certificate("b", true)],
            })
        );
        let mut keyless = rotating(Some("PEM a"));
        keyless.reported.remove(PRIVATE_KEY_KEY);
        for refused in [keyless, rotating(Some("PEM b")), idle] {
            assert!(cancel_rotation(&refused).is_err(), "{refused:?}");
        }
    }
}
