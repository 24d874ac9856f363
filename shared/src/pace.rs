//! The pace of a run's AWS IoT Core writes. An account's API quotas are
//! shared by everything in it (other organizations' bridges, the operator's
//! own tools), and a run over 100,000 devices would otherwise write as fast
//! as its concurrency allows, throttling them all. A run's registry client
//! takes a token before each write (create, update, attach, detach,
//! delete); the SDK's retries still handle throttling that comes anyway.
//! A run's deep check takes a token of its own steady pace (no burst)
//! before each device it looks at (see `crate::config::DeepCheck`); other
//! reads are not paced.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket over writes: up to `burst` at once, `per_second` after.
/// A write that finds it empty is given the next token and waits for it,
/// so waiting writes go in the order they came.
#[derive(Debug)]
pub struct Pace {
    per_second: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    /// Negative while writes wait for tokens not yet there.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Pure: takes a token at `now` (refilled at `per_second` up to
    /// `burst` since `at`), and how long to wait until it is there.
    fn take(self, now: Instant, per_second: f64, burst: f64) -> (Bucket, Duration) {
        let refilled =
            self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * per_second;
        let tokens = refilled.min(burst) - 1.0;
        let wait = if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / per_second)
        };
        (Bucket { tokens, at: now }, wait)
    }
}

impl Pace {
    /// `per_second` writes (at least one), in bursts of up to a second's worth.
    pub fn per_second(per_second: u32) -> Pace {
        let per_second = f64::from(per_second.max(1));
        let burst = per_second;
        Pace {
            per_second,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }),
        }
    }

    /// `per_second` calls (at least one), never more in any stretch of
    /// time, not even at the start: a deep check's looks, whose share of
    /// the account's read quotas is the budget (see `crate::config::DeepCheck`).
    pub fn steady(per_second: u32) -> Pace {
        let per_second = f64::from(per_second.max(1));
        Pace {
            per_second,
            burst: 1.0,
            bucket: Mutex::new(Bucket {
                tokens: 1.0,
                at: Instant::now(),
            }),
        }
    }

    /// Waits for this call's turn.
    pub async fn turn(&self) {
        let wait = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            let (taken, wait) = bucket.take(Instant::now(), self.per_second, self.burst);
            *bucket = taken;
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_writes_wait_in_turn() {
        let start = Instant::now();
        let ms = |ms: u64| start + Duration::from_millis(ms);
        let (per_second, burst) = (10.0, 2.0);
        let full = Bucket {
            tokens: 2.0,
            at: start,
        };
        let mut bucket = full;
        let mut waits = Vec::new();
        for at in [0, 0, 0, 0, 500] {
            let (taken, wait) = bucket.take(ms(at), per_second, burst);
            bucket = taken;
            waits.push(wait.as_millis());
        }
        // Two at once, then one per 100 ms in turn; after a pause the
        // bucket has refilled (to its burst, no more).
        assert_eq!(waits, [0, 0, 100, 200, 0]);
        assert!((bucket.tokens - 1.0).abs() < 1e-9, "{bucket:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn writes_beyond_the_burst_wait_for_their_tokens() {
        let pace = Pace::per_second(4);
        let start = Instant::now();
        for _ in 0..10 {
            pace.turn().await;
        }
        // Four at once, six more at 4 per second.
        assert_eq!(start.elapsed(), Duration::from_millis(1500));

        let steady = Pace::steady(4);
        let start = Instant::now();
        for _ in 0..10 {
            steady.turn().await;
        }
        // One at once, nine more at 4 per second: no burst.
        assert_eq!(start.elapsed(), Duration::from_millis(2250));
    }
}
