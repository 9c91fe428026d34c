//! The challenge mode's own parts (password, then a challenge: FortiGate, Cisco ASA, Palo Alto,
//! NetScaler): the State of an Access-Challenge and what the challenge tells the user.
//!
//! The State carries the authentication's transaction, which the store keeps, sealed with the
//! server's key and bound to the client, the user as the gateway named them and the resource:
//! a State answered after a restart is still understood, one from another client, user or
//! resource is useless, and one altered or made up does not open. That it is answered once is
//! the store's compare-and-set on the transaction (`Store::take_password_transaction`).

use crate::auth::{Delivery, Expected};
use crate::crypto::{self, CryptoError, Keys, Purpose};
use crate::domain::TokenKind;
use crate::store::UnixTime;

use super::packet::{Attribute, MAX_ATTRIBUTE_VALUE_LEN, REPLY_MESSAGE};

/// The layout of a State's sealed contents; another is refused.
const VERSION: u8 = 1;
/// Version, expiry, binding.
const FIXED_LEN: usize = 1 + 8 + 32;

/// What a State is bound to: the client, the user as the gateway named them, the resource.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub client: &'a str,
    pub user: &'a str,
    pub resource_id: i64,
}

impl Binding<'_> {
    fn digest(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(32 + self.client.len() + self.user.len());
        for part in [self.client.as_bytes(), self.user.as_bytes()] {
            bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
            bytes.extend_from_slice(part);
        }
        bytes.extend_from_slice(&self.resource_id.to_be_bytes());
        crypto::sha256(&bytes)
    }
}

/// The State of a challenge: the transaction and its expiry, bound to `binding`, sealed.
pub fn seal(
    keys: &Keys,
    binding: &Binding<'_>,
    transaction: &str,
    expires_at: UnixTime,
) -> Result<Vec<u8>, CryptoError> {
    let mut plain = Vec::with_capacity(FIXED_LEN + transaction.len());
    plain.push(VERSION);
    plain.extend_from_slice(&expires_at.to_be_bytes());
    plain.extend_from_slice(&binding.digest());
    plain.extend_from_slice(transaction.as_bytes());
    keys.seal(Purpose::RadiusState, &plain)
}

/// Why a State cannot continue a login: the audit log's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Not sealed by this server as a State (altered, made up, another server's).
    Invalid,
    /// Another client's, user's or resource's.
    Foreign,
    /// Its challenge expired.
    Expired,
}

impl Unusable {
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::Invalid => "state_invalid",
            Unusable::Foreign => "state_foreign",
            Unusable::Expired => "state_expired",
        }
    }
}

/// The transaction a State carries, when it opens, is bound to `binding` and has not expired.
/// Whether it was answered already is the store's to say.
pub fn open(
    keys: &Keys,
    binding: &Binding<'_>,
    state: &[u8],
    now: UnixTime,
) -> Result<String, Unusable> {
    let plain = keys
        .open(Purpose::RadiusState, state)
        .map_err(|_| Unusable::Invalid)?;
    if plain.len() <= FIXED_LEN || plain[0] != VERSION {
        return Err(Unusable::Invalid);
    }
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&plain[1..9]);
    if !crypto::constant_time_eq(&plain[9..FIXED_LEN], &binding.digest()) {
        return Err(Unusable::Foreign);
    }
    if i64::from_be_bytes(expiry) <= now {
        return Err(Unusable::Expired);
    }
    String::from_utf8(plain[FIXED_LEN..].to_vec()).map_err(|_| Unusable::Invalid)
}

/// What an Access-Reject tells a user whose answer to a challenge was not accepted, whatever
/// the reason (a wrong or late code, a State used, expired or not theirs).
pub const NOT_ACCEPTED: &str = "The code was not accepted. Log in again.";

/// What an Access-Reject tells a user whose approval in Telegram was denied, expired or not
/// given in time.
pub const NOT_APPROVED: &str = "The sign-in was not approved. Log in again.";

/// What the Access-Challenge says when an approval was asked in Telegram: approve there (with
/// number matching, by choosing the number shown here: the gateway shows this text before the
/// user answers, so the challenge mode keeps number matching), or type a code.
pub fn approval_prompt(number: Option<u8>) -> String {
    match number {
        Some(number) => {
            format!("Approve in Telegram by choosing {number}, or type the code.")
        }
        None => "Approve in Telegram, or type the code.".to_string(),
    }
}

/// What an Access-Reject tells a user whose password was right but to whom no code could go
/// and who has no authenticator app or hardware token here.
pub const NOTHING_SENT: &str =
    "No code could be sent just now. Try again later, or ask your administrator.";

/// What the Access-Challenge asks for, in plain words: each code the user may type, and where
/// it was sent (masked) or which device shows it; the reply may be any of them. None when no
/// code can answer the challenge: none could be sent, and no app or hardware token is expected.
pub fn prompt(expected: &[Expected]) -> Option<String> {
    let mut phrases: Vec<String> = Vec::new();
    for expected in expected {
        let sent = matches!(
            expected.delivery,
            Some(Delivery::Queued | Delivery::Cooldown)
        );
        let phrase = match (expected.token.kind, &expected.destination) {
            (TokenKind::Totp, _) => "the code from your authenticator app".to_string(),
            (TokenKind::Hotp, _) => "the code from your hardware token".to_string(),
            _ if !sent => continue,
            (TokenKind::Bot, _) => "the code sent by Telegram".to_string(),
            (_, Some(destination)) => format!("the code sent to {destination}"),
            (_, None) => continue,
        };
        if !phrases.contains(&phrase) {
            phrases.push(phrase);
        }
    }
    let (last, others) = phrases.split_last()?;
    Some(if others.is_empty() {
        format!("Enter {last}.")
    } else {
        format!("Enter {}, or {last}.", others.join(", "))
    })
}

