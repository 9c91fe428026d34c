//! How pages, messages and the bot put numbers and names into sentences, once: a count with its
//! unit in the right number ("1 minute", "3 minutes", never "minute(s)"), a time span in words,
//! and a token as a sentence names it (its name in quotes, or its serial when it has none).

/// A count with its noun: "1 token", "3 tokens", "0 tokens".
pub fn count(count: impl Into<u64>, one: &str, many: &str) -> String {
    match count.into() {
        1 => format!("1 {one}"),
        count => format!("{count} {many}"),
    }
}

/// A validity or a wait in whole minutes, rounded up: "1 minute", "10 minutes".
pub fn minutes(seconds: u64) -> String {
    count(seconds.div_ceil(60).max(1), "minute", "minutes")
}

/// A wait in words, for "try again in …": seconds under two minutes, else minutes rounded up.
pub fn wait(seconds: u64) -> String {
    match seconds.max(1) {
        1 => "a second".to_string(),
        seconds if seconds < 120 => count(seconds, "second", "seconds"),
        seconds => minutes(seconds),
    }
}

/// A token as a sentence names it: “Work phone” in quotes, or its serial when it has no name
/// (never an empty “”).
pub fn token_label(name: &str, serial: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        serial.to_string()
    } else {
        format!("“{name}”")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_a_unit_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1u32, "minute", "minutes"), "1 minute");
        assert_eq!(count(0u32, "minute", "minutes"), "0 minutes");
        assert_eq!(count(2u32, "token", "tokens"), "2 tokens");
        assert_eq!(minutes(60), "1 minute");
        assert_eq!(minutes(61), "2 minutes");
        assert_eq!(minutes(10), "1 minute");
        assert_eq!(minutes(600), "10 minutes");
    }

    #[test]
    fn a_wait_is_said_in_seconds_then_in_minutes() {
        assert_eq!(wait(0), "a second");
        assert_eq!(wait(1), "a second");
        assert_eq!(wait(30), "30 seconds");
        assert_eq!(wait(119), "119 seconds");
        assert_eq!(wait(120), "2 minutes");
        assert_eq!(wait(121), "3 minutes");
    }

    #[test]
    fn a_token_without_a_name_is_named_by_its_serial() {
        assert_eq!(token_label("Work phone", "BOT0A1B"), "“Work phone”");
        assert_eq!(token_label("", "BOT0A1B"), "BOT0A1B");
        assert_eq!(token_label("  ", "BOT0A1B"), "BOT0A1B");
    }
}
