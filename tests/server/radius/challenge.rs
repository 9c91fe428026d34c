//! Password, then a challenge (FortiGate, Cisco ASA, Palo Alto, NetScaler), through radclient:
//! the password is answered with an Access-Challenge whose State the code is sent back with;
//! a State is answered once, by its own user, also after a restart.

use std::time::{Duration, Instant};

use otpgate::radius::packet::{
    ACCESS_CHALLENGE, ACCESS_REQUEST, Attribute, Packet, STATE, USER_NAME, USER_PASSWORD,
    hide_password, request,
};
use reqwest::Method;
use serde_json::json;
use tokio::net::UdpSocket;

use super::{PASSWORD, Rig, SECRET, hotp, rig};
use crate::helpers::auth::{SEED_BASE32, call, user_with_token};
use crate::helpers::delivery::mail_settings;
use crate::helpers::radclient::{self, Reply};
use crate::helpers::smtp_sink::{Mode, SmtpSink, code_in};

const NOT_ACCEPTED: &str = "The code was not accepted. Log in again.";

fn password_request(user: &str, password: &str) -> String {
    format!(
        "User-Name = \"{user}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
    )
}

fn answer(user: &str, code: &str, state: &str) -> String {
    format!("{}State = {state}\n", password_request(user, code))
}

async fn send(rig: &Rig, attributes: &str) -> Reply {
    radclient::access(rig.port(), SECRET, attributes).await
}

/// The password step, answered with an Access-Challenge: its State, as radclient prints it.
async fn challenged(rig: &Rig, user: &str) -> (String, Reply) {
    let reply = send(rig, &password_request(user, PASSWORD)).await;
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Challenge"),
        "{}",
        reply.text
    );
    let state = reply.get("State").expect("a State").to_string();
    (state, reply)
}

fn assert_code(reply: &Reply, code: &str) {
    assert_eq!(reply.code.as_deref(), Some(code), "{}", reply.text);
}

/// The challenge mode's client, and "bob" with a HOTP token of his own beside "alice".
async fn challenge_rig() -> Rig {
    let rig = rig().await;
    rig.client(json!({"input_mode": "challenge"})).await;
    rig
}

