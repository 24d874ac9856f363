//! `template.yaml` held against the code, so that what is deployed is what
//! is tested: every function is a crate of the workspace, every route is one
//! the local runner serves (and the other way round), every bus rule matches
//! a detail-type the ingress publishes, every environment variable the code
//! reads is set, dead letters and errors raise alarms, and each function's
//! role allows only what it calls, on only its own resources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bridge::config::{self, SetFor};
use bridge::events::{DetailType, SOURCE};
use bridge::settings::{IntegrationSettings, Stored, WebhookSecret};
use integration_tests::app::ROUTES;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------- the template as JSON

/// The template, with CloudFormation's short-form tags (`!Ref`, `!Sub`,
/// `!GetAtt`, …) turned into their long forms.
fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let yaml: yaml_serde::Value = yaml_serde::from_str(&text).expect("template.yaml is YAML");
    to_json(yaml)
}

fn to_json(value: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(mapping) => Value::Object(
            mapping
                .into_iter()
                .map(|(key, value)| {
                    let key = match to_json(key) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: value }),
                // `!GetAtt A.B` is `Fn::GetAtt: [A, B]`.
                "GetAtt" => match value {
                    Value::String(s) => {
                        let (resource, attribute) =
                            s.split_once('.').expect("!GetAtt Resource.Attribute");
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                _ => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

struct Template {
    doc: Value,
}

impl Template {
    fn load() -> Self {
        Template { doc: template() }
    }

    fn resources(&self) -> &serde_json::Map<String, Value> {
        self.doc["Resources"].as_object().expect("Resources")
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources()
            .iter()
            .filter(move |(_, resource)| resource["Type"] == kind)
    }

    fn resource_type(&self, id: &str) -> &str {
        self.resources()
            .get(id)
            .and_then(|r| r["Type"].as_str())
            .unwrap_or_else(|| panic!("no resource {id}"))
    }

    /// The function resources: logical id → binary (crate) name.
    fn functions(&self) -> BTreeMap<String, String> {
        self.of_type("AWS::Serverless::Function")
            .map(|(id, function)| {
                let binary = function["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{id}: Metadata.BuildProperties.Binary"));
                (id.clone(), binary.to_owned())
            })
            .collect()
    }

    /// Globals' environment with the function's own on top.
    fn environment(&self, function_id: &str) -> BTreeMap<String, Value> {
        let mut variables = BTreeMap::new();
        for source in [
            &self.doc["Globals"]["Function"]["Environment"]["Variables"],
            &self.resources()[function_id]["Properties"]["Environment"]["Variables"],
        ] {
            if let Some(map) = source.as_object() {
                for (name, value) in map {
                    variables.insert(name.clone(), value.clone());
                }
            }
        }
        variables
    }

    /// Every (method, path) routed to a function: (route, function id).
    fn routes(&self) -> BTreeMap<(String, String), String> {
        let mut routes = BTreeMap::new();
        for (id, route) in self.of_type("AWS::ApiGatewayV2::Route") {
            let key = route["Properties"]["RouteKey"].as_str().expect("RouteKey");
            let (method, path) = key.split_once(' ').expect("RouteKey is `METHOD /path`");
            let target = route["Properties"]["Target"]["Fn::Sub"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: Target is !Sub integrations/${{Integration}}"));
            let integration = target
                .strip_prefix("integrations/${")
                .and_then(|t| t.strip_suffix('}'))
                .unwrap_or_else(|| panic!("{id}: Target {target}"));
            assert_eq!(
                self.resource_type(integration),
                "AWS::ApiGatewayV2::Integration"
            );
            let integration = &self.resources()[integration]["Properties"];
            assert_eq!(integration["IntegrationType"], "AWS_PROXY", "{id}");
            assert_eq!(integration["PayloadFormatVersion"], "2.0", "{id}");
            assert_eq!(
                route["Properties"]["ApiId"],
                json!({"Ref": "HttpApi"}),
                "{id}"
            );
            assert_eq!(integration["ApiId"], json!({"Ref": "HttpApi"}), "{id}");
            let function = integration["IntegrationUri"]["Fn::GetAtt"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: IntegrationUri is !GetAtt Function.Arn"));
            let previous = routes.insert((method.to_owned(), path.to_owned()), function.to_owned());
            assert!(previous.is_none(), "route {key} declared twice");
        }
        routes
    }

    /// The EventBridge rules: (function id, event name, properties).
    fn rules(&self) -> Vec<(String, String, Value)> {
        let mut rules = Vec::new();
        for (id, function) in self.of_type("AWS::Serverless::Function") {
            if let Some(events) = function["Properties"]["Events"].as_object() {
                for (name, event) in events {
                    match event["Type"].as_str() {
                        Some("EventBridgeRule") => {
                            rules.push((id.clone(), name.clone(), event["Properties"].clone()))
                        }
                        // The reconcile schedule: not a bus rule.
                        Some("Schedule") => {}
                        Some("HttpApi" | "Api") => panic!(
                            "{id}.{name}: declare routes as AWS::ApiGatewayV2::Route resources \
                             (SAM's generated API would make a dependency cycle with PUBLIC_URL)"
                        ),
                        other => panic!("{id}.{name}: unexpected event type {other:?}"),
                    }
                }
            }
        }
        rules
    }

    /// Alarms' (namespace, metric, dimension value) triples.
    fn alarms(&self) -> BTreeSet<(String, String, String)> {
        self.of_type("AWS::CloudWatch::Alarm")
            .flat_map(|(_, alarm)| {
                let p = &alarm["Properties"];
                let namespace = p["Namespace"].as_str().unwrap_or_default().to_owned();
                let metric = p["MetricName"].as_str().unwrap_or_default().to_owned();
                p["Dimensions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |d| (namespace.clone(), metric.clone(), d["Value"].to_string()))
            })
            .collect()
    }
}

// ---------------------------------------------------------------- the workspace

/// Function crates under functions/: directory → package name.
fn function_crates() -> BTreeMap<String, String> {
    let mut crates = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = dir.join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest).unwrap();
        crates.insert(
            dir.file_name().unwrap().to_string_lossy().into_owned(),
            package_name(&text)
                .unwrap_or_else(|| panic!("{} has no package name", manifest.display())),
        );
    }
    crates
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_owned());
        }
    }
    None
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_function_is_a_crate_of_the_workspace_built_the_same_way() {
    let template = Template::load();
    let globals = &template.doc["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    // arm64 deployed; x86_64 selectable for `sam local` (make sam-local).
    assert_eq!(globals["Architectures"], json!([{"Ref": "Architecture"}]));
    let architecture = &template.doc["Parameters"]["Architecture"];
    assert_eq!(architecture["Default"], "arm64");
    assert_eq!(architecture["AllowedValues"], json!(["arm64", "x86_64"]));
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");

    let crates = function_crates();
    let functions = template.functions();
    for (id, binary) in &functions {
        let function = &template.resources()[id];
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id}"
        );
        let code_uri = function["Properties"]["CodeUri"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: CodeUri"));
        let directory = code_uri
            .strip_prefix("functions/")
            .unwrap_or_else(|| panic!("{id}: CodeUri {code_uri} is not under functions/"));
        assert_eq!(
            crates.get(directory),
            Some(binary),
            "{id}: {code_uri} must be the crate `{binary}` (crates: {crates:?})"
        );
        assert!(
            root().join(code_uri).join("src/main.rs").exists(),
            "{id}: {code_uri}/src/main.rs"
        );
        assert!(
            function["Properties"]["MemorySize"].is_u64()
                && function["Properties"]["Timeout"].is_u64(),
            "{id}: memory and timeout are set per function"
        );
    }

    let deployed: BTreeSet<&String> = functions.values().collect();
    for (directory, package) in &crates {
        assert!(
            deployed.contains(package),
            "functions/{directory} (`{package}`) is not in template.yaml"
        );
    }
}

#[test]
fn routes_are_the_ones_the_local_runner_serves() {
    let template = Template::load();
    let routes = template.routes();
    let functions = template.functions();
    let in_template: BTreeSet<(String, String)> = routes.keys().cloned().collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        in_template, served,
        "template.yaml routes (left) and integration_tests::app::ROUTES (right) differ"
    );

    // Each route reaches the function whose crate says it serves that path,
    // and API Gateway may invoke that function.
    for ((method, path), function) in &routes {
        let binary = functions
            .get(function)
            .unwrap_or_else(|| panic!("{method} {path} goes to {function}, not a function"));
        let main =
            std::fs::read_to_string(root().join("functions").join(binary).join("src/main.rs"))
                .unwrap();
        assert!(
            main.contains(path.as_str()),
            "{method} {path} goes to {binary}, whose main.rs does not mention {path}"
        );
        let permitted = template.of_type("AWS::Lambda::Permission").any(|(_, p)| {
            p["Properties"]["FunctionName"] == json!({"Ref": function})
                && p["Properties"]["Principal"] == "apigateway.amazonaws.com"
        });
        assert!(
            permitted,
            "no permission for API Gateway to invoke {function}"
        );
    }
}

#[test]
fn bus_rules_match_what_the_ingress_publishes_and_dead_letter_with_alarms() {
    let template = Template::load();
    let functions = template.functions();
    let alarms = template.alarms();
    let emitted: BTreeSet<&str> = DetailType::ALL.iter().map(|d| d.as_str()).collect();
    let mut routed = BTreeSet::new();
    for (function, name, rule) in template.rules() {
        let at = format!("{function}.{name}");
        assert_eq!(rule["EventBusName"], json!({"Ref": "Bus"}), "{at}");
        assert_eq!(template.resource_type("Bus"), "AWS::Events::EventBus");
        assert_eq!(rule["Pattern"]["source"], json!([SOURCE]), "{at}");
        let detail_types = rule["Pattern"]["detail-type"]
            .as_array()
            .unwrap_or_else(|| panic!("{at}: detail-type"));
        assert_eq!(
            detail_types.len(),
            1,
            "{at}: one exact detail-type per rule"
        );
        let detail_type = detail_types[0].as_str().unwrap();
        assert!(
            emitted.contains(detail_type),
            "{at}: `{detail_type}` is not a bridge::events::DetailType"
        );
        assert!(
            routed.insert(detail_type.to_owned()),
            "{detail_type} has two rules"
        );
        if emitted.contains(functions[&function].as_str()) {
            assert_eq!(
                functions[&function], detail_type,
                "{at} routes to the wrong function"
            );
        }

        assert!(
            rule["RetryPolicy"]["MaximumRetryAttempts"].is_u64(),
            "{at}: RetryPolicy"
        );
        assert!(
            rule["RetryPolicy"]["MaximumEventAgeInSeconds"].is_u64(),
            "{at}: RetryPolicy"
        );
        let queue = rule["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: DeadLetterConfig.Arn is !GetAtt Queue.Arn"));
        assert_eq!(template.resource_type(queue), "AWS::SQS::Queue", "{at}");
        // Failed invocations (EventBridge invokes asynchronously) go there too.
        let on_failure = &template.resources()[&function]["Properties"]["EventInvokeConfig"]["DestinationConfig"]
            ["OnFailure"];
        assert_eq!(
            on_failure["Destination"]["Fn::GetAtt"][0], queue,
            "{function}: EventInvokeConfig on-failure destination"
        );
        assert!(
            alarms.contains(&(
                "AWS/SQS".to_owned(),
                "ApproximateNumberOfMessagesVisible".to_owned(),
                json!({"Fn::GetAtt": [queue, "QueueName"]}).to_string()
            )),
            "{queue} has no alarm"
        );
    }
    let expected: BTreeSet<String> = emitted.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        routed, expected,
        "every detail-type the bridge publishes has one rule"
    );
}

