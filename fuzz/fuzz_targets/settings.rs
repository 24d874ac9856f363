//! The integration secrets (their JSON, and a schema-1 secret's split) and
//! the setup body, on any bytes: never a panic; stored secrets round-trip;
//! a split keeps the webhook secret out of the credentials; an accepted
//! setup body holds only values the rules allow.
#![no_main]

use bridge::integration::validation::parse_setup;
use bridge::settings::legacy::split;
use bridge::settings::{IntegrationSettings, WebhookSecret};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let stored = serde_json::to_vec(&value).unwrap();
        let again: T = serde_json::from_slice(&stored).unwrap();
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trips::<IntegrationSettings>(data);
    round_trips::<WebhookSecret>(data);
    if let Some((settings, webhook)) = std::str::from_utf8(data).ok().and_then(split) {
        assert_eq!(settings.integration_id, webhook.integration_id);
        let credentials = serde_json::to_value(&settings).unwrap();
        assert!(credentials.get("webhook_secret").is_none());
    }
    if let Ok(setup) = parse_setup(data) {
        let policy = &setup.aws.device_policy_name;
        assert!(!policy.is_empty() && policy.len() <= 128);
        assert!(
            policy
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
        );
        assert!(setup.aws.region.split('-').count() >= 3);
        assert!(setup.description.len() <= 1024);
        assert!(setup.safety_limit.percent <= 100);
    }
});
