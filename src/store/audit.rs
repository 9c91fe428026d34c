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
    /// A notice to the user that goes out with this line: queued in the outbox in the same
    /// transaction as the line (`notices`). Never written to the log itself.
    pub notice: Option<super::Message>,
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

/// Where a job writes its audit lines.
pub enum Lines<'a> {
    /// Into the log at once.
    Now,
    /// Into the log after the batch's last job, outside the jobs' savepoints (`run_batch`):
    /// for the writer's authentications, whose lines otherwise land on the same few pages of
    /// the log and its indexes job after job, each job's savepoint copying every one of them.
    AfterBatch(&'a mut Vec<AuditEntry>),
}

impl Lines<'_> {
    /// Writes `entry`, now or after the batch.
    pub fn write(&mut self, conn: &Connection, entry: AuditEntry) -> Result<()> {
        match self {
            Lines::Now => insert(conn, &entry),
            Lines::AfterBatch(lines) => {
                lines.push(entry);
                Ok(())
            }
        }
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
    if let Some(notice) = &entry.notice {
        conn.prepare_cached(
            "INSERT INTO outbox (channel, recipient, subject, body, next_attempt_at, expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)",
        )?
        .execute(params![
            notice.channel,
            notice.recipient,
            notice.subject,
            notice.sealed_body,
            entry.at,
            notice.expires_at,
        ])?;
    }
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

/// What the audit log listing is narrowed to; every condition that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// From this time on (inclusive).
    pub since: Option<UnixTime>,
    /// Before this time (exclusive).
    pub until: Option<UnixTime>,
    /// The actor exactly as recorded (`admin:jane`, `apikey:3`, `system`).
    pub actor: Option<String>,
    /// A user by id.
    pub user_id: Option<i64>,
    /// A resource by id.
    pub resource_id: Option<i64>,
    /// An action (`resource.update`), or a family of actions (`resource`).
    pub action: Option<String>,
    pub result: Option<String>,
    /// Only entries older than this id (the next page, newest first).
    pub before_id: Option<i64>,
}

/// One line of the audit log as the panel lists it, with the names of what it refers to.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
    pub user_login: Option<String>,
    pub resource_name: Option<String>,
    pub token_serial: Option<String>,
}

fn filter_sql(filter: &AuditFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut push = |condition: &str, value: Value| {
        values.push(value);
        conditions.push(condition.replace('?', &format!("?{}", values.len())));
    };
    if let Some(since) = filter.since {
        push("a.at >= ?", Value::Integer(since));
    }
    if let Some(until) = filter.until {
        push("a.at < ?", Value::Integer(until));
    }
    if let Some(actor) = &filter.actor {
        push("a.actor = ?", Value::Text(actor.clone()));
    }
    if let Some(user_id) = filter.user_id {
        push("a.user_id = ?", Value::Integer(user_id));
    }
    if let Some(resource_id) = filter.resource_id {
        push("a.resource_id = ?", Value::Integer(resource_id));
    }
    if let Some(action) = &filter.action {
        push(
            "(a.action = ? OR substr(a.action, 1, length(?) + 1) = ? || '.')",
            Value::Text(action.clone()),
        );
    }
    if let Some(result) = &filter.result {
        push("a.result = ?", Value::Text(result.clone()));
    }
    if let Some(before) = filter.before_id {
        push("a.id < ?", Value::Integer(before));
    }
    let sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (sql, values)
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: row.get(0)?,
        entry: AuditEntry {
            at: row.get(1)?,
            actor: row.get(2)?,
            action: row.get(3)?,
            result: row.get(4)?,
            reason: row.get(5)?,
            client_ip: row.get(6)?,
            end_user_ip: row.get(7)?,
            resource_id: row.get(8)?,
            user_id: row.get(9)?,
            token_id: row.get(10)?,
            api_key_id: row.get(11)?,
            detail: row.get(12)?,
            notice: None,
        },
        user_login: row.get(13)?,
        resource_name: row.get(14)?,
        token_serial: row.get(15)?,
    })
}

/// The entries matching `filter`, newest first, at most `limit`.
pub fn search(conn: &Connection, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditRecord>> {
    let (conditions, mut values) = filter_sql(filter);
    values.push(rusqlite::types::Value::Integer(limit));
    let sql = format!(
        "SELECT a.id, a.at, a.actor, a.action, a.result, a.reason, a.client_ip, a.end_user_ip,
                a.resource_id, a.user_id, a.token_id, a.api_key_id, a.detail,
                u.login, r.name, t.serial
         FROM audit_log a
         LEFT JOIN users u ON u.id = a.user_id
         LEFT JOIN resources r ON r.id = a.resource_id
         LEFT JOIN tokens t ON t.id = a.token_id
         {conditions}
         ORDER BY a.id DESC LIMIT ?{}",
        values.len()
    );
    let records = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values.iter()), record_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(records)
}

impl Store {
    /// The audit entries matching `filter`, newest first, at most `limit`.
    pub async fn search_audit(&self, filter: AuditFilter, limit: i64) -> Result<Vec<AuditRecord>> {
        self.read(move |conn| search(conn, &filter, limit)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DATABASE_FILE, StoreOptions};

    fn entry(at: UnixTime, actor: &str, action: &str, result: &str) -> AuditEntry {
        AuditEntry::new(at, actor, action, result)
    }

    #[test]
    fn the_audit_filter_narrows_by_every_condition_and_pages_by_id() {
        let dir = tempfile::tempdir().expect("dir");
        let store =
            Store::open(&dir.path().join(DATABASE_FILE), StoreOptions::default()).expect("store");
        for (at, actor, action, result) in [
            (100, "admin:a", "resource.create", "ok"),
            (200, "admin:b", "resource.update", "ok"),
            (300, "apikey:1", "auth.authenticate", "rejected"),
            (400, "admin:a", "resources.x", "ok"),
        ] {
            let e = entry(at, actor, action, result);
            store
                .write_blocking(move |conn| insert(conn, &e))
                .expect("insert");
        }
        let find = |filter: AuditFilter| {
            store
                .read_blocking(move |conn| search(conn, &filter, 10))
                .expect("search")
                .into_iter()
                .map(|r| r.entry.at)
                .collect::<Vec<_>>()
        };
        assert_eq!(find(AuditFilter::default()), [400, 300, 200, 100]);
        let family = AuditFilter {
            action: Some("resource".into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            find(family),
            [200, 100],
            "a family is the prefix before a dot"
        );
        let actor = AuditFilter {
            actor: Some("admin:a".into()),
            ..AuditFilter::default()
        };
        assert_eq!(find(actor), [400, 100]);
        let window = AuditFilter {
            since: Some(200),
            until: Some(400),
            result: Some("ok".into()),
            ..AuditFilter::default()
        };
        assert_eq!(find(window), [200]);
        let older = AuditFilter {
            before_id: Some(3),
            ..AuditFilter::default()
        };
        assert_eq!(find(older), [200, 100]);
    }
}
