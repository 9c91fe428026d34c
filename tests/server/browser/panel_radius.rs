//! RADIUS clients in a real browser: a gateway added through the form, with the secret the
//! form offers.

use fantoccini::Locator;
use otpgate::crypto::{KEY_FILE, Keys, Purpose};
use serde_json::json;

use crate::helpers::api::database;
use crate::helpers::panel::Panel;

/// Whether the separator and code length are on screen.
async fn separator_shown(panel: &Panel) -> bool {
    panel
        .browser
        .client
        .find(Locator::Css("fieldset[data-input-modes]"))
        .await
        .expect("the separator's fieldset")
        .is_displayed()
        .await
        .expect("shown or not")
}

#[tokio::test]
async fn a_radius_client_added_through_the_form_keeps_the_secret_the_form_offered() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    panel
        .api_create("/resources", json!({"name": "vpn", "fail_limit": 5}))
        .await;

    browser.click("RADIUS").await;
    browser.wait_for_path("/admin/radius").await;
    browser.wait_for_text("No RADIUS clients yet.").await;
    browser.click("New RADIUS client").await;
    browser.wait_for_path("/admin/radius/new").await;
    let offered = panel.value_of("Shared secret").await;
    assert!(offered.len() >= 16, "a generated secret: {offered:?}");
    assert!(
        separator_shown(&panel).await,
        "password and code in one field is the first mode"
    );
    browser
        .fill("Input mode", "Code only (the gateway checks the password)")
        .await;
    assert!(!separator_shown(&panel).await, "code only has no separator");
    browser
        .fill("Input mode", "Password and code in one field, code first")
        .await;
    assert!(separator_shown(&panel).await);
    browser.fill("Name", "fw1").await;
    browser.fill("Address or network", "192.0.2.0/24").await;
    browser.fill("Separator", ",").await;
    browser.screenshot("panel-new-radius-client").await;
    browser.click("Save").await;

    browser.wait_for_text("RADIUS client “fw1” created.").await;
    assert_eq!(panel.path().await, "/admin/radius");
    let row = browser.text_of("tbody tr").await;
    assert!(
        row.contains("fw1") && row.contains("192.0.2.0/24") && row.contains("vpn"),
        "{row}"
    );
    assert!(
        !browser.text().await.contains(&offered),
        "never shown again"
    );

    let clients = panel.api_get("/radius/clients").await;
    let client = &clients["items"][0];
    assert_eq!(client["name"], "fw1");
    assert_eq!(client["input_mode"], "code_password");
    assert_eq!(client["separator"], ",");
    assert_eq!(client["require_message_authenticator"], true);
    assert_eq!(client["resource"]["name"], "vpn");
    let sealed: Vec<u8> = database(&panel.app)
        .query_row("SELECT secret_sealed FROM radius_clients", [], |row| {
            row.get(0)
        })
        .expect("the stored secret");
    let keys = Keys::load_or_create(&panel.app.data_dir.join(KEY_FILE), false).expect("the keys");
    assert_eq!(
        keys.open(Purpose::Credential, &sealed).expect("it opens"),
        offered.as_bytes(),
        "the stored secret is the one the form offered"
    );
    panel.finish().await;
}
