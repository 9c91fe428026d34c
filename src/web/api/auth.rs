//! `POST /auth/prepare` and `POST /auth/authenticate`: what applications call for each login.

use std::net::IpAddr;
use std::time::Instant;

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiCaller, ApiError, ApiJson, IdOrName};
use crate::auth::{Answer, Attempt, Authenticator, Caller, Expected, TokenRef};
use crate::domain::{KeyScope, TokenKind};
use crate::store::auth::AuthTarget;
use crate::web::AppState;

/// A login to check. Give `user` with `otp` and/or `password`, or `token` with `otp` alone; or,
/// for a login whose `prepare` asked for an approval, `user` with the `transaction` and no
/// `otp` (with the `password` where the resource requires one). In `resource`, `user` and
/// `token` a JSON number is an id and a JSON string a name, login or serial, also when it is
/// made of digits. Never logged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequest {
    /// The resource: a number is its id, a string its name; may be left out with a resource key.
    resource: Option<IdOrName>,
    /// The user: a number is their id, a string their login.
    user: Option<IdOrName>,
    /// One token: a number is its id, a string its serial (`"987654321"` is a serial): only
    /// this token counts.
    token: Option<IdOrName>,
    /// The user's password.
    password: Option<String>,
    /// The one-time password, with the token's PIN before or after it where one is set.
    otp: Option<String>,
    /// The transaction id that `prepare` (or a challenge answer) gave.
    transaction: Option<String>,
    /// The end user's IP address, for the audit log and per-address rate limits.
    ip: Option<String>,
    /// With the transaction of an approval and no `otp`: hold the request up to this many
    /// seconds until the user answers in Telegram (at most the server's
    /// `auth.approval_wait_max_seconds`; more is cut to it). 0 or absent: answer at once.
    #[schema(minimum = 0)]
    wait: Option<u64>,
}

/// Whose codes to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrepareRequest {
    /// The resource: a number is its id, a string its name; may be left out with a resource key.
    resource: Option<IdOrName>,
    /// The user: a number is their id, a string their login.
    user: IdOrName,
    /// Only this token (a number is its id, a string its serial); by default every MAIL, SMS
    /// and BOT token of the user in the resource.
    token: Option<IdOrName>,
    /// The end user's IP address, for the audit log and per-address rate limits; the
    /// approval's message names it.
    ip: Option<String>,
    /// Ask the user to approve the login in Telegram instead of sending codes: the resource
    /// must allow approvals and the user have an active BOT token in it. No code is sent;
    /// the user approves, or types the code of a TOTP or HOTP token with the transaction.
    #[serde(default)]
    approve: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    Accepted,
    Rejected,
    Challenge,
    /// The approval is not answered yet: ask again (with `wait`) with the same transaction.
    Pending,
}

/// An approval asked for.
#[derive(Serialize, ToSchema)]
pub struct ApprovalInfo {
    /// With number matching, the two-digit number to show the user, who presses it in
    /// Telegram; null without number matching.
    #[schema(value_type = Option<String>, example = "42")]
    number: Option<String>,
    /// When the approval expires, in seconds since the Unix epoch.
    expires_at: i64,
    /// The BOT token the request was sent to.
    token: TokenInfo,
}

#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    id: i64,
    serial: String,
    kind: TokenKind,
}

#[derive(Serialize, ToSchema)]
pub struct ChallengeInfo {
    /// The token whose code is expected.
    token: TokenInfo,
    /// Where the code was sent, masked (`j***@example.com`); absent for TOTP/HOTP tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
    /// True when otpgate queued a new code for this token just now (MAIL, SMS, BOT); false when
    /// the user reads the code from a device, or when `delivery` says why nothing was sent.
    sent: bool,
    /// MAIL, SMS and BOT tokens: `queued` (the code is on its way), `cooldown` (a code was sent
    /// moments ago and still works; nothing new was sent), `capped` (the user had their share of
    /// messages this hour) or `not_configured` (the channel is not set up on this server).
    /// Absent for TOTP/HOTP tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    delivery: Option<&'static str>,
}

