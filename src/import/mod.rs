//! Parsers that turn hardware-token seed files into tokens the server can enrol.
//!
//! Vendors ship OATH hardware tokens together with a seed file in the Portable
//! Symmetric Key Container format (PSKC, RFC 6030), and administrators often keep
//! small batches in a hand-written CSV sheet. Both parsers here are pure functions
//! over bytes that are already in memory: they do no I/O, read no clock and draw no
//! randomness, so the same input always gives the same answer and every rule can be
//! tested in isolation.
//!
//! Both parsers are all or nothing: one bad entry fails the whole import, so that an
//! administrator never ends up with half a batch enrolled and the other half lost.
//! Errors carry the 1-based line of the offending entry where it is known, and no
//! error message, `Debug` output or `Display` output ever contains a secret.

use std::collections::BTreeMap;
use std::fmt;

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use data_encoding::{BASE32_NOPAD, BASE64, BASE64_NOPAD, HEXLOWER_PERMISSIVE};
use hmac::{Hmac, KeyInit, Mac};
use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::reader::Reader;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The most tokens one file may hold, so that a hostile or corrupt file cannot make
/// the server allocate and decrypt without bound.
pub const MAX_TOKENS: usize = 10_000;

/// The shortest secret accepted in bytes. RFC 4226 asks for 128 bits, but older
/// tokens ship 80-bit seeds; anything shorter is a truncated or guessable secret.
pub const MIN_SECRET_LEN: usize = 10;

/// The longest serial accepted, so that a serial always fits a database column and
/// a log line.
const MAX_SERIAL_LEN: usize = 128;

/// How deeply XML elements may nest; PSKC needs about eight levels, and a limit keeps
/// a crafted file from building a tree whose teardown would exhaust the stack.
const MAX_XML_DEPTH: usize = 64;

/// How many XML elements one file may hold in total, which bounds memory even when
/// the elements are not `KeyPackage` elements.
const MAX_XML_ELEMENTS: usize = 100 * MAX_TOKENS;

/// The most PBKDF2 rounds honoured, because the count comes from the file and an
/// absurd value would otherwise tie up the server for hours.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// The namespace of RFC 6030 documents, used to tell a PSKC file from other XML.
const PSKC_NAMESPACE: &str = "urn:ietf:params:xml:ns:keyprov:pskc";

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

/// The secret that unlocks encrypted values in a PSKC file.
///
/// `Debug` is written by hand so that the key or password never reaches a log.
#[derive(Clone, Copy)]
pub enum PskcKey<'a> {
    /// No key is known; only files without encrypted values can be read.
    None,
    /// The raw AES key shared with the vendor (16 bytes for AES-128-CBC, 24 or 32 for
    /// the rarer AES-192 and AES-256). It is used as is, even when the file describes
    /// a password derivation, so the derived key itself also works.
    PreShared(&'a [u8]),
    /// A password from which the key is derived with the PBKDF2 parameters in the file.
    Password(&'a str),
}

impl fmt::Debug for PskcKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::PreShared(_) => f.write_str("PreShared([redacted])"),
            Self::Password(_) => f.write_str("Password([redacted])"),
        }
    }
}

/// Reads the HOTP and TOTP tokens of a PSKC (RFC 6030) file.
///
/// Element names are matched on their local part, so any namespace prefix works.
/// The file must be UTF-8, must not contain a document type declaration (which rules
/// out entity expansion attacks), and may hold at most [`MAX_TOKENS`] `KeyPackage`
/// elements.
///
/// Each `KeyPackage` gives one token: the serial is `DeviceInfo/SerialNo`, or the Key's
/// `Id` when there is no serial; the Key's `Algorithm` must be the PSKC HOTP or TOTP
/// URI (the `:hotp` and `#hotp` spellings both work); `ResponseFormat/@Length` gives
/// the digits (6 when absent, and the encoding must be decimal); `Suite` may name the
/// hash (SHA-1 when absent); `Counter` and `TimeInterval` give the start counter and
/// the period; a TOTP `Time` origin other than 0 is refused because the server counts
/// time steps from the Unix epoch.
///
/// Encrypted values use AES-CBC with the IV in front of the ciphertext and PKCS#7
/// padding. Their `ValueMAC` is checked in constant time with the file's `MACMethod`
/// key before anything is decrypted, and a value without a MAC is refused, because
/// unauthenticated CBC cannot tell a wrong key from a tampered file. The key comes
/// from `key`: a pre-shared key is used directly, and a password goes through the
/// file's PBKDF2 parameters.
///
/// An empty container gives an empty list; whether that is a mistake is the caller's
/// call.
///
/// # Errors
///
/// Fails, returning no token at all, when the input is not well-formed XML or not a
/// PSKC container, when any package has an unknown algorithm, digits other than 6 or
/// 8, a period other than 30 or 60, no secret or one shorter than [`MIN_SECRET_LEN`]
/// bytes, when a value is encrypted and no key was given, when the key is wrong or
/// the file was altered, and when two packages share a serial.
pub fn parse_pskc(xml: &[u8], key: PskcKey<'_>) -> Result<Vec<ImportedToken>, ImportError> {
    let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    let lines = LineIndex::new(xml);
    let text = std::str::from_utf8(xml).map_err(|error| {
        ImportError::at(
            lines.line_of(error.valid_up_to()),
            "not XML: the file is not UTF-8 text",
        )
    })?;
    let root = TreeBuilder::new(&lines).build(text)?;
    check_container(&root)?;

    let mut crypto = Crypto::new(&root, key);
    let mut tokens = Vec::new();
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    for package in root.children_named("KeyPackage") {
        let token = parse_package(package, &mut crypto)?;
        if let Some(first) = first_seen.get(&token.serial) {
            return Err(ImportError::at(
                package.line,
                format!(
                    "duplicate serial \"{}\" (already used by the KeyPackage on line {first})",
                    token.serial
                ),
            ));
        }
        first_seen.insert(token.serial.clone(), package.line);
        tokens.push(token);
    }
    Ok(tokens)
}

/// Reads tokens from a CSV sheet with one token per line:
/// `serial,secret[,type,digits,period_or_counter,algorithm]`.
///
/// Blank lines and lines whose first non-blank character is `#` are skipped, and so
/// is a header line when the first field of the first record is `serial` in any case.
/// Whitespace around fields is trimmed; a field may be wrapped in double quotes to
/// hold commas, with `""` standing for a quote inside it. An empty optional field
/// takes its default: type `totp`, digits 6, period 30 for TOTP or counter 0 for
/// HOTP, algorithm `sha1`.
///
/// The secret may be hex or base32, and spaces inside it are ignored so that grouped
/// base32 (`JBSW Y3DP ...`) can be pasted as shown. Because some strings are valid in
/// both alphabets the rule is fixed: a secret of only hex digits whose length is 40,
/// 64 or 128 (a SHA-1, SHA-256 or SHA-512 sized key) is hex; otherwise it is read as
/// canonical base32 (any case, `=` padding optional) if it decodes; otherwise as hex
/// if it has an even number of hex digits; otherwise it is refused.
///
/// # Errors
///
/// Fails, returning no token at all, on the first line with an empty or overlong
/// serial, a secret that is neither hex nor base32 or is shorter than
/// [`MIN_SECRET_LEN`] bytes, an unknown type or algorithm, digits other than 6 or 8,
/// a period other than 30 or 60, a counter that is not a number, a malformed quoted
/// field, too many fields, or a serial already used on an earlier line.
pub fn parse_csv(text: &str) -> Result<Vec<ImportedToken>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut tokens = Vec::new();
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut before_first_record = true;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_csv_line(trimmed).map_err(|reason| ImportError::at(line, reason))?;
        let is_header = before_first_record
            && fields
                .first()
                .is_some_and(|field| field.eq_ignore_ascii_case("serial"));
        before_first_record = false;
        if is_header {
            continue;
        }
        if tokens.len() >= MAX_TOKENS {
            return Err(ImportError::at(
                line,
                format!("too many tokens: a file may hold at most {MAX_TOKENS}"),
            ));
        }
        let token = csv_token(&fields).map_err(|reason| ImportError::at(line, reason))?;
        if let Some(first) = first_seen.get(&token.serial) {
            return Err(ImportError::at(
                line,
                format!(
                    "duplicate serial \"{}\" (already used on line {first})",
                    token.serial
                ),
            ));
        }
        first_seen.insert(token.serial.clone(), line);
        tokens.push(token);
    }
    Ok(tokens)
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

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

/// Splits one CSV line into trimmed fields, honouring double quotes so a serial may
/// contain a comma; records never span lines, which keeps line numbers exact.
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'"').is_some() {
            let mut field = String::new();
            loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed".to_owned()),
                    Some('"') => {
                        if chars.next_if_eq(&'"').is_some() {
                            field.push('"');
                        } else {
                            break;
                        }
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.next() {
                None => return Ok(fields),
                Some(',') => {}
                Some(_) => {
                    return Err("unexpected text after the closing quote of a field".to_owned());
                }
            }
        } else {
            let mut field = String::new();
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_owned());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim().to_owned());
        }
    }
}

