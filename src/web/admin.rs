//! First-start setup, administrator login with password and authenticator app, enrolment of a
//! new authenticator app and logout.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::{self, ADMIN_COOKIE};
use super::views;
use super::{AppState, PageError};
use crate::crypto::{self, Purpose};
use crate::otp;
use crate::store::{AuditEntry, NewAdmin, NewSession, SessionKind, SessionStage};

/// The first-start setup, kept in memory while no administrator exists. The link's code is
/// random and stored only as a hash; a new one is made at every start until setup is done.
pub struct SetupState {
    code_hash: Vec<u8>,
    totp_secret: [u8; 20],
    pending: Option<PendingAdmin>,
}

struct PendingAdmin {
    login: String,
    password_hash: String,
}

impl SetupState {
    /// A fresh setup and the code for its link.
    pub fn new() -> Result<(SetupState, String), crypto::CryptoError> {
        let code = crypto::random_token::<24>()?;
        let state = SetupState {
            code_hash: crypto::sha256(code.as_bytes()),
            totp_secret: crypto::random_bytes::<20>()?,
            pending: None,
        };
        Ok((state, code))
    }

    fn accepts(&self, code: &str) -> bool {
        crypto::constant_time_eq(&self.code_hash, &crypto::sha256(code.as_bytes()))
    }
}

/// The parameters of administrators' authenticator apps: what every app understands.
fn admin_totp_params() -> otp::Params {
    otp::Params {
        algorithm: otp::Algorithm::Sha1,
        digits: 6,
        kind: otp::Kind::Totp { period: 30 },
    }
}

/// Checks an administrator's TOTP code; returns the matched time step.
fn check_totp(secret: &[u8], code: &str, last_step: Option<i64>) -> Option<i64> {
    let now = u64::try_from(session::now()).unwrap_or(0);
    let last_used = last_step.and_then(|s| u64::try_from(s).ok());
    otp::verify(
        secret,
        &admin_totp_params(),
        code.trim(),
        otp::Window {
            behind: 1,
            ahead: 1,
        },
        last_used,
        0,
        now,
    )
    .and_then(|matched| i64::try_from(matched.step).ok())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn html_page(markup: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 64
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

const MIN_ADMIN_PASSWORD: usize = 10;

/// Why a new administrator's login or password is refused, in words for the form.
pub fn admin_credentials_problem(login: &str, password: &str, confirm: &str) -> Option<String> {
    if !valid_login(login) {
        return Some(
            "The login may use letters, digits and . _ - @ (at most 64 characters).".into(),
        );
    }
    if password.chars().count() < MIN_ADMIN_PASSWORD {
        return Some(format!(
            "The password must have at least {MIN_ADMIN_PASSWORD} characters."
        ));
    }
    if password != confirm {
        return Some("The two passwords differ.".into());
    }
    None
}

async fn start_session(
    state: &AppState,
    request: &HttpRequest,
    admin_id: i64,
    stage: SessionStage,
    pending_secret: Option<Vec<u8>>,
) -> Result<actix_web::cookie::Cookie<'static>, PageError> {
    let (value, id_hash) = session::new_session_id()?;
    let now = session::now();
    let lifetime = match stage {
        SessionStage::Full => state.config.admin.session_idle_minutes as i64 * 60,
        SessionStage::EnrolTotp => 15 * 60,
    };
    state
        .store
        .create_session(
            NewSession {
                id_hash,
                kind: SessionKind::Admin,
                stage,
                admin_id: Some(admin_id),
                user_id: None,
                resource_id: None,
                csrf_token: crypto::random_token::<32>()?,
                pending_secret,
                client_ip: session::client_ip(request),
                expires_at: now + lifetime,
            },
            now,
        )
        .await?;
    Ok(session::cookie(state, ADMIN_COOKIE, value))
}

pub async fn root() -> HttpResponse {
    see_other("/admin")
}

#[derive(Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    code: String,
}

fn setup_gone() -> HttpResponse {
    HttpResponse::Gone()
        .content_type("text/html; charset=utf-8")
        .body(
            views::message_page(
                "Setup link not valid",
                "This setup link is not valid: setup is done, or the link comes from an earlier start of otpgate. \
                 Log in, or use the newest link from the server log.",
            )
            .into_string(),
        )
}

/// Whether the setup with this code is open; None when the link is not (or no longer) valid.
async fn open_setup(state: &AppState, code: &str) -> Result<bool, PageError> {
    let valid = state
        .setup
        .lock()
        .map(|setup| setup.as_ref().is_some_and(|s| s.accepts(code)))
        .unwrap_or(false);
    Ok(valid && state.store.admin_count().await? == 0)
}

