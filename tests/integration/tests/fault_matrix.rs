//! The fault matrix: every AWS and Mender call that provisioning, disable,
//! decommission, setup (`PUT /integration`) and a shadow update make, each
//! hit by throttling, a 5xx, a timeout and a connection reset, once and
//! persistently.
//!
//! * Once: the operation completes (the SDK's and the Mender client's
//!   retries absorb it).
//! * Persistently: the operation fails with an error that names what failed
//!   (lifecycle) or a 502/503 JSON refusal (HTTP routes), leaves no orphaned
//!   certificate, Thing, policy attachment, Mender webhook, token or secret,
//!   and once the fault is cleared a retry completes.
//!
//! The calls are not listed by hand: each operation is first run once
//! without faults, and every call the fault proxies saw (by name and
//! occurrence) becomes a row of the table, so a call added to the bridge
//! joins the matrix by itself. Each case starts from cold handler instances
//! (nothing cached), so calls made once per instance (settings, endpoint,
//! confirmed tokens) are in every case. Cases of one operation run one after
//! the other on one stack (the audit after each needs a quiet emulator);
//! operations, and timeouts apart from the rest, run concurrently on stacks
//! of their own. Timeouts use a short call policy (1 s per attempt).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use bridge::config::CallBudget;
use bridge::converge::Outcome;
use bridge::events::DetailType;
use bridge::lifecycle::handle;
use integration_tests::fault_proxy::{Fault, FaultProxy, FaultRule};
use integration_tests::resilience::{
    Cold, Reply, device_problems, divert_webhooks, envelope, known_secrets, nothing_left,
    record_figures, short_timeouts, snapshot, stored_shadow,
};
use integration_tests::stack::{
    DEVICE_RECORD_TABLE, EVENT_LOG_TABLE, POLICY, Stack, TABLE, TENANT, captured_logs,
    key_pair_setup, test_budget,
};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Provision,
    Disable,
    Decommission,
    Setup,
    ShadowUpdate,
}

const OPERATIONS: [Operation; 5] = [
    Operation::Provision,
    Operation::Disable,
    Operation::Decommission,
    Operation::Setup,
    Operation::ShadowUpdate,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Aws,
    Mender,
}

/// One call an operation makes: the proxy that sees it, its name (see
/// `fault_proxy::operation_name`), and which of the operation's calls of
/// that name it is (1 = the first).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    side: Side,
    name: String,
    occurrence: usize,
    /// The DynamoDB table the call was to, if it was to one.
    table: Option<String>,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {} #{}", self.side, self.name, self.occurrence)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Throttle,
    ServerError,
    Timeout,
    Reset,
}

const KINDS: [Kind; 4] = [
    Kind::Throttle,
    Kind::ServerError,
    Kind::Timeout,
    Kind::Reset,
];

impl Kind {
    fn fault(self) -> Fault {
        match self {
            Kind::Throttle => Fault::Throttle,
            Kind::ServerError => Fault::ServerError,
            Kind::Timeout => Fault::Timeout,
            Kind::Reset => Fault::Reset,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persistence {
    Once,
    Persistent,
}

/// Calls whose persistent failure an operation survives by design, and
/// why: by name, and by table if one is named.
const TOLERATED: &[(Operation, &str, Option<&str>, &str)] = &[
    (Operation::Provision, "DeleteItem", Some(TABLE), RELEASE),
    (Operation::Disable, "DeleteItem", Some(TABLE), RELEASE),
    (Operation::Decommission, "DeleteItem", Some(TABLE), RELEASE),
    (
        Operation::Provision,
        "DeleteItem",
        Some(DEVICE_RECORD_TABLE),
        FORGET,
    ),
    (
        Operation::Provision,
        "PutItem",
        Some(DEVICE_RECORD_TABLE),
        KEEP,
    ),
    (
        Operation::Provision,
        "PutItem",
        Some(EVENT_LOG_TABLE),
        RECORD,
    ),
    (Operation::Disable, "PutItem", Some(EVENT_LOG_TABLE), RECORD),
    (
        Operation::Decommission,
        "PutItem",
        Some(EVENT_LOG_TABLE),
        RECORD,
    ),
];
const RELEASE: &str = "releasing the device's lease: the work is done, the lease expires by itself";
const RECORD: &str = "the event log record: the work is done; its record is best effort (logged)";
const KEEP: &str = "keeping the record of what provisioning made: the work is done; without the record the next event or run looks at the device";
const FORGET: &str = "forgetting the device's record before provisioning: best effort (logged); a run forgets it when it resolves a stopped provisioning's intent";

fn tolerated(operation: Operation, site: &Site) -> bool {
    TOLERATED.iter().any(|(op, name, table, _)| {
        *op == operation
            && *name == site.name
            && table.is_none_or(|t| site.table.as_deref() == Some(t))
    })
}

/// One row of the matrix.
#[derive(Clone, Debug)]
struct Case {
    operation: Operation,
    site: Site,
    kind: Kind,
    persistence: Persistence,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} × {} × {:?} × {:?}",
            self.operation, self.site, self.kind, self.persistence
        )
    }
}

