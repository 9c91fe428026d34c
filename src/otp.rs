//! The one-time password core: HOTP (RFC 4226), TOTP (RFC 6238), verification with replay
//! protection and drift, token resynchronisation, secrets, enrollment URIs and challenge codes.
//!
//! Everything here is a pure function of its arguments. The time and any random bytes are passed
//! in by the caller, so the module can be tested exhaustively and behaves the same on every call
//! path; storage of the last used step and the remembered drift also belongs to the caller.

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE32_NOPAD, HEXLOWER_PERMISSIVE};
use hmac::digest::block_api::EagerHash;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The most digits a code can have, because dynamic truncation yields a 31-bit number and
/// 2^31 has ten decimal digits.
const MAX_DIGITS: u32 = 10;

/// The most steps that `verify` and `resync` examine on either side of the expected one.
///
/// Larger windows or searches are clamped to it so that a misconfigured value cannot turn a
/// single request into an unbounded amount of HMAC work.
pub const MAX_SEARCH: u64 = 10_000;

/// The hash function under the HMAC, named as authenticator apps and token vendors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA-1, the default of RFC 4226 and of nearly every authenticator app.
    Sha1,
    /// HMAC-SHA-256, as allowed by RFC 6238.
    Sha256,
    /// HMAC-SHA-512, as allowed by RFC 6238.
    Sha512,
}

impl Algorithm {
    /// Returns the name used in otpauth URIs and in storage, so both spell it the same way.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ParseError;

    /// Accepts "SHA1", "SHA256" and "SHA512" in any case, with or without a hyphen after "SHA",
    /// because token seed files and apps write them both ways.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const NAMES: [(&str, Algorithm); 6] = [
            ("SHA1", Algorithm::Sha1),
            ("SHA-1", Algorithm::Sha1),
            ("SHA256", Algorithm::Sha256),
            ("SHA-256", Algorithm::Sha256),
            ("SHA512", Algorithm::Sha512),
            ("SHA-512", Algorithm::Sha512),
        ];
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|&(_, algorithm)| algorithm)
            .ok_or(ParseError::Algorithm)
    }
}

/// Whether a token counts events or time, which decides what its moving factor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An event token (RFC 4226): the moving factor is a counter that advances per code.
    Hotp,
    /// A time token (RFC 6238): the moving factor is the number of `period`-second steps since
    /// the Unix epoch.
    Totp {
        /// The length of one time step in seconds; `Params::new` admits only 30 and 60.
        period: u32,
    },
}

impl Kind {
    /// Returns the name used in otpauth URIs, so the URI and the kind cannot disagree.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hotp => "hotp",
            Self::Totp { .. } => "totp",
        }
    }
}

/// The parameters of one token, checked once when they are built so later code can rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The hash function under the HMAC.
    pub algorithm: Algorithm,
    /// The length of a code: 6 or 8.
    pub digits: u32,
    /// Event or time based, with the period for time.
    pub kind: Kind,
}

impl Params {
    /// Builds token parameters, refusing digit counts other than 6 and 8 and periods other than
    /// 30 and 60 seconds, because those are the only ones authenticator apps and hardware tokens
    /// reliably support.
    ///
    /// # Errors
    ///
    /// Returns `ParamsError::Digits` or `ParamsError::Period` naming the refused value.
    pub fn new(algorithm: Algorithm, digits: u32, kind: Kind) -> Result<Self, ParamsError> {
        if digits != 6 && digits != 8 {
            return Err(ParamsError::Digits(digits));
        }
        if let Kind::Totp { period } = kind
            && period != 30
            && period != 60
        {
            return Err(ParamsError::Period(period));
        }
        Ok(Self {
            algorithm,
            digits,
            kind,
        })
    }
}

/// Why token parameters were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    /// The number of digits was neither 6 nor 8.
    Digits(u32),
    /// The TOTP period was neither 30 nor 60 seconds.
    Period(u32),
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Digits(digits) => {
                write!(f, "a code must have 6 or 8 digits, not {digits}")
            }
            Self::Period(period) => {
                write!(f, "a TOTP period must be 30 or 60 seconds, not {period}")
            }
        }
    }
}

impl std::error::Error for ParamsError {}

/// Why a name could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The text named no supported algorithm.
    Algorithm,
    /// The text was neither "before" nor "after".
    PinPosition,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Algorithm => f.write_str("unknown algorithm, expected SHA1, SHA256 or SHA512"),
            Self::PinPosition => f.write_str("unknown PIN position, expected before or after"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a secret could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretError {
    /// The text held no secret at all, which would make every code predictable.
    Empty,
    /// The text was not base32.
    Base32,
    /// The text was not hexadecimal.
    Hex,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the secret is empty"),
            Self::Base32 => f.write_str("the secret is not valid base32"),
            Self::Hex => f.write_str("the secret is not valid hexadecimal"),
        }
    }
}

impl std::error::Error for SecretError {}

/// An HMAC already keyed with the token secret, so that checking many moving factors costs one
/// key setup and one cheap clone per factor.
#[derive(Clone)]
enum Keyed {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Keyed {
    /// Keys the HMAC for the token's algorithm once.
    fn new(secret: &[u8], algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(keyed(secret)),
            Algorithm::Sha256 => Self::Sha256(keyed(secret)),
            Algorithm::Sha512 => Self::Sha512(keyed(secret)),
        }
    }

    /// Returns the 31-bit number that RFC 4226 dynamic truncation extracts for a moving factor.
    fn truncated(&self, moving_factor: u64) -> u32 {
        let message = moving_factor.to_be_bytes();
        match self {
            Self::Sha1(mac) => truncate_mac(mac, &message),
            Self::Sha256(mac) => truncate_mac(mac, &message),
            Self::Sha512(mac) => truncate_mac(mac, &message),
        }
    }

    /// Returns the code for a moving factor as a number, so candidates can be compared without
    /// allocating a string for each.
    fn code(&self, moving_factor: u64, digits: u32) -> u64 {
        reduce(self.truncated(moving_factor), digits)
    }
}

