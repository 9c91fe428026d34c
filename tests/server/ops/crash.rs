//! The real binary killed with SIGKILL in the middle of its work: no acknowledged write is lost,
//! and an accepted code stays used after the restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::helpers::app::client_for;
use crate::helpers::page::hidden_value;
use crate::helpers::process::Process;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_in_the_middle_of_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("crash.toml");
    std::fs::write(
        &config,
        "[admin]\nlogin_attempts_per_ip = 1000000\nlogin_attempts_per_login = 1000000\n\
         [radius]\nlisten = []\naccounting_listen = []\n",
    )
    .expect("write config");
    let env = [("OTPGATE_CONFIG", config.to_str().expect("utf-8"))];
    let process = Process::start(dir.path(), &env).expect("starts");
    let address = process.address.clone();
    let client = client_for(dir.path());
    let page = client
        .get(format!("{address}/admin/login"))
        .send()
        .await
        .expect("page");
    let csrf = hidden_value(&page.text().await.expect("body"), "csrf");

    // Every 401 is sent after its audit line was committed: count them.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for worker in 0..4 {
        let client = client.clone();
        let address = address.clone();
        let csrf = csrf.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let response = client
                    .post(format!("{address}/admin/login"))
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("login", &format!("w{worker}-{i}")),
                        ("password", "x"),
                        ("otp", "1"),
                    ])
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 401 => {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
        }));
    }
    // Killed in the middle of the writes, once enough of them were acknowledged to check
    // (password checks are slow on a loaded machine: wait for them rather than for a time).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.load(Ordering::SeqCst) < 60 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process.kill_9();
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    assert!(
        acknowledged > 40,
        "the load ran past the default login limits ({acknowledged} writes)"
    );

    let file = dir.path().join(otpgate::store::DATABASE_FILE);
    let conn = rusqlite::Connection::open(&file).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'admin.login'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    drop(conn);
    assert!(
        rows as usize >= acknowledged,
        "{rows} rows for {acknowledged} acknowledged writes"
    );

    let restarted = Process::start(dir.path(), &env).expect("restarts after the crash");
    restarted.terminate();
}

#[tokio::test]
async fn an_accepted_code_stays_used_after_a_kill_9_and_restart() {
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().expect("dir");
    let process = Process::start(dir.path(), &[]).expect("starts");
    let run = |args: &[&str]| {
        let output = crate::helpers::process::otpgate_command(dir.path())
            .args(args)
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let admin = run(&["apikey", "create", "--name", "t", "--admin"]);
    let client = client_for(dir.path());
    let api = |path: &str| format!("{}/api/v1{path}", process.address);
    for (path, body) in [
        ("/resources", json!({"name": "vpn"})),
        ("/users", json!({"login": "alice"})),
        (
            "/tokens",
            json!({"kind": "HOTP", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "user": "alice", "resource": "vpn"}),
        ),
    ] {
        let response = client
            .post(api(path))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 201, "{path}");
    }
    let code = otpgate::otp::hotp(b"12345678901234567890", otpgate::otp::Algorithm::Sha1, 6, 0);
    let body = json!({"resource": "vpn", "user": "alice", "otp": code});
    let answer: Value = client
        .post(api("/auth/authenticate"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["result"], "accepted");
    process.kill_9();

    let restarted = Process::start(dir.path(), &[]).expect("restarts");
    let api = |path: &str| format!("{}/api/v1{path}", restarted.address);
    let answer: Value = client
        .post(api("/auth/authenticate"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(
        answer["result"], "rejected",
        "the accepted code was committed before the answer"
    );
    let next = otpgate::otp::hotp(b"12345678901234567890", otpgate::otp::Algorithm::Sha1, 6, 1);
    let answer: Value = client
        .post(api("/auth/authenticate"))
        .bearer_auth(&admin)
        .json(&json!({"resource": "vpn", "user": "alice", "otp": next}))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["result"], "accepted");
    restarted.terminate();
}
