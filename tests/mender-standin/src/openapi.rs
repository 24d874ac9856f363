//! A small, honest OpenAPI 3.0 checker for recorded HTTP exchanges.
//!
//! [`Specs::load`] reads every `*.yaml` under a directory (e.g. Mender's
//! `backend/docs/api` layout) and resolves `$ref`s within and across files
//! (`../common/schemas.yaml#/components/...`). [`Specs::check`] finds the
//! operation by method and path template, then checks:
//!
//! * query parameters: declared, required ones present, values of the
//!   declared type/enum/range;
//! * the request body against the declared JSON schema (query and body are
//!   not checked when the server answered 400: it found the request invalid
//!   itself, and only its answer is checked);
//! * the status code is declared (or `default`/`4XX`), with the allowances
//!   below;
//! * the response body against the declared schema and content type, and
//!   that responses declaring no content have no body.
//!
//! Schemas support `$ref`, `type`, `properties`, `required`, `items`,
//! `enum`, `additionalProperties` (false or a schema), `nullable`, `allOf`,
//! `anyOf`, `oneOf`, `minLength`/`maxLength`, `minimum`/`maximum`,
//! `minItems`/`maxItems`. Not checked: `format`, `pattern`, headers.
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Number, Value};

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

const ERROR_SCHEMA: &str = "common/schemas.yaml#/components/schemas/Error";
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];
const MAX_DEPTH: usize = 64;

struct Doc {
    /// Path relative to the spec directory, `/`-separated.
    name: String,
    value: Value,
}

struct Operation {
    doc: usize,
    method: String,
    template: String,
    segments: Vec<Option<String>>,
    /// JSON pointer to the path item, and the method key in it.
    item_pointer: String,
    secured: bool,
}

