//! The shell around [`super::plan`]: reads what the decision needs, carries
//! the plan out, and undoes a provisioning that fails half-way.

use futures::future::{join, try_join_all};

use super::plan::{
    self, CERTIFICATE_KEY, ENDPOINT_KEY, Observed, PRIVATE_KEY_KEY, Plan, Reads, THING_NAME_KEY,
};
use super::record::DeviceRecord;
use super::{ConvergeError, Outcome, Trigger};
use crate::certificates::DeviceKey;
use crate::clock::epoch_seconds;
use crate::device::Wanted;
use crate::intent::Intent;
use crate::iot::{Certificate, IotError, ThingState, certificate_id};
use crate::mender::Configuration;
use crate::shadow::store::DeviceShadows;
use crate::stage::stage;
use crate::tenant::Tenant;
use crate::throttling::Patience;

/// One pass: converges the device's AWS state to what Mender says now, and
/// returns what that was. `settled` is what an earlier pass under the same
/// lease converged the device to: if Mender still says the same, AWS
/// already agrees, and nothing more is read or written (the registry's
/// read quotas are the scarce ones in a bulk acceptance).
pub async fn converge(
    tenant: &Tenant,
    device_id: &str,
    settled: Option<Wanted>,
    trigger: Trigger,
) -> Result<(Outcome, Wanted), ConvergeError> {
    let (device, thing) = match settled {
        // A later pass under the same lease: Mender first, and the Thing
        // only if Mender has moved on since.
        Some(settled) => {
            let device = tenant.mender.device(device_id).await?;
            let wanted = plan::wanted(device.as_ref())?;
            if wanted == settled {
                return Ok((Outcome::InSync, wanted));
            }
            (device, tenant.iot.thing(device_id).await?)
        }
        None => {
            let (device, thing) = stage!(tenant.concurrency;
                tenant.mender.device(device_id),
                tenant.iot.thing(device_id),
            );
            (device?, thing?)
        }
    };
    let wanted = plan::wanted(device.as_ref())?;
    let updated_ts = device.as_ref().and_then(|d| d.updated_ts.clone());
    if trigger == Trigger::Event
        && wanted == Wanted::Active
        && thing == ThingState::Ours
        && Box::pin(record_answers(
            tenant,
            device_id,
            wanted,
            updated_ts.as_deref(),
        ))
        .await
    {
        return Ok((Outcome::InSync, wanted));
    }
    let mut observed = observe(tenant, device_id, wanted, thing).await?;
    observed.known_to_mender = device.is_some();
    let settings = &tenant.settings;
    observed.left_alone = trigger.heeds_backfill()
        && !settings.backfill
        && device.as_ref().is_some_and(|device| {
            plan::older_than_integration(device.updated_ts.as_deref(), &settings.created_at)
        });
    let mut plan = decide(trigger, &observed)?;
    if plan == Plan::Claim {
        let left_alone = observed.left_alone;
        tenant.iot.claim_thing(device_id).await?;
        tracing::info!(
            tenant = tenant.id(),
            device_id,
            "an unclaimed Thing is claimed: its certificate is the one this organization delivered"
        );
        observed = observe(tenant, device_id, wanted, ThingState::Ours).await?;
        observed.left_alone = left_alone;
        plan = decide(trigger, &observed)?;
    }
    if !trigger.may_take_access_away() && plan.is_destructive() {
        tracing::info!(
            tenant = tenant.id(),
            device_id,
            ?plan,
            "left for the run to decide"
        );
        Box::pin(keep_record(tenant, device_id, None, Outcome::Deferred)).await;
        return Ok((Outcome::Deferred, wanted));
    }
    let outcome = match carry_out(tenant, device_id, plan, updated_ts.as_deref()).await? {
        Outcome::Provisioned if trigger == Trigger::Rotate => Outcome::Rotated,
        outcome => outcome,
    };
    let record = DeviceRecord::of(
        device_id,
        &observed,
        updated_ts.as_deref(),
        outcome,
        epoch_seconds(),
    );
    Box::pin(keep_record(tenant, device_id, record, outcome)).await;
    if outcome == Outcome::Conflict {
        tracing::warn!(
            tenant = tenant.id(),
            device_id,
            "a Thing of this name exists that the bridge does not manage; left untouched"
        );
    }
    tracing::info!(
        tenant = tenant.id(),
        device_id,
        ?outcome,
        "device converged"
    );
    Ok((outcome, wanted))
}