/// The answer. `rejected` never says why: the reason is in the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuthenticateResponse {
    result: AuthResult,
    /// The token that was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenInfo>,
    /// With `challenge`: pass it back with the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction: Option<String>,
    /// With `challenge`: the tokens whose codes are expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    challenges: Option<Vec<ChallengeInfo>>,
    /// With `pending`: when the approval expires, in seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct PrepareResponse {
    /// The transaction to pass to `authenticate`; absent when nothing was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction: Option<String>,
    /// The codes sent, one per token; empty when the user has no MAIL, SMS or BOT token here,
    /// and with `approve`.
    challenges: Vec<ChallengeInfo>,
    /// With `approve`: the approval asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    approval: Option<ApprovalInfo>,
}

fn token_info(token: TokenRef) -> TokenInfo {
    TokenInfo {
        id: token.id,
        serial: token.serial,
        kind: token.kind,
    }
}

fn challenge_infos(expected: Vec<Expected>) -> Vec<ChallengeInfo> {
    expected
        .into_iter()
        .map(|e| ChallengeInfo {
            sent: e.sent(),
            delivery: e.delivery.map(|delivery| delivery.as_str()),
            token: token_info(e.token),
            destination: e.destination,
        })
        .collect()
}

fn resource_key(resource: Option<IdOrName>, caller: &ApiCaller) -> Result<IdOrName, ApiError> {
    match (resource, caller.scope) {
        (Some(resource), _) => Ok(resource),
        (None, KeyScope::Resource(id)) => Ok(IdOrName::Id(id)),
        (None, KeyScope::Admin) => Err(ApiError::field(
            "resource",
            "name the resource (an admin key has none of its own)",
        )),
    }
}

fn end_user_ip(ip: Option<&str>) -> Result<Option<String>, ApiError> {
    ip.map(|ip| {
        ip.trim()
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| ApiError::field("ip", "not an IPv4 or IPv6 address"))
    })
    .transpose()
}

/// Applies the per-end-user-address and per-caller rate limits. The limit per user (or token
/// used alone) is the authentication's, keyed by the account it finds however it was named.
fn throttle(state: &AppState, caller: &ApiCaller, ip: Option<&str>) -> Result<(), ApiError> {
    let now = Instant::now();
    let refused = |retry: crate::limiter::RetryAfter| ApiError::TooManyRequests {
        retry_after_seconds: retry.0.as_secs(),
    };
    if let Some(client) = &caller.client_ip {
        state.throttle_caller.take(client, now).map_err(refused)?;
    }
    if let Some(ip) = ip {
        state.throttle_end_user_ip.take(ip, now).map_err(refused)?;
    }
    Ok(())
}

fn authenticator(state: &AppState) -> Authenticator<'_> {
    Authenticator {
        store: &state.store,
        keys: &state.keys,
        config: &state.config.auth,
        metrics: &state.metrics,
        passwords: &state.passwords,
        guard: &state.logins,
        per_account: Some(&state.throttle_user),
        wakeup: &state.delivery,
        directories: &state.directories,
        waiters: &state.approval_waiters,
    }
}

fn caller_of(caller: &ApiCaller) -> Caller {
    Caller {
        key_id: Some(caller.key_id),
        actor: format!("apikey:{}", caller.key_id),
        resource_scope: match caller.scope {
            KeyScope::Resource(id) => Some(id),
            KeyScope::Admin => None,
        },
        client_ip: caller.client_ip.clone(),
        detail: None,
    }
}

