//! The self-service portal: users of a resource log in at `/portal/<address>` and enrol and
//! manage their own second factors there, within what the resource's Self-Service settings
//! allow.
//!
//! - The address is looked up on every request; an unknown address and a disabled portal get
//!   the same "not available" page.
//! - A portal session is a `sessions` row of kind `portal`, bound to the user and the resource,
//!   with a short idle timeout; its cookie is scoped to the portal's path, so it is never an
//!   admin session and one browser may be logged in to two portals.
//! - Every action is checked again against the Allowed Actions (403 and nothing changed when
//!   off), every form carries the session's CSRF token, and everything is audited with the actor
//!   `user:LOGIN`.

mod account;
mod actions;
mod enrol;
pub(super) mod limits;
mod login;
pub(super) mod notify;
mod pending;
mod tokens;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use maud::{Markup, html};

use super::form::{Flash, Notice};
use super::{AppState, PageError};
use super::{session, views};
use crate::crypto;
use crate::domain::{Refused, RuleError};
use crate::store::resources::{PortalAction, SelfService};
use crate::store::{AuditEntry, GeneralSettings, Resource, SessionKind, SessionStage, User};

/// The portal session's cookie, scoped to `/portal/<address>`.
const SESSION_COOKIE: &str = "otpgate_portal";
/// The cookie of a login in progress, scoped the same way.
const LOGIN_COOKIE: &str = "otpgate_portal_login";
/// The flash message after a redirect, scoped the same way.
const FLASH_COOKIE: &str = "otpgate_portal_flash";
/// A portal session ends after the general settings' idle timeout without a request, and
/// after this long in any case.
const MAX_SECONDS: i64 = 8 * 3600;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/assets/portal.js", web::get().to(script))
        .route("/portal/{address}", web::get().to(tokens::show_home))
        .route("/portal/{address}/", web::get().to(tokens::show_home))
        .configure(login::routes)
        .configure(tokens::routes)
        .configure(enrol::routes)
        .configure(account::routes)
        .configure(actions::routes);
}

const SCRIPT: &str = include_str!("../../../assets/portal.js");

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(SCRIPT)
}

/// Errors of portal pages: the one place they become responses.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// An unknown address or a disabled portal: the same answer for both.
    #[error("not available")]
    NotAvailable,
    /// Not logged in (or the session ended): back to the portal's login.
    #[error("login required")]
    LoginRequired(String),
    /// The action is not among the resource's Allowed Actions, or the object is not the user's.
    #[error("not allowed")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// Too many failed steps from the client's address (or for the login name at it): the
    /// step is refused unchecked until the block ends.
    #[error("blocked after too many failures")]
    Blocked {
        resource: String,
        block: crate::limiter::Block,
    },
    #[error(transparent)]
    Page(#[from] PageError),
}

impl From<crate::store::StoreError> for PortalError {
    fn from(error: crate::store::StoreError) -> Self {
        PortalError::Page(error.into())
    }
}

impl From<crate::crypto::CryptoError> for PortalError {
    fn from(error: crate::crypto::CryptoError) -> Self {
        PortalError::Page(error.into())
    }
}

impl From<Refused> for PortalError {
    fn from(refused: Refused) -> Self {
        PortalError::Page(refused.into())
    }
}

impl From<RuleError> for PortalError {
    fn from(error: RuleError) -> Self {
        PortalError::Page(error.into())
    }
}

impl From<crate::codes::Unusable> for PortalError {
    fn from(error: crate::codes::Unusable) -> Self {
        PortalError::Page(PageError::Internal(error.into()))
    }
}

fn plain_page(title: &str, message: &str) -> Markup {
    views::document(
        title,
        None,
        html! {
            body.bare.portal {
                main.card {
                    h1 { (title) }
                    p { (message) }
                }
            }
        },
    )
}

impl ResponseError for PortalError {
    fn status_code(&self) -> StatusCode {
        match self {
            PortalError::NotAvailable | PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::LoginRequired(_) => StatusCode::SEE_OTHER,
            PortalError::Forbidden => StatusCode::FORBIDDEN,
            PortalError::Blocked { .. } => StatusCode::TOO_MANY_REQUESTS,
            PortalError::Page(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            PortalError::Blocked { resource, block } => return blocked_page(resource, *block),
            // The portal's own frame, never the panel's with its way back to /admin.
            PortalError::Page(
                error @ (PageError::TooManyRequests {
                    retry_after_seconds,
                }
                | PageError::Busy(crate::domain::Busy {
                    retry_after_seconds,
                })),
            ) => {
                let message = match error {
                    PageError::Busy(_) => format!(
                        "The server is busy checking other logins right now. Try again in {}.",
                        views::wait_in_words(*retry_after_seconds)
                    ),
                    _ => format!(
                        "Too many attempts. Try again in {}.",
                        views::wait_in_words(*retry_after_seconds)
                    ),
                };
                return HttpResponse::build(error.status_code())
                    .insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()))
                    .content_type("text/html; charset=utf-8")
                    .body(plain_page("Please wait", &message).into_string());
            }
            PortalError::Page(error) => return error.error_response(),
            PortalError::LoginRequired(address) => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, format!("/portal/{address}")))
                    .finish();
            }
            PortalError::NotAvailable => (
                "Not available",
                "This self-service page is not available. Check the address you were given.",
            ),
            PortalError::NotFound => ("Not found", "There is nothing at this address."),
            PortalError::Forbidden => (
                "Not allowed",
                "This action is not available on this self-service page. Nothing was changed.",
            ),
        };
        HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .body(plain_page(title, message).into_string())
    }
}

