//! A whole local system for one test: moto behind a fault proxy, the Mender
//! stand-in behind another, and the local runner's routes and bus wired to
//! the real handlers. Every test gets its own, so state never leaks.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use bridge::config::{CallBudget, CallPolicy, Config, DeepCheck, Enrollment};
use bridge::index::IntegrationIndex;
use bridge::lifecycle::Lifecycle;
use bridge::settings::{
    AwsCredentials, AwsSettings, IntegrationSettings, MenderSettings, Secret, SettingsStore,
    Stored, WebhookSecret,
};
use bridge::wiring::Wiring;
use mender_standin::MenderStandin;

use crate::app::{LocalApp, router};
use crate::bus::InProcessBus;
use crate::fault_proxy::FaultProxy;
use crate::moto::Moto;

pub const TABLE: &str = "mender-iot-bridge-test";
pub const EVENT_LOG_TABLE: &str = "mender-iot-bridge-test-events";
pub const DEVICE_RECORD_TABLE: &str = "mender-iot-bridge-test-devices";
pub const SECRETS_PREFIX: &str = "mender-iot-bridge/";
pub const TENANT: &str = "acme";
pub const REGION: &str = "eu-west-1";
pub const POLICY: &str = "mender-device-policy";

/// Short timeouts and backoff, so persistent faults fail fast in tests.
pub fn test_call_policy() -> CallPolicy {
    CallPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        attempt_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(10),
        throttle_patience: Duration::from_millis(300),
    }
}

/// The test stacks' call budget, for interactive and background calls alike.
pub fn test_budget() -> CallBudget {
    CallBudget {
        mender_timeout: CallBudget::BACKGROUND.mender_timeout,
        aws: test_call_policy(),
    }
}

/// The bridge's configuration in a test: the test table and secrets, the
/// given Mender and public URL, `budget` for every call, any organization
/// allowed to set up.
pub fn test_config(mender_url: &str, public_url: &str, budget: CallBudget) -> Config {
    let mut config = Config::local(mender_url);
    config.secrets_prefix = SECRETS_PREFIX.to_owned();
    config.table_name = TABLE.to_owned();
    config.event_log_table = EVENT_LOG_TABLE.to_owned();
    config.device_record_table = DEVICE_RECORD_TABLE.to_owned();
    config.event_bus_name = "unused-locally".to_owned();
    config.public_url = public_url.trim_end_matches('/').to_owned();
    config.enrollment = Enrollment::Any;
    config.interactive = budget;
    config.background = budget;
    // Runs write as fast as they can, except where a test paces them.
    config.run_aws_writes_per_second = None;
    // Every run looks at every device in full, as runs did before device
    // records: the tests that plant drift no listing shows expect the next
    // run to repair it. The tests of the deployed deep check set theirs.
    config.deep_check = DeepCheck::EVERY_RUN;
    // Runs checkpoint every 100 devices, so tests see several pages.
    config.run_page_size = 100;
    config
}

/// An SDK configuration for the emulator at `endpoint`.
pub async fn emulator_config(endpoint: &str, region: &str, policy: CallPolicy) -> SdkConfig {
    let base = aws_config::defaults(BehaviorVersion::latest())
        // The deployed functions' transport, so the tests run what ships.
        .http_client(bridge::aws_http::client())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    bridge::aws::with_policy(&base, policy)
}

/// Creates what the SAM template creates in AWS: the bridge's table, its
/// event log and the device records.
pub async fn create_tables(aws: &SdkConfig, config: &Config) {
    create_table(aws, &config.table_name, &["pk"]).await;
    create_table(aws, &config.event_log_table, &["tenant_id", "sk"]).await;
    create_table(
        aws,
        &config.device_record_table,
        &["integration_id", "device_id"],
    )
    .await;
}

/// A table of string keys: the partition key, then the sort key if any.
async fn create_table(config: &SdkConfig, table: &str, keys: &[&str]) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = aws_sdk_dynamodb::Client::new(config);
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (key, key_type) in keys.iter().zip([KeyType::Hash, KeyType::Range]) {
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*key)
                    .key_type(key_type)
                    .build()
                    .unwrap(),
            );
    }
    if let Err(error) = request.send().await {
        let exists = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&error)
            == Some("ResourceInUseException");
        assert!(
            exists,
            "could not create table {table}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(error)
        );
    }
}

