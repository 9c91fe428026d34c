//! How a RADIUS client's users type their password and code into the one password field the
//! gateway has, and how otpgate takes that field apart. Pure: no I/O.

use data_encoding::BASE64;

/// A client's input mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputMode {
    /// Password and code in one field (OpenVPN's plugin, pfSense/OPNsense, IPsec XAUTH): the
    /// code last or first, after or before a separator, or, without one, as the last or first
    /// `code_length` characters.
    Combined {
        code_first: bool,
        separator: Option<String>,
        code_length: u8,
    },
    /// OpenVPN's static challenge: `SCRV1:<base64 password>:<base64 code>`.
    StaticChallenge,
    /// The field holds the code alone: the gateway checked the password itself.
    CodeOnly,
    /// Password, then a challenge (FortiGate, Cisco ASA, Palo Alto, NetScaler): the first
    /// request's field holds the password alone (see [`password`]); a right one is answered
    /// with an Access-Challenge, and the request that carries its State holds the code alone.
    Challenge,
}

/// The shortest and longest code `Combined` cuts off when there is no separator.
pub const CODE_LENGTHS: std::ops::RangeInclusive<u8> = 4..=10;
/// The longest separator.
pub const MAX_SEPARATOR_LEN: usize = 8;

impl InputMode {
    /// The name the store and the API use.
    pub fn name(&self) -> &'static str {
        match self {
            InputMode::Combined {
                code_first: false, ..
            } => "password_code",
            InputMode::Combined {
                code_first: true, ..
            } => "code_password",
            InputMode::StaticChallenge => "static_challenge",
            InputMode::CodeOnly => "code_only",
            InputMode::Challenge => "challenge",
        }
    }

    pub const NAMES: [&'static str; 5] = [
        "password_code",
        "code_password",
        "static_challenge",
        "code_only",
        "challenge",
    ];

    /// The mode of a name, with the separator and code length that `Combined` takes.
    pub fn from_parts(name: &str, separator: Option<String>, code_length: u8) -> Option<InputMode> {
        match name {
            "password_code" | "code_password" => Some(InputMode::Combined {
                code_first: name == "code_password",
                separator: separator.filter(|separator| !separator.is_empty()),
                code_length,
            }),
            "static_challenge" => Some(InputMode::StaticChallenge),
            "code_only" => Some(InputMode::CodeOnly),
            "challenge" => Some(InputMode::Challenge),
            _ => None,
        }
    }
}

/// What the user typed, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    pub password: Option<String>,
    pub code: String,
}

/// Why a field could not be taken apart: the audit log's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not UTF-8 text.
    NotText,
    /// No code where the mode expects one.
    NoCode,
    /// An empty password where the mode expects one.
    NoPassword,
    /// Not `SCRV1:<base64>:<base64>`.
    NotStaticChallenge,
}

impl Malformed {
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::NotText => "password_not_text",
            Malformed::NoCode => "no_code_in_password_field",
            Malformed::NoPassword => "no_password",
            Malformed::NotStaticChallenge => "not_a_static_challenge_response",
        }
    }
}

