//! The cookies of the whole site — the administrator's session, the CSRF cookie of the forms
//! shown before login, the panel's flash message — carry the `__Host-` prefix over HTTPS: the
//! browser keeps them only when they are `Secure`, for `Path=/` and without a `Domain`, so no
//! other host of the domain and no plain-HTTP page can plant or shadow one. A cookie under the
//! bare name is not taken for them.

use crate::helpers::app::spawn_app;
use crate::helpers::page::hidden_value;

/// The `Set-Cookie` headers of a response.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().expect("ascii").to_string())
        .collect()
}

/// The one `Set-Cookie` for `name`, checked to be a `__Host-` cookie as browsers require it.
fn host_cookie(cookies: &[String], name: &str) -> String {
    let prefixed = format!("__Host-{name}=");
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with(&prefixed))
        .unwrap_or_else(|| panic!("no {prefixed} among {cookies:?}"))
        .clone();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("; Path=/;") || cookie.ends_with("; Path=/"),
        "{cookie}"
    );
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    assert!(
        !cookies.iter().any(|c| c.starts_with(&format!("{name}="))),
        "no cookie under the bare name: {cookies:?}"
    );
    cookie
}

#[tokio::test]
async fn the_panel_s_cookies_carry_the_host_prefix() {
    let mut app = spawn_app().await;
    let secret = app
        .create_first_admin("alice", "correct horse battery")
        .await;
    app.forget_cookies();

    let login_page = app.get("/admin/login").await;
    let csrf_cookie = host_cookie(&set_cookies(&login_page), "otpgate_csrf");
    assert!(csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");

    let code = crate::helpers::otp::totp_now(&secret, 1);
    let logged_in = app.login("alice", "correct horse battery", &code).await;
    assert_eq!(logged_in.status(), 303);
    let session = host_cookie(&set_cookies(&logged_in), "otpgate_admin");
    assert!(session.contains("HttpOnly"), "{session}");

    // A form that answers with a flash message.
    let page = app.get("/admin/settings").await.text().await.expect("body");
    let csrf = hidden_value(&page, "csrf");
    let saved = app
        .post_form(
            "/admin/settings/general",
            &[
                ("csrf", &csrf),
                ("default_otp_length", "6"),
                ("challenge_validity_seconds", "300"),
                ("portal_idle_minutes", "20"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303);
    host_cookie(&set_cookies(&saved), "otpgate_flash");
    app.stop().await;
}

#[tokio::test]
async fn a_session_cookie_under_the_bare_name_is_not_taken() {
    let mut app = spawn_app().await;
    let secret = app
        .create_first_admin("alice", "correct horse battery")
        .await;
    app.forget_cookies();
    let code = crate::helpers::otp::totp_now(&secret, 1);
    let logged_in = app.login("alice", "correct horse battery", &code).await;
    let session = host_cookie(&set_cookies(&logged_in), "otpgate_admin");
    let value = session
        .trim_start_matches("__Host-otpgate_admin=")
        .split(';')
        .next()
        .expect("a value")
        .to_string();

    let plain = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(app.data_dir.join("tls/cert.pem")).expect("cert"),
            )
            .expect("PEM"),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let shadowed = plain
        .get(app.url("/admin"))
        .header("cookie", format!("otpgate_admin={value}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(shadowed.status(), 303, "sent to the login page");
    let prefixed = plain
        .get(app.url("/admin"))
        .header("cookie", format!("__Host-otpgate_admin={value}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(prefixed.status(), 200);
    app.stop().await;
}