/// Keys an HMAC with the secret.
fn keyed<D: EagerHash>(secret: &[u8]) -> Hmac<D>
where
    Hmac<D>: KeyInit,
{
    // HMAC hashes long keys and pads short ones (RFC 2104 section 2), so keying accepts a secret
    // of any length and this error cannot occur.
    Hmac::<D>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Runs a clone of the keyed HMAC over the message and truncates the result.
fn truncate_mac<M: Mac + Clone>(keyed: &M, message: &[u8]) -> u32 {
    let mut mac = keyed.clone();
    mac.update(message);
    dynamic_truncation(mac.finalize().as_bytes())
}

/// Extracts four bytes at the offset named by the low nibble of the last byte, as RFC 4226
/// section 5.3 prescribes, and drops the sign bit so every platform reads the same number.
fn dynamic_truncation(mac: &[u8]) -> u32 {
    // Every supported MAC is at least 20 bytes long (SHA-1), the offset is at most 15, so the
    // last byte exists and the bytes offset..offset + 4 lie inside the MAC.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ])
}

/// Reduces a truncated value to a code of `digits` digits; digit counts above ten change
/// nothing, since the value never has more than ten digits.
fn reduce(truncated: u32, digits: u32) -> u64 {
    u64::from(truncated) % 10u64.pow(digits.min(MAX_DIGITS))
}

/// Computes an HOTP code (RFC 4226): the zero-padded decimal code for a counter.
///
/// Digit counts outside 1 to 10 are clamped into that range instead of panicking, because the
/// truncated value has at most ten digits; `Params::new` keeps real tokens at 6 or 8.
#[must_use]
pub fn hotp(secret: &[u8], algorithm: Algorithm, digits: u32, counter: u64) -> String {
    let digits = digits.clamp(1, MAX_DIGITS);
    let code = Keyed::new(secret, algorithm).code(counter, digits);
    // `digits` is at most ten here, so the conversion is lossless on every platform.
    format!("{code:0width$}", width = digits as usize)
}

/// Computes the code a token shows for a moving factor: the counter for HOTP, the time step
/// (see `time_step`) for TOTP, so one function serves both kinds.
#[must_use]
pub fn code_at(secret: &[u8], params: &Params, moving_factor: u64) -> String {
    hotp(secret, params.algorithm, params.digits, moving_factor)
}

/// Returns the TOTP time step of a Unix time: the number of whole periods since the epoch.
///
/// A zero period, which `Params::new` never admits, yields step 0 rather than a division panic.
#[must_use]
pub fn time_step(unix_seconds: u64, period: u32) -> u64 {
    unix_seconds.checked_div(u64::from(period)).unwrap_or(0)
}

/// How far a verification may look from the expected moving factor, which trades tolerance of
/// clock skew or unused button presses against the chance of guessing a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// For TOTP, the steps accepted before the expected one; ignored for HOTP, whose counter only
    /// moves forward.
    pub behind: u64,
    /// For TOTP, the steps accepted after the expected one; for HOTP, the look-ahead over counter
    /// values a user may have skipped by pressing the button without logging in.
    pub ahead: u64,
}

impl Window {
    /// The usual window for a kind: one step either side for TOTP, to absorb clock skew and slow
    /// typing, and ten codes of look-ahead for HOTP.
    #[must_use]
    pub const fn for_kind(kind: Kind) -> Self {
        match kind {
            Kind::Hotp => Self {
                behind: 0,
                ahead: 10,
            },
            Kind::Totp { .. } => Self {
                behind: 1,
                ahead: 1,
            },
        }
    }
}

/// A successful verification: what the caller must store to refuse replays and follow drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The moving factor that matched; store it as `last_used` so that it and every earlier one
    /// are refused from now on.
    pub step: u64,
    /// For TOTP, the offset of `step` from the current time step, which is the drift to store and
    /// pass to the next verification as is; for HOTP, how many codes past the expected counter
    /// the match lay (the codes the user skipped).
    pub drift: i64,
}

/// Where a verification starts: the expected moving factor, and the one drift is measured from.
fn expected(params: &Params, last_used: Option<u64>, drift: i64, now_unix: u64) -> (u64, u64) {
    match params.kind {
        Kind::Hotp => {
            let expected = last_used.map_or(0, |last| last.saturating_add(1));
            (expected, expected)
        }
        Kind::Totp { period } => {
            let clock = time_step(now_unix, period);
            (clock.saturating_add_signed(drift), clock)
        }
    }
}

/// The inclusive range of moving factors to examine, or `None` when replay protection leaves
/// nothing to examine.
fn candidates(
    params: &Params,
    expected: u64,
    behind: u64,
    ahead: u64,
    last_used: Option<u64>,
) -> Option<(u64, u64)> {
    let behind = match params.kind {
        Kind::Hotp => 0,
        Kind::Totp { .. } => behind.min(MAX_SEARCH),
    };
    let mut low = expected.saturating_sub(behind);
    let high = expected.saturating_add(ahead.min(MAX_SEARCH));
    if let Some(last) = last_used {
        low = low.max(last.checked_add(1)?);
    }
    (low <= high).then_some((low, high))
}

/// Parses a typed code into its number, refusing anything that is not exactly `digits` ASCII
/// digits, so that no malformed input ever reaches the comparison.
fn parse_code(code: &str, digits: u32) -> Option<u64> {
    if !(1..=MAX_DIGITS).contains(&digits) || code.len() != digits as usize {
        return None;
    }
    code.bytes().try_fold(0u64, |value, byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u64::from(byte - b'0'))
    })
}

/// Signed distance from `base` to `step`, saturating at the ends of `i64`.
fn offset(step: u64, base: u64) -> i64 {
    let distance = i128::from(step) - i128::from(base);
    i64::try_from(distance).unwrap_or(if distance < 0 { i64::MIN } else { i64::MAX })
}

/// Verifies a typed code; the one verification path for every kind of token.
///
/// `last_used` is the last accepted moving factor (`None` if none was ever accepted); that one
/// and every earlier one are refused, so a code cannot be replayed. For HOTP the expected factor
/// is the one after `last_used` (or 0) and the candidates run up to `window.ahead` beyond it. For
/// TOTP the expected factor is the current time step shifted by the remembered `drift`, and the
/// candidates run from `window.behind` before it to `window.ahead` after it, stopping at step 0.
/// Window sides are clamped to `MAX_SEARCH`.
///
/// Every candidate is computed and compared in constant time, and the lowest match is selected
/// without branching, so the time taken does not reveal which candidate matched. Returns the
/// lowest matching moving factor.
#[must_use]
pub fn verify(
    secret: &[u8],
    params: &Params,
    code: &str,
    window: Window,
    last_used: Option<u64>,
    drift: i64,
    now_unix: u64,
) -> Option<Match> {
    let wanted = parse_code(code, params.digits)?;
    let (expected, base) = expected(params, last_used, drift, now_unix);
    let (low, high) = candidates(params, expected, window.behind, window.ahead, last_used)?;
    let keyed = Keyed::new(secret, params.algorithm);

    let mut found = Choice::from(0);
    let mut step = 0u64;
    for candidate in low..=high {
        let hit = keyed.code(candidate, params.digits).ct_eq(&wanted);
        step.conditional_assign(&candidate, hit & !found);
        found |= hit;
    }
    bool::from(found).then(|| Match {
        step,
        drift: offset(step, base),
    })
}

