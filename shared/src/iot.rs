//! AWS IoT Core's registry, in the terms the bridge thinks in: the device's
//! Thing, its certificates, and their attachments.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::{AttributePayload, CertificateStatus};

use crate::pace::Pace;
use crate::retry::Backoff;

/// The attribute that marks a Thing as created by the bridge.
pub const MARKER_ATTRIBUTE: &str = "managed_by";
pub const MARKER_VALUE: &str = "mender-iot-bridge";
/// The marker of a Thing the bridge managed until an admin unlinked it
/// (`DELETE devices/{device_id}`): foreign from then on, never adopted.
pub const UNLINKED_VALUE: &str = "mender-iot-bridge-unlinked";
/// Which organization's integration owns the Thing. A Thing is the bridge's
/// to change only when this names the integration at hand: another
/// organization sharing the AWS account and region owns its own Things.
pub const INTEGRATION_ATTRIBUTE: &str = "mender_integration";
/// The owning Mender organization, for people reading the registry.
pub const TENANT_ATTRIBUTE: &str = "mender_tenant";

/// The integration a registry client acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub tenant_id: String,
    pub integration_id: String,
    /// Whether Things with no marker at all (made by Mender's own AWS IoT
    /// integration, say) may be adopted, on proof, like unclaimed ones.
    pub adopt_unmarked: bool,
}

impl Owner {
    /// The attributes that mark a Thing as this integration's; `merge`
    /// keeps the Thing's other attributes when updating.
    pub fn marker(&self, merge: bool) -> AttributePayload {
        AttributePayload::builder()
            .attributes(MARKER_ATTRIBUTE, MARKER_VALUE)
            .attributes(TENANT_ATTRIBUTE, &self.tenant_id)
            .attributes(INTEGRATION_ATTRIBUTE, &self.integration_id)
            .merge(merge)
            .build()
    }

    /// Pure: what a Thing with these attributes is to this integration.
    pub fn judge(
        &self,
        attributes: Option<&std::collections::HashMap<String, String>>,
    ) -> ThingState {
        let get = |name: &str| attributes.and_then(|a| a.get(name)).map(String::as_str);
        match (get(MARKER_ATTRIBUTE), get(INTEGRATION_ATTRIBUTE)) {
            (Some(MARKER_VALUE), Some(id)) if id == self.integration_id => ThingState::Ours,
            (Some(MARKER_VALUE), None) => ThingState::Unclaimed,
            (None, None) if self.adopt_unmarked => ThingState::Unclaimed,
            _ => ThingState::Foreign,
        }
    }
}

/// Whether a Mender device id can name a Thing (AWS: `[a-zA-Z0-9:_-]+`, at
/// most 128 characters). Mender's ids (UUIDs, 24-hex) always can.
pub fn is_valid_thing_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

#[derive(Debug, thiserror::Error)]
#[error("AWS IoT {operation} failed: {code}: {message}")]
pub struct IotError {
    pub operation: &'static str,
    pub code: String,
    pub message: String,
}

impl IotError {
    /// Any AWS SDK error (the IoT data plane's too), reduced to its code.
    pub(crate) fn from_sdk<E: ProvideErrorMetadata, R>(
        operation: &'static str,
        error: SdkError<E, R>,
    ) -> Self {
        let (code, message) = match &error {
            SdkError::ServiceError(service) => (
                service.err().code().unwrap_or("Unknown").to_owned(),
                service.err().message().unwrap_or_default().to_owned(),
            ),
            SdkError::TimeoutError(_) => ("Timeout".to_owned(), "no answer in time".to_owned()),
            SdkError::DispatchFailure(_) => (
                "DispatchFailure".to_owned(),
                "could not reach AWS".to_owned(),
            ),
            other => ("ResponseError".to_owned(), format!("{other}")),
        };
        IotError {
            operation,
            code,
            message,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == "ResourceNotFoundException"
    }

    /// AWS refused the call for the account's rate: nothing was done.
    pub fn is_throttled(&self) -> bool {
        crate::throttling::is_throttling_error(&self.code)
    }

    /// Worth another try: AWS throttling, failing or out of reach.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code.as_str(),
            "Timeout"
                | "DispatchFailure"
                | "ThrottlingException"
                | "ServiceUnavailableException"
                | "InternalFailureException"
                | "InternalFailure"
                | "InternalServerException"
        )
    }

    /// AWS detaches asynchronously: deleting right after detaching can be
    /// refused for a while.
    fn is_still_attached(&self) -> bool {
        matches!(
            self.code.as_str(),
            "DeleteConflictException" | "CertificateStateException" | "InvalidRequestException"
        )
    }
}

