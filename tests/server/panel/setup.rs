//! The first-start setup: the setup link creates the first administrator with a password and
//! an authenticator app, refuses a wrong code or a short password, and stops working once used.

use crate::helpers::app::spawn_app;
use crate::helpers::otp::totp_now;
use crate::helpers::page::{hidden_value, location};

#[tokio::test]
async fn the_setup_link_creates_the_first_administrator_and_then_stops_working() {
    let app = spawn_app().await;
    let link = app.setup_link.clone().expect("a fresh server offers setup");
    assert!(link.starts_with(&format!("{}/setup?code=", app.address)));

    app.create_first_admin("alice", "a long enough password")
        .await;
    let dashboard = app.get("/admin").await;
    assert_eq!(dashboard.status(), 200, "setup logs the administrator in");
    assert!(dashboard.text().await.expect("body").contains("alice"));

    let again = app.get(link.trim_start_matches(&app.address)).await;
    assert_eq!(again.status(), 410, "the link works once");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_setup_code_is_refused() {
    let app = spawn_app().await;
    let response = app.get("/setup?code=guessed").await;
    assert_eq!(response.status(), 410);
    assert!(!response.text().await.expect("body").contains("password"));
    app.stop().await;
}

#[tokio::test]
async fn setup_refuses_a_short_password_and_keeps_the_login_typed() {
    let app = spawn_app().await;
    let path = app
        .setup_link
        .clone()
        .expect("link")
        .replace(&app.address, "");
    let code = path.split("code=").nth(1).expect("code").to_string();
    let page = app.get(&path).await.text().await.expect("body");
    let csrf = hidden_value(&page, "csrf");
    let response = app
        .post_form(
            "/setup",
            &[
                ("code", &code),
                ("csrf", &csrf),
                ("login", "bob"),
                ("password", "short"),
                ("password_confirm", "short"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(page.contains("at least 10 characters"));
    assert!(page.contains("value=\"bob\""));
    app.stop().await;
}

#[tokio::test]
async fn setup_refuses_a_wrong_first_code() {
    let app = spawn_app().await;
    let path = app
        .setup_link
        .clone()
        .expect("link")
        .replace(&app.address, "");
    let code = path.split("code=").nth(1).expect("code").to_string();
    let page = app.get(&path).await.text().await.expect("body");
    let csrf = hidden_value(&page, "csrf");
    let password = "a long enough password";
    app.post_form(
        "/setup",
        &[
            ("code", &code),
            ("csrf", &csrf),
            ("login", "carol"),
            ("password", password),
            ("password_confirm", password),
        ],
    )
    .await;
    let response = app
        .post_form(
            "/setup/totp",
            &[("code", &code), ("csrf", &csrf), ("otp", "000000")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.expect("body").contains("not right"));
    let login_page = app.get("/admin/login").await.text().await.expect("body");
    assert!(login_page.contains("No administrator exists yet"));
    app.stop().await;
}

#[tokio::test]
async fn the_setup_page_shows_a_qr_code_that_an_independent_totp_check_accepts() {
    let app = spawn_app().await;
    let secret = app
        .create_first_admin("dave", "a long enough password")
        .await;
    // The code the test computes with the RFC 6238 reference definition.
    assert_eq!(totp_now(&secret, 0).len(), 6);
    let logged_out = crate::helpers::app::client_for(&app.data_dir)
        .get(app.url("/admin"))
        .send()
        .await
        .expect("answer");
    assert_eq!(logged_out.status(), 303);
    assert_eq!(location(&logged_out), "/admin/login");
    app.stop().await;
}
