//! The importers: PSKC files (with every kind of key) and the two CSV sheets.

use std::collections::BTreeSet;

use otpgate::import::{
    ImportedToken, MAX_TOKENS, MAX_USERS, MIN_SECRET_LEN, PskcKey, TokenType, parse_csv,
    parse_pskc, parse_users_csv,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::mutate::{LineEdit, XmlEdit, apply_lines, apply_xml, line_edit, xml_edit};
use crate::run::fuzz;

const PSKC_SAMPLES: &[&[u8]] = &[
    include_bytes!("../fixtures/import/rfc6030-figure3-plain.pskcxml"),
    include_bytes!("../fixtures/import/rfc6030-preshared-key.pskcxml"),
    include_bytes!("../fixtures/import/rfc6030-password.pskcxml"),
    include_bytes!("../fixtures/import/totp.pskcxml"),
    include_bytes!("../fixtures/import/bad-mac.pskcxml"),
    include_bytes!("../fixtures/import/bad-algorithm.pskcxml"),
];

const TOKEN_CSV_SAMPLES: &[&str] = &[
    include_str!("../fixtures/import/good.csv"),
    include_str!("../fixtures/import/duplicate-serial.csv"),
    include_str!("../fixtures/import/bad-secret-line3.csv"),
];

const USER_CSV_SAMPLE: &str = "login,first,last,email,phone\n\
    alice,Alice,Archer,alice@example.com,+4915112345678\n\
    # a comment\n\
    \"bob\",\"Bob, Jr.\",Baker,,\n\
    carol,,,carol@example.com\n\
    dave\n";

/// The pre-shared key of the RFC 6030 sample (figure 6).
const RFC_KEY: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12,
];

/// An error is one bounded line, whatever the file: a hostile file cannot fill a log.
const LONGEST_ERROR: usize = 1_000;

#[derive(Debug, Clone)]
enum Key {
    None,
    PreShared(Vec<u8>),
    Password(String),
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        Just(Key::None),
        Just(Key::PreShared(RFC_KEY.to_vec())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Key::PreShared),
        Just(Key::Password("qwerty".into())),
        proptest::collection::vec(any::<char>(), 0..12)
            .prop_map(|chars| Key::Password(chars.into_iter().collect())),
    ]
}

#[derive(Debug, Clone)]
enum Pskc {
    Edited(usize, Vec<XmlEdit>, Key),
    Raw(Vec<u8>, Key),
}

/// What every token an importer gives must be, whatever the file.
fn check_tokens(tokens: &[ImportedToken]) -> Result<(), TestCaseError> {
    prop_assert!(tokens.len() <= MAX_TOKENS);
    let mut serials = BTreeSet::new();
    for token in tokens {
        prop_assert!(matches!(token.digits, 6 | 8), "{token:?}");
        prop_assert!(matches!(token.period, 30 | 60), "{token:?}");
        prop_assert!(
            ["SHA1", "SHA256", "SHA512"].contains(&token.algorithm.as_str()),
            "{token:?}"
        );
        prop_assert!(token.secret.len() >= MIN_SECRET_LEN, "{token:?}");
        prop_assert!(!token.serial.is_empty() && token.serial.chars().count() <= 128);
        prop_assert!(!token.serial.chars().any(char::is_control), "{token:?}");
        prop_assert!(token.token_type == TokenType::Hotp || token.counter == 0);
        prop_assert!(
            serials.insert(token.serial.clone()),
            "serial twice: {token:?}"
        );
    }
    Ok(())
}

fn check_error(error: &impl std::fmt::Display) -> Result<(), TestCaseError> {
    let text = error.to_string();
    let start: String = text.chars().take(160).collect();
    prop_assert!(
        text.len() <= LONGEST_ERROR,
        "an error of {} bytes: {start}…",
        text.len()
    );
    Ok(())
}

#[test]
fn pskc_files_never_crash_the_importer() {
    let input = prop_oneof![
        5 => (0..PSKC_SAMPLES.len(), proptest::collection::vec(xml_edit(), 1..6), key())
            .prop_map(|(sample, edits, key)| Pskc::Edited(sample, edits, key)),
        1 => (proptest::collection::vec(any::<u8>(), 0..2048), key())
            .prop_map(|(bytes, key)| Pskc::Raw(bytes, key)),
    ];
    fuzz("pskc", input, |input| {
        let (bytes, key) = match input {
            Pskc::Edited(sample, edits, key) => (apply_xml(PSKC_SAMPLES[sample], &edits), key),
            Pskc::Raw(bytes, key) => (bytes, key),
        };
        let key = match &key {
            Key::None => PskcKey::None,
            Key::PreShared(bytes) => PskcKey::PreShared(bytes),
            Key::Password(password) => PskcKey::Password(password),
        };
        match parse_pskc(&bytes, key) {
            Ok(tokens) => check_tokens(&tokens),
            Err(error) => check_error(&error),
        }
    });
}

#[derive(Debug, Clone)]
enum Sheet {
    Edited(usize, Vec<LineEdit>),
    Raw(Vec<u8>),
}

fn sheet(samples: usize) -> impl Strategy<Value = Sheet> {
    prop_oneof![
        5 => (0..samples, proptest::collection::vec(line_edit(), 1..8))
            .prop_map(|(sample, edits)| Sheet::Edited(sample, edits)),
        1 => proptest::collection::vec(any::<u8>(), 0..1024).prop_map(Sheet::Raw),
    ]
}

fn text_of(sheet: Sheet, samples: &[&str]) -> String {
    match sheet {
        Sheet::Edited(sample, edits) => apply_lines(samples[sample], &edits),
        Sheet::Raw(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[test]
fn token_csv_sheets_never_crash_the_importer() {
    fuzz(
        "token_csv",
        sheet(TOKEN_CSV_SAMPLES.len()),
        |input| match parse_csv(&text_of(input, TOKEN_CSV_SAMPLES)) {
            Ok(tokens) => check_tokens(&tokens),
            Err(error) => check_error(&error),
        },
    );
}

#[test]
fn user_csv_sheets_never_crash_the_importer() {
    fuzz("user_csv", sheet(1), |input| {
        match parse_users_csv(&text_of(input, &[USER_CSV_SAMPLE])) {
            Ok(rows) => {
                prop_assert!(rows.len() <= MAX_USERS);
                for pair in rows.windows(2) {
                    prop_assert!(pair[0].line < pair[1].line, "{pair:?}");
                }
                for row in &rows {
                    for problem in &row.problems {
                        check_error(problem)?;
                    }
                }
                Ok(())
            }
            Err(error) => check_error(&error),
        }
    });
}
