//! The admin panel's tokens pages: the list with filters and search, a token's page with its
//! state, fail counter, last use and assignments, and its actions (enable, disable, reset the
//! fail counter, resynchronise, set or remove the PIN, rename, unassign, delete, confirm a new
//! authenticator app, resend a BOT activation). Add Token and the seed-file import live in
//! `tokens_add`.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Page, redirect_with_flash};
use crate::delivery::bot::{self, BotState, BotStatus};
use crate::domain::{IdOrName, Refused, TokenKind, TokenState};
use crate::notices;
use crate::provision::{self, TokenUpdate};
use crate::store::AuditEntry;
use crate::store::tokens::{StateFilter, TokenDetail, TokenFilter};
use crate::web::form::{CsrfForm, Problems, invalid, path_id, query_string};
use crate::web::views::{self, format_time};
use crate::web::{AppState, PageError};

/// Tokens per page of the list.
const PAGE_SIZE: i64 = 50;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/tokens", web::get().to(list_tokens))
        .route("/admin/tokens/{id}", web::get().to(show_token))
        .route(
            "/admin/tokens/{id}/{action:enable|disable|reset|unassign}",
            web::post().to(act_on_token),
        )
        .route("/admin/tokens/{id}/resync", web::post().to(resync_token))
        .route("/admin/tokens/{id}/pin", web::post().to(change_pin))
        .route("/admin/tokens/{id}/rename", web::post().to(rename_token))
        .route(
            "/admin/tokens/{id}/destination",
            web::post().to(change_destination),
        )
        .route("/admin/tokens/{id}/confirm", web::post().to(confirm_token))
        .route(
            "/admin/tokens/{id}/activation",
            web::post().to(resend_activation),
        )
        .route(
            "/admin/tokens/{id}/delete",
            web::get().to(confirm_delete_token),
        )
        .route("/admin/tokens/{id}/delete", web::post().to(delete_token));
}

/// The state words of a token as the list and its page show them.
pub(super) fn state_badges(token: &crate::store::Token) -> Markup {
    html! {
        span class={ "badge state-" (token.state.as_str()) } { (token.state.as_str()) }
        @if token.locked_at.is_some() { " " span.badge.badge-off { "locked" } }
        @if !token.enabled { " " span.badge.badge-off { "disabled" } }
    }
}

// ---------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    kind: String,
    state: String,
    /// `yes`, `no` or empty.
    assigned: String,
    /// A resource id, or empty.
    resource: String,
    search: String,
    page: String,
}

fn option(value: &str, label: &str, current: &str) -> Markup {
    html! {
        @if value == current { option value=(value) selected { (label) } } @else { option value=(value) { (label) } }
    }
}

