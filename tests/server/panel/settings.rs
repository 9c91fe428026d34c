//! The admin panel's settings pages, through real HTTPS with forms and CSRF tokens.

use std::time::Duration;

use crate::helpers::api::count;
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::page::location;
use crate::helpers::sms_gateway::Gateway;
use crate::helpers::smtp_sink::{Mode, SmtpSink};
use crate::helpers::telegram_api::TelegramApi;

async fn settings_page(app: &TestApp) -> String {
    let response = app.get("/admin/settings").await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

fn mail_form<'a>(csrf: &'a str, port: &'a str, host: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("host", host),
        ("port", port),
        ("security", "none"),
        ("username", ""),
        ("password", "smtp-secret-value"),
        ("from_address", "otp@example.com"),
        ("from_name", "OTP Gate"),
        ("timeout_seconds", "5"),
        ("tls_ca_file", ""),
    ]
}

#[tokio::test]
async fn the_settings_pages_need_a_logged_in_administrator() {
    let app = spawn_app().await;
    let response = app.get("/admin/settings").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/login");
    for path in [
        "/admin/settings/general",
        "/admin/settings/mail",
        "/admin/settings/mail/test",
        "/admin/settings/sms",
        "/admin/settings/tls",
    ] {
        let response = app.post_form(path, &[("csrf", "x")]).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), "/admin/login", "{path}");
    }
}

