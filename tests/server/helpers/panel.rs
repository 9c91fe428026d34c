//! What the panel's tests share. For the browser stories: a server with a logged-in
//! administrator in a fresh Chromium, the few page actions `Browser` lacks (ticking a box by its
//! label, filling a field inside one section, reading a field's value), and the JSON API to check
//! the outcome. For the tests of its forms over HTTPS: a form with a file, following a redirect,
//! and who the audit log names.

use fantoccini::Locator;
use fantoccini::elements::Element;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::browser::Browser;
use crate::helpers::otp::totp_now;
use crate::helpers::page::location;

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "correct horse battery";

/// One story's world: its own server, an administrator logged in to the panel in its own
/// browser, and an admin API key to check the outcome with.
pub struct Panel {
    pub app: TestApp,
    pub browser: Browser,
    pub api_key: String,
}

impl Panel {
    /// Starts a server, runs its first-start setup, and logs the administrator in through the
    /// login form. `None` (after a line on stderr) when Chromium is not installed outside CI.
    pub async fn open() -> Option<Panel> {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            app.stop().await;
            return None;
        };
        let secret = app.create_first_admin(ADMIN, PASSWORD).await;
        // The setup used up this step's code; the server takes the next step's.
        browser
            .log_in(&app, ADMIN, PASSWORD, &totp_now(&secret, 1))
            .await;
        browser
            .wait_for_text("Authentications in the last 24 hours")
            .await;
        let api_key = app.api_key(&["--admin"]);
        Some(Panel {
            app,
            browser,
            api_key,
        })
    }

    /// The end of every story: the pages ran without script errors, failed loads or
    /// Content-Security-Policy reports; then the browser and the server stop.
    pub async fn finish(self) {
        let problems = self.browser.console_problems().await;
        assert!(
            problems.is_empty(),
            "the pages ran without script errors, failed loads or CSP reports: {problems:#?}"
        );
        self.browser.close().await;
        self.app.stop().await;
    }

    /// Takes from the console the one line a form sent back with mistakes leaves: the browser
    /// reports the page's status 400 as a failed load. Anything else there is a problem.
    pub async fn expect_form_rejected(&self, path: &str) {
        let mut problems = Vec::new();
        for _ in 0..50 {
            problems.extend(self.browser.console_problems().await);
            if !problems.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let expected = format!(
            "{} - Failed to load resource: the server responded with a status of 400 (Bad Request)",
            self.app.url(path)
        );
        assert_eq!(
            problems,
            [expected],
            "only the rejected form in the console"
        );
    }

    /// A GET of the management API; the answer must be 200.
    pub async fn api_get(&self, path: &str) -> Value {
        self.api(Method::GET, path, Value::Null).await
    }

    /// A POST of the management API, for what a story needs before it starts; the answer
    /// must be 201.
    pub async fn api_create(&self, path: &str, body: Value) -> Value {
        self.api(Method::POST, path, body).await
    }

    async fn api(&self, method: Method, path: &str, body: Value) -> Value {
        let expected = if method == Method::POST { 201 } else { 200 };
        let mut request = self.app.api(method.clone(), path, &self.api_key);
        if method != Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, expected, "{method} {path}: {answer}");
        answer
    }

    /// The path the browser is at, without the query.
    pub async fn path(&self) -> String {
        self.browser
            .client
            .current_url()
            .await
            .expect("the browser's address")
            .path()
            .to_string()
    }

    /// The text of the flash message on top of the page.
    pub async fn flash(&self) -> String {
        self.browser.text_of("p.flash").await
    }

    /// Ticks the checkbox whose label reads `label` by clicking the label, as a person would,
    /// and checks that the click ticked it (a label not tied to its box would do nothing).
    pub async fn tick(&self, label: &str) {
        let quoted = literal(label);
        let label_xpath = format!("//label[normalize-space(.)={quoted}]");
        let label_element = self.one(&label_xpath, &format!("label {label:?}")).await;
        let checkbox = self
            .one(
                &format!(
                    "{label_xpath}//input[@type='checkbox'] \
                     | //input[@type='checkbox' and @id={label_xpath}/@for]"
                ),
                &format!("the checkbox of {label:?}"),
            )
            .await;
        assert!(
            !checkbox.is_selected().await.expect("the box's state"),
            "{label:?} was ticked already"
        );
        label_element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click the label {label:?}: {e}"));
        assert!(
            checkbox.is_selected().await.expect("the box's state"),
            "clicking the label {label:?} ticks its box"
        );
    }

    /// Whether the checkbox labelled `label` is ticked.
    pub async fn is_ticked(&self, label: &str) -> bool {
        let quoted = literal(label);
        self.one(
            &format!("//label[normalize-space(.)={quoted}]//input[@type='checkbox']"),
            &format!("the checkbox of {label:?}"),
        )
        .await
        .is_selected()
        .await
        .expect("the box's state")
    }

    /// Types into (or chooses in) the field labelled `label` inside the section `section`
    /// (its id): for pages where several forms have a field of the same name.
    pub async fn fill_in(&self, section: &str, label: &str, value: &str) {
        let field = self.field_in(section, label).await;
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
            .unwrap_or_else(|e| panic!("fill {label:?} in #{section}: {e}"));
    }

    /// The current value of the field labelled `label` (anywhere on the page).
    pub async fn value_of(&self, label: &str) -> String {
        let quoted = literal(label);
        let field = self
            .one(
                &format!(
                    "//label[normalize-space(text()[1])={quoted}]//*[self::input or self::textarea or self::select]"
                ),
                &format!("field {label:?}"),
            )
            .await;
        field
            .prop("value")
            .await
            .expect("the field's value")
            .unwrap_or_default()
    }

    async fn field_in(&self, section: &str, label: &str) -> Element {
        let quoted = literal(label);
        let section = literal(section);
        self.one(
            &format!(
                "//section[@id={section}]//label[normalize-space(text()[1])={quoted}]\
                 //*[self::input or self::textarea or self::select]"
            ),
            &format!("field {label:?} in #{section}"),
        )
        .await
    }

    /// Asserts that the element matching `css` lies inside the window as it is scrolled now:
    /// what the page just answered must be where the person looks, not below the fold.
    pub async fn assert_in_view(&self, css: &str) {
        let (top, bottom, height): (f64, f64, f64) = serde_json::from_value(
            self.browser
                .client
                .execute(
                    "const box = document.querySelector(arguments[0]).getBoundingClientRect(); \
                     return [box.top, box.bottom, window.innerHeight];",
                    vec![Value::from(css)],
                )
                .await
                .unwrap_or_else(|e| panic!("measure {css}: {e}")),
        )
        .expect("three numbers");
        assert!(
            top >= 0.0 && bottom <= height,
            "{css} is on screen (top {top}, bottom {bottom}, window height {height})"
        );
    }

    /// Asserts that the page needs no sideways scrolling at the window's width (1280 px), so
    /// that no control hides off the right edge.
    pub async fn assert_fits_the_width(&self, page: &str) {
        let (content, window): (f64, f64) = serde_json::from_value(
            self.browser
                .client
                .execute(
                    "return [document.documentElement.scrollWidth, window.innerWidth];",
                    vec![],
                )
                .await
                .expect("measure the page"),
        )
        .expect("two numbers");
        assert!(
            content <= window,
            "{page} is {content} px wide in a {window} px window"
        );
    }

    async fn one(&self, xpath: &str, what: &str) -> Element {
        let mut found = self
            .browser
            .client
            .find_all(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("find {what}: {e}"));
        if found.len() != 1 {
            panic!(
                "expected one {what} on {}, found {}; the page:\n{}",
                self.path().await,
                found.len(),
                self.browser.text().await
            );
        }
        found.remove(0)
    }
}

/// An XPath string literal for `text`.
fn literal(text: &str) -> String {
    if text.contains('\'') {
        assert!(!text.contains('"'), "no text with both kinds of quotes");
        format!("\"{text}\"")
    } else {
        format!("'{text}'")
    }
}

/// The actors of the audit lines with `action`, oldest first.
pub fn audit_actors(app: &TestApp, action: &str) -> Vec<String> {
    let db = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    let mut statement = db
        .prepare("SELECT actor FROM audit_log WHERE action = ?1 ORDER BY id")
        .expect("prepare");
    statement
        .query_map([action], |row| row.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows")
}

/// A `multipart/form-data` POST as a browser sends a form with a file.
pub async fn post_multipart(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    file: (&str, &str, &[u8]),
) -> reqwest::Response {
    let boundary = "----otpgate-test-boundary-7d93";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let (name, filename, data) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    app.client
        .post(app.url(path))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("POST answered")
}

/// Follows a redirect and answers the page's text.
pub async fn follow(app: &TestApp, response: reqwest::Response) -> String {
    assert_eq!(response.status(), 303, "a redirect");
    app.get(&location(&response))
        .await
        .text()
        .await
        .expect("body")
}
