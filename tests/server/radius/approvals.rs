//! Approve in Telegram over RADIUS, through radclient and the fake Bot API: a password alone (or
//! followed by the approval word) in one field, checked first, starts one approval and holds
//! the Access-Request until the user presses a button, and so does OpenVPN's static challenge
//! answered with the word; retransmits join the held request; the challenge mode offers the
//! approval beside the code; over RadSec, a held login leaves its connection to the requests
//! behind it.

use std::time::{Duration, Instant};

use data_encoding::BASE64;
use otpgate::radius::packet::{self, ACCESS_ACCEPT, Packet, STATUS_SERVER};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::radsec::{self, RADSEC};
use super::{PASSWORD, Rig, SECRET, hotp, rig_with};
use crate::helpers::auth::call;
use crate::helpers::radclient::{self, Reply};
use crate::helpers::telegram_api::{Sent, TelegramApi};

const WAIT: Duration = Duration::from_secs(20);
const BOT_TOKEN: &str = "123456:TEST-bot_token";
const CHAT: i64 = 4242;
const ALICE: i64 = 77;

/// The rig's "vpn" allowing approvals (with number matching), the bot against the fake Bot
/// API, alice's BOT token bound to `CHAT` beside her HOTP token, and the client "nas" with
/// `client` over the defaults.
struct Setup {
    rig: Rig,
    telegram: TelegramApi,
}

async fn setup(client: Value) -> Setup {
    setup_with(client, |_| {}).await
}

