//! The otpgate binary's command line: `config check`, `serve` and its listen address, the
//! console's admin commands, shell completions, the man page and every help text.

use crate::helpers::process::{Process, otpgate_command};

#[test]
fn config_check_names_the_unknown_key_and_its_line() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 4\n",
    )
    .expect("write");
    let output = otpgate_command(dir.path())
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.listen_port"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
}

#[test]
fn config_check_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("good.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:9999\"\n").expect("write");
    let output = otpgate_command(dir.path())
        .env("OTPGATE_LOG", "debug")
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("listen = \"127.0.0.1:9999\""), "{stdout}");
    assert!(
        stdout.contains("level = \"debug\""),
        "the environment overrides the file: {stdout}"
    );
}

#[test]
fn the_packaged_example_config_passes_config_check() {
    let dir = tempfile::tempdir().expect("dir");
    let output = otpgate_command(dir.path())
        .args([
            "config",
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/config.toml"),
        ])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn serve_prints_its_listening_line_and_answers_healthz() {
    let dir = tempfile::tempdir().expect("dir");
    let process = Process::start(dir.path(), &[]).expect("starts");
    assert!(process.address.starts_with("https://127.0.0.1:"));
    let status = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/healthz", process.address))
        .output();
    if let Ok(output) = status {
        assert_eq!(String::from_utf8_lossy(&output.stdout), "200");
    }
    let stderr = process.stderr.clone();
    let exit = process.terminate();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}");
    let log = stderr.lock().expect("log").clone();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn the_listen_address_comes_from_the_environment_when_no_flag_is_given() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = otpgate_command(dir.path())
        .env("OTPGATE_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("listening on https://127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn console_admin_commands_create_list_and_reset() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |args: &[&str], stdin: &str| {
        let mut child = otpgate_command(dir.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin.as_bytes())
            .expect("write");
        child.wait_with_output().expect("output")
    };
    let created = run(
        &["admin", "create", "root", "--password-stdin"],
        "a long enough password\n",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let duplicate = run(
        &["admin", "create", "root", "--password-stdin"],
        "a long enough password\n",
    );
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("exists already"));
    let short = run(&["admin", "create", "other", "--password-stdin"], "short\n");
    assert!(!short.status.success());
    let listed = run(&["admin", "list"], "");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("root\tenabled\t2fa not linked"));
    let reset = run(
        &["admin", "reset-password", "root", "--password-stdin"],
        "another long password\n",
    );
    assert!(reset.status.success());
    let missing = run(&["admin", "reset-2fa", "nobody"], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no administrator named nobody"));
}

#[test]
fn completions_and_man_page_are_generated() {
    let dir = tempfile::tempdir().expect("dir");
    for shell in ["bash", "zsh", "fish"] {
        let output = otpgate_command(dir.path())
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(output.status.success());
        assert!(String::from_utf8_lossy(&output.stdout).contains("otpgate"));
    }
    let man = otpgate_command(dir.path())
        .arg("man")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH otpgate"));
}

#[test]
fn every_subcommand_has_help_text() {
    let dir = tempfile::tempdir().expect("dir");
    for args in [
        vec!["serve"],
        vec!["admin"],
        vec!["admin", "create"],
        vec!["admin", "list"],
        vec!["admin", "reset-password"],
        vec!["admin", "reset-2fa"],
        vec!["backup"],
        vec!["restore"],
        vec!["config", "check"],
        vec!["completions"],
        vec!["man"],
    ] {
        let output = otpgate_command(dir.path())
            .args(&args)
            .arg("--help")
            .output()
            .expect("run");
        assert!(output.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.lines().next().is_some_and(|l| !l.trim().is_empty()),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn serve_speaks_plain_http_only_when_tls_is_explicitly_off() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("plain.toml");
    std::fs::write(
        &config,
        "[tls]\nenabled = false\n[radius]\nlisten = []\naccounting_listen = []\n",
    )
    .expect("write");
    let process = Process::start(
        dir.path(),
        &[("OTPGATE_CONFIG", config.to_str().expect("utf-8"))],
    )
    .expect("starts");
    assert!(
        process.address.starts_with("http://127.0.0.1:"),
        "{}",
        process.address
    );
    assert!(
        !dir.path().join("tls").exists(),
        "no certificate is generated for plain HTTP"
    );
    process.terminate();
}

#[test]
fn the_console_answers_every_kind_of_refusal_in_its_words_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |args: &[&str], stdin: &str| {
        let mut child = otpgate_command(dir.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("output");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        )
    };
    // A field's value: a login an administrator may not have.
    let (ok, stderr) = run(
        &["admin", "create", "root admin", "--password-stdin"],
        "a long enough password\n",
    );
    assert!(!ok);
    assert_eq!(
        stderr,
        "otpgate: The login may use letters, digits and . _ - @ (at most 64 characters)."
    );
    // A field's value of a seed file: a CSV file has no key to give.
    let seeds = dir.path().join("seeds.csv");
    std::fs::write(&seeds, "HW-1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").expect("write");
    let (ok, stderr) = run(
        &[
            "tokens",
            "import",
            seeds.to_str().expect("path"),
            "--preshared-key",
            "00",
        ],
        "",
    );
    assert!(!ok);
    assert_eq!(
        stderr,
        "otpgate: a CSV file has no encryption: leave out the pre-shared key"
    );
    // A clash with what is stored: the same serials imported twice.
    let (ok, stderr) = run(&["tokens", "import", seeds.to_str().expect("path")], "");
    assert!(ok, "{stderr}");
    let (ok, stderr) = run(&["tokens", "import", seeds.to_str().expect("path")], "");
    assert!(!ok);
    assert_eq!(
        stderr,
        "otpgate: tokens with these serials exist already, nothing was imported: HW-1"
    );
    // An object that does not exist.
    let (ok, stderr) = run(&["apikey", "revoke", "og_nosuchkey"], "");
    assert!(!ok);
    assert_eq!(stderr, "otpgate: no active key nosuchkey");
    // Nothing but the one import was stored.
    let conn =
        rusqlite::Connection::open(dir.path().join(otpgate::store::DATABASE_FILE)).expect("open");
    let tokens: i64 = conn
        .query_row("SELECT COUNT(*) FROM tokens", [], |row| row.get(0))
        .expect("count");
    let admins: i64 = conn
        .query_row("SELECT COUNT(*) FROM admins", [], |row| row.get(0))
        .expect("count");
    assert_eq!((tokens, admins), (1, 0));
}
