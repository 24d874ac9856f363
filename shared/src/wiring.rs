//! The one place that builds everything: every client, store and handler
//! of the bridge, from one [`Config`] and the AWS SDK's base configuration.
//! The functions, the local runner, the tests and the bench all build
//! through it, so what they run is wired the same way.

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};

use crate::auth::{Authenticator, DEFAULT_CACHE_TTL};
use crate::config::{CallBudget, Config};
use crate::converge::record::DeviceRecords;
use crate::event_log::EventLog;
use crate::events::EventBridgeBus;
use crate::index::IntegrationIndex;
use crate::ingress::Ingress;
use crate::integration::IntegrationApi;
use crate::integration::failures::SetupFailures;
use crate::integration::trust::Trust;
use crate::intent::CertificateIntents;
use crate::lease::Leases;
use crate::lifecycle::{LEASE_DURATION, Lifecycle};
use crate::metrics::MetricsSink;
use crate::reconcile::{Reconciler, RunStore};
use crate::rotation::RotationApi;
use crate::settings::{SettingsStore, Stored};
use crate::shadow::api::ShadowApi;
use crate::tenant::Tenants;

pub struct Wiring {
    pub config: Config,
    /// The deployment's AWS configuration (its credentials, region and
    /// endpoint overrides), before any call budget is applied.
    aws: SdkConfig,
    /// Where metrics go: the log in the functions, memory elsewhere.
    metrics: MetricsSink,
}

/// One call budget's AWS configuration and the clients made from it.
struct AwsClients {
    config: SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl Wiring {
    /// A deployed function's wiring: the configuration from the
    /// environment, logging set up, AWS's defaults loaded.
    pub async fn from_env() -> Wiring {
        let config = Config::from_env();
        crate::logging::init(&config);
        let aws = aws_config::defaults(BehaviorVersion::latest())
            .http_client(crate::aws_http::client())
            .load()
            .await;
        Wiring {
            metrics: MetricsSink::Stdout,
            ..Wiring::new(config, aws)
        }
    }

    /// Wiring for tests and the bench: metrics are kept in memory.
    pub fn new(config: Config, aws: SdkConfig) -> Wiring {
        Wiring {
            config,
            aws,
            metrics: MetricsSink::memory(),
        }
    }

    /// The deployment's AWS configuration with the background budget.
    pub fn aws_config(&self) -> SdkConfig {
        self.aws(self.config.background)
    }

    fn aws(&self, budget: CallBudget) -> SdkConfig {
        crate::aws::with_policy(&self.aws, budget.aws)
    }

    /// The HTTP client for Mender calls, with the budget's timeout.
    fn mender_http(&self, budget: CallBudget) -> reqwest::Client {
        crate::mender::http_client(budget.mender_timeout)
    }

    /// The AWS clients of a budget, each made once and then shared: a client
    /// is a handle, and making one builds its configuration and endpoint
    /// resolver again (part of a function's start).
    fn clients(&self, budget: CallBudget) -> AwsClients {
        let config = self.aws(budget);
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            config,
        }
    }

    fn settings_store<T: Stored>(
        &self,
        secrets: &aws_sdk_secretsmanager::Client,
    ) -> SettingsStore<T> {
        SettingsStore::new(
            secrets.clone(),
            &self.config.secrets_prefix,
            self.config.settings_ttl,
        )
    }

    fn event_log(&self, aws: &AwsClients) -> EventLog {
        EventLog::new(aws.dynamodb.clone(), &self.config.event_log_table)
    }

    fn tenants(&self, aws: &AwsClients, http: reqwest::Client, budget: CallBudget) -> Tenants {
        Tenants::new(
            self.settings_store(&aws.secrets),
            aws.config.clone(),
            http,
            &self.config.mender_url,
            self.config.data_plane_endpoint.clone(),
            CertificateIntents::new(aws.dynamodb.clone(), &self.config.table_name),
            DeviceRecords::new(aws.dynamodb.clone(), &self.config.device_record_table),
        )
        .with_concurrency(self.config.concurrency)
        .with_throttle_patience(budget.aws.throttle_patience)
    }

    fn authenticator(&self, http: reqwest::Client) -> Authenticator {
        Authenticator::new(http, &self.config.mender_url, DEFAULT_CACHE_TTL)
    }

