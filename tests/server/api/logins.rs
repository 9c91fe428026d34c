//! Logins in Unicode through the management and authentication API: one login regardless of
//! case and of the normal form it was typed in, and no invisible characters.

use reqwest::Method;
use serde_json::json;

use crate::helpers::api::{assert_field, count, create_resource, create_user, send};
use crate::helpers::app::spawn_app;
use crate::helpers::otp::{totp_now, wait_for_fresh_step};

/// RFC 6238's SHA-1 seed, and the same as base32.
const SEED: &[u8] = b"12345678901234567890";
const SEED_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[tokio::test]
async fn a_login_that_differs_from_another_only_in_case_or_normal_form_is_a_conflict() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_user(&app, &key, json!({ "login": "Zo\u{eb}" })).await;
    let andre = create_user(&app, &key, json!({ "login": "Andr\u{e9}" })).await;
    create_user(&app, &key, json!({ "login": "stra\u{df}e" })).await;

    for login in ["ZO\u{cb}", "Andre\u{301}", "STRASSE", "zoe\u{308}"] {
        let (status, answer) = send(
            &app,
            Method::POST,
            "/users",
            &key,
            Some(json!({ "login": login })),
        )
        .await;
        assert_eq!(status, 409, "{login:?}: {answer}");
        assert_eq!(answer["error"]["code"], "conflict", "{answer}");
    }
    let (status, answer) = send(
        &app,
        Method::PATCH,
        &format!("/users/{}", andre["id"]),
        &key,
        Some(json!({ "login": "ZO\u{cb}" })),
    )
    .await;
    assert_eq!(status, 409, "a rename to a taken login: {answer}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users"), 3);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM users WHERE login = 'Andr\u{e9}'"
        ),
        1,
        "the refused rename changed nothing"
    );

    // A user may change the case of their own login.
    let (status, renamed) = send(
        &app,
        Method::PATCH,
        &format!("/users/{}", andre["id"]),
        &key,
        Some(json!({ "login": "ANDRE\u{301}" })),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["login"], "ANDR\u{c9}", "kept in composed form");
    app.stop().await;
}

#[tokio::test]
async fn a_login_with_an_invisible_format_character_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    for login in ["ad\u{200b}min", "admin\u{202e}", "\u{feff}admin"] {
        let (status, answer) = send(
            &app,
            Method::POST,
            "/users",
            &key,
            Some(json!({ "login": login })),
        )
        .await;
        assert_field(status, &answer, "login");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("format characters")),
            "{answer}"
        );
    }
    let user = create_user(&app, &key, json!({ "login": "admin" })).await;
    let (status, answer) = send(
        &app,
        Method::PATCH,
        &format!("/users/{}", user["id"]),
        &key,
        Some(json!({ "login": "ad\u{200b}min2" })),
    )
    .await;
    assert_field(status, &answer, "login");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users"), 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM users WHERE login = 'admin'"),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_is_found_by_their_login_in_any_case_and_normal_form() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_user(&app, &key, json!({ "login": "A\u{30a}sa" })).await;
    for login in ["\u{c5}sa", "\u{e5}sa", "\u{c5}SA", "a\u{30a}sa"] {
        let (status, user) = send(&app, Method::GET, &format!("/users/{login}"), &key, None).await;
        assert_eq!(status, 200, "{login:?}: {user}");
        assert_eq!(user["login"], "\u{c5}sa", "stored in composed form");
    }
    let (status, _) = send(&app, Method::GET, "/users/asa", &key, None).await;
    assert_eq!(status, 404, "a letter without its ring is another letter");
    app.stop().await;
}

#[tokio::test]
async fn authenticating_with_the_login_in_another_case_finds_the_user() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    create_user(&app, &admin, json!({ "login": "\u{c5}sa" })).await;
    let (status, token) = send(
        &app,
        Method::POST,
        "/tokens",
        &admin,
        Some(json!({
            "kind": "TOTP",
            "secret": SEED_BASE32,
            "user": "\u{c5}sa",
            "resource": "vpn",
        })),
    )
    .await;
    assert_eq!(
        status, 201,
        "a token is given to the user by their login in another case: {token}"
    );
    let app_key = app.api_key(&["--resource", "vpn"]);
    wait_for_fresh_step(5).await;
    let (status, answer) = send(
        &app,
        Method::POST,
        "/auth/authenticate",
        &app_key,
        Some(json!({ "user": "\u{e5}sa", "otp": totp_now(SEED, 0) })),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "accepted", "{answer}");
    assert_eq!(answer["token"]["id"], token["id"], "{answer}");
    app.stop().await;
}
