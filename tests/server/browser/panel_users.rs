//! Users in a real browser: an administrator creates a user through the panel's forms.

use crate::helpers::panel::Panel;

#[tokio::test]
async fn an_administrator_creates_a_user_and_a_mistake_keeps_what_was_typed() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;

    browser.click("Users").await;
    browser.wait_for_path("/admin/users").await;
    browser.wait_for_text("No users yet.").await;
    browser.screenshot("panel-users-empty").await;
    browser.click("New user").await;
    browser.wait_for_path("/admin/users/new").await;

    browser.fill("Login", "jdoe").await;
    browser.fill("First name", "Jane").await;
    browser.fill("Last name", "Doe").await;
    browser.fill("Email", "jane.doe@example.com").await;
    // A slip of the finger: letters in the phone number.
    browser.fill("Phone", "+49 151 2345 67x8").await;
    browser.screenshot("panel-new-user").await;
    browser.click("Create user").await;

    // The form comes back with the mistake marked, and everything else as it was typed.
    browser
        .wait_for_text("Nothing was saved: correct the fields marked below.")
        .await;
    let note = browser.text_of(".field-error").await;
    assert!(!note.is_empty(), "the phone field says what is wrong");
    browser.screenshot("panel-new-user-mistake").await;
    panel.expect_form_rejected("/admin/users").await;
    assert_eq!(panel.value_of("Login").await, "jdoe");
    assert_eq!(panel.value_of("First name").await, "Jane");
    assert_eq!(panel.value_of("Last name").await, "Doe");
    assert_eq!(panel.value_of("Email").await, "jane.doe@example.com");
    assert_eq!(panel.value_of("Phone").await, "+49 151 2345 67x8");

    browser.fill("Phone", "+49 151 2345 678").await;
    browser.click("Create user").await;
    browser.wait_for_text("User jdoe created.").await;
    assert_eq!(panel.flash().await, "User jdoe created.");

    // The user's page, with what was typed (the phone in international form).
    let user = panel.api_get("/users/jdoe").await;
    let id = user["id"].as_i64().expect("the user's id");
    assert_eq!(panel.path().await, format!("/admin/users/{id}"));
    assert_eq!(user["first_name"], "Jane");
    assert_eq!(user["last_name"], "Doe");
    assert_eq!(user["email"], "jane.doe@example.com");
    assert_eq!(user["phone"], "+491512345678");
    assert_eq!(user["enabled"], true);
    assert_eq!(user["has_password"], false);
    let page = browser.text().await;
    for shown in [
        "User jdoe",
        "Jane Doe",
        "jane.doe@example.com",
        "+491512345678",
        "No tokens assigned.",
        "Not assigned to any resource.",
    ] {
        assert!(
            page.contains(shown),
            "the user's page shows {shown:?}:\n{page}"
        );
    }
    browser.screenshot("panel-user-created").await;

    // The list has them now; the flash was shown once only.
    browser.click("Users").await;
    browser.wait_for_text("1 user").await;
    let list = browser.text().await;
    assert!(list.contains("jdoe") && list.contains("Jane Doe"), "{list}");
    assert!(!list.contains("User jdoe created."), "{list}");
    browser.screenshot("panel-users-one").await;

    panel.finish().await;
}
