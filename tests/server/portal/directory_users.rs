//! A directory user in the portal, against a real slapd: Your details says that the directory
//! keeps their name, password, email and phone instead of offering the forms, a form posted
//! anyway is refused with nothing changed and no code sent, and their tokens stay theirs to
//! manage.

use reqwest::Method;
use serde_json::json;

use crate::helpers::directory::{directory_settings, record, small_slapd};
use crate::helpers::page::location;
use crate::helpers::portal::Portal;
use crate::helpers::slapd::ALICE;

#[tokio::test]
async fn a_directory_user_reads_where_their_details_change_and_a_forged_change_is_refused() {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let portal = Portal::start(
        &[
            "enroll_token",
            "change_name",
            "set_password",
            "change_password",
            "change_email",
            "change_phone",
        ],
        &["MAIL"],
    )
    .await;
    let admin = portal.admin.clone();
    let (status, created) = portal
        .api
        .call(
            Method::POST,
            "/directories",
            &admin,
            directory_settings(&slapd),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, added) = portal
        .api
        .call(
            Method::POST,
            "/directories/Example/users",
            &admin,
            json!({"login": ALICE.0}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let id = added["user_id"].as_i64().expect("id");
    let (status, body) = portal
        .api
        .call(
            Method::POST,
            "/resources/vpn/users",
            &admin,
            json!({"user": ALICE.0}),
        )
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let browser = portal.browser();
    let response = browser.log_in_with_password(ALICE.0, ALICE.1).await;
    assert_eq!(location(&response), "/portal/vpn");

    let page = browser.page("/portal/vpn/account").await;
    for said in [
        "Your name comes from the directory &quot;Example&quot;: change it there.",
        "Your password is kept in the directory &quot;Example&quot;: change it there.",
        "Your email address comes from the directory &quot;Example&quot;: change it there.",
        "Your phone number comes from the directory &quot;Example&quot;: change it there.",
    ] {
        assert!(page.contains(said), "{said}: {page}");
    }
    assert!(page.contains("Change Phone") && page.contains("alice@example.org"));
    assert!(
        !page.contains("action=\"/portal/vpn/account/") && !page.contains("name=\"value\""),
        "no form is offered: {page}"
    );

    let before = record(&portal.app, id);
    let messages = portal.count("SELECT count(*) FROM outbox");
    for (action, fields, said) in [
        (
            "/portal/vpn/account/name",
            vec![("first_name", "Alicia"), ("last_name", "Other")],
            "Your name comes from the directory &quot;Example&quot;: change it there. Nothing was changed.",
        ),
        (
            "/portal/vpn/account/password",
            vec![
                ("password", "alice's own passphrase"),
                ("again", "alice's own passphrase"),
            ],
            "Your password is kept in the directory &quot;Example&quot;: change it there. Nothing was changed.",
        ),
        (
            "/portal/vpn/account/email",
            vec![("value", "alice@elsewhere.example")],
            "Your email address comes from the directory &quot;Example&quot;: change it there. Nothing was changed.",
        ),
        (
            "/portal/vpn/account/phone",
            vec![("value", "+49 151 12345678")],
            "Your phone number comes from the directory &quot;Example&quot;: change it there. Nothing was changed.",
        ),
    ] {
        let refused = browser.submit("/portal/vpn/account", action, &fields).await;
        assert_eq!(refused.status(), 400, "{action}");
        let page = refused.text().await.expect("body");
        assert!(page.contains(said), "{action}: {page}");
        assert_eq!(record(&portal.app, id), before, "{action}: nothing changed");
    }
    assert_eq!(
        portal.count("SELECT count(*) FROM outbox"),
        messages,
        "no code was sent to a new address or number"
    );

    // Tokens stay hers to manage: Assign New is offered and opens.
    let tokens = browser.page("/portal/vpn").await;
    assert!(tokens.contains("Assign New"), "{tokens}");
    let response = browser.get("/portal/vpn/tokens/new").await;
    assert_eq!(response.status(), 200);
}
