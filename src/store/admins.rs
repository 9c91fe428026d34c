//! Administrators of the admin panel.

use rusqlite::{Connection, Row, params};

use super::{Result, Store, StoreError, UnixTime, optional};

#[derive(Debug, Clone)]
pub struct Admin {
    pub id: i64,
    pub login: String,
    pub password_hash: String,
    /// Sealed TOTP seed; None until the administrator has enrolled an authenticator app.
    pub totp_secret: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
    pub enabled: bool,
    pub created_at: UnixTime,
    pub last_login_at: Option<UnixTime>,
}

pub struct NewAdmin {
    pub login: String,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
}

const COLUMNS: &str =
    "id, login, password_hash, totp_secret, totp_last_step, enabled, created_at, last_login_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Admin> {
    Ok(Admin {
        id: row.get(0)?,
        login: row.get(1)?,
        password_hash: row.get(2)?,
        totp_secret: row.get(3)?,
        totp_last_step: row.get(4)?,
        enabled: row.get(5)?,
        created_at: row.get(6)?,
        last_login_at: row.get(7)?,
    })
}

pub fn by_login(conn: &Connection, login: &str) -> Result<Option<Admin>> {
    optional(conn.query_row(
        &format!("SELECT {COLUMNS} FROM admins WHERE login = ?1"),
        params![login],
        from_row,
    ))
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Admin>> {
    optional(conn.query_row(
        &format!("SELECT {COLUMNS} FROM admins WHERE id = ?1"),
        params![id],
        from_row,
    ))
}

fn insert(conn: &Connection, admin: &NewAdmin, now: UnixTime) -> Result<i64> {
    conn.execute(
        "INSERT INTO admins (login, password_hash, totp_secret, totp_last_step, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            admin.login,
            admin.password_hash,
            admin.totp_secret,
            admin.totp_last_step,
            now
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Why an administrator's change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminChange {
    Done,
    /// It was so already; nothing was written.
    Unchanged,
    NoSuchAdmin,
    /// Disabling would leave no enabled administrator.
    LastActive,
    /// An administrator may not disable their own account.
    OwnAccount,
}

fn create(conn: &Connection, admin: &NewAdmin, actor: &str, now: UnixTime) -> Result<i64> {
    if by_login(conn, &admin.login)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "an administrator named {} exists already",
            admin.login
        )));
    }
    let id = insert(conn, admin, now)?;
    super::audit::insert(
        conn,
        &super::AuditEntry::new(now, actor, "admin.create", "ok").detail(admin.login.clone()),
    )?;
    Ok(id)
}

fn reset_2fa(conn: &Connection, id: i64, entry: super::AuditEntry) -> Result<bool> {
    let Some(admin) = by_id(conn, id)? else {
        return Ok(false);
    };
    conn.execute(
        "UPDATE admins SET totp_secret = NULL, totp_last_step = NULL WHERE id = ?1",
        params![id],
    )?;
    conn.execute("DELETE FROM sessions WHERE admin_id = ?1", params![id])?;
    super::audit::insert(conn, &entry.detail(admin.login))?;
    Ok(true)
}

/// Ends every session of the administrator `login`.
fn log_out(conn: &Connection, login: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE admin_id = (SELECT id FROM admins WHERE login = ?1)",
        params![login],
    )?;
    Ok(())
}

