//! Resources in a real browser: creating one, its approval settings, Assign → Token with User,
//! and the Self-Service tab.

use serde_json::json;

use crate::helpers::panel::Panel;

/// A user `login` with a MAIL token through the API; returns the token's serial.
async fn user_with_mail_token(panel: &Panel, login: &str) -> String {
    panel
        .api_create(
            "/users",
            json!({"login": login, "email": format!("{login}@example.com")}),
        )
        .await;
    let token = panel
        .api_create(
            "/tokens",
            json!({"kind": "MAIL", "name": format!("{login}'s mail"), "user": login}),
        )
        .await;
    token["serial"].as_str().expect("a serial").to_string()
}

#[tokio::test]
async fn a_resource_created_in_the_browser_gets_a_token_with_its_user() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    let serial = user_with_mail_token(&panel, "jdoe").await;
    // A second token with a user, which stays unchosen.
    let other_serial = user_with_mail_token(&panel, "rroe").await;

    browser.click("Resources").await;
    browser.wait_for_path("/admin/resources").await;
    browser.wait_for_text("No resources yet.").await;
    browser.click("New resource").await;
    browser.wait_for_path("/admin/resources/new").await;
    browser.fill("Name", "vpn").await;
    browser.fill("Description", "The office VPN").await;
    browser.fill("Failed-attempt limit", "4").await;
    browser.screenshot("panel-new-resource").await;
    browser.click("Save").await;

    browser.wait_for_text("Resource “vpn” created.").await;
    let resource = panel.api_get("/resources/vpn").await;
    let id = resource["id"].as_i64().expect("the resource's id");
    assert_eq!(panel.path().await, format!("/admin/resources/{id}"));
    assert_eq!(panel.flash().await, "Resource “vpn” created.");
    assert_eq!(resource["description"], "The office VPN");
    assert_eq!(resource["fail_limit"], 4);
    assert_eq!(resource["password_required"], false);
    browser.wait_for_text("No tokens are assigned.").await;

    // Approve in Telegram, on the Overview's form: number matching is on until turned off.
    assert!(panel.is_ticked("Number matching (recommended)").await);
    panel.tick("Approvals allowed").await;
    browser.click("Save").await;
    browser
        .wait_for_text("Resource “vpn” saved: approvals allowed changed.")
        .await;
    assert_eq!(
        panel.api_get("/resources/vpn").await["approvals"],
        json!({"allowed": true, "number_matching": true, "deny_locks": false})
    );
    assert!(panel.is_ticked("Approvals allowed").await);

    browser.click("Assign → Token with User").await;
    browser
        .wait_for_path(&format!("/admin/resources/{id}/assign/tokens"))
        .await;
    browser.wait_for_text(&other_serial).await;
    panel.tick(&serial).await;
    browser.screenshot("panel-resource-assign-tokens").await;
    browser.click("Assign").await;

    browser
        .wait_for_text("Assigned 1 token with their users to “vpn”.")
        .await;
    assert_eq!(panel.path().await, format!("/admin/resources/{id}"));
    let users = browser
        .text_of("section[aria-labelledby='users-heading']")
        .await;
    assert!(
        users.contains("Users (1)") && users.contains("jdoe"),
        "{users}"
    );
    assert!(!users.contains("rroe"), "{users}");
    let tokens = browser
        .text_of("section[aria-labelledby='tokens-heading']")
        .await;
    assert!(
        tokens.contains("Tokens with users (1)")
            && tokens.contains(&serial)
            && tokens.contains("jdoe's mail")
            && tokens.contains("MAIL"),
        "{tokens}"
    );
    assert!(!tokens.contains(&other_serial), "{tokens}");
    browser.screenshot("panel-resource-with-token").await;

    let assigned = panel.api_get("/resources/vpn/tokens").await;
    assert_eq!(
        assigned,
        json!([{
            "id": assigned[0]["id"],
            "serial": serial,
            "name": "jdoe's mail",
            "kind": "MAIL",
            "user": {"id": assigned[0]["user"]["id"], "login": "jdoe"},
        }])
    );
    let detail = panel.api_get("/resources/vpn").await;
    assert_eq!(
        (detail["users"].clone(), detail["tokens"].clone()),
        (json!(1), json!(1))
    );

    // The choice page now shows the token as assigned, ticked and fixed.
    browser.click("Assign → Token with User").await;
    browser.wait_for_text("assigned").await;
    let row = browser.text_of("table tbody tr").await;
    assert!(row.contains(&serial) && row.contains("assigned"), "{row}");

    panel.finish().await;
}

