//! One kind of integration secret in Secrets Manager, read, written and
//! deleted by integration id, with a short-lived per-instance cache.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::DisplayErrorContext;

use super::{SCHEMA_VERSION, Stored};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("no integration with id {0}")]
    NotFound(String),
    #[error("integration {0} has unreadable settings")]
    Invalid(String),
    #[error("Secrets Manager failed: {0}")]
    Unavailable(String),
}

pub(super) fn unavailable(error: impl std::error::Error + 'static) -> SettingsError {
    SettingsError::Unavailable(DisplayErrorContext(error).to_string())
}

/// The secrets of kind `T` (`{prefix}{T::KIND}/{integration_id}`), each
/// kept for `ttl` per instance.
pub struct SettingsStore<T> {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Arc<T>)>>,
    kind: PhantomData<T>,
}

impl<T: Stored> SettingsStore<T> {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            ttl,
            cache: Mutex::new(HashMap::new()),
            kind: PhantomData,
        }
    }

    pub fn secret_name(&self, integration_id: &str) -> String {
        format!("{}{}/{integration_id}", self.prefix, T::KIND)
    }

    /// The secret of one integration. Ids that cannot be ours are refused
    /// without asking Secrets Manager.
    pub async fn get(&self, integration_id: &str) -> Result<Arc<T>, SettingsError> {
        if let Some((read_at, settings)) = self.cache.lock().unwrap().get(integration_id)
            && read_at.elapsed() < self.ttl
        {
            return Ok(settings.clone());
        }
        self.refresh(integration_id).await
    }

    /// The secret of one integration as Secrets Manager holds it now
    /// (cached afresh).
    pub async fn refresh(&self, integration_id: &str) -> Result<Arc<T>, SettingsError> {
        if uuid::Uuid::parse_str(integration_id).is_err() {
            return Err(SettingsError::NotFound(integration_id.to_owned()));
        }
        let settings = Arc::new(self.read(integration_id).await?);
        self.cache.lock().unwrap().insert(
            integration_id.to_owned(),
            (Instant::now(), settings.clone()),
        );
        Ok(settings)
    }

    async fn read(&self, integration_id: &str) -> Result<T, SettingsError> {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        let output = self
            .client
            .get_secret_value()
            .secret_id(self.secret_name(integration_id))
            .send()
            .await
            .map_err(|error| match error.as_service_error() {
                // A secret scheduled for deletion answers InvalidRequest.
                Some(
                    GetSecretValueError::ResourceNotFoundException(_)
                    | GetSecretValueError::InvalidRequestException(_),
                ) => SettingsError::NotFound(integration_id.to_owned()),
                _ => unavailable(error),
            })?;
        let text = output.secret_string().unwrap_or_default();
        // serde's message could quote a secret value; say only what failed.
        let settings: T = serde_json::from_str(text)
            .map_err(|_| SettingsError::Invalid(integration_id.to_owned()))?;
        if settings.integration_id() != integration_id
            || settings.schema_version() != SCHEMA_VERSION
        {
            return Err(SettingsError::Invalid(integration_id.to_owned()));
        }
        Ok(settings)
    }

    /// Deletes an integration's secret: after `recovery_days` (7–30) when
    /// given, so an operator can restore it; at once otherwise (for a
    /// setup that never completed).
    pub async fn delete(
        &self,
        integration_id: &str,
        recovery_days: Option<i64>,
    ) -> Result<(), SettingsError> {
        self.cache.lock().unwrap().remove(integration_id);
        delete_secret(
            &self.client,
            &self.secret_name(integration_id),
            recovery_days,
        )
        .await
    }

    /// Replaces the value of an integration's existing secret (it must
    /// exist: no `CreateSecret`, which the reconcile function may not call).
    pub async fn replace(&self, settings: &T) -> Result<(), SettingsError> {
        let name = self.secret_name(settings.integration_id());
        let text =
            serde_json::to_string(settings).map_err(|_| SettingsError::Invalid(name.clone()))?;
        self.client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(text)
            .send()
            .await
            .map_err(unavailable)?;
        self.cache.lock().unwrap().remove(settings.integration_id());
        Ok(())
    }

    /// Writes (creates or replaces) an integration's secret.
    pub async fn put(&self, settings: &T) -> Result<(), SettingsError> {
        let name = self.secret_name(settings.integration_id());
        let text =
            serde_json::to_string(settings).map_err(|_| SettingsError::Invalid(name.clone()))?;
        put_secret(&self.client, &name, &text).await?;
        self.cache.lock().unwrap().remove(settings.integration_id());
        Ok(())
    }
}

/// Creates the secret `name` holding `text`, or replaces its value.
async fn put_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    text: &str,
) -> Result<(), SettingsError> {
    use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
    let created = client
        .create_secret()
        .name(name)
        .secret_string(text)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(CreateSecretError::ResourceExistsException(_))
            ) =>
        {
            client
                .put_secret_value()
                .secret_id(name)
                .secret_string(text)
                .send()
                .await
                .map_err(unavailable)?;
            Ok(())
        }
        Err(error) => Err(unavailable(error)),
    }
}

/// Deletes the secret `name` (gone already is fine).
pub(super) async fn delete_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    recovery_days: Option<i64>,
) -> Result<(), SettingsError> {
    use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
    let request = client.delete_secret().secret_id(name);
    let request = match recovery_days {
        Some(days) => request.recovery_window_in_days(days),
        None => request.force_delete_without_recovery(true),
    };
    match request.send().await {
        Ok(_) => Ok(()),
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(DeleteSecretError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(())
        }
        // Already scheduled for deletion (by a removal that stopped before
        // its end): done, once the secret says so.
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(DeleteSecretError::InvalidRequestException(_))
            ) && scheduled_for_deletion(client, name).await =>
        {
            Ok(())
        }
        Err(error) => Err(unavailable(error)),
    }
}

async fn scheduled_for_deletion(client: &aws_sdk_secretsmanager::Client, name: &str) -> bool {
    client
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .is_ok_and(|secret| secret.deleted_date().is_some())
}
