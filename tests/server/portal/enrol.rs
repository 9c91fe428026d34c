//! Assign New in the portal (MAIL, TOTP, BOT end to end), the token actions, and the refusal of
//! every action the resource does not allow.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::page::{hidden_value, location, secret_on_page};
use crate::helpers::portal::{Browser, Portal, SECRET_HEX, logged_in, with_mail, with_sms};
use crate::helpers::smtp_sink::code_in;
use crate::helpers::telegram_api::TelegramApi;

const WAIT: Duration = Duration::from_secs(20);

async fn add(browser: &Browser, kind: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let path = format!("/portal/vpn/tokens/new/{kind}");
    browser.submit(&path, &path, fields).await
}

/// Adds a token and follows the redirect to its activation page: the page's address and text.
async fn add_and_follow(
    browser: &Browser,
    kind: &str,
    fields: &[(&str, &str)],
) -> (String, String) {
    let added = add(browser, kind, fields).await;
    assert_eq!(added.status(), 303, "post, redirect, get");
    let page = location(&added);
    let text = browser.page(&page).await;
    (page, text)
}

#[tokio::test]
async fn a_user_enrols_a_mail_token_with_the_code_sent_to_the_new_address() {
    let portal = Portal::start(&["enroll_token"], &["MAIL", "BOT"]).await;
    let sink = with_mail(&portal).await;
    let browser = logged_in(&portal, "alice").await;
    let choices = browser.page("/portal/vpn/tokens/new").await;
    assert!(choices.contains("MAIL") && choices.contains("BOT"));
    assert!(!choices.contains("SMS") && !choices.contains("Authenticator app"));
    let form = browser.page("/portal/vpn/tokens/new/mail").await;
    assert!(
        form.contains("value=\"alice@example.com\""),
        "prefilled: {form}"
    );

    let saved = add(
        &browser,
        "mail",
        &[
            ("name", "Work mail"),
            ("destination", "alice.work@example.com"),
            ("digits", "6"),
        ],
    )
    .await;
    assert_eq!(saved.status(), 303);
    let activate = location(&saved);
    assert!(activate.ends_with("/activate"), "{activate}");
    let home = browser.page("/portal/vpn").await;
    assert!(home.contains("Pending activation"), "{home}");

    let mail = sink.wait_for(1, WAIT).await;
    assert_eq!(mail[0].to, vec!["alice.work@example.com".to_string()]);
    let code = code_in(&mail[0].data).expect("a code");
    let wrong = browser
        .submit(&activate, &activate, &[("code", "000000")])
        .await;
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.expect("body").contains("not right"));
    let right = browser
        .submit(&activate, &activate, &[("code", &code)])
        .await;
    assert_eq!(right.status(), 303);
    let home = browser.page("/portal/vpn").await;
    assert!(
        home.contains("Work mail") && home.contains("is active"),
        "{home}"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM tokens t JOIN token_resources r ON r.token_id = t.id
                       JOIN users u ON u.id = t.user_id
                       WHERE u.login = 'alice' AND t.kind = 'MAIL' AND t.state = 'active'"
        ),
        1,
        "the token is the user's and the resource's, and active"
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_activate' AND result = 'ok'"),
        1
    );
}

#[tokio::test]
async fn three_wrong_confirmation_codes_discard_the_pending_token() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let _sink = with_mail(&portal).await;
    let browser = logged_in(&portal, "bob").await;
    let saved = add(&browser, "mail", &[("name", "Mail"), ("destination", "")]).await;
    assert_eq!(saved.status(), 400, "an address is needed");
    let saved = add(
        &browser,
        "mail",
        &[("name", "Mail"), ("destination", "bob@example.com")],
    )
    .await;
    let activate = location(&saved);
    for _ in 0..2 {
        let wrong = browser
            .submit(&activate, &activate, &[("code", "111111")])
            .await;
        assert_eq!(wrong.status(), 400);
    }
    let last = browser
        .submit(&activate, &activate, &[("code", "111111")])
        .await;
    assert_eq!(last.status(), 303);
    assert_eq!(portal.count("SELECT COUNT(*) FROM tokens"), 0);
    assert!(
        browser
            .page("/portal/vpn")
            .await
            .contains("Too many wrong codes")
    );
}

