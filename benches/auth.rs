//! Load benchmark of `POST /api/v1/auth/authenticate`: starts the release binary on loopback,
//! provisions users with HOTP or TOTP tokens through the management API, and drives
//! authentications over keep-alive HTTPS from concurrent clients, printing requests per second,
//! latency percentiles and the server's memory. Speed is reported, not asserted: the benchmark
//! fails only when an answer is wrong. `benches/README-performance.md` lists the options.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

mod support;
use hmac::{Hmac, KeyInit};
use reqwest::Client;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use sha1::Sha1;
use support::http::{Connection, tls_connector};
use support::{Server, create, env_or, hotp, status_kb};

/// The PIN of the phase (c) tokens, typed before the code.
const PIN: &str = "4711";
/// HOTP counters a wrong code must miss: more than the server's look-ahead (10 by default), so
/// a "wrong" code never matches by chance.
const HOTP_SPAN: u64 = 32;
/// Provisioning requests in flight.
const PROVISIONERS: usize = 32;

/// One end user as the load generator sees it: the keyed HMAC state (reused for every code)
/// and what was sent already, so that no code is sent twice.
struct Account {
    login: String,
    secret: String,
    mac: Hmac<Sha1>,
    counter: u64,
    last_step: Option<u64>,
    wrong: Option<u32>,
}

impl Account {
    fn new(login: String) -> anyhow::Result<Account> {
        let mut seed = [0u8; 20];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let secret = data_encoding::BASE32_NOPAD.encode(&seed);
        let mac = Hmac::new_from_slice(&seed)?;
        let (counter, last_step, wrong) = (0, None, None);
        Ok(Account {
            login,
            secret,
            mac,
            counter,
            last_step,
            wrong,
        })
    }
}

/// The right code plus one (mod 10^6), moved on until it is none of the codes the server could
/// accept for these counters or time steps.
fn wrong_code(mac: &Hmac<Sha1>, right: u32, window: impl Iterator<Item = u64> + Clone) -> u32 {
    let mut code = (right + 1) % 1_000_000;
    while window.clone().any(|c| hotp(mac, c) == code) {
        code = (code + 1) % 1_000_000;
    }
    code
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Valid,
    Wrong,
    Pin,
}

/// The one-time password to send next, or None when a TOTP account was used in this step
/// already (the server's replay floor would rightly reject a second code).
fn next_otp(account: &mut Account, phase: Phase, totp: bool, step: u64) -> Option<String> {
    let mac = &account.mac;
    let code = match (phase, totp) {
        // A rejection does not move the counter, so one wrong code per account stays wrong.
        (Phase::Wrong, false) => *account.wrong.get_or_insert_with(|| {
            let c = account.counter;
            wrong_code(mac, hotp(mac, c), c..c + HOTP_SPAN)
        }),
        (Phase::Wrong, true) => wrong_code(mac, hotp(mac, step), step - 2..step + 3),
        (_, false) => {
            account.counter += 1;
            hotp(mac, account.counter - 1)
        }
        (_, true) if account.last_step == Some(step) => return None,
        (_, true) => {
            account.last_step = Some(step);
            hotp(mac, step)
        }
    };
    let pin = if phase == Phase::Pin { PIN } else { "" };
    Some(format!("{pin}{code:06}"))
}

/// What every client task shares: the request's head (request line and headers, up to the
/// body's length), and the kind of token.
struct Target {
    head: String,
    totp: bool,
}

/// One client task's results: every latency in microseconds, and the wrong answers.
#[derive(Default)]
struct Tally {
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Sends one authentication and returns the `result` of a 200 answer.
async fn authenticate(
    connection: &mut Connection,
    target: &Target,
    body: &str,
) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        result: String,
    }
    let (status, bytes) = connection.post(&target.head, body).await?;
    let text = || String::from_utf8_lossy(&bytes).into_owned();
    if status != 200 {
        return Err(format!("{status}: {}", text()));
    }
    let answer = serde_json::from_slice::<Answer>(&bytes);
    answer
        .map(|a| a.result)
        .map_err(|e| format!("{e}: {}", text()))
}

