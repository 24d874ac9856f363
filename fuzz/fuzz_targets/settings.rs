//! The integration settings (the secret's JSON) and the setup body, on any
//! bytes: never a panic; stored settings round-trip; an accepted setup body
//! holds only values the rules allow.
#![no_main]

use bridge::integration::parse_setup;
use bridge::settings::IntegrationSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(settings) = serde_json::from_slice::<IntegrationSettings>(data) {
        let stored = serde_json::to_vec(&settings).unwrap();
        let again: IntegrationSettings = serde_json::from_slice(&stored).unwrap();
        assert_eq!(again, settings);
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
    }
});
