//! Delivery latency benchmark: starts the release binary on loopback with a real SMTP listener
//! and a real HTTP server playing Telegram's Bot API (the ones the tests use), provisions users
//! with MAIL tokens and with activated BOT tokens, then calls `POST /api/v1/auth/prepare` for
//! each of them at a steady rate and measures the time from the prepare's answer to the moment
//! the SMTP listener accepted the message (end of DATA) or the Bot API received `sendMessage`.
//! Prints p50, p99 and the maximum per channel. Speed is reported, not asserted: the benchmark
//! fails only when a message is missing or carries no code.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Client;
use serde_json::{Value, json};

mod support;
use support::{Api, Server, env_or, percentile};

#[allow(dead_code)]
#[path = "../tests/server/helpers/smtp_sink.rs"]
mod smtp_sink;
#[allow(dead_code)]
#[path = "../tests/server/helpers/telegram_api.rs"]
mod telegram_api;

/// How long the benchmark waits for the last messages of a phase.
const DRAIN: Duration = Duration::from_secs(30);
const BOT_TOKEN: &str = "424242:bench-token";

/// Prepares for each login in turn, `rate` per second, and returns when each prepare answered.
async fn prepare_all(
    api: Arc<Api>,
    logins: Vec<String>,
    rate: f64,
) -> anyhow::Result<HashMap<String, Instant>> {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, login) in logins.into_iter().enumerate() {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let answer = api
                .call(
                    reqwest::Method::POST,
                    "/auth/prepare",
                    &json!({ "user": login }),
                )
                .await?;
            let answered = Instant::now();
            if answer["challenges"].as_array().is_none_or(|c| c.is_empty()) {
                bail!("prepare for {login} sent nothing: {answer}");
            }
            anyhow::Ok((login, answered))
        }));
    }
    let mut answered = HashMap::new();
    for task in tasks {
        let (login, at) = task.await??;
        answered.insert(login, at);
    }
    Ok(answered)
}

fn report(channel: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    println!(
        "{channel}: {} messages, prepare answered -> accepted: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied()),
    );
}

async fn run() -> anyhow::Result<()> {
    let count = env_or("OTPGATE_BENCH_PREPARES", 1000usize)?.max(1);
    let rate = env_or("OTPGATE_BENCH_RATE", 100.0f64)?;
    let binary = support::release_binary()?;
    let server = Server::start(&binary)?;
    println!(
        "otpgate {} (pid {}) listening on {}",
        binary.display(),
        server.child.id(),
        server.url
    );

    let smtp = smtp_sink::SmtpSink::start(smtp_sink::Mode::Plain).await;
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
    let put = reqwest::Method::PUT;
    admin
        .call(
            put.clone(),
            "/settings/mail",
            &json!({
                "host": "127.0.0.1", "port": smtp.port, "security": "none",
                "from_address": "otp@example.com", "timeout_seconds": 5,
            }),
        )
        .await?;
    admin
        .call(
            put,
            "/settings/bot",
            &json!({
                "token": BOT_TOKEN, "api_url": telegram.url, "poll_timeout_seconds": 1,
            }),
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
    let post = reqwest::Method::POST;
    admin
        .call(post.clone(), "/resources", &json!({"name": "bench"}))
        .await?;

    // MAIL users, and BOT users whose tokens are activated by playing Telegram.
    let started = Instant::now();
    let mut codes = Vec::new();
    for i in 0..count {
        let mail = format!("mail{i}");
        admin
            .call(
                post.clone(),
                "/users",
                &json!({"login": mail, "email": format!("{mail}@example.com")}),
            )
            .await?;
        admin
            .call(
                post.clone(),
                "/tokens",
                &json!({"kind": "MAIL", "user": mail, "resource": "bench"}),
            )
            .await?;
        let bot = format!("bot{i}");
        admin
            .call(post.clone(), "/users", &json!({"login": bot}))
            .await?;
        let token = admin
            .call(
                post.clone(),
                "/tokens",
                &json!({"kind": "BOT", "user": bot, "resource": "bench"}),
            )
            .await?;
        let code = token["activation"]["code"]
            .as_str()
            .context("an activation code")?;
        codes.push(code.to_string());
    }
    let chat_of = |i: usize| 1_000_000 + i as i64;
    for (i, code) in codes.iter().enumerate() {
        telegram.user_writes(chat_of(i), chat_of(i), &format!("/start {code}"));
    }
    let deadline = Instant::now() + DRAIN;
    while telegram.sent_count() < count {
        if Instant::now() > deadline {
            bail!(
                "only {} of {count} BOT tokens were activated",
                telegram.sent_count()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "provisioned {count} MAIL and {count} activated BOT users in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let app = Arc::new(Api {
        client,
        url: server.url.clone(),
        key: server.api_key(&["--resource", "bench"])?,
    });
    println!("{count} prepares per channel at {rate} per second");

    // MAIL
    let logins = (0..count).map(|i| format!("mail{i}")).collect();
    let answered = prepare_all(app.clone(), logins, rate).await?;
    let received = smtp.wait_for(count, DRAIN).await;
    let mut latencies = Vec::new();
    for message in &received {
        let to = message.to.first().context("a recipient")?;
        let login = to
            .trim_matches(['<', '>'])
            .split('@')
            .next()
            .unwrap_or_default();
        let Some(at) = answered.get(login) else {
            continue;
        };
        if smtp_sink::code_in(&message.data).is_none() {
            bail!("a message to {to} carries no code");
        }
        latencies.push(message.at.saturating_duration_since(*at));
    }
    if latencies.len() < count {
        bail!(
            "the SMTP listener received {} of {count} messages",
            latencies.len()
        );
    }
    report("MAIL (SMTP listener)", latencies);

    // BOT
    let before = telegram.sent_count();
    let logins = (0..count).map(|i| format!("bot{i}")).collect();
    let answered = prepare_all(app, logins, rate).await?;
    let deadline = Instant::now() + DRAIN;
    while telegram.sent_count() < before + count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::new();
    for sent in telegram.sent().iter().skip(before) {
        let i = (sent.chat_id - 1_000_000) as usize;
        let Some(at) = answered.get(&format!("bot{i}")) else {
            continue;
        };
        let has_code = sent
            .text
            .split(|c: char| !c.is_ascii_digit())
            .any(|run| (6..=8).contains(&run.len()));
        if !has_code {
            bail!("a message to chat {} carries no code", sent.chat_id);
        }
        latencies.push(sent.at.saturating_duration_since(*at));
    }
    if latencies.len() < count {
        bail!(
            "the Bot API received {} of {count} messages",
            latencies.len()
        );
    }
    report("BOT (Bot API sendMessage)", latencies);
    telegram.stop().await;
    server.stop()?;
    println!("the server stopped cleanly on SIGTERM");
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
