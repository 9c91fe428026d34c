//! The HTTP front ends. Handlers parse input, call the core and the store's operations, and
//! render; they hold no SQL and no business rules.

pub mod api;
mod error;
mod form;
pub mod manners;
mod ops;
mod panel;
mod portal;
mod session;
mod views;

use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::config::Config;
use crate::crypto::Keys;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::store::Store;

pub use error::PageError;
pub use panel::SetupState;
pub use session::client_ip;

/// The answer to an address that matches no route.
pub async fn not_found() -> Result<actix_web::HttpResponse, PageError> {
    Err(PageError::NotFound)
}

/// Everything a handler may use, built once by the application.
pub struct AppState {
    pub store: Store,
    pub keys: std::sync::Arc<Keys>,
    pub config: Config,
    pub metrics: std::sync::Arc<Metrics>,
    /// Admin panel login attempts per client address.
    pub login_per_ip: Limiter,
    /// The portals' limits on failed steps, per address and per login name at an address.
    pub portal_limits: crate::limiter::PortalLimits,
    /// Whose forwarding headers name the client (`session::client_ip`).
    pub trusted_proxies: crate::forwarded::TrustedProxies,
    /// Every Argon2 hash and check goes through it.
    pub passwords: std::sync::Arc<crate::passwords::PasswordGate>,
    /// Failed logins in a row: the waits and locks of the API, the panel and the portals.
    pub logins: std::sync::Arc<crate::attempts::Guard>,
    /// The pending first-start setup, while no administrator exists.
    pub setup: Mutex<Option<SetupState>>,
    /// The address users reach otpgate at, without a trailing slash.
    pub base_url: String,
    /// Cookies carry `Secure` when otpgate speaks HTTPS.
    pub secure_cookies: bool,
    /// The name shown as issuer in authenticator apps.
    pub issuer: String,
    /// API keys recently looked up.
    pub api_keys: api::KeyCache,
    /// Requests without a valid API key, per source address.
    pub throttle_unauthenticated: crate::limiter::TokenBuckets,
    /// Authentication requests per account (a user by id, a token used alone by id).
    pub throttle_user: std::sync::Arc<crate::limiter::TokenBuckets>,
    /// Authentication requests per end-user address (the `ip` the caller reports).
    pub throttle_end_user_ip: crate::limiter::TokenBuckets,
    /// Authentication requests per calling application's address (off by default).
    pub throttle_caller: crate::limiter::TokenBuckets,
    /// Wakes the delivery worker when messages were queued.
    pub delivery: crate::delivery::Wakeup,
    /// The logins waiting for approvals' decisions (the API's `wait`).
    pub approval_waiters: crate::waiters::Waiters,
    /// The Telegram bot's listener: its status, and a restart after its settings changed.
    pub telegram: std::sync::Arc<crate::delivery::bot::Telegram>,
    /// The certificate the server presents (None when TLS is off), replaceable in the panel.
    pub tls: Option<std::sync::Arc<crate::tls::LiveCertificate>>,
    /// The directories' pooled connections, and the lookup of logins no user has.
    pub directories: std::sync::Arc<crate::directories::Service>,
    /// The directories whose sync runs now (Sync now and the scheduler), one at a time each.
    pub directory_syncs: std::sync::Arc<crate::directories::sync::Syncs>,
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(ops::healthz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/assets/style.css", web::get().to(ops::stylesheet))
        .route("/assets/panel.js", web::get().to(ops::panel_script))
        .configure(panel::routes)
        .configure(portal::routes);
}

/// Adds the security headers to every response and records its metrics.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().to_string();
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let mut response = next.call(request).await?;
    let route = response
        .request()
        .match_pattern()
        .filter(|pattern| !pattern.ends_with(manners::UNROUTED_SEGMENT))
        .unwrap_or_else(|| "(unmatched)".to_string());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !route.starts_with("/assets/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // Only with a certificate browsers trust by themselves: with the generated one, HSTS would
    // stop a browser from letting its user accept it.
    if state
        .as_ref()
        .and_then(|state| state.tls.as_ref())
        .is_some_and(|tls| tls.is_operators())
    {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if let Some(state) = state {
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        if response
            .response()
            .extensions()
            .contains::<WaitedForApproval>()
        {
            state
                .metrics
                .observe_approval_wait(&route, &method, status, elapsed);
        } else {
            state
                .metrics
                .observe_request(&route, &method, status, elapsed);
        }
    }
    Ok(response)
}

/// Marks the answer to a request that asked to wait for a person's decision (the API's `wait`
/// for an approval): its time goes to a histogram of its own.
#[derive(Debug, Clone, Copy)]
pub struct WaitedForApproval;

impl AppState {
    /// The general settings in force while none are stored: from the configuration file.
    pub fn general_defaults(&self) -> crate::store::GeneralSettings {
        crate::store::GeneralSettings {
            public_url: self
                .config
                .server
                .public_url
                .trim_end_matches('/')
                .to_string(),
            challenge_validity_seconds: self.config.auth.challenge_validity_seconds,
            ..Default::default()
        }
    }

    /// The address users reach otpgate at: the one saved in the general settings, or the one
    /// worked out at start.
    pub async fn public_base_url(&self) -> Result<String, crate::store::StoreError> {
        Ok(self
            .store
            .general_settings()
            .await?
            .map(|general| general.public_url)
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| self.base_url.clone()))
    }

    /// The general settings: the stored ones, or the defaults.
    pub async fn general(&self) -> Result<crate::store::GeneralSettings, crate::store::StoreError> {
        Ok(self
            .store
            .general_settings()
            .await?
            .unwrap_or_else(|| self.general_defaults()))
    }
}
