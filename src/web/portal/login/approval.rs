//! Approve in Telegram at the portal's login: past the password (or the emailed code), a user
//! whose BOT token can approve asks the bot instead of typing a code. The page shows the number
//! to press (number matching) and the time left, and updates by itself: its script asks the
//! status address, which waits a few seconds for the decision (`authenticate_or_wait`), and
//! opens the portal once approved. Without JavaScript, Continue asks the same. The approval's
//! transaction is held in the login in progress, never taken from the client.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::{
    Frame, LoginStage, Portal, PortalError, PortalLogin, SecretForm, Step, authenticator, caller,
    login_in_progress, login_step, open_session,
};
use crate::auth::{Answer, Attempt};
use crate::domain::{IdOrName, Refused, RuleError};
use crate::store::User;
use crate::store::approvals::{ApprovalState, DenyReason};
use crate::store::auth::AuthTarget;
use crate::web::form::{csrf_field, see_other};
use crate::web::{AppState, session};

const DENIED: &str = "The login was denied in Telegram. If it was not you who tried to log in, \
                      tell your administrator.";
const WRONG_NUMBER: &str = "The number pressed in Telegram was not the one the login page showed, \
                            so the login was refused. Log in again.";
const APPROVAL_EXPIRED: &str =
    "The approval in Telegram expired before it was answered. Log in again.";
const NOT_APPROVABLE: &str =
    "This login cannot be approved in Telegram now. Type a one-time password instead.";
/// How long the status address waits for the decision before it answers pending.
const STATUS_WAIT_SECONDS: u64 = 5;

/// Where the login's approval stands, as the page tells it.
enum Resolution {
    Pending {
        expires_at: i64,
    },
    /// Approved, and its one login taken by this request: the session is the user's.
    Approved(Box<User>),
    /// Denied, a wrong number, expired, or never asked: back to the login with the reason.
    Refused {
        state: &'static str,
        message: &'static str,
    },
    /// Another request of this login took the approval (and opened the session).
    Ended,
}

/// Asks the decision of the login's approval, waiting until `wait_until` while it is pending.
async fn resolve(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    id_hash: &[u8],
    login: &PortalLogin,
    wait_until: crate::auth::WaitUntil,
) -> Result<Resolution, PortalError> {
    let refused = |state, message| Resolution::Refused { state, message };
    let (Some(transaction), Some(user_id)) = (login.approval_transaction.clone(), login.user_id)
    else {
        return Ok(refused("none", NOT_APPROVABLE));
    };
    let answer = authenticator(state)
        .authenticate_or_wait(
            &caller(request, portal, &login.login),
            Attempt {
                target: AuthTarget {
                    resource: IdOrName::Id(portal.resource.id),
                    user: Some(IdOrName::Name(login.login.clone())),
                    token: None,
                    transaction: Some(transaction.clone()),
                    address: session::client_ip(request),
                },
                password: None,
                otp: None,
                end_user_ip: session::client_ip(request),
                // The password or the emailed code was checked by the login's first step.
                first_factor_checked: true,
            },
            wait_until,
            crate::clock::now(),
        )
        .await?;
    match answer {
        Answer::Pending { expires_at } => return Ok(Resolution::Pending { expires_at }),
        Answer::Accepted { .. } => {
            if let Some(user) = state
                .store
                .portal_user_by_id(portal.resource.id, user_id)
                .await?
            {
                return Ok(Resolution::Approved(Box::new(user)));
            }
            return Ok(refused("denied", NOT_APPROVABLE));
        }
        _ => {}
    }
    let now = crate::clock::now();
    if state
        .store
        .portal_login(id_hash.to_vec(), now)
        .await?
        .is_none()
    {
        return Ok(Resolution::Ended);
    }
    let approval = state.store.approval_of_transaction(transaction).await?;
    Ok(match approval.map(|a| (a.state_at(now), a.reason)) {
        // Approved but not for this request: another one took it.
        Some((ApprovalState::Approved, _)) => Resolution::Ended,
        Some((ApprovalState::Denied, Some(DenyReason::WrongNumber))) => {
            refused("denied", WRONG_NUMBER)
        }
        Some((ApprovalState::Denied, _)) => refused("denied", DENIED),
        Some((ApprovalState::Expired, _)) | None => refused("expired", APPROVAL_EXPIRED),
        Some((ApprovalState::Pending, _)) => refused("denied", NOT_APPROVABLE),
    })
}

