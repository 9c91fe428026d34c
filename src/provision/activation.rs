//! A BOT token's activation: a one-time code whose deep link opens the bot's chat; the bot binds
//! the chat that sends `/start <code>` to the token.

use crate::clock::UnixTime;
use crate::delivery::bot;
use crate::domain::{Refused, RuleError};
use crate::store::bot::IssueRefused;
use crate::store::{AuditEntry, Store};

/// A new activation code, shown once, and when it stops working.
pub struct Activation {
    pub code: String,
    pub expires_at: UnixTime,
}

/// Issues a new activation code for a BOT token; the previous one stops working. For a new
/// phone, a code that expired, or a token that needs re-activation.
pub async fn issue(
    store: &Store,
    token_id: i64,
    now: UnixTime,
    entry: AuditEntry,
) -> Result<Activation, RuleError> {
    let (code, hash) = bot::new_activation_code()?;
    let expires_at = now + bot::ACTIVATION_SECONDS;
    match store
        .issue_bot_activation(token_id, hash, expires_at, now, entry)
        .await?
    {
        Ok(()) => Ok(Activation { code, expires_at }),
        Err(IssueRefused::NoSuchToken) => Err(Refused::NotFound("token").into()),
        Err(IssueRefused::NotABotToken) => {
            Err(Refused::Conflict("only BOT tokens are activated through the bot".into()).into())
        }
    }
}
