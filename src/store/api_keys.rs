//! API keys: stored as the SHA-256 of their secret part, found by their public prefix.
//!
//! Every change of a key moves `api_key_generation` (triggers of the schema, so the console
//! and a resource deleted with its keys move it too). The server's key cache reads it once per
//! request, on connections of its own (`key_watches`), and forgets every cached key when it
//! moved: a revocation counts from the next request, wherever it was made.

use rusqlite::{Connection, params};

use super::{AuditEntry, Result, Store, StoreError, UnixTime, optional};
use crate::domain::{IdOrName, KeyScope};

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub key_hash: Vec<u8>,
    pub scope: KeyScope,
    pub resource_name: Option<String>,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let scope: String = row.get(4)?;
    let resource_id: Option<i64> = row.get(5)?;
    Ok(ApiKeyRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        key_hash: row.get(3)?,
        scope: match (scope.as_str(), resource_id) {
            ("resource", Some(id)) => KeyScope::Resource(id),
            _ => KeyScope::Admin,
        },
        resource_name: row.get(6)?,
        created_at: row.get(7)?,
        revoked_at: row.get(8)?,
    })
}

const SELECT: &str = "SELECT k.id, k.name, k.prefix, k.key_hash, k.scope, k.resource_id, r.name, k.created_at, k.revoked_at
                      FROM api_keys k LEFT JOIN resources r ON r.id = k.resource_id";

pub fn by_prefix(conn: &Connection, prefix: &str) -> Result<Option<ApiKeyRecord>> {
    optional(
        conn.prepare_cached(&format!("{SELECT} WHERE k.prefix = ?1"))?
            .query_row(params![prefix], from_row),
    )
}

/// How many connections the key check has: more than the executor threads, so that each
/// finds one free (taken with `try_lock`); when none is, the check goes to a reader thread.
pub(super) const KEY_WATCHES: usize = 4;

/// The generation of the API keys: it moves with every change of any key.
fn generation(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT generation FROM api_key_generation WHERE id = 1")?
        .query_row([], |row| row.get(0))?)
}

