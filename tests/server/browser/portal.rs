//! The self-service portal in a real browser: an administrator enables it for a resource with
//! MAIL and BOT enrolment in the admin panel; a user opens the portal's address, logs in with a
//! password, enrols a MAIL token with the emailed code and a BOT token whose page turns active
//! by itself once the bot got `/start <code>`.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::delivery::mail_settings;
use crate::helpers::panel::Panel;
use crate::helpers::smtp_sink::{Mode, SmtpSink, code_in};
use crate::helpers::telegram_api::TelegramApi;

const USER_PASSWORD: &str = "alice's long password";

async fn api(panel: &Panel, method: Method, path: &str, body: Value) -> Value {
    let response = panel
        .app
        .api(method.clone(), path, &panel.api_key)
        .json(&body)
        .send()
        .await
        .expect("the API answers");
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

/// Mail to the SMTP listener, the bot against the Bot-API-shaped server (and running), a
/// resource `vpn` and its user alice.
async fn set_up(panel: &Panel) -> (SmtpSink, TelegramApi) {
    let sink = SmtpSink::start(Mode::Plain).await;
    api(
        panel,
        Method::PUT,
        "/settings/mail",
        mail_settings(sink.port, "none", None),
    )
    .await;
    let telegram = TelegramApi::start().await;
    api(
        panel,
        Method::PUT,
        "/settings/bot",
        json!({"token": "123456:TEST-bot_token", "api_url": telegram.url, "poll_timeout_seconds": 1}),
    )
    .await;
    let deadline = std::time::Instant::now() + crate::helpers::browser::TIMEOUT;
    loop {
        let bot = api(panel, Method::GET, "/settings/bot", Value::Null).await;
        if bot["status"]["state"] == "running" && bot["status"]["username"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bot never ran: {bot}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api(panel, Method::POST, "/resources", json!({"name": "vpn"})).await;
    api(
        panel,
        Method::POST,
        "/users",
        json!({"login": "alice", "password": USER_PASSWORD, "email": "alice@example.com"}),
    )
    .await;
    api(
        panel,
        Method::POST,
        "/resources/vpn/users",
        json!({"user": "alice"}),
    )
    .await;
    (sink, telegram)
}

/// Turns on vpn's portal at `/portal/vpn` in the admin panel's Self-Service tab with the
/// boxes `ticks` (Allowed Actions and kinds); the address to send to users.
async fn enable_self_service(panel: &Panel, ticks: &[&str]) -> String {
    let browser = &panel.browser;
    browser.click("Resources").await;
    browser.wait_for_path("/admin/resources").await;
    browser.click("vpn").await;
    browser.click("Self-Service").await;
    browser
        .wait_for_text("Everything is off until you allow it.")
        .await;
    panel.tick("Self-service portal enabled").await;
    browser.fill("Self-Service Page Address", "vpn").await;
    for tick in ticks {
        panel.tick(tick).await;
    }
    browser.click("Save").await;
    browser.wait_for_text("Self-Service saved:").await;
    let address = panel.value_of("Page address to send to users").await;
    assert_eq!(address, format!("{}/portal/vpn", panel.app.address));
    address
}

#[tokio::test]
async fn a_user_enrols_mail_and_bot_tokens_in_the_portal_an_administrator_enabled() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let (sink, telegram) = set_up(&panel).await;
    let browser = &panel.browser;

    // The administrator enables self-service for vpn with MAIL and BOT enrolment.
    let address = enable_self_service(&panel, &["Enroll Token", "MAIL", "BOT"]).await;
    browser
        .screenshot("portal-admin-enables-self-service")
        .await;

    // The user opens the address and logs in with a password.
    browser.goto(&address).await;
    browser
        .wait_for_text("Log in to manage your second factors")
        .await;
    browser.screenshot("portal-login").await;
    browser.fill("Login name", "alice").await;
    browser.click("Next").await;
    browser.wait_for_path("/portal/vpn/login/verify").await;
    browser.fill("Password", USER_PASSWORD).await;
    browser.click("Log in").await;
    browser.wait_for_path("/portal/vpn").await;
    browser.wait_for_text("2nd Factor").await;
    browser
        .wait_for_text("You have no second factor for vpn yet.")
        .await;
    browser.screenshot("portal-second-factor-empty").await;

    // Assign New → MAIL → the emailed code → active.
    browser.click("Assign New").await;
    browser.wait_for_path("/portal/vpn/tokens/new").await;
    browser.screenshot("portal-add-token-kinds").await;
    browser.click("MAIL").await;
    browser.wait_for_path("/portal/vpn/tokens/new/mail").await;
    browser.fill("Name", "Work mail").await;
    assert_eq!(panel.value_of("Email address").await, "alice@example.com");
    browser.screenshot("portal-add-mail").await;
    browser.click("Save").await;
    browser.wait_for_text("We have sent you a code").await;
    let mail = sink.wait_for(1, crate::helpers::browser::TIMEOUT).await;
    assert_eq!(mail[0].to, vec!["alice@example.com".to_string()]);
    let code = code_in(&mail[0].data).expect("a code in the email");
    browser.fill("Code", &code).await;
    browser.screenshot("portal-activate-mail").await;
    browser.click("Activate").await;
    browser.wait_for_path("/portal/vpn").await;
    browser.wait_for_text("“Work mail” is active.").await;
    let row = browser.text_of("table.portal-tokens tbody tr").await;
    assert!(
        row.contains("Work mail") && row.contains("MAIL") && row.contains("Active"),
        "{row}"
    );
    browser.screenshot("portal-mail-active").await;

    // Assign New → BOT → the QR code; the bot gets /start and the page turns by itself.
    browser.click("Assign New").await;
    browser.click("BOT").await;
    browser.wait_for_path("/portal/vpn/tokens/new/bot").await;
    browser.fill("Name", "Telegram").await;
    browser.click("Next").await;
    browser.wait_for_text("Waiting for the bot").await;
    let qr = browser
        .client
        .find(Locator::Css("img.qr, img[src^='data:image/svg+xml']"))
        .await
        .expect("the QR code");
    assert!(
        qr.is_displayed().await.expect("visible"),
        "the QR code shows"
    );
    let link = browser.text_of("a.deep-link").await;
    assert!(link.starts_with("https://t.me/"), "{link}");
    let command = browser.text_of("code.command").await;
    let activation = command
        .strip_prefix("/start ")
        .expect("the /start command")
        .trim()
        .to_string();
    browser.screenshot("portal-bot-qr").await;
    // On a desktop the QR code is for the phone; on a phone, Open Telegram opens the link.
    let open = browser
        .client
        .find(Locator::Css("a.open-telegram"))
        .await
        .expect("the Open Telegram button");
    assert!(!open.is_displayed().await.expect("shown or not"));
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    assert!(open.is_displayed().await.expect("shown or not"));
    assert_eq!(open.text().await.expect("its text"), "Open Telegram");
    assert_eq!(
        open.attr("href").await.expect("its link").as_deref(),
        Some(link.as_str())
    );
    browser.screenshot("portal-phone-bot-qr").await;
    browser
        .client
        .set_window_size(1280, 900)
        .await
        .expect("a desktop window");
    telegram.user_writes(4242, 4242, &format!("/start {activation}"));
    // Nobody presses anything: the page's script sees the token active and opens 2nd Factor,
    // with the same notice as MAIL's.
    browser.wait_for_path("/portal/vpn").await;
    browser
        .wait_for_text("“Telegram” is active. You are all set.")
        .await;
    let mut rows = Vec::new();
    for row in browser
        .client
        .find_all(Locator::Css("table.portal-tokens tbody tr"))
        .await
        .expect("the token rows")
    {
        rows.push(row.text().await.expect("a row's text"));
    }
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[1].contains("Telegram") && rows[1].contains("BOT") && rows[1].contains("Active"),
        "{rows:?}"
    );
    browser.screenshot("portal-bot-active").await;

    telegram.stop().await;
    panel.finish().await;
}

#[tokio::test]
async fn a_user_with_an_app_and_every_token_action_manages_it_on_its_own_page_on_a_phone_and_a_desktop()
 {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let (_sink, telegram) = set_up(&panel).await;
    let browser = &panel.browser;
    let app = api(
        &panel,
        Method::POST,
        "/tokens",
        json!({"kind": "TOTP", "user": "alice", "resource": "vpn", "name": "Phone app",
               "secret": crate::helpers::portal::SECRET_HEX, "secret_format": "hex"}),
    )
    .await;
    let app_page = format!("/portal/vpn/tokens/{}", app["id"]);
    let address = enable_self_service(
        &panel,
        &[
            "Assign Existing Token",
            "Unassign Token",
            "Reissue Token",
            "Token Synchronization",
            "Enable/Disable Token",
            "Rename Token",
            "Set PIN",
            "Remove PIN",
        ],
    )
    .await;

    // A phone-sized window.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    browser.goto(&address).await;
    browser.fill("Login name", "alice").await;
    browser.click("Next").await;
    browser.wait_for_path("/portal/vpn/login/verify").await;
    browser.fill("Password", USER_PASSWORD).await;
    browser.click("Log in").await;
    browser.wait_for_text("One-time password").await;
    browser
        .fill("One-time password", &crate::helpers::portal::totp_now())
        .await;
    browser.click("Log in").await;
    browser.wait_for_path("/portal/vpn").await;
    browser.wait_for_text("Phone app").await;
    // One compact row: what the token is, and one link to manage it; no forms in the list.
    let row = browser.text_of("table.portal-tokens tbody tr").await;
    assert!(
        row.contains("Phone app") && row.contains("TOTP") && row.contains("Active"),
        "{row}"
    );
    assert!(row.contains("Manage"), "{row}");
    let controls = browser
        .client
        .find_all(Locator::Css(
            "table.portal-tokens input, table.portal-tokens button, table.portal-tokens select",
        ))
        .await
        .expect("the list's controls");
    assert!(controls.is_empty(), "no buttons or fields in the list");
    for elsewhere in ["Set PIN", "Synchronize", "Reissue", "Rename", "Disable"] {
        assert!(!browser.text().await.contains(elsewhere), "{elsewhere}");
    }
    assert!(browser.text().await.contains("Assign Existing Token"));
    browser.screenshot("portal-phone-second-factor-list").await;
    panel.assert_fits_the_width("the 2nd Factor list").await;

    browser.click("Manage Phone app").await;
    browser.wait_for_path(&app_page).await;
    browser.wait_for_text("Manage “Phone app”").await;
    let page = browser.text().await;
    for action in ["Rename", "Set PIN", "Synchronize", "Reissue"] {
        assert!(page.contains(action), "{action}: {page}");
    }
    // The last active token may not be taken away here: the page says why instead of offering
    // buttons that could only be refused.
    assert!(
        page.contains("You cannot disable this token: it is your last active second factor here"),
        "{page}"
    );
    assert!(page.contains("You cannot unassign this token"), "{page}");
    for refused in ["Disable", "Unassign…"] {
        let buttons = browser
            .client
            .find_all(Locator::XPath(&format!(
                "//*[(self::button or self::a) and normalize-space(.)='{refused}']"
            )))
            .await
            .expect("buttons");
        assert!(buttons.is_empty(), "no {refused} button");
    }
    browser.screenshot("portal-phone-manage-token").await;
    panel.assert_fits_the_width("a token's own page").await;

    browser.fill("New PIN", "2468").await;
    browser.click("Set PIN").await;
    browser.wait_for_text("“Phone app” has a PIN now").await;
    let tokens = api(&panel, Method::GET, "/tokens", Value::Null).await;
    assert_eq!(tokens["items"][0]["has_pin"], true);

    // A second token: now the app may be disabled or unassigned, on a desktop.
    api(
        &panel,
        Method::POST,
        "/tokens",
        json!({"kind": "MAIL", "user": "alice", "resource": "vpn", "name": "Work mail"}),
    )
    .await;
    browser
        .client
        .set_window_size(1280, 900)
        .await
        .expect("a desktop window");
    browser.goto(&address).await;
    browser.wait_for_text("Work mail").await;
    browser
        .screenshot("portal-desktop-second-factor-list")
        .await;
    browser.click("Manage Phone app").await;
    browser.wait_for_path(&app_page).await;
    browser.wait_for_text("Remove PIN").await;
    let page = browser.text().await;
    assert!(!page.contains("You cannot"), "{page}");
    browser.screenshot("portal-desktop-manage-token").await;

    // Unassign asks first; Keep it changes nothing.
    browser.click("Unassign…").await;
    browser.wait_for_text("Unassign “Phone app”?").await;
    browser
        .screenshot("portal-desktop-unassign-confirmation")
        .await;
    browser.click("Keep it").await;
    browser.wait_for_path(&app_page).await;
    let kept = api(
        &panel,
        Method::GET,
        &format!("/tokens/{}", app["id"]),
        Value::Null,
    )
    .await;
    assert_eq!(kept["user"]["login"], "alice", "{kept}");
    browser.click("Unassign…").await;
    browser.wait_for_text("Unassign “Phone app”?").await;
    browser.click("Unassign it").await;
    browser.wait_for_path("/portal/vpn").await;
    browser
        .wait_for_text("“Phone app” is no longer yours.")
        .await;
    let gone = api(
        &panel,
        Method::GET,
        &format!("/tokens/{}", app["id"]),
        Value::Null,
    )
    .await;
    assert!(gone["user"].is_null(), "{gone}");

    telegram.stop().await;
    panel.finish().await;
}

/// Logs alice in to the portal at `address` with her password (she has no token yet).
async fn log_in_alice(panel: &Panel, address: &str) {
    let browser = &panel.browser;
    browser.goto(address).await;
    browser.fill("Login name", "alice").await;
    browser.click("Next").await;
    browser.wait_for_path("/portal/vpn/login/verify").await;
    browser.fill("Password", USER_PASSWORD).await;
    browser.click("Log in").await;
    browser.wait_for_text("2nd Factor").await;
}

fn pending_tokens(panel: &Panel) -> i64 {
    crate::helpers::api::count(
        &panel.app,
        "SELECT COUNT(*) FROM tokens WHERE state = 'pending'",
    )
}

#[tokio::test]
async fn reloading_the_app_qr_page_twice_leaves_one_pending_token_with_its_key_until_cancelled() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let (_sink, telegram) = set_up(&panel).await;
    let browser = &panel.browser;
    let address = enable_self_service(&panel, &["Enroll Token", "TOTP", "BOT"]).await;
    log_in_alice(&panel, &address).await;

    browser.click("Assign New").await;
    browser.click("Authenticator app").await;
    browser.wait_for_path("/portal/vpn/tokens/new/totp").await;
    browser.fill("Name", "Phone app").await;
    browser.click("Next").await;
    browser.wait_for_text("Scan this QR code").await;
    let page = panel.path().await;
    assert!(page.ends_with("/activate"), "post, redirect, get: {page}");
    let key = browser.text_of("code.secret").await;
    for _ in 0..2 {
        browser.client.refresh().await.expect("a reload");
        browser.wait_for_text("Scan this QR code").await;
        assert_eq!(browser.text_of("code.secret").await, key, "the same key");
    }
    assert_eq!(
        pending_tokens(&panel),
        1,
        "one pending token after two reloads"
    );

    // A wrong first code: the QR code and the key stay.
    browser.fill("Code shown by the app", "000000").await;
    browser.click("Activate").await;
    browser.wait_for_text("The code is not right").await;
    panel.expect_form_rejected(&page).await;
    assert_eq!(browser.text_of("code.secret").await, key);
    let qr = browser
        .client
        .find(Locator::Css("img.qr"))
        .await
        .expect("the QR code");
    assert!(qr.is_displayed().await.expect("visible"));
    browser.screenshot("portal-app-wrong-first-code").await;

    // Starting again resumes the same enrolment.
    browser.goto(&format!("{address}/tokens/new/totp")).await;
    browser.fill("Name", "Phone app").await;
    browser.click("Next").await;
    browser
        .wait_for_text("started adding this token already")
        .await;
    assert_eq!(browser.text_of("code.secret").await, key);
    assert_eq!(pending_tokens(&panel), 1);

    browser.click("Cancel").await;
    browser.wait_for_text("The new token was cancelled.").await;
    assert_eq!(pending_tokens(&panel), 0);
    browser.screenshot("portal-enrolment-cancelled").await;

    // The BOT page too: two reloads, the same activation code, one pending token.
    browser.click("Assign New").await;
    browser.click("BOT").await;
    browser.fill("Name", "Telegram").await;
    browser.click("Next").await;
    browser.wait_for_text("Waiting for the bot").await;
    let command = browser.text_of("code.command").await;
    for _ in 0..2 {
        browser.client.refresh().await.expect("a reload");
        browser.wait_for_text("Waiting for the bot").await;
        assert_eq!(browser.text_of("code.command").await, command);
    }
    assert_eq!(pending_tokens(&panel), 1);
    browser.screenshot("portal-bot-qr-reloaded").await;

    telegram.stop().await;
    panel.finish().await;
}
