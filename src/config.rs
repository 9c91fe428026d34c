//! The configuration: embedded defaults, then the TOML file, then the environment, then flags.
//!
//! Every key is optional and has a safe default; unknown keys are rejected by name, so a typo
//! never silently falls back to a default. The commented example in `packaging/config.toml`
//! documents every key and is parsed by a test, so the reference cannot rot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::Synchronous;

/// Where the packaged service keeps its configuration.
pub const PACKAGED_CONFIG: &str = "/etc/otpgate/config.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The directory holding the database, the key file and the generated certificate.
    pub data_dir: Option<PathBuf>,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub storage: StorageConfig,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    pub api: ApiConfig,
    pub metrics: MetricsConfig,
    pub passwords: PasswordsConfig,
    pub logins: LoginsConfig,
    pub portal: PortalConfig,
    pub radius: RadiusConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on; port 0 picks a free port.
    pub listen: String,
    /// The address users and administrators reach otpgate at, used in links
    /// (e.g. `https://otp.example.lan:8443`). Derived from `listen` when empty.
    pub public_url: String,
    /// HTTP worker threads; 0 means one per CPU core but one (left to the store's writer).
    pub workers: usize,
    /// How long a graceful shutdown waits for requests in flight, in seconds.
    pub shutdown_timeout_seconds: u64,
    /// Open connections at most; past it, new ones wait in the kernel's queue.
    pub max_connections: usize,
    /// Connections from one address (IPv6: one /64) that have not yet had their first request
    /// read whole; one more is reset at once. 0 = no limit (behind a reverse proxy).
    pub pending_connections_per_address: usize,
    /// From accepting a connection to the end of its TLS handshake, in milliseconds.
    pub tls_handshake_timeout_ms: u64,
    /// From a request's first byte (for a connection's first request: from the handshake) to the
    /// end of its head, in milliseconds.
    pub request_head_timeout_ms: u64,
    /// From the end of a request's head to the end of its body, in milliseconds; past it the
    /// answer is 408 and the connection closes.
    pub request_body_timeout_ms: u64,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` or `Forwarded`
    /// header names the client; empty: every peer is the client itself.
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// HTTPS on (default) or plain HTTP, only for use behind a TLS-terminating reverse proxy.
    pub enabled: bool,
    /// A PEM certificate chain; with `key_file`. Empty: a self-signed certificate is generated.
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the generated self-signed certificate.
    pub extra_names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `normal`: a commit survives a crash of otpgate; `full`: it also survives a power loss.
    pub synchronous: Synchronous,
    /// How many read connections to keep open.
    pub readers: usize,
    /// How long a statement waits for a lock held by another process, in milliseconds.
    pub busy_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// An admin session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// An admin session ends after this many hours whatever happens.
    pub session_max_hours: u64,
    /// Admin panel login attempts allowed per client address in 15 minutes.
    pub login_attempts_per_ip: u32,
    /// No longer used: failed logins are counted per account and address (`[logins]`).
    /// Accepted so that older configuration files still load.
    pub login_attempts_per_login: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// How many HOTP counters past the expected one a code may be (per token overridable).
    pub hotp_lookahead: u64,
    /// How many TOTP steps before and after the current one a code may be.
    pub totp_window: u64,
    /// How far Token Synchronization searches for two consecutive codes.
    pub resync_search: u64,
    /// How long a code sent by email, SMS or bot stays valid, in seconds.
    pub challenge_validity_seconds: u64,
    /// How many wrong codes a sent challenge tolerates before it is void.
    pub challenge_tries: u32,
    /// The longest an authentication may wait for an approval's decision (`wait`), in seconds.
    pub approval_wait_max_seconds: u64,
    /// How many authentications may wait for approvals at once; beyond, `wait` is refused.
    pub approval_waiters_max: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Authentication requests per second for one user, and the burst allowed.
    pub user_rate: f64,
    pub user_burst: u32,
    /// Authentication requests per second for one end-user address (the `ip` field).
    pub end_user_ip_rate: f64,
    pub end_user_ip_burst: u32,
    /// Requests per second from one calling application's address; 0 = unlimited, since one
    /// VPN gateway or web application calls on behalf of all its users.
    pub caller_rate: f64,
    pub caller_burst: u32,
    /// Requests per second without a valid API key, per source address.
    pub unauthenticated_rate: f64,
    pub unauthenticated_burst: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            hotp_lookahead: 10,
            totp_window: 1,
            resync_search: 1000,
            challenge_validity_seconds:
                crate::store::GeneralSettings::DEFAULT_CHALLENGE_VALIDITY_SECONDS,
            challenge_tries: 3,
            approval_wait_max_seconds: 30,
            approval_waiters_max: 10_000,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            user_rate: 2.0,
            user_burst: 10,
            end_user_ip_rate: 5.0,
            end_user_ip_burst: 30,
            caller_rate: 0.0,
            caller_burst: 100,
            unauthenticated_rate: 1.0,
            unauthenticated_burst: 20,
        }
    }
}

/// Who may read `/metrics`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// When set, `/metrics` answers only `Authorization: Bearer <this token>` (Prometheus:
    /// `authorization: { credentials: … }` in the scrape config); at least
    /// [`MetricsConfig::MIN_TOKEN`] characters. Empty: anyone who reaches the port may read
    /// the metrics.
    pub bearer_token: String,
}

impl MetricsConfig {
    /// The shortest bearer token taken: long enough that it cannot be guessed.
    pub const MIN_TOKEN: usize = 16;
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.bearer_token.is_empty() {
            "(none)"
        } else {
            "[redacted]"
        };
        f.debug_struct("MetricsConfig")
            .field("bearer_token", &token)
            .finish()
    }
}

/// The password gate: every Argon2 hash and check goes through a few dedicated threads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordsConfig {
    /// Threads that hash passwords, each keeping 19 MiB; 0 means half the cores, at least one.
    pub workers: usize,
    /// Password checks that may wait for a thread; more are refused at once as busy.
    pub queue: usize,
    /// How long a password check may wait for a thread before it is refused as busy, in
    /// milliseconds.
    pub wait_ms: u64,
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        PasswordsConfig {
            workers: 0,
            queue: 32,
            wait_ms: 1000,
        }
    }
}

impl PasswordsConfig {
    pub fn gate_size(&self) -> crate::passwords::GateSize {
        crate::passwords::GateSize {
            workers: match self.workers {
                0 => crate::passwords::GateSize::default_workers(),
                workers => workers,
            },
            queue: self.queue,
            wait: std::time::Duration::from_millis(self.wait_ms),
        }
    }
}

/// Failed logins in a row, per account: the API's authentications, the admin panel's and the
/// portals' logins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginsConfig {
    /// Failures in a row that cost nothing; after them each failure doubles the wait before
    /// the next attempt, from one second. At or above `lock_after`, nothing waits: the
    /// account locks without delays before.
    pub free_failures: u32,
    /// The longest wait between two attempts, in seconds.
    pub max_delay_seconds: u64,
    /// Failures in a row that lock the account until an administrator unlocks it or (in the
    /// panel and the portals) its owner logs in from an address they logged in from before.
    /// At most 100 (NIST SP 800-63B, 5.2.2).
    pub lock_after: u32,
}

impl Default for LoginsConfig {
    fn default() -> Self {
        LoginsConfig {
            free_failures: 5,
            max_delay_seconds: 900,
            lock_after: 100,
        }
    }
}

/// The self-service portals' limits on failed steps (wrong passwords and codes); steps that
/// succeed count nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// Failed steps from one client address in the window, whoever they were for; then the
    /// address is refused until the window closes. High: an office behind one address.
    pub failures_per_address: u32,
    /// Failed steps for one login name from one client address in the window.
    pub failures_per_login: u32,
    /// The window, in minutes, from the first failure.
    pub failure_window_minutes: u64,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            failures_per_address: 200,
            failures_per_login: 10,
            failure_window_minutes: 15,
        }
    }
}

/// The RADIUS server: gateways send their users' logins as Access-Requests (RFC 2865).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadiusConfig {
    /// Addresses and ports for Access-Request and Status-Server; an empty list turns RADIUS
    /// authentication off. Packets from addresses no RADIUS client has are dropped.
    pub listen: Vec<String>,
    /// Addresses and ports for Accounting-Request; an empty list turns accounting off.
    pub accounting_listen: Vec<String>,
    /// Requests evaluated at once at most; more are dropped (the gateway retries) and counted.
    pub max_in_flight: usize,
    /// Addresses and ports for RADIUS over TLS (RadSec, RFC 6614, on TCP); empty turns it off.
    pub radsec_listen: Vec<String>,
    /// A PEM file of the CA (or CAs) that signs the gateways' client certificates; required
    /// with `radsec_listen`. The server presents the HTTPS certificate.
    pub radsec_client_ca: Option<PathBuf>,
    /// RadSec connections open at once at most; more are closed at once and counted.
    pub radsec_max_connections: usize,
    /// From accepting a RadSec connection to the end of its TLS handshake, in milliseconds.
    pub radsec_handshake_timeout_ms: u64,
    /// A RadSec connection that sends nothing for this long is closed, in seconds.
    pub radsec_idle_timeout_seconds: u64,
    /// Requests of one RadSec connection evaluated at once at most; past it, the connection
    /// is not read until one is answered. A login waiting for its approval does not count.
    pub radsec_max_in_flight_per_connection: usize,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        RadiusConfig {
            listen: vec!["127.0.0.1:1812".into()],
            accounting_listen: vec!["127.0.0.1:1813".into()],
            max_in_flight: 256,
            radsec_listen: Vec::new(),
            radsec_client_ca: None,
            radsec_max_connections: 256,
            radsec_handshake_timeout_ms: 5_000,
            radsec_idle_timeout_seconds: 300,
            radsec_max_in_flight_per_connection: 32,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, or per module like `info,otpgate::web=debug`.
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8443".into(),
            public_url: String::new(),
            workers: 0,
            shutdown_timeout_seconds: 30,
            max_connections: 10_000,
            pending_connections_per_address: 64,
            tls_handshake_timeout_ms: 2_000,
            request_head_timeout_ms: 5_000,
            request_body_timeout_ms: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            cert_file: None,
            key_file: None,
            extra_names: Vec::new(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            synchronous: Synchronous::Full,
            readers: 4,
            busy_timeout_ms: 5000,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            session_idle_minutes: 30,
            session_max_hours: 12,
            login_attempts_per_ip: 30,
            login_attempts_per_login: 10,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

/// A configuration error that names the file, the key and, when known, the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {file}: {reason}")]
    Read { file: PathBuf, reason: String },
    #[error("{}{}: {key}: {message}", file.as_ref().map(|f| format!("{}", f.display())).unwrap_or_else(|| "configuration".into()), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Invalid {
        file: Option<PathBuf>,
        line: Option<usize>,
        key: String,
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: None,
            line: None,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The values that the command line and the environment may override.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub log_level: Option<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Config {
    /// Parses a configuration file's text; errors name the key and its line.
    pub fn parse(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
        let located = |key: String, message: String, span: Option<std::ops::Range<usize>>| {
            ConfigError::Invalid {
                file: file.map(Path::to_path_buf),
                line: span.map(|s| line_of(text, s.start)),
                key,
                message,
            }
        };
        let deserializer = toml::de::Deserializer::parse(text)
            .map_err(|e| located("(syntax)".into(), e.message().to_string(), e.span()))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            located(key, inner.message().to_string(), inner.span())
        })?;
        config.validate().map_err(|e| match e {
            ConfigError::Invalid { key, message, .. } => {
                let line = find_key_line(text, &key);
                ConfigError::Invalid {
                    file: file.map(Path::to_path_buf),
                    line,
                    key,
                    message,
                }
            }
            other => other,
        })?;
        Ok(config)
    }

    /// Loads the configuration from `file` (when there is one) and applies the overrides.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    file: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                Config::parse(&text, Some(path))?
            }
            None => Config::default(),
        };
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = Some(dir.clone());
        }
        if let Some(listen) = &overrides.listen {
            config.server.listen = listen.clone();
        }
        if let Some(level) = &overrides.log_level {
            config.log.level = level.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// The RadSec keys: a client CA whenever RadSec listens, and bounds that hold.
    fn validate_radsec(&self) -> Result<(), ConfigError> {
        let radius = &self.radius;
        let no_ca = radius
            .radsec_client_ca
            .as_ref()
            .is_none_or(|path| path.as_os_str().is_empty());
        if !radius.radsec_listen.is_empty() && no_ca {
            return Err(ConfigError::invalid(
                "radius.radsec_client_ca",
                "is required with radius.radsec_listen: the CA that signs the gateways' client certificates",
            ));
        }
        for (key, value, range) in [
            (
                "radius.radsec_max_connections",
                radius.radsec_max_connections as u64,
                1..=100_000,
            ),
            (
                "radius.radsec_handshake_timeout_ms",
                radius.radsec_handshake_timeout_ms,
                100..=600_000,
            ),
            (
                "radius.radsec_idle_timeout_seconds",
                radius.radsec_idle_timeout_seconds,
                1..=86_400,
            ),
            (
                "radius.radsec_max_in_flight_per_connection",
                radius.radsec_max_in_flight_per_connection as u64,
                1..=4096,
            ),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        Ok(())
    }

    /// Checks every value that TOML's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        for (key, addresses) in [
            ("radius.listen", &self.radius.listen),
            ("radius.accounting_listen", &self.radius.accounting_listen),
            ("radius.radsec_listen", &self.radius.radsec_listen),
        ] {
            for address in addresses {
                if address.parse::<SocketAddr>().is_err() {
                    return Err(ConfigError::invalid(
                        key,
                        format!("{address:?} is not an IP address and port"),
                    ));
                }
            }
        }
        if !(1..=65_536).contains(&self.radius.max_in_flight) {
            return Err(ConfigError::invalid(
                "radius.max_in_flight",
                "must be between 1 and 65536",
            ));
        }
        self.validate_radsec()?;
        if !self.server.public_url.is_empty() {
            let url = &self.server.public_url;
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| {
                    ConfigError::invalid("server.public_url", "must start with https:// or http://")
                })?;
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(ConfigError::invalid(
                    "server.public_url",
                    "is not a valid URL",
                ));
            }
        }
        if self.server.workers > 256 {
            return Err(ConfigError::invalid(
                "server.workers",
                "must be between 0 and 256",
            ));
        }
        if !(16..=1_000_000).contains(&self.server.max_connections) {
            return Err(ConfigError::invalid(
                "server.max_connections",
                "must be between 16 and 1000000",
            ));
        }
        if self.server.pending_connections_per_address > 100_000 {
            return Err(ConfigError::invalid(
                "server.pending_connections_per_address",
                "must be between 0 (no limit) and 100000",
            ));
        }
        for (key, value) in [
            (
                "server.tls_handshake_timeout_ms",
                self.server.tls_handshake_timeout_ms,
            ),
            (
                "server.request_head_timeout_ms",
                self.server.request_head_timeout_ms,
            ),
            (
                "server.request_body_timeout_ms",
                self.server.request_body_timeout_ms,
            ),
        ] {
            if !(100..=600_000).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    "must be between 100 and 600000 (ten minutes)",
                ));
            }
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "tls.key_file",
                    "is required with tls.cert_file",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "tls.cert_file",
                    "is required with tls.key_file",
                ));
            }
            _ => {}
        }
        for name in &self.tls.extra_names {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(ConfigError::invalid(
                    "tls.extra_names",
                    format!("{name:?} is not a host name or IP address"),
                ));
            }
        }
        if self.storage.readers == 0 || self.storage.readers > 64 {
            return Err(ConfigError::invalid(
                "storage.readers",
                "must be between 1 and 64",
            ));
        }
        if self.admin.session_idle_minutes == 0 {
            return Err(ConfigError::invalid(
                "admin.session_idle_minutes",
                "must be at least 1",
            ));
        }
        if self.admin.session_max_hours == 0 {
            return Err(ConfigError::invalid(
                "admin.session_max_hours",
                "must be at least 1",
            ));
        }
        if self.admin.login_attempts_per_ip == 0 || self.admin.login_attempts_per_login == 0 {
            return Err(ConfigError::invalid(
                "admin.login_attempts_per_ip",
                "login attempt limits must be at least 1",
            ));
        }
        if let Err(message) = crate::forwarded::TrustedProxies::parse(&self.server.trusted_proxies)
        {
            return Err(ConfigError::invalid("server.trusted_proxies", message));
        }
        if !(1..=100_000).contains(&self.portal.failures_per_address) {
            return Err(ConfigError::invalid(
                "portal.failures_per_address",
                "must be between 1 and 100000",
            ));
        }
        if !(1..=1000).contains(&self.portal.failures_per_login) {
            return Err(ConfigError::invalid(
                "portal.failures_per_login",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=1440).contains(&self.portal.failure_window_minutes) {
            return Err(ConfigError::invalid(
                "portal.failure_window_minutes",
                "must be between 1 and 1440 (a day)",
            ));
        }
        if self.auth.hotp_lookahead > 1000 {
            return Err(ConfigError::invalid(
                "auth.hotp_lookahead",
                "must be at most 1000",
            ));
        }
        if self.auth.totp_window > 10 {
            return Err(ConfigError::invalid(
                "auth.totp_window",
                "must be at most 10",
            ));
        }
        if !(2..=10_000).contains(&self.auth.resync_search) {
            return Err(ConfigError::invalid(
                "auth.resync_search",
                "must be between 2 and 10000",
            ));
        }
        if !(30..=3600).contains(&self.auth.challenge_validity_seconds) {
            return Err(ConfigError::invalid(
                "auth.challenge_validity_seconds",
                "must be between 30 and 3600",
            ));
        }
        if !(1..=10).contains(&self.auth.challenge_tries) {
            return Err(ConfigError::invalid(
                "auth.challenge_tries",
                "must be between 1 and 10",
            ));
        }
        if !(1..=300).contains(&self.auth.approval_wait_max_seconds) {
            return Err(ConfigError::invalid(
                "auth.approval_wait_max_seconds",
                "must be between 1 and 300",
            ));
        }
        if !(1..=1_000_000).contains(&self.auth.approval_waiters_max) {
            return Err(ConfigError::invalid(
                "auth.approval_waiters_max",
                "must be between 1 and 1000000",
            ));
        }
        if self.passwords.workers > 64 {
            return Err(ConfigError::invalid(
                "passwords.workers",
                "must be between 0 (half the cores) and 64",
            ));
        }
        if !(1..=10_000).contains(&self.passwords.queue) {
            return Err(ConfigError::invalid(
                "passwords.queue",
                "must be between 1 and 10000",
            ));
        }
        if !(10..=60_000).contains(&self.passwords.wait_ms) {
            return Err(ConfigError::invalid(
                "passwords.wait_ms",
                "must be between 10 and 60000",
            ));
        }
        if self.logins.free_failures > 20 {
            return Err(ConfigError::invalid(
                "logins.free_failures",
                "must be at most 20",
            ));
        }
        if !(1..=86_400).contains(&self.logins.max_delay_seconds) {
            return Err(ConfigError::invalid(
                "logins.max_delay_seconds",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=100).contains(&self.logins.lock_after) {
            return Err(ConfigError::invalid(
                "logins.lock_after",
                "must be between 1 and 100 (NIST SP 800-63B)",
            ));
        }
        for (key, rate) in [
            ("api.user_rate", self.api.user_rate),
            ("api.end_user_ip_rate", self.api.end_user_ip_rate),
            ("api.caller_rate", self.api.caller_rate),
            ("api.unauthenticated_rate", self.api.unauthenticated_rate),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(ConfigError::invalid(
                    key,
                    "must be 0 (unlimited) or a positive number",
                ));
            }
        }
        let token = &self.metrics.bearer_token;
        if !token.is_empty()
            && (token.chars().count() < MetricsConfig::MIN_TOKEN
                || !token.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(ConfigError::invalid(
                "metrics.bearer_token",
                format!(
                    "must be at least {} printable ASCII characters without spaces (e.g. `openssl rand -hex 32`), or empty",
                    MetricsConfig::MIN_TOKEN
                ),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::invalid(
                "log.level",
                "is not a valid log filter",
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            ConfigError::invalid(
                "server.listen",
                format!(
                    "{:?} is not an address:port such as 0.0.0.0:8443",
                    self.server.listen
                ),
            )
        })
    }

    /// The effective configuration as TOML. Nothing in the file is secret today (credentials
    /// live sealed in the database), but paths to keys are shown, never key material.
    /// The configuration as TOML, for `config check`; the metrics token is not shown.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.metrics.bearer_token.is_empty() {
            shown.metrics.bearer_token = "(set, not shown)".into();
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// The line of `section.key = …` in a TOML text, for validation errors found after parsing.
fn find_key_line(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
        } else if current == section
            && line
                .split('=')
                .next()
                .is_some_and(|k| k.trim() == key && line.contains('='))
        {
            return Some(index + 1);
        }
    }
    None
}

/// The configuration file to use when none is given: the packaged one when it exists, else the
/// platform's configuration directory's `config.toml` when it exists, else none at all.
pub fn default_config_file() -> Option<PathBuf> {
    let packaged = PathBuf::from(PACKAGED_CONFIG);
    if packaged.is_file() {
        return Some(packaged);
    }
    let user = directories::ProjectDirs::from("", "", "otpgate")?
        .config_dir()
        .join("config.toml");
    user.is_file().then_some(user)
}

/// The data directory: the configured one, else systemd's state directory when run as the
/// packaged service, else the platform's data directory.
pub fn resolve_data_dir(config: &Config) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = &config.data_dir {
        return Ok(dir.clone());
    }
    if let Some(state) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several colon-separated directories; ours is the first.
        if let Some(first) = state.to_string_lossy().split(':').next()
            && !first.is_empty()
        {
            return Ok(PathBuf::from(first));
        }
    }
    directories::ProjectDirs::from("", "", "otpgate")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or_else(|| {
            ConfigError::invalid("data_dir", "no home directory: set data_dir or --data-dir")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> (String, Option<usize>, String) {
        match Config::parse(text, Some(Path::new("test.toml"))) {
            Err(ConfigError::Invalid {
                key, line, message, ..
            }) => (key, line, message),
            other => panic!("expected an invalid-config error, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = Config::parse("", None).expect("parse");
        assert_eq!(config.server.listen, "127.0.0.1:8443");
        assert!(config.tls.enabled);
    }

    #[test]
    fn an_unknown_key_is_rejected_by_name_and_line() {
        let (key, line, message) = error_of("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n");
        assert_eq!(key, "server.lisen");
        assert_eq!(line, Some(3));
        assert!(message.contains("unknown field"), "{message}");
    }

    #[test]
    fn an_unknown_section_is_rejected_by_name() {
        let (key, line, _) = error_of("\n[sever]\nlisten = \"x\"\n");
        assert_eq!(key, "sever");
        assert_eq!(line, Some(2));
    }

    #[test]
    fn a_wrong_type_names_the_key_and_line() {
        let (key, line, _) = error_of("[storage]\n\nreaders = \"many\"\n");
        assert_eq!(key, "storage.readers");
        assert_eq!(line, Some(3));
    }

    #[test]
    fn an_invalid_value_names_the_key_and_line() {
        let (key, line, message) = error_of("[server]\nworkers = 2\nlisten = \"nowhere\"\n");
        assert_eq!(key, "server.listen");
        assert_eq!(line, Some(3));
        assert!(message.contains("nowhere"));
    }

    #[test]
    fn a_connection_bound_out_of_range_is_rejected_by_name() {
        let (key, line, _) = error_of("[server]\ntls_handshake_timeout_ms = 0\n");
        assert_eq!(
            (key.as_str(), line),
            ("server.tls_handshake_timeout_ms", Some(2))
        );
        let (key, _, _) = error_of("[server]\nrequest_body_timeout_ms = 3600000\n");
        assert_eq!(key, "server.request_body_timeout_ms");
        let (key, _, _) = error_of("[server]\nmax_connections = 1\n");
        assert_eq!(key, "server.max_connections");
        let config = Config::parse("[server]\npending_connections_per_address = 0\n", None);
        assert!(config.is_ok(), "0 is no limit");
    }

    #[test]
    fn a_trusted_proxy_that_is_no_address_is_rejected_by_name() {
        let (key, line, message) =
            error_of("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.lan\"]\n");
        assert_eq!((key.as_str(), line), ("server.trusted_proxies", Some(2)));
        assert!(message.contains("proxy.lan"), "{message}");
        let (key, _, _) = error_of("[portal]\nfailures_per_login = 0\n");
        assert_eq!(key, "portal.failures_per_login");
    }

    #[test]
    fn a_certificate_without_its_key_is_rejected() {
        let (key, _, _) = error_of("[tls]\ncert_file = \"/x.pem\"\n");
        assert_eq!(key, "tls.key_file");
    }

    #[test]
    fn the_overrides_win_over_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\n[server]\nlisten = \"127.0.0.1:1\"\n",
        )
        .expect("write");
        let overrides = Overrides {
            data_dir: Some(PathBuf::from("/from/flag")),
            listen: Some("127.0.0.1:2".into()),
            log_level: None,
        };
        let config = Config::load(Some(&file), &overrides).expect("load");
        assert_eq!(config.data_dir, Some(PathBuf::from("/from/flag")));
        assert_eq!(config.server.listen, "127.0.0.1:2");
    }

    #[test]
    fn radius_listens_on_loopback_by_default_and_refuses_addresses_without_a_port() {
        let config = Config::default();
        assert_eq!(config.radius.listen, vec!["127.0.0.1:1812".to_string()]);
        assert_eq!(
            config.radius.accounting_listen,
            vec!["127.0.0.1:1813".to_string()]
        );
        let off = Config::parse("[radius]\nlisten = []\naccounting_listen = []\n", None)
            .expect("an empty list turns RADIUS off");
        assert!(off.radius.listen.is_empty());
        let error = Config::parse("[radius]\nlisten = [\"0.0.0.0\"]\n", None).expect_err("no port");
        assert!(error.to_string().contains("radius.listen"), "{error}");
    }

    #[test]
    fn radsec_is_off_by_default_and_listens_only_with_a_client_ca() {
        let config = Config::default();
        assert!(config.radius.radsec_listen.is_empty());
        assert_eq!(config.radius.radsec_client_ca, None);
        let (key, line, message) = error_of("[radius]\nradsec_listen = [\"0.0.0.0:2083\"]\n");
        assert_eq!(key, "radius.radsec_client_ca");
        assert_eq!(line, None, "the key is missing, not on a line");
        assert!(message.contains("client certificates"), "{message}");
        let on = Config::parse(
            "[radius]\nradsec_listen = [\"0.0.0.0:2083\"]\nradsec_client_ca = \"/etc/otpgate/ca.pem\"\n",
            None,
        )
        .expect("a CA makes it valid");
        assert_eq!(on.radius.radsec_listen, vec!["0.0.0.0:2083".to_string()]);
        let (key, _, _) =
            error_of("[radius]\nradsec_listen = [\"0.0.0.0:2083\"]\nradsec_client_ca = \"\"\n");
        assert_eq!(key, "radius.radsec_client_ca", "an empty path is no CA");
        let (key, _, _) =
            error_of("[radius]\nradsec_listen = [\"0.0.0.0\"]\nradsec_client_ca = \"/ca.pem\"\n");
        assert_eq!(key, "radius.radsec_listen");
        let (key, _, message) = error_of("[radius]\nradsec_handshake_timeout_ms = 10\n");
        assert_eq!(key, "radius.radsec_handshake_timeout_ms");
        assert_eq!(message, "must be between 100 and 600000");
        let (key, _, _) = error_of("[radius]\nradsec_max_connections = 0\n");
        assert_eq!(key, "radius.radsec_max_connections");
    }

    #[test]
    fn the_commented_example_config_parses_and_sets_every_section() {
        let text = include_str!("../packaging/config.toml");
        let config = Config::parse(text, None).expect("the example config is valid");
        assert_eq!(config.server.listen, "0.0.0.0:8443");
        assert_eq!(config.radius.listen, vec!["0.0.0.0:1812".to_string()]);
        assert_eq!(
            config.radius.accounting_listen,
            vec!["0.0.0.0:1813".to_string()]
        );
        assert_eq!(config.data_dir, Some(PathBuf::from("/var/lib/otpgate")));
        // Every key of the defaults appears in the example, commented or not, so that the
        // example documents the whole configuration.
        let defaults = toml::to_string(&Config::default()).expect("render");
        for line in defaults.lines() {
            if let Some((key, _)) = line.split_once(" = ") {
                assert!(
                    text.contains(&format!("{key} =")),
                    "the example does not mention {key}"
                );
            }
        }
    }
}
