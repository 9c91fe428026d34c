//! Reissue Token: a new seed for an authenticator app (TOTP or HOTP), a new address for a MAIL
//! or SMS token (confirmed by a code sent there), or a new Telegram activation for a BOT token,
//! also for one that needs re-activation. A hardware token keeps its seed in the device and is
//! never reissued. The old seed, address or chat stays in force until the new one is confirmed.

use crate::clock::UnixTime;
use crate::codes::{self, Found, Unusable};
use crate::crypto::{self, CryptoError};
use crate::domain::{TokenKind, TokenState};
use crate::store::Token;

/// A BOT token the bot cannot reach any more (the user blocked it): no codes go anywhere until
/// a new activation binds a chat again, so Reissue Token is offered as Re-activate.
pub fn needs_reactivation(token: &Token) -> bool {
    token.kind == TokenKind::Bot && token.state == TokenState::Reactivate
}

/// Whether Reissue Token applies to the token: an active software token, or a BOT token that
/// needs re-activation; never a hardware token.
pub fn can_reissue(token: &Token) -> bool {
    (token.state == TokenState::Active || needs_reactivation(token)) && !token.is_hardware()
}

/// MAIL and SMS tokens are reissued by a new activation at a new (or the same) destination.
pub fn by_code(token: &Token) -> bool {
    matches!(token.kind, TokenKind::Mail | TokenKind::Sms)
}

/// Whether Token Synchronization applies to the token: codes from a seed, in use.
pub fn can_sync(token: &Token) -> bool {
    matches!(token.kind, TokenKind::Totp | TokenKind::Hotp) && token.state == TokenState::Active
}

/// A new seed for an authenticator app.
pub fn new_seed() -> Result<Vec<u8>, CryptoError> {
    Ok(crypto::random_bytes::<20>()?.to_vec())
}

/// Where the first code of a reissued seed is: counted afresh, with no replay floor or drift of
/// the old seed.
pub fn first_code(
    token: &Token,
    secret: &[u8],
    typed: &str,
    now: UnixTime,
) -> Result<Option<Found>, Unusable> {
    let params = codes::params(token)?;
    Ok(codes::find(
        secret,
        &params,
        typed,
        codes::usual_window(&params),
        None,
        0,
        now,
    ))
}