/// Builds a token from the fields of one CSV record, applying the documented defaults.
fn csv_token(fields: &[String]) -> Result<ImportedToken, String> {
    if fields.len() < 2 {
        return Err("expected at least two fields: serial,secret".to_owned());
    }
    if fields.len() > 6 {
        return Err(format!(
            "expected at most six fields (serial,secret,type,digits,period_or_counter,algorithm), found {}",
            fields.len()
        ));
    }
    let optional = |index: usize| {
        fields
            .get(index)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    };

    let serial = fields[0].clone();
    check_serial(&serial)?;
    let secret = decode_csv_secret(&fields[1])?;
    check_secret_len(&secret)?;

    let token_type = match optional(2) {
        None => TokenType::Totp,
        Some(value) if value.eq_ignore_ascii_case("totp") => TokenType::Totp,
        Some(value) if value.eq_ignore_ascii_case("hotp") => TokenType::Hotp,
        Some(value) => {
            return Err(format!(
                "unknown token type {}; expected hotp or totp",
                describe_field(value)
            ));
        }
    };
    let digits = match optional(3) {
        None => 6,
        Some(value) => check_digits(parse_csv_number(value, "digits")?)?,
    };
    let (counter, period) = match (token_type, optional(4)) {
        (_, None) => (0, 30),
        (TokenType::Totp, Some(value)) => (0, check_period(parse_csv_number(value, "period")?)?),
        (TokenType::Hotp, Some(value)) => (parse_csv_number(value, "counter")?, 30),
    };
    let algorithm = match optional(5) {
        None => "SHA1",
        Some(value) => normalise_hash(value).ok_or_else(|| {
            format!(
                "unknown algorithm {}; expected sha1, sha256 or sha512",
                describe_field(value)
            )
        })?,
    };

    Ok(ImportedToken {
        serial,
        secret,
        token_type,
        algorithm: algorithm.to_owned(),
        digits,
        counter,
        period,
    })
}

/// Parses a numeric CSV field, naming the field in the error because the position
/// alone is hard to spot in a long sheet.
fn parse_csv_number(value: &str, what: &str) -> Result<u64, String> {
    value.parse::<u64>().map_err(|_| {
        format!(
            "{what} must be a whole number, not {}",
            describe_field(value)
        )
    })
}

/// Decodes a CSV secret with the hex-or-base32 rule documented on [`parse_csv`].
fn decode_csv_secret(field: &str) -> Result<Vec<u8>, String> {
    let compact: String = field.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    let is_hex = compact.len().is_multiple_of(2) && compact.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex
        && matches!(compact.len(), 40 | 64 | 128)
        && let Ok(secret) = HEXLOWER_PERMISSIVE.decode(compact.as_bytes())
    {
        return Ok(secret);
    }
    let base32 = compact.trim_end_matches('=').to_ascii_uppercase();
    if let Ok(secret) = BASE32_NOPAD.decode(base32.as_bytes()) {
        return Ok(secret);
    }
    if is_hex && let Ok(secret) = HEXLOWER_PERMISSIVE.decode(compact.as_bytes()) {
        return Ok(secret);
    }
    Err("the secret is neither valid hex nor valid base32".to_owned())
}

// ---------------------------------------------------------------------------
// XML tree
// ---------------------------------------------------------------------------

/// Maps byte offsets to 1-based line numbers, so XML errors can point at a line.
struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    fn new(bytes: &[u8]) -> Self {
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .map(|(offset, _)| offset)
            .collect();
        Self { newlines }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&newline| newline < offset) + 1
    }
}

/// Converts a parser offset to `usize`, saturating so that a platform with a narrow
/// `usize` reports the last line rather than panicking.
fn to_offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

/// One XML element with everything PSKC parsing needs; a small tree is far easier to
/// query than a stream of events, and the builder's limits keep it small.
struct Element {
    /// The qualified name as written, prefix included.
    name: String,
    /// Attributes as (qualified name, value) pairs with entities resolved.
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    /// The element's own character data, concatenated.
    text: String,
    /// The 1-based line of the element's start tag.
    line: usize,
}

/// Returns the part of a qualified name after its prefix, which is what PSKC
/// matching uses so that any prefix choice works.
fn local_part(name: &str) -> &str {
    name.split_once(':').map_or(name, |(_, local)| local)
}

impl Element {
    fn local_name(&self) -> &str {
        local_part(&self.name)
    }

    /// Finds an attribute by local name, skipping namespace declarations.
    fn attr(&self, local_name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(name, _)| {
                name != "xmlns" && !name.starts_with("xmlns:") && local_part(name) == local_name
            })
            .map(|(_, value)| value.as_str())
    }

    /// Finds an attribute by its exact qualified name, for namespace declarations.
    fn raw_attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    fn children_named<'s>(&'s self, local_name: &str) -> impl Iterator<Item = &'s Element> {
        self.children
            .iter()
            .filter(move |child| child.local_name() == local_name)
    }

    fn child(&self, local_name: &str) -> Option<&Element> {
        self.children_named(local_name).next()
    }

    /// Follows a path of child names, taking the first match at each step.
    fn descendant(&self, path: &[&str]) -> Option<&Element> {
        path.iter()
            .try_fold(self, |element, name| element.child(name))
    }

    fn text(&self) -> &str {
        self.text.trim()
    }
}

/// Builds the element tree from XML text while enforcing the safety limits.
struct TreeBuilder<'l> {
    lines: &'l LineIndex,
    stack: Vec<Element>,
    root: Option<Element>,
    elements: usize,
    packages: usize,
}

impl<'l> TreeBuilder<'l> {
    fn new(lines: &'l LineIndex) -> Self {
        Self {
            lines,
            stack: Vec::new(),
            root: None,
            elements: 0,
            packages: 0,
        }
    }

    fn build(mut self, text: &str) -> Result<Element, ImportError> {
        let mut reader = Reader::from_str(text);
        loop {
            let line = self.lines.line_of(to_offset(reader.buffer_position()));
            let event = reader.read_event().map_err(|error| {
                ImportError::at(
                    self.lines.line_of(to_offset(reader.error_position())),
                    format!("not XML: {}", excerpt(&error.to_string())),
                )
            })?;
            match event {
                Event::Start(tag) => {
                    let element = self.open(&tag, line)?;
                    self.stack.push(element);
                }
                Event::Empty(tag) => {
                    let element = self.open(&tag, line)?;
                    self.attach(element)?;
                }
                Event::End(_) => match self.stack.pop() {
                    Some(element) => self.attach(element)?,
                    None => {
                        return Err(ImportError::at(
                            line,
                            "not XML: a closing tag has no opening tag",
                        ));
                    }
                },
                Event::Text(content) => self.append_text(&content.xml10_content(), line)?,
                Event::CData(content) => self.append_text(&content.xml10_content(), line)?,
                Event::GeneralRef(reference) => {
                    let resolved = resolve_reference(&reference, line)?;
                    self.append_text(&resolved, line)?;
                }
                Event::DocType(_) => {
                    return Err(ImportError::at(
                        line,
                        "document type declarations are not allowed in a PSKC file, because they can define entities",
                    ));
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(ImportError::at(
                open.line,
                format!(
                    "not XML: the file ends before <{}> is closed",
                    excerpt(&open.name)
                ),
            ));
        }
        self.root
            .ok_or_else(|| ImportError::general("not XML: the file holds no element"))
    }

    fn open(&mut self, tag: &BytesStart<'_>, line: usize) -> Result<Element, ImportError> {
        if self.root.is_some() && self.stack.is_empty() {
            return Err(ImportError::at(
                line,
                "not XML: there is more than one root element",
            ));
        }
        if self.stack.len() >= MAX_XML_DEPTH {
            return Err(ImportError::at(
                line,
                format!("elements are nested more than {MAX_XML_DEPTH} levels deep"),
            ));
        }
        self.elements += 1;
        if self.elements > MAX_XML_ELEMENTS {
            return Err(ImportError::at(
                line,
                format!("the file holds more than {MAX_XML_ELEMENTS} XML elements"),
            ));
        }
        let name = tag.name().into_inner().to_owned();
        if self.stack.len() == 1 && local_part(&name) == "KeyPackage" {
            self.packages += 1;
            if self.packages > MAX_TOKENS {
                return Err(ImportError::at(
                    line,
                    format!("too many KeyPackages: a file may hold at most {MAX_TOKENS}"),
                ));
            }
        }
        let mut attributes = Vec::new();
        for attribute in tag.attributes() {
            let attribute = attribute.map_err(|error| xml_error(line, &error))?;
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|error| xml_error(line, &error))?;
            attributes.push((attribute.key.into_inner().to_owned(), value.into_owned()));
        }
        Ok(Element {
            name,
            attributes,
            children: Vec::new(),
            text: String::new(),
            line,
        })
    }

    fn attach(&mut self, element: Element) -> Result<(), ImportError> {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(element),
            None if self.root.is_none() => self.root = Some(element),
            None => {
                return Err(ImportError::at(
                    element.line,
                    "not XML: there is more than one root element",
                ));
            }
        }
        Ok(())
    }

    fn append_text(&mut self, text: &str, line: usize) -> Result<(), ImportError> {
        match self.stack.last_mut() {
            Some(element) => element.text.push_str(text),
            None if text.trim().is_empty() => {}
            None => {
                return Err(ImportError::at(
                    line,
                    "not XML: text outside the root element",
                ));
            }
        }
        Ok(())
    }
}

/// Resolves a character reference or one of the five predefined entities; any other
/// entity is refused, since without a DTD it is undefined and with one it is a risk.
fn resolve_reference(reference: &BytesRef<'_>, line: usize) -> Result<String, ImportError> {
    match reference.resolve_char_ref() {
        Ok(Some(character)) => Ok(character.to_string()),
        Ok(None) => quick_xml::escape::resolve_predefined_entity(reference)
            .map(str::to_owned)
            .ok_or_else(|| {
                ImportError::at(
                    line,
                    format!(
                        "not XML: the entity &{}; is not defined",
                        excerpt(reference)
                    ),
                )
            }),
        Err(error) => Err(xml_error(line, &error)),
    }
}

