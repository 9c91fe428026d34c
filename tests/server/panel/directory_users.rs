//! A directory user in the admin panel, against a real slapd, through HTTPS forms: their page
//! shows the directory and their details read-only (no Edit, no password form), the list marks
//! them, and a form posted anyway is refused in the API's words with nothing changed, while
//! Enable/Disable and Assign Token work as for anyone.

use serde_json::json;

use crate::helpers::api::{create_user, insert_token};
use crate::helpers::app::spawn_app;
use crate::helpers::directory::{directory_user, record, small_slapd};
use crate::helpers::page::location;
use crate::helpers::panel::{follow, post_multipart};

#[tokio::test]
async fn a_directory_users_page_shows_the_directory_and_offers_no_edit_and_no_password_form() {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    app.logged_in_admin().await;
    let admin = app.api_key(&["--admin"]);
    let id = directory_user(&app, &admin, &slapd).await;
    let local = create_user(
        &app,
        &admin,
        json!({"login": "carol", "email": "carol@example.com"}),
    )
    .await["id"]
        .as_i64()
        .expect("id");

    let page = app
        .get(&format!("/admin/users/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("This user comes from the directory <strong>Example</strong>"),
        "{page}"
    );
    assert!(page.contains("directory: Example"), "{page}");
    assert!(page.contains("alice@example.org") && page.contains("Alice Liddell"));
    assert!(
        page.contains("Kept in the directory <strong>Example</strong>"),
        "{page}"
    );
    assert!(!page.contains(&format!("/admin/users/{id}/edit")), "{page}");
    assert!(!page.contains("name=\"password\""), "{page}");
    assert!(page.contains("Assign Token") && page.contains("Disable"));
    // A local user's page still offers both.
    let page = app
        .get(&format!("/admin/users/{local}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains(&format!("/admin/users/{local}/edit")));
    assert!(page.contains("name=\"password\"") && !page.contains("directory: "));

    let list = app.get("/admin/users").await.text().await.expect("body");
    assert_eq!(list.matches("directory: Example").count(), 1, "{list}");
    assert!(list.contains("in the directory"), "{list}");

    let edit = app.get(&format!("/admin/users/{id}/edit")).await;
    assert_eq!(location(&edit), format!("/admin/users/{id}"));
    let page = follow(&app, edit).await;
    assert!(
        page.contains(
            "The details of alice come from the directory &quot;Example&quot;: change them there."
        ),
        "{page}"
    );
}

#[tokio::test]
async fn the_panel_refuses_changing_what_the_directory_keeps_and_nothing_changes() {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let admin = app.api_key(&["--admin"]);
    let id = directory_user(&app, &admin, &slapd).await;
    let before = record(&app, id);
    let phone = before.phone.clone().unwrap_or_default();
    let email = before.email.clone().unwrap_or_default();
    let path = format!("/admin/users/{id}");
    for (field, value) in [
        ("first_name", "Alicia"),
        ("email", "alice@elsewhere.example"),
        ("phone", "+49 151 12345678"),
        ("login", "alicia"),
    ] {
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("login", "alice"),
            ("first_name", "Alice"),
            ("last_name", "Liddell"),
            ("email", email.as_str()),
            ("phone", phone.as_str()),
        ];
        for pair in form.iter_mut() {
            if pair.0 == field {
                pair.1 = value;
            }
        }
        let refused = app.post_form(&path, &form).await;
        assert_eq!(refused.status(), 400, "{field}");
        let page = refused.text().await.expect("body");
        assert!(
            page.contains("Comes from the directory &quot;Example&quot;: change it there"),
            "{field}: {page}"
        );
        assert!(
            !page.contains("name=\"first_name\""),
            "no edit inputs: {page}"
        );
        assert_eq!(record(&app, id), before, "{field}: nothing changed");
    }

    // The CSV import creates users and changes none: her login is taken.
    let csv = b"login,first,last,email,phone\nalice,Alicia,Other,alice@elsewhere.example,\n";
    let refused = post_multipart(
        &app,
        "/admin/users/import",
        &[("csrf", &csrf)],
        ("file", "users.csv", csv),
    )
    .await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("exists already")
    );
    assert_eq!(record(&app, id), before);

    // What otpgate keeps changes as for anyone.
    let disabled = app
        .post_form(&format!("{path}/disable"), &[("csrf", &csrf)])
        .await;
    assert_eq!(disabled.status(), 303);
    assert!(!record(&app, id).enabled);
    let token = insert_token(&app, "HW-0001", None);
    let assigned = app
        .post_form(
            &format!("{path}/assign"),
            &[("csrf", &csrf), ("token", &token.to_string())],
        )
        .await;
    assert_eq!(assigned.status(), 303);
    let page = follow(&app, assigned).await;
    assert!(page.contains("Token HW-0001 assigned to alice."), "{page}");
    let after = record(&app, id);
    assert_eq!(
        (after.login, after.first_name, after.email, after.phone),
        (before.login, before.first_name, before.email, before.phone)
    );
}
