//! Directories (Active Directory, FreeIPA, OpenLDAP) and the users linked to their entries.
//! The service account's password arrives sealed and leaves sealed; the store never sees it in
//! clear. The fields are checked by `ldap::settings` before they come here.

use rusqlite::{Connection, params};

use super::{AuditEntry, Result, Store, UnixTime, audit, optional};
use crate::domain::IdOrName;

/// A directory's settings, as checked by `ldap::settings`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryFields {
    pub name: String,
    /// `active_directory` or `openldap`.
    pub kind: String,
    /// In failover order.
    pub urls: Vec<String>,
    /// `starttls`, `ldaps` or `none`.
    pub tls: String,
    /// None: the system's roots.
    pub ca_pem: Option<String>,
    pub bind_dn: String,
    pub base_dn: String,
    pub user_filter: String,
    pub login_attributes: Vec<String>,
    pub id_attribute: String,
    /// Empty: not taken from the directory.
    pub first_name_attribute: String,
    pub last_name_attribute: String,
    pub email_attribute: String,
    pub mobile_attribute: String,
    /// A group's DN or a filter; None: everyone the user filter finds.
    pub user_group: Option<String>,
    pub connect_timeout_seconds: i64,
    pub search_timeout_seconds: i64,
    pub sync_interval_minutes: i64,
}

/// A directory as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub id: i64,
    pub fields: DirectoryFields,
    pub bind_password_sealed: Vec<u8>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// What became of a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Done,
    NotFound,
    /// So many users come from the directory: they are deleted or unlinked first.
    HasUsers(i64),
}

/// A user's link to a directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryLink {
    pub directory: Directory,
    /// The entry's stable id (objectGUID as text, entryUUID).
    pub uid: String,
}

/// What became of linking a person to a new otpgate user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    /// The new user's id.
    Created(i64),
    /// The entry is linked to this user already.
    Already(i64),
    /// A local user (or one of another directory) has the login.
    LoginTaken,
}

const SELECT: &str = "SELECT id, name, kind, urls, tls, ca_pem, bind_dn, bind_password_sealed,
                             base_dn, user_filter, login_attributes, id_attribute,
                             first_name_attribute, last_name_attribute, email_attribute,
                             mobile_attribute, user_group, connect_timeout_seconds,
                             search_timeout_seconds, sync_interval_minutes, created_at, updated_at
                      FROM directories";

fn lines(text: String) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Directory> {
    Ok(Directory {
        id: row.get(0)?,
        fields: DirectoryFields {
            name: row.get(1)?,
            kind: row.get(2)?,
            urls: lines(row.get(3)?),
            tls: row.get(4)?,
            ca_pem: row.get(5)?,
            bind_dn: row.get(6)?,
            base_dn: row.get(8)?,
            user_filter: row.get(9)?,
            login_attributes: lines(row.get(10)?),
            id_attribute: row.get(11)?,
            first_name_attribute: row.get(12)?,
            last_name_attribute: row.get(13)?,
            email_attribute: row.get(14)?,
            mobile_attribute: row.get(15)?,
            user_group: row.get(16)?,
            connect_timeout_seconds: row.get(17)?,
            search_timeout_seconds: row.get(18)?,
            sync_interval_minutes: row.get(19)?,
        },
        bind_password_sealed: row.get(7)?,
        created_at: row.get(20)?,
        updated_at: row.get(21)?,
    })
}

fn find(conn: &Connection, key: &IdOrName) -> Result<Option<Directory>> {
    match key {
        IdOrName::Id(id) => by_id(conn, *id),
        IdOrName::Name(name) => optional(
            conn.prepare_cached(&format!("{SELECT} WHERE name = ?1"))?
                .query_row(params![name.trim()], from_row),
        ),
    }
}

/// The directory `key` names (for the sync's statements).
pub(super) fn find_directory(conn: &Connection, key: &IdOrName) -> Result<Option<Directory>> {
    find(conn, key)
}

fn by_id(conn: &Connection, id: i64) -> Result<Option<Directory>> {
    optional(
        conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
            .query_row(params![id], from_row),
    )
}