#[test]
fn every_function_has_an_error_alarm() {
    let template = Template::load();
    let alarms = template.alarms();
    for function in template.functions().keys() {
        assert!(
            alarms.contains(&(
                "AWS/Lambda".to_owned(),
                "Errors".to_owned(),
                json!({"Ref": function}).to_string()
            )),
            "{function} has no Errors alarm"
        );
    }
}

#[test]
fn every_environment_variable_the_code_reads_is_set() {
    let template = Template::load();
    // What Lambda derives the `SetFor::Lambda` variables from, for every function.
    let logging = &template.doc["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(logging["LogFormat"], "JSON", "{logging}");
    assert!(logging["ApplicationLogLevel"].is_object(), "{logging}");

    for (id, binary) in template.functions() {
        let environment = template.environment(&id);
        let set: BTreeSet<&str> = environment.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = config::VARIABLES
            .iter()
            .filter(|variable| match variable.set_for {
                SetFor::Every | SetFor::SamLocal => true,
                SetFor::Only(functions) => functions.contains(&binary.as_str()),
                SetFor::Lambda | SetFor::Never => false,
            })
            .map(|variable| variable.name)
            .collect();
        assert_eq!(
            set, expected,
            "{id} ({binary}): the template's variables against bridge::config::VARIABLES"
        );
        for variable in config::VARIABLES {
            if variable.set_for == SetFor::SamLocal {
                assert_eq!(
                    environment[variable.name],
                    json!({"Ref": "AWS::NoValue"}),
                    "{id}: {} is declared for sam local only, absent in AWS",
                    variable.name
                );
            }
        }
        if let Some(public_url) = environment.get(config::PUBLIC_URL.name) {
            assert_eq!(
                public_url, &template.doc["Outputs"]["ApiUrl"]["Value"],
                "{id}: PUBLIC_URL is the API's URL"
            );
        }
    }
}

/// The configuration is read in one place: no other file of the library
/// or the functions reads the environment. (The functions' build script
/// reads cargo's description of the build, at build time, not theirs.)
#[test]
fn only_the_configuration_reads_the_environment() {
    let mut files = Vec::new();
    rust_files(&root().join("shared/src"), &mut files);
    rust_files(&root().join("functions"), &mut files);
    let readers: Vec<PathBuf> = files
        .into_iter()
        .filter(|file| !file.ends_with("shared/src/config.rs"))
        .filter(|file| !file.ends_with("functions/build.rs"))
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            text.contains("env::var") || text.contains("env!(")
        })
        .collect();
    assert!(readers.is_empty(), "read the environment: {readers:?}");
}

