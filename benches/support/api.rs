//! The HTTPS authentication load: concurrent clients, each on its own keep-alive connection,
//! sending `POST /api/v1/auth/authenticate` one after the other and checking every answer.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use super::accounts::{Account, Phase, next_otp};
use super::http::{Connection, tls_connector};
use super::{Sampler, Server, Tally, report};

/// What every client task shares: the request's head (request line and headers, up to the
/// body's length), and the kind of token.
struct Target {
    head: String,
    totp: bool,
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
) -> (Connection, Tally, Vec<Account>) {
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
        tally.latency(started);
        let problem = match answer {
            Ok(result) if result == expected => continue,
            Ok(result) => format!("{}: {result}, expected {expected}", account.login),
            Err(error) => format!("{}: {error}", account.login),
        };
        tally.error(problem);
    }
    (connection, tally, accounts)
}

/// The clients of the HTTPS load, their connections open, and the phase length.
pub struct Load {
    connections: Vec<Connection>,
    target: Arc<Target>,
    seconds: u64,
}

/// What a phase gave: requests per second, wrong answers, and the accounts with their
/// counters moved on (for a later phase on the same users).
pub struct Outcome {
    pub rate: f64,
    pub errors: u64,
    pub accounts: Vec<Account>,
}

impl Load {
    /// Makes a key for `resource` with the server's console and opens `clients` keep-alive
    /// connections, one per client task, so that no task waits on another's connection.
    pub async fn open(
        server: &Server,
        resource: &str,
        (clients, seconds, totp): (usize, u64, bool),
    ) -> anyhow::Result<Load> {
        let key = server.api_key(&["--resource", resource])?;
        let key = key.to_str()?;
        let address: SocketAddr = server
            .url
            .strip_prefix("https://")
            .context("the server's address is not https://")?
            .parse()?;
        let head = format!(
            "POST /api/v1/auth/authenticate HTTP/1.1\r\nHost: {address}\r\nAuthorization: {key}\r\n\
             Content-Type: application/json\r\nContent-Length: "
        );
        let tls = tls_connector(&server.certificate()?, rustls::DEFAULT_VERSIONS)?;
        let mut connections = Vec::with_capacity(clients);
        for _ in 0..clients {
            connections.push(Connection::open(address, &tls).await?);
        }
        let target = Arc::new(Target { head, totp });
        Ok(Load {
            connections,
            target,
            seconds,
        })
    }

    pub fn clients(&self) -> usize {
        self.connections.len()
    }

    /// Runs one phase with one task per client, each with its share of the accounts, and
    /// prints its figures.
    pub async fn run(
        &mut self,
        name: &str,
        phase: Phase,
        accounts: Vec<Account>,
        sampler: &Sampler,
    ) -> anyhow::Result<Outcome> {
        let count = self.connections.len();
        let mut shares: Vec<Vec<Account>> = (0..count).map(|_| Vec::new()).collect();
        for (i, account) in accounts.into_iter().enumerate() {
            shares[i % count].push(account);
        }
        sampler.reset();
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
        let (mut total, mut accounts) = (Tally::default(), Vec::new());
        for task in tasks {
            let (connection, tally, share) = task.await?;
            self.connections.push(connection);
            total.add(tally);
            accounts.extend(share);
        }
        let errors = total.errors;
        let rate = report(name, total, started.elapsed(), sampler);
        Ok(Outcome {
            rate,
            errors,
            accounts,
        })
    }
}
