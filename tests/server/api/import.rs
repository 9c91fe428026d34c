//! Importing token seed files, CSV and PSKC, through the API and the console: a whole file or
//! nothing, and only with an admin key.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::process::otpgate_command;

const PRESHARED_KEY: &str = "12345678901234567890123456789012";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture")
}

async fn import(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    let response = app
        .api(Method::POST, "/tokens/import", key)
        .json(&body)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn tokens(app: &TestApp, key: &str) -> Vec<Value> {
    let response = app
        .api(Method::GET, "/tokens?limit=500", key)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.expect("JSON");
    list["items"].as_array().expect("items").clone()
}

fn by_serial<'a>(tokens: &'a [Value], serial: &str) -> &'a Value {
    tokens
        .iter()
        .find(|t| t["serial"] == serial)
        .unwrap_or_else(|| panic!("no token {serial}"))
}

fn last_step(app: &TestApp, serial: &str) -> Option<i64> {
    let conn = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    conn.query_row(
        "SELECT last_step FROM tokens WHERE serial = ?1",
        [serial],
        |row| row.get(0),
    )
    .expect("row")
}

fn audit_details(app: &TestApp, action: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    let mut statement = conn
        .prepare("SELECT actor, IFNULL(detail, '') FROM audit_log WHERE action = ?1 ORDER BY id")
        .expect("prepare");
    statement
        .query_map([action], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

#[tokio::test]
async fn a_csv_file_is_imported_whole_unassigned_and_active() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let (status, body) = import(
        &app,
        &key,
        json!({"format": "csv", "data": fixture("good.csv")}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["imported"], 5);
    assert_eq!(
        body["serials"],
        json!(["TK-0001", "TK-0002", "TK-0003", "TK-0004", "TK,0005"])
    );
    let list = tokens(&app, &key).await;
    assert_eq!(list.len(), 5);
    for token in &list {
        assert_eq!(token["user"], Value::Null);
        assert_eq!(token["state"], "active");
        assert_eq!(token["enabled"], true);
    }
    let hotp = by_serial(&list, "TK-0002");
    assert_eq!(hotp["kind"], "HOTP");
    assert_eq!(hotp["digits"], 8);
    assert_eq!(
        last_step(&app, "TK-0002"),
        Some(41),
        "counter 42 is the next code"
    );
    let sha256 = by_serial(&list, "TK-0003");
    assert_eq!(sha256["algorithm"], "SHA256");
    assert_eq!(sha256["period"], 60);
    assert_eq!(by_serial(&list, "TK-0004")["algorithm"], "SHA512");
    assert_eq!(last_step(&app, "TK-0001"), None);

    // The seeds are sealed: the raw test seed appears nowhere in the database file's rows.
    let conn = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    let plain: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM tokens WHERE instr(secret, CAST('12345678901234567890' AS BLOB)) > 0",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(plain, 0);
    assert_eq!(
        audit_details(&app, "token.import"),
        vec![(
            format!("apikey:{}", api_key_id(&app)),
            "count 5".to_string()
        )]
    );
    app.stop().await;
}

fn api_key_id(app: &TestApp) -> i64 {
    let conn = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    conn.query_row("SELECT MAX(id) FROM api_keys", [], |row| row.get(0))
        .expect("key id")
}

#[tokio::test]
async fn pskc_files_are_imported_plain_with_a_preshared_key_and_with_a_password() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let cases = [
        json!({"format": "pskc", "data": fixture("rfc6030-figure3-plain.pskcxml")}),
        json!({"format": "pskc", "data": fixture("rfc6030-preshared-key.pskcxml"), "preshared_key": PRESHARED_KEY}),
        json!({"format": "pskc", "data": fixture("rfc6030-password.pskcxml"), "password": "qwerty"}),
    ];
    // The three RFC examples share one serial, so each is removed before the next.
    for body in cases {
        let (status, answer) = import(&app, &key, body).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["serials"], json!(["987654321"]));
        let list = tokens(&app, &key).await;
        let token = by_serial(&list, "987654321");
        assert_eq!(token["kind"], "HOTP");
        assert_eq!(token["digits"], 8);
        let response = app
            .api(Method::DELETE, "/tokens/serial:987654321", &key)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 204);
    }
    let (status, answer) = import(
        &app,
        &key,
        json!({"format": "pskc", "data": fixture("totp.pskcxml")}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["imported"], 2);
    let list = tokens(&app, &key).await;
    let first = by_serial(&list, "TOTP-0001");
    assert_eq!(first["kind"], "TOTP");
    assert_eq!(first["algorithm"], "SHA256");
    assert_eq!(first["period"], 60);
    app.stop().await;
}

