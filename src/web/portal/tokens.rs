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
            "/portal/{address}/tokens/{id:[0-9]+}",
            web::get().to(show_token),
        )
        .route(
            "/portal/{address}/tokens/{id:[0-9]+}/unassign",
            web::get().to(confirm_unassign),
        )
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

/// The name a token goes by on the page: its name, or its kind for an unnamed one.
fn shown_name(token: &Token) -> &str {
    if token.name.is_empty() {
        token.kind.as_str()
    } else {
        &token.name
    }
}

/// Where a token's codes go, in words, to its owner: its address or chat, or the app or device that
/// shows them.
fn codes_go_to(token: &Token) -> String {
    let destination = own_destination(token);
    if destination.is_empty() {
        "Shown by your app or device".to_string()
    } else {
        destination
    }
}

fn last_used(token: &Token) -> Markup {
    html! {
        @match token.last_used_at { Some(at) => { (crate::web::views::format_time(at)) " UTC" } None => { "Never" } }
    }
}

/// One compact row of the 2nd Factor list: what the token is, and a single Manage link (and
/// Activate for one still waiting for it).
fn token_row(portal: &Portal, token: &Token, now: i64) -> Markup {
    let base = portal.path(&format!("/tokens/{}", token.id));
    html! {
        tr {
            td data-label="Name" { (token.name) }
            td data-label="Type" { (token.kind.as_str()) }
            td data-label="Sent to" { (codes_go_to(token)) }
            td.state data-label="State" { (state_label(token, now, portal.resource.auto_unlock_seconds)) }
            td data-label="Last used" { (last_used(token)) }
            td.manage {
                @if token.state == TokenState::Pending && portal.settings.allows(PortalAction::EnrollToken) {
                    a.button href={ (base) "/activate" } { "Activate" } " "
                }
                a href=(base) { "Manage" span.visually-hidden { " " (shown_name(token)) } }
            }
        }
    }
}

/// What keeps a token from being disabled or unassigned here: it is the user's last usable
/// second factor and the resource does not let users remove that one.
fn kept_as_last(portal: &Portal, token: &Token, tokens: &[Token]) -> bool {
    !portal.settings.allow_remove_last && is_last_usable(token, tokens)
}

/// A token's own page: its facts, then its actions grouped (name; PIN; codes; on and off), and
/// Unassign apart, behind a confirmation. Only the allowed actions are shown.
fn token_page_body(
    portal: &Portal,
    visitor: &Visitor,
    token: &Token,
    tokens: &[Token],
    now: i64,
) -> Markup {
    let allows = |action| portal.settings.allows(action);
    let base = portal.path(&format!("/tokens/{}", token.id));
    let pins = portal.general.pin_policy();
    let kept = kept_as_last(portal, token, tokens);
    let can_disable = allows(PortalAction::EnableDisableToken) && token.state == TokenState::Active;
    let pin_actions = allows(PortalAction::SetPin)
        || (allows(PortalAction::RemovePin) && token.pin_hash.is_some());
    let can_sync =
        allows(PortalAction::TokenSynchronization) && provision::reissue::can_sync(token);
    let can_reissue = allows(PortalAction::ReissueToken) && provision::reissue::can_reissue(token);
    let nothing = !allows(PortalAction::RenameToken)
        && !pin_actions
        && !can_sync
        && !can_reissue
        && !can_disable
        && !allows(PortalAction::UnassignToken)
        && token.state != TokenState::Pending;
    html! {
        dl.facts {
            dt { "Type" } dd { (token.kind.as_str()) }
            dt { "Codes go to" } dd { (codes_go_to(token)) }
            dt { "State" } dd { (state_label(token, now, portal.resource.auto_unlock_seconds)) }
            dt { "Last used" } dd { (last_used(token)) }
            dt { "PIN" } dd { @if token.pin_hash.is_some() { "Set" } @else { "None" } }
        }
        @if token.state == TokenState::Pending && allows(PortalAction::EnrollToken) {
            section.manage-group aria-labelledby="manage-activate" {
                h2 #manage-activate { "Activation" }
                p { "This token is not active yet." }
                a.button href={ (base) "/activate" } { "Activate" }
            }
        }
        @if allows(PortalAction::RenameToken) {
            section.manage-group aria-labelledby="manage-name" {
                h2 #manage-name { "Name" }
                form.stack method="post" action={ (base) "/rename" } {
                    (csrf_field(&visitor.csrf))
                    label { "New name" input type="text" name="name" value=(token.name) required maxlength="100"; }
                    div.buttons { button type="submit" { "Rename" } }
                }
            }
        }
        @if pin_actions {
            section.manage-group aria-labelledby="manage-pin" {
                h2 #manage-pin { "PIN" }
                @if allows(PortalAction::SetPin) {
                    p.note { "With a PIN, you type it together with each code. A PIN has " (pins.describe()) "." }
                    form.stack method="post" action={ (base) "/pin" } {
                        (csrf_field(&visitor.csrf))
                        label { "New PIN"
                            @if pins.digits_only {
                                input type="password" name="pin" autocomplete="new-password" required inputmode="numeric" pattern="[0-9]*" minlength=(pins.min_length) maxlength=(pins.max_length);
                            } @else {
                                input type="password" name="pin" autocomplete="new-password" required minlength=(pins.min_length) maxlength=(pins.max_length);
                            }
                        }
                        label { "Where the PIN goes"
                            select name="pin_position" { option value="before" { "before the code" } option value="after" { "after the code" } } }
                        div.buttons { button type="submit" { @if token.pin_hash.is_some() { "Change PIN" } @else { "Set PIN" } } }
                    }
                }
                @if allows(PortalAction::RemovePin) && token.pin_hash.is_some() {
                    p { (post_button(&visitor.csrf, &format!("{base}/pin/remove"), "Remove PIN", "secondary")) }
                }
            }
        }
        @if can_sync || can_reissue {
            section.manage-group aria-labelledby="manage-codes" {
                h2 #manage-codes { "Codes" }
                @if can_sync {
                    p { "The codes are refused although you type them right? Synchronize the token with two codes in a row." }
                    p { a.button.secondary href={ (base) "/sync" } { "Synchronize" } }
                }
                @if can_reissue {
                    @if provision::reissue::needs_reactivation(token) {
                        p.note { "The bot cannot send you codes any more. Press Re-activate and open the bot again." }
                        p { a.button href={ (base) "/reissue" } { "Re-activate" } }
                    } @else {
                        p { "A new phone, or a new address? Reissue the token: it starts afresh, and the old one stops working." }
                        p { a.button.secondary href={ (base) "/reissue" } { "Reissue" } }
                    }
                }
            }
        }
        @if can_disable {
            section.manage-group aria-labelledby="manage-switch" {
                h2 #manage-switch { "On and off" }
                @if token.enabled {
                    @if kept {
                        p.note.kept { "You cannot disable this token: it is your last active second factor here, and without it you could not log in any more. Add another one first." }
                    } @else {
                        p { "A disabled token is not asked for until you enable it again." }
                        p { (post_button(&visitor.csrf, &format!("{base}/disable"), "Disable", "secondary")) }
                    }
                } @else {
                    p { "This token is disabled: it is not asked for when you log in." }
                    p { (post_button(&visitor.csrf, &format!("{base}/enable"), "Enable", "")) }
                }
            }
        }
        @if allows(PortalAction::UnassignToken) {
            section.manage-group.danger-zone aria-labelledby="manage-remove" {
                h2 #manage-remove { "Remove from your account" }
                @if kept {
                    p.note.kept { "You cannot unassign this token: it is your last active second factor here, and without it you could not log in any more. Add another one first." }
                } @else {
                    p { "The token stops being yours: its codes are no longer accepted for you." }
                    p { a.button-danger href={ (base) "/unassign" } { "Unassign…" } }
                }
            }
        }
        @if nothing {
            p.note { "There is nothing you may change about this token here." }
        }
        p { a href=(portal.path("")) { "Back to your second factors" } }
    }
}

