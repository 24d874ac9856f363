//! Finds and removes what stopped invocations left attached to nothing, as
//! their intents name it ([`crate::intent`]). A reconcile run sweeps its
//! organization once, when its walk is done.

use std::time::Duration;

use super::plan;
use crate::certificates::certificate_der;
use crate::clock::epoch_seconds;
use crate::intent::{Intent, Named};
use crate::iot::{Certificate, IotError, ListedCertificate};
use crate::mender::MenderError;
use crate::table::TableError;
use crate::tenant::Tenant;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Iot(#[from] IotError),
    #[error(transparent)]
    Mender(#[from] MenderError),
}

/// What became of one stale intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No certificate holds its key: the call that would have made it never did.
    Nothing,
    /// Its certificate is attached to a Thing, where convergence sees it.
    Attached(String),
    /// Its certificate is attached and in the device's configuration, which
    /// the stopped invocation may never have asked Mender to send: it is
    /// sent (again).
    Sent(String),
    /// Its certificate was attached to nothing and is now deleted.
    Removed(String),
}

/// Resolves the organization's stale intents, those older than
/// `invocation_limit` (the longest an invocation lives); what each found.
pub async fn sweep(
    tenant: &Tenant,
    invocation_limit: Duration,
) -> Result<Vec<(Intent, Found)>, SweepError> {
    let limit = invocation_limit.as_secs();
    let before = (epoch_seconds() + 1).saturating_sub(limit);
    let intents = tenant.intents.stale(tenant.id(), before).await?;
    if intents.is_empty() {
        return Ok(Vec::new());
    }
    // Certificates carry no owner to filter on; when an intent names one
    // by its key, the account's listing is read, once for all of the run's
    // stale intents (rare: each is a crash).
    let by_key = intents
        .iter()
        .any(|i| matches!(i.certificate, Named::ByKey(_)));
    let listed = if by_key {
        tenant.iot.certificates().await?
    } else {
        Vec::new()
    };
    let mut resolved = Vec::new();
    for intent in intents {
        let found = resolve(tenant, &intent, &listed, limit).await?;
        match &found {
            Found::Nothing => {}
            Found::Attached(id) => tracing::info!(
                tenant = tenant.id(),
                device_id = intent.device_id,
                certificate_id = id,
                "a stopped invocation's certificate is attached to its Thing; convergence handles it"
            ),
            Found::Sent(id) => tracing::warn!(
                tenant = tenant.id(),
                device_id = intent.device_id,
                certificate_id = id,
                "a stopped invocation delivered a certificate it may not have sent; the configuration is sent to the device"
            ),
            Found::Removed(id) => tracing::warn!(
                tenant = tenant.id(),
                device_id = intent.device_id,
                certificate_id = id,
                "a stopped invocation left a certificate attached to nothing; removed"
            ),
        }
        // The stopped invocation may have changed the device behind its
        // record's back: the next run looks at the device itself.
        if found != Found::Nothing {
            tenant
                .records
                .forget(&tenant.settings.integration_id, &intent.device_id)
                .await?;
        }
        tenant.intents.forget(&intent).await?;
        resolved.push((intent, found));
    }
    Ok(resolved)
}

async fn resolve(
    tenant: &Tenant,
    intent: &Intent,
    listed: &[ListedCertificate],
    limit: u64,
) -> Result<Found, SweepError> {
    let certificate = match &intent.certificate {
        Named::ById(id) => tenant.iot.certificate(id).await?,
        Named::ByKey(_) => by_key(tenant, intent, listed, limit).await?,
    };
    let Some(certificate) = certificate else {
        return Ok(Found::Nothing);
    };
    if !tenant
        .iot
        .principal_things(&certificate.arn)
        .await?
        .is_empty()
    {
        // Deployed only when asked: a provisioning that stopped after
        // writing the configuration never asked. Asking twice costs the
        // device one more application of the same configuration.
        let configured = tenant
            .mender
            .configuration(&intent.device_id)
            .await?
            .unwrap_or_default()
            .configured;
        let created = matches!(intent.certificate, Named::ByKey(_));
        if created && plan::delivered(&configured, std::slice::from_ref(&certificate)).is_some() {
            tenant
                .mender
                .deploy_configuration(&intent.device_id)
                .await?;
            return Ok(Found::Sent(certificate.id));
        }
        return Ok(Found::Attached(certificate.id));
    }
    super::apply::remove_detached(tenant, &certificate).await?;
    Ok(Found::Removed(certificate.id))
}

/// The certificate issued for the intent's key, among those created while
/// its invocation could have been alive.
async fn by_key(
    tenant: &Tenant,
    intent: &Intent,
    listed: &[ListedCertificate],
    limit: u64,
) -> Result<Option<Certificate>, IotError> {
    let candidates = listed
        .iter()
        .filter(|c| intent.may_have_made(c.created_at, limit));
    for candidate in candidates {
        let Some(certificate) = tenant.iot.certificate(&candidate.id).await? else {
            continue;
        };
        if certificate_der(&certificate.pem).is_some_and(|der| intent.issued(&der)) {
            return Ok(Some(certificate));
        }
    }
    Ok(None)
}
