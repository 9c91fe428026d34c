//! Real otpgate servers in-process on port 0, each with a fresh data directory, and clients
//! that talk HTTPS to them.

use std::path::{Path, PathBuf};

use otpgate::{Application, Config};

use crate::helpers::otp::totp_now;
use crate::helpers::page::{hidden_value, location, secret_on_page};
use crate::helpers::process::otpgate_command;

pub struct TestApp {
    pub address: String,
    pub data_dir: PathBuf,
    pub setup_link: Option<String>,
    pub fingerprint: Option<String>,
    /// The RADIUS authentication and accounting addresses, when the test's config has any.
    pub radius: Vec<std::net::SocketAddr>,
    pub radius_accounting: Vec<std::net::SocketAddr>,
    /// The RadSec (RADIUS over TLS) addresses, when the test's config has any.
    pub radsec: Vec<std::net::SocketAddr>,
    /// A client with a cookie jar that trusts this server's certificate.
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _temp: Option<tempfile::TempDir>,
}

pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: Some(data_dir.to_path_buf()),
        ..Config::default()
    };
    config.server.listen = "127.0.0.1:0".into();
    config.server.workers = 2;
    config.server.shutdown_timeout_seconds = 5;
    config.log.level = "warn".into();
    // RADIUS is off but in the tests of RADIUS, which listen on free ports.
    config.radius.listen = Vec::new();
    config.radius.accounting_listen = Vec::new();
    // Tests make many requests quickly; the tests of rate limits set their own.
    config.api.user_burst = 1000;
    config.api.end_user_ip_burst = 1000;
    config.api.unauthenticated_burst = 1000;
    // Tests fail logins in a row on purpose; the tests of failed logins set their own limits.
    config.logins.free_failures = 20;
    config
}

pub async fn spawn_app() -> TestApp {
    let temp = tempfile::tempdir().expect("temp dir");
    let config = test_config(temp.path());
    let mut app = spawn_with(config).await.expect("the application starts");
    app._temp = Some(temp);
    app
}

pub async fn spawn_with(config: Config) -> anyhow::Result<TestApp> {
    let data_dir = config.data_dir.clone().expect("tests set a data dir");
    let application = Application::build(config).await?;
    let address = format!("https://127.0.0.1:{}", application.port());
    let setup_link = application.setup_link().map(str::to_string);
    let fingerprint = application.certificate_fingerprint().map(str::to_string);
    let radius = application.radius_addresses();
    let radius_accounting = application.radius_accounting_addresses();
    let radsec = application.radsec_addresses();
    let handle = application.handle();
    let task = tokio::spawn(application.run_until_stopped());
    Ok(TestApp {
        client: client_for(&data_dir),
        address,
        data_dir,
        setup_link,
        fingerprint,
        radius,
        radius_accounting,
        radsec,
        handle,
        task,
        _temp: None,
    })
}

/// A client that trusts the certificate the server generated in `data_dir`, keeps cookies, and
/// does not follow redirects (tests look at them).
pub fn client_for(data_dir: &Path) -> reqwest::Client {
    let pem = std::fs::read(data_dir.join("tls/cert.pem")).expect("the certificate exists");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // The server closes a kept-alive connection after 5 idle seconds; a client that reuses
        // one at that moment loses its request. Clients drop theirs sooner, as they should.
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("client")
}

/// Like [`client_for`], but connecting from another loopback address (`127.0.0.2`, …), as a
/// client elsewhere would.
pub fn client_from(data_dir: &Path, local: std::net::IpAddr) -> reqwest::Client {
    let pem = std::fs::read(data_dir.join("tls/cert.pem")).expect("the certificate exists");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // The server closes a kept-alive connection after 5 idle seconds; a client that reuses
        // one at that moment loses its request. Clients drop theirs sooner, as they should.
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .local_address(local)
        .build()
        .expect("client")
}

impl TestApp {
    /// Drops every cookie, like a new browser.
    pub fn forget_cookies(&mut self) {
        self.client = client_for(&self.data_dir);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET answered")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST answered")
    }

    /// Creates an API key with the console command: `--admin`, or `--resource NAME`.
    pub fn api_key(&self, scope: &[&str]) -> String {
        let output = otpgate_command(&self.data_dir)
            .args(["apikey", "create", "--name", "test"])
            .args(scope)
            .output()
            .expect("run apikey create");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// A JSON request to the API with a bearer key.
    pub fn api(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(key)
    }

    /// Stops the server gracefully and waits until it has closed its data directory.
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.handle.stop(true).await;
        self.task.await.expect("join").expect("clean stop");
        self._temp
    }

    /// Runs the whole first-start setup and returns the new administrator's TOTP seed.
    pub async fn create_first_admin(&self, login: &str, password: &str) -> Vec<u8> {
        let link = self.setup_link.clone().expect("a setup link");
        let path = link.trim_start_matches(&self.address).to_string();
        let code = path.split("code=").nth(1).expect("a code").to_string();
        let page = self.get(&path).await.text().await.expect("body");
        let csrf = hidden_value(&page, "csrf");
        let response = self
            .post_form(
                "/setup",
                &[
                    ("code", &code),
                    ("csrf", &csrf),
                    ("login", login),
                    ("password", password),
                    ("password_confirm", password),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "setup accepts the administrator");
        let page = self
            .get(&format!("/setup/totp?code={code}"))
            .await
            .text()
            .await
            .expect("body");
        let secret = secret_on_page(&page);
        let csrf = hidden_value(&page, "csrf");
        let response = self
            .post_form(
                "/setup/totp",
                &[
                    ("code", &code),
                    ("csrf", &csrf),
                    ("otp", &totp_now(&secret, 0)),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "setup accepts the first code");
        assert_eq!(location(&response), "/admin");
        secret
    }

    /// Runs the first-start setup as `admin`, leaving this client logged in to the panel, and
    /// returns the session's CSRF token for the panel's forms.
    pub async fn logged_in_admin(&self) -> String {
        self.create_first_admin("admin", "correct horse battery")
            .await;
        let page = self.get("/admin").await.text().await.expect("body");
        hidden_value(&page, "csrf")
    }

    /// Posts the login form with a fresh CSRF token.
    pub async fn login(&self, login: &str, password: &str, otp: &str) -> reqwest::Response {
        let page = self.get("/admin/login").await.text().await.expect("body");
        let csrf = hidden_value(&page, "csrf");
        self.post_form(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("login", login),
                ("password", password),
                ("otp", otp),
            ],
        )
        .await
    }
}
