//! The sample events of `tests/events/` (what `sam local invoke -e` and
//! `cargo lambda invoke --data-file` send), made real for a stack: the
//! files name a sample integration, device, token and run (see
//! `tests/events/README.md`), and a webhook is signed with a sample secret.

use std::path::PathBuf;

use serde_json::Value;

use crate::stack::Stack;

pub const SAMPLE_INTEGRATION_ID: &str = "c0ffee00-0000-4000-8000-000000000001";
pub const SAMPLE_DEVICE_ID: &str = "d5e7a1c2-0000-4000-8000-000000000002";
pub const SAMPLE_TOKEN: &str = "MENDER_TOKEN";
pub const SAMPLE_WEBHOOK_SECRET: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const SAMPLE_TENANT: &str = "acme";
pub const SAMPLE_RUN_ID: &str = "5a11e000-0000-4000-8000-000000000003";

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// A sample file's text, as it is.
pub fn read(name: &str) -> String {
    std::fs::read_to_string(events_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The sample `name` with `stack`'s integration and admin token, `device_id`
/// and `run_id` in place of the samples; a webhook's body is signed again
/// with the stack's secret (and its length set).
pub fn fixture(name: &str, stack: &Stack, device_id: &str, run_id: &str) -> Value {
    let text = read(name)
        .replace(SAMPLE_INTEGRATION_ID, &stack.integration_id)
        .replace(SAMPLE_DEVICE_ID, device_id)
        .replace(SAMPLE_RUN_ID, run_id)
        .replace(SAMPLE_TOKEN, &stack.admin_token);
    let mut event: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Some(body) = event["body"].as_str().map(str::to_owned)
        && let Some(headers) = event["headers"].as_object_mut()
    {
        headers.insert("content-length".into(), body.len().to_string().into());
        if headers.contains_key("x-men-signature") {
            let signature = bridge::webhook::sign(&stack.webhook_secret, body.as_bytes());
            headers.insert("x-men-signature".into(), signature.into());
        }
    }
    event
}
