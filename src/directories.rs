//! Managing directories, for the API and the panel alike: a directory's settings as an
//! administrator sends them (`DirectoryInput`), laid over a preset or the stored settings and
//! checked by `ldap::settings` in one set of words; the service account's password sealed
//! (write-only); test connection and preview on settings not yet saved; and a person of the
//! directory made an otpgate user, linked by their stable id; and a user's password checked
//! where it lives (`check_password`), for every front end that takes one.

pub mod sync;

use serde::Deserialize;

use crate::crypto::{Keys, Purpose};
use crate::domain::{FieldError, IdOrName, Refused, RuleError};
use crate::ldap::settings::{self, Kind};
use crate::ldap::{Directory, DirectoryError, Person};
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

/// Refuses a password set in otpgate for a user whose password the directory keeps: it would
/// never be checked, and whoever set it would believe it was. The same words in the API, the
/// panel and the portal; an unknown user is no refusal here (the change answers it).
pub async fn refuse_local_password(store: &Store, user: IdOrName) -> Result<(), RuleError> {
    let Some(user) = store.find_user(user).await? else {
        return Ok(());
    };
    match store.directory_link(user.id).await? {
        Some(link) => Err(Refused::Field(FieldError::new(
            "password",
            format!(
                "kept in the directory \"{}\": change it there",
                link.directory.fields.name
            ),
        ))
        .into()),
        None => Ok(()),
    }
}

/// Checks a user's password where it lives: a directory user's by a bind as them (never
/// against a hash, even one set here), a local user's against their hash through the password
/// gate. Err is the audit log's reason; reasons that begin with `directory_` are the
/// directory's say or its trouble, and no failed login here.
pub async fn check_password(
    store: &Store,
    keys: &Keys,
    passwords: &crate::passwords::PasswordGate,
    user: &crate::store::User,
    password: &str,
) -> Result<Result<(), &'static str>, RuleError> {
    // The read costs little beside an Argon2 check.
    if let Some(link) = store.directory_link(user.id).await? {
        return check_in_directory(keys, &link, password).await;
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
    link: &crate::store::directories::DirectoryLink,
    password: &str,
) -> Result<Result<(), &'static str>, RuleError> {
    use crate::ldap::PasswordCheck;
    if password.is_empty() {
        return Ok(Err("empty_password"));
    }
    let directory = for_link(keys, &link.directory)?;
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
