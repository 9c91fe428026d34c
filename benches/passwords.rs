//! Password flood benchmark: starts the release binary on loopback, makes a user with a
//! password and an HOTP token, opens 1,000 keep-alive HTTPS connections, then releases 1,000
//! `user + password + code` authentications at once. It samples the server's resident memory
//! from `/proc` during the flood and reports the peak, and meanwhile measures `/healthz` and
//! code-only authentications on other connections. Figures are reported, not asserted: the
//! benchmark fails only when the run cannot be set up or an answer is a 5xx other than 503.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Client;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};
use sha1::Sha1;
use tokio::sync::Barrier;

mod support;
use support::{Server, create, env_or, percentile, status_kb};

const PASSWORD: &str = "a password for the flood";

/// RFC 4226 HOTP, six digits, written here so that the benchmark checks the server
/// independently.
fn hotp(seed: &[u8], counter: u64) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(seed) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bytes = <[u8; 4]>::try_from(&digest[offset..offset + 4]).unwrap_or_default();
    format!(
        "{:06}",
        (u32::from_be_bytes(bytes) & 0x7fff_ffff) % 1_000_000
    )
}

/// How the flood's answers came out.
#[derive(Default, Debug)]
struct Counts {
    accepted: u64,
    rejected: u64,
    busy: u64,
    too_many: u64,
    other: u64,
    server_errors: u64,
    first_other: Option<String>,
}

/// Latencies in microseconds of requests sent one after the other until `stop`.
async fn probe(
    client: Client,
    stop: Arc<AtomicBool>,
    mut send: impl FnMut(&Client, u64) -> reqwest::RequestBuilder,
) -> (Vec<u64>, u64) {
    let (mut latencies, mut failures) = (Vec::new(), 0);
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let ok = match send(&client, sent).send().await {
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                status == 200 && !body.contains("\"rejected\"")
            }
            Err(_) => false,
        };
        latencies.push(started.elapsed().as_micros() as u64);
        failures += u64::from(!ok);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies.sort_unstable();
    (latencies, failures)
}

fn milliseconds(sorted: &[u64], p: f64) -> f64 {
    percentile(sorted, p).unwrap_or(0) as f64 / 1000.0
}

