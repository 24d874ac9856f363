//! The deployment's configuration: every environment variable the bridge
//! reads, read once, with its default and unit here and nowhere else
//! (`docs/operations.md` lists the same table). [`crate::wiring`] builds
//! every client and store from it.

use std::collections::BTreeSet;
use std::time::Duration;

use tracing_subscriber::filter::LevelFilter;

use crate::stage::Concurrency;

/// Which deployed functions a variable must be set for in `template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetFor {
    /// Every function (the template's `Globals`).
    Every,
    /// Only these functions (by crate name under `functions/`).
    Only(&'static [&'static str]),
    /// Set by Lambda itself (its logging controls), not by the template.
    Lambda,
    /// Emulator and test knobs: the default is right in AWS.
    Never,
    /// Declared for every function with no value in AWS (`AWS::NoValue`):
    /// `sam local` passes a function only the variables its template names,
    /// and its `--env-vars` file sets these to reach local emulators.
    SamLocal,
}

/// One environment variable: its name, its default, where it is set.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub set_for: SetFor,
}

const fn variable(name: &'static str, default: &'static str, set_for: SetFor) -> Variable {
    Variable {
        name,
        default,
        set_for,
    }
}

pub const MENDER_URL: Variable = variable("MENDER_URL", "http://127.0.0.1:8081", SetFor::Every);
pub const SECRETS_PREFIX: Variable =
    variable("SECRETS_PREFIX", "mender-iot-bridge/", SetFor::Every);
pub const TABLE_NAME: Variable = variable("TABLE_NAME", "mender-iot-bridge", SetFor::Every);
/// The event log (see `crate::event_log`): written by the functions that
/// change devices, read by the integration API.
pub const EVENT_LOG_TABLE: Variable = variable(
    "EVENT_LOG_TABLE",
    "mender-iot-bridge-events",
    SetFor::Only(&[
        "device-accepted",
        "device-disabled",
        "device-decommissioned",
        "device-rotation",
        "reconcile",
        "integration",
    ]),
);
/// What convergence last saw of each device (see `crate::converge::record`):
/// kept and read by the functions that converge devices.
pub const DEVICE_RECORD_TABLE: Variable = variable(
    "DEVICE_RECORD_TABLE",
    "mender-iot-bridge-devices",
    SetFor::Only(&[
        "device-accepted",
        "device-disabled",
        "device-decommissioned",
        "device-rotation",
        "reconcile",
    ]),
);
pub const EVENT_BUS_NAME: Variable = variable("EVENT_BUS_NAME", "mender-iot-bridge", SetFor::Every);
pub const SETTINGS_TTL_SECONDS: Variable = variable("SETTINGS_TTL_SECONDS", "60", SetFor::Every);
pub const PUBLIC_URL: Variable = variable("PUBLIC_URL", "", SetFor::Only(&["integration"]));
/// Mender tenant ids allowed to set up an integration, or `*`; see [`Enrollment`].
pub const ALLOWED_ORGANIZATIONS: Variable =
    variable("ALLOWED_ORGANIZATIONS", "", SetFor::Only(&["integration"]));
/// ARN pattern of the bridge's function roles, named in the trust policy
/// organizations give their roles (the default is the emulator's account).
pub const BRIDGE_ROLES: Variable = variable(
    "BRIDGE_ROLES",
    "arn:aws:iam::123456789012:role/mender-iot-bridge-*",
    SetFor::Only(&["integration"]),
);
/// AWS IoT Core writes per second of an organization's run (see
/// `crate::pace`); `0` for no pace.
pub const RUN_AWS_WRITES_PER_SECOND: Variable = variable(
    "RUN_AWS_WRITES_PER_SECOND",
    "20",
    SetFor::Only(&["reconcile"]),
);
/// Devices per second a sync run's deep check looks at (see [`DeepCheck`]);
/// `0` for none.
pub const DEEP_CHECKS_PER_SECOND: Variable =
    variable("DEEP_CHECKS_PER_SECOND", "2", SetFor::Only(&["reconcile"]));
