//! Assign New: the user enrols a token of a kind the resource's Token Enrollment permits. The
//! token is created pending, assigned to the user and to this resource, and becomes active when
//! confirmed: MAIL and SMS by the code sent to the new destination, TOTP by the app's first
//! code, BOT when the bot receives `/start <activation code>` (the page polls a status endpoint
//! through `/assets/portal.js`; without JavaScript a Check button does the same).
//!
//! The confirmation codes are `confirm`'s: wrong ones are limited, then the pending token is
//! discarded; new codes are sent at most every half minute.
//!
//! Enrolment is post, redirect, get, so that a reload shows the same token instead of adding
//! another; there is one pending token per kind (an app or BOT token started again resumes
//! the first, a MAIL or SMS one replaces it), and Cancel removes it.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::pending::{self, Pending};
use super::tokens::own_token;
use super::{Frame, Portal, PortalError, Visitor, require_visitor};
use crate::confirm::{self, Channel, Letter};
use crate::delivery::bot;
use crate::domain::{IdOrName, TokenKind, TokenState};
use crate::provision::{self, TokenRequest};
use crate::store::portal::{EnrolCode, Miss};
use crate::store::resources::PortalAction;
use crate::store::{AuditEntry, Token};
use crate::web::form::Problems;
use crate::web::form::{csrf_field, error_line};
use crate::web::{AppState, views};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/portal/{address}/tokens/new", web::get().to(choose_kind))
        .route(
            "/portal/{address}/tokens/new/{kind}",
            web::get().to(show_add),
        )
        .route(
            "/portal/{address}/tokens/new/{kind}",
            web::post().to(submit_add),
        )
        .route(
            "/portal/{address}/tokens/{id}/activate",
            web::get().to(show_activate),
        )
        .route(
            "/portal/{address}/tokens/{id}/activate",
            web::post().to(submit_activate),
        )
        .route(
            "/portal/{address}/tokens/{id}/resend",
            web::post().to(resend),
        )
        .route(
            "/portal/{address}/tokens/{id}/status",
            web::get().to(activation_status),
        )
        .route(
            "/portal/{address}/tokens/{id}/cancel",
            web::post().to(cancel),
        );
}

/// The kinds in the Add Token window: address piece, kind, title, what it is.
const KINDS: &[(&str, TokenKind, &str, &str)] = &[
    (
        "totp",
        TokenKind::Totp,
        "Authenticator app",
        "An app on your phone shows a new code every 30 seconds.",
    ),
    (
        "mail",
        TokenKind::Mail,
        "MAIL",
        "A code is emailed to you each time you log in.",
    ),
    (
        "sms",
        TokenKind::Sms,
        "SMS",
        "A code is sent to your phone by text message.",
    ),
    (
        "bot",
        TokenKind::Bot,
        "BOT",
        "A code is sent to you in a Telegram chat.",
    ),
];

fn kind_of(piece: &str) -> Option<(TokenKind, &'static str)> {
    KINDS
        .iter()
        .find(|(name, ..)| *name == piece)
        .map(|(_, kind, title, _)| (*kind, *title))
}

/// Opens the portal and the session and checks that Enroll Token is allowed (and the kind,
/// when given); a forged request for something off is audited and refused with 403.
async fn enrol_context(
    state: &AppState,
    request: &HttpRequest,
    address: &str,
    kind: Option<TokenKind>,
) -> Result<(Portal, Visitor), PortalError> {
    let portal = Portal::open(state, address).await?;
    let visitor = require_visitor(state, request, &portal).await?;
    let allowed = portal.settings.allows(PortalAction::EnrollToken)
        && kind.is_none_or(|kind| portal.settings.allows_kind(kind));
    if !allowed {
        let mut entry = visitor.audit(&portal, request, "portal.forbidden", "refused");
        entry.detail = Some(match kind {
            Some(kind) => format!("enroll_token {}", kind.as_str()),
            None => "enroll_token".into(),
        });
        state.store.audit(entry).await?;
        return Err(PortalError::Forbidden);
    }
    Ok((portal, visitor))
}

