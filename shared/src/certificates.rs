//! Device keys and certificate signing requests.
//!
//! The private key lives only in memory and in the Mender Configure payload
//! that delivers it; it is never stored by the bridge and never printed.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData,
};

/// A fresh ECDSA P-256 key and a CSR with subject `CN=<device id>`.
pub struct DeviceKey {
    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`), as devices built for Mender's
    /// native integration expect.
    private_key_pem: String,
    pub csr_pem: String,
    /// The DER SubjectPublicKeyInfo, which the certificate will hold.
    pub public_key_der: Vec<u8>,
}

impl DeviceKey {
    pub fn generate(device_id: &str) -> Result<DeviceKey, rcgen::Error> {
        let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, device_id);
        params.distinguished_name = subject;
        let csr_pem = params.serialize_request(&key_pair)?.pem()?;
        Ok(DeviceKey {
            private_key_pem: key_pair.serialize_pem(),
            csr_pem,
            public_key_der: key_pair.subject_public_key_info(),
        })
    }

    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("private_key_pem", &"<redacted>")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The DER of each well-formed `CERTIFICATE` block of a PEM text; other
/// blocks (keys, OpenSSL's `TRUSTED CERTIFICATE`s) and text between them
/// are passed over. By hand, because the crates' readers are slow at a
/// trust store, which a function reads as it starts: rustls' base64 is
/// constant-time, made for private keys, and the `pem` crate builds each
/// block a character at a time. Each took about 5 ms for Debian's bundle
/// of 145 certificates in a release build (docs/performance.md).
pub fn certificates_in_pem(text: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut lines = text.split(|byte| *byte == b'\n').map(<[u8]>::trim_ascii);
    std::iter::from_fn(move || {
        loop {
            lines.by_ref().find(|line| *line == BEGIN.as_bytes())?;
            let mut base64 = Vec::new();
            let mut ended = false;
            for line in lines.by_ref() {
                ended = line == END.as_bytes();
                if ended {
                    break;
                }
                base64.extend_from_slice(line);
            }
            if !ended {
                return None;
            }
            if let Ok(der) = STANDARD.decode(base64) {
                return Some(der);
            }
        }
    })
}

/// The DER of a PEM certificate; `None` if it is not one.
pub fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    certificates_in_pem(pem.as_bytes()).next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateSigningRequestParams, Issuer};

    #[test]
    fn a_pem_text_yields_the_der_of_each_certificate_block_only() {
        let block = |label: &str, base64: &str| {
            format!("-----BEGIN {label}-----\n{base64}\n-----END {label}-----\n")
        };
        let one = block("CERTIFICATE", "AQID\nBA==");
        let wrapped_differently = block("CERTIFICATE", "BQYH\r\nCA==\r");
        let trusted = block("TRUSTED CERTIFICATE", "CQo=");
        let key = block("PRIVATE KEY", "Cw==");
        let broken = block("CERTIFICATE", "!!");
        let unterminated = "-----BEGIN CERTIFICATE-----\nDA==\n";
        for (name, text, expected) in [
            ("one", one.clone(), vec![vec![1, 2, 3, 4]]),
            ("none", "no PEM here".to_owned(), vec![]),
            (
                "with text, a key and a trusted certificate between",
                format!("# bundle\n{one}{key}{trusted}{wrapped_differently}"),
                vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
            ),
            (
                "a broken block passed over",
                format!("{broken}{wrapped_differently}"),
                vec![vec![5, 6, 7, 8]],
            ),
            (
                "an unterminated block ends it",
                format!("{one}{unterminated}"),
                vec![vec![1, 2, 3, 4]],
            ),
        ] {
            let found: Vec<Vec<u8>> = certificates_in_pem(text.as_bytes()).collect();
            assert_eq!(found, expected, "{name}");
        }
        assert_eq!(certificate_der(&one), Some(vec![1, 2, 3, 4]));
        assert_eq!(certificate_der(&block("X", "AQID")), None);
    }

    #[test]
    fn key_is_pkcs8_p256_and_matches_the_csr() {
        let key = DeviceKey::generate("device-1").unwrap();
        assert!(
            key.private_key_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let parsed = KeyPair::from_pem(key.private_key_pem()).unwrap();
        assert!(parsed.is_compatible(&PKCS_ECDSA_P256_SHA256));

        // Sign the CSR with a throwaway CA, as AWS would: the certificate
        // carries the device key's public half and the device id.
        let csr = CertificateSigningRequestParams::from_pem(&key.csr_pem).unwrap();
        assert_eq!(csr.public_key.der_bytes(), parsed.der_bytes());
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_der(ca_cert.der(), &ca_key).unwrap();
        let certificate = csr.signed_by(&issuer).unwrap();
        let (_, parsed_cert) = x509_parser::parse_x509_certificate(certificate.der()).unwrap();
        assert_eq!(
            parsed_cert.public_key().raw,
            parsed.subject_public_key_info().as_slice()
        );
        let cn = parsed_cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, "device-1");
    }

    #[test]
    fn debug_output_hides_the_private_key() {
        let key = DeviceKey::generate("device-1").unwrap();
        assert!(!format!("{key:?}").contains("PRIVATE KEY"));
    }
}