/// The same, with `adjust` applied to the configuration.
async fn setup_with(client: Value, adjust: impl FnOnce(&mut otpgate::Config)) -> Setup {
    let telegram = TelegramApi::start().await;
    let rig = rig_with(adjust).await;
    let admin = rig.fx.admin.clone();
    for (method, path, body) in [
        (
            Method::PUT,
            "/settings/bot",
            json!({"token": BOT_TOKEN, "api_url": telegram.url, "poll_timeout_seconds": 1}),
        ),
        (
            Method::PATCH,
            "/resources/vpn",
            json!({"approvals": {"allowed": true}}),
        ),
    ] {
        let (status, answer) = call(&rig.app, method, path, &admin, body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, created) = call(
        &rig.app,
        Method::POST,
        "/tokens",
        &admin,
        json!({"kind": "BOT", "name": "alice's phone", "user": "alice", "resource": "vpn"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let token_id = created["id"].as_i64().expect("id");
    let code = created["activation"]["code"].as_str().expect("a code");
    telegram.user_writes(CHAT, ALICE, &format!("/start {code}"));
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, token) = call(
            &rig.app,
            Method::GET,
            &format!("/tokens/{token_id}"),
            &admin,
            Value::Null,
        )
        .await;
        if token["state"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "never activated: {token}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The activation's confirmation is the chat's first message.
    assert_eq!(telegram.wait_for_messages(CHAT, 1, WAIT).await.len(), 1);
    rig.client(client).await;
    Setup { rig, telegram }
}

fn request(user: &str, field: &str) -> String {
    radclient::signed(user, field)
}

impl Setup {
    /// Sends an Access-Request in the background, as a gateway that waits up to 20 seconds.
    fn send_held(&self, attributes: String) -> tokio::task::JoinHandle<Reply> {
        self.send_tries(attributes, 1, 20)
    }

    /// Sends an Access-Request in the background, `tries` times at most, `seconds` apart.
    fn send_tries(
        &self,
        attributes: String,
        tries: u32,
        seconds: u32,
    ) -> tokio::task::JoinHandle<Reply> {
        let port = self.rig.port();
        tokio::spawn(async move {
            radclient::access_with(port, SECRET, &attributes, tries, seconds).await
        })
    }

    /// The approval's message, once it came (the chat's second message).
    async fn approval_message(&self) -> Sent {
        let sent = self.telegram.wait_for_messages(CHAT, 2, WAIT).await;
        assert_eq!(sent.len(), 2, "the approval's message: {sent:?}");
        sent[1].clone()
    }

    /// Presses the button with `data` under the approval's message as alice, once its id is
    /// kept; the press's answer.
    async fn press(&self, data: &str) -> String {
        let approval: i64 = data
            .split(':')
            .nth(1)
            .and_then(|id| id.parse().ok())
            .expect("the approval's id");
        let deadline = Instant::now() + WAIT;
        let message = loop {
            let kept: Option<i64> = crate::helpers::api::database(&self.rig.app)
                .query_row(
                    "SELECT message_id FROM approvals WHERE id = ?1",
                    [approval],
                    |row| row.get(0),
                )
                .expect("the approval");
            if let Some(message) = kept {
                break message;
            }
            assert!(Instant::now() < deadline, "the message id was never kept");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let query = self.telegram.user_presses(CHAT, ALICE, message, data);
        self.telegram
            .wait_for_answer(&query, WAIT)
            .await
            .expect("the press was answered")
    }

    fn messages(&self) -> usize {
        self.telegram
            .sent()
            .iter()
            .filter(|sent| sent.chat_id == CHAT)
            .count()
    }

    fn approvals(&self) -> i64 {
        crate::helpers::api::database(&self.rig.app)
            .query_row("SELECT COUNT(*) FROM approvals", [], |row| row.get(0))
            .expect("count")
    }
}

/// The label and data of each button of a message, row after row.
fn buttons(message: &Sent) -> Vec<(String, String)> {
    message.reply_markup["inline_keyboard"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|row| row.as_array().expect("buttons").clone())
        .map(|button| {
            (
                button["text"].as_str().expect("a label").to_string(),
                button["callback_data"].as_str().expect("data").to_string(),
            )
        })
        .collect()
}

fn data_of(message: &Sent, label: &str) -> String {
    buttons(message)
        .into_iter()
        .find(|(text, _)| text == label)
        .map(|(_, data)| data)
        .unwrap_or_else(|| panic!("no button {label}: {:?}", buttons(message)))
}

fn assert_code(reply: &Reply, code: &str) {
    assert_eq!(reply.code.as_deref(), Some(code), "{}", reply.text);
}

#[tokio::test]
async fn a_password_alone_is_held_until_the_user_approves_in_telegram_then_accepted() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "password_code", "separator": ","})).await;
    let reply = s.send_held(request("alice", PASSWORD));
    let message = s.approval_message().await;
    // The gateway shows nothing before the user answers: Approve and Deny, no numbers.
    let labels: Vec<String> = buttons(&message)
        .into_iter()
        .map(|(text, _)| text)
        .collect();
    assert_eq!(labels, ["Approve", "Deny — this wasn't me"]);
    s.press(&data_of(&message, "Approve")).await;
    let reply = reply.await.expect("radclient ran");
    assert_code(&reply, "Access-Accept");
    assert_eq!(s.messages(), 2, "one message for the login");
    let reasons = s.rig.reasons();
    let last = reasons.last().expect("an audit line");
    assert_eq!(
        (last.0.as_str(), last.1.as_deref(), last.2.as_str()),
        ("accepted", Some("approval"), "radius:nas")
    );
    // It waited for alice, not for the server: timed apart from the requests' latency.
    let metrics = s.rig.app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains(
            r#"otpgate_radius_approval_duration_seconds_count{client="nas",result="accepted"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"otpgate_radius_request_duration_seconds_count{client="nas""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_password_followed_by_the_approval_word_asks_too_and_a_denial_rejects() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "password_code", "separator": ",",
                          "approval_word": "push"}))
    .await;
    let reply = s.send_held(request("alice", &format!("{PASSWORD},push")));
    let message = s.approval_message().await;
    s.press(&data_of(&message, "Deny — this wasn't me")).await;
    let reply = reply.await.expect("radclient ran");
    assert_code(&reply, "Access-Reject");
    assert_eq!(s.rig.last_reason().as_deref(), Some("approval_denied"));
}

