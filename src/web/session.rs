//! Sessions and CSRF protection for the HTML front ends.
//!
//! The session cookie holds 32 random bytes; the database holds only their SHA-256, so the
//! server can revoke a session by deleting its row. Every state-changing form carries a CSRF
//! token: the session's own token once logged in, and before that (login and setup forms) a
//! random value that must match a `SameSite=Strict` cookie.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};

use super::{AppState, PageError};
use crate::clock::now;
use crate::crypto;
use crate::store::{Admin, Session, SessionKind, SessionStage};

/// The administrator's session. The panel's cookies carry the `__Host-` prefix: a browser keeps
/// them only when `Secure`, for `Path=/` and without a `Domain`, so that no other host of the
/// domain and no plain-HTTP page can plant or shadow one.
pub const ADMIN_COOKIE: &str = "__Host-otpgate_admin";
/// The CSRF token of the forms shown before login.
pub const CSRF_COOKIE: &str = "__Host-otpgate_csrf";

/// The name a cookie goes by. Over plain HTTP (TLS off, behind a proxy) a `__Host-` cookie
/// cannot be `Secure` and browsers would drop it, so there it goes by its bare name; over HTTPS
/// only the prefixed name is set or read.
pub fn cookie_name(state: &AppState, name: &'static str) -> &'static str {
    if state.secure_cookies {
        name
    } else {
        name.strip_prefix("__Host-").unwrap_or(name)
    }
}

/// The client's address, the one rule every front end uses: the peer's, or behind a trusted
/// reverse proxy (`server.trusted_proxies`) the one its forwarding header names.
pub fn client_ip(request: &HttpRequest) -> Option<String> {
    let peer = request.peer_addr()?.ip();
    let Some(state) = request.app_data::<web::Data<AppState>>() else {
        return Some(peer.to_string());
    };
    let values = |name: &str| -> Vec<&str> {
        request
            .headers()
            .get_all(name)
            .filter_map(|value| value.to_str().ok())
            .collect()
    };
    let client =
        state
            .trusted_proxies
            .client(peer, &values("x-forwarded-for"), &values("forwarded"));
    Some(client.to_string())
}

pub fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(cookie_name(state, name), value)
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Strict)
        .finish()
}

pub fn removal_cookie(state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut cookie = cookie(state, name, String::new());
    cookie.set_max_age(CookieDuration::ZERO);
    cookie
}

/// The CSRF token for a form shown before login, and the cookie to set when there is none yet.
pub fn pre_session_csrf(
    state: &AppState,
    request: &HttpRequest,
) -> Result<(String, Option<Cookie<'static>>), PageError> {
    if let Some(existing) = request.cookie(cookie_name(state, CSRF_COOKIE))
        && existing.value().len() >= 32
    {
        return Ok((existing.value().to_string(), None));
    }
    let token = crypto::random_token::<32>()?;
    Ok((token.clone(), Some(cookie(state, CSRF_COOKIE, token))))
}

/// A page with a form shown before login: `page` is given the form's CSRF token, and the
/// answer sets its cookie when the browser has none yet.
pub fn pre_session_page(
    state: &AppState,
    request: &HttpRequest,
    page: impl FnOnce(&str) -> HttpResponse,
) -> Result<HttpResponse, PageError> {
    let (csrf, cookie) = pre_session_csrf(state, request)?;
    let mut response = page(&csrf);
    if let Some(cookie) = cookie {
        response
            .add_cookie(&cookie)
            .map_err(|e| PageError::Internal(e.into()))?;
    }
    Ok(response)
}

/// Checks a pre-login form's token against its cookie.
pub fn check_pre_session_csrf(
    state: &AppState,
    request: &HttpRequest,
    given: &str,
) -> Result<(), PageError> {
    let expected = request
        .cookie(cookie_name(state, CSRF_COOKIE))
        .ok_or(PageError::Csrf)?;
    check_csrf(expected.value(), given)
}

pub fn check_csrf(expected: &str, given: &str) -> Result<(), PageError> {
    if !expected.is_empty() && crypto::constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(PageError::Csrf)
    }
}

/// A new session: the cookie value to hand out and the hash to store.
pub fn new_session_id() -> Result<(String, Vec<u8>), PageError> {
    let value = crypto::random_token::<32>()?;
    let hash = crypto::sha256(value.as_bytes());
    Ok((value, hash))
}

/// The administrator's session behind the request's cookie, at any stage.
pub async fn admin_session(
    state: &AppState,
    request: &HttpRequest,
) -> Result<Option<(Vec<u8>, Session)>, PageError> {
    let Some(cookie) = request.cookie(cookie_name(state, ADMIN_COOKIE)) else {
        return Ok(None);
    };
    let id_hash = crypto::sha256(cookie.value().as_bytes());
    let session = state
        .store
        .session(id_hash.clone(), SessionKind::Admin, now())
        .await?;
    Ok(session.map(|s| (id_hash, s)))
}

/// A fully logged-in administrator.
pub struct LoggedIn {
    pub admin: Admin,
    pub csrf: String,
}

/// The logged-in administrator, or `LoginRequired` (a redirect to the login page). Extends the
/// idle timeout, writing at most once a minute per session.
pub async fn require_admin(
    state: &web::Data<AppState>,
    request: &HttpRequest,
) -> Result<LoggedIn, PageError> {
    let (id_hash, session) = admin_session(state, request)
        .await?
        .ok_or(PageError::LoginRequired)?;
    if session.stage != SessionStage::Full {
        return Err(PageError::LoginRequired);
    }
    let admin_id = session.admin_id.ok_or(PageError::LoginRequired)?;
    let admin = state
        .store
        .admin_by_id(admin_id)
        .await?
        .filter(|admin| admin.enabled)
        .ok_or(PageError::LoginRequired)?;
    let now = now();
    if now - session.last_seen_at >= 60 {
        let idle = state.config.admin.session_idle_minutes as i64 * 60;
        let hard = state.config.admin.session_max_hours as i64 * 3600;
        state
            .store
            .touch_session(id_hash.clone(), now, now + idle, hard)
            .await?;
    }
    Ok(LoggedIn {
        admin,
        csrf: session.csrf_token,
    })
}
