//! What lets the bridge into an organization's AWS account through a role,
//! and into no one else's (the confused deputy): the external id the
//! bridge gives each organization, the role session name that carries the
//! organization, and which organization's integration uses each role.

use serde_json::{Value, json};

use crate::settings::SettingsError;
use crate::table::{Key, PK, conditional, read_item, string, text_of};

/// The organization's side of the trust, kept in the bridge's table.
#[derive(Clone, Debug)]
pub struct Trust {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// ARN pattern of the bridge's function roles: who may assume.
    bridge_roles: String,
}

const EXTERNAL_ID: &str = "external_id";
const TENANT: &str = "tenant_id";

impl Trust {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        bridge_roles: impl Into<String>,
    ) -> Self {
        Trust {
            client,
            table: table.into(),
            bridge_roles: bridge_roles.into(),
        }
    }

    /// The organization's external id: made on first ask, the same ever
    /// after (a role's trust policy is written with it once).
    pub async fn external_id(&self, tenant_id: &str) -> Result<String, SettingsError> {
        let key = Key::ExternalId { tenant_id };
        if let Some(item) = read_item(&self.client, &self.table, key).await? {
            return Ok(text_of(&item, EXTERNAL_ID));
        }
        let made = format!("mender-iot-bridge-{}", uuid::Uuid::new_v4().simple());
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, key.value())
            .item(EXTERNAL_ID, string(&made))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if conditional(written)? {
            return Ok(made);
        }
        // Another request made it first: theirs stands.
        let item = read_item(&self.client, &self.table, key).await?;
        Ok(item
            .map(|item| text_of(&item, EXTERNAL_ID))
            .unwrap_or_default())
    }

    /// Claims `role_arn` for the organization's integration; `false` when
    /// another organization's integration uses the role.
    pub async fn claim_role(&self, role_arn: &str, tenant_id: &str) -> Result<bool, SettingsError> {
        let role = role_key(role_arn);
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, Key::Role { role: &role }.value())
            .item(TENANT, string(tenant_id))
            .item("role_arn", string(role_arn))
            .condition_expression("attribute_not_exists(pk) OR tenant_id = :tenant")
            .expression_attribute_values(":tenant", string(tenant_id))
            .send()
            .await;
        Ok(conditional(written)?)
    }

    /// Gives up the organization's claim on `role_arn` (another
    /// organization's claim is left alone).
    pub async fn release_role(&self, role_arn: &str, tenant_id: &str) -> Result<(), SettingsError> {
        let role = role_key(role_arn);
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, Key::Role { role: &role }.value())
            .condition_expression("tenant_id = :tenant")
            .expression_attribute_values(":tenant", string(tenant_id))
            .send()
            .await;
        conditional(deleted)?;
        Ok(())
    }

    /// The trust policy the organization's role needs.
    pub fn policy(&self, external_id: &str, tenant_id: &str) -> Value {
        trust_policy(
            &self.bridge_roles,
            external_id,
            &crate::aws::session_name(tenant_id),
        )
    }
}

/// One key per IAM role, whatever ARN names it: role names are unique per
/// account regardless of path and case. Pure.
pub fn role_key(role_arn: &str) -> String {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            let name = resource.rsplit('/').next().unwrap_or_default();
            format!("{partition}:{account}:{}", name.to_ascii_lowercase())
        }
        _ => role_arn.to_ascii_lowercase(),
    }
}

/// A trust policy that lets only the bridge's roles (`bridge_roles`, an
/// ARN pattern in the bridge's account) assume the role, only with the
/// organization's external id and session name. Pure.
pub fn trust_policy(bridge_roles: &str, external_id: &str, session_name: &str) -> Value {
    // arn:<partition>:iam::<account>:role/...
    let mut parts = bridge_roles.split(':');
    let partition = parts.nth(1).unwrap_or("aws");
    let account = parts.nth(2).unwrap_or_default();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:{partition}:iam::{account}:root") },
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {
                    "sts:ExternalId": external_id,
                    "sts:RoleSessionName": session_name,
                },
                "ArnLike": { "aws:PrincipalArn": bridge_roles }
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_role_has_one_key() {
        for (arn, key) in [
            (
                "arn:aws:iam::123456789012:role/mender-iot-bridge-acme",
                "aws:123456789012:mender-iot-bridge-acme",
            ),
            (
                "arn:aws:iam::123456789012:role/a/path/Mender-IoT-Bridge-Acme",
                "aws:123456789012:mender-iot-bridge-acme",
            ),
            (
                "arn:aws-cn:iam::123456789012:role/x",
                "aws-cn:123456789012:x",
            ),
        ] {
            assert_eq!(role_key(arn), key, "{arn}");
        }
        assert_ne!(
            role_key("arn:aws:iam::123456789012:role/x"),
            role_key("arn:aws:iam::210987654321:role/x")
        );
    }

    #[test]
    fn the_trust_policy_pins_account_roles_external_id_and_organization() {
        let policy = trust_policy(
            "arn:aws-us-gov:iam::111122223333:role/bridge-*",
            "id-1",
            "mender-iot-bridge-acme",
        );
        let statement = &policy["Statement"][0];
        assert_eq!(
            statement["Principal"]["AWS"],
            "arn:aws-us-gov:iam::111122223333:root"
        );
        assert_eq!(
            statement["Condition"]["StringEquals"],
            json!({"sts:ExternalId": "id-1", "sts:RoleSessionName": "mender-iot-bridge-acme"})
        );
        assert_eq!(
            statement["Condition"]["ArnLike"]["aws:PrincipalArn"],
            "arn:aws-us-gov:iam::111122223333:role/bridge-*"
        );
    }
}