fn setup_form(code: &str, csrf: &str, login: &str, error: Option<&str>) -> Markup {
    views::bare_page(
        "Set up otpgate",
        html! {
            p { "Create the first administrator. You will then link an authenticator app to this account." }
            (views::form_error(error))
            form.stack method="post" action="/setup" {
                input type="hidden" name="code" value=(code);
                input type="hidden" name="csrf" value=(csrf);
                label { "Login name" input type="text" name="login" value=(login) required autocomplete="username" autofocus; }
                label { "Password" small { "At least 10 characters." }
                    input type="password" name="password" required autocomplete="new-password"; }
                label { "Password again" input type="password" name="password_confirm" required autocomplete="new-password"; }
                button type="submit" { "Next" }
            }
        },
    )
}

pub async fn show_setup(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<SetupQuery>,
) -> Result<HttpResponse, PageError> {
    if !open_setup(&state, &query.code).await? {
        return Ok(setup_gone());
    }
    let (csrf, cookie) = session::pre_session_csrf(&state, &request)?;
    let mut response = html_page(setup_form(&query.code, &csrf, "", None));
    if let Some(cookie) = cookie {
        response
            .add_cookie(&cookie)
            .map_err(|e| PageError::Internal(e.into()))?;
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct SetupForm {
    code: String,
    csrf: String,
    login: String,
    password: String,
    password_confirm: String,
}

pub async fn submit_setup(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, PageError> {
    session::check_pre_session_csrf(&request, &form.csrf)?;
    if !open_setup(&state, &form.code).await? {
        return Ok(setup_gone());
    }
    let login = form.login.trim().to_string();
    if let Some(problem) = admin_credentials_problem(&login, &form.password, &form.password_confirm)
    {
        return Ok(html_page(setup_form(
            &form.code,
            &form.csrf,
            &login,
            Some(&problem),
        )));
    }
    let password = form.password.clone();
    let password_hash = web::block(move || crypto::hash_password(&password))
        .await
        .map_err(|e| PageError::Internal(e.into()))??;
    if let Ok(mut setup) = state.setup.lock()
        && let Some(setup) = setup.as_mut()
    {
        setup.pending = Some(PendingAdmin {
            login,
            password_hash,
        });
    }
    Ok(see_other(&format!("/setup/totp?code={}", form.code)))
}

fn enrol_form(
    action: &str,
    hidden: &[(&str, &str)],
    issuer: &str,
    login: &str,
    secret: &[u8],
    error: Option<&str>,
) -> Markup {
    let uri = otp::otpauth_uri(secret, &admin_totp_params(), issuer, login, 0);
    views::bare_page(
        "Link your authenticator app",
        html! {
            p { "Scan this code with an authenticator app, then type the 6-digit code it shows to confirm." }
            (views::qr_image(&uri, "QR code for your authenticator app"))
            details {
                summary { "Cannot scan? Enter the key by hand" }
                code.secret { (otp::encode_secret(secret)) }
                p.note { "Time-based, 6 digits, every 30 seconds, SHA-1." }
            }
            (views::form_error(error))
            form.stack method="post" action=(action) {
                @for (name, value) in hidden {
                    input type="hidden" name=(name) value=(value);
                }
                label { "Code from the app"
                    input type="text" name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required autofocus;
                }
                button type="submit" { "Confirm" }
            }
        },
    )
}

pub async fn show_setup_totp(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<SetupQuery>,
) -> Result<HttpResponse, PageError> {
    if !open_setup(&state, &query.code).await? {
        return Ok(setup_gone());
    }
    let pending = state.setup.lock().ok().and_then(|setup| {
        setup
            .as_ref()
            .and_then(|s| s.pending.as_ref().map(|p| (p.login.clone(), s.totp_secret)))
    });
    let Some((login, secret)) = pending else {
        return Ok(see_other(&format!("/setup?code={}", query.code)));
    };
    let (csrf, cookie) = session::pre_session_csrf(&state, &request)?;
    let markup = enrol_form(
        "/setup/totp",
        &[("code", &query.code), ("csrf", &csrf)],
        &state.issuer,
        &login,
        &secret,
        None,
    );
    let mut response = html_page(markup);
    if let Some(cookie) = cookie {
        response
            .add_cookie(&cookie)
            .map_err(|e| PageError::Internal(e.into()))?;
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct SetupTotpForm {
    code: String,
    csrf: String,
    otp: String,
}

pub async fn submit_setup_totp(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SetupTotpForm>,
) -> Result<HttpResponse, PageError> {
    session::check_pre_session_csrf(&request, &form.csrf)?;
    if !open_setup(&state, &form.code).await? {
        return Ok(setup_gone());
    }
    let pending = state.setup.lock().ok().and_then(|setup| {
        setup.as_ref().and_then(|s| {
            s.pending
                .as_ref()
                .map(|p| (p.login.clone(), p.password_hash.clone(), s.totp_secret))
        })
    });
    let Some((login, password_hash, secret)) = pending else {
        return Ok(see_other(&format!("/setup?code={}", form.code)));
    };
    let Some(step) = check_totp(&secret, &form.otp, None) else {
        let markup = enrol_form(
            "/setup/totp",
            &[("code", &form.code), ("csrf", &form.csrf)],
            &state.issuer,
            &login,
            &secret,
            Some("That code is not right. Check the time on your phone and try the current code."),
        );
        return Ok(html_page(markup));
    };
    let now = session::now();
    let sealed = state.keys.seal(Purpose::AdminTotp, &secret)?;
    let created = state
        .store
        .create_first_admin(
            NewAdmin {
                login: login.clone(),
                password_hash,
                totp_secret: Some(sealed),
                totp_last_step: Some(step),
            },
            now,
        )
        .await;
    let admin_id = match created {
        Ok(id) => id,
        Err(crate::store::StoreError::Conflict(_)) => return Ok(setup_gone()),
        Err(e) => return Err(e.into()),
    };
    if let Ok(mut setup) = state.setup.lock() {
        setup.take();
    }
    tracing::info!(login = %login, "first administrator created; setup is closed");
    let cookie = start_session(&state, &request, admin_id, SessionStage::Full, None).await?;
    let mut response = see_other("/admin");
    response
        .add_cookie(&cookie)
        .map_err(|e| PageError::Internal(e.into()))?;
    Ok(response)
}

fn login_form(csrf: &str, login: &str, error: Option<&str>, setup_pending: bool) -> Markup {
    views::bare_page(
        "Log in",
        html! {
            @if setup_pending {
                p.note { "No administrator exists yet. Open the setup link written in the server log (journalctl -u otpgate) to create the first one." }
            }
            (views::form_error(error))
            form.stack method="post" action="/admin/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Login name" input type="text" name="login" value=(login) required autocomplete="username" autofocus; }
                label { "Password" input type="password" name="password" required autocomplete="current-password"; }
                label { "Code from your authenticator app"
                    small { "Leave empty if you have not linked an app yet." }
                    input type="text" name="otp" inputmode="numeric" autocomplete="one-time-code";
                }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub async fn show_login(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let setup_pending = state.store.admin_count().await? == 0;
    let (csrf, cookie) = session::pre_session_csrf(&state, &request)?;
    let mut response = html_page(login_form(&csrf, "", None, setup_pending));
    if let Some(cookie) = cookie {
        response
            .add_cookie(&cookie)
            .map_err(|e| PageError::Internal(e.into()))?;
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    login: String,
    password: String,
    #[serde(default)]
    otp: String,
}

const LOGIN_FAILED: &str = "Login failed. Check your login name, password and code.";

pub async fn submit_login(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    session::check_pre_session_csrf(&request, &form.csrf)?;
    let ip = session::client_ip(&request);
    let login = form.login.trim().to_string();
    let instant = std::time::Instant::now();
    let throttle = state
        .login_per_ip
        .attempt(ip.as_deref().unwrap_or("unknown"), instant)
        .and_then(|_| state.login_per_name.attempt(&login.to_lowercase(), instant));
    if let Err(retry) = throttle {
        state
            .store
            .audit(
                AuditEntry::new(
                    session::now(),
                    format!("admin:{login}"),
                    "admin.login",
                    "refused",
                )
                .reason("throttled")
                .client_ip(ip.clone()),
            )
            .await?;
        return Err(PageError::TooManyRequests {
            retry_after_seconds: retry.0.as_secs(),
        });
    }

    let admin = if valid_login(&login) {
        state.store.admin_by_login(login.clone()).await?
    } else {
        None
    };
    let hash = admin
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| crypto::dummy_password_hash().to_string());
    let password = form.password.clone();
    let password_ok = web::block(move || crypto::verify_password(&password, &hash))
        .await
        .map_err(|e| PageError::Internal(e.into()))?;

    let outcome: Result<(i64, SessionStage, Option<Vec<u8>>), &str> = match &admin {
        None => Err("unknown_login"),
        Some(_) if !password_ok => Err("bad_password"),
        Some(admin) if !admin.enabled => Err("disabled"),
        Some(admin) => match &admin.totp_secret {
            None => {
                // Password only: this administrator must link an app before anything else.
                let secret = crypto::random_bytes::<20>()?;
                let sealed = state.keys.seal(Purpose::AdminTotp, &secret)?;
                Ok((admin.id, SessionStage::EnrolTotp, Some(sealed)))
            }
            Some(sealed) => {
                let secret = state.keys.open(Purpose::AdminTotp, sealed)?;
                match check_totp(&secret, &form.otp, admin.totp_last_step) {
                    None => Err("bad_code"),
                    Some(step) => {
                        if state
                            .store
                            .claim_admin_totp_step(admin.id, step, session::now())
                            .await?
                        {
                            Ok((admin.id, SessionStage::Full, None))
                        } else {
                            Err("replayed_code")
                        }
                    }
                }
            }
        },
    };

    let now = session::now();
    match outcome {
        Err(reason) => {
            state
                .store
                .audit(
                    AuditEntry::new(now, format!("admin:{login}"), "admin.login", "rejected")
                        .reason(reason)
                        .client_ip(ip),
                )
                .await?;
            let (csrf, _) = session::pre_session_csrf(&state, &request)?;
            Ok(HttpResponse::Unauthorized()
                .content_type("text/html; charset=utf-8")
                .body(login_form(&csrf, &login, Some(LOGIN_FAILED), false).into_string()))
        }
        Ok((admin_id, stage, pending)) => {
            let result = if stage == SessionStage::Full {
                "ok"
            } else {
                "enrol_totp"
            };
            state
                .store
                .audit(
                    AuditEntry::new(now, format!("admin:{login}"), "admin.login", result)
                        .client_ip(ip),
                )
                .await?;
            let cookie = start_session(&state, &request, admin_id, stage, pending).await?;
            let target = if stage == SessionStage::Full {
                "/admin"
            } else {
                "/admin/enrol"
            };
            let mut response = see_other(target);
            response
                .add_cookie(&cookie)
                .map_err(|e| PageError::Internal(e.into()))?;
            Ok(response)
        }
    }
}

/// The session of an administrator who must link an authenticator app, with its secret.
async fn enrolment(
    state: &AppState,
    request: &HttpRequest,
) -> Result<(Vec<u8>, crate::store::Session, crate::store::Admin, Vec<u8>), PageError> {
    let (id_hash, session) = session::admin_session(state, request)
        .await?
        .ok_or(PageError::LoginRequired)?;
    if session.stage != SessionStage::EnrolTotp {
        return Err(PageError::LoginRequired);
    }
    let admin = state
        .store
        .admin_by_id(session.admin_id.ok_or(PageError::LoginRequired)?)
        .await?
        .ok_or(PageError::LoginRequired)?;
    let sealed = session
        .pending_secret
        .as_deref()
        .ok_or(PageError::LoginRequired)?;
    let secret = state.keys.open(Purpose::AdminTotp, sealed)?;
    Ok((id_hash, session, admin, secret))
}

pub async fn show_enrol(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let (_, session, admin, secret) = enrolment(&state, &request).await?;
    Ok(html_page(enrol_form(
        "/admin/enrol",
        &[("csrf", &session.csrf_token)],
        &state.issuer,
        &admin.login,
        &secret,
        None,
    )))
}

#[derive(Deserialize)]
pub struct EnrolForm {
    csrf: String,
    otp: String,
}

pub async fn submit_enrol(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<EnrolForm>,
) -> Result<HttpResponse, PageError> {
    let (id_hash, session, admin, secret) = enrolment(&state, &request).await?;
    session::check_csrf(&session.csrf_token, &form.csrf)?;
    let Some(step) = check_totp(&secret, &form.otp, None) else {
        return Ok(html_page(enrol_form(
            "/admin/enrol",
            &[("csrf", &session.csrf_token)],
            &state.issuer,
            &admin.login,
            &secret,
            Some("That code is not right. Check the time on your phone and try the current code."),
        )));
    };
    let now = session::now();
    let sealed = state.keys.seal(Purpose::AdminTotp, &secret)?;
    if !state
        .store
        .enrol_admin_totp(admin.id, sealed, step, now)
        .await?
    {
        return Err(PageError::LoginRequired);
    }
    state.store.complete_session(id_hash).await?;
    state
        .store
        .audit(
            AuditEntry::new(
                now,
                format!("admin:{}", admin.login),
                "admin.enrol_totp",
                "ok",
            )
            .client_ip(session::client_ip(&request)),
        )
        .await?;
    Ok(see_other("/admin"))
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

pub async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, PageError> {
    let (id_hash, session) = session::admin_session(&state, &request)
        .await?
        .ok_or(PageError::LoginRequired)?;
    session::check_csrf(&session.csrf_token, &form.csrf)?;
    state.store.delete_session(id_hash).await?;
    let mut response = see_other("/admin/login");
    response
        .add_cookie(&session::removal_cookie(&state, ADMIN_COOKIE))
        .map_err(|e| PageError::Internal(e.into()))?;
    Ok(response)
}
