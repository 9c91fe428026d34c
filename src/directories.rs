//! Managing directories, for the API and the panel alike: a directory's settings as an
//! administrator sends them (`DirectoryInput`), laid over a preset or the stored settings and
//! checked by `ldap::settings` in one set of words; the service account's password sealed
//! (write-only); test connection and preview on settings not yet saved (each on a connection
//! of its own, outside the pools), their outcome audited; a person of the directory made an
//! otpgate user, linked by their stable id; a user's password checked where it lives
//! (`check_password`), for every front end that takes one; and what a directory keeps of its
//! users (login, name, email, phone, password) refused in otpgate in one set of words
//! (`refuse_directory_changes`, `refuse_local_password`, from `from_directory` and
//! `password_kept`). The portal asks `keeper` (the directory a user comes from) and says the
//! same words instead of offering its forms. A directory's trouble, or its own refusals
//! (locked, expired), are no failed login here.

pub mod lookup;
mod misses;

pub use lookup::Service;

pub mod sync;

use serde::Deserialize;

use crate::crypto::{Keys, Purpose};
use crate::domain::{FieldError, IdOrName, Refused, RuleError};
use crate::ldap::settings::{self, Kind};
use crate::ldap::{Attempt, Directory, DirectoryError, Person};
use crate::store::directories::{Deleted, Directory as Stored, DirectoryFields, Linked};
use crate::store::{AuditEntry, Store, UnixTime};

/// A directory's settings as sent: an absent field is the preset's (creating) or stays as it
/// is (changing); an empty `ca_pem` means the system's roots, an empty `user_group` no group.
// No `Debug`: it carries the service account's password.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectoryInput {
    /// 1–100 characters, not a number; unique regardless of case.
    #[serde(default)]
    pub name: Option<String>,
    /// `active_directory` (Active Directory, Samba AD) or `openldap` (FreeIPA, OpenLDAP):
    /// the preset of the fields not sent. Required to create.
    #[serde(default)]
    pub kind: Option<String>,
    /// 1–5 server addresses in failover order: `ldap://host[:port]` (tls `starttls` or
    /// `none`) or `ldaps://host[:port]` (tls `ldaps`).
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    /// `starttls` (the preset), `ldaps` or `none`.
    #[serde(default)]
    pub tls: Option<String>,
    /// The CA certificate(s) in PEM that signed the servers' certificates; empty: the
    /// system's roots.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The service account otpgate searches with.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// The service account's password (write-only, never shown). Required to create.
    #[serde(default)]
    pub bind_password: Option<String>,
    /// Where people are searched (subtree).
    #[serde(default)]
    pub base_dn: Option<String>,
    /// An RFC 4515 filter that finds people.
    #[serde(default)]
    pub user_filter: Option<String>,
    /// 1–5 attributes a login may match (AD: `sAMAccountName`, `userPrincipalName`; others:
    /// `uid`).
    #[serde(default)]
    pub login_attributes: Option<Vec<String>>,
    /// The attribute that never changes (`objectGUID`, `entryUUID`).
    #[serde(default)]
    pub id_attribute: Option<String>,
    /// Empty: not read from the directory.
    #[serde(default)]
    pub first_name_attribute: Option<String>,
    #[serde(default)]
    pub last_name_attribute: Option<String>,
    #[serde(default)]
    pub email_attribute: Option<String>,
    #[serde(default)]
    pub mobile_attribute: Option<String>,
    /// A group's DN (AD: members of nested groups too) or a filter in parentheses; empty:
    /// everyone the user filter finds.
    #[serde(default)]
    pub user_group: Option<String>,
    /// 1–60, 5 when not sent.
    #[serde(default)]
    pub connect_timeout_seconds: Option<i64>,
    /// 1–300, 30 when not sent.
    #[serde(default)]
    pub search_timeout_seconds: Option<i64>,
    /// 1–1440, 15 when not sent.
    #[serde(default)]
    pub sync_interval_minutes: Option<i64>,
}

