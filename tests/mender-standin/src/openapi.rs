//! Checks recorded HTTP exchanges against OpenAPI 3.0 specs.
//!
//! [`Specs::load`] reads every `*.yaml` under a directory (e.g. Mender's
//! `backend/docs/api` layout). [`Specs::check`] finds the operation by method
//! and path template, then checks:
//!
//! * query parameters: declared, required ones present, values valid for
//!   their schema (read as the schema's type first: `page=2` is the number 2);
//! * the request body against its schema (query and body are not checked
//!   when the server answered 400: it found the request invalid itself, and
//!   only its answer is checked);
//! * the status code is declared (or `default`/`4XX`), with the allowances
//!   below;
//! * the response body against its schema and content type, and that
//!   responses declaring no content have no body.
//!
//! ## What is ours, what is the crate's
//!
//! Ours: finding the operation, walking its parameters, request body and
//! responses (following their `$ref`s across files), and the allowances.
//!
//! JSON Schema validation is the `jsonschema` crate's. Every document is
//! registered with it as `file:///<path relative to the spec directory>`,
//! and a schema is validated in place, through a `$ref` to where it is, so
//! the crate follows the `$ref`s inside schemas, within and across files.
//! Nothing is fetched: a `$ref` to a document that is not loaded is an
//! error. The rules are draft 7's (`2.0` is an integer; `$ref` siblings are
//! ignored, as in OpenAPI 3.0) and every keyword the crate knows is checked
//! (`pattern`, `uniqueItems`, … too) except `format`, once two OpenAPI 3.0
//! keywords are rewritten at load: `nullable: true` adds `null` to `type`
//! (and to `enum`), and a boolean `exclusiveMinimum`/`exclusiveMaximum`
//! becomes the bound itself. Validators are compiled once per schema. The
//! crate's errors are reworded to say where in the body they are:
//! `response body.auth_sets[0].pubkey: expected string, got number 42`.
//! Headers are not checked.
//!
//! ## Allowances (documented, see [`MENDER_UNDECLARED`])
//!
//! * 401 and 403 with an `Error` body on operations that require a bearer
//!   token (`ManagementJWT`): in Mender they come from the API gateway and the
//!   RBAC layer, which the per-service specs do not describe.
//! * Statuses the Mender server code returns but the spec omits.
//!
//! [`Specs::strict`] turns all allowances off.
//!
//! One leniency: when a JSON response schema is `type: string` and the body
//! is not JSON, the raw body is taken as the string (Mender answers
//! `POST /settings/tokens` with the raw token).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use jsonschema::error::{TypeKind, ValidationErrorKind as Kind};
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{Draft, ReferencingError, Registry, Retrieve, Uri, ValidationError, Validator};
use serde_json::{Number, Value, json};

use crate::Exchange;

/// Where the Mender specs live in this repository's checkout.
pub const MENDER_API_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/mender-api");

/// A response that Mender's server code gives but its spec does not declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub method: &'static str,
    pub path_template: &'static str,
    pub status: u16,
    pub reason: &'static str,
}

/// Responses the Mender server sends that the specs leave out. Their bodies
/// are checked against the common `Error` schema.
pub const MENDER_UNDECLARED: &[Allowance] = &[
    Allowance {
        method: "POST",
        path_template: "/api/management/v1/iot-manager/integrations",
        status: 409,
        reason: "iot-manager: an organization has at most one integration \
                 (app.ErrIntegrationExists → 409)",
    },
    Allowance {
        method: "DELETE",
        path_template: "/api/management/v1/iot-manager/integrations/{id}",
        status: 404,
        reason: "iot-manager: unknown integration (ErrIntegrationNotFound → 404)",
    },
];

/// Mender's common `Error` schema: document, and pointer in it.
const ERROR_SCHEMA: (&str, &str) = ("common/schemas.yaml", "/components/schemas/Error");
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];
const MAX_DEPTH: usize = 64;
/// The URI a document is registered under is this followed by its path.
const BASE: &str = "file:///";

struct Doc {
    /// Path relative to the spec directory, `/`-separated.
    name: String,
    value: Arc<Value>,
}

