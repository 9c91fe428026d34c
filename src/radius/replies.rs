//! The replies the RADIUS front end remembers for retransmits (RFC 5080 §2.2.2): a request
//! repeated by its client — the same source, Identifier and Request Authenticator — gets the
//! reply already sent, or joins the evaluation in flight; it is never evaluated twice.
//!
//! A client has at most 256 requests outstanding per source port (the Identifier is one
//! byte), and a new request on an Identifier replaces the old one, so the table is keyed by
//! source and Identifier and holds the Request Authenticator beside the reply. Entries expire
//! in the order they were written, from a queue: each admission costs the same whatever the
//! load, and no more than `capacity` requests are remembered, the oldest forgotten first.
//! The clock is the caller's (`now`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request as retransmits name it: source, Identifier, Request Authenticator.
pub type RequestKey = (SocketAddr, u8, [u8; 16]);

enum Slot {
    InFlight,
    Done { reply: Arc<Vec<u8>>, at: Instant },
}

struct Entry {
    authenticator: [u8; 16],
    slot: Slot,
}

/// What a request is to the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A retransmit of a request answered within the window: its reply.
    Answered(Arc<Vec<u8>>),
    /// A retransmit of a request being evaluated.
    InFlight,
    /// A request not seen (or no longer remembered).
    New,
}

pub struct Replies {
    entries: HashMap<(SocketAddr, u8), Entry>,
    /// When each entry was written, oldest first; an entry replaced since is skipped when its
    /// turn comes.
    order: VecDeque<(Instant, (SocketAddr, u8), [u8; 16])>,
    kept: Duration,
    capacity: usize,
}

impl Replies {
    /// Replies kept for `kept`, at most `capacity` requests remembered.
    pub fn new(kept: Duration, capacity: usize) -> Replies {
        Replies {
            entries: HashMap::new(),
            order: VecDeque::new(),
            kept,
            capacity: capacity.max(1),
        }
    }

    /// What the request is: answered, in flight, or new.
    pub fn seen(&self, key: &RequestKey, now: Instant) -> Seen {
        let (source, identifier, authenticator) = key;
        match self.entries.get(&(*source, *identifier)) {
            Some(entry) if entry.authenticator == *authenticator => match &entry.slot {
                Slot::InFlight => Seen::InFlight,
                Slot::Done { reply, at } if now.saturating_duration_since(*at) < self.kept => {
                    Seen::Answered(reply.clone())
                }
                Slot::Done { .. } => Seen::New,
            },
            _ => Seen::New,
        }
    }

    /// Notes a new request as being evaluated.
    pub fn begin(&mut self, key: RequestKey, now: Instant) {
        self.write(key, Slot::InFlight, now);
    }

    /// Keeps the reply of a request for its retransmits, or, without one (dropped: busy, a
    /// failure, a packet that failed its checks), forgets it so that a retry is evaluated
    /// afresh. A request replaced meanwhile by a newer one on its Identifier is left alone.
    pub fn finish(&mut self, key: RequestKey, reply: Option<Arc<Vec<u8>>>, now: Instant) {
        let (source, identifier, authenticator) = key;
        let current = self
            .entries
            .get(&(source, identifier))
            .is_some_and(|entry| entry.authenticator == authenticator);
        if !current {
            return;
        }
        match reply {
            Some(reply) => self.write(key, Slot::Done { reply, at: now }, now),
            None => {
                self.entries.remove(&(source, identifier));
            }
        }
    }

