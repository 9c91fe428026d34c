//! What the portal tests share: a resource with self-service set up in the admin panel, users
//! made through the management API, a user's own browser (a client with its own cookies) that
//! logs in to the portal, and the mail server, SMS gateway and bot the portal sends codes with.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use otpgate::config::Config;

use crate::helpers::app::{TestApp, client_for, client_from, spawn_app, spawn_with};
use crate::helpers::delivery::{Api, mail_settings};
use crate::helpers::page::{hidden_value, location};
use crate::helpers::sms_gateway::Gateway;
use crate::helpers::smtp_sink::{Mode, SmtpSink};
use crate::helpers::telegram_api::TelegramApi;

pub const SECRET: &[u8] = b"12345678901234567890";
pub const SECRET_HEX: &str = "3132333435363738393031323334353637383930";

/// How long the helpers wait for the bot to run and for a token to turn active.
const WAIT: Duration = Duration::from_secs(20);

pub struct Portal {
    pub app: TestApp,
    pub api: Api,
    pub admin: String,
    pub admin_csrf: String,
    pub resource_id: i64,
}

impl Portal {
    /// A resource `vpn` whose portal `/portal/vpn` allows `actions` and the enrolment of `kinds`.
    pub async fn start(actions: &[&str], kinds: &[&str]) -> Portal {
        Portal::on(spawn_app().await, actions, kinds).await
    }

    /// Like [`Portal::start`], on a server started with `config`.
    pub async fn start_with(config: Config, actions: &[&str], kinds: &[&str]) -> Portal {
        let app = spawn_with(config).await.expect("start");
        Portal::on(app, actions, kinds).await
    }

    async fn on(app: TestApp, actions: &[&str], kinds: &[&str]) -> Portal {
        let admin_csrf = app.logged_in_admin().await;
        let admin = app.api_key(&["--admin"]);
        let api = Api::of(&app);
        let (status, body) = api
            .call(Method::POST, "/resources", &admin, json!({"name": "vpn"}))
            .await;
        assert_eq!(status, 201, "{body}");
        let resource_id = body["id"].as_i64().expect("id");
        let portal = Portal {
            app,
            api,
            admin,
            admin_csrf,
            resource_id,
        };
        portal.configure(true, actions, kinds).await;
        portal
    }

    /// Saves the Self-Service tab as an administrator would.
    pub async fn configure(&self, enabled: bool, actions: &[&str], kinds: &[&str]) {
        self.configure_with(enabled, actions, kinds, &[]).await;
    }

    /// Saves the Self-Service tab with further fields (`("allow_remove_last", "on")`).
    pub async fn configure_with(
        &self,
        enabled: bool,
        actions: &[&str],
        kinds: &[&str],
        extra: &[(&str, &str)],
    ) {
        let mut form: Vec<(&str, &str)> = vec![
            ("csrf", &self.admin_csrf),
            ("shown_all", "off"),
            ("shown_all_token", "off"),
            ("shown_all_user", "off"),
            ("shown_all_kinds", "off"),
            ("address", "vpn"),
        ];
        if enabled {
            form.push(("enabled", "on"));
        }
        for action in actions {
            form.push(("action", action));
        }
        for kind in kinds {
            form.push(("kind", kind));
        }
        form.extend_from_slice(extra);
        let response = self
            .app
            .post_form(
                &format!("/admin/resources/{}/self-service", self.resource_id),
                &form,
            )
            .await;
        assert_eq!(response.status(), 303, "the self-service form is saved");
    }

    /// A user assigned to `vpn`, from the API's user fields.
    pub async fn user(&self, fields: Value) {
        let login = fields["login"].as_str().expect("login").to_string();
        let (status, body) = self
            .api
            .call(Method::POST, "/users", &self.admin, fields)
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self
            .api
            .call(
                Method::POST,
                "/resources/vpn/users",
                &self.admin,
                json!({"user": login}),
            )
            .await;
        assert!(status == 204 || status == 200, "{status} {body}");
    }

    /// A token made through the API, assigned to the user and to `vpn`; its id.
    pub async fn token(&self, fields: Value) -> i64 {
        let (status, body) = self
            .api
            .call(Method::POST, "/tokens", &self.admin, fields)
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().expect("token id")
    }

    pub async fn token_json(&self, id: i64) -> Value {
        let (status, body) = self
            .api
            .call(
                Method::GET,
                &format!("/tokens/{id}"),
                &self.admin,
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A new browser of an end user.
    pub fn browser(&self) -> Browser {
        Browser {
            client: client_for(&self.app.data_dir),
            address: self.app.address.clone(),
        }
    }

    /// A new browser of an end user elsewhere: connecting from another loopback address
    /// (`127.0.0.2`, …).
    pub fn browser_from(&self, local: std::net::IpAddr) -> Browser {
        Browser {
            client: client_from(&self.app.data_dir, local),
            address: self.app.address.clone(),
        }
    }

    /// Changes the database file behind the server's back, as time passing would (a session
    /// left idle, a token locked); answers the rows changed.
    pub fn execute(&self, sql: &str) -> usize {
        let conn =
            rusqlite::Connection::open(self.app.data_dir.join(otpgate::store::DATABASE_FILE))
                .expect("open");
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("timeout");
        conn.execute(sql, []).expect("execute")
    }

    /// Saves the General settings in the panel with `fields` (the OTP length and challenge
    /// validity as they are by default, unless given).
    pub async fn save_general(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.admin_csrf)];
        for (name, default) in [
            ("default_otp_length", "6"),
            ("challenge_validity_seconds", "300"),
        ] {
            if !fields.iter().any(|(field, _)| *field == name) {
                form.push((name, default));
            }
        }
        form.extend_from_slice(fields);
        self.app.post_form("/admin/settings/general", &form).await
    }

