//! The further token actions of the 2nd Factor section, each only when the resource's Allowed
//! Actions permit it (checked again here, 403 and audited otherwise):
//!
//! - Set PIN / Remove PIN, with the PIN policy of the general settings;
//! - Token Synchronization: two consecutive codes, found by the same search the API and the
//!   admin panel use;
//! - Reissue Token: a new seed for an authenticator app, TOTP or HOTP (QR code, then its first
//!   code — the old seed works until then); a new activation for a MAIL or SMS token (a new
//!   address or number, confirmed by a code sent there — the old one gets the codes until
//!   then); or a new Telegram activation for a BOT token (the old chat gets the codes until the
//!   new one is activated). A BOT token that needs re-activation (Telegram refused its messages
//!   because the user blocked the bot) gets the same new activation, offered as Re-activate.
//!   Hardware tokens keep the seed in the device: never reissued;
//! - Assign Existing Token: an unassigned hardware token, claimed with its serial and a code
//!   it shows now.

use std::str::FromStr;

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::account::{Pending, refuse_unless_allowed};
use super::tokens::own_token;
use super::{Frame, Portal, PortalError, Visitor, csrf_field, form_error, require_visitor};
use crate::crypto::{self, Purpose};
use crate::delivery::bot;
use crate::domain::{self, TokenKind, TokenState};
use crate::otp;
use crate::store::Token;
use crate::store::portal::Message;
use crate::store::resources::PortalAction;
use crate::web::{AppState, views};

/// Wrong first codes of a reissued seed (or wrong codes for a new address) before it is
/// thrown away.
const REISSUE_TRIES: i64 = 3;
/// How long a reissued seed waits for its first code, and a new address for its code.
const REISSUE_SECONDS: i64 = 10 * 60;
/// How long before another code for a new address may be sent.
const RESEND_SECONDS: i64 = 30;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/portal/{address}/tokens/claim", web::get().to(show_claim))
        .route(
            "/portal/{address}/tokens/claim",
            web::post().to(submit_claim),
        )
        .route("/portal/{address}/tokens/{id}/pin", web::post().to(set_pin))
        .route(
            "/portal/{address}/tokens/{id}/pin/remove",
            web::post().to(remove_pin),
        )
        .route(
            "/portal/{address}/tokens/{id}/sync",
            web::get().to(show_sync),
        )
        .route(
            "/portal/{address}/tokens/{id}/sync",
            web::post().to(submit_sync),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue",
            web::get().to(show_reissue),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue",
            web::post().to(submit_reissue),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue/confirm",
            web::post().to(confirm_reissue),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue/verify",
            web::get().to(show_reissue_verify),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue/status",
            web::get().to(reissue_status),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue/check",
            web::get().to(check_reissue),
        );
}

/// Whether Token Synchronization applies to a token: codes from a seed.
pub fn can_sync(token: &Token) -> bool {
    matches!(token.kind, TokenKind::Totp | TokenKind::Hotp) && token.state == TokenState::Active
}

/// Whether Reissue Token applies: a new seed for an app (TOTP or HOTP), a new address for a
/// MAIL or SMS token, or a new Telegram activation, also for a BOT token that needs
/// re-activation; never for a hardware token.
pub fn can_reissue(token: &Token) -> bool {
    (token.state == TokenState::Active || needs_reactivation(token)) && !token.is_hardware()
}

/// A BOT token the bot cannot reach any more (the user blocked it): no codes go anywhere until
/// a new activation binds a chat again, so Reissue Token is offered as Re-activate.
pub fn needs_reactivation(token: &Token) -> bool {
    token.kind == TokenKind::Bot && token.state == TokenState::Reactivate
}

/// The title of Reissue Token's pages for this token.
fn reissue_title(token: &Token) -> &'static str {
    if needs_reactivation(token) {
        "Re-activate"
    } else {
        "Reissue Token"
    }
}

/// MAIL and SMS tokens are reissued by a new activation at a new (or the same) destination.
fn reissued_by_code(token: &Token) -> bool {
    matches!(token.kind, TokenKind::Mail | TokenKind::Sms)
}