/// The page of a blocked step, in the portal's frame: what happened, for how long, and that
/// nothing else is needed but waiting.
fn blocked_page(resource: &str, block: crate::limiter::Block) -> HttpResponse {
    let wait = views::wait_in_words(block.retry_after_seconds);
    let why = match block.limit {
        crate::limiter::PortalLimit::Address => {
            "There were too many failed attempts from your network in a short time"
        }
        crate::limiter::PortalLimit::Login => {
            "There were too many failed attempts for this login name in a short time"
        }
    };
    let markup = views::document(
        &format!("Too many failed attempts · {resource}"),
        None,
        html! {
            body.portal {
                header.portal-bar {
                    span.portal-resource { (resource) }
                    span.portal-what { "Self-service" }
                }
                main.card.portal-main {
                    h1 { "Too many failed attempts" }
                    p.error role="alert" { (why) ", so this page is paused. Try again in " (wait) "." }
                    p.note { "Nothing was changed. If you did not make these attempts, tell your administrator." }
                }
            }
        },
    );
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, block.retry_after_seconds.to_string()))
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// One resource's portal, looked up by its address.
pub struct Portal {
    pub resource: Resource,
    pub settings: SelfService,
    /// The address as stored (the cookies' path uses it).
    pub address: String,
    /// The general settings in force: the PIN policy and the session idle timeout.
    pub general: GeneralSettings,
    /// Where the portal's cookies live: `/portal/<address>`.
    cookie_path: String,
}

impl Portal {
    pub async fn open(state: &AppState, address: &str) -> Result<Portal, PortalError> {
        let address = address.trim().to_lowercase();
        if address.is_empty() || address.len() > 100 {
            return Err(PortalError::NotAvailable);
        }
        let Some((resource, settings)) = state.store.self_service_by_address(address).await? else {
            return Err(PortalError::NotAvailable);
        };
        let Some(address) = settings.address.clone().filter(|_| settings.enabled) else {
            return Err(PortalError::NotAvailable);
        };
        Ok(Portal {
            resource,
            settings,
            cookie_path: format!("/portal/{address}"),
            address,
            general: state.general().await?,
        })
    }

    /// The portal's own path, with `rest` appended (`""` for the home page).
    pub fn path(&self, rest: &str) -> String {
        format!("/portal/{}{rest}", self.address)
    }

    pub fn require(&self, action: PortalAction) -> Result<(), PortalError> {
        if self.settings.allows(action) {
            Ok(())
        } else {
            Err(PortalError::Forbidden)
        }
    }

    /// The account an authenticator app shows for the visitor's token of this portal.
    pub fn app_account(&self, visitor: &Visitor) -> String {
        format!("{}@{}", visitor.user.login, self.resource.name)
    }

    /// A cookie scoped to this portal.
    pub fn cookie(
        &self,
        state: &AppState,
        name: &'static str,
        value: String,
    ) -> actix_web::cookie::Cookie<'static> {
        let mut cookie = session::cookie(state, name, value);
        cookie.set_path(self.cookie_path.clone());
        cookie
    }

    pub fn removal_cookie(
        &self,
        state: &AppState,
        name: &'static str,
    ) -> actix_web::cookie::Cookie<'static> {
        let mut cookie = session::removal_cookie(state, name);
        cookie.set_path(self.cookie_path.clone());
        cookie
    }

    /// This portal's flash message, in a cookie scoped to its address.
    fn flash(&self) -> Flash<'_> {
        Flash {
            cookie: FLASH_COOKIE,
            path: &self.cookie_path,
        }
    }

    /// A redirect (303) within the portal that shows `message` on the next page as news.
    pub fn redirect_with_flash(&self, state: &AppState, rest: &str, message: &str) -> HttpResponse {
        self.flash().redirect(state, &self.path(rest), message)
    }

    /// A redirect (303) within the portal that shows `message` on the next page as a problem:
    /// nothing was done, or the visitor has to start again.
    pub fn redirect_with_problem(
        &self,
        state: &AppState,
        rest: &str,
        message: &str,
    ) -> HttpResponse {
        self.flash()
            .redirect_problem(state, &self.path(rest), message)
    }

    /// The flash message the previous redirect left, if any.
    pub fn flash_of(&self, state: &AppState, request: &HttpRequest) -> Option<Notice> {
        self.flash().read(state, request)
    }

    /// An audit entry for this resource.
    pub fn audit(
        &self,
        request: &HttpRequest,
        actor: &str,
        action: &str,
        result: &str,
    ) -> AuditEntry {
        AuditEntry {
            resource_id: Some(self.resource.id),
            ..AuditEntry::new(crate::clock::now(), format!("user:{actor}"), action, result)
                .client_ip(session::client_ip(request))
        }
    }
}