/// Whether the device's record answers this event by itself (see
/// [`DeviceRecord::answers`]). Best effort: a record that cannot be read
/// answers nothing, and the device is looked at.
async fn record_answers(
    tenant: &Tenant,
    device_id: &str,
    wanted: Wanted,
    updated_ts: Option<&str>,
) -> bool {
    match tenant
        .records
        .get(&tenant.settings.integration_id, device_id)
        .await
    {
        Ok(record) => record.is_some_and(|r| r.answers(wanted, updated_ts, epoch_seconds())),
        Err(error) => {
            tracing::warn!(tenant = tenant.id(), device_id, %error, "could not read the device's record; looking at the device");
            false
        }
    }
}

/// Keeps the record of what a convergence saw or made, and forgets the
/// record of a change the survey deferred (its second pass must look);
/// other changes leave it (see `super::record`). Best effort: a device
/// without a record is looked at by the next run. Callers box it: a
/// DynamoDB call's future would otherwise make every convergence's future
/// (polled on a thread's stack) larger by its size.
async fn keep_record(
    tenant: &Tenant,
    device_id: &str,
    record: Option<DeviceRecord>,
    outcome: Outcome,
) {
    let integration_id = &tenant.settings.integration_id;
    let kept = match (record, outcome) {
        (Some(record), _) => tenant.records.put(integration_id, &record).await,
        (None, Outcome::Deferred) => tenant.records.forget(integration_id, device_id).await,
        (None, _) => Ok(()),
    };
    if let Err(error) = kept {
        tracing::warn!(tenant = tenant.id(), device_id, %error, "could not keep the device's record; the next run looks at the device");
    }
}

/// The plan for what the convergence was asked to do.
fn decide(trigger: Trigger, observed: &Observed) -> Result<Plan, ConvergeError> {
    Ok(match trigger {
        Trigger::Rotate => plan::rotate(observed)?,
        Trigger::CancelRotation => plan::cancel_rotation(observed)?,
        Trigger::Event | Trigger::Survey | Trigger::Apply => plan::plan(observed),
    })
}

/// The device as a convergence would see it now, without changing
/// anything (what `GET /devices/{device_id}/rotation` shows).
pub async fn observe_device(tenant: &Tenant, device_id: &str) -> Result<Observed, ConvergeError> {
    let (device, thing) = stage!(tenant.concurrency;
        tenant.mender.device(device_id),
        tenant.iot.thing(device_id),
    );
    let device = device?;
    let mut observed = observe(tenant, device_id, plan::wanted(device.as_ref())?, thing?).await?;
    observed.known_to_mender = device.is_some();
    Ok(observed)
}

/// Reads what [`plan::reads`] asks for.
async fn observe(
    tenant: &Tenant,
    device_id: &str,
    wanted: Wanted,
    thing: ThingState,
) -> Result<Observed, ConvergeError> {
    let reads = plan::reads(wanted, &thing);
    let mut observed = Observed::new(wanted, thing, &tenant.settings.aws.device_policy_name);
    observed
        .retired_policies
        .clone_from(&tenant.settings.retired_device_policies);
    match reads {
        Reads::Nothing => {}
        Reads::Certificates => {
            observed.certificates = thing_certificates(tenant, device_id).await?;
        }
        Reads::Delivery | Reads::Holdings => {
            let (certificates, configuration) = stage!(tenant.concurrency;
                thing_certificates(tenant, device_id),
                tenant.mender.configuration(device_id),
            );
            observed.certificates = certificates?;
            // No configuration yet is an empty one: Mender's PUT creates it.
            let configuration = configuration?.unwrap_or_default();
            observed.configuration = configuration.configured;
            observed.reported = configuration.reported;
            observed.delivered_at = configuration.updated_ts;
            observed.reported_at = configuration.reported_ts;
            if reads == Reads::Delivery
                && let Some(delivered) =
                    plan::delivered(&observed.configuration, &observed.certificates)
            {
                observed.delivered_policies = tenant.iot.attached_policies(&delivered.arn).await?;
            }
        }
        Reads::Principals => {
            let principals = tenant.iot.thing_principals(device_id).await?;
            observed.certificates = describe_certificates(tenant, &principals).await?;
            observed.other_principals = principals
                .into_iter()
                .filter(|arn| certificate_id(arn).is_none())
                .collect();
        }
    }
    Ok(observed)
}

