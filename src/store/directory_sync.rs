//! The sync of a directory: the users linked to its entries as they are here, a batch of
//! changes written in one writer job (creations, updates, disables, enables, each with its
//! audit line), the group → resource mappings and the assignments they made, and the last
//! sync's result.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, params};

use super::{AuditEntry, NewUser, Result, Store, UnixTime, audit, optional};
use crate::domain::{IdOrName, login_key};

/// A user linked to an entry of the directory, as otpgate holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedUser {
    pub id: i64,
    /// The entry's stable id.
    pub uid: String,
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub enabled: bool,
    /// Disabled by a sync (not by an administrator): a sync enables them again.
    pub disabled_by_sync: bool,
}

/// A linked user's values as the directory has them now.
#[derive(Debug, Clone)]
pub struct UserUpdate {
    pub id: i64,
    /// Their login before, for the audit line and a conflict's words.
    pub old_login: String,
    pub user: NewUser,
    /// What changed, for the audit line (`login`, `first_name`, …).
    pub changed: Vec<&'static str>,
}

/// A person for the audit line: their user and login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: i64,
    pub login: String,
}

/// One batch of a sync's changes, written in one writer job.
#[derive(Debug, Clone, Default)]
pub struct SyncBatch {
    /// New users: the entry's stable id, its DN (for a conflict's words) and the user.
    pub creates: Vec<(String, String, NewUser)>,
    pub updates: Vec<UserUpdate>,
    /// Gone from the directory or out of its group.
    pub disables: Vec<UserRef>,
    /// Back in the directory after a sync disabled them.
    pub enables: Vec<UserRef>,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub created: usize,
    pub updated: usize,
    pub disabled: usize,
    pub enabled: usize,
    /// Each refused login with why, in words.
    pub conflicts: Vec<String>,
}

/// A group → resource mapping of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMapping {
    pub id: i64,
    pub directory_id: i64,
    /// A group's DN or a filter.
    pub group: String,
    pub resource_id: i64,
    pub resource_name: String,
    pub created_at: UnixTime,
    /// How many assignments it holds now.
    pub assigned: i64,
}

/// What became of adding a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingAdded {
    Added(GroupMapping),
    NoSuchDirectory,
    NoSuchResource,
    /// The directory maps this group to this resource already.
    Exists,
}

/// What became of removing a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingRemoved {
    /// Removed, with so many assignments it had made (and no other mapping holds) taken away.
    Removed(usize),
    NotFound,
}

/// The last sync of a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResult {
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds.
    pub finished_at: i64,
    pub ok: bool,
    /// Why it failed, in words; null when it worked.
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The people the directory's settings found.
    pub people: i64,
    pub created: i64,
    pub updated: i64,
    pub disabled: i64,
    pub enabled: i64,
    /// Logins a local user (or another directory's) has already: not linked.
    pub conflicts: i64,
    /// Entries without a stable id or with a login otpgate cannot take.
    pub skipped: i64,
    /// Assignments the group → resource mappings made and took away.
    pub assigned: i64,
    pub unassigned: i64,
    /// Unix seconds of the last sync that worked (this one or an earlier one).
    pub last_success_at: Option<i64>,
}

/// A directory's name and the result of its last sync, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySyncState {
    pub directory_id: i64,
    pub name: String,
    pub sync_interval_minutes: i64,
    pub created_at: UnixTime,
    pub last: Option<SyncResult>,
    /// The users linked to its entries, and how many of them are enabled.
    pub users: i64,
    pub enabled_users: i64,
}

const SYNC_COLUMNS: &str = "started_at, finished_at, ok, error, duration_ms, people, created,
                            updated, disabled, enabled, conflicts, skipped, assigned, unassigned,
                            last_success_at";

