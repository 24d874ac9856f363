//! Trying an organization's credentials before they are stored: the AWS
//! ones the way the bridge will use them, and a Mender token given for the
//! bridge's own calls.

use aws_config::SdkConfig;
use aws_sdk_iot::error::ProvideErrorMetadata;

use super::IntegrationApi;
use crate::auth::{Caller, mender_error, token_tenant};
use crate::http::{ApiError, FieldProblem};
use crate::mender::{MenderClient, MenderError};
use crate::settings::{AwsCredentials, AwsSettings, Secret};

/// A token given for the bridge's own calls must be one Mender accepts, of
/// the same organization.
pub async fn check_mender_token<B>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    token: &Secret,
) -> Result<(), ApiError> {
    let invalid =
        |problem: &str| ApiError::InvalidFields(vec![FieldProblem::new("mender_token", problem)]);
    let client = MenderClient::new(api.http.clone(), &api.mender_url, token.clone());
    match client.me().await {
        Ok(Some(_)) if token_tenant(token.expose()) == caller.tenant_id => Ok(()),
        Ok(Some(_)) => Err(invalid("belongs to another organization")),
        Ok(None) | Err(MenderError::Unauthorized) => Err(invalid("Mender does not accept it")),
        Err(error) => Err(mender_error(error)),
    }
}

/// The bridge delivers credentials through Mender Configure: an
/// organization whose Mender refuses the caller (an admin) its device
/// configuration API lacks Configure, and every device event would fail.
/// Asked about a device id no one has: Mender answers 404 when Configure is
/// there.
pub async fn check_configure<B>(api: &IntegrationApi<B>, caller: &Caller) -> Result<(), ApiError> {
    let nobody = uuid::Uuid::new_v4().to_string();
    match caller.mender(&api.auth).configuration(&nobody).await {
        Ok(_) => Ok(()),
        Err(MenderError::Forbidden) => Err(ApiError::MenderUnsuitable(
            "this organization's Mender refuses its device configuration API (Mender Configure): \
             the bridge delivers each device's AWS IoT credentials through Configure, so the \
             organization needs the Configure add-on before it can set up"
                .into(),
        )),
        Err(error) => Err(mender_error(error)),
    }
}

/// Tries the credentials the way the bridge will use them: assume the role
/// (if any), find the data endpoint, find the device policy.
pub async fn check_aws(
    base: &SdkConfig,
    tenant_id: &str,
    aws: &AwsSettings,
) -> Result<(), ApiError> {
    let config = crate::aws::tenant_config(base, tenant_id, aws).await;
    if let AwsCredentials::AssumeRole { role_arn, .. } = &aws.credentials {
        use aws_credential_types::provider::ProvideCredentials;
        let provider = config
            .credentials_provider()
            .expect("tenant configs always have credentials");
        if let Err(error) = provider.provide_credentials().await {
            tracing::warn!(%error, "assume role failed");
            return Err(ApiError::AwsRejected {
                aws_error_code: "AssumeRoleFailed".into(),
                explanation: format!(
                    "the bridge cannot assume {role_arn}: its trust policy must be the one \
                     GET /api/management/v1/iot-manager/external-id gives"
                ),
            });
        }
    }
    let iot = aws_sdk_iot::Client::new(&config);
    let policy = &aws.device_policy_name;
    if let Err(error) = iot
        .describe_endpoint()
        .endpoint_type("iot:Data-ATS")
        .send()
        .await
    {
        return Err(rejection(
            error.code(),
            error.message(),
            "iot:DescribeEndpoint",
            policy,
        ));
    }
    if let Err(error) = iot.get_policy().policy_name(policy).send().await {
        return Err(rejection(
            error.code(),
            error.message(),
            "iot:GetPolicy",
            policy,
        ));
    }
    Ok(())
}

/// What an AWS refusal means for the admin, in words.
fn rejection(code: Option<&str>, message: Option<&str>, action: &str, policy: &str) -> ApiError {
    let Some(code) = code else {
        return ApiError::ServiceUnavailable("AWS IoT did not answer; try again".into());
    };
    let explanation = match code {
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch" => {
            "the access key id or secret access key is wrong, or the key is inactive".to_owned()
        }
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedException" => {
            format!(
                "the credentials are not allowed {action}; see the IAM policy in docs/deploy.md"
            )
        }
        "ResourceNotFoundException" => {
            format!("the device policy `{policy}` does not exist in this region")
        }
        "ThrottlingException" | "InternalFailureException" | "ServiceUnavailableException" => {
            return ApiError::ServiceUnavailable("AWS IoT is unavailable; try again".into());
        }
        other => format!(
            "{action} failed with {other}: {}",
            message.unwrap_or_default()
        ),
    };
    ApiError::AwsRejected {
        aws_error_code: code.to_owned(),
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_refusals_read_as_what_to_fix() {
        let explained = |code: &str| match rejection(Some(code), Some("m"), "iot:GetPolicy", "p") {
            ApiError::AwsRejected {
                aws_error_code,
                explanation,
            } => (aws_error_code, explanation),
            other => panic!("{code}: {other:?}"),
        };
        assert!(
            explained("InvalidClientTokenId")
                .1
                .contains("secret access key is wrong")
        );
        assert!(
            explained("AccessDeniedException")
                .1
                .contains("iot:GetPolicy")
        );
        assert!(
            explained("ResourceNotFoundException")
                .1
                .contains("`p` does not exist")
        );
        assert_eq!(explained("Odd").0, "Odd");
        for transient in [
            None,
            Some("ThrottlingException"),
            Some("InternalFailureException"),
        ] {
            assert!(matches!(
                rejection(transient, None, "a", "p"),
                ApiError::ServiceUnavailable(_)
            ));
        }
    }
}
