//! What administrators decide for the portal beyond its Allowed Actions: whether users may
//! remove their last second factor (the resource's Self-Service tab), the PIN policy and the
//! portal session's idle timeout (the General settings) — each through real HTTPS, in the panel
//! and in the portal.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::page::location;
use crate::helpers::portal::{Browser, Portal, SECRET_HEX, logged_in, totp_now};

const PASSWORD: &str = "a long enough password";

/// A user with one authenticator app in `vpn`, logged in with password and its code; the
/// browser and the token's id.
async fn with_one_app(portal: &Portal, login: &str) -> (Browser, i64) {
    portal
        .user(json!({"login": login, "password": PASSWORD}))
        .await;
    let token = portal
        .token(
            json!({"kind": "TOTP", "user": login, "resource": "vpn", "name": "Phone",
                   "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let browser = portal.browser();
    let response = browser.log_in_with_password(login, PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let done = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &totp_now())],
        )
        .await;
    assert_eq!(location(&done), "/portal/vpn");
    (browser, token)
}

#[tokio::test]
async fn the_last_second_factor_cannot_be_disabled_or_unassigned_while_the_resource_does_not_allow_it()
 {
    let portal = Portal::start(&["enable_disable_token", "unassign_token"], &[]).await;
    let (browser, token) = with_one_app(&portal, "alice").await;
    for action in ["disable", "unassign"] {
        // Even a forged confirmation changes nothing.
        for fields in [vec![], vec![("confirm", "yes")]] {
            let refused = browser
                .submit(
                    "/portal/vpn",
                    &format!("/portal/vpn/tokens/{token}/{action}"),
                    &fields,
                )
                .await;
            assert_eq!(refused.status(), 303, "{action}");
            assert!(
                browser
                    .page("/portal/vpn")
                    .await
                    .contains("last active second factor"),
                "{action}"
            );
        }
    }
    let json = portal.token_json(token).await;
    assert_eq!(json["enabled"], true);
    assert_eq!(json["user"]["login"], "alice");
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('portal.token_disable', 'portal.token_unassign')"
        ),
        0
    );
}

#[tokio::test]
async fn when_the_resource_allows_it_the_last_second_factor_goes_after_a_confirmation() {
    let portal = Portal::start(&["enable_disable_token", "unassign_token"], &[]).await;
    portal
        .configure_with(
            true,
            &["enable_disable_token", "unassign_token"],
            &[],
            &[("allow_remove_last", "on")],
        )
        .await;
    let (browser, token) = with_one_app(&portal, "bob").await;
    let disable = format!("/portal/vpn/tokens/{token}/disable");

    let asked = browser.submit("/portal/vpn", &disable, &[]).await;
    assert_eq!(asked.status(), 200, "a confirmation first");
    let page = asked.text().await.expect("body");
    assert!(
        page.contains("you will log in to vpn without a second factor"),
        "{page}"
    );
    assert!(page.contains("Disable it anyway") && page.contains("Keep it"));
    assert_eq!(
        portal.token_json(token).await["enabled"],
        true,
        "nothing changes before the confirmation"
    );
    let confirmed = browser
        .submit("/portal/vpn", &disable, &[("confirm", "yes")])
        .await;
    assert_eq!(confirmed.status(), 303);
    assert_eq!(portal.token_json(token).await["enabled"], false);
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_disable' AND detail = 'last second factor'"
        ),
        1
    );

    // Without an active second factor, the next login asks for none.
    let again = portal.browser();
    let response = again.log_in_with_password("bob", PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn");

    let enabled = browser
        .submit(
            "/portal/vpn",
            &format!("/portal/vpn/tokens/{token}/enable"),
            &[],
        )
        .await;
    assert_eq!(enabled.status(), 303);
    let unassign = format!("/portal/vpn/tokens/{token}/unassign");
    let asked = browser.submit("/portal/vpn", &unassign, &[]).await;
    assert_eq!(asked.status(), 200);
    let page = asked.text().await.expect("body");
    assert!(page.contains("Unassign it anyway"), "{page}");
    assert_eq!(portal.token_json(token).await["user"]["login"], "bob");
    let confirmed = browser
        .submit("/portal/vpn", &unassign, &[("confirm", "yes")])
        .await;
    assert_eq!(confirmed.status(), 303);
    assert!(portal.token_json(token).await["user"].is_null());
}

