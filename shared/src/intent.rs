//! Certificates the bridge is about to create or detach, recorded first.
//!
//! The bridge finds a device's certificates through its Thing. An invocation
//! that stops (its timeout, memory, a recycled sandbox) after
//! `CreateCertificateFromCsr` answered and before the certificate was
//! attached, or after `DetachThingPrincipal` and before `DeleteCertificate`,
//! leaves one attached to nothing, which no undo removes and no convergence
//! would ever find. So before either call the bridge writes an intent to its
//! table naming the certificate: by the key it will carry, or by its id.
//! Once the certificate is attached, or deleted, the intent goes. An intent
//! older than any invocation can live belongs to one that stopped: the
//! organization's next reconcile run finds the certificate it names and
//! removes it unless it is attached to a Thing ([`crate::converge::sweep`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::clock::epoch_seconds;
use crate::table::{Key, PK, TableError, number, number_of, string, text_of};

/// How far AWS's clock and the function's may differ.
const CLOCK_SKEW_SECONDS: u64 = 60;

/// One certificate of a device about to be made, or detached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub tenant_id: String,
    pub device_id: String,
    pub certificate: Named,
    /// Epoch seconds, just before the call.
    pub recorded_at: u64,
}

/// How an intent names its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// One about to be made: the DER SubjectPublicKeyInfo of its key.
    ByKey(Vec<u8>),
    /// One about to be detached from its Thing, then deleted: its id.
    ById(String),
}

impl Intent {
    /// Before `CreateCertificateFromCsr` for the device's new key.
    pub fn create(tenant_id: &str, device_id: &str, public_key: &[u8]) -> Intent {
        Intent::new(tenant_id, device_id, Named::ByKey(public_key.to_vec()))
    }

    /// Before the certificate is detached from the device's Thing.
    pub fn detach(tenant_id: &str, device_id: &str, certificate_id: &str) -> Intent {
        Intent::new(tenant_id, device_id, Named::ById(certificate_id.to_owned()))
    }

    fn new(tenant_id: &str, device_id: &str, certificate: Named) -> Intent {
        Intent {
            tenant_id: tenant_id.to_owned(),
            device_id: device_id.to_owned(),
            certificate,
            recorded_at: epoch_seconds(),
        }
    }

    /// What names the intent: the key's SHA-256, or the certificate's id
    /// (itself a SHA-256).
    pub fn key_id(&self) -> String {
        match &self.certificate {
            Named::ByKey(public_key) => hex::encode(Sha256::digest(public_key)),
            Named::ById(id) => id.clone(),
        }
    }

    fn key(&self) -> String {
        Key::CertificateIntent {
            tenant_id: &self.tenant_id,
            device_id: &self.device_id,
            key_id: &self.key_id(),
        }
        .text()
    }

    /// Whether `certificate_der` was issued for this intent's key: a
    /// certificate holds its SubjectPublicKeyInfo verbatim.
    pub fn issued(&self, certificate_der: &[u8]) -> bool {
        let Named::ByKey(public_key) = &self.certificate else {
            return false;
        };
        !public_key.is_empty()
            && certificate_der
                .windows(public_key.len())
                .any(|window| window == public_key.as_slice())
    }

    /// Whether a certificate created at `created_at` (epoch seconds) may be
    /// this intent's: from just before it was recorded (clocks differ a
    /// little) to when its invocation must have ended.
    pub fn may_have_made(&self, created_at: u64, invocation_limit_seconds: u64) -> bool {
        created_at + CLOCK_SKEW_SECONDS >= self.recorded_at
            && created_at <= self.recorded_at + invocation_limit_seconds + CLOCK_SKEW_SECONDS
    }
}