fn sync_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<SyncResult> {
    Ok(SyncResult {
        started_at: row.get(at)?,
        finished_at: row.get(at + 1)?,
        ok: row.get(at + 2)?,
        error: row.get(at + 3)?,
        duration_ms: row.get(at + 4)?,
        people: row.get(at + 5)?,
        created: row.get(at + 6)?,
        updated: row.get(at + 7)?,
        disabled: row.get(at + 8)?,
        enabled: row.get(at + 9)?,
        conflicts: row.get(at + 10)?,
        skipped: row.get(at + 11)?,
        assigned: row.get(at + 12)?,
        unassigned: row.get(at + 13)?,
        last_success_at: row.get(at + 14)?,
    })
}

fn last_sync(conn: &Connection, directory_id: i64) -> Result<Option<SyncResult>> {
    optional(
        conn.prepare_cached(&format!(
            "SELECT {SYNC_COLUMNS} FROM directory_syncs WHERE directory_id = ?1"
        ))?
        .query_row(params![directory_id], |row| sync_from_row(row, 0)),
    )
}

/// The id of the user who has `login` (regardless of case and form), other than `except`.
fn login_holder(conn: &Connection, login: &str, except: i64) -> Result<Option<i64>> {
    optional(
        conn.prepare_cached("SELECT id FROM users WHERE login_key = ?1 AND id <> ?2")?
            .query_row(params![login_key(login), except], |row| row.get(0)),
    )
}

fn entry(audit: &AuditEntry, action: &str, result: &str, user_id: Option<i64>) -> AuditEntry {
    AuditEntry {
        action: action.to_string(),
        result: result.to_string(),
        user_id,
        ..audit.clone()
    }
}

fn conflict_words(login: &str, dn: &str) -> String {
    format!(
        "{dn}: the login {login:?} belongs to a user who is not linked to this entry; \
         not linked (rename or remove one of them)"
    )
}

fn write_batch(
    conn: &Connection,
    directory_id: i64,
    batch: SyncBatch,
    audit: &AuditEntry,
    now: UnixTime,
) -> Result<BatchOutcome> {
    let mut outcome = BatchOutcome::default();
    for (uid, dn, user) in batch.creates {
        // Linked meanwhile (a person added by hand while the sync read the directory).
        let linked: Option<i64> = optional(
            conn.prepare_cached(
                "SELECT id FROM users WHERE directory_id = ?1 AND directory_uid = ?2",
            )?
            .query_row(params![directory_id, uid], |row| row.get(0)),
        )?;
        if linked.is_some() {
            continue;
        }
        if login_holder(conn, &user.login, 0)?.is_some() {
            let words = conflict_words(&user.login, &dn);
            audit::insert(
                conn,
                &entry(audit, "directory.sync.conflict", "refused", None).detail(words.clone()),
            )?;
            outcome.conflicts.push(words);
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO users (login, login_key, first_name, last_name, email, phone,
                 password_hash, directory_id, directory_uid, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?9)",
        )?
        .execute(params![
            user.login,
            login_key(&user.login),
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
            &entry(audit, "directory.sync.create", "ok", Some(id)).detail(user.login),
        )?;
        outcome.created += 1;
    }
    for update in batch.updates {
        let user = &update.user;
        if update.changed.contains(&"login")
            && login_holder(conn, &user.login, update.id)?.is_some()
        {
            let words = format!(
                "{}: renamed to {:?} in the directory, a login another user has; kept as it was",
                update.old_login, user.login
            );
            audit::insert(
                conn,
                &entry(audit, "directory.sync.conflict", "refused", Some(update.id))
                    .detail(words.clone()),
            )?;
            outcome.conflicts.push(words);
            continue;
        }
        let changed = conn
            .prepare_cached(
                "UPDATE users SET login = ?2, login_key = ?3, first_name = ?4, last_name = ?5,
                     email = ?6, phone = ?7, updated_at = ?8
                 WHERE id = ?1 AND directory_id = ?9",
            )?
            .execute(params![
                update.id,
                user.login,
                login_key(&user.login),
                user.first_name,
                user.last_name,
                user.email,
                user.phone,
                now,
                directory_id
            ])?;
        // Deleted meanwhile by an administrator: nothing to say.
        if changed == 0 {
            continue;
        }
        let detail = if update.changed.contains(&"login") {
            format!(
                "{} renamed to {}: {}",
                update.old_login,
                user.login,
                update.changed.join(", ")
            )
        } else {
            format!("{}: {}", user.login, update.changed.join(", "))
        };
        audit::insert(
            conn,
            &entry(audit, "directory.sync.update", "ok", Some(update.id)).detail(detail),
        )?;
        outcome.updated += 1;
    }
    for user in batch.disables {
        let changed = conn
            .prepare_cached(
                "UPDATE users SET enabled = 0, directory_disabled = 1, updated_at = ?2
                 WHERE id = ?1 AND directory_id = ?3 AND enabled = 1",
            )?
            .execute(params![user.id, now, directory_id])?;
        if changed == 1 {
            audit::insert(
                conn,
                &entry(audit, "directory.sync.disable", "ok", Some(user.id)).detail(format!(
                    "{}: no longer among the people of the directory",
                    user.login
                )),
            )?;
            outcome.disabled += 1;
        }
    }
    for user in batch.enables {
        let changed = conn
            .prepare_cached(
                "UPDATE users SET enabled = 1, directory_disabled = 0, updated_at = ?2
                 WHERE id = ?1 AND directory_id = ?3 AND enabled = 0 AND directory_disabled = 1",
            )?
            .execute(params![user.id, now, directory_id])?;
        if changed == 1 {
            audit::insert(
                conn,
                &entry(audit, "directory.sync.enable", "ok", Some(user.id)).detail(format!(
                    "{}: back among the people of the directory",
                    user.login
                )),
            )?;
            outcome.enabled += 1;
        }
    }
    Ok(outcome)
}

/// Takes user `user_id` from resource `resource_id` with their tokens, as Unassign does.
fn unassign(conn: &Connection, resource_id: i64, user_id: i64) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM token_resources WHERE resource_id = ?1
           AND token_id IN (SELECT id FROM tokens WHERE user_id = ?2)",
    )?
    .execute(params![resource_id, user_id])?;
    conn.prepare_cached("DELETE FROM user_resources WHERE resource_id = ?1 AND user_id = ?2")?
        .execute(params![resource_id, user_id])?;
    Ok(())
}

