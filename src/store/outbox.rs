//! The outbox: messages waiting for a channel, and what happened to them.
//!
//! Rows are written by the features that send (challenges, in the same transaction as what
//! they announce) and drained by the delivery worker. A row stays `queued` until its channel
//! accepted it (`sent`), refused it for good (`failed`), or its validity passed (`expired`);
//! every change of status writes its audit line in the same transaction.

use rusqlite::{Connection, params};

use super::{AuditEntry, Result, Store, UnixTime, audit};

/// A queued message as the worker sees it; the body is still sealed.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub id: i64,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub sealed_body: Vec<u8>,
    pub token_id: Option<i64>,
    pub attempts: i64,
    pub expires_at: Option<UnixTime>,
    /// The approval whose buttons the message carries.
    pub approval_id: Option<i64>,
}

/// What the worker learned from a channel about one message.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent,
    /// Try again at `next_attempt_at`.
    Retry {
        next_attempt_at: UnixTime,
        error: String,
    },
    /// Never try again.
    Failed {
        error: String,
    },
    /// The recipient cannot be reached any more (a blocked bot): failed, and the token must be
    /// activated again.
    Unreachable {
        error: String,
    },
}

/// One row of the delivery list, without the body.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: i64,
    pub channel: String,
    pub recipient: String,
    pub token_id: Option<i64>,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: UnixTime,
    pub next_attempt_at: UnixTime,
    pub expires_at: Option<UnixTime>,
    pub sent_at: Option<UnixTime>,
}

/// Filters of the delivery list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<&'static str>,
    pub channel: Option<&'static str>,
    pub limit: i64,
    pub offset: i64,
}

/// The queued messages of `channel` due at `now` or expired by then, oldest due first.
pub fn due(conn: &Connection, channel: &str, now: UnixTime, limit: i64) -> Result<Vec<DueMessage>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, channel, recipient, subject, body, token_id, attempts, expires_at, approval_id FROM outbox
         WHERE status = 'queued' AND channel = ?1 AND (next_attempt_at <= ?2 OR expires_at <= ?2)
         ORDER BY next_attempt_at, id LIMIT ?3",
    )?;
    let rows = statement
        .query_map(params![channel, now, limit], |row| {
            Ok(DueMessage {
                id: row.get(0)?,
                channel: row.get(1)?,
                recipient: row.get(2)?,
                subject: row.get(3)?,
                sealed_body: row.get(4)?,
                token_id: row.get(5)?,
                attempts: row.get(6)?,
                expires_at: row.get(7)?,
                approval_id: row.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// When the next queued message of `channel` that is not yet due becomes due, or expires.
pub fn next_due_after(conn: &Connection, channel: &str, now: UnixTime) -> Result<Option<UnixTime>> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(MIN(next_attempt_at, COALESCE(expires_at, next_attempt_at))) FROM outbox
             WHERE status = 'queued' AND channel = ?1 AND next_attempt_at > ?2
               AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .query_row(params![channel, now], |row| row.get(0))?)
}

fn delivery_audit(
    action: &str,
    result: &str,
    channel: &str,
    token_id: Option<i64>,
    reason: Option<String>,
    now: UnixTime,
) -> AuditEntry {
    AuditEntry {
        token_id,
        reason,
        detail: Some(format!("channel={channel}")),
        ..AuditEntry::new(now, "system", action, result)
    }
}

/// Marks queued messages whose validity has passed as expired; returns how many changed.
pub fn expire(conn: &Connection, ids: &[i64], now: UnixTime) -> Result<usize> {
    let mut changed = 0;
    for id in ids {
        let row: Option<(String, Option<i64>)> = super::optional(
            conn.prepare_cached(
                "UPDATE outbox SET status = 'expired', last_error = 'the code expired before it could be sent'
                 WHERE id = ?1 AND status = 'queued' RETURNING channel, token_id",
            )?
            .query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?))),
        )?;
        if let Some((channel, token_id)) = row {
            changed += 1;
            audit::insert(
                conn,
                &delivery_audit("delivery.expired", "expired", &channel, token_id, None, now),
            )?;
        }
    }
    Ok(changed)
}

