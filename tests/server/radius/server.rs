//! What radclient cannot show: a retransmit of the very same packet, and a reply's shape.

use std::time::Duration;

use otpgate::radius::packet::{
    ACCESS_ACCEPT, ACCESS_REQUEST, Attribute, MESSAGE_AUTHENTICATOR, PROXY_STATE, Packet,
    USER_NAME, USER_PASSWORD, hide_password, reply_valid, request,
};
use serde_json::json;
use tokio::net::UdpSocket;

use super::{SECRET, hotp, rig, rig_with};

fn access_request(identifier: u8, authenticator: [u8; 16], code: &str, sign: bool) -> Vec<u8> {
    let hidden = hide_password(code.as_bytes(), SECRET.as_bytes(), &authenticator).expect("hide");
    request(
        ACCESS_REQUEST,
        identifier,
        authenticator,
        vec![
            Attribute::new(USER_NAME, b"alice".to_vec()),
            Attribute::new(USER_PASSWORD, hidden),
        ],
        SECRET.as_bytes(),
        sign,
    )
    .expect("encode")
}

async fn exchange(socket: &UdpSocket, port: u16, bytes: &[u8]) -> Option<Vec<u8>> {
    let host = if socket.local_addr().expect("bound").is_ipv6() {
        "::1"
    } else {
        "127.0.0.1"
    };
    socket.send_to(bytes, (host, port)).await.expect("send");
    let mut buffer = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer)).await {
        Ok(Ok((length, _))) => Some(buffer[..length].to_vec()),
        _ => None,
    }
}

#[tokio::test]
async fn a_retransmit_gets_the_cached_reply_and_is_never_evaluated_again() {
    let rig = rig().await;
    rig.client(json!({"input_mode": "code_only"})).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let authenticator = [9u8; 16];
    let packet = access_request(7, authenticator, &hotp(0), true);
    let first = exchange(&socket, rig.port(), &packet)
        .await
        .expect("a reply");
    let again = exchange(&socket, rig.port(), &packet)
        .await
        .expect("a reply");
    assert_eq!(first, again, "the same reply, byte for byte");
    let parsed = Packet::parse(&first).expect("a packet");
    assert_eq!(
        parsed.code, ACCESS_ACCEPT,
        "the retransmit did not turn into a replay"
    );
    assert_eq!(
        parsed.attributes[0].kind, MESSAGE_AUTHENTICATOR,
        "first attribute"
    );
    assert!(reply_valid(&first, &authenticator, SECRET.as_bytes()));
    assert_eq!(rig.reasons().len(), 1, "evaluated once");
    // The same code in a new request is a replay.
    let replay = access_request(8, [10u8; 16], &hotp(0), true);
    let answer = exchange(&socket, rig.port(), &replay)
        .await
        .expect("a reply");
    assert_eq!(Packet::parse(&answer).expect("packet").code, 3);
}

#[tokio::test]
async fn proxy_state_without_a_message_authenticator_is_dropped_even_when_not_required() {
    let rig = rig().await;
    rig.client(json!({"input_mode": "code_only", "require_message_authenticator": false}))
        .await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let authenticator = [3u8; 16];
    let mut packet =
        Packet::parse(&access_request(1, authenticator, &hotp(0), false)).expect("packet");
    packet
        .attributes
        .push(Attribute::new(PROXY_STATE, b"forged".to_vec()));
    let bytes = packet.encode().expect("encode");
    assert_eq!(exchange(&socket, rig.port(), &bytes).await, None);
    // Unsigned without Proxy-State is answered, as this client allows it.
    let plain = access_request(2, [4u8; 16], &hotp(0), false);
    let answer = exchange(&socket, rig.port(), &plain)
        .await
        .expect("a reply");
    assert_eq!(Packet::parse(&answer).expect("packet").code, ACCESS_ACCEPT);
}

#[tokio::test]
async fn an_ipv6_gateway_is_answered_and_an_identifier_used_again_is_a_new_request() {
    let rig = rig_with(|config| config.radius.listen = vec!["[::1]:0".into()]).await;
    let Ok(socket) = UdpSocket::bind("[::1]:0").await else {
        println!("skipped: this machine has no IPv6 loopback");
        return;
    };
    rig.client(json!({"address": "::1/128", "input_mode": "code_only"}))
        .await;
    let first = exchange(
        &socket,
        rig.port(),
        &access_request(7, [1u8; 16], &hotp(0), true),
    )
    .await
    .expect("a reply over IPv6");
    assert_eq!(Packet::parse(&first).expect("packet").code, ACCESS_ACCEPT);
    // The gateway gave up on identifier 7 and sends a new request on it: a new
    // authenticator, so it is evaluated, not answered from the cache.
    let second = exchange(
        &socket,
        rig.port(),
        &access_request(7, [2u8; 16], &hotp(1), true),
    )
    .await
    .expect("a reply");
    assert!(reply_valid(&second, &[2u8; 16], SECRET.as_bytes()));
    assert_eq!(Packet::parse(&second).expect("packet").code, ACCESS_ACCEPT);
    assert_eq!(rig.reasons().len(), 2, "both evaluated");
    // And the first request again, byte for byte: its reply is no longer remembered (the
    // identifier belongs to the second one now), so it is evaluated again, as a replay.
    let again = exchange(
        &socket,
        rig.port(),
        &access_request(7, [1u8; 16], &hotp(0), true),
    )
    .await
    .expect("a reply");
    assert_eq!(Packet::parse(&again).expect("packet").code, 3);
}
