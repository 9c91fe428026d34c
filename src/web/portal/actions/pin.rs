//! Set PIN and Remove PIN, with the PIN policy of the general settings.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::token_context;
use crate::domain::{Refused, RuleError};
use crate::provision::{self, TokenUpdate};
use crate::store::resources::PortalAction;
use crate::web::AppState;
use crate::web::form::{CsrfForm, Problems};
use crate::web::portal::PortalError;

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
    let position = match form.pin_position.trim() {
        "" => "before".to_string(),
        typed => typed.to_string(),
    };
    let update = TokenUpdate {
        pin: Some(Some(form.pin.clone())),
        pin_position: Some(position),
        ..TokenUpdate::default()
    };
    let changes =
        match provision::changes(&state.keys, &token, &update, &portal.general.pin_policy()) {
            Ok(changes) => changes,
            Err(Refused::Field(error)) if error.field == "pin_position" => {
                return Ok(portal.redirect_with_problem(
                    &state,
                    "",
                    "The PIN was not set: choose whether it goes before or after the code.",
                ));
            }
            Err(refused) => {
                let problems = Problems::of(RuleError::from(refused))?;
                let message = format!(
                    "The PIN was not set: {}.",
                    problems.first().unwrap_or("it does not fit the PIN rule")
                );
                return Ok(portal.redirect_with_problem(&state, "", &message));
            }
        };
    let position = changes
        .pin_position
        .map_or("before", |position| position.as_str());
    let mut entry = visitor.audit(&portal, &request, "portal.token_set_pin", "ok");
    entry.token_id = Some(token.id);
    state.store.update_token(token.id, changes, entry).await??;
    let message = format!(
        "{} has a PIN now: type it {position} the code when you log in.",
        crate::web::views::token_label(&token)
    );
    Ok(portal.redirect_with_flash(&state, "", &message))
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
    let update = TokenUpdate {
        pin: Some(None),
        ..TokenUpdate::default()
    };
    let changes = provision::changes(&state.keys, &token, &update, &portal.general.pin_policy())?;
    state.store.update_token(token.id, changes, entry).await??;
    Ok(portal.redirect_with_flash(
        &state,
        "",
        &format!(
            "{} has no PIN any more.",
            crate::web::views::token_label(&token)
        ),
    ))
}
