//! The data directory: migrations of an existing database, the key file and the certificate,
//! one server at a time, and backups and their restore.

use std::path::Path;

use otpgate::store::{self, DATABASE_FILE};

use crate::helpers::app::{spawn_with, test_config};
use crate::helpers::process::otpgate_command;

fn query_i64(file: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(file).expect("open");
    conn.query_row(sql, [], |row| row.get(0)).expect("query")
}

#[tokio::test]
async fn migrations_applied_to_an_existing_database_keep_its_data() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(DATABASE_FILE);
    store::migrate_to_version(&file, 1).expect("a version-1 database");
    {
        let conn = rusqlite::Connection::open(&file).expect("open");
        conn.execute(
            "INSERT INTO users (login, created_at, updated_at) VALUES ('kept', 1, 1)",
            [],
        )
        .expect("insert");
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, result) VALUES (1, 'system', 'old', 'ok')",
            [],
        )
        .expect("insert");
    }
    let app = spawn_with(test_config(dir.path()))
        .await
        .expect("start on the old database");
    app.stop().await;
    assert_eq!(
        query_i64(&file, "SELECT COUNT(*) FROM users WHERE login = 'kept'"),
        1
    );
    assert_eq!(
        query_i64(&file, "SELECT COUNT(*) FROM audit_log WHERE action = 'old'"),
        1
    );
    assert_eq!(
        query_i64(&file, "SELECT MAX(version) FROM refinery_schema_history"),
        store::known_schema_version()
    );
    assert_eq!(
        query_i64(
            &file,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_log_actor'"
        ),
        1,
        "the newer migration ran"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_otpgate_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("dir");
    let app = spawn_with(test_config(dir.path())).await.expect("start");
    app.stop().await;
    let conn = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).expect("open");
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (900, 'future', 'x', '0')",
        [],
    )
    .expect("insert");
    drop(conn);
    let error = spawn_with(test_config(dir.path()))
        .await
        .err()
        .expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("newer than this otpgate"), "{message}");
}

#[tokio::test]
async fn a_missing_key_file_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let app = spawn_with(test_config(dir.path())).await.expect("start");
    app.stop().await;
    std::fs::remove_file(dir.path().join("secret.key")).expect("remove key");
    let error = spawn_with(test_config(dir.path()))
        .await
        .err()
        .expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("key file"), "{message}");
    assert!(message.contains("missing"), "{message}");
    assert!(
        !dir.path().join("secret.key").exists(),
        "no new key replaces the lost one"
    );
}

#[tokio::test]
async fn a_wrong_key_file_is_refused_at_start() {
    let one = tempfile::tempdir().expect("dir");
    let two = tempfile::tempdir().expect("dir");
    spawn_with(test_config(one.path()))
        .await
        .expect("start")
        .stop()
        .await;
    spawn_with(test_config(two.path()))
        .await
        .expect("start")
        .stop()
        .await;
    std::fs::copy(two.path().join("secret.key"), one.path().join("secret.key")).expect("copy");
    let error = spawn_with(test_config(one.path()))
        .await
        .err()
        .expect("refused");
    assert!(format!("{error:#}").contains("does not match"), "{error:#}");
}

#[tokio::test]
async fn the_self_signed_certificate_is_generated_once_and_reused() {
    let dir = tempfile::tempdir().expect("dir");
    let first = spawn_with(test_config(dir.path())).await.expect("start");
    let fingerprint = first.fingerprint.clone().expect("TLS on");
    assert_eq!(
        first.get("/healthz").await.status(),
        200,
        "the client trusts the generated certificate"
    );
    first.stop().await;
    let second = spawn_with(test_config(dir.path())).await.expect("restart");
    assert_eq!(second.fingerprint.as_deref(), Some(fingerprint.as_str()));
    assert_eq!(second.get("/healthz").await.status(), 200);
    second.stop().await;
}

#[tokio::test]
async fn a_second_server_cannot_share_a_data_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let first = spawn_with(test_config(dir.path())).await.expect("start");
    let error = spawn_with(test_config(dir.path()))
        .await
        .err()
        .expect("refused");
    assert!(format!("{error:#}").contains("in use by a running otpgate"));
    first.stop().await;
}

