//! Integration setup: `PUT`, `GET` and `DELETE /integration`, for an
//! organization's admin. One integration per organization; everything
//! secret goes to Secrets Manager; any failure half-way is undone.

use aws_config::SdkConfig;
use aws_sdk_iot::error::ProvideErrorMetadata;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};

use crate::auth::{Authenticator, Caller, mender_error, token_id, token_tenant};
use crate::events::{EventBridgeBus, EventBus};
use crate::http::{ApiError, FieldProblem, body_bytes, json_response};
use crate::index::{ACTIVE, IntegrationIndex, epoch_seconds};
use crate::mender::MenderClient;
use crate::settings::{
    AwsCredentials, AwsSettings, IntegrationSettings, MenderSettings, SCHEMA_VERSION, Secret,
    SettingsError, SettingsStore,
};
use crate::sync::{RunStore, SyncError};

/// Setup bodies are small; anything larger is not one.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// How long a setup in progress holds the organization's claim.
const CLAIM_SECONDS: u64 = 120;
/// Mender's longest personal access token: a year. Re-run `PUT` to renew.
const TOKEN_LIFETIME_SECONDS: u64 = 365 * 24 * 3600;
/// A deleted integration's secret can be restored for this long.
const RECOVERY_DAYS: i64 = 7;

pub struct IntegrationApi<B> {
    pub auth: Authenticator,
    pub settings: SettingsStore,
    pub index: IntegrationIndex,
    /// The deployment's AWS configuration, for trying tenants' credentials.
    pub aws: SdkConfig,
    pub http: reqwest::Client,
    pub mender_url: String,
    /// Where Mender reaches the bridge: webhook URLs are built from it.
    pub public_url: String,
    /// Reconcile runs, started through the bus.
    pub runs: RunStore,
    pub bus: B,
}

impl IntegrationApi<EventBridgeBus> {
    pub async fn from_env() -> Self {
        let env = crate::settings::Environment::from_env();
        let aws = crate::aws::load_base_config(crate::aws::CallPolicy::from_env()).await;
        let http = crate::mender::http_client(crate::lifecycle::MENDER_TIMEOUT);
        IntegrationApi {
            auth: Authenticator::new(
                http.clone(),
                &env.mender_url,
                crate::auth::DEFAULT_CACHE_TTL,
            ),
            settings: SettingsStore::new(
                aws_sdk_secretsmanager::Client::new(&aws),
                &env.secrets_prefix,
                env.settings_ttl,
            ),
            index: IntegrationIndex::new(aws_sdk_dynamodb::Client::new(&aws), &env.table_name),
            public_url: std::env::var("PUBLIC_URL")
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            runs: RunStore::new(aws_sdk_dynamodb::Client::new(&aws), &env.table_name),
            bus: EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&aws), &env.event_bus_name),
            mender_url: env.mender_url,
            http,
            aws,
        }
    }
}

impl<B> IntegrationApi<B> {
    fn webhook_url(&self, integration_id: &str) -> String {
        format!("{}/webhooks/{integration_id}", self.public_url)
    }
}

pub async fn handle<B: EventBus>(api: &IntegrationApi<B>, request: Request) -> Response<Body> {
    let result = match *request.method() {
        _ if request.uri().path().contains("/sync") => sync_route(api, &request).await,
        http::Method::GET => get(api, &request).await,
        http::Method::PUT => put(api, &request).await,
        http::Method::DELETE => delete(api, &request).await,
        _ => Err(ApiError::MethodNotAllowed("use GET, PUT or DELETE".into())),
    };
    result.unwrap_or_else(ApiError::into_response)
}

fn settings_error(error: SettingsError) -> ApiError {
    tracing::error!(%error, "integration settings unavailable");
    match error {
        SettingsError::NotFound(_) => {
            ApiError::NotFound("this organization has no integration".into())
        }
        _ => ApiError::ServiceUnavailable(
            "the integration's settings are unavailable; try again".into(),
        ),
    }
}

async fn current<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
) -> Result<IntegrationSettings, ApiError> {
    let id = api
        .index
        .active_integration(&caller.tenant_id)
        .await
        .map_err(settings_error)?;
    let id = id.ok_or_else(|| ApiError::NotFound("this organization has no integration".into()))?;
    api.settings.get_fresh(&id).await.map_err(settings_error)
}

async fn get<B: EventBus>(
    api: &IntegrationApi<B>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = api.auth.admin(request.headers()).await?;
    let settings = current(api, &caller).await?;
    Ok(json_response(200, &view(api, &settings)))
}

