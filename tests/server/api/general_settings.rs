//! The general settings through the API: read and replaced with the panel's checks and words,
//! audited; admin keys only.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, count, send};
use crate::helpers::app::spawn_app;

fn valid() -> Value {
    json!({
        "public_url": "https://otp.example.lan/",
        "default_otp_length": 8,
        "challenge_validity_seconds": 600,
        "pin_min_length": 6,
        "pin_max_length": 8,
        "pin_digits_only": true,
        "portal_idle_minutes": 30,
        "resend_cooldown_seconds": 60,
        "mail_per_hour": 10,
        "sms_per_hour": 3,
        "bot_per_hour": 12,
    })
}

/// `valid()` with `field` set to `value`.
fn with(field: &str, value: Value) -> Value {
    let mut body = valid();
    body[field] = value;
    body
}

#[tokio::test]
async fn an_admin_key_reads_and_replaces_the_general_settings_and_the_change_is_audited() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let (status, defaults) = send(&app, Method::GET, "/settings/general", &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{defaults}");
    assert_eq!(defaults["configured"], false);
    assert_eq!(defaults["default_otp_length"], 6);
    assert_eq!(defaults["sms_per_hour"], 6);

    let (status, saved) = send(
        &app,
        Method::PUT,
        "/settings/general",
        &admin,
        Some(valid()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert!(
        saved["changes"]
            .as_array()
            .expect("changes")
            .contains(&json!("default OTP length 6 → 8")),
        "{saved}"
    );
    let settings = &saved["settings"];
    assert_eq!(settings["configured"], true);
    assert_eq!(settings["public_url"], "https://otp.example.lan");
    assert_eq!(settings["challenge_validity_seconds"], 600);
    assert_eq!(settings["pin_digits_only"], true);
    assert_eq!(settings["portal_idle_minutes"], 30);
    assert_eq!(settings["resend_cooldown_seconds"], 60);
    assert_eq!(settings["bot_per_hour"], 12);
    let (_, read) = send(&app, Method::GET, "/settings/general", &admin, None).await;
    assert_eq!(&read, settings);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'settings.general.update' AND actor LIKE 'apikey:%' AND detail LIKE '%portal session idle timeout 15 min → 30 min%'"
        ),
        1
    );

    // Fields left out take their defaults, as empty fields of the panel's form do.
    let (status, saved) = send(
        &app,
        Method::PUT,
        "/settings/general",
        &admin,
        Some(json!({"default_otp_length": 6, "challenge_validity_seconds": 300})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["settings"]["public_url"], "");
    assert_eq!(saved["settings"]["pin_max_length"], 64);
    assert_eq!(saved["settings"]["portal_idle_minutes"], 15);
    assert_eq!(saved["settings"]["sms_per_hour"], 6);
    app.stop().await;
}

#[tokio::test]
async fn bad_general_settings_are_refused_with_the_field_in_the_panels_words_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let (status, _) = send(
        &app,
        Method::PUT,
        "/settings/general",
        &admin,
        Some(valid()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, before) = send(&app, Method::GET, "/settings/general", &admin, None).await;
    let audit_lines = count(&app, "SELECT COUNT(*) FROM audit_log");

    for (field, value, message) in [
        (
            "public_url",
            json!("ftp://otp.example.lan"),
            Some("give an address such as https://otp.example.lan (or leave it empty)"),
        ),
        (
            "public_url",
            json!("https://otp.example.lan/?next=1"),
            Some("give an address such as https://otp.example.lan (or leave it empty)"),
        ),
        (
            "default_otp_length",
            json!(7),
            Some("a code has 6 or 8 digits"),
        ),
        (
            "challenge_validity_seconds",
            json!(59),
            Some("give a number of seconds from 60 to 1800"),
        ),
        (
            "pin_min_length",
            json!(3),
            Some("give a number from 4 to 64"),
        ),
        (
            "pin_max_length",
            json!(5),
            Some("give a number from the minimum length (6) to 64"),
        ),
        (
            "portal_idle_minutes",
            json!(241),
            Some("give a number of minutes from 5 to 240"),
        ),
        (
            "resend_cooldown_seconds",
            json!(-1),
            Some("give a number of seconds from 0 to 600"),
        ),
        (
            "sms_per_hour",
            json!(0),
            Some("give a number of messages from 1 to 1000"),
        ),
        ("mail_per_hour", json!("ten"), None),
        ("bot_per_hour", json!(1.5), None),
    ] {
        let (status, answer) = send(
            &app,
            Method::PUT,
            "/settings/general",
            &admin,
            Some(with(field, value.clone())),
        )
        .await;
        assert_field(status, &answer, field);
        if let Some(message) = message {
            assert_eq!(answer["error"]["message"], message, "{field} {value}");
        }
    }
    let mut missing = valid();
    missing
        .as_object_mut()
        .expect("an object")
        .remove("challenge_validity_seconds");
    let (status, answer) = send(
        &app,
        Method::PUT,
        "/settings/general",
        &admin,
        Some(missing),
    )
    .await;
    assert_field(status, &answer, "challenge_validity_seconds");
    let (status, answer) = send(
        &app,
        Method::PUT,
        "/settings/general",
        &admin,
        Some(with("theme", json!("dark"))),
    )
    .await;
    assert_field(status, &answer, "theme");

    let (_, after) = send(&app, Method::GET, "/settings/general", &admin, None).await;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log"), audit_lines);

    // The panel refuses the same input with the same words.
    let csrf = app.logged_in_admin().await;
    let response = app
        .post_form(
            "/admin/settings/general",
            &[
                ("csrf", &csrf),
                ("default_otp_length", "7"),
                ("challenge_validity_seconds", "300"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.expect("body");
    assert!(page.contains("a code has 6 or 8 digits"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn a_resource_key_may_not_read_or_change_the_general_settings() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    crate::helpers::api::create_resource(&app, &admin, "vpn").await;
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let (status, _) = send(&app, Method::GET, "/settings/general", &resource_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &app,
        Method::PUT,
        "/settings/general",
        &resource_key,
        Some(valid()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, read) = send(&app, Method::GET, "/settings/general", &admin, None).await;
    assert_eq!(read["configured"], false, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn general_settings_at_the_edges_of_the_documented_ranges_are_taken_and_past_them_refused() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let document: Value = app
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    let properties = &document["components"]["schemas"]["GeneralSettingsRequest"]["properties"];
    for field in [
        "challenge_validity_seconds",
        "pin_min_length",
        "portal_idle_minutes",
        "resend_cooldown_seconds",
        "mail_per_hour",
        "sms_per_hour",
        "bot_per_hour",
    ] {
        let minimum = properties[field]["minimum"].as_i64().expect("a minimum");
        let maximum = properties[field]["maximum"].as_i64().expect("a maximum");
        for edge in [minimum, maximum] {
            let mut body = with(field, json!(edge));
            // The longest PIN may not be shorter than the shortest.
            body["pin_max_length"] = json!(64);
            let (status, answer) =
                send(&app, Method::PUT, "/settings/general", &admin, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{field} = {edge}: {answer}");
        }
        for past in [minimum - 1, maximum + 1] {
            let (status, answer) = send(
                &app,
                Method::PUT,
                "/settings/general",
                &admin,
                Some(with(field, json!(past))),
            )
            .await;
            assert_field(status, &answer, field);
        }
    }
    app.stop().await;
}
