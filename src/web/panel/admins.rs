//! The admin panel's Administrators page: who may log in to the panel, adding one (who links
//! an authenticator app at the first login), disabling and enabling, and resetting the
//! authenticator app. The last enabled administrator cannot be disabled, and nobody disables
//! their own account: the store refuses both in the same statement that would change it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Page, redirect_with_flash};
use crate::clock::now;
use crate::store::logins::Account;
use crate::store::{Admin, AdminChange, NewAdmin};
use crate::web::form::{Confirmation, CsrfForm, Problems, with_status};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

const LIST: &str = "/admin/administrators";

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(LIST, web::get().to(list_admins))
        .route(LIST, web::post().to(create_admin))
        .route(
            "/admin/administrators/{id}/disable",
            web::get().to(confirm_disable),
        )
        .route(
            "/admin/administrators/{id}/{switch:enable|disable}",
            web::post().to(set_admin_enabled),
        )
        .route(
            "/admin/administrators/{id}/reset-2fa",
            web::get().to(confirm_reset_2fa),
        )
        .route(
            "/admin/administrators/{id}/reset-2fa",
            web::post().to(reset_2fa),
        )
        .route(
            "/admin/administrators/{id}/unlock",
            web::post().to(unlock_admin),
        );
}

#[derive(Deserialize, Default)]
pub struct NewAdminForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

fn admin_row(page: &Page, admin: &Admin) -> Markup {
    let own = admin.id == page.logged_in.admin.id;
    html! {
        tr {
            td { (admin.login) @if own { " " span.badge { "you" } } }
            td {
                @if admin.enabled { span.result-ok { "enabled" } } @else { span.result-fail { "disabled" } }
            }
            td {
                @if admin.totp_secret.is_some() { "linked" } @else { "links one at the next login" }
            }
            td { (format_time(admin.created_at)) }
            td { @if let Some(at) = admin.last_login_at { (format_time(at)) } @else { "never" } }
            td.row-actions {
                @if admin.enabled {
                    @if !own {
                        a href=(format!("/admin/administrators/{}/disable", admin.id)) { "Disable" }
                    }
                } @else {
                    form.inline method="post" action=(format!("/admin/administrators/{}/enable", admin.id)) {
                        input type="hidden" name="csrf" value=(page.csrf());
                        button.link type="submit" { "Enable" }
                    }
                }
                @if admin.totp_secret.is_some() {
                    " "
                    a href=(format!("/admin/administrators/{}/reset-2fa", admin.id)) { "Reset 2FA" }
                }
                @if !own {
                    " "
                    form.inline method="post" action=(format!("/admin/administrators/{}/unlock", admin.id)) {
                        input type="hidden" name="csrf" value=(page.csrf());
                        button.link type="submit" { "Unlock" }
                    }
                }
            }
        }
    }
}

async fn admins_page(
    page: &Page,
    state: &AppState,
    form: &NewAdminForm,
    errors: &Problems,
) -> Result<HttpResponse, PageError> {
    let admins = state.store.list_admins().await?;
    let body = html! {
        table {
            thead { tr { th { "Login" } th { "Status" } th { "Authenticator app" } th { "Created (UTC)" } th { "Last login (UTC)" } th { span.visually-hidden { "Actions" } } } }
            tbody { @for admin in &admins { (admin_row(page, admin)) } }
        }
        h2 { "Add an administrator" }
        p.note { "Give the new administrator their login and password. At their first login they link an authenticator app before they can do anything else." }
        (errors.summary())
        form.stack method="post" action=(LIST) {
            input type="hidden" name="csrf" value=(page.csrf());
            label { "Login name" input type="text" name="login" value=(form.login) required autocomplete="off"; (errors.note_as_written("login")) }
            label { "Password" small { "At least 10 characters." } input type="password" name="password" required autocomplete="new-password"; (errors.note_as_written("password")) }
            label { "Password again" input type="password" name="password_confirm" required autocomplete="new-password"; }
            div { button type="submit" { "Add administrator" } }
        }
    };
    Ok(page.render(state, "Administrators", "Administrators", body))
}

async fn list_admins(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    admins_page(
        &page,
        &state,
        &NewAdminForm::default(),
        &Problems::default(),
    )
    .await
}

