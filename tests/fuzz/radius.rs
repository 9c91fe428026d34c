//! The RADIUS codec: arbitrary datagrams never crash the parser, and what it encodes it parses
//! back unchanged, with authenticators that check.

use otpgate::radius::packet::{
    ACCESS_ACCEPT, ACCESS_REQUEST, Attribute, MESSAGE_AUTHENTICATOR, Packet, USER_PASSWORD,
    hide_password, reply, reply_valid, reveal_password,
};
use proptest::prelude::*;

use crate::run::fuzz;

fn attribute() -> impl Strategy<Value = Attribute> {
    (
        any::<u8>().prop_filter("not a Message-Authenticator", |kind| {
            *kind != MESSAGE_AUTHENTICATOR
        }),
        proptest::collection::vec(any::<u8>(), 0..60),
    )
        .prop_map(|(kind, value)| Attribute::new(kind, value))
}

#[derive(Debug, Clone)]
enum Datagram {
    Raw(Vec<u8>),
    /// A valid packet with some bytes changed.
    Edited(Vec<u8>, Vec<(usize, u8)>),
}

fn packet() -> impl Strategy<Value = Packet> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<[u8; 16]>(),
        proptest::collection::vec(attribute(), 0..12),
    )
        .prop_map(|(code, identifier, authenticator, attributes)| Packet {
            code,
            identifier,
            authenticator,
            attributes,
        })
}

#[test]
fn radius_datagrams_never_crash_the_parser() {
    let input = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Datagram::Raw),
        (
            packet(),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)
        )
            .prop_map(|(packet, edits)| Datagram::Edited(packet.encode().unwrap(), edits)),
    ];
    fuzz("radius_parse", input, |datagram| {
        let bytes = match datagram {
            Datagram::Raw(bytes) => bytes,
            Datagram::Edited(mut bytes, edits) => {
                for (at, byte) in edits {
                    let index = at % bytes.len();
                    bytes[index] = byte;
                }
                bytes
            }
        };
        if let Ok(packet) = Packet::parse(&bytes) {
            // Whatever parsed can be checked and answered without a panic.
            let _ = packet.message_authenticator_valid(b"secret");
            let _ = packet.accounting_authenticator_valid(b"secret");
            let _ = packet.user_password(b"secret");
            let _ = reply(ACCESS_ACCEPT, &packet, Vec::new(), b"secret");
            for attribute in &packet.attributes {
                let _ = attribute.vendor_attributes();
            }
            let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            prop_assert_eq!(packet.encode().unwrap(), bytes[..length].to_vec());
        }
        Ok(())
    });
}

#[test]
fn encoded_radius_packets_parse_back_and_their_replies_check() {
    let input = (
        packet(),
        proptest::collection::vec(any::<u8>(), 0..129),
        proptest::collection::vec(any::<u8>(), 1..40),
    );
    fuzz("radius_round_trip", input, |(packet, password, secret)| {
        let bytes = packet.encode().unwrap();
        prop_assert_eq!(Packet::parse(&bytes).unwrap(), packet.clone());
        let hidden = hide_password(&password, &secret, &packet.authenticator).unwrap();
        let mut trimmed = password.clone();
        while trimmed.last() == Some(&0) {
            trimmed.pop();
        }
        prop_assert_eq!(
            reveal_password(&hidden, &secret, &packet.authenticator),
            Some(trimmed)
        );
        let mut request = packet.clone();
        request.code = ACCESS_REQUEST;
        request
            .attributes
            .push(Attribute::new(USER_PASSWORD, hidden));
        let answer = reply(ACCESS_ACCEPT, &request, Vec::new(), &secret).unwrap();
        let parsed = Packet::parse(&answer).unwrap();
        prop_assert_eq!(parsed.attributes[0].kind, MESSAGE_AUTHENTICATOR);
        prop_assert!(reply_valid(&answer, &request.authenticator, &secret));
        Ok(())
    });
}
