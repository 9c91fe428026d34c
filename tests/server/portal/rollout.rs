//! The portal as a rollout meets it: an office behind one address, a reverse proxy in front,
//! codes that could not be delivered or came too late, and notices of changes to an account.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::app::test_config;
use crate::helpers::page::{hidden_value, location};
use crate::helpers::portal::{Browser, Portal, logged_in, with_mail, with_sms};
use crate::helpers::smtp_sink::code_in;

const PASSWORD: &str = "a long enough password";
const WAIT: Duration = Duration::from_secs(20);

/// A server whose portals block a login name at an address after `per_login` failures and an
/// address after `per_address`, with `trusted_proxies`; and its data directory, to keep.
async fn portal_with_limits(
    per_login: u32,
    per_address: u32,
    trusted: &[&str],
) -> (Portal, tempfile::TempDir) {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(temp.path());
    config.portal.failures_per_login = per_login;
    config.portal.failures_per_address = per_address;
    config.server.trusted_proxies = trusted.iter().map(|t| t.to_string()).collect();
    let portal = Portal::start_with(config, &["enroll_token"], &["MAIL"]).await;
    (portal, temp)
}

/// A browser whose every request carries `X-Forwarded-For: forwarded_for`.
fn browser_forwarding(portal: &Portal, forwarded_for: &str) -> Browser {
    let pem = std::fs::read(portal.app.data_dir.join("tls/cert.pem")).expect("certificate");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        forwarded_for.parse().expect("a header value"),
    );
    Browser {
        client: reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .expect("client"),
        address: portal.app.address.clone(),
    }
}

fn audit_ips(portal: &Portal, action: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(portal.app.data_dir.join(otpgate::store::DATABASE_FILE))
        .expect("open");
    let mut statement = conn
        .prepare("SELECT COALESCE(client_ip, '') FROM audit_log WHERE action = ?1 ORDER BY id")
        .expect("prepare");
    statement
        .query_map([action], |row| row.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows")
}

async fn users(portal: &Portal, logins: &[&str]) {
    for login in logins {
        portal
            .user(json!({"login": login, "password": PASSWORD}))
            .await;
    }
}

#[tokio::test]
async fn an_office_behind_one_address_logs_in_again_and_again_without_being_blocked() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    users(&portal, &["alice", "bob"]).await;
    // Forty steps that succeed, from one address: more than the thirty every step used to
    // count against.
    for round in 0..20 {
        let login = if round % 2 == 0 { "alice" } else { "bob" };
        let browser = portal.browser();
        let response = browser.log_in_with_password(login, PASSWORD).await;
        assert_eq!(location(&response), "/portal/vpn", "login {round}");
    }
    assert!(audit_ips(&portal, "portal.blocked").is_empty());
}