async fn create_admin(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<NewAdminForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let login = form.login.trim().to_string();
    let form = NewAdminForm {
        login: login.clone(),
        ..form.into_inner()
    };
    let mut errors = Problems::default();
    if let Err(problem) =
        crate::domain::admin_credentials(&login, &form.password, &form.password_confirm)
    {
        let field = match problem.field {
            "login" => "login",
            _ => "password",
        };
        errors.at(field, problem.message);
    } else if state.store.admin_by_login(login.clone()).await?.is_some() {
        errors.at("login", "An administrator with this login exists already.");
    }
    if !errors.is_empty() {
        let response = admins_page(&page, &state, &form, &errors).await?;
        return Ok(with_status(response, StatusCode::BAD_REQUEST));
    }
    let password_hash = state.passwords.hash(form.password.clone()).await?;
    let created = state
        .store
        .create_admin(
            NewAdmin {
                login: login.clone(),
                password_hash,
                totp_secret: None,
                totp_last_step: None,
            },
            page.actor(),
            now(),
        )
        .await;
    match created {
        Ok(_) => Ok(redirect_with_flash(
            &state,
            LIST,
            &format!(
                "Administrator “{login}” added. They link an authenticator app at their first login."
            ),
        )),
        Err(crate::store::StoreError::Conflict(_)) => {
            errors.at("login", "An administrator with this login exists already.");
            let response = admins_page(&page, &state, &form, &errors).await?;
            Ok(with_status(response, StatusCode::BAD_REQUEST))
        }
        Err(error) => Err(error.into()),
    }
}

async fn admin_or_404(state: &AppState, id: i64) -> Result<Admin, PageError> {
    state
        .store
        .admin_by_id(id)
        .await?
        .ok_or(PageError::NotFound)
}

async fn confirm_disable(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let admin = admin_or_404(&state, path.into_inner()).await?;
    let action = format!("/admin/administrators/{}/disable", admin.id);
    Ok(page.confirm(
        &state,
        "Disable administrator",
        "Administrators",
        Confirmation {
            question: html! {
                p { "Disable " strong { (admin.login) } "? They are logged out at once and can no longer log in until enabled again." }
            },
            action: &action,
            button: "Disable",
            back: LIST,
        },
    ))
}

fn change_message(change: AdminChange, login: &str, done: &str) -> Result<String, PageError> {
    Ok(match change {
        AdminChange::Done => format!("Administrator “{login}” {done}."),
        AdminChange::Unchanged => format!("Nothing changed: “{login}” was {done} already."),
        AdminChange::LastActive => format!(
            "“{login}” is the last enabled administrator and stays enabled: otherwise nobody could log in."
        ),
        AdminChange::OwnAccount => {
            "You cannot disable your own account; ask another administrator.".to_string()
        }
        AdminChange::NoSuchAdmin => return Err(PageError::NotFound),
    })
}

/// Enable or Disable of an administrator. The panel refuses to disable the last active
/// administrator or one's own account; the refusal is audited.
async fn set_admin_enabled(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (id, switch) = path.into_inner();
    let (enabled, action, done) = match switch.as_str() {
        "enable" => (true, "admin.enable", "enabled"),
        _ => (false, "admin.disable", "disabled"),
    };
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let admin = admin_or_404(&state, id).await?;
    let change = state
        .store
        .set_admin_enabled(
            admin.id,
            enabled,
            page.logged_in.admin.id,
            page.audit(&request, action, "ok"),
        )
        .await?;
    let refused = matches!(change, AdminChange::LastActive | AdminChange::OwnAccount);
    let message = change_message(change, &admin.login, done)?;
    if refused {
        state
            .store
            .audit(
                page.audit(&request, action, "refused")
                    .detail(admin.login.clone()),
            )
            .await?;
    }
    Ok(redirect_with_flash(&state, LIST, &message))
}

async fn confirm_reset_2fa(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let admin = admin_or_404(&state, path.into_inner()).await?;
    let own = admin.id == page.logged_in.admin.id;
    let action = format!("/admin/administrators/{}/reset-2fa", admin.id);
    Ok(page.confirm(
        &state,
        "Reset two-factor authentication",
        "Administrators",
        Confirmation {
            question: html! {
                p { "Forget the authenticator app of " strong { (admin.login) } "? They are logged out and link a new app at their next login with their password." }
                @if own { p.note { "This is your own account: you will be logged out now." } }
            },
            action: &action,
            button: "Reset 2FA",
            back: LIST,
        },
    ))
}

async fn reset_2fa(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let admin = admin_or_404(&state, path.into_inner()).await?;
    if !state
        .store
        .reset_admin_2fa(admin.id, page.audit(&request, "admin.reset_2fa", "ok"))
        .await?
    {
        return Err(PageError::NotFound);
    }
    Ok(redirect_with_flash(
        &state,
        LIST,
        &format!(
            "The authenticator app of “{}” is reset; they link a new one at their next login.",
            admin.login
        ),
    ))
}

/// Unlock of an administrator: ends the failed logins in a row that locked the account (or
/// make it wait).
async fn unlock_admin(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let admin = admin_or_404(&state, path.into_inner()).await?;
    let cleared = state
        .store
        .unlock_login(
            Account::Admin(admin.id),
            page.audit(&request, "admin.unlock", "ok")
                .detail(admin.login.clone()),
        )
        .await?;
    let message = if cleared {
        format!(
            "The failed logins of “{}” are reset; the account is unlocked.",
            admin.login
        )
    } else {
        format!("“{}” had no failed logins to reset.", admin.login)
    };
    Ok(redirect_with_flash(&state, LIST, &message))
}
