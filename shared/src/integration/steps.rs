//! The setup steps and their undo: create (claim the organization, register
//! Mender's webhook, make the bridge's token, store the secret, activate),
//! replace (new credentials, same integration) and delete.

use super::IntegrationApi;
use super::trust::role_key;
use super::validation::Setup;
use crate::auth::{Caller, mender_error, token_id};
use crate::clock::{epoch_seconds, now_rfc3339};
use crate::http::ApiError;
use crate::mender::{MenderClient, MenderError};
use crate::settings::{IntegrationSettings, MenderSettings, Secret, WebhookSecret};
use crate::token_renewal::{TOKEN_LIFETIME_SECONDS, is_bridge_token, token_name};

/// How long a setup in progress holds the organization's claim.
pub const CLAIM_SECONDS: u64 = 120;
/// A deleted integration's secret can be restored for this long.
const RECOVERY_DAYS: i64 = 7;

pub fn setup_in_progress() -> ApiError {
    ApiError::Conflict(
        "another setup of this organization's integration is in progress; try again shortly".into(),
    )
}

/// New credentials for the existing integration: id, webhook and secrets
/// stay. A device policy given up is remembered, so that runs detach it
/// from the integration's certificates; whether the policy changed.
pub async fn replace<B>(
    api: &IntegrationApi<B>,
    integration_id: &str,
    setup: Setup,
) -> Result<(IntegrationSettings, bool), ApiError> {
    let mut settings = IntegrationSettings::clone(&*api.settings.refresh(integration_id).await?);
    let old_role = settings.aws.credentials.role_arn().map(str::to_owned);
    let old_policy = settings.aws.device_policy_name.clone();
    settings.aws = setup.aws;
    settings.description = setup.description;
    settings.backfill = setup.backfill;
    settings.safety_limit = setup.safety_limit;
    settings.adopt_existing = setup.adopt_existing;
    let policy_changed = settings.aws.device_policy_name != old_policy;
    let retired = &mut settings.retired_device_policies;
    if policy_changed && !retired.contains(&old_policy) {
        retired.push(old_policy);
    }
    retired.retain(|policy| *policy != settings.aws.device_policy_name);
    let replaced_token = setup.mender_token.map(|token| {
        let old = std::mem::replace(&mut settings.mender.token, token);
        (old, settings.mender.token_id.take())
    });
    settings.updated_at = now_rfc3339();
    api.settings.put(&settings).await?;
    if let Some((old, Some(old_id))) = replaced_token {
        revoke_replaced(api, &settings, old, &old_id).await;
    }
    if let Some(old_role) = old_role
        && settings.aws.credentials.role_arn().map(role_key) != Some(role_key(&old_role))
    {
        api.trust
            .release_role(&old_role, &settings.tenant_id)
            .await?;
    }
    tracing::info!(
        tenant = settings.tenant_id,
        integration_id,
        policy_changed,
        "integration updated"
    );
    Ok((settings, policy_changed))
}

/// What a setup has made in Mender and AWS, to undo it if a later step fails.
#[derive(Default)]
struct Made {
    webhook_id: Option<String>,
    /// Id of a personal access token the bridge created.
    token_id: Option<String>,
    secret: bool,
}

/// Creates the organization's integration; on failure, undoes every step.
pub async fn create<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    setup: Setup,
) -> Result<IntegrationSettings, ApiError> {
    if let Some(entry) = api.index.lookup(&caller.tenant_id).await?
        && entry.abandoned(epoch_seconds())
    {
        remove_abandoned(api, caller, &entry.integration_id).await?;
    }
    let integration_id = uuid::Uuid::new_v4().to_string();
    if !api
        .index
        .claim(&caller.tenant_id, &integration_id, CLAIM_SECONDS)
        .await?
    {
        return Err(setup_in_progress());
    }
    let mut made = Made::default();
    match create_steps(api, caller, setup, &integration_id, &mut made).await {
        Ok(settings) => {
            tracing::info!(
                tenant = caller.tenant_id,
                integration_id,
                "integration created"
            );
            Ok(settings)
        }
        Err(error) => {
            tracing::warn!(tenant = caller.tenant_id, %error, "integration setup failed; undoing it");
            undo(api, caller, &integration_id, made).await;
            Err(error)
        }
    }
}

