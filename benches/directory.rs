//! Directory users through the HTTPS API: `user + password + code`, the password checked by a
//! bind as the person in a real OpenLDAP slapd started here, the code by otpgate; then the
//! refusals of logins no one has, with and without the lookup's memory of misses.
//!
//! 1. Starts slapd (`/usr/sbin/slapd`, Debian's `slapd` package) with N people, each with a
//!    password, and the release binary (`support::Server`).
//! 2. Creates the resource `bench` and the directory `bench` (`openldap`, no TLS on the
//!    loopback), links every person as a user (`POST /directories/bench/users`) and gives
//!    each an HOTP token in `bench`.
//! 3. Phases of `OTPGATE_BENCH_SECONDS`, C clients on keep-alive connections:
//!    - (a) right password and code: every answer must be `accepted`;
//!    - (b) unknown logins with a code and no password, few of them (`ghost0`…`ghost{M-1}`)
//!      tried again and again: each is searched for once, then answered from the lookup's
//!      memory; `rejected` (or 429 once a name's failures call for a wait) is right;
//!    - (c) unknown logins with a code, never tried before, one per request: each may cost a
//!      search, at most a few at once (the lever a caller has on the directory).
//!
//!    With a password, an unknown login's refusal also costs the dummy Argon2 check (the
//!    password gate's rate, see "Password floods"), which would hide the lookup's cost.
//!
//! It prints requests per second, p50/p90/p99 and the server's peak memory for each phase,
//! and the searches the server counted (`otpgate_directory_searches_total`). Speed is
//! reported, not asserted; exit 1 when an answer was wrong or the run could not be set up.
//!
//! `cargo bench --bench directory`; `OTPGATE_BENCH_USERS` (N, 1,000), `OTPGATE_BENCH_CLIENTS`
//! (C, 16), `OTPGATE_BENCH_SECONDS` (10), `OTPGATE_BENCH_GHOSTS` (M, 100).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

mod support;
use support::accounts::{Account, Phase, next_otp};
use support::http::{Connection, tls_connector};
use support::slapd::{PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, Slapd, login, password};
use support::{Sampler, Server, Tally, create, env_or, report};

/// Provisioning requests in flight.
const PROVISIONERS: usize = 16;

/// A directory user of the load: their HOTP account and directory password.
struct Person {
    account: Account,
    password: String,
}

/// What a phase sends.
#[derive(Clone, Copy)]
enum Load {
    /// Right password and code, round robin over the client's people.
    Valid,
    /// `ghost{n % ghosts}`.
    FewGhosts(usize),
    /// A login no request used before.
    NewGhosts,
}

