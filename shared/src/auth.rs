//! Who is calling: a Mender token is valid only if Mender says so
//! (`users/me`); the organization comes from the confirmed token's
//! `mender.tenant` claim. Answers are cached per token, briefly, never
//! across tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::http::ApiError;
use crate::mender::{MenderClient, MenderError};
use crate::settings::Secret;

/// The organization of tokens without a tenant claim (open source Mender).
pub const DEFAULT_TENANT: &str = "default";
pub const ADMIN_ROLE: &str = "RBAC_ROLE_PERMIT_ALL";

/// How long a confirmed answer is trusted; a revoked token keeps working
/// for at most this long.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Caller {
    pub tenant_id: String,
    pub is_admin: bool,
    pub token: Secret,
}

impl Caller {
    /// A Mender client acting as this caller.
    pub fn mender(&self, authenticator: &Authenticator) -> MenderClient {
        MenderClient::new(
            authenticator.http.clone(),
            &authenticator.mender_url,
            self.token.clone(),
        )
    }
}

type TokenHash = [u8; 32];

/// Mender's answer about one token and one device: shown, or the status
/// it refused with; kept until the instant.
type DeviceAccessCache = HashMap<(TokenHash, String), (Instant, Result<(), u16>)>;

pub struct Authenticator {
    http: reqwest::Client,
    mender_url: String,
    ttl: Duration,
    callers: Mutex<HashMap<TokenHash, (Instant, Arc<Caller>)>>,
    device_access: Mutex<DeviceAccessCache>,
}

/// Bounds each cache; past it the cache is emptied (entries are cheap to refetch).
const MAX_CACHED: usize = 10_000;

impl Authenticator {
    pub fn new(http: reqwest::Client, mender_url: &str, ttl: Duration) -> Self {
        Authenticator {
            http,
            mender_url: mender_url.trim_end_matches('/').to_owned(),
            ttl,
            callers: Mutex::new(HashMap::new()),
            device_access: Mutex::new(HashMap::new()),
        }
    }

    /// The caller behind `Authorization: Bearer …`, as Mender confirms it.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Arc<Caller>, ApiError> {
        let token = bearer_token(headers)?;
        let hash: TokenHash = Sha256::digest(token.as_bytes()).into();
        if let Some((until, caller)) = self.callers.lock().unwrap().get(&hash)
            && Instant::now() < *until
        {
            return Ok(caller.clone());
        }
        let claims = Claims::of(token);
        if claims.expired() {
            return Err(unauthorized());
        }
        let client = MenderClient::new(self.http.clone(), &self.mender_url, Secret::new(token));
        let user = client
            .me()
            .await
            .map_err(mender_error)?
            .ok_or_else(unauthorized)?;
        let until = Instant::now()
            + claims
                .remaining()
                .map_or(self.ttl, |left| left.min(self.ttl));
        let caller = Arc::new(Caller {
            tenant_id: claims
                .tenant
                .clone()
                .unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
            is_admin: is_admin(user.roles.as_deref(), claims.tenant.as_deref()),
            token: Secret::new(token),
        });
        let mut callers = self.callers.lock().unwrap();
        if callers.len() >= MAX_CACHED {
            callers.clear();
        }
        callers.insert(hash, (until, caller.clone()));
        Ok(caller)
    }

    pub async fn admin(&self, headers: &http::HeaderMap) -> Result<Arc<Caller>, ApiError> {
        let caller = self.authenticate(headers).await?;
        if !caller.is_admin {
            return Err(ApiError::Forbidden(format!(
                "this needs an admin of the organization ({ADMIN_ROLE})"
            )));
        }
        Ok(caller)
    }

    /// Read access to a device: Mender shows it to the caller.
    pub async fn require_device_access(
        &self,
        caller: &Caller,
        device_id: &str,
    ) -> Result<(), ApiError> {
        let key = (
            Sha256::digest(caller.token.expose().as_bytes()).into(),
            device_id.to_owned(),
        );
        let cached = self
            .device_access
            .lock()
            .unwrap()
            .get(&key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, r)| *r);
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let answer = match caller.mender(self).device(device_id).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(404),
                    Err(MenderError::Forbidden) => Err(403),
                    Err(error) => return Err(mender_error(error)),
                };
                let mut access = self.device_access.lock().unwrap();
                if access.len() >= MAX_CACHED {
                    access.clear();
                }
                access.insert(key, (Instant::now() + self.ttl, answer));
                answer
            }
        };
        match answer {
            Ok(()) => Ok(()),
            Err(403) => Err(ApiError::Forbidden(format!(
                "no access to device {device_id}"
            ))),
            Err(_) => Err(ApiError::NotFound(format!(
                "Mender has no device {device_id}"
            ))),
        }
    }
}

