//! The append-only audit log.

use rusqlite::{Connection, params};

use super::{Result, Store, UnixTime};

/// One line of the audit log. It never carries an OTP, PIN, password or secret.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub at: UnixTime,
    pub actor: String,
    pub action: String,
    pub result: String,
    pub reason: Option<String>,
    pub client_ip: Option<String>,
    pub end_user_ip: Option<String>,
    pub resource_id: Option<i64>,
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub detail: Option<String>,
}

impl AuditEntry {
    pub fn new(
        at: UnixTime,
        actor: impl Into<String>,
        action: impl Into<String>,
        result: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            at,
            actor: actor.into(),
            action: action.into(),
            result: result.into(),
            ..AuditEntry::default()
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> AuditEntry {
        self.reason = Some(reason.into());
        self
    }

    pub fn client_ip(mut self, ip: Option<String>) -> AuditEntry {
        self.client_ip = ip;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> AuditEntry {
        self.detail = Some(detail.into());
        self
    }
}

pub fn insert(conn: &Connection, entry: &AuditEntry) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, result, reason, client_ip, end_user_ip,
                                resource_id, user_id, token_id, api_key_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        entry.at,
        entry.actor,
        entry.action,
        entry.result,
        entry.reason,
        entry.client_ip,
        entry.end_user_ip,
        entry.resource_id,
        entry.user_id,
        entry.token_id,
        entry.api_key_id,
        entry.detail,
    ])?;
    Ok(())
}

impl Store {
    pub async fn audit(&self, entry: AuditEntry) -> Result<()> {
        self.write(move |conn| insert(conn, &entry)).await
    }

    /// The newest entries, newest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        self.read(move |conn| {
            let mut statement = conn.prepare(
                "SELECT at, actor, action, result, reason, client_ip, detail
                 FROM audit_log ORDER BY id DESC LIMIT ?1",
            )?;
            let entries = statement
                .query_map(params![limit], |row| {
                    Ok(AuditEntry {
                        at: row.get(0)?,
                        actor: row.get(1)?,
                        action: row.get(2)?,
                        result: row.get(3)?,
                        reason: row.get(4)?,
                        client_ip: row.get(5)?,
                        detail: row.get(6)?,
                        ..AuditEntry::default()
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(entries)
        })
        .await
    }
}
