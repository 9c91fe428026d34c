//! The vocabulary of otpgate as types: token kinds and states, API scopes, validated values
//! (`values`), the rules for one field each (`fields`), how a rule says no (`refusal`), and
//! how counts and names go into sentences (`words`).
//! Parsing from text happens here once; everything inward works with these types.

mod fields;
mod refusal;
mod values;
pub mod words;

pub use fields::{
    MAX_KEY_NAME, MAX_NAME, MAX_PASSWORD, MAX_SERIAL, MIN_ADMIN_PASSWORD, MIN_PASSWORD,
    PIN_LENGTHS, PinPolicy, admin_credentials, check_new_password, check_pin, email_field,
    is_admin_login, key_name, login_field, messenger, one_line, otp_length, person_name,
    phone_field, pin_position, token_destination, token_name, token_serial,
};
pub use refusal::{Busy, FieldError, Refused, RuleError};
pub use values::{Email, Invalid, Login, MAX_LOGIN, Phone, login_key};

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

/// What a right password alone is worth in a resource for a user who has no active second
/// factor there (none at all, or only disabled, pending or unassigned ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithoutSecondFactor {
    /// Refused: the resource wants two factors from everyone (the default).
    #[default]
    Refuse,
    /// Accepted with the password only, and audited as such.
    PasswordOnly,
}

impl WithoutSecondFactor {
    pub const ALL: [WithoutSecondFactor; 2] = [
        WithoutSecondFactor::Refuse,
        WithoutSecondFactor::PasswordOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WithoutSecondFactor::Refuse => "refuse",
            WithoutSecondFactor::PasswordOnly => "password_only",
        }
    }

    pub fn parse(text: &str) -> Option<WithoutSecondFactor> {
        WithoutSecondFactor::ALL
            .into_iter()
            .find(|policy| policy.as_str() == text)
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

/// An object named by its id or by its name, login or serial. In JSON a number is an id and a
/// string is a name, never read as an id: a token whose serial is `"2"` is not token 2.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum IdOrName {
    Id(i64),
    Name(String),
}

impl IdOrName {
    /// Reads an object's address where every value is text (a path segment, a command-line
    /// argument): digits are an id; `LABEL:` followed by anything is a name even when that is
    /// all digits (`serial:987654321`); any other text is a name. Digits that cannot be an id
    /// as written (a leading zero, too many of them) are refused rather than guessed.
    pub fn from_text(text: &str, label: &str) -> Result<IdOrName, Refused> {
        if let Some(name) = text
            .strip_prefix(label)
            .and_then(|rest| rest.strip_prefix(':'))
        {
            return Ok(IdOrName::Name(name.to_string()));
        }
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Ok(IdOrName::Name(text.to_string()));
        }
        match text.parse::<i64>() {
            Ok(id) if !text.starts_with('0') || text == "0" => Ok(IdOrName::Id(id)),
            _ => Err(Refused::Invalid(format!(
                "{text} is not an id as written; to name the {label} {text}, write {label}:{text}"
            ))),
        }
    }

    /// The name, login or serial, as it is stored (without surrounding spaces).
    pub fn name(&self) -> Option<&str> {
        match self {
            IdOrName::Id(_) => None,
            IdOrName::Name(name) => Some(name.trim()),
        }
    }
}

impl std::fmt::Display for IdOrName {
    /// How the object was named, for messages: `#42`, or the name in quotes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdOrName::Id(id) => write!(f, "#{id}"),
            IdOrName::Name(name) => write!(f, "{:?}", name.trim()),
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
    fn in_json_a_number_is_an_id_and_a_string_a_name_even_when_it_is_digits() {
        let parse = |json| serde_json::from_str::<IdOrName>(json);
        assert_eq!(parse("42").expect("a number"), IdOrName::Id(42));
        assert_eq!(
            parse("\"42\"").expect("a string"),
            IdOrName::Name("42".into())
        );
        assert_eq!(
            parse("\"alice\"").expect("a string"),
            IdOrName::Name("alice".into())
        );
        assert!(parse("true").is_err());
        assert!(parse("4.2").is_err());
    }

    #[test]
    fn in_text_digits_are_an_id_and_a_label_makes_a_name_of_anything() {
        let read = |text| IdOrName::from_text(text, "serial");
        assert_eq!(read("42"), Ok(IdOrName::Id(42)));
        assert_eq!(read("0"), Ok(IdOrName::Id(0)));
        assert_eq!(read("HW-42"), Ok(IdOrName::Name("HW-42".into())));
        assert_eq!(
            read("serial:987654321"),
            Ok(IdOrName::Name("987654321".into()))
        );
        assert_eq!(read("serial:0042"), Ok(IdOrName::Name("0042".into())));
        assert_eq!(
            read("serial:serial:1"),
            Ok(IdOrName::Name("serial:1".into()))
        );
        assert_eq!(read("login:7"), Ok(IdOrName::Name("login:7".into())));
        assert_eq!(read("-1"), Ok(IdOrName::Name("-1".into())));
    }

    #[test]
    fn in_text_digits_that_cannot_be_an_id_as_written_are_refused_with_the_way_to_name_them() {
        for text in ["0042", "99999999999999999999"] {
            let Err(Refused::Invalid(message)) = IdOrName::from_text(text, "serial") else {
                panic!("{text} was guessed");
            };
            assert!(message.contains(&format!("serial:{text}")), "{message}");
        }
    }

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
