//! RADIUS packets (RFC 2865 §3, §5): parsing with strict lengths, encoding, the Request and
//! Response Authenticators, the Accounting-Request authenticator (RFC 2866 §3), User-Password
//! hiding (RFC 2865 §5.2) and Message-Authenticator (RFC 3579 §3.2). No I/O, no clock, no
//! randomness: a fresh Request Authenticator comes in as an argument.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

use crate::crypto::constant_time_eq;

/// The smallest packet: code, identifier, length and authenticator.
pub const HEADER_LEN: usize = 20;
/// The largest packet RFC 2865 §3 allows.
pub const MAX_PACKET_LEN: usize = 4096;
/// The longest User-Password RFC 2865 §5.2 allows, in bytes once hidden.
pub const MAX_PASSWORD_LEN: usize = 128;
/// The longest value an attribute can carry.
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 253;

pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCOUNTING_REQUEST: u8 = 4;
pub const ACCOUNTING_RESPONSE: u8 = 5;
pub const ACCESS_CHALLENGE: u8 = 11;
pub const STATUS_SERVER: u8 = 12;

pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const CHAP_PASSWORD: u8 = 3;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const CLASS: u8 = 25;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const SESSION_TIMEOUT: u8 = 27;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const PROXY_STATE: u8 = 33;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_SESSION_ID: u8 = 44;
pub const CHAP_CHALLENGE: u8 = 60;
pub const EAP_MESSAGE: u8 = 79;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;

/// Microsoft's vendor number, whose MS-CHAP attributes a request may carry.
pub const VENDOR_MICROSOFT: u32 = 311;

/// Why bytes are not a packet. Each is a reason to drop it silently (RFC 2865 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("shorter than a RADIUS header")]
    TooShort,
    #[error("the length field is out of range or beyond the datagram")]
    BadLength,
    #[error("an attribute's length is below 2 or runs past the packet")]
    BadAttribute,
    #[error("a Message-Authenticator that is not 16 bytes long")]
    BadMessageAuthenticator,
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("an attribute value is longer than 253 bytes")]
    AttributeTooLong,
    #[error("the packet would be longer than 4096 bytes")]
    PacketTooLong,
    #[error("a password longer than 128 bytes")]
    PasswordTooLong,
}

/// One attribute: its type and raw value (1 to 253 bytes, or empty when a peer sent it so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub kind: u8,
    pub value: Vec<u8>,
}

impl Attribute {
    pub fn new(kind: u8, value: impl Into<Vec<u8>>) -> Attribute {
        Attribute {
            kind,
            value: value.into(),
        }
    }

    /// A Vendor-Specific attribute carrying one vendor attribute in the RFC 2865 §5.26 layout.
    pub fn vendor(vendor: u32, vendor_kind: u8, value: &[u8]) -> Attribute {
        let mut bytes = Vec::with_capacity(6 + value.len());
        bytes.extend_from_slice(&vendor.to_be_bytes());
        bytes.push(vendor_kind);
        bytes.push((value.len() + 2).min(255) as u8);
        bytes.extend_from_slice(value);
        Attribute::new(VENDOR_SPECIFIC, bytes)
    }

    /// The vendor and its sub-attributes of a Vendor-Specific attribute in the usual layout
    /// (one-byte type and length); None when the value is not laid out so.
    pub fn vendor_attributes(&self) -> Option<(u32, VendorAttributes<'_>)> {
        if self.kind != VENDOR_SPECIFIC || self.value.len() < 4 {
            return None;
        }
        let vendor =
            u32::from_be_bytes([self.value[0], self.value[1], self.value[2], self.value[3]]);
        let mut rest = &self.value[4..];
        let mut found = Vec::new();
        while !rest.is_empty() {
            if rest.len() < 2 {
                return None;
            }
            let length = usize::from(rest[1]);
            if length < 2 || length > rest.len() {
                return None;
            }
            found.push((rest[0], &rest[2..length]));
            rest = &rest[length..];
        }
        Some((vendor, found))
    }
}

/// The sub-attributes of a Vendor-Specific attribute: type and value.
pub type VendorAttributes<'a> = Vec<(u8, &'a [u8])>;

