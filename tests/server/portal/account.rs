//! The user actions of the portal's Your details page: Set Password, Change Password, Change
//! Name, Change Email and Change Phone (the new address or number only after its code), and the
//! refusal of each when the resource does not allow it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::page::{hidden_value, location};
use crate::helpers::portal::{Portal, logged_in, with_mail, with_sms};
use crate::helpers::smtp_sink::code_in;

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "a long enough password";

async fn user_json(portal: &Portal, login: &str) -> Value {
    let (status, body) = portal
        .api
        .call(
            Method::GET,
            &format!("/users/{login}"),
            &portal.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_user_changes_name_and_password_and_the_current_password_is_required() {
    let portal = Portal::start(&["change_name", "change_password"], &["MAIL"]).await;
    let browser = logged_in(&portal, "alice").await;
    let home = browser.page("/portal/vpn").await;
    assert!(home.contains("Your details"), "{home}");
    let page = browser.page("/portal/vpn/account").await;
    assert!(page.contains("Change Name") && page.contains("Change Password"));
    assert!(!page.contains("Change Email") && !page.contains("Set Password"));

    let named = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/name",
            &[("first_name", "Alice"), ("last_name", "Liddell")],
        )
        .await;
    assert_eq!(named.status(), 303);
    let user = user_json(&portal, "alice").await;
    assert_eq!(user["first_name"], "Alice");
    assert_eq!(user["last_name"], "Liddell");

    let change = |current: &'static str, new: &'static str, again: &'static str| {
        let browser = &browser;
        async move {
            browser
                .submit(
                    "/portal/vpn/account",
                    "/portal/vpn/account/password",
                    &[("current", current), ("password", new), ("again", again)],
                )
                .await
        }
    };
    let wrong = change("not my password", "a new passphrase", "a new passphrase").await;
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.expect("body").contains("not right"));
    let short = change(PASSWORD, "short", "short").await;
    assert_eq!(short.status(), 400, "the length rule applies");
    let login_name = change(PASSWORD, "alice", "alice").await;
    assert_eq!(login_name.status(), 400, "too short anyway");
    let different = change(PASSWORD, "a new passphrase", "another passphrase").await;
    assert_eq!(different.status(), 400, "both new passwords must match");
    assert_eq!(
        portal
            .browser()
            .log_in_with_password_raw("alice", PASSWORD)
            .await,
        303,
        "the old password still works"
    );

    let changed = change(PASSWORD, "a new passphrase", "a new passphrase").await;
    assert_eq!(changed.status(), 303);
    let fresh = portal.browser();
    let response = fresh
        .log_in_with_password("alice", "a new passphrase")
        .await;
    assert_eq!(location(&response), "/portal/vpn");
    let old = portal.browser();
    let response = old.log_in_with_password("alice", PASSWORD).await;
    assert_eq!(response.status(), 401, "the old password is gone");
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE action = 'portal.change_password' AND result = 'ok'"),
        1
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE detail LIKE '%passphrase%' OR detail LIKE '%long enough%'"),
        0,
        "no password in the audit log"
    );
}

#[tokio::test]
async fn a_user_without_a_password_sets_one_and_logs_in_with_it() {
    let portal = Portal::start(&["set_password"], &["MAIL"]).await;
    let sink = with_mail(&portal).await;
    portal
        .user(json!({"login": "carol", "email": "carol@example.com"}))
        .await;
    let browser = portal.browser();
    browser.start_login("carol").await;
    let mail = sink.wait_for(1, WAIT).await;
    let code = code_in(&mail[0].data).expect("a code");
    let right = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/code",
            &[("code", &code)],
        )
        .await;
    assert_eq!(location(&right), "/portal/vpn");
    let page = browser.page("/portal/vpn/account").await;
    assert!(page.contains("Set Password") && !page.contains("Current password"));
    let set = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/password",
            &[
                ("password", "carol's passphrase"),
                ("again", "carol's passphrase"),
            ],
        )
        .await;
    assert_eq!(set.status(), 303);
    let page = browser.page("/portal/vpn/account").await;
    assert!(
        !page.contains("Set Password"),
        "Change Password is off, so there is no form any more"
    );
    let again = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/password",
            &[
                ("current", "carol's passphrase"),
                ("password", "yet another one"),
                ("again", "yet another one"),
            ],
        )
        .await;
    assert_eq!(
        again.status(),
        403,
        "setting it again would be Change Password"
    );
    let fresh = portal.browser();
    let response = fresh
        .log_in_with_password("carol", "carol's passphrase")
        .await;
    assert_eq!(location(&response), "/portal/vpn");
}

