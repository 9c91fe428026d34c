//! Every kind of refusal a shared rule gives — a field's value, the request as a whole, an
//! object that does not exist, a clash with what is stored, a caller who may not — reaches an
//! API client as a 4xx with its own words, never as a 5xx, and changes nothing.

use reqwest::Method;
use serde_json::json;

use crate::helpers::api::{assert_field, count, create_resource, send};
use crate::helpers::app::spawn_app;

#[tokio::test]
async fn every_kind_of_refusal_is_a_4xx_with_its_words() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);

    // A field's value: a PIN too short for the PIN policy.
    let (status, body) = send(
        &app,
        Method::POST,
        "/tokens",
        &admin,
        Some(json!({"kind": "TOTP", "pin": "1"})),
    )
    .await;
    assert_field(status, &body, "pin");

    // The request as a whole: a change that names nothing to change, and a resync of a token
    // that has no seed.
    let (status, mail) = send(
        &app,
        Method::POST,
        "/tokens",
        &admin,
        Some(json!({"kind": "MAIL", "destination": "ann@example.lan"})),
    )
    .await;
    assert_eq!(status, 201, "{mail}");
    let mail_id = mail["id"].as_i64().expect("id");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("/tokens/{mail_id}"),
        &admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], "the body names nothing to change");
    assert!(body["error"]["field"].is_null(), "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{mail_id}/resync"),
        &admin,
        Some(json!({"otp1": "123456", "otp2": "654321"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        "only TOTP and HOTP tokens can be resynchronised"
    );

    // An object that does not exist.
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/tokens/no-such-serial",
        &admin,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = send(
        &app,
        Method::POST,
        "/tokens/no-such-serial/activation",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // A clash with what is stored: a serial taken, and an activation of a token of another kind.
    let hardware = json!({"kind": "TOTP", "serial": "HW-1"});
    let (status, _) = send(
        &app,
        Method::POST,
        "/tokens",
        &admin,
        Some(hardware.clone()),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = send(&app, Method::POST, "/tokens", &admin, Some(hardware)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{mail_id}/activation"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"]["message"],
        "only BOT tokens are activated through the bot"
    );

    // A caller who may not: a resource's key asking for another resource.
    create_resource(&app, &admin, "vpn").await;
    create_resource(&app, &admin, "wiki").await;
    let vpn = app.api_key(&["--resource", "vpn"]);
    let (status, body) = send(
        &app,
        Method::POST,
        "/auth/authenticate",
        &vpn,
        Some(json!({"resource": "wiki", "user": "ann", "otp": "123456"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["message"],
        "this API key belongs to another resource"
    );

    // Nothing of it was stored.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tokens"), 2);
}