impl DirectoryInput {
    /// `base` with every field sent laid over it, and the names of the fields sent.
    fn over(self, base: DirectoryFields) -> (DirectoryFields, Vec<&'static str>) {
        let mut fields = base;
        let mut changed = Vec::new();
        macro_rules! take {
            ($name:ident) => {
                if let Some(value) = self.$name {
                    fields.$name = value;
                    changed.push(stringify!($name));
                }
            };
        }
        take!(name);
        take!(kind);
        take!(urls);
        take!(tls);
        take!(bind_dn);
        take!(base_dn);
        take!(user_filter);
        take!(login_attributes);
        take!(id_attribute);
        take!(first_name_attribute);
        take!(last_name_attribute);
        take!(email_attribute);
        take!(mobile_attribute);
        take!(connect_timeout_seconds);
        take!(search_timeout_seconds);
        take!(sync_interval_minutes);
        if let Some(pem) = self.ca_pem {
            fields.ca_pem = (!pem.trim().is_empty()).then_some(pem);
            changed.push("ca_pem");
        }
        if let Some(group) = self.user_group {
            fields.user_group = (!group.trim().is_empty()).then_some(group);
            changed.push("user_group");
        }
        if self.bind_password.is_some() {
            changed.push("bind_password");
        }
        (fields, changed)
    }

    /// The preset of the kind sent, or a refusal naming `kind`.
    fn preset(&self) -> Result<DirectoryFields, FieldError> {
        let kind = self.kind.as_deref().ok_or_else(|| {
            FieldError::new(
                "kind",
                format!("is required: one of {}", Kind::NAMES.join(", ")),
            )
        })?;
        Ok(settings::preset(Kind::parse(kind)?))
    }

    fn password(&self) -> Result<Option<String>, FieldError> {
        match &self.bind_password {
            None => Ok(None),
            Some(password) => {
                settings::check_bind_password(password)?;
                Ok(Some(password.clone()))
            }
        }
    }
}

fn sealed(keys: &Keys, password: &str) -> Result<Vec<u8>, RuleError> {
    Ok(keys.seal(Purpose::Credential, password.as_bytes())?)
}

fn unsealed(keys: &Keys, directory: &Stored) -> Result<String, RuleError> {
    let password = keys.open(Purpose::Credential, &directory.bind_password_sealed)?;
    String::from_utf8(password).map_err(|_| {
        RuleError::Failed(anyhow::anyhow!(
            "the sealed password of directory {} is no text",
            directory.id
        ))
    })
}

fn name_taken(name: &str) -> impl FnOnce(crate::store::StoreError) -> RuleError + '_ {
    move |error| {
        if error.is_unique_violation() {
            Refused::Conflict(format!("a directory named {name:?} exists already")).into()
        } else {
            error.into()
        }
    }
}

async fn stored(store: &Store, key: IdOrName) -> Result<Stored, RuleError> {
    store
        .directory(key)
        .await?
        .ok_or(RuleError::Refused(Refused::NotFound("directory")))
}

/// Creates a directory from its preset and the fields sent.
pub async fn create(
    store: &Store,
    keys: &Keys,
    input: DirectoryInput,
    audit: AuditEntry,
    now: UnixTime,
) -> Result<Stored, RuleError> {
    let base = input.preset()?;
    let password = input.password()?.ok_or_else(|| {
        FieldError::new(
            "bind_password",
            "is required: the service account's password",
        )
    })?;
    let (fields, _) = input.over(base);
    let fields = settings::check(fields)?;
    let name = fields.name.clone();
    store
        .create_directory(fields, sealed(keys, &password)?, audit, now)
        .await
        .map_err(name_taken(&name))
}

/// Changes the fields sent of a directory; a new `bind_password` replaces the old one.
pub async fn update(
    store: &Store,
    keys: &Keys,
    key: IdOrName,
    input: DirectoryInput,
    audit: AuditEntry,
    now: UnixTime,
) -> Result<Stored, RuleError> {
    let directory = stored(store, key).await?;
    let password = input.password()?;
    let (fields, changed) = input.over(directory.fields.clone());
    let fields = settings::check(fields)?;
    let name = fields.name.clone();
    let sealed = password
        .map(|password| sealed(keys, &password))
        .transpose()?;
    store
        .update_directory(directory.id, fields, sealed, changed, audit, now)
        .await
        .map_err(name_taken(&name))?
        .ok_or(RuleError::Refused(Refused::NotFound("directory")))
}

