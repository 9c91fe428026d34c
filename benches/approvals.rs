//! Pending approvals benchmark: starts the release binary on loopback with the fake Bot API the
//! tests use, provisions users with activated BOT tokens in a resource that allows approvals,
//! asks each for an approval (`POST /api/v1/auth/prepare` with `approve`), then holds one
//! `POST /api/v1/auth/authenticate` with `wait` per approval, all at once, each on a connection
//! of its own. While they wait it reports the server's resident memory (and what each waiting
//! login adds) and its CPU use; then it presses every approval's right number in the fake
//! Telegram and reports how long each waiting request took to answer after its press.
//! Speed is reported, not asserted: the benchmark fails only when an approval is missing, a
//! wait is refused, or an approved login is not accepted.
//!
//! `OTPGATE_BENCH_APPROVALS` (default 10000) approvals; `OTPGATE_BENCH_HOLD_SECONDS` (default
//! 20) the time measured while they all wait.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Client;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

mod support;
use support::http::{Connection, tls_connector};
use support::{Api, NO_RADIUS, Server, env_or, percentile, status_kb};

#[allow(dead_code)]
#[path = "../tests/server/helpers/telegram_api.rs"]
mod telegram_api;

const BOT_TOKEN: &str = "424242:bench-token";
/// How long the benchmark waits for a phase's messages or answers.
const DRAIN: Duration = Duration::from_secs(120);
/// Provisioning and prepares in flight at once.
const PARALLEL: usize = 32;
/// The chat (and Telegram user) of the user number `i`.
fn chat_of(i: usize) -> i64 {
    1_000_000 + i as i64
}

impl Api {
    async fn waiting(&self) -> anyhow::Result<usize> {
        let text = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix("otpgate_approval_waiters "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }
}

/// Runs `work` for 0..count, at most `PARALLEL` at once; the answers in order.
async fn in_parallel<T, F, Fut>(count: usize, work: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await?;
        let job = work(i);
        tasks.push(tokio::spawn(async move {
            let answer = job.await;
            drop(permit);
            answer
        }));
    }
    let mut answers = Vec::with_capacity(count);
    for task in tasks {
        answers.push(task.await??);
    }
    Ok(answers)
}

/// The server's CPU time so far (user and system), in clock ticks of 1/100 s.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// A waiting request's answer: its status, its body, and when it came.
type Answered = Result<(u16, Vec<u8>, Instant), String>;

/// One waiting login: the request that waits, on a connection of its own.
struct Held {
    index: usize,
    answer: tokio::task::JoinHandle<Answered>,
}

