//! Codes by email, end to end: otpgate talks SMTP to a real listener on loopback, the test
//! reads the code from the received email and logs in with it.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{client_for, spawn_app, spawn_with, test_config};
use crate::helpers::delivery::{Api, api_key, audit_actions, mail_settings, provision};
use crate::helpers::process::{Process, otpgate_command};
use crate::helpers::smtp_sink::{Mode, SmtpSink, code_in};

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    api: Api,
    admin: String,
    app_key: String,
}

async fn configure(app: &crate::helpers::app::TestApp, settings: Value) -> Setup {
    let api = Api::of(app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let (status, body) = api
        .call(Method::PUT, "/settings/mail", &admin, settings)
        .await;
    assert_eq!(status, 200, "{body}");
    let app_key = api_key(&app.data_dir, &["--resource", "vpn"]);
    Setup {
        api,
        admin,
        app_key,
    }
}

#[tokio::test]
async fn consecutive_emails_share_one_smtp_connection() {
    let sink = SmtpSink::start(Mode::Starttls).await;
    let app = spawn_app().await;
    provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[
            ("kim", "MAIL", "kim@example.com"),
            ("lou", "MAIL", "lou@example.com"),
            ("max", "MAIL", "max@example.com"),
        ],
    )
    .await;
    let ca = app.data_dir.join("smtp-ca.pem");
    std::fs::write(&ca, &sink.cert_pem).expect("write the CA");
    let s = configure(&app, mail_settings(sink.port, "starttls", Some(&ca))).await;
    for (n, user) in ["kim", "lou", "max"].into_iter().enumerate() {
        s.api.prepare(&s.app_key, user).await;
        assert_eq!(sink.wait_for(n + 1, WAIT).await.len(), n + 1);
    }
    assert!(
        sink.messages().iter().all(|m| m.tls),
        "every email went over TLS"
    );
    assert_eq!(
        sink.connections(),
        1,
        "the connection was kept open and reused"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_code_sent_by_mail_over_plain_smtp_logs_the_user_in() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let app = spawn_app().await;
    let tokens = provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("alice", "MAIL", "alice@example.com")],
    )
    .await;
    let s = configure(&app, mail_settings(sink.port, "none", None)).await;

    let prepared = s.api.prepare(&s.app_key, "alice").await;
    let answered = Instant::now();
    assert_eq!(prepared["challenges"][0]["destination"], "a***@example.com");
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1, "one email arrives");
    println!(
        "delivery latency, prepare answered -> SMTP listener accepted: {:?}",
        received[0].at.saturating_duration_since(answered)
    );
    let email = &received[0];
    assert_eq!(email.to, vec!["alice@example.com".to_string()]);
    assert_eq!(email.from, "otp@example.com");
    assert_eq!(
        email.login.as_deref(),
        Some("otpgate"),
        "the login was used"
    );
    assert!(!email.tls);
    assert!(
        email
            .data
            .contains("Subject: Your one-time password for vpn")
    );
    assert!(email.data.contains("From: \"OTP Gate\" <otp@example.com>"));
    assert!(email.data.contains("multipart/alternative"));
    assert!(email.data.contains("Content-Type: text/html"));
    let code = code_in(&email.data).expect("a code in the email");

    let answer = s
        .api
        .authenticate(&s.app_key, "alice", &code, &prepared["transaction"])
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");

    let list = s
        .api
        .deliveries_until(&s.admin, "?channel=mail", WAIT, |l| {
            l.first().is_some_and(|d| d["status"] == "sent")
        })
        .await;
    let delivery = &list[0];
    assert_eq!(delivery["status"], "sent");
    assert_eq!(delivery["recipient"], "a***@example.com");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["token_id"], tokens[0]);
    assert!(delivery["sent_at"].is_i64());
    assert!(
        !delivery.to_string().contains(&code),
        "the list never shows the code"
    );
    let sent = r#"otpgate_deliveries_total{channel="mail",outcome="sent"} 1"#;
    let metrics = s.api.metrics_with(&[sent], WAIT).await;
    assert!(metrics.contains(sent), "{metrics}");
    let audit = audit_actions(&app.data_dir, tokens[0]);
    let sent = audit
        .iter()
        .find(|(action, _, _)| action == "delivery.sent")
        .expect("the audit log records the delivery");
    assert_eq!(sent.2.as_deref(), Some("channel=mail"));
    assert!(
        !format!("{audit:?}").contains(&code),
        "the audit log never holds the code"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_code_sent_over_starttls_to_a_server_with_an_internal_ca_arrives() {
    let sink = SmtpSink::start(Mode::Starttls).await;
    let app = spawn_app().await;
    let ca = app.data_dir.join("smtp-ca.pem");
    std::fs::write(&ca, &sink.cert_pem).expect("write the CA");
    provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("bob", "MAIL", "bob@example.com")],
    )
    .await;
    let s = configure(&app, mail_settings(sink.port, "starttls", Some(&ca))).await;

    let prepared = s.api.prepare(&s.app_key, "bob").await;
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    assert!(received[0].tls, "the message went over TLS after STARTTLS");
    assert_eq!(received[0].login.as_deref(), Some("otpgate"));
    let code = code_in(&received[0].data).expect("a code");
    let answer = s
        .api
        .authenticate(&s.app_key, "bob", &code, &prepared["transaction"])
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_code_sent_over_implicit_tls_arrives_and_an_untrusted_server_is_not_used() {
    let sink = SmtpSink::start(Mode::ImplicitTls).await;
    let app = spawn_app().await;
    let ca = app.data_dir.join("smtp-ca.pem");
    std::fs::write(&ca, &sink.cert_pem).expect("write the CA");
    provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("carol", "MAIL", "carol@example.com")],
    )
    .await;
    // Without the CA the self-signed server is not trusted: nothing is sent, it is retried.
    let s = configure(&app, mail_settings(sink.port, "tls", None)).await;
    s.api.prepare(&s.app_key, "carol").await;
    let list = s
        .api
        .deliveries_until(&s.admin, "", WAIT, |l| {
            l.first().is_some_and(|d| d["attempts"].as_i64() >= Some(1))
        })
        .await;
    assert_eq!(list[0]["status"], "queued", "{list:?}");
    assert!(sink.messages().is_empty());
    // Trusting the CA applies to the queued message without a restart.
    let (status, body) = s
        .api
        .call(
            Method::PUT,
            "/settings/mail",
            &s.admin,
            mail_settings(sink.port, "tls", Some(&ca)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1, "delivered after the settings changed");
    assert!(received[0].tls);
    app.stop().await;
}