#[tokio::test]
async fn a_broken_file_imports_nothing() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let bad_data = [
        json!({"format": "csv", "data": fixture("bad-secret-line3.csv")}),
        json!({"format": "pskc", "data": fixture("rfc6030-preshared-key.pskcxml"), "preshared_key": "00112233445566778899aabbccddeeff"}),
        json!({"format": "pskc", "data": fixture("rfc6030-password.pskcxml"), "password": "wrong"}),
        json!({"format": "pskc", "data": fixture("rfc6030-preshared-key.pskcxml")}),
        json!({"format": "pskc", "data": fixture("bad-mac.pskcxml"), "preshared_key": PRESHARED_KEY}),
        json!({"format": "pskc", "data": fixture("bad-missing-secret.pskcxml")}),
        json!({"format": "pskc", "data": fixture("bad-not-xml.pskcxml")}),
        json!({"format": "pskc", "data": fixture("bad-algorithm.pskcxml")}),
        json!({"format": "csv", "data": "# only a comment\n"}),
    ];
    for body in bad_data {
        let (status, answer) = import(&app, &key, body.clone()).await;
        assert_eq!(
            status,
            400,
            "{} → {answer}",
            body["data"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .nth(1)
                .unwrap_or_default()
        );
        assert_eq!(answer["error"]["field"], "data", "{answer}");
    }
    let (_, answer) = import(
        &app,
        &key,
        json!({"format": "csv", "data": fixture("bad-secret-line3.csv")}),
    )
    .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("line 3"),
        "{answer}"
    );
    let (_, answer) = import(&app, &key, json!({"format": "pskc", "data": fixture("rfc6030-preshared-key.pskcxml"), "preshared_key": "00112233445566778899aabbccddeeff"})).await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("wrong key"),
        "{answer}"
    );

    let bad_fields = [
        (
            json!({"format": "pskc", "data": fixture("rfc6030-preshared-key.pskcxml"), "preshared_key": "not hex"}),
            "preshared_key",
        ),
        (
            json!({"format": "pskc", "data": fixture("rfc6030-password.pskcxml"), "preshared_key": PRESHARED_KEY, "password": "qwerty"}),
            "password",
        ),
        (
            json!({"format": "csv", "data": fixture("good.csv"), "password": "qwerty"}),
            "password",
        ),
        (
            json!({"format": "csv", "data": fixture("good.csv"), "preshared_key": PRESHARED_KEY}),
            "preshared_key",
        ),
        (
            json!({"format": "xls", "data": fixture("good.csv")}),
            "format",
        ),
        (json!({"format": "csv"}), "data"),
    ];
    for (body, field) in bad_fields {
        let (status, answer) = import(&app, &key, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }

    let (status, answer) = import(
        &app,
        &key,
        json!({"format": "csv", "data": fixture("duplicate-serial.csv")}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("TK-1"),
        "{answer}"
    );
    assert!(tokens(&app, &key).await.is_empty(), "nothing was imported");
    assert!(audit_details(&app, "token.import").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_serial_already_stored_refuses_the_whole_file() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let response = app
        .api(Method::POST, "/tokens", &key)
        .json(&json!({"kind": "TOTP", "serial": "TK-0003"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 201);
    let (status, answer) = import(
        &app,
        &key,
        json!({"format": "csv", "data": fixture("good.csv")}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.contains("TK-0003"), "{message}");
    assert!(!message.contains("TK-0001"), "{message}");
    let list = tokens(&app, &key).await;
    assert_eq!(list.len(), 1, "nothing was imported");
    app.stop().await;
}

#[tokio::test]
async fn importing_needs_an_admin_key() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/tokens/import"))
        .json(&json!({"format": "csv", "data": fixture("good.csv")}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 401);
    let conn = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    conn.execute(
        "INSERT INTO resources (name, created_at, updated_at) VALUES ('vpn', 1, 1)",
        [],
    )
    .expect("resource");
    let resource_key = app.api_key(&["--resource", "vpn"]);
    let (status, _) = import(
        &app,
        &resource_key,
        json!({"format": "csv", "data": fixture("good.csv")}),
    )
    .await;
    assert_eq!(status, 403);
    let key = app.api_key(&["--admin"]);
    assert!(tokens(&app, &key).await.is_empty());
    app.stop().await;
}

fn console_import(app: &TestApp, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = otpgate_command(&app.data_dir)
        .args(["tokens", "import"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write");
        }
    }
    let output = child.wait_with_output().expect("finish");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test]
async fn the_console_imports_a_seed_file_all_or_nothing() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let good = fixture_path("good.csv");
    let (ok, stdout, stderr) = console_import(&app, &[good.to_str().expect("path")], None);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "imported 5 tokens");
    assert_eq!(tokens(&app, &key).await.len(), 5);
    assert_eq!(
        audit_details(&app, "token.import"),
        vec![("console".to_string(), "count 5".to_string())]
    );

    let (ok, _, stderr) = console_import(&app, &[good.to_str().expect("path")], None);
    assert!(!ok);
    assert!(
        stderr.contains("TK-0001") && stderr.contains("exist already"),
        "{stderr}"
    );
    let bad = fixture_path("bad-secret-line3.csv");
    let (ok, _, stderr) = console_import(&app, &[bad.to_str().expect("path")], None);
    assert!(!ok);
    assert!(stderr.contains("line 3"), "{stderr}");

    let preshared = fixture_path("rfc6030-preshared-key.pskcxml");
    let (ok, _, stderr) = console_import(&app, &[preshared.to_str().expect("path")], None);
    assert!(!ok, "an encrypted file needs its key");
    assert!(!stderr.is_empty());
    let (ok, stdout, stderr) = console_import(
        &app,
        &[
            preshared.to_str().expect("path"),
            "--preshared-key",
            PRESHARED_KEY,
        ],
        None,
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "imported 1 token");
    let response = app
        .api(Method::DELETE, "/tokens/serial:987654321", &key)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 204);

    // A file name without a known extension needs --format.
    let copy = app.data_dir.join("seeds.txt");
    std::fs::copy(fixture_path("rfc6030-password.pskcxml"), &copy).expect("copy");
    let (ok, _, stderr) = console_import(&app, &[copy.to_str().expect("path")], None);
    assert!(!ok);
    assert!(stderr.contains("--format"), "{stderr}");
    let (ok, stdout, stderr) = console_import(
        &app,
        &[
            copy.to_str().expect("path"),
            "--format",
            "pskc",
            "--password-stdin",
        ],
        Some("qwerty\n"),
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "imported 1 token");
    assert_eq!(tokens(&app, &key).await.len(), 6);
    app.stop().await;
}
