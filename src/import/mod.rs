//! Parsers that turn uploaded files into the tokens and users the server can enrol.
//!
//! Vendors ship OATH hardware tokens together with a seed file in the Portable
//! Symmetric Key Container format (PSKC, RFC 6030, read in `pskc`), and administrators
//! often keep small batches of tokens, and lists of users, in hand-written CSV sheets
//! (read in `csv`). Every parser is a pure function over bytes that are already in
//! memory: they do no I/O, read no clock and draw no randomness, so the same input
//! always gives the same answer and every rule can be tested in isolation.
//!
//! This module holds what the parsers share: the token they produce, the error they
//! report, the limits, and the checks every token passes whatever file it came from.
//!
//! Both token parsers are all or nothing: one bad entry fails the whole import, so that
//! an administrator never ends up with half a batch enrolled and the other half lost.
//! The users parser names every bad row with its reasons instead, and its caller
//! imports the rows only when none has a problem. Errors carry the 1-based line of the
//! offending entry where it is known, and no error message, `Debug` output or
//! `Display` output ever contains a secret.

mod csv;
mod pskc;

use std::fmt;

pub use csv::{MAX_USERS, UserRow, parse_csv, parse_users_csv};
pub use pskc::{PskcKey, parse_pskc};

/// The most tokens one file may hold, so that a hostile or corrupt file cannot make
/// the server allocate and decrypt without bound.
pub const MAX_TOKENS: usize = 10_000;

/// The shortest secret accepted in bytes. RFC 4226 asks for 128 bits, but older
/// tokens ship 80-bit seeds; anything shorter is a truncated or guessable secret.
pub const MIN_SECRET_LEN: usize = 10;

/// The longest serial accepted, so that a serial always fits a database column and
/// a log line.
const MAX_SERIAL_LEN: usize = 128;

/// The kind of one-time password a token produces, which decides whether the server
/// tracks a counter or the clock for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// Event-based tokens (RFC 4226) that advance a counter at each press.
    Hotp,
    /// Time-based tokens (RFC 6238) that derive the code from the current time step.
    Totp,
}

/// One token read from an import file, ready to be stored by the caller.
///
/// `Debug` is written by hand so that logging a token never reveals its secret.
#[derive(Clone)]
pub struct ImportedToken {
    /// The serial printed on the device, which administrators use to assign it.
    pub serial: String,
    /// The raw HMAC key shared with the device.
    pub secret: Vec<u8>,
    /// Whether the token counts events or time steps.
    pub token_type: TokenType,
    /// The HMAC hash, always one of `"SHA1"`, `"SHA256"` or `"SHA512"`.
    pub algorithm: String,
    /// How many digits the device shows, 6 or 8.
    pub digits: u32,
    /// The HOTP counter value to start from; 0 for TOTP tokens.
    pub counter: u64,
    /// The TOTP time step in seconds, 30 or 60; 30 for HOTP tokens.
    pub period: u32,
}

impl fmt::Debug for ImportedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedToken")
            .field("serial", &self.serial)
            .field("secret", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("counter", &self.counter)
            .field("period", &self.period)
            .finish()
    }
}

/// Why an import was refused, with the 1-based line of the culprit when known so an
/// administrator can fix the file without guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ImportError {
    /// The 1-based line in the input where the problem was found, if any.
    pub line: Option<usize>,
    /// A sentence saying what is wrong; it never contains secret material.
    pub reason: String,
}

