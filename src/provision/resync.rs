//! Token Synchronization: two consecutive codes of a TOTP or HOTP token that drifted beyond
//! the verification window (a clock that wandered, a button pressed many times) tell where it
//! stands now.

use std::sync::Arc;

use crate::clock::UnixTime;
use crate::codes::{self, Found};
use crate::crypto::Keys;
use crate::domain::{Refused, RuleError, TokenKind};
use crate::store::Token;

/// A code as typed: exactly `digits` ASCII digits.
fn check_code(field: &'static str, code: &str, digits: u32) -> Result<(), Refused> {
    let code = code.trim();
    if code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Refused::field(
            field,
            format!("{field} must be a code of {digits} digits"),
        ))
    }
}

/// Where two consecutive codes `otp1` and `otp2` of the token are, searching `search` steps
/// around the expected one: the moving factor of the second and the drift to store. Up to
/// twice `search` HMACs, so the search runs off the async threads.
pub async fn resync(
    keys: Arc<Keys>,
    token: &Token,
    otp1: &str,
    otp2: &str,
    search: u64,
    now: UnixTime,
) -> Result<Found, RuleError> {
    if !matches!(token.kind, TokenKind::Totp | TokenKind::Hotp) {
        return Err(
            Refused::Invalid("only TOTP and HOTP tokens can be resynchronised".into()).into(),
        );
    }
    let params = codes::params(token)?;
    check_code("otp1", otp1, params.digits)?;
    check_code("otp2", otp2, params.digits)?;
    let (token, otp1, otp2) = (token.clone(), otp1.to_string(), otp2.to_string());
    let found = tokio::task::spawn_blocking(move || {
        codes::resync(&keys, &token, (&otp1, &otp2), search, now)
    })
    .await
    .map_err(|e| anyhow::anyhow!("the resynchronisation did not finish: {e}"))??;
    found.ok_or_else(|| {
        Refused::field("otp2", "the codes were not found as consecutive codes").into()
    })
}
