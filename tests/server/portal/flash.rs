//! The message a portal page shows after a redirect is the server's own. Its cookie is scoped
//! to the portal's path and cannot carry the `__Host-` prefix, so another host of the domain
//! can plant one: a planted message ("call this number") is never shown.

use crate::helpers::page::hidden_value;
use crate::helpers::portal::{Portal, logged_in};

const PLANTED: &str = "Your account is locked: call +1 555 0100 now";

/// A flash cookie as the server wrote them before they were signed: `p` (a problem) and the
/// text in hexadecimal.
fn planted_cookie() -> String {
    format!(
        "otpgate_portal_flash=p{}",
        data_encoding::HEXLOWER.encode(PLANTED.as_bytes())
    )
}

#[tokio::test]
async fn a_flash_message_planted_in_the_portal_s_cookie_is_not_shown_and_the_server_s_own_is() {
    let portal = Portal::start(&[], &["TOTP"]).await;
    let stranger = portal.browser();
    let page = stranger
        .client
        .get(format!("{}/portal/vpn", stranger.address))
        .header("cookie", planted_cookie())
        .send()
        .await
        .expect("GET answered");
    assert_eq!(page.status(), 200);
    let body = page.text().await.expect("body");
    assert!(!body.contains("+1 555 0100"), "{body}");

    // The server's own message, from a logout, is shown; its cookie changed is not.
    let browser = logged_in(&portal, "alice").await;
    let home = browser.page("/portal/vpn").await;
    let csrf = hidden_value(&home, "csrf");
    let out = browser.post("/portal/vpn/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    let genuine = out
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| cookie.strip_prefix("otpgate_portal_flash="))
        .and_then(|rest| rest.split(';').next())
        .expect("the logout's flash cookie")
        .to_string();
    assert!(
        browser
            .page("/portal/vpn")
            .await
            .contains("You are logged out."),
        "the server's own message is shown"
    );
    let mut tampered = genuine.clone();
    tampered.replace_range(1..3, if &genuine[1..3] == "59" { "58" } else { "59" });
    for (cookie, why) in [
        (tampered, "changed"),
        (genuine.replacen('n', "p", 1), "its tone changed"),
    ] {
        let page = stranger
            .client
            .get(format!("{}/portal/vpn", stranger.address))
            .header("cookie", format!("otpgate_portal_flash={cookie}"))
            .send()
            .await
            .expect("GET answered")
            .text()
            .await
            .expect("body");
        assert!(!page.contains("role=\"alert\""), "{why}: {page}");
        assert!(!page.contains("role=\"status\""), "{why}: {page}");
    }
}
