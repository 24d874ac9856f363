//! Convergence: make AWS IoT Core hold what Mender says about one device.
//!
//! Mender is the source of truth; webhook payloads are only triggers. The
//! same function serves every lifecycle event and the scheduled reconcile,
//! so duplicates, reordering and replays are harmless.

use futures::future::{join, try_join_all};

use crate::certificates::DeviceKey;
use crate::iot::{Certificate, IotError, ThingState, certificate_id};
use crate::mender::{Configuration, MenderError};
use crate::tenant::Tenant;

/// How a reconcile runs the independent calls of one stage.
///
/// The deployed functions always run them concurrently: a stage then costs
/// one round trip instead of one per call. `Sequential` makes the same calls
/// one after another, in the order written; it exists only as the baseline
/// that the provisioning benchmark compares against (`make bench`,
/// `docs/performance.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Concurrency {
    #[default]
    Concurrent,
    Sequential,
}

/// Awaits the futures of one stage together, or one by one in order when
/// `$concurrency` is `Sequential`; either way, their outputs as a tuple.
macro_rules! stage {
    ($concurrency:expr; $($future:expr),+ $(,)?) => {
        match $concurrency {
            Concurrency::Concurrent => futures::join!($($future),+),
            Concurrency::Sequential => ($($future.await,)+),
        }
    };
}

/// The Mender Configure keys devices read (the names of Mender's own
/// integration, so devices built for it work unchanged).
pub const CERTIFICATE_KEY: &str = "awsCertificate";
pub const PRIVATE_KEY_KEY: &str = "awsPrivateKey";
pub const ENDPOINT_KEY: &str = "awsEndpoint";