async fn create_steps<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    setup: Setup,
    integration_id: &str,
    made: &mut Made,
) -> Result<IntegrationSettings, ApiError> {
    let as_caller = caller.mender(&api.auth);
    let webhook_secret = random_hex(32)?;
    let description = format!("mender-iot-bridge {integration_id}");
    let webhook_id = as_caller
        .register_webhook(&api.webhook_url(integration_id), &webhook_secret, &description)
        .await
        .map_err(mender_error)?
        .ok_or_else(|| {
            ApiError::Conflict(
                "this Mender organization already has an integration (Mender allows one of any kind); remove it first"
                    .into(),
            )
        })?;
    made.webhook_id = Some(webhook_id.clone());

    let (token, token_id) = match setup.mender_token {
        Some(token) => (token, None),
        None => {
            let token = create_bridge_token(&as_caller, &token_name(integration_id))
                .await
                .map_err(mender_error)?;
            let id = token_id(token.expose());
            made.token_id.clone_from(&id);
            (token, id)
        }
    };

    let mut settings = IntegrationSettings::new(
        integration_id,
        &caller.tenant_id,
        setup.aws,
        MenderSettings {
            token,
            webhook_integration_id: Some(webhook_id),
            token_id,
        },
        setup.description,
    );
    settings.backfill = setup.backfill;
    settings.safety_limit = setup.safety_limit;
    settings.adopt_existing = setup.adopt_existing;
    made.secret = true;
    api.settings.put(&settings).await?;
    // Last: the ingress accepts webhooks once this secret exists.
    api.webhooks
        .put(&WebhookSecret::new(
            integration_id,
            &caller.tenant_id,
            Secret::new(webhook_secret),
        ))
        .await?;
    api.index
        .activate(&caller.tenant_id, integration_id)
        .await?;
    Ok(settings)
}

/// Makes the integration's token. Mender refuses a second token of a name
/// (409); the name carries this setup's integration id, so a token that
/// has it can only be this setup's own, made by an attempt whose answer was
/// lost (the call is retried on a timeout or a gateway's 5xx). It is
/// removed and made again: the raw token is only ever in the answer.
async fn create_bridge_token(mender: &MenderClient, name: &str) -> Result<Secret, MenderError> {
    match mender
        .create_personal_token(name, TOKEN_LIFETIME_SECONDS)
        .await
    {
        Err(MenderError::Status { status: 409, .. }) => {
            for (id, _) in mender
                .personal_tokens()
                .await?
                .into_iter()
                .filter(|(_, listed)| listed == name)
            {
                mender.delete_personal_token(&id).await?;
            }
            mender
                .create_personal_token(name, TOKEN_LIFETIME_SECONDS)
                .await
        }
        other => other,
    }
}

/// Removes what a setup that stopped half-way may have made, as its claim
/// names it: Mender's webhook posting to its URL, the admin's token with its
/// name, its secrets. Before the organization is claimed again: should this
/// fail, the claim still names what is left, for the next try.
async fn remove_abandoned<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    integration_id: &str,
) -> Result<(), ApiError> {
    let as_caller = caller.mender(&api.auth);
    let webhook = as_caller
        .webhook_at(&api.webhook_url(integration_id))
        .await
        .map_err(mender_error)?;
    if let Some(webhook_id) = webhook {
        as_caller
            .delete_integration(&webhook_id)
            .await
            .map_err(mender_error)?;
    }
    // Tokens are the user's own: one another admin made is not listed, and
    // expires unused.
    let tokens = as_caller.personal_tokens().await.map_err(mender_error)?;
    for (token_id, name) in tokens {
        if is_bridge_token(&name, integration_id) {
            as_caller
                .delete_personal_token(&token_id)
                .await
                .map_err(mender_error)?;
        }
    }
    api.webhooks.delete(integration_id, None).await?;
    api.settings.delete(integration_id, None).await?;
    tracing::warn!(
        tenant = caller.tenant_id,
        integration_id,
        "cleared what a stopped setup may have left"
    );
    Ok(())
}