/// A packet as parsed or about to be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub code: u8,
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub attributes: Vec<Attribute>,
}

impl Packet {
    /// Parses a datagram. Octets beyond the length field are padding and ignored; a datagram
    /// shorter than its length field, a length out of 20..=4096, an attribute shorter than 2
    /// bytes or running past the packet, or a Message-Authenticator of another size is refused.
    pub fn parse(datagram: &[u8]) -> Result<Packet, ParseError> {
        if datagram.len() < HEADER_LEN {
            return Err(ParseError::TooShort);
        }
        let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
        if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) || length > datagram.len() {
            return Err(ParseError::BadLength);
        }
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&datagram[4..20]);
        let mut attributes = Vec::new();
        let mut rest = &datagram[HEADER_LEN..length];
        while !rest.is_empty() {
            if rest.len() < 2 {
                return Err(ParseError::BadAttribute);
            }
            let attribute_length = usize::from(rest[1]);
            if attribute_length < 2 || attribute_length > rest.len() {
                return Err(ParseError::BadAttribute);
            }
            let attribute = Attribute::new(rest[0], &rest[2..attribute_length]);
            if attribute.kind == MESSAGE_AUTHENTICATOR && attribute.value.len() != 16 {
                return Err(ParseError::BadMessageAuthenticator);
            }
            attributes.push(attribute);
            rest = &rest[attribute_length..];
        }
        Ok(Packet {
            code: datagram[0],
            identifier: datagram[1],
            authenticator,
            attributes,
        })
    }

    /// The packet's bytes as they stand (the authenticator field as it is).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut bytes = Vec::with_capacity(64);
        bytes.push(self.code);
        bytes.push(self.identifier);
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&self.authenticator);
        for attribute in &self.attributes {
            if attribute.value.len() > MAX_ATTRIBUTE_VALUE_LEN {
                return Err(EncodeError::AttributeTooLong);
            }
            bytes.push(attribute.kind);
            bytes.push((attribute.value.len() + 2) as u8);
            bytes.extend_from_slice(&attribute.value);
        }
        if bytes.len() > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong);
        }
        let length = (bytes.len() as u16).to_be_bytes();
        bytes[2..4].copy_from_slice(&length);
        Ok(bytes)
    }

    /// The first value of an attribute type.
    pub fn first(&self, kind: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|attribute| attribute.kind == kind)
            .map(|attribute| attribute.value.as_slice())
    }

    /// The first value of a text attribute, lossily as UTF-8.
    pub fn text(&self, kind: u8) -> Option<String> {
        self.first(kind)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }

    pub fn has(&self, kind: u8) -> bool {
        self.attributes
            .iter()
            .any(|attribute| attribute.kind == kind)
    }

    /// Whether a Vendor-Specific attribute of this vendor is present.
    pub fn has_vendor(&self, vendor: u32) -> bool {
        self.attributes.iter().any(|attribute| {
            attribute.kind == VENDOR_SPECIFIC
                && attribute.value.len() >= 4
                && attribute.value[..4] == vendor.to_be_bytes()
        })
    }

    /// Checks a request's Message-Authenticator (RFC 3579 §3.2): HMAC-MD5 keyed with the
    /// secret over the packet with the attribute's value zeroed. An Accounting-Request's is
    /// computed with its authenticator field zeroed, as its authenticator is computed after.
    /// None when the packet has none; compared in constant time.
    pub fn message_authenticator_valid(&self, secret: &[u8]) -> Option<bool> {
        let given = self.first(MESSAGE_AUTHENTICATOR)?;
        let Ok(mut bytes) = self.encode() else {
            return Some(false);
        };
        if self.code == ACCOUNTING_REQUEST {
            bytes[4..20].fill(0);
        }
        let mut at = HEADER_LEN;
        while at + 2 <= bytes.len() {
            let end = at + usize::from(bytes[at + 1]);
            if bytes[at] == MESSAGE_AUTHENTICATOR {
                bytes[at + 2..end].fill(0);
            }
            at = end;
        }
        Some(constant_time_eq(&hmac_md5(secret, &bytes), given))
    }

    /// Checks an Accounting-Request's authenticator (RFC 2866 §3): MD5 of the packet with a
    /// zeroed authenticator field, followed by the secret. Compared in constant time.
    pub fn accounting_authenticator_valid(&self, secret: &[u8]) -> bool {
        let mut copy = self.clone();
        copy.authenticator = [0; 16];
        let Ok(bytes) = copy.encode() else {
            return false;
        };
        constant_time_eq(&md5_of(&[&bytes, secret]), &self.authenticator)
    }

    /// The reveal of a hidden User-Password (RFC 2865 §5.2): None when the packet has none or
    /// its length is not a multiple of 16 within 16..=128. Trailing NULs are the padding.
    pub fn user_password(&self, secret: &[u8]) -> Option<Vec<u8>> {
        reveal_password(self.first(USER_PASSWORD)?, secret, &self.authenticator)
    }
}

