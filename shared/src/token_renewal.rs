//! The bridge's own Mender token: a personal access token, which Mender lets
//! live a year at most. Every scheduled tick looks after it for each
//! organization: within [`RENEW_BEFORE`] of its expiry the bridge makes
//! itself a new one (with the old), stores it, and revokes the old. Each
//! tick reports the days left as a metric, whose alarm (template.yaml) goes
//! off two weeks ahead should renewal keep failing, or should the token be
//! one the admin gave, which only the admin can replace.
//!
//! Decisions are pure ([`upkeep`], [`days_left`], [`is_bridge_token`]);
//! [`look_after`] is the shell.

use std::time::Duration;

use crate::auth::{token_expiry, token_id};
use crate::clock::{epoch_seconds, now_rfc3339};
use crate::mender::{MenderClient, MenderError};
use crate::metrics::{MetricsSink, TOKEN_DAYS_LEFT};
use crate::settings::{IntegrationSettings, Secret, SettingsError, SettingsStore};
use crate::tenant::Tenant;

/// Renewal starts this long before the token expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The life of a token the bridge makes: Mender's longest.
pub const TOKEN_LIFETIME_SECONDS: u64 = 365 * 24 * 3600;
/// Fewer days left than this log the error the alarm counts.
pub const ALARM_DAYS: f64 = 14.0;

/// What a tick does with the organization's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upkeep {
    /// Nothing: it is far from its expiry, or never expires.
    Keep,
    /// Renew it: it nears its expiry, and the bridge made it.
    Renew,
    /// It nears its expiry, but the admin gave it: only the admin can
    /// replace it (`PUT …/integrations/{id}` with a new `mender_token`).
    AskAdmin,
}

/// What to do with a token expiring at `expires_at` (epoch seconds; `None`
/// for one that never expires) at `now`.
pub fn upkeep(expires_at: Option<u64>, now: u64, made_by_bridge: bool) -> Upkeep {
    match expires_at {
        Some(at) if at <= now + RENEW_BEFORE.as_secs() => {
            if made_by_bridge {
                Upkeep::Renew
            } else {
                Upkeep::AskAdmin
            }
        }
        _ => Upkeep::Keep,
    }
}

/// Days until `expires_at` (0 once past), for the metric; `None` for a
/// token that never expires.
pub fn days_left(expires_at: Option<u64>, now: u64) -> Option<f64> {
    expires_at.map(|at| at.saturating_sub(now) as f64 / 86_400.0)
}

/// The name of the tokens the bridge makes for an integration: the first
/// one, made at setup, exactly; renewed ones with a suffix.
pub fn token_name(integration_id: &str) -> String {
    format!("mender-iot-bridge-{integration_id}")
}