/// Loaded OpenAPI documents and their operations.
pub struct Specs {
    docs: Vec<Doc>,
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

/// A location in a document: which document, and the value there.
type Node<'a> = (usize, &'a Value);

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
            let yaml: serde_yaml::Value = serde_yaml::from_str(text.as_ref())
                .map_err(|e| format!("{}: {e}", name.as_ref()))?;
            let value = yaml_to_json(yaml).map_err(|e| format!("{}: {e}", name.as_ref()))?;
            docs.push(Doc {
                name: normalize(name.as_ref()),
                value,
            });
        }
        let mut specs = Specs {
            docs,
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

    fn collect_operations(&self) -> Result<Vec<Operation>, String> {
        let mut operations = Vec::new();
        for (doc, d) in self.docs.iter().enumerate() {
            let Some(paths) = d.value.get("paths").and_then(Value::as_object) else {
                continue;
            };
            let global_security = d.value.get("security").and_then(Value::as_array);
            for (template, item) in paths {
                let (_, item) = self.resolve(doc, item)?;
                for method in METHODS {
                    let Some(op) = item.get(method) else { continue };
                    let security = op
                        .get("security")
                        .and_then(Value::as_array)
                        .or(global_security);
                    let secured = security.is_some_and(|s| self.uses_bearer(doc, s));
                    operations.push(Operation {
                        doc,
                        method: method.to_uppercase(),
                        template: template.clone(),
                        segments: template
                            .split('/')
                            .map(|s| {
                                (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_string())
                            })
                            .collect(),
                        item_pointer: format!("/paths/{}", escape_pointer(template)),
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
        let schemes = self.docs[doc].value.pointer("/components/securitySchemes");
        requirements
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|requirement| requirement.keys())
            .any(|name| {
                let Some(scheme) = schemes.and_then(|s| s.get(name)) else {
                    return true;
                };
                match self.resolve(doc, scheme) {
                    Ok((_, scheme)) => scheme
                        .get("scheme")
                        .and_then(Value::as_str)
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
        let item = self.docs[op.doc].value.pointer(&op.item_pointer);
        let operation = item.and_then(|i| i.get(op.method.to_lowercase()));
        let (Some(item), Some(operation)) = (item, operation) else {
            return Err(vec![format!("{context}: operation vanished")]);
        };

        let mut errors = Vec::new();
        // A request the server refused as invalid (400) is not held against
        // the spec: only its answer is checked.
        if exchange.status != 400 {
            self.check_query(op.doc, item, operation, exchange, &mut errors);
            self.check_request_body(op.doc, operation, exchange, &mut errors);
        }
        self.check_response(op, operation, exchange, &mut errors);

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
        let (doc, schema) = self.lookup_ref(None, reference).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        self.validate_schema(doc, schema, value, "$", &mut errors, 0);
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

    // -- references --------------------------------------------------------

    fn doc_index(&self, name: &str) -> Option<usize> {
        self.docs.iter().position(|d| d.name == name)
    }

    /// Looks a reference up, relative to document `base` (or to the spec
    /// directory when `None`).
    fn lookup_ref(&self, base: Option<usize>, reference: &str) -> Result<Node<'_>, String> {
        let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let target = match base {
            Some(doc) if file.is_empty() => doc,
            None if file.is_empty() => return Err(format!("$ref {reference:?}: no document")),
            _ => {
                let name = match base.and_then(|doc| self.docs.get(doc)) {
                    Some(doc) => join(&doc.name, file),
                    None => normalize(file),
                };
                self.doc_index(&name)
                    .ok_or_else(|| format!("$ref {reference:?}: no document {name:?}"))?
            }
        };
        let root = &self.docs[target].value;
        let value = if fragment.is_empty() {
            root
        } else {
            root.pointer(fragment)
                .ok_or_else(|| format!("$ref {reference:?}: nothing at {fragment:?}"))?
        };
        Ok((target, value))
    }

    /// Follows `$ref`s until a value without one.
    fn resolve<'a>(&'a self, doc: usize, value: &'a Value) -> Result<Node<'a>, String> {
        let mut node = (doc, value);
        for _ in 0..MAX_DEPTH {
            match node.1.get("$ref").and_then(Value::as_str) {
                None => return Ok(node),
                Some(reference) => node = self.lookup_ref(Some(node.0), reference)?,
            }
        }
        Err("$ref chain too deep".into())
    }

    // -- parameters ----------------------------------------------------------

    fn check_query(
        &self,
        doc: usize,
        item: &Value,
        operation: &Value,
        exchange: &Exchange,
        errors: &mut Vec<String>,
    ) {
        // Declared query parameters: operation-level override path-level.
        let mut declared: BTreeMap<String, (usize, &Value)> = BTreeMap::new();
        for list in [item.get("parameters"), operation.get("parameters")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
        {
            for parameter in list {
                match self.resolve(doc, parameter) {
                    Ok((pdoc, p)) => {
                        if p.get("in").and_then(Value::as_str) == Some("query")
                            && let Some(name) = p.get("name").and_then(Value::as_str)
                        {
                            declared.insert(name.to_string(), (pdoc, p));
                        }
                    }
                    Err(e) => errors.push(format!("parameter: {e}")),
                }
            }
        }

        let mut given: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in exchange.query.as_deref().unwrap_or("").split('&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            given
                .entry(percent_decode(k))
                .or_default()
                .push(percent_decode(v));
        }

        for (name, values) in &given {
            let Some((pdoc, parameter)) = declared.get(name) else {
                errors.push(format!("query parameter {name:?} is not declared"));
                continue;
            };
            let Some(schema) = parameter.get("schema") else {
                continue;
            };
            let (sdoc, schema) = match self.resolve(*pdoc, schema) {
                Ok(node) => node,
                Err(e) => {
                    errors.push(format!("query parameter {name:?}: {e}"));
                    continue;
                }
            };
            let is_array = schema.get("type").and_then(Value::as_str) == Some("array");
            if !is_array && values.len() > 1 {
                errors.push(format!(
                    "query parameter {name:?} given {} times",
                    values.len()
                ));
            }
            let item_schema = if is_array {
                schema.get("items").unwrap_or(&Value::Null)
            } else {
                schema
            };
            for raw in values {
                let typed = query_value(self.resolve(sdoc, item_schema).ok(), raw);
                let path = format!("query parameter {name:?}");
                self.validate_schema(sdoc, item_schema, &typed, &path, errors, 0);
            }
        }
        for (name, (_, parameter)) in &declared {
            if parameter.get("required") == Some(&Value::Bool(true)) && !given.contains_key(name) {
                errors.push(format!("required query parameter {name:?} is missing"));
            }
        }
    }

    // -- bodies ---------------------------------------------------------------

    fn check_request_body(
        &self,
        doc: usize,
        operation: &Value,
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
        let (bdoc, body) = match self.resolve(doc, body) {
            Ok(node) => node,
            Err(e) => {
                errors.push(format!("requestBody: {e}"));
                return;
            }
        };
        if !has_body {
            if body.get("required") == Some(&Value::Bool(true)) {
                errors.push("the required request body is missing".into());
            }
            return;
        }
        let Some(schema) = json_media(body.get("content")).and_then(|m| m.get("schema")) else {
            return;
        };
        match &exchange.request_body {
            Some(value) => self.validate_schema(bdoc, schema, value, "request body", errors, 0),
            None => errors.push("request body is not valid JSON".into()),
        }
    }

    fn check_response(
        &self,
        op: &Operation,
        operation: &Value,
        exchange: &Exchange,
        errors: &mut Vec<String>,
    ) {
        let status = exchange.status.to_string();
        let range = format!("{}XX", exchange.status / 100);
        let responses = operation.get("responses").and_then(Value::as_object);
        let declared = responses.and_then(|r| {
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
                let codes: Vec<&String> = responses.map(|r| r.keys().collect()).unwrap_or_default();
                errors.push(format!(
                    "status {status} is not declared (declared: {codes:?})"
                ));
            }
            return;
        };

        let (rdoc, response) = match self.resolve(op.doc, declared) {
            Ok(node) => node,
            Err(e) => {
                errors.push(format!("response: {e}"));
                return;
            }
        };
        let content = response
            .get("content")
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty());
        let has_body = !exchange.response_text.is_empty();
        let Some(content) = content else {
            if has_body {
                errors.push("response has a body but the spec declares none".into());
            }
            return;
        };
        if !has_body {
            if content.values().any(|m| m.get("schema").is_some()) {
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
        let media = match &media_type {
            Some(t) => match content.get(t.as_str()) {
                Some(media) => (t.clone(), media),
                None => {
                    let declared: Vec<&String> = content.keys().collect();
                    errors.push(format!(
                        "response content type {t:?} is not declared (declared: {declared:?})"
                    ));
                    return;
                }
            },
            None => {
                errors.push("response has a body but no Content-Type".into());
                return;
            }
        };
        let (media_type, media) = media;
        let Some(schema) = media.get("schema") else {
            return;
        };
        let is_json = media_type == "application/json" || media_type.ends_with("+json");
        let value = match (&exchange.response_body, is_json) {
            (Some(value), true) => value.clone(),
            _ => {
                // Not JSON (or not a JSON media type): only a string schema fits.
                let is_string = self
                    .resolve(rdoc, schema)
                    .ok()
                    .and_then(|(_, s)| s.get("type").and_then(Value::as_str))
                    == Some("string");
                if is_string {
                    Value::String(exchange.response_text.clone())
                } else {
                    errors.push(format!("response body is not valid JSON ({media_type})"));
                    return;
                }
            }
        };
        self.validate_schema(rdoc, schema, &value, "response body", errors, 0);
    }

    fn check_error_body(&self, exchange: &Exchange, errors: &mut Vec<String>) {
        let Ok((doc, schema)) = self.lookup_ref(None, ERROR_SCHEMA) else {
            return; // Specs without Mender's common schemas: nothing to compare with.
        };
        match &exchange.response_body {
            Some(value) => self.validate_schema(doc, schema, value, "error body", errors, 0),
            None => errors.push("error response without a JSON Error body".into()),
        }
    }

    // -- schemas ----------------------------------------------------------------

    fn validate_schema(
        &self,
        doc: usize,
        schema: &Value,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            errors.push(format!("{path}: schema nesting too deep"));
            return;
        }
        let (doc, schema) = match self.resolve(doc, schema) {
            Ok(node) => node,
            Err(e) => {
                errors.push(format!("{path}: {e}"));
                return;
            }
        };
        let Some(rules) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                errors.push(format!("{path}: no value is allowed here"));
            }
            return;
        };

        if value.is_null() {
            if rules.get("nullable") == Some(&Value::Bool(true)) {
                return;
            }
            if rules.contains_key("type") {
                errors.push(format!("{path}: null is not allowed"));
                return;
            }
        }
        if let Some(kind) = rules.get("type").and_then(Value::as_str)
            && !type_matches(kind, value)
        {
            errors.push(format!("{path}: expected {kind}, got {}", describe(value)));
            return;
        }
        if let Some(options) = rules.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            errors.push(format!(
                "{path}: {value} is not one of {}",
                Value::Array(options.clone())
            ));
        }
        self.check_bounds(rules, value, path, errors);

        if let Some(object) = value.as_object() {
            self.validate_object(doc, rules, object, path, errors, depth);
        }
        if let (Some(items), Some(array)) = (rules.get("items"), value.as_array()) {
            for (i, element) in array.iter().enumerate() {
                self.validate_schema(
                    doc,
                    items,
                    element,
                    &format!("{path}[{i}]"),
                    errors,
                    depth + 1,
                );
            }
        }

        if let Some(all) = rules.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.validate_schema(doc, sub, value, path, errors, depth + 1);
            }
        }
        if let Some(any) = rules.get("anyOf").and_then(Value::as_array) {
            let failures: Vec<Vec<String>> = any
                .iter()
                .map(|sub| self.errors_of(doc, sub, value, path, depth))
                .collect();
            if !failures.iter().any(Vec::is_empty) {
                errors.push(format!(
                    "{path}: matches none of anyOf: {}",
                    summarize(&failures)
                ));
            }
        }
        if let Some(one) = rules.get("oneOf").and_then(Value::as_array) {
            let failures: Vec<Vec<String>> = one
                .iter()
                .map(|sub| self.errors_of(doc, sub, value, path, depth))
                .collect();
            match failures.iter().filter(|f| f.is_empty()).count() {
                1 => {}
                0 => errors.push(format!(
                    "{path}: matches none of oneOf: {}",
                    summarize(&failures)
                )),
                n => errors.push(format!(
                    "{path}: matches {n} schemas of oneOf, expected exactly 1"
                )),
            }
        }
    }

    fn validate_object(
        &self,
        doc: usize,
        rules: &Map<String, Value>,
        object: &Map<String, Value>,
        path: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if let Some(required) = rules.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    errors.push(format!("{path}: missing required property {name:?}"));
                }
            }
        }
        let properties = rules.get("properties").and_then(Value::as_object);
        for (name, element) in object {
            let element_path = format!("{path}.{name}");
            if let Some(schema) = properties.and_then(|p| p.get(name)) {
                self.validate_schema(doc, schema, element, &element_path, errors, depth + 1);
                continue;
            }
            match rules.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    errors.push(format!("{path}: property {name:?} is not allowed"));
                }
                Some(schema @ Value::Object(_)) => {
                    self.validate_schema(doc, schema, element, &element_path, errors, depth + 1);
                }
                _ => {}
            }
        }
    }

    fn check_bounds(
        &self,
        rules: &Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let limit = |key: &str| rules.get(key).and_then(Value::as_f64);
        if let Some(s) = value.as_str() {
            let length = s.chars().count() as f64;
            if limit("minLength").is_some_and(|min| length < min) {
                errors.push(format!("{path}: shorter than minLength"));
            }
            if limit("maxLength").is_some_and(|max| length > max) {
                errors.push(format!("{path}: longer than maxLength"));
            }
        }
        if let Some(n) = value.as_f64() {
            if limit("minimum").is_some_and(|min| n < min) {
                errors.push(format!("{path}: {n} is below the minimum"));
            }
            if limit("maximum").is_some_and(|max| n > max) {
                errors.push(format!("{path}: {n} is above the maximum"));
            }
        }
        if let Some(a) = value.as_array() {
            let length = a.len() as f64;
            if limit("minItems").is_some_and(|min| length < min) {
                errors.push(format!("{path}: fewer items than minItems"));
            }
            if limit("maxItems").is_some_and(|max| length > max) {
                errors.push(format!("{path}: more items than maxItems"));
            }
        }
    }

    fn errors_of(
        &self,
        doc: usize,
        schema: &Value,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        self.validate_schema(doc, schema, value, path, &mut errors, depth + 1);
        errors
    }
}