/// THE table: operation × call × fault × persistence.
fn table(operation: Operation, sites: &[Site], kinds: &[Kind]) -> Vec<Case> {
    let mut cases = Vec::new();
    for site in sites {
        for kind in kinds {
            for persistence in [Persistence::Once, Persistence::Persistent] {
                cases.push(Case {
                    operation,
                    site: site.clone(),
                    kind: *kind,
                    persistence,
                });
            }
        }
    }
    cases
}

/// What one case works on.
struct Subject {
    device: String,
    /// Setup: the admin running it (a fresh user, so that its tokens are
    /// its own) and its token.
    admin_token: String,
    /// Shadow update: the desired state written.
    desired: Value,
}

/// How a run of an operation ended.
enum Ended {
    Done,
    /// Failed, with what the caller was told.
    Failed(String),
    /// Neither: a wrong answer.
    Wrong(String),
}

/// Per-group state: the stack, and handlers used to arrange subjects.
struct Bench {
    stack: Stack,
    operation: Operation,
    policy: CallBudget,
    arrange: Cold,
    devices: Vec<String>,
    serial: usize,
    /// Orphans an earlier (failed) case left: reported there, not again.
    leftovers: std::collections::BTreeSet<String>,
}

impl Bench {
    async fn new(operation: Operation, policy: CallBudget) -> Bench {
        let stack = match operation {
            Operation::Setup => Stack::bare().await,
            _ => {
                let stack = Stack::start().await;
                divert_webhooks(&stack);
                stack
            }
        };
        let arrange = Cold::new(&stack, test_budget()).await;
        Bench {
            stack,
            operation,
            policy,
            arrange,
            devices: Vec::new(),
            serial: 0,
            leftovers: Default::default(),
        }
    }

    /// A device Mender accepted and the bridge provisioned.
    async fn provisioned_device(&mut self) -> String {
        let device = self.stack.mender.add_device(TENANT, "accepted", None);
        let report = handle(
            &self.arrange.lifecycle,
            envelope(&self.stack, DetailType::DeviceAccepted, &device),
        )
        .await
        .expect("arranging: provisioning without faults");
        assert_eq!(report.outcome, Some(Outcome::Provisioned));
        device
    }

    async fn prepare(&mut self) -> Subject {
        self.serial += 1;
        let stack = &self.stack;
        let mut subject = Subject {
            device: String::new(),
            admin_token: stack.admin_token.clone(),
            desired: json!({"case": self.serial}),
        };
        match self.operation {
            Operation::Provision => {
                let device = stack.mender.add_device(TENANT, "accepted", None);
                stack.mender.set_configuration(&device, keep());
                subject.device = device;
            }
            Operation::Disable => {
                subject.device = self.provisioned_device().await;
                self.stack.mender.reject(&subject.device).await;
            }
            Operation::Decommission => {
                subject.device = self.provisioned_device().await;
                self.stack.mender.decommission(&subject.device).await;
            }
            Operation::ShadowUpdate => {
                subject.device = self.provisioned_device().await;
            }
            Operation::Setup => {
                let user = stack.mender.add_user(
                    TENANT,
                    &format!("admin{}@acme.test", self.serial),
                    &["RBAC_ROLE_PERMIT_ALL"],
                    None,
                );
                subject.admin_token = stack.mender.issue_token(&user, Duration::from_secs(3600));
            }
        }
        if !subject.device.is_empty() {
            self.devices.push(subject.device.clone());
        }
        subject
    }

