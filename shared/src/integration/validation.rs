//! Integration bodies (`POST integrations`, `PUT integrations/{id}`, and
//! `PUT integrations/{id}/credentials`): one rule per field, every broken rule
//! reported at once, by the field's dotted path.

use serde_json::Value;

use crate::http::{ApiError, FieldProblem};
use crate::settings::{AwsCredentials, AwsSettings, SafetyLimit, Secret};

/// What a valid body says.
pub struct Setup {
    pub aws: AwsSettings,
    pub description: String,
    pub mender_token: Option<Secret>,
    /// Provision the devices Mender has already accepted (a reconcile run)
    /// right after creation. Off by default: Mender's own integration
    /// leaves existing devices alone.
    pub backfill: bool,
    /// How much a reconcile run may disable or remove unasked.
    pub safety_limit: SafetyLimit,
    /// Adopt, on proof, Things with no marker (Mender's own integration's).
    pub adopt_existing: bool,
}

/// Whether a field must be there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Required,
    Optional,
}

/// One field's rule: where it is, whether it must be there, what a valid
/// value is, and what to say when it is not.
struct Rule {
    field: &'static str,
    presence: Presence,
    valid: fn(&str) -> bool,
    problem: &'static str,
}

const fn rule(
    field: &'static str,
    presence: Presence,
    valid: fn(&str) -> bool,
    problem: &'static str,
) -> Rule {
    Rule {
        field,
        presence,
        valid,
        problem,
    }
}

use Presence::{Optional, Required};

const RULES: &[Rule] = &[
    rule(
        "provider",
        Required,
        |v| v == "iot-core",
        "must be \"iot-core\"",
    ),
    rule(
        "credentials.type",
        Required,
        |v| v == "aws",
        "must be \"aws\"",
    ),
    rule(
        "credentials.aws.region",
        Required,
        is_region,
        "is not an AWS region name (like eu-west-1)",
    ),
    rule(
        "credentials.aws.device_policy_name",
        Required,
        is_policy_name,
        "must be 1-128 of [A-Za-z0-9+=,.@_-]",
    ),
    rule(
        "credentials.aws.access_key_id",
        Optional,
        is_access_key_id,
        "is not an IAM access key id (AKIA and 16 more)",
    ),
    rule(
        "credentials.aws.secret_access_key",
        Optional,
        is_secret_access_key,
        "is not a 40-character secret access key",
    ),
    rule(
        "credentials.aws.role_arn",
        Optional,
        is_role_arn,
        "is not an IAM role ARN",
    ),
    // The bridge makes the external id, so no organization can name
    // another's role with that role's id (the confused deputy).
    rule(
        "credentials.aws.external_id",
        Optional,
        |_| false,
        "is chosen by the bridge, not sent: read it with \
         GET /api/management/v1/iot-manager/external-id \
         and write it into the role's trust policy",
    ),
    rule(
        "description",
        Optional,
        |v| v.len() <= 1024,
        "must be at most 1024 characters",
    ),
    // A token travels in an Authorization header: anything but printable
    // ASCII cannot be one (and could not even be sent to Mender to ask).
    rule(
        "mender_token",
        Optional,
        |v| v.bytes().all(|b| b.is_ascii_graphic()),
        "is not a Mender token",
    ),
];

/// What a rule found.
#[derive(Clone, Copy)]
enum Found<'a> {
    Valid(&'a str),
    /// Given, but broken (its problem is reported).
    Invalid,
    Absent,
}

/// The fields as the rules found them.
struct Fields<'a>(Vec<(&'static str, Found<'a>)>);

impl Fields<'_> {
    fn found(&self, field: &str) -> Found<'_> {
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map_or(Found::Absent, |(_, found)| *found)
    }

    fn owned(&self, field: &str) -> Option<String> {
        match self.found(field) {
            Found::Valid(value) => Some(value.to_owned()),
            Found::Invalid | Found::Absent => None,
        }
    }

    fn given(&self, field: &str) -> bool {
        !matches!(self.found(field), Found::Absent)
    }
}