    /// How many requests are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn write(&mut self, (source, identifier, authenticator): RequestKey, slot: Slot, now: Instant) {
        self.expire(now);
        self.entries.insert(
            (source, identifier),
            Entry {
                authenticator,
                slot,
            },
        );
        self.order
            .push_back((now, (source, identifier), authenticator));
    }

    /// Drops what is older than the window, and the oldest beyond the capacity. An entry in
    /// flight stays: its answer writes it again, with a place of its own in the queue.
    fn expire(&mut self, now: Instant) {
        while let Some((at, key, authenticator)) = self.order.front().copied() {
            let full = self.order.len() >= self.capacity;
            if !full && now.saturating_duration_since(at) < self.kept {
                break;
            }
            self.order.pop_front();
            let remove = self.entries.get(&key).is_some_and(|entry| {
                entry.authenticator == authenticator
                    && match entry.slot {
                        Slot::InFlight => false,
                        Slot::Done { at: done, .. } => {
                            full || now.saturating_duration_since(done) >= self.kept
                        }
                    }
            });
            if remove {
                self.entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEPT: Duration = Duration::from_secs(30);

    fn key(port: u16, identifier: u8, authenticator: u8) -> RequestKey {
        (
            SocketAddr::from(([192, 0, 2, 1], port)),
            identifier,
            [authenticator; 16],
        )
    }

    fn reply(byte: u8) -> Option<Arc<Vec<u8>>> {
        Some(Arc::new(vec![byte]))
    }

    #[test]
    fn a_retransmit_joins_the_request_in_flight_then_gets_its_reply_until_the_window_ends() {
        let mut replies = Replies::new(KEPT, 1024);
        let start = Instant::now();
        assert_eq!(replies.seen(&key(1, 7, 1), start), Seen::New);
        replies.begin(key(1, 7, 1), start);
        assert_eq!(replies.seen(&key(1, 7, 1), start), Seen::InFlight);
        replies.finish(key(1, 7, 1), reply(2), start);
        let later = start + Duration::from_secs(29);
        assert_eq!(
            replies.seen(&key(1, 7, 1), later),
            Seen::Answered(Arc::new(vec![2]))
        );
        assert_eq!(replies.seen(&key(1, 7, 1), start + KEPT), Seen::New);
    }

    #[test]
    fn the_same_identifier_with_another_authenticator_or_source_is_a_new_request() {
        let mut replies = Replies::new(KEPT, 1024);
        let now = Instant::now();
        replies.begin(key(1, 7, 1), now);
        replies.finish(key(1, 7, 1), reply(2), now);
        assert_eq!(replies.seen(&key(1, 7, 9), now), Seen::New);
        assert_eq!(replies.seen(&key(2, 7, 1), now), Seen::New);
        replies.begin(key(1, 7, 9), now);
        // The old request's late answer does not overwrite the new one's place.
        replies.finish(key(1, 7, 1), reply(3), now);
        assert_eq!(replies.seen(&key(1, 7, 9), now), Seen::InFlight);
        assert_eq!(replies.len(), 1);
    }

    #[test]
    fn a_request_dropped_without_a_reply_is_forgotten_so_its_retry_is_evaluated() {
        let mut replies = Replies::new(KEPT, 1024);
        let now = Instant::now();
        replies.begin(key(1, 7, 1), now);
        replies.finish(key(1, 7, 1), None, now);
        assert_eq!(replies.seen(&key(1, 7, 1), now), Seen::New);
        assert!(replies.is_empty());
    }

    #[test]
    fn expired_replies_leave_as_new_ones_come_and_the_capacity_forgets_the_oldest() {
        let mut replies = Replies::new(KEPT, 1024);
        let start = Instant::now();
        for identifier in 0..=255 {
            replies.begin(key(1, identifier, 1), start);
            replies.finish(key(1, identifier, 1), reply(identifier), start);
        }
        assert_eq!(replies.len(), 256);
        let later = start + KEPT;
        replies.begin(key(2, 0, 1), later);
        assert_eq!(replies.len(), 1, "the expired replies were dropped");
        assert!(replies.order.len() <= 2);

        let mut small = Replies::new(KEPT, 100);
        for port in 0..1000 {
            small.begin(key(port, 0, 1), start);
            small.finish(key(port, 0, 1), reply(0), start);
            assert!(small.order.len() <= 100 && small.len() <= 100);
        }
        assert_eq!(
            small.seen(&key(999, 0, 1), start),
            Seen::Answered(Arc::new(vec![0]))
        );
        assert_eq!(
            small.seen(&key(0, 0, 1), start),
            Seen::New,
            "the oldest was forgotten"
        );
    }

    #[test]
    fn a_request_in_flight_outlives_the_window_and_its_answer_is_kept_from_when_it_came() {
        let mut replies = Replies::new(KEPT, 1024);
        let start = Instant::now();
        replies.begin(key(1, 7, 1), start);
        let late = start + KEPT + Duration::from_secs(5);
        replies.begin(key(2, 7, 1), late);
        assert_eq!(replies.seen(&key(1, 7, 1), late), Seen::InFlight);
        replies.finish(key(1, 7, 1), reply(4), late);
        assert_eq!(
            replies.seen(&key(1, 7, 1), late + Duration::from_secs(10)),
            Seen::Answered(Arc::new(vec![4]))
        );
    }
}
