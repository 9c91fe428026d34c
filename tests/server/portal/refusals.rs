//! Every kind of refusal reaches a portal user as a 4xx page or a message in plain words — a
//! field's value, a request that does not fit, an object that is not theirs, a token that is not
//! free, an action that is off — never as a 5xx, and changes nothing.

use serde_json::json;

use crate::helpers::page::location;
use crate::helpers::portal::{Portal, logged_in};

#[tokio::test]
async fn every_kind_of_refusal_is_a_4xx_or_a_plain_message_and_changes_nothing() {
    let portal = Portal::start(
        &[
            "set_pin",
            "rename_token",
            "token_synchronization",
            "assign_existing_token",
        ],
        &["MAIL"],
    )
    .await;
    let ann = logged_in(&portal, "ann").await;
    portal
        .user(json!({"login": "bob", "email": "bob@example.com"}))
        .await;
    let mail = portal
        .token(
            json!({"kind": "MAIL", "name": "Mail", "destination": "ann@example.com",
                      "user": "ann", "resource": "vpn"}),
        )
        .await;
    let app = portal
        .token(json!({"kind": "TOTP", "name": "App", "user": "ann", "resource": "vpn"}))
        .await;
    let bobs = portal
        .token(json!({"kind": "TOTP", "serial": "HW-BOB", "user": "bob", "resource": "vpn"}))
        .await;

    // A field's value: a PIN too short for the PIN policy.
    let response = ann
        .submit(
            "/portal/vpn",
            &format!("/portal/vpn/tokens/{mail}/pin"),
            &[("pin", "1"), ("pin_position", "before")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/portal/vpn");
    let home = ann.page("/portal/vpn").await;
    assert!(
        home.contains("The PIN was not set: a PIN must have 4 to 64 characters"),
        "{home}"
    );

    // A request that does not fit: codes that are not codes.
    let response = ann
        .submit(
            &format!("/portal/vpn/tokens/{app}/sync"),
            &format!("/portal/vpn/tokens/{app}/sync"),
            &[("otp1", "abc"), ("otp2", "def")],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("were not found one after the other"),
        "{page}"
    );

    // An object that is not the user's.
    let response = ann
        .submit(
            "/portal/vpn",
            &format!("/portal/vpn/tokens/{bobs}/rename"),
            &[("name", "Mine now")],
        )
        .await;
    assert_eq!(response.status(), 404);

    // A token that is not free.
    let response = ann
        .submit(
            "/portal/vpn/tokens/claim",
            "/portal/vpn/tokens/claim",
            &[("serial", "HW-BOB"), ("code", "123456")],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("this token is not free"), "{page}");

    // An action that is off.
    let response = ann
        .submit(
            "/portal/vpn",
            &format!("/portal/vpn/tokens/{mail}/unassign"),
            &[],
        )
        .await;
    assert_eq!(response.status(), 403);

    // Nothing changed.
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM tokens WHERE pin_hash IS NOT NULL"),
        0
    );
    assert_eq!(
        portal.count(&format!(
            "SELECT COUNT(*) FROM tokens WHERE id = {bobs} AND name = ''"
        )),
        1
    );
    assert_eq!(
        portal.count(&format!(
            "SELECT COUNT(*) FROM tokens WHERE id = {mail} AND user_id IS NOT NULL"
        )),
        1
    );
}