/// Records what the channel answered for one message. Only a queued message changes, so a
/// message that expired meanwhile keeps its status.
pub fn record(conn: &Connection, id: i64, outcome: &Outcome, now: UnixTime) -> Result<bool> {
    let row: Option<(String, Option<i64>)> = match outcome {
        Outcome::Sent => super::optional(
            conn.prepare_cached(
                "UPDATE outbox SET status = 'sent', sent_at = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE id = ?1 AND status = 'queued' RETURNING channel, token_id",
            )?
            .query_row(params![id, now], |row| Ok((row.get(0)?, row.get(1)?))),
        )?,
        Outcome::Retry {
            next_attempt_at,
            error,
        } => super::optional(
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND status = 'queued' RETURNING channel, token_id",
            )?
            .query_row(params![id, next_attempt_at, error], |row| {
                Ok((row.get(0)?, row.get(1)?))
            }),
        )?,
        Outcome::Failed { error } | Outcome::Unreachable { error } => super::optional(
            conn.prepare_cached(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?2
                 WHERE id = ?1 AND status = 'queued' RETURNING channel, token_id",
            )?
            .query_row(params![id, error], |row| Ok((row.get(0)?, row.get(1)?))),
        )?,
    };
    let Some((channel, token_id)) = row else {
        return Ok(false);
    };
    let entry = match outcome {
        Outcome::Sent => Some(delivery_audit(
            "delivery.sent",
            "ok",
            &channel,
            token_id,
            None,
            now,
        )),
        Outcome::Retry { .. } => None,
        Outcome::Failed { error } => Some(delivery_audit(
            "delivery.failed",
            "failed",
            &channel,
            token_id,
            Some(error.clone()),
            now,
        )),
        Outcome::Unreachable { error } => {
            if let Some(token_id) = token_id {
                conn.prepare_cached(
                    "UPDATE tokens SET state = 'reactivate', updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![token_id, now])?;
            }
            Some(AuditEntry {
                detail: Some(format!("channel={channel}; the token needs re-activation")),
                ..delivery_audit(
                    "delivery.failed",
                    "failed",
                    &channel,
                    token_id,
                    Some(error.clone()),
                    now,
                )
            })
        }
    };
    if let Some(entry) = entry {
        audit::insert(conn, &entry)?;
    }
    Ok(true)
}

/// Recent deliveries, newest first.
pub fn list(conn: &Connection, filter: &DeliveryFilter) -> Result<(Vec<DeliveryRecord>, i64)> {
    let mut statement = conn.prepare_cached(
        "SELECT id, channel, recipient, token_id, status, attempts, last_error, created_at,
                next_attempt_at, expires_at, sent_at
         FROM outbox WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR channel = ?2)
         ORDER BY id DESC LIMIT ?3 OFFSET ?4",
    )?;
    let rows = statement
        .query_map(
            params![filter.status, filter.channel, filter.limit, filter.offset],
            |row| {
                Ok(DeliveryRecord {
                    id: row.get(0)?,
                    channel: row.get(1)?,
                    recipient: row.get(2)?,
                    token_id: row.get(3)?,
                    status: row.get(4)?,
                    attempts: row.get(5)?,
                    last_error: row.get(6)?,
                    created_at: row.get(7)?,
                    next_attempt_at: row.get(8)?,
                    expires_at: row.get(9)?,
                    sent_at: row.get(10)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM outbox WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR channel = ?2)",
        )?
        .query_row(params![filter.status, filter.channel], |row| row.get(0))?;
    Ok((rows, total))
}

/// Where the latest message of a code sent for a transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDelivery {
    pub token_id: i64,
    pub channel: String,
    /// `queued`, `sent`, `failed` or `expired`.
    pub status: String,
    /// Sends tried so far: a queued message tried before failed for a while.
    pub attempts: i64,
    /// When the code itself expires.
    pub expires_at: UnixTime,
}

/// The latest message of each code sent for `transaction_id`, in token order.
pub fn code_deliveries(conn: &Connection, transaction_id: &str) -> Result<Vec<CodeDelivery>> {
    let mut statement = conn.prepare_cached(
        "SELECT c.token_id, o.channel, o.status, o.attempts, c.expires_at
         FROM challenges c
         JOIN outbox o ON o.id = (SELECT MAX(id) FROM outbox
                                  WHERE token_id = c.token_id AND challenge_id = c.id)
         WHERE c.transaction_id = ?1
         ORDER BY c.token_id",
    )?;
    let rows = statement
        .query_map(params![transaction_id], |row| {
            Ok(CodeDelivery {
                token_id: row.get(0)?,
                channel: row.get(1)?,
                status: row.get(2)?,
                attempts: row.get(3)?,
                expires_at: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

impl Store {
    /// Where the codes sent for a transaction stand: sent, still queued, failed.
    pub async fn code_deliveries(&self, transaction_id: String) -> Result<Vec<CodeDelivery>> {
        self.read(move |conn| code_deliveries(conn, &transaction_id))
            .await
    }

    /// The due messages of a channel and, when none is left due, when the next one is.
    pub async fn due_messages(
        &self,
        channel: &'static str,
        now: UnixTime,
        limit: i64,
    ) -> Result<(Vec<DueMessage>, Option<UnixTime>)> {
        self.read(move |conn| {
            let rows = due(conn, channel, now, limit)?;
            let next = next_due_after(conn, channel, now)?;
            Ok((rows, next))
        })
        .await
    }

    pub async fn expire_messages(&self, ids: Vec<i64>, now: UnixTime) -> Result<usize> {
        self.write(move |conn| expire(conn, &ids, now)).await
    }

    pub async fn record_delivery(&self, id: i64, outcome: Outcome, now: UnixTime) -> Result<bool> {
        self.write(move |conn| record(conn, id, &outcome, now))
            .await
    }

    pub async fn deliveries(&self, filter: DeliveryFilter) -> Result<(Vec<DeliveryRecord>, i64)> {
        self.read(move |conn| list(conn, &filter)).await
    }
}
