//! Your details: the user actions the resource's Allowed Actions permit — Set Password (when
//! the user has none), Change Password (the current one required), Change Name, and Change
//! Email / Change Phone, where the new address or number only replaces the old one after the
//! code sent to it (a `confirm` code, kept in the session: `pending`) was typed back.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::pending::{self, Pending};
use super::{Frame, Portal, PortalError, Visitor, refuse_unless_allowed, require_visitor};
use crate::confirm::{self, Channel, Issued, Letter, Typed, Waiting};
use crate::crypto;
use crate::domain;
use crate::domain::IdOrName;
use crate::notices::Change;
use crate::store::AuditEntry;
use crate::store::portal::ContactField;
use crate::store::resources::PortalAction;
use crate::store::users::UserChanges;
use crate::web::AppState;
use crate::web::form::{csrf_field, error_line};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/portal/{address}/account", web::get().to(show_account))
        .route(
            "/portal/{address}/account/name",
            web::post().to(change_name),
        )
        .route(
            "/portal/{address}/account/password",
            web::post().to(change_password),
        )
        .route(
            "/portal/{address}/account/email",
            web::post().to(change_email),
        )
        .route(
            "/portal/{address}/account/phone",
            web::post().to(change_phone),
        )
        .route(
            "/portal/{address}/account/verify",
            web::get().to(show_verify),
        )
        .route(
            "/portal/{address}/account/verify",
            web::post().to(submit_verify),
        );
}

/// Opens the portal and the session, checks the CSRF token and the Allowed Action; a forged
/// request for an action that is off is audited and refused with 403.
pub async fn user_action_context(
    state: &AppState,
    request: &HttpRequest,
    address: &str,
    csrf: &str,
    action: PortalAction,
) -> Result<(Portal, Visitor), PortalError> {
    let portal = Portal::open(state, address).await?;
    let visitor = require_visitor(state, request, &portal).await?;
    visitor.check_csrf(csrf)?;
    refuse_unless_allowed(state, request, &portal, &visitor, action).await?;
    Ok((portal, visitor))
}

/// Whether the details page has anything to offer.
pub fn any_user_action(portal: &Portal) -> bool {
    [
        PortalAction::SetPassword,
        PortalAction::ChangePassword,
        PortalAction::ChangeName,
        PortalAction::ChangeEmail,
        PortalAction::ChangePhone,
    ]
    .into_iter()
    .any(|action| portal.settings.allows(action))
}

/// What a directory user reads instead of a form: "Your email address comes from the
/// directory "corp": change it there." — the words of the rule that refuses the change.
fn kept_in_directory(what: &str, directory: &str, field: &'static str) -> String {
    let refusal = if field == "password" {
        crate::directories::password_kept(directory)
    } else {
        crate::directories::from_directory(field, directory)
    };
    let verb = if field == "password" { "is " } else { "" };
    format!("Your {what} {verb}{}.", refusal.message)
}

/// The refusal of a change a directory user posted anyway (an old page, a forged request).
fn refused_in_directory(what: &str, directory: &str, field: &'static str) -> String {
    format!(
        "{} Nothing was changed.",
        kept_in_directory(what, directory, field)
    )
}

/// A section of Your details that only says where a directory user changes this.
fn kept_section(id: &str, heading: &str, text: String) -> Markup {
    html! {
        section aria-labelledby=(id) {
            h2 id=(id) { (heading) }
            p.note { (text) }
        }
    }
}

