//! Connections under abuse, and what a new connection costs. Starts the release binary on
//! loopback, then:
//! (a) holds silent connections open (they connect and send nothing, and are opened again when
//!     the server closes them) from 100 addresses, while new connections from another address
//!     ask for `/healthz` one after the other;
//! (b) the same with every silent connection from one address;
//! (c) a new connection and one authentication (`POST /api/v1/auth/authenticate` with a valid
//!     HOTP code), one after the other, over TLS 1.3;
//! (d) the same over TLS 1.2.
//! It prints p50, p99 and the maximum of each. Speed is reported, not asserted: the benchmark
//! fails only when it cannot run or an authentication is answered wrongly. The README's
//! Performance section lists the options.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hmac::{Hmac, KeyInit};
use reqwest::Client;
use serde_json::json;
use sha1::Sha1;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

mod support;
use support::http::{Connection, tls_connector};
use support::{Server, create, env_or, hotp, status_kb};

/// How long one new connection may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two probes, so that they spread over the silent connections' lives.
const PROBE_PAUSE: Duration = Duration::from_millis(25);
/// A silent connection closed sooner than this was refused rather than held: it is opened
/// again only after this long, so that the benchmark holds connections instead of flooding.
const REFUSED: Duration = Duration::from_secs(1);

/// Silent connections held open from `sources`, round robin, each opened again when the server
/// closes it. Dropping the siege closes them all.
struct Siege {
    open: Arc<AtomicUsize>,
    closed_by_server: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Siege {
    fn start(server: SocketAddr, sources: &[IpAddr], count: usize) -> Siege {
        let open = Arc::new(AtomicUsize::new(0));
        let closed_by_server = Arc::new(AtomicU64::new(0));
        let tasks = (0..count)
            .map(|i| {
                let source = sources[i % sources.len()];
                let (open, closed) = (open.clone(), closed_by_server.clone());
                tokio::spawn(silent(server, source, open, closed))
            })
            .collect();
        Siege {
            open,
            closed_by_server,
            tasks,
        }
    }
}

impl Drop for Siege {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One silent connection: connects from `source`, sends nothing, and waits for the server to
/// close it; then does it again.
async fn silent(
    server: SocketAddr,
    source: IpAddr,
    open: Arc<AtomicUsize>,
    closed_by_server: Arc<AtomicU64>,
) {
    loop {
        let connected = async {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            socket.connect(server).await
        };
        let Ok(Ok(mut stream)) = tokio::time::timeout(PROBE_TIMEOUT, connected).await else {
            tokio::time::sleep(REFUSED).await;
            continue;
        };
        open.fetch_add(1, Ordering::Relaxed);
        let since = Instant::now();
        let mut byte = [0u8; 1];
        let _ = stream.read(&mut byte).await;
        open.fetch_sub(1, Ordering::Relaxed);
        closed_by_server.fetch_add(1, Ordering::Relaxed);
        if since.elapsed() < REFUSED {
            tokio::time::sleep(REFUSED).await;
        }
    }
}

/// A new connection that asks for `/healthz`: the time from connecting to the whole answer.
async fn probe(server: SocketAddr, tls: &TlsConnector) -> Result<Duration, String> {
    let started = Instant::now();
    let asked = async {
        let mut connection = Connection::open(server, tls)
            .await
            .map_err(|e| format!("no connection: {e}"))?;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {server}\r\n\r\n");
        match connection.send(&request).await? {
            (200, _) => Ok(()),
            (status, _) => Err(format!("/healthz answered {status}")),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, asked).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// Latencies, and the failures beside them.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failures: usize,
    first_failure: Option<String>,
}

impl Tally {
    fn add(&mut self, outcome: Result<Duration, String>) {
        match outcome {
            Ok(latency) => self.latencies.push(latency),
            Err(error) => {
                self.failures += 1;
                self.first_failure.get_or_insert(error);
            }
        }
    }

    /// Prints the count, p50, p99 and the maximum; a failed attempt counts as the slowest.
    fn print(&mut self, slow: Duration) {
        let mut all = self.latencies.clone();
        all.extend(std::iter::repeat_n(PROBE_TIMEOUT, self.failures));
        all.sort_unstable();
        let ms = |p: f64| support::percentile(&all, p).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let over = all.iter().filter(|latency| **latency > slow).count();
        println!(
            "    {} connections: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {over} over {} ms, {} failed",
            all.len(),
            ms(0.5),
            ms(0.99),
            ms(1.0),
            slow.as_millis(),
            self.failures,
        );
        if let Some(failure) = &self.first_failure {
            println!("    first failure: {failure}");
        }
    }
}

/// Open files of a process: its sockets, mostly.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// Phases (a) and (b): silent connections from `sources`, and probes while they are held.
async fn siege_phase(
    name: &str,
    server: &Server,
    address: SocketAddr,
    sources: &[IpAddr],
    (silent, probes): (usize, usize),
    tls: &TlsConnector,
) {
    let pid = server.child.id();
    println!("{name}");
    let siege = Siege::start(address, sources, silent);
    // Let the silent connections pile up before the first probe.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut tally, mut files) = (Tally::default(), 0);
    let (mut fewest, mut most) = (usize::MAX, 0);
    for _ in 0..probes {
        let held = siege.open.load(Ordering::Relaxed);
        (fewest, most) = (fewest.min(held), most.max(held));
        files = files.max(open_files(pid));
        tally.add(probe(address, tls).await);
        tokio::time::sleep(PROBE_PAUSE).await;
    }
    let closed = siege.closed_by_server.load(Ordering::Relaxed);
    let rss = status_kb(pid, "VmRSS:") as f64 / 1024.0;
    println!(
        "    silent connections open: {fewest} to {most} of {silent}; closed by the server: \
         {closed}; server open files (most seen): {files}; server RSS {rss:.1} MB"
    );
    tally.print(Duration::from_millis(50));
    drop(siege);
    // Let the server see the silent connections go before the next phase.
    tokio::time::sleep(Duration::from_secs(4)).await;
}

/// Phases (c) and (d): a new connection and one authentication, `count` times in a row.
async fn authentication_phase(
    (address, head): (SocketAddr, &str),
    tls: &TlsConnector,
    (mac, counter): (&Hmac<Sha1>, &mut u64),
    count: usize,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for _ in 0..count {
        let body = format!(r#"{{"user":"conn","otp":"{:06}"}}"#, hotp(mac, *counter));
        *counter += 1;
        let started = Instant::now();
        let mut connection = Connection::open(address, tls).await?;
        let (status, answer) = connection
            .post(head, &body)
            .await
            .map_err(anyhow::Error::msg)?;
        let latency = started.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        if status != 200 || !answer.contains(r#""result":"accepted""#) {
            bail!("an authentication was answered {status}: {answer}");
        }
        tally.add(Ok(latency));
        if tally.latencies.len() == 1 {
            println!("    negotiated {:?}", connection.tls_version());
        }
    }
    Ok(tally)
}

async fn run() -> anyhow::Result<()> {
    let silent = env_or("OTPGATE_BENCH_SILENT", 1000usize)?.max(1);
    let probes = env_or("OTPGATE_BENCH_PROBES", 200usize)?.max(1);
    let authentications = env_or("OTPGATE_BENCH_AUTHENTICATIONS", 200usize)?.max(1);
    let binary = support::release_binary()?;
    // The packaged bounds on connections, which phase (b) runs into.
    let server = Server::start_with(&binary, "")?;
    let (pid, url) = (server.child.id(), server.url.clone());
    println!(
        "otpgate {} (pid {pid}) listening on {url}",
        binary.display()
    );
    let address: SocketAddr = url
        .strip_prefix("https://")
        .context("the server's address is not https://")?
        .parse()?;
    let pem = std::fs::read(server.dir.path().join("data/tls/cert.pem"))?;
    let tls = tls_connector(&pem, rustls::DEFAULT_VERSIONS)?;

    // The probes come from 127.0.0.1, the silent connections from 127.0.0.2 and up.
    let many: Vec<IpAddr> = (2..102)
        .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .collect();
    let name =
        format!("(a) {silent} silent connections from 100 addresses; new connections ask /healthz");
    siege_phase(&name, &server, address, &many, (silent, probes), &tls).await;
    let name =
        format!("(b) {silent} silent connections from one address; new connections ask /healthz");
    siege_phase(&name, &server, address, &many[..1], (silent, probes), &tls).await;

    let mut seed = [0u8; 20];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let admin = (url.clone(), server.api_key(&["--admin"])?);
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .build()?;
    create(&client, &admin, "/resources", &json!({ "name": "bench" })).await?;
    create(&client, &admin, "/users", &json!({ "login": "conn" })).await?;
    let secret = data_encoding::BASE32_NOPAD.encode(&seed);
    let token = json!({ "kind": "HOTP", "secret": secret, "user": "conn", "resource": "bench" });
    create(&client, &admin, "/tokens", &token).await?;
    let key = server.api_key(&["--resource", "bench"])?;
    let head = format!(
        "POST /api/v1/auth/authenticate HTTP/1.1\r\nHost: {address}\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: ",
        key.to_str()?
    );
    let mac = Hmac::<Sha1>::new_from_slice(&seed)?;
    let mut counter = 0;
    for (name, version) in [
        (
            "(c) a new connection and one authentication, TLS 1.3",
            &rustls::version::TLS13,
        ),
        (
            "(d) a new connection and one authentication, TLS 1.2",
            &rustls::version::TLS12,
        ),
    ] {
        println!("{name}");
        let tls = tls_connector(&pem, &[version])?;
        let target = (address, head.as_str());
        let phase = authentication_phase(target, &tls, (&mac, &mut counter), authentications);
        phase.await?.print(Duration::from_millis(30));
    }
    let hwm = status_kb(pid, "VmHWM:") as f64 / 1024.0;
    println!("server VmHWM {hwm:.1} MB");
    server.stop()?;
    println!("the server stopped cleanly on SIGTERM");
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
