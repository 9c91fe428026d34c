//! The vocabulary of otpgate as types: token kinds and states, PIN positions, API scopes.
//! Parsing from text happens here once; everything inward works with these types.

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

/// Why a value given by a client is not acceptable, in words for that client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A user's login name: 1–128 characters, no control characters, no surrounding spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    pub fn parse(text: &str) -> Result<Login, Invalid> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 128 {
            return Err(Invalid("a login must have 1 to 128 characters".into()));
        }
        if text.chars().any(char::is_control) {
            return Err(Invalid("a login may not contain control characters".into()));
        }
        if text.parse::<i64>().is_ok() {
            return Err(Invalid(
                "a login may not be a number (numbers are user ids)".into(),
            ));
        }
        Ok(Login(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An email address, checked for the shape `local@domain.tld` (delivery proves the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, Invalid> {
        let text = text.trim();
        let invalid = || Invalid(format!("{text:?} is not an email address"));
        if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = text.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.contains('@')
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid());
        }
        Ok(Email(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A phone number in E.164 form: `+`, a country code and up to 15 digits in all. Spaces,
/// dashes, dots and parentheses are dropped; a leading `00` becomes `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(text: &str) -> Result<Phone, Invalid> {
        let compact: String = text
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/'))
            .collect();
        let digits = compact
            .strip_prefix('+')
            .or_else(|| compact.strip_prefix("00"))
            .ok_or_else(|| {
                Invalid(format!(
                    "{:?} is not an international phone number: start it with + and the country code",
                    text.trim()
                ))
            })?;
        if !(7..=15).contains(&digits.len())
            || !digits.chars().all(|c| c.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(Invalid(format!(
                "{:?} is not a phone number in international form (+ and 7 to 15 digits)",
                text.trim()
            )));
        }
        Ok(Phone(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod value_tests {
    use super::*;

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        assert_eq!(
            Phone::parse("+49 151 1234-5678").expect("valid").as_str(),
            "+4915112345678"
        );
        assert_eq!(
            Phone::parse("0049 (151) 12345678").expect("valid").as_str(),
            "+4915112345678"
        );
        assert!(Phone::parse("0151 12345678").is_err());
        assert!(Phone::parse("+12").is_err());
        assert!(Phone::parse("+49 151 abc").is_err());
    }

    #[test]
    fn email_addresses_need_a_local_part_and_a_domain() {
        assert!(Email::parse("jane@example.com").is_ok());
        assert!(Email::parse("jane@localhost").is_err());
        assert!(Email::parse("jane example@example.com").is_err());
        assert!(Email::parse("@example.com").is_err());
    }

    #[test]
    fn logins_are_trimmed_and_may_not_be_numbers() {
        assert_eq!(Login::parse("  alice ").expect("valid").as_str(), "alice");
        assert!(Login::parse("42").is_err());
        assert!(Login::parse("").is_err());
        assert!(Login::parse("a\u{7}b").is_err());
    }
}

/// A value refused for one field of a form or request: the field's name and why, in words
/// for the person who typed it. The API and the admin panel apply the same rules through the
/// functions below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// The longest first or last name of a user, and the longest token name.
pub const MAX_NAME: usize = 128;
/// The shortest password a user may be given.
pub const MIN_PASSWORD: usize = 8;
/// Long enough for any passphrase, short enough that hashing stays cheap.
pub const MAX_PASSWORD: usize = 1024;

/// A user's login for the field `field`.
pub fn login_field(field: &'static str, text: &str) -> Result<String, FieldError> {
    Login::parse(text)
        .map(Login::into_string)
        .map_err(|e| FieldError::new(field, e.0))
}

/// A user's first or last name: trimmed, at most [`MAX_NAME`] characters, one line.
pub fn person_name(field: &'static str, text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.chars().count() > MAX_NAME {
        return Err(FieldError::new(
            field,
            format!("may have at most {MAX_NAME} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(field, "may not contain control characters"));
    }
    Ok(text.to_string())
}

/// A user's email address for the field `email`.
pub fn email_field(text: &str) -> Result<String, FieldError> {
    Email::parse(text)
        .map(Email::into_string)
        .map_err(|e| FieldError::new("email", e.0))
}

/// A user's phone number for the field `phone`, in E.164.
pub fn phone_field(text: &str) -> Result<String, FieldError> {
    Phone::parse(text)
        .map(Phone::into_string)
        .map_err(|e| FieldError::new("phone", e.0))
}

/// Checks the length of a user's new password (hashing is the caller's, off the async threads).
pub fn check_new_password(password: &str) -> Result<(), FieldError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        return Err(FieldError::new(
            "password",
            format!("must have at least {MIN_PASSWORD} characters"),
        ));
    }
    if length > MAX_PASSWORD {
        return Err(FieldError::new(
            "password",
            format!("may have at most {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// A trimmed single-line text of at most `max` characters.
pub fn one_line(field: &'static str, text: &str, max: usize) -> Result<String, FieldError> {
    let text = text.trim();
    if text.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("{field} may have at most {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("{field} may not contain control characters"),
        ));
    }
    Ok(text.to_string())
}

/// A token's name (may be empty).
pub fn token_name(text: &str) -> Result<String, FieldError> {
    one_line("name", text, MAX_NAME)
}

/// The longest serial accepted, the same as the import files allow.
pub const MAX_SERIAL: usize = 128;

/// A token's serial: one line, not empty.
pub fn token_serial(text: &str) -> Result<String, FieldError> {
    let serial = one_line("serial", text, MAX_SERIAL)?;
    if serial.is_empty() {
        return Err(FieldError::new("serial", "serial may not be empty"));
    }
    Ok(serial)
}

/// A code length: 6 or 8 digits.
pub fn otp_length(digits: u32) -> Result<u32, FieldError> {
    if digits == 6 || digits == 8 {
        Ok(digits)
    } else {
        Err(FieldError::new(
            "digits",
            format!("a code must have 6 or 8 digits, not {digits}"),
        ))
    }
}

/// The lengths a PIN policy may ask for: never shorter than 4, never longer than 64.
pub const PIN_LENGTHS: std::ops::RangeInclusive<u32> = 4..=64;

/// The PIN rule of the general settings, which every place that sets a PIN obeys: its length,
/// and whether it is digits only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinPolicy {
    pub min_length: u32,
    pub max_length: u32,
    pub digits_only: bool,
}

impl Default for PinPolicy {
    fn default() -> Self {
        PinPolicy {
            min_length: *PIN_LENGTHS.start(),
            max_length: *PIN_LENGTHS.end(),
            digits_only: false,
        }
    }
}

impl PinPolicy {
    /// The rule in plain words, to follow "a PIN has": "4 to 8 digits", "exactly 6 digits",
    /// "4 to 64 characters".
    pub fn describe(&self) -> String {
        let what = if self.digits_only {
            "digits"
        } else {
            "characters"
        };
        if self.min_length == self.max_length {
            format!("exactly {} {what}", self.min_length)
        } else {
            format!("{} to {} {what}", self.min_length, self.max_length)
        }
    }
}

/// Checks a token PIN against the policy: its length, digits only when the policy says so, and
/// never a control character (hashing is the caller's, with the server's PIN key).
pub fn check_pin(pin: &str, policy: &PinPolicy) -> Result<(), FieldError> {
    let length = u32::try_from(pin.chars().count()).unwrap_or(u32::MAX);
    let fits = (policy.min_length..=policy.max_length).contains(&length)
        && !pin.chars().any(char::is_control)
        && (!policy.digits_only || pin.chars().all(|c| c.is_ascii_digit()));
    if !fits {
        let message = if policy.digits_only {
            format!("a PIN must have {}", policy.describe())
        } else {
            format!(
                "a PIN must have {} and no control characters",
                policy.describe()
            )
        };
        return Err(FieldError::new("pin", message));
    }
    Ok(())
}

/// Where the PIN goes, as stored: `before` or `after` the code.
pub fn pin_position(text: &str) -> Result<String, FieldError> {
    use std::str::FromStr;
    crate::otp::PinPosition::from_str(text.trim())
        .map(|position| position.as_str().to_string())
        .map_err(|e| FieldError::new("pin_position", e.to_string()))
}

/// A MAIL token's address or an SMS token's phone number, in the form stored.
pub fn token_destination(kind: TokenKind, text: &str) -> Result<String, FieldError> {
    match kind {
        TokenKind::Mail => Email::parse(text)
            .map(Email::into_string)
            .map_err(|e| FieldError::new("destination", e.0)),
        TokenKind::Sms => Phone::parse(text)
            .map(Phone::into_string)
            .map_err(|e| FieldError::new("destination", e.0)),
        _ => Err(FieldError::new(
            "destination",
            "only MAIL and SMS tokens have a destination",
        )),
    }
}

/// A BOT token's messenger: Telegram, the only one so far, and the default.
pub fn messenger(text: Option<&str>) -> Result<String, FieldError> {
    match text {
        None => Ok("telegram".to_string()),
        Some(name) if name.trim().eq_ignore_ascii_case("telegram") => Ok("telegram".to_string()),
        Some(_) => Err(FieldError::new(
            "messenger",
            "the only messenger is \"telegram\"",
        )),
    }
}

impl TokenKind {
    /// The state a new token starts in: a BOT token waits for its activation in the
    /// messenger; every other kind is usable at once.
    pub fn initial_state(self) -> TokenState {
        if self == TokenKind::Bot {
            TokenState::Pending
        } else {
            TokenState::Active
        }
    }
}

#[cfg(test)]
mod field_tests {
    use super::*;

    #[test]
    fn token_fields_follow_the_api_rules() {
        assert!(otp_length(6).is_ok() && otp_length(8).is_ok());
        assert_eq!(otp_length(7).map_err(|e| e.field), Err("digits"));
        let usual = PinPolicy::default();
        assert!(check_pin("123", &usual).is_err());
        assert!(check_pin("1234", &usual).is_ok());
        assert!(check_pin("abc\u{7}", &usual).is_err());
        assert_eq!(pin_position(" after ").as_deref(), Ok("after"));
        assert!(pin_position("middle").is_err());
        assert_eq!(
            token_destination(TokenKind::Sms, "+49 151 1234 5678").as_deref(),
            Ok("+4915112345678")
        );
        assert!(token_destination(TokenKind::Totp, "x@example.com").is_err());
        assert_eq!(messenger(Some("Telegram")).as_deref(), Ok("telegram"));
        assert!(messenger(Some("signal")).is_err());
        assert_eq!(TokenKind::Bot.initial_state(), TokenState::Pending);
        assert!(token_serial("  ").is_err());
    }

    #[test]
    fn a_pin_policy_sets_the_length_and_may_ask_for_digits_only() {
        let policy = PinPolicy {
            min_length: 4,
            max_length: 8,
            digits_only: true,
        };
        assert_eq!(policy.describe(), "4 to 8 digits");
        assert!(check_pin("2468", &policy).is_ok());
        assert!(check_pin("24681357", &policy).is_ok());
        assert!(check_pin("246813579", &policy).is_err());
        assert!(check_pin("24a8", &policy).is_err());
        assert!(check_pin("２４６８", &policy).is_err(), "ASCII digits only");
        let error = check_pin("12", &policy).expect_err("too short");
        assert_eq!(error.field, "pin");
        assert_eq!(error.message, "a PIN must have 4 to 8 digits");
        let exact = PinPolicy {
            min_length: 6,
            max_length: 6,
            digits_only: false,
        };
        assert_eq!(exact.describe(), "exactly 6 characters");
        assert_eq!(PinPolicy::default().describe(), "4 to 64 characters");
    }

    #[test]
    fn user_fields_follow_the_api_rules() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
        assert_eq!(person_name("first_name", "  Ann ").as_deref(), Ok("Ann"));
        assert_eq!(login_field("login", "7").map_err(|e| e.field), Err("login"));
    }
}
