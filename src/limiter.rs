//! Fixed-window attempt counters, for throttling logins per client address and per login.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts attempts per key in windows of fixed length; over the limit, an attempt is refused
/// until its window ends.
pub struct Limiter {
    max: u32,
    window: Duration,
    slots: Mutex<HashMap<String, (Instant, u32)>>,
}

/// How long to wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl Limiter {
    pub fn new(max: u32, window: Duration) -> Limiter {
        Limiter {
            max,
            window,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for `key` at `now`; refuses it when the window's budget is spent.
    pub fn attempt(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        let Ok(mut slots) = self.slots.lock() else {
            return Ok(());
        };
        if slots.len() > 100_000 {
            let window = self.window;
            slots.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let slot = slots.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(slot.0) >= self.window {
            *slot = (now, 0);
        }
        if slot.1 >= self.max {
            let wait = self.window.saturating_sub(now.duration_since(slot.0));
            return Err(RetryAfter(wait.max(Duration::from_secs(1))));
        }
        slot.1 += 1;
        Ok(())
    }
}

/// Token buckets per key: `rate` tokens a second up to `burst`; each request takes one.
pub struct TokenBuckets {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl TokenBuckets {
    /// A `rate` of zero means unlimited.
    pub fn new(rate: f64, burst: u32) -> TokenBuckets {
        TokenBuckets {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn take(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > 200_000 {
            let full_after = self.burst / self.rate;
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < full_after);
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        let refilled =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            let wait = (1.0 - refilled) / self.rate;
            Err(RetryAfter(
                Duration::from_secs_f64(wait.max(1.0)).max(Duration::from_secs(1)),
            ))
        }
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let buckets = TokenBuckets::new(2.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(buckets.take("u", start).is_ok());
        }
        assert!(buckets.take("u", start).is_err());
        assert!(
            buckets
                .take("u", start + Duration::from_millis(500))
                .is_ok()
        );
        assert!(buckets.take("other", start).is_ok());
    }

    #[test]
    fn a_zero_rate_is_unlimited() {
        let buckets = TokenBuckets::new(0.0, 1);
        for _ in 0..1000 {
            assert!(buckets.take("u", Instant::now()).is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_over_the_limit_are_refused_until_the_window_ends() {
        let limiter = Limiter::new(2, Duration::from_secs(60));
        let start = Instant::now();
        assert!(limiter.attempt("a", start).is_ok());
        assert!(limiter.attempt("a", start).is_ok());
        let refused = limiter.attempt("a", start + Duration::from_secs(10));
        assert_eq!(refused, Err(RetryAfter(Duration::from_secs(50))));
        assert!(
            limiter.attempt("b", start).is_ok(),
            "keys are counted apart"
        );
        assert!(
            limiter
                .attempt("a", start + Duration::from_secs(61))
                .is_ok()
        );
    }
}
