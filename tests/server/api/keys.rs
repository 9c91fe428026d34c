//! API keys through the API: created (the key shown once), listed (never the key), revoked;
//! admin keys only; a revoked key, from the API or the console, refused on the next request.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, count, create_resource, database, send};
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::process::otpgate_command;

/// The id of the key `key` (`og_PREFIX.SECRET`), from the database.
fn key_id(app: &TestApp, key: &str) -> i64 {
    let prefix = key
        .trim_start_matches("og_")
        .split('.')
        .next()
        .expect("a prefix");
    database(app)
        .query_row(
            "SELECT id FROM api_keys WHERE prefix = ?1",
            [prefix],
            |row| row.get(0),
        )
        .expect("the key's row")
}

#[tokio::test]
async fn an_admin_key_creates_a_key_shown_once_lists_keys_without_them_and_revokes_one() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let vpn = create_resource(&app, &admin, "vpn").await;

    let (status, created) = send(
        &app,
        Method::POST,
        "/api-keys",
        &admin,
        Some(json!({"name": " vpn-gateway ", "resource": "vpn"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let new_key = created["key"].as_str().expect("the key").to_string();
    assert!(new_key.starts_with("og_"), "{created}");
    assert_eq!(created["name"], "vpn-gateway");
    assert_eq!(created["scope"], "resource");
    assert_eq!(created["resource"]["id"], vpn["id"]);
    assert_eq!(created["resource"]["name"], "vpn");
    assert_eq!(created["revoked_at"], Value::Null);
    assert!(new_key.starts_with(created["begins_with"].as_str().expect("a prefix")));

    // The new resource key works for its resource, and not for management.
    let (status, _) = send(&app, Method::GET, "/api-keys", &new_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, script) = send(
        &app,
        Method::POST,
        "/api-keys",
        &admin,
        Some(json!({"name": "nightly script"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{script}");
    assert_eq!(script["scope"], "admin");
    assert!(script.get("resource").is_none(), "{script}");
    let script_key = script["key"].as_str().expect("the key").to_string();
    let (status, _) = send(&app, Method::GET, "/settings/general", &script_key, None).await;
    assert_eq!(status, StatusCode::OK, "a new admin key manages");

    let response = app
        .api(Method::GET, "/api-keys", &admin)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    let secret = new_key.split('.').nth(1).expect("a secret part");
    assert!(!text.contains(secret), "a listing shows no key: {text}");
    assert!(!text.contains("\"key\""), "{text}");
    let listed: Value = serde_json::from_str(&text).expect("json");
    let names: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|key| key["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["test", "vpn-gateway", "nightly script"]);

    // Revoked through the API: refused from the next request on.
    let (status, _) = send(&app, Method::GET, "/users", &script_key, None).await;
    assert_eq!(status, StatusCode::OK);
    let revoke = format!("/api-keys/{}/revoke", script["id"]);
    let (status, body) = send(&app, Method::POST, &revoke, &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = send(&app, Method::GET, "/users", &script_key, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked key is refused");
    let (status, body) = send(&app, Method::POST, &revoke, &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoked already: {body}");
    let (_, listed) = send(&app, Method::GET, "/api-keys", &admin, None).await;
    assert!(listed["items"][2]["revoked_at"].is_i64(), "{listed}");

    // Audited like the panel's actions, with the calling key as the actor.
    let actor = format!("apikey:{}", key_id(&app, &admin));
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'apikey.create' AND actor = '{actor}'"
            )
        ),
        2
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'apikey.revoke' AND actor = '{actor}' AND api_key_id = {}",
                script["id"]
            )
        ),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_resource_key_may_not_create_list_or_revoke_keys() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let admin_id = key_id(&app, &admin);
    for (method, path, body) in [
        (
            Method::POST,
            "/api-keys".to_string(),
            Some(json!({"name": "mine"})),
        ),
        (Method::GET, "/api-keys".to_string(), None),
        (Method::POST, format!("/api-keys/{admin_id}/revoke"), None),
    ] {
        let (status, answer) = send(&app, method, &path, &resource_key, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM api_keys"), 2);
    let (status, _) = send(&app, Method::GET, "/users", &admin, None).await;
    assert_eq!(status, StatusCode::OK, "the admin key was not revoked");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_name_or_an_unknown_resource_is_refused_in_the_panels_words_and_creates_no_key() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    for name in [
        String::new(),
        "   ".into(),
        "x".repeat(101),
        "two\nlines".into(),
    ] {
        let (status, body) = send(
            &app,
            Method::POST,
            "/api-keys",
            &admin,
            Some(json!({ "name": name })),
        )
        .await;
        assert_field(status, &body, "name");
        assert_eq!(
            body["error"]["message"],
            "Give the key a name of 1 to 100 characters."
        );
    }
    let (status, body) = send(
        &app,
        Method::POST,
        "/api-keys",
        &admin,
        Some(json!({"name": "gateway", "resource": "nowhere"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        "/api-keys",
        &admin,
        Some(json!({"name": "gateway", "scope": "admin"})),
    )
    .await;
    assert_field(status, &body, "scope");
    let (status, _) = send(&app, Method::POST, "/api-keys/abc/revoke", &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&app, Method::POST, "/api-keys/999/revoke", &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM api_keys"), 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'apikey.%' AND actor LIKE 'apikey:%'"
        ),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_key_revoked_from_the_console_is_refused_on_the_very_next_request() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    let resource_key = app.api_key(&["--resource", "vpn"]);
    // Both keys are in the server's cache now.
    for key in [&admin, &resource_key] {
        let (status, _) = send(&app, Method::GET, "/users", key, None).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED);
    }
    for key in [&resource_key, &admin] {
        let id = key_id(&app, key).to_string();
        let output = otpgate_command(&app.data_dir)
            .args(["apikey", "revoke", &id])
            .output()
            .expect("run apikey revoke");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (status, body) = send(&app, Method::GET, "/users", key, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    app.stop().await;
}