struct Operation {
    method: String,
    template: String,
    segments: Vec<Option<String>>,
    /// The document and JSON pointer of the path item (after its `$ref`).
    doc: usize,
    item_pointer: String,
    secured: bool,
}

/// A value in one of the documents, and where it is.
#[derive(Clone)]
struct Node<'a> {
    doc: usize,
    /// JSON pointer to `value` in the document.
    pointer: String,
    value: &'a Value,
}

impl<'a> Node<'a> {
    fn get(&self, key: &str) -> Option<Node<'a>> {
        let value = match self.value {
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            value => value.get(key)?,
        };
        let key = key.replace('~', "~0").replace('/', "~1");
        Some(Node {
            doc: self.doc,
            pointer: format!("{}/{key}", self.pointer),
            value,
        })
    }

    /// The elements of an array, each with its place.
    fn items(&self) -> Vec<Node<'a>> {
        let count = self.value.as_array().map_or(0, Vec::len);
        (0..count)
            .filter_map(|i| self.get(&i.to_string()))
            .collect()
    }

    fn str(&self, key: &str) -> Option<&'a str> {
        self.value.get(key).and_then(Value::as_str)
    }
}

/// Loaded OpenAPI documents and their operations.
pub struct Specs {
    docs: Vec<Doc>,
    registry: Registry<'static>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
    operations: Vec<Operation>,
    allowances: Vec<Allowance>,
    gateway_errors: bool,
}

impl std::fmt::Debug for Specs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Specs")
            .field(
                "documents",
                &self.docs.iter().map(|d| &d.name).collect::<Vec<_>>(),
            )
            .field("operations", &self.operations.len())
            .finish()
    }
}

/// The crate asks for documents that are not loaded: it gets none.
struct NotLoaded;

impl Retrieve for NotLoaded {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(not_loaded(uri.as_str()).into())
    }
}

fn not_loaded(uri: &str) -> String {
    match uri.strip_prefix(BASE) {
        Some(name) => format!("no document {name:?}"),
        None => format!("{uri} is not one of the specs"),
    }
}

impl Specs {
    /// Loads every `*.yaml`/`*.yml` file under `dir`, recursively.
    pub fn load(dir: impl AsRef<Path>) -> Result<Specs, String> {
        let dir = dir.as_ref();
        let mut files = Vec::new();
        collect_yaml(dir, dir, &mut files)?;
        files.sort();
        let mut docs = Vec::new();
        for (name, path) in files {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            docs.push((name, text));
        }
        Self::from_yaml_documents(&docs)
    }

    /// Loads Mender's specs from [`MENDER_API_DIR`].
    pub fn load_mender() -> Result<Specs, String> {
        Self::load(MENDER_API_DIR)
    }

    /// Builds from in-memory documents: `(relative path, YAML text)`.
    pub fn from_yaml_documents<N: AsRef<str>, T: AsRef<str>>(
        documents: &[(N, T)],
    ) -> Result<Specs, String> {
        let mut docs = Vec::new();
        for (name, text) in documents {
            let name = name.as_ref();
            // Mapping keys become strings (`200:` → `"200"`).
            let mut value: Value =
                yaml_serde::from_str(text.as_ref()).map_err(|e| format!("{name}: {e}"))?;
            to_json_schema(&mut value);
            docs.push(Doc {
                name: name
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .collect::<Vec<_>>()
                    .join("/"),
                value: Arc::new(value),
            });
        }
        let registry = Registry::new()
            .draft(Draft::Draft7)
            .retriever(NotLoaded)
            .extend(docs.iter().map(|d| (uri_of(&d.name), Arc::clone(&d.value))))
            .and_then(|builder| builder.prepare())
            .map_err(|e| format!("registering the specs: {e}"))?;
        let mut specs = Specs {
            docs,
            registry,
            validators: Mutex::default(),
            operations: Vec::new(),
            allowances: MENDER_UNDECLARED.to_vec(),
            gateway_errors: true,
        };
        specs.operations = specs.collect_operations()?;
        Ok(specs)
    }

