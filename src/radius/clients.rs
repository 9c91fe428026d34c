//! The rules of a RADIUS client's fields, shared by every front end that manages clients: its
//! name, its address or network, its shared secret, and how its users type. Pure: no I/O.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::input::{CODE_LENGTHS, MAX_SEPARATOR_LEN};
use crate::domain::Invalid;

pub const MAX_CLIENT_NAME: usize = 100;
/// The shortest shared secret accepted; 16 characters or more are advised.
pub const MIN_SECRET_LEN: usize = 8;
/// The longest shared secret accepted.
pub const MAX_SECRET_LEN: usize = 128;
/// The code length assumed when a client does not say.
pub const DEFAULT_CODE_LENGTH: u8 = 6;

/// A client's name: trimmed, 1 to 100 characters, no control characters, not a number.
pub fn parse_client_name(text: &str) -> Result<String, Invalid> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_CLIENT_NAME {
        return Err(Invalid(format!(
            "must have 1 to {MAX_CLIENT_NAME} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid("may not contain control characters".into()));
    }
    if text.parse::<i64>().is_ok() {
        return Err(Invalid("may not be a number".into()));
    }
    Ok(text.to_string())
}

/// A shared secret: 8 to 128 printable ASCII characters (what gateways let one type).
pub fn check_secret(text: &str) -> Result<(), Invalid> {
    if text.len() < MIN_SECRET_LEN || text.len() > MAX_SECRET_LEN {
        return Err(Invalid(format!(
            "must have {MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters (16 or more advised)"
        )));
    }
    if !text
        .bytes()
        .all(|byte| byte.is_ascii_graphic() || byte == b' ')
    {
        return Err(Invalid("may hold only printable ASCII characters".into()));
    }
    Ok(())
}

/// A separator between password and code: up to 8 characters, none of them a control
/// character; empty means none.
pub fn parse_separator(text: &str) -> Result<Option<String>, Invalid> {
    if text.chars().count() > MAX_SEPARATOR_LEN || text.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "must have at most {MAX_SEPARATOR_LEN} characters, none of them a control character"
        )));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

pub fn check_code_length(value: i64) -> Result<u8, Invalid> {
    u8::try_from(value)
        .ok()
        .filter(|length| CODE_LENGTHS.contains(length))
        .ok_or_else(|| {
            Invalid(format!(
                "must be from {} to {}",
                CODE_LENGTHS.start(),
                CODE_LENGTHS.end()
            ))
        })
}

/// An address or a network (CIDR), IPv4 or IPv6, kept with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `address` is inside; an IPv4 address mapped into IPv6 counts as IPv4.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = mask32(self.prefix);
                u32::from(network) == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = mask128(self.prefix);
                u128::from(network) == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Network {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Network, Invalid> {
        let refused = || Invalid("not an IPv4 or IPv6 address or network (CIDR)".into());
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = address
            .parse::<IpAddr>()
            .map_err(|_| refused())?
            .to_canonical();
        let longest = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => longest,
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits
                    .parse::<u8>()
                    .ok()
                    .filter(|prefix| *prefix <= longest)
                    .ok_or_else(refused)?
            }
            Some(_) => return Err(refused()),
        };
        let address = match address {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask32(prefix)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask128(prefix)).into()),
        };
        Ok(Network { address, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_kept_with_their_host_bits_cleared_and_match_their_addresses() {
        let single: Network = "192.0.2.7".parse().expect("a network");
        assert_eq!(single.to_string(), "192.0.2.7/32");
        assert!(single.contains("192.0.2.7".parse().expect("an address")));
        assert!(single.contains("::ffff:192.0.2.7".parse().expect("an address")));
        assert!(!single.contains("192.0.2.8".parse().expect("an address")));
        let lan: Network = " 10.1.2.3/8 ".parse().expect("a network");
        assert_eq!(lan.to_string(), "10.0.0.0/8");
        assert!(lan.contains("10.200.0.1".parse().expect("an address")));
        let everything: Network = "0.0.0.0/0".parse().expect("a network");
        assert!(everything.contains("203.0.113.9".parse().expect("an address")));
        assert!(!everything.contains("2001:db8::1".parse().expect("an address")));
        let v6: Network = "2001:db8::1/64".parse().expect("a network");
        assert_eq!(v6.to_string(), "2001:db8::/64");
        assert!(v6.contains("2001:db8::ffff".parse().expect("an address")));
        assert!(!v6.contains("2001:db9::1".parse().expect("an address")));
        assert_eq!(
            "::1".parse::<Network>().expect("a network").to_string(),
            "::1/128"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host.example",
            "::/129",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_secrets_separators_and_code_lengths_have_their_rules() {
        assert_eq!(parse_client_name(" fw1 ").expect("accepted"), "fw1");
        assert!(parse_client_name("").is_err());
        assert!(parse_client_name("42").is_err());
        assert!(parse_client_name("a\nb").is_err());
        assert!(check_secret("short").is_err());
        assert!(check_secret("long enough secret").is_ok());
        assert!(check_secret("tab\tinside").is_err());
        assert!(check_secret(&"x".repeat(129)).is_err());
        assert_eq!(parse_separator("").expect("accepted"), None);
        assert_eq!(
            parse_separator(",").expect("accepted").as_deref(),
            Some(",")
        );
        assert!(parse_separator("123456789").is_err());
        assert_eq!(check_code_length(8).expect("accepted"), 8);
        assert!(check_code_length(3).is_err());
        assert!(check_code_length(11).is_err());
    }
}