#[tokio::test]
async fn the_self_service_tab_saves_whether_users_may_remove_their_last_second_factor() {
    let portal = Portal::start(&["unassign_token"], &[]).await;
    let tab = format!("/admin/resources/{}/self-service", portal.resource_id);
    let box_ticked = "name=\"allow_remove_last\" value=\"on\" checked";
    let page = portal.app.get(&tab).await.text().await.expect("body");
    assert!(
        page.contains("Users may remove their last second factor"),
        "{page}"
    );
    assert!(
        page.contains("name=\"allow_remove_last\"") && !page.contains(box_ticked),
        "off by default"
    );

    portal
        .configure_with(
            true,
            &["unassign_token"],
            &[],
            &[("allow_remove_last", "on")],
        )
        .await;
    let page = portal.app.get(&tab).await.text().await.expect("body");
    assert!(page.contains(box_ticked), "{page}");
    assert!(
        page.contains("Self-Service saved: users may remove their last second factor."),
        "{page}"
    );
    assert_eq!(
        portal.count("SELECT allow_remove_last FROM self_service"),
        1
    );

    portal.configure(true, &["unassign_token"], &[]).await;
    let page = portal.app.get(&tab).await.text().await.expect("body");
    assert!(!page.contains(box_ticked));
    assert_eq!(
        portal.count("SELECT allow_remove_last FROM self_service"),
        0
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.self_service'
               AND detail LIKE '%remove their last second factor%'"
        ),
        2,
        "turned on and off, both audited"
    );
}

#[tokio::test]
async fn the_portal_set_pin_form_states_and_follows_the_pin_policy_of_the_general_settings() {
    let portal = Portal::start(&["set_pin"], &[]).await;
    let browser = logged_in(&portal, "carol").await;
    let token = portal
        .token(
            json!({"kind": "TOTP", "user": "carol", "resource": "vpn", "name": "Phone",
                   "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let pin = format!("/portal/vpn/tokens/{token}/pin");
    let set = |value: &'static str| {
        let (browser, pin) = (&browser, &pin);
        async move {
            browser
                .submit(
                    "/portal/vpn",
                    pin,
                    &[("pin", value), ("pin_position", "before")],
                )
                .await
        }
    };
    let token_page = format!("/portal/vpn/tokens/{token}");
    assert!(
        browser
            .page(&token_page)
            .await
            .contains("A PIN has 4 to 64 characters.")
    );
    assert_eq!(set("abc5").await.status(), 303);
    assert_eq!(
        portal.token_json(token).await["has_pin"],
        true,
        "letters pass the default policy"
    );

    let saved = portal
        .save_general(&[
            ("pin_min_length", "4"),
            ("pin_max_length", "8"),
            ("pin_digits_only", "on"),
        ])
        .await;
    assert_eq!(saved.status(), 303);
    let manage = browser.page(&token_page).await;
    assert!(manage.contains("A PIN has 4 to 8 digits."), "{manage}");
    assert!(manage.contains("inputmode=\"numeric\""));

    portal.execute("UPDATE tokens SET pin_hash = NULL");
    for refused in ["abcd", "123456789", "12 34", "123"] {
        let response = set(refused).await;
        assert_eq!(location(&response), "/portal/vpn", "{refused}");
        let home = browser.page("/portal/vpn").await;
        assert!(
            home.contains("The PIN was not set: a PIN must have 4 to 8 digits."),
            "{refused}: {home}"
        );
        assert_eq!(
            portal.token_json(token).await["has_pin"],
            false,
            "{refused}"
        );
    }
    assert_eq!(set("24681357").await.status(), 303);
    assert_eq!(portal.token_json(token).await["has_pin"], true);
    assert!(browser.page("/portal/vpn").await.contains("has a PIN now"));
}

#[tokio::test]
async fn the_api_refuses_a_pin_against_the_policy_with_400_naming_the_field_pin() {
    let portal = Portal::start(&["set_pin"], &[]).await;
    let saved = portal
        .save_general(&[("pin_min_length", "6"), ("pin_digits_only", "on")])
        .await;
    assert_eq!(saved.status(), 303);
    let create = |pin: &'static str| {
        let portal = &portal;
        async move {
            portal
                .api
                .call(
                    Method::POST,
                    "/tokens",
                    &portal.admin,
                    json!({"kind": "TOTP", "pin": pin}),
                )
                .await
        }
    };
    for refused in ["12345", "abcdef"] {
        let (status, body) = create(refused).await;
        assert_eq!(status, 400, "{refused}: {body}");
        assert_eq!(body["error"]["field"], "pin", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("6 to 64 digits")),
            "{body}"
        );
    }
    assert_eq!(portal.count("SELECT COUNT(*) FROM tokens"), 0);
    let (status, body) = create("135792").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().expect("id");

    let update = |pin: &'static str| {
        let portal = &portal;
        async move {
            portal
                .api
                .call(
                    Method::PATCH,
                    &format!("/tokens/{id}"),
                    &portal.admin,
                    json!({"pin": pin}),
                )
                .await
        }
    };
    let (status, body) = update("1234").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "pin");
    let (status, body) = update("97531864").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["has_pin"], Value::Bool(true));
}

