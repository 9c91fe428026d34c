//! The admin panel's pages after login: each area in its own module, sharing the frame, the
//! flash message after a redirect, and the checks every form goes through.
//!
//! Every page answers `LoginRequired` (a redirect to the login page) without a full session;
//! every state change is a POST carrying the session's CSRF token, is audited with the acting
//! administrator, and ends in a redirect (POST-redirect-GET) with a flash message — or, when
//! the input is wrong, re-renders the form with what was typed and an inline error.

mod admins;
mod audit;
mod dashboard;
mod directories;
mod login;
mod radius;
mod resources;
mod settings;
mod setup;
mod tokens;
mod tokens_add;
mod users;
mod users_import;

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::form::{self, Flash, Notice};
use super::session::{self, LoggedIn};
use super::views::{self, PanelFrame};
use super::{AppState, PageError};
use crate::store::AuditEntry;

pub use session::require_admin;

/// The cookie that carries a flash message to the page after a redirect.
const FLASH_COOKIE: &str = "__Host-otpgate_flash";

pub use setup::SetupState;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(setup::root))
        .route("/setup", web::get().to(setup::show_setup))
        .route("/setup", web::post().to(setup::submit_setup))
        .route("/setup/totp", web::get().to(setup::show_setup_totp))
        .route("/setup/totp", web::post().to(setup::submit_setup_totp))
        .route("/admin", web::get().to(dashboard::show_dashboard))
        .route("/admin/", web::get().to(dashboard::show_dashboard))
        .route("/admin/login", web::get().to(login::show_login))
        .route("/admin/login", web::post().to(login::submit_login))
        .route("/admin/enrol", web::get().to(login::show_enrol))
        .route("/admin/enrol", web::post().to(login::submit_enrol))
        .route("/admin/logout", web::post().to(login::logout));
    users::routes(config);
    // Before the token's own routes, which would take `new` and `import` for an id.
    tokens_add::routes(config);
    tokens::routes(config);
    resources::routes(config);
    radius::routes(config);
    // Before Settings' own routes, none of which takes a path below `directories`.
    directories::routes(config);
    settings::routes(config);
    audit::routes(config);
    admins::routes(config);
}

/// One admin-panel page being answered: the administrator, and the flash message the previous
/// redirect left (read once, then cleared).
pub struct Page {
    pub logged_in: LoggedIn,
    flash: Option<Notice>,
    /// Whether the request brought a flash cookie, which the answer then clears.
    flash_cookie: bool,
}

impl Page {
    /// The logged-in administrator and any flash message; `LoginRequired` otherwise.
    pub async fn open(
        state: &web::Data<AppState>,
        request: &HttpRequest,
    ) -> Result<Page, PageError> {
        let logged_in = require_admin(state, request).await?;
        let flash = FLASH.read(state, request);
        Ok(Page {
            logged_in,
            flash_cookie: flash.is_some(),
            flash,
        })
    }

    /// Takes the flash message, for a page that shows it beside the form it is about rather
    /// than on top (where it may be out of sight).
    pub fn take_flash(&mut self) -> Option<String> {
        self.flash.take().map(|notice| notice.text)
    }

    /// The acting administrator's name as the audit log records it.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.logged_in.admin.login)
    }

    pub fn csrf(&self) -> &str {
        &self.logged_in.csrf
    }

    /// The hidden CSRF field of this page's forms.
    pub fn csrf_field(&self) -> Markup {
        form::csrf_field(self.csrf())
    }

    /// A one-button form that posts to `action`.
    pub fn post_button(&self, action: &str, label: &str, class: &str) -> Markup {
        form::post_button(self.csrf(), action, label, class)
    }

    /// The confirmation step of a destructive action, as a whole page.
    pub fn confirm(
        &self,
        state: &AppState,
        title: &str,
        active: &str,
        confirmation: form::Confirmation<'_>,
    ) -> HttpResponse {
        let body = form::confirmation(self.csrf(), confirmation);
        self.render(state, title, active, body)
    }

    /// Checks a form's CSRF token against the session's.
    pub fn check_csrf(&self, given: &str) -> Result<(), PageError> {
        session::check_csrf(&self.logged_in.csrf, given)
    }

    /// An audit entry by this administrator, from this request's address.
    pub fn audit(&self, request: &HttpRequest, action: &str, result: &str) -> AuditEntry {
        AuditEntry::new(crate::clock::now(), self.actor(), action, result)
            .client_ip(session::client_ip(request))
    }

    /// The whole page in the panel's frame, with the flash message on top. `active` names the
    /// navigation entry to highlight.
    pub fn render(
        &self,
        state: &AppState,
        title: &str,
        active: &str,
        body: Markup,
    ) -> HttpResponse {
        let frame = PanelFrame {
            title,
            active,
            admin_login: &self.logged_in.admin.login,
            csrf: &self.logged_in.csrf,
        };
        let markup = views::panel_page(
            &frame,
            html! {
                @if let Some(flash) = &self.flash {
                    (flash.markup())
                }
                (body)
            },
        );
        let mut response = HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(markup.into_string());
        if self.flash_cookie {
            FLASH.clear(state, &mut response);
        }
        response
    }
}

/// The panel's flash message: one cookie for the whole panel.
const FLASH: Flash<'static> = Flash {
    cookie: FLASH_COOKIE,
    path: "/",
};

/// A redirect (303) to `location` that shows `message` on the next page.
pub fn redirect_with_flash(state: &AppState, location: &str, message: &str) -> HttpResponse {
    FLASH.redirect(state, location, message)
}

/// A redirect (303) to `location` that shows `message` on the next page as a problem.
pub fn redirect_with_problem(state: &AppState, location: &str, message: &str) -> HttpResponse {
    FLASH.redirect_problem(state, location, message)
}