fn account_body(
    portal: &Portal,
    visitor: &Visitor,
    directory: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let allows = |action| portal.settings.allows(action);
    let user = &visitor.user;
    let has_password = user.password_hash.is_some();
    if let Some(directory) = directory {
        return html! {
            (error_line(error))
            dl.details {
                dt { "Login name" } dd { (user.login) }
                dt { "Name" } dd { (user.first_name) " " (user.last_name) }
                dt { "Email address" } dd { (user.email.as_deref().unwrap_or("—")) }
                dt { "Phone number" } dd { (user.phone.as_deref().unwrap_or("—")) }
            }
            @if allows(PortalAction::ChangeName) {
                (kept_section("change-name", "Change Name", kept_in_directory("name", directory, "first_name")))
            }
            @if allows(PortalAction::ChangePassword) || allows(PortalAction::SetPassword) {
                (kept_section("password", "Change Password", kept_in_directory("password", directory, "password")))
            }
            @if allows(PortalAction::ChangeEmail) {
                (kept_section("change-email", "Change Email", kept_in_directory("email address", directory, "email")))
            }
            @if allows(PortalAction::ChangePhone) {
                (kept_section("change-phone", "Change Phone", kept_in_directory("phone number", directory, "phone")))
            }
            p { a href=(portal.path("")) { "Back" } }
        };
    }
    html! {
        (error_line(error))
        dl.details {
            dt { "Login name" } dd { (user.login) }
            dt { "Name" } dd { (user.first_name) " " (user.last_name) }
            dt { "Email address" } dd { (user.email.as_deref().unwrap_or("—")) }
            dt { "Phone number" } dd { (user.phone.as_deref().unwrap_or("—")) }
        }
        @if allows(PortalAction::ChangeName) {
            section aria-labelledby="change-name" {
                h2 #change-name { "Change Name" }
                form.stack method="post" action=(portal.path("/account/name")) {
                    (csrf_field(&visitor.csrf))
                    label { "First name" input type="text" name="first_name" value=(user.first_name) maxlength="128"; }
                    label { "Last name" input type="text" name="last_name" value=(user.last_name) maxlength="128"; }
                    div.buttons { button type="submit" { "Save" } }
                }
            }
        }
        @if (has_password && allows(PortalAction::ChangePassword)) || (!has_password && allows(PortalAction::SetPassword)) {
            section aria-labelledby="password" {
                h2 #password { @if has_password { "Change Password" } @else { "Set Password" } }
                form.stack method="post" action=(portal.path("/account/password")) {
                    (csrf_field(&visitor.csrf))
                    @if has_password {
                        label { "Current password" input type="password" name="current" autocomplete="current-password" required; }
                    }
                    label { "New password" small { "At least " (domain::MIN_PASSWORD) " characters." }
                        input type="password" name="password" autocomplete="new-password" required minlength=(domain::MIN_PASSWORD); }
                    label { "New password again" input type="password" name="again" autocomplete="new-password" required; }
                    div.buttons { button type="submit" { "Save" } }
                }
            }
        }
        @if allows(PortalAction::ChangeEmail) {
            section aria-labelledby="change-email" {
                h2 #change-email { "Change Email" }
                form.stack method="post" action=(portal.path("/account/email")) {
                    (csrf_field(&visitor.csrf))
                    label { "New email address" small { "We send a code there; the new address counts once you type it." }
                        input type="email" name="value" required; }
                    div.buttons { button type="submit" { "Next" } }
                }
            }
        }
        @if allows(PortalAction::ChangePhone) {
            section aria-labelledby="change-phone" {
                h2 #change-phone { "Change Phone" }
                form.stack method="post" action=(portal.path("/account/phone")) {
                    (csrf_field(&visitor.csrf))
                    label { "New phone number" small { "In international form, e.g. +41 79 123 45 67. We send a code there by SMS." }
                        input type="tel" name="value" required; }
                    div.buttons { button type="submit" { "Next" } }
                }
            }
        }
        p { a href=(portal.path("")) { "Back" } }
    }
}

fn render_account(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    (visitor, directory): (&Visitor, Option<&str>),
    error: Option<&str>,
) -> HttpResponse {
    let frame = Frame {
        portal,
        title: "Your details",
        visitor: Some(visitor),
        flash: portal.flash_of(state, request),
    };
    let status = if error.is_some() {
        actix_web::http::StatusCode::BAD_REQUEST
    } else {
        actix_web::http::StatusCode::OK
    };
    frame.render_with(
        state,
        status,
        account_body(portal, visitor, directory, error),
    )
}

pub async fn show_account(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let visitor = require_visitor(&state, &request, &portal).await?;
    let directory = crate::directories::keeper(&state.store, visitor.user.id).await?;
    Ok(render_account(
        &state,
        &request,
        &portal,
        (&visitor, directory.as_deref()),
        None,
    ))
}

