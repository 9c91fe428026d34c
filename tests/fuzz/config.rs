//! The configuration parser, on edits of the commented example the packages install.

use otpgate::Config;
use proptest::prelude::*;

use crate::mutate::{LineEdit, apply_lines, line_edit};
use crate::run::fuzz;

const EXAMPLE: &str = include_str!("../../packaging/config.toml");

/// The example with its commented settings switched on, so that edits reach every key.
fn every_key_set() -> String {
    EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(setting) if setting.contains(" = ") && !setting.contains("  ") => setting,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Clone)]
enum File {
    Edited(bool, Vec<LineEdit>),
    Raw(Vec<u8>),
}

#[test]
fn configuration_files_never_crash_the_parser() {
    let samples = [EXAMPLE.to_string(), every_key_set()];
    assert!(
        Config::parse(&samples[1], None).is_ok(),
        "the example with every key set parses"
    );
    let input = prop_oneof![
        5 => (any::<bool>(), proptest::collection::vec(line_edit(), 1..8))
            .prop_map(|(every, edits)| File::Edited(every, edits)),
        1 => proptest::collection::vec(any::<u8>(), 0..1024).prop_map(File::Raw),
    ];
    fuzz("configuration", input, |input| {
        let text = match input {
            File::Edited(every, edits) => apply_lines(&samples[usize::from(every)], &edits),
            File::Raw(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        if let Ok(config) = Config::parse(&text, None) {
            // What parsed is valid, and what `config check` prints parses again to the same.
            prop_assert!(config.validate().is_ok());
            let printed = config.to_toml();
            let again = Config::parse(&printed, None);
            prop_assert!(again.is_ok(), "{printed}\n{again:?}");
            let again = again.map(|c| c.to_toml()).unwrap_or_default();
            prop_assert_eq!(printed, again);
        }
        Ok(())
    });
}
