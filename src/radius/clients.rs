//! The rules of a RADIUS client's fields, shared by every front end that manages clients: its
//! name, its address or network, its shared secret, and how its users type. Pure: no I/O.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::input::{CODE_LENGTHS, InputMode, MAX_SEPARATOR_LEN};
use crate::domain::Invalid;

pub const MAX_CLIENT_NAME: usize = 100;
/// The shortest shared secret accepted; 16 characters or more are advised.
pub const MIN_SECRET_LEN: usize = 8;
/// The longest shared secret accepted.
pub const MAX_SECRET_LEN: usize = 128;
/// The length suggested for a shared secret.
pub const SUGGESTED_SECRET_LEN: usize = 16;
/// The length of a shared secret the panel offers, drawn from `SECRET_ALPHABET`.
pub const GENERATED_SECRET_LEN: usize = 24;
/// The characters of a generated secret: letters and digits, which every gateway lets one type
/// and no configuration file needs to quote.
pub const SECRET_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The code length assumed when a client does not say.
pub const DEFAULT_CODE_LENGTH: u8 = 6;
/// How long an Access-Request may be held for an approval's decision, in seconds: the
/// gateway's own timeout must be longer.
pub const APPROVAL_WAITS: std::ops::RangeInclusive<i64> = 5..=120;
/// The approval wait when a client does not say.
pub const DEFAULT_APPROVAL_WAIT: i64 = 25;
/// The longest approval word.
pub const MAX_APPROVAL_WORD_LEN: usize = 16;

/// An approval wait in seconds, 5 to 120.
pub fn check_approval_wait(value: i64) -> Result<i64, Invalid> {
    if APPROVAL_WAITS.contains(&value) {
        Ok(value)
    } else {
        Err(Invalid(format!(
            "must be from {} to {} seconds, and below the gateway's own timeout",
            APPROVAL_WAITS.start(),
            APPROVAL_WAITS.end()
        )))
    }
}

/// An approval wait as typed into a form; empty: the default.
pub fn parse_approval_wait(text: &str) -> Result<i64, Invalid> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(DEFAULT_APPROVAL_WAIT);
    }
    check_approval_wait(text.parse::<i64>().unwrap_or(-1))
}

/// The word typed after the password that asks for an approval in Telegram (`push`): up to 16
/// ASCII letters, so that no one-time password can be taken for it; empty means none (the
/// password alone asks).
pub fn parse_approval_word(text: &str) -> Result<Option<String>, Invalid> {
    let text = text.trim();
    if text.len() > MAX_APPROVAL_WORD_LEN || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Invalid(format!(
            "must have at most {MAX_APPROVAL_WORD_LEN} letters (a to z), nothing else"
        )));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

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
            "must have {MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters ({SUGGESTED_SECRET_LEN} or more advised)"
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

/// A code length as typed into a form.
pub fn parse_code_length(text: &str) -> Result<u8, Invalid> {
    check_code_length(text.trim().parse::<i64>().unwrap_or(-1))
}

/// An input mode's name, one of `InputMode::NAMES`.
pub fn parse_input_mode(text: &str) -> Result<&'static str, Invalid> {
    InputMode::NAMES
        .into_iter()
        .find(|name| *name == text)
        .ok_or_else(|| Invalid(format!("must be one of {}", InputMode::NAMES.join(", "))))
}

/// An input mode in plain words, for the people who choose one. A name without words of its
/// own yet is shown as it is, its underscores as spaces.
pub fn input_mode_label(name: &str) -> String {
    match name {
        "password_code" => "Password and code in one field, code last".into(),
        "code_password" => "Password and code in one field, code first".into(),
        "static_challenge" => "OpenVPN static challenge (password, then code)".into(),
        "code_only" => "Code only (the gateway checks the password)".into(),
        "challenge" => "Password, then a challenge".into(),
        other => {
            let words = other.replace('_', " ");
            let mut chars = words.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

/// Whether a mode takes password and code from one field, and so uses the separator and the
/// code length.
pub fn uses_separator(name: &str) -> bool {
    matches!(
        InputMode::from_parts(name, None, DEFAULT_CODE_LENGTH),
        Some(InputMode::Combined { .. })
    )
}

/// The refusal of a name another client has already (names are unique regardless of case).
pub fn name_taken(name: &str) -> String {
    format!("a RADIUS client named {name:?} exists already")
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
        assert_eq!(parse_code_length(" 8 ").expect("accepted"), 8);
        assert_eq!(
            parse_code_length("six").expect_err("refused"),
            check_code_length(3).expect_err("refused")
        );
        assert_eq!(
            parse_input_mode("code_only").expect("accepted"),
            "code_only"
        );
        let refused = parse_input_mode("chap").expect_err("refused");
        assert!(
            refused.0.starts_with("must be one of password_code, "),
            "{}",
            refused.0
        );
    }

    #[test]
    fn every_input_mode_has_words_and_a_new_one_shows_by_its_name() {
        for name in InputMode::NAMES {
            let label = input_mode_label(name);
            assert!(!label.contains('_'), "{name}: {label}");
            assert_ne!(label, name);
        }
        assert_eq!(input_mode_label("push_then_code"), "Push then code");
        assert!(uses_separator("password_code") && uses_separator("code_password"));
        assert!(!uses_separator("code_only") && !uses_separator("static_challenge"));
        assert!(!uses_separator("no_such_mode"));
    }
}