/// Reports a parser complaint as "not XML", shortened because it may quote the file.
fn xml_error(line: usize, error: &dyn std::error::Error) -> ImportError {
    ImportError::at(line, format!("not XML: {}", excerpt(&error.to_string())))
}

// ---------------------------------------------------------------------------
// PSKC structure
// ---------------------------------------------------------------------------

/// Refuses XML that is not a PSKC 1.0 container, so that a wrong file is reported as
/// such instead of as a pile of missing elements.
fn check_container(root: &Element) -> Result<(), ImportError> {
    if root.local_name() != "KeyContainer" {
        return Err(ImportError::at(
            root.line,
            format!(
                "not a PSKC container: the root element is <{}>, not <KeyContainer>",
                excerpt(&root.name)
            ),
        ));
    }
    let declaration = match root.name.split_once(':') {
        Some((prefix, _)) => root.raw_attr(&format!("xmlns:{prefix}")),
        None => root.raw_attr("xmlns"),
    };
    if let Some(namespace) = declaration
        && namespace != PSKC_NAMESPACE
    {
        return Err(ImportError::at(
            root.line,
            format!(
                "not a PSKC container: the namespace is {}, not {PSKC_NAMESPACE}",
                excerpt(namespace)
            ),
        ));
    }
    match root.attr("Version").map(str::trim) {
        None | Some("1.0") => Ok(()),
        Some(version) => Err(ImportError::at(
            root.line,
            format!(
                "unsupported PSKC version {}; only 1.0 is supported",
                excerpt(version)
            ),
        )),
    }
}

/// Reads the token type from a Key's `Algorithm` URI, accepting both the RFC 6030
/// spelling (`...:pskc:hotp`) and the older draft spelling (`...pskc#hotp`).
fn token_type_from_uri(uri: &str) -> Option<TokenType> {
    let rest = uri.trim().strip_prefix(PSKC_NAMESPACE)?;
    let kind = rest.strip_prefix(':').or_else(|| rest.strip_prefix('#'))?;
    if kind.eq_ignore_ascii_case("hotp") {
        Some(TokenType::Hotp)
    } else if kind.eq_ignore_ascii_case("totp") {
        Some(TokenType::Totp)
    } else {
        None
    }
}

/// Turns one `KeyPackage` into a token, naming the package's serial in every error
/// after the serial is known.
fn parse_package(
    package: &Element,
    crypto: &mut Crypto<'_, '_>,
) -> Result<ImportedToken, ImportError> {
    let mut keys = package.children_named("Key");
    let key = keys
        .next()
        .ok_or_else(|| ImportError::at(package.line, "the KeyPackage has no <Key>"))?;
    if let Some(extra) = keys.next() {
        return Err(ImportError::at(
            extra.line,
            "the KeyPackage holds more than one <Key>",
        ));
    }

    let serial = package
        .descendant(&["DeviceInfo", "SerialNo"])
        .map(Element::text)
        .filter(|serial| !serial.is_empty())
        .or_else(|| key.attr("Id").map(str::trim).filter(|id| !id.is_empty()))
        .ok_or_else(|| {
            ImportError::at(
                package.line,
                "the KeyPackage has neither DeviceInfo/SerialNo nor a Key Id to use as serial",
            )
        })?
        .to_owned();
    check_serial(&serial).map_err(|reason| ImportError::at(package.line, reason))?;

    let algorithm_uri = key.attr("Algorithm").unwrap_or("");
    let token_type = token_type_from_uri(algorithm_uri).ok_or_else(|| {
        ImportError::at(
            key.line,
            format!(
                "token {serial}: unknown algorithm \"{}\"; only PSKC HOTP and TOTP are supported",
                excerpt(algorithm_uri)
            ),
        )
    })?;

    let parameters = key.child("AlgorithmParameters");
    let digits = match parameters.and_then(|p| p.child("ResponseFormat")) {
        None => 6,
        Some(format) => {
            if let Some(encoding) = format.attr("Encoding")
                && !encoding.trim().eq_ignore_ascii_case("DECIMAL")
            {
                return Err(ImportError::at(
                    format.line,
                    format!(
                        "token {serial}: response encoding \"{}\" is not supported; only DECIMAL is",
                        excerpt(encoding)
                    ),
                ));
            }
            let length = format.attr("Length").ok_or_else(|| {
                ImportError::at(
                    format.line,
                    format!("token {serial}: ResponseFormat has no Length"),
                )
            })?;
            let length = parse_xml_number(length, "the response length", &serial, format.line)?;
            check_digits(length).map_err(|reason| {
                ImportError::at(format.line, format!("token {serial}: {reason}"))
            })?
        }
    };
    let algorithm = match parameters.and_then(|p| p.child("Suite")) {
        None => "SHA1",
        Some(suite) => normalise_hash(suite.text()).ok_or_else(|| {
            ImportError::at(
                suite.line,
                format!(
                    "token {serial}: unknown suite \"{}\"; expected HMAC-SHA1, HMAC-SHA256 or HMAC-SHA512",
                    excerpt(suite.text())
                ),
            )
        })?,
    };

    let data = key.child("Data");
    let secret_element = data
        .and_then(|d| d.child("Secret"))
        .ok_or_else(|| ImportError::at(key.line, format!("token {serial}: missing secret")))?;
    let secret = crypto.value(secret_element, &serial)?;
    if secret.is_empty() {
        return Err(ImportError::at(
            secret_element.line,
            format!("token {serial}: missing secret"),
        ));
    }
    check_secret_len(&secret).map_err(|reason| {
        ImportError::at(secret_element.line, format!("token {serial}: {reason}"))
    })?;

    let mut counter = 0;
    let mut period = 30;
    match token_type {
        TokenType::Hotp => {
            if let Some(element) = data.and_then(|d| d.child("Counter")) {
                counter = crypto.integer(element, "the counter", &serial)?;
            }
        }
        TokenType::Totp => {
            if let Some(element) = data.and_then(|d| d.child("TimeInterval")) {
                let interval = crypto.integer(element, "the time interval", &serial)?;
                period = check_period(interval).map_err(|reason| {
                    ImportError::at(element.line, format!("token {serial}: {reason}"))
                })?;
            }
            if let Some(element) = data.and_then(|d| d.child("Time")) {
                let origin = crypto.integer(element, "the time origin", &serial)?;
                if origin != 0 {
                    return Err(ImportError::at(
                        element.line,
                        format!("token {serial}: a TOTP time origin other than 0 is not supported"),
                    ));
                }
            }
        }
    }

    Ok(ImportedToken {
        serial,
        secret,
        token_type,
        algorithm: algorithm.to_owned(),
        digits,
        counter,
        period,
    })
}

/// Parses a number written in the XML, so that overlong or negative values become a
/// clear error naming the token instead of a panic or a silent wrap.
fn parse_xml_number(text: &str, what: &str, serial: &str, line: usize) -> Result<u64, ImportError> {
    text.trim().parse::<u64>().map_err(|_| {
        ImportError::at(
            line,
            format!("token {serial}: {what} is not a whole number that fits 64 bits"),
        )
    })
}

/// Decodes base64 the way XML writers emit it: with line breaks and indentation
/// anywhere, and occasionally without padding.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    BASE64
        .decode(&compact)
        .or_else(|_| BASE64_NOPAD.decode(&compact))
        .ok()
}

/// Returns the fragment after `#` in an algorithm URI, which is the part that names
/// the algorithm in the XML Encryption and XML Signature vocabularies.
fn uri_fragment(uri: &str) -> &str {
    let uri = uri.trim();
    uri.rsplit_once('#').map_or(uri, |(_, fragment)| fragment)
}

// ---------------------------------------------------------------------------
// PSKC encryption
// ---------------------------------------------------------------------------

/// The block ciphers XML Encryption names that PSKC vendors use with CBC.
#[derive(Clone, Copy)]
enum CipherAlgorithm {
    Aes128,
    Aes192,
    Aes256,
}

impl CipherAlgorithm {
    fn from_uri(uri: &str) -> Option<Self> {
        match uri_fragment(uri) {
            "aes128-cbc" => Some(Self::Aes128),
            "aes192-cbc" => Some(Self::Aes192),
            "aes256-cbc" => Some(Self::Aes256),
            _ => None,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Aes128 => "aes128-cbc",
            Self::Aes192 => "aes192-cbc",
            Self::Aes256 => "aes256-cbc",
        }
    }

    /// Decrypts IV‖ciphertext and strips PKCS#7 padding; `None` means the key is
    /// wrong or the data was damaged, which the caller reports as one condition.
    fn decrypt(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < 32 || !data.len().is_multiple_of(16) {
            return None;
        }
        let (iv, ciphertext) = data.split_at(16);
        let mut buffer = ciphertext.to_vec();
        let plain_len = match self {
            Self::Aes128 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded::<Pkcs7>(&mut buffer)
                .ok()?
                .len(),
            Self::Aes192 => cbc::Decryptor::<Aes192>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded::<Pkcs7>(&mut buffer)
                .ok()?
                .len(),
            Self::Aes256 => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded::<Pkcs7>(&mut buffer)
                .ok()?
                .len(),
        };
        buffer.truncate(plain_len);
        Some(buffer)
    }
}

/// The HMAC hashes accepted for `MACMethod` and for the PBKDF2 pseudo-random function.
#[derive(Clone, Copy)]
enum HmacHash {
    Sha1,
    Sha256,
    Sha512,
}

