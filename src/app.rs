//! The composition root: everything the running server needs is built here from a `Config`,
//! and nothing lives in globals, so that tests start as many servers as they like.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, web as actix};
use anyhow::Context;
use utoipa_actix_web::AppExt;

use crate::attempts::{Guard, Policy};
use crate::config::{self, Config};
use crate::crypto::{self, Keys};
use crate::limiter::{Limiter, PortalLimits, TokenBuckets};
use crate::listener;
use crate::metrics::Metrics;
use crate::passwords::PasswordGate;
use crate::store::{self, Store, StoreOptions};
use crate::tls;
use crate::web::{self, AppState, SetupState};

/// The data directory, held exclusively by one server at a time through a lock file.
pub struct DataDir {
    path: PathBuf,
    _lock: std::fs::File,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the data directory {0} is in use by a running otpgate (it holds {0}/otpgate.lock); stop it first"
)]
pub struct DataDirBusy(pub PathBuf);

impl DataDir {
    /// Creates the directory (private to its owner and group) and takes its lock.
    pub fn lock(path: &Path) -> anyhow::Result<DataDir> {
        create_private_dir(path)?;
        let lock_path = path.join("otpgate.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDir {
                path: path.to_path_buf(),
                _lock: file,
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(DataDirBusy(path.to_path_buf()).into()),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", lock_path.display()))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o750);
    }
    builder
        .create(path)
        .with_context(|| format!("cannot create the data directory {}", path.display()))
}

/// HTTP worker threads: as configured, or by default one per CPU core but one, which is left
/// to the store's writer. Every authentication's reads and writes run on that one thread, so
/// an executor thread per core would only take turns with it (measured on two cores: one
/// worker answered 13,300 and 14,700 authentications a second, two 12,400 and 11,300).
fn http_workers(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).max(1)
}

/// Opens the database and the key file that belongs to it: a new database gets a new key; a
/// database with sealed data refuses to start without its own key.
pub fn open_store_and_keys(config: &Config, data_dir: &Path) -> anyhow::Result<(Store, Keys)> {
    let options = StoreOptions {
        synchronous: config.storage.synchronous,
        readers: config.storage.readers,
        busy_timeout: Duration::from_millis(config.storage.busy_timeout_ms),
    };
    let store = Store::open(&data_dir.join(store::DATABASE_FILE), options)?;
    let key_check = store.read_blocking(|conn| store::get_setting_in(conn, "key_check"))?;
    let keys = Keys::load_or_create(&data_dir.join(crypto::KEY_FILE), key_check.is_none())?;
    match key_check {
        Some(check) => keys.verify_key_check(&check)?,
        None => {
            let check = keys.key_check()?;
            let now = crate::clock::now();
            store.write_blocking(move |conn| {
                store::set_setting_in(conn, "key_check", &check, now)
            })?;
        }
    }
    Ok((store, keys))
}

pub struct Application {
    local_addr: SocketAddr,
    scheme: &'static str,
    base_url: String,
    setup_link: Option<String>,
    server: actix_web::dev::Server,
    store: Store,
    fingerprint: Option<String>,
    delivery: crate::delivery::Worker,
    telegram: Arc<crate::delivery::bot::Telegram>,
    radius: crate::radius::listen::RadiusServer,
    directory_sync: DirectorySync,
    _data_dir: DataDir,
}

/// What the directories' scheduled sync needs beside the store.
struct DirectorySync {
    keys: Arc<Keys>,
    syncs: Arc<crate::directories::sync::Syncs>,
}

impl Application {
    /// Opens the data directory, the database and the keys, prepares TLS, and binds the
    /// listener. The server answers once [`Application::run_until_stopped`] is awaited.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let data_dir_path = config::resolve_data_dir(&config)?;
        let data_dir = DataDir::lock(&data_dir_path)?;
        let (store, keys) = {
            let config = config.clone();
            let path = data_dir_path.clone();
            tokio::task::spawn_blocking(move || open_store_and_keys(&config, &path)).await??
        };

        let tls_material = if config.tls.enabled {
            let material = tls::load(&config.tls, &data_dir_path, crate::clock::now())?;
            if material.generated {
                tracing::info!(
                    file = %material.cert_file.display(),
                    fingerprint = %material.fingerprint,
                    "generated a self-signed TLS certificate"
                );
            } else {
                tracing::info!(
                    file = %material.cert_file.display(),
                    fingerprint = %material.fingerprint,
                    "using TLS certificate"
                );
            }
            Some(material)
        } else {
            tracing::warn!("TLS is off: serve otpgate only behind a reverse proxy that adds HTTPS");
            None
        };

        let listen = config.listen_addr()?;
        let listener = listener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local_addr = listener.local_addr()?;
        let scheme = if tls_material.is_some() {
            "https"
        } else {
            "http"
        };
        let base_url = if config.server.public_url.is_empty() {
            let host = if local_addr.ip().is_unspecified() {
                gethostname::gethostname().to_string_lossy().into_owned()
            } else if local_addr.is_ipv6() {
                format!("[{}]", local_addr.ip())
            } else {
                local_addr.ip().to_string()
            };
            format!("{scheme}://{host}:{}", local_addr.port())
        } else {
            config.server.public_url.trim_end_matches('/').to_string()
        };

