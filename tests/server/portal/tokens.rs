//! The further token actions of the portal: Set PIN / Remove PIN, Token Synchronization,
//! Reissue Token (authenticator app and BOT), Assign Existing Token — and the refusal of each
//! when the resource does not allow it.

use serde_json::json;

use crate::helpers::otp::{totp_now, wait_for_fresh_step};
use crate::helpers::page::{hidden_value, location, secret_on_page};
use crate::helpers::portal::{
    Portal, SECRET, SECRET_HEX, activation_on, logged_in, wait_until_active, with_bot,
};

const PASSWORD: &str = "a long enough password";

/// A TOTP token of `SECRET` for the user in `vpn`; its id.
async fn app_token(portal: &Portal, login: &str) -> i64 {
    portal
        .token(
            json!({"kind": "TOTP", "user": login, "resource": "vpn", "name": "Phone",
                      "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await
}

/// A whole login with password and one-time password in a new browser; the last status.
async fn log_in_with_otp(portal: &Portal, login: &str, otp: &str) -> u16 {
    let browser = portal.browser();
    let response = browser.log_in_with_password(login, PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", otp)],
        )
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_user_sets_changes_and_removes_a_pin_within_the_pin_rules() {
    let portal = Portal::start(&["set_pin", "remove_pin"], &["MAIL"]).await;
    let browser = logged_in(&portal, "alice").await;
    let token = app_token(&portal, "alice").await;
    let manage = browser.page(&format!("/portal/vpn/tokens/{token}")).await;
    assert!(manage.contains("Set PIN") && !manage.contains("Remove PIN"));
    let pin = format!("/portal/vpn/tokens/{token}/pin");
    let short = browser
        .submit(
            "/portal/vpn",
            &pin,
            &[("pin", "123"), ("pin_position", "before")],
        )
        .await;
    assert_eq!(location(&short), "/portal/vpn");
    assert!(browser.page("/portal/vpn").await.contains("4 to 64"));
    assert_eq!(portal.token_json(token).await["has_pin"], false);

    let set = browser
        .submit(
            "/portal/vpn",
            &pin,
            &[("pin", "4321"), ("pin_position", "after")],
        )
        .await;
    assert_eq!(set.status(), 303);
    let json = portal.token_json(token).await;
    assert_eq!(json["has_pin"], true);
    assert_eq!(json["pin_position"], "after");
    let manage = browser.page(&format!("/portal/vpn/tokens/{token}")).await;
    assert!(manage.contains("Remove PIN") && manage.contains("Change PIN"));
    let remove = browser
        .submit("/portal/vpn", &format!("{pin}/remove"), &[])
        .await;
    assert_eq!(remove.status(), 303);
    assert_eq!(portal.token_json(token).await["has_pin"], false);
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE action IN ('portal.token_set_pin', 'portal.token_remove_pin') AND result = 'ok'"),
        2
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE detail LIKE '%4321%'"),
        0,
        "no PIN in the audit log"
    );
}

#[tokio::test]
async fn a_user_synchronizes_a_drifted_app_with_two_consecutive_codes() {
    let portal = Portal::start(&["token_synchronization"], &["MAIL"]).await;
    let browser = logged_in(&portal, "bob").await;
    let token = app_token(&portal, "bob").await;
    let sync = format!("/portal/vpn/tokens/{token}/sync");
    assert!(
        browser
            .page(&format!("/portal/vpn/tokens/{token}"))
            .await
            .contains(&sync)
    );
    wait_for_fresh_step(5).await;
    let (first, next) = (totp_now(SECRET, 20), totp_now(SECRET, 21));
    let wrong = browser
        .submit(&sync, &sync, &[("otp1", &next), ("otp2", &first)])
        .await;
    assert_eq!(wrong.status(), 400, "in the wrong order");
    assert!(wrong.text().await.expect("body").contains("not found"));
    let right = browser
        .submit(&sync, &sync, &[("otp1", &first), ("otp2", &next)])
        .await;
    assert_eq!(right.status(), 303);
    assert!(
        browser
            .page("/portal/vpn")
            .await
            .contains("is synchronized")
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM tokens WHERE drift <> 0"),
        1,
        "the drift is stored"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_resync' AND result = 'ok'"
        ),
        1
    );
}

#[tokio::test]
async fn a_reissued_app_seed_replaces_the_old_one_only_when_its_first_code_is_typed() {
    let portal = Portal::start(&["reissue_token"], &["MAIL"]).await;
    let browser = logged_in(&portal, "carol").await;
    let token = app_token(&portal, "carol").await;
    let reissue = format!("/portal/vpn/tokens/{token}/reissue");
    assert!(
        browser
            .page(&format!("/portal/vpn/tokens/{token}"))
            .await
            .contains(&reissue)
    );
    wait_for_fresh_step(12).await;
    let page = browser
        .submit(&reissue, &reissue, &[])
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("data:image/svg+xml;base64,"), "a QR code");
    let new_secret = secret_on_page(&page);
    assert_ne!(new_secret, SECRET);
    assert_eq!(
        log_in_with_otp(&portal, "carol", &totp_now(SECRET, 0)).await,
        303,
        "the old seed works until the new one is confirmed"
    );

    let confirm = format!("{reissue}/confirm");
    let csrf = hidden_value(&page, "csrf");
    let old_code = totp_now(SECRET, 1);
    let wrong = browser
        .post(&confirm, &[("csrf", &csrf), ("code", &old_code)])
        .await;
    assert_eq!(
        wrong.status(),
        400,
        "the old seed's code is not the new one's"
    );
    let new_code = totp_now(&new_secret, 0);
    let right = browser
        .post(&confirm, &[("csrf", &csrf), ("code", &new_code)])
        .await;
    assert_eq!(right.status(), 303);
    assert!(browser.page("/portal/vpn").await.contains("is reissued"));

    // One more login (the attempts per login name are limited): the old seed's code is
    // refused, the new seed's is taken.
    let fresh = portal.browser();
    let response = fresh.log_in_with_password("carol", PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let otp = |code: String| {
        let fresh = &fresh;
        async move {
            fresh
                .submit(
                    "/portal/vpn/login/verify",
                    "/portal/vpn/login/otp",
                    &[("otp", &code)],
                )
                .await
                .status()
        }
    };
    assert_eq!(otp(old_code).await, 401, "the old seed stopped working");
    assert_eq!(
        otp(totp_now(&new_secret, 1)).await,
        303,
        "the new seed works"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_reissue' AND result = 'ok'"
        ),
        1
    );
}

#[tokio::test]
async fn a_reissued_bot_token_moves_to_the_new_chat_once_activated_there() {
    let portal = Portal::start(&["enroll_token", "reissue_token"], &["BOT"]).await;
    let telegram = with_bot(&portal).await;
    let browser = logged_in(&portal, "dave").await;
    let add = "/portal/vpn/tokens/new/bot";
    let added = browser
        .submit(add, add, &[("name", "Telegram"), ("digits", "6")])
        .await;
    let page = browser.page(&location(&added)).await;
    let (code, status) = activation_on(&page);
    telegram.user_writes(4242, 4242, &format!("/start {code}"));
    wait_until_active(&browser, &status).await;
    let token = portal.count("SELECT id FROM tokens WHERE kind = 'BOT'");

    let reissue = format!("/portal/vpn/tokens/{token}/reissue");
    let page = browser
        .submit(&reissue, &reissue, &[])
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("https://t.me/"), "the link: {page}");
    let (code, status) = activation_on(&page);
    assert!(status.ends_with("/reissue/status"), "{status}");
    let answer: serde_json::Value = browser.get(&status).await.json().await.expect("json");
    assert_eq!(answer["state"], "pending");
    assert_eq!(
        portal.count("SELECT bot_chat_id FROM tokens WHERE kind = 'BOT'"),
        4242,
        "the old chat still gets the codes"
    );
    assert!(browser.page("/portal/vpn").await.contains("Active"));

    telegram.user_writes(5353, 5353, &format!("/start {code}"));
    wait_until_active(&browser, &status).await;
    assert_eq!(
        portal.count("SELECT bot_chat_id FROM tokens WHERE kind = 'BOT'"),
        5353,
        "the new chat took over"
    );
    telegram.stop().await;
}

