//! The 2nd Factor section: the user's tokens within the resource, with only the actions the
//! resource's Allowed Actions permit, and those actions (each checked again here).

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::login::own_destination;
use super::{Frame, Portal, PortalError, Visitor, require_visitor};
use crate::domain::IdOrName;
use crate::domain::TokenState;
use crate::provision;
use crate::store::Token;
use crate::store::resources::PortalAction;
use crate::web::AppState;
use crate::web::form::{csrf_field, post_button};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/portal/{address}/tokens/{id}/rename",
            web::post().to(rename_token),
        )
        .route(
            "/portal/{address}/tokens/{id}/enable",
            web::post().to(enable_token),
        )
        .route(
            "/portal/{address}/tokens/{id}/disable",
            web::post().to(disable_token),
        )
        .route(
            "/portal/{address}/tokens/{id}/unassign",
            web::post().to(unassign_token),
        );
}

/// The state as the user reads it.
fn state_label(token: &Token, now: i64, auto_unlock: Option<i64>) -> &'static str {
    let locked = token.is_locked(auto_unlock, now);
    match token.state {
        TokenState::Pending => "Pending activation",
        TokenState::Reactivate => "Needs re-activation",
        TokenState::Active if !token.enabled => "Disabled",
        TokenState::Active if locked => "Locked",
        TokenState::Active => "Active",
    }
}

fn token_row(portal: &Portal, visitor: &Visitor, token: &Token, now: i64) -> Markup {
    let allows = |action| portal.settings.allows(action);
    let base = portal.path(&format!("/tokens/{}", token.id));
    let pins = portal.general.pin_policy();
    html! {
        tr {
            td data-label="Name" { (token.name) }
            td data-label="Type" { (token.kind.as_str()) }
            td data-label="Sent to" { (own_destination(token)) }
            td.state data-label="State" { (state_label(token, now, portal.resource.auto_unlock_seconds)) }
            td data-label="Last used" { @match token.last_used_at { Some(at) => { (crate::web::views::format_time(at)) " UTC" } None => { "Never" } } }
            td.actions {
                @if token.state == TokenState::Pending && allows(PortalAction::EnrollToken) {
                    a.button href={ (base) "/activate" } { "Activate" }
                }
                @if allows(PortalAction::RenameToken) {
                    form.inline method="post" action={ (base) "/rename" } {
                        (csrf_field(&visitor.csrf))
                        label.compact { span.visually-hidden { "New name" } input type="text" name="name" value=(token.name) required maxlength="100"; }
                        button type="submit" { "Rename" }
                    }
                }
                @if allows(PortalAction::EnableDisableToken) && token.state == TokenState::Active {
                    @if token.enabled {
                        (post_button(&visitor.csrf, &format!("{base}/disable"), "Disable", ""))
                    } @else {
                        (post_button(&visitor.csrf, &format!("{base}/enable"), "Enable", ""))
                    }
                }
                @if allows(PortalAction::UnassignToken) {
                    (post_button(&visitor.csrf, &format!("{base}/unassign"), "Unassign", ""))
                }
                @if allows(PortalAction::SetPin) {
                    form.inline method="post" action={ (base) "/pin" } {
                        (csrf_field(&visitor.csrf))
                        label.compact { span.visually-hidden { "New PIN" }
                            @if pins.digits_only {
                                input type="password" name="pin" placeholder="PIN" autocomplete="new-password" required inputmode="numeric" pattern="[0-9]*" minlength=(pins.min_length) maxlength=(pins.max_length);
                            } @else {
                                input type="password" name="pin" placeholder="PIN" autocomplete="new-password" required minlength=(pins.min_length) maxlength=(pins.max_length);
                            }
                        }
                        label.compact { span.visually-hidden { "Where the PIN goes" }
                            select name="pin_position" { option value="before" { "before the code" } option value="after" { "after the code" } } }
                        button type="submit" { @if token.pin_hash.is_some() { "Change PIN" } @else { "Set PIN" } }
                        small.pin-rule { "A PIN has " (pins.describe()) "." }
                    }
                }
                @if allows(PortalAction::RemovePin) && token.pin_hash.is_some() {
                    (post_button(&visitor.csrf, &format!("{base}/pin/remove"), "Remove PIN", ""))
                }
                @if allows(PortalAction::TokenSynchronization) && provision::reissue::can_sync(token) {
                    a.button href={ (base) "/sync" } { "Synchronize" }
                }
                @if allows(PortalAction::ReissueToken) && provision::reissue::can_reissue(token) {
                    @if provision::reissue::needs_reactivation(token) {
                        a.button href={ (base) "/reissue" } { "Re-activate" }
                        p.note { "The bot cannot send you codes any more. Press Re-activate and open the bot again." }
                    } @else {
                        a.button href={ (base) "/reissue" } { "Reissue" }
                    }
                }
            }
        }
    }
}

