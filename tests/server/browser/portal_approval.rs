//! Approve in Telegram at the portal's login in a real browser: past the password the user
//! presses Approve in Telegram, the page shows the number to press, and once the fake Telegram
//! user pressed it the page goes on to the portal by itself.

use serde_json::json;

use crate::helpers::browser::Browser;
use crate::portal::approvals::approving;

#[tokio::test]
async fn the_approval_page_goes_on_to_the_portal_by_itself_once_the_number_is_pressed() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let s = approving(json!({"allowed": true})).await;
    browser
        .goto(&format!("{}/portal/vpn", s.portal.app.address))
        .await;
    browser.fill("Login name", "jon").await;
    browser.click("Next").await;
    browser.wait_for_path("/portal/vpn/login/verify").await;
    browser.fill("Password", "a long enough password").await;
    browser.click("Log in").await;
    browser.wait_for_text("Approve in Telegram").await;
    browser.click("Approve in Telegram").await;
    browser.wait_for_path("/portal/vpn/login/approval").await;
    let (approval, number, _, message) = s.sent_approval().await;
    let shown = browser.text_of("p.approval-number").await;
    assert_eq!(shown, format!("{number:02}"));
    browser
        .wait_for_text(&format!("Open Telegram and press {number:02}"))
        .await;
    browser.wait_for_text("This page updates by itself.").await;
    browser.screenshot("portal-approve-in-telegram").await;

    s.press(approval, message, &format!("{number:02}")).await;
    browser.wait_for_path("/portal/vpn").await;
    browser.wait_for_text("Log out").await;
    assert_eq!(
        s.portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.login' AND result = 'ok'"
        ),
        1
    );
    assert_eq!(browser.console_problems().await, Vec::<String>::new());
    browser.close().await;
}