/// Creates what the SAM template creates in AWS: the event bus (the local
/// runner's own bus is in-process; functions under `sam local` publish here).
pub async fn create_event_bus(config: &SdkConfig, name: &str) {
    let created = aws_sdk_eventbridge::Client::new(config)
        .create_event_bus()
        .name(name)
        .send()
        .await;
    if let Err(error) = created {
        let exists = aws_sdk_eventbridge::error::ProvideErrorMetadata::code(&error)
            == Some("ResourceAlreadyExistsException");
        assert!(
            exists,
            "could not create event bus: {}",
            aws_sdk_eventbridge::error::DisplayErrorContext(error)
        );
    }
}

/// Creates the organization's IoT device policy (operators do this by hand).
pub async fn create_device_policy(config: &SdkConfig, name: &str) {
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
    aws_sdk_iot::Client::new(config)
        .create_policy()
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .unwrap();
}

/// An organization with an integration in a stack.
#[derive(Clone, Debug)]
pub struct Organization {
    pub tenant_id: String,
    pub integration_id: String,
    pub webhook_secret: String,
    /// A Mender admin of the organization.
    pub admin_token: String,
}

impl Organization {
    /// The integration, as the owner its Things name.
    pub fn owner(&self) -> bridge::iot::Owner {
        bridge::iot::Owner {
            tenant_id: self.tenant_id.clone(),
            integration_id: self.integration_id.clone(),
            adopt_unmarked: false,
        }
    }
}

/// The tests' own calls to moto: patient, so that an emulator slowed by
/// concurrent tests is not misread as a missing resource.
const INSPECTION: CallPolicy = CallPolicy {
    max_attempts: 8,
    initial_backoff: Duration::from_millis(200),
    attempt_timeout: Duration::from_secs(30),
    operation_timeout: Duration::from_secs(180),
    throttle_patience: Duration::ZERO,
};

pub struct Stack {
    pub moto: Moto,
    pub aws_proxy: FaultProxy,
    pub mender: MenderStandin,
    pub mender_proxy: FaultProxy,
    /// The bridge's view of AWS: through the fault proxy.
    pub aws: SdkConfig,
    /// The test's own view of AWS: straight to moto, in the tenant's region.
    pub inspect: SdkConfig,
    /// Straight to moto in the bridge's own region (its table, secrets, bus).
    pub direct: SdkConfig,
    pub bus: InProcessBus,
    pub app: Arc<LocalApp>,
    pub url: String,
    pub integration_id: String,
    pub webhook_secret: String,
    /// A Mender admin of the tenant.
    pub admin_token: String,
}

impl Stack {
    /// A stack whose organization has an integration, seeded directly.
    pub async fn start() -> Stack {
        Stack::start_with(test_budget()).await
    }

    /// As [`Stack::start`], the handlers' AWS calls made with `policy`.
    pub async fn start_with(budget: CallBudget) -> Stack {
        Stack::start_configured(|config| {
            config.interactive = budget;
            config.background = budget;
        })
        .await
    }

    /// As [`Stack::start`], the bridge's configuration changed by
    /// `configure` (both budgets are the tests' unless it sets them).
    pub async fn start_configured(configure: impl FnOnce(&mut Config)) -> Stack {
        let mut stack = Stack::bare_with(configure).await;
        stack.seed_integration().await;
        stack
    }

    /// A stack whose organization (tenant `acme`, with an admin) has no
    /// integration yet; the device policy exists in AWS.
    pub async fn bare() -> Stack {
        Stack::bare_with(|_| {}).await
    }

    /// As [`Stack::bare`], with only the organizations `enrollment` names
    /// allowed to set up an integration.
    pub async fn bare_enrolling(enrollment: Enrollment) -> Stack {
        Stack::bare_with(|config| config.enrollment = enrollment).await
    }

