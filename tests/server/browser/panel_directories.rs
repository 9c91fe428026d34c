//! A directory in a real browser: chosen from a preset, tried with Test connection and Preview
//! users against a real slapd before anything is saved, then saved.

use crate::helpers::panel::Panel;
use crate::helpers::slapd::{ALICE, Fixture, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, Slapd};

#[tokio::test]
async fn a_new_directory_is_tested_and_previewed_before_it_is_saved() {
    let Some(slapd) = Slapd::start_with(Fixture {
        people: 30,
        tls: false,
    })
    .await
    else {
        return;
    };
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;

    browser.click("Settings").await;
    browser.wait_for_path("/admin/settings").await;
    browser.click("Directories").await;
    browser.wait_for_path("/admin/settings/directories").await;
    browser.wait_for_text("No directories yet.").await;
    browser.click("New directory").await;
    browser.click("Active Directory").await;
    browser.wait_for_text("Start again from a preset").await;
    assert_eq!(
        panel.value_of("Login attributes").await,
        "sAMAccountName, userPrincipalName"
    );
    assert_eq!(panel.value_of("Stable id attribute").await, "objectGUID");
    browser.fill("Kind", "FreeIPA / OpenLDAP").await;
    assert_eq!(panel.value_of("Login attributes").await, "uid");
    assert_eq!(panel.value_of("Stable id attribute").await, "entryUUID");

    browser.fill("Name", "Example").await;
    browser.fill("Server addresses", &slapd.url).await;
    browser
        .fill("TLS", "None (ldap:// in clear: tests and loopback only)")
        .await;
    browser.fill("Bind DN", SERVICE_DN).await;
    browser.fill("Bind password", SERVICE_PASSWORD).await;
    browser.fill("Base DN", PEOPLE_DN).await;
    browser.screenshot("panel-new-directory").await;
    browser.click("Test connection").await;
    browser
        .wait_for_text(&format!(
            "Bound as the service account at {} and read the base DN.",
            slapd.url
        ))
        .await;
    assert_eq!(panel.value_of("Bind password").await, "", "never sent back");

    browser.click("Preview users").await;
    let total = slapd.fixture.total_people();
    browser
        .wait_for_text(&format!("{total} people found."))
        .await;
    assert!(
        browser
            .text()
            .await
            .contains(&format!("Server that answered: {}", slapd.url))
    );
    let people = browser.text_of("#check table").await;
    assert!(people.contains(ALICE.0), "{people}");
    browser.screenshot("panel-directory-preview").await;

    browser.click("Save").await;
    browser.wait_for_text("Directory “Example” created.").await;
    assert!(
        panel
            .path()
            .await
            .starts_with("/admin/settings/directories/")
    );
    browser.screenshot("panel-directory").await;
    let directories = panel.api_get("/directories").await;
    let saved = &directories["items"][0];
    assert_eq!(saved["name"], "Example");
    assert_eq!(saved["login_attributes"], serde_json::json!(["uid"]));
    assert_eq!(saved["id_attribute"], "entryUUID");
    assert_eq!(saved["urls"][0], slapd.url.as_str());
    assert!(!browser.text().await.contains(SERVICE_PASSWORD));
    panel.finish().await;
}
