//! Where a typed code meets a stored TOTP or HOTP token: the token's parameters, its seed
//! unsealed, the window, the drift and the replay floor. The authentication, an authenticator
//! app's first code, Assign Existing Token, Reissue Token and resynchronisation all check codes
//! through here, so they agree on what a code is worth.
//!
//! Pure but for unsealing seeds: the time comes in as an argument.

use crate::clock::UnixTime;
use crate::crypto::{Keys, Purpose};
use crate::otp::{self, Kind, Params, Window};
use crate::store::Token;

/// The longest text worth looking at as a code (eight digits and a generous margin).
const MAX_TYPED: usize = 16;

/// Where a code was found: the moving factor to claim, and the drift to keep (a TOTP token's
/// clock offset; always 0 for an HOTP token, whose counter is absolute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub step: i64,
    pub drift: i64,
}

/// Why a token's codes cannot be checked at all: a damaged row or a key that does not fit.
/// Never the user's doing.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("token {0} has no usable TOTP or HOTP parameters")]
    Params(i64),
    #[error("token {0} has no seed")]
    NoSeed(i64),
    #[error("the seed of token {0} cannot be unsealed")]
    Seal(i64),
}

impl From<Unusable> for crate::domain::RuleError {
    fn from(error: Unusable) -> crate::domain::RuleError {
        crate::domain::RuleError::Failed(error.into())
    }
}

/// The parameters of a TOTP or HOTP token.
pub fn params(token: &Token) -> Result<Params, Unusable> {
    token.params().ok_or(Unusable::Params(token.id))
}

/// The token's seed, unsealed.
pub fn seed(keys: &Keys, token: &Token) -> Result<Vec<u8>, Unusable> {
    let sealed = token.secret.as_deref().ok_or(Unusable::NoSeed(token.id))?;
    keys.open(Purpose::TokenSecret, sealed)
        .map_err(|_| Unusable::Seal(token.id))
}

/// The window an app's or a device's code is looked for in when no authentication settings
/// apply (a first code, a claim): one step either side for TOTP, ten codes ahead for HOTP.
pub fn usual_window(params: &Params) -> Window {
    Window::for_kind(params.kind)
}

/// What the stored drift becomes after a match: a TOTP token keeps its clock's offset, an HOTP
/// token's counter needs none.
fn kept_drift(params: &Params, drift: i64) -> i64 {
    match params.kind {
        Kind::Totp { .. } => drift,
        Kind::Hotp => 0,
    }
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Where `typed` is a current code of `secret` under `params`: within `window` of the expected
/// moving factor (shifted by `drift`), and after `last_used`, so that no code counts twice.
#[allow(
    clippy::too_many_arguments,
    reason = "the arguments are the verification state of otp::verify, plus the time"
)]
pub fn find(
    secret: &[u8],
    params: &Params,
    typed: &str,
    window: Window,
    last_used: Option<i64>,
    drift: i64,
    now: UnixTime,
) -> Option<Found> {
    let typed = typed.trim();
    if typed.len() > MAX_TYPED {
        return None;
    }
    let last_used = last_used.and_then(|step| u64::try_from(step).ok());
    let matched = otp::verify(
        secret,
        params,
        typed,
        window,
        last_used,
        drift,
        unsigned(now),
    )?;
    Some(Found {
        step: i64::try_from(matched.step).ok()?,
        drift: kept_drift(params, matched.drift),
    })
}

/// Where `typed` is a current code of the token, with its own seed, drift and replay floor.
pub fn check(
    keys: &Keys,
    token: &Token,
    typed: &str,
    window: Window,
    now: UnixTime,
) -> Result<Option<Found>, Unusable> {
    let params = params(token)?;
    let secret = seed(keys, token)?;
    Ok(find(
        &secret,
        &params,
        typed,
        window,
        token.last_step,
        token.drift,
        now,
    ))
}

/// Where two consecutive codes of the token are, searching `search` steps around the expected
/// one: the second code's moving factor and the drift to keep.
pub fn resync(
    keys: &Keys,
    token: &Token,
    codes: (&str, &str),
    search: u64,
    now: UnixTime,
) -> Result<Option<Found>, Unusable> {
    let params = params(token)?;
    let secret = seed(keys, token)?;
    let last_used = token.last_step.and_then(|step| u64::try_from(step).ok());
    let matched = otp::resync(
        &secret,
        &params,
        codes.0.trim(),
        codes.1.trim(),
        search,
        last_used,
        token.drift,
        unsigned(now),
    );
    Ok(matched.and_then(|matched| {
        Some(Found {
            step: i64::try_from(matched.step).ok()?,
            drift: kept_drift(&params, matched.drift),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::Algorithm;

    const SECRET: &[u8] = b"12345678901234567890";
    const NOW: UnixTime = 1_111_111_111;

    fn totp() -> Params {
        Params::new(Algorithm::Sha1, 6, Kind::Totp { period: 30 }).expect("params")
    }

    #[test]
    fn a_current_code_is_found_once_and_never_below_the_replay_floor() {
        let params = totp();
        let code = otp::hotp(SECRET, Algorithm::Sha1, 6, (NOW / 30) as u64);
        let window = usual_window(&params);
        let found = find(SECRET, &params, &code, window, None, 0, NOW).expect("found");
        assert_eq!(found.step, NOW / 30);
        assert_eq!(
            find(SECRET, &params, &code, window, Some(found.step), 0, NOW),
            None
        );
    }

    #[test]
    fn text_too_long_to_be_a_code_is_not_looked_at() {
        let params = totp();
        let long = "1".repeat(MAX_TYPED + 1);
        assert_eq!(
            find(SECRET, &params, &long, usual_window(&params), None, 0, NOW),
            None
        );
    }

    #[test]
    fn an_hotp_match_keeps_no_drift() {
        let params = Params::new(Algorithm::Sha1, 6, Kind::Hotp).expect("params");
        let code = otp::hotp(SECRET, Algorithm::Sha1, 6, 4);
        let found = find(SECRET, &params, &code, usual_window(&params), None, 0, NOW)
            .expect("found within the look-ahead");
        assert_eq!(found, Found { step: 4, drift: 0 });
    }
}