    async fn bare_with(configure: impl FnOnce(&mut Config)) -> Stack {
        captured_logs();
        let moto = Moto::start().await;
        let aws_proxy = FaultProxy::start(&moto.url).await.unwrap();
        let mender = MenderStandin::start().await.unwrap();
        let mender_proxy = FaultProxy::start(&mender.url()).await.unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = test_config(&mender_proxy.url(), &url, test_budget());
        configure(&mut config);

        let aws = emulator_config(&aws_proxy.url(), "us-east-1", config.background.aws).await;
        let direct = emulator_config(&moto.url, "us-east-1", INSPECTION).await;
        let inspect = emulator_config(&moto.url, REGION, INSPECTION).await;
        create_tables(&direct, &config).await;
        create_device_policy(&inspect, POLICY).await;

        mender.add_tenant(TENANT, true);
        let admin = mender.add_user(TENANT, "admin@acme.test", &["RBAC_ROLE_PERMIT_ALL"], None);
        let admin_token = mender.issue_token(&admin, Duration::from_secs(3600));

        let wiring = Wiring::new(config, aws.clone());
        let app = Arc::new(LocalApp::new(&wiring));
        let bus = app.ingress.bus.clone();
        serve(listener, app.clone());

        Stack {
            moto,
            aws_proxy,
            mender,
            mender_proxy,
            aws,
            inspect,
            direct,
            bus,
            app,
            url,
            integration_id: String::new(),
            webhook_secret: String::new(),
            admin_token,
        }
    }

    /// Writes the organization's integration the way setup would (secret,
    /// index, Mender webhook), without going through the setup API.
    pub async fn seed_integration(&mut self) {
        let seeded = self.seed_organization(TENANT).await;
        self.integration_id = seeded.integration_id;
        self.webhook_secret = seeded.webhook_secret;
    }

    /// Another organization beside the stack's own (created in Mender if
    /// new, with an admin), with its integration seeded as setup would.
    pub async fn seed_organization(&self, tenant: &str) -> Organization {
        let direct = self.direct.clone();
        let admin_token = if tenant == TENANT {
            self.admin_token.clone()
        } else {
            self.mender.add_tenant(tenant, true);
            let admin = self.mender.add_user(
                tenant,
                &format!("admin@{tenant}.test"),
                &["RBAC_ROLE_PERMIT_ALL"],
                None,
            );
            self.mender.issue_token(&admin, Duration::from_secs(3600))
        };
        let bridge = self.mender.add_user(
            tenant,
            &format!("bridge@{tenant}.test"),
            &["RBAC_ROLE_PERMIT_ALL"],
            None,
        );
        let bridge_token = self.mender.issue_token(&bridge, Duration::from_secs(3600));
        let integration_id = uuid::Uuid::new_v4().to_string();
        let webhook_secret = hex::encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
        let settings = test_settings(&integration_id, tenant, &bridge_token);
        settings_store(&direct).put(&settings).await.unwrap();
        settings_store(&direct)
            .put(&WebhookSecret::new(
                &integration_id,
                tenant,
                Secret::new(&webhook_secret),
            ))
            .await
            .unwrap();
        let index = IntegrationIndex::new(aws_sdk_dynamodb::Client::new(&direct), TABLE);
        assert!(index.claim(tenant, &integration_id, 60).await.unwrap());
        index.activate(tenant, &integration_id).await.unwrap();
        self.mender.register_webhook(
            tenant,
            &format!("{}/webhooks/{integration_id}", self.url),
            &webhook_secret,
        );
        Organization {
            tenant_id: tenant.to_owned(),
            integration_id,
            webhook_secret,
            admin_token,
        }
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        self.bus.lifecycle()
    }

    /// The stack's own organization and its integration.
    pub fn organization(&self) -> Organization {
        Organization {
            tenant_id: TENANT.to_owned(),
            integration_id: self.integration_id.clone(),
            webhook_secret: self.webhook_secret.clone(),
            admin_token: self.admin_token.clone(),
        }
    }

    /// The stack's integration, as the owner its Things name.
    pub fn owner(&self) -> bridge::iot::Owner {
        bridge::iot::Owner {
            tenant_id: TENANT.to_owned(),
            integration_id: self.integration_id.clone(),
            adopt_unmarked: false,
        }
    }

    pub fn iot(&self) -> aws_sdk_iot::Client {
        aws_sdk_iot::Client::new(&self.inspect)
    }
}

/// An integration's settings as setup would store them: the emulator's
/// example key pair, the test region and device policy.
pub fn test_settings(
    integration_id: &str,
    tenant: &str,
    bridge_token: &str,
) -> IntegrationSettings {
    IntegrationSettings::new(
        integration_id,
        tenant,
        AwsSettings {
            region: REGION.to_owned(),
            device_policy_name: POLICY.to_owned(),
            credentials: AwsCredentials::AccessKey {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
                secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            },
        },
        MenderSettings {
            token: Secret::new(bridge_token),
            webhook_integration_id: None,
            token_id: None,
        },
        "test".to_owned(),
    )
}

