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
