//! The Mender management API, as the bridge uses it with an organization's
//! token. Throttling, 5xx and connection failures are retried with backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::retry::Backoff;
use crate::settings::Secret;

#[derive(Debug, thiserror::Error)]
pub enum MenderError {
    #[error("Mender refused the token (401)")]
    Unauthorized,
    #[error("Mender denied access (403)")]
    Forbidden,
    #[error("Mender answered {status} to {operation}")]
    Status {
        operation: &'static str,
        status: u16,
    },
    #[error("Mender is unreachable ({operation}): {reason}")]
    Unreachable {
        operation: &'static str,
        reason: String,
    },
    #[error("Mender's answer to {operation} is not what its API promises: {reason}")]
    Unexpected {
        operation: &'static str,
        reason: String,
    },
}

impl MenderError {
    /// Worth another try: Mender overloaded, failing or out of reach.
    pub fn is_transient(&self) -> bool {
        match self {
            MenderError::Status { status, .. } => *status == 429 || *status >= 500,
            MenderError::Unreachable { .. } => true,
            _ => false,
        }
    }
}

/// A device as devauth v2 reports it; only what the bridge reads.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub decommissioning: bool,
    /// When the device last changed (RFC 3339): its status, its auth sets.
    #[serde(default)]
    pub updated_ts: Option<String>,
}

/// The user behind a token (`users/me`); `roles` only with RBAC.
#[derive(Clone, Debug, Deserialize)]
pub struct User {
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// A device's Mender Configure configuration as set by users (`configured`).
pub type Configuration = BTreeMap<String, String>;

/// A device's Mender Configure record: what was delivered to it, and what
/// it last reported applying.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DeviceConfiguration {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub configured: Configuration,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub reported: Configuration,
    /// When the configuration was last set.
    #[serde(default)]
    pub updated_ts: Option<String>,
    /// When the device last reported.
    #[serde(default)]
    pub reported_ts: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Configuration, D::Error> {
    Ok(Option::<Configuration>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct Deployment {
    deployment_id: String,
}

/// Shared HTTP settings for every Mender call, built once per instance.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::client_config())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with these settings always builds")
}

#[derive(Clone)]
pub struct MenderClient {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
    backoff: Backoff,
}

pub const DEFAULT_BACKOFF: Backoff = Backoff {
    attempts: 4,
    base: Duration::from_millis(200),
    max: Duration::from_secs(2),
};

impl MenderClient {
    pub fn new(http: reqwest::Client, base_url: &str, token: Secret) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            backoff: DEFAULT_BACKOFF,
        }
    }

    /// The same Mender, called with another token.
    pub fn with_token(&self, token: Secret) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// The device's current state; `None` when Mender does not know it.
    pub async fn device(&self, device_id: &str) -> Result<Option<Device>, MenderError> {
        let path = format!("/api/management/v2/devauth/devices/{}", segment(device_id));
        self.call_json("get device", Method::GET, &path, None).await
    }

    /// One page of the organization's devices, every status (pages start at
    /// 1). The listing always exists: a 404 means this is not the Mender
    /// API (a wrong URL, a gateway), never "no devices".
    pub async fn list_devices(&self, page: u32, per_page: u32) -> Result<Vec<Device>, MenderError> {
        let path = format!("/api/management/v2/devauth/devices?page={page}&per_page={per_page}");
        self.call_json("list devices", Method::GET, &path, None)
            .await?
            .ok_or(MenderError::Status {
                operation: "list devices",
                status: 404,
            })
    }

    /// How many devices the organization has (of one status, if given).
    pub async fn count_devices(
        &self,
        status: Option<crate::device::DeviceStatus>,
    ) -> Result<u64, MenderError> {
        #[derive(serde::Deserialize)]
        struct Count {
            count: u64,
        }
        let path = match status {
            Some(status) => format!("/api/management/v2/devauth/devices/count?status={status}"),
            None => "/api/management/v2/devauth/devices/count".to_owned(),
        };
        let count: Option<Count> = self
            .call_json("count devices", Method::GET, &path, None)
            .await?;
        count.map(|c| c.count).ok_or(MenderError::Status {
            operation: "count devices",
            status: 404,
        })
    }