/// Which kind of integration secret (`bridge::settings::Stored::KIND`) a
/// Secrets Manager resource names, if it names exactly one kind.
fn secret_kind(resource: &Value) -> Option<&'static str> {
    let sub = resource["Fn::Sub"].as_str()?;
    [IntegrationSettings::KIND, WebhookSecret::KIND]
        .into_iter()
        .find(|kind| sub.ends_with(&format!(":secret:${{SecretsPrefix}}{kind}/*")))
}

/// A statement's resources, one or a list.
fn resources_of(statement: &Value) -> Vec<Value> {
    match &statement["Resource"] {
        Value::Array(resources) => resources.clone(),
        resource => vec![resource.clone()],
    }
}

/// What a statement may name: (action prefix, allowed resource).
fn resource_allowed(action: &str, resource: &Value) -> bool {
    let sub = resource["Fn::Sub"].as_str().unwrap_or_default();
    match action.split_once(':').map(|(service, _)| service) {
        Some("secretsmanager") => secret_kind(resource).is_some(),
        // The event log is written by the functions that change devices
        // and read by the integration API: never changed, never deleted from.
        // Device records are kept by the functions that converge devices,
        // read one at a time by lifecycle events and in bulk by runs.
        Some("dynamodb") => {
            *resource == json!({"Fn::GetAtt": ["Table", "Arn"]})
                || (*resource == json!({"Fn::GetAtt": ["EventLogTable", "Arn"]})
                    && matches!(action, "dynamodb:PutItem" | "dynamodb:Query"))
                || (*resource == json!({"Fn::GetAtt": ["DeviceRecordTable", "Arn"]})
                    && matches!(
                        action,
                        "dynamodb:GetItem"
                            | "dynamodb:BatchGetItem"
                            | "dynamodb:PutItem"
                            | "dynamodb:DeleteItem"
                    ))
        }
        Some("events") => *resource == json!({"Fn::GetAtt": ["Bus", "Arn"]}),
        Some("sts") => {
            action == "sts:AssumeRole" && sub.ends_with(":role/${TenantRoleNamePrefix}*")
        }
        _ => false,
    }
}