/// Resynchronises a token from two consecutive codes, for a token that drifted beyond the
/// verification window (an HOTP token pressed many times, a TOTP token with a wandering clock).
///
/// Searches from the expected moving factor (as in `verify`) up to `search` steps ahead, and for
/// TOTP also `search` steps behind, for a factor `s` after `last_used` where `code1` matches `s`
/// and `code2` matches `s + 1`. Two consecutive matches are needed because one code in a range
/// this wide matches by chance far too often. `search` is clamped to `MAX_SEARCH`. Returns the
/// match for `s + 1`, the last factor used, for the caller to store like a verification.
#[must_use]
#[allow(
    clippy::too_many_arguments,
    reason = "the arguments are the documented verification state, kept parallel to verify"
)]
pub fn resync(
    secret: &[u8],
    params: &Params,
    code1: &str,
    code2: &str,
    search: u64,
    last_used: Option<u64>,
    drift: i64,
    now_unix: u64,
) -> Option<Match> {
    let first = parse_code(code1, params.digits)?;
    let second = parse_code(code2, params.digits)?;
    let (expected, base) = expected(params, last_used, drift, now_unix);
    let (low, high) = candidates(params, expected, search, search, last_used)?;
    let keyed = Keyed::new(secret, params.algorithm);

    // One HMAC per factor: remember whether the previous factor matched `code1` and look for
    // `code2` at the current one, up to one past the last candidate for `s`.
    let mut previous_matched_first = Choice::from(0);
    let mut found = Choice::from(0);
    let mut step = 0u64;
    for candidate in low..=high.saturating_add(1) {
        let code = keyed.code(candidate, params.digits);
        let hit = previous_matched_first & code.ct_eq(&second);
        step.conditional_assign(&candidate, hit & !found);
        found |= hit;
        previous_matched_first = code.ct_eq(&first) & Choice::from(u8::from(candidate <= high));
    }
    bool::from(found).then(|| Match {
        step,
        drift: offset(step, base),
    })
}

/// Appends text percent-encoded, leaving only RFC 3986 unreserved characters as they are, so
/// that spaces, colons and non-ASCII names survive the trip through a QR code into any app.
fn push_percent_encoded(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// Builds the otpauth URI (Key Uri Format) that authenticator apps read from a QR code.
///
/// The label is `ISSUER:ACCOUNT` with both parts percent-encoded, so a colon inside a name cannot
/// be mistaken for the separator; the issuer is repeated as a parameter because apps differ in
/// which one they read. An empty issuer is left out entirely. HOTP tokens carry `counter`, TOTP
/// tokens their `period` (and ignore `counter`).
#[must_use]
pub fn otpauth_uri(
    secret: &[u8],
    params: &Params,
    issuer: &str,
    account: &str,
    counter: u64,
) -> String {
    let mut uri = String::from("otpauth://");
    uri.push_str(params.kind.as_str());
    uri.push('/');
    if !issuer.is_empty() {
        push_percent_encoded(&mut uri, issuer);
        uri.push(':');
    }
    push_percent_encoded(&mut uri, account);
    uri.push_str("?secret=");
    uri.push_str(&encode_secret(secret));
    if !issuer.is_empty() {
        uri.push_str("&issuer=");
        push_percent_encoded(&mut uri, issuer);
    }
    uri.push_str("&algorithm=");
    uri.push_str(params.algorithm.as_str());
    uri.push_str("&digits=");
    uri.push_str(&params.digits.to_string());
    match params.kind {
        Kind::Hotp => {
            uri.push_str("&counter=");
            uri.push_str(&counter.to_string());
        }
        Kind::Totp { period } => {
            uri.push_str("&period=");
            uri.push_str(&period.to_string());
        }
    }
    uri
}

/// Encodes a secret as upper-case base32 without padding, the form authenticator apps expect.
#[must_use]
pub fn encode_secret(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// Removes the separators people and seed files put into secrets to make them readable.
fn compact(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

/// Decodes a base32 secret as people type or paste it: any case, with spaces or hyphens between
/// groups, with or without `=` padding.
///
/// Unused bits in the last character are ignored rather than refused, as authenticator apps do,
/// so secrets from generators that emit arbitrary base32 lengths still import.
///
/// # Errors
///
/// Returns `SecretError::Empty` when nothing but separators and padding was given, and
/// `SecretError::Base32` for any other character or an impossible length.
pub fn decode_base32_secret(text: &str) -> Result<Vec<u8>, SecretError> {
    let mut compact = compact(text).to_ascii_uppercase();
    compact.truncate(compact.trim_end_matches('=').len());
    if compact.is_empty() {
        return Err(SecretError::Empty);
    }
    let mut specification = BASE32_NOPAD.specification();
    specification.check_trailing_bits = false;
    // The specification is the standard one with one check relaxed, so it is always valid; the
    // error is mapped rather than unwrapped so that no input can ever lead to a panic.
    let encoding = specification.encoding().map_err(|_| SecretError::Base32)?;
    let secret = encoding
        .decode(compact.as_bytes())
        .map_err(|_| SecretError::Base32)?;
    if secret.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(secret)
}

/// Decodes a hexadecimal secret, the form hardware token seed files use: any case, whitespace or
/// hyphens between groups, and an optional `0x` prefix.
///
/// # Errors
///
/// Returns `SecretError::Empty` when no digits were given, and `SecretError::Hex` for any other
/// character or an odd number of digits.
pub fn decode_hex_secret(text: &str) -> Result<Vec<u8>, SecretError> {
    let compact = compact(text);
    let digits = compact
        .strip_prefix("0x")
        .or_else(|| compact.strip_prefix("0X"))
        .unwrap_or(&compact);
    if digits.is_empty() {
        return Err(SecretError::Empty);
    }
    HEXLOWER_PERMISSIVE
        .decode(digits.as_bytes())
        .map_err(|_| SecretError::Hex)
}

/// Where a user types their PIN relative to the OTP when both are sent as one string, as RADIUS
/// and LDAP style clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinPosition {
    /// The PIN comes first: "PIN+OTP".
    Before,
    /// The PIN comes last: "OTP+PIN".
    After,
}

impl PinPosition {
    /// Returns the name used in configuration, so parsing and printing agree.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::After => "after",
        }
    }
}

impl fmt::Display for PinPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PinPosition {
    type Err = ParseError;

    /// Accepts "before" and "after" in any case, because configuration is written by hand.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("before") {
            Ok(Self::Before)
        } else if text.eq_ignore_ascii_case("after") {
            Ok(Self::After)
        } else {
            Err(ParseError::PinPosition)
        }
    }
}

/// Splits one typed string into `(pin, otp)`, the OTP being `digits` characters at the end (PIN
/// before) or at the start (PIN after).
///
/// Counts characters, not bytes, so a PIN with non-ASCII characters splits on a character
/// boundary and never panics. Returns `None` when the input is shorter than the OTP.
#[must_use]
pub fn split_pin(input: &str, digits: u32, position: PinPosition) -> Option<(&str, &str)> {
    let digits = usize::try_from(digits).ok()?;
    if input.chars().count() < digits {
        return None;
    }
    match position {
        PinPosition::Before => {
            let at = if digits == 0 {
                input.len()
            } else {
                input.char_indices().nth_back(digits - 1)?.0
            };
            input.split_at_checked(at)
        }
        PinPosition::After => {
            let at = input
                .char_indices()
                .nth(digits)
                .map_or(input.len(), |(at, _)| at);
            let (otp, pin) = input.split_at_checked(at)?;
            Some((pin, otp))
        }
    }
}

