//! A resource's Self-Service settings through the API: read and replaced with the panel's
//! checks and words; admin keys only.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, count, create_resource, send};
use crate::helpers::app::spawn_app;

#[tokio::test]
async fn an_admin_key_reads_and_replaces_a_resources_self_service_settings_and_the_portal_follows()
{
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;

    let (status, before) = send(
        &app,
        Method::GET,
        "/resources/vpn/self-service",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["enabled"], false);
    assert_eq!(before["address"], Value::Null);
    assert_eq!(before["allowed_actions"], json!([]));
    assert_eq!(app.get("/portal/vpn-users").await.status(), 404);

    let (status, saved) = send(
        &app,
        Method::PUT,
        "/resources/vpn/self-service",
        &admin,
        Some(json!({
            "enabled": true,
            "address": " VPN-Users ",
            "allowed_actions": ["set_pin", "enroll_token"],
            "enrollment_kinds": ["TOTP", "MAIL"],
            "allow_remove_last": true,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let changes = saved["changes"].as_array().expect("changes");
    assert!(changes.contains(&json!("Self-service enabled")), "{saved}");
    let settings = &saved["settings"];
    assert_eq!(settings["address"], "vpn-users");
    assert!(
        settings["portal_url"]
            .as_str()
            .expect("a portal address")
            .ends_with("/portal/vpn-users"),
        "{settings}"
    );
    assert_eq!(
        settings["allowed_actions"],
        json!(["enroll_token", "set_pin"])
    );
    assert_eq!(settings["enrollment_kinds"], json!(["TOTP", "MAIL"]));
    assert_eq!(settings["allow_remove_last"], true);
    let (_, read) = send(
        &app,
        Method::GET,
        "/resources/vpn/self-service",
        &admin,
        None,
    )
    .await;
    assert_eq!(&read, settings);
    let portal = app.get("/portal/vpn-users").await.status();
    assert_ne!(portal, StatusCode::NOT_FOUND, "the portal is on");
    assert!(portal.is_success() || portal.is_redirection(), "{portal}");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.self_service' AND actor LIKE 'apikey:%'"
        ),
        1
    );

    // Off again, the address kept: the portal closes.
    let (status, saved) = send(
        &app,
        Method::PUT,
        "/resources/vpn/self-service",
        &admin,
        Some(json!({"enabled": false, "address": "vpn-users"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["settings"]["allowed_actions"], json!([]));
    assert_eq!(app.get("/portal/vpn-users").await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn bad_self_service_settings_are_refused_with_the_field_in_the_panels_words_and_change_nothing()
 {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    create_resource(&app, &admin, "wifi").await;
    let (status, _) = send(
        &app,
        Method::PUT,
        "/resources/wifi/self-service",
        &admin,
        Some(json!({"enabled": true, "address": "wifi"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, before) = send(
        &app,
        Method::GET,
        "/resources/vpn/self-service",
        &admin,
        None,
    )
    .await;
    let audit_lines = count(&app, "SELECT COUNT(*) FROM audit_log");

    for (body, field, message) in [
        (
            json!({"enabled": true}),
            "address",
            Some("Give the page an address: users open the portal there."),
        ),
        (
            json!({"enabled": true, "address": "  "}),
            "address",
            Some("Give the page an address: users open the portal there."),
        ),
        (
            json!({"enabled": true, "address": "-vpn"}),
            "address",
            Some(
                "Please use 2 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
            ),
        ),
        (
            json!({"enabled": false, "address": "WIFI"}),
            "address",
            Some("Another resource's portal has this address."),
        ),
        (
            json!({"enabled": false, "allowed_actions": ["fly"]}),
            "allowed_actions",
            None,
        ),
        (
            json!({"enabled": false, "enrollment_kinds": ["FAX"]}),
            "enrollment_kinds[0]",
            None,
        ),
        (json!({"address": "vpn"}), "enabled", None),
    ] {
        let (status, answer) = send(
            &app,
            Method::PUT,
            "/resources/vpn/self-service",
            &admin,
            Some(body.clone()),
        )
        .await;
        assert_field(status, &answer, field);
        if let Some(message) = message {
            assert_eq!(answer["error"]["message"], message, "{body}");
        }
    }
    let (_, after) = send(
        &app,
        Method::GET,
        "/resources/vpn/self-service",
        &admin,
        None,
    )
    .await;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log"), audit_lines);

    // The panel refuses the same input with the same words.
    let csrf = app.logged_in_admin().await;
    let vpn_id = count(&app, "SELECT id FROM resources WHERE name = 'vpn'");
    let response = app
        .post_form(
            &format!("/admin/resources/{vpn_id}/self-service"),
            &[("csrf", &csrf), ("enabled", "on"), ("address", "")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("Give the page an address: users open the portal there."),
        "{page}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_resource_key_may_not_read_or_change_self_service_settings() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let (status, _) = send(
        &app,
        Method::GET,
        "/resources/vpn/self-service",
        &resource_key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &app,
        Method::PUT,
        "/resources/vpn/self-service",
        &resource_key,
        Some(json!({"enabled": true, "address": "vpn"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, read) = send(
        &app,
        Method::GET,
        "/resources/vpn/self-service",
        &admin,
        None,
    )
    .await;
    assert_eq!(read["enabled"], false, "nothing was stored: {read}");
    assert_eq!(read["address"], Value::Null, "{read}");
    let (status, _) = send(
        &app,
        Method::GET,
        "/resources/nowhere/self-service",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &app,
        Method::PUT,
        "/resources/nowhere/self-service",
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}