#[tokio::test]
async fn mail_is_retried_while_the_smtp_server_is_down_and_delivered_when_it_returns() {
    let sink = SmtpSink::down(Mode::Plain).await;
    let app = spawn_app().await;
    provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("dave", "MAIL", "dave@example.com")],
    )
    .await;
    let s = configure(&app, mail_settings(sink.port, "none", None)).await;

    let prepared = s.api.prepare(&s.app_key, "dave").await;
    let list = s
        .api
        .deliveries_until(&s.admin, "", WAIT, |l| {
            l.first().is_some_and(|d| d["attempts"].as_i64() >= Some(2))
        })
        .await;
    let waiting = &list[0];
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert!(
        waiting["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{waiting}"
    );
    assert!(waiting["next_attempt_at"].is_i64());

    sink.up().await;
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1, "delivered once the server is back");
    let code = code_in(&received[0].data).expect("a code");
    let answer = s
        .api
        .authenticate(&s.app_key, "dave", &code, &prepared["transaction"])
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    let list = s
        .api
        .deliveries_until(&s.admin, "?status=sent", WAIT, |l| !l.is_empty())
        .await;
    assert!(list[0]["attempts"].as_i64() >= Some(3), "{list:?}");
    let retry = r#"otpgate_deliveries_total{channel="mail",outcome="retry"}"#;
    let metrics = s.api.metrics_with(&[retry], WAIT).await;
    assert!(metrics.contains(retry), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_message_whose_code_expired_is_never_sent() {
    let sink = SmtpSink::down(Mode::Plain).await;
    let temp = tempfile::tempdir().expect("dir");
    let mut config = test_config(temp.path());
    config.auth.challenge_validity_seconds = 30;
    let app = spawn_with(config).await.expect("starts");
    let tokens = provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("erin", "MAIL", "erin@example.com")],
    )
    .await;
    let s = configure(&app, mail_settings(sink.port, "none", None)).await;

    s.api.prepare(&s.app_key, "erin").await;
    let list = s
        .api
        .deliveries_until(&s.admin, "", Duration::from_secs(45), |l| {
            l.first().is_some_and(|d| d["status"] != "queued")
        })
        .await;
    assert_eq!(list[0]["status"], "expired", "{list:?}");
    sink.up().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sink.messages().is_empty(),
        "an expired code is not sent late"
    );
    assert!(
        audit_actions(&app.data_dir, tokens[0])
            .iter()
            .any(|(action, _, _)| action == "delivery.expired")
    );
    assert!(
        s.api
            .metrics()
            .await
            .contains(r#"otpgate_deliveries_total{channel="mail",outcome="expired"} 1"#)
    );
    app.stop().await;
    drop(temp);
}