#[tokio::test]
async fn failures_block_a_login_name_then_the_address_with_a_portal_page_audited_and_counted() {
    let (portal, _dir) = portal_with_limits(3, 5, &[]).await;
    users(&portal, &["alice", "bob", "carol"]).await;
    let browser = portal.browser();
    for _ in 0..3 {
        assert_eq!(
            browser.log_in_with_password_raw("alice", "wrong").await,
            401
        );
    }
    // alice is blocked at this address, before anything is checked.
    let blocked = browser
        .submit("/portal/vpn", "/portal/vpn/login", &[("login", "alice")])
        .await;
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
    let page = blocked.text().await.expect("body");
    assert!(page.contains("Too many failed attempts"), "{page}");
    assert!(page.contains("for this login name"), "{page}");
    assert!(
        page.contains("portal-resource\">vpn<"),
        "the portal's frame: {page}"
    );
    assert!(
        !page.contains("/admin"),
        "no way to the admin panel: {page}"
    );
    // Others at the same address, and alice elsewhere, go on.
    let office = portal.browser();
    assert_eq!(
        location(&office.log_in_with_password("bob", PASSWORD).await),
        "/portal/vpn"
    );
    let elsewhere = portal.browser_from("127.0.0.2".parse().expect("address"));
    assert_eq!(
        location(&elsewhere.log_in_with_password("alice", PASSWORD).await),
        "/portal/vpn"
    );
    // Two more failures from the address, for carol, block the address.
    for _ in 0..2 {
        assert_eq!(
            browser.log_in_with_password_raw("carol", "wrong").await,
            401
        );
    }
    assert_eq!(
        portal
            .browser()
            .log_in_with_password_raw("bob", PASSWORD)
            .await,
        429
    );
    let conn = rusqlite::Connection::open(portal.app.data_dir.join(otpgate::store::DATABASE_FILE))
        .expect("open");
    let lines: Vec<(String, String)> = conn
        .prepare("SELECT result, reason FROM audit_log WHERE action = 'portal.blocked' ORDER BY id")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        lines,
        vec![
            ("blocked".to_string(), "failures_per_login".to_string()),
            ("refused".to_string(), "failures_per_login".to_string()),
            ("blocked".to_string(), "failures_per_address".to_string()),
            ("refused".to_string(), "failures_per_address".to_string()),
        ]
    );
    let metrics = portal
        .app
        .client
        .get(portal.app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("otpgate_portal_blocks_total{limit=\"failures_per_login\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("otpgate_portal_steps_refused_total{limit=\"failures_per_address\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_forged_x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (portal, _dir) = portal_with_limits(2, 100, &[]).await;
    users(&portal, &["alice"]).await;
    // Each failure claims another address; all count against the peer's.
    for forged in ["203.0.113.1", "203.0.113.2"] {
        let browser = browser_forwarding(&portal, forged);
        assert_eq!(
            browser.log_in_with_password_raw("alice", "wrong").await,
            401
        );
    }
    let browser = browser_forwarding(&portal, "203.0.113.3");
    assert_eq!(
        browser.log_in_with_password_raw("alice", PASSWORD).await,
        429
    );
    let ips = audit_ips(&portal, "portal.login");
    assert!(!ips.is_empty());
    assert!(ips.iter().all(|ip| ip == "127.0.0.1"), "{ips:?}");
    // The API's audit lines too.
    let (status, _) = portal
        .api
        .call(Method::GET, "/users/alice", &portal.admin, json!(null))
        .await;
    assert_eq!(status, 200);
    let response = portal
        .app
        .api(Method::POST, "/auth/authenticate", &portal.admin)
        .header("x-forwarded-for", "203.0.113.4")
        .json(&json!({"resource": "vpn", "user": "alice", "password": "wrong"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let ips = audit_ips(&portal, "auth.authenticate");
    assert_eq!(ips.last().map(String::as_str), Some("127.0.0.1"), "{ips:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_and_audited() {
    let (portal, _dir) = portal_with_limits(2, 100, &["127.0.0.0/8"]).await;
    users(&portal, &["alice"]).await;
    // The client forged the first entry; the proxy appended the real address.
    let real = browser_forwarding(&portal, "198.51.100.7, 203.0.113.5");
    for _ in 0..2 {
        assert_eq!(real.log_in_with_password_raw("alice", "wrong").await, 401);
    }
    assert_eq!(real.log_in_with_password_raw("alice", PASSWORD).await, 429);
    // Another client behind the same proxy is not held back by that.
    let colleague = browser_forwarding(&portal, "203.0.113.6");
    assert_eq!(
        location(&colleague.log_in_with_password("alice", PASSWORD).await),
        "/portal/vpn"
    );
    let ips = audit_ips(&portal, "portal.login");
    assert!(ips.contains(&"203.0.113.5".to_string()), "{ips:?}");
    assert!(ips.contains(&"203.0.113.6".to_string()), "{ips:?}");
    assert!(!ips.contains(&"198.51.100.7".to_string()), "{ips:?}");
    // The panel and the API see the forwarded client as well.
    let response = portal
        .app
        .api(Method::POST, "/auth/authenticate", &portal.admin)
        .header("x-forwarded-for", "203.0.113.8")
        .json(&json!({"resource": "vpn", "user": "alice", "password": "wrong"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let ips = audit_ips(&portal, "auth.authenticate");
    assert_eq!(
        ips.last().map(String::as_str),
        Some("203.0.113.8"),
        "{ips:?}"
    );
    let panel = browser_forwarding(&portal, "203.0.113.9");
    let login_page = panel.page("/admin/login").await;
    let csrf = hidden_value(&login_page, "csrf");
    panel
        .post(
            "/admin/login",
            &[
                ("csrf", csrf.as_str()),
                ("login", "nobody"),
                ("password", "wrong"),
                ("otp", "000000"),
            ],
        )
        .await;
    let panel_ips = audit_ips(&portal, "admin.login");
    assert_eq!(
        panel_ips.last().map(String::as_str),
        Some("203.0.113.9"),
        "{panel_ips:?}"
    );
}

/// Waits until the outbox's only message for the user's tokens satisfies `sql` (a count).
async fn wait_for_outbox(portal: &Portal, sql: &str) {
    let deadline = Instant::now() + WAIT;
    while portal.count(sql) == 0 {
        assert!(Instant::now() < deadline, "never: {sql}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_login_page_says_whether_the_code_was_delivered_is_still_on_its_way_or_failed() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let gateway = with_sms(&portal).await;
    portal
        .user(json!({"login": "fay", "password": PASSWORD}))
        .await;
    // The gateway refuses this number for good (400).
    portal
        .token(
            json!({"kind": "SMS", "user": "fay", "resource": "vpn", "name": "Phone",
                      "destination": "+41791112400"}),
        )
        .await;
    let browser = portal.browser();
    let response = browser.log_in_with_password("fay", PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    wait_for_outbox(
        &portal,
        "SELECT COUNT(*) FROM outbox WHERE status = 'failed'",
    )
    .await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(
        page.contains("Your one-time password could not be delivered by text message."),
        "{page}"
    );
    assert!(!page.contains("We have sent you"), "{page}");
    assert!(page.contains("Send a new one:"), "{page}");

    // A gateway that is down for now: the code waits in the outbox and is tried again.
    portal
        .user(json!({"login": "gus", "password": PASSWORD}))
        .await;
    portal
        .token(
            json!({"kind": "SMS", "user": "gus", "resource": "vpn", "name": "Phone",
                      "destination": "+41791113344"}),
        )
        .await;
    gateway.unavailable_for(1000);
    let browser = portal.browser();
    browser.log_in_with_password("gus", PASSWORD).await;
    wait_for_outbox(
        &portal,
        "SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND attempts > 0",
    )
    .await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(
        page.contains("could not be delivered by text message yet; otpgate keeps trying"),
        "{page}"
    );
    assert!(
        page.contains("One-time password"),
        "it may still come: {page}"
    );

    // Delivered.
    gateway.unavailable_for(0);
    wait_for_outbox(&portal, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(
        page.contains("We have sent you a one-time password by text message."),
        "{page}"
    );
}

#[tokio::test]
async fn an_expired_code_is_told_apart_offered_anew_and_audited_as_expired() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let sink = with_mail(&portal).await;
    portal
        .user(json!({"login": "hal", "password": PASSWORD}))
        .await;
    portal
        .token(
            json!({"kind": "MAIL", "user": "hal", "resource": "vpn", "name": "Mail",
                      "destination": "hal@example.com"}),
        )
        .await;
    let browser = portal.browser();
    browser.log_in_with_password("hal", PASSWORD).await;
    let mail = sink.wait_for(1, WAIT).await;
    let code = code_in(&mail[0].data).expect("a code");
    // Time passes beyond the code's validity.
    portal.execute("UPDATE challenges SET expires_at = expires_at - 3600");
    portal.execute("UPDATE auth_transactions SET expires_at = expires_at - 3600");
    portal.execute("UPDATE portal_logins SET sent_at = sent_at - 3600");
    let answer = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &code)],
        )
        .await;
    assert_eq!(answer.status(), 401);
    let page = answer.text().await.expect("body");
    assert!(
        page.contains("This code has expired — send a new one."),
        "{page}"
    );
    assert!(!page.contains("We have sent you"), "{page}");
    assert!(!page.contains("is not right"), "{page}");
    assert!(page.contains("Send a code by MAIL"), "{page}");
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'auth.authenticate'
               AND reason = 'expired_otp'"
        ),
        1
    );
    // A code that was never sent is still a wrong one.
    let wrong = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE reason = 'bad_otp'"),
        1
    );
    // The resend button sends a new code, which works.
    let resend_page = browser.page("/portal/vpn/login/verify").await;
    let token = hidden_value(&resend_page, "token");
    let sent = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/send",
            &[("token", &token)],
        )
        .await;
    assert_eq!(location(&sent), "/portal/vpn/login/verify");
    let mail = sink.wait_for(2, WAIT).await;
    let fresh = code_in(&mail[1].data).expect("a new code");
    let right = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &fresh)],
        )
        .await;
    assert_eq!(location(&right), "/portal/vpn");
}

#[tokio::test]
async fn the_api_audits_an_expired_code_as_expired_too() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let sink = with_mail(&portal).await;
    portal
        .user(json!({"login": "ian", "password": PASSWORD}))
        .await;
    portal
        .token(
            json!({"kind": "MAIL", "user": "ian", "resource": "vpn", "name": "Mail",
                      "destination": "ian@example.com"}),
        )
        .await;
    let (status, prepared) = portal
        .api
        .call(
            Method::POST,
            "/auth/prepare",
            &portal.admin,
            json!({"resource": "vpn", "user": "ian"}),
        )
        .await;
    assert_eq!(status, 200, "{prepared}");
    assert_eq!(
        prepared["challenges"][0]["delivery"], "queued",
        "{prepared}"
    );
    let mail = sink.wait_for(1, WAIT).await;
    let code = code_in(&mail[0].data).expect("a code");
    portal.execute("UPDATE challenges SET expires_at = expires_at - 3600");
    let (status, body) = portal
        .api
        .call(
            Method::POST,
            "/auth/authenticate",
            &portal.admin,
            json!({"resource": "vpn", "user": "ian", "otp": code}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], "rejected", "the caller learns no more");
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE reason = 'expired_otp'"),
        1
    );
}

