//! Confirmation codes: a short code sent to an address (an email address, a phone number) that
//! proves the address is the user's when it is typed back. Every portal flow that confirms an
//! address makes, sends and checks its code here — the login's emailed code, a new MAIL or SMS
//! token, Reissue Token to a new address, Change Email and Change Phone — so they share one
//! code, one validity, one number of tries and one wait before another code is sent. Where a
//! flow keeps the code between two requests is its own affair (the login's row, the new
//! token's challenge, the portal session).

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::{self, CryptoError, Keys, Purpose};
use crate::otp;
use crate::store::Message;

/// Wrong codes allowed before the code is used up.
pub const TRIES: i64 = 3;
/// How long a code is valid.
pub const VALIDITY_SECONDS: i64 = 10 * 60;
/// How long before another code may be sent to the same place.
pub const RESEND_SECONDS: i64 = 30;
/// The longest text worth hashing as a code.
const MAX_TYPED: usize = 16;

/// How a code travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Mail,
    Sms,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Mail => "mail",
            Channel::Sms => "sms",
        }
    }
}

/// Where a code goes and what it confirms, in the words of its message.
pub struct Letter<'a> {
    pub channel: Channel,
    pub recipient: &'a str,
    pub subject: String,
    /// What typing the code back does, to follow "… is the code that": "confirms your new
    /// email address for VPN".
    pub purpose: String,
}

/// A code made and sealed into the message that carries it; the code itself is nowhere else.
pub struct Issued {
    pub code_hash: Vec<u8>,
    pub message: Message,
}

/// Makes a code of `digits` digits and the message that carries it to the letter's recipient,
/// valid from `now` for [`VALIDITY_SECONDS`].
pub fn issue(
    keys: &Keys,
    letter: Letter<'_>,
    digits: u32,
    now: UnixTime,
) -> Result<Issued, CryptoError> {
    let random = crypto::random_bytes::<64>()?;
    let code = otp::numeric_code(&random, digits).ok_or(CryptoError::Random)?;
    let body = format!(
        "{code} is the code that {}. It is valid for {}. If you did not ask for it, \
         tell your administrator.",
        letter.purpose,
        crate::domain::words::minutes(VALIDITY_SECONDS as u64)
    );
    Ok(Issued {
        code_hash: keys.code_hash(&code),
        message: Message {
            channel: letter.channel.as_str(),
            recipient: letter.recipient.to_string(),
            subject: letter.subject,
            sealed_body: keys.seal(Purpose::Message, body.as_bytes())?,
            expires_at: now + VALIDITY_SECONDS,
        },
    })
}

/// Whether `typed` is the code behind `code_hash`, compared in constant time; text too long
/// to be a code is not even hashed.
pub fn matches(keys: &Keys, typed: &str, code_hash: &[u8]) -> bool {
    let typed = typed.trim();
    typed.len() <= MAX_TYPED && crypto::constant_time_eq(&keys.code_hash(typed), code_hash)
}

/// Whether a code sent at `sent_at` is too recent for another to be sent now.
pub fn too_soon(sent_at: UnixTime, now: UnixTime) -> bool {
    now - sent_at < RESEND_SECONDS
}

/// A code waiting to be typed back, for a flow that keeps it sealed in the portal session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub code_hash: Vec<u8>,
    pub tries_left: i64,
    pub sent_at: UnixTime,
    pub expires_at: UnixTime,
}

/// What typing a code did to a waiting one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    Right,
    /// Wrong, and tries remain: the code now waits with one try fewer.
    Wrong(Waiting),
    /// Wrong, and that was the last try.
    UsedUp,
}

impl Waiting {
    /// The code just issued, waiting from `now`.
    pub fn new(issued: &Issued, now: UnixTime) -> Waiting {
        Waiting {
            code_hash: issued.code_hash.clone(),
            tries_left: TRIES,
            sent_at: now,
            expires_at: issued.message.expires_at,
        }
    }

    pub fn is_live(&self, now: UnixTime) -> bool {
        self.expires_at > now
    }

    /// Whether another code may not be sent yet.
    pub fn too_soon(&self, now: UnixTime) -> bool {
        too_soon(self.sent_at, now)
    }

    /// What typing `typed` does.
    pub fn check(&self, keys: &Keys, typed: &str) -> Typed {
        if matches(keys, typed, &self.code_hash) {
            return Typed::Right;
        }
        if self.tries_left <= 1 {
            return Typed::UsedUp;
        }
        Typed::Wrong(Waiting {
            tries_left: self.tries_left - 1,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, Keys) {
        let dir = tempfile::tempdir().expect("dir");
        let keys = Keys::load_or_create(&dir.path().join("k"), true).expect("keys");
        (dir, keys)
    }

    fn waiting(keys: &Keys, code: &str) -> Waiting {
        Waiting {
            code_hash: keys.code_hash(code),
            tries_left: TRIES,
            sent_at: 1000,
            expires_at: 1000 + VALIDITY_SECONDS,
        }
    }

    #[test]
    fn the_right_code_is_right_and_each_wrong_one_uses_up_a_try() {
        let (_dir, keys) = keys();
        let first = waiting(&keys, "123456");
        assert_eq!(first.check(&keys, " 123456 "), Typed::Right);
        let Typed::Wrong(second) = first.check(&keys, "654321") else {
            panic!("tries remain");
        };
        assert_eq!(second.tries_left, TRIES - 1);
        let Typed::Wrong(third) = second.check(&keys, "000000") else {
            panic!("tries remain");
        };
        assert_eq!(third.check(&keys, "111111"), Typed::UsedUp);
        assert_eq!(third.check(&keys, "123456"), Typed::Right);
    }

    #[test]
    fn a_code_expires_and_another_waits_half_a_minute() {
        let (_dir, keys) = keys();
        let code = waiting(&keys, "123456");
        assert!(code.is_live(1000 + VALIDITY_SECONDS - 1));
        assert!(!code.is_live(1000 + VALIDITY_SECONDS));
        assert!(code.too_soon(1000 + RESEND_SECONDS - 1));
        assert!(!code.too_soon(1000 + RESEND_SECONDS));
    }

    #[test]
    fn an_issued_code_is_in_its_sealed_message_only() {
        let (_dir, keys) = keys();
        let issued = issue(
            &keys,
            Letter {
                channel: Channel::Sms,
                recipient: "+4915112345678",
                subject: "Confirm".into(),
                purpose: "confirms your new phone number for VPN".into(),
            },
            8,
            1000,
        )
        .expect("issued");
        assert_eq!(issued.message.channel, "sms");
        assert_eq!(issued.message.expires_at, 1000 + VALIDITY_SECONDS);
        let body = keys
            .open(Purpose::Message, &issued.message.sealed_body)
            .expect("opens");
        let body = String::from_utf8(body).expect("text");
        let code: String = body.chars().take_while(char::is_ascii_digit).collect();
        assert_eq!(code.len(), 8);
        assert!(matches(&keys, &code, &issued.code_hash));
        assert!(!matches(
            &keys,
            &"1".repeat(MAX_TYPED + 1),
            &issued.code_hash
        ));
    }
}
