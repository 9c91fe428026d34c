//! The resource endpoints of the management API: creating, listing, showing, changing and
//! deleting resources, and assigning users and tokens to them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{
    assert_field, audit_actions, count, create_resource, create_user, insert_token, send,
};
use crate::helpers::app::spawn_app;

fn names(listing: &Value) -> Vec<String> {
    listing["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            item.get("name")
                .or_else(|| item.get("login"))
                .and_then(Value::as_str)
                .expect("a name")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn creating_a_resource_applies_the_defaults() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let vpn = create_resource(&app, &key, " vpn ").await;
    assert_eq!(vpn["name"], "vpn");
    assert_eq!(vpn["description"], "");
    assert_eq!(vpn["fail_limit"], 5);
    assert_eq!(vpn["password_required"], false);
    assert_eq!(vpn["auto_unlock_seconds"], Value::Null);
    assert!(vpn["created_at"].as_i64().expect("created") > 0);
    let (status, mail) = send(
        &app,
        Method::POST,
        "/resources",
        &key,
        Some(
            json!({ "name": "mail", "description": "Webmail", "fail_limit": 3,
                     "password_required": true, "auto_unlock_seconds": 600 }),
        ),
    )
    .await;
    assert_eq!(status, 201, "{mail}");
    assert_eq!(mail["description"], "Webmail");
    assert_eq!(mail["fail_limit"], 3);
    assert_eq!(mail["password_required"], true);
    assert_eq!(mail["auto_unlock_seconds"], 600);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM self_service WHERE enabled = 0"),
        2,
        "each resource gets its self-service settings, switched off"
    );
    assert_eq!(
        audit_actions(&app),
        ["apikey.create", "resource.create", "resource.create"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_resource_with_an_invalid_setting_is_refused_naming_it() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let cases = [
        (json!({}), "name"),
        (json!({ "name": "  " }), "name"),
        (json!({ "name": "12" }), "name"),
        (json!({ "name": "x".repeat(101) }), "name"),
        (json!({ "name": "a", "fail_limit": 2 }), "fail_limit"),
        (json!({ "name": "a", "fail_limit": 11 }), "fail_limit"),
        (
            json!({ "name": "a", "auto_unlock_seconds": 59 }),
            "auto_unlock_seconds",
        ),
        (
            json!({ "name": "a", "auto_unlock_seconds": 86401 }),
            "auto_unlock_seconds",
        ),
        (
            json!({ "name": "a", "password_required": "no" }),
            "password_required",
        ),
        (
            json!({ "name": "a", "description": "d".repeat(1001) }),
            "description",
        ),
        (json!({ "name": "a", "owner": "me" }), "owner"),
    ];
    for (body, field) in cases {
        let (status, answer) = send(&app, Method::POST, "/resources", &key, Some(body)).await;
        assert_field(status, &answer, field);
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 0);
    assert_eq!(audit_actions(&app), ["apikey.create"]);
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_resource_name_is_a_conflict_naming_it() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    let (status, answer) = send(
        &app,
        Method::POST,
        "/resources",
        &key,
        Some(json!({ "name": "VPN" })),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("VPN")
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM self_service"), 1);
    app.stop().await;
}

#[tokio::test]
async fn resource_management_needs_an_admin_key() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    create_user(&app, &admin, json!({ "login": "alice" })).await;
    insert_token(&app, "T-1", None);
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let calls: [(Method, &str, Option<Value>); 11] = [
        (Method::POST, "/resources", Some(json!({ "name": "other" }))),
        (Method::GET, "/resources", None),
        (Method::GET, "/resources/vpn", None),
        (
            Method::PATCH,
            "/resources/vpn",
            Some(json!({ "fail_limit": 3 })),
        ),
        (
            Method::POST,
            "/resources/vpn/users",
            Some(json!({ "user": "alice" })),
        ),
        (Method::GET, "/resources/vpn/users", None),
        (Method::DELETE, "/resources/vpn/users/alice", None),
        (
            Method::POST,
            "/resources/vpn/tokens",
            Some(json!({ "token": "T-1" })),
        ),
        (Method::GET, "/resources/vpn/tokens", None),
        (Method::DELETE, "/resources/vpn/tokens/T-1", None),
        (Method::DELETE, "/resources/vpn", None),
    ];
    for (method, path, body) in calls {
        let mut request = app
            .client
            .request(method.clone(), app.url(&format!("/api/v1{path}")));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.expect("answered");
        assert_eq!(response.status(), 401, "{method} {path} without a key");
        let (status, answer) = send(&app, method.clone(), path, &resource_key, body).await;
        assert_eq!(status, 403, "{method} {path} with a resource key: {answer}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM resources WHERE fail_limit = 5"),
        1
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_resources"), 0);
    app.stop().await;
}

#[tokio::test]
async fn resources_are_listed_and_searched_a_page_at_a_time() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    for name in ["wiki", "VPN-Berlin", "mail", "vpn-paris", "crm"] {
        create_resource(&app, &key, name).await;
    }
    let (status, all) = send(&app, Method::GET, "/resources", &key, None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        names(&all),
        ["crm", "mail", "VPN-Berlin", "vpn-paris", "wiki"]
    );
    assert_eq!(all["total"], 5);
    let (_, page) = send(&app, Method::GET, "/resources?limit=2&offset=1", &key, None).await;
    assert_eq!(names(&page), ["mail", "VPN-Berlin"]);
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(5), json!(2), json!(1))
    );
    let (_, found) = send(&app, Method::GET, "/resources?search=vpn", &key, None).await;
    assert_eq!(names(&found), ["VPN-Berlin", "vpn-paris"]);
    assert_eq!(found["total"], 2);
    let (_, none) = send(&app, Method::GET, "/resources?search=_", &key, None).await;
    assert_eq!(none["total"], 0);
    for (query, field) in [
        ("limit=501", "limit"),
        ("offset=x", "offset"),
        ("name=vpn", "name"),
    ] {
        let (status, answer) = send(
            &app,
            Method::GET,
            &format!("/resources?{query}"),
            &key,
            None,
        )
        .await;
        assert_field(status, &answer, field);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_resource_is_shown_with_how_many_users_and_tokens_it_has() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let vpn = create_resource(&app, &key, "vpn").await;
    let alice = create_user(&app, &key, json!({ "login": "alice" })).await;
    create_user(&app, &key, json!({ "login": "bob" })).await;
    insert_token(&app, "A-1", alice["id"].as_i64());
    for (path, body) in [
        ("/resources/vpn/tokens", json!({ "token": "A-1" })),
        ("/resources/vpn/users", json!({ "user": "bob" })),
    ] {
        assert_eq!(
            send(&app, Method::POST, path, &key, Some(body)).await.0,
            204
        );
    }
    for path in [
        format!("/resources/{}", vpn["id"]),
        "/resources/VPN".to_string(),
    ] {
        let (status, shown) = send(&app, Method::GET, &path, &key, None).await;
        assert_eq!(status, 200, "{shown}");
        assert_eq!(shown["name"], "vpn");
        assert_eq!(shown["fail_limit"], 5);
        assert_eq!(shown["users"], 2);
        assert_eq!(shown["tokens"], 1);
    }
    let (status, answer) = send(&app, Method::GET, "/resources/nowhere", &key, None).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn patching_a_resource_changes_only_the_given_settings() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    create_resource(&app, &key, "mail").await;
    let (status, vpn) = send(
        &app,
        Method::PATCH,
        "/resources/vpn",
        &key,
        Some(json!({ "fail_limit": 10, "auto_unlock_seconds": 3600, "description": "Office" })),
    )
    .await;
    assert_eq!(status, 200, "{vpn}");
    assert_eq!(vpn["fail_limit"], 10);
    assert_eq!(vpn["auto_unlock_seconds"], 3600);
    assert_eq!(vpn["description"], "Office");
    assert_eq!(vpn["password_required"], false);

    let (_, vpn) = send(
        &app,
        Method::PATCH,
        "/resources/vpn",
        &key,
        Some(json!({ "password_required": true })),
    )
    .await;
    assert_eq!(vpn["auto_unlock_seconds"], 3600, "an absent field stays");
    let (_, vpn) = send(
        &app,
        Method::PATCH,
        "/resources/vpn",
        &key,
        Some(json!({ "auto_unlock_seconds": null, "name": "remote" })),
    )
    .await;
    assert_eq!(
        vpn["auto_unlock_seconds"],
        Value::Null,
        "null: only an admin unlocks"
    );
    assert_eq!(vpn["name"], "remote");

    let before = send(&app, Method::GET, "/resources/remote", &key, None)
        .await
        .1;
    for (body, field) in [
        (json!({ "fail_limit": 1, "description": "x" }), "fail_limit"),
        (json!({ "auto_unlock_seconds": 10 }), "auto_unlock_seconds"),
        (json!({ "name": "" }), "name"),
        (json!({ "name": null, "color": "red" }), "color"),
    ] {
        let (status, answer) =
            send(&app, Method::PATCH, "/resources/remote", &key, Some(body)).await;
        assert_field(status, &answer, field);
    }
    let (status, answer) = send(
        &app,
        Method::PATCH,
        "/resources/remote",
        &key,
        Some(json!({ "name": "MAIL", "description": "x" })),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("MAIL")
    );
    let after = send(&app, Method::GET, "/resources/remote", &key, None)
        .await
        .1;
    assert_eq!(before, after, "refused changes changed nothing");
    let (status, _) = send(
        &app,
        Method::PATCH,
        "/resources/nowhere",
        &key,
        Some(json!({ "fail_limit": 3 })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.update'"
        ),
        3
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_resource_removes_its_assignments_keys_and_settings() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    create_resource(&app, &key, "mail").await;
    let alice = create_user(&app, &key, json!({ "login": "alice" })).await;
    insert_token(&app, "A-1", alice["id"].as_i64());
    for resource in ["vpn", "mail"] {
        let (status, _) = send(
            &app,
            Method::POST,
            &format!("/resources/{resource}/tokens"),
            &key,
            Some(json!({ "token": "A-1" })),
        )
        .await;
        assert_eq!(status, 204);
    }
    let resource_key = app.api_key(&["--resource", "vpn"]);
    assert_eq!(
        send(&app, Method::GET, "/resources", &resource_key, None)
            .await
            .0,
        403,
        "the resource key works before"
    );

    let (status, body) = send(&app, Method::DELETE, "/resources/vpn", &key, None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        send(&app, Method::GET, "/resources/vpn", &key, None)
            .await
            .0,
        404
    );
    assert_eq!(
        send(&app, Method::GET, "/resources", &resource_key, None)
            .await
            .0,
        401,
        "the resource's key is gone with it"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM api_keys WHERE scope = 'resource'"
        ),
        0
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM self_service"), 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_resources"), 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM token_resources"), 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM users"),
        1,
        "the user stays"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM tokens"),
        1,
        "the token stays"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.delete'"
        ),
        1
    );
    assert_eq!(
        send(&app, Method::DELETE, "/resources/vpn", &key, None)
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn assigning_a_user_twice_changes_nothing_the_second_time() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let vpn = create_resource(&app, &key, "vpn").await;
    let alice = create_user(&app, &key, json!({ "login": "alice" })).await;
    for body in [json!({ "user": "alice" }), json!({ "user": alice["id"] })] {
        let (status, answer) = send(
            &app,
            Method::POST,
            &format!("/resources/{}/users", vpn["id"]),
            &key,
            Some(body),
        )
        .await;
        assert_eq!(status, 204, "{answer}");
    }
    let (status, listing) = send(&app, Method::GET, "/resources/vpn/users", &key, None).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(names(&listing), ["alice"]);
    assert_eq!(listing["total"], 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.assign_user'"
        ),
        1,
        "the second call changed nothing and wrote nothing"
    );
    let (status, answer) = send(
        &app,
        Method::POST,
        "/resources/vpn/users",
        &key,
        Some(json!({ "user": "nobody" })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["message"], "no such user");
    let (status, answer) = send(
        &app,
        Method::POST,
        "/resources/nowhere/users",
        &key,
        Some(json!({ "user": "alice" })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["message"], "no such resource");
    for body in [
        json!({}),
        json!({ "user": true }),
        json!({ "user": "alice", "x": 1 }),
    ] {
        let (status, answer) =
            send(&app, Method::POST, "/resources/vpn/users", &key, Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"]["field"].is_string(), "{answer}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_resources"), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_users_of_a_resource_are_listed_a_page_at_a_time() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    for login in ["dora", "anna", "carl", "bert"] {
        create_user(&app, &key, json!({ "login": login })).await;
        if login != "carl" {
            let (status, _) = send(
                &app,
                Method::POST,
                "/resources/vpn/users",
                &key,
                Some(json!({ "user": login })),
            )
            .await;
            assert_eq!(status, 204);
        }
    }
    let (_, page) = send(
        &app,
        Method::GET,
        "/resources/vpn/users?limit=2&offset=1",
        &key,
        None,
    )
    .await;
    assert_eq!(names(&page), ["bert", "dora"]);
    assert_eq!(page["total"], 3);
    let (status, answer) = send(
        &app,
        Method::GET,
        "/resources/vpn/users?search=a",
        &key,
        None,
    )
    .await;
    assert_field(status, &answer, "search");
    assert_eq!(
        send(&app, Method::GET, "/resources/nowhere/users", &key, None)
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn taking_a_user_from_a_resource_takes_their_tokens_too() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    create_resource(&app, &key, "mail").await;
    let alice = create_user(&app, &key, json!({ "login": "alice" })).await;
    insert_token(&app, "A-1", alice["id"].as_i64());
    for resource in ["vpn", "mail"] {
        let (status, _) = send(
            &app,
            Method::POST,
            &format!("/resources/{resource}/tokens"),
            &key,
            Some(json!({ "token": "A-1" })),
        )
        .await;
        assert_eq!(status, 204);
    }
    let (status, body) = send(
        &app,
        Method::DELETE,
        "/resources/vpn/users/alice",
        &key,
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, tokens) = send(&app, Method::GET, "/resources/vpn/tokens", &key, None).await;
    assert_eq!(tokens, json!([]));
    let (_, users) = send(&app, Method::GET, "/resources/vpn/users", &key, None).await;
    assert_eq!(users["total"], 0);
    let (_, tokens) = send(&app, Method::GET, "/resources/mail/tokens", &key, None).await;
    assert_eq!(
        tokens.as_array().expect("tokens").len(),
        1,
        "other resources keep them"
    );
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            "/resources/vpn/users/alice",
            &key,
            None
        )
        .await
        .0,
        204,
        "taking away again is not an error"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.unassign_user'"
        ),
        1
    );
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            "/resources/vpn/users/nobody",
            &key,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            "/resources/nowhere/users/alice",
            &key,
            None
        )
        .await
        .0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn assigning_a_token_assigns_its_user_too() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    let alice = create_user(&app, &key, json!({ "login": "alice" })).await;
    let token = insert_token(&app, "A-1", alice["id"].as_i64());
    for body in [json!({ "token": token }), json!({ "token": "A-1" })] {
        let (status, answer) = send(
            &app,
            Method::POST,
            "/resources/vpn/tokens",
            &key,
            Some(body),
        )
        .await;
        assert_eq!(status, 204, "{answer}");
    }
    let (status, tokens) = send(&app, Method::GET, "/resources/vpn/tokens", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        tokens,
        json!([{ "id": token, "serial": "A-1", "name": "A-1", "kind": "TOTP",
                 "user": { "id": alice["id"], "login": "alice" } }])
    );
    let (_, users) = send(&app, Method::GET, "/resources/vpn/users", &key, None).await;
    assert_eq!(names(&users), ["alice"]);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.assign_token'"
        ),
        1
    );

    let (status, body) = send(
        &app,
        Method::DELETE,
        "/resources/vpn/tokens/A-1",
        &key,
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, tokens) = send(&app, Method::GET, "/resources/vpn/tokens", &key, None).await;
    assert_eq!(tokens, json!([]));
    let (_, users) = send(&app, Method::GET, "/resources/vpn/users", &key, None).await;
    assert_eq!(names(&users), ["alice"], "the user stays assigned");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.unassign_token'"
        ),
        1
    );
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            "/resources/vpn/tokens/A-1",
            &key,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            "/resources/vpn/tokens/NONE",
            &key,
            None
        )
        .await
        .0,
        404
    );
    let (status, answer) = send(
        &app,
        Method::POST,
        "/resources/vpn/tokens",
        &key,
        Some(json!({ "token": "NONE" })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["message"], "no such token");
    assert_eq!(
        send(&app, Method::GET, "/resources/nowhere/tokens", &key, None)
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_without_a_user_is_refused_for_a_resource() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "vpn").await;
    // The token endpoints belong to another area, so the token row is written directly.
    insert_token(&app, "LOOSE-1", None);
    let (status, answer) = send(
        &app,
        Method::POST,
        "/resources/vpn/tokens",
        &key,
        Some(json!({ "token": "LOOSE-1" })),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("has no user"),
        "{answer}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM token_resources"), 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_resources"), 0);
    assert!(
        !audit_actions(&app)
            .iter()
            .any(|a| a == "resource.assign_token")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_resource_s_approvals_are_off_by_default_and_change_one_setting_at_a_time() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let vpn = create_resource(&app, &key, "vpn").await;
    assert_eq!(
        vpn["approvals"],
        json!({ "allowed": false, "number_matching": true, "deny_locks": false })
    );
    let (status, vpn) = send(
        &app,
        Method::PATCH,
        "/resources/vpn",
        &key,
        Some(json!({ "approvals": { "allowed": true, "deny_locks": true } })),
    )
    .await;
    assert_eq!(status, 200, "{vpn}");
    assert_eq!(
        vpn["approvals"],
        json!({ "allowed": true, "number_matching": true, "deny_locks": true })
    );
    let (_, vpn) = send(
        &app,
        Method::PATCH,
        "/resources/vpn",
        &key,
        Some(json!({ "approvals": { "number_matching": false } })),
    )
    .await;
    assert_eq!(
        vpn["approvals"],
        json!({ "allowed": true, "number_matching": false, "deny_locks": true }),
        "absent settings stay"
    );
    let (_, shown) = send(&app, Method::GET, "/resources/vpn", &key, None).await;
    assert_eq!(shown["approvals"], vpn["approvals"]);
    for body in [
        json!({ "approvals": { "allowed": "yes" } }),
        json!({ "approvals": { "push": true } }),
    ] {
        let (status, answer) = send(&app, Method::PATCH, "/resources/vpn", &key, Some(body)).await;
        assert_eq!(status, 400, "{answer}");
    }
    let (_, after) = send(&app, Method::GET, "/resources/vpn", &key, None).await;
    assert_eq!(
        after["approvals"], vpn["approvals"],
        "refused changes changed nothing"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.update' AND detail = 'approvals'"
        ),
        2
    );
    app.stop().await;
}
