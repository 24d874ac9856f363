//! The validator itself: it must reject what does not conform.

use mender_standin::Exchange;
use mender_standin::openapi::Specs;
use serde_json::{Value, json};

fn mender() -> Specs {
    Specs::load_mender().expect("specs")
}

fn exchange(method: &str, path: &str, status: u16, response: Option<Value>) -> Exchange {
    Exchange {
        method: method.into(),
        path: path.into(),
        status,
        response_content_type: response.as_ref().map(|_| "application/json".into()),
        response_text: response.as_ref().map(Value::to_string).unwrap_or_default(),
        response_body: response,
        ..Exchange::default()
    }
}

fn with_request(mut e: Exchange, body: Value) -> Exchange {
    e.request_text = body.to_string();
    e.request_body = Some(body);
    e
}

fn device() -> Value {
    json!({
        "id": "d1", "identity_data": {"mac": "x"}, "status": "accepted",
        "created_ts": "2024-01-01T00:00:00Z", "updated_ts": "2024-01-01T00:00:00Z",
        "auth_sets": [{"id": "a1", "identity_data": {}, "pubkey": "k", "ts": "2024-01-01T00:00:00Z", "status": "accepted"}],
        "decommissioning": false
    })
}

/// Asserts a failure whose messages mention `needle`.
fn rejects(specs: &Specs, e: &Exchange, needle: &str) {
    match specs.check(e) {
        Ok(()) => panic!("accepted a bad exchange: {e:?}"),
        Err(errors) => assert!(
            errors.iter().any(|m| m.contains(needle)),
            "expected {needle:?} in {errors:?}"
        ),
    }
}

const DEVICE: &str = "/api/management/v2/devauth/devices/d1";

#[test]
fn loads_every_mender_operation() {
    let specs = mender();
    let operations = specs.operations();
    assert!(operations.len() > 40, "{operations:?}");
    assert!(operations.contains(&"GET /api/management/v2/devauth/devices/{id}".to_string()));
    assert_eq!(
        specs
            .operation_of("GET", "/api/management/v2/devauth/devices/count")
            .as_deref(),
        Some("GET /api/management/v2/devauth/devices/count"),
        "the literal template wins over {{id}}"
    );
    assert_eq!(
        specs
            .operation_of("GET", "/api/management/v1/useradm/users/me")
            .as_deref(),
        Some("GET /api/management/v1/useradm/users/me")
    );
    assert_eq!(specs.operation_of("PATCH", DEVICE), None);
}

#[test]
fn a_good_device_passes() {
    assert_eq!(
        mender().check(&exchange("GET", DEVICE, 200, Some(device()))),
        Ok(())
    );
}

#[test]
fn rejects_wrong_response_bodies() {
    let specs = mender();
    let mut bad = device();
    bad["status"] = json!("dismissed");
    rejects(
        &specs,
        &exchange("GET", DEVICE, 200, Some(bad)),
        "is not one of",
    );

    let mut bad = device();
    bad["auth_sets"][0]["pubkey"] = json!(42);
    rejects(
        &specs,
        &exchange("GET", DEVICE, 200, Some(bad)),
        "body.auth_sets[0].pubkey: expected string",
    );

    let mut bad = device();
    bad["decommissioning"] = json!("no");
    rejects(
        &specs,
        &exchange("GET", DEVICE, 200, Some(bad)),
        "expected boolean",
    );

    rejects(
        &specs,
        &exchange("GET", DEVICE, 200, Some(json!([device()]))),
        "expected object",
    );

    // A list whose items are wrong.
    let list = "/api/management/v2/devauth/devices";
    rejects(
        &specs,
        &exchange("GET", list, 200, Some(json!([device(), 5]))),
        "[1]: expected object",
    );

    // useradm's User requires email and id.
    let me = "/api/management/v1/useradm/users/me";
    rejects(
        &specs,
        &exchange("GET", me, 200, Some(json!({"id": "u"}))),
        "missing required property \"email\"",
    );

    // Error bodies must be Mender errors.
    rejects(
        &specs,
        &exchange("GET", DEVICE, 404, Some(json!({"message": "nope"}))),
        "\"error\"",
    );
}

