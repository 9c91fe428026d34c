//! The API's JSON bodies, sent over HTTPS to a real server (the application in this process, on
//! port 0): edits of a valid body for each endpoint that takes one, and raw bytes. Whatever the
//! body, the server answers, and never with a 5xx: every path from the extractor through the
//! shared rules to the store runs as in production.
//!
//! Left out, on purpose: `PUT /settings/bot` (it restarts a poller against the URL in the body)
//! and the `…/test` endpoints (they send a message to the address in the body): both would make
//! the fuzzer talk to arbitrary hosts. The mail and SMS settings are fuzzed on a server of their
//! own that holds no token, so no message is ever sent with what they store.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_app};
use crate::mutate::{JsonEdit, apply_json, json_edit};
use crate::run::fuzz;

const PSKC_PRESHARED: &str = include_str!("../fixtures/import/rfc6030-preshared-key.pskcxml");
const PSKC_PASSWORD: &str = include_str!("../fixtures/import/rfc6030-password.pskcxml");

#[derive(Debug, Clone)]
enum Body {
    Edited(usize, Vec<JsonEdit>),
    Raw(usize, Vec<u8>),
}

fn body(endpoints: usize) -> impl Strategy<Value = Body> {
    prop_oneof![
        1 => (0..endpoints).prop_map(|endpoint| Body::Edited(endpoint, Vec::new())),
        8 => (0..endpoints, proptest::collection::vec(json_edit(), 1..5))
            .prop_map(|(endpoint, edits)| Body::Edited(endpoint, edits)),
        2 => (0..endpoints, proptest::collection::vec(any::<u8>(), 0..512))
            .prop_map(|(endpoint, bytes)| Body::Raw(endpoint, bytes)),
    ]
}

