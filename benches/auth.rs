//! Load benchmark of `POST /api/v1/auth/authenticate`: starts the release binary on loopback,
//! provisions users with HOTP or TOTP tokens through the management API, and drives
//! authentications over keep-alive HTTPS from concurrent clients, printing requests per second,
//! latency percentiles and the server's memory. Speed is reported, not asserted: the benchmark
//! fails only when an answer is wrong. The README's Performance section lists the options.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use hmac::{Hmac, KeyInit};
use serde_json::json;
use sha1::Sha1;

mod support;
use support::accounts::{Account, PIN, Phase, provision};
use support::api::Load;
use support::{Sampler, Server, create, env_or, hotp, status_kb};

async fn run() -> anyhow::Result<u64> {
    // The generator's HOTP must reproduce RFC 4226 appendix D before it may judge the server.
    let rfc = Hmac::<Sha1>::new_from_slice(b"12345678901234567890")?;
    if (hotp(&rfc, 0), hotp(&rfc, 9)) != (755_224, 520_489) {
        bail!("the benchmark's HOTP does not give the RFC 4226 test values");
    }
    let n = env_or("OTPGATE_BENCH_USERS", 10_000usize)?.max(1);
    let clients = env_or("OTPGATE_BENCH_CLIENTS", 64usize)?.max(1);
    // Every rejection is held until a millisecond after its attempt began (about two, as the
    // server's timer counts): (b) needs more requests in flight than (a) for its rate to
    // measure the server rather than that hold.
    let wrong_clients = env_or("OTPGATE_BENCH_WRONG_CLIENTS", 2 * clients)?.max(1);
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

    let valid = Account::many("user", n)?;
    let wrong = Account::many("wronguser", n.div_ceil(10))?;
    let pin = Account::many("pinuser", n.div_ceil(10))?;
    let mut users = Vec::new();
    for (set, with_pin) in [(&valid, false), (&wrong, false), (&pin, true)] {
        for account in set {
            let mut token = account.token(&kind, "bench");
            if with_pin {
                token["pin"] = PIN.into();
                token["pin_position"] = "before".into();
            }
            users.push((json!({ "login": account.login }), token));
        }
    }
    let (started, count) = (Instant::now(), users.len());
    let client = server.https_client()?;
    let admin = (url.clone(), server.api_key(&["--admin"])?);
    let provisioned = async {
        create(&client, &admin, "/resources", &json!({ "name": "bench" })).await?;
        provision(&client, admin.clone(), users).await
    };
    let provisioned = provisioned.await;
    provisioned.context("provisioning (does this binary have the management API?)")?;
    let took = started.elapsed().as_secs_f64();
    println!("provisioned {count} users with {kind} tokens in {took:.1} s");
    if totp {
        println!("TOTP: each user is used once per 30 s step, so (a) accepts at most {n} per 30 s");
    }

    let sampler = Sampler::start(pid);
    println!("{clients} clients, {wrong_clients} in (b); {seconds} s per phase");
    // Each phase opens its connections just before it: the server closes one that sends no
    // first request within seconds.
    let mut load = Load::open(&server, "bench", (clients, seconds, totp)).await?;
    let a = load
        .run("(a) valid codes", Phase::Valid, valid, &sampler)
        .await?;
    drop(load);
    let mut load = Load::open(&server, "bench", (wrong_clients, seconds, totp)).await?;
    let name = "(b) wrong codes (a token locks after 5 misses; its rejections count too)";
    let b = load.run(name, Phase::Wrong, wrong, &sampler).await?;
    drop(load);
    let mut load = Load::open(&server, "bench", (clients, seconds, totp)).await?;
    let c = load
        .run("(c) valid codes after a PIN", Phase::Pin, pin, &sampler)
        .await?;
    drop(sampler);
    let hwm = status_kb(pid, "VmHWM:") as f64 / 1024.0;
    let (b_a, c_a) = (b.rate / a.rate.max(1.0), c.rate / a.rate.max(1.0));
    println!("(b)/(a) {b_a:.2}, (c)/(a) {c_a:.2}; server VmHWM {hwm:.1} MB");
    drop(load);
    server.stop()?;
    println!("the server stopped cleanly on SIGTERM");
    Ok(a.errors + b.errors + c.errors)
}

fn main() -> ExitCode {
    support::run_main(async {
        match run().await? {
            0 => Ok(()),
            errors => bail!("{errors} wrong answers"),
        }
    })
}