pub const AWS_ATTEMPT_TIMEOUT_MS: Variable = variable("AWS_ATTEMPT_TIMEOUT_MS", "", SetFor::Never);
pub const DATA_PLANE_ENDPOINT: Variable =
    variable("AWS_ENDPOINT_URL_IOT_DATA_PLANE", "", SetFor::Never);
pub const LOG_LEVEL: Variable = variable("AWS_LAMBDA_LOG_LEVEL", "INFO", SetFor::Lambda);
pub const LOG_FORMAT: Variable = variable("AWS_LAMBDA_LOG_FORMAT", "TEXT", SetFor::Lambda);
/// Honoured as a plain level when Lambda sets none (local runs).
pub const RUST_LOG: Variable = variable("RUST_LOG", "", SetFor::Never);
/// Read by the AWS SDK itself, not by [`Config`]: where every AWS call goes
/// (the emulator, locally).
pub const AWS_ENDPOINT_URL: Variable = variable("AWS_ENDPOINT_URL", "", SetFor::SamLocal);

/// The trust store's PEM bundle and directories (separated by colons), as
/// OpenSSL reads them; unset, the host's bundle (see `crate::tls`).
pub const SSL_CERT_FILE: Variable = variable("SSL_CERT_FILE", "", SetFor::Never);
pub const SSL_CERT_DIR: Variable = variable("SSL_CERT_DIR", "", SetFor::Never);

/// Where [`SSL_CERT_FILE`] and [`SSL_CERT_DIR`] point, read by `crate::tls`
/// when it first needs the roots (a process-wide store, not [`Config`]'s).
pub fn trust_store_variables() -> (Option<std::ffi::OsString>, Option<std::ffi::OsString>) {
    (
        std::env::var_os(SSL_CERT_FILE.name),
        std::env::var_os(SSL_CERT_DIR.name),
    )
}

/// Every variable the functions read ([`Config::from_lookup`], the trust
/// store, and the SDK's endpoint); the template test holds `template.yaml`
/// to it.
pub const VARIABLES: [Variable; 20] = [
    MENDER_URL,
    SECRETS_PREFIX,
    TABLE_NAME,
    EVENT_LOG_TABLE,
    DEVICE_RECORD_TABLE,
    EVENT_BUS_NAME,
    SETTINGS_TTL_SECONDS,
    PUBLIC_URL,
    ALLOWED_ORGANIZATIONS,
    BRIDGE_ROLES,
    RUN_AWS_WRITES_PER_SECOND,
    DEEP_CHECKS_PER_SECOND,
    AWS_ATTEMPT_TIMEOUT_MS,
    DATA_PLANE_ENDPOINT,
    LOG_LEVEL,
    LOG_FORMAT,
    RUST_LOG,
    SSL_CERT_FILE,
    SSL_CERT_DIR,
    AWS_ENDPOINT_URL,
];

/// Which Mender organizations may set up an integration. Read from [`ALLOWED_ORGANIZATIONS`]: tenant ids
/// separated by commas (or spaces), or `*` for any. Unset or empty allows
/// none: a bridge pointed at hosted Mender, where anyone can open a trial
/// organization, enrolls only whom its operator names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enrollment {
    /// Any organization (an entry `*`).
    Any,
    /// Only these tenant ids; nobody when empty.
    Only(BTreeSet<String>),
}

impl Enrollment {
    /// The enrollment a variable's value describes; an entry `*` anywhere
    /// means any organization.
    pub fn parse(text: &str) -> Enrollment {
        let entries: BTreeSet<String> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .map(str::to_owned)
            .collect();
        if entries.contains("*") {
            Enrollment::Any
        } else {
            Enrollment::Only(entries)
        }
    }

    /// Whether the organization may set up (or change) its integration.
    pub fn allows(&self, tenant_id: &str) -> bool {
        match self {
            Enrollment::Any => true,
            Enrollment::Only(tenants) => tenants.contains(tenant_id),
        }
    }
}