/// `text` as Reply-Message attributes: one, or several of at most 253 bytes each, cut between
/// characters (RFC 2865 §5.18: a client shows them in order).
pub fn reply_messages(text: &str) -> Vec<Attribute> {
    let mut attributes = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_ATTRIBUTE_VALUE_LEN);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        attributes.push(Attribute::new(REPLY_MESSAGE, &rest.as_bytes()[..cut]));
        rest = &rest[cut..];
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenRef;

    fn keys() -> (tempfile::TempDir, Keys) {
        let dir = tempfile::tempdir().expect("dir");
        let keys = Keys::load_or_create(&dir.path().join("k"), true).expect("keys");
        (dir, keys)
    }

    const NOW: UnixTime = 1_800_000_000;

    fn alice() -> Binding<'static> {
        Binding {
            client: "fw1",
            user: "alice",
            resource_id: 3,
        }
    }

    #[test]
    fn a_state_opens_for_its_own_client_user_and_resource_until_it_expires() {
        let (_dir, keys) = keys();
        let state = seal(&keys, &alice(), "tx-1", NOW + 300).expect("sealed");
        assert!(state.len() <= MAX_ATTRIBUTE_VALUE_LEN, "{}", state.len());
        assert_eq!(open(&keys, &alice(), &state, NOW), Ok("tx-1".to_string()));
        assert_eq!(
            open(&keys, &alice(), &state, NOW + 300),
            Err(Unusable::Expired)
        );
        for other in [
            Binding {
                client: "fw2",
                ..alice()
            },
            Binding {
                user: "bob",
                ..alice()
            },
            Binding {
                user: "Alice",
                ..alice()
            },
            Binding {
                resource_id: 4,
                ..alice()
            },
        ] {
            assert_eq!(
                open(&keys, &other, &state, NOW),
                Err(Unusable::Foreign),
                "{other:?}"
            );
        }
    }

    #[test]
    fn a_state_altered_made_up_or_sealed_for_another_purpose_does_not_open() {
        let (_dir, keys) = keys();
        let state = seal(&keys, &alice(), "tx-1", NOW + 300).expect("sealed");
        let mut altered = state.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        let other_purpose = keys
            .seal(Purpose::Message, &state[1..])
            .expect("sealed otherwise");
        let (_other_dir, other_keys) = self::keys();
        let another_servers = seal(&other_keys, &alice(), "tx-1", NOW + 300).expect("sealed");
        for forged in [
            altered,
            other_purpose,
            another_servers,
            b"tx-1".to_vec(),
            Vec::new(),
        ] {
            assert_eq!(open(&keys, &alice(), &forged, NOW), Err(Unusable::Invalid));
        }
    }

    fn expected(
        kind: TokenKind,
        destination: Option<&str>,
        delivery: Option<Delivery>,
    ) -> Expected {
        Expected {
            token: TokenRef {
                id: 1,
                serial: "S".into(),
                kind,
            },
            destination: destination.map(str::to_string),
            delivery,
        }
    }

    #[test]
    fn the_challenge_names_where_each_code_went_or_which_device_shows_it() {
        let mail = expected(
            TokenKind::Mail,
            Some("j***@example.com"),
            Some(Delivery::Queued),
        );
        assert_eq!(
            prompt(std::slice::from_ref(&mail)).as_deref(),
            Some("Enter the code sent to j***@example.com.")
        );
        let sms = expected(
            TokenKind::Sms,
            Some("+49********678"),
            Some(Delivery::Cooldown),
        );
        let bot = expected(TokenKind::Bot, Some("Telegram"), Some(Delivery::Queued));
        let totp = expected(TokenKind::Totp, None, None);
        let hotp = expected(TokenKind::Hotp, None, None);
        assert_eq!(
            prompt(std::slice::from_ref(&totp)).as_deref(),
            Some("Enter the code from your authenticator app.")
        );
        assert_eq!(
            prompt(std::slice::from_ref(&hotp)).as_deref(),
            Some("Enter the code from your hardware token.")
        );
        assert_eq!(
            prompt(&[mail.clone(), sms, bot, totp.clone(), totp.clone()]).as_deref(),
            Some(
                "Enter the code sent to j***@example.com, the code sent to +49********678, \
                 the code sent by Telegram, or the code from your authenticator app."
            )
        );
        let capped = expected(
            TokenKind::Mail,
            Some("j***@example.com"),
            Some(Delivery::Capped),
        );
        let unconfigured = expected(
            TokenKind::Bot,
            Some("Telegram"),
            Some(Delivery::NotConfigured),
        );
        assert_eq!(
            prompt(&[capped.clone(), totp]).as_deref(),
            Some("Enter the code from your authenticator app.")
        );
        assert_eq!(prompt(&[capped, unconfigured]), None);
        assert_eq!(prompt(&[]), None);
    }

    #[test]
    fn a_long_reply_message_is_cut_between_characters_into_several() {
        assert_eq!(
            reply_messages("Enter it."),
            vec![Attribute::new(REPLY_MESSAGE, b"Enter it.".to_vec())]
        );
        let long = "é".repeat(200);
        let parts = reply_messages(&long);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|part| part.value.len() <= 253));
        let joined: Vec<u8> = parts.into_iter().flat_map(|part| part.value).collect();
        assert_eq!(String::from_utf8(joined).expect("whole characters"), long);
        assert!(reply_messages("").is_empty());
    }
}