    /// Turns off every allowance: only what the specs declare passes.
    pub fn strict(mut self) -> Self {
        self.allowances.clear();
        self.gateway_errors = false;
        self
    }

    /// Adds an allowance of your own.
    pub fn allow(mut self, allowance: Allowance) -> Self {
        self.allowances.push(allowance);
        self
    }

    /// `METHOD template` of every operation, e.g. `GET /api/…/{id}`.
    pub fn operations(&self) -> Vec<String> {
        self.operations
            .iter()
            .map(|o| format!("{} {}", o.method, o.template))
            .collect()
    }

    /// The operation (`METHOD template`) a request would be checked against.
    pub fn operation_of(&self, method: &str, path: &str) -> Option<String> {
        self.find_operation(method, path)
            .map(|o| format!("{} {}", o.method, o.template))
    }

    /// The value at a JSON pointer in document `doc`.
    fn node(&self, doc: usize, pointer: &str) -> Option<Node<'_>> {
        let value = self.docs[doc].value.pointer(pointer)?;
        Some(Node {
            doc,
            pointer: pointer.to_string(),
            value,
        })
    }

    fn collect_operations(&self) -> Result<Vec<Operation>, String> {
        let mut operations = Vec::new();
        for doc in 0..self.docs.len() {
            let Some(paths) = self.node(doc, "/paths") else {
                continue;
            };
            let Some(templates) = paths.value.as_object() else {
                continue;
            };
            let global_security = self.docs[doc]
                .value
                .get("security")
                .and_then(Value::as_array);
            for template in templates.keys() {
                let item = self.resolve(paths.get(template).expect("a key of paths"))?;
                for method in METHODS {
                    let Some(op) = item.value.get(method) else {
                        continue;
                    };
                    let security = op
                        .get("security")
                        .and_then(Value::as_array)
                        .or(global_security);
                    let secured = security.is_some_and(|s| self.uses_bearer(doc, s));
                    operations.push(Operation {
                        method: method.to_uppercase(),
                        template: template.clone(),
                        segments: template
                            .split('/')
                            .map(|s| {
                                (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_string())
                            })
                            .collect(),
                        doc: item.doc,
                        item_pointer: item.pointer.clone(),
                        secured,
                    });
                }
            }
        }
        Ok(operations)
    }

    /// Whether a security requirement list asks for a bearer token (what the
    /// Mender gateway verifies). Unresolvable schemes count as bearer.
    fn uses_bearer(&self, doc: usize, requirements: &[Value]) -> bool {
        let schemes = self.node(doc, "/components/securitySchemes");
        requirements
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|requirement| requirement.keys())
            .any(|name| {
                let Some(scheme) = schemes.as_ref().and_then(|s| s.get(name)) else {
                    return true;
                };
                match self.resolve(scheme) {
                    Ok(scheme) => scheme
                        .str("scheme")
                        .is_some_and(|s| s.eq_ignore_ascii_case("bearer")),
                    Err(_) => true,
                }
            })
    }

    /// Checks one exchange against the specs.
    pub fn check(&self, exchange: &Exchange) -> Result<(), Vec<String>> {
        let Some(op) = self.find_operation(&exchange.method, &exchange.path) else {
            return Err(vec![format!(
                "{} {}: no operation in the specs",
                exchange.method, exchange.path
            )]);
        };
        let context = format!(
            "{} {} ({} {}) → {}",
            exchange.method, exchange.path, op.method, op.template, exchange.status
        );
        let item = self.node(op.doc, &op.item_pointer);
        let operation = item.as_ref().and_then(|i| i.get(&op.method.to_lowercase()));
        let (Some(item), Some(operation)) = (item, operation) else {
            return Err(vec![format!("{context}: operation vanished")]);
        };

        let mut errors = Vec::new();
        // A request the server refused as invalid (400) is not held against
        // the spec: only its answer is checked.
        if exchange.status != 400 {
            self.check_query(&item, &operation, exchange, &mut errors);
            self.check_request_body(&operation, exchange, &mut errors);
        }
        self.check_response(op, &operation, exchange, &mut errors);

        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors
                .into_iter()
                .map(|e| format!("{context}: {e}"))
                .collect())
        }
    }

    /// Checks many exchanges; the errors of all of them.
    pub fn check_all<'a>(
        &self,
        exchanges: impl IntoIterator<Item = &'a Exchange>,
    ) -> Result<(), Vec<String>> {
        let errors: Vec<String> = exchanges
            .into_iter()
            .filter_map(|e| self.check(e).err())
            .flatten()
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Validates a value against a schema named by reference, e.g.
    /// `iot-manager/management_v1.yaml#/components/schemas/Event`.
    pub fn validate(&self, reference: &str, value: &Value) -> Result<(), Vec<String>> {
        let errors = self.schema_errors(&uri_of(reference), value, "$");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn find_operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let segments: Vec<&str> = path.split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method.eq_ignore_ascii_case(method))
            .filter(|op| op.segments.len() == segments.len())
            .filter(|op| {
                op.segments.iter().zip(&segments).all(|(t, s)| match t {
                    Some(literal) => literal == s,
                    None => !s.is_empty(),
                })
            })
            // The most specific template wins (`/devices/count` over `/devices/{id}`).
            .max_by_key(|op| op.segments.iter().filter(|s| s.is_some()).count())
    }

    // -- references to OpenAPI objects (the crate follows those in schemas) --

    /// Follows `$ref`s until a value without one.
    fn resolve<'a>(&'a self, mut node: Node<'a>) -> Result<Node<'a>, String> {
        for _ in 0..MAX_DEPTH {
            let Some(reference) = node.str("$ref") else {
                return Ok(node);
            };
            node = self.lookup(node.doc, reference)?;
        }
        Err("$ref chain too deep".into())
    }

    /// Looks a reference up relative to document `doc`.
    fn lookup(&self, doc: usize, reference: &str) -> Result<Node<'_>, String> {
        let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let target = if file.is_empty() {
            doc
        } else {
            let uri = jsonschema::uri::from_str(&uri_of(&self.docs[doc].name))
                .and_then(|base| jsonschema::uri::resolve_against(&base.borrow(), file))
                .map_err(|e| format!("$ref {reference:?}: {e}"))?;
            self.docs
                .iter()
                .position(|d| uri.as_str() == uri_of(&d.name))
                .ok_or_else(|| format!("$ref {reference:?}: {}", not_loaded(uri.as_str())))?
        };
        self.node(target, fragment)
            .ok_or_else(|| format!("$ref {reference:?}: nothing at {fragment:?}"))
    }

    // -- parameters ----------------------------------------------------------

    fn check_query(
        &self,
        item: &Node<'_>,
        operation: &Node<'_>,
        exchange: &Exchange,
        errors: &mut Vec<String>,
    ) {
        // Declared query parameters: operation-level override path-level.
        let mut declared: BTreeMap<String, Node<'_>> = BTreeMap::new();
        for list in [item.get("parameters"), operation.get("parameters")]
            .into_iter()
            .flatten()
        {
            for parameter in list.items() {
                match self.resolve(parameter) {
                    Ok(p) => {
                        if p.str("in") == Some("query")
                            && let Some(name) = p.str("name")
                        {
                            declared.insert(name.to_string(), p);
                        }
                    }
                    Err(e) => errors.push(format!("parameter: {e}")),
                }
            }
        }

        let mut given: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let query = exchange.query.as_deref().unwrap_or("");
        for (k, v) in form_urlencoded::parse(query.as_bytes()).into_owned() {
            given.entry(k).or_default().push(v);
        }

        for (name, values) in &given {
            let Some(parameter) = declared.get(name) else {
                errors.push(format!("query parameter {name:?} is not declared"));
                continue;
            };
            let Some(schema) = parameter.get("schema") else {
                continue;
            };
            let schema = match self.resolve(schema) {
                Ok(node) => node,
                Err(e) => {
                    errors.push(format!("query parameter {name:?}: {e}"));
                    continue;
                }
            };
            let is_array = type_of(schema.value) == Some("array");
            if !is_array && values.len() > 1 {
                errors.push(format!(
                    "query parameter {name:?} given {} times",
                    values.len()
                ));
            }
            let item_schema = match is_array {
                true => schema.get("items").and_then(|s| self.resolve(s).ok()),
                false => Some(schema),
            };
            let Some(item_schema) = item_schema else {
                continue;
            };
            let label = format!("query parameter {name:?}");
            for raw in values {
                let typed = query_value(type_of(item_schema.value), raw);
                errors.extend(self.schema_errors(&self.uri(&item_schema), &typed, &label));
            }
        }
        for (name, parameter) in &declared {
            if parameter.value.get("required") == Some(&Value::Bool(true))
                && !given.contains_key(name)
            {
                errors.push(format!("required query parameter {name:?} is missing"));
            }
        }
    }

    // -- bodies ---------------------------------------------------------------

    fn check_request_body(
        &self,
        operation: &Node<'_>,
        exchange: &Exchange,
        errors: &mut Vec<String>,
    ) {
        let has_body = !exchange.request_text.trim().is_empty();
        let Some(body) = operation.get("requestBody") else {
            if has_body {
                errors.push("request has a body but the operation declares none".into());
            }
            return;
        };
        let body = match self.resolve(body) {
            Ok(node) => node,
            Err(e) => {
                errors.push(format!("requestBody: {e}"));
                return;
            }
        };
        if !has_body {
            if body.value.get("required") == Some(&Value::Bool(true)) {
                errors.push("the required request body is missing".into());
            }
            return;
        }
        let Some(schema) = body
            .get("content")
            .and_then(|c| json_media(&c))
            .and_then(|m| m.get("schema"))
        else {
            return;
        };
        match &exchange.request_body {
            Some(value) => {
                errors.extend(self.schema_errors(&self.uri(&schema), value, "request body"))
            }
            None => errors.push("request body is not valid JSON".into()),
        }
    }

    fn check_response(
        &self,
        op: &Operation,
        operation: &Node<'_>,
        exchange: &Exchange,
        errors: &mut Vec<String>,
    ) {
        let status = exchange.status.to_string();
        let range = format!("{}XX", exchange.status / 100);
        let responses = operation.get("responses");
        let declared = responses.as_ref().and_then(|r| {
            r.get(&status)
                .or_else(|| r.get(&range))
                .or_else(|| r.get(&range.to_lowercase()))
                .or_else(|| r.get("default"))
        });

        let Some(declared) = declared else {
            let allowed =
                (self.gateway_errors && op.secured && matches!(exchange.status, 401 | 403))
                    || self.allowances.iter().any(|a| {
                        a.status == exchange.status
                            && a.method.eq_ignore_ascii_case(&op.method)
                            && a.path_template == op.template
                    });
            if allowed {
                self.check_error_body(exchange, errors);
            } else {
                let codes: Vec<&String> = responses
                    .and_then(|r| r.value.as_object())
                    .map(|r| r.keys().collect())
                    .unwrap_or_default();
                errors.push(format!(
                    "status {status} is not declared (declared: {codes:?})"
                ));
            }
            return;
        };

        let response = match self.resolve(declared) {
            Ok(node) => node,
            Err(e) => {
                errors.push(format!("response: {e}"));
                return;
            }
        };
        let content = response
            .get("content")
            .filter(|c| c.value.as_object().is_some_and(|c| !c.is_empty()));
        let has_body = !exchange.response_text.is_empty();
        let Some(content) = content else {
            if has_body {
                errors.push("response has a body but the spec declares none".into());
            }
            return;
        };
        let media_types = content.value.as_object().expect("content is an object");
        if !has_body {
            if media_types.values().any(|m| m.get("schema").is_some()) {
                errors.push("response body is missing".into());
            }
            return;
        }

        let media_type = exchange.response_content_type.as_deref().map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let Some(media_type) = media_type else {
            errors.push("response has a body but no Content-Type".into());
            return;
        };
        let Some(media) = content.get(&media_type) else {
            let declared: Vec<&String> = media_types.keys().collect();
            errors.push(format!(
                "response content type {media_type:?} is not declared (declared: {declared:?})"
            ));
            return;
        };
        let Some(schema) = media.get("schema") else {
            return;
        };
        let is_json = media_type == "application/json" || media_type.ends_with("+json");
        let value = match (&exchange.response_body, is_json) {
            (Some(value), true) => value.clone(),
            _ => {
                // Not JSON (or not a JSON media type): only a string schema fits.
                let is_string = self
                    .resolve(schema.clone())
                    .is_ok_and(|s| type_of(s.value) == Some("string"));
                if is_string {
                    Value::String(exchange.response_text.clone())
                } else {
                    errors.push(format!("response body is not valid JSON ({media_type})"));
                    return;
                }
            }
        };
        errors.extend(self.schema_errors(&self.uri(&schema), &value, "response body"));
    }

    fn check_error_body(&self, exchange: &Exchange, errors: &mut Vec<String>) {
        let (doc, pointer) = ERROR_SCHEMA;
        if !self.docs.iter().any(|d| d.name == doc) {
            return; // Specs without Mender's common schemas: nothing to compare with.
        }
        match &exchange.response_body {
            Some(value) => {
                let uri = format!("{}#{pointer}", uri_of(doc));
                errors.extend(self.schema_errors(&uri, value, "error body"));
            }
            None => errors.push("error response without a JSON Error body".into()),
        }
    }

    // -- schemas: the jsonschema crate ------------------------------------------

    /// The URI of a schema's place, for a `$ref` to it.
    fn uri(&self, node: &Node<'_>) -> String {
        let mut uri = format!("{}#", uri_of(&self.docs[node.doc].name));
        // A JSON pointer as a URI fragment: `{id}` → `%7Bid%7D`.
        for byte in node.pointer.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&byte) {
                uri.push(char::from(byte));
            } else {
                let _ = write!(uri, "%{byte:02X}");
            }
        }
        uri
    }

    /// The validator of the schema at `uri`, compiled on first use.
    fn validator(&self, uri: &str) -> Result<Arc<Validator>, String> {
        let cache = || {
            self.validators
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(validator) = cache().get(uri) {
            return Ok(Arc::clone(validator));
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft7)
            .with_registry(&self.registry)
            .with_retriever(NotLoaded)
            .should_validate_formats(false)
            .build(&json!({ "$ref": uri }))
            .map_err(|e| problem(&e, &Value::Null))?;
        let validator = Arc::new(validator);
        cache().insert(uri.to_string(), Arc::clone(&validator));
        Ok(validator)
    }

    /// `value` against the schema at `uri`; errors start with `label` and
    /// the place in `value`.
    fn schema_errors(&self, uri: &str, value: &Value, label: &str) -> Vec<String> {
        match self.validator(uri) {
            Ok(validator) => validator
                .iter_errors(value)
                .map(|e| {
                    format!(
                        "{}: {}",
                        place(label, value, e.instance_path()),
                        problem(&e, value)
                    )
                })
                .collect(),
            Err(e) => vec![format!("{label}: {e}")],
        }
    }
}

