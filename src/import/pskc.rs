//! The PSKC (RFC 6030) parser: the container, its `KeyPackage` elements and the token
//! each one describes. The XML is first read into a small bounded tree (`xml`), and
//! encrypted values are authenticated and decrypted on demand (`crypto`).

mod crypto;
mod xml;

use std::collections::BTreeMap;
use std::fmt;

use data_encoding::{BASE64, BASE64_NOPAD};

use self::crypto::Crypto;
use self::xml::{Element, LineIndex, TreeBuilder};
use super::{
    ImportError, ImportedToken, TokenType, check_digits, check_period, check_secret_len,
    check_serial, excerpt, normalise_hash,
};

/// The namespace of RFC 6030 documents, used to tell a PSKC file from other XML.
const PSKC_NAMESPACE: &str = "urn:ietf:params:xml:ns:keyprov:pskc";

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
///
/// [`MAX_TOKENS`]: super::MAX_TOKENS
/// [`MIN_SECRET_LEN`]: super::MIN_SECRET_LEN
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

#[cfg(test)]
mod tests {
    use aes::Aes256;
    use cbc::cipher::KeyIvInit;
    use cbc::cipher::block_padding::Pkcs7;
    use data_encoding::HEXLOWER_PERMISSIVE;

    use super::crypto::HmacHash;
    use super::xml::MAX_XML_DEPTH;
    use super::*;
    use crate::import::MAX_TOKENS;

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

    const RFC_KEY: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90,
        0x12,
    ];
    const RFC_SECRET_HEX: &str = "3132333435363738393031323334353637383930";

    fn hex(bytes: &[u8]) -> String {
        HEXLOWER_PERMISSIVE.encode(bytes)
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
}
