//! What an Access-Accept carries: a short `Reply-Message`, a `Class` that ties the session's
//! accounting back to the authentication (RFC 2865 §5.25), then the reply attributes of the
//! client's resource. The rule of a resource's reply attributes, shared by the API and the
//! panel, is here too. Pure: no I/O.

use super::dictionary::{Definition, by_name};
use super::packet::{Attribute, HEADER_LEN, MAX_PACKET_LEN, MESSAGE_AUTHENTICATOR, REPLY_MESSAGE};
use crate::domain::FieldError;

/// The most reply attributes a resource may have.
pub const MAX_REPLY_ATTRIBUTES: usize = 64;
/// The longest user name the welcome repeats, in characters.
const WELCOME_NAME_CHARS: usize = 48;
/// Room kept for the request's Proxy-States, which a reply repeats (RFC 2865 §5.33).
const PROXY_STATE_ROOM: usize = 512;
/// The bytes a resource's reply attributes may take: a packet's 4096, less its header, the
/// Message-Authenticator, the longest welcome, the Class and the Proxy-States' room.
pub const REPLY_ATTRIBUTES_ROOM: usize = MAX_PACKET_LEN
    - HEADER_LEN
    - 18
    - (2 + WELCOME.len() + 4 * WELCOME_NAME_CHARS)
    - (2 + CLASS_PREFIX.len() + 16)
    - PROXY_STATE_ROOM;

const WELCOME: &str = "Welcome, ";
const CLASS_PREFIX: &str = "otpgate:";

pub use crate::store::radius::ReplyAttribute;

/// Checks a resource's reply attributes as typed: every name a reply attribute of the
/// dictionary, every value fitting its type, at most 64 of them, all within a reply's room.
/// Answers them with the names spelled as the dictionary does and values trimmed.
pub fn check_reply_attributes(
    typed: &[(String, String)],
) -> Result<Vec<ReplyAttribute>, FieldError> {
    if typed.len() > MAX_REPLY_ATTRIBUTES {
        return Err(refusal(format!(
            "at most {MAX_REPLY_ATTRIBUTES} reply attributes, not {}",
            typed.len()
        )));
    }
    let mut checked = Vec::with_capacity(typed.len());
    let mut bytes = 0;
    for (index, (name, value)) in typed.iter().enumerate() {
        let number = index + 1;
        let definition = reply_definition(name).ok_or_else(|| {
            refusal(format!(
                "attribute {number}: {:?} is not a reply attribute otpgate knows",
                name.trim()
            ))
        })?;
        let value = value.trim();
        let attribute = definition.attribute(value).map_err(|problem| {
            refusal(format!(
                "attribute {number} ({}): the value {problem}",
                definition.name
            ))
        })?;
        bytes += 2 + attribute.value.len();
        checked.push(ReplyAttribute {
            name: definition.name.to_string(),
            value: value.to_string(),
        });
    }
    if bytes > REPLY_ATTRIBUTES_ROOM {
        return Err(refusal(format!(
            "the reply attributes take {bytes} bytes; a reply has room for {REPLY_ATTRIBUTES_ROOM}"
        )));
    }
    Ok(checked)
}

fn refusal(message: String) -> FieldError {
    FieldError::new("attributes", message)
}

fn reply_definition(name: &str) -> Option<&'static Definition> {
    by_name(name.trim()).filter(|definition| definition.reply)
}

/// The attributes of stored reply attributes, in order; one the dictionary no longer takes is
/// left out and named in the answer's second part.
pub fn encode_reply_attributes(stored: &[ReplyAttribute]) -> (Vec<Attribute>, Vec<String>) {
    let mut attributes = Vec::with_capacity(stored.len());
    let mut unusable = Vec::new();
    for attribute in stored {
        match reply_definition(&attribute.name).map(|d| d.attribute(&attribute.value)) {
            Some(Ok(encoded)) => attributes.push(encoded),
            _ => unusable.push(attribute.name.clone()),
        }
    }
    (attributes, unusable)
}

/// The `Reply-Message` of an Access-Accept: a welcome naming the user as the gateway sent the
/// name, without control characters and cut short.
pub fn welcome(user_name: &[u8]) -> Attribute {
    let name: String = String::from_utf8_lossy(user_name)
        .chars()
        .filter(|c| !c.is_control())
        .take(WELCOME_NAME_CHARS)
        .collect();
    let message = if name.trim().is_empty() {
        "Welcome".to_string()
    } else {
        format!("{WELCOME}{}", name.trim())
    };
    Attribute::new(REPLY_MESSAGE, message.into_bytes())
}

/// The request's id: the first half of its Request Authenticator in hex, which the client
/// chose unique (RFC 2865 §3) and a retransmit repeats. The audit line of the authentication
/// carries it, and so does the `Class` of its Access-Accept.
pub fn request_id(request_authenticator: &[u8; 16]) -> String {
    data_encoding::HEXLOWER.encode(&request_authenticator[..8])
}

/// The `Class` of an Access-Accept: `otpgate:` and the request's id. The gateway sends it back
/// in the session's Accounting-Requests (RFC 2865 §5.25), whose audit lines then name the
/// authentication they belong to.
pub fn class(request_authenticator: &[u8; 16]) -> Attribute {
    Attribute::new(
        super::packet::CLASS,
        format!("{CLASS_PREFIX}{}", request_id(request_authenticator)).into_bytes(),
    )
}