#[tokio::test]
async fn a_new_email_address_replaces_the_old_one_only_after_its_code() {
    let portal = Portal::start(&["change_email"], &["MAIL"]).await;
    let sink = with_mail(&portal).await;
    let browser = logged_in(&portal, "dave").await;
    let bad = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/email",
            &[("value", "not an address")],
        )
        .await;
    assert_eq!(bad.status(), 400);
    let started = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/email",
            &[("value", "dave.new@example.com")],
        )
        .await;
    assert_eq!(location(&started), "/portal/vpn/account/verify");
    let mail = sink.wait_for(1, WAIT).await;
    assert_eq!(mail[0].to, vec!["dave.new@example.com".to_string()]);
    let code = code_in(&mail[0].data).expect("a code");
    assert_eq!(
        user_json(&portal, "dave").await["email"],
        "dave@example.com",
        "not yet"
    );
    let wrong = browser
        .submit(
            "/portal/vpn/account/verify",
            "/portal/vpn/account/verify",
            &[("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(
        user_json(&portal, "dave").await["email"],
        "dave@example.com"
    );
    let right = browser
        .submit(
            "/portal/vpn/account/verify",
            "/portal/vpn/account/verify",
            &[("code", &code)],
        )
        .await;
    assert_eq!(right.status(), 303);
    assert_eq!(
        user_json(&portal, "dave").await["email"],
        "dave.new@example.com"
    );
    assert!(
        browser
            .page("/portal/vpn/account")
            .await
            .contains("dave.new@example.com")
    );
    let replay = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/verify",
            &[("code", &code)],
        )
        .await;
    assert_eq!(
        location(&replay),
        "/portal/vpn/account",
        "the code is used up"
    );
}

#[tokio::test]
async fn three_wrong_codes_for_a_new_phone_number_change_nothing() {
    let portal = Portal::start(&["change_phone"], &["SMS"]).await;
    let gateway = with_sms(&portal).await;
    let browser = logged_in(&portal, "erin").await;
    let started = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/phone",
            &[("value", "+41 79 555 12 34")],
        )
        .await;
    assert_eq!(location(&started), "/portal/vpn/account/verify");
    let verify = browser.page("/portal/vpn/account/verify").await;
    assert!(
        verify.contains("Confirm your new phone number") && !verify.contains("new address"),
        "a phone number is not an address: {verify}"
    );
    let sent = gateway.wait_for(1, WAIT).await;
    let form = crate::helpers::sms_gateway::Captured::form(&sent[0].body);
    assert_eq!(form["to"], "+41795551234");
    let code = crate::helpers::sms_gateway::code_in(&form["text"]).expect("a code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..2 {
        let response = browser
            .submit(
                "/portal/vpn/account/verify",
                "/portal/vpn/account/verify",
                &[("code", wrong)],
            )
            .await;
        assert_eq!(response.status(), 400);
    }
    let last = browser
        .submit(
            "/portal/vpn/account/verify",
            "/portal/vpn/account/verify",
            &[("code", wrong)],
        )
        .await;
    assert_eq!(location(&last), "/portal/vpn/account");
    let late = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/verify",
            &[("code", &code)],
        )
        .await;
    assert_eq!(location(&late), "/portal/vpn/account");
    assert_eq!(user_json(&portal, "erin").await["phone"], Value::Null);

    // Once more, rightly.
    let page = browser.page("/portal/vpn/account").await;
    let csrf = hidden_value(&page, "csrf");
    let started = browser
        .post(
            "/portal/vpn/account/phone",
            &[("csrf", &csrf), ("value", "+41795551234")],
        )
        .await;
    assert_eq!(location(&started), "/portal/vpn/account/verify");
    let sent = gateway.wait_for(2, WAIT).await;
    let form = crate::helpers::sms_gateway::Captured::form(&sent[1].body);
    let code = crate::helpers::sms_gateway::code_in(&form["text"]).expect("a code");
    let right = browser
        .post(
            "/portal/vpn/account/verify",
            &[("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(right.status(), 303);
    assert_eq!(user_json(&portal, "erin").await["phone"], "+41795551234");
}

#[tokio::test]
async fn forged_user_actions_that_are_off_get_403_change_nothing_and_are_audited() {
    let portal = Portal::start(&["rename_token"], &["MAIL"]).await;
    let _sink = with_mail(&portal).await;
    let browser = logged_in(&portal, "fred").await;
    let home = browser.page("/portal/vpn").await;
    assert!(!home.contains("Your details"));
    let csrf = hidden_value(&home, "csrf");
    let forged: [(&str, Vec<(&str, &str)>); 4] = [
        ("name", vec![("first_name", "Mallory")]),
        (
            "password",
            vec![
                ("current", PASSWORD),
                ("password", "a forged passphrase"),
                ("again", "a forged passphrase"),
            ],
        ),
        ("email", vec![("value", "mallory@example.com")]),
        ("phone", vec![("value", "+41795550000")]),
    ];
    for (what, fields) in &forged {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields.iter().copied());
        let response = browser
            .post(&format!("/portal/vpn/account/{what}"), &form)
            .await;
        assert_eq!(response.status(), 403, "{what}");
    }
    let user = user_json(&portal, "fred").await;
    assert_eq!(user["first_name"], "");
    assert_eq!(user["email"], "fred@example.com");
    assert_eq!(user["phone"], Value::Null);
    assert_eq!(
        portal
            .browser()
            .log_in_with_password_raw("fred", PASSWORD)
            .await,
        303,
        "the password is unchanged"
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM outbox"),
        0,
        "no code was sent"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.forbidden'
               AND detail IN ('change_name', 'change_password', 'change_email', 'change_phone')"
        ),
        4,
        "each refusal is audited"
    );
}