async fn run() -> anyhow::Result<()> {
    let count = env_or("OTPGATE_BENCH_APPROVALS", 10_000usize)?.max(1);
    let hold = Duration::from_secs(env_or("OTPGATE_BENCH_HOLD_SECONDS", 20u64)?);
    let binary = support::release_binary()?;
    // Room for every waiting connection and a few more; approvals valid long enough for the
    // whole run; a wait as long as the benchmark needs.
    let server_section = format!(
        "pending_connections_per_address = 0\nmax_connections = {}\n",
        count + 1000
    );
    let rest = format!(
        "{NO_RADIUS}[auth]\nchallenge_validity_seconds = 3600\napproval_wait_max_seconds = 300\n\
         approval_waiters_max = {}\n",
        count + 100
    );
    let server = Server::start_configured(&binary, &server_section, &rest)?;
    let pid = server.child.id();
    println!(
        "otpgate {} (pid {pid}) listening on {}",
        binary.display(),
        server.url
    );
    let telegram = telegram_api::TelegramApi::start().await;
    let pem = std::fs::read(server.dir.path().join("data/tls/cert.pem"))?;
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .build()?;
    let admin = Arc::new(Api {
        client: client.clone(),
        url: server.url.clone(),
        key: server.api_key(&["--admin"])?,
    });
    let (put, post, patch) = (
        reqwest::Method::PUT,
        reqwest::Method::POST,
        reqwest::Method::PATCH,
    );
    admin
        .call(
            put,
            "/settings/bot",
            &json!({"token": BOT_TOKEN, "api_url": telegram.url, "poll_timeout_seconds": 1}),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin
        .call(reqwest::Method::GET, "/settings/bot", &Value::Null)
        .await?["status"]["state"]
        != "running"
    {
        if Instant::now() > deadline {
            bail!("the bot did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin
        .call(post.clone(), "/resources", &json!({"name": "bench"}))
        .await?;
    admin
        .call(
            patch,
            "/resources/bench",
            &json!({"approvals": {"allowed": true}}),
        )
        .await?;

    // Users with BOT tokens, activated by playing Telegram.
    let started = Instant::now();
    let codes = in_parallel(count, |i| {
        let admin = admin.clone();
        async move {
            let login = format!("bot{i}");
            admin
                .call(reqwest::Method::POST, "/users", &json!({"login": login}))
                .await?;
            let token = admin
                .call(
                    reqwest::Method::POST,
                    "/tokens",
                    &json!({"kind": "BOT", "user": login, "resource": "bench"}),
                )
                .await?;
            let code = token["activation"]["code"]
                .as_str()
                .context("an activation code")?;
            anyhow::Ok(code.to_string())
        }
    })
    .await?;
    for (i, code) in codes.iter().enumerate() {
        telegram.user_writes(chat_of(i), chat_of(i), &format!("/start {code}"));
    }
    let deadline = Instant::now() + DRAIN;
    while telegram.sent().len() < count {
        if Instant::now() > deadline {
            bail!(
                "only {} of {count} BOT tokens were activated",
                telegram.sent().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "provisioned {count} users with activated BOT tokens in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // One approval each.
    let app = Arc::new(Api {
        client: client.clone(),
        url: server.url.clone(),
        key: server.api_key(&["--resource", "bench"])?,
    });
    let started = Instant::now();
    let asked = in_parallel(count, |i| {
        let app = app.clone();
        async move {
            let answer = app
                .call(
                    reqwest::Method::POST,
                    "/auth/prepare",
                    &json!({"user": format!("bot{i}"), "approve": true, "ip": "198.51.100.7"}),
                )
                .await?;
            let transaction = answer["transaction"]
                .as_str()
                .context("a transaction")?
                .to_string();
            let number = answer["approval"]["number"]
                .as_str()
                .context("a number")?
                .to_string();
            anyhow::Ok((transaction, number))
        }
    })
    .await?;
    let deadline = Instant::now() + DRAIN;
    while telegram.sent().len() < 2 * count {
        if Instant::now() > deadline {
            bail!(
                "only {} of {count} approvals' messages were sent",
                telegram.sent().len() - count
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The approval's id, from the data of its message's buttons, per chat.
    let mut approval_of: HashMap<i64, i64> = HashMap::new();
    for sent in telegram.sent().iter().skip(count) {
        let data = sent.reply_markup["inline_keyboard"][0][0]["callback_data"]
            .as_str()
            .context("an approval's buttons")?;
        let id = data
            .split(':')
            .nth(1)
            .and_then(|id| id.parse().ok())
            .context("an approval's id")?;
        approval_of.insert(sent.chat_id, id);
    }
    println!(
        "{count} approvals asked for and their messages sent in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every login waits, each on a connection of its own.
    let address: SocketAddr = server
        .url
        .trim_start_matches("https://")
        .parse()
        .context("the server's address")?;
    let tls = tls_connector(&pem, &[&rustls::version::TLS13])?;
    let key = app.key.to_str()?.to_string();
    let rss_before = status_kb(pid, "VmRSS:");
    let opening = Instant::now();
    let mut held = Vec::with_capacity(count);
    let permits = Arc::new(Semaphore::new(PARALLEL * 4));
    for (index, (transaction, _)) in asked.iter().enumerate() {
        let permit = permits.clone().acquire_owned().await?;
        let tls = tls.clone();
        let body = json!({"user": format!("bot{index}"), "transaction": transaction, "wait": 300})
            .to_string();
        let head = format!(
            "POST /api/v1/auth/authenticate HTTP/1.1\r\nHost: {address}\r\n\
             Authorization: {key}\r\nContent-Type: application/json\r\nContent-Length: "
        );
        held.push(Held {
            index,
            answer: tokio::spawn(async move {
                let mut connection = Connection::open(address, &tls)
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                // The connection is open: the next one may start.
                drop(permit);
                let (status, body) = connection.post(&head, &body).await?;
                Ok((status, body, Instant::now()))
            }),
        });
    }
    let deadline = Instant::now() + DRAIN;
    loop {
        let waiting = admin.waiting().await?;
        if waiting >= count {
            break;
        }
        if let Some(done) = held.iter().find(|h| h.answer.is_finished()) {
            bail!(
                "the wait of bot{} ended before its approval was answered",
                done.index
            );
        }
        if Instant::now() > deadline {
            bail!("only {waiting} of {count} logins are waiting");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{count} logins waiting after {:.1} s",
        opening.elapsed().as_secs_f64()
    );
    let rss_waiting = status_kb(pid, "VmRSS:");
    let ticks_before = cpu_ticks(pid);
    let measuring = Instant::now();
    tokio::time::sleep(hold).await;
    let ticks = cpu_ticks(pid).saturating_sub(ticks_before);
    let seconds = measuring.elapsed().as_secs_f64();
    let rss_after = status_kb(pid, "VmRSS:");
    let still = admin.waiting().await?;
    println!(
        "while {still} logins waited for {seconds:.0} s: server RSS {:.1} MB ({:.1} MB before they \
         came, {:.1} kB per waiting login, connection and TLS included), CPU {:.1} % of one core",
        rss_after as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        rss_waiting.saturating_sub(rss_before) as f64 / count as f64,
        ticks as f64 / seconds,
    );

    // Every approval's right number pressed: how soon each waiting request answers.
    let mut pressed_at = Vec::with_capacity(count);
    for (i, (_, number)) in asked.iter().enumerate() {
        let approval = approval_of
            .get(&chat_of(i))
            .context("an approval's message")?;
        pressed_at.push(Instant::now());
        telegram.user_presses(
            chat_of(i),
            chat_of(i),
            1,
            &format!("ap:{approval}:{number}"),
        );
    }
    let mut latencies = Vec::with_capacity(count);
    let mut accepted = 0;
    for Held { index, answer } in held {
        let (status, body, at) = answer.await?.map_err(anyhow::Error::msg)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != 200 || body["result"] != "accepted" {
            bail!("bot{index}'s approved login answered {status}: {body}");
        }
        accepted += 1;
        latencies.push(at.saturating_duration_since(pressed_at[index]));
    }
    latencies.sort();
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    println!(
        "{accepted} approved logins accepted; press -> answer: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
         (the bot takes the presses 100 per long poll)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied()),
    );
    server.stop()?;
    telegram.stop().await;
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
