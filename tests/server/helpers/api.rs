//! Requests to the management API with an admin key, and the live database beside the server,
//! to set up what a test needs and to see what a request left behind.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::app::TestApp;

/// Opens the live database beside the running server (WAL lets both work), to set up rows no
/// endpoint under test creates, and to look at what a request left behind.
pub fn database(app: &TestApp) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open database");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    conn.execute_batch("PRAGMA foreign_keys = ON")
        .expect("foreign keys");
    conn
}

/// One number from the live database.
pub fn count(app: &TestApp, sql: &str) -> i64 {
    database(app)
        .query_row(sql, [], |row| row.get(0))
        .expect("count")
}

/// Inserts a TOTP token row directly, without the token endpoints.
pub fn insert_token(app: &TestApp, serial: &str, user_id: Option<i64>) -> i64 {
    let conn = database(app);
    conn.execute(
        "INSERT INTO tokens (serial, name, kind, user_id, created_at, updated_at)
         VALUES (?1, ?1, 'TOTP', ?2, 1, 1)",
        rusqlite::params![serial, user_id],
    )
    .expect("insert token");
    conn.last_insert_rowid()
}

/// The audit actions written so far, oldest first.
pub fn audit_actions(app: &TestApp) -> Vec<String> {
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

/// A request to the API with the bearer `key`: its status and its JSON body (`null` when empty).
pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.api(method, path, key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answered");
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, value)
}

/// Creates a user through the API and answers it.
pub async fn create_user(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, user) = send(app, Method::POST, "/users", key, Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user
}

/// Creates a resource through the API and answers it.
pub async fn create_resource(app: &TestApp, key: &str, name: &str) -> Value {
    let (status, resource) = send(
        app,
        Method::POST,
        "/resources",
        key,
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 201, "{resource}");
    resource
}

/// Asserts a 400 naming `field`.
pub fn assert_field(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}
