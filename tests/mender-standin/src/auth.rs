//! Management tokens and the caller they identify.
//!
//! Tokens look like Mender's JWTs (`header.payload.signature`, base64url),
//! but the signature is random: a token is valid only if the stand-in issued
//! it, it has not expired and it was not revoked.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::http::ApiError;
use crate::state::{
    DEFAULT_TENANT, Pat, ROLE_OBSERVER, ROLE_PERMIT_ALL, State, Token, new_id, now,
};

/// The authenticated user behind a request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub user_id: String,
    pub tenant_id: String,
    /// `None` for tenants without RBAC (open source): everyone is admin.
    pub roles: Option<Vec<String>>,
    /// `None`: every device group (always `None` without RBAC).
    pub device_groups: Option<Vec<String>>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        match &self.roles {
            None => true,
            Some(roles) => roles.iter().any(|r| r == ROLE_PERMIT_ALL),
        }
    }

    /// Management actions that write. `RBAC_ROLE_OBSERVER` is read-only;
    /// any other role is taken to allow device management.
    pub fn can_write(&self) -> bool {
        match &self.roles {
            None => true,
            Some(roles) => roles.iter().any(|r| r != ROLE_OBSERVER),
        }
    }

    pub fn can_see_group(&self, group: Option<&str>) -> bool {
        match &self.device_groups {
            None => true,
            Some(allowed) => group.is_some_and(|g| allowed.iter().any(|a| a == g)),
        }
    }

    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.can_write() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

impl State {
    /// Issues a token for `user_id`; `ttl` `None` never expires.
    /// Returns `None` when the user does not exist.
    pub fn issue_token(
        &mut self,
        user_id: &str,
        ttl: Option<Duration>,
        pat_name: Option<&str>,
    ) -> Option<(String, String)> {
        let user = self.users.get(user_id)?;
        let issued = now();
        let expires = ttl.map(|ttl| issued + ttl);
        let jti = new_id();

        let mut claims = Map::new();
        claims.insert("jti".into(), json!(jti));
        claims.insert("sub".into(), json!(user.id));
        claims.insert("iss".into(), json!("Mender Users"));
        claims.insert("iat".into(), json!(issued.unix_timestamp()));
        if let Some(exp) = expires {
            claims.insert("exp".into(), json!(exp.unix_timestamp()));
        }
        if user.tenant_id != DEFAULT_TENANT {
            claims.insert("mender.tenant".into(), json!(user.tenant_id));
        }
        claims.insert("mender.user".into(), json!(true));

        let header = json!({"alg": "RS256", "typ": "JWT"});
        let mut signature = Vec::with_capacity(64);
        for _ in 0..4 {
            signature.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        }
        let raw = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string()),
            URL_SAFE_NO_PAD.encode(signature),
        );
        self.tokens.insert(
            raw.clone(),
            Token {
                jti: jti.clone(),
                user_id: user_id.to_string(),
                created_ts: issued,
                expires,
                revoked: false,
                pat: pat_name.map(|name| Pat {
                    name: name.to_string(),
                    last_used: None,
                }),
            },
        );
        Some((raw, jti))
    }

    /// The caller a raw token identifies, if the token is currently valid.
    pub fn authenticate(&mut self, raw: &str) -> Option<Caller> {
        let at = now();
        let token = self.tokens.get_mut(raw)?;
        if token.revoked || token.expires.is_some_and(|exp| exp <= at) {
            return None;
        }
        if let Some(pat) = &mut token.pat {
            pat.last_used = Some(at);
        }
        let user = self.users.get(&token.user_id)?;
        let tenant = self.tenants.get(&user.tenant_id)?;
        Some(Caller {
            user_id: user.id.clone(),
            tenant_id: user.tenant_id.clone(),
            roles: tenant.rbac.then(|| user.roles.clone()),
            device_groups: if tenant.rbac {
                user.device_groups.clone()
            } else {
                None
            },
        })
    }
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        shared
            .lock()
            .authenticate(token)
            .ok_or_else(ApiError::unauthorized)
    }
}
