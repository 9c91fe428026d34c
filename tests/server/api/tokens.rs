//! The token endpoints of the management API: tokens of each kind created, their codes checked
//! against an independent HOTP, listed, changed, resynchronized, assigned and deleted.

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::otp::unix_now;

/// The seed of the RFC 6238 SHA-1 test vectors, "12345678901234567890".
const RFC6238_SECRET: &[u8] = b"12345678901234567890";
const RFC6238_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// An HOTP code computed here with the `hmac` and `sha1` crates directly, so that the server's
/// OTP core is checked against an implementation that shares none of its code.
fn independent_hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let number = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    let code = number % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The database, opened beside the server to inspect what it stored.
fn database(app: &TestApp) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open db");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("timeout");
    conn
}

/// Creates a user through the API and returns its id.
pub async fn insert_user(
    app: &TestApp,
    key: &str,
    login: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> i64 {
    let (status, user) = send(
        app,
        key,
        Method::POST,
        "/users",
        Some(json!({"login": login, "email": email, "phone": phone})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_i64().expect("user id")
}

/// Creates a resource through the API and returns its id.
pub async fn insert_resource(app: &TestApp, key: &str, name: &str) -> i64 {
    let (status, resource) = send(
        app,
        key,
        Method::POST,
        "/resources",
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{resource}");
    resource["id"].as_i64().expect("resource id")
}

/// One column of one token row, read straight from the database.
fn column(app: &TestApp, id: i64, column: &str) -> rusqlite::types::Value {
    database(app)
        .query_row(
            &format!("SELECT {column} FROM tokens WHERE id = ?1"),
            [id],
            |row| row.get(0),
        )
        .expect("token row")
}

fn audit_actions(app: &TestApp) -> Vec<String> {
    let conn = database(app);
    let mut statement = conn
        .prepare("SELECT action FROM audit_log ORDER BY id")
        .expect("prepare");
    statement
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows")
}

fn audit_text(app: &TestApp) -> String {
    let conn = database(app);
    let mut statement = conn
        .prepare("SELECT actor || ' ' || action || ' ' || IFNULL(detail, '') || ' ' || IFNULL(reason, '') FROM audit_log")
        .expect("prepare");
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
        .join("\n")
}

async fn send(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let request = app.api(method, path, key);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
    };
    (status, value)
}

async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, token) = send(app, key, Method::POST, "/tokens", Some(body.clone())).await;
    assert_eq!(status, 201, "{body} → {token}");
    token
}

async fn total(app: &TestApp, key: &str) -> i64 {
    let (status, list) = send(app, key, Method::GET, "/tokens", None).await;
    assert_eq!(status, 200);
    list["total"].as_i64().expect("total")
}

fn assert_field(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}

#[tokio::test]
async fn token_endpoints_need_an_admin_key() {
    let app = spawn_app().await;
    let admin_key = app.api_key(&["--admin"]);
    insert_resource(&app, &admin_key, "vpn").await;
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let token = create(&app, &admin_key, json!({"kind": "TOTP"})).await;
    let id = token["id"].as_i64().expect("id");
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/tokens".into(),
            Some(json!({"kind": "TOTP"})),
        ),
        (Method::GET, "/tokens".into(), None),
        (Method::GET, format!("/tokens/{id}"), None),
        (
            Method::PATCH,
            format!("/tokens/{id}"),
            Some(json!({"name": "x"})),
        ),
        (Method::POST, format!("/tokens/{id}/disable"), None),
        (Method::POST, format!("/tokens/{id}/enable"), None),
        (Method::POST, format!("/tokens/{id}/reset"), None),
        (
            Method::POST,
            format!("/tokens/{id}/resync"),
            Some(json!({"otp1": "123456", "otp2": "234567"})),
        ),
        (
            Method::PUT,
            format!("/tokens/{id}/user"),
            Some(json!({"user": 1})),
        ),
        (Method::DELETE, format!("/tokens/{id}/user"), None),
        (Method::DELETE, format!("/tokens/{id}"), None),
        (
            Method::POST,
            "/tokens/import".into(),
            Some(json!({"format": "csv", "data": "TK-1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"})),
        ),
    ];
    for (method, path, body) in calls {
        let mut anonymous = app
            .client
            .request(method.clone(), app.url(&format!("/api/v1{path}")));
        if let Some(body) = &body {
            anonymous = anonymous.json(body);
        }
        let response = anonymous.send().await.expect("answered");
        assert_eq!(response.status(), 401, "{method} {path} without a key");
        let (status, answer) = send(&app, &resource_key, method.clone(), &path, body).await;
        assert_eq!(status, 403, "{method} {path} with a resource key: {answer}");
    }
    assert_eq!(total(&app, &admin_key).await, 1, "nothing changed");
    let (_, token) = send(
        &app,
        &admin_key,
        Method::GET,
        &format!("/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(token["name"], "");
    assert_eq!(token["enabled"], true);
    app.stop().await;
}

#[tokio::test]
async fn a_totp_token_made_from_a_known_secret_gives_the_codes_computed_independently() {
    // The independent implementation agrees with RFC 6238's vector for T = 59 (8 digits).
    assert_eq!(independent_hotp(RFC6238_SECRET, 59 / 30, 8), "94287082");
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let token = create(
        &app,
        &key,
        json!({"kind": "TOTP", "secret": RFC6238_BASE32, "serial": "RFC6238", "name": "test vector"}),
    )
    .await;
    let uri = token["otpauth_uri"].as_str().expect("a URI");
    assert!(uri.starts_with("otpauth://totp/otpgate:RFC6238?"), "{uri}");
    assert!(uri.contains(&format!("secret={RFC6238_BASE32}")), "{uri}");
    assert!(uri.contains("algorithm=SHA1&digits=6&period=30"), "{uri}");
    assert_eq!(token["kind"], "TOTP");
    assert_eq!(token["state"], "active");
    assert_eq!(token["period"], 30);

    // The codes of the next two steps, computed twice independently, resynchronise the token:
    // the server holds exactly this seed.
    let step = unix_now() / 30 + 2;
    let params = otpgate::otp::Params::new(
        otpgate::otp::Algorithm::Sha1,
        6,
        otpgate::otp::Kind::Totp { period: 30 },
    )
    .expect("params");
    let otp1 = otpgate::otp::code_at(RFC6238_SECRET, &params, step);
    let otp2 = otpgate::otp::code_at(RFC6238_SECRET, &params, step + 1);
    assert_eq!(otp1, independent_hotp(RFC6238_SECRET, step, 6));
    assert_eq!(otp2, independent_hotp(RFC6238_SECRET, step + 1, 6));
    let (status, answer) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/RFC6238/resync",
        Some(json!({"otp1": otp1, "otp2": otp2})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = token["id"].as_i64().expect("id");
    assert_eq!(
        column(&app, id, "last_step"),
        rusqlite::types::Value::Integer((step + 1) as i64)
    );
    // The seed is stored sealed, never as given.
    let rusqlite::types::Value::Blob(sealed) = column(&app, id, "secret") else {
        panic!("a sealed seed");
    };
    assert!(
        !sealed
            .windows(RFC6238_SECRET.len())
            .any(|w| w == RFC6238_SECRET)
    );
    app.stop().await;
}

#[tokio::test]
async fn the_enrolment_uri_and_qr_code_are_returned_only_once() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    insert_user(&app, &key, "alice", None, None).await;
    let token = create(
        &app,
        &key,
        json!({"kind": "HOTP", "user": "alice", "algorithm": "SHA256", "digits": 8, "counter": 5}),
    )
    .await;
    let uri = token["otpauth_uri"].as_str().expect("a URI");
    assert!(uri.starts_with("otpauth://hotp/otpgate:alice?"), "{uri}");
    assert!(uri.contains("algorithm=SHA256&digits=8&counter=5"), "{uri}");
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("a secret");
    assert_eq!(
        otpgate::otp::decode_base32_secret(secret)
            .expect("base32")
            .len(),
        32,
        "a generated SHA-256 seed has 32 bytes"
    );
    let svg = token["qr_code_svg"].as_str().expect("an SVG");
    assert!(svg.contains("<svg"), "{svg}");
    let id = token["id"].as_i64().expect("id");
    // Counter 5 is the next code, so the last one used is 4.
    assert_eq!(
        column(&app, id, "last_step"),
        rusqlite::types::Value::Integer(4)
    );

    let serial = token["serial"].as_str().expect("serial").to_string();
    for path in [
        format!("/tokens/{id}"),
        format!("/tokens/{serial}"),
        "/tokens".to_string(),
        "/tokens?search=HOTP".to_string(),
    ] {
        let (status, answer) = send(&app, &key, Method::GET, &path, None).await;
        assert_eq!(status, 200);
        let text = answer.to_string();
        assert!(!text.contains(secret), "{path} shows the secret");
        assert!(!text.contains("otpauth"), "{path} shows the URI");
        assert!(!text.contains("qr_code_svg"), "{path} shows the QR code");
    }
    let (_, patched) = send(
        &app,
        &key,
        Method::PATCH,
        &format!("/tokens/{id}"),
        Some(json!({"name": "again"})),
    )
    .await;
    assert!(!patched.to_string().contains(secret));
    assert!(
        !audit_text(&app).contains(secret),
        "the audit log holds no secret"
    );
    app.stop().await;
}

#[tokio::test]
async fn generated_serials_are_the_kind_and_eight_hexadecimal_characters() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let mut serials = std::collections::HashSet::new();
    for kind in ["TOTP", "HOTP", "BOT"] {
        let token = create(&app, &key, json!({"kind": kind})).await;
        let serial = token["serial"].as_str().expect("serial").to_string();
        let rest = serial.strip_prefix(kind).expect("the kind first");
        assert_eq!(rest.len(), 8, "{serial}");
        assert!(
            rest.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{serial}"
        );
        assert!(serials.insert(serial));
    }
    let bot = create(&app, &key, json!({"kind": "BOT"})).await;
    assert_eq!(
        bot["state"], "pending",
        "a BOT token waits for its activation"
    );
    assert_eq!(bot["messenger"], "telegram");
    assert!(bot.get("otpauth_uri").is_none());
    app.stop().await;
}

