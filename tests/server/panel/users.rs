//! The admin panel's users pages, through real HTTPS with forms and CSRF tokens.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{create_resource, create_user, insert_token, send};
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::delivery::mail_settings;
use crate::helpers::page::location;
use crate::helpers::panel::{audit_actors, follow, post_multipart};
use crate::helpers::smtp_sink::{Mode, SmtpSink};

/// How long a notice may take through the outbox to the mail sink.
const NOTICE_WAIT: Duration = Duration::from_secs(20);

async fn user_json(app: &TestApp, key: &str, login: &str) -> (u16, Value) {
    let (status, user) = send(app, Method::GET, &format!("/users/{login}"), key, None).await;
    (status.as_u16(), user)
}

#[tokio::test]
async fn the_users_pages_send_a_logged_out_visitor_to_the_login_page() {
    let app = spawn_app().await;
    for path in [
        "/admin/users",
        "/admin/users/new",
        "/admin/users/1",
        "/admin/users/import",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), "/admin/login", "{path}");
    }
    let response = app.post_form("/admin/users", &[("login", "eve")]).await;
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn a_user_created_in_the_panel_exists_and_the_audit_log_names_the_administrator() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let empty = app.get("/admin/users").await.text().await.expect("body");
    assert!(empty.contains("No users yet."), "{empty}");
    let response = app
        .post_form(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("login", "jdoe"),
                ("first_name", "Jane"),
                ("last_name", "Doe"),
                ("email", "jane@example.com"),
                ("phone", "+49 151 1234 5678"),
                ("password", "long enough password"),
            ],
        )
        .await;
    assert!(location(&response).starts_with("/admin/users/"));
    let page = follow(&app, response).await;
    assert!(page.contains("User jdoe created."), "{page}");
    assert!(page.contains("+4915112345678"));
    let (status, user) = user_json(&app, &key, "jdoe").await;
    assert_eq!(status, 200);
    assert_eq!(user["has_password"], true);
    assert_eq!(user["email"], "jane@example.com");
    assert_eq!(audit_actors(&app, "user.create"), vec!["admin:admin"]);
    let list = app.get("/admin/users").await.text().await.expect("body");
    assert!(
        list.contains(">jdoe</a>") && list.contains("1 user"),
        "{list}"
    );
}

#[tokio::test]
async fn a_user_form_with_mistakes_comes_back_with_what_was_typed() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let response = app
        .post_form(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("login", "kim"),
                ("first_name", "Kim <b>"),
                ("email", "not an address"),
                ("phone", "0151 123"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("value=\"kim\""), "{page}");
    assert!(page.contains("value=\"Kim &lt;b&gt;\""));
    assert!(page.contains("value=\"not an address\""));
    assert!(page.contains("is not an email address"));
    assert!(page.contains("international"));
    assert_eq!(user_json(&app, &key, "kim").await.0, 404);

    create_user(&app, &key, json!({ "login": "taken" })).await;
    let response = app
        .post_form("/admin/users", &[("csrf", &csrf), ("login", "TAKEN")])
        .await;
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("exists already")
    );
}

#[tokio::test]
async fn a_new_user_form_reports_every_wrong_field_at_once_the_password_among_them() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let response = app
        .post_form(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("login", "lee"),
                ("phone", "0151 123"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("international"), "the phone: {page}");
    assert!(
        page.contains("Must have at least 8 characters"),
        "the password, in the same answer: {page}"
    );
    assert_eq!(user_json(&app, &key, "lee").await.0, 404);
}

#[tokio::test]
async fn the_users_list_offers_assign_token_on_every_row() {
    let app = spawn_app().await;
    app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let user = create_user(&app, &key, json!({ "login": "mia" })).await;
    let list = app.get("/admin/users").await.text().await.expect("body");
    let link = format!("href=\"/admin/users/{}/assign\"", user["id"]);
    assert!(list.contains(&link), "{list}");
    assert!(list.contains("Assign Token to mia"), "{list}");
}

#[tokio::test]
async fn a_forged_user_form_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let _csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let user = create_user(&app, &key, json!({ "login": "victim" })).await;
    let id = user["id"].to_string();
    let without = app.post_form("/admin/users", &[("login", "mallory")]).await;
    assert_eq!(without.status(), 403);
    let wrong = app
        .post_form(
            "/admin/users",
            &[("csrf", "not-the-token"), ("login", "mallory")],
        )
        .await;
    assert_eq!(wrong.status(), 403);
    assert_eq!(user_json(&app, &key, "mallory").await.0, 404);
    for action in ["delete", "disable", "password"] {
        let response = app
            .post_form(
                &format!("/admin/users/{id}/{action}"),
                &[("csrf", "forged"), ("password", "new password!")],
            )
            .await;
        assert_eq!(response.status(), 403, "{action}");
    }
    let (status, user) = user_json(&app, &key, "victim").await;
    assert_eq!(status, 200);
    assert_eq!(user["enabled"], true);
    assert_eq!(user["has_password"], false);
}

