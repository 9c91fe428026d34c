//! Every kind of refusal a shared rule gives reaches an administrator in the panel as a 4xx page
//! that says what is wrong — next to the form where there is one — never as a 5xx, and changes
//! nothing.

use reqwest::Method;
use serde_json::json;

use crate::helpers::api::{count, create_user, send};
use crate::helpers::app::spawn_app;

#[tokio::test]
async fn every_kind_of_refusal_is_a_4xx_page_that_says_what_is_wrong() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let (status, mail) = send(
        &app,
        Method::POST,
        "/tokens",
        &key,
        Some(json!({"kind": "MAIL", "destination": "ann@example.lan", "serial": "M-1"})),
    )
    .await;
    assert_eq!(status, 201, "{mail}");
    let mail_id = mail["id"].as_i64().expect("id");
    let page_of = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    };

    // A field's value: a PIN too short for the PIN policy, shown under the field.
    let (status, page) = page_of(
        app.post_form(
            &format!("/admin/tokens/{mail_id}/pin"),
            &[
                ("csrf", &csrf),
                ("pin", "1"),
                ("pin_position", "before"),
                ("action", "set"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("A PIN must have 4 to 64 characters"),
        "{page}"
    );

    // The request as a whole: a token without a seed cannot be resynchronised.
    let (status, page) = page_of(
        app.post_form(
            &format!("/admin/tokens/{mail_id}/resync"),
            &[("csrf", &csrf), ("otp1", "123456"), ("otp2", "654321")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("only TOTP and HOTP tokens can be resynchronised"),
        "{page}"
    );

    // An object that does not exist.
    let (status, _) = page_of(app.get("/admin/tokens/999999").await).await;
    assert_eq!(status, 404);
    let (status, _) = page_of(
        app.post_form(
            "/admin/tokens/999999/rename",
            &[("csrf", &csrf), ("name", "x")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);

    // A clash with what is stored: a serial taken, and a token of another user.
    let (status, page) = page_of(
        app.post_form(
            "/admin/tokens/new/hardware",
            &[
                ("csrf", &csrf),
                ("kind", "TOTP"),
                ("serial", "M-1"),
                ("secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
                ("secret_format", "base32"),
                ("algorithm", "SHA1"),
                ("period", "30"),
                ("digits", "6"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("exists already"), "{page}");
    let ann = create_user(&app, &key, json!({"login": "ann"})).await;
    let bob = create_user(&app, &key, json!({"login": "bob"})).await;
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/tokens/{mail_id}/user"),
        &key,
        Some(json!({"user": ann["id"], "destination": "ann@example.com"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, page) = page_of(
        app.post_form(
            &format!("/admin/users/{}/assign", bob["id"]),
            &[("csrf", &csrf), ("token", &mail_id.to_string())],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("belongs to another user"), "{page}");

    // Nothing changed: one token, still ann's, without a PIN.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tokens"), 1);
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM tokens WHERE id = {mail_id} AND user_id = {} AND pin_hash IS NULL",
                ann["id"]
            )
        ),
        1
    );
}
