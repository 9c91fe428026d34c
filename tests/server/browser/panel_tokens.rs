//! Tokens in a real browser: Assign Token → New → MAIL on a user's page creates the token and
//! assigns it in one step; Assign Token → Existing by a serial in any case, with the address of
//! a MAIL token confirmed; a BOT token's page names its chat until unassigning forgets it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::browser::TIMEOUT;
use crate::helpers::panel::Panel;
use crate::helpers::telegram_api::TelegramApi;

#[tokio::test]
async fn a_mail_token_added_from_the_users_page_is_assigned_to_the_user_in_one_step() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    panel
        .api_create(
            "/users",
            json!({"login": "jdoe", "first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"}),
        )
        .await;

    browser.click("Users").await;
    browser.wait_for_path("/admin/users").await;
    browser.click("jdoe").await;
    browser.wait_for_text("No tokens assigned.").await;
    browser.click("Assign Token").await;
    browser.wait_for_text("Assign Token to jdoe").await;
    browser.screenshot("panel-user-assign-token").await;
    browser.click("MAIL: codes by email").await;

    browser.wait_for_path("/admin/tokens/new/mail").await;
    browser
        .wait_for_text("The new token is assigned to jdoe.")
        .await;
    browser.fill("Token name", "Jane's mail").await;
    browser
        .fill("Email address", "jane.private@example.com")
        .await;
    browser.fill("OTP length", "8 digits").await;
    browser.screenshot("panel-add-token-mail").await;
    browser.click("Save").await;

    // The new token's page says what happened, and shows its user.
    browser.wait_for_text("created and assigned to jdoe.").await;
    let user = panel.api_get("/users/jdoe").await;
    let tokens = user["tokens"].as_array().expect("the user's tokens");
    assert_eq!(tokens.len(), 1, "{user}");
    let (token_id, serial) = (
        tokens[0]["id"].as_i64().expect("an id"),
        tokens[0]["serial"].as_str().expect("a serial").to_string(),
    );
    assert_eq!(panel.path().await, format!("/admin/tokens/{token_id}"));
    assert_eq!(
        panel.flash().await,
        format!("MAIL token {serial} created and assigned to jdoe.")
    );
    let token = panel.api_get(&format!("/tokens/{token_id}")).await;
    assert_eq!(token["kind"], "MAIL");
    assert_eq!(token["name"], "Jane's mail");
    assert_eq!(token["destination"], "jane.private@example.com");
    assert_eq!(token["digits"], 8);
    assert_eq!(token["state"], "active");
    assert_eq!(token["user"]["login"], "jdoe");
    browser.screenshot("panel-token-mail").await;

    // From the token back to its user, whose page lists it.
    browser.click("jdoe").await;
    browser
        .wait_for_path(&format!("/admin/users/{}", user["id"]))
        .await;
    let page = browser.text().await;
    assert!(!page.contains("No tokens assigned."), "{page}");
    let row = browser.text_of("table tbody tr").await;
    for shown in [serial.as_str(), "Jane's mail", "MAIL", "active", "enabled"] {
        assert!(
            row.contains(shown),
            "the token's row shows {shown:?}: {row}"
        );
    }
    browser.screenshot("panel-user-with-token").await;

    panel.finish().await;
}