/// The integration as callers see it: no secret value, ever.
fn view<B>(api: &IntegrationApi<B>, settings: &IntegrationSettings) -> Value {
    let aws = &settings.aws;
    let mut credentials =
        json!({ "region": aws.region, "device_policy_name": aws.device_policy_name });
    match &aws.credentials {
        AwsCredentials::AccessKey { access_key_id, .. } => {
            credentials["access_key_id"] = json!(access_key_id);
            credentials["secret_access_key"] = json!("<omitted>");
        }
        AwsCredentials::AssumeRole {
            role_arn,
            external_id,
        } => {
            credentials["role_arn"] = json!(role_arn);
            credentials["external_id"] = json!(external_id);
        }
    }
    json!({
        "id": settings.integration_id,
        "provider": "iot-core",
        "credentials": { "type": "aws", "aws": credentials },
        "description": settings.description,
        "webhook_url": api.webhook_url(&settings.integration_id),
        "created_at": settings.created_at,
        "updated_at": settings.updated_at,
    })
}

/// What a valid `PUT` body says.
pub struct Setup {
    pub aws: AwsSettings,
    pub description: String,
    pub mender_token: Option<Secret>,
    /// Provision the devices Mender has already accepted (a reconcile run)
    /// right after creation. Off by default: Mender's own integration
    /// leaves existing devices alone.
    pub backfill: bool,
}

async fn put<B: EventBus>(
    api: &IntegrationApi<B>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = api.auth.admin(request.headers()).await?;
    let body = body_bytes(request.body());
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let setup = parse_setup(body)?;
    if let Some(token) = &setup.mender_token {
        check_mender_token(api, &caller, token).await?;
    }
    check_aws(&api.aws, &setup.aws).await?;

    match api
        .index
        .lookup(&caller.tenant_id)
        .await
        .map_err(settings_error)?
    {
        Some(entry) if entry.state == ACTIVE => replace(api, &entry.integration_id, setup).await,
        Some(entry) if entry.claim_expires_at >= epoch_seconds() => Err(ApiError::Conflict(
            "another setup of this organization's integration is in progress; try again shortly"
                .into(),
        )),
        _ => create(api, &caller, setup).await,
    }
}

/// New credentials for the existing integration: id, webhook and secrets stay.
async fn replace<B: EventBus>(
    api: &IntegrationApi<B>,
    integration_id: &str,
    setup: Setup,
) -> Result<Response<Body>, ApiError> {
    let mut settings = api
        .settings
        .get_fresh(integration_id)
        .await
        .map_err(settings_error)?;
    settings.aws = setup.aws;
    settings.description = setup.description;
    if let Some(token) = setup.mender_token {
        settings.mender.token = token;
        settings.mender.token_id = None;
    }
    settings.updated_at = now();
    api.settings.put(&settings).await.map_err(settings_error)?;
    tracing::info!(
        tenant = settings.tenant_id,
        integration_id,
        "integration updated"
    );
    Ok(json_response(200, &view(api, &settings)))
}

/// What a setup has made in Mender and AWS, to undo it if a later step fails.
#[derive(Default)]
struct Made {
    webhook_id: Option<String>,
    /// (id, token) of a personal access token the bridge created.
    token: Option<(String, Secret)>,
    secret: bool,
}

async fn create<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    setup: Setup,
) -> Result<Response<Body>, ApiError> {
    let integration_id = uuid::Uuid::new_v4().to_string();
    let claimed = api
        .index
        .claim(&caller.tenant_id, &integration_id, CLAIM_SECONDS)
        .await
        .map_err(settings_error)?;
    if !claimed {
        return Err(ApiError::Conflict(
            "another setup of this organization's integration is in progress; try again shortly"
                .into(),
        ));
    }
    let mut made = Made::default();
    let backfill = setup.backfill;
    match create_steps(api, caller, setup, &integration_id, &mut made).await {
        Ok(settings) => {
            tracing::info!(
                tenant = caller.tenant_id,
                integration_id,
                "integration created"
            );
            let mut answer = view(api, &settings);
            if backfill {
                // The integration exists either way; a backfill that could
                // not start is reported, and can be started again by hand.
                match crate::sync::start(&api.runs, &api.bus, &caller.tenant_id, &integration_id)
                    .await
                {
                    Ok(run) => answer["backfill_run_id"] = json!(run.run_id),
                    Err(error) => {
                        tracing::error!(%error, "could not start the backfill");
                        answer["backfill_error"] =
                            json!("the backfill could not start; use POST /integration/sync");
                    }
                }
            }
            Ok(json_response(201, &answer))
        }
        Err(error) => {
            tracing::warn!(tenant = caller.tenant_id, %error, "integration setup failed; undoing it");
            undo(api, caller, &integration_id, made).await;
            Err(error)
        }
    }
}

