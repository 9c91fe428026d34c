//! Administrators logging in to the admin panel: a password and a current code, a replayed
//! code, logout, CSRF tokens on every form, failed logins in a row that wait and lock per
//! account and address, and linking an authenticator app at login.

use crate::helpers::app::{client_for, spawn_app, spawn_with, test_config};
use crate::helpers::otp::{totp_now, wait_for_fresh_step};
use crate::helpers::page::{hidden_value, location};

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn login_needs_the_password_and_a_current_code() {
    let mut app = spawn_app().await;
    let secret = app.create_first_admin("alice", PASSWORD).await;
    app.forget_cookies();

    let no_code = app.login("alice", PASSWORD, "").await;
    assert_eq!(no_code.status(), 401);
    assert!(no_code.text().await.expect("body").contains("Login failed"));

    let wrong_password = app
        .login("alice", "wrong password!", &totp_now(&secret, 1))
        .await;
    assert_eq!(wrong_password.status(), 401);

    let unknown = app.login("mallory", PASSWORD, &totp_now(&secret, 1)).await;
    assert_eq!(unknown.status(), 401);

    let good = app.login("alice", PASSWORD, &totp_now(&secret, 1)).await;
    assert_eq!(good.status(), 303);
    assert_eq!(location(&good), "/admin");
    let cookie = good
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .find(|c| c.starts_with("__Host-otpgate_admin="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("Secure"));
    assert!(cookie.contains("SameSite=Strict"));
    assert_eq!(app.get("/admin").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_totp_code_is_refused() {
    let mut app = spawn_app().await;
    // Setup and the replay must fall in the same 30-second step.
    wait_for_fresh_step(15).await;
    let secret = app.create_first_admin("alice", PASSWORD).await;
    let code = totp_now(&secret, 0);
    // Setup used the current step already: a code of this step is a replay.
    let replay_of_setup = app.login("alice", PASSWORD, &code).await;
    assert_eq!(replay_of_setup.status(), 401);

    let next = totp_now(&secret, 1);
    app.forget_cookies();
    assert_eq!(app.login("alice", PASSWORD, &next).await.status(), 303);
    app.forget_cookies();
    let replay = app.login("alice", PASSWORD, &next).await;
    assert_eq!(replay.status(), 401, "the same code cannot log in twice");
    assert_eq!(app.get("/admin").await.status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    app.create_first_admin("alice", PASSWORD).await;
    let page = app.get("/admin").await.text().await.expect("body");
    let csrf = hidden_value(&page, "csrf");
    let response = app.post_form("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.get("/admin").await.status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_refused() {
    let app = spawn_app().await;
    app.create_first_admin("alice", PASSWORD).await;

    let logout = app.post_form("/admin/logout", &[("csrf", "forged")]).await;
    assert_eq!(logout.status(), 403);
    assert_eq!(
        app.get("/admin").await.status(),
        200,
        "the session survives a forged logout"
    );

    let missing = app.post_form("/admin/logout", &[]).await;
    assert_eq!(
        missing.status(),
        400,
        "a form without its token is malformed"
    );
    assert_eq!(app.get("/admin").await.status(), 200);

    let stranger = client_for(&app.data_dir);
    let login = stranger
        .post(app.url("/admin/login"))
        .form(&[
            ("csrf", "x"),
            ("login", "alice"),
            ("password", PASSWORD),
            ("otp", "123456"),
        ])
        .send()
        .await
        .expect("answer");
    assert_eq!(
        login.status(),
        403,
        "a login form needs the token of its cookie"
    );
    app.stop().await;
}

#[tokio::test]
async fn failed_logins_in_a_row_make_the_next_attempt_wait() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.logins.free_failures = 2;
    let app = spawn_with(config).await.expect("start");
    app.create_first_admin("alice", PASSWORD).await;
    // Each failure past the free ones doubles the wait (1 s, 2 s, 4 s …), so within a few
    // attempts one comes too soon, however slow the machine (and before the ten attempts a
    // fixed window per login allowed).
    let mut waited = None;
    for _ in 0..8 {
        let response = app.login("alice", "wrong password", "000000").await;
        if response.status() == 429 {
            waited = Some(response);
            break;
        }
        assert_eq!(response.status(), 401);
    }
    let throttled = waited.expect("an attempt too soon after failures is refused");
    assert!(throttled.headers().contains_key("retry-after"));
    assert!(
        throttled
            .text()
            .await
            .expect("body")
            .contains("Try again in")
    );
    app.stop().await;
}

/// Posts the login form from `client`, with a CSRF token of its own.
async fn log_in_with(
    app: &crate::helpers::app::TestApp,
    client: &reqwest::Client,
    login: &str,
    password: &str,
) -> reqwest::Response {
    let page = client
        .get(app.url("/admin/login"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    let csrf = hidden_value(&page, "csrf");
    client
        .post(app.url("/admin/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("login", login),
            ("password", password),
            ("otp", "000000"),
        ])
        .send()
        .await
        .expect("answer")
}

#[tokio::test]
async fn failures_from_elsewhere_lock_an_administrator_out_there_but_not_at_their_usual_address() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.logins.lock_after = 5;
    let app = spawn_with(config).await.expect("start");
    let csrf = app.logged_in_admin().await;
    // Bob has not linked an app yet: his password alone logs him in (to the linking step).
    let bob_password = "bob's long password";
    let created = app
        .post_form(
            "/admin/administrators",
            &[
                ("csrf", &csrf),
                ("login", "bob"),
                ("password", bob_password),
                ("password_confirm", bob_password),
            ],
        )
        .await;
    assert_eq!(created.status(), 303);
    let owner = client_for(&app.data_dir);
    let usual = log_in_with(&app, &owner, "bob", bob_password).await;
    assert_eq!(
        location(&usual),
        "/admin/enrol",
        "bob logs in from his usual address"
    );

    let attacker = crate::helpers::app::client_from(&app.data_dir, [127, 0, 0, 2].into());
    for _ in 0..5 {
        let guess = log_in_with(&app, &attacker, "BOB", "a wrong guess").await;
        assert_eq!(guess.status(), 401);
    }
    let right = log_in_with(&app, &attacker, "bob", bob_password).await;
    assert_eq!(
        right.status(),
        403,
        "locked elsewhere: even the right password is refused"
    );
    assert!(right.text().await.expect("body").contains("locked"));
    let owner_again = log_in_with(&app, &owner, "bob", bob_password).await;
    assert_eq!(
        location(&owner_again),
        "/admin/enrol",
        "the failures elsewhere do not keep bob out of his usual address"
    );
    let locks = crate::helpers::api::count(
        &app,
        "SELECT count(*) FROM audit_log WHERE action = 'admin.lock' AND result = 'locked' AND client_ip = '127.0.0.2'",
    );
    assert_eq!(
        locks, 1,
        "the lock is audited with the address it came from"
    );
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_accounts_locked_total{account=\"admin\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_administrator_unlocks_another_locked_out_elsewhere() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.logins.lock_after = 3;
    let app = spawn_with(config).await.expect("start");
    let csrf = app.logged_in_admin().await;
    let bob_password = "bob's long password";
    app.post_form(
        "/admin/administrators",
        &[
            ("csrf", &csrf),
            ("login", "bob"),
            ("password", bob_password),
            ("password_confirm", bob_password),
        ],
    )
    .await;
    let elsewhere = crate::helpers::app::client_from(&app.data_dir, [127, 0, 0, 3].into());
    for _ in 0..3 {
        log_in_with(&app, &elsewhere, "bob", "a wrong guess").await;
    }
    assert_eq!(
        log_in_with(&app, &elsewhere, "bob", bob_password)
            .await
            .status(),
        403
    );
    let bob_id = crate::helpers::api::count(&app, "SELECT id FROM admins WHERE login = 'bob'");
    let unlocked = app
        .post_form(
            &format!("/admin/administrators/{bob_id}/unlock"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unlocked.status(), 303);
    let right = log_in_with(&app, &elsewhere, "bob", bob_password).await;
    assert_eq!(
        location(&right),
        "/admin/enrol",
        "unlocked, the right password logs in"
    );
    assert_eq!(
        crate::helpers::api::count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'admin.unlock'"
        ),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn an_administrator_without_an_app_links_one_at_login() {
    let app = spawn_app().await;
    app.create_first_admin("alice", PASSWORD).await;
    let dir = app.data_dir.clone();
    let tempdir = app.stop().await;

    let output = crate::helpers::process::otpgate_command(&dir)
        .args(["admin", "reset-2fa", "alice"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut config = test_config(&dir);
    config.data_dir = Some(dir.clone());
    let app = spawn_with(config).await.expect("restart");
    let response = app.login("alice", PASSWORD, "").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/enrol");
    assert_eq!(
        app.get("/admin").await.status(),
        303,
        "not logged in before linking an app"
    );
    let page = app.get("/admin/enrol").await.text().await.expect("body");
    let secret = crate::helpers::page::secret_on_page(&page);
    let csrf = hidden_value(&page, "csrf");
    let response = app
        .post_form(
            "/admin/enrol",
            &[("csrf", &csrf), ("otp", &totp_now(&secret, 0))],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.get("/admin").await.status(), 200);
    app.stop().await;
    drop(tempdir);
}
