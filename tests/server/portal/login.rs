//! Logging in to the self-service portal: the address, password, emailed code, the one-time
//! password step through the authentication decision, sessions and logout.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::delivery::mail_settings;
use crate::helpers::page::{hidden_value, location};
use crate::helpers::portal::{Portal, SECRET_HEX, totp_now};
use crate::helpers::smtp_sink::{Mode, SmtpSink, code_in};

const FAILED: &str = "The login name, password or code is not right.";

#[tokio::test]
async fn unknown_and_disabled_portals_get_the_same_not_available_page() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let browser = portal.browser();
    let unknown = browser.get("/portal/nothing-here").await;
    assert_eq!(unknown.status(), 404);
    let unknown_page = unknown.text().await.expect("body");
    assert!(unknown_page.contains("not available"), "{unknown_page}");

    let open = browser.page("/portal/vpn").await;
    assert!(
        open.contains("vpn") && open.contains("Login name"),
        "{open}"
    );

    portal.configure(false, &["enroll_token"], &["MAIL"]).await;
    let disabled = browser.get("/portal/vpn").await;
    assert_eq!(disabled.status(), 404);
    assert_eq!(disabled.text().await.expect("body"), unknown_page);
}

#[tokio::test]
async fn a_user_logs_in_with_a_password_sees_the_second_factor_section_and_logs_out() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    portal
        .user(json!({"login": "alice", "password": "alice's long password"}))
        .await;
    let browser = portal.browser();
    let response = browser
        .log_in_with_password("alice", "alice's long password")
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/portal/vpn");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .find(|c| c.starts_with("otpgate_portal="))
        .expect("a portal session cookie");
    assert!(cookie.contains("Path=/portal/vpn"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));

    let home = browser.page("/portal/vpn").await;
    assert!(home.contains("2nd Factor"), "{home}");
    assert!(home.contains("Assign New"));
    assert!(home.contains("alice"));

    // The portal session is no admin session.
    assert_eq!(
        location(&browser.get("/admin").await),
        "/admin/login",
        "a portal login opens no admin page"
    );

    let csrf = hidden_value(&home, "csrf");
    assert_eq!(
        browser
            .post("/portal/vpn/logout", &[("csrf", "forged")])
            .await
            .status(),
        403,
        "logout needs the CSRF token"
    );
    let out = browser.post("/portal/vpn/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    let after = browser.page("/portal/vpn").await;
    assert!(after.contains("Login name"), "logged out: {after}");
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE action = 'portal.login' AND result = 'ok' AND actor = 'user:alice'"),
        1
    );
}

#[tokio::test]
async fn unknown_users_wrong_passwords_and_other_resources_users_get_the_same_message() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    portal
        .user(json!({"login": "alice", "password": "alice's long password"}))
        .await;
    let (status, _) = portal
        .api
        .call(
            Method::POST,
            "/users",
            &portal.admin,
            json!({"login": "bob", "password": "bob's long password"}),
        )
        .await;
    assert_eq!(status, 201, "bob exists but is not assigned to vpn");

    for (login, password) in [
        ("alice", "not her password"),
        ("nobody", "whatever it is"),
        ("bob", "bob's long password"),
    ] {
        let browser = portal.browser();
        let response = browser.log_in_with_password(login, password).await;
        assert_eq!(response.status(), 401, "{login}");
        let page = response.text().await.expect("body");
        assert!(page.contains(FAILED), "{login}: {page}");
        assert!(!page.contains("2nd Factor"));
    }
}

