//! A small built-in dictionary: the standard attributes otpgate reads or may send, and the
//! vendor attributes that map a user to a firewall group. Names as RADIUS servers spell them.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::packet::{Attribute, VENDOR_MICROSOFT, VENDOR_SPECIFIC};

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Text,
    Octets,
    Integer,
    Ipv4,
    Ipv6,
}

impl ValueType {
    /// The type's name as RADIUS dictionaries spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Text => "string",
            Octets => "octets",
            Integer => "integer",
            Ipv4 => "ipaddr",
            Ipv6 => "ipv6addr",
        }
    }
}

/// One attribute of the dictionary: standard when `vendor` is None. `reply` marks the ones a
/// resource may add to its Access-Accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Definition {
    pub name: &'static str,
    pub vendor: Option<u32>,
    pub kind: u8,
    pub value: ValueType,
    pub reply: bool,
    /// The names of an integer attribute's values, as RADIUS dictionaries spell them.
    pub names: &'static [(&'static str, u32)],
}

const fn standard(name: &'static str, kind: u8, value: ValueType) -> Definition {
    Definition {
        name,
        vendor: None,
        kind,
        value,
        reply: false,
        names: &[],
    }
}

const fn vendor(name: &'static str, vendor: u32, kind: u8, value: ValueType) -> Definition {
    Definition {
        name,
        vendor: Some(vendor),
        kind,
        value,
        reply: false,
        names: &[],
    }
}

/// The same attribute, offered for replies.
const fn replied(definition: Definition) -> Definition {
    Definition {
        reply: true,
        ..definition
    }
}

/// The same attribute, with names for its values.
const fn named(definition: Definition, names: &'static [(&'static str, u32)]) -> Definition {
    Definition {
        names,
        ..definition
    }
}

use ValueType::{Integer, Ipv4, Ipv6, Octets, Text};

const SERVICE_TYPES: &[(&str, u32)] = &[
    ("Login-User", 1),
    ("Framed-User", 2),
    ("Callback-Login-User", 3),
    ("Callback-Framed-User", 4),
    ("Outbound-User", 5),
    ("Administrative-User", 6),
    ("NAS-Prompt-User", 7),
    ("Authenticate-Only", 8),
    ("Callback-NAS-Prompt", 9),
    ("Call-Check", 10),
    ("Callback-Administrative", 11),
];
const FRAMED_PROTOCOLS: &[(&str, u32)] = &[("PPP", 1), ("SLIP", 2), ("ARAP", 3)];
const FRAMED_ROUTINGS: &[(&str, u32)] = &[
    ("None", 0),
    ("Broadcast", 1),
    ("Listen", 2),
    ("Broadcast-Listen", 3),
];
const FRAMED_COMPRESSIONS: &[(&str, u32)] = &[
    ("None", 0),
    ("Van-Jacobson-TCP-IP", 1),
    ("IPX-Header-Compression", 2),
    ("Stac-LZS", 3),
];
const TERMINATION_ACTIONS: &[(&str, u32)] = &[("Default", 0), ("RADIUS-Request", 1)];

pub const VENDOR_CISCO: u32 = 9;
pub const VENDOR_CISCO_ASA: u32 = 3076;
pub const VENDOR_FORTINET: u32 = 12356;
pub const VENDOR_PALO_ALTO: u32 = 25461;

