//! The user endpoints of the management API: creating, listing, showing, changing, disabling and
//! deleting users, and setting their passwords.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{
    assert_field, audit_actions, count, create_resource, create_user, database, insert_token, send,
};
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::delivery::mail_settings;
use crate::helpers::smtp_sink::{Mode, SmtpSink};

/// How long a notice may take through the outbox to the mail sink.
const NOTICE_WAIT: Duration = Duration::from_secs(20);

/// Every text of the audit log in one string, to show that no secret is in it.
fn audit_text(app: &TestApp) -> String {
    let conn = database(app);
    let mut statement = conn
        .prepare(
            "SELECT action || ' ' || actor || ' ' || result || ' ' || COALESCE(detail, '') || ' ' || COALESCE(reason, '')
             FROM audit_log ORDER BY id",
        )
        .expect("prepare");
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
        .join("\n")
}

fn logins(listing: &Value) -> Vec<String> {
    listing["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|user| user["login"].as_str().expect("login").to_string())
        .collect()
}

#[tokio::test]
async fn creating_a_user_returns_it_without_the_password() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let user = create_user(
        &app,
        &key,
        json!({
            "login": " alice ",
            "first_name": "Alice",
            "last_name": "Liddell",
            "email": "alice@example.com",
            "phone": "+49 151 1234-5678",
            "password": "wonderland-1865"
        }),
    )
    .await;
    assert!(user["id"].as_i64().expect("id") > 0);
    assert_eq!(user["login"], "alice");
    assert_eq!(user["first_name"], "Alice");
    assert_eq!(user["last_name"], "Liddell");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["phone"], "+4915112345678");
    assert_eq!(user["has_password"], true);
    assert_eq!(user["enabled"], true);
    assert!(user["created_at"].as_i64().expect("created") > 0);
    assert_eq!(user["created_at"], user["updated_at"]);
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let plain = create_user(&app, &key, json!({ "login": "bob", "enabled": false })).await;
    assert_eq!(plain["has_password"], false);
    assert_eq!(plain["enabled"], false);
    assert_eq!(plain["email"], Value::Null);
    assert_eq!(plain["first_name"], "");

    assert_eq!(
        audit_actions(&app),
        ["apikey.create", "user.create", "user.create"]
    );
    assert!(!audit_text(&app).contains("wonderland"));
    app.stop().await;
}

