//! The CSV sheets: tokens (`serial,secret[,type,digits,period_or_counter,algorithm]`)
//! and users (`login,first,last,email,phone`), one record per line, both split by the
//! same minimal quoting rules.

use std::collections::BTreeMap;

use data_encoding::{BASE32_NOPAD, HEXLOWER_PERMISSIVE};

use super::{
    ImportError, ImportedToken, MAX_TOKENS, TokenType, check_digits, check_period,
    check_secret_len, check_serial, describe_field, normalise_hash,
};

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
///
/// [`MIN_SECRET_LEN`]: super::MIN_SECRET_LEN
pub fn parse_csv(text: &str) -> Result<Vec<ImportedToken>, ImportError> {
    let mut tokens = Vec::new();
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    for (line, fields) in records(text, "serial") {
        let fields = fields.map_err(|reason| ImportError::at(line, reason))?;
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

/// The records of a CSV file, with their line numbers: every line but blank ones, comments
/// (`#`) and a first record whose first field is `header`, split into fields (or why the
/// line cannot be split). A byte order mark at the start is skipped.
fn records<'a>(
    text: &'a str,
    header: &'static str,
) -> impl Iterator<Item = (usize, Result<Vec<String>, String>)> + 'a {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut before_first_record = true;
    text.lines()
        .enumerate()
        .map(|(index, raw)| (index + 1, raw.trim()))
        .filter(|(_, trimmed)| !trimmed.is_empty() && !trimmed.starts_with('#'))
        .filter_map(move |(line, trimmed)| {
            let fields = split_csv_line(trimmed);
            let is_header = before_first_record
                && fields.as_ref().is_ok_and(|fields| {
                    fields
                        .first()
                        .is_some_and(|field| field.eq_ignore_ascii_case(header))
                });
            before_first_record = false;
            (!is_header).then_some((line, fields))
        })
}

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
/// and a login used twice in the file (in any case or normal form) is refused on its second
/// line; the caller imports the rows only when none has a problem.
///
/// # Errors
///
/// Fails only for the file as a whole: more than [`MAX_USERS`] records, or none.
pub fn parse_users_csv(text: &str) -> Result<Vec<UserRow>, ImportError> {
    use crate::domain;
    let mut rows = Vec::new();
    // The line and spelling of each login's first use, by the login's key.
    let mut first_seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (line, fields) in records(text, "login") {
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
                let key = domain::login_key(&login);
                match first_seen.get(&key) {
                    Some((first, spelt)) if *spelt == login => row
                        .problems
                        .push(format!("login {login:?} is used on line {first} already")),
                    Some((first, spelt)) => row.problems.push(format!(
                        "login {login:?} is used on line {first} already, written {spelt:?}"
                    )),
                    None => {
                        first_seen.insert(key, (line, login.clone()));
                    }
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
mod tests {
    use super::*;

    const GOOD_CSV: &[u8] = include_bytes!("../../tests/fixtures/import/good.csv");
    const BAD_SECRET_CSV: &[u8] =
        include_bytes!("../../tests/fixtures/import/bad-secret-line3.csv");
    const DUPLICATE_CSV: &[u8] = include_bytes!("../../tests/fixtures/import/duplicate-serial.csv");

    const RFC_SECRET_HEX: &str = "3132333435363738393031323334353637383930";

    fn hex(bytes: &[u8]) -> String {
        HEXLOWER_PERMISSIVE.encode(bytes)
    }

    fn csv(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("CSV fixtures are UTF-8")
    }

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

    #[test]
    fn logins_that_fold_alike_are_one_login_used_twice() {
        let rows = parse_users_csv("Zoë\nZOË\nstraße\nSTRASSE\nAndr\u{e9}\nAndre\u{301}\n")
            .expect("a file");
        let problems: Vec<(usize, usize)> =
            rows.iter().map(|r| (r.line, r.problems.len())).collect();
        assert_eq!(
            problems,
            vec![(1, 0), (2, 1), (3, 0), (4, 1), (5, 0), (6, 1)]
        );
        assert!(
            rows[1].problems[0].contains("line 1") && rows[1].problems[0].contains("\"Zoë\""),
            "{:?}",
            rows[1].problems
        );
        assert_eq!(rows[5].login, "Andr\u{e9}", "kept in composed form");
    }
}