pub async fn choose_kind(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor) = enrol_context(&state, &request, &path, None).await?;
    let body = html! {
        p { "Choose how you want to receive your one-time passwords." }
        ul.choices {
            @for (piece, kind, title, what) in KINDS {
                @if portal.settings.allows_kind(*kind) {
                    li { a href=(portal.path(&format!("/tokens/new/{piece}"))) { (title) } " — " (what) }
                }
            }
        }
        p { a href=(portal.path("")) { "Back" } }
    };
    let frame = Frame {
        portal: &portal,
        title: "Add Token",
        visitor: Some(&visitor),
        flash: None,
    };
    Ok(frame.render(&state, body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddForm {
    csrf: String,
    name: String,
    destination: String,
    digits: String,
    messenger: String,
}

fn digits_select(current: &str) -> Markup {
    html! {
        label { "OTP length"
            select name="digits" {
                @for (value, label) in [("6", "6 digits"), ("8", "8 digits")] {
                    @if value == current { option value=(value) selected { (label) } } @else { option value=(value) { (label) } }
                }
            }
        }
    }
}

fn add_form(
    portal: &Portal,
    visitor: &Visitor,
    piece: &str,
    kind: TokenKind,
    form: &AddForm,
    error: Option<&str>,
) -> Markup {
    let destination = if form.destination.is_empty() {
        match kind {
            TokenKind::Mail => visitor.user.email.clone().unwrap_or_default(),
            TokenKind::Sms => visitor.user.phone.clone().unwrap_or_default(),
            _ => String::new(),
        }
    } else {
        form.destination.clone()
    };
    let digits = if form.digits.is_empty() {
        "6"
    } else {
        &form.digits
    };
    html! {
        (error_line(error))
        form.stack method="post" action=(portal.path(&format!("/tokens/new/{piece}"))) {
            (csrf_field(&visitor.csrf))
            label { "Name" small { "So that you recognise it, e.g. “Work phone”." }
                input type="text" name="name" value=(form.name) maxlength="100" required; }
            @if kind == TokenKind::Mail {
                label { "Email address" input type="email" name="destination" value=(destination) required; }
            }
            @if kind == TokenKind::Sms {
                label { "Phone number" small { "In international form, e.g. +41 79 123 45 67." }
                    input type="tel" name="destination" value=(destination) required; }
            }
            @if kind == TokenKind::Bot {
                label { "Messenger" select name="messenger" { option value="telegram" selected { "Telegram" } } }
            }
            @if matches!(kind, TokenKind::Mail | TokenKind::Sms | TokenKind::Bot) {
                (digits_select(digits))
            }
            div.buttons {
                @if matches!(kind, TokenKind::Mail | TokenKind::Sms) {
                    button type="submit" { "Save" }
                } @else {
                    button type="submit" { "Next" }
                }
                a href=(portal.path("/tokens/new")) { "Back" }
            }
        }
    }
}

pub async fn show_add(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (kind, title) = kind_of(&path.1).ok_or(PortalError::NotFound)?;
    let (portal, visitor) = enrol_context(&state, &request, &path.0, Some(kind)).await?;
    let body = add_form(&portal, &visitor, &path.1, kind, &AddForm::default(), None);
    let frame = Frame {
        portal: &portal,
        title: &format!("Add Token: {title}"),
        visitor: Some(&visitor),
        flash: None,
    };
    Ok(frame.render(&state, body))
}

/// A confirmation code for a new MAIL or SMS token, and the message that carries it.
fn confirmation_code(
    state: &AppState,
    portal: &Portal,
    kind: TokenKind,
    digits: u32,
    destination: &str,
    now: i64,
) -> Result<EnrolCode, PortalError> {
    let resource = &portal.resource.name;
    let issued = confirm::issue(
        &state.keys,
        Letter {
            channel: if kind == TokenKind::Sms {
                Channel::Sms
            } else {
                Channel::Mail
            },
            recipient: destination,
            subject: format!("Confirm your new second factor for {resource}"),
            purpose: format!("confirms your new second factor for {resource}"),
        },
        digits,
        now,
    )?;
    Ok(EnrolCode {
        code_hash: issued.code_hash,
        tries: confirm::TRIES,
        message: issued.message,
    })
}

pub async fn submit_add(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, PortalError> {
    let (kind, title) = kind_of(&path.1).ok_or(PortalError::NotFound)?;
    let (portal, visitor) = enrol_context(&state, &request, &path.0, Some(kind)).await?;
    visitor.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let now = crate::clock::now();
    // One pending enrolment per kind: starting an app or a BOT token again (a reload, a second
    // tab) resumes the first; a MAIL or SMS token started again replaces it, since its address
    // may be another.
    let waiting = state
        .store
        .portal_tokens(visitor.user.id, portal.resource.id)
        .await?
        .into_iter()
        .find(|token| token.kind == kind && token.state == TokenState::Pending);
    if let Some(waiting) = &waiting
        && matches!(kind, TokenKind::Totp | TokenKind::Bot)
    {
        if kind == TokenKind::Bot
            && Pending::bot_code_of(&state, &visitor, waiting.id, now).is_none()
        {
            let mut entry = visitor.audit(&portal, &request, "portal.token_resend", "ok");
            entry.token_id = Some(waiting.id);
            let activation =
                provision::issue_activation(&state.store, waiting.id, now, entry).await?;
            remember_bot_code(&state, &visitor, waiting.id, activation, now).await?;
        }
        return Ok(portal.redirect_with_flash(
            &state,
            &format!("/tokens/{}/activate", waiting.id),
            "You had started adding this token already: finish it here, or cancel it.",
        ));
    }
    let title = format!("Add Token: {title}");
    let render_again = |message: &str| {
        let frame = Frame {
            portal: &portal,
            title: &title,
            visitor: Some(&visitor),
            flash: None,
        };
        frame.render_with(
            &state,
            actix_web::http::StatusCode::BAD_REQUEST,
            add_form(&portal, &visitor, &path.1, kind, &form, Some(message)),
        )
    };
    if form.name.trim().is_empty() {
        return Ok(render_again("Give the token a name."));
    }
    if kind == TokenKind::Bot && state.telegram.username().is_none() {
        return Ok(render_again(
            "The Telegram bot is not available right now. Try again later or ask your administrator.",
        ));
    }
    let mut create = TokenRequest::new(kind);
    create.name = Some(form.name.clone());
    create.user = Some(IdOrName::Id(visitor.user.id));
    create.resource = Some(IdOrName::Id(portal.resource.id));
    if kind != TokenKind::Totp {
        create.digits = Some(if form.digits.trim() == "8" { 8 } else { 6 });
    }
    match kind {
        TokenKind::Mail | TokenKind::Sms => {
            if form.destination.trim().is_empty() {
                return Ok(render_again(if kind == TokenKind::Mail {
                    "Give the email address the codes should go to."
                } else {
                    "Give the phone number the codes should go to."
                }));
            }
            create.destination = Some(form.destination.clone());
        }
        TokenKind::Bot => create.messenger = Some("telegram".into()),
        _ => {}
    }
    let general = state.general().await?;
    let prepared = if kind == TokenKind::Totp {
        provision::prepare_pending(&state.keys, &create, now, &general)
    } else {
        provision::prepare(&state.keys, &create, now, &general)
    };
    let mut prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let problems = Problems::of(error)?;
            let message = problems.first().unwrap_or("a value is not right");
            return Ok(render_again(&format!("Check the form: {message}.")));
        }
    };
    prepared.creation.token.state = TokenState::Pending;
    let code = match kind {
        TokenKind::Mail | TokenKind::Sms => {
            let destination = prepared
                .creation
                .token
                .destination
                .clone()
                .unwrap_or_default();
            Some(confirmation_code(
                &state,
                &portal,
                kind,
                prepared.creation.token.digits,
                &destination,
                now,
            )?)
        }
        _ => None,
    };
    let activation = prepared.activation.take();
    // The form is right: the MAIL or SMS token this one replaces goes.
    if let Some(waiting) = waiting {
        let mut entry = visitor.audit(&portal, &request, "portal.token_discard", "ok");
        entry.token_id = Some(waiting.id);
        entry.detail = Some("replaced by a new enrolment".into());
        state.store.discard_pending_token(waiting.id, entry).await?;
    }
    let mut entry = visitor.audit(&portal, &request, "portal.token_enrol", "ok");
    entry.detail = Some(kind.as_str().to_string());
    // A BOT token is told of now (the bot activates it); the others once their first code
    // activates them (`submit_activation`).
    if kind == TokenKind::Bot {
        entry.notice = super::notify::notice(
            &state,
            &portal,
            &visitor.user,
            crate::notices::Change::TokenAdded {
                name: &prepared.creation.token.name,
                kind: kind.as_str(),
            },
        )?;
    }
    let record = match state
        .store
        .enrol_portal_token(prepared.creation, code, now, entry)
        .await?
    {
        Ok(record) => record,
        Err(refused) => return Ok(render_again(&format!("{refused}."))),
    };
    let token = record.token;
    state.delivery.wake();
    if kind.is_delivered() && kind != TokenKind::Bot {
        return Ok(portal.redirect_with_flash(
            &state,
            &format!("/tokens/{}/activate", token.id),
            "We have sent you a code. Type it here to activate the token.",
        ));
    }
    // The QR code is shown by the activation page (post, redirect, get), so that a reload
    // shows the same token again instead of adding another.
    if let Some(activation) = activation {
        remember_bot_code(&state, &visitor, token.id, activation, now).await?;
    }
    if token.state == TokenState::Pending {
        return Ok(HttpResponse::SeeOther()
            .insert_header((
                actix_web::http::header::LOCATION,
                portal.path(&format!("/tokens/{}/activate", token.id)),
            ))
            .finish());
    }
    Ok(portal.redirect_with_flash(&state, "", "The token was added."))
}

/// Keeps a new BOT activation code in the session, for the activation page to show.
async fn remember_bot_code(
    state: &AppState,
    visitor: &Visitor,
    token_id: i64,
    activation: provision::Activation,
    now: i64,
) -> Result<(), PortalError> {
    let pending = Pending::BotCode {
        token_id,
        code: activation.code,
        expires_at: activation.expires_at,
    };
    pending::remember(state, visitor, &pending, now).await
}

/// The QR code and key of a pending app token, shown until it is confirmed or cancelled.
fn app_enrolment(
    state: &AppState,
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
) -> Result<Markup, PortalError> {
    let secret = crate::codes::seed(&state.keys, token)?;
    let params = crate::codes::params(token)?;
    let seed = provision::Seed {
        secret,
        params,
        counter: 0,
    };
    let uri = provision::enrolment_uri(&state.issuer, &portal.app_account(visitor), &seed);
    Ok(html! {
        p { "Scan this QR code with your authenticator app." }
        (views::app_enrolment(&uri, &seed.secret, "QR code of your new token for an authenticator app"))
        p { "Then type the code the app shows to activate the token." }
    })
}

/// The button that gives up a token not yet active.
fn cancel_form(portal: &Portal, visitor: &Visitor, token: &Token) -> Markup {
    html! {
        form.inline method="post" action=(portal.path(&format!("/tokens/{}/cancel", token.id))) {
            (csrf_field(&visitor.csrf))
            button.secondary type="submit" { "Cancel" }
        }
    }
}

/// Cancel on an activation page: the pending token is removed.
pub async fn cancel(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = pending_token(&state, &request, &path).await?;
    visitor.check_csrf(&form.csrf)?;
    if token.state != TokenState::Pending {
        return Ok(active_now(&state, &portal, &token));
    }
    let mut entry = visitor.audit(&portal, &request, "portal.token_discard", "ok");
    entry.token_id = Some(token.id);
    entry.detail = Some("cancelled".into());
    state.store.discard_pending_token(token.id, entry).await?;
    Ok(portal.redirect_with_flash(&state, "", "The new token was cancelled."))
}

fn activation_frame(
    state: &AppState,
    portal: &Portal,
    visitor: &Visitor,
    body: Markup,
) -> HttpResponse {
    Frame {
        portal,
        title: "Activate your token",
        visitor: Some(visitor),
        flash: None,
    }
    .render(state, body)
}

fn code_form(portal: &Portal, visitor: &Visitor, token: &Token, label: &str) -> Markup {
    html! {
        form.stack method="post" action=(portal.path(&format!("/tokens/{}/activate", token.id))) {
            (csrf_field(&visitor.csrf))
            label { (label) input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
            div.buttons { button type="submit" { "Activate" } }
        }
    }
}

/// The BOT activation page: the QR code of the deep link, the link, and the status the script
/// polls at `status_url` (or the Check button, to `check_url`, without JavaScript).
pub(super) fn bot_page(
    state: &AppState,
    portal: &Portal,
    visitor: &Visitor,
    code: &str,
    status_url: &str,
    check_url: &str,
) -> HttpResponse {
    let body = bot_body(state, code, status_url, check_url);
    activation_frame(state, portal, visitor, body)
}

fn bot_body(state: &AppState, code: &str, status_url: &str, check_url: &str) -> Markup {
    let link = state
        .telegram
        .username()
        .map(|username| bot::deep_link(&username, code));
    html! {
        @if let Some(link) = &link {
            p { "Scan this QR code with your phone's camera, or open the link on your phone, then press " strong { "Start" } " in the chat with the bot." }
            (views::qr_image(link, "QR code of the Telegram activation link"))
            (views::telegram_link(link))
        }
        p.note { "Or send the bot this message: " code.command { "/start " (code) } }
        // Done, the script opens the Check address, which says the token is active.
        p #activation-status data-status-url=(status_url) data-done-url=(check_url) role="status" {
            "Waiting for the bot… This page updates by itself once the token is active."
        }
        form.inline method="get" action=(check_url) {
            button type="submit" { "Check" }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

/// The pending token named by the address, with Enroll Token allowed.
async fn pending_token(
    state: &AppState,
    request: &HttpRequest,
    path: &(String, String),
) -> Result<(Portal, Visitor, Token), PortalError> {
    let (portal, visitor) = enrol_context(state, request, &path.0, None).await?;
    let (token, _) = own_token(state, &portal, &visitor, &path.1).await?;
    Ok((portal, visitor, token))
}

fn active_now(state: &AppState, portal: &Portal, token: &Token) -> HttpResponse {
    portal.redirect_with_flash(
        state,
        "",
        &format!(
            "{} is active. You are all set.",
            crate::web::views::token_label(token)
        ),
    )
}

pub async fn show_activate(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = pending_token(&state, &request, &path).await?;
    if token.state != TokenState::Pending {
        return Ok(active_now(&state, &portal, &token));
    }
    let flash = portal.flash_of(&state, &request);
    let body = activation_body(&state, &portal, &visitor, &token, None)?;
    Ok(Frame {
        portal: &portal,
        title: "Activate your token",
        visitor: Some(&visitor),
        flash,
    }
    .render(&state, body))
}

fn activation_body(
    state: &AppState,
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    error: Option<&str>,
) -> Result<Markup, PortalError> {
    let base = portal.path(&format!("/tokens/{}", token.id));
    let bot_code = (token.kind == TokenKind::Bot)
        .then(|| Pending::bot_code_of(state, visitor, token.id, crate::clock::now()))
        .flatten();
    let app = match token.kind {
        TokenKind::Totp => Some(app_enrolment(state, portal, visitor, token)?),
        _ => None,
    };
    Ok(html! {
        (error_line(error))
        @match token.kind {
            TokenKind::Mail | TokenKind::Sms => {
                p { "Type the code we sent to " strong { (super::login::own_destination(token)) } "." }
                (code_form(portal, visitor, token, "Code"))
                form.inline method="post" action={ (base) "/resend" } {
                    (csrf_field(&visitor.csrf))
                    button.link type="submit" { "Send a new code" }
                }
            }
            TokenKind::Bot if bot_code.is_some() => {
                (bot_body(state, bot_code.as_deref().unwrap_or_default(), &format!("{base}/status"), &format!("{base}/activate")))
            }
            TokenKind::Bot => {
                p #activation-status data-status-url={ (base) "/status" } data-done-url={ (base) "/activate" } role="status" {
                    "The bot has not activated this token yet."
                }
                form.inline method="get" action={ (base) "/activate" } { button type="submit" { "Check" } }
                form.inline method="post" action={ (base) "/resend" } {
                    (csrf_field(&visitor.csrf))
                    button.link type="submit" { "Show a new QR code" }
                }
            }
            _ => {
                @if let Some(app) = &app { (app) } @else {
                    p { "Type the code your authenticator app shows for this token." }
                }
                (code_form(portal, visitor, token, "Code shown by the app"))
            }
        }
        div.buttons {
            (cancel_form(portal, visitor, token))
            a href=(portal.path("")) { "Back" }
        }
    })
}

pub async fn submit_activate(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = pending_token(&state, &request, &path).await?;
    visitor.check_csrf(&form.csrf)?;
    if token.state != TokenState::Pending {
        return Ok(active_now(&state, &portal, &token));
    }
    let typed = form.code.trim();
    let now = crate::clock::now();
    let render = |error: &str| -> Result<HttpResponse, PortalError> {
        Ok(Frame {
            portal: &portal,
            title: "Activate your token",
            visitor: Some(&visitor),
            flash: None,
        }
        .render_with(
            &state,
            actix_web::http::StatusCode::BAD_REQUEST,
            activation_body(&state, &portal, &visitor, &token, Some(error))?,
        ))
    };
    let mut entry = visitor.audit(&portal, &request, "portal.token_activate", "ok");
    entry.token_id = Some(token.id);
    let activated = AuditEntry {
        notice: super::notify::notice(
            &state,
            &portal,
            &visitor.user,
            crate::notices::Change::TokenAdded {
                name: &token.name,
                kind: token.kind.as_str(),
            },
        )?,
        ..entry.clone()
    };
    let accepted = match token.kind {
        TokenKind::Mail | TokenKind::Sms => {
            let Some(pending) = state.store.pending_code(token.id, now).await? else {
                return render("The code has expired or was used up. Send a new code.");
            };
            if confirm::matches(&state.keys, typed, &pending.code_hash) {
                state
                    .store
                    .confirm_enrol_code(token.id, pending.challenge_id, now, activated)
                    .await?
            } else {
                false
            }
        }
        TokenKind::Totp | TokenKind::Hotp => {
            return match provision::confirm_first_code(
                &state.store,
                &state.keys,
                &token,
                typed,
                now,
                activated,
            )
            .await?
            {
                provision::FirstCode::Active(_) => {
                    state.delivery.wake();
                    Ok(active_now(&state, &portal, &token))
                }
                provision::FirstCode::TryAgain => render(WRONG_CODE),
                provision::FirstCode::Discarded => Ok(discarded(&state, &portal)),
            };
        }
        _ => return render("This token is activated through the bot."),
    };
    if accepted {
        state.delivery.wake();
        return Ok(active_now(&state, &portal, &token));
    }
    entry.result = "rejected".into();
    entry.reason = Some("bad_code".into());
    match state
        .store
        .enrol_code_missed(token.id, confirm::TRIES, entry)
        .await?
    {
        Miss::TryAgain => render(WRONG_CODE),
        Miss::Discarded => Ok(discarded(&state, &portal)),
    }
}

const WRONG_CODE: &str = "The code is not right. Check it and try again.";

fn discarded(state: &AppState, portal: &Portal) -> HttpResponse {
    portal.redirect_with_problem(
        state,
        "",
        "Too many wrong codes: the new token was removed. Start again with Assign New.",
    )
}

pub async fn resend(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = pending_token(&state, &request, &path).await?;
    visitor.check_csrf(&form.csrf)?;
    if token.state != TokenState::Pending {
        return Ok(active_now(&state, &portal, &token));
    }
    let now = crate::clock::now();
    let mut entry = visitor.audit(&portal, &request, "portal.token_resend", "ok");
    entry.token_id = Some(token.id);
    match token.kind {
        TokenKind::Mail | TokenKind::Sms => {
            if let Some(pending) = state.store.pending_code(token.id, now).await?
                && confirm::too_soon(pending.created_at, now)
            {
                return Ok(portal.redirect_with_problem(
                    &state,
                    &format!("/tokens/{}/activate", token.id),
                    "A code was sent a moment ago. Wait half a minute before asking for another.",
                ));
            }
            let destination = token.destination.clone().unwrap_or_default();
            let code =
                confirmation_code(&state, &portal, token.kind, token.digits, &destination, now)?;
            state
                .store
                .resend_enrol_code(token.id, code, now, entry)
                .await?;
            state.delivery.wake();
            Ok(portal.redirect_with_flash(
                &state,
                &format!("/tokens/{}/activate", token.id),
                "We have sent you a new code.",
            ))
        }
        TokenKind::Bot => {
            let activation =
                provision::issue_activation(&state.store, token.id, now, entry).await?;
            remember_bot_code(&state, &visitor, token.id, activation, now).await?;
            Ok(HttpResponse::SeeOther()
                .insert_header((
                    actix_web::http::header::LOCATION,
                    portal.path(&format!("/tokens/{}/activate", token.id)),
                ))
                .finish())
        }
        _ => Err(PortalError::NotFound),
    }
}

/// `{"state": "pending" | "active" | …}` for the activation page's script.
pub async fn activation_status(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (_, _, token) = pending_token(&state, &request, &path).await?;
    let label = if token.state == TokenState::Active {
        "active"
    } else {
        token.state.as_str()
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "state": label })))
}
