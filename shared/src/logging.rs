//! The functions' logs: JSON lines when Lambda's logging controls ask for
//! them (`AWS_LAMBDA_LOG_FORMAT=JSON`, as template.yaml sets), at the level
//! they set (see [`crate::config`]).
//!
//! A plain level, not `tracing_subscriber::EnvFilter` (what the Lambda
//! runtime's own initialiser uses): per-module directives are not needed,
//! and its regex engine is dead weight in every binary.

use crate::config::Config;

pub fn init(config: &Config) {
    // Lambda stamps every line itself; CloudWatch shows colour codes as text.
    let logs = tracing_subscriber::fmt()
        .with_max_level(config.log_level)
        .with_target(false)
        .without_time()
        .with_ansi(false);
    if config.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
}
