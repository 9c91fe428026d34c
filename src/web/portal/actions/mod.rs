//! The further token actions of the 2nd Factor section, each only when the resource's Allowed
//! Actions permit it (checked again here, 403 and audited otherwise), one file each:
//!
//! - `pin`: Set PIN / Remove PIN, with the PIN policy of the general settings;
//! - `sync`: Token Synchronization: two consecutive codes, found by the same search the API and the
//!   admin panel use;
//! - `reissue`: Reissue Token: a new seed for an authenticator app, TOTP or HOTP (QR code, then its first
//!   code — the old seed works until then); a new activation for a MAIL or SMS token (a new
//!   address or number, confirmed by a code sent there — the old one gets the codes until
//!   then); or a new Telegram activation for a BOT token (the old chat gets the codes until the
//!   new one is activated). A BOT token that needs re-activation (Telegram refused its messages
//!   because the user blocked the bot) gets the same new activation, offered as Re-activate.
//!   Hardware tokens keep the seed in the device: never reissued;
//! - `claim`: Assign Existing Token: an unassigned hardware token, claimed with its serial and a code
//!   it shows now.

mod claim;
mod pin;
mod reissue;
mod sync;

use actix_web::{HttpRequest, HttpResponse, web};
use maud::Markup;

use super::tokens::own_token;
use super::{Frame, Portal, PortalError, Visitor, refuse_unless_allowed, require_visitor};
use crate::store::Token;
use crate::store::resources::PortalAction;
use crate::web::AppState;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/portal/{address}/tokens/claim",
            web::get().to(claim::show_claim),
        )
        .route(
            "/portal/{address}/tokens/claim",
            web::post().to(claim::submit_claim),
        )
        .route(
            "/portal/{address}/tokens/{id}/pin",
            web::post().to(pin::set_pin),
        )
        .route(
            "/portal/{address}/tokens/{id}/pin/remove",
            web::post().to(pin::remove_pin),
        )
        .route(
            "/portal/{address}/tokens/{id}/sync",
            web::get().to(sync::show_sync),
        )
        .route(
            "/portal/{address}/tokens/{id}/sync",
            web::post().to(sync::submit_sync),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue",
            web::get().to(reissue::show_reissue),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue",
            web::post().to(reissue::submit_reissue),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue/confirm",
            web::post().to(reissue::confirm_reissue),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue/verify",
            web::get().to(reissue::show_reissue_verify),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue/status",
            web::get().to(reissue::reissue_status),
        )
        .route(
            "/portal/{address}/tokens/{id}/reissue/check",
            web::get().to(reissue::check_reissue),
        );
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
        flash: portal.flash_of(state, request),
    }
    .render_with(state, status, body)
}
