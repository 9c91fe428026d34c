//! Validated values, parsed once at the edge: a login name, an email address, a phone number.

/// Why a value given by a client is not acceptable, in words for that client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The longest login, in characters.
pub const MAX_LOGIN: usize = 128;

/// A user's login name: 1–128 characters, no control characters, no surrounding spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    pub fn parse(text: &str) -> Result<Login, Invalid> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_LOGIN {
            return Err(Invalid(format!(
                "a login must have 1 to {MAX_LOGIN} characters"
            )));
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