#[tokio::test]
async fn a_user_claims_a_free_hardware_token_by_serial_and_its_current_code() {
    let portal = Portal::start(&["assign_existing_token"], &["MAIL"]).await;
    let free = portal
        .token(json!({"kind": "HOTP", "serial": "HW-0001", "secret": SECRET_HEX, "secret_format": "hex"}))
        .await;
    portal
        .user(json!({"login": "owner", "password": PASSWORD}))
        .await;
    portal
        .token(json!({"kind": "HOTP", "serial": "HW-0002", "user": "owner",
                      "secret": SECRET_HEX, "secret_format": "hex"}))
        .await;
    let browser = logged_in(&portal, "erin").await;
    assert!(
        browser
            .page("/portal/vpn")
            .await
            .contains("Assign Existing Token")
    );
    let claim = "/portal/vpn/tokens/claim";
    // 755224 is RFC 4226's first code of this seed; a token's id is not its serial.
    let by_id = free.to_string();
    for (serial, code) in [
        ("HW-9999", "755224"),
        ("HW-0001", "000000"),
        ("HW-0002", "755224"),
        (by_id.as_str(), "755224"),
    ] {
        let refused = browser
            .submit(claim, claim, &[("serial", serial), ("code", code)])
            .await;
        assert_eq!(refused.status(), 400, "{serial} {code}");
        assert!(refused.text().await.expect("body").contains("not right"));
    }
    assert!(portal.token_json(free).await["user"].is_null());

    let claimed = browser
        .submit(claim, claim, &[("serial", "HW-0001"), ("code", "755224")])
        .await;
    assert_eq!(claimed.status(), 303);
    let json = portal.token_json(free).await;
    assert_eq!(json["user"]["login"], "erin");
    let home = browser.page("/portal/vpn").await;
    assert!(
        home.contains("HOTP") && home.contains("is yours now"),
        "{home}"
    );
    assert_eq!(
        portal.count(&format!(
            "SELECT COUNT(*) FROM token_resources r JOIN resources s ON s.id = r.resource_id
              WHERE r.token_id = {free} AND s.name = 'vpn'"
        )),
        1,
        "assigned to this resource too"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_claim' AND result = 'ok'"
        ),
        1
    );
}