#[tokio::test]
async fn general_settings_are_saved_with_what_changed_and_used_in_portal_links() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let response = app
        .post_form(
            "/admin/settings/general",
            &[
                ("csrf", &csrf),
                ("public_url", "https://otp.example.lan/"),
                ("default_otp_length", "8"),
                ("challenge_validity_seconds", "300"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = settings_page(&app).await;
    assert!(
        page.contains(
            "public address (automatic) → https://otp.example.lan; default OTP length 6 → 8"
        ),
        "{page}"
    );
    assert!(page.contains("value=\"https://otp.example.lan\""));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'settings.general.update' AND actor = 'admin:admin'"
        ),
        1
    );

    // The portal address of a resource is built on the public address.
    let response = app
        .post_form(
            "/admin/resources/new",
            &[("csrf", &csrf), ("name", "vpn"), ("fail_limit", "5")],
        )
        .await;
    let resource = location(&response);
    app.post_form(
        &format!("{resource}/self-service"),
        &[("csrf", &csrf), ("enabled", "on"), ("address", "vpn")],
    )
    .await;
    let page = app
        .get(&format!("{resource}/self-service"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("value=\"https://otp.example.lan/portal/vpn\""),
        "{page}"
    );

    // Wrong values are explained and kept; nothing changes.
    let response = app
        .post_form(
            "/admin/settings/general",
            &[
                ("csrf", &csrf),
                ("public_url", "ftp://typed.example"),
                ("default_otp_length", "8"),
                ("challenge_validity_seconds", "300"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("value=\"ftp://typed.example\""));
    assert!(page.contains("give an address such as"));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM settings WHERE key = 'general' AND value LIKE '%otp.example.lan%'"
        ),
        1
    );
}

#[tokio::test]
async fn the_pin_policy_and_the_portal_idle_timeout_are_saved_with_the_general_settings_and_checked()
 {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let page = settings_page(&app).await;
    for shown in [
        "PIN minimum length",
        "name=\"pin_min_length\" value=\"4\"",
        "PIN maximum length",
        "name=\"pin_max_length\" value=\"64\"",
        "PIN digits only",
        "Portal session idle timeout (minutes)",
        "name=\"portal_idle_minutes\" value=\"15\"",
    ] {
        assert!(page.contains(shown), "{shown}: {page}");
    }
    assert!(!page.contains("name=\"pin_digits_only\" value=\"on\" checked"));

    let general = |extra: &[(&'static str, &'static str)]| {
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("public_url", ""),
            ("default_otp_length", "6"),
            ("challenge_validity_seconds", "300"),
        ];
        form.extend_from_slice(extra);
        form
    };
    let response = app
        .post_form(
            "/admin/settings/general",
            &general(&[
                ("pin_min_length", "6"),
                ("pin_max_length", "8"),
                ("pin_digits_only", "on"),
                ("portal_idle_minutes", "30"),
            ]),
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = settings_page(&app).await;
    assert!(
        page.contains(
            "General settings saved: PIN length 4–64 → 6–8; PINs digits only; \
             portal session idle timeout 15 min → 30 min."
        ),
        "{page}"
    );
    for shown in [
        "name=\"pin_min_length\" value=\"6\"",
        "name=\"pin_max_length\" value=\"8\"",
        "name=\"pin_digits_only\" value=\"on\" checked",
        "name=\"portal_idle_minutes\" value=\"30\"",
    ] {
        assert!(page.contains(shown), "{shown}");
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'settings.general.update' AND detail LIKE '%PIN length%'"
        ),
        1
    );

    // Each wrong value is explained at its field, kept as typed, and nothing changes.
    for (fields, explained) in [
        (vec![("pin_min_length", "3")], "give a number from 4 to 64"),
        (
            vec![("pin_min_length", "8"), ("pin_max_length", "6")],
            "give a number from the minimum length (8) to 64",
        ),
        (
            vec![("pin_max_length", "65")],
            "give a number from the minimum length (4) to 64",
        ),
        (
            vec![("portal_idle_minutes", "241")],
            "give a number of minutes from 5 to 240",
        ),
        (
            vec![("portal_idle_minutes", "soon")],
            "give a number of minutes from 5 to 240",
        ),
    ] {
        let response = app
            .post_form("/admin/settings/general", &general(&fields))
            .await;
        assert_eq!(response.status(), 400, "{fields:?}");
        let page = response.text().await.expect("body");
        assert!(page.contains(explained), "{fields:?}: {page}");
        let (name, value) = fields[fields.len() - 1];
        assert!(
            page.contains(&format!("name=\"{name}\" value=\"{value}\"")),
            "typed value kept: {name}"
        );
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM settings WHERE key = 'general'
               AND value LIKE '%\"pin_min_length\":6,\"pin_max_length\":8,\"pin_digits_only\":true,\"portal_idle_minutes\":30%'"
        ),
        1,
        "the stored settings are unchanged"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_saved_section_shows_its_confirmation_inside_that_section_where_the_page_opens() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let response = app
        .post_form(
            "/admin/settings/mail",
            &mail_form(&csrf, "2525", "127.0.0.1"),
        )
        .await;
    assert_eq!(response.status(), 303);
    // The browser opens the page at the mail section, so the confirmation is shown there,
    // not on top of the page (out of sight), and only once.
    assert_eq!(location(&response), "/admin/settings?saved=mail#mail");
    let response = app.get("/admin/settings?saved=mail").await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    let message =
        "<p class=\"flash\" role=\"status\">Mail settings saved. The next email uses them.</p>";
    assert_eq!(page.matches(message).count(), 1, "{page}");
    let mail = page.find("<section id=\"mail\"").expect("the mail section");
    let sms = page.find("<section id=\"sms\"").expect("the SMS section");
    let shown = page.find(message).expect("the confirmation");
    assert!(mail < shown && shown < sms, "{page}");

    // Seen once: the next visit shows no confirmation.
    let page = settings_page(&app).await;
    assert!(!page.contains("Mail settings saved."), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn mail_settings_keep_the_password_secret_and_a_test_email_shows_the_server_answer() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let port = sink.port.to_string();

    // A wrong host is explained; the typed values stay, the password is not echoed.
    let response = app
        .post_form("/admin/settings/mail", &mail_form(&csrf, &port, "bad host"))
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("value=\"bad host\""));
    assert!(
        page.contains("Give the SMTP server&#39;s host name or address.")
            || page.contains("Give the SMTP server's host name or address."),
        "{page}"
    );
    assert!(!page.contains("smtp-secret-value"));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM settings WHERE key = 'delivery.mail'"
        ),
        0
    );

    let response = app
        .post_form(
            "/admin/settings/mail",
            &mail_form(&csrf, &port, "127.0.0.1"),
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = settings_page(&app).await;
    assert!(page.contains("Mail settings saved."));
    assert!(
        page.contains("Password <span class=\"secret-set\">set</span>"),
        "{page}"
    );
    assert!(
        !page.contains("smtp-secret-value"),
        "a secret is never shown"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'settings.mail.update' AND actor = 'admin:admin'"
        ),
        1
    );

    let response = app
        .post_form(
            "/admin/settings/mail/test",
            &[("csrf", &csrf), ("to", "jane@example.com")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("Sent to jane@example.com. The server answered:"),
        "{page}"
    );
    let received = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["jane@example.com"]);

    let response = app
        .post_form(
            "/admin/settings/mail/test",
            &[("csrf", &csrf), ("to", "nobody")],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("Not sent to nobody")
    );
}