async fn provision(server: &Server, slapd: &Slapd, people: &[Person]) -> anyhow::Result<()> {
    let client = server.https_client()?;
    let admin = (server.url.clone(), server.api_key(&["--admin"])?);
    create(&client, &admin, "/resources", &json!({ "name": "bench" })).await?;
    create(
        &client,
        &admin,
        "/directories",
        &json!({"name": "bench", "kind": "openldap", "urls": [slapd.url], "tls": "none",
                "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD,
                "base_dn": PEOPLE_DN}),
    )
    .await?;
    let bodies: Arc<Vec<_>> = Arc::new(
        people
            .iter()
            .map(|person| {
                (
                    json!({ "login": person.account.login }),
                    person.account.token("HOTP", "bench"),
                )
            })
            .collect(),
    );
    let admin = Arc::new(admin);
    let mut tasks = Vec::new();
    for first in 0..PROVISIONERS {
        let (client, admin, bodies) = (client.clone(), admin.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            for (person, token) in bodies.iter().skip(first).step_by(PROVISIONERS) {
                create(&client, &admin, "/directories/bench/users", person).await?;
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

/// One client: sends its requests one after the other until the deadline.
async fn drive(
    mut connection: Connection,
    head: Arc<String>,
    mut people: Vec<Person>,
    (load, client, deadline): (Load, usize, Instant),
) -> (Connection, Tally, Vec<Person>) {
    #[derive(serde::Deserialize)]
    struct Answer {
        result: String,
    }
    let mut tally = Tally::default();
    let mut sent = 0usize;
    while Instant::now() < deadline {
        let (body, expected) = match load {
            Load::Valid => {
                let len = people.len().max(1);
                let Some(person) = people.get_mut(sent % len) else {
                    break;
                };
                let otp = next_otp(&mut person.account, Phase::Valid, false, 0).unwrap_or_default();
                let body = json!({"user": person.account.login, "password": person.password,
                                  "otp": otp});
                (body.to_string(), "accepted")
            }
            Load::FewGhosts(ghosts) => {
                let ghost = (client * 7919 + sent) % ghosts.max(1);
                let body = json!({"user": format!("ghost{ghost}"), "otp": "123456"});
                (body.to_string(), "rejected")
            }
            Load::NewGhosts => {
                let body = json!({"user": format!("newcomer{client}x{sent}"), "otp": "123456"});
                (body.to_string(), "rejected")
            }
        };
        sent += 1;
        let started = Instant::now();
        let answer = connection.post(&head, &body).await;
        tally.latency(started);
        let problem = match answer {
            Ok((200, bytes)) => match serde_json::from_slice::<Answer>(&bytes) {
                Ok(answer) if answer.result == expected => continue,
                Ok(answer) => format!("{body}: {}, expected {expected}", answer.result),
                Err(error) => format!("{body}: {error}"),
            },
            // A name's failures call for a wait: a refusal too, unchecked.
            Ok((429, _)) if !matches!(load, Load::Valid) => continue,
            Ok((status, bytes)) => {
                format!("{body}: {status} {}", String::from_utf8_lossy(&bytes))
            }
            Err(error) => format!("{body}: {error}"),
        };
        tally.error(problem);
    }
    (connection, tally, people)
}

/// Runs one phase over every connection and prints its figures; the people come back with
/// their counters moved on.
async fn phase(
    name: &str,
    load: Load,
    (connections, head): (&mut Vec<Connection>, &Arc<String>),
    people: Vec<Person>,
    (seconds, sampler): (u64, &Sampler),
) -> anyhow::Result<(Vec<Person>, u64)> {
    let count = connections.len();
    let mut shares: Vec<Vec<Person>> = (0..count).map(|_| Vec::new()).collect();
    for (i, person) in people.into_iter().enumerate() {
        shares[i % count].push(person);
    }
    sampler.reset();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (client, (share, connection)) in shares.into_iter().zip(connections.drain(..)).enumerate() {
        tasks.push(tokio::spawn(drive(
            connection,
            head.clone(),
            share,
            (load, client, deadline),
        )));
    }
    let (mut total, mut people) = (Tally::default(), Vec::new());
    for task in tasks {
        let (connection, tally, share) = task.await?;
        connections.push(connection);
        total.add(tally);
        people.extend(share);
    }
    let errors = total.errors;
    report(name, total, started.elapsed(), sampler);
    Ok((people, errors))
}

/// The server's count of searches for `purpose`, from `/metrics`.
async fn searches(server: &Server, purpose: &str) -> anyhow::Result<u64> {
    let client = server.https_client()?;
    let text = client
        .get(format!("{}/metrics", server.url))
        .send()
        .await?
        .text()
        .await?;
    let series =
        format!("otpgate_directory_searches_total{{directory=\"bench\",purpose=\"{purpose}\"}}");
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0))
}

async fn run() -> anyhow::Result<()> {
    let n = env_or("OTPGATE_BENCH_USERS", 1_000usize)?.max(1);
    let clients = env_or("OTPGATE_BENCH_CLIENTS", 16usize)?.max(1);
    let seconds = env_or("OTPGATE_BENCH_SECONDS", 10u64)?.max(1);
    let ghosts = env_or("OTPGATE_BENCH_GHOSTS", 100usize)?.max(1);
    let started = Instant::now();
    let slapd = Slapd::start(n)?;
    println!(
        "slapd with {n} people at {} in {:.1} s",
        slapd.url,
        started.elapsed().as_secs_f64()
    );
    let binary = support::release_binary()?;
    let server = Server::start(&binary)?;
    let pid = server.child.id();
    println!(
        "otpgate {} (pid {pid}) listening on {}",
        binary.display(),
        server.url
    );

    let mut people = Vec::with_capacity(n);
    for index in 0..n {
        people.push(Person {
            account: Account::new(login(index))?,
            password: password(index),
        });
    }
    let started = Instant::now();
    provision(&server, &slapd, &people)
        .await
        .context("provisioning (does this binary have directories?)")?;
    println!(
        "linked {n} directory users with HOTP tokens in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let key = server.api_key(&["--resource", "bench"])?;
    let address: SocketAddr = server
        .url
        .strip_prefix("https://")
        .context("the server's address is not https://")?
        .parse()?;
    let head = Arc::new(format!(
        "POST /api/v1/auth/authenticate HTTP/1.1\r\nHost: {address}\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: ",
        key.to_str()?
    ));
    let tls = tls_connector(&server.certificate()?, rustls::DEFAULT_VERSIONS)?;
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(address, &tls).await?);
    }
    let sampler = Sampler::start(pid);
    println!("{clients} clients, {seconds} s per phase");

    let (people, valid_errors) = phase(
        "(a) user + directory password + code",
        Load::Valid,
        (&mut connections, &head),
        people,
        (seconds, &sampler),
    )
    .await?;
    let before = searches(&server, "lookup").await?;
    let (people, few_errors) = phase(
        &format!(
            "(b) unknown logins, {ghosts} of them again and again (the lookup remembers misses)"
        ),
        Load::FewGhosts(ghosts),
        (&mut connections, &head),
        people,
        (seconds, &sampler),
    )
    .await?;
    let after_few = searches(&server, "lookup").await?;
    println!("    directory searches: {}", after_few - before);
    let (_, new_errors) = phase(
        "(c) unknown logins, each new (a search each, a few at once)",
        Load::NewGhosts,
        (&mut connections, &head),
        people,
        (seconds, &sampler),
    )
    .await?;
    let after_new = searches(&server, "lookup").await?;
    println!("    directory searches: {}", after_new - after_few);
    println!(
        "password checks searched: {}",
        searches(&server, "password").await?
    );
    drop(connections);
    server.stop()?;
    println!("the server stopped cleanly on SIGTERM");
    let errors = valid_errors + few_errors + new_errors;
    if errors > 0 {
        bail!("{errors} answers were wrong");
    }
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
