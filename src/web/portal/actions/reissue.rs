//! Reissue Token: a new seed for an authenticator app (QR code, then its first code — the old
//! seed works until then), a new address or number for a MAIL or SMS token (confirmed by a code
//! sent there), or a new Telegram activation for a BOT token, also offered as Re-activate for
//! one the bot cannot reach any more. The rules are `provision::reissue`'s.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{page, token_context};
use crate::confirm::{self, Channel, Issued, Letter, Typed, Waiting};
use crate::crypto::Purpose;
use crate::domain::{self, TokenKind};
use crate::provision::{
    self,
    reissue::{by_code as reissued_by_code, can_reissue, needs_reactivation},
};
use crate::store::Token;
use crate::store::resources::PortalAction;
use crate::web::form::{CodeForm, csrf_field, error_line};
use crate::web::portal::login::own_destination;
use crate::web::portal::pending::{self, Pending};
use crate::web::portal::{Portal, PortalError, Visitor};
use crate::web::{AppState, views};

/// The title of Reissue Token's pages for this token.
fn reissue_title(token: &Token) -> &'static str {
    if needs_reactivation(token) {
        "Re-activate"
    } else {
        "Reissue Token"
    }
}

pub async fn show_reissue(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) =
        token_context(&state, &request, &path, None, PortalAction::ReissueToken).await?;
    if !can_reissue(&token) {
        return Err(PortalError::NotFound);
    }
    let destination = token.destination.clone().unwrap_or_default();
    let body = reissue_start_body(&portal, &visitor, &token, &destination, None);
    Ok(page(
        &state,
        &request,
        &portal,
        &visitor,
        reissue_title(&token),
        false,
        body,
    ))
}

/// The first step of Reissue Token: what it does for this kind, and for MAIL and SMS the new
/// address or number (`destination`, as typed or the current one).
fn reissue_start_body(
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    destination: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        (error_line(error))
        @match token.kind {
            TokenKind::Bot if needs_reactivation(token) => {
                p { "Telegram told us that you blocked the bot or deleted the chat with it, so " (crate::web::views::token_label(token)) " gets no codes now. To use it again, open the bot again: press Next, then open the link on your phone and press " strong { "Start" } "." }
            }
            TokenKind::Bot => {
                p { "Moving to a new phone or a new Telegram account? Activate " (crate::web::views::token_label(token)) " again there. Until you do, the codes keep going to the chat you use now." }
            }
            TokenKind::Mail => {
                p { "Want the codes of " (crate::web::views::token_label(token)) " at another email address? Give it here; we send a code there. Until you type it, the codes keep going to " strong { (own_destination(token)) } "." }
            }
            TokenKind::Sms => {
                p { "Got a new phone number? Give it here; we send a code there by SMS. Until you type it, the codes of " (crate::web::views::token_label(token)) " keep going to " strong { (own_destination(token)) } "." }
            }
            _ => {
                p { "Got a new phone, or lost the old one? You get a new QR code for your authenticator app. Until you type the first code of the new entry, the old one keeps working." }
            }
        }
        form.stack method="post" action=(portal.path(&format!("/tokens/{}/reissue", token.id))) {
            (csrf_field(&visitor.csrf))
            @if token.kind == TokenKind::Mail {
                label { "Email address" input type="email" name="destination" value=(destination) required autofocus; }
            }
            @if token.kind == TokenKind::Sms {
                label { "Phone number" small { "In international form, e.g. +41 79 123 45 67." }
                    input type="tel" name="destination" value=(destination) required autofocus; }
            }
            div.buttons { button type="submit" { "Next" } a href=(portal.path("")) { "Back" } }
        }
    }
}

