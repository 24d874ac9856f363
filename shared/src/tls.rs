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
//! 10 to 20 ms of every start; now it is one read of the bundle, parsed
//! once into the one configuration both reqwest and the SDK's transport
//! ([`crate::aws_http`]) use.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::pki_types::CertificateDer;

use crate::certificates::certificates_in_pem;

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

static CLIENT_TLS: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(read_roots(&trust_store_files()));
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc-rs supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
});

/// The TLS configuration of every call the bridge makes, to Mender
/// (reqwest's) and to AWS ([`crate::aws_http`]): a clone of one built at
/// first use, trusting the system's store and nothing else, and offering
/// the post-quantum hybrid key exchange first (AWS's endpoints accept it).
pub fn client_config() -> rustls::ClientConfig {
    CLIENT_TLS.clone()
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
    fn the_post_quantum_hybrid_key_exchange_is_offered_first() {
        let groups: Vec<_> = client_config()
            .crypto_provider()
            .kx_groups
            .iter()
            .map(|group| group.name())
            .collect();
        assert_eq!(
            groups.first(),
            Some(&rustls::NamedGroup::X25519MLKEM768),
            "{groups:?}"
        );
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