/// Writes audit rows through failed logins, each acknowledged by its answer.
async fn failed_logins(app: &crate::helpers::app::TestApp, count: usize) {
    for i in 0..count {
        let response = app
            .login(&format!("nobody{i}"), "wrong password", "000000")
            .await;
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test]
async fn a_backup_taken_while_requests_run_restores_to_an_identical_database() {
    let live = tempfile::tempdir().expect("dir");
    let mut config = test_config(live.path());
    config.admin.login_attempts_per_ip = 100_000;
    config.admin.login_attempts_per_login = 100_000;
    let app = spawn_with(config).await.expect("start");
    failed_logins(&app, 5).await;

    let backup_dir = tempfile::tempdir().expect("dir");
    let backup_file = backup_dir.path().join("otpgate-backup.db");
    let writer = {
        let app_client = app.client.clone();
        let url = app.url("");
        tokio::spawn(async move {
            let page = app_client
                .get(format!("{url}/admin/login"))
                .send()
                .await
                .expect("page");
            let csrf =
                crate::helpers::page::hidden_value(&page.text().await.expect("body"), "csrf");
            for i in 0..60 {
                let response = app_client
                    .post(format!("{url}/admin/login"))
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("login", &format!("during{i}")),
                        ("password", "x"),
                        ("otp", "1"),
                    ])
                    .send()
                    .await
                    .expect("answer");
                assert_eq!(response.status(), 401);
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let output = otpgate_command(live.path())
        .arg("backup")
        .arg(&backup_file)
        .output()
        .expect("run backup");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    writer.await.expect("writer");
    app.stop().await;

    assert_eq!(
        store::validate_database(&backup_file).expect("valid"),
        store::known_schema_version()
    );
    // The audit log is append-only: a consistent snapshot is exactly a prefix of the live log.
    let backed_up = query_i64(&backup_file, "SELECT COUNT(*) FROM audit_log");
    let live_total = query_i64(
        &live.path().join(DATABASE_FILE),
        "SELECT COUNT(*) FROM audit_log",
    );
    assert!(
        backed_up >= 5 && backed_up <= live_total,
        "{backed_up} of {live_total}"
    );
    assert_eq!(
        query_i64(&backup_file, "SELECT MAX(id) FROM audit_log"),
        backed_up
    );

    let restored = tempfile::tempdir().expect("dir");
    std::fs::copy(
        live.path().join("secret.key"),
        restored.path().join("secret.key"),
    )
    .expect("key");
    let output = otpgate_command(restored.path())
        .arg("restore")
        .arg(&backup_file)
        .output()
        .expect("run restore");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let dump = |file: &Path| {
        let store = store::Store::open(file, store::StoreOptions::default()).expect("open");
        let text = store.dump().expect("dump");
        store.close();
        text
    };
    let restored_file = restored.path().join(DATABASE_FILE);
    let backup_copy = backup_dir.path().join("compare.db");
    std::fs::copy(&backup_file, &backup_copy).expect("copy");
    assert_eq!(
        dump(&restored_file),
        dump(&backup_copy),
        "the restored database is the backup"
    );
    let app = spawn_with(test_config(restored.path()))
        .await
        .expect("the restored data dir starts");
    app.stop().await;
}

#[tokio::test]
async fn restore_refuses_while_a_server_holds_the_data_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let app = spawn_with(test_config(dir.path())).await.expect("start");
    let backup = dir.path().join("copy.db");
    let output = otpgate_command(dir.path())
        .arg("backup")
        .arg(&backup)
        .output()
        .expect("backup");
    assert!(output.status.success());
    let output = otpgate_command(dir.path())
        .arg("restore")
        .arg(&backup)
        .output()
        .expect("restore");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("in use by a running otpgate"));
    app.stop().await;
}

#[tokio::test]
async fn restore_refuses_a_file_that_is_not_an_otpgate_database() {
    let dir = tempfile::tempdir().expect("dir");
    spawn_with(test_config(dir.path()))
        .await
        .expect("start")
        .stop()
        .await;
    let before = std::fs::read(dir.path().join(DATABASE_FILE)).expect("read");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database at all, not even close").expect("write");
    let output = otpgate_command(dir.path())
        .arg("restore")
        .arg(&junk)
        .output()
        .expect("restore");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an otpgate database"));
    assert_eq!(
        std::fs::read(dir.path().join(DATABASE_FILE)).expect("read"),
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn restore_refuses_a_backup_made_with_another_key() {
    let one = tempfile::tempdir().expect("dir");
    let two = tempfile::tempdir().expect("dir");
    spawn_with(test_config(one.path()))
        .await
        .expect("start")
        .stop()
        .await;
    spawn_with(test_config(two.path()))
        .await
        .expect("start")
        .stop()
        .await;
    let backup = one.path().join("one.db");
    assert!(
        otpgate_command(one.path())
            .arg("backup")
            .arg(&backup)
            .status()
            .expect("backup")
            .success()
    );
    let output = otpgate_command(two.path())
        .arg("restore")
        .arg(&backup)
        .output()
        .expect("restore");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("another key file"));
}

/// The permission bits of `path`.
#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("the file")
        .permissions()
        .mode()
        & 0o777
}

/// A console command run as `sudo -u otpgate` runs it: with a umask that lets others read.
#[cfg(unix)]
fn under_open_umask(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let command = otpgate_command(data_dir);
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(command.get_program())
        .args(args);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    let output = shell.output().expect("run");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_backups_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().join("data");
    under_open_umask(&data_dir, &["apikey", "create", "--name", "k", "--admin"]);
    let database = data_dir.join(DATABASE_FILE);
    assert_eq!(mode_of(&database), 0o600, "a new database");
    for suffix in ["-wal", "-shm"] {
        let file = data_dir.join(format!("{DATABASE_FILE}{suffix}"));
        if file.exists() {
            assert_eq!(mode_of(&file), 0o600, "{suffix}");
        }
    }
    let backup = dir.path().join("otpgate-backup.db");
    under_open_umask(&data_dir, &["backup", backup.to_str().expect("utf-8")]);
    assert_eq!(mode_of(&backup), 0o600, "a backup");
    // A backup written over an older, readable one is private too.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    under_open_umask(&data_dir, &["backup", backup.to_str().expect("utf-8")]);
    assert_eq!(mode_of(&backup), 0o600, "a backup over an old one");

    // A database an older otpgate left readable by others is made private when opened.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    under_open_umask(&data_dir, &["apikey", "list"]);
    assert_eq!(mode_of(&database), 0o600, "an old database");

    // A restore puts a private copy in place.
    under_open_umask(&data_dir, &["restore", backup.to_str().expect("utf-8")]);
    assert_eq!(mode_of(&database), 0o600, "a restored database");
}