/// Writes every field of `directory` (by its id).
fn write_fields(
    conn: &Connection,
    id: i64,
    fields: &DirectoryFields,
    sealed: &[u8],
    now: UnixTime,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE directories SET name = ?2, kind = ?3, urls = ?4, tls = ?5, ca_pem = ?6,
             bind_dn = ?7, bind_password_sealed = ?8, base_dn = ?9, user_filter = ?10,
             login_attributes = ?11, id_attribute = ?12, first_name_attribute = ?13,
             last_name_attribute = ?14, email_attribute = ?15, mobile_attribute = ?16,
             user_group = ?17, connect_timeout_seconds = ?18, search_timeout_seconds = ?19,
             sync_interval_minutes = ?20, updated_at = ?21
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        fields.name,
        fields.kind,
        fields.urls.join("\n"),
        fields.tls,
        fields.ca_pem,
        fields.bind_dn,
        sealed,
        fields.base_dn,
        fields.user_filter,
        fields.login_attributes.join("\n"),
        fields.id_attribute,
        fields.first_name_attribute,
        fields.last_name_attribute,
        fields.email_attribute,
        fields.mobile_attribute,
        fields.user_group,
        fields.connect_timeout_seconds,
        fields.search_timeout_seconds,
        fields.sync_interval_minutes,
        now
    ])?;
    Ok(())
}