async fn create_steps<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    setup: Setup,
    integration_id: &str,
    made: &mut Made,
) -> Result<IntegrationSettings, ApiError> {
    let as_caller = caller.mender(&api.auth);
    let webhook_secret = random_hex(32)?;
    let description = format!("mender-iot-bridge {integration_id}");
    let webhook_id = as_caller
        .register_webhook(&api.webhook_url(integration_id), &webhook_secret, &description)
        .await
        .map_err(mender_error)?
        .ok_or_else(|| {
            ApiError::Conflict(
                "this Mender organization already has an integration (Mender allows one of any kind); remove it first"
                    .into(),
            )
        })?;
    made.webhook_id = Some(webhook_id.clone());

    let (token, token_id) = match setup.mender_token {
        Some(token) => (token, None),
        None => {
            let name = format!("mender-iot-bridge-{integration_id}");
            let token = as_caller
                .create_personal_token(&name, TOKEN_LIFETIME_SECONDS)
                .await
                .map_err(mender_error)?;
            let id = token_id(token.expose());
            if let Some(id) = &id {
                made.token = Some((id.clone(), token.clone()));
            }
            (token, id)
        }
    };

    let created_at = now();
    let settings = IntegrationSettings {
        schema_version: SCHEMA_VERSION,
        integration_id: integration_id.to_owned(),
        tenant_id: caller.tenant_id.clone(),
        aws: setup.aws,
        webhook_secret: Secret::new(webhook_secret),
        mender: MenderSettings {
            token,
            webhook_integration_id: Some(webhook_id),
            token_id,
        },
        description: setup.description,
        updated_at: created_at.clone(),
        created_at,
    };
    made.secret = true;
    api.settings.put(&settings).await.map_err(settings_error)?;
    api.index
        .activate(&caller.tenant_id, integration_id)
        .await
        .map_err(settings_error)?;
    Ok(settings)
}

/// Best effort, every step tried; what fails is logged (never a secret).
async fn undo<B: EventBus>(
    api: &IntegrationApi<B>,
    caller: &Caller,
    integration_id: &str,
    made: Made,
) {
    let as_caller = caller.mender(&api.auth);
    let mut failures = Vec::new();
    if made.secret
        && let Err(error) = api.settings.delete(integration_id, None).await
    {
        failures.push(error.to_string());
    }
    if let Some((token_id, _)) = &made.token
        && let Err(error) = as_caller.delete_personal_token(token_id).await
    {
        failures.push(error.to_string());
    }
    if let Some(webhook_id) = &made.webhook_id
        && let Err(error) = as_caller.delete_integration(webhook_id).await
    {
        failures.push(error.to_string());
    }
    if let Err(error) = api.index.remove(&caller.tenant_id, integration_id).await {
        failures.push(error.to_string());
    }
    if !failures.is_empty() {
        tracing::error!(
            tenant = caller.tenant_id,
            integration_id,
            ?failures,
            "could not undo every step of a failed setup"
        );
    }
}

/// `POST /integration/sync` starts a reconcile run of every device;
/// `GET /integration/sync/{run_id}` tells how it is going.
async fn sync_route<B: EventBus>(
    api: &IntegrationApi<B>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = api.auth.admin(request.headers()).await?;
    let run_id = request
        .path_parameters_ref()
        .and_then(|p| p.first("run_id"))
        .map(str::to_owned);
    let store_error = |error: SyncError| {
        tracing::error!(%error, "reconcile runs unavailable");
        ApiError::ServiceUnavailable("reconcile runs are unavailable; try again".into())
    };
    match (request.method().clone(), run_id) {
        (http::Method::POST, None) => {
            let settings = current(api, &caller).await?;
            match crate::sync::start(
                &api.runs,
                &api.bus,
                &caller.tenant_id,
                &settings.integration_id,
            )
            .await
            {
                Ok(run) => Ok(json_response(
                    202,
                    &json!({ "run_id": run.run_id, "state": run.state }),
                )),
                Err(SyncError::AlreadyRunning(run_id)) => Err(ApiError::Conflict(format!(
                    "a reconcile run is already under way for this organization: {run_id}"
                ))),
                Err(error) => Err(store_error(error)),
            }
        }
        (http::Method::GET, Some(run_id)) => {
            let run = api.runs.get(&run_id).await.map_err(store_error)?;
            let run = run
                .filter(|run| run.tenant_id == caller.tenant_id)
                .ok_or_else(|| ApiError::NotFound(format!("no reconcile run {run_id}")))?;
            Ok(json_response(
                200,
                &serde_json::to_value(&run).expect("a run serializes"),
            ))
        }
        _ => Err(ApiError::MethodNotAllowed(
            "use POST /integration/sync or GET /integration/sync/{run_id}".into(),
        )),
    }
}