        let mut setup = None;
        let mut setup_link = None;
        if store.admin_count().await? == 0 {
            let (state, code) = SetupState::new()?;
            let link = format!("{base_url}/setup?code={code}");
            tracing::warn!(
                link = %link,
                "no administrator exists yet: open the setup link to create the first one (valid until setup is done or otpgate restarts)"
            );
            setup = Some(state);
            setup_link = Some(link);
        }

        let metrics = Arc::new(Metrics::default());
        let wakeup = crate::delivery::Wakeup::default();
        let delivery = crate::delivery::Worker::new(
            store.clone(),
            keys.clone(),
            metrics.clone(),
            wakeup.clone(),
        );
        let approval_waiters = crate::waiters::Waiters::new(config.auth.approval_waiters_max);
        let telegram = crate::delivery::bot::Telegram::new(
            store.clone(),
            keys.clone(),
            approval_waiters.clone(),
        );
        let passwords = PasswordGate::start(config.passwords.gate_size(), metrics.clone())
            .context("cannot start the password workers")?;
        let passwords = Arc::new(passwords);
        let keys = Arc::new(keys);
        let directories = Arc::new(crate::directories::Service::new(metrics.clone()));
        let guard = Arc::new(Guard::new(Policy::of(&config.logins), metrics.clone()));
        let throttle_user = Arc::new(TokenBuckets::new(
            config.api.user_rate,
            config.api.user_burst,
        ));
        let radsec_tls = match &config.radius.radsec_client_ca {
            Some(client_ca) if !config.radius.radsec_listen.is_empty() => {
                // RadSec presents the HTTPS certificate, loaded here too when HTTPS is off.
                let live = match &tls_material {
                    Some(material) => material.live.clone(),
                    None => tls::load(&config.tls, &data_dir_path, crate::clock::now())?.live,
                };
                Some(crate::radius::radsec::server_config(live, client_ca)?)
            }
            _ => None,
        };
        let radius = crate::radius::listen::RadiusServer::bind(
            &config.radius,
            crate::radius::server::Services {
                store: store.clone(),
                keys: keys.clone(),
                auth: config.auth.clone(),
                metrics: metrics.clone(),
                passwords: passwords.clone(),
                guard: guard.clone(),
                per_account: throttle_user.clone(),
                end_user_ip: TokenBuckets::new(
                    config.api.end_user_ip_rate,
                    config.api.end_user_ip_burst,
                ),
                wakeup: wakeup.clone(),
                directories: directories.clone(),
                waiters: approval_waiters.clone(),
            },
            radsec_tls,
        )?;
        let admin = &config.admin;
        let window = Duration::from_secs(15 * 60);
        let directory_syncs = Arc::new(crate::directories::sync::Syncs::default());
        let directory_sync = DirectorySync {
            keys: keys.clone(),
            syncs: directory_syncs.clone(),
        };
        let state = actix::Data::new(AppState {
            store: store.clone(),
            keys,
            directory_syncs,
            logins: guard,
            metrics: metrics.clone(),
            passwords,
            login_per_ip: Limiter::new(admin.login_attempts_per_ip, window),
            portal_limits: PortalLimits::new(
                config.portal.failures_per_address,
                config.portal.failures_per_login,
                Duration::from_secs(config.portal.failure_window_minutes * 60),
            ),
            trusted_proxies: crate::forwarded::TrustedProxies::parse(
                &config.server.trusted_proxies,
            )
            .map_err(anyhow::Error::msg)
            .context("server.trusted_proxies")?,
            setup: Mutex::new(setup),
            base_url: base_url.clone(),
            secure_cookies: tls_material.is_some(),
            issuer: "otpgate".into(),
            api_keys: web::api::KeyCache::default(),
            throttle_unauthenticated: TokenBuckets::new(
                config.api.unauthenticated_rate,
                config.api.unauthenticated_burst,
            ),
            throttle_user,
            throttle_end_user_ip: TokenBuckets::new(
                config.api.end_user_ip_rate,
                config.api.end_user_ip_burst,
            ),
            throttle_caller: TokenBuckets::new(config.api.caller_rate, config.api.caller_burst),
            config: config.clone(),
            delivery: wakeup,
            approval_waiters,
            telegram: telegram.clone(),
            tls: tls_material.as_ref().map(|m| m.live.clone()),
            directories,
        });