/// The Bot-API-shaped server, with the panel's bot set up against it and running.
async fn with_bot(panel: &Panel) -> TelegramApi {
    let telegram = TelegramApi::start().await;
    let response = panel
        .app
        .api(reqwest::Method::PUT, "/settings/bot", &panel.api_key)
        .json(&json!({"token": "123456:TEST-bot_token", "api_url": telegram.url, "poll_timeout_seconds": 1}))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + TIMEOUT;
    while panel.api_get("/settings/bot").await["status"]["state"] != "running" {
        assert!(Instant::now() < deadline, "the bot never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    telegram
}

#[tokio::test]
async fn a_bot_tokens_page_names_its_chat_until_unassigning_forgets_it() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let telegram = with_bot(&panel).await;
    let browser = &panel.browser;
    panel.api_create("/users", json!({"login": "alice"})).await;
    let token = panel
        .api_create(
            "/tokens",
            json!({"kind": "BOT", "name": "Alice's phone", "user": "alice"}),
        )
        .await;
    let id = token["id"].as_i64().expect("an id");
    let code = token["activation"]["code"].as_str().expect("a code");
    telegram.user_writes(4242, 77, &format!("/start {code}"));
    let deadline = Instant::now() + TIMEOUT;
    while panel.api_get(&format!("/tokens/{id}")).await["state"] != "active" {
        assert!(Instant::now() < deadline, "never active");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    browser
        .goto(&format!("{}/admin/tokens/{id}", panel.app.address))
        .await;
    browser.wait_for_text("Telegram chat").await;
    let facts = browser.text_of("dl.facts").await;
    assert!(facts.contains("A, user id 77, chat id 4242"), "{facts}");
    browser.screenshot("panel-token-bot-chat").await;

    browser.click("Unassign from user").await;
    browser
        .wait_for_text("none: waiting for an activation")
        .await;
    let token = panel.api_get(&format!("/tokens/{id}")).await;
    assert_eq!(token["state"], "pending", "{token}");
    assert!(token["user"].is_null(), "{token}");
    browser.screenshot("panel-token-bot-unassigned").await;

    telegram.stop().await;
    panel.finish().await;
}

#[tokio::test]
async fn an_existing_mail_token_typed_in_lower_case_is_assigned_to_the_address_the_admin_confirms()
{
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    let bob = panel
        .api_create(
            "/users",
            json!({"login": "bob", "email": "bob@example.com"}),
        )
        .await;
    let token = panel
        .api_create(
            "/tokens",
            json!({"kind": "MAIL", "serial": "MAIL-OLD-1", "destination": "alice@example.com"}),
        )
        .await;
    let id = token["id"].as_i64().expect("an id");

    browser
        .goto(&format!(
            "{}/admin/users/{}/assign",
            panel.app.address, bob["id"]
        ))
        .await;
    browser.wait_for_text("Assign Token to bob").await;
    browser.fill("Or its serial", "mail-old-1").await;
    browser.screenshot("panel-assign-existing-by-serial").await;
    browser.click("Assign").await;
    browser
        .wait_for_text("Where should its codes go for bob?")
        .await;
    assert!(browser.text().await.contains("alice@example.com"));
    assert_eq!(panel.value_of("Email address").await, "bob@example.com");
    assert!(
        panel.api_get(&format!("/tokens/{id}")).await["user"].is_null(),
        "nothing is assigned before the address is confirmed"
    );
    browser
        .screenshot("panel-assign-existing-confirm-address")
        .await;
    browser.fill("Email address", "bob.desk@example.com").await;
    browser.click("Assign").await;
    browser
        .wait_for_text("Token MAIL-OLD-1 assigned to bob.")
        .await;
    let token = panel.api_get(&format!("/tokens/{id}")).await;
    assert_eq!(token["user"]["login"], "bob");
    assert_eq!(token["destination"], "bob.desk@example.com");

    panel.finish().await;
}

#[tokio::test]
async fn assign_token_from_the_users_list_a_mail_address_changed_and_a_bot_test_message() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    let telegram = TelegramApi::start().await;
    let response = panel
        .app
        .api(reqwest::Method::PUT, "/settings/bot", &panel.api_key)
        .json(&json!({"token": "123456:TEST-bot_token", "api_url": telegram.url, "poll_timeout_seconds": 1}))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status(), 200);
    panel
        .api_create(
            "/users",
            json!({"login": "kim", "email": "kim@example.com"}),
        )
        .await;
    let token = panel
        .api_create(
            "/tokens",
            json!({"kind": "MAIL", "name": "Kim's mail", "destination": "kim@example.com"}),
        )
        .await;

    // Assign Token straight from the list.
    browser.click("Users").await;
    browser.wait_for_path("/admin/users").await;
    browser.screenshot("panel-users-list-assign-token").await;
    browser.click("Assign Token").await;
    browser.wait_for_text("Assign Token to kim").await;
    assert!(
        browser
            .text()
            .await
            .contains(token["serial"].as_str().expect("a serial"))
    );

    // The token's address, changed on its page.
    browser
        .goto(&format!(
            "{}/admin/tokens/{}",
            panel.app.address, token["id"]
        ))
        .await;
    browser.fill("Codes go to", "kim.new@example.com").await;
    browser.click("Change address").await;
    browser
        .wait_for_text("Address changed: the next codes go there.")
        .await;
    let changed = panel.api_get(&format!("/tokens/{}", token["id"])).await;
    assert_eq!(changed["destination"], "kim.new@example.com");
    browser.screenshot("panel-token-address-changed").await;

    // A test message through the bot, to a chat id.
    browser.click("Settings").await;
    browser.wait_for_path("/admin/settings").await;
    browser.fill("Send a test message to chat", "4242").await;
    browser.click("Send test message").await;
    browser.wait_for_text("Sent to 4242.").await;
    assert_eq!(telegram.sent_count(), 1);
    assert_eq!(telegram.sent()[0].chat_id, 4242);
    browser.screenshot("panel-settings-telegram-test").await;

    telegram.stop().await;
    panel.finish().await;
}
