//! A real headless Chromium for end-to-end tests of the pages, driven over WebDriver
//! (fantoccini → chromedriver → chromium). Every test gets its own chromedriver, browser and
//! profile; dropping the `Browser` ends them all, also when the test panics.
//!
//! Without chromium and chromedriver the tests are skipped with a line on stderr, unless the
//! environment variable `CI` is set: CI must run them, so there they fail.
//!
//! ```ignore
//! let Some(browser) = Browser::start().await else { return };
//! browser.goto(&app.url("/admin/login")).await;
//! browser.fill("Login name", "alice").await;
//! browser.click("Log in").await;
//! browser.wait_for_path("/admin").await;
//! browser.screenshot("dashboard").await;
//! browser.close().await;
//! ```

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::app::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the helpers wait for a page or a text. Generous, because CI machines are shared.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Browser {
    /// The WebDriver client, for what the helpers below do not cover.
    pub client: Client,
    // Fields drop in this order: the driver (and the browser with it), then the profile.
    driver: Chromedriver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile. Returns `None`, after
    /// saying so on stderr, when they are not installed and `CI` is not set.
    pub async fn start() -> Option<Browser> {
        // libtest names each test's thread after the test.
        let test = std::thread::current()
            .name()
            .unwrap_or("a browser test")
            .to_string();
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: CI is set, but {CHROMIUM} or {CHROMEDRIVER} is missing: browser tests \
                 must run in CI (`.ci/run` installs chromium and chromium-driver with apt-get)"
            );
            // Straight to stderr: libtest would swallow `eprintln!` of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "skipping {test}: chromium/chromedriver not installed \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let profile = tempfile::tempdir().expect("a temp dir for the browser profile");
        let driver = tokio::task::spawn_blocking(Chromedriver::start)
            .await
            .expect("chromedriver starts");
        let capabilities = json!({
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            // Keeps the browser's console, for `console_problems`.
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("chromedriver opens a Chromium session");
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        self.client.clone().close().await.expect("the session ends");
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Types `value` into the one field labelled `label` (by the label's own text, around the
    /// field or pointing at it with `for`) or else named `label`. A `select` gets the option
    /// with that text.
    pub async fn fill(&self, label: &str, value: &str) {
        let quoted = xpath_literal(label);
        let field_kinds = "self::input or self::textarea or self::select";
        let labels = format!("//label[normalize-space(text()[1])={quoted}]");
        let xpath = format!(
            "{labels}//*[{field_kinds}] | //*[@id={labels}/@for] | //*[({field_kinds}) and @name={quoted}]"
        );
        let field = self.the_one(&xpath, &format!("field {label:?}")).await;
        let typed = async {
            if field.tag_name().await? == "select" {
                field.select_by_label(value).await
            } else {
                field.clear().await?;
                field.send_keys(value).await
            }
        };
        typed
            .await
            .unwrap_or_else(|e| panic!("fill {label:?}: {e}"));
    }

    /// Clicks the one button, link or `summary` whose text is `text`.
    pub async fn click(&self, text: &str) {
        let quoted = xpath_literal(text);
        let xpath = format!(
            "//*[(self::button or self::a or self::summary) and normalize-space(.)={quoted}] \
             | //input[(@type='submit' or @type='button') and @value={quoted}]"
        );
        let element = self.the_one(&xpath, &format!("button {text:?}")).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {text:?}: {e}"));
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.try_text().await.expect("the page's text")
    }

    /// The visible text of the one element matching a CSS selector.
    pub async fn text_of(&self, css: &str) -> String {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        element.text().await.expect("the element's text")
    }

    /// Waits until the address's path (without the query) is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        self.wait_until(&format!("the path {path}"), async || {
            self.client
                .current_url()
                .await
                .is_ok_and(|u| u.path() == path)
        })
        .await;
    }

    /// Waits until the page shows `text`.
    pub async fn wait_for_text(&self, text: &str) {
        self.wait_until(&format!("the text {text:?}"), async || {
            self.try_text().await.is_ok_and(|t| t.contains(text))
        })
        .await;
    }

    /// Saves a PNG of the window as `target/browser-screenshots/<name>.png`, for reviewers and
    /// CI artefacts. Tests run at once: give each picture a name no other test uses.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let directory = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("browser-screenshots");
        std::fs::create_dir_all(&directory).expect("create the screenshot directory");
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// The browser console's warnings and errors since the last call: script errors, resources
    /// that failed to load, and what the Content-Security-Policy blocked.
    pub async fn console_problems(&self) -> Vec<String> {
        // chromedriver's own command for the log kept by `goog:loggingPrefs`: it is not in
        // the WebDriver standard, so not in fantoccini.
        let session = self.client.session_id().await.expect("a session id");
        let url = format!(
            "http://127.0.0.1:{}/session/{}/se/log",
            self.driver.port,
            session.unwrap_or_default()
        );
        let answer: Value = reqwest::Client::new()
            .post(url)
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("chromedriver answers the log command")
            .json()
            .await
            .expect("a JSON answer");
        answer["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| matches!(entry["level"].as_str(), Some("WARNING" | "SEVERE")))
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            // Browsers ask for /favicon.ico by themselves, and otpgate has no icon yet.
            .filter(|message| !message.contains("/favicon.ico "))
            .collect()
    }

    /// Logs in at `/admin/login` with the form, as a person would, and waits for the dashboard.
    pub async fn log_in(&self, app: &TestApp, login: &str, password: &str, otp: &str) {
        self.goto(&app.url("/admin/login")).await;
        self.fill("Login name", login).await;
        self.fill("Password", password).await;
        self.fill("Code from your authenticator app", otp).await;
        self.click("Log in").await;
        self.wait_for_path("/admin").await;
    }

    async fn try_text(&self) -> Result<String, fantoccini::error::CmdError> {
        self.client.find(Locator::Css("body")).await?.text().await
    }

    /// The one element matching `xpath`; anything else is a mistake in the test or the page.
    async fn the_one(&self, xpath: &str, what: &str) -> fantoccini::elements::Element {
        let mut found = self
            .client
            .find_all(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("find {what}: {e}"));
        if found.len() != 1 {
            let url = self.client.current_url().await.map(|u| u.to_string());
            panic!(
                "expected one {what} on {url:?}, found {}; the page:\n{}",
                found.len(),
                self.try_text().await.unwrap_or_default()
            );
        }
        found.remove(0)
    }

    async fn wait_until(&self, what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !done().await {
            if Instant::now() > deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                panic!(
                    "waited {TIMEOUT:?} for {what}; the browser is at {url:?} showing:\n{}",
                    self.try_text().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An XPath string literal for `text`.
fn xpath_literal(text: &str) -> String {
    if text.contains('\'') {
        assert!(!text.contains('"'), "no text with both kinds of quotes");
        format!("\"{text}\"")
    } else {
        format!("'{text}'")
    }
}

/// The chromedriver process. Dropping it kills it and the browser it started.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// Starts chromedriver on a port the system picks, and reads that port from the line it
    /// prints once it listens (so no other process can take the port in between).
    fn start() -> Chromedriver {
        let mut child = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, which Chromium's processes join: see `drop`.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().expect("chromedriver's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = String::new();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().expect("wait for chromedriver");
                panic!("chromedriver exited ({status}) before listening:\n{seen}");
            };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').parse().expect("a port number");
            }
            seen.push_str(&line);
            seen.push('\n');
        };
        // Keep reading, so that chromedriver never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Chromedriver { child, port }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // One signal to the process group ends chromedriver and every Chromium process, even
        // when a test panicked before it could close its session.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
