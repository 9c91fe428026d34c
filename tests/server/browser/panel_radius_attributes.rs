//! A resource's RADIUS reply attributes in a real browser: chosen from the dictionary's list,
//! saved, and a value that does not fit shown in the form.

use fantoccini::Locator;
use serde_json::json;

use crate::helpers::panel::Panel;

/// Chooses `option` (its text) in the attribute list of row `row` and types `value` beside it.
async fn set_row(panel: &Panel, row: usize, option: &str, value: &str) {
    let client = &panel.browser.client;
    client
        .find(Locator::Css(&format!(
            "select[aria-label='Attribute {row}']"
        )))
        .await
        .expect("the attribute list")
        .select_by_label(option)
        .await
        .expect("the option");
    let field = client
        .find(Locator::Css(&format!("input[aria-label='Value {row}']")))
        .await
        .expect("the value field");
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

#[tokio::test]
async fn reply_attributes_are_chosen_from_the_dictionary_on_the_resources_page() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    let resource = panel.api_create("/resources", json!({"name": "vpn"})).await;
    let id = resource["id"].as_i64().expect("id");
    browser
        .goto(&panel.app.url(&format!("/admin/resources/{id}")))
        .await;
    browser.wait_for_text("RADIUS reply attributes").await;
    set_row(&panel, 1, "Fortinet-Group-Name (string)", "vpn-admins").await;
    set_row(&panel, 2, "Idle-Timeout (integer)", "ten minutes").await;
    browser.click("Save reply attributes").await;
    browser
        .wait_for_text("Attribute 2 (Idle-Timeout): the value is not a whole number")
        .await;
    panel
        .expect_form_rejected(&format!("/admin/resources/{id}/radius-attributes"))
        .await;
    browser.screenshot("panel-radius-attributes-refused").await;
    set_row(&panel, 2, "Idle-Timeout (integer)", "600").await;
    browser.click("Save reply attributes").await;
    browser
        .wait_for_text("RADIUS reply attributes saved: 2 attributes.")
        .await;
    browser.screenshot("panel-radius-attributes").await;
    assert_eq!(
        panel.api_get("/resources/vpn/radius-attributes").await,
        json!({"attributes": [
            {"name": "Fortinet-Group-Name", "value": "vpn-admins"},
            {"name": "Idle-Timeout", "value": "600"},
        ]})
    );
    panel.finish().await;
}
