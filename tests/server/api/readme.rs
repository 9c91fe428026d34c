//! The README's API examples, run as they stand against the real server: the curl walkthrough
//! from an empty server to a first accepted code (typing the app's codes when it asks), and
//! the Python client on `requests`. Without curl, or python3 with requests, the tests say they
//! are skipped — except under CI, which must run them (`.ci/run` installs both).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::auth::{SEED_BASE32, fixture, totp, user_with_token};
use crate::helpers::otp::{unix_now, wait_for_fresh_step};

/// The first fenced block of `language` after the heading `heading` in README.md.
fn readme_block(heading: &str, language: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let after = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no heading {heading}"))
        .1;
    let fence = format!("```{language}\n");
    let start = after
        .find(&fence)
        .unwrap_or_else(|| panic!("no {language} block under {heading}"))
        + fence.len();
    let length = after[start..].find("\n```").expect("the block ends") + 1;
    after[start..start + length].to_string()
}

/// Whether `program args` runs and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Says why a test is skipped, or fails it under CI.
fn missing(test: &str, what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI is set, but {what} is missing: `.ci/run` installs it with apt-get"
    );
    eprintln!("{test}: skipped, {what} is missing");
}

/// The Python that has `requests`: the one on the PATH, or Debian's.
fn python_with_requests() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|python| runs(python, &["-c", "import requests"]))
}

/// The environment the README's examples expect: the server's address, `otpgate` on the PATH
/// with this server's data directory, and its certificate trusted by curl and requests.
fn environment(command: &mut Command, app: &TestApp) {
    let binary = Path::new(env!("CARGO_BIN_EXE_otpgate"));
    let path = std::env::var("PATH").unwrap_or_default();
    let certificate = app.data_dir.join("tls/cert.pem");
    command
        .env(
            "PATH",
            format!("{}:{path}", binary.parent().expect("dir").display()),
        )
        .env("OTPGATE", &app.address)
        .env("OTPGATE_DATA_DIR", &app.data_dir)
        .env("OTPGATE_LOG", "warn")
        .env("OTPGATE_CONFIG", app.data_dir.join("readme-config.toml"))
        .env("CURL_CA_BUNDLE", &certificate)
        .env("REQUESTS_CA_BUNDLE", &certificate);
    std::fs::write(app.data_dir.join("readme-config.toml"), "# defaults\n").expect("config");
}

/// The seed of the first `otpauth://` URI in `line`.
fn seed_in(line: &str) -> Option<Vec<u8>> {
    let uri = &line[line.find("otpauth://")?..];
    let secret = uri
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))?;
    otpgate::otp::decode_base32_secret(secret).ok()
}

#[tokio::test]
async fn the_readme_curl_walkthrough_reaches_a_first_accepted_code() {
    let test = "the_readme_curl_walkthrough_reaches_a_first_accepted_code";
    if !runs("curl", &["--version"]) || !runs("bash", &["--version"]) {
        missing(test, "curl or bash");
        return;
    }
    wait_for_fresh_step(20).await;
    let app = spawn_app().await;
    let script = readme_block("### From an empty server to a first accepted code", "sh");
    let mut command = Command::new("bash");
    command.args(["-e", "-o", "pipefail", "-c", &script]);
    environment(&mut command, &app);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let output = tokio::task::spawn_blocking(move || {
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        for line in stdout.lines() {
            let line = line.expect("a line");
            seen.push_str(&line);
            seen.push('\n');
            // A person scans the URI, then types the app's code now and at the next login.
            if let Some(seed) = seed_in(&line) {
                let step = unix_now() / 30;
                let code = |step| otpgate::otp::hotp(&seed, otpgate::otp::Algorithm::Sha1, 6, step);
                writeln!(stdin, "{}\n{}", code(step), code(step + 1)).expect("typed");
            }
        }
        let mut errors = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut errors)
            .expect("stderr");
        (child.wait().expect("bash ends"), seen, errors)
    })
    .await
    .expect("joined");
    let (status, stdout, stderr) = output;
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(r#""state":"active""#), "{stdout}");
    assert!(
        stdout.trim_end().ends_with('}') && stdout.contains(r#"{"result":"accepted""#),
        "{stdout}\n{stderr}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_readme_python_client_tells_accepted_from_rejected_and_why() {
    let test = "the_readme_python_client_tells_accepted_from_rejected_and_why";
    let Some(python) = python_with_requests() else {
        missing(test, "python3 with requests");
        return;
    };
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    user_with_token(
        &app,
        &fx,
        "alice",
        json!({"kind": "TOTP", "secret": SEED_BASE32}),
    )
    .await;
    let client = readme_block("### A Python client", "python");
    let run = |code: String| {
        let mut command = Command::new(python);
        command.args(["-", "alice", &code]);
        environment(&mut command, &app);
        command
            .env("OTPGATE_KEY", &fx.app_key)
            .env("OTPGATE_ADMIN_KEY", &fx.admin);
        let client = client.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut child = command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("python runs");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(client.as_bytes())
                    .expect("the script");
                child.wait_with_output().expect("python ends")
            })
            .await
            .expect("joined")
        }
    };
    let right = totp(0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let output = run(wrong.to_string()).await;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("rejected"), "{stdout}");
    assert!(
        lines.next().is_some_and(|line| line.ends_with(" bad_otp")),
        "the reason from the audit log: {stdout}"
    );
    wait_for_fresh_step(10).await;
    let output = run(totp(0)).await;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "accepted");
    app.stop().await;
}
