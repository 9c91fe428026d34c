//! The admin panel's admins pages, through real HTTPS with forms and CSRF tokens.

use crate::helpers::api::count;
use crate::helpers::app::{TestApp, client_for, spawn_app};
use crate::helpers::page::{hidden_value, location};

async fn page_of(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.expect("body")
}

/// Logs `login` in with a browser of its own and returns where the login sent it.
async fn login_elsewhere(app: &TestApp, login: &str, password: &str) -> (u16, String) {
    let client = client_for(&app.data_dir);
    let page = client
        .get(app.url("/admin/login"))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("body");
    let csrf = hidden_value(&page, "csrf");
    let response = client
        .post(app.url("/admin/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("login", login),
            ("password", password),
            ("otp", ""),
        ])
        .send()
        .await
        .expect("answered");
    (response.status().as_u16(), location(&response))
}

fn admin_id(app: &TestApp, login: &str) -> i64 {
    count(
        app,
        &format!("SELECT id FROM admins WHERE login = '{login}'"),
    )
}

#[tokio::test]
async fn the_administrators_pages_need_a_logged_in_administrator() {
    let app = spawn_app().await;
    let response = app.get("/admin/administrators").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/login");
    let response = app
        .post_form(
            "/admin/administrators",
            &[
                ("login", "eve"),
                ("password", "0123456789"),
                ("password_confirm", "0123456789"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn a_new_administrator_must_link_an_authenticator_app_at_the_first_login() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let response = app
        .post_form(
            "/admin/administrators",
            &[
                ("csrf", &csrf),
                ("login", "bob"),
                ("password", "short"),
                ("password_confirm", "short"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("value=\"bob\""), "the login stays");
    assert!(page.contains("at least 10 characters"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM admins"), 1);

    let password = "bob's long password";
    let response = app
        .post_form(
            "/admin/administrators",
            &[
                ("csrf", &csrf),
                ("login", "bob"),
                ("password", password),
                ("password_confirm", password),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = page_of(&app, "/admin/administrators").await;
    assert!(page.contains("Administrator “bob” added."));
    assert!(page.contains("links one at the next login"));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'admin.create' AND actor = 'admin:admin' AND detail = 'bob'"
        ),
        1
    );

    let (status, target) = login_elsewhere(&app, "bob", password).await;
    assert_eq!(status, 303);
    assert_eq!(
        target, "/admin/enrol",
        "the first login goes to linking an app"
    );

    // A second one with the same login is refused.
    let response = app
        .post_form(
            "/admin/administrators",
            &[
                ("csrf", &csrf),
                ("login", "BOB"),
                ("password", password),
                ("password_confirm", password),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM admins"), 2);
}

#[tokio::test]
async fn an_administrator_is_disabled_after_confirmation_and_enabled_again() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let password = "carol's long password";
    app.post_form(
        "/admin/administrators",
        &[
            ("csrf", &csrf),
            ("login", "carol"),
            ("password", password),
            ("password_confirm", password),
        ],
    )
    .await;
    let carol = admin_id(&app, "carol");
    let disable = format!("/admin/administrators/{carol}/disable");
    assert!(
        page_of(&app, &disable)
            .await
            .contains("Disable <strong>carol</strong>?")
    );
    let response = app.post_form(&disable, &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        count(&app, "SELECT enabled FROM admins WHERE login = 'carol'"),
        0
    );
    let (status, _) = login_elsewhere(&app, "carol", password).await;
    assert_eq!(status, 401, "a disabled administrator cannot log in");

    let response = app
        .post_form(
            &format!("/admin/administrators/{carol}/enable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        count(&app, "SELECT enabled FROM admins WHERE login = 'carol'"),
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('admin.disable', 'admin.enable') AND actor = 'admin:admin'"
        ),
        2
    );
}

#[tokio::test]
async fn an_administrator_cannot_disable_their_own_account_nor_the_last_one() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let me = admin_id(&app, "admin");
    let page = page_of(&app, "/admin/administrators").await;
    assert!(
        !page.contains(&format!("/admin/administrators/{me}/disable")),
        "not offered"
    );
    let response = app
        .post_form(
            &format!("/admin/administrators/{me}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = page_of(&app, "/admin/administrators").await;
    assert!(
        page.contains("You cannot disable your own account"),
        "{page}"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM admins WHERE enabled = 1"),
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'admin.disable' AND result = 'refused'"
        ),
        1
    );
}

#[tokio::test]
async fn a_forged_administrator_form_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let password = "dave's long password";
    app.post_form(
        "/admin/administrators",
        &[
            ("csrf", &csrf),
            ("login", "dave"),
            ("password", password),
            ("password_confirm", password),
        ],
    )
    .await;
    let dave = admin_id(&app, "dave");
    for forged in [vec![], vec![("csrf", "wrong")]] {
        for action in ["disable", "reset-2fa"] {
            let response = app
                .post_form(&format!("/admin/administrators/{dave}/{action}"), &forged)
                .await;
            assert_eq!(response.status(), 403, "{action}");
        }
        let mut form = forged.clone();
        form.extend([
            ("login", "mallory"),
            ("password", password),
            ("password_confirm", password),
        ]);
        assert_eq!(
            app.post_form("/admin/administrators", &form).await.status(),
            403
        );
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM admins WHERE enabled = 1"),
        2
    );
    assert_eq!(
        app.get("/admin/administrators/999/disable").await.status(),
        404
    );
}

#[tokio::test]
async fn resetting_two_factor_authentication_makes_the_administrator_link_a_new_app() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    // A second administrator to keep working while the first one's app is reset.
    let password = "erin's long password";
    app.post_form(
        "/admin/administrators",
        &[
            ("csrf", &csrf),
            ("login", "erin"),
            ("password", password),
            ("password_confirm", password),
        ],
    )
    .await;
    let me = admin_id(&app, "admin");
    let reset = format!("/admin/administrators/{me}/reset-2fa");
    assert!(
        page_of(&app, &reset)
            .await
            .contains("you will be logged out now")
    );
    let response = app.post_form(&reset, &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM admins WHERE login = 'admin' AND totp_secret IS NULL"
        ),
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'admin.reset_2fa' AND actor = 'admin:admin'"
        ),
        1
    );
    let response = app.get("/admin").await;
    assert_eq!(location(&response), "/admin/login", "the session ended");
    let (_, target) = login_elsewhere(&app, "admin", "correct horse battery").await;
    assert_eq!(target, "/admin/enrol");
}
