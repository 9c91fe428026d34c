//! Enrolment by the first code, the rule the portal's Assign New and the API share: a TOTP or
//! HOTP token is created *pending* (its `otpauth://` URI shown once), and becomes active when
//! the first code the app shows is typed. Wrong codes are limited like every confirmation
//! code: at `confirm::TRIES` the pending token is removed.

use super::{PreparedToken, TokenRequest, first_code, prepare};
use crate::clock::UnixTime;
use crate::crypto::Keys;
use crate::domain::{Refused, RuleError, TokenKind, TokenState};
use crate::store::portal::Miss;
use crate::store::tokens::TokenRecord;
use crate::store::{AuditEntry, GeneralSettings, Store, Token};

/// What typing a first code did.
#[derive(Debug)]
pub enum FirstCode {
    /// The code was right: the token is active.
    Active(Box<TokenRecord>),
    /// The code was wrong; the token stays pending and may be tried again.
    TryAgain,
    /// The code was wrong and the tries are used up: the pending token was removed.
    Discarded,
}

/// Checks a request for a token enrolled by its first code and prepares it pending. Only TOTP
/// and HOTP tokens are: the others are confirmed by a code sent to them or by the bot.
pub fn prepare_pending(
    keys: &Keys,
    request: &TokenRequest,
    now: UnixTime,
    general: &GeneralSettings,
) -> Result<PreparedToken, RuleError> {
    if !matches!(request.kind, TokenKind::Totp | TokenKind::Hotp) {
        return Err(Refused::field(
            "kind",
            format!(
                "only TOTP and HOTP tokens are enrolled by their first code, not {}",
                request.kind.as_str()
            ),
        )
        .into());
    }
    let mut prepared = prepare(keys, request, now, general)?;
    prepared.creation.token.state = TokenState::Pending;
    Ok(prepared)
}

/// Takes `typed` as the first code of a pending TOTP or HOTP token: right, the token becomes
/// active (a compare-and-set on its replay floor, with `entry` in the same write); wrong, the
/// miss is counted and audited (`entry` as `rejected`, `bad_code`). A token that is not
/// pending, or not of a kind confirmed by its first code, is refused.
pub async fn confirm_first_code(
    store: &Store,
    keys: &Keys,
    token: &Token,
    typed: &str,
    now: UnixTime,
    entry: AuditEntry,
) -> Result<FirstCode, RuleError> {
    if !matches!(token.kind, TokenKind::Totp | TokenKind::Hotp) {
        return Err(Refused::Conflict(format!(
            "a {} token is not confirmed by a first code",
            token.kind.as_str()
        ))
        .into());
    }
    if token.state != TokenState::Pending {
        return Err(Refused::Conflict("the token is not waiting for a first code".into()).into());
    }
    let entry = AuditEntry {
        token_id: Some(token.id),
        user_id: entry.user_id.or(token.user_id),
        ..entry
    };
    if let Some(found) = first_code(keys, token, typed.trim(), now)? {
        return match store
            .confirm_token(token.id, found.step, entry.clone())
            .await?
        {
            Ok(record) => Ok(FirstCode::Active(Box::new(record))),
            Err(refused) => Err(refused.into()),
        };
    }
    let entry = AuditEntry {
        result: "rejected".into(),
        reason: Some("bad_code".into()),
        // A miss tells the user nothing: the notice is for the token once it is hers.
        notice: None,
        ..entry
    };
    Ok(
        match store
            .enrol_code_missed(token.id, crate::confirm::TRIES, entry)
            .await?
        {
            Miss::TryAgain => FirstCode::TryAgain,
            Miss::Discarded => FirstCode::Discarded,
        },
    )
}
