//! Directory sync benchmark: starts an OpenLDAP slapd of its own (unprivileged, a free
//! loopback port, a private cn=config, N generated people; default 10,000, at most 1,000 a
//! search without paging, as Active Directory), starts the release binary, creates the
//! directory through the API and times Sync now twice: the first sync (every person becomes a
//! user) and a second one in which nothing changed. Prints the time of each request and the
//! sync's own duration and counts. Speed is reported, not asserted: the benchmark fails only
//! when a sync does not answer or does not create everyone.
//!
//! `cargo bench --bench directory_sync`; `OTPGATE_BENCH_PEOPLE` (default 10,000). Needs
//! `slapd` (Debian's `slapd` package).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

mod support;
use support::slapd::{PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, Slapd};
use support::{Server, create, env_or};

async fn sync_now(
    client: &reqwest::Client,
    admin: &(String, reqwest::header::HeaderValue),
) -> anyhow::Result<(Duration, Value)> {
    let started = Instant::now();
    let response = client
        .post(format!("{}/api/v1/directories/bench/sync", admin.0))
        .header(AUTHORIZATION, admin.1.clone())
        .send()
        .await?;
    let status = response.status();
    let report: Value = response.json().await?;
    let elapsed = started.elapsed();
    if status != 200 || report["ok"] != true {
        bail!("Sync now answered {status}: {report}");
    }
    Ok((elapsed, report))
}

fn print(name: &str, elapsed: Duration, report: &Value) {
    println!(
        "{name}: {:.2} s (the sync's own {} ms): {} people, {} created, {} updated, {} disabled, \
         {} skipped",
        elapsed.as_secs_f64(),
        report["duration_ms"],
        report["people"],
        report["created"],
        report["updated"],
        report["disabled"],
        report["skipped"]
    );
}

async fn run() -> anyhow::Result<()> {
    let people = env_or("OTPGATE_BENCH_PEOPLE", 10_000usize)?.max(1);
    let started = Instant::now();
    let slapd = tokio::task::spawn_blocking(move || Slapd::start(people)).await??;
    println!(
        "slapd with {people} people on {} ({:.1} s to load)",
        slapd.url,
        started.elapsed().as_secs_f64()
    );
    let binary = support::release_binary()?;
    let server = Server::start(&binary)?;
    println!(
        "otpgate {} (pid {}) listening on {}",
        binary.display(),
        server.child.id(),
        server.url
    );
    let client = server.https_client()?;
    let admin = (server.url.clone(), server.api_key(&["--admin"])?);
    create(
        &client,
        &admin,
        "/directories",
        &json!({
            "name": "bench",
            "kind": "openldap",
            "urls": [slapd.url],
            "tls": "none",
            "bind_dn": SERVICE_DN,
            "bind_password": SERVICE_PASSWORD,
            "base_dn": PEOPLE_DN,
            "sync_interval_minutes": 1440,
        }),
    )
    .await?;

    let (elapsed, first) = sync_now(&client, &admin).await?;
    print("first sync", elapsed, &first);
    if first["created"] != people {
        bail!("the first sync created {} of {people}", first["created"]);
    }
    let (elapsed, second) = sync_now(&client, &admin).await?;
    print("second sync (nothing changed)", elapsed, &second);
    server.stop()?;
    drop(slapd);
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