/// Saves a change of the visitor's own details, audited, and goes back to Your details.
async fn save_details(
    state: &AppState,
    portal: &Portal,
    visitor: &Visitor,
    changes: UserChanges,
    entry: AuditEntry,
    message: &str,
) -> Result<HttpResponse, PortalError> {
    state
        .store
        .update_user(
            IdOrName::Id(visitor.user.id),
            changes,
            entry,
            crate::clock::now(),
        )
        .await?;
    Ok(portal.redirect_with_flash(state, "/account", message))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameForm {
    csrf: String,
    first_name: String,
    last_name: String,
}

pub async fn change_name(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<NameForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor) = user_action_context(
        &state,
        &request,
        &path,
        &form.csrf,
        PortalAction::ChangeName,
    )
    .await?;
    if let Some(directory) = crate::directories::keeper(&state.store, visitor.user.id).await? {
        let message = refused_in_directory("name", &directory, "first_name");
        return Ok(render_account(
            &state,
            &request,
            &portal,
            (&visitor, Some(&directory)),
            Some(&message),
        ));
    }
    let names = domain::person_name("first_name", &form.first_name)
        .and_then(|first| Ok((first, domain::person_name("last_name", &form.last_name)?)));
    let (first_name, last_name) = match names {
        Ok(names) => names,
        Err(error) => {
            let message = format!("The name was not changed: it {}.", error.message);
            return Ok(render_account(
                &state,
                &request,
                &portal,
                (&visitor, None),
                Some(&message),
            ));
        }
    };
    let changes = UserChanges {
        first_name: Some(first_name),
        last_name: Some(last_name),
        ..Default::default()
    };
    let entry = visitor.audit(&portal, &request, "portal.change_name", "ok");
    save_details(
        &state,
        &portal,
        &visitor,
        changes,
        entry,
        "Your name was saved.",
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    password: String,
    again: String,
}

/// The minimal strength policy: the length rule every password follows, and not the login
/// name itself.
fn password_problem(login: &str, password: &str, again: &str) -> Option<String> {
    if let Err(error) = domain::check_new_password(password) {
        return Some(format!("The new password {}.", error.message));
    }
    if password.trim().eq_ignore_ascii_case(login) {
        return Some("The new password may not be your login name.".into());
    }
    if !crypto::constant_time_eq(password.as_bytes(), again.as_bytes()) {
        return Some("The two new passwords are not the same.".into());
    }
    None
}

pub async fn change_password(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let visitor = require_visitor(&state, &request, &portal).await?;
    visitor.check_csrf(&form.csrf)?;
    let current_hash = visitor.user.password_hash.clone();
    let action = if current_hash.is_some() {
        PortalAction::ChangePassword
    } else {
        PortalAction::SetPassword
    };
    refuse_unless_allowed(&state, &request, &portal, &visitor, action).await?;
    if let Some(directory) = crate::directories::keeper(&state.store, visitor.user.id).await? {
        let message = refused_in_directory("password", &directory, "password");
        return Ok(render_account(
            &state,
            &request,
            &portal,
            (&visitor, Some(&directory)),
            Some(&message),
        ));
    }
    let render =
        |message: &str| render_account(&state, &request, &portal, (&visitor, None), Some(message));
    if let Some(problem) = password_problem(&visitor.user.login, &form.password, &form.again) {
        return Ok(render(&problem));
    }
    if let Some(hash) = current_hash {
        super::limits::refuse_if_blocked(&state, &request, &portal, &visitor.user.login).await?;
        let typed = form.current.clone();
        if typed.is_empty()
            || typed.len() > domain::MAX_PASSWORD * 4
            || !state
                .passwords
                .verify(typed, Some(hash))
                .await
                .map_err(crate::web::PageError::Busy)?
        {
            let mut entry = visitor.audit(&portal, &request, "portal.change_password", "rejected");
            entry.reason = Some("bad_password".into());
            state.store.audit(entry).await?;
            super::limits::count_failure(&state, &request, &portal, &visitor.user.login).await?;
            return Ok(render(
                "The current password is not right. Nothing was changed.",
            ));
        }
    }
    let hash = state
        .passwords
        .hash(form.password.clone())
        .await
        .map_err(crate::web::PageError::from)?;
    let name = match action {
        PortalAction::SetPassword => "portal.set_password",
        _ => "portal.change_password",
    };
    let changes = UserChanges {
        password_hash: Some(Some(hash)),
        ..Default::default()
    };
    let mut entry = visitor.audit(&portal, &request, name, "ok");
    entry.notice = super::notify::notice(&state, &portal, &visitor.user, Change::Password)?;
    let saved = save_details(
        &state,
        &portal,
        &visitor,
        changes,
        entry,
        "Your new password is saved.",
    )
    .await?;
    state.delivery.wake();
    Ok(saved)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactForm {
    csrf: String,
    value: String,
}

pub async fn change_email(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ContactForm>,
) -> Result<HttpResponse, PortalError> {
    start_contact_change(&state, &request, &path, form.into_inner(), false).await
}

pub async fn change_phone(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ContactForm>,
) -> Result<HttpResponse, PortalError> {
    start_contact_change(&state, &request, &path, form.into_inner(), true).await
}

fn contact_action(phone: bool) -> PortalAction {
    if phone {
        PortalAction::ChangePhone
    } else {
        PortalAction::ChangeEmail
    }
}

/// A code for a new address or number, and the message that carries it there.
fn contact_code(
    state: &AppState,
    portal: &Portal,
    phone: bool,
    value: &str,
    now: i64,
) -> Result<Issued, PortalError> {
    let (channel, what) = if phone {
        (Channel::Sms, "phone number")
    } else {
        (Channel::Mail, "email address")
    };
    let resource = &portal.resource.name;
    Ok(confirm::issue(
        &state.keys,
        Letter {
            channel,
            recipient: value,
            subject: format!("Confirm your new {what} for {resource}"),
            purpose: format!("confirms your new {what} for {resource}"),
        },
        6,
        now,
    )?)
}

async fn start_contact_change(
    state: &AppState,
    request: &HttpRequest,
    address: &str,
    form: ContactForm,
    phone: bool,
) -> Result<HttpResponse, PortalError> {
    let (portal, visitor) =
        user_action_context(state, request, address, &form.csrf, contact_action(phone)).await?;
    if let Some(directory) = crate::directories::keeper(&state.store, visitor.user.id).await? {
        let message = if phone {
            refused_in_directory("phone number", &directory, "phone")
        } else {
            refused_in_directory("email address", &directory, "email")
        };
        return Ok(render_account(
            state,
            request,
            &portal,
            (&visitor, Some(&directory)),
            Some(&message),
        ));
    }
    let parsed = if phone {
        domain::phone_field(&form.value)
    } else {
        domain::email_field(&form.value)
    };
    let value = match parsed {
        Ok(value) => value,
        Err(error) => {
            let message = format!("Check the new value: {}.", error.message);
            return Ok(render_account(
                state,
                request,
                &portal,
                (&visitor, None),
                Some(&message),
            ));
        }
    };
    let now = crate::clock::now();
    if let Some(Pending::Contact { code, .. }) = Pending::of(state, &visitor, now)
        && code.too_soon(now)
    {
        return Ok(portal.redirect_with_problem(
            state,
            "/account/verify",
            "A code was sent a moment ago. Wait half a minute before asking for another.",
        ));
    }
    let issued = contact_code(state, &portal, phone, &value, now)?;
    let pending = Pending::Contact {
        phone,
        value,
        code: Waiting::new(&issued, now),
    };
    let name = if phone {
        "portal.change_phone"
    } else {
        "portal.change_email"
    };
    let entry = visitor.audit(&portal, request, name, "code_sent");
    pending::keep(
        state,
        &visitor,
        Some(&pending),
        Some(issued.message),
        now,
        entry,
    )
    .await?;
    Ok(portal.redirect_with_flash(
        state,
        "/account/verify",
        if phone {
            "We have sent a code to the new phone number. Type it here to confirm it."
        } else {
            "We have sent a code to the new email address. Type it here to confirm it."
        },
    ))
}

/// The title of the page that asks for the code sent to a new address or number.
fn confirm_title(pending: &Pending) -> &'static str {
    match pending {
        Pending::Contact { phone: true, .. } => "Confirm your new phone number",
        _ => "Confirm your new email address",
    }
}

fn verify_body(
    portal: &Portal,
    visitor: &Visitor,
    pending: &Pending,
    error: Option<&str>,
) -> Markup {
    let (what, value) = match pending {
        Pending::Contact {
            phone: true, value, ..
        } => ("phone number", value.as_str()),
        Pending::Contact { value, .. } => ("email address", value.as_str()),
        Pending::Reissue { .. } | Pending::Activation { .. } | Pending::BotCode { .. } => {
            ("token", "")
        }
    };
    html! {
        (error_line(error))
        p { "Type the code we sent to your new " (what) " " strong { (value) } ". Until then your old one stays." }
        form.stack method="post" action=(portal.path("/account/verify")) {
            (csrf_field(&visitor.csrf))
            label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
            div.buttons { button type="submit" { "Confirm" } }
        }
        p { a href=(portal.path("/account")) { "Back" } }
    }
}

pub async fn show_verify(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let visitor = require_visitor(&state, &request, &portal).await?;
    let Some(pending @ Pending::Contact { .. }) =
        Pending::of(&state, &visitor, crate::clock::now())
    else {
        return Ok(portal.redirect_with_problem(
            &state,
            "/account",
            "There is no change waiting for a code. Start again.",
        ));
    };
    Ok(Frame {
        portal: &portal,
        title: confirm_title(&pending),
        visitor: Some(&visitor),
        flash: portal.flash_of(&state, &request),
    }
    .render(&state, verify_body(&portal, &visitor, &pending, None)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

pub async fn submit_verify(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let visitor = require_visitor(&state, &request, &portal).await?;
    visitor.check_csrf(&form.csrf)?;
    super::limits::refuse_if_blocked(&state, &request, &portal, &visitor.user.login).await?;
    let now = crate::clock::now();
    let Some(pending) = Pending::of(&state, &visitor, now) else {
        return Ok(portal.redirect_with_problem(
            &state,
            "/account",
            "The code has expired. Give the new address again.",
        ));
    };
    let Pending::Contact { phone, value, code } = pending.clone() else {
        return Err(PortalError::NotFound);
    };
    // The Allowed Action may have been turned off since the code was sent.
    refuse_unless_allowed(&state, &request, &portal, &visitor, contact_action(phone)).await?;
    let name = if phone {
        "portal.change_phone"
    } else {
        "portal.change_email"
    };
    let mut entry = visitor.audit(&portal, &request, name, "rejected");
    entry.reason = Some("bad_code".into());
    let typed = code.check(&state.keys, &form.code);
    if !matches!(typed, Typed::Right) {
        super::limits::count_failure(&state, &request, &portal, &visitor.user.login).await?;
    }
    match typed {
        // A code asked for before the user came from a directory changes nothing now.
        Typed::Right
            if crate::directories::keeper(&state.store, visitor.user.id)
                .await?
                .is_some() =>
        {
            pending::keep(&state, &visitor, None, None, now, entry).await?;
            Ok(portal.redirect_with_problem(
                &state,
                "/account",
                "Your details come from the directory now: nothing was changed.",
            ))
        }
        Typed::Right => {
            let field = if phone {
                ContactField::Phone
            } else {
                ContactField::Email
            };
            let mut entry = visitor.audit(&portal, &request, name, "ok");
            let change = if phone { Change::Phone } else { Change::Email };
            // To the address before the change: a new one would tell only whoever set it.
            entry.notice = super::notify::notice(&state, &portal, &visitor.user, change)?;
            state
                .store
                .change_portal_contact(
                    visitor.id_hash.clone(),
                    visitor.user.id,
                    field,
                    value,
                    now,
                    entry,
                )
                .await?;
            state.delivery.wake();
            let message = if phone {
                "Your new phone number is saved."
            } else {
                "Your new email address is saved."
            };
            Ok(portal.redirect_with_flash(&state, "/account", message))
        }
        Typed::UsedUp => {
            pending::keep(&state, &visitor, None, None, now, entry).await?;
            Ok(portal.redirect_with_problem(
                &state,
                "/account",
                "Too many wrong codes: nothing was changed. Give the new address again to get a new code.",
            ))
        }
        Typed::Wrong(code) => {
            let pending = Pending::Contact { phone, value, code };
            pending::keep(&state, &visitor, Some(&pending), None, now, entry).await?;
            Ok(Frame {
                portal: &portal,
                title: confirm_title(&pending),
                visitor: Some(&visitor),
                flash: None,
            }
            .render_with(
                &state,
                actix_web::http::StatusCode::BAD_REQUEST,
                verify_body(
                    &portal,
                    &visitor,
                    &pending,
                    Some("The code is not right. Check it and try again."),
                ),
            ))
        }
    }
}
