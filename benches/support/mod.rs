// Each benchmark uses a part of this module.
#![allow(dead_code)]

//! What the benchmarks share: starting the release binary on loopback with its own data
//! directory and configuration, API keys from its console, calls to its management API, the
//! load's accounts and the HTTPS authentication load, and the figures every phase prints.

use std::collections::HashSet;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha1::Sha1;

pub mod accounts;
pub mod api;
pub mod http;
pub mod slapd;

/// The `[server]` lines of a load generator's server: it opens all its connections from
/// 127.0.0.1 before its first request, so the limit on one address's pending connections is
/// off.
pub const LOAD_GENERATOR: &str = "pending_connections_per_address = 0\n";
/// The `[radius]` lines of a server that answers no RADIUS.
pub const NO_RADIUS: &str = "listen = []\naccounting_listen = []\n";

/// A setting from the environment, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().ok().context(format!("{name}={text}")),
        Err(_) => Ok(default),
    }
}

/// The otpgate binary to measure: Cargo builds it in the bench profile, that is the release
/// profile, before the benchmark runs; `OTPGATE_BENCH_BINARY` names another.
pub fn release_binary() -> anyhow::Result<PathBuf> {
    let binary = env_or(
        "OTPGATE_BENCH_BINARY",
        PathBuf::from(env!("CARGO_BIN_EXE_otpgate")),
    )?;
    let shown = binary.display();
    if !binary.exists() {
        println!("{shown} is missing: running cargo build --release");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--release", "--bin", "otpgate"]);
        let status = build.current_dir(env!("CARGO_MANIFEST_DIR")).status()?;
        if !status.success() || !binary.exists() {
            bail!("cargo build --release did not give {shown}");
        }
    }
    Ok(binary)
}

/// `OTPGATE_BENCH_SYNCHRONOUS` (`normal` or `full`): the server's `storage.synchronous` for
/// this run; unset, the server's own default.
pub fn synchronous() -> anyhow::Result<Option<String>> {
    match std::env::var("OTPGATE_BENCH_SYNCHRONOUS") {
        Err(_) => Ok(None),
        Ok(mode) if mode == "normal" || mode == "full" => Ok(Some(mode)),
        Ok(mode) => bail!("OTPGATE_BENCH_SYNCHRONOUS={mode}: normal or full"),
    }
}

/// RFC 4226: HMAC-SHA1 over the big-endian counter, dynamic truncation, six digits. Written here
/// rather than taken from otpgate, so that an independent computation checks the server.
pub fn hotp(mac: &Hmac<Sha1>, counter: u64) -> u32 {
    let mut mac = mac.clone();
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bytes = <[u8; 4]>::try_from(&digest[offset..offset + 4]).unwrap_or_default();
    (u32::from_be_bytes(bytes) & 0x7fff_ffff) % 1_000_000
}

/// The latency at fraction `p` of sorted values, by the nearest-rank method.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The release binary running `serve` on a free loopback port, with its own data directory.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    binary: PathBuf,
    pub url: String,
}

impl Server {
    pub fn command(binary: &Path, dir: &Path) -> Command {
        let mut command = Command::new(binary);
        command.env("OTPGATE_CONFIG", dir.join("config.toml"));
        command.env("OTPGATE_DATA_DIR", dir.join("data"));
        command
    }

    /// Starts `serve` for a load generator on a free loopback port and reads the address it
    /// prints.
    pub fn start(binary: &Path) -> anyhow::Result<Server> {
        Server::start_with(binary, LOAD_GENERATOR)
    }

    /// Starts `serve` with `server` as the `[server]` section of its configuration.
    pub fn start_with(binary: &Path, server: &str) -> anyhow::Result<Server> {
        Server::start_configured(binary, server, NO_RADIUS)
    }

