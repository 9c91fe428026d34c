//! Password guessing over the API stops: failed logins in a row count per account however the
//! login is spelled, lock the account at the configured limit (audited and counted), a success
//! resets them, and an administrator unlocks.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::count;
use crate::helpers::app::{TestApp, spawn_with, test_config};
use crate::helpers::auth::{
    Fixture, SEED, SEED_BASE32, authenticate, call, fixture, user_with_token,
};

const PASSWORD: &str = "user password 1";

/// A server whose accounts lock at `lock_after` failures in a row, without waits before.
async fn server(lock_after: u32) -> (TestApp, Fixture, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.logins.free_failures = 20;
    config.logins.lock_after = lock_after;
    let app = spawn_with(config).await.expect("start");
    let fx = fixture(&app, 10).await;
    user_with_token(
        &app,
        &fx,
        "alice",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;
    (app, fx, dir)
}

fn hotp(counter: u64) -> String {
    otpgate::otp::hotp(SEED, otpgate::otp::Algorithm::Sha1, 6, counter)
}

async fn attempt(app: &TestApp, fx: &Fixture, user: Value, password: &str, otp: &str) -> String {
    let (status, body) = authenticate(
        app,
        &fx.app_key,
        json!({"user": user, "password": password, "otp": otp}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["result"].as_str().expect("a result").to_string()
}

async fn alice_id(app: &TestApp, fx: &Fixture) -> i64 {
    let (status, body) = call(app, Method::GET, "/users/alice", &fx.admin, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_i64().expect("an id")
}

#[tokio::test]
async fn alternating_spellings_of_a_login_count_as_one_account_which_locks_and_refuses_the_right_password()
 {
    let (app, fx, _dir) = server(6).await;
    let id = alice_id(&app, &fx).await;
    let spellings = [json!("alice"), json!(id), json!("ALICE")];
    for round in 0..6 {
        let user = spellings[round % 3].clone();
        assert_eq!(
            attempt(&app, &fx, user, "wrong guess", &hotp(0)).await,
            "rejected"
        );
    }
    assert_eq!(
        attempt(&app, &fx, json!("alice"), PASSWORD, &hotp(0)).await,
        "rejected",
        "six failures under three spellings locked the one account"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'user.lock' AND result = 'locked'"
        ),
        1,
        "the lock is audited once"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'auth.authenticate' AND reason = 'account_locked'"
        ),
        1,
        "the right password was refused unchecked"
    );
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_accounts_locked_total{account=\"user\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_accepted_login_resets_the_failed_logins_in_a_row() {
    let (app, fx, _dir) = server(4).await;
    for _ in 0..3 {
        assert_eq!(
            attempt(&app, &fx, json!("alice"), "wrong guess", &hotp(0)).await,
            "rejected"
        );
    }
    assert_eq!(
        attempt(&app, &fx, json!("alice"), PASSWORD, &hotp(0)).await,
        "accepted"
    );
    for _ in 0..3 {
        assert_eq!(
            attempt(&app, &fx, json!("alice"), "wrong guess", &hotp(1)).await,
            "rejected"
        );
    }
    assert_eq!(
        attempt(&app, &fx, json!("alice"), PASSWORD, &hotp(1)).await,
        "accepted",
        "three failures after a success are three, not six"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'user.lock'"
        ),
        0
    );
    for _ in 0..4 {
        assert_eq!(
            attempt(&app, &fx, json!("alice"), "wrong guess", &hotp(2)).await,
            "rejected"
        );
    }
    assert_eq!(
        attempt(&app, &fx, json!("alice"), PASSWORD, &hotp(2)).await,
        "rejected",
        "four in a row do lock"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_administrator_unlocks_a_locked_user_and_the_right_password_is_accepted_again() {
    let (app, fx, _dir) = server(3).await;
    for _ in 0..3 {
        assert_eq!(
            attempt(&app, &fx, json!("alice"), "wrong guess", &hotp(0)).await,
            "rejected"
        );
    }
    assert_eq!(
        attempt(&app, &fx, json!("alice"), PASSWORD, &hotp(0)).await,
        "rejected"
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/users/ALICE/unlock",
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        attempt(&app, &fx, json!("alice"), PASSWORD, &hotp(0)).await,
        "accepted"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'user.unlock' AND result = 'ok'"
        ),
        1
    );
    let (status, _) = call(
        &app,
        Method::POST,
        "/users/nobody/unlock",
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn failed_logins_in_a_row_make_the_next_attempt_wait_with_retry_after() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.logins.free_failures = 2;
    let app = spawn_with(config).await.expect("start");
    let fx = fixture(&app, 10).await;
    user_with_token(
        &app,
        &fx,
        "alice",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;
    // Each failure past the free ones doubles the wait, so within a few attempts one comes
    // too soon, however slow the machine.
    let mut waited = None;
    for _ in 0..12 {
        let response = app
            .api(Method::POST, "/auth/authenticate", &fx.app_key)
            .json(&json!({"user": "alice", "password": "wrong guess", "otp": hotp(0)}))
            .send()
            .await
            .expect("answer");
        if response.status() == 429 {
            waited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let response = waited.expect("an attempt too soon after failures is refused");
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("reason=\"too_soon_after_failures\""),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_spelling_of_a_login_takes_from_one_rate_limit_bucket() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.api.user_rate = 0.01;
    config.api.user_burst = 2;
    let app = spawn_with(config).await.expect("start");
    let fx = fixture(&app, 10).await;
    user_with_token(
        &app,
        &fx,
        "liam",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;
    let (_, body) = call(&app, Method::GET, "/users/liam", &fx.admin, Value::Null).await;
    let id = body["id"].as_i64().expect("an id");
    for user in [json!("liam"), json!(id)] {
        let (status, body) =
            authenticate(&app, &fx.app_key, json!({"user": user, "otp": "000000"})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) =
        authenticate(&app, &fx.app_key, json!({"user": "LIAM", "otp": "000000"})).await;
    assert_eq!(
        status, 429,
        "the name, the id and the name in capitals are one bucket: {body}"
    );
    app.stop().await;
}
