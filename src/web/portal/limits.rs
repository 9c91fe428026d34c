//! The portal's limits on failed steps (`limiter::PortalLimits`): every step that can fail asks
//! first whether the client's address, or the login name at it, is blocked, and counts its
//! failure afterwards; steps that succeed count nothing. Every refusal and every block that
//! starts is audited and counted in the metrics, and a block that starts is logged.

use actix_web::HttpRequest;

use super::{Portal, PortalError};
use crate::limiter::Block;
use crate::web::{AppState, session};

fn address_of(request: &HttpRequest) -> String {
    session::client_ip(request).unwrap_or_else(|| "unknown".into())
}

/// Refuses the step, unchecked, when the client's address or `login` at it is blocked.
pub async fn refuse_if_blocked(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    login: &str,
) -> Result<(), PortalError> {
    let address = address_of(request);
    let Some(block) = state
        .portal_limits
        .blocked(&address, Some(login), std::time::Instant::now())
    else {
        return Ok(());
    };
    state.metrics.inc(
        "otpgate_portal_steps_refused_total",
        "Portal steps refused unchecked while blocked after failures, by limit: \
         failures_per_address, failures_per_login.",
        &[("limit", block.limit.as_str())],
    );
    let mut entry = portal.audit(request, login, "portal.blocked", "refused");
    entry.reason = Some(block.limit.as_str().into());
    entry.detail = Some(request.path().to_string());
    state.store.audit(entry).await?;
    Err(PortalError::Blocked {
        resource: portal.resource.name.clone(),
        block,
    })
}

/// Counts a failed step of `login`; a block it starts is logged, audited and counted.
pub async fn count_failure(
    state: &AppState,
    request: &HttpRequest,
    portal: &Portal,
    login: &str,
) -> Result<(), PortalError> {
    let address = address_of(request);
    let started = state
        .portal_limits
        .failed(&address, Some(login), std::time::Instant::now());
    for Block {
        limit,
        retry_after_seconds,
    } in started
    {
        tracing::warn!(
            portal = %portal.address,
            client = %address,
            login = %login,
            limit = limit.as_str(),
            retry_after_seconds,
            "portal steps blocked after too many failures"
        );
        state.metrics.inc(
            "otpgate_portal_blocks_total",
            "Portal blocks started after too many failed steps, by limit: \
             failures_per_address, failures_per_login.",
            &[("limit", limit.as_str())],
        );
        let mut entry = portal.audit(request, login, "portal.blocked", "blocked");
        entry.reason = Some(limit.as_str().into());
        entry.detail = Some(format!(
            "{} for {}",
            match limit {
                crate::limiter::PortalLimit::Address => "this address",
                crate::limiter::PortalLimit::Login => "this login name at this address",
            },
            crate::web::views::wait_in_words(retry_after_seconds)
        ));
        state.store.audit(entry).await?;
    }
    Ok(())
}
