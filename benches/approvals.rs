//! Pending approvals benchmark: starts the release binary on loopback, with RADIUS on a free
//! loopback port and the fake Bot API the tests use, provisions users with activated BOT tokens
//! in a resource that allows approvals, and holds logins waiting for their approvals, all at
//! once, of two kinds:
//! - **API waits**: an approval asked for with `POST /api/v1/auth/prepare` and `approve`, then
//!   one `POST /api/v1/auth/authenticate` with `wait`, each on a connection of its own;
//! - **held RADIUS requests**: an Access-Request from a gateway in the one-field mode
//!   (`password_code`) whose field is the password and the word `push`; the server checks the
//!   password, asks for the approval and holds the request until the decision. Each virtual
//!   gateway has a UDP socket of its own and sends its request again every 10 s while it waits,
//!   as gateways do.
//!
//! While they wait it reports the server's resident memory (and what each waiting login of
//! each kind adds) and its CPU use; then it presses every approval's right button in the fake
//! Telegram and reports how long each waiting login took to answer after its press.
//! Speed is reported, not asserted: the benchmark fails only when an approval is missing, a
//! wait or a held request ends before its decision, an approved login is not accepted, or a
//! login sent more than one message (a retransmit must join its held request).
//!
//! `OTPGATE_BENCH_APPROVALS` (default 10000) logins in all, `OTPGATE_BENCH_RADIUS_APPROVALS`
//! (default half of them) of them held RADIUS requests; `OTPGATE_BENCH_HOLD_SECONDS` (default
//! 20) the time measured while they all wait.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use otpgate::radius::packet::{
    ACCESS_ACCEPT, ACCESS_REQUEST, Attribute, CALLING_STATION_ID, MAX_PACKET_LEN,
    MESSAGE_AUTHENTICATOR, NAS_IDENTIFIER, Packet, USER_NAME, USER_PASSWORD, hide_password,
    reply_valid, request,
};
use reqwest::Client;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

mod support;
use support::http::{Connection, tls_connector};
use support::{Api, Server, TICKS_PER_SECOND, cpu_ticks, env_or, percentile, status_kb};

#[allow(dead_code)]
#[path = "../tests/server/helpers/telegram_api.rs"]
mod telegram_api;

const BOT_TOKEN: &str = "424242:bench-token";
/// How long the benchmark waits for a phase's messages or answers.
const DRAIN: Duration = Duration::from_secs(120);
/// Provisioning and prepares in flight at once.
const PARALLEL: usize = 32;
/// The RADIUS client the benchmark plays: its shared secret, and what its users type.
const GATEWAY_SECRET: &str = "a shared secret for the approvals benchmark";
const PASSWORD: &str = "a password for the benchmark";
const WORD: &str = "push";
/// The longest a RADIUS client may have its requests held (`approval_wait`).
const GATEWAY_WAIT_SECONDS: u64 = 120;
/// How often a virtual gateway sends its held request again.
const RETRANSMIT: Duration = Duration::from_secs(10);
/// RADIUS requests sent whose approvals are not asked for yet, at most: their passwords wait
/// for the server's password workers.
const RADIUS_WINDOW: usize = 48;

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

/// One login waiting for its approval's decision: its user's number, and the task that
/// waits for the server's answer.
struct Waiting<T> {
    index: usize,
    answer: JoinHandle<Result<T, String>>,
}

/// An API wait's answer: its status, its body, and when it came.
type Answered = (u16, Vec<u8>, Instant);

/// A held RADIUS request's answer: its code, when it came, and how many times the request was
/// sent again before it.
type Decided = (u8, Instant, u32);

/// Fails when a login of `waiting` was answered already: none may be before its decision.
async fn none_answered<T: Debug>(waiting: &mut Vec<Waiting<T>>) -> anyhow::Result<()> {
    if let Some(at) = waiting.iter().position(|w| w.answer.is_finished()) {
        let ended = waiting.swap_remove(at);
        let answer = ended.answer.await?;
        bail!(
            "the login of bot{} ended before its approval was decided: {answer:?}",
            ended.index
        );
    }
    Ok(())
}

