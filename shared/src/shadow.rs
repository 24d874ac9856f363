//! The Device Shadow as users see it through the bridge: `{"desired", "reported"}`
//! and a version carried as an `ETag`. This module holds the document rules
//! as pure functions (what a request may contain, how a replacement becomes
//! the patch AWS applies, the size and depth AWS allows); [`store`] talks to
//! the AWS IoT data plane and [`api`] serves the HTTP routes.
//!
//! AWS merges every update into the stored document (objects recursively,
//! `null` deletes a key, anything else replaces). A replacement is therefore
//! sent as the difference between the current desired state and the new one,
//! under the version it was computed against, so that it is applied to
//! exactly that document or not at all.

pub mod api;
pub mod store;

use serde_json::{Map, Value, json};

/// A `desired` or `reported` section.
pub type Section = Map<String, Value>;

/// What AWS stores, without `metadata`, `version`, `timestamp` and `delta`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShadowState {
    pub desired: Section,
    pub reported: Section,
}

impl ShadowState {
    pub fn is_empty(&self) -> bool {
        self.desired.is_empty() && self.reported.is_empty()
    }

    /// The body every route answers with.
    pub fn to_json(&self) -> Value {
        json!({ "desired": self.desired, "reported": self.reported })
    }
}

/// A shadow as read from AWS: its state and the version that state has.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredShadow {
    pub state: ShadowState,
    pub version: u64,
}

/// The version reported for a device that has no shadow yet: AWS numbers
/// real documents from 1, so 0 names "no document".
pub const ABSENT_VERSION: u64 = 0;

/// AWS IoT Core counts at most 8 KiB of `desired` plus `reported` per shadow
/// (metadata excluded): "The device's shadow supports 8 KB of data only …
/// Only the data for desired and reported state inside the state document
/// … counts toward the limit."
/// <https://docs.aws.amazon.com/iot/latest/developerguide/diagnosing-shadows.html>
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024;

/// How deeply `desired` (or `reported`) may nest. AWS's quota is 8 levels
/// for the state document, counted from `state`: `state.desired` are the
/// first two, which leaves 6 inside a section. AWS's own error message says
/// so ("JSON contains too many levels of nesting; maximum is 6",
/// <https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html>),
/// and so does the count in Espressif's limits table ("Shadow JSON depth 8 …
/// state.reported.params.<device>.<param> is 5",
/// <https://docs.espressif.com/projects/esp-rainmaker-neo/en/latest/specs/limits.html>).
/// Arrays count as a level, as objects do.
pub const MAX_SECTION_DEPTH: usize = 6;

/// The largest request body read at all. Far above what can make a valid
/// document (nulls and white space included), far below API Gateway's limit.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// AWS's shadow name rule, less the `$` AWS keeps for its own shadows.
pub const MAX_SHADOW_NAME_LEN: usize = 64;

/// How a write combines with what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `PUT`: the body's `desired` becomes the whole desired state.
    Replace,
    /// `PATCH`: merged into the desired state; `null` removes a key.
    Merge,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body must be a JSON object with an object `desired`")]
    NotAnObjectWithDesired,
    #[error("`reported` belongs to the device and cannot be written through this API")]
    ReportedGiven,
    #[error("unknown field `{0}`: only `desired` can be written")]
    UnknownField(String),
    #[error("`desired` nests {depth} levels deep; AWS IoT allows at most {MAX_SECTION_DEPTH}")]
    TooDeep { depth: usize },
    #[error(
        "the resulting shadow would hold {size} bytes of state; AWS IoT allows at most {MAX_DOCUMENT_BYTES}"
    )]
    TooLarge { size: usize },
    #[error(
        "invalid shadow name: 1 to {MAX_SHADOW_NAME_LEN} characters of letters, digits, `:`, `_` and `-`"
    )]
    InvalidShadowName,
}

/// Whether `name` may address a named shadow (`[a-zA-Z0-9:_-]+`, ≤ 64).
pub fn validate_shadow_name(name: &str) -> Result<(), DocumentError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SHADOW_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(DocumentError::InvalidShadowName)
    }
}

