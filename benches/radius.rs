//! Load benchmark of the RADIUS server: starts the release binary with RADIUS on a free loopback
//! port, provisions a resource, two RADIUS clients (code only from 127.0.0.1, password and code
//! from 127.0.0.2) and users with HOTP tokens through the management API, and drives
//! Access-Requests over UDP from concurrent virtual clients, each with its own socket and one
//! request in flight. Every code is computed here and every answer checked: its Response
//! Authenticator and its Message-Authenticator (which must come first), and Accept or Reject as
//! the code deserves. The HTTPS API's code-only rate is measured in the same run for comparison.
//! Speed is reported, not asserted: the benchmark fails only when an answer is wrong or
//! missing. The README's Performance section lists the options.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hmac::{Hmac, KeyInit};
use otpgate::radius::packet::{
    ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_REQUEST, Attribute, MAX_PACKET_LEN, MESSAGE_AUTHENTICATOR,
    NAS_IDENTIFIER, Packet, USER_NAME, USER_PASSWORD, hide_password, reply_valid, request,
};
use serde_json::json;
use sha1::Sha1;
use tokio::net::UdpSocket;

mod support;
use support::accounts::{Account, Phase, next_otp, provision};
use support::api::{Load, Outcome};
use support::{LOAD_GENERATOR, Sampler, Server, Tally, create, env_or, hotp, report, status_kb};

/// How long a virtual client waits for an answer before it sends the request again, as a
/// gateway does; and how many times it sends it in all.
const RETRY_AFTER: Duration = Duration::from_secs(1);
const TRIES: u32 = 4;
/// The password of the users of phase (c), typed before the code.
const PASSWORD: &str = "a password for the benchmark";

/// A RADIUS client (NAS) as the server knows it and as the load generator plays it.
struct Nas {
    name: &'static str,
    address: Ipv4Addr,
    secret: &'static str,
    input_mode: &'static str,
    /// What the users type before the code.
    password: &'static str,
}

const CODE_ONLY: Nas = Nas {
    name: "bench-code-only",
    address: Ipv4Addr::new(127, 0, 0, 1),
    secret: "a shared secret for the code-only client",
    input_mode: "code_only",
    password: "",
};

/// A second address, as the server's client table holds one client per address.
const PASSWORD_CODE: Nas = Nas {
    name: "bench-password-code",
    address: Ipv4Addr::new(127, 0, 0, 2),
    secret: "a shared secret for the password-and-code client",
    input_mode: "password_code",
    password: PASSWORD,
};

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    let value = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
    digits
        .chunks(2)
        .map(|p| value(p[0]) << 4 | value(p[1]))
        .collect()
}

/// The codec must reproduce RFC 2865 §7.1 (the password "arctangent" hidden under the secret
/// "xyzzy5461", and the Access-Accept's Response Authenticator) before it may judge the server.
fn check_codec() -> anyhow::Result<()> {
    let request = hex(
        "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a 01 06 6e 65
        6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8 01 10 05 06 00
        00 00 03",
    );
    let accept = hex(
        "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2 06 06 00 00
        00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03",
    );
    let request = Packet::parse(&request)?;
    let password = request.user_password(b"xyzzy5461");
    if password.as_deref() != Some(b"arctangent".as_slice())
        || !reply_valid(&accept, &request.authenticator, b"xyzzy5461")
        || reply_valid(&accept, &request.authenticator, b"xyzzy5462")
    {
        bail!("the RADIUS codec does not give the RFC 2865 §7.1 example");
    }
    Ok(())
}

fn code_name(code: u8) -> String {
    match code {
        ACCESS_ACCEPT => "Access-Accept".into(),
        ACCESS_REJECT => "Access-Reject".into(),
        11 => "Access-Challenge".into(),
        other => format!("code {other}"),
    }
}