#[test]
fn each_role_allows_only_its_own_calls_on_its_own_resources() {
    let template = Template::load();
    let mut actions_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, binary) in template.functions() {
        let policies = template.resources()[&id]["Properties"]["Policies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let actions = actions_of.entry(binary.clone()).or_default();
        for policy in policies {
            let statements = policy["Statement"].as_array().unwrap_or_else(|| {
                panic!("{id}: only inline policy documents (no SAM policy templates)")
            });
            for statement in statements {
                assert_eq!(statement["Effect"], "Allow", "{id}");
                let listed = match &statement["Action"] {
                    Value::String(a) => vec![a.clone()],
                    Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
                    other => panic!("{id}: Action {other}"),
                };
                for action in listed {
                    assert!(!action.contains('*'), "{id}: wildcard action {action}");
                    assert!(
                        !action.starts_with("iot:") && !action.starts_with("iotdata:"),
                        "{id}: AWS IoT is called with the organization's credentials, not the function's role"
                    );
                    for resource in resources_of(statement) {
                        assert!(
                            resource_allowed(&action, &resource),
                            "{id}: {action} on {resource}"
                        );
                    }
                    actions.insert(action);
                }
            }
        }
    }
    let set = |actions: &[&str]| {
        actions
            .iter()
            .map(|a| a.to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        actions_of["webhook-ingress"],
        set(&["secretsmanager:GetSecretValue", "events:PutEvents"]),
        "the ingress reads webhook secrets and publishes events, nothing else"
    );
    for lifecycle in [
        "device-accepted",
        "device-disabled",
        "device-decommissioned",
    ] {
        assert_eq!(
            actions_of[lifecycle],
            set(&[
                "secretsmanager:GetSecretValue",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "sts:AssumeRole"
            ]),
            "{lifecycle}"
        );
    }
}

#[test]
fn short_form_tags_become_long_forms() {
    let yaml =
        "a: !Ref X\nb: !GetAtt Y.Arn\nc: !Sub 'x-${Z}'\nd: !If [C, !Ref A, !Ref AWS::NoValue]\n";
    let value = to_json(yaml_serde::from_str(yaml).unwrap());
    assert_eq!(
        value,
        json!({
            "a": {"Ref": "X"},
            "b": {"Fn::GetAtt": ["Y", "Arn"]},
            "c": {"Fn::Sub": "x-${Z}"},
            "d": {"Fn::If": ["C", {"Ref": "A"}, {"Ref": "AWS::NoValue"}]},
        })
    );
}

/// The policy documents in `infra/` are the ones `docs/deploy.md` shows, in
/// the same order, so an operator copying either gets the same thing.
#[test]
fn infra_policies_are_the_ones_the_deploy_guide_shows() {
    let guide = std::fs::read_to_string(root().join("docs/deploy.md")).unwrap();
    let shown: Vec<Value> = guide
        .split("```json\n")
        .skip(1)
        .map(|block| serde_json::from_str(block.split("```").next().unwrap()).unwrap())
        .collect();
    let files = [
        "device-policy.json",
        "organization-iam-policy.json",
        "organization-role-trust-policy.json",
    ];
    assert_eq!(
        shown.len(),
        files.len(),
        "docs/deploy.md shows {} JSON documents",
        shown.len()
    );
    for (file, shown) in files.iter().zip(&shown) {
        let text = std::fs::read_to_string(root().join("infra").join(file)).unwrap();
        let kept: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("infra/{file}: {e}"));
        assert_eq!(&kept, shown, "infra/{file} differs from docs/deploy.md");
    }
}