/// Checks a login: the user's password, one-time password, or both; or the answer of an
/// approval.
#[utoipa::path(
    tag = "authentication",
    request_body = AuthenticateRequest,
    responses(
        (status = 200, description = "accepted, rejected, challenge (codes were sent or are expected), or pending (an approval not answered yet)", body = AuthenticateResponse),
        (status = 400, description = "A field is missing or malformed", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key belongs to another resource", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
        (status = 429, description = "Too many attempts (the rate limits, or too soon after failed logins in a row); see Retry-After", body = ErrorBody),
        (status = 503, description = "Every password worker is busy, or too many requests wait for approvals; see Retry-After", body = ErrorBody),
    )
)]
#[post("/auth/authenticate")]
pub async fn authenticate(
    state: web::Data<AppState>,
    caller: ApiCaller,
    body: ApiJson<AuthenticateRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    let resource = resource_key(request.resource, &caller)?;
    let ip = end_user_ip(request.ip.as_deref())?;
    throttle(&state, &caller, ip.as_deref())?;
    let attempt = Attempt {
        target: AuthTarget {
            resource,
            user: request.user,
            token: request.token,
            transaction: request.transaction,
            // The caller reports the end user's address itself: failures count per account.
            address: None,
        },
        password: request.password,
        otp: request.otp,
        end_user_ip: ip,
        first_factor_checked: false,
    };
    let authenticator = authenticator(&state);
    let wait_until = authenticator.approval_deadline(request.wait.unwrap_or(0));
    let answer = authenticator
        .authenticate_or_wait(
            &caller_of(&caller),
            attempt,
            wait_until,
            crate::clock::now(),
        )
        .await?;
    let nothing = AuthenticateResponse {
        result: AuthResult::Rejected,
        token: None,
        transaction: None,
        challenges: None,
        expires_at: None,
    };
    let response = match answer {
        Answer::Accepted { token } => AuthenticateResponse {
            result: AuthResult::Accepted,
            token: token.map(token_info),
            ..nothing
        },
        // Why is for the audit log only: an expired code is rejected like a wrong one.
        Answer::Rejected | Answer::Expired => nothing,
        Answer::Challenge {
            transaction,
            expected,
        } => AuthenticateResponse {
            result: AuthResult::Challenge,
            transaction: Some(transaction),
            challenges: Some(challenge_infos(expected)),
            ..nothing
        },
        Answer::Pending { expires_at } => AuthenticateResponse {
            result: AuthResult::Pending,
            expires_at: Some(expires_at),
            ..nothing
        },
    };
    let mut answer = HttpResponse::Ok().json(response);
    if wait_until.is_some() {
        answer
            .extensions_mut()
            .insert(crate::web::WaitedForApproval);
    }
    Ok(answer)
}

/// Sends one-time passwords to the user's MAIL, SMS and BOT tokens in the resource, or asks
/// the user to approve the login in Telegram (`approve`).
#[utoipa::path(
    tag = "authentication",
    request_body = PrepareRequest,
    responses(
        (status = 200, description = "The codes sent (none when the user has no MAIL, SMS or BOT token here), or the approval asked for", body = PrepareResponse),
        (status = 400, description = "A field is missing or malformed; with `approve`, the resource does not allow approvals or the user has no active BOT token in it", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key belongs to another resource", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
        (status = 409, description = "With `approve`: the Telegram bot is not set up, or the user had their share of messages this hour", body = ErrorBody),
        (status = 429, description = "Too many requests; see Retry-After", body = ErrorBody),
    )
)]
#[post("/auth/prepare")]
pub async fn prepare(
    state: web::Data<AppState>,
    caller: ApiCaller,
    body: ApiJson<PrepareRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    let resource = resource_key(request.resource, &caller)?;
    let ip = end_user_ip(request.ip.as_deref())?;
    throttle(&state, &caller, ip.as_deref())?;
    let target = AuthTarget {
        resource,
        user: Some(request.user),
        token: request.token,
        transaction: None,
        address: None,
    };
    if request.approve {
        let asked = authenticator(&state)
            .ask_approval(&caller_of(&caller), target, ip, crate::clock::now())
            .await?;
        return Ok(HttpResponse::Ok().json(PrepareResponse {
            transaction: Some(asked.transaction),
            challenges: Vec::new(),
            approval: Some(ApprovalInfo {
                number: asked.number.map(|number| format!("{number:02}")),
                expires_at: asked.expires_at,
                token: token_info(asked.token),
            }),
        }));
    }
    let answer = authenticator(&state)
        .prepare(&caller_of(&caller), target, ip, crate::clock::now())
        .await?;
    let response = match answer {
        Answer::Challenge {
            transaction,
            expected,
        } if !expected.is_empty() => PrepareResponse {
            transaction: Some(transaction),
            challenges: challenge_infos(expected),
            approval: None,
        },
        _ => PrepareResponse {
            transaction: None,
            challenges: Vec::new(),
            approval: None,
        },
    };
    Ok(HttpResponse::Ok().json(response))
}