#[tokio::test]
async fn the_login_name_is_found_in_any_case_and_normal_form() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    portal
        .user(json!({"login": "\u{c5}sa", "password": "\u{c5}sa's long password"}))
        .await;
    for typed in ["\u{e5}sa", "A\u{30a}SA", " \u{c5}SA "] {
        let browser = portal.browser();
        let response = browser
            .log_in_with_password(typed, "\u{c5}sa's long password")
            .await;
        assert_eq!(response.status(), 303, "{typed:?}");
        assert_eq!(location(&response), "/portal/vpn", "{typed:?}");
        let home = browser.page("/portal/vpn").await;
        assert!(home.contains("2nd Factor"), "{typed:?}: {home}");
        assert!(home.contains("\u{c5}sa"), "the user's own spelling: {home}");
    }
    let browser = portal.browser();
    let response = browser
        .submit(
            "/portal/vpn",
            "/portal/vpn/login",
            &[("login", "\u{c5}\u{200b}sa")],
        )
        .await;
    assert_eq!(response.status(), 401, "an invisible character is no login");
    let page = response.text().await.expect("body");
    assert!(page.contains(FAILED), "{page}");
}

#[tokio::test]
async fn a_user_without_a_password_logs_in_with_a_code_from_their_email() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let (status, body) = portal
        .api
        .call(
            Method::PUT,
            "/settings/mail",
            &portal.admin,
            mail_settings(sink.port, "none", None),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    portal
        .user(json!({"login": "carol", "email": "carol@example.com"}))
        .await;
    let browser = portal.browser();
    assert_eq!(
        browser.start_login("carol").await,
        "/portal/vpn/login/verify"
    );
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(page.contains("verification code"), "{page}");
    let mail = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mail.len(), 1, "one email arrives");
    assert_eq!(mail[0].to, vec!["carol@example.com".to_string()]);
    let code = code_in(&mail[0].data).expect("a code in the email");

    let wrong = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/code",
            &[("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.expect("body").contains(FAILED));

    let right = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/code",
            &[("code", &code)],
        )
        .await;
    assert_eq!(right.status(), 303);
    assert_eq!(location(&right), "/portal/vpn");
    assert!(browser.page("/portal/vpn").await.contains("2nd Factor"));
}

/// A page of the login with what differs by design taken out: the login name and the CSRF
/// token.
fn as_anyone(page: &str, login: &str) -> String {
    let csrf = hidden_value(page, "csrf");
    page.replace(&csrf, "CSRF").replace(login, "LOGIN")
}

#[tokio::test]
async fn the_step_after_the_login_name_looks_the_same_whoever_typed_it() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    portal
        .user(json!({"login": "alice", "password": "alice's long password"}))
        .await;
    // No password but an email address: the code is emailed, and the page does not say so.
    portal
        .user(json!({"login": "carol", "email": "carol@example.com"}))
        .await;
    portal.user(json!({"login": "dana"})).await;
    let people = ["alice", "carol", "dana", "nobody"];

    let mut next_steps = Vec::new();
    for login in people {
        let browser = portal.browser();
        assert_eq!(
            browser.start_login(login).await,
            "/portal/vpn/login/verify",
            "{login}"
        );
        let response = browser.get("/portal/vpn/login/verify").await;
        let status = response.status();
        let page = response.text().await.expect("body");
        next_steps.push((login, status, as_anyone(&page, login)));
    }
    for (login, status, page) in &next_steps[1..] {
        assert_eq!(*status, next_steps[0].1, "{login}");
        assert_eq!(page, &next_steps[0].2, "{login} sees another next step");
    }
    assert!(next_steps[0].2.contains("Password"), "{}", next_steps[0].2);

    // Wrong answers get the same answers too, down to the last try, which goes back to the
    // login name for everyone.
    let mut answers = Vec::new();
    for login in people {
        let browser = portal.browser();
        browser.start_login(login).await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let response = browser
                .submit(
                    "/portal/vpn/login/verify",
                    "/portal/vpn/login/password",
                    &[("password", "not the right one")],
                )
                .await;
            let status = response.status();
            let page = response.text().await.expect("body");
            seen.push((status, as_anyone(&page, login)));
        }
        answers.push((login, seen));
    }
    for (login, seen) in &answers[1..] {
        assert_eq!(seen, &answers[0].1, "{login} gets other answers");
    }
    let last = &answers[0].1[2].1;
    assert!(
        last.contains(FAILED) && last.contains("Login name"),
        "{last}"
    );
}