/// Numbers and types as in RFC 2865, 2869, 3162 and 6911 and the vendors' dictionaries that
/// RADIUS servers ship.
pub const DICTIONARY: &[Definition] = &[
    standard("User-Name", 1, Text),
    standard("User-Password", 2, Octets),
    standard("CHAP-Password", 3, Octets),
    standard("NAS-IP-Address", 4, Ipv4),
    standard("NAS-Port", 5, Integer),
    replied(named(standard("Service-Type", 6, Integer), SERVICE_TYPES)),
    replied(named(
        standard("Framed-Protocol", 7, Integer),
        FRAMED_PROTOCOLS,
    )),
    replied(standard("Framed-IP-Address", 8, Ipv4)),
    replied(standard("Framed-IP-Netmask", 9, Ipv4)),
    replied(named(
        standard("Framed-Routing", 10, Integer),
        FRAMED_ROUTINGS,
    )),
    replied(standard("Filter-Id", 11, Text)),
    replied(standard("Framed-MTU", 12, Integer)),
    replied(named(
        standard("Framed-Compression", 13, Integer),
        FRAMED_COMPRESSIONS,
    )),
    standard("Reply-Message", 18, Text),
    replied(standard("Framed-Route", 22, Text)),
    standard("State", 24, Octets),
    replied(standard("Class", 25, Octets)),
    replied(standard("Session-Timeout", 27, Integer)),
    replied(standard("Idle-Timeout", 28, Integer)),
    replied(named(
        standard("Termination-Action", 29, Integer),
        TERMINATION_ACTIONS,
    )),
    standard("Called-Station-Id", 30, Text),
    standard("Calling-Station-Id", 31, Text),
    standard("NAS-Identifier", 32, Text),
    standard("Proxy-State", 33, Octets),
    standard("Acct-Status-Type", 40, Integer),
    standard("Acct-Session-Id", 44, Text),
    standard("Acct-Session-Time", 46, Integer),
    standard("Acct-Terminate-Cause", 49, Integer),
    standard("CHAP-Challenge", 60, Octets),
    standard("NAS-Port-Type", 61, Integer),
    standard("EAP-Message", 79, Octets),
    standard("Message-Authenticator", 80, Octets),
    replied(standard("Acct-Interim-Interval", 85, Integer)),
    standard("NAS-Port-Id", 87, Text),
    replied(standard("Framed-Pool", 88, Text)),
    replied(standard("Framed-IPv6-Route", 99, Text)),
    replied(standard("Framed-IPv6-Pool", 100, Text)),
    replied(standard("Framed-IPv6-Address", 168, Ipv6)),
    replied(standard("DNS-Server-IPv6-Address", 169, Ipv6)),
    replied(standard("Delegated-IPv6-Prefix-Pool", 171, Text)),
    replied(vendor("Cisco-AVPair", VENDOR_CISCO, 1, Text)),
    vendor("MS-CHAP-Response", VENDOR_MICROSOFT, 1, Octets),
    vendor("MS-CHAP-Challenge", VENDOR_MICROSOFT, 11, Octets),
    vendor("MS-CHAP2-Response", VENDOR_MICROSOFT, 25, Octets),
    replied(vendor("MS-Primary-DNS-Server", VENDOR_MICROSOFT, 28, Ipv4)),
    replied(vendor(
        "MS-Secondary-DNS-Server",
        VENDOR_MICROSOFT,
        29,
        Ipv4,
    )),
    replied(vendor("MS-Primary-NBNS-Server", VENDOR_MICROSOFT, 30, Ipv4)),
    replied(vendor(
        "MS-Secondary-NBNS-Server",
        VENDOR_MICROSOFT,
        31,
        Ipv4,
    )),
    replied(vendor("ASA-Group-Policy", VENDOR_CISCO_ASA, 25, Text)),
    replied(vendor("Fortinet-Group-Name", VENDOR_FORTINET, 1, Text)),
    replied(vendor("Fortinet-Vdom-Name", VENDOR_FORTINET, 3, Text)),
    replied(vendor("Fortinet-Access-Profile", VENDOR_FORTINET, 6, Text)),
    replied(vendor("PaloAlto-Admin-Role", VENDOR_PALO_ALTO, 1, Text)),
    replied(vendor(
        "PaloAlto-Admin-Access-Domain",
        VENDOR_PALO_ALTO,
        2,
        Text,
    )),
    replied(vendor("PaloAlto-User-Group", VENDOR_PALO_ALTO, 5, Text)),
];

/// The attributes a resource may add to its Access-Accepts, in the dictionary's order.
pub fn reply_attributes() -> impl Iterator<Item = &'static Definition> {
    DICTIONARY.iter().filter(|definition| definition.reply)
}

/// Finds an attribute by name, case-insensitively.
pub fn by_name(name: &str) -> Option<&'static Definition> {
    DICTIONARY
        .iter()
        .find(|definition| definition.name.eq_ignore_ascii_case(name))
}

