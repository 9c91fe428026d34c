//! Validated values, parsed once at the edge: a login name, an email address, a phone number.

use icu_casemap::CaseMapperBorrowed;
use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

/// Why a value given by a client is not acceptable, in words for that client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The longest login, in characters.
pub const MAX_LOGIN: usize = 128;

/// The most characters of a refused value that its error message repeats.
const MAX_QUOTED: usize = 64;

/// A refused value as its error message shows it: quoted, and cut short when long, so that a
/// huge value (a field of an uploaded sheet, a JSON body) is not sent back or logged whole.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &text[..cut], text.chars().count()),
    }
}

/// A user's login name: 1–128 characters in Unicode's composed form (NFC), no control or
/// format characters, no surrounding spaces, not a number.
///
/// Users are told apart by [`login_key`], not by the spelling kept here: `Åsa`, `åsa` and `Åsa`
/// typed with a combining ring are one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    pub fn parse(text: &str) -> Result<Login, Invalid> {
        // The same name typed with a precomposed letter or a letter and a combining mark must be
        // the same login, so it is kept in one form, the composed one most input methods send.
        let text = ComposingNormalizerBorrowed::new_nfc().normalize(text.trim());
        if text.is_empty() || text.chars().count() > MAX_LOGIN {
            return Err(Invalid(format!(
                "a login must have 1 to {MAX_LOGIN} characters"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(Invalid("a login may not contain control characters".into()));
        }
        // Format characters are invisible (a zero-width space, a right-to-left override, a byte
        // order mark): a login holding one looks like another login and cannot be typed again.
        let format = CodePointMapData::<GeneralCategory>::new();
        if let Some(invisible) = text
            .chars()
            .find(|&c| format.get(c) == GeneralCategory::Format)
        {
            return Err(Invalid(format!(
                "a login may not contain invisible format characters (it holds U+{:04X})",
                u32::from(invisible)
            )));
        }
        if text.parse::<i64>().is_ok() {
            return Err(Invalid(
                "a login may not be a number (numbers are user ids)".into(),
            ));
        }
        Ok(Login(text.into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The key by which logins are unique and found: the login trimmed and case-folded with
/// Unicode's full, default case folding (`ß` → `ss`; `İ` as in every language but Turkish and
/// Azeri), the same for every normal form of it. Two logins with the same key are one login.
///
/// Any text has a key, so that a lookup with a name that is no valid login finds nothing
/// rather than failing.
pub fn login_key(text: &str) -> String {
    let text = text.trim();
    // ASCII needs neither normalisation nor more than lowercasing, and nearly every login (and
    // so nearly every authentication's lookup) is ASCII.
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    folded_key(text)
}

/// The key of any text: the fold of the decomposed text, composed again (Unicode's canonical
/// caseless match, in NFC). Folding the composed text instead would let a mark that follows a
/// letter with a Greek ypogegrammeni land on the iota the ypogegrammeni folds to, so that `ᾀ`
/// and a diaeresis would match `ἀϊ`.
fn folded_key(text: &str) -> String {
    let decomposed = DecomposingNormalizerBorrowed::new_nfd().normalize(text);
    let folded = CaseMapperBorrowed::new().fold_string(&decomposed);
    ComposingNormalizerBorrowed::new_nfc()
        .normalize(&folded)
        .into_owned()
}

/// An email address, checked for the shape `local@domain.tld` (delivery proves the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, Invalid> {
        let text = text.trim();
        let invalid = || Invalid(format!("{} is not an email address", quoted(text)));
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
                    "{} is not an international phone number: start it with + and the country code",
                    quoted(text.trim())
                ))
            })?;
        if !(7..=15).contains(&digits.len())
            || !digits.chars().all(|c| c.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(Invalid(format!(
                "{} is not a phone number in international form (+ and 7 to 15 digits)",
                quoted(text.trim())
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
    fn a_huge_refused_email_or_phone_is_not_repeated_whole_in_its_error() {
        // Found by the fuzz target of the users CSV importer (tests/fuzz): a field of 120 byte
        // order marks came back as an error of a kilobyte.
        let huge = "\u{feff}".repeat(100_000);
        for error in [
            Email::parse(&huge).map(|_| ()),
            Phone::parse(&huge).map(|_| ()),
            Phone::parse(&format!("+{}", "1".repeat(100_000))).map(|_| ()),
        ] {
            let message = error.expect_err("refused").0;
            assert!(message.len() < 1_000, "{} bytes", message.len());
            assert!(
                message.contains("(100000 characters)") || message.contains("(100001 characters)"),
                "{message}"
            );
        }
        let short = Email::parse("not-an-address").expect_err("refused").0;
        assert_eq!(short, "\"not-an-address\" is not an email address");
    }

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

    fn login(text: &str) -> String {
        Login::parse(text).expect("a valid login").into_string()
    }

    fn refusal(text: &str) -> String {
        Login::parse(text).expect_err("refused").0
    }

    #[test]
    fn a_login_is_kept_in_composed_form_and_in_its_own_case() {
        assert_eq!(login("Andre\u{301}"), "Andr\u{e9}");
        assert_eq!(login(" A\u{30a}sa "), "\u{c5}sa");
        // The angstrom sign is canonically the letter Å.
        assert_eq!(login("\u{212b}sa"), "\u{c5}sa");
        assert_eq!(login("ZOË"), "ZOË");
    }

    #[test]
    fn logins_that_differ_only_in_case_or_normal_form_have_one_key() {
        let same = [
            ("Zoë", "ZOË"),
            ("\u{c5}sa", "\u{e5}sa"),
            ("\u{c5}sa", "A\u{30a}SA"),
            ("Andr\u{e9}", "Andre\u{301}"),
            ("straße", "STRASSE"),
            ("ẞtraße", "sstrasse"),
            ("Alice", "aLICE"),
            (" bob ", "BOB"),
        ];
        for (a, b) in same {
            assert_eq!(login_key(a), login_key(b), "{a:?} and {b:?}");
            assert_eq!(
                login_key(&login(a)),
                login_key(&login(b)),
                "{a:?} and {b:?} parsed"
            );
        }
        assert_eq!(login_key("STRASSE"), "strasse");
        assert_eq!(login_key("Andre\u{301}"), "andr\u{e9}");
        // The default folding, not the Turkic one: İ keeps its dot as a combining mark.
        assert_eq!(login_key("İlkay"), "i\u{307}lkay");
        assert_ne!(login_key("İlkay"), login_key("ilkay"));
        assert_ne!(login_key("Zoë"), login_key("Zoe"));
        // ASCII takes a shorter way to the same key.
        let printable: String = (' '..='~').collect();
        for text in [printable.as_str(), "Admin.Ops@Example", "x"] {
            assert_eq!(login_key(text), folded_key(text.trim()), "{text:?}");
        }
    }

    #[test]
    fn a_mark_after_a_greek_ypogegrammeni_stays_on_its_letter() {
        assert_ne!(login_key("\u{1f80}\u{308}"), login_key("\u{1f00}\u{3ca}"));
        assert_eq!(
            login_key("\u{1f80}\u{308}"),
            login_key("\u{3b1}\u{313}\u{308}\u{345}")
        );
    }

    #[test]
    fn invisible_format_characters_and_control_characters_are_refused_in_words_of_their_own() {
        for (text, named) in [
            ("ad\u{200b}min", "U+200B"),
            ("admin\u{202e}", "U+202E"),
            ("\u{feff}admin", "U+FEFF"),
            ("ad\u{ad}min", "U+00AD"),
        ] {
            let message = refusal(text);
            assert!(message.contains("format characters"), "{text:?}: {message}");
            assert!(message.contains(named), "{text:?}: {message}");
        }
        for text in ["a\u{7}b", "a\nb", "a\u{85}b", "a\u{9f}b"] {
            let message = refusal(text);
            assert!(
                message.contains("control characters"),
                "{text:?}: {message}"
            );
        }
    }

    #[test]
    fn the_length_is_counted_in_composed_characters() {
        let decomposed = "e\u{301}".repeat(128);
        assert_eq!(login(&decomposed).chars().count(), 128);
        assert!(Login::parse(&"é".repeat(129)).is_err());
    }

    #[test]
    fn logins_are_trimmed_and_may_not_be_numbers() {
        assert_eq!(Login::parse("  alice ").expect("valid").as_str(), "alice");
        assert!(Login::parse("42").is_err());
        assert!(Login::parse("").is_err());
        assert!(Login::parse("a\u{7}b").is_err());
    }
}
