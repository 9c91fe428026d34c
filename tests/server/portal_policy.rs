//! What administrators decide for the portal beyond its Allowed Actions: whether users may
//! remove their last second factor (the resource's Self-Service tab) — through real HTTPS, in
//! the panel and in the portal.

use serde_json::json;

use crate::helpers::location;
use crate::portal_support::{Browser, Portal, SECRET_HEX, totp_now};

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