/// Why a value does not fit its attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("is empty")]
    Empty,
    #[error("is not a whole number from 0 to 4294967295")]
    NotInteger,
    #[error("is not a whole number from 0 to 4294967295 or one of {0}")]
    NotNamedInteger(String),
    #[error("is not an IPv4 address")]
    NotIpv4,
    #[error("is not an IPv6 address")]
    NotIpv6,
    #[error("is not hexadecimal bytes (0x…)")]
    NotHex,
    #[error("has a control character")]
    ControlCharacter,
    #[error("is not of the form name=value (or name*value)")]
    NotAvPair,
    #[error("is longer than {0} bytes")]
    TooLong(usize),
}

impl Definition {
    /// The most bytes a value of this attribute can have: 253, less the 6 bytes of a
    /// Vendor-Specific header.
    pub fn room(&self) -> usize {
        if self.vendor.is_some() { 247 } else { 253 }
    }

    /// The attribute carrying `text`, written as this attribute's type says: an integer in
    /// decimal, an address in its usual form, octets as `0x` and hex digits or as text. Text
    /// has no control characters; a Cisco-AVPair is `name=value` (or `name*value`, optional).
    pub fn attribute(&self, text: &str) -> Result<Attribute, ValueError> {
        let value = match self.value {
            Text => {
                if text.chars().any(char::is_control) {
                    return Err(ValueError::ControlCharacter);
                }
                if self.vendor == Some(VENDOR_CISCO) && self.kind == 1 && !is_av_pair(text) {
                    return Err(ValueError::NotAvPair);
                }
                text.as_bytes().to_vec()
            }
            Integer => self.integer(text.trim())?.to_be_bytes().to_vec(),
            Ipv4 => text
                .trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| ValueError::NotIpv4)?
                .octets()
                .to_vec(),
            Ipv6 => text
                .trim()
                .parse::<Ipv6Addr>()
                .map_err(|_| ValueError::NotIpv6)?
                .octets()
                .to_vec(),
            Octets => match text.strip_prefix("0x") {
                Some(digits) => data_encoding::HEXLOWER_PERMISSIVE
                    .decode(digits.as_bytes())
                    .map_err(|_| ValueError::NotHex)?,
                None => text.as_bytes().to_vec(),
            },
        };
        if value.is_empty() {
            return Err(ValueError::Empty);
        }
        if value.len() > self.room() {
            return Err(ValueError::TooLong(self.room()));
        }
        Ok(match self.vendor {
            Some(vendor) => Attribute::vendor(vendor, self.kind, &value),
            None => Attribute::new(self.kind, value),
        })
    }
}

impl Definition {
    /// An integer in decimal, or one of its values' names in any case.
    fn integer(&self, text: &str) -> Result<u32, ValueError> {
        if let Ok(number) = text.parse::<u32>() {
            return Ok(number);
        }
        if self.names.is_empty() {
            return Err(ValueError::NotInteger);
        }
        self.names
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, number)| *number)
            .ok_or_else(|| {
                let names: Vec<&str> = self.names.iter().map(|(name, _)| *name).collect();
                ValueError::NotNamedInteger(names.join(", "))
            })
    }
}

/// Cisco's `protocol:attribute=value`: a name without spaces, then `=` (mandatory) or `*`
/// (optional), then the value.
fn is_av_pair(text: &str) -> bool {
    text.find(['=', '*']).is_some_and(|at| {
        let name = &text[..at];
        !name.is_empty() && !name.contains(char::is_whitespace)
    })
}

