//! Test helpers: a started stand-in with a tenant and users, a small HTTP
//! client, and a webhook receiver.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mender_standin::MenderStandin;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const TENANT: &str = "acme";
pub const HOUR: Duration = Duration::from_secs(3600);

pub struct Env {
    pub standin: MenderStandin,
    pub http: reqwest::Client,
    /// Token of an `RBAC_ROLE_PERMIT_ALL` user of [`TENANT`].
    pub admin: String,
    /// Token of an `RBAC_ROLE_OBSERVER` user of [`TENANT`].
    pub observer: String,
}

/// A stand-in with tenant [`TENANT`] (RBAC), an admin and an observer.
pub async fn env() -> Env {
    let standin = MenderStandin::start().await.expect("start stand-in");
    standin.add_tenant(TENANT, true);
    let admin = standin.add_user(
        TENANT,
        "admin@acme.example",
        &["RBAC_ROLE_PERMIT_ALL"],
        None,
    );
    let observer = standin.add_user(
        TENANT,
        "observer@acme.example",
        &["RBAC_ROLE_OBSERVER"],
        None,
    );
    Env {
        admin: standin.issue_token(&admin, HOUR),
        observer: standin.issue_token(&observer, HOUR),
        standin,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn headers_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    /// Asserts a Mender-style error body and returns its message.
    pub fn error(&self) -> String {
        let body = self.json();
        assert!(
            body["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "error without request_id: {body}"
        );
        body["error"].as_str().expect("error message").to_string()
    }
}

impl Env {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.standin.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        Resp {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.expect("body"),
        }
    }

    pub async fn raw(&self, method: Method, path: &str, token: &str, body: &str) -> Resp {
        let response = self
            .http
            .request(method, format!("{}{path}", self.standin.url()))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        Resp {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.expect("body"),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// The id of the device's first authentication set.
    pub async fn auth_set_id(&self, device_id: &str) -> String {
        let device = self.get(&device_path(device_id), &self.admin).await.json();
        device["auth_sets"][0]["id"]
            .as_str()
            .expect("auth set id")
            .to_string()
    }

    /// Issues a token for a new user of [`TENANT`].
    pub fn user_token(&self, roles: &[&str], groups: Option<&[&str]>) -> String {
        let user = self.standin.add_user(
            TENANT,
            &format!("{}@acme.example", uuid::Uuid::new_v4()),
            roles,
            groups,
        );
        self.standin.issue_token(&user, HOUR)
    }
}

pub fn device_path(id: &str) -> String {
    format!("/api/management/v2/devauth/devices/{id}")
}

pub fn status_path(id: &str, aid: &str) -> String {
    format!("/api/management/v2/devauth/devices/{id}/auth/{aid}/status")
}

pub fn config_path(id: &str) -> String {
    format!("/api/management/v1/deviceconfig/configurations/device/{id}")
}

pub const DEVICES: &str = "/api/management/v2/devauth/devices";
pub const INTEGRATIONS: &str = "/api/management/v1/iot-manager/integrations";
pub const ME: &str = "/api/management/v1/useradm/users/me";
pub const TOKENS: &str = "/api/management/v1/useradm/settings/tokens";

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON webhook body")
    }
}

/// A webhook receiver answering every request with a settable status (a
/// 3xx answer redirects to `/redirected`).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (r, s, d) = (received.clone(), status.clone(), delay_ms.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (r, s, d) = (r.clone(), s.clone(), d.clone());
            async move {
                let delay = d.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                record(req, r, s).await
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            received,
            status,
            delay_ms,
        }
    }

    /// Answers every request only after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

async fn record(
    req: Request,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    received.lock().expect("lock").push(Received {
        path: parts.uri.path().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK);
    if code.is_redirection() {
        (code, [("location", "/redirected")]).into_response()
    } else {
        code.into_response()
    }
}

/// The HMAC a receiver would compute, keyed with the hex-decoded secret.
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