/// The intents in the bridge's table.
#[derive(Clone, Debug)]
pub struct CertificateIntents {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl CertificateIntents {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Written before the certificate is asked for; durable once this returns.
    pub async fn record(&self, intent: &Intent) -> Result<(), TableError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(intent)))
            .send()
            .await?;
        Ok(())
    }

    /// The certificate is attached to its Thing, or was never made, or is
    /// deleted: nothing is left for the intent to find.
    pub async fn forget(&self, intent: &Intent) -> Result<(), TableError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, string(intent.key()))
            .send()
            .await?;
        Ok(())
    }

    /// The organization's intents recorded before `before` (epoch seconds):
    /// those whose invocations have ended. The table holds few items (leases
    /// go when released, runs expire), so a scan is cheap; runs scan it once.
    pub async fn stale(&self, tenant_id: &str, before: u64) -> Result<Vec<Intent>, TableError> {
        let prefix = Key::certificate_intent_prefix(tenant_id);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix) AND recorded_at < :before")
                .expression_attribute_values(":prefix", string(&prefix))
                .expression_attribute_values(":before", number(before))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await?;
            found.extend(page.items().iter().filter_map(parse));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}

fn item(intent: &Intent) -> HashMap<String, AttributeValue> {
    let named = match &intent.certificate {
        Named::ByKey(public_key) => ("public_key", STANDARD.encode(public_key)),
        Named::ById(id) => ("certificate_id", id.clone()),
    };
    [
        (PK, intent.key()),
        ("tenant_id", intent.tenant_id.clone()),
        ("device_id", intent.device_id.clone()),
        named,
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), string(value)))
    .chain([("recorded_at".to_owned(), number(intent.recorded_at))])
    .collect()
}

fn parse(item: &HashMap<String, AttributeValue>) -> Option<Intent> {
    let certificate = match item.get("certificate_id").and_then(|v| v.as_s().ok()) {
        Some(id) => Named::ById(id.clone()),
        None => Named::ByKey(STANDARD.decode(text_of(item, "public_key")).ok()?),
    };
    Some(Intent {
        tenant_id: text_of(item, "tenant_id"),
        device_id: text_of(item, "device_id"),
        certificate,
        recorded_at: number_of(item, "recorded_at"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(recorded_at: u64) -> Intent {
        Intent {
            recorded_at,
            ..Intent::create("acme", "d1", &[0x30, 0x59, 1, 2, 3])
        }
    }

    #[test]
    fn a_certificate_is_the_intents_when_it_holds_its_key() {
        let intent = intent(1000);
        for (der, expected) in [
            (vec![9, 0x30, 0x59, 1, 2, 3, 9], true),
            (vec![0x30, 0x59, 1, 2, 3], true),
            (vec![0x30, 0x59, 1, 2, 4], false),
            (vec![0x30, 0x59, 1, 2], false),
            (vec![], false),
        ] {
            assert_eq!(intent.issued(&der), expected, "{der:?}");
        }
        let empty = Intent::create("acme", "d1", &[]);
        assert!(!empty.issued(&[1, 2, 3]), "an empty key matches nothing");
        let by_id = Intent::detach("acme", "d1", "0305");
        assert!(!by_id.issued(&[3, 5]), "an id is no key");
    }

    #[test]
    fn only_certificates_made_while_the_invocation_could_live_are_candidates() {
        let intent = intent(10_000);
        for (created_at, expected) in [
            (10_000, true),
            (9_941, true),
            (9_939, false),
            (10_000 + 900 + 60, true),
            (10_000 + 900 + 61, false),
        ] {
            assert_eq!(
                intent.may_have_made(created_at, 900),
                expected,
                "created at {created_at}"
            );
        }
    }

    #[test]
    fn intents_are_named_by_organization_device_and_key() {
        let intent = intent(1);
        assert_eq!(
            intent.key(),
            format!("certificate-intent#acme#d1#{}", intent.key_id())
        );
        assert!(
            intent
                .key()
                .starts_with(&Key::certificate_intent_prefix("acme"))
        );
        assert_eq!(intent.key_id().len(), 64);
        let by_id = Intent::detach("acme", "d1", "c0ffee");
        assert_eq!(by_id.key(), "certificate-intent#acme#d1#c0ffee");
    }

    #[test]
    fn an_intent_reads_back_as_it_was_written() {
        for intent in [
            Intent::create("acme", "d1", &[0x30, 0x59, 7]),
            Intent::detach("acme", "d1", "c0ffee"),
        ] {
            assert_eq!(parse(&item(&intent)), Some(intent));
        }
    }
}