    /// The bus the ingress, setup and reconcile runs publish to.
    pub fn event_bus(&self) -> EventBridgeBus {
        let aws = self.aws(self.config.background);
        EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&aws),
            &self.config.event_bus_name,
        )
    }

    /// The lifecycle functions' handler state (background budget).
    pub fn lifecycle(&self) -> Lifecycle {
        let budget = self.config.background;
        self.lifecycle_with(&self.clients(budget), budget)
    }

    fn lifecycle_with(&self, aws: &AwsClients, budget: CallBudget) -> Lifecycle {
        Lifecycle {
            tenants: self.tenants(aws, self.mender_http(budget), budget),
            leases: Leases::new(
                aws.dynamodb.clone(),
                &self.config.table_name,
                LEASE_DURATION,
            ),
            metrics: self.metrics.clone(),
            event_log: self.event_log(aws),
        }
    }

    /// The reconcile function's state (background budget): the convergence
    /// of `events` (its leases, its settings cache), AWS IoT Core writes paced.
    pub fn reconciler(&self, events: &Lifecycle) -> Reconciler {
        let aws = self.clients(self.config.background);
        let dynamodb = aws.dynamodb.clone();
        let lifecycle = Lifecycle {
            tenants: events.tenants.paced(self.config.run_aws_writes_per_second),
            leases: events.leases.clone(),
            metrics: events.metrics.clone(),
            event_log: events.event_log.clone(),
        };
        Reconciler {
            lifecycle: Arc::new(lifecycle),
            runs: RunStore::new(dynamodb.clone(), &self.config.table_name),
            index: IntegrationIndex::new(dynamodb, &self.config.table_name),
            invocation_limit: self.config.invocation_limit,
            settings: self.settings_store(&aws.secrets),
            deep_check: self.config.deep_check,
            page_size: self.config.run_page_size,
        }
    }

    /// The webhook ingress, publishing to `bus`.
    pub fn ingress<B>(&self, bus: B) -> Ingress<B> {
        let aws = self.aws(self.config.interactive);
        Ingress {
            webhooks: self.settings_store(&aws_sdk_secretsmanager::Client::new(&aws)),
            bus,
        }
    }

    /// The setup API (interactive budget), starting runs through `bus`.
    pub fn integration_api<B>(&self, bus: B) -> IntegrationApi<B> {
        let budget = self.config.interactive;
        let aws = self.clients(budget);
        let http = self.mender_http(budget);
        let dynamodb = aws.dynamodb.clone();
        IntegrationApi {
            auth: self.authenticator(http.clone()),
            settings: self.settings_store(&aws.secrets),
            webhooks: self.settings_store(&aws.secrets),
            index: IntegrationIndex::new(dynamodb.clone(), &self.config.table_name),
            runs: RunStore::new(dynamodb.clone(), &self.config.table_name),
            setup_failures: SetupFailures::new(dynamodb.clone(), &self.config.table_name),
            trust: Trust::new(
                dynamodb.clone(),
                &self.config.table_name,
                &self.config.bridge_roles,
            ),
            event_log: self.event_log(&aws),
            tenants: self.tenants(&aws, http.clone(), budget),
            leases: Leases::new(dynamodb, &self.config.table_name, LEASE_DURATION),
            enrollment: self.config.enrollment.clone(),
            aws: aws.config.clone(),
            http,
            mender_url: self.config.mender_url.clone(),
            public_url: self.config.public_url.clone(),
            bus,
        }
    }

    /// The Device Shadow API (interactive budget).
    /// The rotation API: the lifecycle's tenants and leases, under the
    /// interactive budget (an admin waits for the answer).
    pub fn rotation_api(&self) -> RotationApi {
        let budget = self.config.interactive;
        let aws = self.clients(budget);
        RotationApi {
            auth: self.authenticator(self.mender_http(budget)),
            index: IntegrationIndex::new(aws.dynamodb.clone(), &self.config.table_name),
            lifecycle: self.lifecycle_with(&aws, budget),
        }
    }

    pub fn shadow_api(&self) -> ShadowApi {
        let budget = self.config.interactive;
        let aws = self.clients(budget);
        let http = self.mender_http(budget);
        ShadowApi {
            auth: self.authenticator(http.clone()),
            index: IntegrationIndex::new(aws.dynamodb.clone(), &self.config.table_name),
            tenants: self.tenants(&aws, http, budget),
            metrics: self.metrics.clone(),
        }
    }
}