/// Validates a `POST integrations` or `PUT integrations/{id}` body (Mender's
/// `Integration` and the bridge's additions); every invalid field is
/// reported.
pub fn parse_setup(body: &[u8]) -> Result<Setup, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("body must be a JSON object".into()));
    }
    let mut problems = Vec::new();
    let fields = Fields(
        RULES
            .iter()
            .map(|rule| (rule.field, check(&value, rule, &mut problems)))
            .collect(),
    );
    let credentials = credentials(&fields, &mut problems);
    let backfill = flag(&value, "backfill", &mut problems);
    let adopt_existing = flag(&value, "adopt_existing", &mut problems);
    let safety_limit = safety_limit(value.get("safety_limit"), &mut problems);
    let region = fields.owned("credentials.aws.region");
    let policy = fields.owned("credentials.aws.device_policy_name");
    match (problems.is_empty(), region, policy, credentials) {
        (true, Some(region), Some(device_policy_name), Some(credentials)) => Ok(Setup {
            aws: AwsSettings {
                region,
                device_policy_name,
                credentials,
            },
            description: fields.owned("description").unwrap_or_default(),
            mender_token: fields.owned("mender_token").map(Secret::new),
            backfill,
            safety_limit,
            adopt_existing,
        }),
        _ => Err(ApiError::InvalidFields(problems)),
    }
}

/// Validates a `PUT integrations/{id}/credentials` body (Mender's
/// `Credentials`) by the same rules as a whole integration's; every
/// invalid field is reported, named within the body.
pub fn parse_credentials(body: &[u8]) -> Result<AwsSettings, ApiError> {
    let credentials: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    if !credentials.is_object() {
        return Err(ApiError::BadRequest("body must be a JSON object".into()));
    }
    let integration = serde_json::json!({ "provider": "iot-core", "credentials": credentials });
    match parse_setup(integration.to_string().as_bytes()) {
        Ok(setup) => Ok(setup.aws),
        Err(ApiError::InvalidFields(problems)) => Err(ApiError::InvalidFields(
            problems
                .into_iter()
                .map(|problem| FieldProblem {
                    field: problem
                        .field
                        .strip_prefix("credentials.")
                        .map(str::to_owned)
                        .unwrap_or(problem.field),
                    ..problem
                })
                .collect(),
        )),
        Err(error) => Err(error),
    }
}

/// What `rule` finds in the body; a broken rule's problem is added to
/// `problems`. An empty string is an absent value.
fn check<'a>(body: &'a Value, rule: &Rule, problems: &mut Vec<FieldProblem>) -> Found<'a> {
    let pointer = format!("/{}", rule.field.replace('.', "/"));
    let (found, problem) = match body.pointer(&pointer) {
        Some(Value::String(text)) if !text.is_empty() => {
            if (rule.valid)(text) {
                return Found::Valid(text);
            }
            (Found::Invalid, rule.problem)
        }
        Some(Value::String(_)) | Some(Value::Null) | None => match rule.presence {
            Required => (Found::Absent, "is required"),
            Optional => return Found::Absent,
        },
        Some(_) => (Found::Invalid, "must be a string"),
    };
    problems.push(FieldProblem::new(rule.field, problem));
    found
}

/// An optional boolean field; `false` when absent.
fn flag(body: &Value, field: &'static str, problems: &mut Vec<FieldProblem>) -> bool {
    match body.get(field) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(on)) => *on,
        Some(_) => {
            problems.push(FieldProblem::new(field, "must be true or false"));
            false
        }
    }
}

/// `{"percent": 0-100, "devices": n}`, both given; the default when absent.
fn safety_limit(value: Option<&Value>, problems: &mut Vec<FieldProblem>) -> SafetyLimit {
    const MESSAGE: &str = "must be {\"percent\": 0-100, \"devices\": 0-1000000}: a run is held when it would \
         disable or remove more than both";
    let limit = match value {
        None | Some(Value::Null) => return SafetyLimit::default(),
        Some(Value::Object(fields)) if fields.len() == 2 => {
            let number = |name: &str, max: u64| {
                fields
                    .get(name)
                    .and_then(Value::as_u64)
                    .filter(|n| *n <= max)
            };
            number("percent", 100)
                .zip(number("devices", 1_000_000))
                .map(|(percent, devices)| SafetyLimit { percent, devices })
        }
        Some(_) => None,
    };
    limit.unwrap_or_else(|| {
        problems.push(FieldProblem::new("safety_limit", MESSAGE));
        SafetyLimit::default()
    })
}