    /// One page of the ids of a group's devices (Mender's inventory; pages
    /// start at 1); `None` when Mender knows no such group, which it does
    /// not once the group's last device has left it.
    pub async fn group_devices(
        &self,
        group: &str,
        page: u32,
        per_page: u32,
    ) -> Result<Option<Vec<String>>, MenderError> {
        let path = format!(
            "/api/management/v1/inventory/groups/{}/devices?page={page}&per_page={per_page}",
            segment(group)
        );
        self.call_json("list group devices", Method::GET, &path, None)
            .await
    }

    /// The token's user; `None` when Mender does not know it.
    pub async fn me(&self) -> Result<Option<User>, MenderError> {
        self.call_json(
            "get current user",
            Method::GET,
            "/api/management/v1/useradm/users/me",
            None,
        )
        .await
    }

    pub async fn configuration(
        &self,
        device_id: &str,
    ) -> Result<Option<DeviceConfiguration>, MenderError> {
        let path = format!(
            "/api/management/v1/deviceconfig/configurations/device/{}",
            segment(device_id)
        );
        self.call_json("get configuration", Method::GET, &path, None)
            .await
    }

    /// Replaces the whole configuration (Mender's PUT is not a merge).
    pub async fn set_configuration(
        &self,
        device_id: &str,
        configuration: &Configuration,
    ) -> Result<(), MenderError> {
        let path = format!(
            "/api/management/v1/deviceconfig/configurations/device/{}",
            segment(device_id)
        );
        let body = serde_json::to_value(configuration).expect("a string map serializes");
        self.call("set configuration", Method::PUT, &path, Some(&body))
            .await?;
        Ok(())
    }

    /// Starts delivering the configuration to the device; the deployment id.
    pub async fn deploy_configuration(&self, device_id: &str) -> Result<String, MenderError> {
        let path = format!(
            "/api/management/v1/deviceconfig/configurations/device/{}/deploy",
            segment(device_id)
        );
        let body = serde_json::json!({ "retries": 3 });
        let deployment: Option<Deployment> = self
            .call_json("deploy configuration", Method::POST, &path, Some(&body))
            .await?;
        deployment
            .map(|d| d.deployment_id)
            .ok_or(MenderError::Status {
                operation: "deploy configuration",
                status: 404,
            })
    }

    /// Registers Mender's webhook integration pointing at the bridge; its id.
    /// `Ok(None)` when the organization already has an integration that is
    /// not this one. A retried request whose first attempt went through
    /// finds its own webhook again instead of failing.
    pub async fn register_webhook(
        &self,
        url: &str,
        secret_hex: &str,
        description: &str,
    ) -> Result<Option<String>, MenderError> {
        let body = serde_json::json!({
            "provider": "webhook",
            "credentials": {"type": "http", "http": {"url": url, "secret": secret_hex}},
            "description": description,
        });
        let path = "/api/management/v1/iot-manager/integrations";
        match self
            .call("register webhook", Method::POST, path, Some(&body))
            .await
        {
            Ok(Some(Answer {
                location: Some(location),
                ..
            })) => Ok(location.rsplit('/').next().map(str::to_owned)),
            Ok(_) => Err(MenderError::Unexpected {
                operation: "register webhook",
                reason: "no Location header".to_owned(),
            }),
            Err(MenderError::Status { status: 409, .. }) => self.webhook_at(url).await,
            Err(error) => Err(error),
        }
    }

    /// The id of the organization's webhook integration that posts to `url`.
    pub async fn webhook_at(&self, url: &str) -> Result<Option<String>, MenderError> {
        let path = "/api/management/v1/iot-manager/integrations";
        let existing: Option<Vec<serde_json::Value>> = self
            .call_json("list integrations", Method::GET, path, None)
            .await?;
        Ok(existing.unwrap_or_default().iter().find_map(|integration| {
            let ours = integration
                .pointer("/credentials/http/url")
                .and_then(|u| u.as_str())
                == Some(url);
            ours.then(|| integration["id"].as_str().map(str::to_owned))
                .flatten()
        }))
    }