#[tokio::test]
async fn a_user_with_an_authenticator_app_must_type_its_code_and_wrong_codes_count() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    portal
        .user(json!({"login": "dave", "password": "dave's long password"}))
        .await;
    let token = portal
        .token(
            json!({"kind": "TOTP", "user": "dave", "resource": "vpn", "name": "Phone",
                       "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let browser = portal.browser();
    let response = browser
        .log_in_with_password("dave", "dave's long password")
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(page.contains("One-time password"), "{page}");
    assert!(
        !browser.page("/portal/vpn").await.contains("2nd Factor"),
        "no session before the code"
    );

    let wrong = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.expect("body").contains(FAILED));
    assert_eq!(
        portal.token_json(token).await["fail_count"],
        1,
        "the wrong code counts against the token as in authentication"
    );

    let right = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &totp_now())],
        )
        .await;
    assert_eq!(right.status(), 303);
    assert_eq!(location(&right), "/portal/vpn");
    let home = browser.page("/portal/vpn").await;
    assert!(home.contains("Phone") && home.contains("Active"), "{home}");
    assert_eq!(portal.token_json(token).await["fail_count"], 0);
}

#[tokio::test]
async fn a_user_with_a_mail_token_gets_a_code_sent_at_login() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let (status, body) = portal
        .api
        .call(
            Method::PUT,
            "/settings/mail",
            &portal.admin,
            mail_settings(sink.port, "none", None),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    portal
        .user(json!({"login": "erin", "password": "erin's long password"}))
        .await;
    portal
        .token(
            json!({"kind": "MAIL", "user": "erin", "resource": "vpn", "name": "Mail",
                       "destination": "erin@example.com"}),
        )
        .await;
    let browser = portal.browser();
    let response = browser
        .log_in_with_password("erin", "erin's long password")
        .await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let mail = sink.wait_for(1, Duration::from_secs(20)).await;
    let code = code_in(&mail[0].data).expect("a code");
    let right = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &code)],
        )
        .await;
    assert_eq!(location(&right), "/portal/vpn");
    assert!(browser.page("/portal/vpn").await.contains("2nd Factor"));
}

#[tokio::test]
async fn login_attempts_are_throttled() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    portal
        .user(json!({"login": "alice", "password": "alice's long password"}))
        .await;
    let browser = portal.browser();
    let mut refused = false;
    for _ in 0..30 {
        let response = browser.log_in_with_password_raw("alice", "wrong").await;
        if response == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused, "many wrong passwords are throttled");
}

const PASSWORD: &str = "a long enough password";