/// One client: walks its own accounts round robin until the deadline, one request at a time.
async fn drive(
    mut connection: Connection,
    target: Arc<Target>,
    mut accounts: Vec<Account>,
    (phase, deadline): (Phase, Instant),
) -> (Connection, Tally) {
    let expected = if phase == Phase::Wrong {
        "rejected"
    } else {
        "accepted"
    };
    let (mut tally, mut next, mut skipped) = (Tally::default(), 0, 0);
    let len = accounts.len();
    while len > 0 && Instant::now() < deadline {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        let now = now.unwrap_or_default().as_secs();
        let account = &mut accounts[next % len];
        next += 1;
        let Some(otp) = next_otp(account, phase, target.totp, now / 30) else {
            skipped += 1;
            if skipped >= len {
                // Every account of this client was used in this TOTP step: wait for the next.
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(Duration::from_secs(30 - now % 30).min(left)).await;
                skipped = 0;
            }
            continue;
        };
        skipped = 0;
        let mut body = String::with_capacity(64);
        let _ = write!(body, r#"{{"user":"{}","otp":"{otp}"}}"#, account.login);
        let started = Instant::now();
        let answer = authenticate(&mut connection, &target, &body).await;
        let micros = started.elapsed().as_micros();
        tally
            .latencies
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
        let problem = match answer {
            Ok(result) if result == expected => continue,
            Ok(result) => format!("{}: {result}, expected {expected}", account.login),
            Err(error) => format!("{}: {error}", account.login),
        };
        tally.errors += 1;
        tally.first_error.get_or_insert(problem);
    }
    (connection, tally)
}

/// The server process and its temporary directory (configuration and data): the process is
/// killed if this is dropped before `stop`, and the directory removed.
/// Creates the resource, then every user with their token, `PROVISIONERS` at a time.
async fn provision(
    client: &Client,
    admin: (String, HeaderValue),
    tokens: Vec<Value>,
) -> anyhow::Result<()> {
    create(client, &admin, "/resources", &json!({ "name": "bench" })).await?;
    let (admin, tokens) = (Arc::new(admin), Arc::new(tokens));
    let mut tasks = Vec::new();
    for first in 0..PROVISIONERS {
        let (client, admin, tokens) = (client.clone(), admin.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            for token in tokens.iter().skip(first).step_by(PROVISIONERS) {
                let user = json!({ "login": token["user"] });
                create(&client, &admin, "/users", &user).await?;
                create(&client, &admin, "/tokens", token).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// What every phase shares: the clients, the target, and the server's sampled memory.
struct Load {
    connections: Vec<Connection>,
    target: Arc<Target>,
    seconds: u64,
    peak_kb: Arc<AtomicU64>,
}

/// The latency at fraction `p` of the sorted microseconds, in milliseconds.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    support::percentile(sorted, p).map_or(0.0, |us| f64::from(us) / 1000.0)
}

impl Load {
    /// Runs one phase with one task per client and prints its figures; returns requests per
    /// second and the number of wrong answers.
    async fn run(
        &mut self,
        name: &str,
        phase: Phase,
        accounts: Vec<Account>,
    ) -> anyhow::Result<(f64, u64)> {
        let count = self.connections.len();
        let mut shares: Vec<Vec<Account>> = (0..count).map(|_| Vec::new()).collect();
        for (i, account) in accounts.into_iter().enumerate() {
            shares[i % count].push(account);
        }
        self.peak_kb.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(self.seconds);
        let mut tasks = Vec::new();
        for (share, connection) in shares.into_iter().zip(self.connections.drain(..)) {
            let target = self.target.clone();
            tasks.push(tokio::spawn(drive(
                connection,
                target,
                share,
                (phase, deadline),
            )));
        }
        let mut total = Tally::default();
        for task in tasks {
            let (connection, tally) = task.await?;
            self.connections.push(connection);
            total.latencies.extend(tally.latencies);
            total.errors += tally.errors;
            total.first_error = total.first_error.or(tally.first_error);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let (l, errors) = (&mut total.latencies, total.errors);
        l.sort_unstable();
        let (count, rate) = (l.len(), l.len() as f64 / elapsed);
        println!(
            "{name}\n    {count} requests in {elapsed:.1} s: {rate:.0} requests/s, {errors} errors"
        );
        let (p50, p90, p99) = (percentile(l, 0.5), percentile(l, 0.9), percentile(l, 0.99));
        let max = percentile(l, 1.0);
        let peak = self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0;
        println!(
            "    latency ms: p50 {p50:.2}, p90 {p90:.2}, p99 {p99:.2}, max {max:.2}; server peak RSS {peak:.1} MB"
        );
        if let Some(error) = total.first_error {
            println!("    first error: {error}");
        }
        Ok((rate, errors))
    }
}

async fn run() -> anyhow::Result<u64> {
    // The generator's HOTP must reproduce RFC 4226 appendix D before it may judge the server.
    let rfc = Hmac::<Sha1>::new_from_slice(b"12345678901234567890")?;
    if (hotp(&rfc, 0), hotp(&rfc, 9)) != (755_224, 520_489) {
        bail!("the benchmark's HOTP does not give the RFC 4226 test values");
    }
    let n = env_or("OTPGATE_BENCH_USERS", 10_000usize)?.max(1);
    let clients = env_or("OTPGATE_BENCH_CLIENTS", 64usize)?.max(1);
    let seconds = env_or("OTPGATE_BENCH_SECONDS", 10u64)?.max(1);
    let kind = env_or("OTPGATE_BENCH_KIND", "hotp".to_string())?.to_uppercase();
    let totp = kind == "TOTP";
    if !totp && kind != "HOTP" {
        bail!("OTPGATE_BENCH_KIND={kind}: hotp or totp");
    }
    let binary = support::release_binary()?;
    let shown = binary.display();
    let server = Server::start(&binary)?;
    let (pid, url) = (server.child.id(), &server.url);
    println!("otpgate {shown} (pid {pid}) listening on {url}");
    println!("rate limits for this run: api.user_rate = 0, api.end_user_ip_rate = 0 (unlimited)");
    let synchronous = support::synchronous()?;
    let synchronous = synchronous.as_deref().unwrap_or("the server's default");
    println!("storage.synchronous for this run: {synchronous}");

    let pem = std::fs::read(server.dir.path().join("data/tls/cert.pem"))?;
    let certificate = reqwest::Certificate::from_pem(&pem)?;
    let new_client = || {
        let builder = Client::builder().add_root_certificate(certificate.clone());
        builder.http1_only().tcp_nodelay(true).build()
    };
    let accounts = |prefix: &str, count: usize| -> anyhow::Result<Vec<Account>> {
        (0..count)
            .map(|i| Account::new(format!("{prefix}{i}")))
            .collect()
    };
    let valid = accounts("user", n)?;
    let wrong = accounts("wronguser", n.div_ceil(10))?;
    let pin = accounts("pinuser", n.div_ceil(10))?;
    let mut tokens = Vec::new();
    for (set, with_pin) in [(&valid, false), (&wrong, false), (&pin, true)] {
        for Account { login, secret, .. } in set {
            let mut token = json!({ "kind": kind, "secret": secret, "user": login });
            token["resource"] = "bench".into();
            if with_pin {
                token["pin"] = PIN.into();
                token["pin_position"] = "before".into();
            }
            tokens.push(token);
        }
    }
    let (started, count) = (Instant::now(), tokens.len());
    let admin = (url.clone(), server.api_key(&["--admin"])?);
    let provisioned = provision(&new_client()?, admin, tokens).await;
    provisioned.context("provisioning (does this binary have the management API?)")?;
    let took = started.elapsed().as_secs_f64();
    println!("provisioned {count} users with {kind} tokens in {took:.1} s");
    if totp {
        println!("TOTP: each user is used once per 30 s step, so (a) accepts at most {n} per 30 s");
    }

    let key = server.api_key(&["--resource", "bench"])?;
    let key = key.to_str()?;
    let address: std::net::SocketAddr = url
        .strip_prefix("https://")
        .context("the server's address is not https://")?
        .parse()?;
    let head = format!(
        "POST /api/v1/auth/authenticate HTTP/1.1\r\nHost: {address}\r\nAuthorization: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: "
    );
    let target = Arc::new(Target { head, totp });
    let tls = tls_connector(&pem, rustls::DEFAULT_VERSIONS)?;
    // One keep-alive connection per client task, so no task waits on another's connection.
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(address, &tls).await?);
    }
    let peak_kb = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (peak_kb, stop) = (peak_kb.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                peak_kb.fetch_max(status_kb(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    println!("{} clients, {seconds} s per phase", connections.len());
    let mut load = Load {
        connections,
        target,
        seconds,
        peak_kb,
    };
    let (a, errors_a) = load.run("(a) valid codes", Phase::Valid, valid).await?;
    let name = "(b) wrong codes (a token locks after 5 misses; its rejections count too)";
    let (b, errors_b) = load.run(name, Phase::Wrong, wrong).await?;
    let (c, errors_c) = load
        .run("(c) valid codes after a PIN", Phase::Pin, pin)
        .await?;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let hwm = status_kb(pid, "VmHWM:") as f64 / 1024.0;
    let (b_a, c_a) = (b / a.max(1.0), c / a.max(1.0));
    println!("(b)/(a) {b_a:.2}, (c)/(a) {c_a:.2}; server VmHWM {hwm:.1} MB");
    drop(load);
    server.stop()?;
    println!("the server stopped cleanly on SIGTERM");
    Ok(errors_a + errors_b + errors_c)
}

fn main() -> ExitCode {
    support::run_main(async {
        match run().await? {
            0 => Ok(()),
            errors => bail!("{errors} wrong answers"),
        }
    })
}