/// Retries and timeouts for every AWS call: throttling, 5xx, timeouts and
/// broken connections are retried with exponential backoff and jitter by
/// the SDK before an error reaches the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
    /// How long a provisioning goes on waiting out AWS IoT Core's
    /// throttling once the SDK's attempts at a call are spent, before it
    /// undoes what it made (see `crate::throttling::Patience`).
    pub throttle_patience: Duration,
}

/// How long one kind of work may wait on Mender and AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallBudget {
    /// Per request to Mender (the Mender client tries 4 times with backoff).
    pub mender_timeout: Duration,
    pub aws: CallPolicy,
}

impl CallBudget {
    /// Behind API Gateway, which gives up after 29 s: a request's Mender
    /// and AWS retries must end well before that.
    pub const INTERACTIVE: CallBudget = CallBudget {
        mender_timeout: Duration::from_secs(5),
        aws: CallPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(4),
            operation_timeout: Duration::from_secs(12),
            throttle_patience: Duration::ZERO,
        },
    };

    /// Lifecycle events and reconcile runs: nobody waits, and a throttled
    /// account should be waited out rather than failed.
    pub const BACKGROUND: CallBudget = CallBudget {
        mender_timeout: Duration::from_secs(10),
        aws: CallPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
            // Within the lifecycle functions' 60 s, with room for a second
            // throttled stage and the undo.
            throttle_patience: Duration::from_secs(20),
        },
    };

    /// The same budget with a shorter AWS attempt timeout (tests and the
    /// emulator); the operation timeout follows it.
    pub fn with_aws_attempt_timeout(mut self, attempt: Duration) -> Self {
        self.aws.attempt_timeout = attempt;
        self.aws.operation_timeout = attempt * self.aws.max_attempts + Duration::from_secs(2);
        self
    }
}

const DEFAULT_DEEP_CHECKS_PER_SECOND: u32 = 2;

/// A sync run's deep check (see `crate::reconcile`): the devices whose
/// listings agree with their records are looked at in full (Mender's
/// configuration, the Thing's principals, the policies), one slice per
/// run, where the last run's stopped, so that drift no listing shows is
/// found. A device is looked at again once `age` has passed.
///
/// Paced by AWS IoT Core's per-device read quotas, which webhooks need:
/// each look calls `ListThingPrincipals` and `DescribeCertificate` (10/s
/// each by default) once, and `ListAttachedPolicies` (15/s) once. Two
/// looks a second take 20 % of the first two; 40 minutes of them a run
/// (4,800 devices) look at 115,200 devices a day with hourly runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeepCheck {
    pub age: Duration,
    /// At most this many looks a second; `None`: unpaced.
    pub per_second: Option<u32>,
    pub most_per_run: u64,
}

impl DeepCheck {
    /// How long a run spends on its deep check, at most.
    const MINUTES_PER_RUN: u64 = 40;

    /// `per_second` looks a second (none for `0`), 40 minutes a run, each
    /// device at most every three hours.
    pub fn at(per_second: u32) -> DeepCheck {
        DeepCheck {
            age: Duration::from_secs(3 * 3600),
            per_second: Some(per_second).filter(|rate| *rate > 0),
            most_per_run: u64::from(per_second) * 60 * Self::MINUTES_PER_RUN,
        }
    }

    /// Every device every run, unpaced: what every run did before records
    /// (tests that plant drift no listing shows, and expect the next run
    /// to repair it).
    pub const EVERY_RUN: DeepCheck = DeepCheck {
        age: Duration::ZERO,
        per_second: None,
        most_per_run: u64::MAX,
    };
}

