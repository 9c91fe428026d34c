//! Notices of account changes: when a user's email address, phone number or password changes,
//! or a token is added to or removed from the account, a short email goes to the address the
//! user had before, so that the owner of a hijacked account notices. A notice travels with the
//! audit line of the change (`AuditEntry::notice`), so the store queues it in the outbox in the
//! same transaction as the change: a crash loses neither. The panel and the API ask here which
//! of their changes tells the user what (`of_user_update`, `of_token_*`); the portal names its
//! own `Change`.

use crate::crypto::{CryptoError, Keys, Purpose};
use crate::domain::{IdOrName, RuleError, TokenKind, TokenState};
use crate::store::tokens::TokenCreation;
use crate::store::users::UserChanges;
use crate::store::{Message, Store, Token, UnixTime, User};

/// Where an administrator's changes are made, as a notice names it.
pub const PANEL: &str = "the administration panel";
/// Where an integrator's changes are made, as a notice names it.
pub const API: &str = "the API";

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

/// The changes of a user's record that tell the user: their email address, phone number or
/// password. A new value equal to the old one tells nothing; nor do the login, the names or
/// enabling.
pub fn of_user_changes(before: &User, changes: &UserChanges) -> Vec<Change<'static>> {
    let mut told = Vec::new();
    if changes
        .email
        .as_ref()
        .is_some_and(|email| *email != before.email)
    {
        told.push(Change::Email);
    }
    if changes
        .phone
        .as_ref()
        .is_some_and(|phone| *phone != before.phone)
    {
        told.push(Change::Phone);
    }
    if changes.password_hash.is_some() {
        told.push(Change::Password);
    }
    told
}

/// The notice to `user` (as they are before the change) of `changes` to their record made at
/// `place` (`PANEL`, `API`); None when nothing in them tells or the user has no email address.
pub fn of_user_update(
    keys: &Keys,
    user: &User,
    changes: &UserChanges,
    place: &str,
    now: UnixTime,
) -> Result<Option<Message>, CryptoError> {
    notice_of(
        keys,
        &account(user, place),
        &of_user_changes(user, changes),
        now,
    )
}

/// The notice to `user` that `token` was added to their account at `place`.
pub fn of_token_added(
    keys: &Keys,
    user: &User,
    token: &Token,
    place: &str,
    now: UnixTime,
) -> Result<Option<Message>, CryptoError> {
    let change = Change::TokenAdded {
        name: &token.name,
        kind: token.kind.as_str(),
    };
    notice(keys, &account(user, place), change, now)
}

/// The notice to `user` that `token` was taken from their account (unassigned or deleted) at
/// `place`.
pub fn of_token_removed(
    keys: &Keys,
    user: &User,
    token: &Token,
    place: &str,
    now: UnixTime,
) -> Result<Option<Message>, CryptoError> {
    let change = Change::TokenRemoved {
        name: &token.name,
        kind: token.kind.as_str(),
    };
    notice(keys, &account(user, place), change, now)
}

/// The notice of `changes` to the user `key` as they are now, before the changes: for the
/// front ends that name a user without reading it first. None for no such user.
pub async fn of_user_update_at(
    store: &Store,
    keys: &Keys,
    key: &IdOrName,
    changes: &UserChanges,
    place: &str,
    now: UnixTime,
) -> Result<Option<Message>, RuleError> {
    match store.find_user(key.clone()).await? {
        Some(user) => Ok(of_user_update(keys, &user, changes, place, now).map_err(failed)?),
        None => Ok(None),
    }
}

/// The notice to the user `user` that the token `token` is given to them at `place`. None
/// for no such token or user: the change is refused then anyway.
pub async fn of_token_given(
    store: &Store,
    keys: &Keys,
    token: &IdOrName,
    user: &IdOrName,
    place: &str,
    now: UnixTime,
) -> Result<Option<Message>, RuleError> {
    let (Some(token), Some(user)) = (
        store.find_token(token.clone()).await?,
        store.find_user(user.clone()).await?,
    ) else {
        return Ok(None);
    };
    of_token_added(keys, &user, &token, place, now).map_err(failed)
}