#[tokio::test]
async fn a_portal_session_idle_longer_than_the_general_settings_allow_is_gone() {
    let portal = Portal::start(&["enroll_token"], &["MAIL"]).await;
    let browser = logged_in(&portal, "dave").await;
    // Time passes: the session was last used `minutes` ago.
    let idle_for = |minutes: i64| {
        let changed = portal.execute(&format!(
            "UPDATE sessions SET last_seen_at = CAST(strftime('%s', 'now') AS INTEGER) - {}
              WHERE kind = 'portal'",
            minutes * 60
        ));
        assert_eq!(changed, 1);
    };

    idle_for(6);
    assert!(
        browser.page("/portal/vpn").await.contains("2nd Factor"),
        "6 minutes are within the default 15"
    );

    let saved = portal.save_general(&[("portal_idle_minutes", "5")]).await;
    assert_eq!(saved.status(), 303);
    let settings = portal
        .app
        .get("/admin/settings")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        settings.contains("name=\"portal_idle_minutes\" value=\"5\""),
        "{settings}"
    );

    idle_for(4);
    assert!(
        browser.page("/portal/vpn").await.contains("2nd Factor"),
        "4 minutes are within 5"
    );
    idle_for(6);
    let page = browser.page("/portal/vpn").await;
    assert!(
        page.contains("Login name") && !page.contains("2nd Factor"),
        "6 minutes are past 5: {page}"
    );
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM sessions WHERE kind = 'portal'"),
        0,
        "the idle session is gone"
    );
}

#[tokio::test]
async fn the_last_token_s_page_says_why_it_cannot_be_taken_away_instead_of_offering_buttons() {
    let portal = Portal::start(&["enable_disable_token", "unassign_token"], &[]).await;
    let (browser, token) = with_one_app(&portal, "nia").await;
    let base = format!("/portal/vpn/tokens/{token}");
    let page = browser.page(&base).await;
    assert!(page.contains("You cannot disable this token"), "{page}");
    assert!(page.contains("You cannot unassign this token"), "{page}");
    assert!(!page.contains(&format!("{base}/disable")), "{page}");
    assert!(!page.contains(&format!("{base}/unassign")), "{page}");
    // The confirmation is not offered either: back to the token's page, with the reason.
    let confirmation = browser.get(&format!("{base}/unassign")).await;
    assert_eq!(location(&confirmation), base);
    assert!(
        browser
            .page(&base)
            .await
            .contains("without it you could not log in any more")
    );

    // Once users may remove their last second factor, both are offered.
    portal
        .configure_with(
            true,
            &["enable_disable_token", "unassign_token"],
            &[],
            &[("allow_remove_last", "on")],
        )
        .await;
    let page = browser.page(&base).await;
    assert!(!page.contains("You cannot"), "{page}");
    assert!(page.contains(&format!("{base}/disable")), "{page}");
    assert!(
        page.contains(&format!("href=\"{base}/unassign\"")),
        "{page}"
    );
    let confirmation = browser.page(&format!("{base}/unassign")).await;
    assert!(
        confirmation.contains("It is your last active second factor for vpn"),
        "{confirmation}"
    );
    assert_eq!(portal.token_json(token).await["user"]["login"], "nia");
}
