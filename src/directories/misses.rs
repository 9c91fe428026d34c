//! Logins that no directory knew, remembered for a short while so that the same unknown login
//! tried again and again costs one search, not one per try. Bounded: past `capacity` the
//! oldest are forgotten first. Time is an argument.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct Misses {
    ttl: Duration,
    capacity: usize,
    /// Each login's expiry.
    expiry: HashMap<String, Instant>,
    /// Logins in the order they expire (a login may be here more than once: only the entry
    /// that matches `expiry` counts).
    order: VecDeque<(Instant, String)>,
}

impl Misses {
    pub fn new(ttl: Duration, capacity: usize) -> Misses {
        Misses {
            ttl,
            capacity: capacity.max(1),
            expiry: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `login` (its key) was not found less than the ttl ago.
    pub fn contains(&mut self, login: &str, now: Instant) -> bool {
        self.expire(now);
        self.expiry.contains_key(login)
    }

    /// Remembers that `login` was not found at `now`.
    pub fn insert(&mut self, login: String, now: Instant) {
        self.expire(now);
        while self.expiry.len() >= self.capacity && !self.expiry.contains_key(&login) {
            let Some((at, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.expiry.get(&oldest) == Some(&at) {
                self.expiry.remove(&oldest);
            }
        }
        let until = now + self.ttl;
        self.expiry.insert(login.clone(), until);
        self.order.push_back((until, login));
    }

    /// Logins remembered, expired ones included until the next call.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if *at > now {
                break;
            }
            if let Some((at, login)) = self.order.pop_front()
                && self.expiry.get(&login) == Some(&at)
            {
                self.expiry.remove(&login);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_miss_is_remembered_for_the_ttl_and_then_forgotten() {
        let start = Instant::now();
        let mut misses = Misses::new(TTL, 10);
        assert!(!misses.contains("nobody", start));
        misses.insert("nobody".into(), start);
        assert!(misses.contains("nobody", start + TTL - Duration::from_millis(1)));
        assert!(!misses.contains("nobody", start + TTL));
        assert!(misses.is_empty());
    }

    #[test]
    fn past_its_capacity_the_oldest_misses_are_forgotten_first() {
        let start = Instant::now();
        let mut misses = Misses::new(TTL, 3);
        for (n, login) in ["a", "b", "c", "d"].into_iter().enumerate() {
            misses.insert(login.into(), start + Duration::from_secs(n as u64));
        }
        let now = start + Duration::from_secs(4);
        assert_eq!(misses.len(), 3);
        assert!(!misses.contains("a", now));
        for login in ["b", "c", "d"] {
            assert!(misses.contains(login, now), "{login}");
        }
    }

    #[test]
    fn a_login_remembered_again_lives_from_its_last_miss() {
        let start = Instant::now();
        let mut misses = Misses::new(TTL, 2);
        // Two lookups of the same login at once both missed.
        misses.insert("a".into(), start);
        misses.insert("a".into(), start + Duration::from_secs(10));
        misses.insert("b".into(), start + Duration::from_secs(11));
        let later = start + TTL + Duration::from_secs(5);
        assert!(
            misses.contains("a", later),
            "the first expiry does not end the second"
        );
        assert!(misses.contains("b", later));
        assert_eq!(misses.len(), 2);
        // The oldest live login makes room.
        misses.insert("c".into(), later);
        assert_eq!(misses.len(), 2);
        assert!(!misses.contains("a", later));
        assert!(misses.contains("b", later));
        assert!(misses.contains("c", later));
    }

    #[test]
    fn a_flood_of_new_logins_stays_within_the_capacity() {
        let start = Instant::now();
        let mut misses = Misses::new(TTL, 100);
        for n in 0..10_000 {
            misses.insert(format!("login{n}"), start);
        }
        assert_eq!(misses.len(), 100);
        assert!(misses.order.len() <= 100);
        assert!(misses.contains("login9999", start));
    }
}