/// Best effort, every step tried; what fails is logged (never a secret).
async fn undo<B>(api: &IntegrationApi<B>, caller: &Caller, integration_id: &str, made: Made) {
    let as_caller = caller.mender(&api.auth);
    let mut failures = Vec::new();
    if made.secret {
        for deleted in [
            api.webhooks.delete(integration_id, None).await,
            api.settings.delete(integration_id, None).await,
        ] {
            if let Err(error) = deleted {
                failures.push(error.to_string());
            }
        }
    }
    if let Some(token_id) = &made.token_id
        && let Err(error) = as_caller.delete_personal_token(token_id).await
    {
        failures.push(error.to_string());
    }
    if let Some(webhook_id) = &made.webhook_id
        && let Err(error) = as_caller.delete_integration(webhook_id).await
    {
        failures.push(error.to_string());
    }
    if let Err(error) = api.index.remove(&caller.tenant_id, integration_id).await {
        failures.push(error.to_string());
    }
    if !failures.is_empty() {
        tracing::error!(
            tenant = caller.tenant_id,
            integration_id,
            ?failures,
            "could not undo every step of a failed setup"
        );
    }
}

/// Removes the integration: Mender's webhook, the bridge's token, the
/// secret (restorable for [`RECOVERY_DAYS`]), the index entry. Things stay.
pub async fn delete<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    settings: &IntegrationSettings,
) -> Result<(), ApiError> {
    if let Some(webhook_id) = &settings.mender.webhook_integration_id {
        caller
            .mender(&api.auth)
            .delete_integration(webhook_id)
            .await
            .map_err(mender_error)?;
    }
    if let Some(token_id) = &settings.mender.token_id {
        // The token belongs to the admin who set the integration up; it can
        // revoke itself, whoever asks for the removal.
        let as_bridge = MenderClient::new(
            api.http.clone(),
            &api.mender_url,
            settings.mender.token.clone(),
        );
        match as_bridge.delete_personal_token(token_id).await {
            Err(MenderError::Unauthorized) => {} // already revoked or expired
            other => other.map_err(mender_error)?,
        }
    }
    // The webhook secret first: the ingress stops accepting at once.
    api.webhooks
        .delete(&settings.integration_id, Some(RECOVERY_DAYS))
        .await?;
    api.settings
        .delete(&settings.integration_id, Some(RECOVERY_DAYS))
        .await?;
    api.index
        .remove(&caller.tenant_id, &settings.integration_id)
        .await?;
    if let Some(role) = settings.aws.credentials.role_arn() {
        api.trust.release_role(role, &caller.tenant_id).await?;
    }
    tracing::info!(
        tenant = caller.tenant_id,
        integration_id = settings.integration_id,
        "integration removed"
    );
    Ok(())
}

/// The token the bridge made, replaced by one the admin gave: revoked with
/// itself. Best effort (the new settings are stored): a failure is logged,
/// and the old token expires unused.
async fn revoke_replaced<B>(
    api: &IntegrationApi<B>,
    settings: &IntegrationSettings,
    old: Secret,
    old_id: &str,
) {
    let as_old = MenderClient::new(api.http.clone(), &api.mender_url, old);
    match as_old.delete_personal_token(old_id).await {
        Ok(()) | Err(MenderError::Unauthorized) => {}
        Err(error) => tracing::warn!(
            tenant = settings.tenant_id,
            integration_id = settings.integration_id,
            %error,
            "could not revoke the token the bridge made, which the admin replaced; it expires unused"
        ),
    }
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|_| ApiError::Internal)?;
    Ok(hex::encode(buffer))
}