#[tokio::test]
async fn a_user_is_edited_disabled_given_a_password_and_deleted_after_confirmation() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let user = create_user(
        &app,
        &key,
        json!({ "login": "ann", "email": "ann@example.com" }),
    )
    .await;
    let id = user["id"].to_string();
    let base = format!("/admin/users/{id}");

    let edit = app
        .get(&format!("{base}/edit"))
        .await
        .text()
        .await
        .expect("body");
    assert!(edit.contains("value=\"ann@example.com\""));
    let response = app
        .post_form(
            &base,
            &[
                ("csrf", &csrf),
                ("login", "ann.smith"),
                ("first_name", "Ann"),
                ("last_name", "Smith"),
                ("email", ""),
                ("phone", "+44 20 7946 0958"),
            ],
        )
        .await;
    assert!(
        follow(&app, response)
            .await
            .contains("User ann.smith saved.")
    );
    let (_, user) = user_json(&app, &key, &id).await;
    assert_eq!(user["login"], "ann.smith");
    assert_eq!(user["email"], Value::Null);
    assert_eq!(user["phone"], "+442079460958");

    let short = app
        .post_form(
            &format!("{base}/password"),
            &[("csrf", &csrf), ("action", "set"), ("password", "short")],
        )
        .await;
    assert_eq!(short.status(), 400);
    assert!(
        short
            .text()
            .await
            .expect("body")
            .contains("at least 8 characters")
    );
    let set = app
        .post_form(
            &format!("{base}/password"),
            &[
                ("csrf", &csrf),
                ("action", "set"),
                ("password", "a good password"),
            ],
        )
        .await;
    assert!(follow(&app, set).await.contains("Password set."));
    assert_eq!(user_json(&app, &key, &id).await.1["has_password"], true);
    let cleared = app
        .post_form(
            &format!("{base}/password"),
            &[("csrf", &csrf), ("action", "clear")],
        )
        .await;
    assert_eq!(cleared.status(), 303);
    assert_eq!(user_json(&app, &key, &id).await.1["has_password"], false);

    let disabled = app
        .post_form(&format!("{base}/disable"), &[("csrf", &csrf)])
        .await;
    assert!(
        follow(&app, disabled)
            .await
            .contains("User ann.smith disabled.")
    );
    assert_eq!(user_json(&app, &key, &id).await.1["enabled"], false);
    let list = app
        .get("/admin/users?enabled=no")
        .await
        .text()
        .await
        .expect("body");
    assert!(list.contains("ann.smith"));
    let list = app
        .get("/admin/users?enabled=yes")
        .await
        .text()
        .await
        .expect("body");
    assert!(list.contains("No users match."));

    let confirm = app
        .get(&format!("{base}/delete"))
        .await
        .text()
        .await
        .expect("body");
    assert!(confirm.contains("cannot be undone"));
    let deleted = app
        .post_form(&format!("{base}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&deleted), "/admin/users");
    assert_eq!(user_json(&app, &key, &id).await.0, 404);
    assert_eq!(app.get(&base).await.status(), 404);
    assert_eq!(audit_actors(&app, "user.delete"), vec!["admin:admin"]);
    assert_eq!(audit_actors(&app, "user.password").len(), 2);
}

#[tokio::test]
async fn the_list_searches_filters_and_pages_by_login() {
    let app = spawn_app().await;
    let _csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    for i in 0..55 {
        create_user(
            &app,
            &key,
            json!({ "login": format!("user{i:02}"), "last_name": if i == 7 { "Quixote" } else { "Plain" } }),
        )
        .await;
    }
    let resource = create_resource(&app, &key, "vpn").await;
    send(
        &app,
        Method::POST,
        &format!("/resources/{}/users", resource["id"]),
        &key,
        Some(json!({ "user": "user42" })),
    )
    .await;

    let first = app.get("/admin/users").await.text().await.expect("body");
    assert!(first.contains("55 users"));
    assert!(first.contains("user49") && !first.contains("user50"));
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a next link")
        .replace("&amp;", "&");
    assert_eq!(next, "/admin/users?after=user49");
    let second = app.get(&next).await.text().await.expect("body");
    assert!(second.contains("user54") && !second.contains(">user49<"));
    assert!(second.contains("rel=\"prev\""));

    let found = app
        .get("/admin/users?search=quix")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        found.contains("user07") && found.contains("1 user"),
        "{found}"
    );
    let by_resource = app
        .get(&format!("/admin/users?resource={}", resource["id"]))
        .await
        .text()
        .await
        .expect("body");
    assert!(by_resource.contains("user42") && by_resource.contains("1 user"));
    let without = app
        .get("/admin/users?has_token=yes")
        .await
        .text()
        .await
        .expect("body");
    assert!(without.contains("No users match."));
}