impl ImportError {
    /// Builds an error tied to a line, which is the common case for both formats.
    fn at(line: usize, reason: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            reason: reason.into(),
        }
    }

    /// Builds an error about the file as a whole, for problems no single line owns.
    fn general(reason: impl Into<String>) -> Self {
        Self {
            line: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

// ---------------------------------------------------------------------------
// Shared validation
// ---------------------------------------------------------------------------

/// Checks a serial so that what gets stored is printable, bounded and non-empty;
/// the serial is the only token field that ends up in messages and logs.
fn check_serial(serial: &str) -> Result<(), String> {
    if serial.is_empty() {
        return Err("the serial is empty".to_owned());
    }
    if serial.chars().count() > MAX_SERIAL_LEN {
        return Err(format!(
            "the serial is longer than {MAX_SERIAL_LEN} characters"
        ));
    }
    if serial.chars().any(char::is_control) {
        return Err("the serial contains a control character".to_owned());
    }
    Ok(())
}

/// Maps the many spellings of a hash (`sha256`, `SHA-256`, `HMAC-SHA256`) to the one
/// name the rest of the server uses, so storage never sees two names for one hash.
fn normalise_hash(name: &str) -> Option<&'static str> {
    let compact: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_') && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bare = compact.strip_prefix("HMAC").unwrap_or(&compact);
    match bare {
        "SHA1" => Some("SHA1"),
        "SHA256" => Some("SHA256"),
        "SHA512" => Some("SHA512"),
        _ => None,
    }
}

/// Checks the digit count, because verifiers only handle the 6- and 8-digit codes
/// that real tokens show.
fn check_digits(digits: u64) -> Result<u32, String> {
    match digits {
        6 => Ok(6),
        8 => Ok(8),
        other => Err(format!("digits must be 6 or 8, not {other}")),
    }
}

/// Checks the TOTP period, because hardware TOTP tokens step every 30 or 60 seconds
/// and any other value is almost surely a typo that would make every code fail.
fn check_period(period: u64) -> Result<u32, String> {
    match period {
        30 => Ok(30),
        60 => Ok(60),
        other => Err(format!(
            "the TOTP period must be 30 or 60 seconds, not {other}"
        )),
    }
}

/// Checks the secret length, so that a truncated seed is caught at import rather than
/// producing a token that never verifies or is easy to brute-force.
fn check_secret_len(secret: &[u8]) -> Result<(), String> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the secret is too short ({} bytes; at least {MIN_SECRET_LEN} are required)",
            secret.len()
        ));
    }
    Ok(())
}

/// Quotes a user-supplied field for an error message only when it is short, so a
/// secret typed into the wrong column is never echoed back into a log.
fn describe_field(value: &str) -> String {
    let length = value.chars().count();
    if length <= 12 {
        format!("\"{value}\"")
    } else {
        format!("a value of {length} characters")
    }
}

/// Shortens text taken from a file before it goes into an error message, so that a
/// hostile file cannot produce an error line megabytes long.
fn excerpt(text: &str) -> String {
    const LIMIT: usize = 120;
    let text = text.trim();
    match text.char_indices().nth(LIMIT) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIGURE3_PLAIN: &[u8] =
        include_bytes!("../../tests/fixtures/import/rfc6030-figure3-plain.pskcxml");

    #[test]
    fn token_debug_output_redacts_the_secret() {
        let tokens = parse_pskc(FIGURE3_PLAIN, PskcKey::None).expect("parses");
        let debug = format!("{:?}", tokens[0]);
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(!debug.contains("49, 50"), "{debug}");
        assert!(debug.contains("987654321"), "{debug}");
    }

    #[test]
    fn error_display_puts_the_line_first_when_known() {
        assert_eq!(ImportError::at(3, "bad").to_string(), "line 3: bad");
        assert_eq!(ImportError::general("bad").to_string(), "bad");
    }

    #[test]
    fn hash_names_are_normalised() {
        for name in ["sha1", "SHA-1", "HMAC-SHA1", "hmac_sha1"] {
            assert_eq!(normalise_hash(name), Some("SHA1"), "{name}");
        }
        assert_eq!(normalise_hash("HMAC-SHA-256"), Some("SHA256"));
        assert_eq!(normalise_hash("sha512"), Some("SHA512"));
        assert_eq!(normalise_hash("sha384"), None);
    }
}