#[tokio::test]
async fn sms_settings_are_saved_and_a_test_sms_reaches_the_gateway() {
    let gateway = Gateway::start().await;
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let url = format!("{}/send?to={{phone}}&text={{message}}", gateway.url);
    let form = |url: &str| {
        vec![
            ("csrf".to_string(), csrf.clone()),
            ("method".into(), "GET".into()),
            ("url".into(), url.to_string()),
            ("headers".into(), "X-Key: {secret}".into()),
            ("body_format".into(), "none".into()),
            ("body".into(), String::new()),
            ("auth".into(), "none".into()),
            ("username".into(), String::new()),
            ("secret".into(), "gateway-secret-value".into()),
            ("success_status".into(), "2xx".into()),
            ("success_body".into(), String::new()),
            ("timeout_seconds".into(), "5".into()),
            ("allow_plaintext_credentials".into(), "on".into()),
        ]
    };
    let send = |form: Vec<(String, String)>| {
        app.client
            .post(app.url("/admin/settings/sms"))
            .form(&form)
            .send()
    };
    let response = send(form("ftp://nowhere/{phone}")).await.expect("answered");
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("ftp://nowhere/{phone}"),
        "the typed address stays"
    );
    assert!(!page.contains("gateway-secret-value"));

    let response = send(form(&url)).await.expect("answered");
    assert_eq!(response.status(), 303);
    let page = settings_page(&app).await;
    assert!(
        page.contains("Secret <span class=\"secret-set\">set</span>"),
        "{page}"
    );
    assert!(!page.contains("gateway-secret-value"));

    let response = app
        .post_form(
            "/admin/settings/sms/test",
            &[("csrf", &csrf), ("to", "+49 151 1234567")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(page.contains("The server answered:"), "{page}");
    let requests = gateway.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].query.contains("to=%2B491511234567"),
        "{:?}",
        requests[0]
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_test_message_through_the_telegram_bot_reaches_the_chat_id_typed() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let page = settings_page(&app).await;
    assert!(page.contains("/admin/settings/telegram/test"), "{page}");
    let saved = app
        .post_form(
            "/admin/settings/telegram",
            &[
                ("csrf", &csrf),
                ("token", "7777:settings-test-bot"),
                ("api_url", &telegram.url),
                ("poll_timeout_seconds", "1"),
                ("timeout_seconds", "5"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303);

    // Not a chat id: said so, and nothing is sent.
    let refused = app
        .post_form(
            "/admin/settings/telegram/test",
            &[("csrf", &csrf), ("to", "@someone")],
        )
        .await;
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.expect("body");
    assert!(page.contains("is not a Telegram chat id"), "{page}");

    let response = app
        .post_form(
            "/admin/settings/telegram/test",
            &[("csrf", &csrf), ("to", " 4242 ")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("Sent to 4242. The server answered:"),
        "{page}"
    );
    let sent = telegram.sent();
    assert_eq!(sent.len(), 1, "only the good chat id got a message");
    assert_eq!(sent[0].chat_id, 4242);
    assert!(sent[0].text.contains("test message"), "{}", sent[0].text);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'settings.bot.test' AND result = 'ok'"
        ),
        1
    );
    telegram.stop().await;
}

#[tokio::test]
async fn a_forged_settings_form_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let mut forged = mail_form("wrong", "25", "127.0.0.1");
    let response = app.post_form("/admin/settings/mail", &forged).await;
    assert_eq!(response.status(), 403);
    forged.remove(0);
    let response = app.post_form("/admin/settings/mail", &forged).await;
    assert_eq!(response.status(), 403);
    let response = app
        .post_form(
            "/admin/settings/general",
            &[
                ("public_url", ""),
                ("default_otp_length", "8"),
                ("challenge_validity_seconds", "90"),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM settings WHERE key IN ('delivery.mail', 'general')"
        ),
        0
    );
    assert!(!csrf.is_empty());
}