#[tokio::test]
async fn an_openvpn_static_challenge_answered_with_the_approval_word_is_held_and_approved() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "static_challenge", "approval_word": "push"})).await;
    let scrv1 = |response: &str| {
        format!(
            "SCRV1:{}:{}",
            BASE64.encode(PASSWORD.as_bytes()),
            BASE64.encode(response.as_bytes())
        )
    };
    let reply = s.send_held(request("alice", &scrv1("push")));
    let message = s.approval_message().await;
    s.press(&data_of(&message, "Approve")).await;
    let reply = reply.await.expect("radclient ran");
    assert_code(&reply, "Access-Accept");
    assert_eq!(s.rig.last_reason().as_deref(), Some("approval"));
    // The code in the second box goes the usual way, and sends nothing.
    let reply = s.send_held(request("alice", &scrv1(&hotp(0)))).await;
    assert_code(&reply.expect("radclient ran"), "Access-Accept");
    assert_eq!(s.messages(), 2, "the activation's and the one approval's");
}

#[tokio::test]
async fn retransmits_of_a_held_request_join_it_and_send_no_second_message() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "password_code", "separator": ","})).await;
    // A gateway that sends the same request again every second, up to eight times.
    let reply = s.send_tries(request("alice", PASSWORD), 8, 1);
    let message = s.approval_message().await;
    // Let the gateway retransmit while the request is held.
    let deadline = Instant::now() + WAIT;
    while duplicates(&s).await < 2 {
        assert!(Instant::now() < deadline, "radclient never retransmitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.press(&data_of(&message, "Approve")).await;
    let reply = reply.await.expect("radclient ran");
    let sends = reply.text.matches("Sent Access-Request").count();
    assert!(
        sends >= 3,
        "the request and its retransmits: {}",
        reply.text
    );
    assert_code(&reply, "Access-Accept");
    assert_eq!(s.messages(), 2, "one message for the login, none per retry");
    assert_eq!(s.approvals(), 1, "the request was evaluated once");
}

/// The retransmits the server joined or answered from its cache, from its metrics.
async fn duplicates(s: &Setup) -> u64 {
    let text = s.rig.app.get("/metrics").await.text().await.expect("body");
    text.lines()
        .filter(|line| line.starts_with("otpgate_radius_duplicates_total"))
        .find_map(|line| line.split_whitespace().last())
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

#[tokio::test]
async fn a_wrong_password_sends_no_message_and_is_rejected_as_a_failed_login() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "password_code", "separator": ","})).await;
    let reply =
        radclient::access(s.rig.port(), SECRET, &request("alice", "not her password")).await;
    assert_code(&reply, "Access-Reject");
    assert_eq!(s.approvals(), 0, "no approval was started");
    assert_eq!(s.messages(), 1, "no message beyond the activation's");
    assert_eq!(s.rig.last_reason().as_deref(), Some("bad_password"));
}

#[tokio::test]
async fn the_challenge_offers_the_approval_with_its_number_and_the_right_number_accepts() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "challenge", "approval_word": "push"})).await;
    let challenge = radclient::access(s.rig.port(), SECRET, &request("alice", PASSWORD)).await;
    assert_code(&challenge, "Access-Challenge");
    let text = challenge.get("Reply-Message").expect("what to do");
    assert!(text.contains("Telegram"), "{text}");
    let number = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 2)
        .unwrap_or_else(|| panic!("a number in {text}"))
        .to_string();
    let state = challenge.get("State").expect("a State").to_string();
    let message = s.approval_message().await;
    let reply = s.send_held(format!("{}State = {state}\n", request("alice", "push")));
    s.press(&data_of(&message, &number)).await;
    let reply = reply.await.expect("radclient ran");
    assert_code(&reply, "Access-Accept");
    assert_eq!(s.messages(), 2, "one message for the login");
}