/// Sends a request and waits for the answer with its identifier, sending it again every
/// `RETRY_AFTER` up to `TRIES` times in all. Returns the answer's length in `buffer`.
async fn exchange(
    socket: &UdpSocket,
    request: &[u8],
    buffer: &mut [u8],
    retransmits: &mut u64,
) -> Result<usize, String> {
    let identifier = request[1];
    for attempt in 0..TRIES {
        if attempt > 0 {
            *retransmits += 1;
        }
        let sent = socket.send(request).await;
        sent.map_err(|e| format!("cannot send: {e}"))?;
        let until = tokio::time::Instant::now() + RETRY_AFTER;
        loop {
            match tokio::time::timeout_at(until, socket.recv(buffer)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(format!("no answer: {e}")),
                // The second answer to an earlier request of this socket that was sent again.
                Ok(Ok(length)) if length >= 2 && buffer[1] != identifier => continue,
                Ok(Ok(length)) => return Ok(length),
            }
        }
    }
    let every = RETRY_AFTER.as_secs_f64();
    Err(format!("no answer to {TRIES} tries, {every} s apart"))
}

/// Checks an answer: a packet whose first attribute is a Message-Authenticator, both its
/// authenticators right for this request and secret, and the expected code.
fn judge(
    answer: &[u8],
    authenticator: &[u8; 16],
    secret: &[u8],
    expected: u8,
) -> Result<(), String> {
    let packet = Packet::parse(answer).map_err(|e| format!("a malformed answer: {e}"))?;
    if packet.attributes.first().map(|a| a.kind) != Some(MESSAGE_AUTHENTICATOR) {
        return Err("an answer without a Message-Authenticator first".into());
    }
    if !reply_valid(answer, authenticator, secret) {
        return Err(
            "an answer with a wrong Response Authenticator or Message-Authenticator".into(),
        );
    }
    if packet.code != expected {
        let (got, expected) = (code_name(packet.code), code_name(expected));
        return Err(format!("{got}, expected {expected}"));
    }
    Ok(())
}

/// One virtual client: its own UDP socket, one request in flight, walking its own accounts
/// round robin until the deadline. Identifiers count up per socket and no two Request
/// Authenticators of a socket are alike, so the server's retransmit cache (source, identifier,
/// Request Authenticator) never takes two requests for one.
async fn drive(
    nas: &'static Nas,
    server: SocketAddr,
    mut accounts: Vec<Account>,
    (phase, deadline): (Phase, Instant),
) -> anyhow::Result<(Tally, u64, Vec<Account>)> {
    let socket = UdpSocket::bind((IpAddr::V4(nas.address), 0)).await?;
    socket.connect(server).await?;
    let secret = nas.secret.as_bytes();
    let expected = if phase == Phase::Wrong {
        ACCESS_REJECT
    } else {
        ACCESS_ACCEPT
    };
    let mut buffer = vec![0u8; MAX_PACKET_LEN];
    let (mut tally, mut retransmits) = (Tally::default(), 0);
    let (mut identifier, mut next) = (0u8, 0);
    // Request Authenticators unique to this client: a random half of its own and a count, so
    // that the randomness costs one call per client rather than one per request.
    let (mut unique, mut sent) = ([0u8; 16], 0u64);
    getrandom::fill(&mut unique).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let len = accounts.len();
    while len > 0 && Instant::now() < deadline {
        let account = &mut accounts[next % len];
        next += 1;
        let Some(code) = next_otp(account, phase, false, 0) else {
            continue;
        };
        let typed = format!("{}{code}", nas.password);
        let mut authenticator = unique;
        authenticator[8..].copy_from_slice(&sent.to_be_bytes());
        sent += 1;
        let hidden = hide_password(typed.as_bytes(), secret, &authenticator)?;
        let attributes = vec![
            Attribute::new(USER_NAME, account.login.as_bytes()),
            Attribute::new(USER_PASSWORD, hidden),
            Attribute::new(NAS_IDENTIFIER, nas.name.as_bytes()),
        ];
        let bytes = request(
            ACCESS_REQUEST,
            identifier,
            authenticator,
            attributes,
            secret,
            true,
        )?;
        identifier = identifier.wrapping_add(1);
        let started = Instant::now();
        let answer = exchange(&socket, &bytes, &mut buffer, &mut retransmits).await;
        tally.latency(started);
        let verdict =
            answer.and_then(|length| judge(&buffer[..length], &authenticator, secret, expected));
        if let Err(problem) = verdict {
            tally.error(format!("{}: {problem}", account.login));
        }
    }
    Ok((tally, retransmits, accounts))
}