#[tokio::test]
async fn a_user_enrols_an_authenticator_app_with_its_first_code() {
    let portal = Portal::start(&["enroll_token"], &["TOTP"]).await;
    let browser = logged_in(&portal, "carol").await;
    let (_, page) = add_and_follow(&browser, "totp", &[("name", "My phone")]).await;
    assert!(page.contains("data:image/svg+xml;base64,"), "a QR code");
    let secret = secret_on_page(&page);
    let action = page
        .split("action=\"")
        .map(|piece| piece.split('"').next().unwrap_or_default())
        .find(|a| a.ends_with("/activate"))
        .expect("the activation form")
        .to_string();
    let code = crate::helpers::otp::totp_now(&secret, 0);
    let csrf = hidden_value(&page, "csrf");
    let done = browser
        .post(&action, &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(done.status(), 303);
    let home = browser.page("/portal/vpn").await;
    assert!(
        home.contains("My phone") && home.contains("Active"),
        "{home}"
    );
}

#[tokio::test]
async fn a_bot_token_enrolled_in_the_portal_turns_active_when_the_bot_gets_its_code() {
    let telegram = TelegramApi::start().await;
    let portal = Portal::start(&["enroll_token"], &["BOT"]).await;
    let (status, body) = portal
        .api
        .call(
            Method::PUT,
            "/settings/bot",
            &portal.admin,
            json!({"token": "123456:TEST-bot_token", "api_url": telegram.url, "poll_timeout_seconds": 1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = portal
            .api
            .call(Method::GET, "/settings/bot", &portal.admin, json!(null))
            .await;
        if body["status"]["state"] == "running" && body["status"]["username"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the bot never ran: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let browser = logged_in(&portal, "dave").await;
    let (_, page) = add_and_follow(&browser, "bot", &[("name", "Telegram"), ("digits", "6")]).await;
    assert!(page.contains("data:image/svg+xml;base64,"), "a QR code");
    assert!(page.contains("https://t.me/"), "the link: {page}");
    assert!(page.contains("/assets/portal.js"));
    let code = page
        .split("/start ")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the activation code")
        .to_string();
    let status_url = page
        .split("data-status-url=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the status address")
        .to_string();
    let pending: serde_json::Value = browser.get(&status_url).await.json().await.expect("json");
    assert_eq!(pending["state"], "pending");

    telegram.user_writes(4242, 4242, &format!("/start {code}"));
    let deadline = Instant::now() + WAIT;
    loop {
        let answer: serde_json::Value = browser.get(&status_url).await.json().await.expect("json");
        if answer["state"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "never active: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let home = browser.page("/portal/vpn").await;
    assert!(
        home.contains("Telegram") && home.contains("Active"),
        "{home}"
    );
    telegram.stop().await;
}

#[tokio::test]
async fn forged_requests_for_actions_that_are_off_get_403_and_change_nothing() {
    let portal = Portal::start(&["rename_token"], &["MAIL"]).await;
    let browser = logged_in(&portal, "erin").await;
    let home = browser.page("/portal/vpn").await;
    assert!(!home.contains("Assign New"), "enrolment is off");
    let csrf = hidden_value(&home, "csrf");
    assert_eq!(browser.get("/portal/vpn/tokens/new").await.status(), 403);
    let forged = browser
        .post(
            "/portal/vpn/tokens/new/mail",
            &[
                ("csrf", &csrf),
                ("name", "x"),
                ("destination", "erin@example.com"),
            ],
        )
        .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(portal.count("SELECT COUNT(*) FROM tokens"), 0);

    let token = portal
        .token(
            json!({"kind": "MAIL", "user": "erin", "resource": "vpn", "name": "Mine",
                       "destination": "erin@example.com"}),
        )
        .await;
    for action in ["disable", "unassign"] {
        let forged = browser
            .post(
                &format!("/portal/vpn/tokens/{token}/{action}"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(forged.status(), 403, "{action}");
    }
    let json = portal.token_json(token).await;
    assert_eq!(json["enabled"], true);
    assert_eq!(json["user"]["login"], "erin");
    assert!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE action = 'portal.forbidden'") >= 3,
        "refusals are audited"
    );
}

#[tokio::test]
async fn a_user_renames_disables_and_unassigns_tokens_but_keeps_the_last_one() {
    let portal = Portal::start(
        &["rename_token", "enable_disable_token", "unassign_token"],
        &[],
    )
    .await;
    portal
        .user(json!({"login": "frank", "password": "a long enough password"}))
        .await;
    let first = portal
        .token(
            json!({"kind": "TOTP", "user": "frank", "resource": "vpn", "name": "Phone",
                       "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let second = portal
        .token(
            json!({"kind": "MAIL", "user": "frank", "resource": "vpn", "name": "Mail",
                       "destination": "frank@example.com"}),
        )
        .await;
    let browser = portal.browser();
    browser
        .log_in_with_password("frank", "a long enough password")
        .await;
    let verify = "/portal/vpn/login/verify";
    let done = browser
        .submit(
            verify,
            "/portal/vpn/login/otp",
            &[("otp", &crate::helpers::portal::totp_now())],
        )
        .await;
    assert_eq!(location(&done), "/portal/vpn");

    let renamed = browser
        .submit(
            "/portal/vpn",
            &format!("/portal/vpn/tokens/{second}/rename"),
            &[("name", "Home mail")],
        )
        .await;
    assert_eq!(renamed.status(), 303);
    assert_eq!(portal.token_json(second).await["name"], "Home mail");

    let unassigned = browser
        .submit(
            "/portal/vpn",
            &format!("/portal/vpn/tokens/{second}/unassign"),
            &[],
        )
        .await;
    assert_eq!(unassigned.status(), 303);
    assert!(portal.token_json(second).await["user"].is_null());

    let refused = browser
        .submit(
            "/portal/vpn",
            &format!("/portal/vpn/tokens/{first}/disable"),
            &[],
        )
        .await;
    assert_eq!(refused.status(), 303);
    assert!(
        browser
            .page("/portal/vpn")
            .await
            .contains("last active second factor")
    );
    assert_eq!(portal.token_json(first).await["enabled"], true);
    assert_eq!(
        browser
            .submit(
                "/portal/vpn",
                &format!("/portal/vpn/tokens/{second}/rename"),
                &[("name", "Not mine")],
            )
            .await
            .status(),
        404,
        "a token that is not the user's is not found"
    );
}

#[tokio::test]
async fn a_user_enrols_an_sms_token_with_the_code_sent_to_the_new_number() {
    let portal = Portal::start(&["enroll_token"], &["SMS"]).await;
    let gateway = with_sms(&portal).await;
    let browser = logged_in(&portal, "gina").await;
    let bad = add(
        &browser,
        "sms",
        &[("name", "Phone"), ("destination", "not a number")],
    )
    .await;
    assert_eq!(bad.status(), 400, "the number is checked");
    assert_eq!(portal.count("SELECT COUNT(*) FROM tokens"), 0);
    let saved = add(
        &browser,
        "sms",
        &[("name", "Phone"), ("destination", "+41 79 123 45 67")],
    )
    .await;
    assert_eq!(saved.status(), 303);
    let activate = location(&saved);
    let sent = gateway.wait_for(1, WAIT).await;
    let form = crate::helpers::sms_gateway::Captured::form(&sent[0].body);
    assert_eq!(form["to"], "+41791234567");
    let code = crate::helpers::sms_gateway::code_in(&form["text"]).expect("a code");
    let resend = browser
        .submit(&activate, &activate.replace("/activate", "/resend"), &[])
        .await;
    assert_eq!(resend.status(), 303);
    assert!(
        browser.page(&activate).await.contains("a moment ago"),
        "a new code waits for the cooldown"
    );
    let right = browser
        .submit(&activate, &activate, &[("code", &code)])
        .await;
    assert_eq!(right.status(), 303);
    assert!(browser.page("/portal/vpn").await.contains("is active"));
}

/// The authenticator-app key shown on a page, as typed into an app.
fn key_on(page: &str) -> String {
    page.split("<code class=\"secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the key on the page")
        .to_string()
}

#[tokio::test]
async fn reloading_or_starting_an_app_enrolment_again_keeps_one_pending_token_until_cancelled() {
    let portal = Portal::start(&["enroll_token"], &["TOTP"]).await;
    let browser = logged_in(&portal, "gina").await;
    let (activate, first) = add_and_follow(&browser, "totp", &[("name", "My phone")]).await;
    let key = key_on(&first);
    for _ in 0..2 {
        let again = browser.page(&activate).await;
        assert_eq!(key_on(&again), key, "a reload shows the same key");
    }
    let (resumed, page) = add_and_follow(&browser, "totp", &[("name", "My phone")]).await;
    assert_eq!(resumed, activate, "a second start resumes the first");
    assert!(page.contains("started adding this token already"), "{page}");
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM tokens WHERE state = 'pending'"),
        1
    );

    // A wrong first code keeps the QR code and the key on the page.
    let wrong = browser
        .submit(&activate, &activate, &[("code", "000000")])
        .await;
    assert_eq!(wrong.status(), 400);
    let page = wrong.text().await.expect("body");
    assert!(page.contains("not right"), "{page}");
    assert!(
        page.contains("data:image/svg+xml;base64,"),
        "the QR code stays"
    );
    assert_eq!(key_on(&page), key, "the key stays");

    let token = portal.count("SELECT id FROM tokens");
    let cancel = format!("/portal/vpn/tokens/{token}/cancel");
    let cancelled = browser.submit(&activate, &cancel, &[]).await;
    assert_eq!(cancelled.status(), 303);
    assert_eq!(portal.count("SELECT COUNT(*) FROM tokens"), 0);
    assert!(browser.page("/portal/vpn").await.contains("cancelled"));
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_discard'"),
        1
    );
}

#[tokio::test]
async fn reloading_a_bot_enrolment_shows_the_same_code_and_adds_no_token() {
    let portal = Portal::start(&["enroll_token"], &["BOT"]).await;
    let telegram = crate::helpers::portal::with_bot(&portal).await;
    let browser = logged_in(&portal, "hank").await;
    let (activate, first) =
        add_and_follow(&browser, "bot", &[("name", "Telegram"), ("digits", "6")]).await;
    let (code, _) = crate::helpers::portal::activation_on(&first);
    for _ in 0..2 {
        let again = browser.page(&activate).await;
        assert_eq!(crate::helpers::portal::activation_on(&again).0, code);
        assert!(again.contains("data:image/svg+xml;base64,"), "the QR code");
    }
    let (resumed, _) =
        add_and_follow(&browser, "bot", &[("name", "Telegram"), ("digits", "6")]).await;
    assert_eq!(resumed, activate);
    assert_eq!(portal.count("SELECT COUNT(*) FROM tokens"), 1);
    telegram.stop().await;
}

#[tokio::test]
async fn a_mail_token_started_again_replaces_the_pending_one_once_the_form_is_right() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let _sink = with_mail(&portal).await;
    let browser = logged_in(&portal, "kim").await;
    let first = add(
        &browser,
        "mail",
        &[("name", "Mail"), ("destination", "kim@example.com")],
    )
    .await;
    assert_eq!(first.status(), 303);
    let wrong = add(
        &browser,
        "mail",
        &[("name", ""), ("destination", "kim@example.com")],
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM tokens WHERE destination = 'kim@example.com'"),
        1,
        "a wrong form changes nothing"
    );
    let second = add(
        &browser,
        "mail",
        &[("name", "Mail"), ("destination", "kim.desk@example.com")],
    )
    .await;
    assert_eq!(second.status(), 303);
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM tokens WHERE state = 'pending'"),
        1
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM tokens WHERE destination = 'kim.desk@example.com'"),
        1
    );
}