/// One user's login through a RADIUS gateway in the one-field mode: the password and the word
/// that asks for an approval, sent again every `RETRANSMIT` until the server answers (or
/// `give_up`). The answer must carry a Message-Authenticator first and both its
/// authenticators right.
async fn gateway_login(
    server: SocketAddr,
    login: String,
    give_up: Instant,
) -> Result<Decided, String> {
    let secret = GATEWAY_SECRET.as_bytes();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("no socket: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut authenticator = [0u8; 16];
    getrandom::fill(&mut authenticator).map_err(|e| format!("no randomness: {e}"))?;
    let typed = format!("{PASSWORD}{WORD}");
    let hidden =
        hide_password(typed.as_bytes(), secret, &authenticator).map_err(|e| e.to_string())?;
    let attributes = vec![
        Attribute::new(USER_NAME, login.as_bytes()),
        Attribute::new(USER_PASSWORD, hidden),
        Attribute::new(NAS_IDENTIFIER, b"bench-gateway".as_slice()),
        Attribute::new(CALLING_STATION_ID, b"198.51.100.8".as_slice()),
    ];
    let bytes = request(ACCESS_REQUEST, 0, authenticator, attributes, secret, true)
        .map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; MAX_PACKET_LEN];
    let mut again = 0;
    loop {
        let sent = socket.send(&bytes).await;
        sent.map_err(|e| format!("cannot send: {e}"))?;
        let until = (Instant::now() + RETRANSMIT).min(give_up);
        let until = tokio::time::Instant::from_std(until);
        match tokio::time::timeout_at(until, socket.recv(&mut buffer)).await {
            Ok(Ok(length)) => {
                let answer = &buffer[..length];
                let packet = Packet::parse(answer).map_err(|e| format!("malformed: {e}"))?;
                if packet.attributes.first().map(|a| a.kind) != Some(MESSAGE_AUTHENTICATOR)
                    || !reply_valid(answer, &authenticator, secret)
                {
                    return Err("an answer without a right Message-Authenticator first".into());
                }
                return Ok((packet.code, Instant::now(), again));
            }
            Ok(Err(e)) => return Err(format!("no answer: {e}")),
            Err(_) if Instant::now() >= give_up => return Err("no answer in time".into()),
            Err(_) => again += 1,
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let count = env_or("OTPGATE_BENCH_APPROVALS", 10_000usize)?.max(1);
    let radius_count = env_or("OTPGATE_BENCH_RADIUS_APPROVALS", count / 2)?.min(count);
    let api_count = count - radius_count;
    let hold = Duration::from_secs(env_or("OTPGATE_BENCH_HOLD_SECONDS", 20u64)?);
    let binary = support::release_binary()?;
    // Room for every waiting connection and a few more; approvals valid long enough for the
    // whole run; a wait as long as the benchmark needs. The RADIUS users' passwords are hashed
    // and checked by two password workers, with room in their queue for the benchmark's
    // provisioning.
    let server_section = format!(
        "pending_connections_per_address = 0\nmax_connections = {}\n",
        count + 1000
    );
    let rest = format!(
        "listen = [\"127.0.0.1:0\"]\naccounting_listen = []\n\
         [auth]\nchallenge_validity_seconds = 3600\napproval_wait_max_seconds = 300\n\
         approval_waiters_max = {}\n[passwords]\nworkers = 2\nqueue = 1000\nwait_ms = 60000\n",
        count + 100
    );
    let server = Server::start_configured(&binary, &server_section, &rest)?;
    let pid = server.child.id();
    let ports = server.udp_ports()?;
    let [port] = ports[..] else {
        bail!("the server has bound UDP ports {ports:?}, not the one RADIUS port");
    };
    let gateway = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    println!(
        "otpgate {} (pid {pid}) listening on {}, RADIUS on {gateway}",
        binary.display(),
        server.url
    );
    let telegram = telegram_api::TelegramApi::start().await;
    let pem = server.certificate()?;
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .build()?;
    let admin = Arc::new(Api {
        client: client.clone(),
        url: server.url.clone(),
        key: server.api_key(&["--admin"])?,
    });
    let (get, put, post, patch) = (
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::POST,
        reqwest::Method::PATCH,
    );
    let bot = json!({"token": BOT_TOKEN, "api_url": telegram.url, "poll_timeout_seconds": 1});
    admin.call(put, "/settings/bot", &bot).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin
        .call(get.clone(), "/settings/bot", &Value::Null)
        .await?["status"]["state"]
        != "running"
    {
        if Instant::now() > deadline {
            bail!("the bot did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let approvals = json!({"approvals": {"allowed": true}});
    admin
        .call(post.clone(), "/resources", &json!({"name": "bench"}))
        .await?;
    admin.call(patch, "/resources/bench", &approvals).await?;
    let gateway_client = json!({
        "name": "bench-gateway", "address": "127.0.0.1", "secret": GATEWAY_SECRET,
        "resource": "bench", "input_mode": "password_code",
        "approval_wait": GATEWAY_WAIT_SECONDS, "approval_word": WORD,
    });
    admin
        .call(post.clone(), "/radius/clients", &gateway_client)
        .await?;
    println!(
        "RADIUS client bench-gateway for 127.0.0.1: password_code, the password and \"{WORD}\" \
         ask for an approval, held up to {GATEWAY_WAIT_SECONDS} s"
    );

    // Users with BOT tokens, activated by playing Telegram; the RADIUS users with passwords.
    let started = Instant::now();
    let codes = in_parallel(count, |i| {
        let admin = admin.clone();
        async move {
            let login = format!("bot{i}");
            let user = if i < api_count {
                json!({"login": login})
            } else {
                json!({"login": login, "password": PASSWORD})
            };
            admin.call(reqwest::Method::POST, "/users", &user).await?;
            let token = json!({"kind": "BOT", "user": login, "resource": "bench"});
            let token = admin.call(reqwest::Method::POST, "/tokens", &token).await?;
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
    let activated = || telegram.sent_count() >= count;
    wait_until(activated, "the BOT tokens' activations").await?;
    println!(
        "provisioned {count} users with activated BOT tokens in {:.1} s ({radius_count} of them \
         with passwords, for RADIUS)",
        started.elapsed().as_secs_f64()
    );

    // The API's approvals, one each.
    let app = Arc::new(Api {
        client: client.clone(),
        url: server.url.clone(),
        key: server.api_key(&["--resource", "bench"])?,
    });
    let started = Instant::now();
    let asked = in_parallel(api_count, |i| {
        let app = app.clone();
        async move {
            let body = json!({"user": format!("bot{i}"), "approve": true, "ip": "198.51.100.7"});
            let answer = app
                .call(reqwest::Method::POST, "/auth/prepare", &body)
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
    let messages = || telegram.sent_count() >= count + api_count;
    wait_until(messages, "the API approvals' messages").await?;
    println!(
        "{api_count} approvals asked for through the API and their messages sent in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every API login waits, each on a connection of its own.
    let address: SocketAddr = server
        .url
        .trim_start_matches("https://")
        .parse()
        .context("the server's address")?;
    let tls = tls_connector(&pem, &[&rustls::version::TLS13])?;
    let key = app.key.to_str()?.to_string();
    let rss_before = status_kb(pid, "VmRSS:");
    let opening = Instant::now();
    let mut api_waits = Vec::with_capacity(api_count);
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
        api_waits.push(Waiting {
            index,
            answer: tokio::spawn(async move {
                let mut connection = Connection::open(address, &tls)
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                // The connection is open: the next one may start.
                drop(permit);
                let (status, body) = connection.post(&head, &body).await?;
                Ok::<Answered, String>((status, body, Instant::now()))
            }),
        });
    }
    let deadline = Instant::now() + DRAIN;
    while admin.waiting().await? < api_count {
        none_answered(&mut api_waits).await?;
        if Instant::now() > deadline {
            bail!(
                "only {} of {api_count} API logins are waiting",
                admin.waiting().await?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_api = status_kb(pid, "VmRSS:");
    println!(
        "{api_count} API logins waiting after {:.1} s",
        opening.elapsed().as_secs_f64()
    );

    // Every RADIUS login held, each from a socket of its own. The server checks each password
    // before it asks for the approval: the gateways send only as fast as that goes.
    let opening = Instant::now();
    let give_up = opening + Duration::from_secs(300);
    let before = count + api_count;
    let mut held = Vec::with_capacity(radius_count);
    let deadline = Instant::now() + DRAIN;
    for index in api_count..count {
        while held.len() > telegram.sent_count().saturating_sub(before) + RADIUS_WINDOW {
            none_answered(&mut held).await?;
            if Instant::now() > deadline {
                bail!("the RADIUS logins' approvals are not asked for in time");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let login = format!("bot{index}");
        let answer = tokio::spawn(gateway_login(gateway, login, give_up));
        held.push(Waiting { index, answer });
    }
    let deadline = Instant::now() + DRAIN;
    while admin.waiting().await? < count {
        none_answered(&mut api_waits).await?;
        none_answered(&mut held).await?;
        if Instant::now() > deadline {
            bail!(
                "only {} of {count} logins are waiting",
                admin.waiting().await?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_all = status_kb(pid, "VmRSS:");
    println!(
        "{radius_count} RADIUS logins held after {:.1} s (each password checked by Argon2id on \
         the server's two password workers)",
        opening.elapsed().as_secs_f64()
    );

    let ticks_before = cpu_ticks(pid);
    let measuring = Instant::now();
    tokio::time::sleep(hold).await;
    let ticks = cpu_ticks(pid).saturating_sub(ticks_before);
    let seconds = measuring.elapsed().as_secs_f64();
    let rss_after = status_kb(pid, "VmRSS:");
    let still = admin.waiting().await?;
    let per = |kb: u64, n: usize| kb as f64 / n.max(1) as f64;
    println!(
        "while {still} logins waited for {seconds:.0} s ({api_count} API waits, {radius_count} \
         held RADIUS requests): server RSS {:.1} MB ({:.1} MB before they came); each API wait \
         added {:.1} kB (its connection and TLS included), each held RADIUS request {:.1} kB; \
         CPU {:.1} % of one core (the gateways' retransmits included)",
        rss_after as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        per(rss_api.saturating_sub(rss_before), api_count),
        per(rss_all.saturating_sub(rss_api), radius_count),
        ticks as f64 / TICKS_PER_SECOND / seconds * 100.0,
    );

    // Every approval's right button pressed, an API one and a RADIUS one in turn: how soon each
    // waiting login answers.
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
    let mut pressed_at = vec![Instant::now(); count];
    let order = (0..api_count.max(radius_count))
        .flat_map(|i| {
            [
                (i < api_count).then_some(i),
                (i < radius_count).then_some(api_count + i),
            ]
        })
        .flatten();
    for i in order {
        let approval = approval_of
            .get(&chat_of(i))
            .context("an approval's message")?;
        // The API's approvals match numbers; a one-field gateway's offer Approve.
        let choice = asked.get(i).map_or("ok", |(_, number)| number.as_str());
        pressed_at[i] = Instant::now();
        telegram.user_presses(
            chat_of(i),
            chat_of(i),
            1,
            &format!("ap:{approval}:{choice}"),
        );
    }
    let mut api_latencies = Vec::with_capacity(api_count);
    for Waiting { index, answer } in api_waits {
        let (status, body, at) = answer.await?.map_err(anyhow::Error::msg)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != 200 || body["result"] != "accepted" {
            bail!("bot{index}'s approved login answered {status}: {body}");
        }
        api_latencies.push(at.saturating_duration_since(pressed_at[index]));
    }
    let (mut radius_latencies, mut retransmits) = (Vec::with_capacity(radius_count), 0);
    for Waiting { index, answer } in held {
        let (code, at, again) = answer.await?.map_err(anyhow::Error::msg)?;
        if code != ACCESS_ACCEPT {
            bail!("bot{index}'s approved RADIUS login answered code {code}, not Access-Accept");
        }
        retransmits += again;
        radius_latencies.push(at.saturating_duration_since(pressed_at[index]));
    }
    let messages = telegram.sent_count() - count;
    if messages != count {
        bail!("{messages} approval messages for {count} logins: one each is right");
    }
    for (kind, latencies) in [
        ("API waits", &mut api_latencies),
        ("held RADIUS requests", &mut radius_latencies),
    ] {
        latencies.sort();
        let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        println!(
            "{} approved {kind} accepted; press -> answer: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            latencies.len(),
            ms(percentile(latencies, 0.50)),
            ms(percentile(latencies, 0.99)),
            ms(latencies.last().copied()),
        );
    }
    println!(
        "(the bot decides the presses 100 per long poll, one after another, and answers Telegram \
         beside them); one message per login: {messages} for \
         {count}, while the gateways sent their held requests {retransmits} times again"
    );
    server.stop()?;
    telegram.stop().await;
    Ok(())
}

/// Waits until `done` holds, for at most `DRAIN`.
async fn wait_until(done: impl Fn() -> bool, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + DRAIN;
    while !done() {
        if Instant::now() > deadline {
            bail!("{what} did not come within {} s", DRAIN.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