/// What stands in AWS under a device's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThingState {
    Absent,
    /// Created by someone else, or by the bridge for another integration:
    /// left alone.
    Foreign,
    /// Made by the bridge before Things named their integration, or with no
    /// marker at all when the integration adopts existing Things: claimed
    /// only on proof (see `converge::plan::proves_ownership`).
    Unclaimed,
    Ours,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: String,
    pub arn: String,
    pub active: bool,
    pub pem: String,
}

/// A certificate as the account's listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCertificate {
    pub id: String,
    pub active: bool,
    /// Epoch seconds.
    pub created_at: u64,
}

/// How long "still attached" is retried when deleting.
const DETACH_WAIT: Backoff = Backoff {
    attempts: 8,
    base: Duration::from_millis(200),
    max: Duration::from_secs(3),
};

#[derive(Clone, Debug)]
pub struct IotRegistry {
    client: aws_sdk_iot::Client,
    owner: Owner,
    /// A run's writes keep this pace (see `crate::pace`); others none.
    pace: Option<Arc<Pace>>,
}

impl IotRegistry {
    pub fn new(client: aws_sdk_iot::Client, owner: Owner, pace: Option<Arc<Pace>>) -> Self {
        Self {
            client,
            owner,
            pace,
        }
    }

    /// Waits for a write's turn, when writes are paced.
    async fn write_turn(&self) {
        if let Some(pace) = &self.pace {
            pace.turn().await;
        }
    }

    pub async fn thing(&self, name: &str) -> Result<ThingState, IotError> {
        match self.client.describe_thing().thing_name(name).send().await {
            Ok(thing) => Ok(self.owner.judge(thing.attributes())),
            Err(error) => {
                let error = IotError::from_sdk("DescribeThing", error);
                if error.is_not_found() {
                    Ok(ThingState::Absent)
                } else {
                    Err(error)
                }
            }
        }
    }

    pub async fn create_thing(&self, name: &str) -> Result<(), IotError> {
        self.write_turn().await;
        self.client
            .create_thing()
            .thing_name(name)
            .attribute_payload(self.owner.marker(false))
            .send()
            .await
            .map_err(|e| IotError::from_sdk("CreateThing", e))?;
        Ok(())
    }

    /// Marks an unclaimed Thing as this integration's (its other
    /// attributes are kept).
    pub async fn claim_thing(&self, name: &str) -> Result<(), IotError> {
        self.write_turn().await;
        self.client
            .update_thing()
            .thing_name(name)
            .attribute_payload(self.owner.marker(true))
            .send()
            .await
            .map_err(|e| IotError::from_sdk("UpdateThing", e))?;
        Ok(())
    }