async fn delete<B: EventBus>(
    api: &IntegrationApi<B>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = api.auth.admin(request.headers()).await?;
    let settings = current(api, &caller).await?;
    let as_caller = caller.mender(&api.auth);
    if let Some(webhook_id) = &settings.mender.webhook_integration_id {
        as_caller
            .delete_integration(webhook_id)
            .await
            .map_err(mender_error)?;
    }
    if let Some(token_id) = &settings.mender.token_id {
        // The token belongs to the admin who set the integration up; it can
        // revoke itself, whoever asks for the removal.
        let as_bridge = MenderClient::new(
            api.http.clone(),
            &api.mender_url,
            settings.mender.token.clone(),
        );
        match as_bridge.delete_personal_token(token_id).await {
            Err(crate::mender::MenderError::Unauthorized) => {} // already revoked or expired
            other => other.map_err(mender_error)?,
        }
    }
    api.settings
        .delete(&settings.integration_id, Some(RECOVERY_DAYS))
        .await
        .map_err(settings_error)?;
    api.index
        .remove(&caller.tenant_id, &settings.integration_id)
        .await
        .map_err(settings_error)?;
    tracing::info!(
        tenant = caller.tenant_id,
        integration_id = settings.integration_id,
        "integration removed"
    );
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .expect("a valid response"))
}

/// A token given for the bridge's own calls must be one Mender accepts, of
/// the same organization.
async fn check_mender_token<B: EventBus>(
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
        Ok(None) | Err(crate::mender::MenderError::Unauthorized) => {
            Err(invalid("Mender does not accept it"))
        }
        Err(error) => Err(mender_error(error)),
    }
}

/// Tries the credentials the way the bridge will use them: assume the role
/// (if any), find the data endpoint, find the device policy.
async fn check_aws(base: &SdkConfig, aws: &AwsSettings) -> Result<(), ApiError> {
    let config = crate::aws::tenant_config(base, aws).await;
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
                    "the bridge cannot assume {role_arn}: check its trust policy and external id"
                ),
            });
        }
    }
    let iot = aws_sdk_iot::Client::new(&config);
    if let Err(error) = iot
        .describe_endpoint()
        .endpoint_type("iot:Data-ATS")
        .send()
        .await
    {
        return Err(aws_rejection(
            error.code(),
            error.message(),
            "iot:DescribeEndpoint",
            &aws.device_policy_name,
        ));
    }
    if let Err(error) = iot
        .get_policy()
        .policy_name(&aws.device_policy_name)
        .send()
        .await
    {
        return Err(aws_rejection(
            error.code(),
            error.message(),
            "iot:GetPolicy",
            &aws.device_policy_name,
        ));
    }
    Ok(())
}

