//! Authentication through the API as an application does it: a resource with its key, users
//! with tokens made through the management API, and the codes otpgate queued for them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::TestApp;
use crate::helpers::otp::unix_now;

/// RFC 6238's SHA-1 seed, as base32.
pub const SEED_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
pub const SEED: &[u8] = b"12345678901234567890";

pub struct Fixture {
    pub admin: String,
    pub app_key: String,
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Value,
) -> (u16, Value) {
    json_of(
        app.api(method, path, key)
            .json(&body)
            .send()
            .await
            .expect("answer"),
    )
    .await
}

/// A resource "vpn" with a resource key, and an admin key.
pub async fn fixture(app: &TestApp, fail_limit: i64) -> Fixture {
    let admin = app.api_key(&["--admin"]);
    let (status, body) = call(
        app,
        Method::POST,
        "/resources",
        &admin,
        json!({"name": "vpn", "fail_limit": fail_limit}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let app_key = app.api_key(&["--resource", "vpn"]);
    // Codes are queued only for channels that are set up; the servers named here never answer,
    // and the tests read the queued codes from the outbox.
    for (path, settings) in [
        (
            "/settings/mail",
            json!({"host": "127.0.0.1", "port": 9, "security": "none", "from_address": "otp@example.lan"}),
        ),
        (
            "/settings/sms",
            json!({"url": "http://127.0.0.1:9/send?to={phone}&text={message}", "method": "GET"}),
        ),
    ] {
        let (status, body) = call(app, Method::PUT, path, &admin, settings).await;
        assert_eq!(status, 200, "{body}");
    }
    Fixture { admin, app_key }
}

/// A user assigned to "vpn" with one token made from `token` (a JSON body for POST /tokens).
pub async fn user_with_token(app: &TestApp, fx: &Fixture, login: &str, token: Value) -> i64 {
    let (status, body) = call(app, Method::POST, "/users", &fx.admin, json!({"login": login, "email": format!("{login}@example.com"), "password": "user password 1"})).await;
    assert_eq!(status, 201, "{body}");
    let mut token = token;
    token["user"] = json!(login);
    token["resource"] = json!("vpn");
    let (status, body) = call(app, Method::POST, "/tokens", &fx.admin, token).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("token id")
}

pub fn totp(offset: i64) -> String {
    otpgate::otp::hotp(
        SEED,
        otpgate::otp::Algorithm::Sha1,
        6,
        ((unix_now() / 30) as i64 + offset) as u64,
    )
}

pub async fn authenticate(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    call(app, Method::POST, "/auth/authenticate", key, body).await
}

/// The newest queued message of a token, unsealed with the server's key as the delivery
/// worker will.
pub fn queued_code(app: &TestApp, token_id: i64) -> String {
    let keys = otpgate::crypto::Keys::load_or_create(&app.data_dir.join("secret.key"), false)
        .expect("keys");
    let conn = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    let sealed: Vec<u8> = conn
        .query_row(
            "SELECT body FROM outbox WHERE token_id = ?1 ORDER BY id DESC LIMIT 1",
            [token_id],
            |row| row.get(0),
        )
        .expect("a queued message");
    let body = String::from_utf8(
        keys.open(otpgate::crypto::Purpose::Message, &sealed)
            .expect("unseal"),
    )
    .expect("utf-8");
    body.split_whitespace()
        .next()
        .expect("the code comes first")
        .to_string()
}
