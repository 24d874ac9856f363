//! Properties of the pure rules, on generated input (the CI side of the
//! fuzz targets in `fuzz/`): the webhook signature and envelope, the shadow
//! document rules, the integration settings and setup body, and the
//! convergence planner fed random observations.
//!
//! `PROPTEST_CASES` sets the number of cases (256 by default here);
//! failures are reproducible from the seed proptest prints and persists.

use bridge::converge::Outcome;
use bridge::converge::plan::{
    CERTIFICATE_KEY, ENDPOINT_KEY, Observed, PRIVATE_KEY_KEY, Plan, delivered, held, plan,
};
use bridge::device::Wanted;
use bridge::http::ApiError;
use bridge::integration::validation::parse_setup;
use bridge::iot::{Certificate, ThingState};
use bridge::mender::Configuration;
use bridge::settings::{
    AwsCredentials, AwsSettings, IntegrationSettings, MenderSettings, Secret, WebhookSecret,
};
use bridge::shadow::{
    Change, MAX_SECTION_DEPTH, Precondition, Section, difference, merge, parse_change_request,
    parse_stored, section_depth, target_desired,
};
use bridge::webhook::{Classification, WebhookError, parse, sign, verify_signature};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z0-9 ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A shadow section: keys from a small alphabet so that sections overlap.
fn section() -> impl Strategy<Value = Section> {
    prop::collection::btree_map("[a-d]", json_value(), 0..5)
        .prop_map(|m| m.into_iter().collect::<Map<String, Value>>())
}

/// No `null` inside objects (arrays are values, kept whole).
fn null_free(value: &Value) -> bool {
    match value {
        Value::Object(fields) => fields.values().all(|v| !v.is_null() && null_free(v)),
        _ => true,
    }
}

/// What convergence may observe about a device: any status, any Thing, up
/// to three certificates in any state, any delivery and policy state.
fn observation() -> impl Strategy<Value = Observed> {
    let wanted = prop::sample::select(vec![
        Wanted::Active,
        Wanted::KeepActive,
        Wanted::Inactive,
        Wanted::Gone,
    ]);
    let thing = prop::sample::select(vec![
        ThingState::Absent,
        ThingState::Foreign,
        ThingState::Ours,
    ]);
    let certificates = prop::collection::vec(any::<bool>(), 0..4).prop_map(|states| {
        states
            .into_iter()
            .enumerate()
            .map(|(i, active)| Certificate {
                id: format!("c{i}"),
                arn: format!("arn:aws:iot:eu-west-1:123456789012:cert/c{i}"),
                active,
                pem: format!("PEM c{i}"),
            })
            .collect::<Vec<_>>()
    });
    // Which certificate the configuration holds (0..=3; 3 is none of them),
    // and whether the key, the endpoint and the policy are there.
    let delivery = (0usize..5, any::<bool>(), any::<bool>(), any::<bool>());
    // Other policies on the delivered certificate: the integration's old
    // one ("old", retired) and an operator's ("ops").
    let others = (any::<bool>(), any::<bool>(), any::<bool>());
    // Which certificate the device reports holding (4: none reported).
    let reported = 0usize..5;
    (
        wanted,
        thing,
        certificates,
        delivery,
        any::<bool>(),
        others,
        reported,
    )
        .prop_map(
            |(
                wanted,
                thing,
                certificates,
                (held, key, endpoint, policy),
                known,
                (old, ops, retired),
                reported,
            )| {
                let mut observed = Observed::new(wanted, thing, "policy");
                observed.known_to_mender = known;
                // A run without backfill, on a device older than the integration.
                observed.left_alone = held % 2 == 0;
                let mut configuration = Configuration::new();
                if held < 4 {
                    configuration.insert(CERTIFICATE_KEY.to_owned(), format!("PEM c{held}"));
                }
                if key {
                    configuration.insert(PRIVATE_KEY_KEY.to_owned(), "KEY".to_owned());
                }
                if endpoint {
                    configuration.insert(ENDPOINT_KEY.to_owned(), "e".to_owned());
                }
                observed.configuration = configuration;
                if reported < 4 {
                    observed.reported = Configuration::from([(
                        CERTIFICATE_KEY.to_owned(),
                        format!("PEM c{reported}"),
                    )]);
                }
                if policy {
                    observed.delivered_policies.push("policy".to_owned());
                }
                for (on, name) in [(old, "old"), (ops, "ops")] {
                    if on {
                        observed.delivered_policies.push(name.to_owned());
                    }
                }
                if retired {
                    observed.retired_policies = vec!["old".to_owned()];
                }
                observed.certificates = certificates;
                observed
            },
        )
}