fn aws_rejection(
    code: Option<&str>,
    message: Option<&str>,
    action: &str,
    policy: &str,
) -> ApiError {
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

/// Validates a `PUT /integration` body; every invalid field is reported.
pub fn parse_setup(body: &[u8]) -> Result<Setup, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("body must be a JSON object".into()));
    }
    let mut problems = Vec::new();
    let text = |path: &str, problems: &mut Vec<FieldProblem>| -> Option<String> {
        match value.pointer(path) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                problems.push(FieldProblem::new(dotted(path), "is required"));
                None
            }
            Some(_) => {
                problems.push(FieldProblem::new(dotted(path), "must be a string"));
                None
            }
        }
    };
    let optional = |path: &str, problems: &mut Vec<FieldProblem>| -> Option<String> {
        match value.pointer(path) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                problems.push(FieldProblem::new(dotted(path), "must be a string"));
                None
            }
        }
    };
    let check = |ok: bool, field: &str, problem: &str, problems: &mut Vec<FieldProblem>| {
        if !ok {
            problems.push(FieldProblem::new(field, problem));
        }
    };

    if let Some(provider) = text("/provider", &mut problems) {
        check(
            provider == "iot-core",
            "provider",
            "must be \"iot-core\"",
            &mut problems,
        );
    }
    if let Some(kind) = text("/credentials/type", &mut problems) {
        check(
            kind == "aws",
            "credentials.type",
            "must be \"aws\"",
            &mut problems,
        );
    }
    let region = text("/credentials/aws/region", &mut problems);
    if let Some(region) = &region {
        check(
            is_region(region),
            "credentials.aws.region",
            "is not an AWS region name (like eu-west-1)",
            &mut problems,
        );
    }
    let policy = text("/credentials/aws/device_policy_name", &mut problems);
    if let Some(policy) = &policy {
        let ok = policy.len() <= 128
            && policy
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
        check(
            ok,
            "credentials.aws.device_policy_name",
            "must be 1-128 of [A-Za-z0-9+=,.@_-]",
            &mut problems,
        );
    }
    let key_id = optional("/credentials/aws/access_key_id", &mut problems);
    let secret_key = optional("/credentials/aws/secret_access_key", &mut problems);
    let role_arn = optional("/credentials/aws/role_arn", &mut problems);
    let external_id = optional("/credentials/aws/external_id", &mut problems);
    let credentials = match (key_id, secret_key, role_arn) {
        (Some(key_id), Some(secret_key), None) => {
            let key_ok = key_id.len() == 20
                && key_id.starts_with("AKIA")
                && key_id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            check(
                key_ok,
                "credentials.aws.access_key_id",
                "is not an IAM access key id (AKIA and 16 more)",
                &mut problems,
            );
            let secret_ok = secret_key.len() == 40
                && secret_key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
            check(
                secret_ok,
                "credentials.aws.secret_access_key",
                "is not a 40-character secret access key",
                &mut problems,
            );
            if external_id.is_some() {
                problems.push(FieldProblem::new(
                    "credentials.aws.external_id",
                    "goes with role_arn only",
                ));
            }
            Some(AwsCredentials::AccessKey {
                access_key_id: key_id,
                secret_access_key: Secret::new(secret_key),
            })
        }
        (None, None, Some(role_arn)) => {
            check(
                is_role_arn(&role_arn),
                "credentials.aws.role_arn",
                "is not an IAM role ARN",
                &mut problems,
            );
            if let Some(external_id) = &external_id {
                let ok = (2..=1224).contains(&external_id.len())
                    && external_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
                check(
                    ok,
                    "credentials.aws.external_id",
                    "must be 2-1224 of [A-Za-z0-9+=,.@:/_-]",
                    &mut problems,
                );
            }
            Some(AwsCredentials::AssumeRole {
                role_arn,
                external_id,
            })
        }
        (None, None, None) => {
            problems.push(FieldProblem::new(
                "credentials.aws",
                "needs access_key_id and secret_access_key, or role_arn",
            ));
            None
        }
        (_, _, Some(_)) => {
            problems.push(FieldProblem::new(
                "credentials.aws",
                "give either a key pair or role_arn, not both",
            ));
            None
        }
        (key_id, _, None) => {
            let missing = if key_id.is_none() {
                "access_key_id"
            } else {
                "secret_access_key"
            };
            problems.push(FieldProblem::new(
                format!("credentials.aws.{missing}"),
                "is required with a key pair",
            ));
            None
        }
    };
    let description = optional("/description", &mut problems).unwrap_or_default();
    check(
        description.len() <= 1024,
        "description",
        "must be at most 1024 characters",
        &mut problems,
    );
    let mender_token = optional("/mender_token", &mut problems)
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    // A token travels in an Authorization header: anything but printable
    // ASCII cannot be one (and could not even be sent to Mender to ask).
    if let Some(token) = &mender_token {
        check(
            token.expose().bytes().all(|b| b.is_ascii_graphic()),
            "mender_token",
            "is not a Mender token",
            &mut problems,
        );
    }
    let backfill = match value.get("backfill") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(backfill)) => *backfill,
        Some(_) => {
            problems.push(FieldProblem::new("backfill", "must be true or false"));
            false
        }
    };

    match (problems.is_empty(), region, policy, credentials) {
        (true, Some(region), Some(device_policy_name), Some(credentials)) => Ok(Setup {
            aws: AwsSettings {
                region,
                device_policy_name,
                credentials,
            },
            description,
            mender_token,
            backfill,
        }),
        _ => Err(ApiError::InvalidFields(problems)),
    }
}

fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// `eu-west-1`, `us-gov-west-1`, `ap-southeast-2`, `cn-north-1`…
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [area, place, number] => {
            area.len() == 2 && letters(area) && letters(place) && digits(number)
        }
        [area, "gov" | "iso" | "isob", place, number] => {
            area.len() == 2 && letters(area) && letters(place) && digits(number)
        }
        _ => false,
    }
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

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|_| ApiError::Internal)?;
    Ok(hex::encode(buffer))
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
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
        role["credentials"]["aws"] = json!({"role_arn":"arn:aws:iam::123456789012:role/bridge","external_id":"abc123",
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