impl Store {
    /// Every directory, by name.
    pub async fn directories(&self) -> Result<Vec<Directory>> {
        self.read(|conn| {
            let directories = conn
                .prepare_cached(&format!("{SELECT} ORDER BY name"))?
                .query_map([], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(directories)
        })
        .await
    }

    /// How many users come from each directory that has any, by the directory's id.
    pub async fn directory_user_counts(&self) -> Result<std::collections::HashMap<i64, i64>> {
        self.read(|conn| {
            let counts = conn
                .prepare_cached(
                    "SELECT directory_id, count(*) FROM users
                     WHERE directory_id IS NOT NULL GROUP BY directory_id",
                )?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(counts)
        })
        .await
    }

    pub async fn directory(&self, key: IdOrName) -> Result<Option<Directory>> {
        self.read(move |conn| find(conn, &key)).await
    }

    /// Creates a directory; a taken name is a unique violation.
    pub async fn create_directory(
        &self,
        fields: DirectoryFields,
        bind_password_sealed: Vec<u8>,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<Directory> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO directories (name, kind, urls, tls, bind_dn, bind_password_sealed,
                     base_dn, user_filter, login_attributes, id_attribute,
                     connect_timeout_seconds, search_timeout_seconds, sync_interval_minutes,
                     created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
            )?
            .execute(params![
                fields.name,
                fields.kind,
                fields.urls.join("\n"),
                fields.tls,
                fields.bind_dn,
                bind_password_sealed,
                fields.base_dn,
                fields.user_filter,
                fields.login_attributes.join("\n"),
                fields.id_attribute,
                fields.connect_timeout_seconds,
                fields.search_timeout_seconds,
                fields.sync_interval_minutes,
                now
            ])?;
            let id = conn.last_insert_rowid();
            // The optional fields, written the one way an update writes them.
            write_fields(conn, id, &fields, &bind_password_sealed, now)?;
            audit::insert(
                conn,
                &audit.detail(format!("{} ({})", fields.name, fields.urls.join(" "))),
            )?;
            by_id(conn, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows.into())
        })
        .await
    }

    /// Saves `fields` (and a new sealed password, when given) over directory `id`; `changed`
    /// names the fields for the audit line. None when there is no such directory.
    pub async fn update_directory(
        &self,
        id: i64,
        fields: DirectoryFields,
        bind_password_sealed: Option<Vec<u8>>,
        changed: Vec<&'static str>,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<Option<Directory>> {
        self.write(move |conn| {
            let Some(directory) = by_id(conn, id)? else {
                return Ok(None);
            };
            if changed.is_empty() {
                return Ok(Some(directory));
            }
            let sealed = bind_password_sealed.unwrap_or(directory.bind_password_sealed);
            write_fields(conn, id, &fields, &sealed, now)?;
            audit::insert(
                conn,
                &audit.detail(format!("{}: {}", fields.name, changed.join(", "))),
            )?;
            by_id(conn, id)
        })
        .await
    }

    /// Deletes a directory that no user comes from.
    pub async fn delete_directory(&self, key: IdOrName, audit: AuditEntry) -> Result<Deleted> {
        self.write(move |conn| {
            let Some(directory) = find(conn, &key)? else {
                return Ok(Deleted::NotFound);
            };
            let users: i64 = conn
                .prepare_cached("SELECT count(*) FROM users WHERE directory_id = ?1")?
                .query_row(params![directory.id], |row| row.get(0))?;
            if users > 0 {
                return Ok(Deleted::HasUsers(users));
            }
            conn.prepare_cached("DELETE FROM directories WHERE id = ?1")?
                .execute(params![directory.id])?;
            audit::insert(conn, &audit.detail(directory.fields.name))?;
            Ok(Deleted::Done)
        })
        .await
    }

    /// The directory entry user `user_id` comes from, if any.
    pub async fn directory_link(&self, user_id: i64) -> Result<Option<DirectoryLink>> {
        self.read(move |conn| {
            let link: Option<(i64, String)> = optional(
                conn.prepare_cached(
                    "SELECT directory_id, directory_uid FROM users
                     WHERE id = ?1 AND directory_id IS NOT NULL AND directory_uid IS NOT NULL",
                )?
                .query_row(params![user_id], |row| Ok((row.get(0)?, row.get(1)?))),
            )?;
            let Some((directory_id, uid)) = link else {
                return Ok(None);
            };
            Ok(by_id(conn, directory_id)?.map(|directory| DirectoryLink { directory, uid }))
        })
        .await
    }

    /// The name of the directory each of `user_ids` comes from, for those that come from one
    /// (a page of a list: one read, a point lookup each).
    pub async fn directory_names_of(&self, user_ids: Vec<i64>) -> Result<Vec<(i64, String)>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT d.name FROM users u JOIN directories d ON d.id = u.directory_id
                 WHERE u.id = ?1",
            )?;
            let mut names = Vec::new();
            for id in user_ids {
                if let Some(name) =
                    optional(statement.query_row(params![id], |row| row.get::<_, String>(0)))?
                {
                    names.push((id, name));
                }
            }
            Ok(names)
        })
        .await
    }

    /// Creates an otpgate user for a directory entry (found by the caller), linked by the
    /// entry's stable id, with the audit line of the creation.
    pub async fn link_directory_user(
        &self,
        directory_id: i64,
        uid: String,
        user: super::NewUser,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<Linked> {
        self.write(move |conn| {
            let linked: Option<i64> = optional(
                conn.prepare_cached(
                    "SELECT id FROM users WHERE directory_id = ?1 AND directory_uid = ?2",
                )?
                .query_row(params![directory_id, uid], |row| row.get(0)),
            )?;
            if let Some(id) = linked {
                return Ok(Linked::Already(id));
            }
            let taken: Option<i64> = optional(
                conn.prepare_cached("SELECT id FROM users WHERE login_key = ?1")?
                    .query_row(params![crate::domain::login_key(&user.login)], |row| {
                        row.get(0)
                    }),
            )?;
            if taken.is_some() {
                return Ok(Linked::LoginTaken);
            }
            conn.prepare_cached(
                "INSERT INTO users (login, login_key, first_name, last_name, email, phone,
                     password_hash, directory_id, directory_uid, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?9)",
            )?
            .execute(params![
                user.login,
                crate::domain::login_key(&user.login),
                user.first_name,
                user.last_name,
                user.email,
                user.phone,
                directory_id,
                uid,
                now
            ])?;
            let id = conn.last_insert_rowid();
            audit::insert(
                conn,
                &AuditEntry {
                    user_id: Some(id),
                    ..audit
                }
                .detail(user.login),
            )?;
            Ok(Linked::Created(id))
        })
        .await
    }
}