    pub fn count(&self, sql: &str) -> i64 {
        let conn =
            rusqlite::Connection::open(self.app.data_dir.join(otpgate::store::DATABASE_FILE))
                .expect("open");
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("timeout");
        conn.query_row(sql, [], |row| row.get(0)).expect("count")
    }
}

pub struct Browser {
    pub client: reqwest::Client,
    pub address: String,
}

impl Browser {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET answered")
    }

    pub async fn page(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("body")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .form(form)
            .send()
            .await
            .expect("POST answered")
    }

    /// Posts a form found on the page at `page_path`, with its CSRF token.
    pub async fn submit(
        &self,
        page_path: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let page = self.page(page_path).await;
        let csrf = hidden_value(&page, "csrf");
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(action, &form).await
    }

    /// Gives the login name; answers the redirect's target.
    pub async fn start_login(&self, login: &str) -> String {
        let response = self
            .submit("/portal/vpn", "/portal/vpn/login", &[("login", login)])
            .await;
        assert_eq!(response.status(), 303);
        location(&response)
    }

    /// A whole password login; the status of the step that answered last.
    pub async fn log_in_with_password_raw(&self, login: &str, password: &str) -> u16 {
        let response = self
            .submit("/portal/vpn", "/portal/vpn/login", &[("login", login)])
            .await;
        if response.status() != 303 {
            return response.status().as_u16();
        }
        self.submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/password",
            &[("password", password)],
        )
        .await
        .status()
        .as_u16()
    }

    /// Logs in with login name and password (no second factor); answers the last response.
    pub async fn log_in_with_password(&self, login: &str, password: &str) -> reqwest::Response {
        assert_eq!(self.start_login(login).await, "/portal/vpn/login/verify");
        self.submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/password",
            &[("password", password)],
        )
        .await
    }
}

/// The TOTP code of `SECRET` now.
pub fn totp_now() -> String {
    crate::helpers::otp::totp_now(SECRET, 0)
}

/// A user `login` with a password and a mail address, logged in to the portal in a new browser.
pub async fn logged_in(portal: &Portal, login: &str) -> Browser {
    portal
        .user(json!({"login": login, "password": "a long enough password", "email": format!("{login}@example.com")}))
        .await;
    let browser = portal.browser();
    let response = browser
        .log_in_with_password(login, "a long enough password")
        .await;
    assert_eq!(location(&response), "/portal/vpn");
    browser
}

/// An SMTP server the server sends its mail to, set up in the mail settings.
pub async fn with_mail(portal: &Portal) -> SmtpSink {
    let sink = SmtpSink::start(Mode::Plain).await;
    let (status, body) = portal
        .api
        .call(
            Method::PUT,
            "/settings/mail",
            &portal.admin,
            mail_settings(sink.port, "none", None),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    sink
}

/// An SMS gateway the server sends its text messages to.
pub async fn with_sms(portal: &Portal) -> Gateway {
    let gateway = Gateway::start().await;
    let (status, body) = portal
        .api
        .call(
            Method::PUT,
            "/settings/sms",
            &portal.admin,
            json!({
                "method": "POST",
                "url": format!("{}/send", gateway.url),
                "body_format": "form",
                "body": "text={message}&to={phone}",
                "auth": "none",
                "success_status": "2xx",
                "timeout_seconds": 5,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    gateway
}

/// The Bot-API-shaped server, with the bot set up against it and running.
pub async fn with_bot(portal: &Portal) -> TelegramApi {
    let telegram = TelegramApi::start().await;
    let (status, body) = portal
        .api
        .call(
            Method::PUT,
            "/settings/bot",
            &portal.admin,
            json!({"token": "123456:TEST-bot_token", "api_url": telegram.url, "poll_timeout_seconds": 1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = portal
            .api
            .call(Method::GET, "/settings/bot", &portal.admin, json!(null))
            .await;
        if body["status"]["state"] == "running" && body["status"]["username"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the bot never ran: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    telegram
}

/// The `/start` code and the status address on a BOT activation page.
pub fn activation_on(page: &str) -> (String, String) {
    let code = page
        .split("/start ")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the activation code")
        .to_string();
    let status = page
        .split("data-status-url=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the status address")
        .to_string();
    (code, status)
}

/// Waits until the activation status at `status` says the token is active.
pub async fn wait_until_active(browser: &Browser, status: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer: serde_json::Value = browser.get(status).await.json().await.expect("json");
        if answer["state"] == "active" {
            return;
        }
        assert!(Instant::now() < deadline, "never active: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