/// Runs one RADIUS phase with `clients` virtual clients, each with its share of the accounts,
/// and prints its figures.
async fn run_phase(
    name: &str,
    (nas, server, clients, seconds): (&'static Nas, SocketAddr, usize, u64),
    phase: Phase,
    accounts: Vec<Account>,
    sampler: &Sampler,
) -> anyhow::Result<Outcome> {
    let mut shares: Vec<Vec<Account>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, account) in accounts.into_iter().enumerate() {
        shares[i % clients].push(account);
    }
    sampler.reset();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for share in shares {
        tasks.push(tokio::spawn(drive(nas, server, share, (phase, deadline))));
    }
    let (mut total, mut retransmits, mut accounts) = (Tally::default(), 0, Vec::new());
    for task in tasks {
        let (tally, sent_again, share) = task.await??;
        total.add(tally);
        retransmits += sent_again;
        accounts.extend(share);
    }
    let errors = total.errors;
    let rate = report(name, total, started.elapsed(), sampler);
    let every = RETRY_AFTER.as_secs_f64();
    println!("    {retransmits} requests sent again after {every} s without an answer");
    Ok(Outcome {
        rate,
        errors,
        accounts,
    })
}

/// What bounds phase (c): the stored hashes' Argon2 parameters, what one check costs here, and
/// the server's password workers (its configuration leaves `[passwords]` at the defaults).
fn password_bound(server: &Server, login: &str) -> anyhow::Result<String> {
    let database = server.dir.path().join("data/otpgate.db");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let connection = rusqlite::Connection::open_with_flags(database, flags)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    let hash: String = connection.query_row(
        "SELECT password_hash FROM users WHERE login = ?1",
        [login],
        |row| row.get(0),
    )?;
    // $argon2id$v=19$m=19456,t=2,p=1$salt$hash
    let parameters = hash.split('$').nth(3).unwrap_or("unknown parameters");
    // The fastest of a few checks: the one least slowed by whatever else the machine runs.
    let mut memory = otpgate::crypto::PasswordMemory::default();
    let mut each = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        if !otpgate::crypto::verify_password_in(&mut memory, PASSWORD, &hash) {
            bail!("the stored password hash does not match the benchmark's password");
        }
        each = each.min(started.elapsed().as_secs_f64());
    }
    let gate = otpgate::config::PasswordsConfig::default();
    let workers = gate.gate_size().workers;
    let ceiling = workers as f64 / each;
    Ok(format!(
        "    bounded by Argon2id ({parameters}, the stored hashes' parameters): one check takes \
         {:.1} ms here at best, and the server runs them on {workers} password worker(s) \
         ([passwords] workers = 0: half the cores, rounded up; queue {}, wait {} ms): at most \
         about {ceiling:.0} checks/s",
        each * 1000.0,
        gate.queue,
        gate.wait_ms
    ))
}

