//! Server-side sessions: the cookie holds a random id, the table holds its hash, so a leaked
//! database does not hand out live sessions, and deleting the row revokes the session at once.

use rusqlite::{Connection, Row, params};

use super::{Result, Store, UnixTime, optional};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Admin,
    Portal,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Admin => "admin",
            SessionKind::Portal => "portal",
        }
    }
}

/// How far the holder has come: `Full` is logged in; `EnrolTotp` has passed the password and
/// must enrol an authenticator app before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStage {
    Full,
    EnrolTotp,
}

impl SessionStage {
    fn as_str(self) -> &'static str {
        match self {
            SessionStage::Full => "full",
            SessionStage::EnrolTotp => "enrol_totp",
        }
    }

    fn parse(text: &str) -> SessionStage {
        if text == "enrol_totp" {
            SessionStage::EnrolTotp
        } else {
            SessionStage::Full
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub stage: SessionStage,
    pub admin_id: Option<i64>,
    pub user_id: Option<i64>,
    pub resource_id: Option<i64>,
    pub csrf_token: String,
    pub pending_secret: Option<Vec<u8>>,
    pub last_seen_at: UnixTime,
    pub expires_at: UnixTime,
}

pub struct NewSession {
    pub id_hash: Vec<u8>,
    pub kind: SessionKind,
    pub stage: SessionStage,
    pub admin_id: Option<i64>,
    pub user_id: Option<i64>,
    pub resource_id: Option<i64>,
    pub csrf_token: String,
    pub pending_secret: Option<Vec<u8>>,
    pub client_ip: Option<String>,
    pub expires_at: UnixTime,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        stage: SessionStage::parse(&row.get::<_, String>(0)?),
        admin_id: row.get(1)?,
        user_id: row.get(2)?,
        resource_id: row.get(3)?,
        csrf_token: row.get(4)?,
        pending_secret: row.get(5)?,
        last_seen_at: row.get(6)?,
        expires_at: row.get(7)?,
    })
}

fn get(
    conn: &Connection,
    id_hash: &[u8],
    kind: SessionKind,
    now: UnixTime,
) -> Result<Option<Session>> {
    optional(conn.query_row(
        "SELECT stage, admin_id, user_id, resource_id, csrf_token, pending_secret, last_seen_at, expires_at
         FROM sessions WHERE id_hash = ?1 AND kind = ?2 AND expires_at > ?3",
        params![id_hash, kind.as_str(), now],
        from_row,
    ))
}

pub(super) fn insert(conn: &Connection, session: &NewSession, now: UnixTime) -> Result<()> {
    conn.execute(
        "INSERT INTO sessions (id_hash, kind, stage, admin_id, user_id, resource_id, csrf_token,
                               pending_secret, client_ip, created_at, last_seen_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
        params![
            session.id_hash,
            session.kind.as_str(),
            session.stage.as_str(),
            session.admin_id,
            session.user_id,
            session.resource_id,
            session.csrf_token,
            session.pending_secret,
            session.client_ip,
            now,
            session.expires_at,
        ],
    )?;
    Ok(())
}

impl Store {
    pub async fn create_session(&self, session: NewSession, now: UnixTime) -> Result<()> {
        self.write(move |conn| insert(conn, &session, now)).await
    }

    /// A live session of this kind, or None when it is unknown, expired or revoked.
    pub async fn session(
        &self,
        id_hash: Vec<u8>,
        kind: SessionKind,
        now: UnixTime,
    ) -> Result<Option<Session>> {
        self.read(move |conn| get(conn, &id_hash, kind, now)).await
    }

    /// Marks a session as used now and pushes its idle expiry, never past its absolute limit.
    pub async fn touch_session(
        &self,
        id_hash: Vec<u8>,
        now: UnixTime,
        idle_expiry: UnixTime,
        hard_limit: UnixTime,
    ) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE sessions SET last_seen_at = ?2, expires_at = MIN(?3, created_at + ?4) WHERE id_hash = ?1",
                params![id_hash, now, idle_expiry, hard_limit],
            )?;
            Ok(())
        })
        .await
    }

    /// Moves a session on to full login, dropping its pending secret.
    pub async fn complete_session(&self, id_hash: Vec<u8>) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE sessions SET stage = 'full', pending_secret = NULL WHERE id_hash = ?1",
                params![id_hash],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn delete_session(&self, id_hash: Vec<u8>) -> Result<()> {
        self.write(move |conn| {
            conn.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])?;
            Ok(())
        })
        .await
    }

    /// Removes expired sessions; returns how many.
    pub async fn purge_expired_sessions(&self, now: UnixTime) -> Result<usize> {
        self.write(move |conn| {
            Ok(conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?)
        })
        .await
    }
}
