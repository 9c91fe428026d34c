//! Token Synchronization: two codes the token shows one after the other tell where its clock
//! or counter stands, found by the same search as in the API and the admin panel.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{page, token_context};
use crate::domain::RuleError;
use crate::provision::{self, reissue::can_sync};
use crate::store::Token;
use crate::store::resources::PortalAction;
use crate::web::AppState;
use crate::web::form::{csrf_field, error_line};
use crate::web::portal::{Portal, PortalError, Visitor};

fn sync_body(portal: &Portal, visitor: &Visitor, token: &Token, error: Option<&str>) -> Markup {
    html! {
        (error_line(error))
        p { "When " (crate::web::views::token_label(token)) " keeps being refused although you type its code right, its clock or counter has drifted. Type two codes it shows one after the other." }
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
    let login = &visitor.user.login;
    crate::web::portal::limits::refuse_if_blocked(&state, &request, &portal, login).await?;
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
    let found = provision::resync(
        state.keys.clone(),
        &token,
        &form.otp1,
        &form.otp2,
        state.config.auth.resync_search,
        crate::clock::now(),
    )
    .await;
    let found = match found {
        Ok(found) => found,
        Err(RuleError::Failed(error)) => return Err(crate::web::PageError::Internal(error).into()),
        Err(RuleError::Busy(busy)) => return Err(crate::web::PageError::Busy(busy).into()),
        Err(RuleError::Refused(_)) => {
            let mut entry = visitor.audit(&portal, &request, "portal.token_resync", "rejected");
            entry.token_id = Some(token.id);
            entry.reason = Some("codes_not_found".into());
            state.store.audit(entry).await?;
            crate::web::portal::limits::count_failure(&state, &request, &portal, login).await?;
            return Ok(refused(
                "These two codes were not found one after the other. Type two new codes, in the order the token shows them.",
            ));
        }
    };
    let mut entry = visitor.audit(&portal, &request, "portal.token_resync", "ok");
    entry.token_id = Some(token.id);
    if state
        .store
        .resync_token(token.id, found.step, found.drift, entry)
        .await?
        .is_err()
    {
        return Ok(refused(
            "A newer code of this token was used meanwhile. Type two new codes.",
        ));
    }
    Ok(portal.redirect_with_flash(
        &state,
        "",
        &format!(
            "{} is synchronized.",
            crate::web::views::token_label(&token)
        ),
    ))
}