/// The deployment's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Mender's base URL, without a trailing slash.
    pub mender_url: String,
    /// Each integration's secrets are `{prefix}webhook/{id}` and `{prefix}credentials/{id}`.
    pub secrets_prefix: String,
    pub table_name: String,
    pub event_log_table: String,
    pub device_record_table: String,
    pub event_bus_name: String,
    /// How long an instance trusts settings it read; changed credentials
    /// take effect within this time.
    pub settings_ttl: Duration,
    /// Where Mender reaches the bridge (webhook URLs), without a trailing slash.
    pub public_url: String,
    /// Which organizations may set up an integration.
    pub enrollment: Enrollment,
    /// ARN pattern of the bridge's own roles, for organizations' trust policies.
    pub bridge_roles: String,
    /// The IoT data plane's endpoint, when one is configured (the emulator);
    /// otherwise it is looked up per organization.
    pub data_plane_endpoint: Option<String>,
    /// Requests a user waits on (behind API Gateway).
    pub interactive: CallBudget,
    /// Lifecycle events and reconcile runs.
    pub background: CallBudget,
    /// AWS IoT Core writes per second of an organization's run; `None`:
    /// as fast as the run's concurrency goes.
    pub run_aws_writes_per_second: Option<u32>,
    /// How sync runs look at devices whose listings agree with their records.
    pub deep_check: DeepCheck,
    /// Mender devices per page of a run (one checkpoint each): Mender's
    /// largest page. Tests make it smaller. Not read from the environment.
    pub run_page_size: u32,
    pub log_level: LevelFilter,
    pub log_json: bool,
    /// How convergence runs a stage's calls: concurrently, except in the
    /// provisioning benchmark's baseline. Not read from the environment.
    pub concurrency: Concurrency,
    /// The longest an invocation can live (Lambda's limit, 15 minutes): a
    /// certificate intent older than this belongs to one that stopped (see
    /// `crate::intent`). Tests shorten it. Not read from the environment.
    pub invocation_limit: Duration,
}

impl Config {
    pub fn from_env() -> Config {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `lookup` describes; unset and empty variables take
    /// their defaults, and so do values that do not parse.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let read = |variable: &Variable| {
            lookup(variable.name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let text =
            |variable: &Variable| read(variable).unwrap_or_else(|| variable.default.to_owned());
        let without_slash = |value: String| value.trim_end_matches('/').to_owned();
        let seconds = |variable: &Variable| {
            let default = variable.default.parse().unwrap_or_default();
            Duration::from_secs(
                read(variable)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default),
            )
        };
        let (mut interactive, mut background) = (CallBudget::INTERACTIVE, CallBudget::BACKGROUND);
        if let Some(ms) = read(&AWS_ATTEMPT_TIMEOUT_MS).and_then(|v| v.parse().ok()) {
            let attempt = Duration::from_millis(ms);
            interactive = interactive.with_aws_attempt_timeout(attempt);
            background = background.with_aws_attempt_timeout(attempt);
        }
        Config {
            mender_url: without_slash(text(&MENDER_URL)),
            secrets_prefix: text(&SECRETS_PREFIX),
            table_name: text(&TABLE_NAME),
            event_log_table: text(&EVENT_LOG_TABLE),
            device_record_table: text(&DEVICE_RECORD_TABLE),
            event_bus_name: text(&EVENT_BUS_NAME),
            settings_ttl: seconds(&SETTINGS_TTL_SECONDS),
            public_url: without_slash(text(&PUBLIC_URL)),
            enrollment: Enrollment::parse(&text(&ALLOWED_ORGANIZATIONS)),
            bridge_roles: text(&BRIDGE_ROLES),
            data_plane_endpoint: read(&DATA_PLANE_ENDPOINT),
            interactive,
            background,
            run_aws_writes_per_second: read(&RUN_AWS_WRITES_PER_SECOND)
                .unwrap_or_else(|| RUN_AWS_WRITES_PER_SECOND.default.to_owned())
                .parse()
                .ok()
                .filter(|rate: &u32| *rate > 0),
            deep_check: DeepCheck::at(
                read(&DEEP_CHECKS_PER_SECOND)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(DEFAULT_DEEP_CHECKS_PER_SECOND),
            ),
            run_page_size: 500,
            log_level: read(&LOG_LEVEL)
                .or_else(|| read(&RUST_LOG))
                .and_then(|level| level.parse().ok())
                .unwrap_or(LevelFilter::INFO),
            log_json: read(&LOG_FORMAT).is_some_and(|f| f.eq_ignore_ascii_case("json")),
            concurrency: Concurrency::Concurrent,
            invocation_limit: Duration::from_secs(900),
        }
    }

