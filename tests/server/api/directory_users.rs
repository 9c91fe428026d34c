//! A directory user through the API, against a real slapd: what the directory keeps (login,
//! name, email, phone) is refused in the words every front end uses, naming the directory, and
//! nothing changes; what otpgate keeps (enabled, tokens, assignments) changes as for anyone.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, count, create_resource, send};
use crate::helpers::app::spawn_app;
use crate::helpers::directory::{directory_user, record, small_slapd};

const REFUSAL: &str = "comes from the directory \"Example\": change it there";

#[tokio::test]
async fn a_directory_users_login_name_email_and_phone_are_refused_naming_the_directory() {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let id = directory_user(&app, &admin, &slapd).await;
    let (status, shown) = send(&app, Method::GET, &format!("/users/{id}"), &admin, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["directory"], "Example", "{shown}");
    let before = record(&app, id);
    assert_eq!(before.first_name, "Alice");
    assert_eq!(before.email.as_deref(), Some("alice@example.org"));
    assert!(before.phone.is_some(), "her mobile number came along");
    let updates = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE action = 'user.update'",
    );
    for (body, field) in [
        (json!({"login": "alicia"}), "login"),
        (json!({"first_name": "Alicia"}), "first_name"),
        (json!({"last_name": null}), "last_name"),
        (json!({"email": "alice@elsewhere.example"}), "email"),
        (json!({"email": null}), "email"),
        (json!({"phone": "+49 151 12345678"}), "phone"),
        (json!({"phone": null}), "phone"),
        // A change otpgate keeps does not carry one the directory keeps.
        (
            json!({"enabled": false, "email": "alice@elsewhere.example"}),
            "email",
        ),
    ] {
        let (status, refused) = send(
            &app,
            Method::PATCH,
            &format!("/users/{id}"),
            &admin,
            Some(body.clone()),
        )
        .await;
        assert_field(status, &refused, field);
        assert_eq!(refused["error"]["message"], REFUSAL, "{body}");
        assert_eq!(record(&app, id), before, "nothing changed by {body}");
    }
    // By login too: the address of the user makes no difference.
    let (status, refused) = send(
        &app,
        Method::PATCH,
        "/users/alice",
        &admin,
        Some(json!({"first_name": "Alicia"})),
    )
    .await;
    assert_field(status, &refused, "first_name");
    assert_eq!(record(&app, id), before);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'user.update'"
        ),
        updates,
        "a refusal writes no change"
    );
}

#[tokio::test]
async fn a_directory_users_enabled_flag_tokens_and_assignments_change_as_for_anyone() {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let id = directory_user(&app, &admin, &slapd).await;
    let before = record(&app, id);

    let (status, user) = send(
        &app,
        Method::PATCH,
        &format!("/users/{id}"),
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert!(!record(&app, id).enabled);
    // Her own values sent back as they are change nothing the directory keeps, and pass.
    let (status, user) = send(
        &app,
        Method::PATCH,
        &format!("/users/{id}"),
        &admin,
        Some(json!({
            "login": before.login,
            "first_name": before.first_name,
            "last_name": before.last_name,
            "email": before.email,
            "phone": before.phone,
            "enabled": true,
        })),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(record(&app, id), before);
    let (status, user) = send(
        &app,
        Method::POST,
        &format!("/users/{id}/disable"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["enabled"], false);

    create_resource(&app, &admin, "vpn").await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/resources/vpn/users",
        &admin,
        Some(json!({"user": id})),
    )
    .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let (status, token) = send(
        &app,
        Method::POST,
        "/tokens",
        &admin,
        Some(json!({"kind": "TOTP", "secret": crate::helpers::auth::SEED_BASE32, "user": "alice", "resource": "vpn"})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let (status, detail) = send(&app, Method::GET, "/users/alice", &admin, None).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        detail["tokens"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    assert_eq!(detail["resources"][0]["name"], "vpn", "{detail}");
    let after = record(&app, id);
    assert_eq!(
        (after.login, after.first_name, after.email, after.phone),
        (before.login, before.first_name, before.email, before.phone)
    );
}

#[tokio::test]
async fn every_answer_that_shows_a_user_names_the_directory_they_come_from() {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let id = directory_user(&app, &admin, &slapd).await;
    let (status, local) = send(
        &app,
        Method::POST,
        "/users",
        &admin,
        Some(json!({"login": "bob"})),
    )
    .await;
    assert_eq!(status, 201, "{local}");
    assert_eq!(local["directory"], Value::Null, "{local}");
    create_resource(&app, &admin, "vpn").await;
    for user in [json!(id), json!("bob")] {
        let (status, body) = send(
            &app,
            Method::POST,
            "/resources/vpn/users",
            &admin,
            Some(json!({ "user": user })),
        )
        .await;
        assert!(status == 204 || status == 200, "{status} {body}");
    }
    let directory_of = |list: &Value| -> Vec<(String, Value)> {
        list["items"]
            .as_array()
            .expect("a page of users")
            .iter()
            .map(|user| {
                (
                    user["login"].as_str().unwrap_or_default().to_string(),
                    user["directory"].clone(),
                )
            })
            .collect()
    };
    let expected = vec![
        ("alice".to_string(), json!("Example")),
        ("bob".to_string(), Value::Null),
    ];
    for path in ["/users", "/resources/vpn/users"] {
        let (status, list) = send(&app, Method::GET, path, &admin, None).await;
        assert_eq!(status, 200, "{path}: {list}");
        assert_eq!(directory_of(&list), expected, "{path}: {list}");
    }
    let (status, changed) = send(
        &app,
        Method::PATCH,
        &format!("/users/{id}"),
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["directory"], "Example", "{changed}");
    let (status, enabled) = send(
        &app,
        Method::POST,
        &format!("/users/{id}/enable"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["directory"], "Example", "{enabled}");
}
