//! Admin panel benchmark: starts the release binary on loopback, provisions N users (default
//! 100,000; a tenth of them with a token in the resource `bench`) through the management API,
//! logs in to the panel as an administrator (password and authenticator app, like a person),
//! and requests each page many times in a row, printing p50, p99 and the maximum of the time
//! from request to the last byte of the answer over keep-alive HTTPS — the server's time plus
//! a loopback round trip. Speed is reported, not asserted: the benchmark fails only when a
//! page does not answer 200.

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Client;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};

mod support;
use support::{Server, create, env_or, percentile};

const PASSWORD: &str = "bench password 1";
const FIRST: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karin",
    "Lena", "Milan", "Nora", "Oskar", "Paula",
];
const LAST: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
];
const PROVISIONERS: usize = 32;

/// The value of the hidden input `name` on a page.
fn hidden(page: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).context("no hidden field")? + marker.len();
    Ok(page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Logs in like a person: password, then the authenticator app shown at the first login.
async fn log_in(client: &Client, url: &str) -> anyhow::Result<()> {
    let page = client
        .get(format!("{url}/admin/login"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = hidden(&page, "csrf")?;
    let form = [
        ("csrf", csrf.as_str()),
        ("login", "bench"),
        ("password", PASSWORD),
        ("otp", ""),
    ];
    client
        .post(format!("{url}/admin/login"))
        .form(&form)
        .send()
        .await?;
    let page = client
        .get(format!("{url}/admin/enrol"))
        .send()
        .await?
        .text()
        .await?;
    let marker = "<code class=\"secret\">";
    let start = page
        .find(marker)
        .context("no secret on the enrolment page")?
        + marker.len();
    let secret = otpgate::otp::decode_base32_secret(page[start..].split('<').next().unwrap_or(""))
        .context("the secret is not base32")?;
    let step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        / 30;
    let code = otpgate::otp::hotp(&secret, otpgate::otp::Algorithm::Sha1, 6, step);
    let csrf = hidden(&page, "csrf")?;
    let form = [("csrf", csrf.as_str()), ("otp", code.as_str())];
    client
        .post(format!("{url}/admin/enrol"))
        .form(&form)
        .send()
        .await?;
    let page = client.get(format!("{url}/admin")).send().await?;
    if !page.url().path().starts_with("/admin") || page.url().path() == "/admin/login" {
        bail!("the panel login did not work");
    }
    Ok(())
}

/// Creates `n` users, and a MAIL token in `bench` for every tenth.
async fn provision(client: &Client, admin: (String, HeaderValue), n: usize) -> anyhow::Result<()> {
    create(client, &admin, "/resources", &json!({ "name": "bench" })).await?;
    let admin = Arc::new(admin);
    let mut tasks = Vec::new();
    for first in 0..PROVISIONERS {
        let (client, admin) = (client.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            for i in (first..n).step_by(PROVISIONERS) {
                let login = format!("u{i:06}");
                let user = json!({
                    "login": login,
                    "first_name": FIRST[i % FIRST.len()],
                    "last_name": LAST[(i / FIRST.len()) % LAST.len()],
                    "email": format!("{login}@corp.example.com"),
                    "phone": format!("+49151{:08}", 10_000_000 + i),
                });
                create(&client, &admin, "/users", &user).await?;
                if i % 10 == 0 {
                    let token = json!({"kind": "MAIL", "user": login, "resource": "bench"});
                    create(&client, &admin, "/tokens", &token).await?;
                }
                if i % 20 == 7 {
                    let path = format!("/api/v1/users/{login}/disable");
                    let response = client
                        .post(format!("{}{path}", admin.0))
                        .header(AUTHORIZATION, admin.1.clone())
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("POST {path} answered {}", response.status());
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Requests `path` `times` times in a row and prints the percentiles.
async fn measure(
    client: &Client,
    url: &str,
    label: &str,
    path: &str,
    times: usize,
) -> anyhow::Result<f64> {
    // One request first so that caches are as warm as in steady use.
    client
        .get(format!("{url}{path}"))
        .send()
        .await?
        .bytes()
        .await?;
    let mut latencies = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        let response = client.get(format!("{url}{path}")).send().await?;
        let status = response.status();
        response.bytes().await?;
        latencies.push(started.elapsed());
        if status != 200 {
            bail!("GET {path} answered {status}");
        }
    }
    latencies.sort();
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let p99 = ms(percentile(&latencies, 0.99));
    println!(
        "{label:<44} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
        ms(percentile(&latencies, 0.50)),
        p99,
        ms(latencies.last().copied()),
    );
    Ok(p99)
}

async fn run() -> anyhow::Result<()> {
    let n = env_or("OTPGATE_BENCH_USERS", 100_000usize)?.max(100);
    let times = env_or("OTPGATE_BENCH_REQUESTS", 200usize)?.max(1);
    let binary = support::release_binary()?;
    let server = Server::start(&binary)?;
    let url = server.url.clone();
    println!(
        "otpgate {} (pid {}) listening on {url}",
        binary.display(),
        server.child.id()
    );

    let mut command = Server::command(&binary, server.dir.path());
    command
        .args(["admin", "create", "bench", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = command.spawn()?;
    use std::io::Write as _;
    writeln!(child.stdin.take().context("stdin")?, "{PASSWORD}")?;
    if !child.wait()?.success() {
        bail!("admin create failed");
    }

    let pem = std::fs::read(server.dir.path().join("data/tls/cert.pem"))?;
    let certificate = reqwest::Certificate::from_pem(&pem)?;
    let api = Client::builder()
        .add_root_certificate(certificate.clone())
        .build()?;
    let started = Instant::now();
    provision(&api, (url.clone(), server.api_key(&["--admin"])?), n).await?;
    println!(
        "provisioned {n} users ({} with a token in `bench`, every 20th disabled) in {:.1} s",
        n.div_ceil(10),
        started.elapsed().as_secs_f64()
    );
    let key = server.api_key(&["--admin"])?;
    let id_of = |path: String| {
        let (api, key) = (api.clone(), key.clone());
        async move {
            let answer = api.get(path).header(AUTHORIZATION, key).send().await?;
            answer.json::<Value>().await?["id"]
                .as_i64()
                .context("an id")
        }
    };
    let resource = id_of(format!("{url}/api/v1/resources/bench")).await?;

    let panel = Client::builder()
        .add_root_certificate(certificate)
        .cookie_store(true)
        .http1_only()
        .build()?;
    log_in(&panel, &url).await?;
    let middle = format!("u{:06}", n / 2);
    let middle_id = id_of(format!("{url}/api/v1/users/{middle}")).await?;
    println!("{times} requests per page, one after the other, over one keep-alive connection");
    let mut users_p99: f64 = 0.0;
    let mut pages_p99: f64 = 0.0;
    let user_cases = [
        ("users: first page", "/admin/users".to_string()),
        (
            "users: a page deep in the list",
            format!("/admin/users?after={middle}"),
        ),
        (
            "users: search a login",
            format!("/admin/users?search={middle}"),
        ),
        (
            "users: search a last name (1 in 18)",
            "/admin/users?search=Schr%C3%B6der".into(),
        ),
        (
            "users: search a first and last name",
            "/admin/users?search=Anna%20Koch".into(),
        ),
        (
            "users: search an email domain (all)",
            "/admin/users?search=corp.example".into(),
        ),
        (
            "users: search phone digits",
            "/admin/users?search=1512345".into(),
        ),
        (
            "users: search with no match",
            "/admin/users?search=zzzqqq".into(),
        ),
        ("users: 2-character prefix", "/admin/users?search=u0".into()),
        ("users: disabled", "/admin/users?enabled=no".into()),
        ("users: with a token", "/admin/users?has_token=yes".into()),
        ("users: without a token", "/admin/users?has_token=no".into()),
        (
            "users: in the resource",
            format!("/admin/users?resource={resource}"),
        ),
        (
            "users: disabled, in the resource, searched",
            format!("/admin/users?enabled=no&resource={resource}&search=anna"),
        ),
    ];
    for (label, path) in &user_cases {
        users_p99 = users_p99.max(measure(&panel, &url, label, path, times).await?);
    }
    let pages = [
        ("dashboard", "/admin".to_string()),
        ("a user's page", format!("/admin/users/{middle_id}")),
        ("tokens", "/admin/tokens".into()),
        ("tokens: search", "/admin/tokens?search=u0500".into()),
        ("resources", "/admin/resources".into()),
        ("a resource's page", format!("/admin/resources/{resource}")),
        ("settings", "/admin/settings".into()),
        ("audit log", "/admin/audit".into()),
        ("administrators", "/admin/administrators".into()),
    ];
    for (label, path) in &pages {
        pages_p99 = pages_p99.max(measure(&panel, &url, label, path, times).await?);
    }
    println!(
        "worst p99: users list and search {users_p99:.2} ms (target 20), other pages {pages_p99:.2} ms (target 50)"
    );
    server.stop()?;
    println!("the server stopped cleanly on SIGTERM");
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