/// Waits until the login's page says `text` (a code is on its way until its channel took it).
async fn wait_for_page(browser: &crate::helpers::portal::Browser, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = browser.page("/portal/vpn/login/verify").await;
        if page.contains(text) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {text:?}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The password step done; the browser is on the one-time password page.
async fn past_the_password(portal: &Portal, login: &str) -> crate::helpers::portal::Browser {
    let browser = portal.browser();
    let response = browser.log_in_with_password(login, PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    browser
}

#[tokio::test]
async fn a_user_with_mail_and_sms_tokens_picks_sms_and_logs_in_with_the_texted_code() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let sink = crate::helpers::portal::with_mail(&portal).await;
    let gateway = crate::helpers::portal::with_sms(&portal).await;
    portal
        .user(json!({"login": "ivy", "password": PASSWORD}))
        .await;
    portal
        .token(
            json!({"kind": "MAIL", "user": "ivy", "resource": "vpn", "name": "Mail",
                      "destination": "ivy@example.com"}),
        )
        .await;
    let sms = portal
        .token(
            json!({"kind": "SMS", "user": "ivy", "resource": "vpn", "name": "Phone",
                      "destination": "+41791112233"}),
        )
        .await;
    let browser = past_the_password(&portal, "ivy").await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(
        page.contains("Where should we send your one-time password?"),
        "{page}"
    );
    assert!(
        page.contains("Send a code by MAIL (i***@example.com)"),
        "{page}"
    );
    assert!(page.contains("Send a code by SMS"), "{page}");
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM outbox"),
        0,
        "nothing is sent before the user picks"
    );

    let picked = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/send",
            &[("token", &sms.to_string())],
        )
        .await;
    assert_eq!(location(&picked), "/portal/vpn/login/verify");
    wait_for_page(
        &browser,
        "We have sent you a one-time password by text message.",
    )
    .await;
    let texts = gateway.wait_for(1, Duration::from_secs(20)).await;
    let form = crate::helpers::sms_gateway::Captured::form(&texts[0].body);
    assert_eq!(form["to"], "+41791112233");
    let code = crate::helpers::sms_gateway::code_in(&form["text"]).expect("a code");
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM outbox WHERE channel = 'mail'"),
        0,
        "only the SMS token got a code"
    );
    assert!(sink.messages().is_empty());

    let done = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &code)],
        )
        .await;
    assert_eq!(location(&done), "/portal/vpn");
    assert!(browser.page("/portal/vpn").await.contains("2nd Factor"));
}

#[tokio::test]
async fn a_user_with_a_bot_token_logs_in_with_the_code_the_bot_sends() {
    let portal = Portal::start(&["enroll_token"], &["BOT"]).await;
    let telegram = crate::helpers::portal::with_bot(&portal).await;
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
    telegram.user_writes(7070, 7070, &format!("/start {activation}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while portal.token_json(token).await["state"] != "active" {
        assert!(std::time::Instant::now() < deadline, "never activated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = telegram
        .wait_for_messages(7070, 1, Duration::from_secs(20))
        .await;
    assert_eq!(before.len(), 1, "the activation's confirmation");

    let browser = past_the_password(&portal, "jon").await;
    wait_for_page(
        &browser,
        "We have sent you a one-time password by Telegram.",
    )
    .await;
    let messages = telegram
        .wait_for_messages(7070, 2, Duration::from_secs(20))
        .await;
    assert_eq!(messages.len(), 2, "the code went to the bound chat");
    let code = crate::helpers::sms_gateway::code_in(&messages[1].text).expect("a code");
    let done = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &code)],
        )
        .await;
    assert_eq!(location(&done), "/portal/vpn");
    assert!(browser.page("/portal/vpn").await.contains("Telegram"));
    telegram.stop().await;
}

#[tokio::test]
async fn a_locked_token_is_named_locked_at_login_and_gets_no_code() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let _sink = crate::helpers::portal::with_mail(&portal).await;
    portal
        .user(json!({"login": "kim", "password": PASSWORD}))
        .await;
    let token = portal
        .token(
            json!({"kind": "MAIL", "user": "kim", "resource": "vpn", "name": "Mail",
                      "destination": "kim@example.com"}),
        )
        .await;
    portal.execute(&format!(
        "UPDATE tokens SET fail_count = 5, locked_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE id = {token}"
    ));
    let browser = past_the_password(&portal, "kim").await;
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(
        page.contains(
            "Your second factor “Mail” is locked after too many wrong codes, so you cannot log in now. Ask your administrator to unlock it."
        ),
        "{page}"
    );
    assert!(
        !page.contains("One-time password") && !page.contains("Send a code"),
        "{page}"
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM outbox"),
        0,
        "no code is sent"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.login' AND reason = 'token_locked'"
        ),
        1
    );
    assert!(!browser.page("/portal/vpn").await.contains("2nd Factor"));
}

