//! What a portal session is in the middle of, sealed in its row so that it ends with the
//! session and is bound to the user and the resource: a new address waiting for the code sent
//! to it (the user's own, or a MAIL or SMS token's new activation), or a reissued seed waiting
//! for the app's first code. The old address or seed stays in force until then. A new BOT
//! token's activation code is kept here too, so that its page can be reloaded.

use serde::{Deserialize, Serialize};

use super::{PortalError, Visitor};
use crate::clock::UnixTime;
use crate::confirm::Waiting;
use crate::crypto::Purpose;
use crate::store::AuditEntry;
use crate::store::Message;
use crate::web::{AppState, PageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Pending {
    /// A new email address or phone number of the user.
    Contact {
        phone: bool,
        value: String,
        code: Waiting,
    },
    /// A reissued TOTP or HOTP seed.
    Reissue {
        token_id: i64,
        secret: Vec<u8>,
        tries_left: i64,
        expires_at: UnixTime,
    },
    /// A new address or number of a MAIL or SMS token.
    Activation {
        token_id: i64,
        destination: String,
        code: Waiting,
    },
    /// The activation code of a BOT token being enrolled, kept so that its page shows the same
    /// QR code when reloaded (the store has only its hash).
    BotCode {
        token_id: i64,
        code: String,
        expires_at: UnixTime,
    },
}

impl Pending {
    fn expires_at(&self) -> UnixTime {
        match self {
            Pending::Contact { code, .. } | Pending::Activation { code, .. } => code.expires_at,
            Pending::Reissue { expires_at, .. } | Pending::BotCode { expires_at, .. } => {
                *expires_at
            }
        }
    }

    /// The visitor's pending change, if one is still live.
    pub fn of(state: &AppState, visitor: &Visitor, now: UnixTime) -> Option<Pending> {
        let sealed = visitor.pending.as_deref()?;
        let json = state.keys.open(Purpose::Credential, sealed).ok()?;
        let pending: Pending = serde_json::from_slice(&json).ok()?;
        (pending.expires_at() > now).then_some(pending)
    }

    /// The visitor's pending new activation of this token, if one is still live.
    pub fn activation_of(
        state: &AppState,
        visitor: &Visitor,
        token_id: i64,
        now: UnixTime,
    ) -> Option<(String, Waiting)> {
        match Pending::of(state, visitor, now)? {
            Pending::Activation {
                token_id: pending,
                destination,
                code,
            } if pending == token_id => Some((destination, code)),
            _ => None,
        }
    }

    /// The activation code kept for this BOT token, if it still works.
    pub fn bot_code_of(
        state: &AppState,
        visitor: &Visitor,
        token_id: i64,
        now: UnixTime,
    ) -> Option<String> {
        match Pending::of(state, visitor, now)? {
            Pending::BotCode {
                token_id: pending,
                code,
                ..
            } if pending == token_id => Some(code),
            _ => None,
        }
    }

    fn seal(&self, state: &AppState) -> Result<Vec<u8>, PortalError> {
        let json = serde_json::to_vec(self)
            .map_err(|e| PageError::Internal(anyhow::anyhow!("pending: {e}")))?;
        Ok(state.keys.seal(Purpose::Credential, &json)?)
    }
}

/// Keeps `pending` as what the visitor's session is in the middle of, without a message or an
/// audit line (what it keeps was audited where it was made).
pub async fn remember(
    state: &AppState,
    visitor: &Visitor,
    pending: &Pending,
    now: UnixTime,
) -> Result<(), PortalError> {
    let sealed = pending.seal(state)?;
    state
        .store
        .set_portal_pending(visitor.id_hash.clone(), Some(sealed), None, now, None)
        .await?;
    Ok(())
}

/// Keeps `pending` as what the visitor's session is in the middle of — or, for None, ends
/// what it was — with the message that carries a code and the audit line, in one write.
pub async fn keep(
    state: &AppState,
    visitor: &Visitor,
    pending: Option<&Pending>,
    message: Option<Message>,
    now: UnixTime,
    entry: AuditEntry,
) -> Result<(), PortalError> {
    let sealed = pending.map(|pending| pending.seal(state)).transpose()?;
    let sends = message.is_some();
    state
        .store
        .set_portal_pending(visitor.id_hash.clone(), sealed, message, now, Some(entry))
        .await?;
    if sends {
        state.delivery.wake();
    }
    Ok(())
}