fn reissue_qr_body(
    state: &AppState,
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    secret: &[u8],
    error: Option<&str>,
) -> Result<Markup, PortalError> {
    let seed = provision::Seed {
        secret: secret.to_vec(),
        params: crate::codes::params(token)?,
        counter: 0,
    };
    let uri = provision::enrolment_uri(&state.issuer, &portal.app_account(visitor), &seed);
    Ok(html! {
        (error_line(error))
        p { "Scan this QR code with your authenticator app." }
        (views::app_enrolment(&uri, secret, "QR code of the reissued token for an authenticator app"))
        p { "Then type the code the new entry shows. Only then does the old entry stop working." }
        form.stack method="post" action=(portal.path(&format!("/tokens/{}/reissue/confirm", token.id))) {
            (csrf_field(&visitor.csrf))
            label { "Code shown by the app" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
            div.buttons { button type="submit" { "Activate" } a href=(portal.path("")) { "Back" } }
        }
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReissueForm {
    csrf: String,
    /// MAIL and SMS: the new address or number.
    destination: String,
}

pub async fn submit_reissue(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReissueForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = token_context(
        &state,
        &request,
        &path,
        Some(&form.csrf),
        PortalAction::ReissueToken,
    )
    .await?;
    if !can_reissue(&token) {
        return Err(PortalError::NotFound);
    }
    let now = crate::clock::now();
    if reissued_by_code(&token) {
        return start_activation(
            &state,
            &request,
            &portal,
            &visitor,
            &token,
            &form.destination,
        )
        .await;
    }
    let mut entry = visitor.audit(&portal, &request, "portal.token_reissue", "started");
    entry.token_id = Some(token.id);
    if token.kind == TokenKind::Bot {
        if state.telegram.username().is_none() {
            return Ok(portal.redirect_with_problem(
                &state,
                "",
                "The Telegram bot is not available right now. Try again later or ask your administrator.",
            ));
        }
        let activation = provision::issue_activation(&state.store, token.id, now, entry).await?;
        let base = portal.path(&format!("/tokens/{}/reissue", token.id));
        return Ok(crate::web::portal::enrol::bot_page(
            &state,
            &portal,
            &visitor,
            &activation.code,
            &format!("{base}/status"),
            &format!("{base}/check"),
        ));
    }
    let secret = provision::reissue::new_seed()?;
    let pending = Pending::Reissue {
        token_id: token.id,
        secret: secret.clone(),
        tries_left: confirm::TRIES,
        expires_at: now + confirm::VALIDITY_SECONDS,
    };
    pending::keep(&state, &visitor, Some(&pending), None, now, entry).await?;
    let body = reissue_qr_body(&state, &portal, &visitor, &token, &secret, None)?;
    Ok(page(
        &state,
        &request,
        &portal,
        &visitor,
        "Reissue Token",
        false,
        body,
    ))
}

pub async fn confirm_reissue(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = token_context(
        &state,
        &request,
        &path,
        Some(&form.csrf),
        PortalAction::ReissueToken,
    )
    .await?;
    if reissued_by_code(&token) {
        return confirm_activation(&state, &request, &portal, &visitor, &token, &form.code).await;
    }
    let now = crate::clock::now();
    let Some(Pending::Reissue {
        token_id,
        secret,
        tries_left,
        expires_at,
    }) = Pending::of(&state, &visitor, now).filter(
        |pending| matches!(pending, Pending::Reissue { token_id, .. } if *token_id == token.id),
    )
    else {
        return Ok(portal.redirect_with_problem(
            &state,
            "",
            "The new QR code has expired. Start Reissue Token again; your old entry still works.",
        ));
    };
    let mut entry = visitor.audit(&portal, &request, "portal.token_reissue", "ok");
    entry.token_id = Some(token.id);
    if let Some(found) = provision::reissue::first_code(&token, &secret, &form.code, now)? {
        let sealed = state.keys.seal(Purpose::TokenSecret, &secret)?;
        if state
            .store
            .reissue_seed(
                visitor.id_hash.clone(),
                token.id,
                sealed,
                found.step,
                now,
                entry,
            )
            .await?
        {
            return Ok(portal.redirect_with_flash(
                &state,
                "",
                &format!(
                    "{} is reissued: use the new entry in your app from now on.",
                    crate::web::views::token_label(&token)
                ),
            ));
        }
        return Err(PortalError::NotFound);
    }
    entry.result = "rejected".into();
    entry.reason = Some("bad_code".into());
    let left = tries_left - 1;
    if left <= 0 {
        pending::keep(&state, &visitor, None, None, now, entry).await?;
        return Ok(portal.redirect_with_problem(
            &state,
            "",
            "Too many wrong codes: the new QR code was thrown away and your old entry still works.",
        ));
    }
    let pending = Pending::Reissue {
        token_id,
        secret: secret.clone(),
        tries_left: left,
        expires_at,
    };
    pending::keep(&state, &visitor, Some(&pending), None, now, entry).await?;
    let body = reissue_qr_body(
        &state,
        &portal,
        &visitor,
        &token,
        &secret,
        Some("The code is not right. Check it and try again."),
    )?;
    Ok(page(
        &state,
        &request,
        &portal,
        &visitor,
        "Reissue Token",
        true,
        body,
    ))
}

// A new activation of a MAIL or SMS token.

/// A code for the new address or number of a MAIL or SMS token, and the message that carries
/// it there; the code has the token's length, like the codes it will receive.
fn activation_code(
    state: &AppState,
    portal: &Portal,
    token: &Token,
    destination: &str,
    now: i64,
) -> Result<Issued, PortalError> {
    let (channel, what) = if token.kind == TokenKind::Sms {
        (Channel::Sms, "phone number")
    } else {
        (Channel::Mail, "email address")
    };
    let resource = &portal.resource.name;
    Ok(confirm::issue(
        &state.keys,
        Letter {
            channel,
            recipient: destination,
            subject: format!("Confirm the new {what} of your second factor for {resource}"),
            purpose: format!(
                "confirms the new {what} of your second factor \"{}\" for {resource}",
                token.name
            ),
        },
        token.digits,
        now,
    )?)
}

/// Sends a code to the new address or number (validated as at enrolment) and waits for it;
/// the token keeps its old destination until the code comes back.
async fn start_activation(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    typed: &str,
) -> Result<HttpResponse, PortalError> {
    let verify = format!("/tokens/{}/reissue/verify", token.id);
    let destination = match domain::token_destination(token.kind, typed) {
        Ok(destination) => destination,
        Err(error) => {
            let message = format!("Check the new value: {}.", error.message);
            let body = reissue_start_body(portal, visitor, token, typed, Some(&message));
            return Ok(page(
                state,
                request,
                portal,
                visitor,
                "Reissue Token",
                true,
                body,
            ));
        }
    };
    let now = crate::clock::now();
    if let Some((_, code)) = Pending::activation_of(state, visitor, token.id, now)
        && code.too_soon(now)
    {
        return Ok(portal.redirect_with_problem(
            state,
            &verify,
            "A code was sent a moment ago. Wait half a minute before asking for another.",
        ));
    }
    let issued = activation_code(state, portal, token, &destination, now)?;
    let pending = Pending::Activation {
        token_id: token.id,
        destination,
        code: Waiting::new(&issued, now),
    };
    let mut entry = visitor.audit(portal, request, "portal.token_reissue", "code_sent");
    entry.token_id = Some(token.id);
    pending::keep(
        state,
        visitor,
        Some(&pending),
        Some(issued.message),
        now,
        entry,
    )
    .await?;
    Ok(portal.redirect_with_flash(
        state,
        &verify,
        "We have sent a code there. Type it here to confirm the new address.",
    ))
}

fn activation_verify_body(
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    destination: &str,
    error: Option<&str>,
) -> Markup {
    let base = portal.path(&format!("/tokens/{}/reissue", token.id));
    html! {
        (error_line(error))
        p { "Type the code we sent to " strong { (destination) } ". Until then, the codes of " (crate::web::views::token_label(token)) " keep going to " (own_destination(token)) "." }
        form.stack method="post" action={ (base) "/confirm" } {
            (csrf_field(&visitor.csrf))
            label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
            div.buttons { button type="submit" { "Confirm" } a href=(portal.path("")) { "Back" } }
        }
        form.inline method="post" action=(base) {
            (csrf_field(&visitor.csrf))
            input type="hidden" name="destination" value=(destination);
            button.link type="submit" { "Send a new code" }
        }
    }
}

pub async fn show_reissue_verify(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) =
        token_context(&state, &request, &path, None, PortalAction::ReissueToken).await?;
    let Some((destination, _)) =
        Pending::activation_of(&state, &visitor, token.id, crate::clock::now())
    else {
        return Ok(portal.redirect_with_problem(
            &state,
            "",
            "There is no new address waiting for a code. Start Reissue Token again.",
        ));
    };
    let body = activation_verify_body(&portal, &visitor, &token, &destination, None);
    Ok(page(
        &state,
        &request,
        &portal,
        &visitor,
        "Reissue Token",
        false,
        body,
    ))
}

/// The code typed for a new address or number: right, the token moves there; wrong, a try is
/// used up, and with the last one the new address is forgotten.
async fn confirm_activation(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    typed: &str,
) -> Result<HttpResponse, PortalError> {
    let login = &visitor.user.login;
    crate::web::portal::limits::refuse_if_blocked(state, request, portal, login).await?;
    let now = crate::clock::now();
    let old = own_destination(token);
    let Some((destination, code)) = Pending::activation_of(state, visitor, token.id, now) else {
        return Ok(portal.redirect_with_problem(
            state,
            "",
            &format!(
                "The code has expired. Start Reissue Token again; the codes still go to {old}."
            ),
        ));
    };
    let mut entry = visitor.audit(portal, request, "portal.token_reissue", "rejected");
    entry.token_id = Some(token.id);
    entry.reason = Some("bad_code".into());
    let typed = code.check(&state.keys, typed);
    if !matches!(typed, Typed::Right) {
        crate::web::portal::limits::count_failure(state, request, portal, login).await?;
    }
    match typed {
        Typed::Right => {
            let mut entry = visitor.audit(portal, request, "portal.token_reissue", "ok");
            entry.token_id = Some(token.id);
            if !state
                .store
                .reissue_destination(
                    visitor.id_hash.clone(),
                    token.id,
                    destination.clone(),
                    now,
                    entry,
                )
                .await?
            {
                return Err(PortalError::NotFound);
            }
            Ok(portal.redirect_with_flash(
                state,
                "",
                &format!(
                    "{} is reissued: its codes go to {} from now on.",
                    crate::web::views::token_label(token),
                    destination
                ),
            ))
        }
        Typed::UsedUp => {
            pending::keep(state, visitor, None, None, now, entry).await?;
            Ok(portal.redirect_with_problem(
                state,
                "",
                &format!("Too many wrong codes: nothing was changed, the codes still go to {old}."),
            ))
        }
        Typed::Wrong(code) => {
            let pending = Pending::Activation {
                token_id: token.id,
                destination: destination.clone(),
                code,
            };
            pending::keep(state, visitor, Some(&pending), None, now, entry).await?;
            let body = activation_verify_body(
                portal,
                visitor,
                token,
                &destination,
                Some("The code is not right. Check it and try again."),
            );
            Ok(page(
                state,
                request,
                portal,
                visitor,
                "Reissue Token",
                true,
                body,
            ))
        }
    }
}

/// Whether the bot has bound a chat with the token's newest activation code (it is used up).
async fn reactivated(state: &AppState, token: &Token) -> Result<bool, PortalError> {
    let status = state
        .store
        .bot_activation_status(token.id)
        .await?
        .ok_or(PortalError::NotFound)?;
    Ok(status.state == "active" && status.code_expires_at.is_none())
}

/// `{"state": "active"}` once the bot has received the new activation code, for the script.
pub async fn reissue_status(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (_, _, token) =
        token_context(&state, &request, &path, None, PortalAction::ReissueToken).await?;
    let label = if reactivated(&state, &token).await? {
        "active"
    } else {
        "pending"
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "state": label })))
}

