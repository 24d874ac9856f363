//! The one clock: seconds since the epoch for DynamoDB (expiries, TTLs) and
//! RFC 3339 text for what people read (created, updated, started, ended).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch (Lambda's deadlines are given so).
pub fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Milliseconds since the epoch, as RFC 3339 in UTC with three decimals.
pub fn rfc3339_of_millis(epoch_millis: u64) -> String {
    let whole = rfc3339_of(epoch_millis / 1000);
    match whole.strip_suffix('Z') {
        Some(seconds) => format!("{seconds}.{:03}Z", epoch_millis % 1000),
        None => whole,
    }
}

/// Seconds since the epoch, as RFC 3339 in UTC.
pub fn rfc3339_of(epoch_seconds: u64) -> String {
    i64::try_from(epoch_seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// RFC 3339 text as seconds since the epoch, if it is RFC 3339.
pub fn epoch_of(rfc3339: &str) -> Option<u64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_read_as_rfc3339() {
        assert_eq!(rfc3339_of(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_of(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(epoch_of("2026-01-01T00:00:00.5Z"), Some(1_767_225_600));
        assert_eq!(epoch_of("yesterday"), None);
        assert_eq!(
            rfc3339_of_millis(1_767_225_600_007),
            "2026-01-01T00:00:00.007Z"
        );
        assert_eq!(rfc3339_of_millis(999), "1970-01-01T00:00:00.999Z");
    }

    #[test]
    fn the_clock_agrees_with_itself() {
        let seconds = epoch_seconds();
        assert!(epoch_millis() / 1000 >= seconds);
        let text = now_rfc3339();
        let parsed =
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert!(parsed.unix_timestamp().abs_diff(seconds as i64) <= 1);
    }
}