    /// Marks this integration's Thing as unlinked: the bridge no longer
    /// manages it (its other attributes, the integration's included, stay
    /// for people reading the registry).
    pub async fn unlink_thing(&self, name: &str) -> Result<(), IotError> {
        self.write_turn().await;
        self.client
            .update_thing()
            .thing_name(name)
            .attribute_payload(
                AttributePayload::builder()
                    .attributes(MARKER_ATTRIBUTE, UNLINKED_VALUE)
                    .merge(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| IotError::from_sdk("UpdateThing", e))?;
        Ok(())
    }

    pub async fn delete_thing(&self, name: &str) -> Result<(), IotError> {
        self.write_turn().await;
        let result = DETACH_WAIT
            .retry(IotError::is_still_attached, || async {
                self.client
                    .delete_thing()
                    .thing_name(name)
                    .send()
                    .await
                    .map_err(|e| IotError::from_sdk("DeleteThing", e))
            })
            .await;
        match result {
            Err(error) if !error.is_not_found() => Err(error),
            _ => Ok(()),
        }
    }

    /// One page of this integration's Things, and the token of the next page.
    pub async fn managed_things(
        &self,
        next_token: Option<String>,
        page_size: i32,
    ) -> Result<(Vec<String>, Option<String>), IotError> {
        let page = self
            .client
            .list_things()
            .attribute_name(INTEGRATION_ATTRIBUTE)
            .attribute_value(&self.owner.integration_id)
            .max_results(page_size)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| IotError::from_sdk("ListThings", e))?;
        let names = page
            .things()
            .iter()
            .filter_map(|t| t.thing_name().map(str::to_owned))
            .collect();
        Ok((
            names,
            page.next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        ))
    }

    /// Every certificate in the account and region: the only way to a
    /// certificate attached to nothing (see `crate::intent`).
    pub async fn certificates(&self) -> Result<Vec<ListedCertificate>, IotError> {
        let mut listed = Vec::new();
        let mut marker = None;
        loop {
            let (page, next) = self.certificates_page(marker).await?;
            listed.extend(page);
            marker = next;
            if marker.is_none() {
                return Ok(listed);
            }
        }
    }

