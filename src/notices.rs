//! Notices of account changes: when a user's email address, phone number or password changes,
//! or a token is added to or removed from the account, a short email goes to the address the
//! user had before, so that the owner of a hijacked account notices. A notice travels with the
//! audit line of the change (`AuditEntry::notice`), so the store queues it in the outbox in the
//! same transaction as the change: a crash loses neither.

use crate::crypto::{CryptoError, Keys, Purpose};
use crate::store::Message;
use crate::store::UnixTime;

/// How long a notice may wait in the outbox (a mail server down for hours) before it is
/// dropped as stale.
const VALIDITY_SECONDS: i64 = 3 * 86_400;

/// What changed.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Email,
    Phone,
    Password,
    TokenAdded { name: &'a str, kind: &'a str },
    TokenRemoved { name: &'a str, kind: &'a str },
}

impl Change<'_> {
    fn sentence(&self) -> String {
        let token = |name: &str, kind: &str| {
            if name.is_empty() {
                format!("a {kind} token")
            } else {
                format!("the {kind} token \"{name}\"")
            }
        };
        match self {
            Change::Email => "the email address of your account was changed".into(),
            Change::Phone => "the phone number of your account was changed".into(),
            Change::Password => "the password of your account was set or changed".into(),
            Change::TokenAdded { name, kind } => {
                format!("{} was added to your account", token(name, kind))
            }
            Change::TokenRemoved { name, kind } => {
                format!("{} was removed from your account", token(name, kind))
            }
        }
    }
}

/// Who is told, and where the change was made.
pub struct Account<'a> {
    pub login: &'a str,
    /// The email address before the change; without one, nobody can be told.
    pub email: Option<&'a str>,
    /// Where the change was made: `the self-service page of vpn`.
    pub place: &'a str,
}

/// The notice of `change` to the account's email address (before the change), sealed for the
/// outbox; None when the account has no email address.
pub fn notice(
    keys: &Keys,
    account: &Account<'_>,
    change: Change<'_>,
    now: UnixTime,
) -> Result<Option<Message>, CryptoError> {
    let Some(email) = account.email.filter(|email| !email.trim().is_empty()) else {
        return Ok(None);
    };
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    let when = time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default();
    // Short plain lines, so that mail clients show them as they are.
    let body = format!(
        "Hello {login},\n\n{what}\non {place},\nat {when} UTC.\n\n\
         If you did this yourself, there is nothing to do. If you did\n\
         not, someone else may be using your account: tell your\n\
         administrator at once.\n",
        login = account.login,
        what = capitalised(&change.sentence()),
        place = account.place,
    );
    Ok(Some(Message {
        channel: "mail",
        recipient: email.to_string(),
        subject: "A change to your account".to_string(),
        sealed_body: keys.seal(Purpose::Message, body.as_bytes())?,
        expires_at: now + VALIDITY_SECONDS,
    }))
}

fn capitalised(sentence: &str) -> String {
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