    async fn perform(&self, cold: &Cold, subject: &Subject) -> Ended {
        let stack = &self.stack;
        let lifecycle = |detail_type, wanted: Outcome| async move {
            match handle(
                &cold.lifecycle,
                envelope(stack, detail_type, &subject.device),
            )
            .await
            {
                Ok(report) if report.outcome == Some(wanted) => Ended::Done,
                Ok(report) => Ended::Wrong(format!("outcome {:?}", report.outcome)),
                Err(error) => Ended::Failed(error.to_string()),
            }
        };
        let http = |reply: Reply, ok: u16| {
            if reply.status == ok {
                Ended::Done
            } else if reply.is_clear_outage() {
                Ended::Failed(reply.text)
            } else {
                Ended::Wrong(format!("{}: {}", reply.status, reply.text))
            }
        };
        match self.operation {
            Operation::Provision => {
                lifecycle(DetailType::DeviceAccepted, Outcome::Provisioned).await
            }
            Operation::Disable => lifecycle(DetailType::DeviceDisabled, Outcome::Disabled).await,
            Operation::Decommission => {
                lifecycle(DetailType::DeviceDecommissioned, Outcome::Removed).await
            }
            Operation::Setup => http(
                cold.create_integration(&subject.admin_token, &key_pair_setup(POLICY))
                    .await,
                201,
            ),
            Operation::ShadowUpdate => {
                let reply = cold
                    .put_state(
                        &subject.device,
                        &self.stack.integration_id,
                        &subject.admin_token,
                        &json!({"desired": subject.desired}),
                    )
                    .await;
                if reply.status == 200 && reply.body["desired"] != subject.desired {
                    return Ended::Wrong(format!("answered {}", reply.text));
                }
                http(reply, 200)
            }
        }
    }

    /// After a completed run: AWS (or the integration) is as it should be.
    /// Setup is then removed again, so the next case starts bare.
    /// Nothing new is orphaned, and the subject's device is as Mender says.
    async fn audit(&self, subject: &Subject) -> Vec<String> {
        let snapshot = snapshot(&self.stack).await;
        let mut problems = Vec::new();
        let new: Vec<&String> = snapshot
            .orphans
            .iter()
            .chain(&snapshot.dangling_policy_targets)
            .filter(|arn| !self.leftovers.contains(*arn))
            .collect();
        if !new.is_empty() {
            problems.push(format!(
                "orphaned certificates or policy attachments: {new:?}"
            ));
        }
        if !subject.device.is_empty() {
            problems.extend(device_problems(
                &self.stack,
                &snapshot,
                std::slice::from_ref(&subject.device),
            ));
        }
        problems
    }

    async fn check_done(&self, cold: &Cold, subject: &Subject) -> Vec<String> {
        let stack = &self.stack;
        let mut problems = self.audit(subject).await;
        match self.operation {
            Operation::Provision => {
                let configuration = stack.mender.configuration(&subject.device);
                if configuration.as_ref().and_then(|c| c.get("keep")).is_none() {
                    problems.push(format!("configuration lost its keys: {configuration:?}"));
                }
            }
            Operation::ShadowUpdate => {
                let (desired, _) = stored_shadow(stack, &subject.device).await;
                if desired != subject.desired {
                    problems.push(format!("shadow holds {desired}"));
                }
            }
            Operation::Setup => {
                if stack.mender.webhook_integration(TENANT).is_none() {
                    problems.push("no Mender webhook after setup".into());
                }
                let listed = cold.integrations(&subject.admin_token).await;
                match listed.body[0]["id"].as_str() {
                    Some(id) => {
                        let removed = cold.delete_integration(&subject.admin_token, id).await;
                        if removed.status != 204 {
                            problems.push(format!("DELETE after setup: {}", removed.text));
                        }
                    }
                    None => problems.push(format!(
                        "no integration listed after setup: {}",
                        listed.text
                    )),
                }
                problems.extend(nothing_left(stack, &subject.admin_token).await);
            }
            Operation::Disable | Operation::Decommission => {}
        }
        problems
    }