#[tokio::test]
async fn user_management_needs_an_admin_key() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    create_resource(&app, &admin, "vpn").await;
    create_user(&app, &admin, json!({ "login": "alice" })).await;
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let calls: [(Method, &str, Option<Value>); 8] = [
        (Method::POST, "/users", Some(json!({ "login": "mallory" }))),
        (Method::GET, "/users", None),
        (Method::GET, "/users/alice", None),
        (
            Method::PATCH,
            "/users/alice",
            Some(json!({ "first_name": "M" })),
        ),
        (
            Method::PUT,
            "/users/alice/password",
            Some(json!({ "password": null })),
        ),
        (Method::POST, "/users/alice/disable", None),
        (Method::POST, "/users/alice/enable", None),
        (Method::DELETE, "/users/alice", None),
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
        assert_eq!(answer["error"]["code"], "forbidden");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users"), 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM users WHERE first_name = '' AND enabled = 1"
        ),
        1,
        "refused requests changed nothing"
    );
    assert!(
        !audit_actions(&app)
            .iter()
            .any(|a| a.starts_with("user.") && a != "user.create")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_with_an_invalid_field_is_refused_naming_it() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let cases = [
        (json!({}), "login"),
        (json!({ "login": "" }), "login"),
        (json!({ "login": "42" }), "login"),
        (json!({ "login": 42 }), "login"),
        (json!({ "login": "a", "email": "not-an-address" }), "email"),
        (json!({ "login": "a", "phone": "0151 12345678" }), "phone"),
        (json!({ "login": "a", "password": "short" }), "password"),
        (json!({ "login": "a", "enabled": "yes" }), "enabled"),
        (
            json!({ "login": "a", "first_name": "x".repeat(129) }),
            "first_name",
        ),
        (json!({ "login": "a", "role": "admin" }), "role"),
    ];
    for (body, field) in cases {
        let (status, answer) = send(&app, Method::POST, "/users", &key, Some(body)).await;
        assert_field(status, &answer, field);
    }
    let response = app
        .api(Method::POST, "/users", &key)
        .header("content-type", "application/json")
        .body("{\"login\":")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 400);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users"), 0);
    assert_eq!(audit_actions(&app), ["apikey.create"]);
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_login_is_a_conflict_naming_it() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_user(
        &app,
        &key,
        json!({ "login": "alice", "first_name": "First" }),
    )
    .await;
    let (status, answer) = send(
        &app,
        Method::POST,
        "/users",
        &key,
        Some(json!({ "login": "ALICE", "first_name": "Second" })),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("ALICE"),
        "{answer}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users"), 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM users WHERE first_name = 'First'"
        ),
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.create'"
        ),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn users_are_listed_by_login_a_page_at_a_time() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    for login in ["gina", "carl", "anna", "fred", "bert", "emma", "dora"] {
        create_user(&app, &key, json!({ "login": login })).await;
    }
    let (status, first) = send(&app, Method::GET, "/users", &key, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["total"], 7);
    assert_eq!(first["limit"], 50);
    assert_eq!(first["offset"], 0);
    assert_eq!(
        logins(&first),
        ["anna", "bert", "carl", "dora", "emma", "fred", "gina"]
    );
    let (_, page) = send(&app, Method::GET, "/users?limit=3&offset=3", &key, None).await;
    assert_eq!(logins(&page), ["dora", "emma", "fred"]);
    assert_eq!(page["total"], 7);
    assert_eq!(page["limit"], 3);
    assert_eq!(page["offset"], 3);
    let (_, beyond) = send(&app, Method::GET, "/users?offset=10", &key, None).await;
    assert_eq!(logins(&beyond), Vec::<String>::new());
    assert_eq!(beyond["total"], 7);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("enabled=maybe", "enabled"),
        ("has_token=1", "has_token"),
        ("serach=anna", "serach"),
    ] {
        let (status, answer) =
            send(&app, Method::GET, &format!("/users?{query}"), &key, None).await;
        assert_field(status, &answer, field);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_user_listing_filters_by_search_state_resource_and_token() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let alice = create_user(
        &app,
        &key,
        json!({ "login": "alice", "last_name": "Liddell", "email": "alice@wonder.land" }),
    )
    .await;
    let bob = create_user(
        &app,
        &key,
        json!({ "login": "bob", "phone": "+44 20 7946 0000", "enabled": false }),
    )
    .await;
    create_user(
        &app,
        &key,
        json!({ "login": "carol", "first_name": "Caroline" }),
    )
    .await;
    let vpn = create_resource(&app, &key, "vpn").await;
    insert_token(&app, "T-1", bob["id"].as_i64());
    let (status, _) = send(
        &app,
        Method::POST,
        "/resources/vpn/users",
        &key,
        Some(json!({ "user": "alice" })),
    )
    .await;
    assert_eq!(status, 204);

    let cases = [
        ("search=LIDD", vec!["alice"]),
        ("search=WONDER.land", vec!["alice"]),
        ("search=7946", vec!["bob"]),
        ("search=line", vec!["carol"]),
        ("search=LI", vec!["alice", "carol"]),
        ("search=%25", vec![]),
        ("enabled=false", vec!["bob"]),
        ("enabled=true", vec!["alice", "carol"]),
        ("resource=vpn", vec!["alice"]),
        ("has_token=true", vec!["bob"]),
        ("has_token=false", vec!["alice", "carol"]),
        ("has_token=false&search=car", vec!["carol"]),
        ("enabled=true&resource=vpn&has_token=false", vec!["alice"]),
    ];
    for (query, expected) in cases {
        let (status, listing) =
            send(&app, Method::GET, &format!("/users?{query}"), &key, None).await;
        assert_eq!(status, 200, "{query}: {listing}");
        assert_eq!(logins(&listing), expected, "{query}");
        assert_eq!(listing["total"], expected.len(), "{query}");
    }
    let by_id = format!("/users?resource={}", vpn["id"]);
    let (_, listing) = send(&app, Method::GET, &by_id, &key, None).await;
    assert_eq!(logins(&listing), ["alice"]);
    assert_eq!(listing["items"][0]["id"], alice["id"]);
    let (status, answer) = send(&app, Method::GET, "/users?resource=nowhere", &key, None).await;
    assert_field(status, &answer, "resource");
    app.stop().await;
}