/// Draws a random numeric code of `digits` digits for mail, SMS and messenger challenges from
/// caller-provided random bytes.
///
/// Each byte below 250 yields one digit (its value modulo 10) and bytes of 250 and above are
/// discarded, so every digit is exactly uniform; taking every byte modulo 10 would favour 0 to 5.
/// Returns `None` when the bytes run out before the code is complete, which for `2 * digits`
/// bytes is astronomically unlikely, and for zero digits, since an empty code proves nothing.
#[must_use]
pub fn numeric_code(random: &[u8], digits: u32) -> Option<String> {
    let digits = usize::try_from(digits).ok()?;
    if digits == 0 || digits > random.len() {
        return None;
    }
    let mut code = String::with_capacity(digits);
    for &byte in random {
        if code.len() == digits {
            break;
        }
        if byte < 250 {
            code.push(char::from(b'0' + byte % 10));
        }
    }
    (code.len() == digits).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SEED_SHA1: &[u8] = b"12345678901234567890";
    const RFC_SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const RFC_SEED_SHA512: &[u8] =
        b"1234567890123456789012345678901234567890123456789012345678901234";

    fn totp(algorithm: Algorithm, digits: u32, period: u32) -> Params {
        Params::new(algorithm, digits, Kind::Totp { period }).unwrap()
    }

    fn hotp_params(digits: u32) -> Params {
        Params::new(Algorithm::Sha1, digits, Kind::Hotp).unwrap()
    }

    fn window(behind: u64, ahead: u64) -> Window {
        Window { behind, ahead }
    }

    /// A fixed time well inside step 50_000_000 of a 30-second period.
    const NOW: u64 = 1_500_000_000 + 5;

    fn step_now() -> u64 {
        time_step(NOW, 30)
    }

    #[test]
    fn rfc4226_appendix_d_vectors_match() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in (0u64..).zip(expected) {
            assert_eq!(hotp(RFC_SEED_SHA1, Algorithm::Sha1, 6, counter), code);
        }
    }

    #[test]
    fn rfc4226_appendix_d_truncated_values_match() {
        let expected = [
            1284755224u32,
            1094287082,
            137359152,
            1726969429,
            1640338314,
            868254676,
            1918287922,
            82162583,
            673399871,
            645520489,
        ];
        let keyed = Keyed::new(RFC_SEED_SHA1, Algorithm::Sha1);
        for (counter, value) in (0u64..).zip(expected) {
            assert_eq!(keyed.truncated(counter), value);
        }
    }

    #[test]
    fn rfc6238_appendix_b_vectors_match() {
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in vectors {
            for (algorithm, seed, code) in [
                (Algorithm::Sha1, RFC_SEED_SHA1, sha1),
                (Algorithm::Sha256, RFC_SEED_SHA256, sha256),
                (Algorithm::Sha512, RFC_SEED_SHA512, sha512),
            ] {
                let params = totp(algorithm, 8, 30);
                assert_eq!(
                    code_at(seed, &params, time_step(time, 30)),
                    code,
                    "{algorithm} at {time}"
                );
            }
        }
    }

    #[test]
    fn rfc6238_vectors_verify_at_their_time() {
        let params = totp(Algorithm::Sha512, 8, 30);
        let found = verify(
            RFC_SEED_SHA512,
            &params,
            "47863826",
            window(1, 1),
            None,
            0,
            20000000000,
        );
        assert_eq!(
            found,
            Some(Match {
                step: time_step(20000000000, 30),
                drift: 0
            })
        );
    }

    #[test]
    fn algorithm_names_parse_in_any_case_and_with_hyphens() {
        for (text, algorithm) in [
            ("SHA1", Algorithm::Sha1),
            ("sha1", Algorithm::Sha1),
            ("SHA-1", Algorithm::Sha1),
            ("Sha256", Algorithm::Sha256),
            ("sha-256", Algorithm::Sha256),
            ("SHA512", Algorithm::Sha512),
            ("SHA-512", Algorithm::Sha512),
        ] {
            assert_eq!(text.parse::<Algorithm>(), Ok(algorithm));
        }
        for text in ["", "MD5", "SHA", "SHA384", " SHA1", "SHA1ü"] {
            assert_eq!(text.parse::<Algorithm>(), Err(ParseError::Algorithm));
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(algorithm.as_str().parse(), Ok(algorithm));
            assert_eq!(algorithm.to_string(), algorithm.as_str());
        }
    }

    #[test]
    fn params_accept_only_six_or_eight_digits() {
        assert!(Params::new(Algorithm::Sha1, 6, Kind::Hotp).is_ok());
        assert!(Params::new(Algorithm::Sha1, 8, Kind::Hotp).is_ok());
        for digits in [0, 5, 7, 9, 10, u32::MAX] {
            assert_eq!(
                Params::new(Algorithm::Sha1, digits, Kind::Hotp),
                Err(ParamsError::Digits(digits))
            );
        }
    }

    #[test]
    fn params_accept_only_thirty_or_sixty_second_periods() {
        assert!(Params::new(Algorithm::Sha1, 6, Kind::Totp { period: 30 }).is_ok());
        assert!(Params::new(Algorithm::Sha1, 6, Kind::Totp { period: 60 }).is_ok());
        for period in [0, 1, 45, 90] {
            assert_eq!(
                Params::new(Algorithm::Sha1, 6, Kind::Totp { period }),
                Err(ParamsError::Period(period))
            );
        }
    }

    #[test]
    fn errors_explain_themselves() {
        assert_eq!(
            ParamsError::Digits(7).to_string(),
            "a code must have 6 or 8 digits, not 7"
        );
        assert_eq!(
            ParamsError::Period(45).to_string(),
            "a TOTP period must be 30 or 60 seconds, not 45"
        );
        assert!(ParseError::Algorithm.to_string().contains("SHA256"));
        assert!(ParseError::PinPosition.to_string().contains("before"));
        assert_eq!(
            SecretError::Hex.to_string(),
            "the secret is not valid hexadecimal"
        );
    }

    #[test]
    fn time_step_counts_whole_periods() {
        assert_eq!(time_step(0, 30), 0);
        assert_eq!(time_step(29, 30), 0);
        assert_eq!(time_step(30, 30), 1);
        assert_eq!(time_step(119, 60), 1);
        assert_eq!(time_step(u64::MAX, 30), u64::MAX / 30);
    }

    #[test]
    fn zero_period_yields_step_zero_instead_of_panicking() {
        assert_eq!(time_step(1_000, 0), 0);
    }

    #[test]
    fn hotp_clamps_unusual_digit_counts_instead_of_panicking() {
        assert_eq!(hotp(RFC_SEED_SHA1, Algorithm::Sha1, 0, 0), "4");
        assert_eq!(hotp(RFC_SEED_SHA1, Algorithm::Sha1, 10, 0), "1284755224");
        assert_eq!(
            hotp(RFC_SEED_SHA1, Algorithm::Sha1, u32::MAX, 0),
            "1284755224"
        );
        assert_eq!(hotp(RFC_SEED_SHA1, Algorithm::Sha1, 10, 2), "0137359152");
    }

    #[test]
    fn empty_and_long_secrets_produce_codes() {
        assert_eq!(hotp(b"", Algorithm::Sha1, 6, 0).len(), 6);
        assert_eq!(hotp(&[7u8; 300], Algorithm::Sha512, 8, 0).len(), 8);
    }

    #[test]
    fn current_totp_code_is_accepted() {
        let params = totp(Algorithm::Sha1, 6, 30);
        let code = code_at(RFC_SEED_SHA1, &params, step_now());
        let found = verify(RFC_SEED_SHA1, &params, &code, window(1, 1), None, 0, NOW);
        assert_eq!(
            found,
            Some(Match {
                step: step_now(),
                drift: 0
            })
        );
    }

    #[test]
    fn totp_codes_within_the_window_are_accepted() {
        let params = totp(Algorithm::Sha1, 6, 30);
        for (step, drift) in [(step_now() - 1, -1), (step_now() + 1, 1)] {
            let code = code_at(RFC_SEED_SHA1, &params, step);
            let found = verify(RFC_SEED_SHA1, &params, &code, window(1, 1), None, 0, NOW);
            assert_eq!(found, Some(Match { step, drift }));
        }
    }

    #[test]
    fn totp_codes_outside_the_window_are_rejected() {
        let params = totp(Algorithm::Sha1, 6, 30);
        for step in [step_now() - 2, step_now() + 2, step_now() - 100] {
            let code = code_at(RFC_SEED_SHA1, &params, step);
            assert_eq!(
                verify(RFC_SEED_SHA1, &params, &code, window(1, 1), None, 0, NOW),
                None
            );
        }
    }

    #[test]
    fn asymmetric_windows_are_honoured() {
        let params = totp(Algorithm::Sha1, 6, 30);
        let behind = code_at(RFC_SEED_SHA1, &params, step_now() - 3);
        let ahead = code_at(RFC_SEED_SHA1, &params, step_now() + 1);
        let wide_behind = window(3, 0);
        assert!(verify(RFC_SEED_SHA1, &params, &behind, wide_behind, None, 0, NOW).is_some());
        assert!(verify(RFC_SEED_SHA1, &params, &ahead, wide_behind, None, 0, NOW).is_none());
    }

    #[test]
    fn replayed_step_is_not_accepted_again() {
        let params = totp(Algorithm::Sha1, 6, 30);
        let code = code_at(RFC_SEED_SHA1, &params, step_now());
        let first = verify(RFC_SEED_SHA1, &params, &code, window(1, 1), None, 0, NOW).unwrap();
        let again = verify(
            RFC_SEED_SHA1,
            &params,
            &code,
            window(1, 1),
            Some(first.step),
            first.drift,
            NOW,
        );
        assert_eq!(again, None);
    }

    #[test]
    fn steps_before_the_last_used_one_are_never_accepted() {
        let params = totp(Algorithm::Sha1, 6, 30);
        let older = code_at(RFC_SEED_SHA1, &params, step_now() - 1);
        let last_used = Some(step_now());
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                &older,
                window(1, 1),
                last_used,
                0,
                NOW
            ),
            None
        );
        let newer = code_at(RFC_SEED_SHA1, &params, step_now() + 1);
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                &newer,
                window(1, 1),
                last_used,
                0,
                NOW
            ),
            Some(Match {
                step: step_now() + 1,
                drift: 1
            })
        );
    }

    #[test]
    fn remembered_drift_shifts_the_window() {
        let params = totp(Algorithm::Sha1, 6, 30);
        let drifted = code_at(RFC_SEED_SHA1, &params, step_now() + 5);
        assert_eq!(
            verify(RFC_SEED_SHA1, &params, &drifted, window(1, 1), None, 0, NOW),
            None
        );
        assert_eq!(
            verify(RFC_SEED_SHA1, &params, &drifted, window(1, 1), None, 4, NOW),
            Some(Match {
                step: step_now() + 5,
                drift: 5
            })
        );
        let on_time = code_at(RFC_SEED_SHA1, &params, step_now());
        assert_eq!(
            verify(RFC_SEED_SHA1, &params, &on_time, window(1, 1), None, 4, NOW),
            None
        );
    }

    #[test]
    fn negative_drift_shifts_the_window_back() {
        let params = totp(Algorithm::Sha256, 8, 30);
        let late = code_at(RFC_SEED_SHA256, &params, step_now() - 7);
        assert_eq!(
            verify(RFC_SEED_SHA256, &params, &late, window(1, 1), None, -6, NOW),
            Some(Match {
                step: step_now() - 7,
                drift: -7
            })
        );
    }

    #[test]
    fn window_stops_at_step_zero() {
        let params = totp(Algorithm::Sha1, 6, 30);
        let code = code_at(RFC_SEED_SHA1, &params, 0);
        assert_eq!(
            verify(RFC_SEED_SHA1, &params, &code, window(5, 1), None, -10, 10),
            Some(Match { step: 0, drift: 0 })
        );
    }

    #[test]
    fn sixty_second_period_uses_sixty_second_steps() {
        let params = totp(Algorithm::Sha1, 6, 60);
        let start = time_step(NOW, 60) * 60;
        let step = time_step(start, 60);
        let code = code_at(RFC_SEED_SHA1, &params, step);
        for now in [start, start + 59] {
            assert_eq!(
                verify(RFC_SEED_SHA1, &params, &code, window(0, 0), None, 0, now),
                Some(Match { step, drift: 0 })
            );
        }
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                &code,
                window(0, 0),
                None,
                0,
                start + 60
            ),
            None
        );
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                &code,
                window(1, 0),
                None,
                0,
                start + 60
            ),
            Some(Match { step, drift: -1 })
        );
    }

    #[test]
    fn six_and_eight_digit_codes_verify() {
        for digits in [6, 8] {
            let params = totp(Algorithm::Sha1, digits, 30);
            let code = code_at(RFC_SEED_SHA1, &params, step_now());
            assert_eq!(code.len(), digits as usize);
            assert!(verify(RFC_SEED_SHA1, &params, &code, window(1, 1), None, 0, NOW).is_some());
        }
    }

    #[test]
    fn codes_of_the_wrong_length_are_rejected() {
        let six = totp(Algorithm::Sha1, 6, 30);
        let eight = totp(Algorithm::Sha1, 8, 30);
        let code8 = code_at(RFC_SEED_SHA1, &eight, step_now());
        let code6 = code_at(RFC_SEED_SHA1, &six, step_now());
        // The last six digits of an 8-digit code are the 6-digit code.
        assert_eq!(&code8[2..], code6);
        assert_eq!(
            verify(RFC_SEED_SHA1, &six, &code8, window(1, 1), None, 0, NOW),
            None
        );
        assert_eq!(
            verify(RFC_SEED_SHA1, &eight, &code6, window(1, 1), None, 0, NOW),
            None
        );
        for code in ["", "12345", "1234567", &code6[1..], &format!("0{code6}")] {
            assert_eq!(
                verify(RFC_SEED_SHA1, &six, code, window(1, 1), None, 0, NOW),
                None
            );
        }
    }

    #[test]
    fn codes_with_non_digits_are_rejected() {
        let params = totp(Algorithm::Sha1, 6, 30);
        let code = code_at(RFC_SEED_SHA1, &params, step_now());
        let spaced = format!(" {}", &code[1..]);
        let signed = format!("+{}", &code[1..]);
        for bad in [
            spaced.as_str(),
            signed.as_str(),
            "12a456",
            "１２３４５６",
            "12345٣",
            "ééé",
            "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
        ] {
            assert_eq!(
                verify(RFC_SEED_SHA1, &params, bad, window(1, 1), None, 0, NOW),
                None,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hotp_accepts_the_next_counter() {
        let params = hotp_params(6);
        assert_eq!(
            verify(RFC_SEED_SHA1, &params, "755224", window(0, 10), None, 0, 0),
            Some(Match { step: 0, drift: 0 })
        );
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                "287082",
                window(0, 10),
                Some(0),
                0,
                0
            ),
            Some(Match { step: 1, drift: 0 })
        );
    }

    #[test]
    fn hotp_look_ahead_finds_skipped_codes() {
        let params = hotp_params(6);
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                "520489",
                window(0, 10),
                Some(0),
                0,
                0
            ),
            Some(Match { step: 9, drift: 8 })
        );
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                "520489",
                window(0, 7),
                Some(0),
                0,
                0
            ),
            None
        );
    }

    #[test]
    fn hotp_never_looks_behind() {
        let params = hotp_params(6);
        // Counter 2 is behind the expected counter 4 even with a large `behind`.
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                "359152",
                window(100, 10),
                Some(3),
                0,
                0
            ),
            None
        );
    }

    #[test]
    fn hotp_ignores_the_clock_and_the_drift_argument() {
        let params = hotp_params(6);
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                "969429",
                window(0, 0),
                Some(2),
                -50,
                NOW
            ),
            Some(Match { step: 3, drift: 0 })
        );
    }

    #[test]
    fn verification_survives_extreme_arguments() {
        let totp_params = totp(Algorithm::Sha1, 6, 30);
        let hotp_params = hotp_params(6);
        let huge = window(u64::MAX, u64::MAX);
        for params in [&totp_params, &hotp_params] {
            assert_eq!(
                verify(b"k", params, "000000", window(1, 1), Some(u64::MAX), 0, NOW),
                None
            );
            for drift in [i64::MIN, i64::MAX] {
                for now in [0, u64::MAX] {
                    let _ = verify(b"k", params, "000000", window(1, 1), None, drift, now);
                }
            }
            // Clamped to MAX_SEARCH on each side rather than looping for ever.
            let _ = verify(b"k", params, "123456", huge, None, 0, NOW);
        }
    }

    #[test]
    fn window_is_clamped_to_the_search_limit() {
        // Eight digits make it unlikely that an earlier counter shares either code; the
        // uniqueness is checked so the test states its own precondition.
        let params = Params::new(Algorithm::Sha1, 8, Kind::Hotp).unwrap();
        let codes: Vec<String> = (0..=MAX_SEARCH + 1)
            .map(|s| code_at(RFC_SEED_SHA1, &params, s))
            .collect();
        let (near, far) = (&codes[codes.len() - 2], &codes[codes.len() - 1]);
        assert!(!codes[..codes.len() - 2].contains(near));
        assert!(!codes[..codes.len() - 1].contains(far));
        let huge = window(u64::MAX, u64::MAX);
        assert_eq!(
            verify(RFC_SEED_SHA1, &params, near, huge, None, 0, 0),
            Some(Match {
                step: MAX_SEARCH,
                drift: MAX_SEARCH as i64
            })
        );
        assert_eq!(verify(RFC_SEED_SHA1, &params, far, huge, None, 0, 0), None);
    }

    #[test]
    fn unchecked_params_do_not_panic() {
        let odd = [
            Params {
                algorithm: Algorithm::Sha1,
                digits: 0,
                kind: Kind::Totp { period: 0 },
            },
            Params {
                algorithm: Algorithm::Sha256,
                digits: 11,
                kind: Kind::Hotp,
            },
            Params {
                algorithm: Algorithm::Sha512,
                digits: u32::MAX,
                kind: Kind::Totp { period: 1 },
            },
        ];
        for params in &odd {
            assert_eq!(verify(b"k", params, "", window(1, 1), None, 0, NOW), None);
            assert_eq!(
                verify(b"k", params, "12345678901", window(1, 1), None, 0, NOW),
                None
            );
            let _ = code_at(b"k", params, 1);
            let _ = resync(b"k", params, "", "", 10, None, 0, NOW);
            let _ = otpauth_uri(b"k", params, "i", "a", 0);
        }
    }

    #[test]
    fn lowest_matching_candidate_is_returned() {
        // Find two counters that share a 6-digit code; among a few thousand codes one pair
        // almost surely does (birthday bound).
        let params = hotp_params(6);
        let secret = b"collision hunting seed";
        let mut first_seen = std::collections::HashMap::new();
        let (low, high) = (0u64..5000)
            .find_map(|s| {
                let code = code_at(secret, &params, s);
                first_seen.insert(code, s).map(|earlier| (earlier, s))
            })
            .expect("a collision among 5000 codes");
        let code = code_at(secret, &params, high);
        let last_used = low.checked_sub(1);
        let found = verify(
            secret,
            &params,
            &code,
            window(0, high - low),
            last_used,
            0,
            0,
        );
        assert_eq!(
            found,
            Some(Match {
                step: low,
                drift: 0
            })
        );
        let after_low = verify(
            secret,
            &params,
            &code,
            window(0, high - low),
            Some(low),
            0,
            0,
        );
        assert_eq!(after_low.map(|m| m.step), Some(high));
    }

    #[test]
    fn resync_finds_consecutive_hotp_codes_far_ahead() {
        let params = hotp_params(6);
        let code1 = code_at(RFC_SEED_SHA1, &params, 510);
        let code2 = code_at(RFC_SEED_SHA1, &params, 511);
        assert_eq!(
            verify(RFC_SEED_SHA1, &params, &code2, window(0, 10), Some(9), 0, 0),
            None
        );
        let found = resync(RFC_SEED_SHA1, &params, &code1, &code2, 1000, Some(9), 0, 0);
        assert_eq!(
            found,
            Some(Match {
                step: 511,
                drift: 501
            })
        );
        // After resynchronising, the next code verifies with the ordinary window.
        let next = code_at(RFC_SEED_SHA1, &params, 512);
        assert_eq!(
            verify(
                RFC_SEED_SHA1,
                &params,
                &next,
                window(0, 10),
                Some(511),
                0,
                0
            ),
            Some(Match {
                step: 512,
                drift: 0
            })
        );
    }

    #[test]
    fn resync_finds_consecutive_totp_codes_far_ahead_and_behind() {
        let params = totp(Algorithm::Sha256, 8, 30);
        for offset in [500i64, -500] {
            let s = step_now().saturating_add_signed(offset);
            let code1 = code_at(RFC_SEED_SHA256, &params, s);
            let code2 = code_at(RFC_SEED_SHA256, &params, s + 1);
            let found = resync(RFC_SEED_SHA256, &params, &code1, &code2, 1000, None, 0, NOW);
            assert_eq!(
                found,
                Some(Match {
                    step: s + 1,
                    drift: offset + 1
                })
            );
            // The returned drift, remembered, lets the next code verify in the small window.
            let next = code_at(RFC_SEED_SHA256, &params, s + 2);
            let found = found.unwrap();
            assert_eq!(
                verify(
                    RFC_SEED_SHA256,
                    &params,
                    &next,
                    window(1, 1),
                    Some(found.step),
                    found.drift,
                    NOW
                ),
                Some(Match {
                    step: s + 2,
                    drift: offset + 2
                })
            );
        }
    }

    #[test]
    fn resync_refuses_codes_that_are_not_consecutive() {
        let params = hotp_params(6);
        let code1 = code_at(RFC_SEED_SHA1, &params, 500);
        let code3 = code_at(RFC_SEED_SHA1, &params, 502);
        let code2 = code_at(RFC_SEED_SHA1, &params, 501);
        assert_eq!(
            resync(RFC_SEED_SHA1, &params, &code1, &code3, 1000, None, 0, 0),
            None
        );
        assert_eq!(
            resync(RFC_SEED_SHA1, &params, &code2, &code1, 1000, None, 0, 0),
            None
        );
    }

    #[test]
    fn resync_refuses_codes_beyond_the_search() {
        let params = hotp_params(6);
        let code1 = code_at(RFC_SEED_SHA1, &params, 500);
        let code2 = code_at(RFC_SEED_SHA1, &params, 501);
        assert_eq!(
            resync(RFC_SEED_SHA1, &params, &code1, &code2, 499, None, 0, 0),
            None
        );
        assert_eq!(
            resync(RFC_SEED_SHA1, &params, &code1, &code2, 500, None, 0, 0),
            Some(Match {
                step: 501,
                drift: 501
            })
        );
    }

    #[test]
    fn resync_refuses_codes_already_used() {
        let params = totp(Algorithm::Sha1, 6, 30);
        let s = step_now() - 20;
        let code1 = code_at(RFC_SEED_SHA1, &params, s);
        let code2 = code_at(RFC_SEED_SHA1, &params, s + 1);
        assert_eq!(
            resync(RFC_SEED_SHA1, &params, &code1, &code2, 100, Some(s), 0, NOW),
            None
        );
        assert!(
            resync(
                RFC_SEED_SHA1,
                &params,
                &code1,
                &code2,
                100,
                Some(s - 1),
                0,
                NOW
            )
            .is_some()
        );
    }

    #[test]
    fn resync_rejects_malformed_codes() {
        let params = hotp_params(6);
        assert_eq!(
            resync(RFC_SEED_SHA1, &params, "755224", "28708", 10, None, 0, 0),
            None
        );
        assert_eq!(
            resync(RFC_SEED_SHA1, &params, "75522x", "287082", 10, None, 0, 0),
            None
        );
        assert_eq!(
            resync(RFC_SEED_SHA1, &params, "755224", "287082", 10, None, 0, 0),
            Some(Match { step: 1, drift: 1 })
        );
    }

    #[test]
    fn resync_survives_the_end_of_the_counter_range() {
        let params = hotp_params(6);
        assert_eq!(
            resync(
                b"k",
                &params,
                "000000",
                "000000",
                u64::MAX,
                Some(u64::MAX),
                0,
                0
            ),
            None
        );
        let _ = resync(
            b"k",
            &params,
            "000000",
            "000001",
            5,
            Some(u64::MAX - 3),
            0,
            0,
        );
    }

    #[test]
    fn totp_uri_matches_the_key_uri_format() {
        let params = totp(Algorithm::Sha1, 6, 30);
        assert_eq!(
            otpauth_uri(RFC_SEED_SHA1, &params, "ACME Co", "alice@example.com", 0),
            "otpauth://totp/ACME%20Co:alice%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn hotp_uri_carries_the_counter_and_encodes_special_characters() {
        let params = Params::new(Algorithm::Sha256, 8, Kind::Hotp).unwrap();
        assert_eq!(
            otpauth_uri(b"\x00\x01", &params, "Big:Corp & Co", "bob smith/ü?#", 42),
            "otpauth://hotp/Big%3ACorp%20%26%20Co:bob%20smith%2F%C3%BC%3F%23\
             ?secret=AAAQ&issuer=Big%3ACorp%20%26%20Co\
             &algorithm=SHA256&digits=8&counter=42"
        );
    }

    #[test]
    fn uri_without_issuer_has_a_bare_label() {
        let params = totp(Algorithm::Sha512, 8, 60);
        assert_eq!(
            otpauth_uri(b"abc", &params, "", "a.b-c_d~e", 7),
            "otpauth://totp/a.b-c_d~e?secret=MFRGG&algorithm=SHA512&digits=8&period=60"
        );
    }

    #[test]
    fn secrets_round_trip_through_base32() {
        for secret in [&b"x"[..], RFC_SEED_SHA1, RFC_SEED_SHA512, &[0xff; 33]] {
            let text = encode_secret(secret);
            assert!(!text.contains('='));
            assert_eq!(text, text.to_ascii_uppercase());
            assert_eq!(decode_base32_secret(&text).as_deref(), Ok(secret));
        }
    }

    #[test]
    fn base32_secrets_accept_any_case_spaces_and_padding() {
        let expected = Ok(b"Hello!\xde\xad\xbe\xef".to_vec());
        assert_eq!(encode_secret(b"Hello!\xde\xad\xbe\xef"), "JBSWY3DPEHPK3PXP");
        for text in [
            "JBSWY3DPEHPK3PXP",
            "jbswy3dpehpk3pxp",
            "jbsw y3dp ehpk 3pxp",
            " JBSW-Y3DP-EHPK-3PXP\n",
        ] {
            assert_eq!(decode_base32_secret(text), expected, "{text:?}");
        }
        assert_eq!(decode_base32_secret("MFRGG==="), Ok(b"abc".to_vec()));
        assert_eq!(decode_base32_secret("mfrgg"), Ok(b"abc".to_vec()));
        assert_eq!(decode_base32_secret("MFRGG = = ="), Ok(b"abc".to_vec()));
    }

    #[test]
    fn base32_secrets_with_unused_trailing_bits_are_accepted() {
        // "MFRGH" differs from "MFRGG" only in bits beyond the third byte.
        assert_eq!(decode_base32_secret("MFRGH"), Ok(b"abc".to_vec()));
    }

    #[test]
    fn invalid_base32_secrets_are_refused() {
        for text in ["", "   ", "====", "-"] {
            assert_eq!(
                decode_base32_secret(text),
                Err(SecretError::Empty),
                "{text:?}"
            );
        }
        for text in [
            "JBSWY3DP1",
            "JBSW0000",
            "A",
            "ABC",
            "MF=RGG",
            "é",
            "JBSWY3DPÉ",
        ] {
            assert_eq!(
                decode_base32_secret(text),
                Err(SecretError::Base32),
                "{text:?}"
            );
        }
    }

    #[test]
    fn hex_secrets_decode_in_any_case() {
        let expected = Ok(RFC_SEED_SHA1.to_vec());
        for text in [
            "3132333435363738393031323334353637383930",
            "0x3132333435363738393031323334353637383930",
            "31 32 33 34 35 36 37 38 39 30 31 32 33 34 35 36 37 38 39 30",
        ] {
            assert_eq!(decode_hex_secret(text), expected);
        }
        assert_eq!(
            decode_hex_secret("DEADbeef"),
            Ok(vec![0xde, 0xad, 0xbe, 0xef])
        );
    }

    #[test]
    fn invalid_hex_secrets_are_refused() {
        for text in ["", " ", "0x"] {
            assert_eq!(decode_hex_secret(text), Err(SecretError::Empty), "{text:?}");
        }
        for text in ["abc", "zz", "0xg0", "éé", "12 3"] {
            assert_eq!(decode_hex_secret(text), Err(SecretError::Hex), "{text:?}");
        }
    }

    #[test]
    fn pin_positions_parse_and_print() {
        assert_eq!("before".parse(), Ok(PinPosition::Before));
        assert_eq!("AFTER".parse(), Ok(PinPosition::After));
        assert_eq!(
            "middle".parse::<PinPosition>(),
            Err(ParseError::PinPosition)
        );
        for position in [PinPosition::Before, PinPosition::After] {
            assert_eq!(position.as_str().parse(), Ok(position));
            assert_eq!(position.to_string(), position.as_str());
        }
    }

    #[test]
    fn pin_before_the_otp_is_split_off_the_front() {
        assert_eq!(
            split_pin("secret123456", 6, PinPosition::Before),
            Some(("secret", "123456"))
        );
        assert_eq!(
            split_pin("123456", 6, PinPosition::Before),
            Some(("", "123456"))
        );
    }

    #[test]
    fn pin_after_the_otp_is_split_off_the_back() {
        assert_eq!(
            split_pin("12345678secret", 8, PinPosition::After),
            Some(("secret", "12345678"))
        );
        assert_eq!(
            split_pin("12345678", 8, PinPosition::After),
            Some(("", "12345678"))
        );
    }

    #[test]
    fn input_shorter_than_the_otp_is_not_split() {
        assert_eq!(split_pin("12345", 6, PinPosition::Before), None);
        assert_eq!(split_pin("12345", 6, PinPosition::After), None);
        assert_eq!(split_pin("", 6, PinPosition::Before), None);
        assert_eq!(split_pin("ééééé", 6, PinPosition::Before), None);
        assert_eq!(split_pin("x", u32::MAX, PinPosition::After), None);
    }

    #[test]
    fn non_ascii_input_splits_on_character_boundaries() {
        assert_eq!(
            split_pin("pä€🔑123456", 6, PinPosition::Before),
            Some(("pä€🔑", "123456"))
        );
        assert_eq!(
            split_pin("123456pä€🔑", 6, PinPosition::After),
            Some(("pä€🔑", "123456"))
        );
        // Multi-byte characters in the OTP part are kept whole; verification then rejects them.
        assert_eq!(
            split_pin("pin12345€", 6, PinPosition::Before),
            Some(("pin", "12345€"))
        );
        for input in ["€€€€€€€", "🔑", "aé", "éa"] {
            for position in [PinPosition::Before, PinPosition::After] {
                for digits in 0..9 {
                    let _ = split_pin(input, digits, position);
                }
            }
        }
    }

    #[test]
    fn numeric_codes_have_the_requested_length_and_only_digits() {
        let random: Vec<u8> = (0..=255u8).cycle().skip(37).take(64).collect();
        for digits in [6, 8] {
            let code = numeric_code(&random, digits).unwrap();
            assert_eq!(code.len(), digits as usize);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn numeric_codes_skip_biased_bytes() {
        assert_eq!(
            numeric_code(&[250, 0, 255, 9, 19, 249, 252, 123, 45, 77], 6),
            Some("099935".to_string())
        );
    }

    #[test]
    fn numeric_codes_need_enough_bytes() {
        assert_eq!(numeric_code(&[1, 2, 3, 4, 5], 6), None);
        assert_eq!(numeric_code(&[1, 2, 3, 4, 5, 250], 6), None);
        assert_eq!(numeric_code(&[255; 100], 8), None);
        assert_eq!(numeric_code(&[], 6), None);
        assert_eq!(numeric_code(&[1, 2, 3], 0), None);
        assert_eq!(numeric_code(&[1, 2, 3], u32::MAX), None);
    }

    #[test]
    fn numeric_code_digits_are_uniform_over_all_byte_values() {
        let random: Vec<u8> = (0..=255u8).collect();
        let code = numeric_code(&random, 250).unwrap();
        for digit in b'0'..=b'9' {
            assert_eq!(code.bytes().filter(|&b| b == digit).count(), 25);
        }
    }

    #[test]
    fn default_windows_suit_each_kind() {
        assert_eq!(Window::for_kind(Kind::Hotp), window(0, 10));
        assert_eq!(Window::for_kind(Kind::Totp { period: 30 }), window(1, 1));
        assert_eq!(Kind::Hotp.as_str(), "hotp");
        assert_eq!(Kind::Totp { period: 60 }.as_str(), "totp");
    }
}