/// Deletes a directory no user comes from.
pub async fn delete(store: &Store, key: IdOrName, audit: AuditEntry) -> Result<(), RuleError> {
    match store.delete_directory(key, audit).await? {
        Deleted::Done => Ok(()),
        Deleted::NotFound => Err(Refused::NotFound("directory").into()),
        Deleted::HasUsers(users) => Err(Refused::Conflict(format!(
            "{} from this directory; delete them first",
            crate::domain::words::count(users as u64, "user comes", "users come")
        ))
        .into()),
    }
}

/// A client for settings not saved: a preset with the fields sent (kind and password
/// required).
pub fn unsaved(input: DirectoryInput) -> Result<Directory, RuleError> {
    let base = input.preset()?;
    let password = input.password()?.ok_or_else(|| {
        FieldError::new(
            "bind_password",
            "is required: the service account's password",
        )
    })?;
    let (mut fields, _) = input.over(base);
    // Settings not saved need no name of their own.
    if fields.name.trim().is_empty() {
        fields.name = "test".into();
    }
    Ok(Directory::new(settings::check(fields)?, password))
}

/// A client for a saved directory's settings with the fields sent laid over them, as an
/// administrator is changing them: a password sent replaces the saved one, none keeps it.
pub async fn edited(
    store: &Store,
    keys: &Keys,
    key: IdOrName,
    input: DirectoryInput,
) -> Result<Directory, RuleError> {
    let directory = stored(store, key).await?;
    let password = match input.password()? {
        Some(password) => password,
        None => unsealed(keys, &directory)?,
    };
    let (fields, _) = input.over(directory.fields);
    Ok(Directory::new(settings::check(fields)?, password))
}

/// The most people a preview shows (it counts them all).
pub const PREVIEW_LIMIT: usize = 20;

/// What Test connection or Preview found, in words a person reads. A directory's trouble is
/// an answer here, not an error: the administrator is asking whether the settings work.
#[derive(Debug, Clone)]
pub struct Checked {
    pub ok: bool,
    /// The address that answered (or whose search failed).
    pub url: Option<String>,
    pub message: String,
    /// The addresses that did not answer (or failed), in order, with their reasons.
    pub attempts: Vec<Attempt>,
}

impl Checked {
    fn failed(error: &DirectoryError) -> Checked {
        let (url, attempts) = match error {
            DirectoryError::Unreachable(attempts) => (None, attempts.clone()),
            DirectoryError::Search { url, reason } => (
                Some(url.clone()),
                vec![Attempt {
                    url: url.clone(),
                    problem: reason.clone(),
                }],
            ),
            DirectoryError::Busy => (None, Vec::new()),
        };
        Checked {
            ok: false,
            url,
            message: error.to_string(),
            attempts,
        }
    }

    /// `audit` with this outcome as its result and its words as the detail.
    fn audited(&self, mut audit: AuditEntry) -> AuditEntry {
        audit.result = if self.ok { "ok" } else { "failed" }.to_string();
        audit.detail(self.message.clone())
    }
}

/// What a preview found: how many people the settings find (every page read) and the first
/// of them.
#[derive(Debug, Clone)]
pub struct Previewed {
    pub checked: Checked,
    pub count: usize,
    pub people: Vec<Person>,
}

/// Test connection: the service account binds at the first address that answers and the base
/// DN is read; audited (`directory.test`) with what was found.
pub async fn test(
    store: &Store,
    directory: &Directory,
    audit: AuditEntry,
) -> Result<Checked, RuleError> {
    let checked = match directory.test().await {
        Ok(tested) => Checked {
            ok: true,
            message: format!(
                "bound as the service account at {} and read the base DN",
                tested.url
            ),
            url: Some(tested.url),
            attempts: tested.skipped,
        },
        Err(error) => Checked::failed(&error),
    };
    store.audit(checked.audited(audit)).await?;
    Ok(checked)
}