async fn run() -> anyhow::Result<u64> {
    // The generator's HOTP must reproduce RFC 4226 appendix D before it may judge the server.
    let rfc = Hmac::<Sha1>::new_from_slice(b"12345678901234567890")?;
    if (hotp(&rfc, 0), hotp(&rfc, 9)) != (755_224, 520_489) {
        bail!("the benchmark's HOTP does not give the RFC 4226 test values");
    }
    check_codec()?;
    let n = env_or("OTPGATE_BENCH_USERS", 10_000usize)?.max(1);
    let clients = env_or("OTPGATE_BENCH_CLIENTS", 64usize)?.max(1);
    // Every rejection is held until a millisecond after its attempt began (about two, as the
    // server's timer counts): (b) needs more requests in flight than (a) for its rate to
    // measure the server rather than that hold.
    let wrong_clients = env_or("OTPGATE_BENCH_WRONG_CLIENTS", 2 * clients)?.max(1);
    let password_clients = env_or("OTPGATE_BENCH_PASSWORD_CLIENTS", 8usize)?.max(1);
    let seconds = env_or("OTPGATE_BENCH_SECONDS", 10u64)?.max(1);
    let binary = support::release_binary()?;
    let shown = binary.display();
    let radius = "listen = [\"127.0.0.1:0\"]\naccounting_listen = []\n";
    let server = Server::start_configured(&binary, LOAD_GENERATOR, radius)?;
    let (pid, url) = (server.child.id(), &server.url);
    let ports = server.udp_ports()?;
    let [port] = ports[..] else {
        bail!("the server has bound UDP ports {ports:?}, not the one RADIUS port");
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    println!("otpgate {shown} (pid {pid}) listening on {url}, RADIUS on {address}");
    println!("rate limits for this run: api.user_rate = 0, api.end_user_ip_rate = 0 (unlimited)");
    let synchronous = support::synchronous()?;
    let synchronous = synchronous.as_deref().unwrap_or("the server's default");
    println!("storage.synchronous for this run: {synchronous}");

    let valid = Account::many("user", n)?;
    let wrong = Account::many("wronguser", n.div_ceil(10))?;
    let with_password = Account::many("pwuser", 2 * password_clients)?;
    let mut users = Vec::new();
    for account in valid.iter().chain(&wrong) {
        let token = account.token("HOTP", "bench");
        users.push((json!({ "login": account.login }), token));
    }
    let (started, count) = (Instant::now(), users.len() + with_password.len());
    let client = server.https_client()?;
    let admin = (url.clone(), server.api_key(&["--admin"])?);
    let provisioned = async {
        create(&client, &admin, "/resources", &json!({ "name": "bench" })).await?;
        for nas in [&CODE_ONLY, &PASSWORD_CODE] {
            let body = json!({ "name": nas.name, "address": nas.address.to_string(),
                "secret": nas.secret, "resource": "bench", "input_mode": nas.input_mode });
            create(&client, &admin, "/radius/clients", &body).await?;
        }
        provision(&client, admin.clone(), users).await?;
        // One at a time: each password is hashed by the server's few password workers, which
        // refuse what would wait too long for them.
        for account in &with_password {
            let user = json!({ "login": account.login, "password": PASSWORD });
            create(&client, &admin, "/users", &user).await?;
            create(&client, &admin, "/tokens", &account.token("HOTP", "bench")).await?;
        }
        anyhow::Ok(())
    };
    let provisioned = provisioned.await;
    provisioned.context("provisioning (does this binary have RADIUS clients in its API?)")?;
    let took = started.elapsed().as_secs_f64();
    println!("provisioned {count} users with HOTP tokens in {took:.1} s");
    for nas in [&CODE_ONLY, &PASSWORD_CODE] {
        println!(
            "RADIUS client {} for {}: {}, Message-Authenticator required",
            nas.name, nas.address, nas.input_mode
        );
    }
    let bound = password_bound(&server, &with_password[0].login)?;

    let sampler = Sampler::start(pid);
    println!(
        "{clients} virtual RADIUS clients (a UDP socket each) and {clients} HTTPS clients, \
         {wrong_clients} virtual clients in (b), {password_clients} in (c); {seconds} s per phase"
    );
    let code_only = (&CODE_ONLY, address, clients, seconds);
    let name = "(a) RADIUS, code only, valid codes";
    let a = run_phase(name, code_only, Phase::Valid, valid, &sampler).await?;
    // Right after (a), on the same users, so that both see the same database. The connections
    // are opened now: the server closes one that sends no first request within seconds.
    let mut load = Load::open(&server, "bench", (clients, seconds, false)).await?;
    let name = "(d) HTTPS API, code only, valid codes (the same users, right after (a))";
    let d = load.run(name, Phase::Valid, a.accounts, &sampler).await?;
    drop(load);
    let name = "(b) RADIUS, code only, wrong codes (a token locks after 5 misses; its rejections count too)";
    let wrong_code_only = (&CODE_ONLY, address, wrong_clients, seconds);
    let b = run_phase(name, wrong_code_only, Phase::Wrong, wrong, &sampler).await?;
    let password_code = (&PASSWORD_CODE, address, password_clients, seconds);
    let name = "(c) RADIUS, password and code in one field (password_code), valid";
    let c = run_phase(name, password_code, Phase::Valid, with_password, &sampler).await?;
    println!("{bound}");
    drop(sampler);
    let hwm = status_kb(pid, "VmHWM:") as f64 / 1024.0;
    let (a_d, b_a) = (a.rate / d.rate.max(1.0), b.rate / a.rate.max(1.0));
    println!("(a)/(d) {a_d:.2}, (b)/(a) {b_a:.2}; server VmHWM {hwm:.1} MB");
    server.stop()?;
    println!("the server stopped cleanly on SIGTERM");
    Ok(a.errors + b.errors + c.errors + d.errors)
}

fn main() -> ExitCode {
    support::run_main_on_one_thread(async {
        match run().await? {
            0 => Ok(()),
            errors => bail!("{errors} wrong or missing answers"),
        }
    })
}
