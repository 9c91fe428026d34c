//! The administrator's door to the panel: login with password and authenticator app, linking
//! a new authenticator app (at the first login, or after a reset), and logout.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use crate::attempts::{self, Standing};
use crate::codes;
use crate::crypto::{self, Purpose};
use crate::otp;
use crate::store::logins::{Account, Counted, address_key};
use crate::store::{AuditEntry, NewSession, SessionKind, SessionStage};
use crate::web::form::{self, see_other};
use crate::web::session::{self, ADMIN_COOKIE};
use crate::web::{AppState, PageError, views};

/// The parameters of administrators' authenticator apps: what every app understands.
pub(super) fn admin_totp_params() -> otp::Params {
    otp::Params {
        algorithm: otp::Algorithm::Sha1,
        digits: 6,
        kind: otp::Kind::Totp { period: 30 },
    }
}

/// Checks an administrator's TOTP code; returns the matched time step.
pub(super) fn check_totp(secret: &[u8], code: &str, last_step: Option<i64>) -> Option<i64> {
    let window = otp::Window {
        behind: 1,
        ahead: 1,
    };
    codes::find(
        secret,
        &admin_totp_params(),
        code,
        window,
        last_step,
        0,
        crate::clock::now(),
    )
    .map(|found| found.step)
}

pub(super) fn html_page(markup: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

pub(super) async fn start_session(
    state: &AppState,
    request: &HttpRequest,
    admin_id: i64,
    stage: SessionStage,
    pending_secret: Option<Vec<u8>>,
) -> Result<actix_web::cookie::Cookie<'static>, PageError> {
    let (value, id_hash) = session::new_session_id()?;
    let now = crate::clock::now();
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

pub(super) fn enrol_form(
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
            (form::error_line(error))
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

fn login_form(csrf: &str, login: &str, error: Option<&str>, setup_pending: bool) -> Markup {
    views::bare_page(
        "Log in",
        html! {
            @if setup_pending {
                p.note { "No administrator exists yet. Open the setup link written in the server log (journalctl -u otpgate) to create the first one." }
            }
            (form::error_line(error))
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
    session::pre_session_page(&state, &request, |csrf| {
        html_page(login_form(csrf, "", None, setup_pending))
    })
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
const LOCKED: &str = "This account is locked after too many failed logins. Log in from an \
                      address you used before, or ask another administrator to unlock it.";

pub async fn submit_login(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    session::check_pre_session_csrf(&state, &request, &form.csrf)?;
    let ip = session::client_ip(&request);
    let login = form.login.trim().to_string();
    let instant = std::time::Instant::now();
    // Every address together gets a number of attempts in a window; the failures that make
    // an account wait or lock count per account and address (`attempts`), so that failures
    // from elsewhere never keep the administrator out of the address they use.
    if let Err(retry) = state
        .login_per_ip
        .attempt(ip.as_deref().unwrap_or("unknown"), instant)
    {
        refuse(&state, &login, ip.clone(), "throttled").await?;
        return Err(PageError::TooManyRequests {
            retry_after_seconds: retry.0.as_secs(),
        });
    }

    let admin = if crate::domain::is_admin_login(&login) {
        state.store.admin_by_login(login.clone()).await?
    } else {
        None
    };
    let now = crate::clock::now();
    let counted = match &admin {
        Some(admin) => attempts::Login::Account(Counted {
            account: Account::Admin(admin.id),
            address: ip.as_deref().map(address_key),
        }),
        None => attempts::Login::Stranger {
            name: format!("admin:{}", login.to_lowercase()),
            address: ip.as_deref().map(address_key),
        },
    };
    let (record, standing) = state
        .logins
        .standing(&state.store, &counted, "panel", now)
        .await?;
    match standing {
        Standing::Open => {}
        Standing::Wait {
            retry_after_seconds,
        } => {
            refuse(&state, &login, ip.clone(), "too_soon_after_failures").await?;
            return Err(PageError::TooManyRequests {
                retry_after_seconds,
            });
        }
        Standing::Locked => {
            // Nothing is checked: the account is locked for this address.
            refuse(&state, &login, ip.clone(), "account_locked").await?;
            let (csrf, _) = session::pre_session_csrf(&state, &request)?;
            return Ok(HttpResponse::Forbidden()
                .content_type("text/html; charset=utf-8")
                .body(login_form(&csrf, &login, Some(LOCKED), false).into_string()));
        }
    }
    let hash = admin.as_ref().map(|a| a.password_hash.clone());
    let password_ok = state
        .passwords
        .verify(form.password.clone(), hash)
        .await
        .map_err(PageError::Busy)?;

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
                            .claim_admin_totp_step(admin.id, step, crate::clock::now())
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

    match outcome {
        Err(reason) => {
            let lock = AuditEntry::new(now, format!("admin:{login}"), "admin.lock", "locked")
                .reason("failed_logins")
                .client_ip(ip.clone());
            state
                .logins
                .failed(&state.store, &counted, lock, now)
                .await?;
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
            state
                .logins
                .succeeded(&state.store, &counted, &record, now)
                .await?;
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

/// Writes the audit line of a login attempt refused before anything was checked.
async fn refuse(
    state: &AppState,
    login: &str,
    ip: Option<String>,
    reason: &str,
) -> Result<(), PageError> {
    state
        .store
        .audit(
            AuditEntry::new(
                crate::clock::now(),
                format!("admin:{login}"),
                "admin.login",
                "refused",
            )
            .reason(reason)
            .client_ip(ip),
        )
        .await?;
    Ok(())
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
    let now = crate::clock::now();
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
