//! A flood of password checks beyond what the password workers take is shed: the API answers
//! 503 with Retry-After, the admin login a "busy" page, never a 500; health checks and
//! authentications without a password go on meanwhile.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_with, test_config};
use crate::helpers::auth::{SEED, SEED_BASE32, fixture, user_with_token};
use crate::helpers::page::hidden_value;

/// What the flood met: statuses, and whether every 503 said when to try again.
#[derive(Default)]
struct Tally {
    busy: usize,
    busy_without_retry_after: usize,
    server_errors: usize,
    other: usize,
}

impl Tally {
    fn add(&mut self, status: u16, retry_after: bool) {
        match status {
            503 if retry_after => self.busy += 1,
            503 => self.busy_without_retry_after += 1,
            500..=599 => self.server_errors += 1,
            _ => self.other += 1,
        }
    }
}

const FLOOD: usize = 40;

/// A server with one password worker, one place in line and a short wait.
async fn tiny_gate() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.passwords.workers = 1;
    config.passwords.queue = 1;
    config.passwords.wait_ms = 10;
    config.admin.login_attempts_per_ip = 1000;
    let app = spawn_with(config).await.expect("start");
    (app, dir)
}

#[tokio::test]
async fn password_checks_beyond_the_gate_get_503_with_retry_after_while_codes_and_health_checks_go_on()
 {
    let (app, _dir) = tiny_gate().await;
    let fx = fixture(&app, 10).await;
    user_with_token(
        &app,
        &fx,
        "alice",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;
    user_with_token(
        &app,
        &fx,
        "bob",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;

    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let request = app
            .api(reqwest::Method::POST, "/auth/authenticate", &fx.app_key)
            .json(&json!({"user": "alice", "password": "a wrong guess", "otp": "123456"}));
        flood.push(tokio::spawn(async move {
            let response = request.send().await.expect("answer");
            let retry_after = response.headers().contains_key("retry-after");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        }));
    }
    // Meanwhile, on their own connections: a health check and a code without a password.
    let other = crate::helpers::app::client_for(&app.data_dir);
    let health = other.get(app.url("/healthz")).send().await.expect("answer");
    assert_eq!(health.status(), 200);
    let code = otpgate::otp::hotp(SEED, otpgate::otp::Algorithm::Sha1, 6, 0);
    let code_only = other
        .post(app.url("/api/v1/auth/authenticate"))
        .bearer_auth(&fx.app_key)
        .json(&json!({"user": "bob", "otp": code}))
        .send()
        .await
        .expect("answer");
    assert_eq!(code_only.status(), 200);
    let body: Value = code_only.json().await.expect("json");
    assert_eq!(body["result"], "accepted", "{body}");

    let mut tally = Tally::default();
    for request in flood {
        let (status, retry_after, body) = request.await.expect("task");
        if status == 503 {
            assert_eq!(body["error"]["code"], "busy", "{body}");
        }
        tally.add(status, retry_after);
    }
    assert!(
        tally.busy >= 1,
        "one worker and one place in line cannot take {FLOOD} at once"
    );
    assert_eq!(tally.busy_without_retry_after, 0);
    assert_eq!(tally.server_errors, 0);
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_password_checks_shed_total{reason="),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_logins_beyond_the_gate_get_a_busy_page_with_retry_after_and_never_a_500() {
    let (app, _dir) = tiny_gate().await;
    let page = app.get("/admin/login").await.text().await.expect("body");
    let csrf = hidden_value(&page, "csrf");
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let request = app.client.post(app.url("/admin/login")).form(&[
            ("csrf", csrf.as_str()),
            ("login", "root"),
            ("password", "a wrong guess"),
            ("otp", "000000"),
        ]);
        flood.push(tokio::spawn(async move {
            let response = request.send().await.expect("answer");
            let retry_after = response.headers().contains_key("retry-after");
            let status = response.status().as_u16();
            (
                status,
                retry_after,
                response.text().await.unwrap_or_default(),
            )
        }));
    }
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let mut tally = Tally::default();
    for request in flood {
        let (status, retry_after, page) = request.await.expect("task");
        if status == 503 {
            assert!(page.contains("busy"), "{page}");
            assert!(page.contains("Try again in"), "{page}");
        }
        tally.add(status, retry_after);
    }
    assert!(
        tally.busy >= 1,
        "one worker and one place in line cannot take {FLOOD} at once"
    );
    assert_eq!(tally.busy_without_retry_after, 0);
    assert_eq!(tally.server_errors, 0);
    // The gate recovers: once the flood is over a login is checked again (under another name:
    // "root" failed many times in a row and waits now).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = app.login("someone", "a wrong guess", "000000").await;
    assert_eq!(again.status(), 401);
    app.stop().await;
}
