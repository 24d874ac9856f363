//! The functions' logs: JSON lines when Lambda's logging controls ask for
//! them (`AWS_LAMBDA_LOG_FORMAT=JSON`, as template.yaml sets), at the level
//! they set (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO).
//!
//! A plain level, not `tracing_subscriber::EnvFilter` (what the Lambda
//! runtime's own initialiser uses): per-module directives are not needed,
//! and its regex engine is dead weight in every binary.

use tracing_subscriber::filter::LevelFilter;

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Lambda stamps every line itself; CloudWatch shows colour codes as text.
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .with_ansi(false);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn lambda_level_names_parse() {
        for (name, level) in [
            ("TRACE", LevelFilter::TRACE),
            ("DEBUG", LevelFilter::DEBUG),
            ("INFO", LevelFilter::INFO),
            ("WARN", LevelFilter::WARN),
            ("ERROR", LevelFilter::ERROR),
        ] {
            assert_eq!(name.parse::<LevelFilter>().unwrap(), level);
        }
    }
}
