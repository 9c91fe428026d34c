//! The client's address: the peer's, unless the peer is a trusted reverse proxy, whose
//! `X-Forwarded-For` (or, without one, `Forwarded`) then says who it forwards for.
//!
//! The header is read from its right end, where the nearest proxy wrote: every address that is
//! itself a trusted proxy is passed over, and the first one that is not is the client. An
//! untrusted peer's headers are ignored whatever they say, so nobody outside the proxies can
//! choose the address the limits and the audit log see. `X-Forwarded-For` goes first because
//! the usual proxies append to it and pass a client's `Forwarded` on unchanged.

use std::net::IpAddr;

/// One trusted address, or a network of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// `192.0.2.10`, `10.0.0.0/8`, `2001:db8::1` or `2001:db8::/32`.
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?;
        let most = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => most,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= most)
                .ok_or_else(|| format!("{text:?} has a prefix length that is not 0 to {most}"))?,
        };
        Ok(Network { address, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address seen through an IPv6 socket is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The reverse proxies whose forwarding headers are believed (`server.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|entry| Network::parse(entry))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }

    /// The client's address, from the peer's and the values of the request's
    /// `X-Forwarded-For` and `Forwarded` headers (each in the order received).
    pub fn client(&self, peer: IpAddr, x_forwarded_for: &[&str], forwarded: &[&str]) -> IpAddr {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<Option<IpAddr>> = if !x_forwarded_for.is_empty() {
            x_forwarded_for
                .iter()
                .flat_map(|value| value.split(','))
                .map(node)
                .collect()
        } else {
            forwarded
                .iter()
                .flat_map(|value| value.split(','))
                .map(|element| {
                    element
                        .split(';')
                        .find_map(|pair| {
                            let (name, value) = pair.split_once('=')?;
                            name.trim().eq_ignore_ascii_case("for").then_some(value)
                        })
                        .and_then(node)
                })
                .collect()
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            // A hop that names no address ("unknown", an obfuscated name, garbage): the
            // proxy that wrote it is as near to the client as can be told.
            let Some(hop) = hop else {
                return client;
            };
            client = canonical(hop);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// The address of one forwarding node: `192.0.2.1`, `192.0.2.1:443`, `"[2001:db8::1]:443"`,
/// `2001:db8::1`.
fn node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (address, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .expect("valid")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_its_headers_say() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("192.0.2.7"), &["203.0.113.5"], &["for=203.0.113.6"]),
            ip("192.0.2.7")
        );
        let some = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            some.client(ip("192.0.2.7"), &["203.0.113.5"], &[]),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8::/32"]);
        // The client forged a first entry; the proxy appended the real address.
        assert_eq!(
            trusted.client(
                ip("10.0.0.1"),
                &["198.51.100.9, 203.0.113.5", "10.1.2.3"],
                &[]
            ),
            ip("203.0.113.5")
        );
        assert_eq!(
            trusted.client(
                ip("::ffff:10.0.0.1"),
                &[],
                &["for=198.51.100.9;proto=https, for=\"[2001:db8::5]:443\";by=x"]
            ),
            ip("198.51.100.9")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.1"), &["unknown"], &[]),
            ip("10.0.0.1")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.1"), &["203.0.113.5:4711"], &[]),
            ip("203.0.113.5")
        );
        assert_eq!(trusted.client(ip("10.0.0.1"), &[], &[]), ip("10.0.0.1"));
    }

    #[test]
    fn networks_parse_and_match_by_prefix() {
        assert!(
            Network::parse("10.0.0.0/8")
                .expect("net")
                .contains(ip("10.200.1.1"))
        );
        assert!(
            !Network::parse("10.0.0.0/8")
                .expect("net")
                .contains(ip("11.0.0.1"))
        );
        assert!(
            Network::parse("0.0.0.0/0")
                .expect("net")
                .contains(ip("192.0.2.1"))
        );
        assert!(
            Network::parse("192.0.2.1")
                .expect("one")
                .contains(ip("192.0.2.1"))
        );
        assert!(
            !Network::parse("192.0.2.1")
                .expect("one")
                .contains(ip("192.0.2.2"))
        );
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("proxy.lan").is_err());
    }
}