#[tokio::test]
async fn the_challenge_of_an_approval_is_answered_by_a_code_as_well() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "challenge"})).await;
    let challenge = radclient::access(s.rig.port(), SECRET, &request("alice", PASSWORD)).await;
    assert_code(&challenge, "Access-Challenge");
    let state = challenge.get("State").expect("a State").to_string();
    let reply = radclient::access(
        s.rig.port(),
        SECRET,
        &format!("{}State = {state}\n", request("alice", &hotp(0))),
    )
    .await;
    assert_code(&reply, "Access-Accept");
    assert_eq!(s.approvals(), 1);
}

#[tokio::test]
async fn a_login_not_approved_within_the_wait_is_rejected_and_its_message_says_it_expired() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "password_code", "separator": ",",
                          "approval_wait": 5}))
    .await;
    let reply = s.send_held(request("alice", PASSWORD));
    let message = s.approval_message().await;
    let reply = reply.await.expect("radclient ran");
    assert_code(&reply, "Access-Reject");
    assert_eq!(s.rig.last_reason().as_deref(), Some("approval_wait_over"));
    let edited = s.telegram.wait_for_edits(1, WAIT).await;
    assert_eq!(edited.len(), 1, "the message was edited");
    assert!(edited[0].text.contains("Expired"), "{edited:?}");
    // A late press lets no one in.
    s.press(&data_of(&message, "Approve")).await;
    let state: String = crate::helpers::api::database(&s.rig.app)
        .query_row("SELECT state FROM approvals", [], |row| row.get(0))
        .expect("the approval");
    assert_eq!(state, "expired");
}

#[tokio::test]
async fn a_user_without_a_bot_token_is_asked_for_the_code_as_before() {
    if !radclient::present() {
        return;
    }
    let s = setup(json!({"input_mode": "challenge"})).await;
    crate::helpers::auth::user_with_token(
        &s.rig.app,
        &s.rig.fx,
        "bob",
        json!({"kind": "HOTP", "secret": crate::helpers::auth::SEED_BASE32}),
    )
    .await;
    let challenge = radclient::access(s.rig.port(), SECRET, &request("bob", PASSWORD)).await;
    assert_code(&challenge, "Access-Challenge");
    assert_eq!(
        challenge.get("Reply-Message"),
        Some("Enter the code from your hardware token.")
    );
    assert_eq!(s.approvals(), 0);
}

/// A RadSec proxy carries a whole site's logins on one connection: a login held for its approval
/// gives back its place among the connection's requests, so that the next ones are answered
/// while it waits.
#[tokio::test]
async fn over_radsec_a_held_login_leaves_its_connection_free_for_the_requests_behind_it() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = radsec::authority("gateways");
    let client = json!({"input_mode": "password_code", "separator": ","});
    let s = setup_with(client, |config| {
        radsec::enable_radsec(config, &ca, dir.path());
        // Room for one request at a time on a connection.
        config.radius.radsec_max_in_flight_per_connection = 1;
    })
    .await;
    let mut tls = radsec::connect(&s.rig, Some(&ca.client("proxy")))
        .await
        .expect("the handshake succeeds");
    tls.write_all(&radsec::access_request(1, PASSWORD, RADSEC))
        .await
        .expect("write");
    let message = s.approval_message().await;

    // alice has not answered: the Status-Server behind her login is read and answered.
    let status =
        packet::request(STATUS_SERVER, 2, [2; 16], Vec::new(), RADSEC, true).expect("encode");
    tls.write_all(&status).await.expect("write");
    let first = radsec::next_packet(&mut tls).await.expect("an answer");
    let first = Packet::parse(&first).expect("a packet");
    assert_eq!(
        (first.identifier, first.code),
        (2, ACCESS_ACCEPT),
        "the Status-Server is answered first"
    );

    s.press(&data_of(&message, "Approve")).await;
    let held = radsec::next_packet(&mut tls).await.expect("an answer");
    let held = Packet::parse(&held).expect("a packet");
    assert_eq!((held.identifier, held.code), (1, ACCESS_ACCEPT));
}