#[tokio::test]
async fn a_recipient_the_server_refuses_is_marked_failed_with_the_reason() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let app = spawn_app().await;
    let tokens = provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("frank", "MAIL", "reject-frank@example.com")],
    )
    .await;
    let s = configure(&app, mail_settings(sink.port, "none", None)).await;
    s.api.prepare(&s.app_key, "frank").await;
    let list = s
        .api
        .deliveries_until(&s.admin, "?status=failed&channel=mail", WAIT, |l| {
            !l.is_empty()
        })
        .await;
    assert_eq!(list.len(), 1, "the refusal is final");
    assert_eq!(list[0]["attempts"], 1);
    let error = list[0]["last_error"].as_str().expect("an error");
    assert!(error.contains("550"), "{error}");
    assert!(sink.messages().is_empty());
    let audit = audit_actions(&app.data_dir, tokens[0]);
    assert!(
        audit
            .iter()
            .any(|(action, result, _)| action == "delivery.failed" && result == "failed")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_mail_settings_need_an_admin_key_hide_the_password_and_name_a_bad_field() {
    let app = spawn_app().await;
    provision(&app.address, &app.data_dir, "vpn", &[]).await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let resource_key = api_key(&app.data_dir, &["--resource", "vpn"]);
    let good = mail_settings(2525, "starttls", None);

    let (status, _) = api
        .call(Method::GET, "/settings/mail", "", Value::Null)
        .await;
    assert_eq!(status, 401);
    let (status, _) = api
        .call(Method::PUT, "/settings/mail", &resource_key, good.clone())
        .await;
    assert_eq!(status, 403);
    let (status, body) = api
        .call(Method::GET, "/settings/mail", &admin, Value::Null)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["configured"], false, "{body}");

    for (field, value) in [
        ("port", json!(0)),
        ("port", json!(70000)),
        ("host", json!("smtp example com")),
        ("from_address", json!("not-an-address")),
        ("timeout_seconds", json!(0)),
        ("security", json!("ssl")),
        ("tls_ca_file", json!("/nonexistent/ca.pem")),
    ] {
        let mut bad = good.clone();
        bad[field] = value;
        let (status, body) = api.call(Method::PUT, "/settings/mail", &admin, bad).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let mut unknown = good.clone();
    unknown["colour"] = json!("blue");
    let (status, body) = api
        .call(Method::PUT, "/settings/mail", &admin, unknown)
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "colour");
    let (_, body) = api
        .call(Method::GET, "/settings/mail", &admin, Value::Null)
        .await;
    assert_eq!(
        body["configured"], false,
        "refused settings changed nothing"
    );

    let (status, body) = api
        .call(Method::PUT, "/settings/mail", &admin, good.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["password_set"], true);
    assert!(!body.to_string().contains("smtp password"), "{body}");
    let (_, body) = api
        .call(Method::GET, "/settings/mail", &admin, Value::Null)
        .await;
    assert_eq!(body["configured"], true);
    assert_eq!(body["host"], "127.0.0.1");
    assert_eq!(body["port"], 2525);
    assert_eq!(body["security"], "starttls");
    assert_eq!(body["password_set"], true);
    assert!(body.get("password").is_none());

    // Leaving the password out keeps it; an empty one removes it.
    let mut keep = good.clone();
    keep.as_object_mut().expect("object").remove("password");
    let (_, body) = api.call(Method::PUT, "/settings/mail", &admin, keep).await;
    assert_eq!(body["password_set"], true);
    let mut clear = good.clone();
    clear["password"] = json!("");
    let (_, body) = api.call(Method::PUT, "/settings/mail", &admin, clear).await;
    assert_eq!(body["password_set"], false);

    // The password is sealed at rest.
    let file = std::fs::read(app.data_dir.join(otpgate::store::DATABASE_FILE)).expect("read");
    let wal = std::fs::read(app.data_dir.join("otpgate.db-wal")).unwrap_or_default();
    let needle = b"smtp password";
    assert!(
        !file.windows(needle.len()).any(|w| w == needle)
            && !wal.windows(needle.len()).any(|w| w == needle),
        "the SMTP password is never stored in clear"
    );
    app.stop().await;
}

