//! Logging in to a portal: the login name, then the password (or, for a user without one, a
//! verification code emailed through the outbox), then — when the user has an active token in
//! this resource — a one-time password through the same authentication decision as the API, so
//! that fail counters, lockout and replay protection apply.
//!
//! Every failure gets the same message; failures are limited per address and per login name at
//! an address (`limits`), on top of the failed logins in a row of `attempts`.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Frame, LOGIN_COOKIE, Portal, PortalError, SESSION_COOKIE, limits};
use crate::attempts::{self, Standing};
use crate::auth::{Answer, Attempt, Authenticator, Caller, Delivery};
use crate::confirm::{self, Channel, Issued, Letter};
use crate::crypto;
use crate::domain::{IdOrName, Login, TokenKind, TokenState, login_key, mask_destination};
use crate::store::auth::AuthTarget;
use crate::store::logins::{Account, Counted, address_key};
use crate::store::outbox::CodeDelivery;
use crate::store::portal::{LoginStage, NewPortalLogin, PortalLogin};
use crate::store::{AuditEntry, NewSession, SessionKind, SessionStage, Token, User};
use crate::web::form::{Notice, csrf_field, error_line, see_other};
use crate::web::{AppState, session};

/// The one message for every failed login step.
const FAILED: &str = "The login name, password or code is not right. Try again.";
const LOCKED: &str = "This account is locked after too many failed logins. Log in from a \
                      place you used before, or ask your administrator to unlock it.";
/// After the right password, when the only second factor is a Telegram token whose chat is gone.
const NEEDS_REACTIVATION: &str = "Your Telegram token cannot send you codes any more (the bot \
     was blocked or the chat deleted), and it is your second factor here. Ask your administrator \
     for a new activation, or log in with another token first.";
/// A one-time password typed after the code sent for it expired.
const EXPIRED: &str = "This code has expired — send a new one.";
/// How long a login in progress may take.
const LOGIN_SECONDS: i64 = 10 * 60;

mod approval;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/portal/{address}/login/approve",
            web::post().to(approval::ask_approval),
        )
        .route(
            "/portal/{address}/login/approval",
            web::get().to(approval::show_approval),
        )
        .route(
            "/portal/{address}/login/approval",
            web::post().to(approval::continue_approval),
        )
        .route(
            "/portal/{address}/login/approval/status",
            web::get().to(approval::approval_status),
        )
        .route("/portal/{address}/login", web::post().to(submit_login_name))
        .route("/portal/{address}/login/verify", web::get().to(show_verify))
        .route(
            "/portal/{address}/login/password",
            web::post().to(submit_password),
        )
        .route("/portal/{address}/login/code", web::post().to(submit_code))
        .route("/portal/{address}/login/send", web::post().to(send_code))
        .route("/portal/{address}/login/otp", web::post().to(submit_otp))
        .route("/portal/{address}/logout", web::post().to(logout));
}

/// The login name form, with an error when the last attempt failed.
pub fn login_form(portal: &Portal, csrf: &str, error: Option<&str>) -> Markup {
    html! {
        p { "Log in to manage your second factors for " strong { (portal.resource.name) } "." }
        (error_line(error))
        form.stack method="post" action=(portal.path("/login")) {
            (csrf_field(csrf))
            label { "Login name" input type="text" name="login" autocomplete="username" autocapitalize="none" required autofocus; }
            div.buttons { button type="submit" { "Next" } }
        }
    }
}

