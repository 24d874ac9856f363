//! The bridge's own calls over TLS, to Mender (hosted Mender, most
//! on-premise servers) and to AWS: both trust the system trust store read
//! once per process (here pointed at a test CA with `SSL_CERT_FILE`, which
//! the store honours as on any Linux host), and nothing else.
//!
//! Its own test binary: the trust store is read once per process, so the
//! variable must be set before any other test could make a client.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use bridge::mender::{MenderClient, MenderError, http_client};
use bridge::settings::Secret;
use integration_tests::moto::{emulator_command, venv_python};

/// An HTTPS server on loopback with the certificate `iot_emulator.py
/// server-cert` made in `ca_dir`: every GET (Mender's device listing) is
/// answered with an empty list, every POST (Secrets Manager's ListSecrets)
/// with an empty object.
const SERVER: &str = r#"
import http.server, ssl, sys
class Empty(http.server.BaseHTTPRequestHandler):
    def reply(self, body):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(b"[]")
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.reply(b"{}")
    def log_message(self, *_):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Empty)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(sys.argv[1] + "/server.pem", sys.argv[1] + "/server.key")
server.socket = tls.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct HttpsServer {
    url: String,
    child: Child,
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA of its own in `ca_dir` and a server certificate for `localhost`
/// signed by it, served over HTTPS.
fn https_server(ca_dir: &Path) -> HttpsServer {
    emulator_command(ca_dir, &["server-cert", "localhost", "127.0.0.1"]);
    let mut child = Command::new(venv_python())
        .args(["-c", SERVER])
        .arg(ca_dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python serves HTTPS");
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    HttpsServer {
        url: format!("https://localhost:{}", port.trim()),
        child,
    }
}

/// Secrets Manager's ListSecrets at `url`, through the SDK client the
/// functions are built with, without retries.
async fn list_secrets(url: &str) -> Result<(), String> {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(bridge::aws_http::client())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
        .list_secrets()
        .send()
        .await
        .map(|_| ())
        .map_err(|error| format!("{}", DisplayErrorContext(error)))
}

#[tokio::test]
async fn mender_and_aws_are_reached_over_tls_trusting_the_system_store_only() {
    let root = std::env::temp_dir().join(format!("bridge-tls-{}", uuid::Uuid::new_v4()));
    let (trusted_ca, other_ca) = (root.join("trusted"), root.join("other"));
    let trusted = https_server(&trusted_ca);
    let untrusted = https_server(&other_ca);
    // The system store is this CA alone: no directory of certificates.
    let no_directory = root.join("empty");
    std::fs::create_dir_all(&no_directory).unwrap();
    // SAFETY: the only test in this binary, before any client is made.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", trusted_ca.join("ca.pem"));
        std::env::set_var("SSL_CERT_DIR", &no_directory);
    }
    let token = Secret::new("a-token-that-must-not-show".to_owned());
    let mender = |url: String| {
        let client = MenderClient::new(http_client(Duration::from_secs(5)), &url, token.clone());
        async move { client.list_devices(1, 20).await }
    };

    let devices = mender(trusted.url.clone())
        .await
        .expect("Mender: a server whose CA is in the system trust store is trusted");
    assert!(devices.is_empty());
    match mender(untrusted.url.clone()).await {
        Err(error @ MenderError::Unreachable { .. }) => {
            assert!(!error.to_string().contains("a-token-that-must-not-show"));
        }
        other => {
            panic!("Mender: a server whose CA is not in the trust store is refused: {other:?}")
        }
    }

    list_secrets(&trusted.url)
        .await
        .expect("AWS: a server whose CA is in the system trust store is trusted");
    let refused = list_secrets(&untrusted.url)
        .await
        .expect_err("AWS: a server whose CA is not in the trust store is refused");
    assert!(refused.contains("dispatch failure"), "{refused}");
    let _ = std::fs::remove_dir_all(&root);
}