#[tokio::test]
async fn assign_token_existing_gives_an_unassigned_token_to_the_user() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let user = create_user(&app, &key, json!({ "login": "bob" })).await;
    let id = user["id"].to_string();
    let (_, token) = send(
        &app,
        Method::POST,
        "/tokens",
        &key,
        Some(json!({ "kind": "MAIL", "serial": "MAIL-FREE", "destination": "bob@example.com" })),
    )
    .await;
    let page = app
        .get(&format!("/admin/users/{id}/assign"))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("MAIL-FREE"));
    assert!(page.contains(&format!("/admin/tokens/new/mail?user={id}")));
    let nothing = app
        .post_form(
            &format!("/admin/users/{id}/assign"),
            &[("csrf", &csrf), ("token", "")],
        )
        .await;
    assert_eq!(nothing.status(), 400);
    // A MAIL token's address is confirmed or changed first: nothing is assigned yet.
    let confirm = app
        .post_form(
            &format!("/admin/users/{id}/assign"),
            &[("csrf", &csrf), ("token", &token["id"].to_string())],
        )
        .await;
    assert_eq!(confirm.status(), 200);
    let page = confirm.text().await.expect("body");
    assert!(
        page.contains("Where should its codes go for bob?"),
        "{page}"
    );
    let (_, unassigned) = send(&app, Method::GET, "/tokens/MAIL-FREE", &key, None).await;
    assert!(unassigned["user"].is_null());
    let response = app
        .post_form(
            &format!("/admin/users/{id}/assign"),
            &[
                ("csrf", &csrf),
                ("token", &token["id"].to_string()),
                ("confirmed", "yes"),
                ("destination", "bob.desk@example.com"),
            ],
        )
        .await;
    let page = follow(&app, response).await;
    assert!(page.contains("Token MAIL-FREE assigned to bob."), "{page}");
    assert!(page.contains("MAIL-FREE</a>"));
    let (_, token) = send(&app, Method::GET, "/tokens/MAIL-FREE", &key, None).await;
    assert_eq!(token["user"]["login"], "bob");
    assert_eq!(audit_actors(&app, "token.assign"), vec!["admin:admin"]);
}

#[tokio::test]
async fn a_users_csv_file_is_previewed_and_imported_all_or_nothing() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    create_user(&app, &key, json!({ "login": "existing" })).await;

    let bad = b"login,first,last,email,phone\nnew1,New,One,new1@example.com,\nexisting,,,,\nnew2,,,broken,\n";
    let response = post_multipart(
        &app,
        "/admin/users/import",
        &[("csrf", &csrf)],
        ("file", "users.csv", bad),
    )
    .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("2 of 3 rows have problems"), "{page}");
    assert!(page.contains("exists already") && page.contains("is not an email address"));
    assert_eq!(user_json(&app, &key, "new1").await.0, 404);

    let forged = post_multipart(
        &app,
        "/admin/users/import",
        &[("csrf", "forged")],
        ("file", "users.csv", b"x1\n"),
    )
    .await;
    assert_eq!(forged.status(), 403);

    let good = "login,first,last,email,phone\nnew1,New,One,new1@example.com,\nnew2,New,Two,,+49 30 1234567\n";
    let response = post_multipart(
        &app,
        "/admin/users/import",
        &[("csrf", &csrf)],
        ("file", "users.csv", good.as_bytes()),
    )
    .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(page.contains("Import 2 users"), "{page}");
    assert_eq!(
        user_json(&app, &key, "new1").await.0,
        404,
        "a preview imports nothing"
    );
    let response = app
        .post_form(
            "/admin/users/import/confirm",
            &[("csrf", &csrf), ("csv", good)],
        )
        .await;
    assert!(follow(&app, response).await.contains("2 users imported."));
    assert_eq!(
        user_json(&app, &key, "new2").await.1["phone"],
        "+49301234567"
    );
    assert_eq!(audit_actors(&app, "user.import"), vec!["admin:admin"]);
    let again = app
        .post_form(
            "/admin/users/import/confirm",
            &[("csrf", &csrf), ("csv", good)],
        )
        .await;
    assert_eq!(again.status(), 400, "the same file again imports nothing");
}