#[test]
fn rejects_undeclared_statuses_paths_and_bodies() {
    let specs = mender();
    rejects(
        &specs,
        &exchange("GET", DEVICE, 418, Some(json!({"error": "teapot"}))),
        "status 418 is not declared",
    );
    rejects(
        &specs,
        &exchange("GET", "/api/management/v9/nothing", 200, None),
        "no operation",
    );
    // 204 must be empty; 200 must have its body.
    let mut with_body = exchange("DELETE", DEVICE, 204, Some(json!({"ok": true})));
    rejects(&specs, &with_body, "declares none");
    with_body.response_text = String::new();
    with_body.response_body = None;
    with_body.response_content_type = None;
    assert_eq!(specs.check(&with_body), Ok(()));
    rejects(
        &specs,
        &exchange("GET", DEVICE, 200, None),
        "response body is missing",
    );

    // Undeclared content type, and bodies that are not JSON.
    let mut text = exchange("GET", DEVICE, 200, Some(device()));
    text.response_content_type = Some("text/plain".into());
    rejects(&specs, &text, "content type \"text/plain\" is not declared");
    let mut garbage = exchange("GET", DEVICE, 200, None);
    garbage.response_content_type = Some("application/json".into());
    garbage.response_text = "hello".into();
    rejects(&specs, &garbage, "not valid JSON");
}

#[test]
fn gateway_errors_are_allowed_only_on_secured_operations_with_error_bodies() {
    let specs = mender();
    let error = json!({"error": "Forbidden", "request_id": "r"});
    assert_eq!(
        specs.check(&exchange("GET", DEVICE, 403, Some(error.clone()))),
        Ok(())
    );
    assert_eq!(
        specs.check(&exchange("GET", DEVICE, 401, Some(error))),
        Ok(())
    );
    rejects(
        &specs,
        &exchange("GET", DEVICE, 403, Some(json!({"reason": 1}))),
        "error body",
    );
    rejects(
        &specs,
        &exchange("GET", DEVICE, 403, None),
        "without a JSON Error body",
    );
    // Login is not ManagementJWT-secured: no gateway 403 there.
    rejects(
        &specs,
        &exchange(
            "POST",
            "/api/management/v1/useradm/auth/login",
            403,
            Some(json!({"error": "x"})),
        ),
        "status 403 is not declared",
    );
}

#[test]
fn rejects_wrong_request_bodies() {
    let specs = mender();
    let path = "/api/management/v2/devauth/devices/d1/auth/a1/status";
    let ok = with_request(
        exchange("PUT", path, 204, None),
        json!({"status": "accepted"}),
    );
    assert_eq!(specs.check(&ok), Ok(()));
    rejects(
        &specs,
        &with_request(exchange("PUT", path, 204, None), json!({"status": 5})),
        "request body.status: expected string",
    );
    rejects(
        &specs,
        &with_request(
            exchange("PUT", path, 204, None),
            json!({"status": "noauth"}),
        ),
        "is not one of",
    );
    rejects(
        &specs,
        &with_request(exchange("PUT", path, 204, None), json!({})),
        "missing required property \"status\"",
    );
    rejects(
        &specs,
        &exchange("PUT", path, 204, None),
        "required request body is missing",
    );
    let mut not_json = exchange("PUT", path, 204, None);
    not_json.request_text = "{".into();
    rejects(&specs, &not_json, "request body is not valid JSON");
    // The server said 400 itself: the request is not held against the spec.
    let refused = with_request(
        exchange("PUT", path, 400, Some(json!({"error": "bad"}))),
        json!({"status": 5}),
    );
    assert_eq!(specs.check(&refused), Ok(()));

    // deviceconfig: a flat map of strings.
    let config = "/api/management/v1/deviceconfig/configurations/device/d1";
    assert_eq!(
        specs.check(&with_request(
            exchange("PUT", config, 204, None),
            json!({"a": "b"})
        )),
        Ok(())
    );
    rejects(
        &specs,
        &with_request(exchange("PUT", config, 204, None), json!({"a": 1})),
        "request body.a: expected string",
    );

    // A body where the operation takes none.
    rejects(
        &specs,
        &with_request(exchange("DELETE", DEVICE, 204, None), json!({})),
        "declares none",
    );
}

#[test]
fn one_of_credentials_must_match_exactly_one_kind() {
    let specs = mender();
    let path = "/api/management/v1/iot-manager/integrations";
    let good = json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": "https://x/", "secret": "ab"}}});
    assert_eq!(
        specs.check(&with_request(exchange("POST", path, 201, None), good)),
        Ok(())
    );
    let missing_http = json!({"provider": "webhook", "credentials": {"type": "http"}});
    rejects(
        &specs,
        &with_request(exchange("POST", path, 201, None), missing_http),
        "matches none of oneOf",
    );
    let bad_provider =
        json!({"provider": "pigeon", "credentials": {"type": "http", "http": {"url": "u"}}});
    rejects(
        &specs,
        &with_request(exchange("POST", path, 201, None), bad_provider),
        "is not one of",
    );
    // The known undeclared 409 passes, with an Error body.
    let conflict = with_request(
        exchange(
            "POST",
            path,
            409,
            Some(json!({"error": "integration already exists"})),
        ),
        json!({"provider": "webhook", "credentials": {"type": "http", "http": {"url": "https://x/"}}}),
    );
    assert_eq!(specs.check(&conflict), Ok(()));
}

