//! The portal pages a rollout changed, in a real browser: the page of a blocked login, and the
//! login's news of its code — not delivered, and expired with a button that sends a new one.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::app::test_config;
use crate::helpers::browser::Browser;
use crate::helpers::portal::{Portal, with_mail, with_sms};
use crate::helpers::smtp_sink::code_in;

const PASSWORD: &str = "a long enough password";

async fn log_in_as(browser: &Browser, portal: &Portal, login: &str, password: &str) {
    browser.goto(&portal.app.url("/portal/vpn")).await;
    browser.fill("Login name", login).await;
    browser.click("Next").await;
    browser.wait_for_path("/portal/vpn/login/verify").await;
    browser.fill("Password", password).await;
    browser.click("Log in").await;
}

/// Reloads the login's page once the server has recorded `sent` emails sent. The listener has
/// a mail a moment before the server records it, and a page loaded in between rightly says the
/// code is still on its way.
async fn reload_once_sent(browser: &Browser, portal: &Portal, sent: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while portal.count("SELECT COUNT(*) FROM outbox WHERE status = 'sent'") < sent {
        assert!(
            Instant::now() < deadline,
            "the email was never recorded sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .goto(&portal.app.url("/portal/vpn/login/verify"))
        .await;
}

#[tokio::test]
async fn a_blocked_login_and_an_undeliverable_or_expired_code_are_told_in_the_portal_frame() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(temp.path());
    config.portal.failures_per_login = 2;
    let portal = Portal::start_with(config, &["enroll_token"], &["MAIL"]).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let sink = with_mail(&portal).await;
    let _gateway = with_sms(&portal).await;
    for (login, kind, destination) in [
        ("kim", "SMS", "+41791112400"),
        ("lou", "MAIL", "lou@example.com"),
        ("max", "MAIL", "max@example.com"),
    ] {
        portal
            .user(json!({"login": login, "password": PASSWORD}))
            .await;
        portal
            .token(
                json!({"kind": kind, "user": login, "resource": "vpn", "name": "Codes",
                          "destination": destination}),
            )
            .await;
    }

    // Two wrong passwords for max block his login name here, in the portal's own frame.
    for _ in 0..2 {
        log_in_as(&browser, &portal, "max", "wrong").await;
        browser
            .wait_for_text("The login name, password or code is not right.")
            .await;
    }
    browser.goto(&portal.app.url("/portal/vpn")).await;
    browser.fill("Login name", "max").await;
    browser.click("Next").await;
    browser.wait_for_text("Too many failed attempts").await;
    let text = browser.text().await;
    assert!(text.contains("for this login name"), "{text}");
    assert!(text.contains("vpn"), "{text}");
    assert!(!text.contains("Back to otpgate"), "{text}");
    browser.screenshot("portal-rollout-blocked").await;

    // The gateway refuses kim's number: the page says so instead of "we have sent you".
    log_in_as(&browser, &portal, "kim", PASSWORD).await;
    browser.wait_for_path("/portal/vpn/login/verify").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while portal.count("SELECT COUNT(*) FROM outbox WHERE status = 'failed'") == 0 {
        assert!(Instant::now() < deadline, "the text message never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .goto(&portal.app.url("/portal/vpn/login/verify"))
        .await;
    browser
        .wait_for_text("Your one-time password could not be delivered by text message.")
        .await;
    assert!(!browser.text().await.contains("We have sent you"));
    browser
        .screenshot("portal-rollout-code-not-delivered")
        .await;

    // lou's code arrives but is typed too late.
    log_in_as(&browser, &portal, "lou", PASSWORD).await;
    browser.wait_for_path("/portal/vpn/login/verify").await;
    let mail = sink.wait_for(1, Duration::from_secs(20)).await;
    let code = code_in(&mail[0].data).expect("a code");
    reload_once_sent(&browser, &portal, 1).await;
    browser
        .wait_for_text("We have sent you a one-time password by email.")
        .await;
    portal.execute("UPDATE challenges SET expires_at = expires_at - 3600");
    portal.execute("UPDATE portal_logins SET sent_at = sent_at - 3600");
    browser.fill("One-time password", &code).await;
    browser.click("Log in").await;
    browser
        .wait_for_text("This code has expired — send a new one.")
        .await;
    assert!(!browser.text().await.contains("We have sent you"));
    browser.screenshot("portal-rollout-code-expired").await;
    browser
        .click("Send a code by MAIL (l***@example.com)")
        .await;
    let mail = sink.wait_for(2, Duration::from_secs(20)).await;
    let fresh = code_in(&mail[1].data).expect("a new code");
    reload_once_sent(&browser, &portal, 2).await;
    browser
        .wait_for_text("We have sent you a one-time password by email.")
        .await;
    browser.fill("One-time password", &fresh).await;
    browser.click("Log in").await;
    browser.wait_for_path("/portal/vpn").await;
    browser.close().await;
}