/// Carries the plan out. `updated_ts` is Mender's for the device as the
/// plan saw it (a provisioning's record keeps it).
async fn carry_out(
    tenant: &Tenant,
    device_id: &str,
    plan: Plan,
    updated_ts: Option<&str>,
) -> Result<Outcome, ConvergeError> {
    let outcome = plan.outcome();
    match plan {
        // Claiming is done before the plan that follows it.
        Plan::Keep(_) | Plan::Claim => {}
        Plan::Provision {
            create_thing,
            configuration,
            replaces,
        } => {
            let asked = Provision {
                create_thing,
                configuration,
                replaces: &replaces,
                updated_ts,
            };
            // Boxed: a provisioning's future is the largest of a
            // convergence's, and would otherwise be part of every one
            // (polled on a thread's stack).
            Box::pin(provision(tenant, device_id, asked)).await?;
        }
        Plan::Repair {
            certificate,
            attach_policy,
            activate,
            retire: extra,
            add_endpoint_to,
            detach_policies,
        } => {
            if attach_policy {
                let policy = &tenant.settings.aws.device_policy_name;
                tenant.iot.attach_policy(policy, &certificate.arn).await?;
            }
            // Only once the current policy is on: never a moment with none.
            for policy in &detach_policies {
                tenant.iot.detach_policy(policy, &certificate.arn).await?;
            }
            try_join_all(activate.iter().map(|c| tenant.iot.set_active(&c.id, true))).await?;
            retire_all(tenant, device_id, &extra).await?;
            if let Some(mut configuration) = add_endpoint_to {
                configuration.insert(ENDPOINT_KEY.to_owned(), tenant.data_endpoint().await?);
                tenant
                    .mender
                    .set_configuration(device_id, &configuration)
                    .await?;
                tenant.mender.deploy_configuration(device_id).await?;
            }
        }
        Plan::SetActive {
            certificates,
            active,
            retire: extra,
        } => {
            try_join_all(
                certificates
                    .iter()
                    .map(|c| tenant.iot.set_active(&c.id, active)),
            )
            .await?;
            retire_all(tenant, device_id, &extra).await?;
        }
        Plan::Restore {
            configuration,
            retire: never_applied,
        } => {
            // Delivered back first: the certificate goes only once the
            // configuration no longer carries it.
            tenant
                .mender
                .set_configuration(device_id, &configuration)
                .await?;
            tenant.mender.deploy_configuration(device_id).await?;
            retire_all(tenant, device_id, &never_applied).await?;
        }
        Plan::Remove {
            certificates,
            other_principals,
        } => {
            retire_all(tenant, device_id, &certificates).await?;
            try_join_all(
                other_principals
                    .iter()
                    .map(|arn| tenant.iot.detach_principal(device_id, arn)),
            )
            .await?;
            // Mender documents that decommissioning removes "the Thing and
            // the related resources"; AWS keeps shadows of deleted Things.
            DeviceShadows::new(tenant.data_plane().await?.clone())
                .delete_all(device_id)
                .await?;
            tenant.iot.delete_thing(device_id).await?;
        }
    }
    Ok(outcome)
}

/// The certificates attached to the Thing, as AWS describes them.
async fn thing_certificates(
    tenant: &Tenant,
    device_id: &str,
) -> Result<Vec<Certificate>, IotError> {
    describe_certificates(tenant, &tenant.iot.thing_principals(device_id).await?).await
}