#[tokio::test]
async fn a_user_is_shown_by_id_or_login_with_tokens_and_resources() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let alice = create_user(&app, &key, json!({ "login": "alice" })).await;
    let id = alice["id"].as_i64().expect("id");
    let vpn = create_resource(&app, &key, "vpn").await;
    let token = insert_token(&app, "TOTP-0001", Some(id));
    let (status, _) = send(
        &app,
        Method::POST,
        "/resources/vpn/tokens",
        &key,
        Some(json!({ "token": "TOTP-0001" })),
    )
    .await;
    assert_eq!(status, 204);
    for path in [
        format!("/users/{id}"),
        "/users/alice".to_string(),
        "/users/ALICE".to_string(),
    ] {
        let (status, user) = send(&app, Method::GET, &path, &key, None).await;
        assert_eq!(status, 200, "{path}: {user}");
        assert_eq!(user["login"], "alice");
        assert_eq!(user["has_password"], false);
        assert_eq!(user["directory"], Value::Null, "a user of otpgate's own");
        assert_eq!(
            user["tokens"],
            json!([{ "id": token, "serial": "TOTP-0001", "name": "TOTP-0001", "kind": "TOTP",
                     "state": "active", "enabled": true }])
        );
        assert_eq!(
            user["resources"],
            json!([{ "id": vpn["id"], "name": "vpn" }])
        );
    }
    let (status, answer) = send(&app, Method::GET, "/users/nobody", &key, None).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "not_found");
    let (status, _) = send(&app, Method::GET, "/users/999", &key, None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn patching_a_user_changes_only_the_given_fields() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_user(
        &app,
        &key,
        json!({ "login": "alice", "first_name": "Alice", "email": "alice@example.com",
                "phone": "+4915112345678" }),
    )
    .await;
    create_user(&app, &key, json!({ "login": "bob" })).await;

    let (status, user) = send(
        &app,
        Method::PATCH,
        "/users/alice",
        &key,
        Some(json!({ "last_name": "Liddell", "phone": "0044 20 7946 0000" })),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["first_name"], "Alice");
    assert_eq!(user["last_name"], "Liddell");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["phone"], "+442079460000");

    let (_, user) = send(
        &app,
        Method::PATCH,
        "/users/alice",
        &key,
        Some(json!({ "email": null, "enabled": false })),
    )
    .await;
    assert_eq!(user["email"], Value::Null);
    assert_eq!(user["phone"], "+442079460000");
    assert_eq!(user["enabled"], false);

    let (status, user) = send(
        &app,
        Method::PATCH,
        "/users/alice",
        &key,
        Some(json!({ "login": "alicia" })),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["login"], "alicia");

    let before = send(&app, Method::GET, "/users/alicia", &key, None).await.1;
    let (status, answer) = send(
        &app,
        Method::PATCH,
        "/users/alicia",
        &key,
        Some(json!({ "login": "BOB", "first_name": "Changed" })),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("BOB")
    );
    for (body, field) in [
        (json!({ "email": "nope", "first_name": "Changed" }), "email"),
        (
            json!({ "phone": "12345", "first_name": "Changed" }),
            "phone",
        ),
        (json!({ "login": null }), "login"),
        (json!({ "login": "7" }), "login"),
        (
            json!({ "enabled": null, "password": "secret-secret" }),
            "password",
        ),
    ] {
        let (status, answer) = send(&app, Method::PATCH, "/users/alicia", &key, Some(body)).await;
        assert_field(status, &answer, field);
    }
    let after = send(&app, Method::GET, "/users/alicia", &key, None).await.1;
    assert_eq!(before, after, "refused changes changed nothing");

    let (status, _) = send(
        &app,
        Method::PATCH,
        "/users/nobody",
        &key,
        Some(json!({ "first_name": "X" })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.update'"
        ),
        3
    );
    app.stop().await;
}