#[tokio::test]
async fn wrong_codes_at_login_count_towards_the_token_until_it_locks() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let (status, body) = portal
        .api
        .call(
            Method::PATCH,
            "/resources/vpn",
            &portal.admin,
            json!({"fail_limit": 3}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    portal
        .user(json!({"login": "lea", "password": PASSWORD}))
        .await;
    let token = portal
        .token(
            json!({"kind": "TOTP", "user": "lea", "resource": "vpn", "name": "Phone",
                   "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let browser = past_the_password(&portal, "lea").await;
    let csrf = hidden_value(&browser.page("/portal/vpn/login/verify").await, "csrf");
    let wrong = if totp_now() == "000000" {
        "111111"
    } else {
        "000000"
    };
    for count in 1..=3 {
        let response = browser
            .submit(
                "/portal/vpn/login/verify",
                "/portal/vpn/login/otp",
                &[("otp", wrong)],
            )
            .await;
        assert_eq!(response.status(), 401);
        let page = response.text().await.expect("body");
        assert!(page.contains(FAILED), "{page}");
        let json = portal.token_json(token).await;
        assert_eq!(json["fail_count"], count, "{json}");
        assert_eq!(json["locked"], count == 3, "{json}");
        assert_eq!(
            page.contains("is locked after too many wrong codes"),
            count == 3,
            "the page says so once it is locked: {page}"
        );
    }
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(
        !page.contains("One-time password"),
        "no form for a locked token"
    );
    let refused = browser
        .post(
            "/portal/vpn/login/otp",
            &[("csrf", &csrf), ("otp", &totp_now())],
        )
        .await;
    assert_eq!(
        refused.status(),
        401,
        "a locked token denies even its right code"
    );
    assert_eq!(portal.token_json(token).await["locked"], true);
    assert!(!browser.page("/portal/vpn").await.contains("2nd Factor"));
}

#[tokio::test]
async fn failed_portal_logins_elsewhere_lock_the_user_out_there_but_not_at_her_usual_address() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = crate::helpers::app::test_config(dir.path());
    config.logins.lock_after = 3;
    let portal = Portal::start_with(config, &["enroll_token"], &["MAIL"]).await;
    let password = "alice's long password";
    portal
        .user(json!({"login": "alice", "password": password}))
        .await;
    // Alice logs in from her usual address once: that address now has a success on record.
    let usual = portal
        .browser()
        .log_in_with_password("alice", password)
        .await;
    assert_eq!(location(&usual), "/portal/vpn", "alice logs in at her desk");

    let elsewhere = [127, 0, 0, 2].into();
    for _ in 0..3 {
        let guess = portal
            .browser_from(elsewhere)
            .log_in_with_password("ALICE", "a wrong guess")
            .await;
        assert_ne!(guess.status(), 303, "a wrong password never logs in");
    }
    let right = portal
        .browser_from(elsewhere)
        .log_in_with_password("alice", password)
        .await;
    assert_ne!(
        right.status(),
        303,
        "locked elsewhere: the right password is refused"
    );
    let page = right.text().await.expect("body");
    assert!(
        page.contains("locked after too many failed logins"),
        "{page}"
    );

    let again = portal
        .browser()
        .log_in_with_password("alice", password)
        .await;
    assert_eq!(
        location(&again),
        "/portal/vpn",
        "the failures elsewhere do not keep alice out at her usual address"
    );
    let locks = portal.count(
        "SELECT count(*) FROM audit_log WHERE action = 'user.lock' AND result = 'locked' \
         AND client_ip = '127.0.0.2'",
    );
    assert_eq!(
        locks, 1,
        "the lock is audited once, with the address it came from"
    );
    let refused = portal.count(
        "SELECT count(*) FROM audit_log WHERE action = 'portal.login' AND reason = 'account_locked'",
    );
    assert_eq!(refused, 1, "the refused right password is audited as such");
    let metrics = portal.app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_accounts_locked_total{account=\"user\"} 1"),
        "{metrics}"
    );
    portal.app.stop().await;
}
