//! A small built-in dictionary: the standard attributes otpgate reads or may send, and the
//! vendor attributes that map a user to a firewall group. Names as RADIUS servers spell them.

use std::net::Ipv4Addr;

use super::packet::{Attribute, VENDOR_SPECIFIC};

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Text,
    Octets,
    Integer,
    Ipv4,
}

/// One attribute of the dictionary: standard when `vendor` is None.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Definition {
    pub name: &'static str,
    pub vendor: Option<u32>,
    pub kind: u8,
    pub value: ValueType,
}

const fn standard(name: &'static str, kind: u8, value: ValueType) -> Definition {
    Definition {
        name,
        vendor: None,
        kind,
        value,
    }
}

const fn vendor(name: &'static str, vendor: u32, kind: u8, value: ValueType) -> Definition {
    Definition {
        name,
        vendor: Some(vendor),
        kind,
        value,
    }
}

use ValueType::{Integer, Ipv4, Octets, Text};

pub const DICTIONARY: &[Definition] = &[
    standard("User-Name", 1, Text),
    standard("User-Password", 2, Octets),
    standard("CHAP-Password", 3, Octets),
    standard("NAS-IP-Address", 4, Ipv4),
    standard("NAS-Port", 5, Integer),
    standard("Service-Type", 6, Integer),
    standard("Framed-Protocol", 7, Integer),
    standard("Framed-IP-Address", 8, Ipv4),
    standard("Framed-IP-Netmask", 9, Ipv4),
    standard("Filter-Id", 11, Text),
    standard("Framed-MTU", 12, Integer),
    standard("Reply-Message", 18, Text),
    standard("Framed-Route", 22, Text),
    standard("State", 24, Octets),
    standard("Class", 25, Octets),
    standard("Session-Timeout", 27, Integer),
    standard("Idle-Timeout", 28, Integer),
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
    standard("NAS-Port-Id", 87, Text),
    standard("Framed-Pool", 88, Text),
    vendor("Cisco-AVPair", 9, 1, Text),
    vendor("MS-CHAP-Response", 311, 1, Octets),
    vendor("MS-CHAP-Challenge", 311, 11, Octets),
    vendor("MS-CHAP2-Response", 311, 25, Octets),
    vendor("Fortinet-Group-Name", 12356, 1, Text),
    vendor("PaloAlto-Admin-Role", 25461, 1, Text),
    vendor("PaloAlto-User-Group", 25461, 5, Text),
];

/// Finds an attribute by name, case-insensitively.
pub fn by_name(name: &str) -> Option<&'static Definition> {
    DICTIONARY
        .iter()
        .find(|definition| definition.name.eq_ignore_ascii_case(name))
}

/// Why a value does not fit its attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("not a whole number from 0 to 4294967295")]
    NotInteger,
    #[error("not an IPv4 address")]
    NotIpv4,
    #[error("not hexadecimal bytes (0x…)")]
    NotHex,
    #[error("longer than an attribute can carry")]
    TooLong,
}

impl Definition {
    /// The attribute carrying `text`, written as this attribute's type says: an integer in
    /// decimal, an address in dotted form, octets as `0x` and hex digits or as text.
    pub fn attribute(&self, text: &str) -> Result<Attribute, ValueError> {
        let value = match self.value {
            Text => text.as_bytes().to_vec(),
            Integer => text
                .trim()
                .parse::<u32>()
                .map_err(|_| ValueError::NotInteger)?
                .to_be_bytes()
                .to_vec(),
            Ipv4 => text
                .trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| ValueError::NotIpv4)?
                .octets()
                .to_vec(),
            Octets => match text.strip_prefix("0x") {
                Some(digits) => data_encoding::HEXLOWER_PERMISSIVE
                    .decode(digits.as_bytes())
                    .map_err(|_| ValueError::NotHex)?,
                None => text.as_bytes().to_vec(),
            },
        };
        let room = if self.vendor.is_some() { 247 } else { 253 };
        if value.is_empty() || value.len() > room {
            return Err(ValueError::TooLong);
        }
        Ok(match self.vendor {
            Some(vendor) => Attribute::vendor(vendor, self.kind, &value),
            None => Attribute::new(self.kind, value),
        })
    }
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
            Err(ValueError::TooLong)
        );
    }
}