#[tokio::test]
async fn a_login_that_folds_like_another_users_gets_the_usual_duplicate_message() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    create_user(&app, &key, json!({ "login": "stra\u{df}e" })).await;
    let other = create_user(&app, &key, json!({ "login": "Zo\u{eb}" })).await;
    let response = app
        .post_form("/admin/users", &[("csrf", &csrf), ("login", "STRASSE")])
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("exists already"), "{page}");
    assert!(page.contains("value=\"STRASSE\""), "{page}");

    let response = app
        .post_form(
            &format!("/admin/users/{}", other["id"]),
            &[("csrf", &csrf), ("login", "Strasse")],
        )
        .await;
    assert_eq!(response.status(), 400, "a rename to a taken login");
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("exists already")
    );
    assert_eq!(
        user_json(&app, &key, "ZO\u{cb}").await.1["login"],
        "Zo\u{eb}"
    );
}

#[tokio::test]
async fn a_users_csv_file_with_logins_that_fold_alike_imports_nothing() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    create_user(&app, &key, json!({ "login": "Zo\u{eb}" })).await;

    let file = "login\nstra\u{df}e\nSTRASSE\nZO\u{cb}\nnewcomer\n";
    let response = post_multipart(
        &app,
        "/admin/users/import",
        &[("csrf", &csrf)],
        ("file", "users.csv", file.as_bytes()),
    )
    .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("2 of 4 rows have problems"), "{page}");
    assert!(
        page.contains(
            "login &quot;STRASSE&quot; is used on line 2 already, written &quot;straße&quot;"
        ),
        "two rows of the file: {page}"
    );
    assert!(
        page.contains("a user with the login &quot;Zoë&quot; exists already"),
        "a row and a stored user: {page}"
    );

    // The confirmation checks the file again, also when it did not come from the preview.
    let response = app
        .post_form(
            "/admin/users/import/confirm",
            &[("csrf", &csrf), ("csv", file)],
        )
        .await;
    assert_eq!(response.status(), 400);
    for login in ["stra\u{df}e", "newcomer"] {
        assert_eq!(user_json(&app, &key, login).await.0, 404, "{login}");
    }
}

#[tokio::test]
async fn an_administrators_changes_to_a_user_send_a_notice_to_the_address_it_had_before() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let sink = SmtpSink::start(Mode::Plain).await;
    let settings = mail_settings(sink.port, "none", None);
    let (status, body) = send(&app, Method::PUT, "/settings/mail", &key, Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    let user = create_user(
        &app,
        &key,
        json!({ "login": "ann", "email": "ann@example.com" }),
    )
    .await;
    let id = user["id"].to_string();

    let response = app
        .post_form(
            &format!("/admin/users/{id}"),
            &[
                ("csrf", &csrf),
                ("login", "ann"),
                ("first_name", ""),
                ("last_name", ""),
                ("email", "ann.new@example.com"),
                ("phone", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let mail = sink.wait_for(1, NOTICE_WAIT).await;
    assert_eq!(
        mail[0].to,
        vec!["ann@example.com".to_string()],
        "to the address before the change"
    );
    assert!(
        mail[0]
            .data
            .contains("The email address of your account was changed"),
        "{}",
        mail[0].data
    );
    assert!(mail[0].data.contains("on the administration panel"));

    let token = insert_token(&app, "TOTP-DESK", None);
    let response = app
        .post_form(
            &format!("/admin/users/{id}/assign"),
            &[("csrf", &csrf), ("token", &token.to_string())],
        )
        .await;
    assert_eq!(response.status(), 303);
    let mail = sink.wait_for(2, NOTICE_WAIT).await;
    assert_eq!(mail[1].to, vec!["ann.new@example.com".to_string()]);
    assert!(
        mail[1]
            .data
            .contains("The TOTP token \"TOTP-DESK\" was added to your account"),
        "{}",
        mail[1].data
    );
}

#[tokio::test]
async fn a_token_an_administrator_makes_for_a_user_tells_the_user() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let sink = SmtpSink::start(Mode::Plain).await;
    let settings = mail_settings(sink.port, "none", None);
    let (status, body) = send(&app, Method::PUT, "/settings/mail", &key, Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    let user = create_user(
        &app,
        &key,
        json!({ "login": "ivy", "email": "ivy@example.com" }),
    )
    .await;
    let id = user["id"].to_string();

    let response = app
        .post_form(
            "/admin/tokens/new/mail",
            &[
                ("csrf", &csrf),
                ("user", &id),
                ("name", "Ivy's mail"),
                ("destination", "ivy.codes@example.com"),
            ],
        )
        .await;
    assert!(
        response.status().is_success() || response.status() == 303,
        "{}",
        response.status()
    );
    let mail = sink.wait_for(1, NOTICE_WAIT).await;
    assert_eq!(mail[0].to, vec!["ivy@example.com".to_string()]);
    assert!(
        mail[0]
            .data
            .contains("The MAIL token \"Ivy's mail\" was added to your account"),
        "{}",
        mail[0].data
    );
    assert!(mail[0].data.contains("on the administration panel"));
}