#[tokio::test]
async fn forged_token_actions_that_are_off_get_403_and_change_nothing() {
    let portal = Portal::start(&["rename_token"], &["MAIL"]).await;
    portal
        .token(json!({"kind": "HOTP", "serial": "HW-0001", "secret": SECRET_HEX, "secret_format": "hex"}))
        .await;
    let browser = logged_in(&portal, "fred").await;
    let token = app_token(&portal, "fred").await;
    let home = browser.page("/portal/vpn").await;
    for absent in ["Set PIN", "Synchronize", "Reissue", "Assign Existing Token"] {
        assert!(!home.contains(absent), "{absent}");
    }
    let csrf = hidden_value(&home, "csrf");
    let base = format!("/portal/vpn/tokens/{token}");
    let forged: [(String, Vec<(&str, &str)>); 6] = [
        (format!("{base}/pin"), vec![("pin", "4321")]),
        (format!("{base}/pin/remove"), vec![]),
        (
            format!("{base}/sync"),
            vec![("otp1", "123456"), ("otp2", "654321")],
        ),
        (format!("{base}/reissue"), vec![]),
        (format!("{base}/reissue/confirm"), vec![("code", "123456")]),
        (
            "/portal/vpn/tokens/claim".to_string(),
            vec![("serial", "HW-0001"), ("code", "755224")],
        ),
    ];
    for (path, fields) in &forged {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields.iter().copied());
        assert_eq!(browser.post(path, &form).await.status(), 403, "{path}");
    }
    for path in [
        format!("{base}/sync"),
        format!("{base}/reissue"),
        "/portal/vpn/tokens/claim".into(),
    ] {
        assert_eq!(browser.get(&path).await.status(), 403, "{path}");
    }
    assert_eq!(portal.token_json(token).await["has_pin"], false);
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM tokens WHERE serial = 'HW-0001' AND user_id IS NULL"),
        1
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM sessions WHERE pending_secret IS NOT NULL"),
        0
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM audit_log WHERE action = 'portal.forbidden'"),
        9,
        "each refusal is audited"
    );
}