/// Sends one body; an error when the server did not answer or answered a 5xx.
async fn send(
    app: &TestApp,
    key: &str,
    method: &Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let response = app
        .api(method.clone(), path, key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|error| format!("no answer: {error}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|error| format!("no whole answer: {error}"))?;
    if status.is_server_error() {
        return Err(format!("{status}: {text}"));
    }
    Ok(())
}

/// Fuzzes `endpoints` on `app` with the admin `key`, then checks the server is still well.
fn fuzz_endpoints(
    name: &str,
    runtime: &tokio::runtime::Runtime,
    app: &TestApp,
    key: &str,
    endpoints: &[(Method, &str, Value)],
) {
    fuzz(name, body(endpoints.len()), |input| {
        let (endpoint, bytes) = match input {
            Body::Edited(endpoint, edits) => {
                let document = apply_json(&endpoints[endpoint].2, &edits);
                (endpoint, serde_json::to_vec(&document).unwrap_or_default())
            }
            Body::Raw(endpoint, bytes) => (endpoint, bytes),
        };
        let (method, path, _) = &endpoints[endpoint];
        runtime
            .block_on(send(app, key, method, path, bytes))
            .map_err(|problem| TestCaseError::fail(format!("{method} {path}: {problem}")))
    });
    let health = runtime.block_on(app.get("/healthz"));
    assert_eq!(health.status(), 200, "the server is well after the fuzzing");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Creates what the sample bodies name: the resource `vpn`, users `alice` and `bob`, hardware
/// tokens `HW-1` (alice's, in `vpn`) and `HW-2`.
async fn provision(app: &TestApp, key: &str) {
    let setup = [
        ("/resources", json!({"name": "vpn"})),
        (
            "/users",
            json!({"login": "alice", "password": "correct horse battery"}),
        ),
        ("/users", json!({"login": "bob"})),
        ("/resources/vpn/users", json!({"user": "alice"})),
        (
            "/tokens",
            json!({"kind": "HOTP", "serial": "HW-1", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                   "user": "alice", "resource": "vpn"}),
        ),
        (
            "/tokens",
            json!({"kind": "TOTP", "serial": "HW-2", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}),
        ),
    ];
    for (path, body) in setup {
        let response = app.api(Method::POST, path, key).json(&body).send().await;
        let status = response.expect("answered").status();
        assert!(status.is_success(), "{path} {body}: {status}");
    }
}

#[test]
fn api_bodies_never_get_a_server_error() {
    let endpoints: Vec<(Method, &str, Value)> = vec![
        (
            Method::POST,
            "/auth/authenticate",
            json!({"resource": "vpn", "user": "alice", "otp": "123456", "ip": "198.51.100.7"}),
        ),
        (
            Method::POST,
            "/auth/authenticate",
            json!({"resource": "vpn", "user": "alice", "password": "correct horse battery"}),
        ),
        (
            Method::POST,
            "/auth/authenticate",
            json!({"resource": 1, "token": "HW-1", "otp": "123456", "transaction": "4f0c"}),
        ),
        (
            Method::POST,
            "/auth/prepare",
            json!({"resource": "vpn", "user": "alice", "ip": "198.51.100.7"}),
        ),
        (
            Method::POST,
            "/users",
            json!({"login": "carol", "first_name": "Carol", "last_name": "Clark", "email": "carol@example.com",
                "phone": "+4915112345678", "password": "a long password 1", "enabled": true}),
        ),
        (
            Method::PATCH,
            "/users/alice",
            json!({"first_name": "Alice", "email": null, "phone": "+4915112345679", "enabled": true}),
        ),
        (
            Method::PUT,
            "/users/bob/password",
            json!({"password": "another long password"}),
        ),
        (
            Method::POST,
            "/resources",
            json!({"name": "web", "description": "the intranet", "fail_limit": 5, "password_required": false,
                "auto_unlock_seconds": 300, "without_second_factor": "refuse"}),
        ),
        (
            Method::PATCH,
            "/resources/vpn",
            json!({"description": "x", "fail_limit": 6, "auto_unlock_seconds": null,
                "without_second_factor": "password_only"}),
        ),
        (Method::POST, "/resources/vpn/users", json!({"user": "bob"})),
        (
            Method::POST,
            "/resources/vpn/tokens",
            json!({"token": "HW-2"}),
        ),
        (
            Method::POST,
            "/tokens",
            json!({"kind": "TOTP", "name": "app", "user": "bob", "resource": "vpn", "algorithm": "SHA256",
                "digits": 8, "period": 60, "pin": "4711", "pin_position": "after"}),
        ),
        (
            Method::POST,
            "/tokens",
            json!({"kind": "HOTP", "serial": "HW-9", "secret": "3132333435363738393031323334353637383930",
                "secret_format": "hex", "counter": 5, "user": "alice"}),
        ),
        (
            Method::POST,
            "/tokens",
            json!({"kind": "MAIL", "destination": "alice@example.com", "user": "alice"}),
        ),
        (
            Method::POST,
            "/tokens",
            json!({"kind": "SMS", "destination": "+4915112345678", "user": "bob"}),
        ),
        (
            Method::POST,
            "/tokens",
            json!({"kind": "BOT", "messenger": "telegram", "user": "bob"}),
        ),
        (
            Method::PATCH,
            "/tokens/HW-1",
            json!({"name": "key fob", "digits": 8, "pin": "1234", "pin_position": "before", "enabled": true}),
        ),
        (
            Method::POST,
            "/tokens/HW-1/resync",
            json!({"otp1": "123456", "otp2": "654321"}),
        ),
        (Method::PUT, "/tokens/HW-2/user", json!({"user": "bob"})),
        (
            Method::POST,
            "/tokens/import",
            json!({"format": "csv", "data": "TK-1,3132333435363738393031323334353637383930\nTK-2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,hotp,8,3\n"}),
        ),
        (
            Method::POST,
            "/tokens/import",
            json!({"format": "pskc", "data": PSKC_PRESHARED, "preshared_key": "12345678901234567890123456789012"}),
        ),
        (
            Method::POST,
            "/tokens/import",
            json!({"format": "pskc", "data": PSKC_PASSWORD, "password": "qwerty"}),
        ),
        (
            Method::POST,
            "/api-keys",
            json!({"name": "gateway", "resource": "vpn"}),
        ),
        (
            Method::POST,
            "/tokens/enrol",
            json!({"kind": "TOTP", "user": "alice", "resource": "vpn"}),
        ),
        (
            Method::POST,
            "/radius/clients",
            json!({"name": "fw1", "address": "192.0.2.0/24", "secret": "a long shared secret",
                "resource": "vpn", "input_mode": "password_code", "separator": ","}),
        ),
        (
            Method::PUT,
            "/resources/vpn/radius-attributes",
            json!({"attributes": [{"name": "Fortinet-Group-Name", "value": "vpn-users"},
                {"name": "Session-Timeout", "value": "3600"},
                {"name": "Cisco-AVPair", "value": "shell:priv-lvl=15"}]}),
        ),
    ];
    let runtime = runtime();
    let app = runtime.block_on(spawn_app());
    let key = app.api_key(&["--admin"]);
    runtime.block_on(provision(&app, &key));
    fuzz_endpoints("api_bodies", &runtime, &app, &key, &endpoints);
    runtime.block_on(app.stop());
}

#[test]
fn settings_bodies_never_get_a_server_error() {
    let endpoints: Vec<(Method, &str, Value)> = vec![
        (
            Method::PUT,
            "/settings/mail",
            json!({"host": "127.0.0.1", "port": 2525, "security": "starttls", "username": "otp",
                "password": "secret", "from_address": "otp@example.com", "from_name": "OTP",
                "timeout_seconds": 10}),
        ),
        (
            Method::PUT,
            "/settings/sms",
            json!({"method": "POST", "url": "https://127.0.0.1:9/sms?to={phone}", "headers": {"X-Key": "k"},
                "body_format": "json", "body": "{\"to\":\"{phone}\",\"text\":\"{message}\"}",
                "auth": "basic", "username": "u", "secret": "s", "success_status": "200",
                "success_body": "ok", "timeout_seconds": 10}),
        ),
        (
            Method::PUT,
            "/settings/general",
            json!({"public_url": "https://otp.example.lan", "default_otp_length": 6,
                "challenge_validity_seconds": 300, "pin_min_length": 4, "pin_max_length": 8,
                "pin_digits_only": true, "portal_idle_minutes": 15}),
        ),
    ];
    let runtime = runtime();
    let app = runtime.block_on(spawn_app());
    let key = app.api_key(&["--admin"]);
    fuzz_endpoints("settings_bodies", &runtime, &app, &key, &endpoints);
    runtime.block_on(app.stop());
}
