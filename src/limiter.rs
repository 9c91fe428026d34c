//! Attempt counters in memory: fixed windows (`Limiter`, the admin login) and token buckets
//! (`TokenBuckets`, the API's rates), and `PortalLimits`, the portals' failed steps per client
//! address and per login name at an address (only failures count).

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

/// Failures counted per key in a window that opens at the key's first failure: at `max`
/// failures the key is blocked until the window closes. Successes count nothing.
pub struct Failures {
    max: u32,
    window: Duration,
    slots: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Failures {
    pub fn new(max: u32, window: Duration) -> Failures {
        Failures {
            max: max.max(1),
            window,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` is still blocked, if it is.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<RetryAfter> {
        let slots = self.slots.lock().ok()?;
        let (start, count) = slots.get(key)?;
        let elapsed = now.saturating_duration_since(*start);
        (*count >= self.max && elapsed < self.window).then(|| {
            RetryAfter(
                self.window
                    .saturating_sub(elapsed)
                    .max(Duration::from_secs(1)),
            )
        })
    }

    /// Counts one failure of `key`; answers the block when this failure starts one.
    pub fn fail(&self, key: &str, now: Instant) -> Option<RetryAfter> {
        let mut slots = self.slots.lock().ok()?;
        if slots.len() > 100_000 {
            let window = self.window;
            slots.retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
        }
        let slot = slots.entry(key.to_string()).or_insert((now, 0));
        if now.saturating_duration_since(slot.0) >= self.window {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        (slot.1 == self.max).then(|| {
            RetryAfter(
                self.window
                    .saturating_sub(now.saturating_duration_since(slot.0))
                    .max(Duration::from_secs(1)),
            )
        })
    }
}

/// Which of the portal's limits holds an address back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalLimit {
    /// Failures from one client address, whoever they were for.
    Address,
    /// Failures for one login name from one client address.
    Login,
}

impl PortalLimit {
    /// The audit log's reason and the metrics' label.
    pub fn as_str(self) -> &'static str {
        match self {
            PortalLimit::Address => "failures_per_address",
            PortalLimit::Login => "failures_per_login",
        }
    }
}

/// A portal step refused unchecked, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub limit: PortalLimit,
    pub retry_after_seconds: u64,
}

/// The self-service portals' limits on failed steps (a wrong password, code or one-time
/// password, a wrong current password, a wrong serial): per client address, high enough for
/// an office behind one address, and per login name from one address, tighter. A key over
/// its limit is refused every step until its window closes; steps that succeed count nothing.
pub struct PortalLimits {
    per_address: Failures,
    per_login: Failures,
}

impl PortalLimits {
    pub fn new(per_address: u32, per_login: u32, window: Duration) -> PortalLimits {
        PortalLimits {
            per_address: Failures::new(per_address, window),
            per_login: Failures::new(per_login, window),
        }
    }

    fn login_key(address: &str, login: &str) -> String {
        format!("{address}\n{}", login.trim().to_lowercase())
    }

    /// The block that holds this address (or this login name at it), if any.
    pub fn blocked(&self, address: &str, login: Option<&str>, now: Instant) -> Option<Block> {
        let block = |limit, retry: RetryAfter| Block {
            limit,
            retry_after_seconds: retry.0.as_secs().max(1),
        };
        if let Some(retry) = self.per_address.blocked(address, now) {
            return Some(block(PortalLimit::Address, retry));
        }
        let login = login?;
        self.per_login
            .blocked(&PortalLimits::login_key(address, login), now)
            .map(|retry| block(PortalLimit::Login, retry))
    }

    /// Counts a failed step; answers the blocks it starts.
    pub fn failed(&self, address: &str, login: Option<&str>, now: Instant) -> Vec<Block> {
        let mut started = Vec::new();
        if let Some(retry) = self.per_address.fail(address, now) {
            started.push(Block {
                limit: PortalLimit::Address,
                retry_after_seconds: retry.0.as_secs().max(1),
            });
        }
        if let Some(login) = login
            && let Some(retry) = self
                .per_login
                .fail(&PortalLimits::login_key(address, login), now)
        {
            started.push(Block {
                limit: PortalLimit::Login,
                retry_after_seconds: retry.0.as_secs().max(1),
            });
        }
        started
    }
}

#[cfg(test)]
mod portal_tests {
    use super::*;

    #[test]
    fn only_failures_count_and_a_login_blocks_before_its_address() {
        let limits = PortalLimits::new(5, 2, Duration::from_secs(900));
        let start = Instant::now();
        assert_eq!(limits.blocked("10.0.0.1", Some("alice"), start), None);
        assert!(limits.failed("10.0.0.1", Some("alice"), start).is_empty());
        let started = limits.failed("10.0.0.1", Some("Alice"), start);
        assert_eq!(
            started,
            vec![Block {
                limit: PortalLimit::Login,
                retry_after_seconds: 900
            }]
        );
        let later = start + Duration::from_secs(100);
        assert_eq!(
            limits.blocked("10.0.0.1", Some("alice"), later),
            Some(Block {
                limit: PortalLimit::Login,
                retry_after_seconds: 800
            })
        );
        assert_eq!(limits.blocked("10.0.0.1", Some("bob"), later), None);
        assert_eq!(limits.blocked("10.0.0.2", Some("alice"), later), None);
        for login in ["bob", "carol", "dave"] {
            limits.failed("10.0.0.1", Some(login), later);
        }
        assert_eq!(
            limits
                .blocked("10.0.0.1", Some("erin"), later)
                .map(|b| b.limit),
            Some(PortalLimit::Address)
        );
        let after = start + Duration::from_secs(1000);
        assert_eq!(limits.blocked("10.0.0.1", Some("alice"), after), None);
    }
}
