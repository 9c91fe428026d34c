//! The vocabulary of otpgate as types: token kinds and states, API scopes, validated values
//! (`values`), the rules for one field each (`fields`), and how a rule says no (`refusal`).
//! Parsing from text happens here once; everything inward works with these types.

mod fields;
mod refusal;
mod values;

pub use fields::{
    MAX_NAME, MAX_PASSWORD, MAX_SERIAL, MIN_ADMIN_PASSWORD, MIN_PASSWORD, PIN_LENGTHS, PinPolicy,
    admin_credentials, check_new_password, check_pin, email_field, is_admin_login, login_field,
    messenger, one_line, otp_length, person_name, phone_field, pin_position, token_destination,
    token_name, token_serial,
};
pub use refusal::{FieldError, Refused, RuleError};
pub use values::{Email, Invalid, Login, Phone, login_key};

use serde::{Deserialize, Serialize};

/// The kind of a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TokenKind {
    /// Time-based code from an authenticator app or a hardware TOTP token.
    Totp,
    /// Event-based code from a hardware token.
    Hotp,
    /// Code sent by email.
    Mail,
    /// Code sent by text message.
    Sms,
    /// Code sent by a messenger bot (Telegram).
    Bot,
}

impl TokenKind {
    pub const ALL: [TokenKind; 5] = [
        TokenKind::Totp,
        TokenKind::Hotp,
        TokenKind::Mail,
        TokenKind::Sms,
        TokenKind::Bot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Totp => "TOTP",
            TokenKind::Hotp => "HOTP",
            TokenKind::Mail => "MAIL",
            TokenKind::Sms => "SMS",
            TokenKind::Bot => "BOT",
        }
    }

    pub fn parse(text: &str) -> Option<TokenKind> {
        TokenKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
    }

    /// MAIL, SMS and BOT tokens get their code from otpgate (a challenge).
    pub fn is_delivered(self) -> bool {
        matches!(self, TokenKind::Mail | TokenKind::Sms | TokenKind::Bot)
    }
}

/// Where a token stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// Enrolled but not yet confirmed (a first code, or a BOT activation).
    Pending,
    Active,
    /// The bot cannot reach the user any more; the token must be activated again.
    Reactivate,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Pending => "pending",
            TokenState::Active => "active",
            TokenState::Reactivate => "reactivate",
        }
    }

    pub fn parse(text: &str) -> Option<TokenState> {
        [
            TokenState::Pending,
            TokenState::Active,
            TokenState::Reactivate,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// Manage every object.
    Admin,
    /// Call the authentication endpoints of one resource.
    Resource(i64),
}

/// An object named by its id (a number) or its name, login or serial (a string).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum IdOrName {
    Id(i64),
    Name(String),
}

impl IdOrName {
    /// The key the store's `find_*` functions take: an id as digits, or the name.
    pub fn as_key(&self) -> String {
        match self {
            IdOrName::Id(id) => id.to_string(),
            IdOrName::Name(name) => name.trim().to_string(),
        }
    }
}

/// Masks an email address or phone number for showing to a caller: `j***@example.com`,
/// `+49******789`.
pub fn mask_destination(destination: &str) -> String {
    if let Some((local, domain)) = destination.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = destination.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_masked() {
        assert_eq!(mask_destination("jane@example.com"), "j***@example.com");
        assert_eq!(mask_destination("+4915112345789"), "+49********789");
        assert_eq!(mask_destination("12345"), "*****");
    }

    #[test]
    fn token_kinds_parse_in_any_case() {
        assert_eq!(TokenKind::parse("mail"), Some(TokenKind::Mail));
        assert_eq!(TokenKind::parse("TOTP"), Some(TokenKind::Totp));
        assert_eq!(TokenKind::parse("fax"), None);
    }
}