/// Whether another mapping than `group_id` holds the assignment of `user_id` to `resource_id`.
/// The resource of mapping `group_id` (its id and name); None when the mapping is gone.
fn mapped_resource(conn: &Connection, group_id: i64) -> Result<Option<(i64, String)>> {
    optional(
        conn.prepare_cached(
            "SELECT g.resource_id, r.name FROM directory_groups g
             JOIN resources r ON r.id = g.resource_id WHERE g.id = ?1",
        )?
        .query_row(params![group_id], |row| Ok((row.get(0)?, row.get(1)?))),
    )
}

/// Assigns `user_id` to the resource of mapping `group_id` as the mapping's doing, audited;
/// false when an assignment was there already (another mapping's is shared, an
/// administrator's stays theirs).
fn assign_member(
    conn: &Connection,
    group_id: i64,
    (resource_id, resource_name): (i64, &str),
    user_id: i64,
    audit: &AuditEntry,
) -> Result<bool> {
    let exists: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM user_resources WHERE resource_id = ?1 AND user_id = ?2)",
        )?
        .query_row(params![resource_id, user_id], |row| row.get(0))?;
    if exists {
        if held_elsewhere(conn, group_id, resource_id, user_id)? {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO directory_group_assignments
                     (group_id, resource_id, user_id) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![group_id, resource_id, user_id])?;
        }
        return Ok(false);
    }
    super::directory::assign_user_to_resource(conn, resource_id, user_id)?;
    conn.prepare_cached(
        "INSERT INTO directory_group_assignments (group_id, resource_id, user_id)
         VALUES (?1, ?2, ?3)",
    )?
    .execute(params![group_id, resource_id, user_id])?;
    let login = login_of(conn, user_id)?;
    audit::insert(
        conn,
        &AuditEntry {
            resource_id: Some(resource_id),
            ..entry(audit, "directory.sync.assign", "ok", Some(user_id))
        }
        .detail(format!("{login} -> {resource_name}")),
    )?;
    Ok(true)
}

