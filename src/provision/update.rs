//! Changing a token: its name, code length, PIN and where it goes, enabled or not, and for a
//! MAIL or SMS token its destination.

use serde::{Deserialize, Deserializer};

use super::create::{pin_hash, refuse_for_kind};
use crate::crypto::Keys;
use crate::domain::{self, PinPolicy, Refused, TokenKind};
use crate::store::Token;
use crate::store::tokens::TokenChanges;

/// Reads a field that may be absent (outer `None`), `null` (inner `None`) or a value.
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A change to a token as asked for, every field as typed; `None` leaves a value alone. The
/// API takes it as its request body; the panel's and the portal's forms fill it in.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateToken)]
pub struct TokenUpdate {
    pub name: Option<String>,
    /// MAIL, SMS and BOT only: a seed token's length is fixed by its provisioning.
    pub digits: Option<u32>,
    /// A string sets the PIN, `null` removes it.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub pin: Option<Option<String>>,
    /// "before" or "after" the code.
    pub pin_position: Option<String>,
    pub enabled: Option<bool>,
    /// MAIL and SMS only.
    pub destination: Option<String>,
}

/// Checks a change against the token's kind and the PIN policy, and turns it into the store's
/// changes (a new PIN hashed with the server's PIN key).
pub fn changes(
    keys: &Keys,
    token: &Token,
    update: &TokenUpdate,
    pins: &PinPolicy,
) -> Result<TokenChanges, Refused> {
    use TokenKind::{Bot, Hotp, Mail, Sms, Totp};
    if update.digits.is_some() && matches!(token.kind, Totp | Hotp) {
        return Err(Refused::field(
            "digits",
            "the code length of a TOTP or HOTP token is fixed by its seed's provisioning",
        ));
    }
    refuse_for_kind(
        token.kind,
        "digits",
        update.digits.is_some(),
        &[Mail, Sms, Bot],
    )?;
    refuse_for_kind(
        token.kind,
        "destination",
        update.destination.is_some(),
        &[Mail, Sms],
    )?;
    let changes = TokenChanges {
        name: update.name.as_deref().map(domain::token_name).transpose()?,
        digits: update.digits.map(domain::otp_length).transpose()?,
        pin_hash: match &update.pin {
            None => None,
            Some(None) => Some(None),
            Some(Some(pin)) => Some(Some(pin_hash(keys, pin, pins)?)),
        },
        pin_position: update
            .pin_position
            .as_deref()
            .map(domain::pin_position)
            .transpose()?,
        enabled: update.enabled,
        destination: update
            .destination
            .as_deref()
            .map(|text| domain::token_destination(token.kind, text))
            .transpose()?,
    };
    if changes.name.is_none()
        && changes.digits.is_none()
        && changes.pin_hash.is_none()
        && changes.pin_position.is_none()
        && changes.enabled.is_none()
        && changes.destination.is_none()
    {
        return Err(Refused::Invalid("the body names nothing to change".into()));
    }
    Ok(changes)
}