/// The `desired` section of a `PUT` or `PATCH` body, checked.
pub fn parse_change_request(body: &[u8]) -> Result<Section, DocumentError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DocumentError::NotJson(e.to_string()))?;
    let Value::Object(mut fields) = value else {
        return Err(DocumentError::NotAnObjectWithDesired);
    };
    if fields.contains_key("reported") {
        return Err(DocumentError::ReportedGiven);
    }
    // Fields AWS would take (`version`, `clientToken`, `state`) would be
    // silently ignored here; refusing them says so.
    if let Some(unknown) = fields.keys().find(|k| *k != "desired") {
        return Err(DocumentError::UnknownField(unknown.clone()));
    }
    let Some(Value::Object(desired)) = fields.remove("desired") else {
        return Err(DocumentError::NotAnObjectWithDesired);
    };
    let depth = section_depth(&desired);
    if depth > MAX_SECTION_DEPTH {
        return Err(DocumentError::TooDeep { depth });
    }
    Ok(desired)
}

/// Levels of nesting in a section: `{"a": 1}` is 1, `{"a": {"b": [1]}}` is 3.
pub fn section_depth(section: &Section) -> usize {
    1 + section.values().map(depth).max().unwrap_or(0)
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(fields) => section_depth(fields),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The desired state a change leads to from `current`.
pub fn target_desired(change: Change, current: &Section, requested: &Section) -> Section {
    match change {
        // A value of `null` cannot be stored: in a replacement it means absent.
        Change::Replace => without_nulls(requested),
        Change::Merge => merge(current, requested),
    }
}

/// `patch` applied to `section` as AWS applies an update: objects merge
/// recursively, `null` removes, anything else replaces.
pub fn merge(section: &Section, patch: &Section) -> Section {
    let mut merged = section.clone();
    for (key, value) in patch {
        match (value, merged.get(key)) {
            (Value::Null, _) => {
                merged.remove(key);
            }
            (Value::Object(inner), Some(Value::Object(existing))) => {
                let inner = merge(existing, inner);
                merged.insert(key.clone(), Value::Object(inner));
            }
            (Value::Object(inner), _) => {
                merged.insert(key.clone(), Value::Object(without_nulls(inner)));
            }
            (other, _) => {
                merged.insert(key.clone(), other.clone());
            }
        }
    }
    merged
}

fn without_nulls(section: &Section) -> Section {
    section
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| match value {
            Value::Object(inner) => (key.clone(), Value::Object(without_nulls(inner))),
            other => (key.clone(), other.clone()),
        })
        .collect()
}

/// The smallest update that turns `current` into `target` under [`merge`]:
/// keys to drop are sent as `null`, nested objects as their own difference.
/// Empty when nothing changes.
pub fn difference(current: &Section, target: &Section) -> Section {
    let mut patch = Section::new();
    for key in current.keys() {
        if !target.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, wanted) in target {
        match (current.get(key), wanted) {
            (Some(have), wanted) if have == wanted => {}
            (Some(Value::Object(have)), Value::Object(wanted)) => {
                patch.insert(key.clone(), Value::Object(difference(have, wanted)));
            }
            (_, wanted) => {
                patch.insert(key.clone(), wanted.clone());
            }
        }
    }
    patch
}

/// The bytes AWS counts toward [`MAX_DOCUMENT_BYTES`], at most: the
/// compact JSON of both sections.
pub fn document_size(state: &ShadowState) -> usize {
    state.to_json().to_string().len()
}

pub fn check_size(state: &ShadowState) -> Result<(), DocumentError> {
    let size = document_size(state);
    if size > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge { size });
    }
    Ok(())
}

/// The UpdateThingShadow payload for a desired-state patch. `version` makes
/// AWS refuse it (409) unless the document is still at that version.
pub fn update_request(patch: &Section, version: u64) -> Value {
    json!({ "state": { "desired": patch }, "version": version })
}

/// An update that creates a missing shadow and changes nothing if another
/// writer created it first. The bridge sends it (without a version: asking
/// for a version of a missing shadow fails) before computing a change, so
/// that the change itself is always versioned.
pub fn create_request() -> Value {
    json!({ "state": {} })
}

/// The GetThingShadow payload, reduced to what users see.
pub fn parse_stored(payload: &[u8]) -> Result<StoredShadow, String> {
    let document: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let version = document
        .get("version")
        .and_then(Value::as_u64)
        .ok_or("the shadow document has no version")?;
    let section = |name: &str| -> Result<Section, String> {
        match document.get("state").and_then(|state| state.get(name)) {
            None | Some(Value::Null) => Ok(Section::new()),
            Some(Value::Object(section)) => Ok(section.clone()),
            Some(_) => Err(format!("the shadow's `{name}` is not an object")),
        }
    };
    Ok(StoredShadow {
        state: ShadowState {
            desired: section("desired")?,
            reported: section("reported")?,
        },
        version,
    })
}