/// A reply to `request`: its Message-Authenticator first (RFC 3579 §3.2, and the Blast-RADIUS
/// advice), then `attributes`, then the request's Proxy-States in order (RFC 2865 §5.33), and
/// the Response Authenticator over it all (RFC 2865 §3).
pub fn reply(
    code: u8,
    request: &Packet,
    attributes: Vec<Attribute>,
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let mut all = Vec::with_capacity(attributes.len() + 2);
    let signed = code != ACCOUNTING_RESPONSE;
    if signed {
        all.push(Attribute::new(MESSAGE_AUTHENTICATOR, [0u8; 16]));
    }
    all.extend(attributes);
    all.extend(
        request
            .attributes
            .iter()
            .filter(|attribute| attribute.kind == PROXY_STATE)
            .cloned(),
    );
    let packet = Packet {
        code,
        identifier: request.identifier,
        authenticator: request.authenticator,
        attributes: all,
    };
    let mut bytes = packet.encode()?;
    if signed {
        sign(&mut bytes, secret);
    }
    let response_authenticator = md5_of(&[&bytes, secret]);
    bytes[4..20].copy_from_slice(&response_authenticator);
    Ok(bytes)
}

/// A request as a client builds it: with a Message-Authenticator first when `sign` (for
/// Access-Request and Status-Server, over the given Request Authenticator), and for an
/// Accounting-Request its authenticator computed (RFC 2866 §3). The tests' client and the
/// fuzz target use it; the server only answers.
pub fn request(
    code: u8,
    identifier: u8,
    request_authenticator: [u8; 16],
    attributes: Vec<Attribute>,
    secret: &[u8],
    sign: bool,
) -> Result<Vec<u8>, EncodeError> {
    let mut all = Vec::with_capacity(attributes.len() + 1);
    if sign {
        all.push(Attribute::new(MESSAGE_AUTHENTICATOR, [0u8; 16]));
    }
    all.extend(attributes);
    let accounting = code == ACCOUNTING_REQUEST;
    let packet = Packet {
        code,
        identifier,
        authenticator: if accounting {
            [0; 16]
        } else {
            request_authenticator
        },
        attributes: all,
    };
    let mut bytes = packet.encode()?;
    if sign {
        self::sign(&mut bytes, secret);
    }
    if accounting {
        let authenticator = md5_of(&[&bytes, secret]);
        bytes[4..20].copy_from_slice(&authenticator);
    }
    Ok(bytes)
}

/// Checks a reply's Response Authenticator and, when present, its Message-Authenticator,
/// against the request it answers. For clients (the tests).
pub fn reply_valid(reply: &[u8], request_authenticator: &[u8; 16], secret: &[u8]) -> bool {
    let Ok(packet) = Packet::parse(reply) else {
        return false;
    };
    let mut unsigned = packet.clone();
    unsigned.authenticator = *request_authenticator;
    let Ok(bytes) = unsigned.encode() else {
        return false;
    };
    if !constant_time_eq(&md5_of(&[&bytes, secret]), &packet.authenticator) {
        return false;
    }
    unsigned.message_authenticator_valid(secret).unwrap_or(true)
}