/// Each function reads only the kinds of integration secret it needs: the
/// unauthenticated ingress only webhook secrets, setup both, the rest only
/// credentials.
#[test]
fn each_function_reads_only_the_secrets_it_needs() {
    let template = Template::load();
    for (id, binary) in template.functions() {
        let mut kinds = BTreeSet::new();
        let policies = template.resources()[&id]["Properties"]["Policies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for policy in policies {
            for statement in policy["Statement"].as_array().cloned().unwrap_or_default() {
                if statement["Action"].to_string().contains("secretsmanager:") {
                    kinds.extend(resources_of(&statement).iter().filter_map(secret_kind));
                }
            }
        }
        let expected: &[&str] = match binary.as_str() {
            "webhook-ingress" => &[WebhookSecret::KIND],
            "integration" => &[IntegrationSettings::KIND, WebhookSecret::KIND],
            // The page calls the API with the user's token; it holds nothing.
            "console" => &[],
            _ => &[IntegrationSettings::KIND],
        };
        assert_eq!(
            kinds,
            expected.iter().copied().collect::<BTreeSet<_>>(),
            "{binary}"
        );
    }
}

/// The trust policy in infra/ (and docs/deploy.md) is the one the bridge
/// gives organizations on `GET …/external-id`, with placeholders
/// for the bridge's account, the external id and the tenant id; and the
/// template names the bridge's roles the way that policy expects.
#[test]
fn the_infra_trust_policy_is_the_one_the_bridge_gives() {
    let text =
        std::fs::read_to_string(root().join("infra/organization-role-trust-policy.json")).unwrap();
    let kept: Value = serde_json::from_str(&text).unwrap();
    let given = bridge::integration::trust::trust_policy(
        "arn:aws:iam::BRIDGE_ACCOUNT:role/mender-iot-bridge-*",
        "EXTERNAL_ID",
        &bridge::aws::session_name("TENANT_ID"),
    );
    assert_eq!(kept, given);

    let template = Template::load();
    let (id, _) = template
        .functions()
        .into_iter()
        .find(|(_, binary)| binary == "integration")
        .unwrap();
    assert_eq!(
        template.environment(&id)[config::BRIDGE_ROLES.name],
        json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-*"})
    );
}