#[tokio::test]
async fn mail_and_sms_tokens_take_the_users_address_unless_one_is_given() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    insert_user(
        &app,
        &key,
        "alice",
        Some("alice@example.com"),
        Some("+4915112345678"),
    )
    .await;
    insert_user(&app, &key, "nobody", None, None).await;
    let mail = create(&app, &key, json!({"kind": "MAIL", "user": "alice"})).await;
    assert_eq!(mail["destination"], "alice@example.com");
    assert_eq!(mail["state"], "active");
    assert_eq!(mail["user"]["login"], "alice");
    assert!(mail.get("otpauth_uri").is_none());
    let sms = create(&app, &key, json!({"kind": "SMS", "user": "alice"})).await;
    assert_eq!(sms["destination"], "+4915112345678");
    let given = create(
        &app,
        &key,
        json!({"kind": "SMS", "destination": "0049 (151) 1111-2222", "digits": 8}),
    )
    .await;
    assert_eq!(given["destination"], "+4915111112222");
    assert_eq!(given["digits"], 8);
    assert_eq!(given["user"], Value::Null);

    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens",
        Some(json!({"kind": "MAIL", "user": "nobody"})),
    )
    .await;
    assert_field(status, &body, "destination");
    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens",
        Some(json!({"kind": "SMS"})),
    )
    .await;
    assert_field(status, &body, "destination");
    assert_eq!(total(&app, &key).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn creating_a_token_refuses_bad_fields_by_name_and_stores_nothing() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    insert_user(&app, &key, "alice", None, None).await;
    let cases = [
        (json!({"kind": "FAX"}), "kind"),
        (json!({"kind": "TOTP", "colour": "red"}), "colour"),
        (
            json!({"kind": "MAIL", "destination": "a@example.com", "secret": RFC6238_BASE32}),
            "secret",
        ),
        (
            json!({"kind": "SMS", "destination": "+4915112345678", "algorithm": "SHA1"}),
            "algorithm",
        ),
        (json!({"kind": "HOTP", "period": 30}), "period"),
        (json!({"kind": "TOTP", "counter": 3}), "counter"),
        (
            json!({"kind": "TOTP", "destination": "a@example.com"}),
            "destination",
        ),
        (
            json!({"kind": "MAIL", "destination": "a@example.com", "messenger": "telegram"}),
            "messenger",
        ),
        (json!({"kind": "TOTP", "digits": 7}), "digits"),
        (json!({"kind": "TOTP", "period": 45}), "period"),
        (json!({"kind": "TOTP", "algorithm": "MD5"}), "algorithm"),
        (json!({"kind": "TOTP", "secret": "not base32!"}), "secret"),
        (
            json!({"kind": "TOTP", "secret": "3132", "secret_format": "hex"}),
            "secret",
        ),
        (
            json!({"kind": "TOTP", "secret_format": "hex"}),
            "secret_format",
        ),
        (
            json!({"kind": "MAIL", "destination": "not an address"}),
            "destination",
        ),
        (
            json!({"kind": "SMS", "destination": "0151 123456"}),
            "destination",
        ),
        (json!({"kind": "BOT", "messenger": "signal"}), "messenger"),
        (json!({"kind": "TOTP", "resource": "vpn"}), "resource"),
        (json!({"kind": "TOTP", "user": "ghost"}), "user"),
        (
            json!({"kind": "TOTP", "user": "alice", "resource": "nowhere"}),
            "resource",
        ),
        (json!({"kind": "TOTP", "pin": "12"}), "pin"),
        (
            json!({"kind": "TOTP", "pin_position": "middle"}),
            "pin_position",
        ),
        (json!({"kind": "TOTP", "serial": "   "}), "serial"),
        (json!({"kind": "TOTP", "name": "a\u{7}b"}), "name"),
    ];
    for (body, field) in cases {
        let (status, answer) = send(&app, &key, Method::POST, "/tokens", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["field"], field, "{body} → {answer}");
    }
    assert_eq!(total(&app, &key).await, 0, "nothing was stored");
    assert!(audit_actions(&app).iter().all(|a| a != "token.create"));

    // A hex secret is accepted when said so.
    let token = create(
        &app,
        &key,
        json!({"kind": "TOTP", "secret": "3132333435363738393031323334353637383930", "secret_format": "hex"}),
    )
    .await;
    assert!(
        token["otpauth_uri"]
            .as_str()
            .expect("uri")
            .contains(RFC6238_BASE32)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_serial_is_refused_naming_it() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create(&app, &key, json!({"kind": "TOTP", "serial": "HW-1"})).await;
    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens",
        Some(json!({"kind": "HOTP", "serial": "HW-1"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("HW-1")
    );
    assert_eq!(total(&app, &key).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_token_list_filters_and_pages() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    insert_user(&app, &key, "alice", Some("alice@example.com"), None).await;
    insert_user(&app, &key, "bob", None, None).await;
    insert_resource(&app, &key, "vpn").await;
    let a = create(
        &app,
        &key,
        json!({"kind": "TOTP", "serial": "A-1", "user": "alice", "resource": "vpn"}),
    )
    .await;
    create(
        &app,
        &key,
        json!({"kind": "MAIL", "serial": "A-2", "user": "alice"}),
    )
    .await;
    create(
        &app,
        &key,
        json!({"kind": "HOTP", "serial": "B-1", "user": "bob", "name": "desk token"}),
    )
    .await;
    create(&app, &key, json!({"kind": "BOT", "serial": "C-1"})).await;
    let disabled = create(&app, &key, json!({"kind": "TOTP", "serial": "C-2"})).await;
    let (status, _) = send(
        &app,
        &key,
        Method::POST,
        &format!("/tokens/{}/disable", disabled["id"]),
        None,
    )
    .await;
    assert_eq!(status, 200);
    database(&app)
        .execute(
            "UPDATE tokens SET locked_at = 5, fail_count = 5 WHERE serial = 'B-1'",
            [],
        )
        .expect("lock");

    let serials = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|t| t["serial"].as_str().expect("serial").to_string())
            .collect()
    };
    let expectations = [
        ("", vec!["A-1", "A-2", "B-1", "C-1", "C-2"]),
        ("?kind=totp", vec!["A-1", "C-2"]),
        ("?state=pending", vec!["C-1"]),
        ("?state=active", vec!["A-1", "A-2", "B-1", "C-2"]),
        ("?state=locked", vec!["B-1"]),
        ("?state=disabled", vec!["C-2"]),
        ("?assigned=true", vec!["A-1", "A-2", "B-1"]),
        ("?assigned=false", vec!["C-1", "C-2"]),
        ("?user=alice", vec!["A-1", "A-2"]),
        ("?resource=vpn", vec!["A-1"]),
        ("?search=desk", vec!["B-1"]),
        ("?search=bo", vec!["B-1"]),
        ("?search=C-", vec!["C-1", "C-2"]),
        ("?search=%25", vec![]),
        ("?kind=TOTP&assigned=false", vec!["C-2"]),
    ];
    for (query, expected) in expectations {
        let (status, list) = send(&app, &key, Method::GET, &format!("/tokens{query}"), None).await;
        assert_eq!(status, 200, "{query}: {list}");
        assert_eq!(serials(&list), expected, "{query}");
        assert_eq!(list["total"], expected.len(), "{query}");
    }
    let (_, page) = send(&app, &key, Method::GET, "/tokens?limit=2&offset=1", None).await;
    assert_eq!(serials(&page), vec!["A-2", "B-1"]);
    assert_eq!(page["total"], 5);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    let (_, first) = send(&app, &key, Method::GET, "/tokens", None).await;
    assert_eq!(first["limit"], 50);
    let listed_a = &first["items"][0];
    assert_eq!(listed_a["id"], a["id"]);
    assert_eq!(listed_a["user"]["login"], "alice");
    let locked = &first["items"][2];
    assert_eq!(locked["locked"], true);
    assert_eq!(locked["fail_count"], 5);

    for (query, field) in [
        ("?limit=501", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
        ("?state=asleep", "state"),
        ("?kind=FAX", "kind"),
        ("?assigned=maybe", "assigned"),
        ("?user=ghost", "user"),
        ("?resource=nowhere", "resource"),
    ] {
        let (status, body) = send(&app, &key, Method::GET, &format!("/tokens{query}"), None).await;
        assert_field(status, &body, field);
    }
    let (status, body) = send(&app, &key, Method::GET, "/tokens?colour=red", None).await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn reading_a_token_shows_its_user_and_resources() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let alice = insert_user(&app, &key, "alice", None, None).await;
    let vpn = insert_resource(&app, &key, "vpn").await;
    let token = create(
        &app,
        &key,
        json!({"kind": "TOTP", "serial": "A-1", "user": alice, "resource": vpn, "pin": "4711"}),
    )
    .await;
    assert_eq!(token["has_pin"], true);
    for path in [
        format!("/tokens/{}", token["id"]),
        "/tokens/A-1".to_string(),
    ] {
        let (status, read) = send(&app, &key, Method::GET, &path, None).await;
        assert_eq!(status, 200);
        assert_eq!(read["serial"], "A-1");
        assert_eq!(read["user"], json!({"id": alice, "login": "alice"}));
        assert_eq!(read["resources"], json!([{"id": vpn, "name": "vpn"}]));
        assert_eq!(read["algorithm"], "SHA1");
        assert_eq!(read["digits"], 6);
        assert_eq!(read["pin_position"], "before");
        assert!(read.get("secret").is_none() && read.get("pin_hash").is_none());
        assert!(!read.to_string().contains("4711"));
    }
    let (status, body) = send(&app, &key, Method::GET, "/tokens/NOPE", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn updating_a_token_changes_what_is_given_and_sets_or_removes_the_pin() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let totp = create(&app, &key, json!({"kind": "TOTP", "serial": "T-1"})).await;
    let mail = create(
        &app,
        &key,
        json!({"kind": "MAIL", "serial": "M-1", "destination": "a@example.com"}),
    )
    .await;
    assert_eq!(totp["has_pin"], false);

    let (status, changed) = send(
        &app,
        &key,
        Method::PATCH,
        "/tokens/T-1",
        Some(json!({"pin": "secret-pin", "pin_position": "after", "name": " Phone "})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["has_pin"], true);
    assert_eq!(changed["pin_position"], "after");
    assert_eq!(changed["name"], "Phone");
    let (_, changed) = send(
        &app,
        &key,
        Method::PATCH,
        "/tokens/T-1",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(changed["has_pin"], true, "an absent pin leaves it alone");
    assert_eq!(changed["enabled"], false);
    let (_, changed) = send(
        &app,
        &key,
        Method::PATCH,
        "/tokens/T-1",
        Some(json!({"pin": null})),
    )
    .await;
    assert_eq!(changed["has_pin"], false, "null removes the PIN");
    let (_, changed) = send(
        &app,
        &key,
        Method::PATCH,
        &format!("/tokens/{}", mail["id"]),
        Some(json!({"digits": 8, "destination": "b@example.com"})),
    )
    .await;
    assert_eq!(changed["digits"], 8);
    assert_eq!(changed["destination"], "b@example.com");

    let refusals = [
        ("/tokens/T-1", json!({"digits": 8}), "digits"),
        (
            "/tokens/T-1",
            json!({"destination": "a@example.com"}),
            "destination",
        ),
        ("/tokens/M-1", json!({"digits": 7}), "digits"),
        (
            "/tokens/M-1",
            json!({"destination": "+4915112345678"}),
            "destination",
        ),
        ("/tokens/M-1", json!({"pin": "1"}), "pin"),
        (
            "/tokens/M-1",
            json!({"pin_position": "inside"}),
            "pin_position",
        ),
        ("/tokens/M-1", json!({"enabled": "yes"}), "enabled"),
        ("/tokens/M-1", json!({"serial": "X"}), "serial"),
    ];
    for (path, body, field) in refusals {
        let (status, answer) = send(&app, &key, Method::PATCH, path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["field"], field, "{body} → {answer}");
    }
    let (status, _) = send(&app, &key, Method::PATCH, "/tokens/M-1", Some(json!({}))).await;
    assert_eq!(status, 400, "an empty change is refused");
    let (status, _) = send(
        &app,
        &key,
        Method::PATCH,
        "/tokens/NOPE",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, unchanged) = send(&app, &key, Method::GET, "/tokens/M-1", None).await;
    assert_eq!(unchanged["digits"], 8);
    assert_eq!(unchanged["destination"], "b@example.com");
    assert_eq!(unchanged["has_pin"], false);
    let updates = audit_actions(&app)
        .iter()
        .filter(|a| *a == "token.update")
        .count();
    assert_eq!(updates, 4);
    assert!(!audit_text(&app).contains("secret-pin"));
    app.stop().await;
}

#[tokio::test]
async fn a_token_is_enabled_disabled_and_reset() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create(&app, &key, json!({"kind": "TOTP", "serial": "T-1"})).await;
    let (status, token) = send(&app, &key, Method::POST, "/tokens/T-1/disable", None).await;
    assert_eq!(status, 200);
    assert_eq!(token["enabled"], false);
    let (_, token) = send(&app, &key, Method::POST, "/tokens/T-1/enable", None).await;
    assert_eq!(token["enabled"], true);
    database(&app)
        .execute(
            "UPDATE tokens SET locked_at = 5, fail_count = 7 WHERE serial = 'T-1'",
            [],
        )
        .expect("lock");
    let (_, locked) = send(&app, &key, Method::GET, "/tokens/T-1", None).await;
    assert_eq!(locked["locked"], true);
    let (status, token) = send(&app, &key, Method::POST, "/tokens/T-1/reset", None).await;
    assert_eq!(status, 200);
    assert_eq!(token["locked"], false);
    assert_eq!(token["fail_count"], 0);
    for action in ["enable", "disable", "reset"] {
        let (status, _) = send(
            &app,
            &key,
            Method::POST,
            &format!("/tokens/NOPE/{action}"),
            None,
        )
        .await;
        assert_eq!(status, 404);
    }
    let actions = audit_actions(&app);
    for action in [
        "token.create",
        "token.disable",
        "token.enable",
        "token.reset",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn resync_finds_an_hotp_token_500_codes_ahead() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let token = create(
        &app,
        &key,
        json!({"kind": "HOTP", "serial": "H-1", "secret": RFC6238_BASE32}),
    )
    .await;
    let id = token["id"].as_i64().expect("id");
    let (otp1, otp2) = (
        independent_hotp(RFC6238_SECRET, 500, 6),
        independent_hotp(RFC6238_SECRET, 501, 6),
    );

    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/H-1/resync",
        Some(json!({"otp1": otp2, "otp2": otp1})),
    )
    .await;
    assert_field(status, &body, "otp2");
    assert_eq!(
        body["error"]["message"],
        "the codes were not found as consecutive codes"
    );
    assert_eq!(
        column(&app, id, "last_step"),
        rusqlite::types::Value::Null,
        "a refused resync changed nothing"
    );
    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/H-1/resync",
        Some(json!({"otp1": "12ab56", "otp2": otp2})),
    )
    .await;
    assert_field(status, &body, "otp1");
    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/H-1/resync",
        Some(json!({"otp1": otp1})),
    )
    .await;
    assert_field(status, &body, "otp2");

    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/H-1/resync",
        Some(json!({"otp1": otp1, "otp2": otp2})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        column(&app, id, "last_step"),
        rusqlite::types::Value::Integer(501)
    );
    assert_eq!(
        column(&app, id, "drift"),
        rusqlite::types::Value::Integer(0)
    );
    // The same codes lie in the past now.
    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/H-1/resync",
        Some(json!({"otp1": otp1, "otp2": otp2})),
    )
    .await;
    assert_field(status, &body, "otp2");
    // Beyond the configured search (1000) nothing is found.
    let far = (
        independent_hotp(RFC6238_SECRET, 2600, 6),
        independent_hotp(RFC6238_SECRET, 2601, 6),
    );
    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/H-1/resync",
        Some(json!({"otp1": far.0, "otp2": far.1})),
    )
    .await;
    assert_field(status, &body, "otp2");
    assert_eq!(
        column(&app, id, "last_step"),
        rusqlite::types::Value::Integer(501)
    );

    create(
        &app,
        &key,
        json!({"kind": "MAIL", "serial": "M-1", "destination": "a@example.com"}),
    )
    .await;
    let (status, _) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/M-1/resync",
        Some(json!({"otp1": otp1, "otp2": otp2})),
    )
    .await;
    assert_eq!(status, 400, "only seed tokens resynchronise");
    let (status, _) = send(
        &app,
        &key,
        Method::POST,
        "/tokens/NOPE/resync",
        Some(json!({"otp1": otp1, "otp2": otp2})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        audit_actions(&app)
            .iter()
            .filter(|a| *a == "token.resync")
            .count(),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_belongs_to_at_most_one_user() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let alice = insert_user(&app, &key, "alice", None, None).await;
    insert_user(&app, &key, "bob", None, None).await;
    let vpn = insert_resource(&app, &key, "vpn").await;
    create(&app, &key, json!({"kind": "TOTP", "serial": "T-1"})).await;

    let (status, token) = send(
        &app,
        &key,
        Method::PUT,
        "/tokens/T-1/user",
        Some(json!({"user": alice})),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["user"]["login"], "alice");
    let (status, body) = send(
        &app,
        &key,
        Method::PUT,
        "/tokens/T-1/user",
        Some(json!({"user": "bob"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("unassign it first")
    );
    let (status, _) = send(
        &app,
        &key,
        Method::PUT,
        "/tokens/T-1/user",
        Some(json!({"user": "alice"})),
    )
    .await;
    assert_eq!(status, 200, "assigning the same user again is harmless");
    let (status, body) = send(
        &app,
        &key,
        Method::PUT,
        "/tokens/T-1/user",
        Some(json!({"user": "ghost"})),
    )
    .await;
    assert_field(status, &body, "user");
    let (status, body) = send(&app, &key, Method::PUT, "/tokens/T-1/user", Some(json!({}))).await;
    assert_field(status, &body, "user");
    let (status, _) = send(
        &app,
        &key,
        Method::PUT,
        "/tokens/NOPE/user",
        Some(json!({"user": "alice"})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, token) = send(&app, &key, Method::GET, "/tokens/T-1", None).await;
    assert_eq!(token["user"]["login"], "alice", "refusals changed nothing");

    // Unassigning takes the token from every resource too.
    let assigned = create(
        &app,
        &key,
        json!({"kind": "TOTP", "serial": "T-2", "user": "alice", "resource": vpn}),
    )
    .await;
    assert_eq!(assigned["user"]["id"], alice);
    let (status, token) = send(&app, &key, Method::DELETE, "/tokens/T-2/user", None).await;
    assert_eq!(status, 200);
    assert_eq!(token["user"], Value::Null);
    let (_, token) = send(&app, &key, Method::GET, "/tokens/T-2", None).await;
    assert_eq!(token["resources"], json!([]));
    let (status, _) = send(
        &app,
        &key,
        Method::PUT,
        "/tokens/T-2/user",
        Some(json!({"user": "bob"})),
    )
    .await;
    assert_eq!(status, 200, "an unassigned token may go to another user");
    let (status, _) = send(&app, &key, Method::DELETE, "/tokens/NOPE/user", None).await;
    assert_eq!(status, 404);
    let actions = audit_actions(&app);
    assert_eq!(actions.iter().filter(|a| *a == "token.assign").count(), 2);
    assert_eq!(actions.iter().filter(|a| *a == "token.unassign").count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_token_removes_it() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let token = create(&app, &key, json!({"kind": "TOTP", "serial": "T-1"})).await;
    create(&app, &key, json!({"kind": "TOTP", "serial": "T-2"})).await;
    let response = app
        .api(Method::DELETE, &format!("/tokens/{}", token["id"]), &key)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 204);
    let (status, _) = send(&app, &key, Method::GET, "/tokens/T-1", None).await;
    assert_eq!(status, 404);
    let (status, _) = send(&app, &key, Method::DELETE, "/tokens/T-1", None).await;
    assert_eq!(status, 404);
    assert_eq!(total(&app, &key).await, 1);
    assert!(audit_actions(&app).iter().any(|a| a == "token.delete"));
    app.stop().await;
}

#[tokio::test]
async fn the_token_endpoints_are_in_the_openapi_document() {
    let app = spawn_app().await;
    let document: Value = app
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    for path in [
        "/api/v1/tokens",
        "/api/v1/tokens/{token}",
        "/api/v1/tokens/{token}/resync",
        "/api/v1/tokens/{token}/user",
        "/api/v1/tokens/import",
    ] {
        assert!(document["paths"][path].is_object(), "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_mail_token_assigned_to_another_user_never_keeps_the_previous_users_address() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    insert_user(&app, &key, "alice", Some("alice@example.com"), None).await;
    insert_user(&app, &key, "bob", Some("bob@example.com"), None).await;
    insert_user(&app, &key, "nobody", None, None).await;
    let mail = create(&app, &key, json!({"kind": "MAIL", "user": "alice"})).await;
    let id = mail["id"].as_i64().expect("id");
    let path = format!("/tokens/{id}/user");
    let (status, body) = send(&app, &key, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{body}");

    // A user without an address: the admin has to give one; nothing changes meanwhile.
    let (status, body) = send(
        &app,
        &key,
        Method::PUT,
        &path,
        Some(json!({"user": "nobody"})),
    )
    .await;
    assert_field(status, &body, "destination");
    let (status, body) = send(
        &app,
        &key,
        Method::PUT,
        &path,
        Some(json!({"user": "nobody", "destination": "no address"})),
    )
    .await;
    assert_field(status, &body, "destination");
    let (_, unchanged) = send(&app, &key, Method::GET, &format!("/tokens/{id}"), None).await;
    assert_eq!(unchanged["user"], Value::Null);

    // Without a destination: the new user's own address, not alice's.
    let (status, body) = send(&app, &key, Method::PUT, &path, Some(json!({"user": "bob"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["destination"], "bob@example.com");

    // With one: that address.
    let (status, body) = send(&app, &key, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &app,
        &key,
        Method::PUT,
        &path,
        Some(json!({"user": "nobody", "destination": "desk@example.com"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["destination"], "desk@example.com");
    assert_eq!(body["user"]["login"], "nobody");
    app.stop().await;
}