    /// After a failed run: nothing half-made remains.
    async fn check_failed(&self, subject: &Subject) -> Vec<String> {
        let stack = &self.stack;
        // Nothing is orphaned (the subject itself may be half-converged).
        let mut problems: Vec<String> = self
            .audit(subject)
            .await
            .into_iter()
            .filter(|p| p.starts_with("orphaned"))
            .collect();
        match self.operation {
            Operation::Provision => {
                if stack.thing_attributes(&subject.device).await.is_some() {
                    problems.push("a Thing was left".into());
                }
                if stack.mender.configuration(&subject.device) != Some(keep()) {
                    problems.push(format!(
                        "configuration not restored: {:?}",
                        stack
                            .mender
                            .configuration(&subject.device)
                            .map(|c| c.keys().cloned().collect::<Vec<_>>())
                    ));
                }
            }
            Operation::Disable => {
                if stack.thing_principals(&subject.device).await.len() != 1 {
                    problems.push("the device's certificate was lost".into());
                }
            }
            Operation::Decommission => {}
            Operation::ShadowUpdate => {
                let (desired, _) = stored_shadow(stack, &subject.device).await;
                if desired == subject.desired {
                    problems.push("a failed write was applied".into());
                }
            }
            Operation::Setup => problems.extend(nothing_left(stack, &subject.admin_token).await),
        }
        problems
    }

    async fn run(&mut self, case: &Case) -> Vec<String> {
        let subject = self.prepare().await;
        let cold = Cold::new(&self.stack, self.policy).await;
        let proxy = match case.site.side {
            Side::Aws => self.stack.aws_proxy.clone(),
            Side::Mender => self.stack.mender_proxy.clone(),
        };
        self.stack.aws_proxy.reset_calls();
        self.stack.mender_proxy.reset_calls();
        inject(&proxy, case);
        let ended = self.perform(&cold, &subject).await;
        proxy.clear();
        let mut problems = Vec::new();
        let faulted = proxy
            .calls()
            .iter()
            .filter(|c| c.operation == case.site.name)
            .filter(|c| {
                c.fault
                    .as_ref()
                    .is_some_and(|f| !matches!(f, Fault::Latency(_)))
            })
            .count();
        if faulted == 0 {
            problems.push("the call was never made: the fault was not injected".into());
        }
        let must_complete =
            case.persistence == Persistence::Once || tolerated(case.operation, &case.site);
        match (ended, must_complete) {
            (Ended::Done, true) => problems.extend(self.check_done(&cold, &subject).await),
            (Ended::Done, false) => problems.push("completed despite a persistent fault".into()),
            (Ended::Wrong(answer), _) => problems.push(format!("wrong answer: {answer}")),
            (Ended::Failed(error), true) => problems.push(format!("failed: {error}")),
            (Ended::Failed(error), false) => {
                problems.extend(check_message(case, &error));
                problems.extend(check_no_secret(&self.stack, &error).await);
                problems.extend(self.check_failed(&subject).await);
                // Faults cleared: the retry (a warm instance) completes.
                match self.perform(&cold, &subject).await {
                    Ended::Done => problems.extend(self.check_done(&cold, &subject).await),
                    Ended::Failed(error) | Ended::Wrong(error) => {
                        problems.push(format!("the retry failed: {error}"))
                    }
                }
            }
        }
        let after = snapshot(&self.stack).await;
        self.leftovers.extend(after.orphans);
        self.leftovers.extend(after.dangling_policy_targets);
        problems
    }
}

fn keep() -> BTreeMap<String, String> {
    BTreeMap::from([("keep".to_owned(), "me".to_owned())])
}

/// Faults `case.site`: the calls of that name before it pass untouched.
fn inject(proxy: &FaultProxy, case: &Case) {
    for _ in 1..case.site.occurrence {
        proxy.inject(FaultRule::once(
            &case.site.name,
            Fault::Latency(Duration::ZERO),
        ));
    }
    let fault = case.kind.fault();
    proxy.inject(match case.persistence {
        Persistence::Once => FaultRule::once(&case.site.name, fault),
        Persistence::Persistent => FaultRule::always(&case.site.name, fault),
    });
}

/// A lifecycle failure names the system that failed.
fn check_message(case: &Case, error: &str) -> Vec<String> {
    let names = match (case.operation, case.site.side) {
        (Operation::Setup | Operation::ShadowUpdate, _) => return Vec::new(),
        (_, Side::Mender) => &["Mender"][..],
        (_, Side::Aws) => &["AWS", "DynamoDB", "Secrets Manager"][..],
    };
    if names.iter().any(|n| error.contains(n)) {
        Vec::new()
    } else {
        vec![format!("the error does not say what failed: {error}")]
    }
}