fn summarize(failures: &[Vec<String>]) -> String {
    let mut text = String::new();
    for (i, f) in failures.iter().enumerate() {
        let _ = write!(
            text,
            "[{i}: {}] ",
            f.first().map(String::as_str).unwrap_or("ok")
        );
    }
    text.trim_end().to_string()
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
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
fn json_media(content: Option<&Value>) -> Option<&Value> {
    let content = content?.as_object()?;
    content.get("application/json").or_else(|| {
        content
            .iter()
            .find(|(k, _)| k.ends_with("+json"))
            .map(|(_, v)| v)
    })
}

/// A query string value, typed as its schema says (so that it can be
/// validated like JSON).
fn query_value(schema: Option<Node<'_>>, raw: &str) -> Value {
    let kind = schema.and_then(|(_, s)| s.get("type").and_then(Value::as_str));
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

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// `a/b/../c/./d` → `a/c/d`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Resolves `relative` against the directory of document `base`.
fn join(base: &str, relative: &str) -> String {
    let dir = base.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    normalize(&format!("{dir}/{relative}"))
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

/// YAML to JSON; mapping keys become strings (`200:` → `"200"`).
fn yaml_to_json(yaml: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (k, v) in mapping {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                object.insert(key, yaml_to_json(v)?);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}