#[tokio::test]
async fn self_service_is_enabled_with_enroll_token_and_mail_enrolment_and_says_what_changed() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    let resource = panel
        .api_create("/resources", json!({"name": "sales-vpn"}))
        .await;
    let id = resource["id"].as_i64().expect("an id");

    browser.click("Resources").await;
    browser.wait_for_path("/admin/resources").await;
    browser.click("sales-vpn").await;
    browser
        .wait_for_path(&format!("/admin/resources/{id}"))
        .await;
    browser.click("Self-Service").await;
    browser
        .wait_for_path(&format!("/admin/resources/{id}/self-service"))
        .await;
    browser
        .wait_for_text("Everything is off until you allow it.")
        .await;
    // All off by default, and no address to send to anyone yet.
    assert!(!panel.is_ticked("Self-service portal enabled").await);
    assert!(!panel.is_ticked("Enroll Token").await);
    assert!(!panel.is_ticked("MAIL").await);
    assert!(
        !browser
            .text()
            .await
            .contains("Page address to send to users")
    );

    panel.tick("Self-service portal enabled").await;
    browser.fill("Self-Service Page Address", "sales").await;
    panel.tick("Enroll Token").await;
    panel.tick("MAIL").await;
    browser.screenshot("panel-self-service-filled").await;
    browser.click("Save").await;

    browser.wait_for_text("Self-Service saved:").await;
    assert_eq!(
        panel.flash().await,
        "Self-Service saved: Self-service enabled; address (none) → sales; \
         allowed Enroll Token; enrolment of MAIL allowed."
    );
    // The address to hand to users, in full, ready to copy.
    assert_eq!(
        panel.value_of("Page address to send to users").await,
        format!("{}/portal/sales", panel.app.address)
    );
    // With JavaScript, a button copies it.
    browser.click("Copy").await;
    browser.wait_for_text("Copied").await;
    // What was saved is what the form shows now, and nothing more.
    assert!(panel.is_ticked("Self-service portal enabled").await);
    assert!(panel.is_ticked("Enroll Token").await);
    assert!(panel.is_ticked("MAIL").await);
    for unticked in [
        "Assign Existing Token",
        "Set PIN",
        "Change Password",
        "SMS",
        "TOTP",
    ] {
        assert!(!panel.is_ticked(unticked).await, "{unticked} stays off");
    }
    assert_eq!(panel.value_of("Self-Service Page Address").await, "sales");
    browser.screenshot("panel-self-service-saved").await;

    // And so it is stored.
    assert_eq!(
        stored_self_service(&panel, id),
        (
            1,
            "sales".to_string(),
            "enroll_token".to_string(),
            "MAIL".to_string()
        )
    );

    // Saving again without a change says so.
    browser.click("Save").await;
    browser
        .wait_for_text("Self-Service saved: nothing changed.")
        .await;

    panel.finish().await;
}

/// Clicks the label `label` (ticking or unticking its box), as a person would.
async fn click_label(panel: &Panel, label: &str) {
    panel
        .browser
        .client
        .find(fantoccini::Locator::XPath(&format!(
            "//label[normalize-space(.)='{label}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("the label {label:?}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {label:?}: {e}"));
}

#[tokio::test]
async fn the_all_toggles_of_the_self_service_tab_tick_their_group_on_the_page_before_save() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    let resource = panel
        .api_create("/resources", json!({"name": "Sales VPN"}))
        .await;
    let id = resource["id"].as_i64().expect("an id");
    browser
        .goto(&format!(
            "{}/admin/resources/{id}/self-service",
            panel.app.address
        ))
        .await;
    browser
        .wait_for_text("Everything is off until you allow it.")
        .await;
    // The address is suggested from the resource's name.
    assert_eq!(
        panel.value_of("Self-Service Page Address").await,
        "sales-vpn"
    );
    let token_actions = [
        "Enroll Token",
        "Assign Existing Token",
        "Unassign Token",
        "Set PIN",
        "Remove PIN",
    ];

    // "All token actions" ticks the group at once, and nothing of the other group.
    panel.tick("All token actions").await;
    for action in token_actions {
        assert!(
            panel.is_ticked(action).await,
            "{action} follows its All box"
        );
    }
    assert!(!panel.is_ticked("Change Password").await);
    assert!(!panel.is_ticked("All actions").await);
    // Unticking one action unticks its group's All box.
    click_label(&panel, "Set PIN").await;
    assert!(!panel.is_ticked("All token actions").await);
    assert!(panel.is_ticked("Remove PIN").await);
    // "All actions" ticks both groups and their boxes; "All kinds" every kind.
    panel.tick("All actions").await;
    assert!(panel.is_ticked("Set PIN").await);
    assert!(panel.is_ticked("All token actions").await);
    assert!(panel.is_ticked("All user actions").await);
    assert!(panel.is_ticked("Change Password").await);
    assert!(
        !panel
            .is_ticked("Users may remove their last second factor")
            .await,
        "not an action"
    );
    panel.tick("All kinds").await;
    for kind in ["MAIL", "SMS", "BOT", "TOTP", "HOTP"] {
        assert!(panel.is_ticked(kind).await, "{kind}");
    }
    // And unticked again, the user group is off; one kind unticked leaves the others.
    click_label(&panel, "All user actions").await;
    assert!(!panel.is_ticked("Change Password").await);
    assert!(!panel.is_ticked("All actions").await);
    assert!(panel.is_ticked("Set PIN").await);
    click_label(&panel, "HOTP").await;
    assert!(!panel.is_ticked("All kinds").await);
    browser.screenshot("panel-self-service-all-toggles").await;
    assert!(browser.console_problems().await.is_empty());

    // Save stores what the page shows.
    browser.click("Save").await;
    browser.wait_for_text("Self-Service saved:").await;
    let (_, address, actions, kinds) = stored_self_service(&panel, id);
    assert_eq!(address, "sales-vpn");
    let mut actions: Vec<&str> = actions.split(',').collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "assign_existing_token",
            "enable_disable_token",
            "enroll_token",
            "reissue_token",
            "remove_pin",
            "rename_token",
            "set_pin",
            "token_synchronization",
            "unassign_token",
        ]
    );
    let mut kinds: Vec<&str> = kinds.split(',').collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["BOT", "MAIL", "SMS", "TOTP"]);
    assert!(panel.is_ticked("All token actions").await);
    assert!(!panel.is_ticked("All user actions").await);

    panel.finish().await;
}

/// The resource's row of `self_service`: enabled, address, allowed actions, enrolment kinds.
fn stored_self_service(panel: &Panel, resource: i64) -> (i64, String, String, String) {
    let connection =
        rusqlite::Connection::open(panel.app.data_dir.join(otpgate::store::DATABASE_FILE))
            .expect("open the database");
    connection
        .query_row(
            "SELECT enabled, address, allowed_actions, enrollment_kinds FROM self_service \
             WHERE resource_id = ?1",
            [resource],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .expect("the resource's self-service row")
}