#[tokio::test]
async fn a_password_is_set_and_removed() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_user(&app, &key, json!({ "login": "alice" })).await;
    let (status, body) = send(
        &app,
        Method::PUT,
        "/users/alice/password",
        &key,
        Some(json!({ "password": "correct horse battery" })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let user = send(&app, Method::GET, "/users/alice", &key, None).await.1;
    assert_eq!(user["has_password"], true);
    let hash: String = database(&app)
        .query_row(
            "SELECT password_hash FROM users WHERE login = 'alice'",
            [],
            |row| row.get(0),
        )
        .expect("hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    for body in [
        json!({}),
        json!({ "password": "short" }),
        json!({ "password": 12345678 }),
    ] {
        let (status, answer) =
            send(&app, Method::PUT, "/users/alice/password", &key, Some(body)).await;
        assert_field(status, &answer, "password");
    }
    let unchanged: String = database(&app)
        .query_row(
            "SELECT password_hash FROM users WHERE login = 'alice'",
            [],
            |row| row.get(0),
        )
        .expect("hash");
    assert_eq!(hash, unchanged);

    let (status, _) = send(
        &app,
        Method::PUT,
        "/users/alice/password",
        &key,
        Some(json!({ "password": null })),
    )
    .await;
    assert_eq!(status, 204);
    let user = send(&app, Method::GET, "/users/alice", &key, None).await.1;
    assert_eq!(user["has_password"], false);
    let (status, _) = send(
        &app,
        Method::PUT,
        "/users/nobody/password",
        &key,
        Some(json!({ "password": "long enough now" })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.password'"
        ),
        2
    );
    let audit = audit_text(&app);
    assert!(
        !audit.contains("correct horse") && !audit.contains("argon2"),
        "{audit}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_is_disabled_and_enabled_again() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_user(&app, &key, json!({ "login": "alice" })).await;
    let (status, user) = send(&app, Method::POST, "/users/alice/disable", &key, None).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["enabled"], false);
    let (_, listing) = send(&app, Method::GET, "/users?enabled=false", &key, None).await;
    assert_eq!(logins(&listing), ["alice"]);
    let (status, user) = send(&app, Method::POST, "/users/alice/enable", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(user["enabled"], true);
    let (status, _) = send(&app, Method::POST, "/users/nobody/disable", &key, None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_user_unassigns_their_tokens_and_ends_their_assignments() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let alice = create_user(&app, &key, json!({ "login": "alice" })).await;
    let bob = create_user(&app, &key, json!({ "login": "bob" })).await;
    let alice_id = alice["id"].as_i64().expect("id");
    create_resource(&app, &key, "vpn").await;
    let token = insert_token(&app, "A-1", Some(alice_id));
    let bobs_token = insert_token(&app, "B-1", bob["id"].as_i64());
    for serial in ["A-1", "B-1"] {
        let (status, _) = send(
            &app,
            Method::POST,
            "/resources/vpn/tokens",
            &key,
            Some(json!({ "token": serial })),
        )
        .await;
        assert_eq!(status, 204);
    }
    {
        let conn = database(&app);
        conn.execute(
            "INSERT INTO sessions (id_hash, kind, user_id, csrf_token, created_at, last_seen_at, expires_at)
             VALUES (x'01', 'portal', ?1, 'c', 1, 1, 9999999999)",
            [alice_id],
        )
        .expect("session");
        conn.execute(
            "INSERT INTO challenges (transaction_id, token_id, code_hash, expires_at, created_at)
             VALUES ('t', ?1, x'00', 9999999999, 1)",
            [token],
        )
        .expect("challenge");
    }

    let (status, body) = send(&app, Method::DELETE, "/users/alice", &key, None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        send(&app, Method::GET, "/users/alice", &key, None).await.0,
        404
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM tokens WHERE id = {token} AND user_id IS NULL")
        ),
        1,
        "the token stays, without a user"
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM token_resources WHERE token_id = {token}")
        ),
        0
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM user_resources WHERE user_id = {alice_id}")
        ),
        0
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sessions"), 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM challenges"), 0);
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM token_resources WHERE token_id = {bobs_token}")
        ),
        1,
        "other users keep their assignments"
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'user.delete' AND user_id = {alice_id}"
            )
        ),
        1
    );
    assert_eq!(
        send(&app, Method::DELETE, "/users/alice", &key, None)
            .await
            .0,
        404
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users"), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_integrators_changes_to_a_user_send_a_notice_to_the_address_it_had_before() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let sink = SmtpSink::start(Mode::Plain).await;
    let settings = mail_settings(sink.port, "none", None);
    let (status, body) = send(&app, Method::PUT, "/settings/mail", &key, Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    let user = create_user(
        &app,
        &key,
        json!({ "login": "bob", "email": "bob@example.com", "phone": "+44 20 7946 0958" }),
    )
    .await;

    let (status, body) = send(
        &app,
        Method::PATCH,
        "/users/bob",
        &key,
        Some(json!({ "phone": "+44 20 7946 0000" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mail = sink.wait_for(1, NOTICE_WAIT).await;
    assert_eq!(mail[0].to, vec!["bob@example.com".to_string()]);
    assert!(
        mail[0]
            .data
            .contains("The phone number of your account was changed"),
        "{}",
        mail[0].data
    );
    assert!(mail[0].data.contains("on the API"));

    let user_id = user["id"].as_i64().expect("an id");
    insert_token(&app, "TOTP-BOB", Some(user_id));
    let (status, body) = send(&app, Method::DELETE, "/tokens/TOTP-BOB/user", &key, None).await;
    assert_eq!(status, 200, "{body}");
    let mail = sink.wait_for(2, NOTICE_WAIT).await;
    assert_eq!(mail[1].to, vec!["bob@example.com".to_string()]);
    assert!(
        mail[1]
            .data
            .contains("The TOTP token \"TOTP-BOB\" was removed from your account"),
        "{}",
        mail[1].data
    );
}

#[tokio::test]
async fn a_token_made_for_a_user_tells_them_unless_it_waits_for_its_first_code() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let sink = SmtpSink::start(Mode::Plain).await;
    let settings = mail_settings(sink.port, "none", None);
    let (status, body) = send(&app, Method::PUT, "/settings/mail", &key, Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    create_user(
        &app,
        &key,
        json!({ "login": "cy", "email": "cy@example.com" }),
    )
    .await;

    // A token made for no one tells no one; an app's token waiting for its first code tells
    // nothing yet (its confirmation will). The outbox sends in order: had either told, its
    // notice would come first.
    let (status, body) = send(
        &app,
        Method::POST,
        "/tokens",
        &key,
        Some(json!({ "kind": "HOTP", "name": "Spare" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        "/tokens/enrol",
        &key,
        Some(json!({ "kind": "TOTP", "user": "cy" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        "/tokens",
        &key,
        Some(json!({ "kind": "HOTP", "name": "Desk key", "user": "cy" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mail = sink.wait_for(1, NOTICE_WAIT).await;
    assert_eq!(mail.len(), 1, "one notice, for the token made for her");
    assert_eq!(mail[0].to, vec!["cy@example.com".to_string()]);
    assert!(
        mail[0]
            .data
            .contains("The HOTP token \"Desk key\" was added to your account"),
        "{}",
        mail[0].data
    );
}
