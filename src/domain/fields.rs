//! The rules for one value of a form or request each: what a login, a name, an address, a
//! PIN or a token field may be, in the words the refusal gives. The API, the panel, the portal
//! and the console apply the same rules through these functions.

use super::{Email, FieldError, Login, Phone, TokenKind, TokenState};

/// The longest first or last name of a user, and the longest token name.
pub const MAX_NAME: usize = 128;
/// The shortest password a user may be given.
pub const MIN_PASSWORD: usize = 8;
/// Long enough for any passphrase, short enough that hashing stays cheap.
pub const MAX_PASSWORD: usize = 1024;

/// The shortest password an administrator may be given.
pub const MIN_ADMIN_PASSWORD: usize = 10;

/// Whether `login` can be an administrator's login: letters, digits and `. _ - @`, at most 64
/// characters (stricter than a user's login, since it is typed at the panel's door).
pub fn is_admin_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 64
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// A new administrator's login and password (typed twice): the login trimmed, or the field at
/// fault (`login`, `password` or `password_confirm`). The setup page, the panel and the console
/// apply this one rule.
pub fn admin_credentials(login: &str, password: &str, confirm: &str) -> Result<String, FieldError> {
    let login = login.trim();
    if !is_admin_login(login) {
        return Err(FieldError::new(
            "login",
            "The login may use letters, digits and . _ - @ (at most 64 characters).",
        ));
    }
    if password.chars().count() < MIN_ADMIN_PASSWORD {
        return Err(FieldError::new(
            "password",
            format!("The password must have at least {MIN_ADMIN_PASSWORD} characters."),
        ));
    }
    if password != confirm {
        return Err(FieldError::new(
            "password_confirm",
            "The two passwords differ.",
        ));
    }
    Ok(login.to_string())
}

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

/// The longest name of an API key.
pub const MAX_KEY_NAME: usize = 100;

/// An API key's name, which says who uses it: trimmed, 1 to [`MAX_KEY_NAME`] characters, one
/// line. The panel, the API and the console apply this one rule.
pub fn key_name(text: &str) -> Result<String, FieldError> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME || name.chars().any(char::is_control)
    {
        return Err(FieldError::new(
            "name",
            format!("Give the key a name of 1 to {MAX_KEY_NAME} characters."),
        ));
    }
    Ok(name.to_string())
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
pub fn pin_position(text: &str) -> Result<crate::otp::PinPosition, FieldError> {
    text.trim()
        .parse()
        .map_err(|e: crate::otp::ParseError| FieldError::new("pin_position", e.to_string()))
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
        assert_eq!(pin_position(" after "), Ok(crate::otp::PinPosition::After));
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