/// The id in a `Class` this server gave, if it is one.
pub fn class_request_id(class: &[u8]) -> Option<&str> {
    std::str::from_utf8(class)
        .ok()?
        .strip_prefix(CLASS_PREFIX)
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What an Access-Accept carries besides its Message-Authenticator: the welcome, the Class,
/// then the resource's attributes.
pub fn accept_attributes(
    user_name: &[u8],
    request_authenticator: &[u8; 16],
    resource_attributes: &[Attribute],
) -> Vec<Attribute> {
    let mut attributes = Vec::with_capacity(resource_attributes.len() + 2);
    attributes.push(welcome(user_name));
    attributes.push(class(request_authenticator));
    attributes.extend(resource_attributes.iter().cloned());
    debug_assert!(attributes.iter().all(|a| a.kind != MESSAGE_AUTHENTICATOR));
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::packet::{
        ACCESS_ACCEPT, ACCESS_REQUEST, CLASS, PROXY_STATE, Packet, reply, reply_valid,
    };

    fn typed(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn reply_attributes_are_checked_by_the_dictionary_and_named_as_it_spells_them() {
        let checked = check_reply_attributes(&typed(&[
            ("filter-id", " vpn-users "),
            ("Session-Timeout", "3600"),
            ("Fortinet-Group-Name", "vpn"),
        ]))
        .expect("valid");
        assert_eq!(checked[0].name, "Filter-Id");
        assert_eq!(checked[0].value, "vpn-users");
        let refused = |pairs: &[(&str, &str)]| {
            check_reply_attributes(&typed(pairs))
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused(&[("Filter-Id", "a"), ("No-Such", "1")]),
            "attribute 2: \"No-Such\" is not a reply attribute otpgate knows"
        );
        assert_eq!(
            refused(&[("User-Password", "x")]),
            "attribute 1: \"User-Password\" is not a reply attribute otpgate knows"
        );
        assert_eq!(
            refused(&[("Session-Timeout", "an hour")]),
            "attribute 1 (Session-Timeout): the value is not a whole number from 0 to 4294967295"
        );
        assert_eq!(
            refused(&[("Framed-IP-Address", "10.0.0.256")]),
            "attribute 1 (Framed-IP-Address): the value is not an IPv4 address"
        );
        assert_eq!(
            refused(&[("Filter-Id", &"x".repeat(254))]),
            "attribute 1 (Filter-Id): the value is longer than 253 bytes"
        );
        let many = vec![("Filter-Id".to_string(), "x".to_string()); 65];
        assert!(
            check_reply_attributes(&many)
                .expect_err("refused")
                .message
                .starts_with("at most 64")
        );
        let big = vec![("Filter-Id".to_string(), "x".repeat(250)); 14];
        assert!(
            check_reply_attributes(&big)
                .expect_err("refused")
                .message
                .contains("a reply has room for")
        );
    }

    #[test]
    fn the_largest_accept_allowed_fits_a_packet_with_its_proxy_states() {
        let mut stored = Vec::new();
        while stored.len() < MAX_REPLY_ATTRIBUTES {
            stored.push(("Filter-Id".to_string(), "x".repeat(200)));
            if check_reply_attributes(&stored).is_err() {
                stored.pop();
                break;
            }
        }
        let checked = check_reply_attributes(&stored).expect("fits");
        let (attributes, unusable) = encode_reply_attributes(&checked);
        assert!(unusable.is_empty());
        let mut request = Packet {
            code: ACCESS_REQUEST,
            identifier: 1,
            authenticator: [5; 16],
            attributes: Vec::new(),
        };
        request
            .attributes
            .push(Attribute::new(PROXY_STATE, vec![1; 253]));
        request.attributes.push(Attribute::new(
            PROXY_STATE,
            vec![2; PROXY_STATE_ROOM - 255 - 4],
        ));
        let name = "é".repeat(100);
        let bytes = reply(
            ACCESS_ACCEPT,
            &request,
            accept_attributes(name.as_bytes(), &request.authenticator, &attributes),
            b"secret",
        )
        .expect("fits in 4096 bytes");
        assert!(bytes.len() <= MAX_PACKET_LEN);
    }

    #[test]
    fn an_accept_welcomes_the_user_and_carries_a_class_naming_the_request() {
        let authenticator = [0xab; 16];
        let attributes = accept_attributes(
            b"alice\n",
            &authenticator,
            &[Attribute::vendor(12356, 1, b"vpn")],
        );
        assert_eq!(
            attributes[0],
            Attribute::new(REPLY_MESSAGE, b"Welcome, alice".to_vec())
        );
        assert_eq!(attributes[1].kind, CLASS);
        assert_eq!(attributes[1].value, b"otpgate:abababababababab".to_vec());
        assert_eq!(
            class_request_id(&attributes[1].value),
            Some("abababababababab")
        );
        assert_eq!(class_request_id(b"OU=vpn"), None);
        assert_eq!(
            attributes[2].vendor_attributes(),
            Some((12356, vec![(1, &b"vpn"[..])]))
        );
        let request = Packet {
            code: ACCESS_REQUEST,
            identifier: 9,
            authenticator,
            attributes: Vec::new(),
        };
        let bytes = reply(ACCESS_ACCEPT, &request, attributes, b"secret").expect("encodes");
        assert!(reply_valid(&bytes, &authenticator, b"secret"));
        let parsed = Packet::parse(&bytes).expect("parses");
        assert_eq!(parsed.attributes[0].kind, MESSAGE_AUTHENTICATOR);
        assert_eq!(
            parsed.text(REPLY_MESSAGE).as_deref(),
            Some("Welcome, alice")
        );
    }
}
