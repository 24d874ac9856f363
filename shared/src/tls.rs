//! TLS for the bridge's own calls, to Mender and to AWS: the system's
//! trust store (which `SSL_CERT_FILE` and `SSL_CERT_DIR` may point
//! elsewhere, as on any Linux host), read and parsed once per process.
//!
//! This is most of a function's cold start (docs/performance.md). Left to
//! themselves, reqwest reads the store for every client it builds, the
//! AWS SDK once more, and again for each of its service clients (to check
//! a connector it then drops); each read decodes the PEM with rustls'
//! constant-time base64, made for private keys, and takes in the host's
//! certificate directory beside its bundle. On this machine that was
//! 10 to 20 ms of every start; now it is one read of the bundle.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

pub use aws_smithy_http_client::tls::TrustStore;
use aws_smithy_http_client::tls::{Provider, TlsContext, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::CertificateDer;

use crate::certificates::{BEGIN, END, certificates_in_pem};

static SYSTEM_ROOTS: LazyLock<Vec<CertificateDer<'static>>> =
    LazyLock::new(|| read_roots(&trust_store_files()));

/// The files of a trust store: a PEM bundle and directories of PEM files.
#[derive(Debug, Default, PartialEq)]
struct StoreFiles {
    bundle: Option<PathBuf>,
    dirs: Vec<PathBuf>,
}

/// Pure: where the roots are read, given what `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` name (`set`) and where OpenSSL would look on this host
/// (`probe`, asked only when neither is set). A host's own directories hold
/// its bundle's certificates again (update-ca-certificates and
/// update-ca-trust write both), so they are read only when it has no
/// bundle: on Debian that is 290 files at every start, and no certificate
/// more.
fn store_files(set: StoreFiles, probe: impl FnOnce() -> StoreFiles) -> StoreFiles {
    if set != StoreFiles::default() {
        return set;
    }
    match probe() {
        StoreFiles {
            bundle: Some(bundle),
            ..
        } => StoreFiles {
            bundle: Some(bundle),
            dirs: Vec::new(),
        },
        no_bundle => no_bundle,
    }
}

/// The system's trust store: its bundle, and the files (not the
/// subdirectories) of its directories.
fn trust_store_files() -> Vec<PathBuf> {
    let (bundle, dirs) = crate::config::trust_store_variables();
    let set = StoreFiles {
        bundle: bundle.map(PathBuf::from),
        dirs: dirs
            .map(|dirs| std::env::split_paths(&dirs).collect())
            .unwrap_or_default(),
    };
    let StoreFiles { bundle, dirs } = store_files(set, || {
        let probed = openssl_probe::probe();
        StoreFiles {
            bundle: probed.cert_file,
            dirs: probed.cert_dir,
        }
    });
    let in_dirs = dirs
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten().map(|entry| entry.path()));
    bundle.into_iter().chain(in_dirs).collect()
}

/// The certificates of these PEM files, each file read once however many
/// names it has (a directory names each certificate twice, and often
/// holds the bundle too). A file that cannot be read is skipped, with a
/// warning; a malformed certificate in a file is passed over.
fn read_roots(files: &[PathBuf]) -> Vec<CertificateDer<'static>> {
    let skipped = |path: &Path, error: &dyn std::fmt::Display| {
        tracing::warn!(path = %path.display(), %error, "a file of the system trust store could not be read");
    };
    let mut read = HashSet::new();
    let mut roots = Vec::new();
    for path in files {
        let file = match std::fs::metadata(path) {
            Ok(file) => file,
            Err(error) => {
                skipped(path, &error);
                continue;
            }
        };
        // A directory, or a file already read under another name.
        if !file.is_file() || !read.insert((file.dev(), file.ino())) {
            continue;
        }
        match certificates_in(path) {
            Ok(certificates) => roots.extend(certificates),
            Err(error) => skipped(path, &error),
        }
    }
    roots.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    roots.dedup();
    roots
}

fn certificates_in(path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let text = std::fs::read(path)?;
    Ok(certificates_in_pem(&text)
        .map(CertificateDer::from)
        .collect())
}

