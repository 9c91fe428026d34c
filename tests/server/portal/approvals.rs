//! Approve in Telegram at the portal's login: past the password, a user with a BOT token in a
//! resource that allows approvals presses Approve in Telegram, sees the number to press, and is
//! let in once the bot's message is answered with it (once only); a wrong number or Deny sends
//! her back to the login with the reason. The presses go through the fake Bot API.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::test_config;
use crate::helpers::page::{hidden_value, location};
use crate::helpers::portal::{Browser, Portal, SECRET_HEX, totp_now};
use crate::helpers::telegram_api::TelegramApi;

const PASSWORD: &str = "a long enough password";
const CHAT: i64 = 7070;
const WAIT: Duration = Duration::from_secs(20);

pub struct Approving {
    pub portal: Portal,
    pub telegram: TelegramApi,
    _temp: tempfile::TempDir,
}

/// The portal of `vpn` with the bot running against the fake Bot API, the resource's approvals
/// set to `approvals`, and the user `jon` with a password and a BOT token bound to `CHAT`.
pub async fn approving(approvals: Value) -> Approving {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(temp.path());
    // The status address waits for the decision this long at most.
    config.auth.approval_wait_max_seconds = 1;
    let portal = Portal::start_with(config, &["enroll_token"], &["BOT"]).await;
    let telegram = crate::helpers::portal::with_bot(&portal).await;
    let (status, body) = portal
        .api
        .call(
            Method::PATCH,
            "/resources/vpn",
            &portal.admin,
            json!({ "approvals": approvals }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    portal
        .user(json!({"login": "jon", "password": PASSWORD}))
        .await;
    let (status, created) = portal
        .api
        .call(
            Method::POST,
            "/tokens",
            &portal.admin,
            json!({"kind": "BOT", "user": "jon", "resource": "vpn", "name": "Telegram"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["id"].as_i64().expect("id");
    let activation = created["activation"]["code"].as_str().expect("a code");
    telegram.user_writes(CHAT, CHAT, &format!("/start {activation}"));
    let deadline = Instant::now() + WAIT;
    while portal.token_json(token).await["state"] != "active" {
        assert!(Instant::now() < deadline, "never activated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Approving {
        portal,
        telegram,
        _temp: temp,
    }
}

/// The password step done; the browser is on the one-time password page.
pub async fn past_the_password(portal: &Portal, login: &str) -> Browser {
    let browser = portal.browser();
    let response = browser.log_in_with_password(login, PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    browser
}

impl Approving {
    /// Approve in Telegram pressed on the one-time password page: the approval's id, the
    /// number the page shows, the numbers the bot offers and its message's id, once sent.
    pub async fn ask(&self, browser: &Browser) -> (i64, i64, Vec<i64>, i64) {
        let asked = browser
            .submit("/portal/vpn/login/verify", "/portal/vpn/login/approve", &[])
            .await;
        assert_eq!(location(&asked), "/portal/vpn/login/approval");
        self.sent_approval().await
    }

    /// The latest approval, once its message was sent: its id, the number the login shows,
    /// the numbers the bot offers and the message's id.
    pub async fn sent_approval(&self) -> (i64, i64, Vec<i64>, i64) {
        let deadline = Instant::now() + WAIT;
        let message = loop {
            let message = self
                .portal
                .count("SELECT COALESCE(MAX(message_id), 0) FROM approvals");
            if message != 0 {
                break message;
            }
            assert!(Instant::now() < deadline, "the approval was never sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let id = self.portal.count("SELECT MAX(id) FROM approvals");
        let number = self.portal.count(&format!(
            "SELECT COALESCE(number, 0) FROM approvals WHERE id = {id}"
        ));
        let conn = rusqlite::Connection::open(
            self.portal.app.data_dir.join(otpgate::store::DATABASE_FILE),
        )
        .expect("database");
        let choices: Option<String> = conn
            .query_row(
                &format!("SELECT choices FROM approvals WHERE id = {id}"),
                [],
                |row| row.get(0),
            )
            .expect("choices");
        let choices = choices
            .unwrap_or_default()
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect();
        (id, number, choices, message)
    }

    /// The Telegram user of `CHAT` presses the button `choice` under the approval's message,
    /// and the bot acknowledged it.
    pub async fn press(&self, approval: i64, message: i64, choice: &str) {
        let query =
            self.telegram
                .user_presses(CHAT, CHAT, message, &format!("ap:{approval}:{choice}"));
        assert!(
            self.telegram.wait_for_answer(&query, WAIT).await.is_some(),
            "the press was never answered"
        );
    }
}

fn portal_logins(portal: &Portal) -> i64 {
    portal.count("SELECT COUNT(*) FROM audit_log WHERE action = 'portal.login' AND result = 'ok'")
}

#[tokio::test]
async fn a_user_approves_her_login_in_telegram_with_the_number_shown_and_is_let_in_once() {
    let s = approving(json!({"allowed": true})).await;
    let browser = past_the_password(&s.portal, "jon").await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(page.contains("Approve in Telegram"), "{page}");
    let (approval, number, choices, message) = s.ask(&browser).await;
    assert!((10..=99).contains(&number), "a two-digit number: {number}");
    assert!(choices.contains(&number), "{choices:?}");

    let page = browser.page("/portal/vpn/login/approval").await;
    assert!(
        page.contains(&format!(
            "Open Telegram and press <strong>{number}</strong>"
        )),
        "{page}"
    );
    assert!(page.contains("Time left: "), "{page}");
    let csrf = hidden_value(&page, "csrf");
    // Pending: Continue shows the same page again.
    let pending = browser
        .post("/portal/vpn/login/approval", &[("csrf", &csrf)])
        .await;
    assert_eq!(pending.status(), 200);
    assert!(pending.text().await.expect("body").contains("Continue"));

    s.press(approval, message, &format!("{number:02}")).await;
    let done = browser
        .post("/portal/vpn/login/approval", &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&done), "/portal/vpn");
    assert!(browser.page("/portal/vpn").await.contains("Log out"));
    assert_eq!(portal_logins(&s.portal), 1);

    // A second Continue finds the login ended: no second session.
    let again = browser
        .post("/portal/vpn/login/approval", &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status(), 303);
    assert_eq!(portal_logins(&s.portal), 1);
    assert_eq!(
        s.portal
            .count("SELECT COUNT(*) FROM sessions WHERE kind = 'portal'"),
        1
    );
    assert_eq!(
        s.portal
            .count("SELECT COUNT(*) FROM approvals WHERE used_at IS NOT NULL"),
        1,
        "the approval was consumed"
    );
    // Another browser past the same password cannot use that approval either.
    let other = past_the_password(&s.portal, "jon").await;
    let csrf = hidden_value(&other.page("/portal/vpn/login/verify").await, "csrf");
    let refused = other
        .post("/portal/vpn/login/approval", &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&refused), "/portal/vpn");
    assert!(!other.page("/portal/vpn").await.contains("Log out"));
    assert_eq!(portal_logins(&s.portal), 1);
}

#[tokio::test]
async fn a_wrong_number_or_deny_in_telegram_sends_the_user_back_to_the_login_with_the_reason() {
    let s = approving(json!({"allowed": true})).await;
    for (choice, reason) in [
        ("wrong", "was not the one the login page showed"),
        ("no", "The login was denied in Telegram."),
    ] {
        let browser = past_the_password(&s.portal, "jon").await;
        let (approval, number, choices, message) = s.ask(&browser).await;
        let pressed = if choice == "wrong" {
            let wrong = choices
                .iter()
                .find(|n| **n != number)
                .expect("another number");
            format!("{wrong:02}")
        } else {
            choice.to_string()
        };
        s.press(approval, message, &pressed).await;
        let refused = browser
            .submit(
                "/portal/vpn/login/approval",
                "/portal/vpn/login/approval",
                &[],
            )
            .await;
        assert_eq!(location(&refused), "/portal/vpn");
        let page = browser.page("/portal/vpn").await;
        assert!(page.contains(reason), "{page}");
        // A refusal, shown as one: an alert, not the green line of news.
        let alert = page
            .split(r#"<p class="error" role="alert">"#)
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or_default();
        assert!(alert.contains(reason), "{page}");
        assert!(!page.contains(r#"class="flash""#), "{page}");
        assert!(page.contains("Login name"), "back at the login: {page}");
        assert_eq!(portal_logins(&s.portal), 0);
    }
}

#[tokio::test]
async fn the_status_address_answers_pending_then_approved_and_opens_the_session() {
    let s = approving(json!({"allowed": true, "number_matching": false})).await;
    let browser = past_the_password(&s.portal, "jon").await;
    let (approval, _, choices, message) = s.ask(&browser).await;
    assert!(choices.is_empty(), "no number matching: {choices:?}");
    let page = browser.page("/portal/vpn/login/approval").await;
    assert!(
        page.contains("Open Telegram and press <strong>Approve</strong>"),
        "{page}"
    );
    assert!(
        page.contains("data-status-url=\"/portal/vpn/login/approval/status\""),
        "{page}"
    );

    let answer: Value = browser
        .get("/portal/vpn/login/approval/status")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(answer["state"], "pending", "{answer}");
    s.press(approval, message, "ok").await;
    let answer: Value = browser
        .get("/portal/vpn/login/approval/status")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(answer["state"], "approved", "{answer}");
    assert_eq!(answer["next"], "/portal/vpn");
    assert!(browser.page("/portal/vpn").await.contains("Log out"));
    assert_eq!(portal_logins(&s.portal), 1);
}

#[tokio::test]
async fn no_approve_button_without_a_bot_token_or_where_the_resource_allows_no_approvals() {
    // A resource without approvals: its BOT user sees no button, and asking anyway is refused.
    let s = approving(json!({"allowed": false})).await;
    let browser = past_the_password(&s.portal, "jon").await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(page.contains("One-time password"), "{page}");
    assert!(!page.contains("Approve in Telegram"), "{page}");
    let refused = browser
        .submit("/portal/vpn/login/verify", "/portal/vpn/login/approve", &[])
        .await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("cannot be approved in Telegram now")
    );
    assert_eq!(s.portal.count("SELECT COUNT(*) FROM approvals"), 0);

    // A resource with approvals: a user with only an authenticator app sees no button.
    let (status, body) = s
        .portal
        .api
        .call(
            Method::PATCH,
            "/resources/vpn",
            &s.portal.admin,
            json!({ "approvals": {"allowed": true} }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.portal
        .user(json!({"login": "kim", "password": PASSWORD}))
        .await;
    s.portal
        .token(
            json!({"kind": "TOTP", "user": "kim", "resource": "vpn", "name": "Phone",
                   "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let browser = past_the_password(&s.portal, "kim").await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(page.contains("One-time password"), "{page}");
    assert!(!page.contains("Approve in Telegram"), "{page}");
}

#[tokio::test]
async fn no_approval_is_asked_before_the_password() {
    let s = approving(json!({"allowed": true})).await;
    let browser = s.portal.browser();
    assert_eq!(browser.start_login("jon").await, "/portal/vpn/login/verify");
    let early = browser
        .submit("/portal/vpn/login/verify", "/portal/vpn/login/approve", &[])
        .await;
    assert_ne!(location(&early), "/portal/vpn/login/approval");
    assert_eq!(s.portal.count("SELECT COUNT(*) FROM approvals"), 0);
}

#[tokio::test]
async fn on_the_approval_page_the_user_may_type_a_code_instead_which_ends_the_approval() {
    let s = approving(json!({"allowed": true})).await;
    s.portal
        .token(
            json!({"kind": "TOTP", "user": "jon", "resource": "vpn", "name": "Phone",
                   "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let browser = past_the_password(&s.portal, "jon").await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(page.contains("Approve in Telegram"), "{page}");
    s.ask(&browser).await;
    let typed = browser
        .submit(
            "/portal/vpn/login/approval",
            "/portal/vpn/login/otp",
            &[("otp", &totp_now())],
        )
        .await;
    assert_eq!(location(&typed), "/portal/vpn");
    assert!(browser.page("/portal/vpn").await.contains("Log out"));
    assert_eq!(
        s.portal.count(
            "SELECT COUNT(*) FROM auth_transactions
             WHERE id IN (SELECT transaction_id FROM approvals)"
        ),
        0,
        "the approval's transaction ended with the code"
    );
}