pub async fn show_home(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let visitor = match require_visitor(&state, &request, &portal).await {
        Ok(visitor) => visitor,
        Err(PortalError::LoginRequired(_)) => {
            return super::login::show_login(&state, &request, &portal, None).await;
        }
        Err(other) => return Err(other),
    };
    let tokens = state
        .store
        .portal_tokens(visitor.user.id, portal.resource.id)
        .await?;
    let now = crate::clock::now();
    let can_enrol = portal.settings.allows(PortalAction::EnrollToken)
        && !portal.settings.enrollment_kinds.is_empty();
    let body = html! {
        section aria-labelledby="second-factor" {
            h2 #second-factor { "2nd Factor" }
            @if tokens.is_empty() {
                p { "You have no second factor for " (portal.resource.name) " yet." }
            } @else {
                div.table-wrap {
                    table.portal-tokens {
                        thead { tr { th { "Name" } th { "Type" } th { "Sent to" } th { "State" } th { "Last used" } th { "Actions" } } }
                        tbody { @for token in &tokens { (token_row(&portal, &visitor, token, now)) } }
                    }
                }
            }
            @if can_enrol || portal.settings.allows(PortalAction::AssignExistingToken) {
                p.buttons {
                    @if can_enrol { a.button href=(portal.path("/tokens/new")) { "Assign New" } }
                    @if portal.settings.allows(PortalAction::AssignExistingToken) {
                        " " a.button href=(portal.path("/tokens/claim")) { "Assign Existing Token" }
                    }
                }
            }
        }
        @if super::account::any_user_action(&portal) {
            p { a href=(portal.path("/account")) { "Your details" } " — your name, password, email address and phone number." }
        }
    };
    let frame = Frame {
        portal: &portal,
        title: "Your second factors",
        visitor: Some(&visitor),
        flash: portal.flash_of(&state, &request),
    };
    Ok(frame.render(&state, body))
}

/// The user's token in this resource named by the address, or 404.
pub async fn own_token(
    state: &AppState,
    portal: &Portal,
    visitor: &Visitor,
    id: &str,
) -> Result<(Token, Vec<Token>), PortalError> {
    let id: i64 = id.trim().parse().map_err(|_| PortalError::NotFound)?;
    let tokens = state
        .store
        .portal_tokens(visitor.user.id, portal.resource.id)
        .await?;
    let token = tokens
        .iter()
        .find(|t| t.id == id)
        .cloned()
        .ok_or(PortalError::NotFound)?;
    Ok((token, tokens))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActionForm {
    csrf: String,
    name: String,
    /// `yes` once the user confirmed taking away their last second factor.
    confirm: String,
}

/// Opens the portal and the session, checks the CSRF token and the Allowed Action, and finds
/// the user's token.
async fn action_context(
    state: &AppState,
    request: &HttpRequest,
    path: &(String, String),
    csrf: &str,
    action: PortalAction,
) -> Result<(Portal, Visitor, Token, Vec<Token>), PortalError> {
    let portal = Portal::open(state, &path.0).await?;
    let visitor = require_visitor(state, request, &portal).await?;
    visitor.check_csrf(csrf)?;
    if let Err(refused) = portal.require(action) {
        let mut entry = visitor.audit(&portal, request, "portal.forbidden", "refused");
        entry.detail = Some(action.as_str().to_string());
        state.store.audit(entry).await?;
        return Err(refused);
    }
    let (token, tokens) = own_token(state, &portal, &visitor, &path.1).await?;
    Ok((portal, visitor, token, tokens))
}

pub async fn rename_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token, _) = action_context(
        &state,
        &request,
        &path,
        &form.csrf,
        PortalAction::RenameToken,
    )
    .await?;
    let name = match crate::domain::token_name(&form.name) {
        Ok(name) if !name.is_empty() => name,
        Ok(_) => {
            return Ok(portal.redirect_with_flash(&state, "", "Give the token a name."));
        }
        Err(error) => {
            return Ok(portal.redirect_with_flash(
                &state,
                "",
                &format!("The name was not changed: {}.", error.message),
            ));
        }
    };
    let mut entry = visitor.audit(&portal, &request, "portal.token_rename", "ok");
    entry.token_id = Some(token.id);
    entry.detail = Some(format!("{} → {name}", token.name));
    let outcome = state
        .store
        .rename_portal_token(token.id, name.clone(), crate::clock::now(), entry)
        .await?;
    if outcome.is_err() {
        return Err(PortalError::NotFound);
    }
    Ok(portal.redirect_with_flash(&state, "", &format!("The token is now called “{name}”.")))
}