/// The stored OTP parameters of a TOTP or HOTP token.
fn params_of(token: &Token) -> Result<otp::Params, PortalError> {
    let internal = |what: String| crate::web::PageError::Internal(anyhow::anyhow!(what));
    let algorithm = otp::Algorithm::from_str(&token.algorithm)
        .map_err(|e| internal(format!("token {}: {e}", token.id)))?;
    let kind = match token.kind {
        TokenKind::Hotp => otp::Kind::Hotp,
        _ => otp::Kind::Totp {
            period: token.period,
        },
    };
    otp::Params::new(algorithm, token.digits, kind)
        .map_err(|e| internal(format!("token {}: {e}", token.id)).into())
}

/// The moving factor of `code` for the token's parameters and `secret` (the stored seed, or a
/// reissued one), when it is a current code not used before.
pub fn matching_step(
    token: &Token,
    secret: &[u8],
    code: &str,
    last_used: Option<i64>,
    drift: i64,
) -> Result<Option<i64>, PortalError> {
    let params = params_of(token)?;
    let code = code.trim();
    if code.len() > 16 {
        return Ok(None);
    }
    let now = u64::try_from(crate::web::now()).unwrap_or(0);
    let last_used = last_used.and_then(|step| u64::try_from(step).ok());
    Ok(otp::verify(
        secret,
        &params,
        code,
        otp::Window::for_kind(params.kind),
        last_used,
        drift,
        now,
    )
    .and_then(|matched| i64::try_from(matched.step).ok()))
}

fn stored_secret(state: &AppState, token: &Token) -> Result<Vec<u8>, PortalError> {
    let sealed = token.secret.as_deref().ok_or_else(|| {
        crate::web::PageError::Internal(anyhow::anyhow!("token {} has no seed", token.id))
    })?;
    Ok(state.keys.open(Purpose::TokenSecret, sealed)?)
}

/// Opens the portal and the session, checks the CSRF token (for posts) and the Allowed Action,
/// and finds the user's token.
async fn token_context(
    state: &AppState,
    request: &HttpRequest,
    path: &(String, String),
    csrf: Option<&str>,
    action: PortalAction,
) -> Result<(Portal, Visitor, Token), PortalError> {
    let portal = Portal::open(state, &path.0).await?;
    let visitor = require_visitor(state, request, &portal).await?;
    if let Some(csrf) = csrf {
        visitor.check_csrf(csrf)?;
    }
    refuse_unless_allowed(state, request, &portal, &visitor, action).await?;
    let (token, _) = own_token(state, &portal, &visitor, &path.1).await?;
    Ok((portal, visitor, token))
}

fn page(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    visitor: &Visitor,
    title: &str,
    error: bool,
    body: Markup,
) -> HttpResponse {
    let status = if error {
        actix_web::http::StatusCode::BAD_REQUEST
    } else {
        actix_web::http::StatusCode::OK
    };
    Frame {
        portal,
        title,
        visitor: Some(visitor),
        flash: super::flash_of(request),
    }
    .render_with(state, status, body)
}

// ---- Set PIN / Remove PIN ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PinForm {
    csrf: String,
    pin: String,
    pin_position: String,
}