/// The login page of a visitor without a session.
pub async fn show_login(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    error: Option<&str>,
) -> Result<HttpResponse, PortalError> {
    Ok(session::pre_session_page(state, request, |csrf| {
        let frame = Frame {
            portal,
            title: "Log in",
            visitor: None,
            flash: portal.flash_of(state, request),
        };
        let status = if error.is_some() {
            actix_web::http::StatusCode::UNAUTHORIZED
        } else {
            actix_web::http::StatusCode::OK
        };
        frame.render_with(state, status, login_form(portal, csrf, error))
    })?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginNameForm {
    csrf: String,
    login: String,
}

pub async fn submit_login_name(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<LoginNameForm>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    session::check_pre_session_csrf(&state, &request, &form.csrf)?;
    // A name that can be no user's login gets the answer of a wrong one.
    let Ok(login) = Login::parse(&form.login).map(Login::into_string) else {
        return show_login(&state, &request, &portal, Some(FAILED)).await;
    };
    limits::refuse_if_blocked(&state, &request, &portal, &login).await?;
    let now = crate::clock::now();
    let mut user = state
        .store
        .portal_user(portal.resource.id, login.clone())
        .await?;
    // A person of a directory whom otpgate does not know yet becomes a user now, as at any
    // authentication; the portal then sees them as it sees every user.
    if user.is_none()
        && state
            .directories
            .look_up(&state.store, &state.keys, &login, now)
            .await?
            .is_some()
    {
        user = state
            .store
            .portal_user(portal.resource.id, login.clone())
            .await?;
    }
    let expires_at = now + LOGIN_SECONDS;
    // A user without a password but with an email address gets a code by email; everyone
    // else, including unknown names, is asked for a password.
    let code = match &user {
        Some(User {
            password_hash: None,
            email: Some(email),
            ..
        }) => Some(verification_mail(&state, &portal, email, now)?),
        _ => None,
    };
    // Whatever the stage, the next page is the same for everyone (see `verify_page`), so that
    // it tells no one which users have a password, which have none and which do not exist.
    let (value, id_hash) = session::new_session_id()?;
    let stage = if code.is_some() {
        LoginStage::EmailCode
    } else {
        LoginStage::Password
    };
    let mut entry = portal.audit(&request, &login, "portal.login_start", "ok");
    entry.user_id = user.as_ref().map(|u| u.id);
    if user.is_none() {
        entry.result = "rejected".into();
        entry.reason = Some("unknown_user".into());
    } else if code.is_some() {
        entry.detail = Some("verification code emailed".into());
    }
    state
        .store
        .start_portal_login(
            NewPortalLogin {
                id_hash,
                resource_id: portal.resource.id,
                user_id: user.as_ref().map(|u| u.id),
                login,
                stage,
                tries: confirm::TRIES,
                code: code.map(|issued| (issued.code_hash, issued.message)),
                csrf_token: crypto::random_token::<32>()?,
                expires_at,
            },
            now,
            entry,
        )
        .await?;
    if stage == LoginStage::EmailCode {
        state.delivery.wake();
    }
    let mut response = see_other(&portal.path("/login/verify"));
    let _ = response.add_cookie(&portal.cookie(&state, LOGIN_COOKIE, value));
    Ok(response)
}

/// A fresh verification code for the login, and the email that carries it.
fn verification_mail(
    state: &AppState,
    portal: &Portal,
    email: &str,
    now: i64,
) -> Result<Issued, PortalError> {
    let resource = &portal.resource.name;
    Ok(confirm::issue(
        &state.keys,
        Letter {
            channel: Channel::Mail,
            recipient: email,
            subject: format!("Your verification code for {resource}"),
            purpose: format!("logs you in to the self-service page of {resource}"),
        },
        6,
        now,
    )?)
}

/// The login in progress behind the request's cookie, for this portal.
async fn login_in_progress(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
) -> Result<(Vec<u8>, PortalLogin), PortalError> {
    let required = || PortalError::LoginRequired(portal.address.clone());
    let cookie = request.cookie(LOGIN_COOKIE).ok_or_else(required)?;
    let id_hash = crypto::sha256(cookie.value().as_bytes());
    let login = state
        .store
        .portal_login(id_hash.clone(), crate::clock::now())
        .await?
        .filter(|login| login.resource_id == portal.resource.id)
        .ok_or_else(required)?;
    Ok((id_hash, login))
}

fn usable(token: &Token) -> bool {
    token.enabled && token.state == TokenState::Active
}

/// The user's tokens in this resource that would be asked for (usable) and that can answer
/// now (usable and not locked).
fn open_now(portal: &Portal, token: &Token, now: i64) -> bool {
    usable(token) && !token.is_locked(portal.resource.auto_unlock_seconds, now)
}

/// The names of the usable tokens that are locked now, quoted and joined.
fn locked_names(portal: &Portal, tokens: &[Token], now: i64) -> Option<(String, usize)> {
    let locked: Vec<String> = tokens
        .iter()
        .filter(|t| usable(t) && !open_now(portal, t, now))
        .map(crate::web::views::token_label)
        .collect();
    (!locked.is_empty()).then(|| (locked.join(", "), locked.len()))
}

/// Where a code for this token goes, in full: for its owner once she is logged in (before the
/// login, `destination_label` masks it).
pub fn own_destination(token: &Token) -> String {
    match token.kind {
        TokenKind::Bot => "Telegram".to_string(),
        _ => token.destination.clone().unwrap_or_default(),
    }
}

/// Where a code for this token goes, masked, as the login page shows it to whoever typed a
/// login name.
pub fn destination_label(token: &Token) -> String {
    match token.kind {
        TokenKind::Bot => "Telegram".to_string(),
        _ => token
            .destination
            .as_deref()
            .map(mask_destination)
            .unwrap_or_default(),
    }
}

/// Where the code sent for the login stands, as the page tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeNews {
    /// The channel took it.
    Delivered(&'static str),
    /// Not taken yet; `retrying` when the channel failed before and the outbox tries again.
    Queued {
        channel: &'static str,
        retrying: bool,
    },
    /// The channel refused it for good, or it could not go before it expired.
    Failed(&'static str),
    /// Its time ran out: only a new code will do.
    Expired,
    /// It is gone (its tries used up, or another code replaced it).
    Void,
}

/// The channel's name in a sentence.
fn channel_words(channel: &str) -> &'static str {
    match channel {
        "sms" => "text message",
        "bot" => "Telegram",
        _ => "email",
    }
}

impl CodeNews {
    /// From the latest message of each code sent for the login: delivered when one was,
    /// else queued when one still may be, else failed.
    fn of(deliveries: &[CodeDelivery], now: i64) -> CodeNews {
        if deliveries.is_empty() {
            return CodeNews::Void;
        }
        if deliveries.iter().all(|d| d.expires_at <= now) {
            return CodeNews::Expired;
        }
        if let Some(sent) = deliveries.iter().find(|d| d.status == "sent") {
            return CodeNews::Delivered(channel_words(&sent.channel));
        }
        if let Some(queued) = deliveries.iter().find(|d| d.status == "queued") {
            return CodeNews::Queued {
                channel: channel_words(&queued.channel),
                retrying: deliveries
                    .iter()
                    .any(|d| d.status == "queued" && d.attempts > 0),
            };
        }
        CodeNews::Failed(channel_words(&deliveries[0].channel))
    }

    /// Whether the code may still be typed.
    fn usable(self) -> bool {
        matches!(self, CodeNews::Delivered(_) | CodeNews::Queued { .. })
    }

    fn markup(self) -> Markup {
        html! {
            @match self {
                CodeNews::Delivered(channel) => p { "We have sent you a one-time password by " (channel) ". Type it here." },
                CodeNews::Queued { channel, retrying: false } => p.note role="status" {
                    "Your one-time password is on its way by " (channel) " but has not been delivered yet. It usually arrives within a minute: reload this page to see whether it was."
                },
                CodeNews::Queued { channel, retrying: true } => p.error role="status" {
                    "Your one-time password could not be delivered by " (channel) " yet; otpgate keeps trying. Reload this page to see whether it went, or have a code sent another way."
                },
                CodeNews::Failed(channel) => p.error role="alert" {
                    "Your one-time password could not be delivered by " (channel) ". Have a code sent another way, or ask your administrator to check the " (channel) " settings."
                },
                CodeNews::Expired => p.error role="alert" { (EXPIRED) },
                CodeNews::Void => p.error role="alert" { "The code sent to you can no longer be used — send a new one." },
            }
        }
    }
}

fn verify_page(
    portal: &Portal,
    login: &PortalLogin,
    tokens: &[Token],
    news: Option<CodeNews>,
    error: Option<&str>,
) -> Markup {
    let csrf = &login.csrf_token;
    let now = crate::clock::now();
    let delivered: Vec<&Token> = tokens
        .iter()
        .filter(|t| open_now(portal, t, now) && t.kind.is_delivered())
        .collect();
    let has_app = tokens
        .iter()
        .any(|t| open_now(portal, t, now) && !t.kind.is_delivered());
    let any_open = has_app || !delivered.is_empty();
    let locked = locked_names(portal, tokens, now);
    // Approve in Telegram: the resource allows it and a BOT token bound to a chat can answer.
    let approvable = portal.resource.approvals.allowed
        && tokens.iter().any(|t| {
            t.kind == TokenKind::Bot && t.bot_chat_id.is_some() && open_now(portal, t, now)
        });
    html! {
        p { "Logging in as " strong { (login.login) } ". " a href=(portal.path("")) { "Not you?" } }
        (error_line(error))
        @match login.stage {
            // One page for both first steps, and for logins no user has: it must not tell who
            // has a password, who was emailed a code and who does not exist.
            LoginStage::Password | LoginStage::EmailCode => {
                form.stack method="post" action=(portal.path("/login/password")) {
                    (csrf_field(csrf))
                    label { "Password" input type="password" name="password" autocomplete="current-password" required autofocus; }
                    div.buttons { button type="submit" { "Log in" } }
                }
                p.note { "No password yet? If your administrator set none but gave an email address, we have emailed you a verification code: type it here instead." }
                form.stack method="post" action=(portal.path("/login/code")) {
                    (csrf_field(csrf))
                    label { "Emailed verification code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required; }
                    div.buttons { button type="submit" { "Log in with the code" } }
                }
            }
            LoginStage::Otp => {
                @if let Some((names, count)) = &locked {
                    @if any_open {
                        p.note { (names) " " @if *count == 1 { "is" } @else { "are" } " locked after too many wrong codes. Use another second factor, or ask your administrator to unlock it." }
                    } @else {
                        p.error role="alert" {
                            @if *count == 1 { "Your second factor " (names) " is" } @else { "Your second factors " (names) " are" }
                            " locked after too many wrong codes, so you cannot log in now. Ask your administrator to unlock it."
                        }
                    }
                }
                @if let Some(news) = news.filter(|news| any_open && !(error.is_some() && *news == CodeNews::Expired)) {
                    (news.markup())
                }
                @if has_app {
                    p { "Type the code your authenticator app or hardware token shows." }
                }
                @if any_open && (news.is_some_and(CodeNews::usable) || has_app) {
                    form.stack method="post" action=(portal.path("/login/otp")) {
                        (csrf_field(csrf))
                        label { "One-time password" small { "With your PIN in front or behind it, if your token has one." }
                            input type="text" name="otp" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
                        div.buttons { button type="submit" { "Log in" } }
                    }
                }
                @if approvable {
                    form.stack method="post" action=(portal.path("/login/approve")) {
                        (csrf_field(csrf))
                        p.note { "Or approve this login on your phone instead of typing a code:" }
                        div.buttons { button type="submit" { "Approve in Telegram" } }
                    }
                }
                @if !delivered.is_empty() {
                    @if news.is_some_and(|news| !news.usable()) {
                        p.note { "Send a new one:" }
                    } @else if login.transaction_id.is_some() || has_app {
                        p.note { "Or have a code sent to you:" }
                    } @else {
                        p { "Where should we send your one-time password?" }
                    }
                    ul.choices {
                        @for token in &delivered {
                            li {
                                form.inline method="post" action=(portal.path("/login/send")) {
                                    (csrf_field(csrf))
                                    input type="hidden" name="token" value=(token.id);
                                    button type="submit" { "Send a code by " (token.kind.as_str()) " (" (destination_label(token)) ")" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn render_verify(
    state: &AppState,
    portal: &Portal,
    login: &PortalLogin,
    error: Option<&str>,
) -> Result<HttpResponse, PortalError> {
    render_verify_with(state, portal, login, error, None).await
}

/// The login's next step, with the flash message the redirect to it left.
async fn render_verify_with(
    state: &AppState,
    portal: &Portal,
    login: &PortalLogin,
    error: Option<&str>,
    flash: Option<Notice>,
) -> Result<HttpResponse, PortalError> {
    let tokens = match (login.stage, login.user_id) {
        (LoginStage::Otp, Some(user_id)) => {
            state
                .store
                .portal_tokens(user_id, portal.resource.id)
                .await?
        }
        _ => Vec::new(),
    };
    let news = match (&login.stage, &login.transaction_id) {
        (LoginStage::Otp, Some(transaction)) => Some(CodeNews::of(
            &state.store.code_deliveries(transaction.clone()).await?,
            crate::clock::now(),
        )),
        _ => None,
    };
    let frame = Frame {
        portal,
        title: "Log in",
        visitor: None,
        flash,
    };
    let status = if error.is_some() {
        actix_web::http::StatusCode::UNAUTHORIZED
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(frame.render_with(
        state,
        status,
        verify_page(portal, login, &tokens, news, error),
    ))
}

pub async fn show_verify(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let (_, login) = login_in_progress(&state, &request, &portal).await?;
    let flash = portal.flash_of(&state, &request);
    render_verify_with(&state, &portal, &login, None, flash).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecretForm {
    csrf: String,
    password: String,
    code: String,
    otp: String,
    token: String,
}

/// A step of a login in progress: the portal, the login behind the request's cookie (its CSRF
/// token checked), at the stage this step is for; or the page to show instead, when the login
/// is at another stage. Attempts are throttled.
enum Step {
    At(Box<(Portal, Vec<u8>, PortalLogin)>),
    Elsewhere(HttpResponse),
}

async fn login_step(
    state: &AppState,
    request: &HttpRequest,
    address: &str,
    csrf: &str,
    stage: LoginStage,
) -> Result<Step, PortalError> {
    let portal = Portal::open(state, address).await?;
    let (id_hash, login) = login_in_progress(state, request, &portal).await?;
    session::check_csrf(&login.csrf_token, csrf)?;
    // The password and the emailed code are one step, whichever the login was given, so that
    // answering either tells nothing; the one-time password is asked of a known user only.
    let first_step = |s: LoginStage| matches!(s, LoginStage::Password | LoginStage::EmailCode);
    let this_step = login.stage == stage || (first_step(login.stage) && first_step(stage));
    if !this_step || (stage == LoginStage::Otp && login.user_id.is_none()) {
        return Ok(Step::Elsewhere(
            render_verify(state, &portal, &login, None).await?,
        ));
    }
    limits::refuse_if_blocked(state, request, &portal, &login.login).await?;
    Ok(Step::At(Box::new((portal, id_hash, login))))
}

pub async fn submit_password(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SecretForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, id_hash, login) =
        match login_step(&state, &request, &path, &form.csrf, LoginStage::Password).await? {
            Step::At(step) => *step,
            Step::Elsewhere(page) => return Ok(page),
        };
    let user = match login.user_id {
        Some(id) => {
            state
                .store
                .portal_user_by_id(portal.resource.id, id)
                .await?
        }
        None => None,
    };
    if form.password.is_empty() || form.password.len() > 1024 {
        return render_verify(&state, &portal, &login, Some(FAILED)).await;
    }
    if !state
        .store
        .take_portal_login_try(id_hash.clone(), crate::clock::now())
        .await?
    {
        return show_login(&state, &request, &portal, Some(FAILED)).await;
    }
    let address = session::client_ip(&request).map(|ip| address_key(&ip));
    let counted = match &user {
        Some(user) => attempts::Login::Account(Counted {
            account: Account::User(user.id),
            address,
        }),
        None => attempts::Login::Stranger {
            name: format!("user:{}", login_key(&login.login)),
            address,
        },
    };
    let now = crate::clock::now();
    let (_, standing) = state
        .logins
        .standing(&state.store, &counted, "portal", now)
        .await?;
    match standing {
        Standing::Open => {}
        Standing::Wait {
            retry_after_seconds,
        } => {
            return Err(crate::web::PageError::TooManyRequests {
                retry_after_seconds,
            }
            .into());
        }
        Standing::Locked => {
            let mut entry = portal.audit(&request, &login.login, "portal.login", "refused");
            entry.user_id = login.user_id;
            entry.reason = Some("account_locked".into());
            state.store.audit(entry).await?;
            return render_verify(&state, &portal, &login, Some(LOCKED)).await;
        }
    }
    // Where the password lives: a directory user's is checked by a bind as them, a local
    // user's against their hash; an unknown login against a dummy hash, at the same cost.
    let checked = match &user {
        Some(user) => {
            crate::directories::check_password(
                &state.store,
                &state.keys,
                &state.directories,
                &state.passwords,
                user,
                &form.password,
            )
            .await?
        }
        None => {
            state
                .passwords
                .verify(form.password.clone(), None)
                .await
                .map_err(crate::web::PageError::Busy)?;
            Err("unknown_user")
        }
    };
    if let Err(reason) = checked {
        let mut entry = portal.audit(&request, &login.login, "portal.login", "rejected");
        entry.user_id = login.user_id;
        entry.reason = Some(reason.into());
        if reason.starts_with("directory_") {
            // The directory's own refusal (a locked or expired account) or its trouble: no
            // wrong password here, so no failed login is counted.
            state.store.audit(entry).await?;
            return render_verify(&state, &portal, &login, Some(FAILED)).await;
        }
        let mut lock = portal.audit(&request, &login.login, "user.lock", "locked");
        lock.user_id = login.user_id;
        lock.reason = Some("failed_logins".into());
        state
            .logins
            .failed(&state.store, &counted, lock, now)
            .await?;
        limits::count_failure(&state, &request, &portal, &login.login).await?;
        return missed(&state, &request, &portal, id_hash, &login, entry).await;
    }
    let Some(user) = user else {
        return render_verify(&state, &portal, &login, Some(FAILED)).await;
    };
    first_factor_passed(&state, &request, &portal, id_hash, login, user).await
}

pub async fn submit_code(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SecretForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, id_hash, login) =
        match login_step(&state, &request, &path, &form.csrf, LoginStage::EmailCode).await? {
            Step::At(step) => *step,
            Step::Elsewhere(page) => return Ok(page),
        };
    let now = crate::clock::now();
    // A try is taken before the code is compared, so that guesses sent together get no more
    // comparisons than the code has tries.
    if !state
        .store
        .take_portal_login_try(id_hash.clone(), now)
        .await?
    {
        return show_login(&state, &request, &portal, Some(FAILED)).await;
    }
    let right = login
        .code_hash
        .as_deref()
        .is_some_and(|expected| confirm::matches(&state.keys, &form.code, expected));
    let user = match (right, login.user_id) {
        (true, Some(id)) => {
            state
                .store
                .portal_user_by_id(portal.resource.id, id)
                .await?
        }
        _ => None,
    };
    // The code is claimed once: of two requests with it, one goes on.
    let claimed = user.is_some()
        && state
            .store
            .claim_portal_login_code(id_hash.clone(), now)
            .await?;
    let Some(user) = user.filter(|_| claimed) else {
        limits::count_failure(&state, &request, &portal, &login.login).await?;
        let mut entry = portal.audit(&request, &login.login, "portal.login", "rejected");
        entry.user_id = login.user_id;
        entry.reason = Some(
            if right {
                "replayed"
            } else {
                "bad_verification_code"
            }
            .into(),
        );
        return missed(&state, &request, &portal, id_hash, &login, entry).await;
    };
    first_factor_passed(&state, &request, &portal, id_hash, login, user).await
}

/// A wrong password or emailed code, its try already taken: audited, and the login ends with
/// its last try, back at the login name.
async fn missed(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    id_hash: Vec<u8>,
    login: &PortalLogin,
    entry: AuditEntry,
) -> Result<HttpResponse, PortalError> {
    state.store.portal_login_missed(id_hash, entry).await?;
    if login.tries_left <= 1 {
        return show_login(state, request, portal, Some(FAILED)).await;
    }
    render_verify(state, portal, login, Some(FAILED)).await
}

fn authenticator(state: &AppState) -> Authenticator<'_> {
    Authenticator {
        store: &state.store,
        keys: &state.keys,
        config: &state.config.auth,
        metrics: &state.metrics,
        passwords: &state.passwords,
        guard: &state.logins,
        // The portal's own limits apply (per address, and failures per account and address).
        per_account: None,
        wakeup: &state.delivery,
        directories: &state.directories,
        waiters: &state.approval_waiters,
    }
}

fn caller(request: &HttpRequest, portal: &Portal, login: &str) -> Caller {
    Caller {
        key_id: None,
        actor: format!("user:{login}"),
        resource_scope: Some(portal.resource.id),
        client_ip: session::client_ip(request),
        detail: None,
    }
}

/// After the password or the emailed code: the one-time password when the user has an active
/// token here (a code is sent at once when a single MAIL, SMS or BOT token is all there is),
/// otherwise the session.
async fn first_factor_passed(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    id_hash: Vec<u8>,
    login: PortalLogin,
    user: User,
) -> Result<HttpResponse, PortalError> {
    let tokens = state
        .store
        .portal_tokens(user.id, portal.resource.id)
        .await?;
    if !tokens.iter().any(usable) {
        if tokens.iter().any(crate::auth::awaits_reactivation) {
            // Its bot chat is gone, but it is still this user's second factor: the password
            // alone does not open the portal in its stead.
            let mut entry = portal.audit(request, &login.login, "portal.login", "rejected");
            entry.user_id = Some(user.id);
            entry.reason = Some("token_needs_reactivation".into());
            state.store.audit(entry).await?;
            return show_login(state, request, portal, Some(NEEDS_REACTIVATION)).await;
        }
        return open_session(state, request, portal, id_hash, &user).await;
    }
    // Locked tokens get no code: the page says they are locked instead.
    let now = crate::clock::now();
    let open_tokens: Vec<&Token> = tokens.iter().filter(|t| open_now(portal, t, now)).collect();
    if open_tokens.is_empty() {
        let mut entry = portal.audit(request, &login.login, "portal.login", "rejected");
        entry.user_id = Some(user.id);
        entry.reason = Some("token_locked".into());
        state.store.audit(entry).await?;
    }
    let sent = match open_tokens.as_slice() {
        [only] if only.kind.is_delivered() => {
            send_to(state, request, portal, &login.login, only).await?
        }
        _ => Sent {
            transaction: None,
            problem: None,
        },
    };
    state
        .store
        .portal_login_to_otp(id_hash, sent.transaction, crate::clock::now())
        .await?;
    Ok(to_verify(state, portal, sent.problem))
}

/// What sending a code to one token came to: the transaction to answer (when a code is on
/// its way, or one sent moments ago still works), and what to tell the user when no code went.
struct Sent {
    transaction: Option<String>,
    problem: Option<&'static str>,
}

/// Sends a code to one token through the authentication's `prepare`.
async fn send_to(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    login: &str,
    token: &Token,
) -> Result<Sent, PortalError> {
    let answer = authenticator(state)
        .prepare(
            &caller(request, portal, login),
            AuthTarget {
                resource: IdOrName::Id(portal.resource.id),
                user: Some(IdOrName::Name(login.to_string())),
                token: Some(IdOrName::Id(token.id)),
                transaction: None,
                address: None,
            },
            session::client_ip(request),
            crate::clock::now(),
        )
        .await?;
    let Answer::Challenge {
        transaction,
        expected,
    } = answer
    else {
        return Ok(Sent {
            transaction: None,
            problem: None,
        });
    };
    let delivery = expected.first().and_then(|expected| expected.delivery);
    let problem = match (delivery, token.kind) {
        (Some(Delivery::NotConfigured), TokenKind::Bot) => Some(
            "Telegram is not set up on this server, so no code could be sent; ask your administrator.",
        ),
        (Some(Delivery::NotConfigured), TokenKind::Sms) => Some(
            "Text messages are not set up on this server, so no code could be sent; ask your administrator.",
        ),
        (Some(Delivery::NotConfigured), _) => Some(
            "Email is not set up on this server, so no code could be sent; ask your administrator.",
        ),
        (Some(Delivery::Capped), _) => Some(
            "You were sent as many codes as allowed this hour. Use another second factor, or try again later.",
        ),
        (Some(Delivery::Cooldown), _) => {
            Some("A code was sent to you a moment ago and still works: type it here.")
        }
        _ => None,
    };
    let usable = matches!(delivery, Some(Delivery::Queued | Delivery::Cooldown));
    Ok(Sent {
        transaction: (usable && !transaction.is_empty()).then_some(transaction),
        problem,
    })
}

/// On to the login's next step, saying why no code went when none did.
fn to_verify(state: &AppState, portal: &Portal, problem: Option<&str>) -> HttpResponse {
    match problem {
        Some(problem) => portal.redirect_with_problem(state, "/login/verify", problem),
        None => see_other(&portal.path("/login/verify")),
    }
}

pub async fn send_code(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SecretForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, id_hash, login) =
        match login_step(&state, &request, &path, &form.csrf, LoginStage::Otp).await? {
            Step::At(step) => *step,
            Step::Elsewhere(page) => return Ok(page),
        };
    let Some(user_id) = login.user_id else {
        return Err(PortalError::LoginRequired(portal.address.clone()));
    };
    let now = crate::clock::now();
    if login.transaction_id.is_some() && login.sent_at.is_some_and(|at| confirm::too_soon(at, now))
    {
        return render_verify(
            &state,
            &portal,
            &login,
            Some("A code was sent a moment ago. Wait half a minute before asking for another."),
        )
        .await;
    }
    let tokens = state
        .store
        .portal_tokens(user_id, portal.resource.id)
        .await?;
    let Some(token) = tokens.iter().find(|t| {
        t.id.to_string() == form.token.trim() && open_now(&portal, t, now) && t.kind.is_delivered()
    }) else {
        return render_verify(&state, &portal, &login, None).await;
    };
    let sent = send_to(&state, &request, &portal, &login.login, token).await?;
    if sent.transaction.is_some() {
        state
            .store
            .portal_login_to_otp(id_hash, sent.transaction, now)
            .await?;
    }
    Ok(to_verify(&state, &portal, sent.problem))
}

pub async fn submit_otp(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SecretForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, id_hash, login) =
        match login_step(&state, &request, &path, &form.csrf, LoginStage::Otp).await? {
            Step::At(step) => *step,
            Step::Elsewhere(page) => return Ok(page),
        };
    let Some(user_id) = login.user_id else {
        return Err(PortalError::LoginRequired(portal.address.clone()));
    };
    let typed = form.otp.trim();
    if typed.is_empty() || typed.len() > 128 {
        return render_verify(&state, &portal, &login, Some(FAILED)).await;
    }
    let answer = authenticator(&state)
        .authenticate(
            &caller(&request, &portal, &login.login),
            Attempt {
                target: AuthTarget {
                    resource: IdOrName::Id(portal.resource.id),
                    user: Some(IdOrName::Name(login.login.clone())),
                    token: None,
                    // Without a code sent, a code typed on the approval's page ends the
                    // approval's transaction (and its wait) when it is right.
                    transaction: login
                        .transaction_id
                        .clone()
                        .or_else(|| login.approval_transaction.clone()),
                    // Failures count per account and address, as at the password.
                    address: session::client_ip(&request),
                },
                password: None,
                otp: Some(typed.to_string()),
                end_user_ip: session::client_ip(&request),
                first_factor_checked: true,
            },
            crate::clock::now(),
        )
        .await
        .map_err(PortalError::from)?;
    let user = match answer {
        Answer::Accepted { .. } => {
            state
                .store
                .portal_user_by_id(portal.resource.id, user_id)
                .await?
        }
        _ => None,
    };
    match user {
        Some(user) => open_session(&state, &request, &portal, id_hash, &user).await,
        None => {
            limits::count_failure(&state, &request, &portal, &login.login).await?;
            let error = if matches!(answer, Answer::Expired) {
                EXPIRED
            } else {
                FAILED
            };
            render_verify(&state, &portal, &login, Some(error)).await
        }
    }
}

async fn open_session(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    login_hash: Vec<u8>,
    user: &User,
) -> Result<HttpResponse, PortalError> {
    let now = crate::clock::now();
    let (value, id_hash) = session::new_session_id()?;
    let entry = AuditEntry {
        user_id: Some(user.id),
        ..portal.audit(request, &user.login, "portal.login", "ok")
    };
    let finished = state
        .store
        .finish_portal_login(
            login_hash,
            NewSession {
                id_hash,
                kind: SessionKind::Portal,
                stage: SessionStage::Full,
                admin_id: None,
                user_id: Some(user.id),
                resource_id: Some(portal.resource.id),
                csrf_token: crypto::random_token::<32>()?,
                pending_secret: None,
                client_ip: session::client_ip(request),
                expires_at: now + portal.general.portal_idle_seconds(),
            },
            now,
            entry,
        )
        .await?;
    if !finished {
        // Another request finished this login first: it has the session.
        return Err(PortalError::LoginRequired(portal.address.clone()));
    }
    let mut response = see_other(&portal.path(""));
    let _ = response.add_cookie(&portal.cookie(state, SESSION_COOKIE, value));
    let _ = response.add_cookie(&portal.removal_cookie(state, LOGIN_COOKIE));
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let visitor = super::require_visitor(&state, &request, &portal).await?;
    visitor.check_csrf(&form.csrf)?;
    state.store.delete_session(visitor.id_hash.clone()).await?;
    state
        .store
        .audit(visitor.audit(&portal, &request, "portal.logout", "ok"))
        .await?;
    let mut response = portal.redirect_with_flash(&state, "", "You are logged out.");
    let _ = response.add_cookie(&portal.removal_cookie(&state, SESSION_COOKIE));
    Ok(response)
}
