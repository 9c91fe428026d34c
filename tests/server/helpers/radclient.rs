//! Debian's `radclient` (freeradius-utils) as a gateway: sends one request and reads the reply,
//! with its attributes, from what it prints with `-x`.

use std::io::Write;
use std::process::{Command, Stdio};

/// What radclient received: the reply's code (`Access-Challenge`, …) and its attributes in
/// order, as radclient prints them; None when nothing came back.
#[derive(Debug)]
pub struct Reply {
    pub code: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// Everything radclient printed, for the failure messages.
    pub text: String,
}

impl Reply {
    /// The first value of an attribute, as printed (strings without their quotes).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(called, _)| called == name)
            .map(|(_, value)| value.as_str())
    }

    /// The attributes but Message-Authenticator, whose value differs from reply to reply.
    pub fn shape(&self) -> Vec<(String, String)> {
        self.attributes
            .iter()
            .filter(|(name, _)| name != "Message-Authenticator")
            .cloned()
            .collect()
    }
}

/// Whether radclient can run here; under CI it must.
pub fn present() -> bool {
    let present = Command::new("radclient")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "radclient (freeradius-utils) is required under CI"
        );
        println!("skipped: radclient (freeradius-utils) is not installed");
    }
    present
}

/// Sends `attributes` (radclient's input syntax) to `port` as an Access-Request, on a blocking
/// thread: the server answers on the test's own runtime.
pub async fn access(port: u16, secret: &str, attributes: &str) -> Reply {
    parse(output(port, "auth", secret, attributes).await)
}

/// Everything radclient prints (`-x`) for `attributes` sent to `port` as `kind` (auth, acct,
/// status), one try with a 2-second wait, run on a blocking thread.
pub async fn output(port: u16, kind: &str, secret: &str, attributes: &str) -> String {
    output_with(port, kind, secret, attributes, 1, 2).await
}

/// An Access-Request as `access` sends it, with `tries` sends of the very same packet, each
/// waited for `seconds` (radclient's `-r` and `-t`): a gateway that retransmits.
pub async fn access_with(
    port: u16,
    secret: &str,
    attributes: &str,
    tries: u32,
    seconds: u32,
) -> Reply {
    parse(output_with(port, "auth", secret, attributes, tries, seconds).await)
}

/// `output`, with `tries` sends each waited for `seconds`.
pub async fn output_with(
    port: u16,
    kind: &str,
    secret: &str,
    attributes: &str,
    tries: u32,
    seconds: u32,
) -> String {
    let (kind, secret, attributes) = (kind.to_string(), secret.to_string(), attributes.to_string());
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("radclient")
            .args(["-x", "-r", &tries.to_string(), "-t", &seconds.to_string()])
            .arg(format!("127.0.0.1:{port}"))
            .arg(kind)
            .arg(secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("radclient starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(attributes.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("radclient ends");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
    .await
    .expect("radclient ran")
}

/// A PAP Access-Request's attributes as radclient reads them, asking it for a
/// Message-Authenticator.
pub fn signed(user: &str, password: &str) -> String {
    format!(
        "User-Name = \"{user}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
    )
}

/// Reads the received packet out of radclient's output: its `Received CODE Id …` line, then
/// the indented `Name = value` lines below it.
fn parse(text: String) -> Reply {
    let mut code = None;
    let mut attributes = Vec::new();
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if let Some(rest) = line.trim_start().strip_prefix("Received ") {
            code = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    if code.is_some() {
        for line in lines {
            if !line.starts_with([' ', '\t']) {
                break;
            }
            if let Some((name, value)) = line.trim().split_once(" = ") {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|inner| inner.strip_suffix('"'))
                    .unwrap_or(value);
                attributes.push((name.to_string(), value.to_string()));
            }
        }
    }
    Reply {
        code,
        attributes,
        text,
    }
}
