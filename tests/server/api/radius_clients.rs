//! The RADIUS client endpoints of the management API: the secret sealed and never shown, the
//! fields checked with the same rules the panel will use, every change audited.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, audit_actions, count, create_resource, send};
use crate::helpers::app::spawn_app;

const SECRET: &str = "a shared secret of some length";

#[tokio::test]
async fn a_radius_client_is_created_listed_changed_and_deleted_and_its_secret_never_shown() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let vpn = create_resource(&app, &key, "vpn").await;
    create_resource(&app, &key, "wifi").await;
    let (status, created) = send(
        &app,
        Method::POST,
        "/radius/clients",
        &key,
        Some(
            json!({ "name": " fw1 ", "address": "192.0.2.7/24", "secret": SECRET,
                     "resource": "vpn" }),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "fw1");
    assert_eq!(created["address"], "192.0.2.0/24");
    assert_eq!(created["resource"]["id"], vpn["id"]);
    assert_eq!(created["require_message_authenticator"], true);
    assert_eq!(created["input_mode"], "password_code");
    assert_eq!(created["separator"], Value::Null);
    assert_eq!(created["code_length"], 6);
    assert!(created.get("secret").is_none(), "{created}");
    let sealed: Vec<u8> = crate::helpers::api::database(&app)
        .query_row("SELECT secret_sealed FROM radius_clients", [], |row| {
            row.get(0)
        })
        .expect("sealed");
    assert!(
        !sealed.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the secret is sealed at rest"
    );

    let (status, listed) = send(&app, Method::GET, "/radius/clients", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);
    assert!(!listed.to_string().contains(SECRET));

    let (status, changed) = send(
        &app,
        Method::PATCH,
        "/radius/clients/fw1",
        &key,
        Some(
            json!({ "address": "2001:db8::5/64", "resource": "wifi", "input_mode": "code_password",
                     "separator": ",", "require_message_authenticator": false,
                     "secret": "another secret entirely" }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["address"], "2001:db8::/64");
    assert_eq!(changed["resource"]["name"], "wifi");
    assert_eq!(changed["input_mode"], "code_password");
    assert_eq!(changed["separator"], ",");
    assert_eq!(changed["require_message_authenticator"], false);
    let resealed: Vec<u8> = crate::helpers::api::database(&app)
        .query_row("SELECT secret_sealed FROM radius_clients", [], |row| {
            row.get(0)
        })
        .expect("sealed");
    assert_ne!(sealed, resealed, "a new secret replaces the old");

    let id = created["id"].as_i64().expect("id");
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/radius/clients/{id}"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, Method::GET, "/radius/clients/fw1", &key, None).await;
    assert_eq!(status, 404);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM radius_clients"), 0);
    let actions = audit_actions(&app);
    for action in [
        "radius_client.create",
        "radius_client.update",
        "radius_client.delete",
    ] {
        assert!(actions.iter().any(|a| a == action), "{actions:?}");
    }
    let details: String = crate::helpers::api::database(&app)
        .query_row(
            "SELECT group_concat(coalesce(detail, ''), '|') FROM audit_log",
            [],
            |row| row.get(0),
        )
        .expect("details");
    assert!(!details.contains(SECRET) && !details.contains("another secret"));
}

#[tokio::test]
async fn bad_radius_client_fields_are_refused_by_name_and_change_nothing() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    let good = json!({ "name": "fw1", "address": "10.0.0.1", "secret": SECRET, "resource": "vpn" });
    let cases = [
        ("name", json!("42")),
        ("address", json!("10.0.0.0/33")),
        ("address", json!("fw.example")),
        ("secret", json!("short")),
        ("resource", json!("nowhere")),
        ("input_mode", json!("chap")),
        ("separator", json!("123456789")),
        ("code_length", json!(3)),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        body[field] = value;
        let (status, answer) = send(&app, Method::POST, "/radius/clients", &key, Some(body)).await;
        assert_field(status, &answer, field);
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM radius_clients"), 0);
    let (status, _) = send(
        &app,
        Method::POST,
        "/radius/clients",
        &key,
        Some(good.clone()),
    )
    .await;
    assert_eq!(status, 201);
    let (status, answer) = send(&app, Method::POST, "/radius/clients", &key, Some(good)).await;
    assert_eq!(status, 409, "{answer}");
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let (status, _) = send(&app, Method::GET, "/radius/clients", &resource_key, None).await;
    assert_eq!(status, 403, "a resource key manages nothing");
}

#[tokio::test]
async fn deleting_a_resource_deletes_its_radius_clients() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    let (status, _) = send(
        &app,
        Method::POST,
        "/radius/clients",
        &key,
        Some(
            json!({ "name": "fw1", "address": "10.0.0.1", "secret": SECRET, "resource": "vpn",
                     "input_mode": "code_only" }),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(&app, Method::DELETE, "/resources/vpn", &key, None).await;
    assert_eq!(status, 204);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM radius_clients"), 0);
}

#[tokio::test]
async fn a_radius_client_may_ask_for_the_code_with_a_challenge() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    let (status, created) = send(
        &app,
        Method::POST,
        "/radius/clients",
        &key,
        Some(
            json!({ "name": "fw1", "address": "10.0.0.1", "secret": SECRET, "resource": "vpn",
                     "input_mode": "challenge" }),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["input_mode"], "challenge");
    let (status, changed) = send(
        &app,
        Method::PATCH,
        "/radius/clients/fw1",
        &key,
        Some(json!({ "input_mode": "code_only" })),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let (status, changed) = send(
        &app,
        Method::PATCH,
        "/radius/clients/fw1",
        &key,
        Some(json!({ "input_mode": "challenge" })),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["input_mode"], "challenge");
}

#[tokio::test]
async fn the_approval_wait_and_word_are_kept_shown_checked_and_audited() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    let (status, created) = send(
        &app,
        Method::POST,
        "/radius/clients",
        &key,
        Some(json!({ "name": "fw1", "address": "192.0.2.7", "secret": SECRET, "resource": "vpn" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["approval_wait"], 25);
    assert_eq!(created["approval_word"], Value::Null);
    for (body, field) in [
        (json!({ "approval_wait": 4 }), "approval_wait"),
        (json!({ "approval_wait": 121 }), "approval_wait"),
        (json!({ "approval_word": "push 1" }), "approval_word"),
        (json!({ "approval_word": "123456" }), "approval_word"),
    ] {
        let (status, refused) =
            send(&app, Method::PATCH, "/radius/clients/fw1", &key, Some(body)).await;
        assert_field(status, &refused, field);
    }
    let (status, changed) = send(
        &app,
        Method::PATCH,
        "/radius/clients/fw1",
        &key,
        Some(json!({ "approval_wait": 40, "approval_word": "push" })),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["approval_wait"], 40);
    assert_eq!(changed["approval_word"], "push");
    let detail: String = crate::helpers::api::database(&app)
        .query_row(
            "SELECT detail FROM audit_log WHERE action = 'radius_client.update' ORDER BY id DESC",
            [],
            |row| row.get(0),
        )
        .expect("audited");
    assert_eq!(detail, "fw1: approval_wait, approval_word");
    let (status, cleared) = send(
        &app,
        Method::PATCH,
        "/radius/clients/fw1",
        &key,
        Some(json!({ "approval_word": null })),
    )
    .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["approval_word"], Value::Null);
    let (_, openapi) = send(&app, Method::GET, "/openapi.json", &key, None).await;
    let schema = &openapi["components"]["schemas"]["RadiusClient"]["properties"];
    assert!(schema.get("approval_wait").is_some(), "{schema}");
    assert!(schema.get("approval_word").is_some(), "{schema}");
}
