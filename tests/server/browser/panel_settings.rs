//! Settings in a real browser: the mail server set up in the form, then a test email that the
//! test's own SMTP listener receives.

use std::time::Duration;

use crate::helpers::panel::Panel;
use crate::helpers::smtp_sink::{Mode, SmtpSink};

#[tokio::test]
async fn mail_settings_saved_in_the_browser_send_a_test_email_to_the_smtp_listener() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;

    browser.click("Settings").await;
    browser.wait_for_path("/admin/settings").await;
    browser.click("Mail").await;
    panel.fill_in("mail", "SMTP server", "127.0.0.1").await;
    panel.fill_in("mail", "Port", &sink.port.to_string()).await;
    panel
        .fill_in(
            "mail",
            "Connection security",
            "None (a relay on a trusted network only)",
        )
        .await;
    panel.fill_in("mail", "Login", "otpgate").await;
    panel.fill_in("mail", "Password", "smtp password").await;
    panel
        .fill_in("mail", "Sender address", "otp@example.com")
        .await;
    panel.fill_in("mail", "Sender name", "OTP Gate").await;
    panel.fill_in("mail", "Timeout (seconds)", "5").await;
    // A login over a connection without TLS is refused unless allowed in so many words.
    panel
        .tick("Allow the login and password in plaintext")
        .await;
    browser.screenshot("panel-settings-mail-filled").await;
    browser.click("Save mail settings").await;

    browser
        .wait_for_text("Mail settings saved. The next email uses them.")
        .await;
    // The page opens at the mail section, and the confirmation is in sight there.
    panel.assert_in_view("p.flash").await;
    // The section warns that the login crosses the network in clear.
    let warning = browser.text_of("section#mail p.warning").await;
    assert!(
        warning.contains("cross the network unencrypted"),
        "{warning}"
    );
    // The password is stored, and only said to be.
    assert_eq!(browser.text_of("section#mail .secret-set").await, "set");
    assert!(!browser.text().await.contains("smtp password"));
    let stored = panel.api_get("/settings/mail").await;
    assert_eq!(stored["host"], "127.0.0.1");
    assert_eq!(stored["port"], sink.port);
    assert_eq!(stored["security"], "none");
    assert_eq!(stored["username"], "otpgate");
    assert_eq!(stored["from_address"], "otp@example.com");
    assert_eq!(stored["from_name"], "OTP Gate");
    assert!(!stored.to_string().contains("smtp password"), "{stored}");
    browser.screenshot("panel-settings-mail-saved").await;

    browser
        .fill("Send a test email to", "jane@example.com")
        .await;
    browser.click("Send test email").await;

    // The answer of the SMTP server, where the person is looking.
    browser
        .wait_for_text("Sent to jane@example.com. The server answered:")
        .await;
    let answer = browser.text_of("section#mail p.flash").await;
    assert!(answer.contains("Ok: queued as SINK1"), "{answer}");
    panel.assert_in_view("section#mail p.flash").await;
    browser.screenshot("panel-settings-mail-test-sent").await;

    let received = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "one test email");
    let email = &received[0];
    assert_eq!(email.from, "otp@example.com");
    assert_eq!(email.to, ["jane@example.com"]);
    assert_eq!(email.login.as_deref(), Some("otpgate"));
    assert!(email.data.contains("OTP Gate"), "{}", email.data);

    panel.finish().await;
}
