//! A resource's RADIUS reply attributes through the API: read, replaced and refused with the
//! panel's words; the dictionary they are drawn from; admin keys only.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, audit_actions, create_resource, send};
use crate::helpers::app::spawn_app;

#[tokio::test]
async fn reply_attributes_are_replaced_read_back_and_audited() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    let path = "/resources/vpn/radius-attributes";
    let (status, empty) = send(&app, Method::GET, path, &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty, json!({"attributes": []}));
    let (status, saved) = send(
        &app,
        Method::PUT,
        path,
        &admin,
        Some(json!({"attributes": [
            {"name": "fortinet-group-name", "value": "vpn-admins"},
            {"name": "Session-Timeout", "value": " 28800 "},
        ]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let expected = json!({"attributes": [
        {"name": "Fortinet-Group-Name", "value": "vpn-admins"},
        {"name": "Session-Timeout", "value": "28800"},
    ]});
    assert_eq!(saved, expected);
    let (status, read) = send(&app, Method::GET, path, &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, expected);
    assert!(
        audit_actions(&app).contains(&"resource.radius_attributes".to_string()),
        "{:?}",
        audit_actions(&app)
    );
    let (status, missing) = send(
        &app,
        Method::GET,
        "/resources/nowhere/radius-attributes",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let (status, _) = send(&app, Method::GET, path, &resource_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unknown_names_and_values_that_do_not_fit_their_type_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    let path = "/resources/vpn/radius-attributes";
    let (status, body) = send(
        &app,
        Method::PUT,
        path,
        &admin,
        Some(json!({"attributes": [{"name": "Filter-Id", "value": "kept"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refusals: [(Value, &str); 6] = [
        (
            json!([{"name": "Filter-Id", "value": "a"}, {"name": "No-Such-Thing", "value": "1"}]),
            "attribute 2: \"No-Such-Thing\" is not a reply attribute otpgate knows",
        ),
        (
            json!([{"name": "User-Password", "value": "x"}]),
            "attribute 1: \"User-Password\" is not a reply attribute otpgate knows",
        ),
        (
            json!([{"name": "Session-Timeout", "value": "-1"}]),
            "attribute 1 (Session-Timeout): the value is not a whole number from 0 to 4294967295",
        ),
        (
            json!([{"name": "Framed-IP-Address", "value": "10.0.0"}]),
            "attribute 1 (Framed-IP-Address): the value is not an IPv4 address",
        ),
        (
            json!([{"name": "Fortinet-Group-Name", "value": "g".repeat(248)}]),
            "attribute 1 (Fortinet-Group-Name): the value is longer than 247 bytes",
        ),
        (
            json!([{"name": "Cisco-AVPair", "value": "priv-lvl 15"}]),
            "attribute 1 (Cisco-AVPair): the value is not of the form name=value (or name*value)",
        ),
    ];
    for (attributes, message) in refusals {
        let (status, body) = send(
            &app,
            Method::PUT,
            path,
            &admin,
            Some(json!({ "attributes": attributes })),
        )
        .await;
        assert_field(status, &body, "attributes");
        assert_eq!(body["error"]["message"], message, "{body}");
    }
    let too_many: Vec<Value> = (0..65)
        .map(|_| json!({"name": "Filter-Id", "value": "x"}))
        .collect();
    let (status, body) = send(
        &app,
        Method::PUT,
        path,
        &admin,
        Some(json!({ "attributes": too_many })),
    )
    .await;
    assert_field(status, &body, "attributes");
    let too_big: Vec<Value> = (0..15)
        .map(|_| json!({"name": "Filter-Id", "value": "x".repeat(250)}))
        .collect();
    let (status, body) = send(
        &app,
        Method::PUT,
        path,
        &admin,
        Some(json!({ "attributes": too_big })),
    )
    .await;
    assert_field(status, &body, "attributes");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("a reply has room for")),
        "{body}"
    );
    let (_, read) = send(&app, Method::GET, path, &admin, None).await;
    assert_eq!(
        read,
        json!({"attributes": [{"name": "Filter-Id", "value": "kept"}]})
    );
}

#[tokio::test]
async fn the_dictionary_lists_the_reply_attributes_with_their_types_and_vendors() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let (status, body) = send(&app, Method::GET, "/radius/dictionary", &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().expect("items");
    let entry = |name: &str| {
        items
            .iter()
            .find(|item| item["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {body}"))
    };
    assert_eq!(
        entry("Fortinet-Group-Name"),
        json!({"name": "Fortinet-Group-Name", "type": "string", "vendor": 12356, "number": 1})
    );
    assert_eq!(
        entry("Session-Timeout"),
        json!({"name": "Session-Timeout", "type": "integer", "vendor": null, "number": 27})
    );
    assert_eq!(entry("Service-Type")["values"][5], "Administrative-User");
    assert!(items.iter().all(|item| item["name"] != "User-Password"));
    let document: Value = app
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    for path in [
        "/api/v1/resources/{resource}/radius-attributes",
        "/api/v1/radius/dictionary",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        document["components"]["schemas"]["PutRadiusAttributes"]["properties"]["attributes"]["maxItems"],
        64
    );
}
