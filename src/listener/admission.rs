//! How many connections one address may have open before they have been any use: a connection
//! is *pending* from its accept until its first request has been read whole (the TLS handshake,
//! the request's head and its body). A peer that opens connections and sends nothing, or sends
//! slowly, holds pending connections; a client that talks holds one only for milliseconds.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Counts pending connections per address and refuses one more past the limit.
pub struct AddressGate {
    limit: usize,
    pending: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted pending connection; dropping it ends its pending time.
pub struct Admission {
    gate: Arc<AddressGate>,
    address: Option<IpAddr>,
}

impl AddressGate {
    /// `limit` pending connections per address; 0 counts nothing and refuses nothing.
    pub fn new(limit: usize) -> Arc<AddressGate> {
        Arc::new(AddressGate {
            limit,
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a new connection from `peer`, or refuses it when its address already has `limit`
    /// pending connections. A connection without a known peer is admitted and not counted.
    pub fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Option<Admission> {
        let address = peer.filter(|_| self.limit > 0).map(address_key);
        if let Some(address) = address {
            // A poisoned lock only means another connection panicked while counting; the
            // counts themselves are whole numbers and stay usable.
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let count = pending.entry(address).or_insert(0);
            if *count >= self.limit {
                return None;
            }
            *count += 1;
        }
        Some(Admission {
            gate: self.clone(),
            address,
        })
    }

    /// Pending connections of the address `peer` counts under.
    #[cfg(test)]
    fn pending(&self, peer: IpAddr) -> usize {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.get(&address_key(peer)).copied().unwrap_or(0)
    }

    fn release(&self, address: IpAddr) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = pending.get_mut(&address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                pending.remove(&address);
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(address) = self.address {
            self.gate.release(address);
        }
    }
}

/// The address a peer counts under: IPv4 (also when mapped into IPv6) as it is, IPv6 by its
/// /64 network, since one host is usually given a whole /64 and can pick any address in it.
fn address_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("an address"))
    }

    #[test]
    fn an_address_gets_its_limit_of_pending_connections_and_not_one_more() {
        let gate = AddressGate::new(2);
        let first = gate.admit(ip("192.0.2.1"));
        let second = gate.admit(ip("192.0.2.1"));
        assert!(first.is_some() && second.is_some());
        assert!(gate.admit(ip("192.0.2.1")).is_none());
        assert!(gate.admit(ip("192.0.2.2")).is_some(), "another address");
        drop(first);
        assert!(gate.admit(ip("192.0.2.1")).is_some(), "a released slot");
    }

    #[test]
    fn released_connections_leave_no_count_behind() {
        let gate = AddressGate::new(3);
        let admissions: Vec<_> = (0..3).map(|_| gate.admit(ip("192.0.2.1"))).collect();
        assert_eq!(gate.pending("192.0.2.1".parse().expect("ip")), 3);
        drop(admissions);
        assert_eq!(gate.pending("192.0.2.1".parse().expect("ip")), 0);
        assert!(gate.pending.lock().expect("lock").is_empty());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_network() {
        let gate = AddressGate::new(1);
        let _held = gate.admit(ip("2001:db8:1:2::1"));
        assert!(gate.admit(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(gate.admit(ip("2001:db8:1:3::1")).is_some());
    }

    #[test]
    fn an_ipv4_address_mapped_into_ipv6_counts_as_itself() {
        let gate = AddressGate::new(1);
        let _held = gate.admit(ip("192.0.2.7"));
        assert!(gate.admit(ip("::ffff:192.0.2.7")).is_none());
    }

    #[test]
    fn a_limit_of_zero_admits_everyone() {
        let gate = AddressGate::new(0);
        let held: Vec<_> = (0..100).map(|_| gate.admit(ip("192.0.2.1"))).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(gate.pending.lock().expect("lock").is_empty());
    }
}