/// Whether a token of the bridge's user, named `name`, is one the bridge
/// made for this integration.
pub fn is_bridge_token(name: &str, integration_id: &str) -> bool {
    let base = token_name(integration_id);
    name.strip_prefix(&base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}

#[derive(Debug, thiserror::Error)]
pub enum RenewalError {
    #[error(transparent)]
    Mender(#[from] MenderError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("the integration's Mender token was replaced meanwhile; nothing renewed")]
    Replaced,
}

/// One tick for one organization: renews the token if it is due, revokes
/// tokens the bridge made for the integration that are no longer the one
/// in use (an old one after renewal, or one a stopped renewal left), and
/// reports the days left. What it decided.
pub async fn look_after(
    store: &SettingsStore<IntegrationSettings>,
    tenant: &Tenant,
    metrics: &MetricsSink,
) -> Result<Upkeep, RenewalError> {
    let settings = &tenant.settings;
    let now = epoch_seconds();
    let mut expires_at = token_expiry(settings.mender.token.expose());
    let made_by_bridge = settings.mender.token_id.is_some();
    let decided = upkeep(expires_at, now, made_by_bridge);
    let result = async {
        let (mut client, mut current) = (tenant.mender.clone(), settings.mender.token_id.clone());
        match decided {
            Upkeep::Renew => {
                let renewed = renew(store, tenant).await?;
                expires_at = token_expiry(renewed.expose());
                current = token_id(renewed.expose());
                client = tenant.mender.with_token(renewed);
            }
            Upkeep::AskAdmin => tracing::warn!(
                tenant = tenant.id(),
                days_left = days_left(expires_at, now),
                "the Mender token the admin gave the bridge expires soon; replace it with PUT /api/management/v1/iot-manager/integrations/{{id}} (mender_token)"
            ),
            Upkeep::Keep => {}
        }
        if made_by_bridge {
            revoke_others(&client, &settings.integration_id, current.as_deref()).await?;
        }
        Ok(decided)
    }
    .await;
    if let Some(days) = days_left(expires_at, now) {
        metrics.emit(tenant.id(), &[(TOKEN_DAYS_LEFT, days)]);
        if days < ALARM_DAYS {
            tracing::error!(
                tenant = tenant.id(),
                integration_id = settings.integration_id,
                days_left = days,
                "the bridge's Mender token expires within two weeks; see docs/operations.md"
            );
        }
    }
    result
}

/// Makes a new token with the current one and stores it in place of the
/// current one, leaving the rest of the integration as it is now.
async fn renew(
    store: &SettingsStore<IntegrationSettings>,
    tenant: &Tenant,
) -> Result<Secret, RenewalError> {
    let old = &tenant.settings.mender.token;
    let integration_id = &tenant.settings.integration_id;
    let name = format!("{}-{}", token_name(integration_id), epoch_seconds());
    let token = tenant
        .mender
        .create_personal_token(&name, TOKEN_LIFETIME_SECONDS)
        .await?;
    let mut settings = IntegrationSettings::clone(&*store.refresh(integration_id).await?);
    if settings.mender.token != *old {
        // An admin's setup replaced it: this one is not wanted.
        let made = tenant.mender.with_token(token.clone());
        if let Some(id) = token_id(token.expose()) {
            made.delete_personal_token(&id).await?;
        }
        return Err(RenewalError::Replaced);
    }
    settings.mender.token_id = token_id(token.expose());
    settings.mender.token = token.clone();
    settings.updated_at = now_rfc3339();
    store.replace(&settings).await?;
    tracing::info!(
        tenant = tenant.id(),
        integration_id,
        "renewed the bridge's Mender token"
    );
    Ok(token)
}

/// Revokes the tokens the bridge made for the integration, other than `current`.
async fn revoke_others(
    client: &MenderClient,
    integration_id: &str,
    current: Option<&str>,
) -> Result<(), MenderError> {
    for (id, name) in client.personal_tokens().await? {
        if is_bridge_token(&name, integration_id) && Some(id.as_str()) != current {
            client.delete_personal_token(&id).await?;
            tracing::info!(
                integration_id,
                token = name,
                "revoked a token the bridge no longer uses"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn a_token_is_renewed_within_thirty_days_of_its_expiry_when_the_bridge_made_it() {
        let now = 1_000 * DAY;
        for (expires_at, made_by_bridge, expected) in [
            (None, true, Upkeep::Keep),
            (Some(now + 31 * DAY), true, Upkeep::Keep),
            (Some(now + 30 * DAY), true, Upkeep::Renew),
            (Some(now + DAY), true, Upkeep::Renew),
            (Some(now - DAY), true, Upkeep::Renew),
            (Some(now + 31 * DAY), false, Upkeep::Keep),
            (Some(now + 30 * DAY), false, Upkeep::AskAdmin),
            (None, false, Upkeep::Keep),
        ] {
            assert_eq!(
                upkeep(expires_at, now, made_by_bridge),
                expected,
                "{expires_at:?}, made by the bridge: {made_by_bridge}"
            );
        }
    }

    #[test]
    fn days_left_count_down_to_zero() {
        let now = 1_000 * DAY;
        for (expires_at, expected) in [
            (None, None),
            (Some(now + 10 * DAY), Some(10.0)),
            (Some(now + DAY / 2), Some(0.5)),
            (Some(now - DAY), Some(0.0)),
        ] {
            assert_eq!(days_left(expires_at, now), expected, "{expires_at:?}");
        }
    }

    #[test]
    fn only_tokens_named_for_the_integration_are_the_bridges() {
        let id = "5a11e000-0000-4000-8000-000000000001";
        for (name, expected) in [
            (format!("mender-iot-bridge-{id}"), true),
            (format!("mender-iot-bridge-{id}-1767225600"), true),
            (format!("mender-iot-bridge-{id}x"), false),
            ("mender-iot-bridge-5a11e000".to_owned(), false),
            ("ci".to_owned(), false),
        ] {
            assert_eq!(is_bridge_token(&name, id), expected, "{name}");
        }
    }
}