async fn describe_certificates(
    tenant: &Tenant,
    principals: &[String],
) -> Result<Vec<Certificate>, IotError> {
    let ids = principals.iter().filter_map(|arn| certificate_id(arn));
    let described = try_join_all(ids.map(|id| tenant.iot.certificate(id))).await?;
    Ok(described.into_iter().flatten().collect())
}

/// What provisioning has made so far, to undo it if a later step fails.
#[derive(Default)]
struct Made {
    thing: bool,
    certificate: Option<Certificate>,
    policy: bool,
    principal: bool,
    /// The configuration before the bridge wrote its keys.
    replaced_configuration: Option<Configuration>,
}

/// What a provisioning is to do.
struct Provision<'a> {
    create_thing: bool,
    /// The device's configuration, when the plan read it.
    configuration: Option<Configuration>,
    /// The certificates the new one replaces.
    replaces: &'a [Certificate],
    /// Mender's `updated_ts` of the device, for its record.
    updated_ts: Option<&'a str>,
}

/// Issues a certificate (ACTIVE: its key exists only in this invocation
/// until Mender holds it for the device; see docs/architecture.md),
/// attaches it and delivers it; then retires the certificates it replaces.
/// Independent calls run together.
async fn provision(
    tenant: &Tenant,
    device_id: &str,
    provision: Provision<'_>,
) -> Result<(), ConvergeError> {
    let key = DeviceKey::generate(device_id).map_err(|e| ConvergeError::Key(e.to_string()))?;
    let integration_id = &tenant.settings.integration_id;
    // Before anything is made: forget the device's record, so that no
    // record describes a device this provisioning changed (best effort: if
    // this provisioning stops half-way with the record still there, its
    // intent names the device, and the run that resolves the intent forgets
    // the record, `super::sweep`; a finished one retires what the record
    // names, which the listings show), and record the intent, durably: a
    // crash from here on leaves something the next run can find (see
    // `crate::intent`).
    let intent = Intent::create(tenant.id(), device_id, &key.public_key_der);
    let (forgotten, recorded) = stage!(tenant.concurrency;
        Box::pin(tenant.records.forget(integration_id, device_id)),
        Box::pin(tenant.intents.record(&intent)),
    );
    if let Err(error) = forgotten {
        tracing::warn!(tenant = tenant.id(), device_id, %error, "could not forget the device's record; provisioning goes on");
    }
    recorded?;
    let mut made = Made::default();
    let result = provision_steps(
        tenant,
        device_id,
        provision.create_thing,
        provision.configuration,
        &key,
        &mut made,
    )
    .await;
    let certificate = match result {
        Ok(certificate) => certificate,
        Err(error) => {
            tracing::warn!(tenant = tenant.id(), device_id, %error, "provisioning failed; undoing what it made");
            undo(tenant, device_id, made).await;
            forget(tenant, &intent).await;
            return Err(error);
        }
    };
    // A new Thing holds only what this provisioning made: its record says
    // so, and answers the acceptance's second webhook.
    let record = (provision.create_thing && provision.replaces.is_empty()).then(|| {
        DeviceRecord::provisioned(
            device_id,
            provision.updated_ts,
            &certificate.id,
            &tenant.settings.aws.device_policy_name,
            epoch_seconds(),
        )
    });
    stage!(tenant.concurrency;
        Box::pin(forget(tenant, &intent)),
        Box::pin(keep_record(tenant, device_id, record, Outcome::Provisioned)),
    );
    retire_all(tenant, device_id, provision.replaces).await?;
    Ok(())
}

/// The certificate is attached to the Thing (or undone, or parked there),
/// or deleted: convergence finds it, or nothing is left. An intent left
/// behind is resolved by the next run, which finds the certificate attached
/// (and keeps it) or gone.
async fn forget(tenant: &Tenant, intent: &Intent) {
    if let Err(error) = tenant.intents.forget(intent).await {
        tracing::warn!(tenant = tenant.id(), device_id = intent.device_id, %error, "could not forget a certificate intent; the next run resolves it");
    }
}

