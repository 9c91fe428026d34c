//! The admin panel's pages after login: each area in its own module, sharing the frame, the
//! flash message after a redirect, and the checks every form goes through.
//!
//! Every page answers `LoginRequired` (a redirect to the login page) without a full session;
//! every state change is a POST carrying the session's CSRF token, is audited with the acting
//! administrator, and ends in a redirect (POST-redirect-GET) with a flash message — or, when
//! the input is wrong, re-renders the form with what was typed and an inline error.

mod admins;
mod audit;
pub mod dashboard;
mod resources;
mod settings;
mod tokens;
mod tokens_add;
mod users;
mod users_import;

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::session::{self, LoggedIn};
use super::views::{self, PanelFrame};
use super::{AppState, PageError};
use crate::store::AuditEntry;

pub use session::require_admin;

/// The cookie that carries a flash message to the page after a redirect.
const FLASH_COOKIE: &str = "otpgate_flash";

pub fn routes(config: &mut web::ServiceConfig) {
    users::routes(config);
    tokens::routes(config);
    resources::routes(config);
    settings::routes(config);
    audit::routes(config);
    admins::routes(config);
}

/// One admin-panel page being answered: the administrator, and the flash message the previous
/// redirect left (read once, then cleared).
pub struct Page {
    pub logged_in: LoggedIn,
    flash: Option<String>,
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
        let flash = request
            .cookie(FLASH_COOKIE)
            .map(|c| c.value().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| percent_decode(&v));
        Ok(Page {
            logged_in,
            flash_cookie: flash.is_some(),
            flash,
        })
    }

    /// Takes the flash message, for a page that shows it beside the form it is about rather
    /// than on top (where it may be out of sight).
    pub fn take_flash(&mut self) -> Option<String> {
        self.flash.take()
    }

    /// The acting administrator's name as the audit log records it.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.logged_in.admin.login)
    }

    pub fn csrf(&self) -> &str {
        &self.logged_in.csrf
    }

    /// Checks a form's CSRF token against the session's.
    pub fn check_csrf(&self, given: &str) -> Result<(), PageError> {
        session::check_csrf(&self.logged_in.csrf, given)
    }

    /// An audit entry by this administrator, from this request's address.
    pub fn audit(&self, request: &HttpRequest, action: &str, result: &str) -> AuditEntry {
        AuditEntry::new(session::now(), self.actor(), action, result)
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
                    p.flash role="status" { (flash) }
                }
                (body)
            },
        );
        let mut response = HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(markup.into_string());
        if self.flash_cookie {
            let _ = response.add_cookie(&session::removal_cookie(state, FLASH_COOKIE));
        }
        response
    }
}

/// A redirect (303) to `location` that shows `message` on the next page.
pub fn redirect_with_flash(state: &AppState, location: &str, message: &str) -> HttpResponse {
    let mut cookie = session::cookie(state, FLASH_COOKIE, percent_encode(message));
    cookie.set_max_age(CookieDuration::seconds(60));
    let mut response = see_other(location);
    let _ = response.add_cookie(&cookie);
    response
}

/// A redirect (303) to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A cookie value may not hold spaces, commas or semicolons: the flash text is
/// percent-encoded byte by byte.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'!' | b'(' | b')') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = [bytes[i + 1], bytes[i + 2]];
            if let Some(byte) = std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A time as the panel shows it: `2026-11-22 14:03:09` (UTC).
pub fn format_time(at: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_message_survives_its_trip_through_a_cookie() {
        for text in ["User “jdoe” created.", "a; b, c=d %41", "", "ünïcödé"] {
            let encoded = percent_encode(text);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
            );
            assert_eq!(percent_decode(&encoded), text);
        }
    }

    #[test]
    fn a_broken_escape_in_a_flash_cookie_is_kept_as_text() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
