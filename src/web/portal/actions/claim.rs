//! Assign Existing Token: an unassigned hardware token becomes the user's, claimed with the
//! serial printed on it and a code it shows now.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::page;
use crate::domain::{self, TokenKind, TokenState};
use crate::provision;
use crate::store::resources::PortalAction;
use crate::web::AppState;
use crate::web::form::{csrf_field, error_line};
use crate::web::portal::{Portal, PortalError, Visitor, refuse_unless_allowed, require_visitor};

fn claim_body(portal: &Portal, visitor: &Visitor, serial: &str, error: Option<&str>) -> Markup {
    html! {
        (error_line(error))
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
    let login = &visitor.user.login;
    crate::web::portal::limits::refuse_if_blocked(&state, &request, &portal, login).await?;
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
    // Only by serial, in any case: an id typed here must not find a token.
    let token = state
        .store
        .find_token_by_typed_serial(serial.clone())
        .await?;
    let claimable = token.filter(|token| {
        token.user_id.is_none()
            && token.enabled
            && token.state == TokenState::Active
            && matches!(token.kind, TokenKind::Totp | TokenKind::Hotp)
    });
    let mut entry = visitor.audit(&portal, &request, "portal.token_claim", "ok");
    let now = crate::clock::now();
    let found = match &claimable {
        Some(token) => provision::first_code(&state.keys, token, &form.code, now)?,
        None => None,
    };
    let (Some(token), Some(found)) = (claimable, found) else {
        entry.result = "rejected".into();
        entry.reason = Some("bad_serial_or_code".into());
        state.store.audit(entry).await?;
        crate::web::portal::limits::count_failure(&state, &request, &portal, login).await?;
        return Ok(refused(&serial));
    };
    entry.token_id = Some(token.id);
    entry.detail = Some(token.serial.clone());
    let serial = token.serial.clone();
    entry.notice = crate::web::portal::notify::notice(
        &state,
        &portal,
        &visitor.user,
        crate::notices::Change::TokenAdded {
            name: &token.name,
            kind: token.kind.as_str(),
        },
    )?;
    let claimed = state
        .store
        .claim_portal_token(
            token.id,
            visitor.user.id,
            portal.resource.id,
            found.step,
            now,
            entry,
        )
        .await?;
    if !claimed {
        return Ok(refused(&serial));
    }
    Ok(portal.redirect_with_flash(&state, "", &format!("The token {serial} is yours now.")))
}