#[tokio::test]
async fn a_serial_typed_in_lower_case_claims_the_token() {
    let portal = Portal::start(&["assign_existing_token"], &["MAIL"]).await;
    let free = portal
        .token(json!({"kind": "HOTP", "serial": "HW-0001", "secret": SECRET_HEX, "secret_format": "hex"}))
        .await;
    let browser = logged_in(&portal, "ivan").await;
    let claim = "/portal/vpn/tokens/claim";
    // 755224 is RFC 4226's first code of this seed.
    let claimed = browser
        .submit(claim, claim, &[("serial", " hw-0001 "), ("code", "755224")])
        .await;
    assert_eq!(claimed.status(), 303);
    assert_eq!(portal.token_json(free).await["user"]["login"], "ivan");
    assert!(
        browser
            .page("/portal/vpn")
            .await
            .contains("HW-0001 is yours now")
    );
}

#[tokio::test]
async fn the_owner_sees_her_own_addresses_in_full_and_the_login_page_masks_them() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let browser = logged_in(&portal, "jane").await;
    portal
        .token(
            json!({"kind": "MAIL", "user": "jane", "resource": "vpn", "name": "Mail",
                      "destination": "jane.desk@example.com"}),
        )
        .await;
    let home = browser.page("/portal/vpn").await;
    assert!(
        home.contains("jane.desk@example.com"),
        "in full after the login: {home}"
    );
    assert!(!home.contains("j***@example.com"), "{home}");

    let stranger = portal.browser();
    let response = stranger.log_in_with_password("jane", PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let otp_page = stranger.page("/portal/vpn/login/verify").await;
    assert!(
        otp_page.contains("j***@example.com"),
        "masked before the login: {otp_page}"
    );
    assert!(!otp_page.contains("jane.desk@example.com"));
}

#[tokio::test]
async fn a_code_valid_for_sixty_seconds_says_one_minute() {
    let portal = Portal::start(&["enroll_token"], &["SMS"]).await;
    let gateway = crate::helpers::portal::with_sms(&portal).await;
    let saved = portal
        .save_general(&[("challenge_validity_seconds", "60")])
        .await;
    assert_eq!(saved.status(), 303);
    portal
        .user(json!({"login": "lena", "password": PASSWORD, "phone": "+4915112345678"}))
        .await;
    portal
        .token(json!({"kind": "SMS", "user": "lena", "resource": "vpn", "name": "Phone"}))
        .await;
    let key = portal.app.api_key(&["--resource", "vpn"]);
    let (status, body) = portal
        .api
        .call(
            reqwest::Method::POST,
            "/auth/prepare",
            &key,
            json!({"user": "lena"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = gateway
        .wait_for(1, std::time::Duration::from_secs(20))
        .await;
    let text = crate::helpers::sms_gateway::Captured::form(&sent[0].body)
        .remove("text")
        .expect("the text");
    assert!(text.contains("It is valid for 1 minute."), "{text}");
}