/// The Check button of a BOT token's new activation, for browsers without JavaScript: back to
/// the 2nd Factor section once the bot has it, otherwise the same question again. (Enrolment's
/// Check needs Enroll Token and takes every token that is not pending for done.)
pub async fn check_reissue(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) =
        token_context(&state, &request, &path, None, PortalAction::ReissueToken).await?;
    if token.kind != TokenKind::Bot {
        return Err(PortalError::NotFound);
    }
    if reactivated(&state, &token).await? {
        return Ok(portal.redirect_with_flash(
            &state,
            "",
            &format!(
                "{} is active: its codes go to the chat where you pressed Start.",
                crate::web::views::token_label(&token)
            ),
        ));
    }
    let base = portal.path(&format!("/tokens/{}/reissue", token.id));
    let body = html! {
        p #activation-status data-status-url={ (base) "/status" } data-done-url={ (base) "/check" } role="status" {
            "The bot has not received the code of " (crate::web::views::token_label(&token)) " yet. Open the link on your phone, press " strong { "Start" } " in the chat with the bot, then check again."
        }
        form.inline method="get" action={ (base) "/check" } { button type="submit" { "Check" } }
        @if can_reissue(&token) {
            form.inline method="post" action=(base) {
                (csrf_field(&visitor.csrf))
                button.link type="submit" { "Show a new QR code" }
            }
        }
        p { a href=(portal.path("")) { "Back" } }
    };
    Ok(page(
        &state,
        &request,
        &portal,
        &visitor,
        reissue_title(&token),
        false,
        body,
    ))
}
