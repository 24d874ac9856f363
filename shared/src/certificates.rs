//! Device keys and certificate signing requests.
//!
//! The private key lives only in memory and in the Mender Configure payload
//! that delivers it; it is never stored by the bridge and never printed.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateSigningRequestParams, Issuer};

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