    /// One page (250, the most) of the account's certificates, and the
    /// marker of the next page.
    pub async fn certificates_page(
        &self,
        marker: Option<String>,
    ) -> Result<(Vec<ListedCertificate>, Option<String>), IotError> {
        let page = self
            .client
            .list_certificates()
            .page_size(250)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| IotError::from_sdk("ListCertificates", e))?;
        let listed = page
            .certificates()
            .iter()
            .map(|c| ListedCertificate {
                id: c.certificate_id().unwrap_or_default().to_owned(),
                active: c.status() == Some(&CertificateStatus::Active),
                created_at: c
                    .creation_date()
                    .map(|d| d.secs().max(0) as u64)
                    .unwrap_or_default(),
            })
            .collect();
        let next = page
            .next_marker()
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        Ok((listed, next))
    }

    /// The Things a certificate is attached to (at most one, by the bridge).
    pub async fn principal_things(&self, certificate_arn: &str) -> Result<Vec<String>, IotError> {
        let output = self
            .client
            .list_principal_things()
            .principal(certificate_arn)
            .send()
            .await
            .map_err(|e| IotError::from_sdk("ListPrincipalThings", e))?;
        Ok(output.things().to_vec())
    }

    /// The ARNs of every principal attached to the Thing.
    pub async fn thing_principals(&self, name: &str) -> Result<Vec<String>, IotError> {
        let mut principals = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .client
                .list_thing_principals()
                .thing_name(name)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| IotError::from_sdk("ListThingPrincipals", e))?;
            principals.extend(page.principals().iter().cloned());
            next_token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next_token.is_none() {
                return Ok(principals);
            }
        }
    }

    pub async fn certificate(&self, id: &str) -> Result<Option<Certificate>, IotError> {
        match self
            .client
            .describe_certificate()
            .certificate_id(id)
            .send()
            .await
        {
            Ok(output) => Ok(output.certificate_description().map(|d| Certificate {
                id: d.certificate_id().unwrap_or(id).to_owned(),
                arn: d.certificate_arn().unwrap_or_default().to_owned(),
                active: d.status() == Some(&CertificateStatus::Active),
                pem: d.certificate_pem().unwrap_or_default().to_owned(),
            })),
            Err(error) => {
                let error = IotError::from_sdk("DescribeCertificate", error);
                if error.is_not_found() {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Issues a certificate for the CSR. It starts INACTIVE: it becomes
    /// ACTIVE only once it is attached and delivered.
    pub async fn create_certificate(&self, csr_pem: &str) -> Result<Certificate, IotError> {
        self.write_turn().await;
        let output = self
            .client
            .create_certificate_from_csr()
            .certificate_signing_request(csr_pem)
            .set_as_active(true)
            .send()
            .await
            .map_err(|e| IotError::from_sdk("CreateCertificateFromCsr", e))?;
        Ok(Certificate {
            id: output.certificate_id().unwrap_or_default().to_owned(),
            arn: output.certificate_arn().unwrap_or_default().to_owned(),
            pem: output.certificate_pem().unwrap_or_default().to_owned(),
            active: true,
        })
    }

    pub async fn set_active(&self, certificate_id: &str, active: bool) -> Result<(), IotError> {
        self.write_turn().await;
        let status = if active {
            CertificateStatus::Active
        } else {
            CertificateStatus::Inactive
        };
        self.client
            .update_certificate()
            .certificate_id(certificate_id)
            .new_status(status)
            .send()
            .await
            .map_err(|e| IotError::from_sdk("UpdateCertificate", e))?;
        Ok(())
    }

    pub async fn delete_certificate(&self, certificate_id: &str) -> Result<(), IotError> {
        self.write_turn().await;
        let result = DETACH_WAIT
            .retry(IotError::is_still_attached, || async {
                self.client
                    .delete_certificate()
                    .certificate_id(certificate_id)
                    .force_delete(true)
                    .send()
                    .await
                    .map_err(|e| IotError::from_sdk("DeleteCertificate", e))
            })
            .await;
        match result {
            Err(error) if !error.is_not_found() => Err(error),
            _ => Ok(()),
        }
    }

    /// The names of the policies attached to a certificate.
    pub async fn attached_policies(&self, certificate_arn: &str) -> Result<Vec<String>, IotError> {
        let mut policies = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_attached_policies()
                .target(certificate_arn)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| IotError::from_sdk("ListAttachedPolicies", e))?;
            policies.extend(
                page.policies()
                    .iter()
                    .filter_map(|p| p.policy_name().map(str::to_owned)),
            );
            marker = page
                .next_marker()
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
            if marker.is_none() {
                return Ok(policies);
            }
        }
    }

    pub async fn attach_policy(
        &self,
        policy_name: &str,
        certificate_arn: &str,
    ) -> Result<(), IotError> {
        self.write_turn().await;
        self.client
            .attach_policy()
            .policy_name(policy_name)
            .target(certificate_arn)
            .send()
            .await
            .map_err(|e| IotError::from_sdk("AttachPolicy", e))?;
        Ok(())
    }

    pub async fn detach_policy(
        &self,
        policy_name: &str,
        certificate_arn: &str,
    ) -> Result<(), IotError> {
        self.write_turn().await;
        match self
            .client
            .detach_policy()
            .policy_name(policy_name)
            .target(certificate_arn)
            .send()
            .await
        {
            Err(error) => ignore_not_found(IotError::from_sdk("DetachPolicy", error)),
            Ok(_) => Ok(()),
        }
    }

    pub async fn attach_principal(
        &self,
        thing_name: &str,
        certificate_arn: &str,
    ) -> Result<(), IotError> {
        self.write_turn().await;
        self.client
            .attach_thing_principal()
            .thing_name(thing_name)
            .principal(certificate_arn)
            .send()
            .await
            .map_err(|e| IotError::from_sdk("AttachThingPrincipal", e))?;
        Ok(())
    }

    pub async fn detach_principal(
        &self,
        thing_name: &str,
        certificate_arn: &str,
    ) -> Result<(), IotError> {
        self.write_turn().await;
        match self
            .client
            .detach_thing_principal()
            .thing_name(thing_name)
            .principal(certificate_arn)
            .send()
            .await
        {
            Err(error) => ignore_not_found(IotError::from_sdk("DetachThingPrincipal", error)),
            Ok(_) => Ok(()),
        }
    }

    /// The account's `iot:Data-ATS` host name, which devices connect to.
    pub async fn data_endpoint(&self) -> Result<String, IotError> {
        let output = self
            .client
            .describe_endpoint()
            .endpoint_type("iot:Data-ATS")
            .send()
            .await
            .map_err(|e| IotError::from_sdk("DescribeEndpoint", e))?;
        output
            .endpoint_address()
            .map(str::to_owned)
            .ok_or(IotError {
                operation: "DescribeEndpoint",
                code: "MissingEndpoint".to_owned(),
                message: "AWS returned no endpoint address".to_owned(),
            })
    }
}

fn ignore_not_found(error: IotError) -> Result<(), IotError> {
    if error.is_not_found() {
        Ok(())
    } else {
        Err(error)
    }
}

/// The certificate id inside a certificate ARN (`arn:…:cert/<id>`).
pub fn certificate_id(arn: &str) -> Option<&str> {
    arn.rsplit_once(":cert/")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_names_follow_aws_rules() {
        assert!(is_valid_thing_name("0a1b2c3d-0000-4000-8000-123456789abc"));
        assert!(is_valid_thing_name("5f0c7d1e2a3b4c5d6e7f8a9b"));
        for bad in ["", "a b", "../x", "a/b", "é", &"a".repeat(129)] {
            assert!(!is_valid_thing_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_thing_is_ours_only_when_it_names_our_integration() {
        let owner = Owner {
            tenant_id: "acme".into(),
            integration_id: "i-1".into(),
            adopt_unmarked: false,
        };
        let attributes = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        for (pairs, expected) in [
            (
                vec![
                    (MARKER_ATTRIBUTE, MARKER_VALUE),
                    (INTEGRATION_ATTRIBUTE, "i-1"),
                ],
                ThingState::Ours,
            ),
            (
                vec![
                    (MARKER_ATTRIBUTE, MARKER_VALUE),
                    (INTEGRATION_ATTRIBUTE, "i-2"),
                ],
                ThingState::Foreign,
            ),
            (
                vec![(MARKER_ATTRIBUTE, MARKER_VALUE)],
                ThingState::Unclaimed,
            ),
            (vec![(INTEGRATION_ATTRIBUTE, "i-1")], ThingState::Foreign),
            (
                vec![(MARKER_ATTRIBUTE, "someone-else")],
                ThingState::Foreign,
            ),
            (vec![], ThingState::Foreign),
        ] {
            assert_eq!(
                owner.judge(Some(&attributes(&pairs))),
                expected,
                "{pairs:?}"
            );
        }
        assert_eq!(owner.judge(None), ThingState::Foreign);

        // Adopting: a Thing with no marker at all becomes a candidate (claimed
        // only on proof); anything marked for someone else stays foreign.
        let adopting = Owner {
            adopt_unmarked: true,
            ..owner
        };
        for (pairs, expected) in [
            (vec![], ThingState::Unclaimed),
            (vec![("color", "red")], ThingState::Unclaimed),
            (vec![(INTEGRATION_ATTRIBUTE, "i-2")], ThingState::Foreign),
            (
                vec![(MARKER_ATTRIBUTE, "someone-else")],
                ThingState::Foreign,
            ),
            (
                vec![
                    (MARKER_ATTRIBUTE, MARKER_VALUE),
                    (INTEGRATION_ATTRIBUTE, "i-2"),
                ],
                ThingState::Foreign,
            ),
        ] {
            assert_eq!(
                adopting.judge(Some(&attributes(&pairs))),
                expected,
                "{pairs:?}"
            );
        }
        assert_eq!(adopting.judge(None), ThingState::Unclaimed);
    }

    #[test]
    fn certificate_ids_come_from_arns() {
        assert_eq!(
            certificate_id("arn:aws:iot:eu-west-1:123456789012:cert/abc123"),
            Some("abc123")
        );
        assert_eq!(
            certificate_id("arn:aws:iot:eu-west-1:123456789012:thing/x"),
            None
        );
        assert_eq!(
            certificate_id("arn:aws:iot:eu-west-1:123456789012:cert/"),
            None
        );
    }
}