impl Store {
    /// Every administrator, ordered by login.
    pub async fn list_admins(&self) -> Result<Vec<Admin>> {
        self.read(|conn| {
            let admins = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM admins ORDER BY login"))?
                .query_map([], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(admins)
        })
        .await
    }

    /// Creates an administrator without an authenticator app: the first login links one. A
    /// duplicate login is a conflict naming it.
    pub async fn create_admin(&self, admin: NewAdmin, actor: String, now: UnixTime) -> Result<i64> {
        self.write(move |conn| create(conn, &admin, &actor, now))
            .await
    }

    /// Enables or disables the administrator `id` on behalf of `acting_admin_id`. Disabling
    /// ends the administrator's sessions, and is refused for one's own account and for the
    /// last enabled administrator: the check and the change are one statement, so two
    /// administrators disabling each other at once cannot both succeed.
    pub async fn set_admin_enabled(
        &self,
        id: i64,
        enabled: bool,
        acting_admin_id: i64,
        entry: super::AuditEntry,
    ) -> Result<AdminChange> {
        self.write(move |conn| {
            let Some(admin) = by_id(conn, id)? else {
                return Ok(AdminChange::NoSuchAdmin);
            };
            if admin.enabled == enabled {
                return Ok(AdminChange::Unchanged);
            }
            if !enabled && id == acting_admin_id {
                return Ok(AdminChange::OwnAccount);
            }
            let changed = if enabled {
                conn.execute(
                    "UPDATE admins SET enabled = 1 WHERE id = ?1 AND enabled = 0",
                    params![id],
                )?
            } else {
                conn.execute(
                    "UPDATE admins SET enabled = 0 WHERE id = ?1 AND enabled = 1
                       AND EXISTS (SELECT 1 FROM admins WHERE enabled = 1 AND id <> ?1)",
                    params![id],
                )?
            };
            if changed == 0 {
                return Ok(AdminChange::LastActive);
            }
            if !enabled {
                conn.execute("DELETE FROM sessions WHERE admin_id = ?1", params![id])?;
            }
            super::audit::insert(conn, &entry.detail(admin.login))?;
            Ok(AdminChange::Done)
        })
        .await
    }

    /// Forgets the administrator's authenticator app (the next login links a new one) and
    /// ends their sessions; false when there is no such administrator.
    pub async fn reset_admin_2fa(&self, id: i64, entry: super::AuditEntry) -> Result<bool> {
        self.write(move |conn| reset_2fa(conn, id, entry)).await
    }

    pub async fn admin_count(&self) -> Result<i64> {
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM admins", [], |r| r.get(0))?))
            .await
    }

    pub async fn admin_by_login(&self, login: String) -> Result<Option<Admin>> {
        self.read(move |conn| by_login(conn, &login)).await
    }

    pub async fn admin_by_id(&self, id: i64) -> Result<Option<Admin>> {
        self.read(move |conn| by_id(conn, id)).await
    }

    pub fn admins_blocking(&self) -> Result<Vec<Admin>> {
        self.read_blocking(|conn| {
            let mut statement =
                conn.prepare(&format!("SELECT {COLUMNS} FROM admins ORDER BY login"))?;
            let admins = statement
                .query_map([], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(admins)
        })
    }

    /// Creates the first administrator, only while there is none: the setup page and a console
    /// `admin create` racing each other cannot both create "the first" one.
    pub async fn create_first_admin(&self, admin: NewAdmin, now: UnixTime) -> Result<i64> {
        self.write(move |conn| {
            let existing: i64 = conn.query_row("SELECT COUNT(*) FROM admins", [], |r| r.get(0))?;
            if existing > 0 {
                return Err(StoreError::Conflict(
                    "an administrator exists already".into(),
                ));
            }
            let id = insert(conn, &admin, now)?;
            super::audit::insert(
                conn,
                &super::AuditEntry::new(now, format!("admin:{}", admin.login), "admin.setup", "ok"),
            )?;
            Ok(id)
        })
        .await
    }

    /// Creates an administrator; a duplicate login is a conflict naming it.
    pub fn create_admin_blocking(
        &self,
        admin: NewAdmin,
        actor: String,
        now: UnixTime,
    ) -> Result<i64> {
        self.write_blocking(move |conn| create(conn, &admin, &actor, now))
    }

    /// Sets a new password and ends every session of the administrator.
    pub fn reset_admin_password_blocking(
        &self,
        login: String,
        password_hash: String,
        actor: String,
        now: UnixTime,
    ) -> Result<bool> {
        self.write_blocking(move |conn| {
            let changed = conn.execute(
                "UPDATE admins SET password_hash = ?2 WHERE login = ?1",
                params![login, password_hash],
            )?;
            if changed == 1 {
                log_out(conn, &login)?;
                let entry = super::AuditEntry::new(now, actor, "admin.reset_password", "ok");
                super::audit::insert(conn, &entry.detail(login))?;
            }
            Ok(changed == 1)
        })
    }

    /// Forgets the administrator's authenticator app, so that the next login enrols a new one,
    /// and ends every session of the administrator.
    pub fn reset_admin_2fa_blocking(
        &self,
        login: String,
        actor: String,
        now: UnixTime,
    ) -> Result<bool> {
        self.write_blocking(move |conn| {
            let changed = conn.execute(
                "UPDATE admins SET totp_secret = NULL, totp_last_step = NULL WHERE login = ?1",
                params![login],
            )?;
            if changed == 1 {
                log_out(conn, &login)?;
                let entry = super::AuditEntry::new(now, actor, "admin.reset_2fa", "ok");
                super::audit::insert(conn, &entry.detail(login))?;
            }
            Ok(changed == 1)
        })
    }

    /// Records an accepted TOTP step for an administrator, only if it is newer than the last
    /// one: a compare-and-set, so the same code can never log in twice, even concurrently.
    /// Returns false when the step was used already.
    pub async fn claim_admin_totp_step(
        &self,
        admin_id: i64,
        step: i64,
        now: UnixTime,
    ) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE admins SET totp_last_step = ?2, last_login_at = ?3
                 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                params![admin_id, step, now],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Stores a newly enrolled authenticator app, with the step of the code that confirmed it
    /// as already used.
    pub async fn enrol_admin_totp(
        &self,
        admin_id: i64,
        sealed_secret: Vec<u8>,
        step: i64,
        now: UnixTime,
    ) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE admins SET totp_secret = ?2, totp_last_step = ?3, last_login_at = ?4
                 WHERE id = ?1 AND totp_secret IS NULL",
                params![admin_id, sealed_secret, step, now],
            )?;
            Ok(changed == 1)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuditEntry, DATABASE_FILE, StoreOptions};