/// Takes the password field apart as `mode` says.
pub fn split(mode: &InputMode, field: &[u8]) -> Result<Typed, Malformed> {
    let text = std::str::from_utf8(field).map_err(|_| Malformed::NotText)?;
    match mode {
        InputMode::CodeOnly | InputMode::Challenge => {
            if text.is_empty() {
                return Err(Malformed::NoCode);
            }
            Ok(Typed {
                password: None,
                code: text.to_string(),
            })
        }
        InputMode::StaticChallenge => {
            let (password, code) = static_challenge(text)?;
            if code.is_empty() {
                return Err(Malformed::NoCode);
            }
            Ok(Typed {
                password: Some(password),
                code,
            })
        }
        InputMode::Combined {
            code_first,
            separator,
            code_length,
        } => {
            let (password, code) = match (separator, code_first) {
                (Some(separator), false) => text.rsplit_once(separator.as_str()),
                (Some(separator), true) => text
                    .split_once(separator.as_str())
                    .map(|(code, password)| (password, code)),
                (None, first) => {
                    let chars: Vec<(usize, char)> = text.char_indices().collect();
                    let length = usize::from(*code_length);
                    if chars.len() <= length {
                        None
                    } else if *first {
                        let cut = chars[length].0;
                        Some((&text[cut..], &text[..cut]))
                    } else {
                        let cut = chars[chars.len() - length].0;
                        Some((&text[..cut], &text[cut..]))
                    }
                }
            }
            .ok_or(Malformed::NoCode)?;
            if code.is_empty() {
                return Err(Malformed::NoCode);
            }
            Ok(Typed {
                password: Some(password.to_string()),
                code: code.to_string(),
            })
        }
    }
}

/// OpenVPN's static challenge response, `SCRV1:<base64 password>:<base64 response>`, decoded.
fn static_challenge(text: &str) -> Result<(String, String), Malformed> {
    let rest = text
        .strip_prefix("SCRV1:")
        .ok_or(Malformed::NotStaticChallenge)?;
    let (password, response) = rest.split_once(':').ok_or(Malformed::NotStaticChallenge)?;
    let decode = |part: &str| {
        BASE64
            .decode(part.as_bytes())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(Malformed::NotStaticChallenge)
    };
    Ok((decode(password)?, decode(response)?))
}

/// The password field of the first request in the challenge mode: the password alone.
pub fn password(field: &[u8]) -> Result<String, Malformed> {
    let text = std::str::from_utf8(field).map_err(|_| Malformed::NotText)?;
    if text.is_empty() {
        return Err(Malformed::NoPassword);
    }
    Ok(text.to_string())
}

/// The password of a login that asks for an approval in Telegram instead of typing a code, in
/// the modes where the password comes with it:
/// - `Combined`: the field is the password followed by the client's approval word (after the
///   separator, if any; before it, and first, when the code comes first), or the password
///   alone — no code can be cut off it (no separator in it, or nothing after it; without a
///   separator, a field no longer than the code);
/// - `StaticChallenge`: the second box (OpenVPN's challenge response) holds nothing or the
///   approval word.
///
/// None when the field holds a code, or no password, or the mode is another.
pub fn approval_password(mode: &InputMode, field: &[u8], word: Option<&str>) -> Option<String> {
    let text = std::str::from_utf8(field).ok()?;
    let (code_first, separator, code_length) = match mode {
        InputMode::Combined {
            code_first,
            separator,
            code_length,
        } => (code_first, separator, code_length),
        InputMode::StaticChallenge => {
            let (password, response) = static_challenge(text).ok()?;
            let response = response.trim();
            let asked = response.is_empty()
                || word.is_some_and(|word| !word.is_empty() && response.eq_ignore_ascii_case(word));
            return (asked && !password.is_empty()).then_some(password);
        }
        InputMode::CodeOnly | InputMode::Challenge => return None,
    };
    let separator = separator.as_deref().unwrap_or("");
    let password = match word {
        Some(word) if !word.is_empty() => {
            let asked = if *code_first {
                strip_prefix_ignoring_case(text, word).and_then(|rest| rest.strip_prefix(separator))
            } else {
                strip_suffix_ignoring_case(text, word).and_then(|rest| rest.strip_suffix(separator))
            };
            asked.or_else(|| alone(text, separator, *code_first, *code_length))
        }
        _ => alone(text, separator, *code_first, *code_length),
    }?;
    (!password.is_empty()).then(|| password.to_string())
}