/// Preview: how many people the settings find and the first `PREVIEW_LIMIT`; audited
/// (`directory.preview`) with what was found.
pub async fn preview(
    store: &Store,
    directory: &Directory,
    audit: AuditEntry,
) -> Result<Previewed, RuleError> {
    let previewed = match directory.preview(PREVIEW_LIMIT).await {
        Ok(preview) => Previewed {
            checked: Checked {
                ok: true,
                message: format!(
                    "{} found",
                    crate::domain::words::count(preview.count as u64, "person", "people")
                ),
                url: Some(preview.url),
                attempts: Vec::new(),
            },
            count: preview.count,
            people: preview.people,
        },
        Err(error) => Previewed {
            checked: Checked::failed(&error),
            count: 0,
            people: Vec::new(),
        },
    };
    store.audit(previewed.checked.audited(audit)).await?;
    Ok(previewed)
}

/// A client for a saved directory.
pub async fn saved(store: &Store, keys: &Keys, key: IdOrName) -> Result<Directory, RuleError> {
    let directory = stored(store, key).await?;
    let password = unsealed(keys, &directory)?;
    Ok(Directory::new(directory.fields, password))
}

/// A client for the directory a linked user comes from.
pub fn for_link(keys: &Keys, directory: &Stored) -> Result<Directory, RuleError> {
    Ok(Directory::new(
        directory.fields.clone(),
        unsealed(keys, directory)?,
    ))
}

/// Why a person could not become an otpgate user.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// Makes the person whose login is `login` in directory `key` an otpgate user, linked to their
/// entry by its stable id; a person linked already is answered with their user.
pub async fn add_person(
    store: &Store,
    keys: &Keys,
    key: IdOrName,
    login: &str,
    audit: AuditEntry,
    now: UnixTime,
) -> Result<(i64, bool), LinkError> {
    let stored_directory = stored(store, key).await?;
    let directory = for_link(keys, &stored_directory)?;
    let login = login.trim();
    if login.is_empty() {
        return Err(RuleError::from(FieldError::new("login", "is required")).into());
    }
    let Some(person) = directory.find_person(login).await? else {
        return Err(RuleError::from(Refused::NotFound("person in the directory")).into());
    };
    let (Some(uid), Some(person_login)) = (person.stable_id.clone(), person.login.clone()) else {
        return Err(RuleError::from(Refused::Invalid(format!(
            "the entry {} has no {} or no login attribute",
            person.dn, stored_directory.fields.id_attribute
        )))
        .into());
    };
    let user = new_user(&person, &person_login)?;
    match store
        .link_directory_user(stored_directory.id, uid, user, audit, now)
        .await
        .map_err(RuleError::from)?
    {
        Linked::Created(id) => Ok((id, true)),
        Linked::Already(id) => Ok((id, false)),
        Linked::LoginTaken => Err(RuleError::from(Refused::Conflict(format!(
            "a user with the login {person_login:?} exists already in otpgate"
        )))
        .into()),
    }
}

/// The otpgate user a person becomes: the directory's values that fit otpgate's rules, the
/// others left empty (a directory holds what it holds).
fn new_user(person: &Person, login: &str) -> Result<crate::store::NewUser, RuleError> {
    let login = crate::domain::Login::parse(login)
        .map_err(|invalid| Refused::Invalid(format!("the login {login:?} {}", invalid.0)))?;
    let name = |value: &Option<String>| {
        value
            .as_deref()
            .map(|text| text.chars().take(crate::domain::MAX_NAME).collect())
            .unwrap_or_default()
    };
    Ok(crate::store::NewUser {
        login: login.into_string(),
        first_name: name(&person.first_name),
        last_name: name(&person.last_name),
        email: person
            .email
            .as_deref()
            .and_then(|email| crate::domain::Email::parse(email).ok())
            .map(crate::domain::Email::into_string),
        phone: person
            .mobile
            .as_deref()
            .and_then(|phone| crate::domain::Phone::parse(phone).ok())
            .map(crate::domain::Phone::into_string),
        password_hash: None,
    })
}

/// The name of the directory a user comes from, or None for a local user: it keeps their
/// login, name, email, phone and password, which otpgate shows but does not change.
pub async fn keeper(store: &Store, user_id: i64) -> Result<Option<String>, RuleError> {
    Ok(store
        .directory_link(user_id)
        .await?
        .map(|link| link.directory.fields.name))
}

/// The refusal of a change of `field` of a user whom the directory `directory` keeps, in the
/// words every front end shows.
pub fn from_directory(field: &'static str, directory: &str) -> FieldError {
    FieldError::new(
        field,
        format!("comes from the directory \"{directory}\": change it there"),
    )
}