/// Whether an attribute is one of the dictionary's vendor attributes of `vendor`.
pub fn is_vendor(attribute: &Attribute, vendor: u32) -> bool {
    attribute.kind == VENDOR_SPECIFIC
        && attribute
            .vendor_attributes()
            .is_some_and(|(found, _)| found == vendor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_whatever_their_case_and_values_are_written_by_type() {
        let timeout = by_name("session-timeout").expect("a known attribute");
        assert_eq!(
            timeout.attribute("3600"),
            Ok(Attribute::new(27, 3600u32.to_be_bytes().to_vec()))
        );
        assert_eq!(timeout.attribute("an hour"), Err(ValueError::NotInteger));
        assert_eq!(timeout.attribute("4294967296"), Err(ValueError::NotInteger));
        let address = by_name("Framed-IP-Address").expect("a known attribute");
        assert_eq!(
            address.attribute("10.0.0.1").expect("an address").value,
            vec![10, 0, 0, 1]
        );
        assert_eq!(address.attribute("10.0.0"), Err(ValueError::NotIpv4));
        let class = by_name("Class").expect("a known attribute");
        assert_eq!(
            class.attribute("0x0aff").expect("hex").value,
            vec![0x0a, 0xff]
        );
        assert_eq!(class.attribute("0xzz"), Err(ValueError::NotHex));
        let group = by_name("Fortinet-Group-Name")
            .expect("a known attribute")
            .attribute("vpn")
            .expect("a name");
        assert!(is_vendor(&group, 12356));
        assert_eq!(
            group.vendor_attributes(),
            Some((12356, vec![(1, &b"vpn"[..])]))
        );
        assert!(by_name("No-Such-Attribute").is_none());
        assert_eq!(
            by_name("Filter-Id")
                .expect("a known attribute")
                .attribute(&"x".repeat(254)),
            Err(ValueError::TooLong(253))
        );
    }

    #[test]
    fn every_name_is_unique_and_each_vendor_number_is_the_vendors_dictionary_one() {
        for (index, definition) in DICTIONARY.iter().enumerate() {
            assert!(
                DICTIONARY[..index]
                    .iter()
                    .all(|earlier| !earlier.name.eq_ignore_ascii_case(definition.name)),
                "{} twice",
                definition.name
            );
        }
        let number = |name: &str| {
            let definition = by_name(name).expect("a known attribute");
            (definition.vendor, definition.kind, definition.value)
        };
        assert_eq!(number("Fortinet-Group-Name"), (Some(12356), 1, Text));
        assert_eq!(number("PaloAlto-User-Group"), (Some(25461), 5, Text));
        assert_eq!(number("Cisco-AVPair"), (Some(9), 1, Text));
        assert_eq!(number("ASA-Group-Policy"), (Some(3076), 25, Text));
        assert_eq!(number("MS-Primary-DNS-Server"), (Some(311), 28, Ipv4));
        assert_eq!(number("Framed-IPv6-Address"), (None, 168, Ipv6));
        assert!(reply_attributes().all(|definition| !matches!(
            definition.name,
            "User-Password" | "State" | "Message-Authenticator" | "Proxy-State" | "Reply-Message"
        )));
    }

    #[test]
    fn values_are_checked_by_their_type_and_vendor_values_have_less_room() {
        let pair = by_name("Cisco-AVPair").expect("a known attribute");
        assert!(pair.attribute("shell:priv-lvl=15").is_ok());
        assert!(pair.attribute("ip:inacl#1*permit ip any any").is_ok());
        assert_eq!(pair.attribute("priv-lvl 15"), Err(ValueError::NotAvPair));
        assert_eq!(pair.attribute("=15"), Err(ValueError::NotAvPair));
        let group = by_name("Fortinet-Group-Name").expect("a known attribute");
        assert_eq!(group.attribute(""), Err(ValueError::Empty));
        assert_eq!(group.attribute("a\nb"), Err(ValueError::ControlCharacter));
        assert!(group.attribute(&"g".repeat(247)).is_ok());
        assert_eq!(
            group.attribute(&"g".repeat(248)),
            Err(ValueError::TooLong(247))
        );
        let v6 = by_name("Framed-IPv6-Address").expect("a known attribute");
        assert_eq!(
            v6.attribute("2001:db8::1").expect("an address").value.len(),
            16
        );
        assert_eq!(v6.attribute("10.0.0.1"), Err(ValueError::NotIpv6));
        let service = by_name("Service-Type").expect("a known attribute");
        assert_eq!(
            service
                .attribute("administrative-user")
                .expect("a name")
                .value,
            6u32.to_be_bytes().to_vec()
        );
        assert_eq!(
            service.attribute("7").expect("a number").value,
            7u32.to_be_bytes().to_vec()
        );
        assert!(matches!(
            service.attribute("Admin"),
            Err(ValueError::NotNamedInteger(names)) if names.starts_with("Login-User, Framed-User")
        ));
    }
}