impl HmacHash {
    fn from_uri(uri: &str) -> Option<Self> {
        match uri_fragment(uri) {
            "hmac-sha1" => Some(Self::Sha1),
            "hmac-sha256" => Some(Self::Sha256),
            "hmac-sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn tag(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        fn compute<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
            let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
            mac.update(data);
            Some(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Self::Sha1 => compute::<Hmac<Sha1>>(key, data),
            Self::Sha256 => compute::<Hmac<Sha256>>(key, data),
            Self::Sha512 => compute::<Hmac<Sha512>>(key, data),
        }
    }

    fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) -> bool {
        let result = match self {
            Self::Sha1 => pbkdf2::pbkdf2::<Hmac<Sha1>>(password, salt, rounds, out),
            Self::Sha256 => pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, rounds, out),
            Self::Sha512 => pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, rounds, out),
        };
        result.is_ok()
    }
}

/// Resolves the container's encryption and MAC keys on first use and caches them,
/// so plaintext files never need a key and encrypted files derive it only once.
struct Crypto<'x, 'k> {
    encryption_key: Option<&'x Element>,
    mac_method: Option<&'x Element>,
    given: PskcKey<'k>,
    key: Option<Vec<u8>>,
    mac: Option<(HmacHash, Vec<u8>)>,
}

impl<'x, 'k> Crypto<'x, 'k> {
    fn new(root: &'x Element, given: PskcKey<'k>) -> Self {
        Self {
            encryption_key: root.child("EncryptionKey"),
            mac_method: root.child("MACMethod"),
            given,
            key: None,
            mac: None,
        }
    }

    /// Reads a binary value element (`Secret`) holding a `PlainValue` or an
    /// `EncryptedValue` with its `ValueMAC`.
    fn value(&mut self, element: &Element, serial: &str) -> Result<Vec<u8>, ImportError> {
        if let Some(encrypted) = element.child("EncryptedValue") {
            return self.decrypt_value(element, encrypted, serial);
        }
        match element.child("PlainValue") {
            Some(plain) => decode_base64(plain.text()).ok_or_else(|| {
                ImportError::at(
                    plain.line,
                    format!(
                        "token {serial}: the <{}> value is not valid base64",
                        element.local_name()
                    ),
                )
            }),
            None => Err(ImportError::at(
                element.line,
                format!(
                    "token {serial}: missing {} value",
                    element.local_name().to_lowercase()
                ),
            )),
        }
    }

    /// Reads an integer value element (`Counter`, `TimeInterval`, `Time`), which is a
    /// decimal `PlainValue` or an encrypted big-endian number.
    fn integer(&mut self, element: &Element, what: &str, serial: &str) -> Result<u64, ImportError> {
        if let Some(encrypted) = element.child("EncryptedValue") {
            let bytes = self.decrypt_value(element, encrypted, serial)?;
            if bytes.len() > 8 {
                return Err(ImportError::at(
                    encrypted.line,
                    format!("token {serial}: {what} does not fit 64 bits"),
                ));
            }
            return Ok(bytes
                .iter()
                .fold(0_u64, |acc, byte| (acc << 8) | u64::from(*byte)));
        }
        match element.child("PlainValue") {
            Some(plain) => parse_xml_number(plain.text(), what, serial, plain.line),
            None => Err(ImportError::at(
                element.line,
                format!("token {serial}: {what} has no value"),
            )),
        }
    }

    /// Checks the `ValueMAC` of an encrypted value in constant time and only then
    /// decrypts it, so a wrong key or a tampered file is reported rather than
    /// imported as a garbage secret.
    fn decrypt_value(
        &mut self,
        holder: &Element,
        encrypted: &Element,
        serial: &str,
    ) -> Result<Vec<u8>, ImportError> {
        let line = encrypted.line;
        let owner = format!("token {serial}");
        let cipher = encryption_method(encrypted, &owner)?;
        let data = cipher_value(encrypted, &owner)?;
        let key = self.encryption_key(cipher, serial, line)?;
        let value_mac = holder.child("ValueMAC").ok_or_else(|| {
            ImportError::at(
                line,
                format!("token {serial}: the encrypted value has no ValueMAC, so it cannot be authenticated"),
            )
        })?;
        let expected = decode_base64(value_mac.text()).ok_or_else(|| {
            ImportError::at(
                value_mac.line,
                format!("token {serial}: the ValueMAC is not valid base64"),
            )
        })?;
        let (hash, mac_key) = self.mac_key(&key, serial, line)?;
        let actual = hash.tag(&mac_key, &data).ok_or_else(|| {
            ImportError::at(line, format!("token {serial}: the MAC cannot be computed"))
        })?;
        if actual.len() != expected.len() || !bool::from(actual.ct_eq(&expected)) {
            return Err(ImportError::at(
                value_mac.line,
                format!(
                    "token {serial}: wrong key or corrupted file (the ValueMAC does not match)"
                ),
            ));
        }
        cipher.decrypt(&key, &data).ok_or_else(|| {
            ImportError::at(
                line,
                format!("token {serial}: wrong key or corrupted file (the value does not decrypt)"),
            )
        })
    }

    /// Returns the AES key, deriving it from the password on first use.
    fn encryption_key(
        &mut self,
        cipher: CipherAlgorithm,
        serial: &str,
        line: usize,
    ) -> Result<Vec<u8>, ImportError> {
        let key = match &self.key {
            Some(key) => key.clone(),
            None => {
                let key = self.resolve_key(cipher, serial, line)?;
                self.key = Some(key.clone());
                key
            }
        };
        if key.len() != cipher.key_len() {
            return Err(ImportError::at(
                line,
                format!(
                    "token {serial}: {} needs a {}-byte key, but the key is {} bytes",
                    cipher.name(),
                    cipher.key_len(),
                    key.len()
                ),
            ));
        }
        Ok(key)
    }

    fn resolve_key(
        &self,
        cipher: CipherAlgorithm,
        serial: &str,
        line: usize,
    ) -> Result<Vec<u8>, ImportError> {
        match self.given {
            PskcKey::None => {
                let hint = match self.encryption_key {
                    Some(element) if element.child("DerivedKey").is_some() => {
                        "a password".to_owned()
                    }
                    Some(element) => match element.child("KeyName").map(Element::text) {
                        Some(name) if !name.is_empty() => {
                            format!("the pre-shared key \"{}\"", excerpt(name))
                        }
                        _ => "a pre-shared key".to_owned(),
                    },
                    None => "a key".to_owned(),
                };
                Err(ImportError::at(
                    line,
                    format!(
                        "token {serial}: the secret is encrypted, but no key was given; it needs {hint}"
                    ),
                ))
            }
            PskcKey::PreShared(key) => Ok(key.to_vec()),
            PskcKey::Password(password) => {
                let derived = self
                    .encryption_key
                    .and_then(|element| element.child("DerivedKey"))
                    .ok_or_else(|| {
                        ImportError::at(
                            line,
                            format!(
                                "token {serial}: a password was given, but the file is encrypted with a pre-shared key, not a password-derived one"
                            ),
                        )
                    })?;
                derive_key(derived, password, cipher.key_len())
            }
        }
    }

    /// Returns the MAC hash and key, decrypting the `MACKey` on first use.
    fn mac_key(
        &mut self,
        encryption_key: &[u8],
        serial: &str,
        line: usize,
    ) -> Result<(HmacHash, Vec<u8>), ImportError> {
        if let Some((hash, key)) = &self.mac {
            return Ok((*hash, key.clone()));
        }
        let method = self.mac_method.ok_or_else(|| {
            ImportError::at(
                line,
                format!("token {serial}: the file has no MACMethod, so encrypted values cannot be authenticated"),
            )
        })?;
        let uri = method.attr("Algorithm").unwrap_or("");
        let hash = HmacHash::from_uri(uri).ok_or_else(|| {
            ImportError::at(
                method.line,
                format!("unsupported MAC algorithm \"{}\"", excerpt(uri)),
            )
        })?;
        let mac_key = method
            .child("MACKey")
            .ok_or_else(|| ImportError::at(method.line, "the MACMethod has no MACKey"))?;
        let cipher = encryption_method(mac_key, "the MAC key")?;
        let data = cipher_value(mac_key, "the MAC key")?;
        if encryption_key.len() != cipher.key_len() {
            return Err(ImportError::at(
                mac_key.line,
                format!(
                    "the MAC key uses {}, which needs a {}-byte key, but the key is {} bytes",
                    cipher.name(),
                    cipher.key_len(),
                    encryption_key.len()
                ),
            ));
        }
        let key = cipher.decrypt(encryption_key, &data).ok_or_else(|| {
            ImportError::at(
                mac_key.line,
                format!(
                    "token {serial}: wrong key or corrupted file (the MAC key does not decrypt)"
                ),
            )
        })?;
        self.mac = Some((hash, key.clone()));
        Ok((hash, key))
    }
}

/// Reads the cipher of an encrypted element; only AES-CBC is supported, since that is
/// what RFC 6030 mandates and vendors ship. `owner` names the value in errors.
fn encryption_method(encrypted: &Element, owner: &str) -> Result<CipherAlgorithm, ImportError> {
    let method = encrypted
        .child("EncryptionMethod")
        .ok_or_else(|| ImportError::at(encrypted.line, format!("{owner}: no EncryptionMethod")))?;
    let uri = method.attr("Algorithm").unwrap_or("");
    CipherAlgorithm::from_uri(uri).ok_or_else(|| {
        ImportError::at(
            method.line,
            format!(
                "{owner}: unsupported encryption method \"{}\"; only AES-CBC is supported",
                excerpt(uri)
            ),
        )
    })
}