/// The notice to the user a token is made for, if it names one, that it was added to their
/// account at `place`; none for an authenticator app's token that waits for its first code
/// (its confirmation tells, `of_token_owned`).
pub async fn of_token_created(
    store: &Store,
    keys: &Keys,
    creation: &TokenCreation,
    place: &str,
    now: UnixTime,
) -> Result<Option<Message>, RuleError> {
    let token = &creation.token;
    let waits_for_first_code = token.state == TokenState::Pending
        && matches!(token.kind, TokenKind::Totp | TokenKind::Hotp);
    let Some(user) = &creation.user else {
        return Ok(None);
    };
    if waits_for_first_code {
        return Ok(None);
    }
    let Some(user) = store.find_user(user.clone()).await? else {
        return Ok(None);
    };
    let change = Change::TokenAdded {
        name: &token.name,
        kind: token.kind.as_str(),
    };
    notice(keys, &account(&user, place), change, now).map_err(failed)
}

/// The notice to the user of the token `token`, if it has one, that it was added to their
/// account at `place` (a pending token confirmed by its first code).
pub async fn of_token_owned(
    store: &Store,
    keys: &Keys,
    token: &IdOrName,
    place: &str,
    now: UnixTime,
) -> Result<Option<Message>, RuleError> {
    let Some((token, user)) = token_and_user(store, token).await? else {
        return Ok(None);
    };
    of_token_added(keys, &user, &token, place, now).map_err(failed)
}

/// The notice to the user of the token `token`, if it has one, that it is taken from their
/// account (unassigned or deleted) at `place`.
pub async fn of_token_taken(
    store: &Store,
    keys: &Keys,
    token: &IdOrName,
    place: &str,
    now: UnixTime,
) -> Result<Option<Message>, RuleError> {
    let Some((token, user)) = token_and_user(store, token).await? else {
        return Ok(None);
    };
    of_token_removed(keys, &user, &token, place, now).map_err(failed)
}

async fn token_and_user(store: &Store, key: &IdOrName) -> Result<Option<(Token, User)>, RuleError> {
    let Some(token) = store.find_token(key.clone()).await? else {
        return Ok(None);
    };
    let Some(user_id) = token.user_id else {
        return Ok(None);
    };
    Ok(store
        .find_user(IdOrName::Id(user_id))
        .await?
        .map(|user| (token, user)))
}

fn failed(error: CryptoError) -> RuleError {
    RuleError::Failed(error.into())
}

fn account<'a>(user: &'a User, place: &'a str) -> Account<'a> {
    Account {
        login: &user.login,
        email: user.email.as_deref(),
        place,
    }
}

/// The notice of `change` to the account's email address (before the change), sealed for the
/// outbox; None when the account has no email address.
pub fn notice(
    keys: &Keys,
    account: &Account<'_>,
    change: Change<'_>,
    now: UnixTime,
) -> Result<Option<Message>, CryptoError> {
    notice_of(keys, account, &[change], now)
}

/// One notice of every change in `changes`; None when there is none or the account has no
/// email address.
fn notice_of(
    keys: &Keys,
    account: &Account<'_>,
    changes: &[Change<'_>],
    now: UnixTime,
) -> Result<Option<Message>, CryptoError> {
    let Some(email) = account.email.filter(|email| !email.trim().is_empty()) else {
        return Ok(None);
    };
    if changes.is_empty() {
        return Ok(None);
    }
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
        what = capitalised(
            &changes
                .iter()
                .map(Change::sentence)
                .collect::<Vec<_>>()
                .join(",\n")
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> User {
        User {
            id: 1,
            login: "ann".into(),
            first_name: String::new(),
            last_name: String::new(),
            email: Some("ann@example.com".into()),
            phone: Some("+442079460958".into()),
            password_hash: None,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn only_the_email_phone_and_password_of_a_user_tell_and_only_when_they_change() {
        let same = UserChanges {
            email: Some(Some("ann@example.com".into())),
            phone: Some(Some("+442079460958".into())),
            login: Some("ann.smith".into()),
            enabled: Some(false),
            ..UserChanges::default()
        };
        assert!(of_user_changes(&ann(), &same).is_empty());
        let changed = UserChanges {
            email: Some(None),
            phone: Some(Some("+442079460000".into())),
            password_hash: Some(None),
            ..UserChanges::default()
        };
        let told: Vec<String> = of_user_changes(&ann(), &changed)
            .iter()
            .map(Change::sentence)
            .collect();
        assert_eq!(
            told,
            [
                "the email address of your account was changed",
                "the phone number of your account was changed",
                "the password of your account was set or changed",
            ]
        );
    }
}