async fn provision_steps(
    tenant: &Tenant,
    device_id: &str,
    create_thing: bool,
    configuration: Option<Configuration>,
    key: &DeviceKey,
    made: &mut Made,
) -> Result<Certificate, ConvergeError> {
    let policy = &tenant.settings.aws.device_policy_name;
    // One patience for the whole provisioning, so that it ends in time to
    // undo what it made if it must.
    let patience = Patience::lasting(tenant.throttle_patience);
    let throttled = IotError::is_throttled;

    // Thing, certificate, current configuration and endpoint: independent.
    let thing = async {
        if create_thing {
            patience
                .wait_out(throttled, || tenant.iot.create_thing(device_id))
                .await?;
        }
        Ok::<_, IotError>(create_thing)
    };
    let configuration = async {
        match configuration {
            Some(configuration) => Ok(configuration),
            None => Ok::<_, ConvergeError>(
                tenant
                    .mender
                    .configuration(device_id)
                    .await?
                    .unwrap_or_default()
                    .configured,
            ),
        }
    };
    let (thing, certificate, configuration, endpoint) = stage!(tenant.concurrency;
        thing,
        patience.wait_out(throttled, || tenant.iot.create_certificate(&key.csr_pem)),
        configuration,
        tenant.data_endpoint(),
    );
    made.thing = thing.as_ref().is_ok_and(|created| *created);
    made.certificate = certificate.as_ref().ok().cloned();
    thing?;
    let certificate = certificate?;
    let mut configuration = configuration?;
    let endpoint = endpoint?;

    // Attach and deliver: independent of each other.
    let previous = configuration.clone();
    configuration.insert(CERTIFICATE_KEY.to_owned(), certificate.pem.clone());
    configuration.insert(PRIVATE_KEY_KEY.to_owned(), key.private_key_pem().to_owned());
    configuration.insert(ENDPOINT_KEY.to_owned(), endpoint);
    configuration.insert(THING_NAME_KEY.to_owned(), device_id.to_owned());
    let (policy_attached, principal_attached, delivered) = stage!(tenant.concurrency;
        patience.wait_out(throttled, || tenant.iot.attach_policy(policy, &certificate.arn)),
        patience.wait_out(throttled, || tenant.iot.attach_principal(device_id, &certificate.arn)),
        tenant.mender.set_configuration(device_id, &configuration),
    );
    made.policy = policy_attached.is_ok();
    made.principal = principal_attached.is_ok();
    if delivered.is_ok() {
        made.replaced_configuration = Some(previous);
    }
    policy_attached?;
    principal_attached?;
    delivered?;

    // Send it to the device.
    tenant.mender.deploy_configuration(device_id).await?;
    Ok(certificate)
}

/// Best effort: every step is tried even if one fails, and failures are
/// logged. What cannot be undone now is found and retired by the next run.
async fn undo(tenant: &Tenant, device_id: &str, made: Made) {
    let policy = &tenant.settings.aws.device_policy_name;
    let mut failures = Vec::new();
    if let Some(previous) = &made.replaced_configuration
        && let Err(error) = tenant.mender.set_configuration(device_id, previous).await
    {
        failures.push(error.to_string());
    }
    // A certificate still attached to the Thing is retired like any other:
    // if its deletion fails it stays attached, where the next convergence
    // finds and retires it. So the Thing is then kept too.
    let mut certificate_left = false;
    if let Some(certificate) = &made.certificate {
        let removed = if made.principal {
            retire(tenant, device_id, certificate).await
        } else {
            let removed =
                remove_unattached(tenant, certificate, made.policy.then_some(policy.as_str()))
                    .await;
            if removed.is_err() {
                park(tenant, device_id, certificate).await;
            }
            removed.map_err(ConvergeError::from)
        };
        if let Err(error) = removed {
            certificate_left = true;
            failures.push(format!("certificate {}: {error}", certificate.id));
        }
    }
    if made.thing
        && !certificate_left
        && let Err(error) = tenant.iot.delete_thing(device_id).await
    {
        failures.push(error.to_string());
    }
    if !failures.is_empty() {
        tracing::error!(
            tenant = tenant.id(),
            device_id,
            ?failures,
            "could not undo every step of a failed provisioning"
        );
    }
}