/// Approve in Telegram pressed on the one-time password step: asks the approval (once per
/// login: while it is pending, its page again).
pub async fn ask_approval(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SecretForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, id_hash, login) =
        match login_step(&state, &request, &path, &form.csrf, LoginStage::Otp).await? {
            Step::At(step) => *step,
            Step::Elsewhere(page) => return Ok(page),
        };
    let now = crate::clock::now();
    if let Some(transaction) = login.approval_transaction.clone()
        && let Some(approval) = state.store.approval_of_transaction(transaction).await?
        && approval.state_at(now) == ApprovalState::Pending
    {
        return Ok(see_other(&portal.path("/login/approval")));
    }
    let asked = authenticator(&state)
        .ask_approval(
            &caller(&request, &portal, &login.login),
            AuthTarget {
                resource: IdOrName::Id(portal.resource.id),
                user: Some(IdOrName::Name(login.login.clone())),
                token: None,
                transaction: None,
                address: None,
            },
            session::client_ip(&request),
            now,
        )
        .await;
    let asked = match asked {
        Ok(asked) => asked,
        Err(RuleError::Refused(Refused::TooMany {
            retry_after_seconds,
        })) => {
            return Err(Refused::TooMany {
                retry_after_seconds,
            }
            .into());
        }
        Err(RuleError::Refused(_)) => {
            return super::render_verify(&state, &portal, &login, Some(NOT_APPROVABLE)).await;
        }
        Err(error) => return Err(error.into()),
    };
    if !state
        .store
        .portal_login_to_approval(id_hash, asked.transaction, now)
        .await?
    {
        return Err(PortalError::LoginRequired(portal.address.clone()));
    }
    Ok(see_other(&portal.path("/login/approval")))
}

/// The page of the login's approval: the number, the time left, Continue, and a code instead.
pub async fn show_approval(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let (_, login) = login_in_progress(&state, &request, &portal).await?;
    render_approval(&state, &portal, &login).await
}

async fn render_approval(
    state: &AppState,
    portal: &Portal,
    login: &PortalLogin,
) -> Result<HttpResponse, PortalError> {
    let approval = match (&login.stage, &login.approval_transaction) {
        (LoginStage::Otp, Some(transaction)) => {
            state
                .store
                .approval_of_transaction(transaction.clone())
                .await?
        }
        _ => None,
    };
    let Some(approval) = approval else {
        return Ok(see_other(&portal.path("/login/verify")));
    };
    let seconds_left = (approval.expires_at - crate::clock::now()).max(0);
    let frame = Frame {
        portal,
        title: "Approve in Telegram",
        visitor: None,
        flash: None,
    };
    Ok(frame.render(
        state,
        approval_page(portal, login, approval.number, seconds_left),
    ))
}

/// Minutes and seconds, as the page and its script show the time left.
fn clock_left(seconds: i64) -> String {
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

fn approval_page(
    portal: &Portal,
    login: &PortalLogin,
    number: Option<u8>,
    seconds_left: i64,
) -> Markup {
    let csrf = &login.csrf_token;
    html! {
        p { "Logging in as " strong { (login.login) } ". " a href=(portal.path("")) { "Not you?" } }
        @match number {
            Some(number) => {
                p.approval-number aria-label="The number to press" { (format!("{number:02}")) }
                p { "Open Telegram and press " strong { (format!("{number:02}")) } " under the message of the bot." }
            }
            None => p { "Open Telegram and press " strong { "Approve" } " under the message of the bot." },
        }
        // The script asks the status address and, once the decision is known, goes on.
        p #approval-status data-status-url=(portal.path("/login/approval/status")) data-seconds-left=(seconds_left) role="status" {
            "Waiting for your answer in Telegram… Time left: " span #approval-left { (clock_left(seconds_left)) } ". This page updates by itself."
        }
        form.stack #approval-continue method="post" action=(portal.path("/login/approval")) {
            (csrf_field(csrf))
            div.buttons { button type="submit" { "Continue" } }
        }
        p.note { "Or type a one-time password instead:" }
        form.stack method="post" action=(portal.path("/login/otp")) {
            (csrf_field(csrf))
            label { "One-time password" small { "With your PIN in front or behind it, if your token has one." }
                input type="text" name="otp" inputmode="numeric" autocomplete="one-time-code" required; }
            div.buttons { button type="submit" { "Log in" } }
        }
    }
}

