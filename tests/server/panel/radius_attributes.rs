//! A resource's RADIUS reply attributes in the panel: the section of its Overview, saved by a
//! form over HTTPS with its CSRF token, refused with the API's words.

use reqwest::Method;
use serde_json::json;

use crate::helpers::api::{create_resource, send};
use crate::helpers::app::spawn_app;
use crate::helpers::page::location;

#[tokio::test]
async fn an_administrator_sets_reply_attributes_on_the_resources_page_and_bad_values_are_shown_in_the_form()
 {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let resource = create_resource(&app, &key, "vpn").await;
    let id = resource["id"].as_i64().expect("id");
    let page = app
        .get(&format!("/admin/resources/{id}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("RADIUS reply attributes"), "{page}");
    assert!(
        page.contains("<option value=\"Fortinet-Group-Name\">"),
        "the select offers the dictionary"
    );
    let action = format!("/admin/resources/{id}/radius-attributes");

    let refused = app
        .post_form(
            &action,
            &[
                ("csrf", csrf.as_str()),
                ("name", "Fortinet-Group-Name"),
                ("value", "vpn-admins"),
                ("name", "Session-Timeout"),
                ("value", "an hour"),
                ("name", ""),
                ("value", ""),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.expect("page");
    assert!(
        page.contains(
            "Attribute 2 (Session-Timeout): the value is not a whole number from 0 to 4294967295"
        ),
        "{page}"
    );
    assert!(page.contains("value=\"an hour\""), "the typed value stays");
    let (_, stored) = send(
        &app,
        Method::GET,
        "/resources/vpn/radius-attributes",
        &key,
        None,
    )
    .await;
    assert_eq!(stored, json!({"attributes": []}), "nothing was saved");

    let saved = app
        .post_form(
            &action,
            &[
                ("csrf", csrf.as_str()),
                ("name", "Fortinet-Group-Name"),
                ("value", "vpn-admins"),
                ("name", ""),
                ("value", ""),
                ("name", "Session-Timeout"),
                ("value", "3600"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303);
    assert_eq!(
        location(&saved),
        format!("/admin/resources/{id}#radius-heading")
    );
    let (_, stored) = send(
        &app,
        Method::GET,
        "/resources/vpn/radius-attributes",
        &key,
        None,
    )
    .await;
    assert_eq!(
        stored,
        json!({"attributes": [
            {"name": "Fortinet-Group-Name", "value": "vpn-admins"},
            {"name": "Session-Timeout", "value": "3600"},
        ]})
    );
    let page = app
        .get(&format!("/admin/resources/{id}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("RADIUS reply attributes saved: 2 attributes."),
        "{page}"
    );
    assert!(page.contains("value=\"vpn-admins\""), "{page}");

    let forged = app
        .post_form(
            &action,
            &[("csrf", "forged"), ("name", "Filter-Id"), ("value", "x")],
        )
        .await;
    assert!(forged.status().is_client_error(), "{}", forged.status());
}