/// What a reconcile did.
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
pub enum ReconcileError {
    #[error(transparent)]
    Mender(#[from] MenderError),
    #[error(transparent)]
    Iot(#[from] IotError),
    #[error("could not generate the device key: {0}")]
    Key(String),
}

/// What Mender says the device should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Active,
    /// Preauthorized: keep an existing certificate active, create nothing.
    KeepActive,
    Inactive,
    Gone,
}

fn wanted(status: Option<&crate::mender::Device>) -> Wanted {
    match status {
        None => Wanted::Gone,
        Some(device) if device.decommissioning => Wanted::Gone,
        Some(device) => match device.status.as_str() {
            "accepted" => Wanted::Active,
            "preauthorized" => Wanted::KeepActive,
            "decommissioned" => Wanted::Gone,
            // rejected, pending, noauth, and anything Mender adds later.
            _ => Wanted::Inactive,
        },
    }
}

/// One pass: converges the device's AWS state to what Mender says now, and
/// returns what that was. `settled` is what an earlier pass under the same
/// lease converged the device to: if Mender still says the same, AWS
/// already agrees, and nothing more is read or written (the registry's
/// read quotas are the scarce ones in a bulk acceptance).
pub async fn reconcile(
    tenant: &Tenant,
    device_id: &str,
    settled: Option<Wanted>,
) -> Result<(Outcome, Wanted), ReconcileError> {
    let (device, thing) = stage!(tenant.concurrency;
        tenant.mender.device(device_id),
        tenant.iot.thing(device_id),
    );
    let wanted = wanted(device?.as_ref());
    if settled == Some(wanted) {
        return Ok((Outcome::InSync, wanted));
    }
    let thing = thing?;
    let outcome = match (wanted, thing) {
        (_, ThingState::Foreign) => {
            tracing::warn!(
                tenant = tenant.id(),
                device_id,
                "a Thing of this name exists that the bridge does not manage; left untouched"
            );
            Outcome::Conflict
        }
        (Wanted::Active, ThingState::Absent) => {
            provision(tenant, device_id, true, None, &[]).await?
        }
        (Wanted::Active, ThingState::Ours) => converge_active(tenant, device_id).await?,
        (Wanted::KeepActive, ThingState::Ours) => set_all_active(tenant, device_id, true).await?,
        (Wanted::Inactive, ThingState::Ours) => set_all_active(tenant, device_id, false).await?,
        (Wanted::Gone, ThingState::Ours) => remove(tenant, device_id).await?,
        (_, ThingState::Absent) => Outcome::Nothing,
    };
    tracing::info!(
        tenant = tenant.id(),
        device_id,
        ?outcome,
        "device reconciled"
    );
    Ok((outcome, wanted))
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

/// Accepted, and the Thing is ours: keep the delivered certificate (active,
/// with the policy), retire any other; issue a new one if none was delivered.
async fn converge_active(tenant: &Tenant, device_id: &str) -> Result<Outcome, ReconcileError> {
    let (certificates, configuration) = stage!(tenant.concurrency;
        thing_certificates(tenant, device_id),
        tenant.mender.configuration(device_id),
    );
    let certificates = certificates?;
    // No configuration yet is an empty one: Mender's PUT creates it.
    let configuration = configuration?.unwrap_or_default();
    let delivered = certificates
        .iter()
        .find(|certificate| is_delivered(&configuration, certificate));
    let Some(delivered) = delivered else {
        return provision(tenant, device_id, false, Some(configuration), &certificates).await;
    };

    let mut repaired = false;
    let policy = &tenant.settings.aws.device_policy_name;
    if !tenant
        .iot
        .attached_policies(&delivered.arn)
        .await?
        .contains(policy)
    {
        tenant.iot.attach_policy(policy, &delivered.arn).await?;
        repaired = true;
    }
    if !delivered.active {
        tenant.iot.set_active(&delivered.id, true).await?;
        repaired = true;
    }
    let extra: Vec<_> = certificates
        .iter()
        .filter(|c| c.id != delivered.id)
        .collect();
    try_join_all(
        extra
            .iter()
            .map(|certificate| retire(tenant, device_id, certificate)),
    )
    .await?;
    if !configuration.contains_key(ENDPOINT_KEY) {
        let mut updated = configuration.clone();
        updated.insert(ENDPOINT_KEY.to_owned(), tenant.data_endpoint().await?);
        tenant.mender.set_configuration(device_id, &updated).await?;
        tenant.mender.deploy_configuration(device_id).await?;
        repaired = true;
    }
    Ok(if repaired || !extra.is_empty() {
        Outcome::Repaired
    } else {
        Outcome::InSync
    })
}

/// The configuration holds this certificate, and a key beside it.
fn is_delivered(configuration: &Configuration, certificate: &Certificate) -> bool {
    let holds = |key: &str| configuration.get(key).is_some_and(|v| !v.trim().is_empty());
    configuration.get(CERTIFICATE_KEY).map(|pem| pem.trim()) == Some(certificate.pem.trim())
        && !certificate.pem.trim().is_empty()
        && holds(PRIVATE_KEY_KEY)
}

/// What provisioning has made so far, to undo it if a later step fails.
#[derive(Default)]
struct Made {
    thing: bool,
    certificate: Option<Certificate>,
    policy: bool,
    principal: bool,
    active: bool,
    /// The configuration before the bridge wrote its keys.
    replaced_configuration: Option<Configuration>,
}

/// Issues a certificate, attaches it, delivers it, activates it; then
/// retires the certificates it replaces. Independent calls run together.
async fn provision(
    tenant: &Tenant,
    device_id: &str,
    create_thing: bool,
    configuration: Option<Configuration>,
    replaced: &[Certificate],
) -> Result<Outcome, ReconcileError> {
    let key = DeviceKey::generate(device_id).map_err(|e| ReconcileError::Key(e.to_string()))?;
    let mut made = Made::default();
    let result = provision_steps(
        tenant,
        device_id,
        create_thing,
        configuration,
        &key,
        &mut made,
    )
    .await;
    if let Err(error) = result {
        tracing::warn!(tenant = tenant.id(), device_id, %error, "provisioning failed; undoing what it made");
        undo(tenant, device_id, made).await;
        return Err(error);
    }
    try_join_all(
        replaced
            .iter()
            .map(|certificate| retire(tenant, device_id, certificate)),
    )
    .await?;
    Ok(Outcome::Provisioned)
}

async fn provision_steps(
    tenant: &Tenant,
    device_id: &str,
    create_thing: bool,
    configuration: Option<Configuration>,
    key: &DeviceKey,
    made: &mut Made,
) -> Result<(), ReconcileError> {
    let policy = &tenant.settings.aws.device_policy_name;

    // Thing, certificate, current configuration and endpoint: independent.
    let thing = async {
        if create_thing {
            tenant.iot.create_thing(device_id).await?;
        }
        Ok::<_, IotError>(create_thing)
    };
    let configuration = async {
        match configuration {
            Some(configuration) => Ok(configuration),
            None => Ok::<_, ReconcileError>(
                tenant
                    .mender
                    .configuration(device_id)
                    .await?
                    .unwrap_or_default(),
            ),
        }
    };
    let (thing, certificate, configuration, endpoint) = stage!(tenant.concurrency;
        thing,
        tenant.iot.create_certificate(&key.csr_pem),
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
    let (policy_attached, principal_attached, delivered) = stage!(tenant.concurrency;
        tenant.iot.attach_policy(policy, &certificate.arn),
        tenant.iot.attach_principal(device_id, &certificate.arn),
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

    // Send it to the device, and let AWS accept it.
    let (deployed, activated) = stage!(tenant.concurrency;
        tenant.mender.deploy_configuration(device_id),
        tenant.iot.set_active(&certificate.id, true),
    );
    made.active = activated.is_ok();
    deployed?;
    activated?;
    Ok(())
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
    // if its deletion fails it stays attached, where the next reconcile
    // finds and retires it. So the Thing is then kept too.
    let mut certificate_left = false;
    if let Some(certificate) = &made.certificate {
        let certificate = Certificate {
            active: made.active,
            ..certificate.clone()
        };
        let removed = if made.principal {
            retire(tenant, device_id, &certificate).await
        } else {
            let removed =
                remove_unattached(tenant, &certificate, made.policy.then_some(policy.as_str()))
                    .await;
            if removed.is_err() {
                park(tenant, device_id, &certificate).await;
            }
            removed
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

async fn deactivate(tenant: &Tenant, certificate: &Certificate) -> Result<(), IotError> {
    if certificate.active {
        tenant.iot.set_active(&certificate.id, false).await
    } else {
        Ok(())
    }
}

/// Detaches a certificate from its policies and deactivates it, then
/// detaches it from the Thing and deletes it. Pieces already gone count as
/// done. The certificate stays attached to the Thing until the last step, and
/// is attached back if deleting it fails: the bridge finds certificates only
/// through the Thing, so one left detached would never be retired.
async fn retire(
    tenant: &Tenant,
    device_id: &str,
    certificate: &Certificate,
) -> Result<(), IotError> {
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
    tenant
        .iot
        .detach_principal(device_id, &certificate.arn)
        .await?;
    if let Err(error) = tenant.iot.delete_certificate(&certificate.id).await {
        park(tenant, device_id, certificate).await;
        return Err(error);
    }
    Ok(())
}

/// Attaches a certificate that could not be deleted to the device's Thing
/// (made if it is gone), where the next reconcile finds and retires it: the
/// bridge finds certificates only through the Thing, so one attached to
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
            "an inactive certificate is left detached; delete it by hand"
        );
    }
}

async fn set_all_active(
    tenant: &Tenant,
    device_id: &str,
    active: bool,
) -> Result<Outcome, ReconcileError> {
    let certificates = thing_certificates(tenant, device_id).await?;
    let changing: Vec<_> = certificates.iter().filter(|c| c.active != active).collect();
    try_join_all(
        changing
            .iter()
            .map(|c| tenant.iot.set_active(&c.id, active)),
    )
    .await?;
    Ok(match (changing.is_empty(), active) {
        (true, _) => Outcome::InSync,
        (false, true) => Outcome::Repaired,
        (false, false) => Outcome::Disabled,
    })
}

/// Decommissioned: every certificate retired, other principals detached,
/// then the Thing deleted.
async fn remove(tenant: &Tenant, device_id: &str) -> Result<Outcome, ReconcileError> {
    let principals = tenant.iot.thing_principals(device_id).await?;
    let certificates = describe_certificates(tenant, &principals).await?;
    try_join_all(
        certificates
            .iter()
            .map(|certificate| retire(tenant, device_id, certificate)),
    )
    .await?;
    let others = principals
        .iter()
        .filter(|arn| certificate_id(arn).is_none());
    try_join_all(others.map(|arn| tenant.iot.detach_principal(device_id, arn))).await?;
    tenant.iot.delete_thing(device_id).await?;
    Ok(Outcome::Removed)
}