    /// The defaults, for the given Mender; tests change fields from here.
    pub fn local(mender_url: &str) -> Config {
        let mut config = Config::from_lookup(|_| None);
        config.mender_url = mender_url.trim_end_matches('/').to_owned();
        config
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = config(&[]);
        assert_eq!(config.mender_url, "http://127.0.0.1:8081");
        assert_eq!(config.secrets_prefix, "mender-iot-bridge/");
        assert_eq!(config.table_name, "mender-iot-bridge");
        assert_eq!(config.event_bus_name, "mender-iot-bridge");
        assert_eq!(config.settings_ttl, Duration::from_secs(60));
        assert_eq!(config.public_url, "");
        assert_eq!(config.enrollment, Enrollment::Only(BTreeSet::new()));
        assert_eq!(config.data_plane_endpoint, None);
        assert_eq!(config.interactive, CallBudget::INTERACTIVE);
        assert_eq!(config.background, CallBudget::BACKGROUND);
        assert_eq!(config.run_aws_writes_per_second, Some(20));
        assert_eq!(config.device_record_table, "mender-iot-bridge-devices");
        assert_eq!(
            config.deep_check,
            DeepCheck {
                age: Duration::from_secs(3 * 3600),
                per_second: Some(2),
                most_per_run: 4800,
            }
        );
        assert_eq!(config.log_level, LevelFilter::INFO);
        assert!(!config.log_json);
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            ("MENDER_URL", "https://hosted.mender.io/"),
            ("SECRETS_PREFIX", "p/"),
            ("TABLE_NAME", "t"),
            ("DEVICE_RECORD_TABLE", "d"),
            ("DEEP_CHECKS_PER_SECOND", "5"),
            ("EVENT_BUS_NAME", "b"),
            ("SETTINGS_TTL_SECONDS", "5"),
            ("PUBLIC_URL", "https://api.example.com/"),
            ("ALLOWED_ORGANIZATIONS", "acme"),
            ("BRIDGE_ROLES", "arn:aws:iam::111122223333:role/b-*"),
            ("AWS_ATTEMPT_TIMEOUT_MS", "1500"),
            ("AWS_ENDPOINT_URL_IOT_DATA_PLANE", "http://127.0.0.1:5000"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("AWS_LAMBDA_LOG_FORMAT", "json"),
        ]);
        assert_eq!(config.mender_url, "https://hosted.mender.io");
        assert_eq!(config.secrets_prefix, "p/");
        assert_eq!(config.table_name, "t");
        assert_eq!(config.device_record_table, "d");
        assert_eq!(
            (config.deep_check.per_second, config.deep_check.most_per_run),
            (Some(5), 12_000)
        );
        assert_eq!(config.event_bus_name, "b");
        assert_eq!(config.settings_ttl, Duration::from_secs(5));
        assert_eq!(config.public_url, "https://api.example.com");
        assert!(config.enrollment.allows("acme"));
        assert_eq!(config.bridge_roles, "arn:aws:iam::111122223333:role/b-*");
        assert_eq!(
            config.data_plane_endpoint.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(
            config.background.aws.attempt_timeout,
            Duration::from_millis(1500)
        );
        assert_eq!(
            config.background.aws.operation_timeout,
            Duration::from_millis(9500)
        );
        assert_eq!(
            config.interactive.aws.attempt_timeout,
            Duration::from_millis(1500)
        );
        assert_eq!(config.log_level, LevelFilter::DEBUG);
        assert!(config.log_json);
    }