fn hex_secret() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 1..48).prop_map(hex::encode)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    // --- webhook signature -------------------------------------------------

    #[test]
    fn verify_never_panics(secret in ".{0,80}", body in prop::collection::vec(any::<u8>(), 0..256),
                           signature in proptest::option::of(".{0,80}")) {
        let _ = verify_signature(&secret, &body, signature.as_deref());
    }

    #[test]
    fn a_signature_verifies_for_its_body_and_key_only(
        secret in hex_secret(), other in hex_secret(),
        body in prop::collection::vec(any::<u8>(), 0..512), flip in any::<prop::sample::Index>(),
    ) {
        let signature = sign(&secret, &body);
        prop_assert_eq!(verify_signature(&secret, &body, Some(&signature)), Ok(()));
        // Mender may send it in upper case; the check accepts any hex case.
        prop_assert_eq!(verify_signature(&secret, &body, Some(&signature.to_uppercase())), Ok(()));
        if hex::decode(&other).unwrap() != hex::decode(&secret).unwrap() {
            prop_assert_eq!(verify_signature(&other, &body, Some(&signature)), Err(WebhookError::BadSignature));
        }
        if !body.is_empty() {
            let mut tampered = body.clone();
            let at = flip.index(tampered.len());
            tampered[at] ^= 0x01;
            prop_assert_eq!(verify_signature(&secret, &tampered, Some(&signature)), Err(WebhookError::BadSignature));
        }
        let mut forged = signature.into_bytes();
        let at = flip.index(forged.len());
        forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        prop_assert_eq!(verify_signature(&secret, &body, Some(&forged)), Err(WebhookError::BadSignature));
        prop_assert_eq!(verify_signature(&secret, &body, None), Err(WebhookError::MissingSignature));
        prop_assert_eq!(verify_signature(&secret, &body, Some("")), Err(WebhookError::BadSignature));
    }

    // --- webhook envelope ---------------------------------------------------

    #[test]
    fn parse_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body);
    }

    #[test]
    fn parse_never_panics_on_json(value in json_value()) {
        let _ = parse(value.to_string().as_bytes());
    }

    #[test]
    fn parse_accepts_exactly_the_events_with_their_fields(
        id in proptest::option::of("[a-z0-9-]{0,6}"),
        event_type in proptest::option::of(prop_oneof![
            Just("device-provisioned".to_owned()), Just("device-status-changed".to_owned()),
            Just("device-decommissioned".to_owned()), Just("device-inventory-changed".to_owned()),
            "[a-z-]{0,12}"]),
        device in proptest::option::of("[a-z0-9]{0,6}"),
        status in proptest::option::of(prop_oneof![
            Just("accepted".to_owned()), Just("rejected".to_owned()), Just("pending".to_owned()),
            Just("noauth".to_owned()), Just("preauthorized".to_owned()), Just("decommissioned".to_owned()),
            "[a-z]{0,8}"]),
    ) {
        let mut event = Map::new();
        let mut data = Map::new();
        if let Some(id) = &id { event.insert("id".into(), json!(id)); }
        if let Some(t) = &event_type { event.insert("type".into(), json!(t)); }
        if let Some(d) = &device { data.insert("id".into(), json!(d)); }
        if let Some(s) = &status { data.insert("status".into(), json!(s)); }
        event.insert("data".into(), Value::Object(data));
        let result = parse(Value::Object(event).to_string().as_bytes());
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let device_event = matches!(event_type.as_deref(),
            Some("device-provisioned" | "device-status-changed" | "device-decommissioned"));
        let known_status = matches!(status.as_deref(),
            Some("accepted" | "rejected" | "pending" | "noauth" | "preauthorized" | "decommissioned"));
        let should_publish = present(&id) && device_event && present(&device)
            && (event_type.as_deref() != Some("device-status-changed") || known_status);
        match result {
            Ok((event, Classification::Publish(_))) => {
                prop_assert!(should_publish, "published {event:?}");
                prop_assert_eq!(Some(event.device_id), device);
                prop_assert_eq!(Some(event.id), id);
            }
            Ok((_, Classification::Ignore)) => {
                prop_assert!(present(&id) && present(&event_type) && !device_event);
            }
            Err(_) => prop_assert!(!should_publish),
        }
    }

    // --- shadow documents ----------------------------------------------------

    #[test]
    fn change_requests_never_panic_and_respect_the_depth(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(desired) = parse_change_request(&body) {
            prop_assert!(section_depth(&desired) <= MAX_SECTION_DEPTH);
        }
    }

    #[test]
    fn change_requests_on_json(value in json_value(), extra in proptest::option::of("[a-z]{1,8}")) {
        let mut body = json!({"desired": value});
        if let Some(extra) = &extra { body[extra.as_str()] = json!(1); }
        let parsed = parse_change_request(body.to_string().as_bytes());
        let only_desired = extra.as_deref().is_none_or(|e| e == "desired");
        match (&body["desired"], parsed) {
            (Value::Object(fields), Ok(desired)) => {
                prop_assert!(only_desired);
                prop_assert_eq!(&desired, fields);
            }
            (Value::Object(fields), Err(_)) => {
                prop_assert!(!only_desired || section_depth(fields) > MAX_SECTION_DEPTH);
            }
            (_, result) => prop_assert!(result.is_err()),
        }
    }

    #[test]
    fn a_replacement_patch_turns_current_into_the_desired_state(current in section(), requested in section()) {
        let target = target_desired(Change::Replace, &current, &requested);
        prop_assert!(null_free(&Value::Object(target.clone())));
        let patch = difference(&current, &target);
        prop_assert_eq!(merge(&current, &patch), target.clone());
        // Nothing to send when nothing changes.
        prop_assert!(difference(&target, &target).is_empty());
        prop_assert_eq!(patch.is_empty(), current == target);
    }

    #[test]
    fn a_merge_patch_is_what_aws_would_apply(current in section(), requested in section()) {
        let target = target_desired(Change::Merge, &current, &requested);
        prop_assert!(null_free(&Value::Object(target.clone())) || !null_free(&Value::Object(current.clone())));
        if null_free(&Value::Object(current.clone())) {
            let patch = difference(&current, &target);
            prop_assert_eq!(merge(&current, &patch), target);
        }
    }

    #[test]
    fn stored_documents_and_if_match_never_panic(payload in prop::collection::vec(any::<u8>(), 0..256),
                                                  value in json_value(), header in ".{0,40}") {
        let _ = parse_stored(&payload);
        let _ = parse_stored(value.to_string().as_bytes());
        let precondition = Precondition::parse(&header);
        let _ = precondition.matches(3);
    }

    // --- settings and setup ----------------------------------------------------

    #[test]
    fn settings_never_panic_on_any_json(value in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = serde_json::from_str::<IntegrationSettings>(&value.to_string());
        let _ = serde_json::from_slice::<IntegrationSettings>(&bytes);
    }

    #[test]
    fn settings_round_trip_and_never_print_their_secrets(
        webhook_secret in prop::collection::vec(any::<u8>(), 16..33).prop_map(hex::encode),
        token in "pat-[A-Za-z0-9._-]{16,40}",
        secret_key in "[A-Za-z0-9+/]{40}", role in any::<bool>(), description in ".{0,20}",
    ) {
        let settings = IntegrationSettings::new(
            "8a0c5c47-6a7e-4c8e-9a55-2f1c3d4e5f60",
            "acme",
            AwsSettings {
                region: "eu-west-1".into(),
                device_policy_name: "p".into(),
                credentials: if role {
                    AwsCredentials::AssumeRole { role_arn: "arn:aws:iam::123456789012:role/r".into(), external_id: None }
                } else {
                    AwsCredentials::AccessKey { access_key_id: "AKIAIOSFODNN7EXAMPLE".into(), secret_access_key: Secret::new(secret_key.clone()) }
                },
            },
            MenderSettings { token: Secret::new(token.clone()), webhook_integration_id: None, token_id: None },
            description,
        );
        let stored = serde_json::to_string(&settings).unwrap();
        prop_assert_eq!(serde_json::from_str::<IntegrationSettings>(&stored).unwrap(), settings.clone());
        let webhook = WebhookSecret::new(&settings.integration_id, "acme", Secret::new(webhook_secret.clone()));
        let stored = serde_json::to_string(&webhook).unwrap();
        prop_assert_eq!(serde_json::from_str::<WebhookSecret>(&stored).unwrap(), webhook.clone());
        let printed = format!("{settings:?} {webhook:?}");
        prop_assert!(!printed.contains(&webhook_secret));
        prop_assert!(!printed.contains(&token));
        prop_assert!(role || !printed.contains(&secret_key));
    }

    #[test]
    fn setup_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), value in json_value()) {
        let _ = parse_setup(&bytes);
        let _ = parse_setup(value.to_string().as_bytes());
    }

    // --- convergence planner --------------------------------------------------

    #[test]
    fn the_planner_never_touches_what_it_must_not(observed in observation()) {
        let plan = plan(&observed);
        let delivered = delivered(&observed.configuration, &observed.certificates).cloned();
        // What the device may be using: never retired, whatever the plan.
        let held: Vec<String> = held(&observed).iter().map(|c| c.id.clone()).collect();
        match (&observed.thing, &plan) {
            // Another's Thing, or none: nothing but a provisioning of an accepted device.
            (ThingState::Foreign, _) => prop_assert_eq!(&plan, &Plan::Keep(Outcome::Conflict)),
            (ThingState::Absent, Plan::Provision { create_thing, replaces, .. }) => {
                prop_assert_eq!(observed.wanted, Wanted::Active);
                prop_assert!(*create_thing && replaces.is_empty());
                prop_assert!(!observed.left_alone, "an older device is left alone");
            }
            (ThingState::Absent, other) => prop_assert_eq!(other, &Plan::Keep(Outcome::Nothing)),
            // Another era's Thing: claimed on proof, else left alone.
            (ThingState::Unclaimed, Plan::Claim) => {
                prop_assert!(observed.known_to_mender && delivered.is_some());
            }
            (ThingState::Unclaimed, other) => prop_assert_eq!(other, &Plan::Keep(Outcome::Conflict)),
            (ThingState::Ours, _) => {}
        }
        match &plan {
            Plan::Provision { replaces, create_thing, .. } => {
                prop_assert_eq!(observed.wanted, Wanted::Active);
                if observed.thing == ThingState::Ours {
                    prop_assert!(delivered.is_none(), "a delivered certificate is kept, not replaced");
                    prop_assert!(!create_thing);
                    prop_assert!(replaces.iter().all(|c| !held.contains(&c.id)));
                    prop_assert_eq!(replaces.len() + held.len(), observed.certificates.len());
                }
            }
            Plan::Repair { certificate, retire, detach_policies, attach_policy, .. } => {
                // Only the integration's own old policies are detached, and
                // only where the current one is (or is being) attached.
                prop_assert!(detach_policies.iter().all(|p| observed.retired_policies.contains(p)));
                prop_assert!(!detach_policies.contains(&observed.device_policy));
                prop_assert!(*attach_policy || observed.delivered_policies.contains(&observed.device_policy));
                prop_assert_eq!(observed.wanted, Wanted::Active);
                prop_assert_eq!(Some(certificate), delivered.as_ref());
                prop_assert!(retire.iter().all(|c| !held.contains(&c.id)));
                prop_assert_eq!(retire.len() + held.len(), observed.certificates.len());
            }
            Plan::SetActive { certificates, active, retire } => {
                prop_assert!(!certificates.is_empty() || !retire.is_empty());
                prop_assert_eq!(*active, observed.wanted == Wanted::KeepActive);
                prop_assert!(certificates.iter().all(|c| c.active != *active));
                // Retired only on proof of what the device holds, and never that.
                prop_assert!(retire.is_empty() || !held.is_empty());
                prop_assert!(retire.iter().all(|c| !held.contains(&c.id)));
            }
            Plan::Restore { .. } => prop_assert!(false, "only a cancelled rotation restores"),
            Plan::Remove { certificates, .. } => {
                prop_assert_eq!(observed.wanted, Wanted::Gone);
                prop_assert_eq!(certificates, &observed.certificates);
            }
            Plan::Keep(Outcome::InSync) => {
                // In sync means there is nothing to do.
                match observed.wanted {
                    Wanted::Active => {
                        prop_assert!(delivered.is_some(), "in sync means delivered");
                        prop_assert!(observed.certificates.iter().all(|c| c.active));
                        prop_assert_eq!(observed.certificates.len(), held.len());
                        // In sync: no retired policy of the integration left on it.
                        prop_assert!(observed.delivered_policies.iter().all(|p| !observed.retired_policies.contains(p) || *p == observed.device_policy));
                    }
                    Wanted::KeepActive => prop_assert!(observed.certificates.iter().all(|c| c.active)),
                    Wanted::Inactive => {
                        prop_assert!(observed.certificates.iter().all(|c| !c.active));
                        prop_assert!(held.is_empty() || observed.certificates.len() == held.len());
                    }
                    Wanted::Gone => prop_assert!(false, "a managed Thing of a gone device is removed"),
                }
            }
            Plan::Keep(_) | Plan::Claim => prop_assert!(observed.thing != ThingState::Ours),
        }
    }

    #[test]
    fn setup_accepts_only_complete_bodies(
        drop in prop::sample::select(vec!["", "/provider", "/credentials/type", "/credentials/aws/region",
            "/credentials/aws/device_policy_name", "/credentials/aws/access_key_id",
            "/credentials/aws/secret_access_key"]),
        region in prop_oneof![Just("eu-west-1".to_owned()), "[a-z]{2}-[a-z]{3,9}-[0-9]", ".{0,12}"],
        policy in prop_oneof![Just("mender-device-policy".to_owned()), ".{0,12}"],
        description in ".{0,40}",
    ) {
        let mut body = json!({"provider": "iot-core", "description": description,
            "credentials": {"type": "aws", "aws": {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "region": region, "device_policy_name": policy}}});
        if !drop.is_empty() {
            let (parent, key) = drop.rsplit_once('/').unwrap();
            let parent = if parent.is_empty() { &mut body } else { body.pointer_mut(parent).unwrap() };
            parent.as_object_mut().unwrap().remove(key);
        }
        match parse_setup(body.to_string().as_bytes()) {
            Ok(setup) => {
                prop_assert!(drop.is_empty(), "accepted without {drop}");
                prop_assert_eq!(&setup.aws.region, &region);
                prop_assert_eq!(&setup.aws.device_policy_name, &policy);
                prop_assert!(!policy.is_empty() && policy.len() <= 128);
                prop_assert!(policy.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b)));
                prop_assert!(region.split('-').count() >= 3);
                prop_assert!(setup.description.len() <= 1024);
            }
            Err(ApiError::InvalidFields(fields)) => {
                prop_assert!(!fields.is_empty());
                if !drop.is_empty() {
                    let dotted = drop.trim_start_matches('/').replace('/', ".");
                    prop_assert!(fields.iter().any(|f| f.field == dotted), "{dotted} not named: {fields:?}");
                }
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }
}
