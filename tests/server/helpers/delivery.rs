//! What the delivery tests share: provisioning users with MAIL and SMS tokens, API keys, and
//! calls to the API of an in-process server or of the real binary.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::TestApp;
use crate::helpers::process::otpgate_command;

/// Provisions, through the management API of the server at `address`, users with one
/// delivered token each, assigned to `resource` (created when missing). Returns the token ids
/// in order.
pub async fn provision(
    address: &str,
    data_dir: &Path,
    resource: &str,
    people: &[(&str, &str, &str)],
) -> Vec<i64> {
    let api = Api {
        client: crate::helpers::app::client_for(data_dir),
        address: address.to_string(),
    };
    let admin = api_key(data_dir, &["--admin"]);
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/resources/{resource}"),
            &admin,
            Value::Null,
        )
        .await;
    if status == 404 {
        let (status, body) = api
            .call(
                Method::POST,
                "/resources",
                &admin,
                json!({"name": resource}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut tokens = Vec::new();
    for (login, kind, destination) in people {
        // No email address of the user's own: the notice of a new token goes there, and would be
        // one more message in the tests' mail sinks. The token carries its destination.
        let user = json!({
            "login": login,
            "phone": (*kind == "SMS").then_some(destination),
        });
        let (status, body) = api.call(Method::POST, "/users", &admin, user).await;
        assert_eq!(status, 201, "{body}");
        let token = json!({
            "kind": kind,
            "serial": format!("{kind}-{login}"),
            "name": format!("{login}'s {kind}"),
            "user": login,
            "resource": resource,
            "destination": destination,
        });
        let (status, body) = api.call(Method::POST, "/tokens", &admin, token).await;
        assert_eq!(status, 201, "{body}");
        tokens.push(body["id"].as_i64().expect("token id"));
    }
    tokens
}

/// Creates an API key with the console command: `--admin`, or `--resource NAME`.
pub fn api_key(data_dir: &Path, scope: &[&str]) -> String {
    let output = otpgate_command(data_dir)
        .args(["apikey", "create", "--name", "delivery-test"])
        .args(scope)
        .output()
        .expect("run apikey create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The API of one server, in-process or a child process.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub address: String,
}

impl Api {
    pub fn of(app: &TestApp) -> Api {
        Api {
            client: app.client.clone(),
            address: app.address.clone(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, key: &str, body: Value) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.clone(), format!("{}/api/v1{path}", self.address))
            .bearer_auth(key);
        if method != Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.expect("answer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn prepare(&self, key: &str, user: &str) -> Value {
        let (status, body) = self
            .call(Method::POST, "/auth/prepare", key, json!({"user": user}))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn authenticate(
        &self,
        key: &str,
        user: &str,
        code: &str,
        transaction: &Value,
    ) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/auth/authenticate",
                key,
                json!({"user": user, "otp": code, "transaction": transaction}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The deliveries matching `query`, polled until `done` holds for them (or `limit` passes).
    pub async fn deliveries_until(
        &self,
        key: &str,
        query: &str,
        limit: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let (status, body) = self
                .call(
                    Method::GET,
                    &format!("/deliveries{query}"),
                    key,
                    Value::Null,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let list = body["deliveries"].as_array().cloned().unwrap_or_default();
            if done(&list) || Instant::now() > deadline {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// The metrics once they hold every line of `lines`, or as they are after `wait`. The
    /// outbox counts a delivery a moment after the store records it, so a list that shows it
    /// may come before the count does.
    pub async fn metrics_with(&self, lines: &[&str], wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let metrics = self.metrics().await;
            if lines.iter().all(|line| metrics.contains(line)) || Instant::now() > deadline {
                return metrics;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Mail settings for a sink on loopback.
pub fn mail_settings(port: u16, security: &str, ca_file: Option<&Path>) -> Value {
    let mut settings = json!({
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "username": "otpgate",
        "password": "smtp password",
        "from_address": "otp@example.com",
        "from_name": "OTP Gate",
        "timeout_seconds": 5,
    });
    if let Some(file) = ca_file {
        settings["tls_ca_file"] = json!(file.to_str().expect("utf-8"));
    }
    // The sink on loopback speaks plain SMTP: the login crossing it in clear is allowed, as
    // otpgate requires, explicitly.
    if security == "none" {
        settings["allow_plaintext_credentials"] = json!(true);
    }
    settings
}

/// The audit actions recorded for a token, oldest first (read from the database file).
pub fn audit_actions(data_dir: &Path, token_id: i64) -> Vec<(String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(data_dir.join(otpgate::store::DATABASE_FILE))
        .expect("open the database");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    let mut statement = conn
        .prepare("SELECT action, result, detail FROM audit_log WHERE token_id = ?1 ORDER BY id")
        .expect("prepare");
    statement
        .query_map([token_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}