/// Reads the base64 `CipherValue` of an encrypted element; `owner` names it in errors.
fn cipher_value(encrypted: &Element, owner: &str) -> Result<Vec<u8>, ImportError> {
    let value = encrypted
        .descendant(&["CipherData", "CipherValue"])
        .ok_or_else(|| {
            ImportError::at(
                encrypted.line,
                format!("{owner}: no CipherData/CipherValue"),
            )
        })?;
    decode_base64(value.text()).ok_or_else(|| {
        ImportError::at(
            value.line,
            format!("{owner}: the CipherValue is not valid base64"),
        )
    })
}

/// Derives the encryption key from a password with the file's PBKDF2 parameters
/// (RFC 6030 section 6.2), bounding the iteration count and key length it accepts.
fn derive_key(derived: &Element, password: &str, needed: usize) -> Result<Vec<u8>, ImportError> {
    let method = derived.child("KeyDerivationMethod").ok_or_else(|| {
        ImportError::at(derived.line, "the DerivedKey has no KeyDerivationMethod")
    })?;
    let uri = method.attr("Algorithm").unwrap_or("");
    if uri_fragment(uri) != "pbkdf2" {
        return Err(ImportError::at(
            method.line,
            format!(
                "unsupported key derivation \"{}\"; only PBKDF2 is supported",
                excerpt(uri)
            ),
        ));
    }
    let params = method
        .child("PBKDF2-params")
        .ok_or_else(|| ImportError::at(method.line, "the key derivation has no PBKDF2-params"))?;
    let salt_element = params.descendant(&["Salt", "Specified"]).ok_or_else(|| {
        ImportError::at(
            params.line,
            "the PBKDF2 parameters have no Salt/Specified value",
        )
    })?;
    let salt = decode_base64(salt_element.text())
        .ok_or_else(|| ImportError::at(salt_element.line, "the PBKDF2 salt is not valid base64"))?;
    let rounds_element = params.child("IterationCount").ok_or_else(|| {
        ImportError::at(params.line, "the PBKDF2 parameters have no IterationCount")
    })?;
    let rounds = rounds_element
        .text()
        .parse::<u32>()
        .ok()
        .filter(|rounds| (1..=MAX_PBKDF2_ITERATIONS).contains(rounds))
        .ok_or_else(|| {
            ImportError::at(
                rounds_element.line,
                format!(
                    "the PBKDF2 iteration count must be a number from 1 to {MAX_PBKDF2_ITERATIONS}"
                ),
            )
        })?;
    if let Some(length) = params.child("KeyLength")
        && length.text().parse::<usize>().ok() != Some(needed)
    {
        return Err(ImportError::at(
            length.line,
            format!("the PBKDF2 key length must be {needed} bytes for the cipher in use"),
        ));
    }
    let hash = match params.child("PRF") {
        None => HmacHash::Sha1,
        Some(prf) => match prf.attr("Algorithm").map(str::trim) {
            None | Some("") => HmacHash::Sha1,
            Some(uri) => HmacHash::from_uri(uri).ok_or_else(|| {
                ImportError::at(
                    prf.line,
                    format!("unsupported PBKDF2 PRF \"{}\"", excerpt(uri)),
                )
            })?,
        },
    };
    let mut key = vec![0_u8; needed];
    if !hash.pbkdf2(password.as_bytes(), &salt, rounds, &mut key) {
        return Err(ImportError::at(method.line, "PBKDF2 key derivation failed"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIGURE3_PLAIN: &[u8] =
        include_bytes!("../../tests/fixtures/import/rfc6030-figure3-plain.pskcxml");
    const PRESHARED: &[u8] =
        include_bytes!("../../tests/fixtures/import/rfc6030-preshared-key.pskcxml");
    const PASSWORD: &[u8] = include_bytes!("../../tests/fixtures/import/rfc6030-password.pskcxml");
    const TOTP: &[u8] = include_bytes!("../../tests/fixtures/import/totp.pskcxml");
    const BAD_XML: &[u8] = include_bytes!("../../tests/fixtures/import/bad-not-xml.pskcxml");
    const BAD_ALGORITHM: &[u8] =
        include_bytes!("../../tests/fixtures/import/bad-algorithm.pskcxml");
    const BAD_MISSING_SECRET: &[u8] =
        include_bytes!("../../tests/fixtures/import/bad-missing-secret.pskcxml");
    const BAD_MAC: &[u8] = include_bytes!("../../tests/fixtures/import/bad-mac.pskcxml");
    const GOOD_CSV: &[u8] = include_bytes!("../../tests/fixtures/import/good.csv");
    const BAD_SECRET_CSV: &[u8] =
        include_bytes!("../../tests/fixtures/import/bad-secret-line3.csv");
    const DUPLICATE_CSV: &[u8] = include_bytes!("../../tests/fixtures/import/duplicate-serial.csv");

    const RFC_KEY: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90,
        0x12,
    ];
    const RFC_SECRET_HEX: &str = "3132333435363738393031323334353637383930";

    fn hex(bytes: &[u8]) -> String {
        HEXLOWER_PERMISSIVE.encode(bytes)
    }

    fn csv(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("CSV fixtures are UTF-8")
    }

    fn pskc_error(xml: &[u8], key: PskcKey<'_>) -> ImportError {
        parse_pskc(xml, key).expect_err("the file must be refused")
    }

    fn line_containing(bytes: &[u8], needle: &str) -> usize {
        let text = std::str::from_utf8(bytes).expect("fixtures are UTF-8");
        text.lines()
            .position(|line| line.contains(needle))
            .map(|index| index + 1)
            .expect("the needle is in the fixture")
    }

    /// Wraps `KeyPackage` elements in a minimal RFC 6030 container for inline tests.
    fn container(packages: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\">\n{packages}</KeyContainer>\n"
        )
    }

    fn plain_package(serial: &str, algorithm: &str, extra_data: &str) -> String {
        format!(
            "<KeyPackage>\n<DeviceInfo><SerialNo>{serial}</SerialNo></DeviceInfo>\n\
             <Key Id=\"k-{serial}\" Algorithm=\"{algorithm}\">\n\
             <Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret>{extra_data}</Data>\n\
             </Key>\n</KeyPackage>\n"
        )
    }

    const HOTP_URI: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
    const TOTP_URI: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";

    // ----- PSKC: good files -------------------------------------------------

    #[test]
    fn pskc_plaintext_rfc_example_gives_one_hotp_token() {
        let tokens = parse_pskc(FIGURE3_PLAIN, PskcKey::None).expect("figure 3 parses");
        assert_eq!(tokens.len(), 1);
        let token = &tokens[0];
        assert_eq!(token.serial, "987654321");
        assert_eq!(hex(&token.secret), RFC_SECRET_HEX);
        assert_eq!(token.token_type, TokenType::Hotp);
        assert_eq!(token.algorithm, "SHA1");
        assert_eq!(token.digits, 8);
        assert_eq!(token.counter, 0);
        assert_eq!(token.period, 30);
    }

    #[test]
    fn pskc_with_preshared_key_decrypts_rfc_example() {
        let tokens = parse_pskc(PRESHARED, PskcKey::PreShared(&RFC_KEY)).expect("decrypts");
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].serial, "987654321");
        assert_eq!(hex(&tokens[0].secret), RFC_SECRET_HEX);
        assert_eq!(tokens[0].token_type, TokenType::Hotp);
        assert_eq!(tokens[0].digits, 8);
        assert_eq!(tokens[0].counter, 0);
    }

    #[test]
    fn pskc_with_password_decrypts_rfc_example() {
        let tokens = parse_pskc(PASSWORD, PskcKey::Password("qwerty")).expect("decrypts");
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].serial, "987654321");
        assert_eq!(hex(&tokens[0].secret), RFC_SECRET_HEX);
        assert_eq!(tokens[0].digits, 8);
    }

    #[test]
    fn pskc_password_file_also_opens_with_the_derived_key_as_preshared_key() {
        let derived = HEXLOWER_PERMISSIVE
            .decode(b"651e63cd57008476af1ff6422cd02e41")
            .expect("valid hex");
        let tokens = parse_pskc(PASSWORD, PskcKey::PreShared(&derived)).expect("decrypts");
        assert_eq!(hex(&tokens[0].secret), RFC_SECRET_HEX);
    }

    #[test]
    fn pskc_totp_file_reads_period_digits_suite_and_prefixed_names() {
        let tokens = parse_pskc(TOTP, PskcKey::None).expect("parses");
        assert_eq!(tokens.len(), 2);
        let first = &tokens[0];
        assert_eq!(first.serial, "TOTP-0001");
        assert_eq!(first.token_type, TokenType::Totp);
        assert_eq!(first.period, 60);
        assert_eq!(first.digits, 6);
        assert_eq!(first.algorithm, "SHA256");
        assert_eq!(first.counter, 0);
        assert_eq!(first.secret, b"12345678901234567890123456789012");
        let second = &tokens[1];
        assert_eq!(second.serial, "totp-key-2");
        assert_eq!(second.token_type, TokenType::Totp);
        assert_eq!(second.period, 30);
        assert_eq!(second.algorithm, "SHA1");
    }

    #[test]
    fn pskc_plaintext_file_ignores_a_key_it_does_not_need() {
        let tokens = parse_pskc(FIGURE3_PLAIN, PskcKey::Password("unused")).expect("parses");
        assert_eq!(tokens.len(), 1);
    }

    #[test]
    fn pskc_hotp_counter_is_read() {
        let xml = container(&plain_package(
            "C-1",
            HOTP_URI,
            "<Counter><PlainValue>42</PlainValue></Counter>",
        ));
        let tokens = parse_pskc(xml.as_bytes(), PskcKey::None).expect("parses");
        assert_eq!(tokens[0].counter, 42);
        assert_eq!(tokens[0].digits, 6);
    }

    #[test]
    fn pskc_serial_falls_back_to_the_key_id() {
        let xml = container(
            "<KeyPackage><Key Id=\"only-id\" Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc#hotp\">\
             <Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret></Data>\
             </Key></KeyPackage>\n",
        );
        let tokens = parse_pskc(xml.as_bytes(), PskcKey::None).expect("parses");
        assert_eq!(tokens[0].serial, "only-id");
    }

    #[test]
    fn pskc_entities_and_character_references_are_resolved() {
        let xml = container(&plain_package("A&amp;B&#x2D;1", HOTP_URI, ""));
        let tokens = parse_pskc(xml.as_bytes(), PskcKey::None).expect("parses");
        assert_eq!(tokens[0].serial, "A&B-1");
    }

    #[test]
    fn pskc_empty_container_gives_no_tokens() {
        let tokens = parse_pskc(container("").as_bytes(), PskcKey::None).expect("parses");
        assert!(tokens.is_empty());
    }

    // ----- PSKC: refused files ----------------------------------------------

    #[test]
    fn pskc_truncated_xml_is_refused_as_not_xml_with_a_line() {
        let error = pskc_error(BAD_XML, PskcKey::None);
        assert!(error.reason.starts_with("not XML"), "{error}");
        assert!(error.line.is_some(), "{error}");
    }

    #[test]
    fn pskc_non_xml_bytes_are_refused() {
        let error = pskc_error(b"\xff\xfe<\x00K\x00", PskcKey::None);
        assert!(error.reason.contains("not UTF-8"), "{error}");
        let error = pskc_error(b"serial,secret\nA,B\n", PskcKey::None);
        assert!(error.reason.starts_with("not XML"), "{error}");
        let error = pskc_error(b"", PskcKey::None);
        assert!(error.reason.starts_with("not XML"), "{error}");
        let error = pskc_error(
            b"<KeyContainer Version=\"1.0\">\n<KeyPackage>",
            PskcKey::None,
        );
        assert_eq!(
            error.to_string(),
            "line 2: not XML: the file ends before <KeyPackage> is closed"
        );
    }

    #[test]
    fn pskc_other_xml_is_not_a_pskc_container() {
        let error = pskc_error(
            b"<?xml version=\"1.0\"?>\n<html><body/></html>",
            PskcKey::None,
        );
        assert_eq!(error.line, Some(2));
        assert!(error.reason.starts_with("not a PSKC container"), "{error}");
        let error = pskc_error(
            b"<KeyContainer Version=\"1.0\" xmlns=\"urn:example:other\"/>",
            PskcKey::None,
        );
        assert!(error.reason.contains("namespace"), "{error}");
        let error = pskc_error(
            b"<KeyContainer Version=\"2.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"/>",
            PskcKey::None,
        );
        assert!(error.reason.contains("version 2.0"), "{error}");
    }

    #[test]
    fn pskc_unknown_algorithm_is_refused_on_the_key_line() {
        let error = pskc_error(BAD_ALGORITHM, PskcKey::None);
        assert_eq!(error.line, Some(line_containing(BAD_ALGORITHM, "<Key ")));
        assert!(error.reason.contains("unknown algorithm"), "{error}");
        assert!(error.reason.contains("OCRA-1"), "{error}");
        assert!(error.reason.contains("token 987654321"), "{error}");
    }

    #[test]
    fn pskc_missing_secret_is_refused() {
        let error = pskc_error(BAD_MISSING_SECRET, PskcKey::None);
        assert_eq!(
            error.line,
            Some(line_containing(BAD_MISSING_SECRET, "<Key Id=\"2\""))
        );
        assert_eq!(error.reason, "token NO-SECRET-1: missing secret");
    }

    #[test]
    fn pskc_tampered_mac_is_reported_as_wrong_key_or_corruption() {
        let error = pskc_error(BAD_MAC, PskcKey::PreShared(&RFC_KEY));
        assert!(
            error.reason.contains("wrong key or corrupted file"),
            "{error}"
        );
        assert!(error.reason.contains("987654321"), "{error}");
        assert_eq!(error.line, Some(line_containing(BAD_MAC, "<ValueMAC>")));
    }

    #[test]
    fn pskc_wrong_preshared_key_is_refused_naming_the_serial() {
        let wrong = [0x42_u8; 16];
        let error = pskc_error(PRESHARED, PskcKey::PreShared(&wrong));
        assert!(
            error.reason.contains("wrong key or corrupted file"),
            "{error}"
        );
        assert!(error.reason.contains("987654321"), "{error}");
    }

    #[test]
    fn pskc_wrong_password_is_refused_naming_the_serial() {
        let error = pskc_error(PASSWORD, PskcKey::Password("azerty"));
        assert!(
            error.reason.contains("wrong key or corrupted file"),
            "{error}"
        );
        assert!(error.reason.contains("987654321"), "{error}");
    }

    #[test]
    fn pskc_encrypted_file_without_key_asks_for_one() {
        let error = pskc_error(PRESHARED, PskcKey::None);
        assert!(error.reason.contains("no key was given"), "{error}");
        assert!(error.reason.contains("Pre-shared-key"), "{error}");
        assert_eq!(
            error.line,
            Some(line_containing(PRESHARED, "<EncryptedValue>"))
        );
        let error = pskc_error(PASSWORD, PskcKey::None);
        assert!(error.reason.contains("needs a password"), "{error}");
    }

    #[test]
    fn pskc_password_for_a_preshared_key_file_is_refused() {
        let error = pskc_error(PRESHARED, PskcKey::Password("qwerty"));
        assert!(error.reason.contains("pre-shared key"), "{error}");
    }

    #[test]
    fn pskc_preshared_key_of_the_wrong_length_is_refused() {
        let error = pskc_error(PRESHARED, PskcKey::PreShared(&RFC_KEY[..8]));
        assert!(error.reason.contains("16-byte key"), "{error}");
    }

    #[test]
    fn pskc_digits_other_than_six_or_eight_are_refused() {
        let xml = container(&plain_package(
            "D-1",
            HOTP_URI,
            "",
        ))
        .replace("<Data>", "<AlgorithmParameters><ResponseFormat Length=\"7\" Encoding=\"DECIMAL\"/></AlgorithmParameters><Data>");
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(
            error.reason.contains("digits must be 6 or 8, not 7"),
            "{error}"
        );
        assert!(error.reason.contains("D-1"), "{error}");
    }

    #[test]
    fn pskc_period_other_than_thirty_or_sixty_is_refused() {
        let xml = container(&plain_package(
            "P-1",
            TOTP_URI,
            "<TimeInterval><PlainValue>45</PlainValue></TimeInterval>",
        ));
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("30 or 60"), "{error}");
        assert_eq!(error.line, Some(6));
    }

    #[test]
    fn pskc_totp_with_a_time_origin_is_refused() {
        let xml = container(&plain_package(
            "T-1",
            TOTP_URI,
            "<Time><PlainValue>1000</PlainValue></Time>",
        ));
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("time origin"), "{error}");
    }

    #[test]
    fn pskc_duplicate_serial_is_refused_by_name() {
        let packages = format!(
            "{}{}",
            plain_package("SAME-1", HOTP_URI, ""),
            plain_package("SAME-1", TOTP_URI, "")
        );
        let error = pskc_error(container(&packages).as_bytes(), PskcKey::None);
        assert!(
            error.reason.contains("duplicate serial \"SAME-1\""),
            "{error}"
        );
        assert_eq!(error.line, Some(9));
    }

    #[test]
    fn pskc_short_secret_is_refused() {
        let xml = container(&plain_package("S-1", HOTP_URI, ""))
            .replace("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=", "MTIzNA==");
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("too short"), "{error}");
    }

    #[test]
    fn pskc_bad_base64_and_huge_numbers_are_errors_not_panics() {
        let xml = container(&plain_package("B-1", HOTP_URI, ""))
            .replace("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=", "!!not base64!!");
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("base64"), "{error}");

        let xml = container(&plain_package(
            "H-1",
            HOTP_URI,
            "<Counter><PlainValue>99999999999999999999999999</PlainValue></Counter>",
        ));
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("64 bits"), "{error}");

        let xml = container(&plain_package("H-2", HOTP_URI, "")).replace(
            "<Data>",
            "<AlgorithmParameters><ResponseFormat Length=\"4294967296000\"/></AlgorithmParameters><Data>",
        );
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("digits must be 6 or 8"), "{error}");
    }

    #[test]
    fn pskc_doctype_is_refused_so_billion_laughs_cannot_expand() {
        let xml = b"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n\
            <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n]>\n\
            <KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\">&lol2;</KeyContainer>";
        let error = pskc_error(xml, PskcKey::None);
        assert_eq!(error.line, Some(2));
        assert!(error.reason.contains("document type"), "{error}");
    }

    #[test]
    fn pskc_external_entity_is_refused() {
        let xml = b"<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
            <KeyContainer Version=\"1.0\"><KeyPackage>&xxe;</KeyPackage></KeyContainer>";
        let error = pskc_error(xml, PskcKey::None);
        assert!(error.reason.contains("document type"), "{error}");
        let undeclared = container("<KeyPackage>&xxe;</KeyPackage>\n");
        let error = pskc_error(undeclared.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("&xxe;"), "{error}");
    }

    #[test]
    fn pskc_more_than_the_package_limit_is_refused() {
        let package = "<KeyPackage/>\n";
        let xml = container(&package.repeat(MAX_TOKENS + 1));
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("too many KeyPackages"), "{error}");
        assert_eq!(error.line, Some(MAX_TOKENS + 3));
    }

    #[test]
    fn pskc_deep_nesting_is_refused() {
        let xml = container(&format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH + 1),
            "</a>".repeat(MAX_XML_DEPTH + 1)
        ));
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("nested"), "{error}");
    }

    #[test]
    fn pskc_one_bad_package_refuses_the_whole_file() {
        let packages = format!(
            "{}{}",
            plain_package("GOOD-1", HOTP_URI, ""),
            plain_package("BAD-1", "urn:ietf:params:xml:ns:keyprov:pskc:pin", "")
        );
        let error = pskc_error(container(&packages).as_bytes(), PskcKey::None);
        assert!(error.reason.contains("BAD-1"), "{error}");
    }

    #[test]
    fn pskc_never_panics_on_truncated_or_mangled_input() {
        for fixture in [FIGURE3_PLAIN, PRESHARED, PASSWORD, TOTP, BAD_MAC] {
            for end in 0..fixture.len() {
                let _ = parse_pskc(&fixture[..end], PskcKey::PreShared(&RFC_KEY));
            }
            for position in (0..fixture.len()).step_by(7) {
                let mut mangled = fixture.to_vec();
                mangled[position] ^= 0x5a;
                let _ = parse_pskc(&mangled, PskcKey::PreShared(&RFC_KEY));
                let _ = parse_pskc(&mangled, PskcKey::None);
            }
        }
    }

    /// Encrypts like a PSKC writer does: IV in front, AES-256-CBC, PKCS#7 padding.
    fn encrypt_aes256(key: &[u8], iv: [u8; 16], plain: &[u8]) -> Vec<u8> {
        use cbc::cipher::BlockModeEncrypt;
        let mut buffer = vec![0_u8; plain.len() + 16];
        buffer[..plain.len()].copy_from_slice(plain);
        let ciphertext = cbc::Encryptor::<Aes256>::new_from_slices(key, &iv)
            .expect("32-byte key and 16-byte IV")
            .encrypt_padded::<Pkcs7>(&mut buffer, plain.len())
            .expect("the buffer has room for padding");
        [iv.as_slice(), ciphertext].concat()
    }

    /// Builds an AES-256 / HMAC-SHA256 file with an encrypted secret and counter,
    /// optionally without the secret's ValueMAC or without the MACMethod.
    fn aes256_file(key: &[u8], with_value_mac: bool, with_mac_method: bool) -> String {
        let mac_key = [0x5c_u8; 32];
        let encrypted_mac_key = encrypt_aes256(key, [1; 16], &mac_key);
        let secret = encrypt_aes256(key, [2; 16], b"12345678901234567890123456789012");
        let counter = encrypt_aes256(key, [3; 16], &1000_u64.to_be_bytes());
        let mac = |data: &[u8]| BASE64.encode(&HmacHash::Sha256.tag(&mac_key, data).expect("HMAC"));
        let value = |data: &[u8], value_mac: bool| {
            format!(
                "<EncryptedValue><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes256-cbc\"/>\
                 <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></EncryptedValue>{}",
                BASE64.encode(data),
                if value_mac {
                    format!("<ValueMAC>{}</ValueMAC>", mac(data))
                } else {
                    String::new()
                }
            )
        };
        let mac_method = if with_mac_method {
            format!(
                "<MACMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#hmac-sha256\"><MACKey>\
                 <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes256-cbc\"/>\
                 <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></MACKey></MACMethod>\n",
                BASE64.encode(&encrypted_mac_key)
            )
        } else {
            String::new()
        };
        format!(
            "<KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\" \
             xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\">\n\
             <EncryptionKey><ds:KeyName>vendor key</ds:KeyName></EncryptionKey>\n{mac_method}\
             <KeyPackage><DeviceInfo><SerialNo>ENC-1</SerialNo></DeviceInfo>\
             <Key Algorithm=\"{HOTP_URI}\"><Data><Secret>{}</Secret><Counter>{}</Counter></Data></Key>\
             </KeyPackage>\n</KeyContainer>\n",
            value(&secret, with_value_mac),
            value(&counter, true)
        )
    }

    #[test]
    fn pskc_aes256_with_sha256_mac_decrypts_secret_and_counter() {
        let key = [0x24_u8; 32];
        let xml = aes256_file(&key, true, true);
        let tokens = parse_pskc(xml.as_bytes(), PskcKey::PreShared(&key)).expect("decrypts");
        assert_eq!(tokens[0].serial, "ENC-1");
        assert_eq!(tokens[0].secret, b"12345678901234567890123456789012");
        assert_eq!(tokens[0].counter, 1000);
    }

    #[test]
    fn pskc_encrypted_value_without_a_mac_is_refused() {
        let key = [0x24_u8; 32];
        let xml = aes256_file(&key, false, true);
        let error = pskc_error(xml.as_bytes(), PskcKey::PreShared(&key));
        assert!(error.reason.contains("no ValueMAC"), "{error}");
        let xml = aes256_file(&key, true, false);
        let error = pskc_error(xml.as_bytes(), PskcKey::PreShared(&key));
        assert!(error.reason.contains("no MACMethod"), "{error}");
    }

    #[test]
    fn pskc_byte_order_mark_is_accepted() {
        let mut xml = b"\xEF\xBB\xBF".to_vec();
        xml.extend_from_slice(FIGURE3_PLAIN);
        let tokens = parse_pskc(&xml, PskcKey::None).expect("parses");
        assert_eq!(tokens[0].serial, "987654321");
    }

    #[test]
    fn pskc_non_decimal_response_encoding_is_refused() {
        let xml = container(&plain_package("E-1", HOTP_URI, "")).replace(
            "<Data>",
            "<AlgorithmParameters><ResponseFormat Length=\"8\" Encoding=\"HEXADECIMAL\"/></AlgorithmParameters><Data>",
        );
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("HEXADECIMAL"), "{error}");
    }

    #[test]
    fn pskc_error_messages_shorten_text_quoted_from_the_file() {
        let long_uri = format!("urn:example:{}", "x".repeat(5_000));
        let xml = container(&plain_package("L-1", &long_uri, ""));
        let error = pskc_error(xml.as_bytes(), PskcKey::None);
        assert!(error.reason.contains("unknown algorithm"), "{error}");
        assert!(error.reason.len() < 300, "{} bytes", error.reason.len());
    }

    // ----- Output hygiene ---------------------------------------------------

    #[test]
    fn token_debug_output_redacts_the_secret() {
        let tokens = parse_pskc(FIGURE3_PLAIN, PskcKey::None).expect("parses");
        let debug = format!("{:?}", tokens[0]);
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(!debug.contains("49, 50"), "{debug}");
        assert!(debug.contains("987654321"), "{debug}");
    }

    #[test]
    fn key_debug_output_redacts_the_key() {
        assert_eq!(
            format!("{:?}", PskcKey::Password("qwerty")),
            "Password([redacted])"
        );
        assert_eq!(
            format!("{:?}", PskcKey::PreShared(&RFC_KEY)),
            "PreShared([redacted])"
        );
    }

    #[test]
    fn error_display_puts_the_line_first_when_known() {
        assert_eq!(ImportError::at(3, "bad").to_string(), "line 3: bad");
        assert_eq!(ImportError::general("bad").to_string(), "bad");
    }

    // ----- CSV --------------------------------------------------------------

    #[test]
    fn csv_good_file_reads_hex_and_base32_rows_and_skips_comments_and_header() {
        let tokens = parse_csv(csv(GOOD_CSV)).expect("parses");
        let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
        assert_eq!(
            serials,
            ["TK-0001", "TK-0002", "TK-0003", "TK-0004", "TK,0005"]
        );

        let first = &tokens[0];
        assert_eq!(hex(&first.secret), RFC_SECRET_HEX);
        assert_eq!(first.token_type, TokenType::Totp);
        assert_eq!((first.digits, first.period, first.counter), (6, 30, 0));
        assert_eq!(first.algorithm, "SHA1");

        let second = &tokens[1];
        assert_eq!(second.secret, b"12345678901234567890");
        assert_eq!(second.token_type, TokenType::Hotp);
        assert_eq!((second.digits, second.counter, second.period), (8, 42, 30));

        let third = &tokens[2];
        assert_eq!(third.secret, b"12345678901234567890123456789012");
        assert_eq!((third.digits, third.period), (8, 60));
        assert_eq!(third.algorithm, "SHA256");

        let fourth = &tokens[3];
        assert_eq!(fourth.secret, b"12345678901234567890123456789012");
        assert_eq!(fourth.algorithm, "SHA512");

        let fifth = &tokens[4];
        assert_eq!(fifth.secret, b"12345678901234567890");
        assert_eq!(fifth.token_type, TokenType::Hotp);
        assert_eq!(fifth.counter, 0);
    }

    #[test]
    fn csv_bad_secret_is_reported_on_line_three() {
        let error = parse_csv(csv(BAD_SECRET_CSV)).expect_err("refused");
        assert_eq!(error.line, Some(3));
        assert!(
            error.reason.contains("neither valid hex nor valid base32"),
            "{error}"
        );
        assert!(error.to_string().starts_with("line 3: "), "{error}");
    }

    #[test]
    fn csv_duplicate_serial_is_refused_by_name() {
        let error = parse_csv(csv(DUPLICATE_CSV)).expect_err("refused");
        assert_eq!(error.line, Some(4));
        assert!(
            error.reason.contains("duplicate serial \"TK-1\""),
            "{error}"
        );
        assert!(error.reason.contains("line 2"), "{error}");
    }

    #[test]
    fn csv_secret_rule_prefers_hex_only_for_hash_sized_hex() {
        let secret = |field: &str| decode_csv_secret(field).expect("decodes");
        assert_eq!(secret(RFC_SECRET_HEX).len(), 20);
        assert_eq!(secret(&"ab".repeat(32)).len(), 32);
        assert_eq!(secret(&"CD".repeat(64)).len(), 64);
        // Hex-looking but not hash-sized and valid base32: read as base32.
        assert_eq!(secret("ABCDEFABCDEFABCDEFAA").len(), 12);
        // Not valid base32 (0, 1, 8 and 9 are outside its alphabet): read as hex.
        assert_eq!(
            secret("00112233445566778899"),
            (0..10).map(|i| i * 0x11).collect::<Vec<u8>>()
        );
        // Grouped, lower-case, padded base32.
        assert_eq!(
            secret("gezd gnbv gy3t qojq gezd gnbv gy3t qojq"),
            b"12345678901234567890"
        );
        assert_eq!(secret("GEZDGNBVGY3TQOJQ===="), b"1234567890");
        assert!(decode_csv_secret("xyz!").is_err());
        assert!(decode_csv_secret("").is_err());
    }

    #[test]
    fn csv_refuses_empty_serial_and_short_secret() {
        let error = parse_csv(",3132333435363738393031323334353637383930").expect_err("refused");
        assert_eq!(error.to_string(), "line 1: the serial is empty");
        let error = parse_csv("A,GEZDGNBV").expect_err("refused");
        assert!(error.reason.contains("too short"), "{error}");
    }

    #[test]
    fn csv_refuses_bad_type_digits_period_and_algorithm() {
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let reason = |row: String| parse_csv(&row).expect_err("refused").reason;
        assert!(reason(format!("A,{secret},motp")).contains("unknown token type"));
        assert!(reason(format!("A,{secret},totp,7")).contains("6 or 8, not 7"));
        assert!(reason(format!("A,{secret},totp,six")).contains("whole number"));
        assert!(reason(format!("A,{secret},totp,6,45")).contains("30 or 60"));
        assert!(reason(format!("A,{secret},hotp,6,-1")).contains("counter"));
        assert!(reason(format!("A,{secret},totp,6,30,md5")).contains("unknown algorithm"));
        assert!(reason(format!("A,{secret},totp,6,30,sha1,extra")).contains("at most six"));
        assert!(reason("A".to_owned()).contains("at least two"));
    }

    #[test]
    fn csv_errors_never_echo_a_long_value() {
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let error = parse_csv(&format!("A,{secret},{secret}")).expect_err("refused");
        assert!(!error.reason.contains(secret), "{error}");
        let error = parse_csv(&format!("A,{secret}x")).expect_err("refused");
        assert!(!error.reason.contains(secret), "{error}");
    }

    #[test]
    fn csv_quoted_fields_are_supported_minimally() {
        let tokens = parse_csv(
            "\"A \"\"quoted\"\" serial\" , \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\" ,\"hotp\"",
        )
        .expect("parses");
        assert_eq!(tokens[0].serial, "A \"quoted\" serial");
        assert_eq!(tokens[0].token_type, TokenType::Hotp);
        let error = parse_csv("\"A,GEZDGNBVGY3TQOJQ").expect_err("refused");
        assert!(error.reason.contains("not closed"), "{error}");
        let error = parse_csv("\"A\"x,GEZDGNBVGY3TQOJQ").expect_err("refused");
        assert!(error.reason.contains("closing quote"), "{error}");
    }

    #[test]
    fn csv_header_is_only_skipped_before_the_first_record() {
        let text = "SERIAL,SECRET\nA,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\nserial,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n";
        let tokens = parse_csv(text).expect("parses");
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[1].serial, "serial");
    }

    #[test]
    fn csv_empty_optional_fields_take_their_defaults() {
        let tokens = parse_csv("A,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,,,,sha512\r\n").expect("parses");
        assert_eq!(tokens[0].token_type, TokenType::Totp);
        assert_eq!((tokens[0].digits, tokens[0].period), (6, 30));
        assert_eq!(tokens[0].algorithm, "SHA512");
    }

    #[test]
    fn csv_with_only_comments_gives_no_tokens() {
        let tokens = parse_csv("\u{feff}# nothing yet\n\n   \n# still nothing\n").expect("parses");
        assert!(tokens.is_empty());
    }

    #[test]
    fn csv_more_than_the_token_limit_is_refused() {
        let text: String = (0..=MAX_TOKENS)
            .map(|i| format!("T{i},GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n"))
            .collect();
        let error = parse_csv(&text).expect_err("refused");
        assert_eq!(error.line, Some(MAX_TOKENS + 1));
        assert!(error.reason.contains("too many tokens"), "{error}");
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

// ---------------------------------------------------------------------------
// Users CSV
// ---------------------------------------------------------------------------

/// The most users one CSV file may hold.
pub const MAX_USERS: usize = 10_000;

/// One record of a users CSV file (`login,first,last,email,phone`): the user it describes,
/// and every reason it cannot be imported (none when it can).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The 1-based line of the record.
    pub line: usize,
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub problems: Vec<String>,
}