async fn set_enabled(
    state: &AppState,
    request: &HttpRequest,
    path: &(String, String),
    form: &ActionForm,
    enabled: bool,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token, tokens) = action_context(
        state,
        request,
        path,
        &form.csrf,
        PortalAction::EnableDisableToken,
    )
    .await?;
    let last = !enabled && is_last_usable(&token, &tokens);
    if last
        && let Some(refusal) =
            last_factor_check(state, &portal, &visitor, &token, form, Removal::Disable)
    {
        return Ok(refusal);
    }
    let action = if enabled {
        "portal.token_enable"
    } else {
        "portal.token_disable"
    };
    let mut entry = visitor.audit(&portal, request, action, "ok");
    entry.token_id = Some(token.id);
    if last {
        entry.detail = Some(LAST_DETAIL.into());
    }
    let outcome = state
        .store
        .set_token_enabled(IdOrName::Id(token.id), enabled, entry)
        .await?;
    if outcome.is_err() {
        return Err(PortalError::NotFound);
    }
    let message = if enabled {
        format!("{} is enabled.", crate::web::views::token_label(&token))
    } else {
        format!(
            "{} is disabled: it is not asked for until you enable it again.",
            crate::web::views::token_label(&token)
        )
    };
    Ok(portal.redirect_with_flash(state, "", &message))
}

const LAST_TOKEN: &str = "This is your last active second factor here: without it you could not log in any more. Add another one first.";
/// The audit detail of taking away a user's last second factor.
const LAST_DETAIL: &str = "last second factor";

/// Whether taking this token away would leave the user without a usable second factor here.
fn is_last_usable(token: &Token, tokens: &[Token]) -> bool {
    let usable = |t: &Token| t.enabled && t.state == TokenState::Active;
    usable(token) && tokens.iter().filter(|t| usable(t)).count() == 1
}

/// The two ways of taking a token away.
#[derive(Clone, Copy)]
enum Removal {
    Disable,
    Unassign,
}

/// For the user's last second factor: a refusal when the resource does not let users remove
/// it, the confirmation page when it does and the user has not confirmed yet, or None to go on.
fn last_factor_check(
    state: &AppState,
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    form: &ActionForm,
    removal: Removal,
) -> Option<HttpResponse> {
    if !portal.settings.allow_remove_last {
        return Some(portal.redirect_with_flash(state, "", LAST_TOKEN));
    }
    if form.confirm == "yes" {
        return None;
    }
    let (verb, title, button) = match removal {
        Removal::Disable => (
            "disable",
            "Disable your last second factor?",
            "Disable it anyway",
        ),
        Removal::Unassign => (
            "unassign",
            "Unassign your last second factor?",
            "Unassign it anyway",
        ),
    };
    let body = html! {
        p { (crate::web::views::token_label(token)) " is your last active second factor for " strong { (portal.resource.name) } "." }
        p { strong { "If you " (verb) " it, you will log in to " (portal.resource.name) " without a second factor" } " — nobody will ask you for a one-time password — until you add a new one." }
        form.stack method="post" action=(portal.path(&format!("/tokens/{}/{verb}", token.id))) {
            (csrf_field(&visitor.csrf))
            input type="hidden" name="confirm" value="yes";
            div.buttons { button.danger type="submit" { (button) } a href=(portal.path("")) { "Keep it" } }
        }
    };
    Some(
        Frame {
            portal,
            title,
            visitor: Some(visitor),
            flash: None,
        }
        .render(state, body),
    )
}

pub async fn enable_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PortalError> {
    set_enabled(&state, &request, &path, &form, true).await
}

pub async fn disable_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PortalError> {
    set_enabled(&state, &request, &path, &form, false).await
}

pub async fn unassign_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor, token, tokens) = action_context(
        &state,
        &request,
        &path,
        &form.csrf,
        PortalAction::UnassignToken,
    )
    .await?;
    let last = is_last_usable(&token, &tokens);
    if last
        && let Some(refusal) =
            last_factor_check(&state, &portal, &visitor, &token, &form, Removal::Unassign)
    {
        return Ok(refusal);
    }
    let mut entry = visitor.audit(&portal, &request, "portal.token_unassign", "ok");
    entry.token_id = Some(token.id);
    entry.notice = super::notify::notice(
        &state,
        &portal,
        &visitor.user,
        crate::notices::Change::TokenRemoved {
            name: &token.name,
            kind: token.kind.as_str(),
        },
    )?;
    if last {
        entry.detail = Some(LAST_DETAIL.into());
    }
    let outcome = state
        .store
        .unassign_token_user(IdOrName::Id(token.id), entry)
        .await?;
    if outcome.is_err() {
        return Err(PortalError::NotFound);
    }
    state.delivery.wake();
    Ok(portal.redirect_with_flash(
        &state,
        "",
        &format!(
            "{} is no longer yours.",
            crate::web::views::token_label(&token)
        ),
    ))
}
