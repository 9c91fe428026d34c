//! Starting real otpgate servers for tests: in-process on port 0 with a fresh data directory,
//! or as the real binary in a child process, and talking HTTPS to them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otpgate::{Application, Config};

pub struct TestApp {
    pub address: String,
    pub data_dir: PathBuf,
    pub setup_link: Option<String>,
    pub fingerprint: Option<String>,
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
    // Tests make many requests quickly; the tests of rate limits set their own.
    config.api.user_burst = 1000;
    config.api.end_user_ip_burst = 1000;
    config.api.unauthenticated_burst = 1000;
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
    let handle = application.handle();
    let task = tokio::spawn(application.run_until_stopped());
    Ok(TestApp {
        client: client_for(&data_dir),
        address,
        data_dir,
        setup_link,
        fingerprint,
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

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The value of the hidden input `name` on a page.
pub fn hidden_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} on the page:\n{page}"))
        + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The base32 seed shown on an enrolment page for manual entry.
pub fn secret_on_page(page: &str) -> Vec<u8> {
    let start = page
        .find("<code class=\"secret\">")
        .expect("a secret on the page")
        + "<code class=\"secret\">".len();
    let text = page[start..].split('<').next().expect("text");
    otpgate::otp::decode_base32_secret(text).expect("base32")
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// The 6-digit SHA-1 TOTP code `offset` steps from now.
pub fn totp_now(secret: &[u8], offset: i64) -> String {
    let step = (unix_now() / 30) as i64 + offset;
    otpgate::otp::hotp(secret, otpgate::otp::Algorithm::Sha1, 6, step as u64)
}

/// Waits, when needed, so that the current 30-second step lasts at least `margin` seconds
/// more: tests that use a code twice must stay inside one step.
pub async fn wait_for_fresh_step(margin: u64) {
    let into = unix_now() % 30;
    if into + margin >= 30 {
        tokio::time::sleep(Duration::from_secs(30 - into + 1)).await;
    }
}

/// The real binary, started as a child process.
pub struct Process {
    pub child: Child,
    pub address: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

pub fn otpgate_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otpgate"));
    command
        .env_remove("OTPGATE_LISTEN")
        .env("OTPGATE_DATA_DIR", data_dir)
        .env("OTPGATE_LOG", "warn")
        // No configuration file from the machine running the tests; a caller may set
        // OTPGATE_CONFIG again to use one of its own.
        .env("OTPGATE_CONFIG", empty_config(data_dir))
        .env("XDG_CONFIG_HOME", data_dir.join("no-config"));
    command
}

fn empty_config(data_dir: &Path) -> PathBuf {
    let path = data_dir.with_extension("test-config.toml");
    if !path.exists() {
        std::fs::write(&path, "# tests run on the built-in defaults\n").expect("write config");
    }
    path
}

impl Process {
    /// Starts `otpgate serve` on a free port and waits for its listening line.
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Result<Process, String> {
        let mut command = otpgate_command(data_dir);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        let stderr_text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let collector = stderr_text.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut text) = collector.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line.starts_with("listening on ") => {
                let address = line.trim_start_matches("listening on ").to_string();
                std::thread::spawn(move || for _ in lines {});
                Ok(Process {
                    child,
                    address,
                    stderr: stderr_text,
                })
            }
            _ => {
                let status = child.wait().map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(100));
                let text = stderr_text.lock().map(|t| t.clone()).unwrap_or_default();
                Err(format!("exited with {status}: {text}"))
            }
        }
    }

    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait")
    }
}