/// The field as a password with no code: no separator in it, or an empty code beside it; or,
/// without a separator, no longer than the code.
fn alone<'a>(text: &'a str, separator: &str, code_first: bool, code_length: u8) -> Option<&'a str> {
    if separator.is_empty() {
        return (text.chars().count() <= usize::from(code_length)).then_some(text);
    }
    if code_first {
        match text.split_once(separator) {
            None => Some(text),
            Some(("", password)) => Some(password),
            Some(_) => None,
        }
    } else {
        match text.rsplit_once(separator) {
            None => Some(text),
            Some((password, "")) => Some(password),
            Some(_) => None,
        }
    }
}

fn strip_suffix_ignoring_case<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(word.len())?;
    (text.is_char_boundary(cut) && text[cut..].eq_ignore_ascii_case(word)).then(|| &text[..cut])
}

fn strip_prefix_ignoring_case<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    (text.is_char_boundary(word.len().min(text.len()))
        && text.len() >= word.len()
        && text[..word.len()].eq_ignore_ascii_case(word))
    .then(|| &text[word.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_alone_or_followed_by_the_word_asks_for_an_approval_and_a_code_does_not() {
        let comma = combined(false, Some(","));
        let ask = |mode: &InputMode, field: &str, word: Option<&str>| {
            approval_password(mode, field.as_bytes(), word)
        };
        assert_eq!(ask(&comma, "secret", None).as_deref(), Some("secret"));
        assert_eq!(ask(&comma, "secret,", None).as_deref(), Some("secret"));
        assert_eq!(
            ask(&comma, "secret,push", Some("push")).as_deref(),
            Some("secret")
        );
        assert_eq!(
            ask(&comma, "secret,PUSH", Some("push")).as_deref(),
            Some("secret")
        );
        assert_eq!(ask(&comma, "secret,123456", Some("push")), None);
        assert_eq!(ask(&comma, "", None), None);
        assert_eq!(ask(&comma, ",push", Some("push")), None);
        let first = combined(true, Some(":"));
        assert_eq!(
            ask(&first, "push:secret", Some("push")).as_deref(),
            Some("secret")
        );
        assert_eq!(ask(&first, "123456:secret", Some("push")), None);
        let cut = combined(false, None);
        assert_eq!(
            ask(&cut, "secretpush", Some("push")).as_deref(),
            Some("secret")
        );
        assert_eq!(ask(&cut, "secret123456", Some("push")), None);
        assert_eq!(ask(&cut, "short", None).as_deref(), Some("short"));
        assert_eq!(ask(&InputMode::CodeOnly, "secret", None), None);
        assert_eq!(ask(&InputMode::Challenge, "secret", None), None);
    }

    #[test]
    fn a_static_challenge_answered_with_nothing_or_the_word_asks_for_an_approval() {
        let scrv1 = |password: &str, response: &str| {
            format!(
                "SCRV1:{}:{}",
                BASE64.encode(password.as_bytes()),
                BASE64.encode(response.as_bytes())
            )
        };
        let ask = |field: &str, word: Option<&str>| {
            approval_password(&InputMode::StaticChallenge, field.as_bytes(), word)
        };
        assert_eq!(ask(&scrv1("secret", ""), None).as_deref(), Some("secret"));
        assert_eq!(
            ask(&scrv1("secret", ""), Some("push")).as_deref(),
            Some("secret")
        );
        assert_eq!(
            ask(&scrv1("secret", "Push"), Some("push")).as_deref(),
            Some("secret")
        );
        assert_eq!(
            ask(&scrv1("sec:ret", " push "), Some("push")).as_deref(),
            Some("sec:ret")
        );
        // A code, the word where the client has none, no password, or not SCRV1 at all.
        assert_eq!(ask(&scrv1("secret", "123456"), Some("push")), None);
        assert_eq!(ask(&scrv1("secret", "push"), None), None);
        assert_eq!(ask(&scrv1("", ""), Some("push")), None);
        assert_eq!(ask("secret", Some("push")), None);
        assert_eq!(ask("SCRV1:!!:", Some("push")), None);
        // The code still goes the usual way.
        assert_eq!(
            split(
                &InputMode::StaticChallenge,
                scrv1("secret", "123456").as_bytes()
            ),
            typed(Some("secret"), "123456")
        );
    }

    fn typed(password: Option<&str>, code: &str) -> Result<Typed, Malformed> {
        Ok(Typed {
            password: password.map(str::to_string),
            code: code.to_string(),
        })
    }

    fn combined(code_first: bool, separator: Option<&str>) -> InputMode {
        InputMode::Combined {
            code_first,
            separator: separator.map(str::to_string),
            code_length: 6,
        }
    }

    #[test]
    fn a_combined_field_is_cut_at_the_code_length_or_the_separator() {
        assert_eq!(
            split(&combined(false, None), b"s3cret123456"),
            typed(Some("s3cret"), "123456")
        );
        assert_eq!(
            split(&combined(true, None), b"123456s3cret"),
            typed(Some("s3cret"), "123456")
        );
        assert_eq!(
            split(&combined(false, Some(",")), b"pa,ss,123456"),
            typed(Some("pa,ss"), "123456")
        );
        assert_eq!(
            split(&combined(true, Some(",")), b"123456,pa,ss"),
            typed(Some("pa,ss"), "123456")
        );
        assert_eq!(
            split(&combined(false, None), "pässwörd123456".as_bytes()),
            typed(Some("pässwörd"), "123456")
        );
        assert_eq!(
            split(&combined(false, None), b"123456"),
            Err(Malformed::NoCode)
        );
        assert_eq!(
            split(&combined(false, Some(",")), b"password"),
            Err(Malformed::NoCode)
        );
        assert_eq!(
            split(&combined(false, Some(",")), b"password,"),
            Err(Malformed::NoCode)
        );
        assert_eq!(
            split(&combined(false, None), &[0xff, 0xfe]),
            Err(Malformed::NotText)
        );
    }

    #[test]
    fn an_openvpn_static_challenge_response_is_decoded() {
        let field = format!(
            "SCRV1:{}:{}",
            BASE64.encode(b"s3cret"),
            BASE64.encode(b"123456")
        );
        assert_eq!(
            split(&InputMode::StaticChallenge, field.as_bytes()),
            typed(Some("s3cret"), "123456")
        );
        assert_eq!(
            split(&InputMode::StaticChallenge, b"s3cret"),
            Err(Malformed::NotStaticChallenge)
        );
        assert_eq!(
            split(&InputMode::StaticChallenge, b"SCRV1:!!:MTIz"),
            Err(Malformed::NotStaticChallenge)
        );
        assert_eq!(
            split(&InputMode::StaticChallenge, b"SCRV1:czNjcmV0:"),
            Err(Malformed::NoCode)
        );
    }

    #[test]
    fn code_only_takes_the_whole_field() {
        assert_eq!(
            split(&InputMode::CodeOnly, b"123456"),
            typed(None, "123456")
        );
        assert_eq!(split(&InputMode::CodeOnly, b""), Err(Malformed::NoCode));
    }

    #[test]
    fn in_the_challenge_mode_the_password_comes_alone_and_then_the_code_alone() {
        assert_eq!(password(b"s3cret123456"), Ok("s3cret123456".to_string()));
        assert_eq!(password(b""), Err(Malformed::NoPassword));
        assert_eq!(password(&[0xff]), Err(Malformed::NotText));
        assert_eq!(
            split(&InputMode::Challenge, b"123456"),
            typed(None, "123456")
        );
        assert_eq!(split(&InputMode::Challenge, b""), Err(Malformed::NoCode));
    }

    #[test]
    fn every_mode_name_reads_back() {
        for name in InputMode::NAMES {
            let mode = InputMode::from_parts(name, Some(String::new()), 6).expect("a mode");
            assert_eq!(mode.name(), name);
        }
        assert_eq!(InputMode::from_parts("chap", None, 6), None);
    }
}