/// Reads a users CSV file: one user per line as `login,first,last,email,phone` (the last four
/// may be empty or missing), an optional header line starting with `login`, `#` comments and
/// blank lines skipped. Every record is checked by the same rules as a user created by hand,
/// and a login used twice in the file is refused on its second line; the caller imports the
/// rows only when none has a problem.
///
/// # Errors
///
/// Fails only for the file as a whole: more than [`MAX_USERS`] records, or none.
pub fn parse_users_csv(text: &str) -> Result<Vec<UserRow>, ImportError> {
    use crate::domain;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut before_first_record = true;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_csv_line(trimmed);
        let is_header = before_first_record
            && fields.as_ref().is_ok_and(|fields| {
                fields
                    .first()
                    .is_some_and(|field| field.eq_ignore_ascii_case("login"))
            });
        before_first_record = false;
        if is_header {
            continue;
        }
        if rows.len() >= MAX_USERS {
            return Err(ImportError::at(
                line,
                format!("too many users: a file may hold at most {MAX_USERS}"),
            ));
        }
        let mut row = UserRow {
            line,
            login: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            email: None,
            phone: None,
            problems: Vec::new(),
        };
        let fields = match fields {
            Ok(fields) => fields,
            Err(reason) => {
                row.problems.push(reason);
                rows.push(row);
                continue;
            }
        };
        if fields.len() > 5 {
            row.problems.push(format!(
                "{} fields; a line has at most 5: login,first,last,email,phone",
                fields.len()
            ));
        }
        let field = |i: usize| fields.get(i).map(String::as_str).unwrap_or("");
        row.login = field(0).trim().to_string();
        match domain::login_field("login", field(0)) {
            Ok(login) => {
                let key = login.to_lowercase();
                if let Some(first) = first_seen.get(&key) {
                    row.problems
                        .push(format!("login {login:?} is used on line {first} already"));
                } else {
                    first_seen.insert(key, line);
                }
                row.login = login;
            }
            Err(e) => row.problems.push(format!("login: {e}")),
        }
        match domain::person_name("first_name", field(1)) {
            Ok(name) => row.first_name = name,
            Err(e) => row.problems.push(format!("first name {e}")),
        }
        match domain::person_name("last_name", field(2)) {
            Ok(name) => row.last_name = name,
            Err(e) => row.problems.push(format!("last name {e}")),
        }
        if !field(3).trim().is_empty() {
            match domain::email_field(field(3)) {
                Ok(email) => row.email = Some(email),
                Err(e) => row.problems.push(format!("email: {e}")),
            }
        }
        if !field(4).trim().is_empty() {
            match domain::phone_field(field(4)) {
                Ok(phone) => row.phone = Some(phone),
                Err(e) => row.problems.push(format!("phone: {e}")),
            }
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(ImportError::general("the file holds no users"));
    }
    Ok(rows)
}

#[cfg(test)]
mod users_csv_tests {
    use super::*;

    #[test]
    fn a_users_file_is_read_with_its_header_and_optional_fields() {
        let rows = parse_users_csv(
            "login,first,last,email,phone\njdoe,Jane,Doe,jane@example.com,+49 151 1234567\n\n\"smith, j\",John\n",
        )
        .expect("a file");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].phone.as_deref(), Some("+491511234567"));
        assert!(rows[0].problems.is_empty());
        assert_eq!(rows[1].login, "smith, j");
        assert_eq!(rows[1].email, None);
    }

    #[test]
    fn every_bad_row_is_named_with_its_reasons() {
        let rows = parse_users_csv("ann,,,not-mail\n42\nANN\nbob,,,,12\n\"open\n").expect("a file");
        let problems: Vec<(usize, usize)> =
            rows.iter().map(|r| (r.line, r.problems.len())).collect();
        assert_eq!(problems, vec![(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]);
        assert!(rows[2].problems[0].contains("line 1"));
        assert!(parse_users_csv("# only a comment\n").is_err());
    }
}