fn held_elsewhere(
    conn: &Connection,
    group_id: i64,
    resource_id: i64,
    user_id: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM directory_group_assignments
                            WHERE resource_id = ?1 AND user_id = ?2 AND group_id <> ?3)",
        )?
        .query_row(params![resource_id, user_id, group_id], |row| row.get(0))?)
}

fn login_of(conn: &Connection, user_id: i64) -> Result<String> {
    Ok(conn
        .prepare_cached("SELECT login FROM users WHERE id = ?1")?
        .query_row(params![user_id], |row| row.get(0))?)
}

const MAPPING_SELECT: &str = "SELECT g.id, g.directory_id, g.member_group, g.resource_id, r.name,
            g.created_at,
            (SELECT count(*) FROM directory_group_assignments a WHERE a.group_id = g.id)
     FROM directory_groups g JOIN resources r ON r.id = g.resource_id";

fn mapping_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<GroupMapping> {
    Ok(GroupMapping {
        id: row.get(0)?,
        directory_id: row.get(1)?,
        group: row.get(2)?,
        resource_id: row.get(3)?,
        resource_name: row.get(4)?,
        created_at: row.get(5)?,
        assigned: row.get(6)?,
    })
}

impl Store {
    /// Every user linked to an entry of directory `directory_id`.
    pub async fn directory_users(&self, directory_id: i64) -> Result<Vec<LinkedUser>> {
        self.read(move |conn| {
            let users = conn
                .prepare_cached(
                    "SELECT id, directory_uid, login, first_name, last_name, email, phone,
                            enabled, directory_disabled
                     FROM users WHERE directory_id = ?1 AND directory_uid IS NOT NULL",
                )?
                .query_map(params![directory_id], |row| {
                    Ok(LinkedUser {
                        id: row.get(0)?,
                        uid: row.get(1)?,
                        login: row.get(2)?,
                        first_name: row.get(3)?,
                        last_name: row.get(4)?,
                        email: row.get(5)?,
                        phone: row.get(6)?,
                        enabled: row.get(7)?,
                        disabled_by_sync: row.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(users)
        })
        .await
    }

    /// Writes one batch of a sync in one writer job: a login another user has is not taken
    /// (a conflict, with its audit line); every change has its audit line.
    pub async fn write_sync_batch(
        &self,
        directory_id: i64,
        batch: SyncBatch,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<BatchOutcome> {
        self.write(move |conn| write_batch(conn, directory_id, batch, &audit, now))
            .await
    }

    /// Keeps mapping `group_id` in step: `members` (user ids) are assigned to its resource,
    /// the assignments it made for anyone else are taken away. An assignment it did not make
    /// is never taken away; one that exists already is left as it is (and stays the
    /// administrator's). Answers how many were assigned and taken away.
    pub async fn keep_mapping_in_step(
        &self,
        group_id: i64,
        members: Vec<i64>,
        audit: AuditEntry,
    ) -> Result<(usize, usize)> {
        self.write(move |conn| {
            let Some((resource_id, resource_name)) = mapped_resource(conn, group_id)? else {
                return Ok((0, 0));
            };
            let made: HashSet<i64> = conn
                .prepare_cached(
                    "SELECT user_id FROM directory_group_assignments WHERE group_id = ?1",
                )?
                .query_map(params![group_id], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let members: HashSet<i64> = members.into_iter().collect();
            let mut assigned = 0;
            let mut unassigned = 0;
            for &user_id in members.difference(&made) {
                if assign_member(
                    conn,
                    group_id,
                    (resource_id, &resource_name),
                    user_id,
                    &audit,
                )? {
                    assigned += 1;
                }
            }
            for &user_id in made.difference(&members) {
                conn.prepare_cached(
                    "DELETE FROM directory_group_assignments WHERE group_id = ?1 AND user_id = ?2",
                )?
                .execute(params![group_id, user_id])?;
                if held_elsewhere(conn, group_id, resource_id, user_id)? {
                    continue;
                }
                unassign(conn, resource_id, user_id)?;
                let login = login_of(conn, user_id)?;
                audit::insert(
                    conn,
                    &AuditEntry {
                        resource_id: Some(resource_id),
                        ..entry(&audit, "directory.sync.unassign", "ok", Some(user_id))
                    }
                    .detail(format!("{login} -/> {resource_name}")),
                )?;
                unassigned += 1;
            }
            Ok((assigned, unassigned))
        })
        .await
    }

    /// Assigns one user (a person linked at their first login) to the resources of the
    /// mappings `group_ids` whose groups they are in, as those mappings' doing, so that the
    /// next sync keeps them in step. Answers how many were assigned.
    pub async fn assign_to_mappings(
        &self,
        user_id: i64,
        group_ids: Vec<i64>,
        audit: AuditEntry,
    ) -> Result<usize> {
        self.write(move |conn| {
            let mut assigned = 0;
            for group_id in group_ids {
                let Some((resource_id, resource_name)) = mapped_resource(conn, group_id)? else {
                    continue;
                };
                if assign_member(
                    conn,
                    group_id,
                    (resource_id, &resource_name),
                    user_id,
                    &audit,
                )? {
                    assigned += 1;
                }
            }
            Ok(assigned)
        })
        .await
    }

    /// The group → resource mappings of directory `directory_id`.
    pub async fn group_mappings(&self, directory_id: i64) -> Result<Vec<GroupMapping>> {
        self.read(move |conn| {
            let mappings = conn
                .prepare_cached(&format!(
                    "{MAPPING_SELECT} WHERE g.directory_id = ?1 ORDER BY g.id"
                ))?
                .query_map(params![directory_id], mapping_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(mappings)
        })
        .await
    }

    /// Maps `group` of directory `directory` to `resource`.
    pub async fn add_group_mapping(
        &self,
        directory: IdOrName,
        group: String,
        resource: IdOrName,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<MappingAdded> {
        self.write(move |conn| {
            let Some(found) = super::directories::find_directory(conn, &directory)? else {
                return Ok(MappingAdded::NoSuchDirectory);
            };
            let Some(resource) = super::directory::find_resource(conn, &resource)? else {
                return Ok(MappingAdded::NoSuchResource);
            };
            let exists: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM directory_groups
                     WHERE directory_id = ?1 AND member_group = ?2 AND resource_id = ?3)",
                )?
                .query_row(params![found.id, group, resource.id], |row| row.get(0))?;
            if exists {
                return Ok(MappingAdded::Exists);
            }
            conn.prepare_cached(
                "INSERT INTO directory_groups (directory_id, member_group, resource_id, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![found.id, group, resource.id, now])?;
            let id = conn.last_insert_rowid();
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(resource.id),
                    ..audit
                }
                .detail(format!(
                    "{}: {group} -> {}",
                    found.fields.name, resource.name
                )),
            )?;
            let mapping = conn
                .prepare_cached(&format!("{MAPPING_SELECT} WHERE g.id = ?1"))?
                .query_row(params![id], mapping_from_row)?;
            Ok(MappingAdded::Added(mapping))
        })
        .await
    }

    /// Removes mapping `mapping_id` of directory `directory`, and the assignments it made
    /// that no other mapping holds (an administrator's stay).
    pub async fn remove_group_mapping(
        &self,
        directory: IdOrName,
        mapping_id: i64,
        audit: AuditEntry,
    ) -> Result<MappingRemoved> {
        self.write(move |conn| {
            let Some(found) = super::directories::find_directory(conn, &directory)? else {
                return Ok(MappingRemoved::NotFound);
            };
            let mapping: Option<GroupMapping> = optional(
                conn.prepare_cached(&format!(
                    "{MAPPING_SELECT} WHERE g.id = ?1 AND g.directory_id = ?2"
                ))?
                .query_row(params![mapping_id, found.id], mapping_from_row),
            )?;
            let Some(mapping) = mapping else {
                return Ok(MappingRemoved::NotFound);
            };
            let made: Vec<i64> = conn
                .prepare_cached(
                    "SELECT user_id FROM directory_group_assignments WHERE group_id = ?1",
                )?
                .query_map(params![mapping.id], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut taken = 0;
            for user_id in made {
                if !held_elsewhere(conn, mapping.id, mapping.resource_id, user_id)? {
                    unassign(conn, mapping.resource_id, user_id)?;
                    taken += 1;
                }
            }
            conn.prepare_cached("DELETE FROM directory_groups WHERE id = ?1")?
                .execute(params![mapping.id])?;
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(mapping.resource_id),
                    ..audit
                }
                .detail(format!(
                    "{}: {} -> {} ({taken} assignments it made taken away)",
                    found.fields.name, mapping.group, mapping.resource_name
                )),
            )?;
            Ok(MappingRemoved::Removed(taken))
        })
        .await
    }

    /// Records a sync's result (and its summary audit line) as directory `directory_id`'s
    /// last; a failed sync keeps the time of the last one that worked.
    pub async fn record_sync(
        &self,
        directory_id: i64,
        result: SyncResult,
        audit: AuditEntry,
    ) -> Result<SyncResult> {
        self.write(move |conn| {
            let previous = last_sync(conn, directory_id)?.and_then(|last| last.last_success_at);
            let last_success_at = if result.ok {
                Some(result.finished_at)
            } else {
                previous
            };
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO directory_syncs (directory_id, {SYNC_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?
            .execute(params![
                directory_id,
                result.started_at,
                result.finished_at,
                result.ok,
                result.error,
                result.duration_ms,
                result.people,
                result.created,
                result.updated,
                result.disabled,
                result.enabled,
                result.conflicts,
                result.skipped,
                result.assigned,
                result.unassigned,
                last_success_at
            ])?;
            audit::insert(conn, &audit)?;
            Ok(SyncResult {
                last_success_at,
                ..result
            })
        })
        .await
    }

    /// The last sync of directory `directory_id`, if it had one.
    pub async fn last_sync(&self, directory_id: i64) -> Result<Option<SyncResult>> {
        self.read(move |conn| last_sync(conn, directory_id)).await
    }

    /// Every directory with its last sync and its users, by name (the dashboard, `/metrics`,
    /// the scheduler).
    pub async fn directory_sync_states(&self) -> Result<Vec<DirectorySyncState>> {
        self.read(|conn| {
            let mut counts: HashMap<i64, (i64, i64)> = HashMap::new();
            let mut statement = conn.prepare_cached(
                "SELECT directory_id, count(*), total(enabled) FROM users
                 WHERE directory_id IS NOT NULL GROUP BY directory_id",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, f64>(2)?,
                ))
            })?;
            for row in rows {
                let (id, users, enabled) = row?;
                counts.insert(id, (users, enabled as i64));
            }
            let states = conn
                .prepare_cached(&format!(
                    "SELECT d.id, d.name, d.sync_interval_minutes, d.created_at, s.directory_id,
                            {}
                     FROM directories d LEFT JOIN directory_syncs s ON s.directory_id = d.id
                     ORDER BY d.name",
                    SYNC_COLUMNS
                        .split(',')
                        .map(|column| format!("s.{}", column.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?
                .query_map([], |row| {
                    let synced: Option<i64> = row.get(4)?;
                    Ok(DirectorySyncState {
                        directory_id: row.get(0)?,
                        name: row.get(1)?,
                        sync_interval_minutes: row.get(2)?,
                        created_at: row.get(3)?,
                        last: synced.map(|_| sync_from_row(row, 5)).transpose()?,
                        users: 0,
                        enabled_users: 0,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(states
                .into_iter()
                .map(|mut state| {
                    let (users, enabled) =
                        counts.get(&state.directory_id).copied().unwrap_or_default();
                    state.users = users;
                    state.enabled_users = enabled;
                    state
                })
                .collect())
        })
        .await
    }
}