pub async fn set_pin(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<PinForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = token_context(
        &state,
        &request,
        &path,
        Some(&form.csrf),
        PortalAction::SetPin,
    )
    .await?;
    if let Err(error) = domain::check_pin(&form.pin, &portal.general.pin_policy()) {
        let message = format!("The PIN was not set: {}.", error.message);
        return Ok(portal.redirect_with_flash(&state, "", &message));
    }
    let position = if form.pin_position.trim().is_empty() {
        Ok("before".to_string())
    } else {
        domain::pin_position(&form.pin_position)
    };
    let Ok(position) = position else {
        return Ok(portal.redirect_with_flash(
            &state,
            "",
            "The PIN was not set: choose whether it goes before or after the code.",
        ));
    };
    let mut entry = visitor.audit(&portal, &request, "portal.token_set_pin", "ok");
    entry.token_id = Some(token.id);
    let changes = crate::store::tokens::TokenChanges {
        pin_hash: Some(Some(state.keys.pin_hash(&form.pin))),
        pin_position: Some(position.clone()),
        ..Default::default()
    };
    if state
        .store
        .update_token(token.id, changes, entry)
        .await?
        .is_err()
    {
        return Err(PortalError::NotFound);
    }
    let message = format!(
        "“{}” has a PIN now: type it {position} the code when you log in.",
        token.name
    );
    Ok(portal.redirect_with_flash(&state, "", &message))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn remove_pin(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = token_context(
        &state,
        &request,
        &path,
        Some(&form.csrf),
        PortalAction::RemovePin,
    )
    .await?;
    let mut entry = visitor.audit(&portal, &request, "portal.token_remove_pin", "ok");
    entry.token_id = Some(token.id);
    let changes = crate::store::tokens::TokenChanges {
        pin_hash: Some(None),
        ..Default::default()
    };
    if state
        .store
        .update_token(token.id, changes, entry)
        .await?
        .is_err()
    {
        return Err(PortalError::NotFound);
    }
    Ok(portal.redirect_with_flash(
        &state,
        "",
        &format!("“{}” has no PIN any more.", token.name),
    ))
}

// ---- Token Synchronization ----

fn sync_body(portal: &Portal, visitor: &Visitor, token: &Token, error: Option<&str>) -> Markup {
    html! {
        (form_error(error))
        p { "When “" (token.name) "” keeps being refused although you type its code right, its clock or counter has drifted. Type two codes it shows one after the other." }
        form.stack method="post" action=(portal.path(&format!("/tokens/{}/sync", token.id))) {
            (csrf_field(&visitor.csrf))
            label { "First code" input type="text" name="otp1" inputmode="numeric" autocomplete="off" required autofocus; }
            label { "Next code" small { "Wait until the token shows a new code." }
                input type="text" name="otp2" inputmode="numeric" autocomplete="off" required; }
            div.buttons { button type="submit" { "Synchronize" } a href=(portal.path("")) { "Back" } }
        }
    }
}

pub async fn show_sync(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = token_context(
        &state,
        &request,
        &path,
        None,
        PortalAction::TokenSynchronization,
    )
    .await?;
    if !can_sync(&token) {
        return Err(PortalError::NotFound);
    }
    let body = sync_body(&portal, &visitor, &token, None);
    Ok(page(
        &state,
        &request,
        &portal,
        &visitor,
        "Token Synchronization",
        false,
        body,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SyncForm {
    csrf: String,
    otp1: String,
    otp2: String,
}

pub async fn submit_sync(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<SyncForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token) = token_context(
        &state,
        &request,
        &path,
        Some(&form.csrf),
        PortalAction::TokenSynchronization,
    )
    .await?;
    if !can_sync(&token) {
        return Err(PortalError::NotFound);
    }
    super::login::throttle(&state, &request, &portal, &visitor.user.login)?;
    let refused = |message: &str| {
        let body = sync_body(&portal, &visitor, &token, Some(message));
        page(
            &state,
            &request,
            &portal,
            &visitor,
            "Token Synchronization",
            true,
            body,
        )
    };
    let found = crate::web::api::tokens::find_resync(&state, &token, &form.otp1, &form.otp2).await;
    let (step, drift) = match found {
        Ok(found) => found,
        Err(crate::web::api::ApiError::Internal(error)) => {
            return Err(crate::web::PageError::Internal(error).into());
        }
        Err(_) => {
            let mut entry = visitor.audit(&portal, &request, "portal.token_resync", "rejected");
            entry.token_id = Some(token.id);
            entry.reason = Some("codes_not_found".into());
            state.store.audit(entry).await?;
            return Ok(refused(
                "These two codes were not found one after the other. Type two new codes, in the order the token shows them.",
            ));
        }
    };
    let mut entry = visitor.audit(&portal, &request, "portal.token_resync", "ok");
    entry.token_id = Some(token.id);
    if state
        .store
        .resync_token(token.id, step, drift, entry)
        .await?
        .is_err()
    {
        return Ok(refused(
            "A newer code of this token was used meanwhile. Type two new codes.",
        ));
    }
    Ok(portal.redirect_with_flash(&state, "", &format!("“{}” is synchronized.", token.name)))
}

// ---- Reissue Token ----

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
        (form_error(error))
        @match token.kind {
            TokenKind::Bot if needs_reactivation(token) => {
                p { "Telegram told us that you blocked the bot or deleted the chat with it, so “" (token.name) "” gets no codes now. To use it again, open the bot again: press Next, then open the link on your phone and press " strong { "Start" } "." }
            }
            TokenKind::Bot => {
                p { "Moving to a new phone or a new Telegram account? Activate “" (token.name) "” again there. Until you do, the codes keep going to the chat you use now." }
            }
            TokenKind::Mail => {
                p { "Want the codes of “" (token.name) "” at another email address? Give it here; we send a code there. Until you type it, the codes keep going to " strong { (super::login::destination_label(token)) } "." }
            }
            TokenKind::Sms => {
                p { "Got a new phone number? Give it here; we send a code there by SMS. Until you type it, the codes of “" (token.name) "” keep going to " strong { (super::login::destination_label(token)) } "." }
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
    let params = params_of(token)?;
    let uri = otp::otpauth_uri(
        secret,
        &params,
        &state.issuer,
        &format!("{}@{}", visitor.user.login, portal.resource.name),
        0,
    );
    Ok(html! {
        (form_error(error))
        p { "Scan this QR code with your authenticator app." }
        (views::qr_image(&uri, "QR code of the reissued token for an authenticator app"))
        p.note { "No camera? Type this key into the app instead:" }
        code.secret { (otp::encode_secret(secret)) }
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
    let now = crate::web::now();
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
            return Ok(portal.redirect_with_flash(
                &state,
                "",
                "The Telegram bot is not available right now. Try again later or ask your administrator.",
            ));
        }
        let (code, hash) = bot::new_activation_code()?;
        let issued = state
            .store
            .issue_bot_activation(token.id, hash, now + bot::ACTIVATION_SECONDS, now, entry)
            .await?;
        if issued.is_err() {
            return Err(PortalError::NotFound);
        }
        let base = portal.path(&format!("/tokens/{}/reissue", token.id));
        return Ok(super::enrol::bot_page(
            &state,
            &portal,
            &visitor,
            &code,
            &format!("{base}/status"),
            &format!("{base}/check"),
        ));
    }
    let secret = crypto::random_bytes::<20>()?.to_vec();
    let pending = Pending::Reissue {
        token_id: token.id,
        secret: secret.clone(),
        tries_left: REISSUE_TRIES,
        expires_at: now + REISSUE_SECONDS,
    };
    state
        .store
        .set_portal_pending(
            visitor.id_hash.clone(),
            Some(pending.seal(&state)?),
            None,
            now,
            Some(entry),
        )
        .await?;
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    csrf: String,
    code: String,
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
    let now = crate::web::now();
    let Some(Pending::Reissue {
        token_id,
        secret,
        tries_left,
        expires_at,
    }) = Pending::of(&state, &visitor, now).filter(
        |pending| matches!(pending, Pending::Reissue { token_id, .. } if *token_id == token.id),
    )
    else {
        return Ok(portal.redirect_with_flash(
            &state,
            "",
            "The new QR code has expired. Start Reissue Token again; your old entry still works.",
        ));
    };
    let mut entry = visitor.audit(&portal, &request, "portal.token_reissue", "ok");
    entry.token_id = Some(token.id);
    if let Some(step) = matching_step(&token, &secret, &form.code, None, 0)? {
        let sealed = state.keys.seal(Purpose::TokenSecret, &secret)?;
        if state
            .store
            .reissue_seed(visitor.id_hash.clone(), token.id, sealed, step, now, entry)
            .await?
        {
            return Ok(portal.redirect_with_flash(
                &state,
                "",
                &format!(
                    "“{}” is reissued: use the new entry in your app from now on.",
                    token.name
                ),
            ));
        }
        return Err(PortalError::NotFound);
    }
    entry.result = "rejected".into();
    entry.reason = Some("bad_code".into());
    let left = tries_left - 1;
    if left <= 0 {
        state
            .store
            .set_portal_pending(visitor.id_hash.clone(), None, None, now, Some(entry))
            .await?;
        return Ok(portal.redirect_with_flash(
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
    state
        .store
        .set_portal_pending(
            visitor.id_hash.clone(),
            Some(pending.seal(&state)?),
            None,
            now,
            Some(entry),
        )
        .await?;
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

// ---- Reissue Token: a new activation of a MAIL or SMS token ----

/// A code for the new address or number of a MAIL or SMS token, and the message that carries
/// it there; the code has the token's length, like the codes it will receive.
fn activation_code(
    state: &AppState,
    portal: &Portal,
    token: &Token,
    destination: &str,
    now: i64,
) -> Result<(Vec<u8>, Message), PortalError> {
    let random = crypto::random_bytes::<64>()?;
    let code = otp::numeric_code(&random, token.digits)
        .ok_or_else(|| crate::web::PageError::Internal(anyhow::anyhow!("no code")))?;
    let (channel, what) = if token.kind == TokenKind::Sms {
        ("sms", "phone number")
    } else {
        ("mail", "email address")
    };
    let body = format!(
        "{code} is the code that confirms the new {what} of your second factor \"{}\" for {}. \
         It is valid for {} minutes. If you did not ask for it, tell your administrator.",
        token.name,
        portal.resource.name,
        REISSUE_SECONDS / 60
    );
    Ok((
        state.keys.code_hash(&code),
        Message {
            channel,
            recipient: destination.to_string(),
            subject: format!(
                "Confirm the new {what} of your second factor for {}",
                portal.resource.name
            ),
            sealed_body: state.keys.seal(Purpose::Message, body.as_bytes())?,
            expires_at: now + REISSUE_SECONDS,
        },
    ))
}

/// The live pending activation of this token, if the session has one.
fn pending_activation(state: &AppState, visitor: &Visitor, token: &Token) -> Option<Pending> {
    Pending::of(state, visitor, crate::web::now()).filter(
        |pending| matches!(pending, Pending::Activation { token_id, .. } if *token_id == token.id),
    )
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
    let now = crate::web::now();
    if let Some(Pending::Activation { sent_at, .. }) = pending_activation(state, visitor, token)
        && now - sent_at < RESEND_SECONDS
    {
        return Ok(portal.redirect_with_flash(
            state,
            &verify,
            "A code was sent a moment ago. Wait half a minute before asking for another.",
        ));
    }
    let (code_hash, message) = activation_code(state, portal, token, &destination, now)?;
    let pending = Pending::Activation {
        token_id: token.id,
        destination,
        code_hash,
        tries_left: REISSUE_TRIES,
        sent_at: now,
        expires_at: now + REISSUE_SECONDS,
    };
    let mut entry = visitor.audit(portal, request, "portal.token_reissue", "code_sent");
    entry.token_id = Some(token.id);
    state
        .store
        .set_portal_pending(
            visitor.id_hash.clone(),
            Some(pending.seal(state)?),
            Some(message),
            now,
            Some(entry),
        )
        .await?;
    state.delivery.wake();
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
        (form_error(error))
        p { "Type the code we sent to " strong { (destination) } ". Until then, the codes of “" (token.name) "” keep going to " (super::login::destination_label(token)) "." }
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
    let Some(Pending::Activation { destination, .. }) =
        pending_activation(&state, &visitor, &token)
    else {
        return Ok(portal.redirect_with_flash(
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
    super::login::throttle(state, request, portal, &visitor.user.login)?;
    let now = crate::web::now();
    let old = super::login::destination_label(token);
    let Some(Pending::Activation {
        token_id,
        destination,
        code_hash,
        tries_left,
        sent_at,
        expires_at,
    }) = pending_activation(state, visitor, token)
    else {
        return Ok(portal.redirect_with_flash(
            state,
            "",
            &format!(
                "The code has expired. Start Reissue Token again; the codes still go to {old}."
            ),
        ));
    };
    let typed = typed.trim();
    let mut entry = visitor.audit(portal, request, "portal.token_reissue", "ok");
    entry.token_id = Some(token.id);
    if typed.len() <= 16 && crypto::constant_time_eq(&state.keys.code_hash(typed), &code_hash) {
        if state
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
            return Ok(portal.redirect_with_flash(
                state,
                "",
                &format!(
                    "“{}” is reissued: its codes go to {} from now on.",
                    token.name,
                    domain::mask_destination(&destination)
                ),
            ));
        }
        return Err(PortalError::NotFound);
    }
    entry.result = "rejected".into();
    entry.reason = Some("bad_code".into());
    let left = tries_left - 1;
    if left <= 0 {
        state
            .store
            .set_portal_pending(visitor.id_hash.clone(), None, None, now, Some(entry))
            .await?;
        return Ok(portal.redirect_with_flash(
            state,
            "",
            &format!("Too many wrong codes: nothing was changed, the codes still go to {old}."),
        ));
    }
    let pending = Pending::Activation {
        token_id,
        destination: destination.clone(),
        code_hash,
        tries_left: left,
        sent_at,
        expires_at,
    };
    state
        .store
        .set_portal_pending(
            visitor.id_hash.clone(),
            Some(pending.seal(state)?),
            None,
            now,
            Some(entry),
        )
        .await?;
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
                "“{}” is active: its codes go to the chat where you pressed Start.",
                token.name
            ),
        ));
    }
    let base = portal.path(&format!("/tokens/{}/reissue", token.id));
    let body = html! {
        p #activation-status data-status-url={ (base) "/status" } data-done-url=(portal.path("")) role="status" {
            "The bot has not received the code of “" (token.name) "” yet. Open the link on your phone, press " strong { "Start" } " in the chat with the bot, then check again."
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

// ---- Assign Existing Token ----

fn claim_body(portal: &Portal, visitor: &Visitor, serial: &str, error: Option<&str>) -> Markup {
    html! {
        (form_error(error))
        p { "Have you been handed a hardware token? Type the serial number printed on its back and the code it shows now." }
        form.stack method="post" action=(portal.path("/tokens/claim")) {
            (csrf_field(&visitor.csrf))
            label { "Serial number" input type="text" name="serial" value=(serial) maxlength="128" required autofocus; }
            label { "Code shown by the token" input type="text" name="code" inputmode="numeric" autocomplete="off" required; }
            div.buttons { button type="submit" { "Save" } a href=(portal.path("")) { "Back" } }
        }
    }
}

async fn claim_context(
    state: &AppState,
    request: &HttpRequest,
    address: &str,
    csrf: Option<&str>,
) -> Result<(Portal, Visitor), PortalError> {
    let portal = Portal::open(state, address).await?;
    let visitor = require_visitor(state, request, &portal).await?;
    if let Some(csrf) = csrf {
        visitor.check_csrf(csrf)?;
    }
    refuse_unless_allowed(
        state,
        request,
        &portal,
        &visitor,
        PortalAction::AssignExistingToken,
    )
    .await?;
    Ok((portal, visitor))
}

pub async fn show_claim(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor) = claim_context(&state, &request, &path, None).await?;
    let body = claim_body(&portal, &visitor, "", None);
    Ok(page(
        &state,
        &request,
        &portal,
        &visitor,
        "Assign Existing Token",
        false,
        body,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClaimForm {
    csrf: String,
    serial: String,
    code: String,
}

const CLAIM_FAILED: &str = "The serial number or the code is not right, or this token is not free. Check both and try again.";

pub async fn submit_claim(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ClaimForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor) = claim_context(&state, &request, &path, Some(&form.csrf)).await?;
    super::login::throttle(&state, &request, &portal, &visitor.user.login)?;
    let refused = |serial: &str| {
        let body = claim_body(&portal, &visitor, serial, Some(CLAIM_FAILED));
        page(
            &state,
            &request,
            &portal,
            &visitor,
            "Assign Existing Token",
            true,
            body,
        )
    };
    let Ok(serial) = domain::token_serial(&form.serial) else {
        return Ok(refused(""));
    };
    // Only by serial: an id typed here must not find a token.
    let token = state
        .store
        .find_token(serial.clone())
        .await?
        .filter(|token| token.serial == serial);
    let claimable = token.filter(|token| {
        token.user_id.is_none()
            && token.enabled
            && token.state == TokenState::Active
            && matches!(token.kind, TokenKind::Totp | TokenKind::Hotp)
    });
    let mut entry = visitor.audit(&portal, &request, "portal.token_claim", "ok");
    let step = match &claimable {
        Some(token) => {
            let secret = stored_secret(&state, token)?;
            matching_step(token, &secret, &form.code, token.last_step, token.drift)?
        }
        None => None,
    };
    let (Some(token), Some(step)) = (claimable, step) else {
        entry.result = "rejected".into();
        entry.reason = Some("bad_serial_or_code".into());
        state.store.audit(entry).await?;
        return Ok(refused(&serial));
    };
    entry.token_id = Some(token.id);
    entry.detail = Some(serial.clone());
    let claimed = state
        .store
        .claim_portal_token(
            token.id,
            visitor.user.id,
            portal.resource.id,
            step,
            crate::web::now(),
            entry,
        )
        .await?;
    if !claimed {
        return Ok(refused(&serial));
    }
    Ok(portal.redirect_with_flash(&state, "", &format!("The token {serial} is yours now.")))
}