/// An error told to a caller (or returned to EventBridge) holds no secret.
async fn check_no_secret(stack: &Stack, error: &str) -> Vec<String> {
    let secrets = known_secrets(stack, &[]).await;
    let found = integration_tests::resilience::leaked(error, &secrets);
    if found.is_empty() {
        Vec::new()
    } else {
        vec![format!("the error carries {} secret value(s)", found.len())]
    }
}

/// Runs the operation once without faults; every call the proxies saw.
async fn discover(bench: &mut Bench) -> Vec<Site> {
    let subject = bench.prepare().await;
    let cold = Cold::new(&bench.stack, bench.policy).await;
    bench.stack.aws_proxy.reset_calls();
    bench.stack.mender_proxy.reset_calls();
    let ended = bench.perform(&cold, &subject).await;
    let mut sites = Vec::new();
    let mut seen: BTreeMap<(Side, String), usize> = BTreeMap::new();
    for (side, proxy) in [
        (Side::Aws, &bench.stack.aws_proxy),
        (Side::Mender, &bench.stack.mender_proxy),
    ] {
        for call in proxy.calls() {
            let occurrence = seen.entry((side, call.operation.clone())).or_default();
            *occurrence += 1;
            sites.push(Site {
                side,
                table: call.table(),
                name: call.operation,
                occurrence: *occurrence,
            });
        }
    }
    match ended {
        Ended::Done => {}
        Ended::Failed(e) | Ended::Wrong(e) => {
            panic!("{:?} fails without faults: {e}", bench.operation)
        }
    }
    let problems = bench.check_done(&cold, &subject).await;
    assert!(problems.is_empty(), "{:?}: {problems:?}", bench.operation);
    sites.sort();
    sites
}

struct GroupReport {
    operation: Operation,
    sites: Vec<Site>,
    cases: usize,
    failures: Vec<(String, Vec<String>)>,
    secrets_leaked: Vec<String>,
    elapsed: Duration,
}

/// One operation's cases with `kinds`, one after the other on one stack.
async fn run_group(
    operation: Operation,
    kinds: &'static [Kind],
    policy: CallBudget,
) -> GroupReport {
    let started = Instant::now();
    let mut bench = Bench::new(operation, policy).await;
    let sites = discover(&mut bench).await;
    let cases = table(operation, &sites, kinds);
    let mut failures = Vec::new();
    for case in &cases {
        let problems = match tokio::time::timeout(Duration::from_secs(90), bench.run(case)).await {
            Ok(problems) => problems,
            Err(_) => vec!["did not finish within 90 s".into()],
        };
        if !problems.is_empty() {
            failures.push((case.to_string(), problems));
        }
    }
    // No secret reached a log line of this binary, nor an answer.
    let secrets = known_secrets(&bench.stack, &bench.devices).await;
    let logs = captured_logs();
    let secrets_leaked = integration_tests::resilience::leaked(&logs, &secrets)
        .into_iter()
        .map(|s| s.chars().take(6).collect())
        .collect();
    GroupReport {
        operation,
        sites,
        cases: cases.len(),
        failures,
        secrets_leaked,
        elapsed: started.elapsed(),
    }
}

