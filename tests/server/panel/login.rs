//! Administrators logging in to the admin panel: a password and a current code, a replayed
//! code, logout, CSRF tokens on every form, failed logins throttled per login, and linking an
//! authenticator app at login.

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
async fn failed_logins_are_throttled_per_login() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.admin.login_attempts_per_login = 3;
    let app = spawn_with(config).await.expect("start");
    for _ in 0..3 {
        assert_eq!(
            app.login("alice", "wrong password", "000000")
                .await
                .status(),
            401
        );
    }
    let throttled = app.login("alice", "wrong password", "000000").await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
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