    /// Removes one of the organization's integrations; gone already is fine.
    pub async fn delete_integration(&self, integration_id: &str) -> Result<(), MenderError> {
        let path = format!(
            "/api/management/v1/iot-manager/integrations/{}",
            segment(integration_id)
        );
        self.call("delete integration", Method::DELETE, &path, None)
            .await?;
        Ok(())
    }

    /// Creates a personal access token of the token's user; the raw token.
    pub async fn create_personal_token(
        &self,
        name: &str,
        expires_in: u64,
    ) -> Result<Secret, MenderError> {
        let body = serde_json::json!({ "name": name, "expires_in": expires_in });
        let path = "/api/management/v1/useradm/settings/tokens";
        let answer = self
            .call("create token", Method::POST, path, Some(&body))
            .await?;
        let text = answer
            .map(|a| String::from_utf8_lossy(&a.body).trim().to_owned())
            .unwrap_or_default();
        // The spec says JSON (a string); Mender sends the raw token. Accept both.
        let token = serde_json::from_str::<String>(&text).unwrap_or(text);
        if token.is_empty() {
            return Err(MenderError::Unexpected {
                operation: "create token",
                reason: "empty token".to_owned(),
            });
        }
        Ok(Secret::new(token))
    }

    /// The token user's personal access tokens: (id, name).
    pub async fn personal_tokens(&self) -> Result<Vec<(String, String)>, MenderError> {
        #[derive(Deserialize)]
        struct Token {
            id: String,
            name: String,
        }
        let path = "/api/management/v1/useradm/settings/tokens";
        let tokens: Option<Vec<Token>> = self
            .call_json("list tokens", Method::GET, path, None)
            .await?;
        Ok(tokens
            .unwrap_or_default()
            .into_iter()
            .map(|token| (token.id, token.name))
            .collect())
    }

    /// Revokes one of the token user's personal access tokens.
    pub async fn delete_personal_token(&self, token_id: &str) -> Result<(), MenderError> {
        let path = format!(
            "/api/management/v1/useradm/settings/tokens/{}",
            segment(token_id)
        );
        self.call("delete token", Method::DELETE, &path, None)
            .await?;
        Ok(())
    }

    /// A call whose JSON answer is read; 404 is `None`.
    async fn call_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<T>, MenderError> {
        let Some(answer) = self.call(operation, method, path, body).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&answer.body)
            .map(Some)
            .map_err(|e| MenderError::Unexpected {
                operation,
                reason: e.to_string(),
            })
    }

    /// One logical call, retried while Mender fails transiently. 404 is `None`.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<Answer>, MenderError> {
        let url = format!("{}{}", self.base_url, path);
        self.backoff
            .retry(MenderError::is_transient, || {
                let mut request = self
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(self.token.expose());
                if let Some(body) = body {
                    request = request.json(body);
                }
                async move {
                    let response = request.send().await.map_err(|e| MenderError::Unreachable {
                        operation,
                        reason: without_url(e),
                    })?;
                    match response.status() {
                        status if status.is_success() => {
                            let location = response
                                .headers()
                                .get(reqwest::header::LOCATION)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body =
                                response
                                    .bytes()
                                    .await
                                    .map_err(|e| MenderError::Unreachable {
                                        operation,
                                        reason: without_url(e),
                                    })?;
                            Ok(Some(Answer { location, body }))
                        }
                        StatusCode::NOT_FOUND => Ok(None),
                        StatusCode::UNAUTHORIZED => Err(MenderError::Unauthorized),
                        StatusCode::FORBIDDEN => Err(MenderError::Forbidden),
                        status => Err(MenderError::Status {
                            operation,
                            status: status.as_u16(),
                        }),
                    }
                }
            })
            .await
    }
}

/// A successful answer: its body, and where it says a created thing is.
struct Answer {
    location: Option<String>,
    body: bytes::Bytes,
}

/// What a path segment keeps as it is: letters, digits, `-` and `_`.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// A path segment with anything that could change the path escaped.
fn segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
}

fn without_url(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    kind.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(segment("abc-123"), "abc-123");
        assert_eq!(segment("../x"), "%2E%2E%2Fx");
        assert_eq!(segment("a b?c"), "a%20b%3Fc");
    }
}