    #[tokio::test]
    async fn the_last_enabled_administrator_cannot_be_disabled() {
        let dir = tempfile::tempdir().expect("dir");
        let store =
            Store::open(&dir.path().join(DATABASE_FILE), StoreOptions::default()).expect("store");
        let admin = |login: &str| NewAdmin {
            login: login.into(),
            password_hash: "x".into(),
            totp_secret: None,
            totp_last_step: None,
        };
        let one = store
            .create_admin(admin("one"), "test".into(), 1)
            .await
            .expect("one");
        let two = store
            .create_admin(admin("two"), "test".into(), 1)
            .await
            .expect("two");
        let entry = || AuditEntry::new(1, "test", "admin.disable", "ok");
        // Each disables the other "at once": the second change finds one enabled left.
        let (first, second) = tokio::join!(
            store.set_admin_enabled(two, false, one, entry()),
            store.set_admin_enabled(one, false, two, entry()),
        );
        let outcomes = [first.expect("first"), second.expect("second")];
        assert!(outcomes.contains(&AdminChange::Done), "{outcomes:?}");
        assert!(outcomes.contains(&AdminChange::LastActive), "{outcomes:?}");
        let enabled = store
            .list_admins()
            .await
            .expect("list")
            .iter()
            .filter(|a| a.enabled)
            .count();
        assert_eq!(enabled, 1);
        assert_eq!(
            store
                .set_admin_enabled(one, false, one, entry())
                .await
                .expect("own"),
            if outcomes[0] == AdminChange::Done {
                AdminChange::OwnAccount
            } else {
                AdminChange::Unchanged
            }
        );
    }
}