#[test]
fn checks_query_parameters() {
    let specs = mender();
    let list = "/api/management/v2/devauth/devices";
    let query = |q: &str| {
        let mut e = exchange("GET", list, 200, Some(json!([])));
        e.query = Some(q.into());
        e
    };
    assert_eq!(
        specs.check(&query("status=accepted&page=2&per_page=500&id=a&id=b")),
        Ok(())
    );
    rejects(&specs, &query("status=dismissed"), "is not one of");
    rejects(&specs, &query("per_page=501"), "above the maximum");
    rejects(&specs, &query("page=two"), "expected integer");
    rejects(
        &specs,
        &query("sort=asc"),
        "query parameter \"sort\" is not declared",
    );
    rejects(
        &specs,
        &query("status=accepted&status=pending"),
        "given 2 times",
    );
}

#[test]
fn raw_token_body_passes_only_where_a_string_is_declared() {
    let specs = mender();
    let mut pat = exchange(
        "POST",
        "/api/management/v1/useradm/settings/tokens",
        200,
        None,
    );
    pat = with_request(pat, json!({"name": "ci", "expires_in": 60}));
    pat.response_content_type = Some("application/json".into());
    pat.response_text = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln".into();
    assert_eq!(specs.check(&pat), Ok(()));
    let mut missing_name = pat.clone();
    missing_name.request_body = Some(json!({"expires_in": 60}));
    missing_name.request_text = "{\"expires_in\":60}".into();
    rejects(&specs, &missing_name, "missing required property \"name\"");
}

#[test]
fn schema_keywords_on_a_small_spec() {
    let common = r#"
components:
  schemas:
    Base:
      type: object
      required: [id]
      properties:
        id: {type: string}
"#;
    let api = r#"
openapi: 3.0.0
paths:
  /things/{id}:
    get:
      security: [{Jwt: []}]
      responses:
        200:
          description: ok
          content:
            application/json:
              schema:
                allOf:
                  - $ref: '../common/schemas.yaml#/components/schemas/Base'
                  - type: object
                    additionalProperties: false
                    properties:
                      id: {type: string}
                      count: {type: integer, minimum: 0}
                      note: {type: string, nullable: true, maxLength: 3}
                      either:
                        anyOf:
                          - {type: string}
                          - {type: boolean}
                      tags:
                        type: array
                        maxItems: 2
                        items: {type: string, enum: [a, b]}
"#;
    let specs =
        Specs::from_yaml_documents(&[("common/schemas.yaml", common), ("api/spec.yaml", api)])
            .expect("in-memory specs");
    let check = |body: Value| specs.check(&exchange("GET", "/things/1", 200, Some(body)));

    assert_eq!(
        check(json!({"id": "1", "count": 2, "note": null, "either": true, "tags": ["a"]})),
        Ok(())
    );
    assert_eq!(
        check(json!({"id": "1", "count": 2.0})),
        Ok(()),
        "2.0 is an integer"
    );
    let fails = |body: Value, needle: &str| {
        let errors = check(body.clone()).expect_err(&body.to_string());
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{needle:?} not in {errors:?}"
        );
    };
    fails(json!({"count": 1}), "missing required property \"id\"");
    fails(
        json!({"id": "1", "extra": 1}),
        "property \"extra\" is not allowed",
    );
    fails(json!({"id": "1", "count": 1.5}), "expected integer");
    fails(json!({"id": "1", "count": -1}), "below the minimum");
    fails(json!({"id": null}), "null is not allowed");
    fails(json!({"id": "1", "note": "long"}), "longer than maxLength");
    fails(json!({"id": "1", "either": 3}), "matches none of anyOf");
    fails(
        json!({"id": "1", "tags": ["a", "c"]}),
        "body.tags[1]: \"c\" is not one of",
    );
    fails(
        json!({"id": "1", "tags": ["a", "b", "a"]}),
        "more items than maxItems",
    );
    // A broken $ref is reported, not ignored.
    let broken = api.replace("../common/schemas.yaml", "../common/missing.yaml");
    let specs = Specs::from_yaml_documents(&[
        ("common/schemas.yaml", common),
        ("api/spec.yaml", broken.as_str()),
    ])
    .unwrap();
    let errors = specs
        .check(&exchange("GET", "/things/1", 200, Some(json!({"id": "1"}))))
        .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("no document \"common/missing.yaml\"")),
        "{errors:?}"
    );
}