/// One PEM text of these certificates (unwrapped lines, which PEM readers accept).
fn pem_of(certificates: &[CertificateDer]) -> String {
    let mut pem =
        String::with_capacity(certificates.iter().map(|der| der.len() * 4 / 3 + 64).sum());
    for der in certificates {
        pem.push_str(BEGIN);
        pem.push('\n');
        BASE64.encode_string(der, &mut pem);
        pem.push('\n');
        pem.push_str(END);
        pem.push('\n');
    }
    pem
}

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
/// trusting the same roots. The SDK takes extra roots as PEM only: one
/// text of them all.
pub fn aws_http_client() -> SharedHttpClient {
    aws_http_client_trusting(TrustStore::empty().with_pem_certificate(pem_of(&SYSTEM_ROOTS)))
}

/// The AWS SDK's HTTP client trusting `trust` alone (the tests' emulator
/// is spoken to over plain HTTP: they trust nothing, and parse nothing).
pub fn aws_http_client_trusting(trust: TrustStore) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store of certificates is a valid TLS context");
    SharedHttpClient::new(ConnectsOnFirstCall(
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https(),
    ))
}

/// The SDK's client, without its check at each service client's creation.
/// That check builds a connector and drops it, so every client a function
/// creates at init (four to seven) decoded and parsed the whole trust
/// store once more, only to find it valid; the connector a call uses is
/// built at the first call anyway, once for all the clients that share
/// these settings.
#[derive(Debug)]
struct ConnectsOnFirstCall(SharedHttpClient);

impl HttpClient for ConnectsOnFirstCall {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> rcgen::Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
    }

    #[test]
    fn the_roots_come_from_what_is_set_else_from_the_hosts_bundle() {
        fn files(bundle: Option<&str>, dirs: &[&str]) -> StoreFiles {
            StoreFiles {
                bundle: bundle.map(PathBuf::from),
                dirs: dirs.iter().map(PathBuf::from).collect(),
            }
        }
        fn host() -> StoreFiles {
            files(Some("/etc/pki/ca-bundle.crt"), &["/etc/ssl/certs"])
        }
        fn host_without_bundle() -> StoreFiles {
            files(None, &["/etc/ssl/certs"])
        }
        for (name, set, probe, expected) in [
            (
                "a bundle set",
                files(Some("/opt/roots.pem"), &[]),
                host as fn() -> StoreFiles,
                files(Some("/opt/roots.pem"), &[]),
            ),
            (
                "directories set",
                files(None, &["/opt/a", "/opt/b"]),
                host,
                files(None, &["/opt/a", "/opt/b"]),
            ),
            (
                "nothing set: the host's bundle alone",
                files(None, &[]),
                host,
                files(Some("/etc/pki/ca-bundle.crt"), &[]),
            ),
            (
                "nothing set, a host without a bundle: its directories",
                files(None, &[]),
                host_without_bundle,
                files(None, &["/etc/ssl/certs"]),
            ),
        ] {
            assert_eq!(store_files(set, probe), expected, "{name}");
        }
    }

    #[test]
    fn the_roots_are_every_certificate_of_the_store_once() {
        let store = std::env::temp_dir().join(format!("trust-store-{}", uuid::Uuid::new_v4()));
        let dir = store.join("certs");
        std::fs::create_dir_all(dir.join("subdirectory")).unwrap();
        let [a, b, c] = ["a.example", "b.example", "c.example"].map(certificate);
        let bundle = store.join("bundle.crt");
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        std::fs::write(&bundle, format!("{}{}{key}", a.pem(), b.pem())).unwrap();
        // The directory: a certificate under two names, one the bundle also
        // holds, the bundle itself, and a malformed certificate.
        std::fs::write(dir.join("c.pem"), c.pem()).unwrap();
        std::os::unix::fs::symlink(dir.join("c.pem"), dir.join("5d30f3c5.0")).unwrap();
        std::fs::write(dir.join("b.pem"), b.pem()).unwrap();
        std::os::unix::fs::symlink(&bundle, dir.join("bundle.crt")).unwrap();
        std::fs::write(
            dir.join("broken.pem"),
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let mut files = vec![bundle, store.join("missing.crt")];
        files.extend(std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()));

        let mut expected: Vec<CertificateDer> = [a, b, c].iter().map(|c| c.der().clone()).collect();
        expected.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        assert_eq!(read_roots(&files), expected);
        std::fs::remove_dir_all(store).unwrap();
    }
}