#[tokio::test]
async fn a_password_is_answered_with_a_challenge_whose_state_the_code_completes() {
    if !radclient::present() {
        return;
    }
    let rig = challenge_rig().await;
    let (state, challenge) = challenged(&rig, "alice").await;
    assert_eq!(
        challenge.attributes.first().map(|(name, _)| name.as_str()),
        Some("Message-Authenticator"),
        "first, as in every reply"
    );
    assert_eq!(
        challenge.get("Reply-Message"),
        Some("Enter the code from your hardware token.")
    );
    let timeout: u64 = challenge
        .get("Session-Timeout")
        .expect("the challenge's life")
        .parse()
        .expect("seconds");
    assert!((1..=300).contains(&timeout), "{timeout}");
    let accepted = send(&rig, &answer("alice", &hotp(0), &state)).await;
    assert_code(&accepted, "Access-Accept");

    // The same code again, with a new password step, is a replay.
    let (state, _) = challenged(&rig, "alice").await;
    let replayed = send(&rig, &answer("alice", &hotp(0), &state)).await;
    assert_code(&replayed, "Access-Reject");
    assert_eq!(replayed.get("Reply-Message"), Some(NOT_ACCEPTED));
    let reasons = rig.reasons();
    let results: Vec<&str> = reasons
        .iter()
        .map(|(result, _, _)| result.as_str())
        .collect();
    assert_eq!(results, ["challenge", "accepted", "challenge", "rejected"]);
    assert!(reasons.iter().all(|(_, _, actor)| actor == "radius:nas"));
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_rejection() {
    if !radclient::present() {
        return;
    }
    let rig = challenge_rig().await;
    let unknown = send(&rig, &password_request("nobody", PASSWORD)).await;
    let wrong = send(&rig, &password_request("alice", "not her password")).await;
    assert_code(&unknown, "Access-Reject");
    assert_code(&wrong, "Access-Reject");
    assert_eq!(unknown.shape(), wrong.shape());
    let reasons = rig.reasons();
    assert_eq!(reasons[0].1.as_deref(), Some("unknown_user"));
    assert_eq!(reasons[1].1.as_deref(), Some("bad_password"));
}

#[tokio::test]
async fn the_code_sent_by_mail_answers_the_challenge() {
    if !radclient::present() {
        return;
    }
    let sink = SmtpSink::start(Mode::Plain).await;
    let rig = challenge_rig().await;
    let (status, body) = call(
        &rig.app,
        Method::PUT,
        "/settings/mail",
        &rig.fx.admin,
        mail_settings(sink.port, "none", None),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    mail_user(&rig, "mia").await;
    let (state, challenge) = challenged(&rig, "mia").await;
    assert_eq!(
        challenge.get("Reply-Message"),
        Some("Enter the code sent to m***@example.com.")
    );
    let email = mail_to(&sink, "mia@example.com").await;
    let code = code_in(&email).expect("a code in the email");
    let accepted = send(&rig, &answer("mia", &code, &state)).await;
    assert_code(&accepted, "Access-Accept");
}

/// "login" with a password and a MAIL token to login@example.com, no address of their own (so
/// that nothing but codes is mailed to them).
async fn mail_user(rig: &Rig, login: &str) -> i64 {
    let (status, body) = call(
        &rig.app,
        Method::POST,
        "/users",
        &rig.fx.admin,
        json!({"login": login, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &rig.app,
        Method::POST,
        "/tokens",
        &rig.fx.admin,
        json!({"kind": "MAIL", "user": login, "resource": "vpn",
               "destination": format!("{login}@example.com")}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("token id")
}

/// The first email to `address` (others may be notices to other users).
async fn mail_to(sink: &SmtpSink, address: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = sink
            .messages()
            .into_iter()
            .find(|message| message.to.iter().any(|to| to == address));
        if let Some(message) = found {
            return message.data;
        }
        assert!(Instant::now() < deadline, "no email to {address}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_wrong_code_is_rejected_and_spends_the_state() {
    if !radclient::present() {
        return;
    }
    let rig = challenge_rig().await;
    let (state, _) = challenged(&rig, "alice").await;
    let wrong = send(&rig, &answer("alice", "000000", &state)).await;
    assert_code(&wrong, "Access-Reject");
    assert_eq!(wrong.get("Reply-Message"), Some(NOT_ACCEPTED));
    let again = send(&rig, &answer("alice", &hotp(0), &state)).await;
    assert_code(&again, "Access-Reject");
    assert_eq!(again.shape(), wrong.shape(), "the same answer either way");
    // A new login works, with the code that was never accepted.
    let (state, _) = challenged(&rig, "alice").await;
    let accepted = send(&rig, &answer("alice", &hotp(0), &state)).await;
    assert_code(&accepted, "Access-Accept");
    let reasons: Vec<Option<String>> = rig.reasons().into_iter().map(|r| r.1).collect();
    assert_eq!(
        reasons,
        vec![
            None,
            Some("bad_otp".into()),
            Some("state_used".into()),
            None,
            None
        ]
    );
}

#[tokio::test]
async fn a_state_answered_once_or_of_another_user_is_refused() {
    if !radclient::present() {
        return;
    }
    let rig = challenge_rig().await;
    user_with_token(
        &rig.app,
        &rig.fx,
        "bob",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;
    let (alices, _) = challenged(&rig, "alice").await;
    assert_code(
        &send(&rig, &answer("alice", &hotp(0), &alices)).await,
        "Access-Accept",
    );
    let replayed = send(&rig, &answer("alice", &hotp(1), &alices)).await;
    assert_code(&replayed, "Access-Reject");
    assert_eq!(replayed.get("Reply-Message"), Some(NOT_ACCEPTED));

    let (bobs, _) = challenged(&rig, "bob").await;
    let foreign = send(&rig, &answer("alice", &hotp(1), &bobs)).await;
    assert_code(&foreign, "Access-Reject");
    // A made-up State opens nothing either.
    let forged = send(
        &rig,
        &answer("alice", &hotp(1), &format!("0x{}", "ab".repeat(60))),
    )
    .await;
    assert_code(&forged, "Access-Reject");
    // Bob's own State is still his: another user's attempt did not spend it.
    assert_code(
        &send(&rig, &answer("bob", &hotp(0), &bobs)).await,
        "Access-Accept",
    );
    let reasons: Vec<Option<String>> = rig
        .reasons()
        .into_iter()
        .filter(|(result, _, _)| result == "rejected")
        .map(|r| r.1)
        .collect();
    assert_eq!(
        reasons,
        vec![
            Some("state_used".into()),
            Some("state_foreign".into()),
            Some("state_invalid".into()),
        ]
    );
}

#[tokio::test]
async fn a_challenge_is_still_answered_after_a_restart() {
    if !radclient::present() {
        return;
    }
    let rig = challenge_rig().await;
    let (state, _) = challenged(&rig, "alice").await;
    let rig = rig.restart().await;
    let accepted = send(&rig, &answer("alice", &hotp(0), &state)).await;
    assert_code(&accepted, "Access-Accept");
}

#[tokio::test]
async fn a_retransmitted_password_gets_the_same_challenge_and_sends_one_code() {
    let rig = challenge_rig().await;
    let token = mail_user(&rig, "mia").await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let authenticator = [5u8; 16];
    let hidden =
        hide_password(PASSWORD.as_bytes(), SECRET.as_bytes(), &authenticator).expect("hidden");
    let packet = request(
        ACCESS_REQUEST,
        11,
        authenticator,
        vec![
            Attribute::new(USER_NAME, b"mia".to_vec()),
            Attribute::new(USER_PASSWORD, hidden),
        ],
        SECRET.as_bytes(),
        true,
    )
    .expect("encoded");
    let mut replies = Vec::new();
    for _ in 0..2 {
        socket
            .send_to(&packet, ("127.0.0.1", rig.port()))
            .await
            .expect("sent");
        let mut buffer = vec![0u8; 4096];
        let (length, _) =
            tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
                .await
                .expect("a reply in time")
                .expect("received");
        replies.push(buffer[..length].to_vec());
    }
    assert_eq!(replies[0], replies[1], "the same reply, byte for byte");
    let challenge = Packet::parse(&replies[0]).expect("a packet");
    assert_eq!(challenge.code, ACCESS_CHALLENGE);
    assert!(challenge.has(STATE));
    let sent: i64 = crate::helpers::api::database(&rig.app)
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE token_id = ?1",
            [token],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(sent, 1, "one code sent");
    assert_eq!(rig.reasons().len(), 1, "evaluated once");
}