/// Runs `otpgate settings mail test TO` off the test's runtime, which serves the SMTP sink.
async fn console(data_dir: &std::path::Path, to: &str) -> std::process::Output {
    let mut command = otpgate_command(data_dir);
    command.args(["settings", "mail", "test", to]);
    tokio::task::spawn_blocking(move || command.output().expect("run"))
        .await
        .expect("join")
}

#[tokio::test]
async fn the_test_endpoint_and_the_console_command_show_the_smtp_servers_answer() {
    let sink = SmtpSink::start(Mode::Plain).await;
    let app = spawn_app().await;
    provision(&app.address, &app.data_dir, "vpn", &[]).await;
    let s = configure(&app, mail_settings(sink.port, "none", None)).await;

    let (status, body) = s
        .api
        .call(
            Method::POST,
            "/settings/mail/test",
            &s.admin,
            json!({"to": "nope"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "to");
    let (status, body) = s
        .api
        .call(
            Method::POST,
            "/settings/mail/test",
            &s.app_key,
            json!({"to": "ops@example.com"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    let (status, body) = s
        .api
        .call(
            Method::POST,
            "/settings/mail/test",
            &s.admin,
            json!({"to": "ops@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true, "{body}");
    let answer = body["answer"].as_str().expect("the answer");
    assert!(
        answer.starts_with("250") && answer.contains("queued as SINK1"),
        "{answer}"
    );
    assert_eq!(sink.messages()[0].to, vec!["ops@example.com".to_string()]);

    let output = console(&app.data_dir, "ops2@example.com").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("queued as SINK2"), "{stdout}");

    sink.go_down().await;
    let (status, body) = s
        .api
        .call(
            Method::POST,
            "/settings/mail/test",
            &s.admin,
            json!({"to": "ops@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], false);
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let output = console(&app.data_dir, "ops@example.com").await;
    assert!(!output.status.success(), "a failed test fails the command");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not accepted"), "{stderr}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_with_mail_queued_every_message_is_delivered_exactly_once() {
    const PEOPLE: usize = 5;
    let sink = SmtpSink::down(Mode::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    let process = Process::start(dir.path(), &[]).expect("starts");
    let logins: Vec<String> = (0..PEOPLE).map(|i| format!("user{i}")).collect();
    let addresses: Vec<String> = logins.iter().map(|l| format!("{l}@example.com")).collect();
    let people: Vec<(&str, &str, &str)> = logins
        .iter()
        .zip(&addresses)
        .map(|(l, a)| (l.as_str(), "MAIL", a.as_str()))
        .collect();
    provision(&process.address, dir.path(), "vpn", &people).await;
    let admin = api_key(dir.path(), &["--admin"]);
    let app_key = api_key(dir.path(), &["--resource", "vpn"]);
    let api = Api {
        client: client_for(dir.path()),
        address: process.address.clone(),
    };
    let (status, body) = api
        .call(
            Method::PUT,
            "/settings/mail",
            &admin,
            mail_settings(sink.port, "none", None),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for login in &logins {
        api.prepare(&app_key, login).await;
    }
    let list = api
        .deliveries_until(&admin, "", WAIT, |l| {
            l.len() == PEOPLE && l.iter().all(|d| d["attempts"].as_i64() >= Some(1))
        })
        .await;
    assert!(list.iter().all(|d| d["status"] == "queued"), "{list:?}");
    process.kill_9();

    sink.up().await;
    let process = Process::start(dir.path(), &[]).expect("restarts");
    let api = Api {
        client: client_for(dir.path()),
        address: process.address.clone(),
    };
    let received = sink.wait_for(PEOPLE, Duration::from_secs(30)).await;
    let list = api
        .deliveries_until(&admin, "?status=sent", WAIT, |l| l.len() == PEOPLE)
        .await;
    assert_eq!(list.len(), PEOPLE, "every queued message is marked sent");
    // Give a duplicate the chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received_after = sink.messages();
    assert_eq!(received.len(), PEOPLE);
    assert_eq!(received_after.len(), PEOPLE, "nothing is sent twice");
    let mut recipients: Vec<String> = received_after.iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    assert_eq!(recipients, addresses, "each user got exactly one email");
    process.terminate();
}
