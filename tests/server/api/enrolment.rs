//! Enrolment by the first code through the API, as the portal's Assign New does it: a TOTP or
//! HOTP token created pending (its URI and QR code shown once), made active by the first code
//! its app shows.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, create_user, send};
use crate::helpers::auth::{authenticate, fixture};
use crate::helpers::delivery::mail_settings;
use crate::helpers::otp::{unix_now, wait_for_fresh_step};
use crate::helpers::smtp_sink::{Mode, SmtpSink};

/// The seed in an `otpauth://` URI.
fn secret_of(uri: &str) -> Vec<u8> {
    let secret = uri
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .expect("a secret in the URI");
    otpgate::otp::decode_base32_secret(secret).expect("base32")
}

fn code(secret: &[u8], counter: u64) -> String {
    otpgate::otp::hotp(secret, otpgate::otp::Algorithm::Sha1, 6, counter)
}

fn wrong(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

async fn token_state(app: &crate::helpers::app::TestApp, admin: &str, id: i64) -> (u16, Value) {
    let (status, body) = send(app, Method::GET, &format!("/tokens/{id}"), admin, None).await;
    (status.as_u16(), body)
}

#[tokio::test]
async fn an_app_enrols_a_totp_token_by_its_first_code_and_only_then_authenticates() {
    let app = spawn_and_wait().await;
    let fx = fixture(&app, 5).await;
    create_user(&app, &fx.admin, json!({"login": "alice"})).await;
    let (status, created) = send(
        &app,
        Method::POST,
        "/tokens/enrol",
        &fx.admin,
        Some(json!({"kind": "TOTP", "name": "Phone", "user": "alice", "resource": "vpn"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending", "{created}");
    let uri = created["otpauth_uri"].as_str().expect("the URI, once");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(
        created["qr_code_svg"]
            .as_str()
            .is_some_and(|svg| svg.contains("<svg")),
        "the QR code, once"
    );
    let id = created["id"].as_i64().expect("id");
    let (_, shown) = token_state(&app, &fx.admin, id).await;
    assert!(shown["otpauth_uri"].is_null(), "shown only once: {shown}");

    let secret = secret_of(uri);
    let step = unix_now() / 30;
    let (status, answer) = authenticate(
        &app,
        &fx.app_key,
        json!({"resource": "vpn", "user": "alice", "otp": code(&secret, step)}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"], "rejected",
        "a pending token authenticates nothing"
    );

    let right = code(&secret, step);
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{id}/confirm"),
        &fx.admin,
        Some(json!({"otp": wrong(&right)})),
    )
    .await;
    assert_field(status, &body, "otp");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("stays pending")),
        "{body}"
    );
    assert_eq!(token_state(&app, &fx.admin, id).await.1["state"], "pending");

    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{id}/confirm"),
        &fx.admin,
        Some(json!({"otp": right})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "active", "{body}");

    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{id}/confirm"),
        &fx.admin,
        Some(json!({"otp": code(&secret, step + 1)})),
    )
    .await;
    assert_eq!(status, 409, "already active: {body}");
    assert_eq!(
        body["error"]["message"],
        "the token is not waiting for a first code"
    );

    let (status, answer) = authenticate(
        &app,
        &fx.app_key,
        json!({"resource": "vpn", "user": "alice", "otp": code(&secret, step + 1)}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "accepted", "{answer}");
    app.stop().await;
}

/// A server on port 0, started early enough in a 30-second step that a test's codes stay in it.
async fn spawn_and_wait() -> crate::helpers::app::TestApp {
    wait_for_fresh_step(20).await;
    crate::helpers::app::spawn_app().await
}

#[tokio::test]
async fn an_hotp_token_is_enrolled_by_its_first_counter_code() {
    let app = crate::helpers::app::spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let (status, created) = send(
        &app,
        Method::POST,
        "/tokens/enrol",
        &admin,
        Some(json!({"kind": "HOTP"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let uri = created["otpauth_uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://hotp/"), "{uri}");
    let secret = secret_of(uri);
    let id = created["id"].as_i64().expect("id");
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{id}/confirm"),
        &admin,
        Some(json!({"otp": code(&secret, 0)})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "active");
    app.stop().await;
}

#[tokio::test]
async fn a_confirmed_enrolment_and_not_a_wrong_code_sends_the_user_a_notice_as_a_new_password_does()
{
    let app = crate::helpers::app::spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let sink = SmtpSink::start(Mode::Plain).await;
    let settings = mail_settings(sink.port, "none", None);
    let (status, body) = send(&app, Method::PUT, "/settings/mail", &admin, Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    create_user(
        &app,
        &admin,
        json!({"login": "carol", "email": "carol@example.com"}),
    )
    .await;
    let (status, created) = send(
        &app,
        Method::POST,
        "/tokens/enrol",
        &admin,
        Some(json!({"kind": "HOTP", "name": "Key fob", "user": "carol"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = secret_of(created["otpauth_uri"].as_str().expect("uri"));
    let id = created["id"].as_i64().expect("id");
    let right = code(&secret, 0);
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{id}/confirm"),
        &admin,
        Some(json!({ "otp": wrong(&right) })),
    )
    .await;
    assert_field(status, &body, "otp");
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{id}/confirm"),
        &admin,
        Some(json!({ "otp": right })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A later change's notice comes second: the wrong code sent none.
    let (status, body) = send(
        &app,
        Method::PUT,
        "/users/carol/password",
        &admin,
        Some(json!({ "password": "a long enough password" })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let mail = sink.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(mail[0].to, vec!["carol@example.com".to_string()]);
    assert!(
        mail[0]
            .data
            .contains("The HOTP token \"Key fob\" was added to your account\non the API"),
        "{}",
        mail[0].data
    );
    assert!(
        mail[1]
            .data
            .contains("The password of your account was set or changed"),
        "{}",
        mail[1].data
    );
    app.stop().await;
}

#[tokio::test]
async fn the_third_wrong_first_code_removes_the_pending_token() {
    let app = crate::helpers::app::spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let (_, created) = send(
        &app,
        Method::POST,
        "/tokens/enrol",
        &admin,
        Some(json!({"kind": "HOTP"})),
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let secret = secret_of(created["otpauth_uri"].as_str().expect("uri"));
    let bad = wrong(&code(&secret, 0));
    let mut last = Value::Null;
    for _ in 0..3 {
        let (status, body) = send(
            &app,
            Method::POST,
            &format!("/tokens/{id}/confirm"),
            &admin,
            Some(json!({"otp": bad})),
        )
        .await;
        assert_field(status, &body, "otp");
        last = body;
    }
    assert!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("removed")),
        "{last}"
    );
    assert_eq!(token_state(&app, &admin, id).await.0, 404);
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{id}/confirm"),
        &admin,
        Some(json!({"otp": code(&secret, 0)})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, audit) = send(
        &app,
        Method::GET,
        "/audit?action=token.confirm&result=rejected",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let items = audit["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{audit}");
    assert!(items.iter().all(|item| item["reason"] == "bad_code"));
    app.stop().await;
}

#[tokio::test]
async fn enrolment_refuses_other_kinds_given_seeds_unknown_tokens_and_resource_keys() {
    let app = crate::helpers::app::spawn_app().await;
    let fx = fixture(&app, 5).await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/tokens/enrol",
        &fx.admin,
        Some(json!({"kind": "MAIL"})),
    )
    .await;
    assert_field(status, &body, "kind");
    let (status, body) = send(
        &app,
        Method::POST,
        "/tokens/enrol",
        &fx.admin,
        Some(json!({"kind": "TOTP", "secret": "JBSWY3DPEHPK3PXP"})),
    )
    .await;
    assert_field(status, &body, "secret");
    let (status, body) = send(
        &app,
        Method::POST,
        "/tokens/4242/confirm",
        &fx.admin,
        Some(json!({"otp": "123456"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // A token made active by the management is not waiting for a first code.
    let (status, created) = send(
        &app,
        Method::POST,
        "/tokens",
        &fx.admin,
        Some(json!({"kind": "TOTP"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "active");
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/tokens/{}/confirm", created["id"]),
        &fx.admin,
        Some(json!({"otp": "123456"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    for (path, body) in [
        ("/tokens/enrol", json!({"kind": "TOTP"})),
        (
            &*format!("/tokens/{}/confirm", created["id"]),
            json!({"otp": "123456"}),
        ),
    ] {
        let (status, answer) = send(&app, Method::POST, path, &fx.app_key, Some(body)).await;
        assert_eq!(status, 403, "{path}: {answer}");
    }
    assert_eq!(
        crate::helpers::api::count(&app, "SELECT COUNT(*) FROM tokens"),
        1,
        "no refusal created a token"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_states_what_an_enrolment_and_a_confirmation_take() {
    let app = crate::helpers::app::spawn_app().await;
    let document: Value = app
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    let enrol = &document["components"]["schemas"]["EnrolToken"];
    assert_eq!(
        enrol["properties"]["kind"]["enum"],
        json!(["TOTP", "HOTP"]),
        "{enrol}"
    );
    assert_eq!(
        enrol["properties"]["name"]["maxLength"],
        document["components"]["schemas"]["CreateToken"]["properties"]["name"]["maxLength"],
        "the name's rule is a new token's: {enrol}"
    );
    assert_eq!(
        enrol["properties"]["digits"]["enum"],
        json!([6, 8, null]),
        "{enrol}"
    );
    assert!(
        enrol["properties"]["secret"].is_null(),
        "no seed is taken: {enrol}"
    );
    assert_eq!(
        enrol["dependentRequired"]["resource"],
        json!(["user"]),
        "{enrol}"
    );
    let confirm = &document["components"]["schemas"]["ConfirmToken"];
    assert!(
        confirm["properties"]["otp"]["pattern"].is_string(),
        "{confirm}"
    );
    let created = &document["paths"]["/api/v1/tokens/enrol"]["post"]["responses"]["201"];
    assert!(created.is_object(), "{created}");
    app.stop().await;
}