    #[test]
    fn unusable_values_fall_back_to_defaults() {
        let config = config(&[
            ("SETTINGS_TTL_SECONDS", "soon"),
            ("AWS_ATTEMPT_TIMEOUT_MS", "-1"),
            ("AWS_LAMBDA_LOG_LEVEL", "loud"),
            ("RUST_LOG", "warn"),
            ("TABLE_NAME", "  "),
        ]);
        assert_eq!(config.settings_ttl, Duration::from_secs(60));
        assert_eq!(config.background, CallBudget::BACKGROUND);
        // An unparsable Lambda level does not fall through to RUST_LOG.
        assert_eq!(config.log_level, LevelFilter::INFO);
        assert_eq!(config.table_name, "mender-iot-bridge");
    }

    #[test]
    fn allowed_organizations_fail_closed() {
        let only =
            |tenants: &[&str]| Enrollment::Only(tenants.iter().map(|t| (*t).to_owned()).collect());
        /// The variable (None when unset), the enrollment, who may, who may not.
        type Case<'a> = (Option<&'a str>, Enrollment, &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            (None, only(&[]), &[], &["acme", "", "*"]),
            (Some(""), only(&[]), &[], &["acme", ""]),
            (Some("  "), only(&[]), &[], &["acme"]),
            (Some(" , ,"), only(&[]), &[], &["acme", ""]),
            (Some("*"), Enrollment::Any, &["acme", "6500abc"], &[]),
            (Some(" * "), Enrollment::Any, &["acme"], &[]),
            (Some("acme,*"), Enrollment::Any, &["acme", "globex"], &[]),
            (
                Some("acme"),
                only(&["acme"]),
                &["acme"],
                &["globex", "Acme", "acm", "*"],
            ),
            (
                Some("acme, globex ,,initech"),
                only(&["acme", "globex", "initech"]),
                &["acme", "globex", "initech"],
                &["umbrella", " acme", ""],
            ),
            (
                Some("acme globex"),
                only(&["acme", "globex"]),
                &["globex"],
                &["acme globex"],
            ),
            (Some("**"), only(&["**"]), &[], &["acme", "*"]),
        ];
        for (value, enrollment, allowed, refused) in cases {
            let pairs: Vec<(&str, &str)> = value
                .iter()
                .map(|v| ("ALLOWED_ORGANIZATIONS", *v))
                .collect();
            let config = config(&pairs);
            assert_eq!(&config.enrollment, enrollment, "{value:?}");
            for tenant in *allowed {
                assert!(
                    config.enrollment.allows(tenant),
                    "{value:?} allows {tenant:?}"
                );
            }
            for tenant in *refused {
                assert!(
                    !config.enrollment.allows(tenant),
                    "{value:?} refuses {tenant:?}"
                );
            }
        }
        assert_eq!(Config::local("http://m").enrollment, only(&[]));
    }

    #[test]
    fn lambda_level_names_parse() {
        for (name, level) in [
            ("TRACE", LevelFilter::TRACE),
            ("DEBUG", LevelFilter::DEBUG),
            ("INFO", LevelFilter::INFO),
            ("WARN", LevelFilter::WARN),
            ("ERROR", LevelFilter::ERROR),
        ] {
            assert_eq!(config(&[("AWS_LAMBDA_LOG_LEVEL", name)]).log_level, level);
        }
        assert_eq!(
            config(&[("RUST_LOG", "trace")]).log_level,
            LevelFilter::TRACE
        );
    }

    #[test]
    fn interactive_calls_end_before_api_gateway_gives_up() {
        let budget = CallBudget::INTERACTIVE;
        assert!(budget.aws.operation_timeout < Duration::from_secs(29));
        assert!(budget.mender_timeout * 4 < Duration::from_secs(29));
        assert!(CallBudget::BACKGROUND.mender_timeout > budget.mender_timeout);
    }
}