/// A key pair or a role, never both. Decided by which fields are given;
/// their values by their own rules.
fn credentials(fields: &Fields, problems: &mut Vec<FieldProblem>) -> Option<AwsCredentials> {
    const KEY_ID: &str = "credentials.aws.access_key_id";
    const SECRET_KEY: &str = "credentials.aws.secret_access_key";
    const ROLE_ARN: &str = "credentials.aws.role_arn";
    let mut problem = |field: &str, text: &str| {
        problems.push(FieldProblem::new(field, text));
        None
    };
    match (
        fields.given(KEY_ID),
        fields.given(SECRET_KEY),
        fields.given(ROLE_ARN),
    ) {
        (true, true, false) => Some(AwsCredentials::AccessKey {
            access_key_id: fields.owned(KEY_ID)?,
            secret_access_key: Secret::new(fields.owned(SECRET_KEY)?),
        }),
        // The external id is the bridge's, added at setup.
        (false, false, true) => Some(AwsCredentials::AssumeRole {
            role_arn: fields.owned(ROLE_ARN)?,
            external_id: None,
        }),
        (false, false, false) => problem(
            "credentials.aws",
            "needs access_key_id and secret_access_key, or role_arn",
        ),
        (_, _, true) => problem(
            "credentials.aws",
            "give either a key pair or role_arn, not both",
        ),
        (false, true, false) => problem(KEY_ID, "is required with a key pair"),
        (true, false, false) => problem(SECRET_KEY, "is required with a key pair"),
    }
}

/// `eu-west-1`, `us-gov-west-1`, `ap-southeast-2`, `cn-north-1`…
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [area, place, number] | [area, "gov" | "iso" | "isob", place, number] => {
            area.len() == 2 && letters(area) && letters(place) && digits(number)
        }
        _ => false,
    }
}

fn is_policy_name(name: &str) -> bool {
    name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
}