/// A client that trusts only `cert_pem`.
fn client_trusting(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("PEM"))
        .tls_built_in_root_certs(false)
        .build()
        .expect("client")
}

#[tokio::test]
async fn an_uploaded_certificate_is_checked_and_then_served_without_a_restart() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let page = settings_page(&app).await;
    assert!(page.contains("self-signed, generated by otpgate"));
    let old_fingerprint = app.fingerprint.clone().expect("fingerprint");
    assert!(page.contains(&old_fingerprint));

    let new =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "otp.example.lan".into()])
            .expect("certificate");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
    let new_cert = new.cert.pem();
    let new_key = new.signing_key.serialize_pem();

    // A key of another certificate is refused; the certificate stays typed, the key does not.
    let response = app
        .post_form(
            "/admin/settings/tls",
            &[
                ("csrf", &csrf),
                ("certificate", &new_cert),
                ("private_key", &other.signing_key.serialize_pem()),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("The private key does not belong to the certificate."),
        "{page}"
    );
    assert!(
        !page.contains("PRIVATE KEY-----\n"),
        "the key is not echoed"
    );
    let status = client_trusting(&new_cert)
        .get(app.url("/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert!(status.is_err(), "the old certificate is still served");

    let response = app
        .post_form(
            "/admin/settings/tls",
            &[
                ("csrf", &csrf),
                ("certificate", &new_cert),
                ("private_key", &new_key),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let status = client_trusting(&new_cert)
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("the new certificate is served at once")
        .status();
    assert_eq!(status, 200);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'settings.tls.update' AND actor = 'admin:admin'"
        ),
        1
    );
    let stored = std::fs::read_to_string(app.data_dir.join("tls/uploaded/cert.pem"))
        .expect("the certificate is kept for the next start");
    assert_eq!(stored, new_cert);
}

#[tokio::test]
async fn the_default_otp_length_and_challenge_validity_apply_to_new_tokens_and_sent_codes() {
    use crate::helpers::delivery::{Api, api_key, provision};
    use reqwest::Method;
    use serde_json::{Value, json};

    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let response = app
        .post_form(
            "/admin/settings/general",
            &[
                ("csrf", &csrf),
                ("public_url", ""),
                ("default_otp_length", "8"),
                ("challenge_validity_seconds", "120"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let tokens = provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("nina", "MAIL", "nina@example.com")],
    )
    .await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let (_, token) = api
        .call(
            Method::GET,
            &format!("/tokens/{}", tokens[0]),
            &admin,
            Value::Null,
        )
        .await;
    assert_eq!(
        token["digits"], 8,
        "a MAIL token without a length gets the default: {token}"
    );
    let (status, totp) = api
        .call(Method::POST, "/tokens", &admin, json!({"kind": "TOTP"}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(totp["digits"], 6, "authenticator apps keep 6 digits");

    let app_key = api_key(&app.data_dir, &["--resource", "vpn"]);
    // A code is queued only through a channel that is set up.
    let (status, body) = api
        .call(
            Method::PUT,
            "/settings/mail",
            &admin,
            json!({"host": "127.0.0.1", "port": 9, "security": "none", "from_address": "otp@example.lan"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = crate::helpers::otp::unix_now() as i64;
    api.prepare(&app_key, "nina").await;
    let (_, deliveries) = api
        .call(Method::GET, "/deliveries", &admin, Value::Null)
        .await;
    let expires_at = deliveries["deliveries"][0]["expires_at"]
        .as_i64()
        .expect("the message expires");
    let after = crate::helpers::otp::unix_now() as i64;
    assert!(
        (before + 120..=after + 120).contains(&expires_at),
        "the code is valid for the 120 s of the settings: {expires_at} vs {before}"
    );
}
