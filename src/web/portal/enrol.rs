//! Assign New: the user enrols a token of a kind the resource's Token Enrollment permits. The
//! token is created pending, assigned to the user and to this resource, and becomes active when
//! confirmed: MAIL and SMS by the code sent to the new destination, TOTP by the app's first
//! code, BOT when the bot receives `/start <activation code>` (the page polls a status endpoint
//! through `/assets/portal.js`; without JavaScript a Check button does the same).
//!
//! The confirmation codes are `confirm`'s: wrong ones are limited, then the pending token is
//! discarded; new codes are sent at most every half minute.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::tokens::own_token;
use super::{Frame, Portal, PortalError, Visitor, require_visitor};
use crate::confirm::{self, Channel, Letter};
use crate::delivery::bot;
use crate::domain::{IdOrName, TokenKind, TokenState};
use crate::provision::{self, TokenRequest};
use crate::store::Token;
use crate::store::portal::{EnrolCode, Miss};
use crate::store::resources::PortalAction;
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
    let now = crate::clock::now();
    let general = state.general().await?;
    let mut prepared = match provision::prepare(&state.keys, &create, now, &general) {
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
    let mut entry = visitor.audit(&portal, &request, "portal.token_enrol", "ok");
    entry.detail = Some(kind.as_str().to_string());
    let record = match state
        .store
        .enrol_portal_token(prepared.creation, code, now, entry)
        .await?
    {
        Ok(record) => record,
        Err(refused) => return Ok(render_again(&format!("{refused}."))),
    };
    let token = record.token;
    if kind.is_delivered() && kind != TokenKind::Bot {
        state.delivery.wake();
        return Ok(portal.redirect_with_flash(
            &state,
            &format!("/tokens/{}/activate", token.id),
            "We have sent you a code. Type it here to activate the token.",
        ));
    }
    if let (Some(seed), TokenKind::Totp) = (&prepared.seed, kind) {
        let uri = provision::enrolment_uri(&state.issuer, &portal.app_account(&visitor), seed);
        let body = html! {
            p { "Scan this QR code with your authenticator app. It is shown only now." }
            (views::app_enrolment(&uri, &seed.secret, "QR code of your new token for an authenticator app"))
            p { "Then type the code the app shows to activate the token." }
            (code_form(&portal, &visitor, &token, "Code shown by the app"))
        };
        return Ok(activation_frame(&state, &portal, &visitor, body));
    }
    match activation {
        Some(activation) => {
            let base = portal.path(&format!("/tokens/{}", token.id));
            Ok(bot_page(
                &state,
                &portal,
                &visitor,
                &activation.code,
                &format!("{base}/status"),
                &format!("{base}/activate"),
            ))
        }
        None => Ok(portal.redirect_with_flash(&state, "", "The token was added.")),
    }
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
    let link = state
        .telegram
        .username()
        .map(|username| bot::deep_link(&username, code));
    let body = html! {
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
    };
    activation_frame(state, portal, visitor, body)
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
        &format!("“{}” is active. You are all set.", token.name),
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
    let body = activation_body(&portal, &visitor, &token, None);
    Ok(Frame {
        portal: &portal,
        title: "Activate your token",
        visitor: Some(&visitor),
        flash,
    }
    .render(&state, body))
}

fn activation_body(
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    error: Option<&str>,
) -> Markup {
    let base = portal.path(&format!("/tokens/{}", token.id));
    html! {
        (error_line(error))
        @match token.kind {
            TokenKind::Mail | TokenKind::Sms => {
                p { "Type the code we sent to " strong { (super::login::destination_label(token)) } "." }
                (code_form(portal, visitor, token, "Code"))
                form.inline method="post" action={ (base) "/resend" } {
                    (csrf_field(&visitor.csrf))
                    button.link type="submit" { "Send a new code" }
                }
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
                p { "Type the code your authenticator app shows for this token." }
                (code_form(portal, visitor, token, "Code shown by the app"))
            }
        }
        p { a href=(portal.path("")) { "Back" } }
    }
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
    let render = |error: &str| {
        Frame {
            portal: &portal,
            title: "Activate your token",
            visitor: Some(&visitor),
            flash: None,
        }
        .render_with(
            &state,
            actix_web::http::StatusCode::BAD_REQUEST,
            activation_body(&portal, &visitor, &token, Some(error)),
        )
    };
    let mut entry = visitor.audit(&portal, &request, "portal.token_activate", "ok");
    entry.token_id = Some(token.id);
    let accepted = match token.kind {
        TokenKind::Mail | TokenKind::Sms => {
            let Some(pending) = state.store.pending_code(token.id, now).await? else {
                return Ok(render(
                    "The code has expired or was used up. Send a new code.",
                ));
            };
            if confirm::matches(&state.keys, typed, &pending.code_hash) {
                state
                    .store
                    .confirm_enrol_code(token.id, pending.challenge_id, now, entry.clone())
                    .await?
            } else {
                false
            }
        }
        TokenKind::Totp => match provision::first_code(&state.keys, &token, typed, now)? {
            Some(found) => state
                .store
                .confirm_token(token.id, found.step, entry.clone())
                .await?
                .is_ok(),
            None => false,
        },
        _ => return Ok(render("This token is activated through the bot.")),
    };
    if accepted {
        return Ok(active_now(&state, &portal, &token));
    }
    entry.result = "rejected".into();
    entry.reason = Some("bad_code".into());
    match state
        .store
        .enrol_code_missed(token.id, confirm::TRIES, entry)
        .await?
    {
        Miss::TryAgain => Ok(render("The code is not right. Check it and try again.")),
        Miss::Discarded => Ok(portal.redirect_with_flash(
            &state,
            "",
            "Too many wrong codes: the new token was removed. Start again with Assign New.",
        )),
    }
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
                return Ok(portal.redirect_with_flash(
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
            let base = portal.path(&format!("/tokens/{}", token.id));
            Ok(bot_page(
                &state,
                &portal,
                &visitor,
                &activation.code,
                &format!("{base}/status"),
                &format!("{base}/activate"),
            ))
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