/// Refuses a change of what a directory user's record takes from the directory: the login
/// (the sync renames them), the first and last name, the email and the phone. A value sent as
/// it is changes nothing and passes; every other change (enabled, the password's own rule,
/// tokens, assignments) is no business of this rule. The same words in the API, the panel
/// and the portal; an unknown user is no refusal here (the change answers it).
pub async fn refuse_directory_changes(
    store: &Store,
    user: IdOrName,
    changes: &crate::store::users::UserChanges,
) -> Result<(), RuleError> {
    let Some(user) = store.find_user(user).await? else {
        return Ok(());
    };
    let Some(directory) = keeper(store, user.id).await? else {
        return Ok(());
    };
    let differs = |new: Option<&str>, old: &str| new.is_some_and(|new| new != old);
    let field = if differs(changes.login.as_deref(), &user.login) {
        "login"
    } else if differs(changes.first_name.as_deref(), &user.first_name) {
        "first_name"
    } else if differs(changes.last_name.as_deref(), &user.last_name) {
        "last_name"
    } else if changes
        .email
        .as_ref()
        .is_some_and(|email| *email != user.email)
    {
        "email"
    } else if changes
        .phone
        .as_ref()
        .is_some_and(|phone| *phone != user.phone)
    {
        "phone"
    } else {
        return Ok(());
    };
    Err(Refused::Field(from_directory(field, &directory)).into())
}

/// Refuses a password set in otpgate for a user whose password the directory keeps: it would
/// never be checked, and whoever set it would believe it was. The same words in the API, the
/// panel and the portal; an unknown user is no refusal here (the change answers it).
pub async fn refuse_local_password(store: &Store, user: IdOrName) -> Result<(), RuleError> {
    let Some(user) = store.find_user(user).await? else {
        return Ok(());
    };
    match store.directory_link(user.id).await? {
        Some(link) => Err(Refused::Field(password_kept(&link.directory.fields.name)).into()),
        None => Ok(()),
    }
}

/// The refusal of a password set in otpgate for a user whom the directory `directory` keeps.
pub fn password_kept(directory: &str) -> FieldError {
    FieldError::new(
        "password",
        format!("kept in the directory \"{directory}\": change it there"),
    )
}

/// Checks a user's password where it lives: a directory user's by a bind as them (never
/// against a hash, even one set here), a local user's against their hash through the password
/// gate. Err is the audit log's reason; reasons that begin with `directory_` are the
/// directory's say or its trouble, and no failed login here.
pub async fn check_password(
    store: &Store,
    keys: &Keys,
    service: &Service,
    passwords: &crate::passwords::PasswordGate,
    user: &crate::store::User,
    password: &str,
) -> Result<Result<(), &'static str>, RuleError> {
    // The read costs little beside an Argon2 check.
    if let Some(link) = store.directory_link(user.id).await? {
        return check_in_directory(keys, service, &link, password).await;
    }
    let right = passwords
        .verify(password.to_string(), user.password_hash.clone())
        .await?;
    Ok(if right { Ok(()) } else { Err("bad_password") })
}

/// A directory user's password, checked by a bind as them. An empty password is refused
/// before any bind: the directory would take it as an anonymous bind and say yes (RFC 4513
/// §5.1.2). A directory that does not answer is no wrong password.
async fn check_in_directory(
    keys: &Keys,
    service: &Service,
    link: &crate::store::directories::DirectoryLink,
    password: &str,
) -> Result<Result<(), &'static str>, RuleError> {
    use crate::ldap::PasswordCheck;
    if password.is_empty() {
        return Ok(Err("empty_password"));
    }
    let directory = service.client(keys, &link.directory)?;
    service.searched(&link.directory.fields.name, "password");
    Ok(match directory.check_password(&link.uid, password).await {
        Ok(PasswordCheck::Accepted) => Ok(()),
        Ok(PasswordCheck::Refused(refusal)) => Err(refusal.reason()),
        Ok(PasswordCheck::NotInDirectory) => Err("directory_user_gone"),
        Err(error) => {
            tracing::warn!(
                directory = %link.directory.fields.name,
                %error,
                "a directory user's password could not be checked"
            );
            Err("directory_unavailable")
        }
    })
}