/// Hides a password (RFC 2865 §5.2): padded with NULs to a multiple of 16, at most 128 bytes.
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, EncodeError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(EncodeError::PasswordTooLong);
    }
    let padded_len = password.len().div_ceil(16).max(1) * 16;
    let mut hidden = password.to_vec();
    hidden.resize(padded_len, 0);
    let mut previous: [u8; 16] = *request_authenticator;
    for block in hidden.chunks_mut(16) {
        let pad = md5_of(&[secret, &previous]);
        for (byte, key) in block.iter_mut().zip(pad) {
            *byte ^= key;
        }
        previous.copy_from_slice(block);
    }
    Ok(hidden)
}

/// Reveals a hidden password (RFC 2865 §5.2); None when its length is not a multiple of 16
/// within 16..=128. The NULs that pad it are removed.
pub fn reveal_password(
    hidden: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Option<Vec<u8>> {
    if hidden.is_empty() || hidden.len() > MAX_PASSWORD_LEN || !hidden.len().is_multiple_of(16) {
        return None;
    }
    let mut revealed = Vec::with_capacity(hidden.len());
    let mut previous: &[u8] = request_authenticator;
    for block in hidden.chunks(16) {
        let pad = md5_of(&[secret, previous]);
        revealed.extend(block.iter().zip(pad).map(|(byte, key)| byte ^ key));
        previous = block;
    }
    while revealed.last() == Some(&0) {
        revealed.pop();
    }
    Some(revealed)
}

fn md5_of(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Writes the Message-Authenticator of encoded packet bytes whose first attribute is one with
/// a zeroed value (RFC 3579 §3.2): the HMAC-MD5 of the bytes as they are, in its place.
fn sign(bytes: &mut [u8], secret: &[u8]) {
    let value = HEADER_LEN + 2..HEADER_LEN + 18;
    let mac = hmac_md5(secret, bytes);
    bytes[value].copy_from_slice(&mac);
}

fn hmac_md5(secret: &[u8], bytes: &[u8]) -> [u8; 16] {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digits"))
            .collect()
    }

    const SECRET: &[u8] = b"xyzzy5461";

    /// RFC 2865 §7.1: "nemo" logs in with "arctangent" through NAS 192.168.1.16.
    const RFC2865_7_1_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
        98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee
        04 06 c0 a8 01 10 05 06 00 00 00 03";
    const RFC2865_7_1_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
        9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03";

    #[test]
    fn the_rfc_2865_example_request_parses_and_reveals_its_password() {
        let packet = Packet::parse(&hex(RFC2865_7_1_REQUEST)).expect("parses");
        assert_eq!(packet.code, ACCESS_REQUEST);
        assert_eq!(packet.identifier, 0);
        assert_eq!(packet.text(USER_NAME).as_deref(), Some("nemo"));
        assert_eq!(packet.first(4), Some(&[192, 168, 1, 16][..]));
        assert_eq!(
            packet.user_password(SECRET).as_deref(),
            Some(&b"arctangent"[..])
        );
        assert_eq!(
            packet.user_password(b"wrong"),
            packet.user_password(b"wrong")
        );
        assert_ne!(
            packet.user_password(b"wrong").as_deref(),
            Some(&b"arctangent"[..])
        );
        assert_eq!(packet.encode().expect("encodes"), hex(RFC2865_7_1_REQUEST));
        let hidden = hide_password(b"arctangent", SECRET, &packet.authenticator).expect("hides");
        assert_eq!(Some(hidden.as_slice()), packet.first(USER_PASSWORD));
    }

    #[test]
    fn the_rfc_2865_example_accept_has_the_response_authenticator_computed_here() {
        let request = Packet::parse(&hex(RFC2865_7_1_REQUEST)).expect("parses");
        let accept = hex(RFC2865_7_1_ACCEPT);
        assert!(reply_valid(&accept, &request.authenticator, SECRET));
        assert!(!reply_valid(&accept, &request.authenticator, b"xyzzy5462"));
        let mut tampered = accept.clone();
        tampered[25] ^= 1;
        assert!(!reply_valid(&tampered, &request.authenticator, SECRET));
    }

    /// RFC 5997 §6: a Status-Server with a Message-Authenticator, secret "xyzzy5461".
    const RFC5997_STATUS_SERVER: &str = "0c da 00 26 8a 54 f4 68 6f b3 94 c5 28 66 e3 02
        18 5d 06 23 50 12 5a 66 5e 2e 1e 84 11 f3 e2 43 82 20 97 c8 4f a3";

    #[test]
    fn the_rfc_5997_status_server_carries_a_valid_message_authenticator() {
        let packet = Packet::parse(&hex(RFC5997_STATUS_SERVER)).expect("parses");
        assert_eq!(packet.code, STATUS_SERVER);
        assert_eq!(packet.message_authenticator_valid(SECRET), Some(true));
        assert_eq!(
            packet.message_authenticator_valid(b"xyzzy5460"),
            Some(false)
        );
    }

    #[test]
    fn a_reply_carries_its_message_authenticator_first_and_both_authenticators_check() {
        let request = Packet::parse(&hex(RFC5997_STATUS_SERVER)).expect("parses");
        let mut with_proxy = request.clone();
        with_proxy
            .attributes
            .push(Attribute::new(PROXY_STATE, b"p1".to_vec()));
        let bytes = reply(
            ACCESS_ACCEPT,
            &with_proxy,
            vec![Attribute::new(REPLY_MESSAGE, b"hello".to_vec())],
            SECRET,
        )
        .expect("encodes");
        let parsed = Packet::parse(&bytes).expect("parses");
        assert_eq!(parsed.attributes[0].kind, MESSAGE_AUTHENTICATOR);
        assert_eq!(
            parsed.attributes[2],
            Attribute::new(PROXY_STATE, b"p1".to_vec())
        );
        assert_eq!(parsed.identifier, 0xda);
        assert!(reply_valid(&bytes, &request.authenticator, SECRET));
        assert!(!reply_valid(&bytes, &request.authenticator, b"other"));
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x20;
        assert!(!reply_valid(&tampered, &request.authenticator, SECRET));
    }

    #[test]
    fn passwords_of_every_length_up_to_128_bytes_round_trip_and_longer_ones_are_refused() {
        let authenticator = [7u8; 16];
        for length in 0..=MAX_PASSWORD_LEN {
            let password: Vec<u8> = (0..length).map(|i| b'a' + (i % 26) as u8).collect();
            let hidden = hide_password(&password, b"s3cret", &authenticator).expect("hides");
            assert_eq!(hidden.len(), length.div_ceil(16).max(1) * 16);
            assert_eq!(
                reveal_password(&hidden, b"s3cret", &authenticator),
                Some(password)
            );
        }
        assert_eq!(
            hide_password(&[b'x'; 129], b"s3cret", &authenticator),
            Err(EncodeError::PasswordTooLong)
        );
        assert_eq!(reveal_password(&[0; 144], b"s", &authenticator), None);
        assert_eq!(reveal_password(&[0; 17], b"s", &authenticator), None);
        assert_eq!(reveal_password(&[], b"s", &authenticator), None);
    }

    #[test]
    fn accounting_requests_are_signed_and_checked_per_rfc_2866() {
        let bytes = request(
            ACCOUNTING_REQUEST,
            3,
            [0; 16],
            vec![
                Attribute::new(ACCT_STATUS_TYPE, 1u32.to_be_bytes().to_vec()),
                Attribute::new(ACCT_SESSION_ID, b"abc".to_vec()),
            ],
            SECRET,
            true,
        )
        .expect("encodes");
        let packet = Packet::parse(&bytes).expect("parses");
        assert!(packet.accounting_authenticator_valid(SECRET));
        assert!(!packet.accounting_authenticator_valid(b"xyzzy5462"));
        assert_eq!(packet.message_authenticator_valid(SECRET), Some(true));
        assert_eq!(packet.message_authenticator_valid(b"nope"), Some(false));
    }

    #[test]
    fn lengths_are_checked_strictly() {
        let good = hex(RFC2865_7_1_REQUEST);
        assert_eq!(Packet::parse(&good[..19]), Err(ParseError::TooShort));
        assert_eq!(
            Packet::parse(&good[..good.len() - 1]),
            Err(ParseError::BadLength)
        );
        let mut padded = good.clone();
        padded.extend_from_slice(&[0xff; 7]);
        assert_eq!(
            Packet::parse(&padded)
                .expect("parses")
                .encode()
                .expect("encodes"),
            good
        );
        let mut short_length = good.clone();
        short_length[3] = 19;
        assert_eq!(Packet::parse(&short_length), Err(ParseError::BadLength));
        let mut zero_attribute = good.clone();
        zero_attribute[21] = 0;
        assert_eq!(
            Packet::parse(&zero_attribute),
            Err(ParseError::BadAttribute)
        );
        let mut overrun = good.clone();
        overrun[21] = 200;
        assert_eq!(Packet::parse(&overrun), Err(ParseError::BadAttribute));
        let mut huge = vec![0u8; 5000];
        huge[..20].copy_from_slice(&good[..20]);
        huge[2..4].copy_from_slice(&4097u16.to_be_bytes());
        assert_eq!(Packet::parse(&huge), Err(ParseError::BadLength));
        let short_mac =
            request(ACCESS_REQUEST, 1, [1; 16], vec![], SECRET, false).expect("encodes");
        let mut with_short_mac = Packet::parse(&short_mac).expect("parses");
        with_short_mac
            .attributes
            .push(Attribute::new(MESSAGE_AUTHENTICATOR, vec![0; 4]));
        assert_eq!(
            Packet::parse(&with_short_mac.encode().expect("encodes")),
            Err(ParseError::BadMessageAuthenticator)
        );
    }

    #[test]
    fn vendor_attributes_are_built_and_read_in_the_usual_layout() {
        let attribute = Attribute::vendor(12356, 1, b"vpn-users");
        assert_eq!(
            attribute.vendor_attributes(),
            Some((12356, vec![(1, &b"vpn-users"[..])]))
        );
        assert_eq!(
            Attribute::new(VENDOR_SPECIFIC, vec![0, 0, 1, 55, 9]).vendor_attributes(),
            None
        );
        let packet = Packet {
            code: ACCESS_REQUEST,
            identifier: 0,
            authenticator: [0; 16],
            attributes: vec![Attribute::vendor(VENDOR_MICROSOFT, 11, &[1; 16])],
        };
        assert!(packet.has_vendor(VENDOR_MICROSOFT));
        assert!(!packet.has_vendor(9));
    }

    #[test]
    fn vendor_attributes_encode_in_the_rfc_2865_layout_up_to_the_largest_value() {
        let packet = Packet {
            code: ACCESS_ACCEPT,
            identifier: 4,
            authenticator: [0; 16],
            attributes: vec![
                Attribute::vendor(12356, 1, b"vpn"),
                Attribute::vendor(9, 1, b"shell:priv-lvl=15"),
            ],
        };
        let bytes = packet.encode().expect("encodes");
        assert_eq!(
            &bytes[HEADER_LEN..HEADER_LEN + 11],
            &hex("1a 0b 00 00 30 44 01 05 76 70 6e")[..],
            "type 26, length, Fortinet's number, its type 1, length, the value"
        );
        assert_eq!(
            &bytes[HEADER_LEN + 11..HEADER_LEN + 19],
            &hex("1a 19 00 00 00 09 01 13")[..]
        );
        let parsed = Packet::parse(&bytes).expect("parses");
        assert_eq!(parsed, packet);
        let largest = Attribute::vendor(25461, 5, &[b'g'; 247]);
        assert_eq!(largest.value.len(), MAX_ATTRIBUTE_VALUE_LEN);
        assert_eq!(
            largest.value[5], 249,
            "the vendor length covers its type and length"
        );
        let encoded = Packet {
            attributes: vec![largest.clone()],
            ..packet.clone()
        }
        .encode()
        .expect("the largest vendor value fits");
        assert_eq!(encoded[HEADER_LEN + 1], 255);
        assert_eq!(
            Packet {
                attributes: vec![Attribute::vendor(25461, 5, &[b'g'; 248])],
                ..packet
            }
            .encode(),
            Err(EncodeError::AttributeTooLong)
        );
    }
}