/// CORS is the operator's choice: none unless `AllowedOrigins` names some,
/// and then only the methods and headers the API uses, without cookies.
#[test]
fn cors_allows_only_the_origins_the_operator_names() {
    let template = Template::load();
    let parameter = &template.doc["Parameters"]["AllowedOrigins"];
    assert_eq!(parameter["Type"], "CommaDelimitedList");
    assert_eq!(parameter["Default"], "");
    let cors = &template.resources()["HttpApi"]["Properties"]["CorsConfiguration"]["Fn::If"];
    assert_eq!(cors[0], "HasAllowedOrigins");
    assert_eq!(cors[2], json!({"Ref": "AWS::NoValue"}));
    let allowed = &cors[1];
    assert_eq!(allowed["AllowOrigins"], json!({"Ref": "AllowedOrigins"}));
    assert_eq!(allowed["AllowCredentials"], false);
    // Every method a route uses, and nothing else.
    let methods: BTreeSet<String> = template.routes().keys().map(|(m, _)| m.clone()).collect();
    let listed: BTreeSet<String> = allowed["AllowMethods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, methods);
    assert_eq!(
        template.doc["Conditions"]["HasAllowedOrigins"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "AllowedOrigins"}]}, ""]}]})
    );
}

/// The dashboard shows every metric the functions emit (per organization),
/// every dead-letter queue and every function's errors, and is valid JSON
/// once CloudFormation has substituted its references.
#[test]
fn the_dashboard_shows_every_metric_queue_and_function() {
    let template = Template::load();
    let body = template.resources()["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is !Sub")
        .to_owned();
    // What CloudFormation substitutes, by reference.
    let mut references = BTreeSet::new();
    let mut substituted = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("${") {
        let end = start + rest[start..].find('}').unwrap();
        references.insert(rest[start + 2..end].to_owned());
        substituted.push_str(&rest[..start]);
        substituted.push('x');
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    let dashboard: Value = serde_json::from_str(&substituted).expect("the dashboard is JSON");

    let mut shown = BTreeSet::new();
    for widget in dashboard["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            if let Some(expression) = metric[0]["expression"].as_str() {
                let name = expression
                    .split("MetricName=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_else(|| panic!("{expression}"));
                assert!(expression.contains(&format!(
                    "{{{},{}}}",
                    bridge::metrics::NAMESPACE,
                    bridge::metrics::DIMENSION
                )));
                shown.insert(name.to_owned());
            }
        }
    }
    let emitted: BTreeSet<String> = bridge::metrics::ALL.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        shown, emitted,
        "dashboard (left) and bridge::metrics::ALL (right)"
    );

    for (id, _) in template.of_type("AWS::SQS::Queue") {
        assert!(references.contains(&format!("{id}.QueueName")), "{id}");
    }
    for (id, _) in template.functions() {
        assert!(references.contains(&id), "{id}'s errors");
    }
}