/// The groups are polled together on one thread, as one future that
/// outgrows a test thread's 2 MiB stack in debug builds: it runs on a
/// thread of its own with room to spare.
#[test]
fn every_call_under_every_fault() {
    std::thread::Builder::new()
        .name("fault-matrix".into())
        .stack_size(16 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap()
                .block_on(fault_matrix())
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn fault_matrix() {
    let started = Instant::now();
    const FAST: &[Kind] = &[Kind::Throttle, Kind::ServerError, Kind::Reset];
    assert!(
        KINDS
            .iter()
            .all(|k| FAST.contains(k) || *k == Kind::Timeout)
    );
    let groups = |kinds: &'static [Kind], budget: CallBudget| {
        futures::future::join_all(OPERATIONS.map(|operation| run_group(operation, kinds, budget)))
    };
    // Throttling, 5xx and resets run in `make test`. Injected timeouts cost
    // seconds per attempt, and with ten emulators on two cores an honest
    // retry can outrun the short test timeouts: they run on their own, after
    // the rest, with `FAULT_MATRIX_TIMEOUTS=1` (`make resilience`).
    let mut reports = groups(FAST, test_budget()).await;
    if std::env::var_os("FAULT_MATRIX_TIMEOUTS").is_some_and(|v| !v.is_empty()) {
        reports.extend(groups(&[Kind::Timeout], short_timeouts()).await);
    }

    let total: usize = reports.iter().map(|r| r.cases).sum();
    let failed: usize = reports.iter().map(|r| r.failures.len()).sum();
    let mut per_operation = serde_json::Map::new();
    for report in &reports {
        println!(
            "fault matrix: {:?}: {} calls, {} cases, {} failed, {:.0?}",
            report.operation,
            report.sites.len(),
            report.cases,
            report.failures.len(),
            report.elapsed
        );
        let entry = per_operation
            .entry(format!("{:?}", report.operation))
            .or_insert_with(|| json!({"calls": report.sites.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "cases": 0, "failed": 0}));
        entry["cases"] = json!(entry["cases"].as_u64().unwrap() + report.cases as u64);
        entry["failed"] = json!(entry["failed"].as_u64().unwrap() + report.failures.len() as u64);
    }
    println!(
        "fault matrix: {total} cases run, {} passed, {failed} failed, in {:.0?}",
        total - failed,
        started.elapsed()
    );
    record_figures(
        "fault_matrix",
        &json!({"cases": total, "passed": total - failed, "failed": failed,
            "seconds": started.elapsed().as_secs(), "operations": per_operation}),
    );
    for report in &reports {
        assert!(
            !report.sites.is_empty(),
            "{:?}: no call discovered",
            report.operation
        );
        assert!(
            report.secrets_leaked.is_empty(),
            "{:?}: secrets in the logs: {:?}",
            report.operation,
            report.secrets_leaked
        );
    }
    let failures: Vec<String> = reports
        .iter()
        .flat_map(|r| &r.failures)
        .map(|(case, problems)| format!("{case}: {}", problems.join("; ")))
        .collect();
    assert!(
        failures.is_empty(),
        "{failed} of {total} cases failed:\n{}",
        failures.join("\n")
    );
}

/// The table itself: every operation × call × fault × persistence, and
/// nothing else.
#[test]
fn the_table_crosses_every_call_with_every_fault_once_and_persistently() {
    let sites = vec![
        Site {
            side: Side::Aws,
            name: "CreateThing".into(),
            occurrence: 1,
            table: None,
        },
        Site {
            side: Side::Mender,
            name: "GET /x".into(),
            occurrence: 2,
            table: None,
        },
    ];
    let cases = table(Operation::Provision, &sites, &KINDS);
    assert_eq!(cases.len(), sites.len() * KINDS.len() * 2);
    for site in &sites {
        for kind in KINDS {
            for persistence in [Persistence::Once, Persistence::Persistent] {
                assert!(
                    cases
                        .iter()
                        .any(|c| c.site == *site && c.kind == kind && c.persistence == persistence)
                );
            }
        }
    }
}

#[test]
fn only_the_calls_named_are_tolerated() {
    let site = |name: &str, table: Option<&str>| Site {
        side: Side::Aws,
        name: name.into(),
        occurrence: 2,
        table: table.map(str::to_owned),
    };
    for (operation, site, expected) in [
        (
            Operation::Provision,
            site("PutItem", Some(EVENT_LOG_TABLE)),
            true,
        ),
        (Operation::Provision, site("PutItem", Some(TABLE)), false),
        (
            Operation::Decommission,
            site("DeleteItem", Some(TABLE)),
            true,
        ),
        (Operation::Setup, site("DeleteItem", Some(TABLE)), false),
        (
            Operation::Provision,
            site("DeleteItem", Some(DEVICE_RECORD_TABLE)),
            true,
        ),
        (
            Operation::Disable,
            site("DeleteItem", Some(DEVICE_RECORD_TABLE)),
            false,
        ),
        (Operation::Provision, site("CreateThing", None), false),
    ] {
        assert_eq!(
            tolerated(operation, &site),
            expected,
            "{operation:?} {site}"
        );
    }
}

/// The secret scan at the end of each group can fail: it knows the stack's secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_helpers_see_the_stacks_secrets() {
    let stack = Stack::start().await;
    let secrets = known_secrets(&stack, &[]).await;
    assert!(secrets.contains(&stack.webhook_secret));
    assert!(secrets.contains(&stack.admin_token));
    assert!(
        !integration_tests::resilience::leaked(&format!("x{}y", stack.webhook_secret), &secrets)
            .is_empty()
    );
}