/// Continue (without JavaScript, or the script once the decision is known): the portal when
/// approved, the same page while pending, the login with the reason otherwise.
pub async fn continue_approval(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SecretForm>,
) -> Result<HttpResponse, PortalError> {
    let (portal, id_hash, login) =
        match login_step(&state, &request, &path, &form.csrf, LoginStage::Otp).await? {
            Step::At(step) => *step,
            Step::Elsewhere(page) => return Ok(page),
        };
    match resolve(&state, &request, &portal, &id_hash, &login, None).await? {
        Resolution::Pending { .. } => render_approval(&state, &portal, &login).await,
        Resolution::Approved(user) => open_session(&state, &request, &portal, id_hash, &user).await,
        Resolution::Ended => Ok(see_other(&portal.path(""))),
        Resolution::Refused { message, .. } => {
            state.store.end_portal_login(id_hash).await?;
            let mut response = portal.redirect_with_problem(&state, "", message);
            let _ = response.add_cookie(&portal.removal_cookie(&state, super::LOGIN_COOKIE));
            Ok(response)
        }
    }
}

/// `{"state": "pending" | "approved" | "denied" | "expired" | "ended"}` for the page's script,
/// after waiting a few seconds for the decision. Approved, the session is opened here (its
/// cookie comes with the answer) and `next` is the portal; the approval lets in one login, so
/// a request that comes second finds the login ended. Denied or expired, the script sends
/// Continue, which ends the login with the reason.
pub async fn approval_status(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let portal = Portal::open(&state, &path).await?;
    let ended = || {
        HttpResponse::Ok().json(serde_json::json!({ "state": "ended", "next": portal.path("") }))
    };
    let (id_hash, login) = match login_in_progress(&state, &request, &portal).await {
        Ok(found) => found,
        Err(PortalError::LoginRequired(_)) => return Ok(ended()),
        Err(error) => return Err(error),
    };
    if login.stage != LoginStage::Otp {
        return Ok(ended());
    }
    let wait_until = authenticator(&state).approval_deadline(STATUS_WAIT_SECONDS);
    match resolve(&state, &request, &portal, &id_hash, &login, wait_until).await? {
        Resolution::Pending { expires_at } => Ok(HttpResponse::Ok().json(serde_json::json!({
            "state": "pending",
            "seconds_left": (expires_at - crate::clock::now()).max(0),
        }))),
        Resolution::Approved(user) => {
            let opened = match open_session(&state, &request, &portal, id_hash, &user).await {
                Ok(opened) => opened,
                Err(PortalError::LoginRequired(_)) => return Ok(ended()),
                Err(error) => return Err(error),
            };
            let mut answer = HttpResponse::Ok()
                .json(serde_json::json!({ "state": "approved", "next": portal.path("") }));
            for cookie in opened.cookies() {
                let _ = answer.add_cookie(&cookie);
            }
            Ok(answer)
        }
        Resolution::Ended => Ok(ended()),
        Resolution::Refused { state, .. } => {
            Ok(HttpResponse::Ok().json(serde_json::json!({ "state": state })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clock_left;

    #[test]
    fn the_time_left_reads_as_minutes_and_seconds() {
        assert_eq!(clock_left(300), "5:00");
        assert_eq!(clock_left(65), "1:05");
        assert_eq!(clock_left(0), "0:00");
    }
}