async fn run() -> anyhow::Result<()> {
    if hotp(b"12345678901234567890", 0) != "755224" {
        bail!("the benchmark's HOTP does not give the RFC 4226 test value");
    }
    let flood = env_or("OTPGATE_BENCH_FLOOD", 1000usize)?.max(1);
    let binary = support::release_binary()?;
    let server = Server::start(&binary)?;
    let (pid, url) = (server.child.id(), server.url.clone());
    println!(
        "otpgate {} (pid {pid}) listening on {url}",
        binary.display()
    );

    let pem = std::fs::read(server.dir.path().join("data/tls/cert.pem"))?;
    let certificate = reqwest::Certificate::from_pem(&pem)?;
    let new_client = || {
        Client::builder()
            .add_root_certificate(certificate.clone())
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .build()
    };
    let admin = (url.clone(), server.api_key(&["--admin"])?);
    let setup = new_client()?;
    create(&setup, &admin, "/resources", &json!({"name": "bench"})).await?;
    let seed = b"benchmark seed of twenty";
    let secret = data_encoding::BASE32_NOPAD.encode(seed);
    for login in ["flood", "probe"] {
        let user = json!({"login": login, "password": PASSWORD});
        create(&setup, &admin, "/users", &user).await?;
        let token = json!({"kind": "HOTP", "secret": secret, "user": login, "resource": "bench"});
        create(&setup, &admin, "/tokens", &token).await?;
    }
    let key = server.api_key(&["--resource", "bench"])?;
    let authenticate = format!("{url}/api/v1/auth/authenticate");
    let healthz = format!("{url}/healthz");

    // One client, and so one keep-alive connection, per flood request, opened first.
    let mut clients = Vec::with_capacity(flood);
    for _ in 0..flood {
        let client = new_client()?;
        let answer = client.get(&healthz).send().await?;
        if !answer.status().is_success() {
            bail!("/healthz answered {}", answer.status());
        }
        answer.bytes().await?;
        clients.push(client);
    }
    let before_kb = status_kb(pid, "VmRSS:");
    println!(
        "{flood} connections open; server RSS {:.1} MB",
        before_kb as f64 / 1024.0
    );

    let peak_kb = Arc::new(AtomicU64::new(before_kb));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (peak_kb, stop) = (peak_kb.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                peak_kb.fetch_max(status_kb(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    let health_probe = tokio::spawn(probe(new_client()?, stop.clone(), {
        let healthz = healthz.clone();
        move |client, _| client.get(&healthz)
    }));
    let code_probe = tokio::spawn(probe(new_client()?, stop.clone(), {
        let (authenticate, key) = (authenticate.clone(), key.clone());
        move |client, sent| {
            client
                .post(&authenticate)
                .header(AUTHORIZATION, key.clone())
                .json(&json!({"user": "probe", "otp": hotp(seed, sent)}))
        }
    }));
    // Let the probes find their pace before the flood.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let barrier = Arc::new(Barrier::new(flood));
    let body = json!({"user": "flood", "password": PASSWORD, "otp": hotp(seed, 0)});
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(flood);
    for client in clients {
        let (barrier, body, key): (_, Value, HeaderValue) =
            (barrier.clone(), body.clone(), key.clone());
        let authenticate = authenticate.clone();
        tasks.push(tokio::spawn(async move {
            let request = client
                .post(&authenticate)
                .header(AUTHORIZATION, key)
                .json(&body);
            barrier.wait().await;
            let answer = request.send().await.map_err(|e| e.to_string())?;
            let status = answer.status().as_u16();
            let retry_after = answer.headers().contains_key("retry-after");
            let text = answer.text().await.unwrap_or_default();
            Ok::<_, String>((status, retry_after, text))
        }));
    }
    let mut counts = Counts::default();
    for task in tasks {
        match task.await? {
            Ok((200, _, text)) if text.contains("\"accepted\"") => counts.accepted += 1,
            Ok((200, _, _)) => counts.rejected += 1,
            Ok((503, true, _)) => counts.busy += 1,
            Ok((429, _, _)) => counts.too_many += 1,
            Ok((status, _, text)) => {
                if status >= 500 {
                    counts.server_errors += 1;
                }
                counts.other += 1;
                counts
                    .first_other
                    .get_or_insert(format!("{status}: {text}"));
            }
            Err(error) => {
                counts.other += 1;
                counts.first_other.get_or_insert(error);
            }
        }
    }
    let flood_took = started.elapsed().as_secs_f64();
    // The probes and the sampler go on a little after the last answer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (health, health_failures) = health_probe.await?;
    let (codes, code_failures) = code_probe.await?;
    let _ = sampler.join();
    let peak = peak_kb.load(Ordering::Relaxed) as f64 / 1024.0;
    let after = status_kb(pid, "VmRSS:") as f64 / 1024.0;

    println!("{flood} password authentications released together, answered in {flood_took:.2} s:");
    println!(
        "    accepted {}, rejected {}, 503 busy {}, 429 {}, other {}",
        counts.accepted, counts.rejected, counts.busy, counts.too_many, counts.other
    );
    if let Some(first) = &counts.first_other {
        println!("    first other answer: {first}");
    }
    println!(
        "server RSS: peak {peak:.1} MB during the flood (target < 100 MB), {after:.1} MB after"
    );
    for (name, sorted, failures) in [
        ("/healthz", &health, health_failures),
        ("code-only authentication", &codes, code_failures),
    ] {
        println!(
            "{name} meanwhile: {} requests, {failures} not 200/accepted; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            sorted.len(),
            milliseconds(sorted, 0.50),
            milliseconds(sorted, 0.99),
            milliseconds(sorted, 1.0),
        );
    }
    server.stop()?;
    println!("the server stopped cleanly on SIGTERM");
    if counts.server_errors > 0 {
        bail!("{} answers were 5xx other than 503", counts.server_errors);
    }
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