/// A logged-in portal user.
pub struct Visitor {
    pub user: User,
    pub csrf: String,
    id_hash: Vec<u8>,
    /// What the session is in the middle of, sealed (see `pending`).
    pending: Option<Vec<u8>>,
}

impl Visitor {
    pub fn check_csrf(&self, given: &str) -> Result<(), PortalError> {
        Ok(session::check_csrf(&self.csrf, given)?)
    }

    /// An audit entry by this user in this portal.
    pub fn audit(
        &self,
        portal: &Portal,
        request: &HttpRequest,
        action: &str,
        result: &str,
    ) -> AuditEntry {
        AuditEntry {
            user_id: Some(self.user.id),
            ..portal.audit(request, &self.user.login, action, result)
        }
    }
}

/// Refuses an action that is not among the resource's Allowed Actions: audited, and 403 with
/// nothing changed, also for a forged request.
pub async fn refuse_unless_allowed(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    visitor: &Visitor,
    action: PortalAction,
) -> Result<(), PortalError> {
    if let Err(refused) = portal.require(action) {
        let mut entry = visitor.audit(portal, request, "portal.forbidden", "refused");
        entry.detail = Some(action.as_str().to_string());
        state.store.audit(entry).await?;
        return Err(refused);
    }
    Ok(())
}

/// The logged-in user of this portal, or `LoginRequired`. The session must be bound to this
/// resource, used within the idle timeout of the general settings (as they are now, so that a
/// shorter timeout applies to open sessions at once), and the user still enabled and assigned
/// to it. Extends the idle timeout.
pub async fn require_visitor(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
) -> Result<Visitor, PortalError> {
    let required = || PortalError::LoginRequired(portal.address.clone());
    let cookie = request.cookie(SESSION_COOKIE).ok_or_else(required)?;
    let id_hash = crypto::sha256(cookie.value().as_bytes());
    let now = crate::clock::now();
    let found = state
        .store
        .session(id_hash.clone(), SessionKind::Portal, now)
        .await?
        .ok_or_else(required)?;
    if found.stage != SessionStage::Full || found.resource_id != Some(portal.resource.id) {
        return Err(required());
    }
    let idle_seconds = portal.general.portal_idle_seconds();
    if now - found.last_seen_at >= idle_seconds {
        state.store.delete_session(id_hash).await?;
        return Err(required());
    }
    let user_id = found.user_id.ok_or_else(required)?;
    let user = state
        .store
        .portal_user_by_id(portal.resource.id, user_id)
        .await?
        .ok_or_else(required)?;
    if now - found.last_seen_at >= 30 {
        state
            .store
            .touch_session(id_hash.clone(), now, now + idle_seconds, MAX_SECONDS)
            .await?;
    }
    Ok(Visitor {
        user,
        csrf: found.csrf_token,
        id_hash,
        pending: found.pending_secret,
    })
}

/// A page of the portal: the resource's name on top, and logout for a logged-in user.
pub struct Frame<'a> {
    pub portal: &'a Portal,
    pub title: &'a str,
    pub visitor: Option<&'a Visitor>,
    pub flash: Option<Notice>,
}

impl Frame<'_> {
    pub fn render(self, state: &AppState, body: Markup) -> HttpResponse {
        self.render_with(state, StatusCode::OK, body)
    }

    pub fn render_with(self, state: &AppState, status: StatusCode, body: Markup) -> HttpResponse {
        let portal = self.portal;
        let markup = views::document(
            &format!("{} · {}", self.title, portal.resource.name),
            Some("/assets/portal.js"),
            html! {
                body.portal {
                    header.portal-bar {
                        span.portal-resource { (portal.resource.name) }
                        span.portal-what { "Self-service" }
                        @if let Some(visitor) = self.visitor {
                            form.logout method="post" action=(portal.path("/logout")) {
                                input type="hidden" name="csrf" value=(visitor.csrf);
                                span.who { (visitor.user.login) }
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                    main.card.portal-main {
                        h1 { (self.title) }
                        @if let Some(flash) = &self.flash {
                            (flash.markup())
                        }
                        (body)
                    }
                }
            },
        );
        let mut response = HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(markup.into_string());
        if self.flash.is_some() {
            portal.flash().clear(state, &mut response);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_not_available_page_names_neither_reason() {
        let response = PortalError::NotAvailable.error_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