/// Whether a confirmed user is an admin of the organization. With RBAC
/// (Enterprise, hosted Mender), Mender lists the user's roles and only
/// `RBAC_ROLE_PERMIT_ALL` is an admin. Open-source Mender's useradm API
/// (`shared/mender-api/useradm`) has no roles and its tokens carry no
/// `mender.tenant` claim: there every user is an admin. A user without roles
/// whose token names an organization is not an admin by omission.
pub fn is_admin(roles: Option<&[String]>, tenant_claim: Option<&str>) -> bool {
    match (roles, tenant_claim) {
        (Some(roles), _) => roles.iter().any(|r| r == ADMIN_ROLE),
        (None, None) => true,
        (None, Some(_)) => false,
    }
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("Mender does not accept this token (invalid, expired or revoked)".into())
}

/// How a Mender failure reads to the API's caller.
pub fn mender_error(error: MenderError) -> ApiError {
    match error {
        MenderError::Unauthorized => unauthorized(),
        MenderError::Forbidden => ApiError::Forbidden("Mender denied this to the token".into()),
        MenderError::Unreachable { .. } => {
            ApiError::ServiceUnavailable("Mender is unreachable; try again".into())
        }
        other => ApiError::BadGateway(format!("Mender failed: {other}")),
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str, ApiError> {
    let missing =
        || ApiError::Unauthorized("missing `Authorization: Bearer <Mender token>`".into());
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 8192 {
        return Err(missing());
    }
    Ok(token)
}

/// The unverified claims of a JWT. Only read after Mender confirmed the
/// token, or to refuse one early that has plainly expired.
#[derive(Default, serde::Deserialize)]
struct Claims {
    #[serde(rename = "mender.tenant")]
    tenant: Option<String>,
    exp: Option<u64>,
    jti: Option<String>,
}

/// A token's id (`jti` claim): what Mender's token API calls it.
pub fn token_id(token: &str) -> Option<String> {
    Claims::of(token).jti
}

/// When a token expires (its `exp` claim, epoch seconds); `None` for one
/// that never expires.
pub fn token_expiry(token: &str) -> Option<u64> {
    Claims::of(token).exp
}

/// The organization a token names (unverified: for tokens Mender confirmed).
pub fn token_tenant(token: &str) -> String {
    Claims::of(token)
        .tenant
        .unwrap_or_else(|| DEFAULT_TENANT.to_owned())
}

impl Claims {
    fn of(token: &str) -> Claims {
        let payload = token.split('.').nth(1).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Claims>(&bytes).ok())
            .map(|claims| Claims {
                tenant: claims.tenant.filter(|t| !t.is_empty()),
                ..claims
            })
            .unwrap_or_default()
    }

    fn remaining(&self) -> Option<Duration> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        self.exp
            .map(|exp| Duration::from_secs(exp.saturating_sub(now)))
    }

    fn expired(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &serde_json::Value) -> String {
        let encode = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.sig",
            encode(br#"{"alg":"RS256"}"#),
            encode(payload.to_string().as_bytes())
        )
    }

    #[test]
    fn reads_tenant_and_expiry_claims() {
        let claims = Claims::of(&token(
            &serde_json::json!({"mender.tenant": "acme", "exp": 4_000_000_000u64}),
        ));
        assert_eq!(claims.tenant.as_deref(), Some("acme"));
        assert!(!claims.expired());
        let expired = Claims::of(&token(&serde_json::json!({"exp": 1})));
        assert!(expired.expired());
        assert_eq!(Claims::of("not a jwt").tenant, None);
        assert_eq!(
            Claims::of(&token(&serde_json::json!({"mender.tenant": ""}))).tenant,
            None
        );
    }

    #[test]
    fn admins_are_named_by_roles_or_are_open_source_users() {
        let roles = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let admin = roles(&[ADMIN_ROLE]);
        let observer = roles(&["RBAC_ROLE_OBSERVER"]);
        for (user_roles, tenant, expected) in [
            (Some(admin.as_slice()), Some("acme"), true),
            (Some(admin.as_slice()), None, true),
            (Some(observer.as_slice()), Some("acme"), false),
            (Some(&[][..]), Some("acme"), false),
            // Open source: no roles, no organization claim.
            (None, None, true),
            // An organization's token without roles: fail closed.
            (None, Some("acme"), false),
        ] {
            assert_eq!(
                is_admin(user_roles, tenant),
                expected,
                "{user_roles:?} {tenant:?}"
            );
        }
    }

    #[test]
    fn bearer_token_is_required() {
        let mut headers = http::HeaderMap::new();
        assert!(bearer_token(&headers).is_err());
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer_token(&headers).is_err());
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert!(bearer_token(&headers).is_err());
        headers.insert("authorization", "bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer_token(&headers).unwrap(), "abc.def.ghi");
    }
}