fn is_access_key_id(key_id: &str) -> bool {
    key_id.len() == 20
        && key_id.starts_with("AKIA")
        && key_id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn is_secret_access_key(key: &str) -> bool {
    key.len() == 40
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

/// `arn:aws:iam::123456789012:role/path/name` (any partition).
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| {
                    !name.is_empty()
                        && name.len() <= 512
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@/-_".contains(&b))
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(body: Value) -> Vec<String> {
        match parse_setup(body.to_string().as_bytes()) {
            Err(ApiError::InvalidFields(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other:?}"),
            Ok(_) => vec![],
        }
    }

    fn valid() -> Value {
        json!({"provider":"iot-core","credentials":{"type":"aws","aws":{
            "access_key_id":"AKIAIOSFODNN7EXAMPLE","secret_access_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "region":"eu-west-1","device_policy_name":"device-policy"}},"description":"d"})
    }

    #[test]
    fn a_valid_body_passes() {
        assert!(parse_setup(valid().to_string().as_bytes()).is_ok());
        let mut role = valid();
        role["credentials"]["aws"] = json!({"role_arn":"arn:aws:iam::123456789012:role/bridge",
            "region":"us-gov-west-1","device_policy_name":"p"});
        assert!(parse_setup(role.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn every_invalid_field_is_listed() {
        let body = json!({"provider":"aws","credentials":{"type":"gcp","aws":{
            "access_key_id":"nope","secret_access_key":"short","region":"Europe","device_policy_name":"bad name!"}},
            "description": 5});
        let mut fields = problems(body);
        fields.sort();
        assert_eq!(
            fields,
            [
                "credentials.aws.access_key_id",
                "credentials.aws.device_policy_name",
                "credentials.aws.region",
                "credentials.aws.secret_access_key",
                "credentials.type",
                "description",
                "provider"
            ]
        );
    }

    #[test]
    fn credentials_alone_are_checked_by_the_same_rules_and_named_within_their_body() {
        let credentials = valid()["credentials"].clone();
        let aws = parse_credentials(credentials.to_string().as_bytes()).unwrap();
        assert_eq!(
            (aws.region.as_str(), aws.device_policy_name.as_str()),
            ("eu-west-1", "device-policy")
        );
        let bad = json!({"type":"aws","aws":{"access_key_id":"nope","secret_access_key":"short",
            "region":"eu-west-1","device_policy_name":"p","external_id":"x"}});
        let Err(ApiError::InvalidFields(fields)) = parse_credentials(bad.to_string().as_bytes())
        else {
            panic!("refused")
        };
        let mut fields: Vec<_> = fields.into_iter().map(|f| f.field).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "aws.access_key_id",
                "aws.external_id",
                "aws.secret_access_key"
            ]
        );
        for body in ["[]", "nope"] {
            assert!(
                matches!(
                    parse_credentials(body.as_bytes()),
                    Err(ApiError::BadRequest(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn credentials_are_a_key_pair_or_a_role() {
        let mut both = valid();
        both["credentials"]["aws"]["role_arn"] = json!("arn:aws:iam::123456789012:role/x");
        assert_eq!(problems(both), ["credentials.aws"]);
        let mut half = valid();
        half["credentials"]["aws"]
            .as_object_mut()
            .unwrap()
            .remove("secret_access_key");
        assert_eq!(problems(half), ["credentials.aws.secret_access_key"]);
        let mut bad_role = valid();
        bad_role["credentials"]["aws"] = json!({"role_arn":"arn:aws:iam::12:user/x","region":"eu-west-1","device_policy_name":"p"});
        assert_eq!(problems(bad_role), ["credentials.aws.role_arn"]);
        // The bridge chooses the external id: one sent is refused, with
        // a role or without.
        for credentials in [
            json!({"role_arn":"arn:aws:iam::123456789012:role/x","region":"eu-west-1","device_policy_name":"p"}),
            valid()["credentials"]["aws"].clone(),
        ] {
            let mut body = valid();
            body["credentials"]["aws"] = credentials;
            body["credentials"]["aws"]["external_id"] = json!("abc123");
            assert_eq!(problems(body), ["credentials.aws.external_id"]);
        }
        assert_eq!(
            problems(json!({})),
            [
                "provider",
                "credentials.type",
                "credentials.aws.region",
                "credentials.aws.device_policy_name",
                "credentials.aws"
            ]
        );
    }

    #[test]
    fn a_mender_token_that_cannot_be_a_header_is_refused() {
        for bad in ["a b", "tok\nen", "t\u{00df}"] {
            let mut body = valid();
            body["mender_token"] = json!(bad);
            assert_eq!(problems(body), ["mender_token"], "{bad:?}");
        }
        let mut fine = valid();
        fine["mender_token"] = json!("eyJhbGciOi.eyJzdWIi.sig-_");
        assert!(problems(fine).is_empty());
        let mut empty = valid();
        empty["mender_token"] = json!("");
        let setup = parse_setup(empty.to_string().as_bytes()).unwrap();
        assert!(setup.mender_token.is_none(), "an empty token is no token");
    }

    #[test]
    fn backfill_and_adopt_existing_are_booleans() {
        let setup = parse_setup(valid().to_string().as_bytes()).unwrap();
        assert!(!setup.backfill && !setup.adopt_existing, "off by default");
        let mut body = valid();
        body["backfill"] = json!(true);
        body["adopt_existing"] = json!(true);
        let setup = parse_setup(body.to_string().as_bytes()).unwrap();
        assert!(setup.backfill && setup.adopt_existing);
        body["backfill"] = json!("yes");
        body["adopt_existing"] = json!(1);
        assert_eq!(problems(body), ["backfill", "adopt_existing"]);
    }

    #[test]
    fn the_safety_limit_is_percent_and_devices() {
        let setup = parse_setup(valid().to_string().as_bytes()).unwrap();
        assert_eq!(setup.safety_limit, SafetyLimit::default());
        let mut body = valid();
        body["safety_limit"] = json!({"percent": 25, "devices": 0});
        let setup = parse_setup(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            setup.safety_limit,
            SafetyLimit {
                percent: 25,
                devices: 0
            }
        );
        for bad in [
            json!({"percent": 101, "devices": 5}),
            json!({"percent": 10}),
            json!({"percent": -1, "devices": 5}),
            json!({"percent": 10, "devices": 5, "x": 1}),
            json!({"percent": "10", "devices": 5}),
            json!(10),
        ] {
            let mut body = valid();
            body["safety_limit"] = bad.clone();
            assert_eq!(problems(body), ["safety_limit"], "{bad}");
        }
    }

    #[test]
    fn region_names() {
        for ok in [
            "eu-west-1",
            "us-east-2",
            "ap-southeast-2",
            "us-gov-west-1",
            "cn-north-1",
            "il-central-1",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "eu",
            "eu-west",
            "EU-WEST-1",
            "eu-west-x",
            "europe-west-1",
            "eu-west-1-a",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