/// Inserts a key (for `resource_id`, or an admin key) with its audit line; its id.
fn insert(
    conn: &Connection,
    name: &str,
    prefix: &str,
    key_hash: &[u8],
    resource_id: Option<i64>,
    entry: AuditEntry,
    now: UnixTime,
) -> Result<i64> {
    let scope = if resource_id.is_some() {
        "resource"
    } else {
        "admin"
    };
    conn.prepare_cached(
        "INSERT INTO api_keys (name, prefix, key_hash, scope, resource_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![name, prefix, key_hash, scope, resource_id, now])?;
    let id = conn.last_insert_rowid();
    super::audit::insert(
        conn,
        &AuditEntry {
            api_key_id: Some(id),
            resource_id,
            ..entry
        }
        .detail(name),
    )?;
    Ok(id)
}

impl Store {
    /// The generation of the API keys, read on the caller's thread from a connection of the
    /// key check's own: one row of one page, without waiting for any other thread.
    pub async fn api_key_generation(&self) -> Result<i64> {
        if let Some(found) = self.watched_generation() {
            return found;
        }
        self.read(generation).await
    }

    fn watched_generation(&self) -> Option<Result<i64>> {
        let watches = self.inner.key_watches.read().ok()?;
        let count = watches.len();
        let start = self
            .inner
            .next_key_watch
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (0..count).find_map(|offset| {
            let conn = watches[(start + offset) % count].try_lock().ok()?;
            Some(generation(&conn))
        })
    }

    /// Creates a key for the resource `resource` (None: an admin key), audited with `entry`;
    /// None when there is no such resource.
    pub async fn create_api_key(
        &self,
        name: String,
        prefix: String,
        key_hash: Vec<u8>,
        resource: Option<IdOrName>,
        entry: AuditEntry,
        now: UnixTime,
    ) -> Result<Option<ApiKeyRecord>> {
        self.write(move |conn| {
            let resource_id = match &resource {
                None => None,
                Some(resource) => match super::directory::find_resource(conn, resource)? {
                    Some(found) => Some(found.id),
                    None => return Ok(None),
                },
            };
            let id = insert(conn, &name, &prefix, &key_hash, resource_id, entry, now)?;
            optional(
                conn.prepare_cached(&format!("{SELECT} WHERE k.id = ?1"))?
                    .query_row(params![id], from_row),
            )
        })
        .await
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.read(|conn| {
            let keys = conn
                .prepare_cached(&format!("{SELECT} ORDER BY k.id"))?
                .query_map([], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(keys)
        })
        .await
    }

    /// Revokes the key `key_id` (admin or resource key); false when there is no such live key.
    pub async fn revoke_api_key(
        &self,
        key_id: i64,
        entry: AuditEntry,
        now: UnixTime,
    ) -> Result<bool> {
        self.write(move |conn| {
            let resource_id: Option<Option<i64>> = optional(
                conn.prepare_cached(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL
                     RETURNING resource_id",
                )?
                .query_row(params![key_id, now], |row| row.get(0)),
            )?;
            let Some(resource_id) = resource_id else {
                return Ok(false);
            };
            super::audit::insert(
                conn,
                &AuditEntry {
                    api_key_id: Some(key_id),
                    resource_id,
                    ..entry
                },
            )?;
            Ok(true)
        })
        .await
    }

    pub async fn api_key_by_prefix(&self, prefix: String) -> Result<Option<ApiKeyRecord>> {
        self.read(move |conn| by_prefix(conn, &prefix)).await
    }

    /// Creates a key for the resource `resource` (None: an admin key).
    pub fn create_api_key_blocking(
        &self,
        name: String,
        prefix: String,
        key_hash: Vec<u8>,
        resource: Option<IdOrName>,
        now: UnixTime,
    ) -> Result<i64> {
        self.write_blocking(move |conn| {
            let resource_id = match &resource {
                None => None,
                Some(resource) => Some(
                    super::directory::find_resource(conn, resource)?
                        .ok_or_else(|| StoreError::Conflict(format!("no resource {resource}")))?
                        .id,
                ),
            };
            insert(
                conn,
                &name,
                &prefix,
                &key_hash,
                resource_id,
                AuditEntry::new(now, "console", "apikey.create", "ok"),
                now,
            )
        })
    }

    pub fn api_keys_blocking(&self) -> Result<Vec<ApiKeyRecord>> {
        self.read_blocking(|conn| {
            let mut statement = conn.prepare(&format!("{SELECT} ORDER BY k.id"))?;
            let keys = statement
                .query_map([], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(keys)
        })
    }

    /// Revokes a key by id or prefix; false when there is no such live key.
    pub fn revoke_api_key_blocking(&self, key: String, now: UnixTime) -> Result<bool> {
        self.write_blocking(move |conn| {
            let changed = conn.execute(
                "UPDATE api_keys SET revoked_at = ?2
                 WHERE (prefix = ?1 OR CAST(id AS TEXT) = ?1) AND revoked_at IS NULL",
                params![key, now],
            )?;
            if changed == 1 {
                super::audit::insert(
                    conn,
                    &super::AuditEntry::new(now, "console", "apikey.revoke", "ok").detail(key),
                )?;
            }
            Ok(changed == 1)
        })
    }

    /// The keys of a resource (by id), revoked ones included, oldest first.
    pub async fn resource_api_keys(&self, resource_id: i64) -> Result<Vec<ApiKeyRecord>> {
        self.read(move |conn| {
            let keys = conn
                .prepare_cached(&format!("{SELECT} WHERE k.resource_id = ?1 ORDER BY k.id"))?
                .query_map(params![resource_id], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(keys)
        })
        .await
    }

    /// Creates a key for the resource `resource_id`; None when there is no such resource.
    pub async fn create_resource_api_key(
        &self,
        resource_id: i64,
        name: String,
        prefix: String,
        key_hash: Vec<u8>,
        entry: AuditEntry,
        now: UnixTime,
    ) -> Result<Option<i64>> {
        self.write(move |conn| {
            let exists = optional(conn.query_row(
                "SELECT 1 FROM resources WHERE id = ?1",
                params![resource_id],
                |_| Ok(()),
            ))?;
            if exists.is_none() {
                return Ok(None);
            }
            conn.execute(
                "INSERT INTO api_keys (name, prefix, key_hash, scope, resource_id, created_at)
                 VALUES (?1, ?2, ?3, 'resource', ?4, ?5)",
                params![name, prefix, key_hash, resource_id, now],
            )?;
            let id = conn.last_insert_rowid();
            super::audit::insert(
                conn,
                &AuditEntry {
                    api_key_id: Some(id),
                    resource_id: Some(resource_id),
                    ..entry
                }
                .detail(name),
            )?;
            Ok(Some(id))
        })
        .await
    }

    /// Revokes the key `key_id` of the resource `resource_id`; false when the resource has no
    /// such live key.
    pub async fn revoke_resource_api_key(
        &self,
        resource_id: i64,
        key_id: i64,
        entry: AuditEntry,
        now: UnixTime,
    ) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE api_keys SET revoked_at = ?3
                 WHERE id = ?1 AND resource_id = ?2 AND revoked_at IS NULL",
                params![key_id, resource_id, now],
            )?;
            if changed == 1 {
                super::audit::insert(
                    conn,
                    &AuditEntry {
                        api_key_id: Some(key_id),
                        resource_id: Some(resource_id),
                        ..entry
                    },
                )?;
            }
            Ok(changed == 1)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{StoreOptions, temp_store};
    use super::*;

    fn entry(at: UnixTime) -> AuditEntry {
        AuditEntry::new(at, "apikey:1", "apikey.revoke", "ok")
    }

    #[tokio::test]
    async fn every_change_of_a_key_moves_the_generation_also_from_another_store_on_the_file() {
        let (dir, store) = temp_store();
        let console = Store::open(
            &dir.path().join(super::super::DATABASE_FILE),
            StoreOptions::default(),
        )
        .expect("a second handle");
        let start = store.api_key_generation().await.expect("read");
        let created = store
            .create_api_key(
                "script".into(),
                "pfx1".into(),
                b"hash".to_vec(),
                None,
                AuditEntry::new(1, "apikey:1", "apikey.create", "ok"),
                1,
            )
            .await
            .expect("written")
            .expect("created");
        let after_create = store.api_key_generation().await.expect("read");
        assert!(after_create > start);
        let unchanged = store.api_key_generation().await.expect("read");
        assert_eq!(unchanged, after_create, "reading moves nothing");
        let revoking = console.clone();
        let revoked = tokio::task::spawn_blocking(move || {
            revoking.revoke_api_key_blocking(created.id.to_string(), 2)
        })
        .await
        .expect("joined")
        .expect("written");
        assert!(revoked);
        assert!(
            store.api_key_generation().await.expect("read") > after_create,
            "a revocation through another handle is seen at once"
        );
        console.close();
        store.close();
    }

    #[tokio::test]
    async fn a_key_revoked_through_the_api_is_not_revoked_again_and_a_missing_one_not_at_all() {
        let (_dir, store) = temp_store();
        let created = store
            .create_api_key(
                "script".into(),
                "pfx1".into(),
                b"hash".to_vec(),
                None,
                AuditEntry::new(1, "apikey:1", "apikey.create", "ok"),
                1,
            )
            .await
            .expect("written")
            .expect("created");
        assert!(
            store
                .revoke_api_key(created.id, entry(5), 5)
                .await
                .expect("written")
        );
        assert!(
            !store
                .revoke_api_key(created.id, entry(6), 6)
                .await
                .expect("written")
        );
        assert!(
            !store
                .revoke_api_key(999, entry(7), 7)
                .await
                .expect("written")
        );
        let keys = store.api_keys().await.expect("read");
        assert_eq!(keys[0].revoked_at, Some(5));
        let missing = store
            .create_api_key(
                "gateway".into(),
                "pfx2".into(),
                b"hash".to_vec(),
                Some(IdOrName::Name("nowhere".into())),
                AuditEntry::new(8, "apikey:1", "apikey.create", "ok"),
                8,
            )
            .await
            .expect("written");
        assert!(
            missing.is_none(),
            "no key for a resource that does not exist"
        );
        store.close();
    }
}