pub fn settings_store<T: Stored>(config: &SdkConfig) -> SettingsStore<T> {
    SettingsStore::new(
        aws_sdk_secretsmanager::Client::new(config),
        SECRETS_PREFIX,
        Duration::from_secs(60),
    )
}

/// A path of the bridge's API, under Mender's iot-manager prefix.
pub fn api(path: &str) -> String {
    format!("{}{path}", bridge::http::API_PREFIX)
}

/// An integration body (`POST integrations`) with the emulator's example
/// key pair, the test region and `policy`.
pub fn key_pair_setup(policy: &str) -> serde_json::Value {
    serde_json::json!({"provider": "iot-core", "credentials": {"type": "aws", "aws": {
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "region": REGION, "device_policy_name": policy}}})
}

/// Serves the local runner's routes in the background.
pub fn serve(listener: tokio::net::TcpListener, app: Arc<LocalApp>) {
    tokio::spawn(async move { axum::serve(listener, router(app)).await });
}

impl Stack {
    /// Posts a webhook body to the runner, signed as Mender signs it.
    pub async fn post_webhook(&self, body: &serde_json::Value) -> reqwest::Response {
        let body = body.to_string();
        crate::http()
            .post(format!("{}/webhooks/{}", self.url, self.integration_id))
            .header("content-type", "application/json")
            .header("x-men-algorithm", "MEN-HMAC-SHA256-Payload")
            .header(
                "x-men-signature",
                bridge::webhook::sign(&self.webhook_secret, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The personal access tokens of `token`'s user, as Mender lists them.
    pub async fn personal_tokens(&self, token: &str) -> Vec<serde_json::Value> {
        let answer = crate::http()
            .get(format!(
                "{}/api/management/v1/useradm/settings/tokens",
                self.mender.url()
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "listing personal access tokens");
        answer.json().await.unwrap()
    }

    /// The names of the secrets in Secrets Manager not scheduled for deletion.
    pub async fn live_secrets(&self) -> Vec<String> {
        aws_sdk_secretsmanager::Client::new(&self.direct)
            .list_secrets()
            .send()
            .await
            .unwrap()
            .secret_list()
            .iter()
            .filter(|s| s.deleted_date().is_none())
            .filter_map(|s| s.name().map(str::to_owned))
            .collect()
    }

    /// The certificates attached to the Thing: id → (status, PEM).
    pub async fn thing_certificates(
        &self,
        thing: &str,
    ) -> std::collections::BTreeMap<String, (String, String)> {
        let mut attached = std::collections::BTreeMap::new();
        for arn in self.thing_principals(thing).await {
            let id = arn.rsplit('/').next().unwrap().to_owned();
            let described = self
                .iot()
                .describe_certificate()
                .certificate_id(&id)
                .send()
                .await
                .unwrap();
            let description = described.certificate_description().unwrap();
            let status = description.status().unwrap().as_str().to_owned();
            let pem = description.certificate_pem().unwrap_or_default().to_owned();
            attached.insert(id, (status, pem));
        }
        attached
    }

    /// Every certificate in the emulator: (id, arn, status).
    pub async fn certificates(&self) -> Vec<(String, String, String)> {
        let mut listed = Vec::new();
        let mut marker = None;
        loop {
            let output = self
                .iot()
                .list_certificates()
                .page_size(250)
                .set_marker(marker)
                .send()
                .await
                .unwrap();
            listed.extend(output.certificates().iter().map(|c| {
                (
                    c.certificate_id().unwrap().to_owned(),
                    c.certificate_arn().unwrap().to_owned(),
                    c.status().unwrap().as_str().to_owned(),
                )
            }));
            marker = output.next_marker().map(str::to_owned);
            if marker.is_none() {
                return listed;
            }
        }
    }

    pub async fn thing_principals(&self, thing: &str) -> Vec<String> {
        match self
            .iot()
            .list_thing_principals()
            .thing_name(thing)
            .send()
            .await
        {
            Ok(output) => output.principals().to_vec(),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Vec::new()
            }
            Err(error) => panic!("ListThingPrincipals {thing}: {error:?}"),
        }
    }

    /// A Thing's attributes, `None` when there is no such Thing (any other
    /// error fails the test, so that a slow emulator never reads as "gone").
    pub async fn thing_attributes(
        &self,
        thing: &str,
    ) -> Option<std::collections::HashMap<String, String>> {
        match self.iot().describe_thing().thing_name(thing).send().await {
            Ok(output) => Some(output.attributes().cloned().unwrap_or_default()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => panic!("DescribeThing {thing}: {error:?}"),
        }
    }

    pub async fn policy_targets(&self) -> Vec<String> {
        let output = self
            .iot()
            .list_targets_for_policy()
            .policy_name(POLICY)
            .send()
            .await
            .unwrap();
        output.targets().to_vec()
    }
}

/// Installs, once per test binary, a subscriber that keeps every log line
/// (debug and up, from every crate) in memory; returns what it holds.
pub fn captured_logs() -> String {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || CaptureWriter(writer.clone()))
            .with_ansi(false)
            .try_init();
        logs
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

struct CaptureWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An answer from the local runner: status, JSON body (`Null` if none), headers.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Stack {
    /// A whole sync run of the stack's integration, in-process, as the
    /// reconcile function runs it (no API, so every Mender call is the run's).
    pub async fn sync_run(&self) -> bridge::reconcile::ReconcileRun {
        use bridge::reconcile::{RunRequest, RunState, step};
        let reconciler = self.bus.reconciler();
        let sync = RunRequest::Sync { confirmed: false };
        let mut run = reconciler
            .runs
            .start(TENANT, &self.integration_id, sync)
            .await
            .unwrap();
        let far = std::time::Instant::now() + Duration::from_secs(3600);
        while run.state == RunState::Running {
            run = step(reconciler, &run.run_id, far).await.unwrap();
        }
        run
    }

    /// Makes the certificates on the device's Thing INACTIVE, behind the
    /// bridge's back.
    pub async fn make_inactive(&self, device: &str) {
        for arn in self.thing_principals(device).await {
            let id = arn.rsplit('/').next().unwrap();
            self.iot()
                .update_certificate()
                .certificate_id(id)
                .new_status("INACTIVE".into())
                .send()
                .await
                .unwrap();
        }
    }

    /// A reconcile run of the stack's integration started through the API
    /// as `token` (with `body`, e.g. a confirmation), once the bus is idle:
    /// the run as the API reports it.
    pub async fn reconcile_run(
        &self,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        self.reconcile_run_of(&self.integration_id, token, body)
            .await
    }

    /// [`Stack::reconcile_run`] of another organization's integration.
    pub async fn reconcile_run_of(
        &self,
        integration_id: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        let runs = api(&format!("/integrations/{integration_id}/reconcile"));
        let started = self
            .call(reqwest::Method::POST, &runs, Some(token), body)
            .await;
        assert_eq!(started.status, 202, "{}", started.text);
        let run_id = started.body["run_id"].as_str().unwrap().to_owned();
        self.bus.wait_idle().await;
        let answer = self
            .call(
                reqwest::Method::GET,
                &format!("{runs}/{run_id}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body
    }

    /// The path of the stack's integration (`integrations/{id}`), then `tail`.
    pub fn integration_path(&self, tail: &str) -> String {
        api(&format!("/integrations/{}{tail}", self.integration_id))
    }

    /// The organization's integration set up as `token` with `body`: created
    /// (`POST integrations`) when it has none, replaced
    /// (`PUT integrations/{id}`) when it has one, as an admin's script would.
    pub async fn set_up(&self, token: &str, body: &serde_json::Value) -> Answer {
        let listed = self
            .call(
                reqwest::Method::GET,
                &api("/integrations"),
                Some(token),
                None,
            )
            .await;
        match listed.body[0]["id"].as_str() {
            Some(id) => {
                let path = api(&format!("/integrations/{id}"));
                self.call(reqwest::Method::PUT, &path, Some(token), Some(body))
                    .await
            }
            None => {
                self.call(
                    reqwest::Method::POST,
                    &api("/integrations"),
                    Some(token),
                    Some(body),
                )
                .await
            }
        }
    }

    /// The path of a device's state for the stack's integration.
    pub fn state_path(&self, device: &str) -> String {
        api(&format!("/devices/{device}/state/{}", self.integration_id))
    }

    /// Calls one of the runner's API routes as a user with `token`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Answer {
        let mut request = crate::http().request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            body,
            text,
            headers,
        }
    }
}