        let document = actix::Data::new(web::api::OpenApiDocument(openapi_document()?));
        let serving = listener::Serving {
            workers: http_workers(config.server.workers),
            shutdown_timeout_seconds: config.server.shutdown_timeout_seconds,
            limits: listener::Limits::of(&config.server),
            tls: tls_material.as_ref().map(|m| m.server_config.clone()),
            metrics: metrics.clone(),
        };
        let fingerprint = tls_material.as_ref().map(|m| m.fingerprint.clone());
        let server = listener::serve(listener, serving, move || {
            let (app, _) = App::new()
                .into_utoipa_app()
                .openapi(<web::api::ApiDoc as utoipa::OpenApi>::openapi())
                .app_data(state.clone())
                .app_data(document.clone())
                .app_data(actix::FormConfig::default().limit(64 * 1024))
                .service(
                    utoipa_actix_web::scope("/api/v1")
                        .configure(web::api::configure)
                        .map(|scope| scope.service(web::manners::unrouted()))
                        .default_service(actix::to(web::api::not_found)),
                )
                .split_for_parts();
            // The request deadlines sit inside `observe`, so that their 408 carries the
            // security headers and is counted; a HEAD is routed as a GET inside both.
            app.wrap(from_fn(web::manners::head_as_get))
                .wrap(from_fn(listener::bound_request))
                .wrap(from_fn(web::observe))
                .configure(web::routes)
                .service(web::manners::unrouted())
                .default_service(actix::to(web::not_found))
        })?;

        Ok(Application {
            local_addr,
            scheme,
            base_url,
            setup_link,
            server,
            store,
            fingerprint,
            delivery,
            telegram,
            radius,
            directory_sync,
            _data_dir: data_dir,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// `https://IP:PORT` of the bound listener.
    pub fn listen_url(&self) -> String {
        format!("{}://{}", self.scheme, self.local_addr)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The first-start setup link, while no administrator exists.
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    pub fn certificate_fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The bound RADIUS authentication addresses (none when RADIUS is off).
    pub fn radius_addresses(&self) -> Vec<SocketAddr> {
        self.radius.authentication_addresses()
    }

    /// The bound RADIUS accounting addresses.
    pub fn radius_accounting_addresses(&self) -> Vec<SocketAddr> {
        self.radius.accounting_addresses()
    }

    /// The bound RadSec addresses (none when RadSec is off).
    pub fn radsec_addresses(&self) -> Vec<SocketAddr> {
        self.radius.radsec_addresses()
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT (or a handle's stop): requests in flight are finished,
    /// housekeeping and the Telegram bot stop, the delivery worker finishes the sends in flight and starts no new
    /// one, and the store commits what it was given before it closes.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let store = self.store.clone();
        let housekeeping = tokio::spawn(housekeeping(store.clone()));
        let directory_sync = tokio::spawn(crate::directories::sync::schedule(
            store.clone(),
            self.directory_sync.keys.clone(),
            self.directory_sync.syncs.clone(),
        ));
        let delivery = self.delivery.start();
        let (stop_bot, bot_stopped) = tokio::sync::watch::channel(false);
        let bot = tokio::spawn(self.telegram.clone().run(bot_stopped));
        let radius = self.radius.start().map_err(std::io::Error::other)?;
        let result = self.server.await;
        for task in radius {
            task.abort();
        }
        housekeeping.abort();
        directory_sync.abort();
        let _ = stop_bot.send(true);
        let _ = bot.await;
        delivery.stop().await;
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(std::io::Error::other)?;
        tracing::info!("stopped");
        result
    }
}

/// The OpenAPI document of the API, generated from the handlers' annotations.
pub fn openapi_document() -> anyhow::Result<String> {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(<web::api::ApiDoc as utoipa::OpenApi>::openapi())
        .service(utoipa_actix_web::scope("/api/v1").configure(web::api::configure))
        .split_for_parts();
    let mut document = serde_json::to_value(&api)?;
    web::api::state_constraints(&mut document);
    Ok(serde_json::to_string_pretty(&document)?)
}

/// Periodic clean-up: expired sessions, unanswered transactions, old approvals, old failures
/// of addresses.
async fn housekeeping(store: Store) {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    loop {
        interval.tick().await;
        let now = crate::clock::now();
        let purged = match store.purge_expired_sessions(now).await {
            Ok(sessions) => store
                .purge_expired_transactions(now)
                .await
                .map(|transactions| (sessions, transactions)),
            Err(e) => Err(e),
        };
        match purged {
            Ok((0, 0)) => {}
            Ok((sessions, transactions)) => {
                tracing::debug!(sessions, transactions, "removed what expired")
            }
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
        // Approvals decided or expired a day ago: a caller asking after that is told
        // "rejected" all the same (their transaction is gone).
        if let Err(e) = store.purge_approvals(now - 86_400).await {
            tracing::warn!(error = %e, "housekeeping failed");
        }
        // The failures of addresses that never logged in, a day after the last: their waits
        // (at most `logins.max_delay_seconds`, itself at most a day) ran out.
        if let Err(e) = store.purge_login_failures(now - 86_400).await {
            tracing::warn!(error = %e, "housekeeping failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::http_workers;

    #[test]
    fn configured_http_workers_are_kept_and_the_default_leaves_a_core_to_the_writer() {
        assert_eq!(http_workers(3), 3);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(http_workers(0), cores.saturating_sub(1).max(1));
        assert!(http_workers(0) >= 1);
    }
}