#[tokio::test]
async fn changes_to_an_account_send_a_notice_to_the_address_it_had_before() {
    let portal = Portal::start(
        &["change_password", "change_email", "unassign_token"],
        &["MAIL"],
    )
    .await;
    let sink = with_mail(&portal).await;
    let browser = logged_in(&portal, "joy").await;
    let changed = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/password",
            &[
                ("current", PASSWORD),
                ("password", "another long password"),
                ("again", "another long password"),
            ],
        )
        .await;
    assert_eq!(changed.status(), 303);
    let mail = sink.wait_for(1, WAIT).await;
    assert_eq!(mail[0].to, vec!["joy@example.com".to_string()]);
    assert!(
        mail[0]
            .data
            .contains("The password of your account was set or changed"),
        "{}",
        mail[0].data
    );
    assert!(!mail[0].data.contains("another long password"));

    browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/email",
            &[("value", "joy.new@example.com")],
        )
        .await;
    let mail = sink.wait_for(2, WAIT).await;
    let code = code_in(&mail[1].data).expect("a code");
    let right = browser
        .submit(
            "/portal/vpn/account/verify",
            "/portal/vpn/account/verify",
            &[("code", &code)],
        )
        .await;
    assert_eq!(right.status(), 303);
    let mail = sink.wait_for(3, WAIT).await;
    assert_eq!(
        mail[2].to,
        vec!["joy@example.com".to_string()],
        "to the address before the change"
    );
    assert!(
        mail[2]
            .data
            .contains("The email address of your account was changed")
    );

    let token = portal
        .token(
            json!({"kind": "TOTP", "user": "joy", "resource": "vpn", "name": "Phone app",
                      "secret": crate::helpers::portal::SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    // A second one, so that the first is not the last.
    portal
        .token(
            json!({"kind": "TOTP", "user": "joy", "resource": "vpn", "name": "Spare",
                      "secret": crate::helpers::portal::SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let removed = browser
        .submit(
            "/portal/vpn",
            &format!("/portal/vpn/tokens/{token}/unassign"),
            &[],
        )
        .await;
    assert_eq!(removed.status(), 303, "{:?}", removed.text().await);
    // The two tokens made for her through the API told her first.
    let mail = sink.wait_for(6, WAIT).await;
    for added in &mail[3..5] {
        assert_eq!(added.to, vec!["joy.new@example.com".to_string()]);
        assert!(
            added.data.contains("was added to your account"),
            "{}",
            added.data
        );
    }
    assert_eq!(mail[5].to, vec!["joy.new@example.com".to_string()]);
    assert!(
        mail[5]
            .data
            .contains("The TOTP token \"Phone app\" was removed from your account"),
        "{}",
        mail[5].data
    );
}