fn uri_of(name: &str) -> String {
    format!("{BASE}{name}")
}

/// Where in `root` an error is: `response body.items[1].name`.
fn place(label: &str, root: &Value, location: &Location) -> String {
    let mut place = label.to_string();
    let mut value = Some(root);
    for segment in location.segments() {
        match segment {
            LocationSegment::Index(i) if value.is_some_and(Value::is_array) => {
                let _ = write!(place, "[{i}]");
                value = value.and_then(|v| v.get(i));
            }
            LocationSegment::Index(i) => {
                let _ = write!(place, ".{i}");
                value = value.and_then(|v| v.get(i.to_string()));
            }
            LocationSegment::Property(name) => {
                let _ = write!(place, ".{name}");
                value = value.and_then(|v| v.get(name.as_ref()));
            }
        }
    }
    place
}

/// What is wrong (in `root`), in the words this module has always used.
fn problem(error: &ValidationError<'_>, root: &Value) -> String {
    let instance = error.instance();
    match error.kind() {
        Kind::Type { .. } if instance.is_null() => "null is not allowed".into(),
        Kind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!("expected {expected}, got {}", describe(instance))
        }
        Kind::Enum { options } => format!("{instance} is not one of {options}"),
        Kind::Required { property } => format!("missing required property {property}"),
        Kind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| format!("property {name:?} is not allowed"))
            .collect::<Vec<_>>()
            .join("; "),
        Kind::Minimum { limit } => format!("{instance} is below the minimum {limit}"),
        Kind::Maximum { limit } => format!("{instance} is above the maximum {limit}"),
        Kind::MinLength { limit } => format!("shorter than minLength {limit}"),
        Kind::MaxLength { limit } => format!("longer than maxLength {limit}"),
        Kind::MinItems { limit } => format!("fewer items than minItems {limit}"),
        Kind::MaxItems { limit } => format!("more items than maxItems {limit}"),
        Kind::AnyOf { context } => {
            format!("matches none of anyOf: {}", summarize(error, context, root))
        }
        Kind::OneOfNotValid { context } => {
            format!("matches none of oneOf: {}", summarize(error, context, root))
        }
        Kind::OneOfMultipleValid { .. } => {
            "matches more than one schema of oneOf, expected exactly 1".into()
        }
        Kind::FalseSchema => "no value is allowed here".into(),
        Kind::Referencing(ReferencingError::Unretrievable { uri, .. }) => not_loaded(uri),
        _ => error.to_string(),
    }
}