pub async fn list_tokens(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let query = query.into_inner();
    let number = query.page.parse::<i64>().unwrap_or(1).clamp(1, 1_000_000);
    let search = query.search.trim().to_string();
    let state_filter = match query.state.as_str() {
        "locked" => Some(StateFilter::Locked),
        "disabled" => Some(StateFilter::Disabled),
        other => TokenState::parse(other).map(StateFilter::State),
    };
    let filter = TokenFilter {
        kind: TokenKind::parse(&query.kind),
        state: state_filter,
        assigned: match query.assigned.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        resource: (!query.resource.is_empty()).then(|| {
            (query.resource.parse().map(IdOrName::Id))
                .unwrap_or_else(|_| IdOrName::Name(query.resource.clone()))
        }),
        user: None,
        search: (!search.is_empty()).then(|| search.clone()),
        limit: PAGE_SIZE,
        offset: (number - 1) * PAGE_SIZE,
    };
    let filtered = filter.kind.is_some()
        || filter.state.is_some()
        || filter.assigned.is_some()
        || filter.resource.is_some()
        || filter.search.is_some();
    let (resources, _) = state
        .store
        .list_resources(
            None,
            crate::store::users::Page {
                limit: 500,
                offset: 0,
            },
        )
        .await?;
    let listing = state.store.list_tokens(filter).await?;
    let link = |to: i64| {
        let to = to.to_string();
        format!(
            "/admin/tokens{}",
            query_string(&[
                ("kind", &query.kind),
                ("state", &query.state),
                ("assigned", &query.assigned),
                ("resource", &query.resource),
                ("search", &search),
                ("page", &to),
            ])
        )
    };
    let body = html! {
        div.actions {
            a.button href="/admin/tokens/new" { "Add Token" }
            a.button.secondary href="/admin/tokens/import" { "Import seed file" }
        }
        form.filters method="get" action="/admin/tokens" role="search" {
            label { "Search" small { "Serial, name or user" } input type="search" name="search" value=(search); }
            label { "Kind"
                select name="kind" {
                    (option("", "Any", &query.kind))
                    @for kind in TokenKind::ALL { (option(kind.as_str(), kind.as_str(), &query.kind)) }
                }
            }
            label { "State"
                select name="state" {
                    (option("", "Any", &query.state))
                    @for (value, label) in [("pending", "Pending activation"), ("active", "Active"), ("reactivate", "Needs reactivation"), ("locked", "Locked"), ("disabled", "Disabled")] {
                        (option(value, label, &query.state))
                    }
                }
            }
            label { "Assigned"
                select name="assigned" {
                    (option("", "Any", &query.assigned))
                    (option("yes", "To a user", &query.assigned))
                    (option("no", "Unassigned", &query.assigned))
                }
            }
            label { "Resource"
                select name="resource" {
                    (option("", "Any", &query.resource))
                    @for resource in &resources { (option(&resource.id.to_string(), &resource.name, &query.resource)) }
                }
            }
            button type="submit" { "Filter" }
            @if filtered { a href="/admin/tokens" { "Clear" } }
        }
        @match &listing {
            Err(refused) => { p.error role="alert" { (refused.to_string()) } }
            Ok((records, total)) => {
                p.count { (crate::domain::words::count(*total as u64, "token", "tokens")) }
                @if records.is_empty() {
                    @if filtered {
                        p.empty { "No tokens match." }
                    } @else {
                        p.empty { "No tokens yet. " a href="/admin/tokens/new" { "Add the first token" } "." }
                    }
                } @else {
                    table {
                        thead { tr { th { "Serial" } th { "Name" } th { "Kind" } th { "User" } th { "State" } th { "Fails" } th { "Last use (UTC)" } } }
                        tbody {
                            @for record in records {
                                @let token = &record.token;
                                tr {
                                    td { a href={ "/admin/tokens/" (token.id) } { (token.serial) } }
                                    td { (token.name) }
                                    td { (token.kind.as_str()) }
                                    td {
                                        @if let (Some(id), Some(login)) = (token.user_id, &record.user_login) {
                                            a href={ "/admin/users/" (id) } { (login) }
                                        } @else { span.muted { "unassigned" } }
                                    }
                                    td { (state_badges(token)) }
                                    td { (token.fail_count) }
                                    td { (token.last_used_at.map(format_time).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                    nav.pager aria-label="Pages" {
                        @if number > 1 { a rel="prev" href=(link(number - 1)) { "← Previous" } }
                        @if number * PAGE_SIZE < *total { a rel="next" href=(link(number + 1)) { "Next →" } }
                    }
                }
            }
        }
    };
    let response = page.render(&state, "Tokens", "Tokens", body);
    Ok(if listing.is_err() {
        invalid(response)
    } else {
        response
    })
}

// ---------------------------------------------------------------------------
// A token's page
// ---------------------------------------------------------------------------

async fn load_token(state: &AppState, id: &str) -> Result<TokenDetail, PageError> {
    let id = path_id(id)?;
    state
        .store
        .token_detail(IdOrName::Id(id))
        .await?
        .filter(|detail| detail.record.token.id == id)
        .ok_or(PageError::NotFound)
}

/// The BOT activation area of a token's page: whether a chat is bound, the bot's own state,
/// and the button that issues a new activation code.
fn bot_activation_section(page: &Page, state: &AppState, token: &crate::store::Token) -> Markup {
    let bot = state.telegram.status();
    let action = format!("/admin/tokens/{}/activation", token.id);
    html! {
        section.activation aria-labelledby="activation" {
            h2 #activation { "Telegram activation" }
            @match token.state {
                TokenState::Active => p { "Active: its codes go to the Telegram chat that activated it. A new activation moves it to another phone." }
                TokenState::Pending => p { "Waiting for the user to open the activation link and press Start in the chat with the bot." }
                TokenState::Reactivate => p.error { "The bot cannot reach this user any more (the bot was blocked or the chat is gone). Send a new activation." }
            }
            @if bot.state != BotState::Running {
                p.note { "The Telegram bot is not running (" (bot_state_text(&bot)) "): set it up in " a href="/admin/settings#telegram" { "Settings" } "." }
            }
            (page.post_button(&action, if token.state == TokenState::Active { "New activation" } else { "Send a new activation" }, "secondary"))
        }
    }
}

/// The bot's state in words.
pub(super) fn bot_state_text(status: &BotStatus) -> String {
    match status.state {
        BotState::NotConfigured => "no bot token set".into(),
        BotState::Starting => "starting".into(),
        BotState::Running => match &status.username {
            Some(name) => format!("running as @{name}"),
            None => "running".into(),
        },
        BotState::Failing => format!(
            "cannot work: {}",
            status.error.as_deref().unwrap_or("unknown error")
        ),
        BotState::Stopped => "stopped".into(),
    }
}

/// A BOT token's one-time activation: the QR code of the deep link, the link, and the command
/// to type by hand. Shown once, right after the code was issued.
pub(super) fn activation_code_view(
    state: &AppState,
    token: &crate::store::Token,
    activation: &provision::Activation,
) -> Markup {
    let provision::Activation { code, expires_at } = activation;
    let link = state
        .telegram
        .username()
        .map(|username| bot::deep_link(&username, code));
    let name = if token.name.is_empty() {
        &token.serial
    } else {
        &token.name
    };
    html! {
        section.activation aria-labelledby="activation" {
            h2 #activation { "Activate “" (name) "” in Telegram" }
            @if let Some(link) = &link {
                p { "The user scans this QR code with their phone (or opens the link there) and presses " strong { "Start" } " in the chat with the bot. The token becomes active at once." }
                (views::qr_image(link, "QR code of the Telegram activation link"))
                (views::telegram_link(link))
            } @else {
                p.error { "The Telegram bot is not running, so there is no link to scan yet. Set it up in " a href="/admin/settings#telegram" { "Settings" } ", then send a new activation." }
            }
            p { "Without the link, the user can send the bot this message: " code.command { "/start " (code) } }
            p.note { "The code works once, until " (format_time(*expires_at)) " UTC, and is not shown again." }
            p { a href={ "/admin/tokens/" (token.id) } { "Back to the token" } }
        }
    }
}

fn token_page(page: &Page, state: &AppState, detail: &TokenDetail, problems: &Problems) -> Markup {
    let record = &detail.record;
    let token = &record.token;
    let base = format!("/admin/tokens/{}", token.id);
    let seeded = matches!(token.kind, TokenKind::Totp | TokenKind::Hotp);
    html! {
        (problems.summary())
        div.actions {
            @if token.enabled {
                (page.post_button(&format!("{base}/disable"), "Disable", "secondary"))
            } @else {
                (page.post_button(&format!("{base}/enable"), "Enable", "secondary"))
            }
            @if token.fail_count > 0 || token.locked_at.is_some() {
                (page.post_button(&format!("{base}/reset"), "Reset fail counter (unlock)", "secondary"))
            }
            @if token.user_id.is_some() {
                (page.post_button(&format!("{base}/unassign"), "Unassign from user", "secondary"))
            }
            a.button.danger href={ (base) "/delete" } { "Delete" }
        }
        dl.facts {
            dt { "Serial" } dd { (token.serial) }
            dt { "Name" } dd { @if token.name.is_empty() { "—" } @else { (token.name) } }
            dt { "Kind" } dd { (token.kind.as_str()) }
            dt { "State" } dd { (state_badges(token)) }
            dt { "Fail counter" } dd { (token.fail_count) }
            @if let Some(locked_at) = token.locked_at { dt { "Locked since" } dd { (format_time(locked_at)) " UTC" } }
            dt { "Last use" } dd { @if let Some(at) = token.last_used_at { (format_time(at)) " UTC" } @else { "never" } }
            dt { "OTP length" } dd { (token.digits) " digits" }
            @if seeded {
                dt { "Algorithm" } dd { (token.algorithm.as_str()) @if token.kind == TokenKind::Totp { ", " (token.period) " s" } }
            }
            @if let Some(destination) = &token.destination {
                dt { @if token.kind == TokenKind::Sms { "Phone" } @else { "Email" } } dd { (destination) }
            }
            @if let Some(messenger) = &token.messenger { dt { "Messenger" } dd { (messenger) } }
            @if token.kind == TokenKind::Bot {
                dt { "Telegram chat" }
                dd {
                    @match &detail.bot_chat {
                        Some(chat) => {
                            @if let Some(name) = &chat.name { (name) ", " }
                            "user id " (chat.user_id) ", chat id " (chat.chat_id)
                        }
                        None => { "none: waiting for an activation" }
                    }
                }
            }
            dt { "PIN" } dd { @if token.pin_hash.is_some() { "set (" (token.pin_position.as_str()) " the code)" } @else { "none" } }
            dt { "Created" } dd { (format_time(token.created_at)) " UTC" }
        }
        h2 { "Assignments" }
        dl.facts {
            dt { "User" }
            dd {
                @if let (Some(id), Some(login)) = (token.user_id, &record.user_login) {
                    a href={ "/admin/users/" (id) } { (login) }
                } @else { "unassigned (assign it from a user's page: Assign Token → Existing)" }
            }
            dt { "Resources" }
            dd {
                @if detail.resources.is_empty() { "none" } @else {
                    @for (i, (id, name)) in detail.resources.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href={ "/admin/resources/" (id) } { (name) }
                    }
                }
            }
        }
        @if token.kind == TokenKind::Totp && token.state == TokenState::Pending {
            h2 { "Confirm the authenticator app" }
            (confirm_form(page, token.id, problems))
        }
        @if token.kind == TokenKind::Bot {
            (bot_activation_section(page, state, token))
        }
        div.forms {
            section {
                h2 { "Rename" }
                form.stack method="post" action={ (base) "/rename" } {
                    (page.csrf_field())
                    label { "Name" input type="text" name="name" value=(token.name); (problems.note("name")) }
                    div.buttons { button type="submit" { "Rename" } }
                }
            }
            @if matches!(token.kind, TokenKind::Mail | TokenKind::Sms) {
                section {
                    @let sms = token.kind == TokenKind::Sms;
                    h2 { @if sms { "Phone number" } @else { "Email address" } }
                    form.stack method="post" action={ (base) "/destination" } {
                        (page.csrf_field())
                        label {
                            "Codes go to"
                            small { @if sms { "International form, e.g. +49 151 12345678." } @else { "The address the codes are emailed to." } }
                            @if sms {
                                input type="tel" name="destination" value=(token.destination.as_deref().unwrap_or("")) required;
                            } @else {
                                input type="email" name="destination" value=(token.destination.as_deref().unwrap_or("")) required;
                            }
                            (problems.note("destination"))
                        }
                        div.buttons { button type="submit" { "Change address" } }
                    }
                }
            }
            section {
                h2 { "PIN" }
                form.stack method="post" action={ (base) "/pin" } {
                    (page.csrf_field())
                    label { "New PIN" small { "Typed together with the code. The PIN rule is set under " a href="/admin/settings#general" { "Settings → General" } "." }
                        input type="password" name="pin" autocomplete="new-password"; (problems.note("pin")) }
                    (pin_position_select(token.pin_position.as_str()))
                    div.buttons {
                        button type="submit" name="action" value="set" { "Set PIN" }
                        @if token.pin_hash.is_some() {
                            button.secondary type="submit" name="action" value="clear" { "Remove PIN" }
                        }
                    }
                }
            }
            @if seeded {
                section {
                    h2 { "Resynchronise" }
                    form.stack method="post" action={ (base) "/resync" } {
                        (page.csrf_field())
                        p.note { "For a token whose clock or counter drifted: type two codes it shows one after the other." }
                        label { "First code" input type="text" name="otp1" inputmode="numeric" autocomplete="off"; (problems.note("otp1")) }
                        label { "Next code" input type="text" name="otp2" inputmode="numeric" autocomplete="off"; (problems.note("otp2")) }
                        div.buttons { button type="submit" { "Resynchronise" } }
                    }
                }
            }
        }
    }
}

/// The PIN position choice.
pub(super) fn pin_position_select(current: &str) -> Markup {
    html! {
        label { "PIN position"
            select name="pin_position" {
                (option("before", "Before the code", current))
                (option("after", "After the code", current))
            }
        }
    }
}

/// The form that activates a new authenticator-app token with its first code.
pub(super) fn confirm_form(page: &Page, token_id: i64, problems: &Problems) -> Markup {
    html! {
        form.stack.narrow method="post" action={ "/admin/tokens/" (token_id) "/confirm" } {
            (page.csrf_field())
            label { "Code shown by the app" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required; (problems.note("code")) }
            div.buttons { button type="submit" { "Confirm" } }
        }
    }
}

fn title_of(detail: &TokenDetail) -> String {
    format!("Token {}", detail.record.token.serial)
}

pub async fn show_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let detail = load_token(&state, &path).await?;
    let body = token_page(&page, &state, &detail, &Problems::default());
    Ok(page.render(&state, &title_of(&detail), "Tokens", body))
}

/// The token's page again with what was wrong, answered with 400.
fn render_problems(
    state: &AppState,
    page: &Page,
    detail: &TokenDetail,
    problems: &Problems,
) -> HttpResponse {
    invalid(page.render(
        state,
        &title_of(detail),
        "Tokens",
        token_page(page, state, detail, problems),
    ))
}

/// Ends an action: back to the token's page with `message`, or its page with the refusal.
fn finish(
    state: &AppState,
    page: &Page,
    detail: &TokenDetail,
    outcome: Result<crate::store::tokens::TokenRecord, Refused>,
    message: &str,
) -> Result<HttpResponse, PageError> {
    match outcome {
        Ok(record) => Ok(redirect_with_flash(
            state,
            &format!("/admin/tokens/{}", record.token.id),
            message,
        )),
        Err(refused) => Ok(render_problems(
            state,
            page,
            detail,
            &Problems::of(refused)?,
        )),
    }
}

/// Opens a token action: the administrator, the form's CSRF token and the token.
async fn acting_on(
    state: &web::Data<AppState>,
    request: &HttpRequest,
    id: &str,
    csrf: &str,
) -> Result<(Page, TokenDetail), PageError> {
    let page = Page::open(state, request).await?;
    page.check_csrf(csrf)?;
    let detail = load_token(state, id).await?;
    Ok((page, detail))
}

/// The one-button actions of a token's page: enable, disable, reset the fail counter, and
/// unassign from its user.
pub async fn act_on_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (id, action) = path.into_inner();
    let (page, detail) = acting_on(&state, &request, &id, &form.csrf).await?;
    let key = IdOrName::Id(detail.record.token.id);
    let audit = |name| page.audit(&request, name, "ok");
    let (outcome, message) = match action.as_str() {
        "enable" => (
            state
                .store
                .set_token_enabled(key, true, audit("token.enable"))
                .await?,
            "Token enabled.",
        ),
        "disable" => (
            state
                .store
                .set_token_enabled(key, false, audit("token.disable"))
                .await?,
            "Token disabled.",
        ),
        "reset" => (
            state.store.reset_token(key, audit("token.reset")).await?,
            "Fail counter reset; the token is unlocked.",
        ),
        "unassign" => {
            let mut entry = audit("token.unassign");
            entry.notice = notices::of_token_taken(
                &state.store,
                &state.keys,
                &key,
                notices::PANEL,
                crate::clock::now(),
            )
            .await?;
            let outcome = state.store.unassign_token_user(key, entry).await?;
            state.delivery.wake();
            (
                outcome,
                if detail.record.token.kind == TokenKind::Bot {
                    "Token unassigned from its user and every resource. It forgot the user's Telegram chat and waits for a new activation."
                } else {
                    "Token unassigned from its user and every resource."
                },
            )
        }
        _ => return Err(PageError::NotFound),
    };
    finish(&state, &page, &detail, outcome, message)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResyncForm {
    csrf: String,
    otp1: String,
    otp2: String,
}

pub async fn resync_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ResyncForm>,
) -> Result<HttpResponse, PageError> {
    let (page, detail) = acting_on(&state, &request, &path, &form.csrf).await?;
    let token = &detail.record.token;
    let found = provision::resync(
        state.keys.clone(),
        token,
        &form.otp1,
        &form.otp2,
        state.config.auth.resync_search,
        crate::clock::now(),
    )
    .await;
    let found = match found {
        Ok(found) => found,
        Err(error) => {
            return Ok(render_problems(
                &state,
                &page,
                &detail,
                &Problems::of(error)?,
            ));
        }
    };
    let outcome = state
        .store
        .resync_token(
            token.id,
            found.step,
            found.drift,
            page.audit(&request, "token.resync", "ok"),
        )
        .await?;
    finish(
        &state,
        &page,
        &detail,
        outcome,
        "Token resynchronised: it follows the codes now.",
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PinForm {
    csrf: String,
    pin: String,
    pin_position: String,
    /// `set` or `clear`.
    action: String,
}

pub async fn change_pin(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<PinForm>,
) -> Result<HttpResponse, PageError> {
    let (page, detail) = acting_on(&state, &request, &path, &form.csrf).await?;
    let (update, message) = if form.action == "clear" {
        let update = TokenUpdate {
            pin: Some(None),
            ..TokenUpdate::default()
        };
        (update, "PIN removed.")
    } else {
        let update = TokenUpdate {
            pin: Some(Some(form.pin.clone())),
            pin_position: Some(form.pin_position.clone()),
            ..TokenUpdate::default()
        };
        (update, "PIN set.")
    };
    apply_update(&state, &request, &page, &detail, &update, message).await
}

/// Changes the token as `update` asks, through the shared rule; a refusal is shown on the
/// token's page.
async fn apply_update(
    state: &AppState,
    request: &HttpRequest,
    page: &Page,
    detail: &TokenDetail,
    update: &TokenUpdate,
    message: &str,
) -> Result<HttpResponse, PageError> {
    let pins = state.general().await?.pin_policy();
    let changes = match provision::changes(&state.keys, &detail.record.token, update, &pins) {
        Ok(changes) => changes,
        Err(refused) => {
            return Ok(render_problems(
                state,
                page,
                detail,
                &Problems::of(refused)?,
            ));
        }
    };
    let outcome = state
        .store
        .update_token(
            detail.record.token.id,
            changes,
            page.audit(request, "token.update", "ok"),
        )
        .await?;
    finish(state, page, detail, outcome, message)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RenameForm {
    csrf: String,
    name: String,
}

pub async fn rename_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let (page, detail) = acting_on(&state, &request, &path, &form.csrf).await?;
    let update = TokenUpdate {
        name: Some(form.name.clone()),
        ..TokenUpdate::default()
    };
    apply_update(&state, &request, &page, &detail, &update, "Token renamed.").await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DestinationForm {
    csrf: String,
    destination: String,
}

/// A MAIL or SMS token's address, changed by the administrator (the user changes it in the
/// portal with a code sent to the new address).
pub async fn change_destination(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<DestinationForm>,
) -> Result<HttpResponse, PageError> {
    let (page, detail) = acting_on(&state, &request, &path, &form.csrf).await?;
    let update = TokenUpdate {
        destination: Some(form.destination.clone()),
        ..TokenUpdate::default()
    };
    apply_update(
        &state,
        &request,
        &page,
        &detail,
        &update,
        "Address changed: the next codes go there.",
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfirmForm {
    csrf: String,
    code: String,
}

pub async fn confirm_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, PageError> {
    let (page, detail) = acting_on(&state, &request, &path, &form.csrf).await?;
    let token = &detail.record.token;
    let mut problems = Problems::default();
    if token.kind != TokenKind::Totp || token.state != TokenState::Pending {
        problems.general("This token is not waiting for a first code.");
        return Ok(render_problems(&state, &page, &detail, &problems));
    }
    let found = provision::first_code(&state.keys, token, &form.code, crate::clock::now())
        .map_err(|e| PageError::Internal(e.into()))?;
    let Some(found) = found else {
        problems.at(
            "code",
            "this is not the app's current code; check the phone's clock and type the code shown now",
        );
        return Ok(render_problems(&state, &page, &detail, &problems));
    };
    let mut entry = page.audit(&request, "token.activate", "ok");
    entry.notice = notices::of_token_owned(
        &state.store,
        &state.keys,
        &IdOrName::Id(token.id),
        notices::PANEL,
        crate::clock::now(),
    )
    .await?;
    let outcome = state
        .store
        .confirm_token(token.id, found.step, entry)
        .await?;
    state.delivery.wake();
    finish(
        &state,
        &page,
        &detail,
        outcome,
        "The authenticator app is confirmed; the token is active.",
    )
}

pub async fn resend_activation(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (page, detail) = acting_on(&state, &request, &path, &form.csrf).await?;
    if detail.record.token.kind != TokenKind::Bot {
        return Err(PageError::NotFound);
    }
    let token = &detail.record.token;
    let entry = AuditEntry {
        token_id: Some(token.id),
        user_id: token.user_id,
        ..page.audit(&request, "token.bot_activation", "ok")
    };
    let activation =
        provision::issue_activation(&state.store, token.id, crate::clock::now(), entry).await?;
    let body = activation_code_view(&state, token, &activation);
    Ok(page.render(&state, &title_of(&detail), "Tokens", body))
}

pub async fn confirm_delete_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let detail = load_token(&state, &path).await?;
    let token = &detail.record.token;
    let body = html! {
        p { "Delete the " (token.kind.as_str()) " token " strong { (token.serial) } "? This cannot be undone." }
        @if let Some(login) = &detail.record.user_login {
            p { "Its user " (login) " can no longer authenticate with it." }
        }
        form.stack.narrow method="post" action={ "/admin/tokens/" (token.id) "/delete" } {
            (page.csrf_field())
            div.buttons {
                button.danger type="submit" { "Delete token" }
                a href={ "/admin/tokens/" (token.id) } { "Cancel" }
            }
        }
    };
    Ok(page.render(&state, &format!("Delete {}", token.serial), "Tokens", body))
}

pub async fn delete_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (page, detail) = acting_on(&state, &request, &path, &form.csrf).await?;
    let token = &detail.record.token;
    let mut entry = page.audit(&request, "token.delete", "ok");
    entry.notice = notices::of_token_taken(
        &state.store,
        &state.keys,
        &IdOrName::Id(token.id),
        notices::PANEL,
        crate::clock::now(),
    )
    .await?;
    match state
        .store
        .delete_token(IdOrName::Id(token.id), entry)
        .await?
        .inspect(|()| state.delivery.wake())
    {
        Ok(()) => Ok(redirect_with_flash(
            &state,
            "/admin/tokens",
            &format!("Token {} deleted.", token.serial),
        )),
        Err(refused) => Ok(render_problems(
            &state,
            &page,
            &detail,
            &Problems::of(refused)?,
        )),
    }
}
