//! The admin pages in a real browser: setup, login, logout.

use crate::helpers::app::spawn_app;
use crate::helpers::browser::Browser;
use crate::helpers::otp::unix_now;

const PASSWORD: &str = "correct horse battery";

/// The 6-digit code of the authenticator app for `step`.
fn code_for_step(secret: &[u8], step: u64) -> String {
    otpgate::otp::hotp(secret, otpgate::otp::Algorithm::Sha1, 6, step)
}

#[tokio::test]
async fn first_run_setup_with_totp_then_logout_and_login_again_in_a_browser() {
    let app = spawn_app().await;
    let Some(browser) = Browser::start().await else {
        return;
    };

    // The setup link from the server log, as the operator would open it.
    browser
        .goto(app.setup_link.as_deref().expect("a setup link"))
        .await;
    browser.wait_for_path("/setup").await;
    browser.screenshot("setup").await;
    browser.fill("Login name", "alice").await;
    browser.fill("Password", PASSWORD).await;
    browser.fill("Password again", PASSWORD).await;
    browser.click("Next").await;

    // The app cannot scan here, so it takes the key by hand, as a person without a camera would.
    browser.wait_for_path("/setup/totp").await;
    browser.click("Cannot scan? Enter the key by hand").await;
    let key = browser.text_of("code.secret").await;
    let secret = otpgate::otp::decode_base32_secret(&key).expect("a base32 key on the page");
    browser.screenshot("setup-totp").await;
    let setup_step = unix_now() / 30;
    browser
        .fill("Code from the app", &code_for_step(&secret, setup_step))
        .await;
    browser.click("Confirm").await;

    browser.wait_for_path("/admin").await;
    browser
        .wait_for_text("Authentications in the last 24 hours")
        .await;
    let dashboard = browser.text().await;
    assert!(dashboard.contains("Dashboard"), "{dashboard}");
    assert!(dashboard.contains("alice"), "the administrator is named");
    browser.screenshot("dashboard").await;

    browser.click("Log out").await;
    browser.wait_for_path("/admin/login").await;
    browser.screenshot("login").await;

    // The setup's code is used up. Rather than wait up to 30 s for the app's next code, take
    // it now: the server accepts a code one step ahead.
    let code = code_for_step(&secret, (unix_now() / 30).max(setup_step + 1));
    browser.log_in(&app, "alice", PASSWORD, &code).await;
    browser
        .wait_for_text("Authentications in the last 24 hours")
        .await;

    let problems = browser.console_problems().await;
    assert!(
        problems.is_empty(),
        "the pages ran without script errors, failed loads or CSP reports: {problems:#?}"
    );

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_browser_console_shows_what_the_content_security_policy_blocks() {
    let app = spawn_app().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.goto(&app.url("/admin/login")).await;
    browser.wait_for_text("Log in").await;
    let problems = browser.console_problems().await;
    assert!(problems.is_empty(), "{problems:#?}");

    // So an empty list in other tests means something: an image from elsewhere is refused.
    browser
        .client
        .execute(
            "const image = document.createElement('img'); \
             image.src = 'https://elsewhere.invalid/pixel.png'; \
             document.body.append(image);",
            vec![],
        )
        .await
        .expect("the script runs");
    let mut problems = Vec::new();
    for _ in 0..50 {
        problems.extend(browser.console_problems().await);
        if !problems.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        problems.len() == 1
            && problems[0].contains("violates the following Content Security Policy"),
        "{problems:#?}"
    );

    browser.close().await;
    app.stop().await;
}