/// Removes a certificate that was never attached to the Thing.
async fn remove_unattached(
    tenant: &Tenant,
    certificate: &Certificate,
    policy: Option<&str>,
) -> Result<(), IotError> {
    let (policy_detached, deactivated) = join(
        async {
            match policy {
                Some(policy) => tenant.iot.detach_policy(policy, &certificate.arn).await,
                None => Ok(()),
            }
        },
        deactivate(tenant, certificate),
    )
    .await;
    policy_detached?;
    deactivated?;
    tenant.iot.delete_certificate(&certificate.id).await
}

/// Removes a certificate attached to no Thing, whatever policies it has.
pub(super) async fn remove_detached(
    tenant: &Tenant,
    certificate: &Certificate,
) -> Result<(), IotError> {
    let policies = tenant.iot.attached_policies(&certificate.arn).await?;
    try_join_all(
        policies
            .iter()
            .map(|policy| tenant.iot.detach_policy(policy, &certificate.arn)),
    )
    .await?;
    deactivate(tenant, certificate).await?;
    tenant.iot.delete_certificate(&certificate.id).await
}

async fn deactivate(tenant: &Tenant, certificate: &Certificate) -> Result<(), IotError> {
    if certificate.active {
        tenant.iot.set_active(&certificate.id, false).await
    } else {
        Ok(())
    }
}

async fn retire_all(
    tenant: &Tenant,
    device_id: &str,
    certificates: &[Certificate],
) -> Result<(), ConvergeError> {
    try_join_all(
        certificates
            .iter()
            .map(|certificate| retire(tenant, device_id, certificate)),
    )
    .await?;
    Ok(())
}

/// Detaches a certificate from its policies and deactivates it, then
/// detaches it from the Thing and deletes it. Pieces already gone count as
/// done. The certificate stays attached to the Thing until the last step, and
/// is attached back if deleting it fails: the bridge finds certificates only
/// through the Thing, so one left detached would never be retired. Between
/// detaching and deleting, an intent names it for a stopped invocation.
async fn retire(
    tenant: &Tenant,
    device_id: &str,
    certificate: &Certificate,
) -> Result<(), ConvergeError> {
    let (policies_detached, deactivated) = join(
        async {
            let policies = tenant.iot.attached_policies(&certificate.arn).await?;
            try_join_all(
                policies
                    .iter()
                    .map(|policy| tenant.iot.detach_policy(policy, &certificate.arn)),
            )
            .await
        },
        deactivate(tenant, certificate),
    )
    .await;
    policies_detached?;
    deactivated?;
    let intent = Intent::detach(tenant.id(), device_id, &certificate.id);
    tenant.intents.record(&intent).await?;
    tenant
        .iot
        .detach_principal(device_id, &certificate.arn)
        .await?;
    if let Err(error) = tenant.iot.delete_certificate(&certificate.id).await {
        park(tenant, device_id, certificate).await;
        return Err(error.into());
    }
    forget(tenant, &intent).await;
    Ok(())
}

/// Attaches a certificate that could not be deleted to the device's Thing
/// (made if it is gone), where the next convergence finds and retires it:
/// the bridge finds certificates only through the Thing, so one attached to
/// nothing would never be found again.
async fn park(tenant: &Tenant, device_id: &str, certificate: &Certificate) {
    let mut parked = tenant
        .iot
        .attach_principal(device_id, &certificate.arn)
        .await;
    if parked.as_ref().is_err_and(IotError::is_not_found) {
        parked = match tenant.iot.create_thing(device_id).await {
            Ok(()) => {
                tenant
                    .iot
                    .attach_principal(device_id, &certificate.arn)
                    .await
            }
            Err(error) => Err(error),
        };
    }
    if let Err(error) = parked {
        tracing::error!(
            tenant = tenant.id(),
            device_id,
            certificate_id = certificate.id,
            %error,
            "a certificate is left detached; delete it by hand"
        );
    }
}
