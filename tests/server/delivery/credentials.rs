//! Credentials of the delivery channels never cross the network in clear by accident: an SMTP
//! login without TLS and gateway credentials to an `http://` address are refused at save (API
//! and panel) and at send (console and worker, for settings stored before the rule) unless the
//! administrator allowed plaintext credentials, and the panel warns while that is allowed. An
//! SMTP server that offers no login mechanism otpgate speaks fails a message for good.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::spawn_app;
use crate::helpers::delivery::{Api, api_key, provision};
use crate::helpers::panel::follow;
use crate::helpers::process::otpgate_command;
use crate::helpers::sms_gateway::Gateway;
use crate::helpers::smtp_sink::{Mode, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);

fn plain_smtp_with_login(port: u16) -> Value {
    json!({
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": "otpgate",
        "password": "smtp password",
        "from_address": "otp@example.com",
        "timeout_seconds": 5,
    })
}

#[tokio::test]
async fn an_smtp_login_without_tls_is_refused_unless_plaintext_credentials_are_allowed() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let app = spawn_app().await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);

    let (status, body) = api
        .call(
            Method::PUT,
            "/settings/mail",
            &admin,
            plain_smtp_with_login(sink.port),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "security", "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains("in clear"), "{message}");
    assert!(message.contains("allow plaintext credentials"), "{message}");
    assert!(!body.to_string().contains("smtp password"));
    let (_, stored) = api
        .call(Method::GET, "/settings/mail", &admin, Value::Null)
        .await;
    assert_eq!(stored["configured"], false, "nothing was stored: {stored}");
    assert_eq!(stored["password_set"], false);

    // Without a login nothing secret crosses: no tick needed.
    let mut no_login = plain_smtp_with_login(sink.port);
    no_login.as_object_mut().expect("object").remove("username");
    no_login.as_object_mut().expect("object").remove("password");
    let (status, body) = api
        .call(Method::PUT, "/settings/mail", &admin, no_login)
        .await;
    assert_eq!(status, 200, "{body}");

    let mut allowed = plain_smtp_with_login(sink.port);
    allowed["allow_plaintext_credentials"] = json!(true);
    let (status, body) = api
        .call(Method::PUT, "/settings/mail", &admin, allowed)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allow_plaintext_credentials"], true);
    let (status, answer) = api
        .call(
            Method::POST,
            "/settings/mail/test",
            &admin,
            json!({"to": "jane@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received[0].login.as_deref(), Some("otpgate"));
    app.stop().await;
}

#[tokio::test]
async fn gateway_credentials_to_an_http_address_are_refused_unless_allowed() {
    let gateway = Gateway::start().await;
    assert!(gateway.url.starts_with("http://"));
    let app = spawn_app().await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let basic = json!({
        "url": format!("{}/send?to={{phone}}&text={{message}}", gateway.url),
        "auth": "basic",
        "username": "acct",
        "secret": "gateway-secret-value",
    });
    let bearer = json!({
        "url": format!("{}/send?to={{phone}}&text={{message}}", gateway.url),
        "auth": "bearer",
        "secret": "gateway-secret-value",
    });
    let header = json!({
        "url": format!("{}/send?to={{phone}}&text={{message}}", gateway.url),
        "headers": {"X-Api-Key": "{secret}"},
        "secret": "gateway-secret-value",
    });
    for settings in [&basic, &bearer, &header] {
        let (status, body) = api
            .call(Method::PUT, "/settings/sms", &admin, settings.clone())
            .await;
        assert_eq!(status, 400, "{settings}: {body}");
        assert_eq!(body["error"]["field"], "url", "{body}");
        assert!(!body.to_string().contains("gateway-secret-value"));
    }
    let (_, stored) = api
        .call(Method::GET, "/settings/sms", &admin, Value::Null)
        .await;
    assert_eq!(stored["configured"], false, "{stored}");
    assert_eq!(stored["secret_set"], false, "{stored}");

    let mut allowed = basic.clone();
    allowed["allow_plaintext_credentials"] = json!(true);
    let (status, body) = api
        .call(Method::PUT, "/settings/sms", &admin, allowed)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allow_plaintext_credentials"], true);
    gateway.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_panel_refuses_a_login_in_clear_unless_ticked_and_warns_while_it_is() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let form = |tick: bool| {
        let mut form = vec![
            ("csrf", csrf.clone()),
            ("host", "127.0.0.1".to_string()),
            ("port", "2525".into()),
            ("security", "none".into()),
            ("username", "otpgate".into()),
            ("password", "smtp password".into()),
            ("from_address", "otp@example.com".into()),
            ("from_name", "otpgate".into()),
            ("timeout_seconds", "5".into()),
            ("tls_ca_file", String::new()),
        ];
        if tick {
            form.push(("allow_plaintext_credentials", "on".into()));
        }
        form
    };
    let refused = app
        .client
        .post(app.url("/admin/settings/mail"))
        .form(&form(false))
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.expect("body");
    assert!(page.contains("in clear"), "{page}");
    assert!(!page.contains("smtp password"));
    assert!(
        !page.contains("class=\"warning\""),
        "nothing is allowed yet, so nothing to warn of"
    );

    let saved = app
        .client
        .post(app.url("/admin/settings/mail"))
        .form(&form(true))
        .send()
        .await
        .expect("answered");
    assert_eq!(saved.status(), 303);
    let page = follow(&app, saved).await;
    assert!(
        page.contains("Plaintext credentials are allowed"),
        "the mail section warns: {page}"
    );
    assert!(page.contains("cross the network unencrypted"));
    app.stop().await;
}

/// Settings saved by an otpgate older than the rule: a login over plain SMTP, never allowed.
fn store_old_settings(data_dir: &std::path::Path, port: u16) {
    let conn = rusqlite::Connection::open(data_dir.join("otpgate.db")).expect("open the database");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    let plain = json!({
        "host": "127.0.0.1", "port": port, "security": "none", "username": "otpgate",
        "from_address": "otp@example.com", "from_name": "otpgate", "timeout_seconds": 5,
        "tls_ca_file": null,
    });
    conn.execute(
        "UPDATE settings SET value = ?1 WHERE key = 'delivery.mail'",
        [plain.to_string()],
    )
    .expect("update");
}

#[tokio::test]
async fn settings_stored_before_the_rule_send_no_login_in_clear() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let app = spawn_app().await;
    provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("gil", "MAIL", "gil@example.com")],
    )
    .await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let mut allowed = plain_smtp_with_login(sink.port);
    allowed["allow_plaintext_credentials"] = json!(true);
    let (status, body) = api
        .call(Method::PUT, "/settings/mail", &admin, allowed)
        .await;
    assert_eq!(status, 200, "{body}");
    store_old_settings(&app.data_dir, sink.port);

    let output = otpgate_command(&app.data_dir)
        .args(["settings", "mail", "test", "jane@example.com"])
        .output()
        .expect("run");
    assert!(!output.status.success(), "the console refuses to send");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in clear"), "{stderr}");
    assert!(!stderr.contains("smtp password"), "{stderr}");

    let app_key = api_key(&app.data_dir, &["--resource", "vpn"]);
    api.prepare(&app_key, "gil").await;
    let list = api
        .deliveries_until(&admin, "?channel=mail", WAIT, |list| {
            list.first()
                .is_some_and(|d| d["last_error"].as_str().is_some())
        })
        .await;
    let error = list[0]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("in clear"), "{list:?}");
    assert_eq!(sink.connections(), 0, "no connection, so no login went out");
    assert!(sink.messages().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_smtp_server_without_a_usable_login_mechanism_fails_the_message_for_good() {
    let sink = SmtpSink::start_without_login(Mode::Plain).await;
    let app = spawn_app().await;
    provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("hal", "MAIL", "hal@example.com")],
    )
    .await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let mut settings = plain_smtp_with_login(sink.port);
    settings["allow_plaintext_credentials"] = json!(true);
    let (status, body) = api
        .call(Method::PUT, "/settings/mail", &admin, settings)
        .await;
    assert_eq!(status, 200, "{body}");
    let app_key = api_key(&app.data_dir, &["--resource", "vpn"]);
    api.prepare(&app_key, "hal").await;

    let list = api
        .deliveries_until(&admin, "?channel=mail", WAIT, |list| {
            list.first().is_some_and(|d| d["status"] != "queued")
        })
        .await;
    let delivery = &list[0];
    assert_eq!(delivery["status"], "failed", "not retried: {delivery}");
    assert_eq!(delivery["attempts"], 1, "{delivery}");
    let error = delivery["last_error"].as_str().expect("a reason");
    assert!(error.contains("no login mechanism"), "{error}");
    assert!(sink.messages().is_empty());
    app.stop().await;
}