/// The first error of each alternative of an `anyOf`/`oneOf`, and where it
/// is from the value that matched none.
fn summarize(
    error: &ValidationError<'_>,
    alternatives: &[Vec<ValidationError<'_>>],
    root: &Value,
) -> String {
    let here = place("", root, error.instance_path());
    let mut text = String::new();
    for (i, errors) in alternatives.iter().enumerate() {
        let first = errors.first().map(|e| {
            let there = place("", root, e.instance_path());
            match there.strip_prefix(&here).unwrap_or(&there) {
                "" => problem(e, root),
                at => format!("{at}: {}", problem(e, root)),
            }
        });
        let _ = write!(text, "[{i}: {}] ", first.as_deref().unwrap_or("ok"));
    }
    text.trim_end().to_string()
}

/// OpenAPI 3.0 schema keywords that JSON Schema (draft 7) spells
/// differently, rewritten in place throughout a document.
fn to_json_schema(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        Value::Object(object) => {
            if object.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(kind)) = object.get("type") {
                    let types = json!([kind, "null"]);
                    object.insert("type".into(), types);
                }
                if let Some(Value::Array(options)) = object.get_mut("enum")
                    && !options.contains(&Value::Null)
                {
                    options.push(Value::Null);
                }
            }
            for (exclusive, bound) in [
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ] {
                if let Some(Value::Bool(is_exclusive)) = object.get(exclusive) {
                    let is_exclusive = *is_exclusive;
                    object.remove(exclusive);
                    if is_exclusive && let Some(limit) = object.remove(bound) {
                        object.insert(exclusive.into(), limit);
                    }
                }
            }
            object.values_mut().for_each(to_json_schema);
        }
        _ => {}
    }
}

/// A schema's `type`, leaving out the `null` that `nullable` adds.
fn type_of(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(kind) => Some(kind),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null"),
        _ => None,
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut shown = value.to_string();
    if shown.len() > 60 {
        let cut = (0..=60)
            .rev()
            .find(|i| shown.is_char_boundary(*i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    format!("{kind} {shown}")
}

/// The declared JSON media type of a `content` map, if any.
fn json_media<'a>(content: &Node<'a>) -> Option<Node<'a>> {
    let types = content.value.as_object()?;
    let json = types
        .keys()
        .find(|k| *k == "application/json")
        .or_else(|| types.keys().find(|k| k.ends_with("+json")))?;
    content.get(json)
}

/// A query string value, typed as its schema says (so that it can be
/// validated like JSON).
fn query_value(kind: Option<&str>, raw: &str) -> Value {
    match kind {
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_string())),
        Some("number") => raw
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_string()),
        },
        _ => Value::String(raw.to_string()),
    }
}

fn collect_yaml(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(root, &path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, path));
        }
    }
    Ok(())
}
