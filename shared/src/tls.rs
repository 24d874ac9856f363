//! TLS for the bridge's own calls, to Mender and to AWS: the system's
//! trust store (which `SSL_CERT_FILE` and `SSL_CERT_DIR` may point
//! elsewhere, as on any Linux host), read and parsed once per process.
//!
//! Left to themselves, reqwest reads the store again for every client it
//! builds and the AWS SDK once more for itself: some 290 files on a Debian
//! host, each time, in a function's cold start.

use std::sync::{Arc, LazyLock};

pub use aws_smithy_http_client::tls::TrustStore;
use aws_smithy_http_client::tls::{Provider, TlsContext, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use rustls::pki_types::CertificateDer;

static SYSTEM_ROOTS: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a certificate of the system trust store could not be read");
    }
    native.certs
});

static MENDER_TLS: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(SYSTEM_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc-rs supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
});

/// The TLS configuration of every Mender client (reqwest's preconfigured
/// rustls): a clone of one built at first use.
pub fn mender() -> rustls::ClientConfig {
    MENDER_TLS.clone()
}

/// The AWS SDK's HTTP client (its own, with the SDK's TLS defaults),
/// trusting the same roots. The SDK takes extra roots as PEM only.
pub fn aws_http_client() -> SharedHttpClient {
    aws_http_client_trusting(
        SYSTEM_ROOTS
            .iter()
            .fold(TrustStore::empty(), |trust, root| {
                trust
                    .with_pem_certificate(pem::encode(&pem::Pem::new("CERTIFICATE", root.to_vec())))
            }),
    )
}

/// The AWS SDK's HTTP client trusting `trust` alone (the tests' emulator
/// is spoken to over plain HTTP: they trust nothing, and parse nothing).
pub fn aws_http_client_trusting(trust: TrustStore) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store of certificates is a valid TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}