/// The version in an UpdateThingShadow answer (the rest is a partial echo).
pub fn parse_update_version(payload: &[u8]) -> Result<u64, String> {
    serde_json::from_slice::<Value>(payload)
        .map_err(|e| e.to_string())?
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| "the update answer has no version".to_owned())
}

/// The `ETag` of a shadow version (a strong entity tag).
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// What an `If-Match` header asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: any current state.
    Any,
    /// One of these versions. Weak or foreign tags match nothing (If-Match
    /// compares strongly), so they end up here as nothing.
    OneOf(Vec<u64>),
}

impl Precondition {
    pub fn parse(header: &str) -> Precondition {
        if header.trim() == "*" {
            return Precondition::Any;
        }
        Precondition::OneOf(
            header
                .split(',')
                .filter_map(|tag| {
                    let tag = tag.trim();
                    // Quoted as sent; a bare number is accepted too.
                    let tag = tag
                        .strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'))
                        .unwrap_or(tag);
                    tag.parse().ok()
                })
                .collect(),
        )
    }

    pub fn matches(&self, version: u64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::OneOf(versions) => versions.contains(&version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(value: Value) -> Section {
        match value {
            Value::Object(section) => section,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn requests_must_be_an_object_with_an_object_desired() {
        assert_eq!(
            parse_change_request(br#"{"desired":{"a":1}}"#).unwrap(),
            section(json!({"a": 1}))
        );
        for body in [
            &br#"[1]"#[..],
            br#"{}"#,
            br#"{"desired":null}"#,
            br#"{"desired":[1]}"#,
            br#"{"desired":"x"}"#,
        ] {
            assert_eq!(
                parse_change_request(body),
                Err(DocumentError::NotAnObjectWithDesired),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            parse_change_request(b"{not json"),
            Err(DocumentError::NotJson(_))
        ));
        assert_eq!(
            parse_change_request(br#"{"desired":{},"reported":{"a":1}}"#),
            Err(DocumentError::ReportedGiven)
        );
        assert_eq!(
            parse_change_request(br#"{"desired":{},"version":3}"#),
            Err(DocumentError::UnknownField("version".into()))
        );
    }

    #[test]
    fn depth_is_counted_inside_the_section() {
        assert_eq!(section_depth(&Section::new()), 1);
        assert_eq!(section_depth(&section(json!({"a": 1}))), 1);
        assert_eq!(section_depth(&section(json!({"a": {"b": [1]}}))), 3);
        assert_eq!(section_depth(&section(json!({"a": [], "b": {"c": {}}}))), 3);
    }

    fn nested(levels: usize) -> Value {
        // `levels` objects deep, the innermost holding a number.
        (1..levels).fold(json!({"leaf": 1}), |inner, _| json!({ "n": inner }))
    }

    #[test]
    fn requests_nested_deeper_than_aws_allows_are_refused() {
        let deepest = json!({ "desired": nested(MAX_SECTION_DEPTH) }).to_string();
        assert!(parse_change_request(deepest.as_bytes()).is_ok());
        let too_deep = json!({ "desired": nested(MAX_SECTION_DEPTH + 1) }).to_string();
        assert_eq!(
            parse_change_request(too_deep.as_bytes()),
            Err(DocumentError::TooDeep {
                depth: MAX_SECTION_DEPTH + 1
            })
        );
        let in_array = json!({ "desired": {"a": [nested(MAX_SECTION_DEPTH - 1)]} }).to_string();
        assert!(matches!(
            parse_change_request(in_array.as_bytes()),
            Err(DocumentError::TooDeep { .. })
        ));
    }

    #[test]
    fn merging_follows_aws_rules() {
        let current = section(json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "d": "s"}));
        let patch = section(
            json!({"a": null, "b": {"x": null, "z": 3}, "c": [3], "e": {"f": null, "g": 1}}),
        );
        assert_eq!(
            merge(&current, &patch),
            section(json!({"b": {"y": 2, "z": 3}, "c": [3], "d": "s", "e": {"g": 1}}))
        );
        // Removing a key that is not there changes nothing.
        assert_eq!(merge(&current, &section(json!({"nope": null}))), current);
    }

    #[test]
    fn replacing_drops_absent_keys_and_nulls() {
        let current = section(json!({"a": 1, "b": {"x": 1}}));
        let requested = section(json!({"b": {"y": null, "z": 2}, "c": null}));
        assert_eq!(
            target_desired(Change::Replace, &current, &requested),
            section(json!({"b": {"z": 2}}))
        );
        assert_eq!(
            target_desired(Change::Merge, &current, &requested),
            section(json!({"a": 1, "b": {"x": 1, "z": 2}}))
        );
    }

    #[test]
    fn the_difference_turns_current_into_target() {
        let cases = [
            (json!({}), json!({"a": 1})),
            (json!({"a": 1, "b": 2}), json!({"b": 2})),
            (json!({"a": {"x": 1, "y": 2}}), json!({"a": {"y": 3}})),
            (json!({"a": {"x": 1}}), json!({"a": 5})),
            (json!({"a": 5}), json!({"a": {"x": 1}})),
            (json!({"a": [1, 2]}), json!({"a": [2]})),
            (
                json!({"a": {"x": {"p": 1, "q": 2}}}),
                json!({"a": {"x": {"q": 2}}}),
            ),
            (json!({"a": 1}), json!({})),
        ];
        for (current, target) in cases {
            let (current, target) = (section(current), section(target));
            let patch = difference(&current, &target);
            assert_eq!(merge(&current, &patch), target, "patch {patch:?}");
        }
        // Only what changes is sent.
        let current = section(json!({"a": 1, "b": {"x": 1, "y": 2}}));
        let target = section(json!({"a": 1, "b": {"x": 1}}));
        assert_eq!(
            difference(&current, &target),
            section(json!({"b": {"y": null}}))
        );
        assert!(difference(&current, &current).is_empty());
    }

    #[test]
    fn size_counts_both_sections() {
        let mut state = ShadowState::default();
        assert_eq!(
            document_size(&state),
            r#"{"desired":{},"reported":{}}"#.len()
        );
        state.reported.insert("r".into(), json!("x".repeat(4000)));
        state.desired.insert("d".into(), json!("y".repeat(4000)));
        assert!(check_size(&state).is_ok());
        state.desired.insert("e".into(), json!("z".repeat(300)));
        assert!(matches!(
            check_size(&state),
            Err(DocumentError::TooLarge { size }) if size > MAX_DOCUMENT_BYTES
        ));
    }

    #[test]
    fn stored_documents_lose_everything_but_the_state() {
        let payload = json!({
            "state": {"desired": {"a": 1}, "reported": {"b": 2}, "delta": {"a": 1}},
            "metadata": {"desired": {"a": {"timestamp": 1}}},
            "version": 7,
            "timestamp": 1_700_000_000,
            "clientToken": "t"
        });
        let stored = parse_stored(payload.to_string().as_bytes()).unwrap();
        assert_eq!(stored.version, 7);
        assert_eq!(
            stored.state.to_json(),
            json!({"desired": {"a": 1}, "reported": {"b": 2}})
        );
        // Sections AWS leaves out read as empty.
        let bare = parse_stored(br#"{"state":{},"version":1}"#).unwrap();
        assert!(bare.state.is_empty());
        assert!(parse_stored(br#"{"state":{}}"#).is_err());
        assert_eq!(parse_update_version(br#"{"state":{},"version":4}"#), Ok(4));
    }

    #[test]
    fn shadow_names_follow_aws_rules() {
        for good in ["config", "a:b_c-d", &"x".repeat(64)] {
            assert!(validate_shadow_name(good).is_ok(), "{good}");
        }
        for bad in ["", "$package", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(validate_shadow_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn if_match_compares_versions_strongly() {
        assert_eq!(etag(3), "\"3\"");
        assert!(Precondition::parse("*").matches(9));
        assert!(Precondition::parse("\"3\"").matches(3));
        assert!(Precondition::parse("\"1\", \"3\"").matches(3));
        assert!(Precondition::parse("3").matches(3));
        assert!(!Precondition::parse("\"4\"").matches(3));
        assert!(!Precondition::parse("W/\"3\"").matches(3));
        assert!(!Precondition::parse("\"abc\"").matches(3));
    }

    #[test]
    fn updates_carry_the_version_creation_does_not() {
        let patch = section(json!({"a": null}));
        assert_eq!(
            update_request(&patch, 5),
            json!({"state": {"desired": {"a": null}}, "version": 5})
        );
        assert!(create_request().get("version").is_none());
    }
}