    /// Starts `serve` with `server` and `radius` as those sections of its configuration.
    pub fn start_configured(binary: &Path, server: &str, radius: &str) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        // Rate 0 is unlimited: all requests come from 127.0.0.1 and each user is asked many
        // times a second, which the default per-user and per-address limits would refuse. The
        // wrong codes of phase (b) are never refused as too soon after the user's failures
        // (429s): with as many free failures as the lock takes, an account locks at 20 failures
        // in a row without waits, and its later wrong codes are rejections, as a locked token's.
        let mut config = format!(
            "[server]\n{server}[api]\nuser_rate = 0.0\nend_user_ip_rate = 0.0\n\
             [logins]\nfree_failures = 20\nlock_after = 20\n[log]\nlevel = \"warn\"\n\
             [radius]\n{radius}"
        );
        if let Some(synchronous) = synchronous()? {
            config.push_str(&format!("[storage]\nsynchronous = \"{synchronous}\"\n"));
        }
        std::fs::write(dir.path().join("config.toml"), config)?;
        let mut command = Server::command(binary, dir.path());
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let binary = binary.to_path_buf();
        let mut server = Server {
            child,
            dir,
            binary,
            url: String::new(),
        };
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let url = line.trim().strip_prefix("listening on ");
        server.url = url.context("the server did not start")?.to_string();
        // Keep reading, so that the server never writes into a full or closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Ok(server)
    }

    /// Creates an API key with the console command and returns its `Authorization` header.
    pub fn api_key(&self, scope: &[&str]) -> anyhow::Result<HeaderValue> {
        let mut command = Server::command(&self.binary, self.dir.path());
        command
            .args(["apikey", "create", "--name", "bench"])
            .args(scope);
        let output = command.output()?;
        if !output.status.success() {
            bail!("apikey create: {}", String::from_utf8_lossy(&output.stderr));
        }
        let key = String::from_utf8_lossy(&output.stdout);
        Ok(HeaderValue::from_str(&format!("Bearer {}", key.trim()))?)
    }

    /// The certificate the server generated in its data directory, PEM.
    pub fn certificate(&self) -> anyhow::Result<Vec<u8>> {
        let path = self.dir.path().join("data/tls/cert.pem");
        std::fs::read(&path).with_context(|| format!("{}", path.display()))
    }

    /// An HTTP/1.1 client for the management API that trusts the server's certificate.
    pub fn https_client(&self) -> anyhow::Result<Client> {
        let certificate = reqwest::Certificate::from_pem(&self.certificate()?)?;
        let builder = Client::builder().add_root_certificate(certificate);
        Ok(builder.http1_only().tcp_nodelay(true).build()?)
    }

    /// The UDP ports the server has bound on IPv4 (Linux): its sockets' inodes among its open
    /// files, looked up in its `/proc/PID/net/udp`. A server told to listen on port 0 names no
    /// port; this finds it without choosing a port for it first, a race with other programs.
    pub fn udp_ports(&self) -> anyhow::Result<Vec<u16>> {
        let pid = self.child.id();
        let mut inodes = HashSet::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
            let Ok(target) = std::fs::read_link(entry?.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target.strip_prefix("socket:[") {
                inodes.insert(inode.trim_end_matches(']').to_string());
            }
        }
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp"))?;
        // sl, local_address, rem_address, st, tx_queue:rx_queue, tr:tm->when, retrnsmt, uid,
        // timeout, inode.
        let ports = table.lines().skip(1).filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, inode) = (fields.get(1)?, fields.get(9)?);
            if !inodes.contains(*inode) {
                return None;
            }
            u16::from_str_radix(local.split_once(':')?.1, 16).ok()
        });
        Ok(ports.collect())
    }

    /// Sends SIGTERM and waits up to 15 s for a clean exit (the server must still be running).
    pub fn stop(mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the server exited during the run ({status})");
        }
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        for _ in 0..300 {
            match self.child.try_wait()? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => bail!("the server exited with {status} after SIGTERM"),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        bail!("the server did not exit within 15 s of SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A figure of the server's `/proc/PID/status` (`VmRSS:`, `VmHWM:`) in kB; 0 when unreadable.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let value = status.lines().find_map(|line| line.strip_prefix(field));
    value
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// The CPU time a process has used so far (user and system), in clock ticks of 1/100 s.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Clock ticks a second, as `/proc/PID/stat` counts them (`getconf CLK_TCK` on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// The server's resident memory, sampled every 100 ms on a thread of its own: the peak since
/// the last `reset`; and the CPU time the server and the load generator (this process) used
/// since then: on one machine, what the generator takes is not the server's.
pub struct Sampler {
    pid: u32,
    peak_kb: Arc<AtomicU64>,
    ticks_at_reset: AtomicU64,
    own_ticks_at_reset: AtomicU64,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (peak_kb, stop) = (peak_kb.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak_kb.fetch_max(status_kb(pid, "VmRSS:"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Sampler {
            pid,
            peak_kb,
            ticks_at_reset: AtomicU64::new(cpu_ticks(pid)),
            own_ticks_at_reset: AtomicU64::new(cpu_ticks(std::process::id())),
            stop,
            thread: Some(thread),
        }
    }

    pub fn reset(&self) {
        self.peak_kb.store(0, Ordering::Relaxed);
        self.ticks_at_reset
            .store(cpu_ticks(self.pid), Ordering::Relaxed);
        self.own_ticks_at_reset
            .store(cpu_ticks(std::process::id()), Ordering::Relaxed);
    }

    pub fn peak_mb(&self) -> f64 {
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }

    /// The server's CPU time since the last `reset`, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let ticks = cpu_ticks(self.pid).saturating_sub(self.ticks_at_reset.load(Ordering::Relaxed));
        ticks as f64 / TICKS_PER_SECOND
    }

    /// The load generator's CPU time since the last `reset`, in seconds.
    pub fn generator_cpu_seconds(&self) -> f64 {
        let ticks = cpu_ticks(std::process::id())
            .saturating_sub(self.own_ticks_at_reset.load(Ordering::Relaxed));
        ticks as f64 / TICKS_PER_SECOND
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One client task's results: every latency in microseconds, and the wrong answers.
#[derive(Default)]
pub struct Tally {
    pub latencies: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    /// Counts the time from `started` to now.
    pub fn latency(&mut self, started: Instant) {
        let micros = started.elapsed().as_micros();
        self.latencies
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
    }

    pub fn error(&mut self, problem: String) {
        self.errors += 1;
        self.first_error.get_or_insert(problem);
    }

    pub fn add(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

/// Prints a phase's figures: requests, their rate and errors, latency percentiles, the
/// server's peak memory and CPU time, and the first error. Returns requests per second.
pub fn report(name: &str, mut total: Tally, elapsed: Duration, sampler: &Sampler) -> f64 {
    let elapsed = elapsed.as_secs_f64();
    let (l, errors) = (&mut total.latencies, total.errors);
    l.sort_unstable();
    let (count, rate) = (l.len(), l.len() as f64 / elapsed);
    println!(
        "{name}\n    {count} requests in {elapsed:.1} s: {rate:.0} requests/s, {errors} errors"
    );
    let ms = |p: f64| percentile(l, p).map_or(0.0, |us| f64::from(us) / 1000.0);
    let (p50, p90, p99, max) = (ms(0.5), ms(0.9), ms(0.99), ms(1.0));
    let peak = sampler.peak_mb();
    println!(
        "    latency ms: p50 {p50:.2}, p90 {p90:.2}, p99 {p99:.2}, max {max:.2}; server peak RSS {peak:.1} MB"
    );
    let (cpu, generator) = (sampler.cpu_seconds(), sampler.generator_cpu_seconds());
    let per_request = |seconds: f64| seconds * 1e6 / count.max(1) as f64;
    println!(
        "    server CPU: {:.1} µs per request, {:.2} cores; load generator: {:.1} µs, {:.2} cores",
        per_request(cpu),
        cpu / elapsed,
        per_request(generator),
        generator / elapsed
    );
    if let Some(error) = total.first_error {
        println!("    first error: {error}");
    }
    rate
}

/// POSTs to the management API with the admin key and expects 201 Created.
pub async fn create(
    client: &Client,
    admin: &(String, HeaderValue),
    path: &str,
    body: &Value,
) -> anyhow::Result<()> {
    let request = client.post(format!("{}/api/v1{path}", admin.0));
    let response = request
        .header(AUTHORIZATION, admin.1.clone())
        .json(body)
        .send()
        .await?;
    let status = response.status();
    if status != StatusCode::CREATED {
        let text = response.text().await.unwrap_or_default();
        bail!("POST /api/v1{path} {body} answered {status}, not 201: {text}");
    }
    Ok(())
}

/// Runs a benchmark on a multi-threaded runtime: exit 0 when it reports success, 1 with its
/// message otherwise.
pub fn run_main<F: Future<Output = anyhow::Result<()>>>(run: F) -> ExitCode {
    run_on(tokio::runtime::Builder::new_multi_thread(), run)
}

/// [`run_main`] on one thread: for a load generator on the server's machine, whose clients
/// then take turns on that thread instead of waking each other's threads for every answer.
pub fn run_main_on_one_thread<F: Future<Output = anyhow::Result<()>>>(run: F) -> ExitCode {
    run_on(tokio::runtime::Builder::new_current_thread(), run)
}

fn run_on<F: Future<Output = anyhow::Result<()>>>(
    mut runtime: tokio::runtime::Builder,
    run: F,
) -> ExitCode {
    match runtime
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The management API with one key: a call answers the JSON of a success, or fails with the
/// status and the answer.
pub struct Api {
    pub client: Client,
    pub url: String,
    pub key: HeaderValue,
}

impl Api {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .client
            .request(method.clone(), format!("{}/api/v1{path}", self.url))
            .header(AUTHORIZATION, self.key.clone())
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} /api/v1{path} answered {status}: {answer}");
        }
        Ok(answer)
    }
}