/// A token's own page, where its actions are.
pub async fn show_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path.0).await?;
    let visitor = require_visitor(&state, &request, &portal).await?;
    let (token, tokens) = own_token(&state, &portal, &visitor, &path.1).await?;
    let body = token_page_body(&portal, &visitor, &token, &tokens, crate::clock::now());
    let title = format!("Manage “{}”", shown_name(&token));
    Ok(Frame {
        portal: &portal,
        title: &title,
        visitor: Some(&visitor),
        flash: portal.flash_of(&state, &request),
    }
    .render(&state, body))
}

/// Unassign's confirmation: what unassigning means (and, for the last second factor, what
/// that means), and the button that does it.
pub async fn confirm_unassign(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path.0).await?;
    let visitor = require_visitor(&state, &request, &portal).await?;
    portal.require(PortalAction::UnassignToken)?;
    let (token, tokens) = own_token(&state, &portal, &visitor, &path.1).await?;
    let base = portal.path(&format!("/tokens/{}", token.id));
    if kept_as_last(&portal, &token, &tokens) {
        return Ok(portal.redirect_with_problem(
            &state,
            &format!("/tokens/{}", token.id),
            LAST_TOKEN,
        ));
    }
    let last = is_last_usable(&token, &tokens);
    let destination = own_destination(&token);
    let body = html! {
        p { "“" (shown_name(&token)) "” (" (token.kind.as_str()) @if !destination.is_empty() { ", " (destination) } ") will no longer be yours: its codes are not accepted for you any more, and only an administrator can give it back." }
        @if last {
            p { strong { "It is your last active second factor for " (portal.resource.name) ": you will log in without a second factor" } " — nobody will ask you for a one-time password — until you add a new one." }
        }
        form.stack method="post" action={ (base) "/unassign" } {
            (csrf_field(&visitor.csrf))
            input type="hidden" name="confirm" value="yes";
            div.buttons { button.danger type="submit" { "Unassign it" } a href=(base) { "Keep it" } }
        }
    };
    let title = format!("Unassign “{}”?", shown_name(&token));
    Ok(Frame {
        portal: &portal,
        title: &title,
        visitor: Some(&visitor),
        flash: None,
    }
    .render(&state, body))
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
                        thead { tr { th { "Name" } th { "Type" } th { "Sent to" } th { "State" } th { "Last used" } th { span.visually-hidden { "Manage" } } } }
                        tbody { @for token in &tokens { (token_row(&portal, token, now)) } }
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
            return Ok(portal.redirect_with_problem(&state, "", "Give the token a name."));
        }
        Err(error) => {
            return Ok(portal.redirect_with_problem(
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
        return Some(portal.redirect_with_problem(state, "", LAST_TOKEN));
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
