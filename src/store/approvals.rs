//! Approvals (Approve in Telegram): a login of a BOT token's user answered with a button in the
//! bot's chat instead of a typed code. One approval belongs to one transaction and is decided
//! once: the decision is a compare-and-set from `pending` that also checks the chat, the
//! Telegram user and the validity, so that a second press, a stranger's press or a late press
//! changes nothing. An approved approval lets in one login (`consume`, another compare-and-set,
//! together with the end of its transaction).

pub use super::directory::{ApprovalSettings, ApprovalSettingsChange};
use rusqlite::{Connection, Row, params};

use super::transactions::{NewTransaction, insert_transaction};
use super::{AuditEntry, Result, Store, UnixTime, audit, execute_cached, optional};

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Option<ApprovalState> {
        Some(match text {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "denied" => ApprovalState::Denied,
            "expired" => ApprovalState::Expired,
            _ => return None,
        })
    }
}

/// Why an approval was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The user pressed "Deny — this wasn't me".
    Denied,
    /// Number matching: the user chose a number the login did not show.
    WrongNumber,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Denied => "denied",
            DenyReason::WrongNumber => "wrong_number",
        }
    }

    fn parse(text: &str) -> Option<DenyReason> {
        match text {
            "denied" => Some(DenyReason::Denied),
            "wrong_number" => Some(DenyReason::WrongNumber),
            _ => None,
        }
    }
}

/// One approval as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: i64,
    pub transaction_id: String,
    pub token_id: i64,
    pub resource_id: i64,
    pub chat_id: i64,
    pub telegram_user_id: i64,
    pub number: Option<u8>,
    /// The numbers the bot offers, in their order (one of them `number`); empty without number
    /// matching.
    pub choices: Vec<u8>,
    pub message_id: Option<i64>,
    /// The stored state: a `Pending` approval past `expires_at` is expired all the same
    /// (see [`Approval::state_at`]).
    pub state: ApprovalState,
    pub reason: Option<DenyReason>,
    pub decided_at: Option<UnixTime>,
    pub used_at: Option<UnixTime>,
    pub expires_at: UnixTime,
    pub created_at: UnixTime,
}

impl Approval {
    /// The state at `now`: a pending approval past its validity is expired.
    pub fn state_at(&self, now: UnixTime) -> ApprovalState {
        match self.state {
            ApprovalState::Pending if self.expires_at <= now => ApprovalState::Expired,
            state => state,
        }
    }
}

const COLUMNS: &str =
    "id, transaction_id, token_id, resource_id, chat_id, telegram_user_id, number,
    message_id, state, reason, decided_at, used_at, expires_at, created_at, choices";

fn choices_text(choices: &[u8]) -> Option<String> {
    (!choices.is_empty()).then(|| {
        choices
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Approval> {
    let state: String = row.get(8)?;
    let reason: Option<String> = row.get(9)?;
    Ok(Approval {
        id: row.get(0)?,
        transaction_id: row.get(1)?,
        token_id: row.get(2)?,
        resource_id: row.get(3)?,
        chat_id: row.get(4)?,
        telegram_user_id: row.get(5)?,
        number: row.get(6)?,
        message_id: row.get(7)?,
        // The table's CHECK allows no other values.
        state: ApprovalState::parse(&state).unwrap_or(ApprovalState::Expired),
        reason: reason.as_deref().and_then(DenyReason::parse),
        decided_at: row.get(10)?,
        used_at: row.get(11)?,
        expires_at: row.get(12)?,
        created_at: row.get(13)?,
        choices: row
            .get::<_, Option<String>>(14)?
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect(),
    })
}

/// An approval to ask for, with the transaction it belongs to and its message.
#[derive(Debug, Clone)]
pub struct NewApproval {
    /// The login; the approval expires with it.
    pub transaction: NewTransaction,
    pub token_id: i64,
    pub chat_id: i64,
    pub telegram_user_id: i64,
    /// The number the login shows, with number matching.
    pub number: Option<u8>,
    /// The numbers the bot offers, in their order (one of them `number`).
    pub choices: Vec<u8>,
    /// The message's text, sealed; its buttons are made from the approval when it is sent.
    pub sealed_body: Vec<u8>,
    pub entry: AuditEntry,
}

/// Begins the transaction, records the approval and queues its message, in one transaction of
/// the database: the outbox sends it once, and a crash loses neither half. Answers the id.
pub fn create(conn: &Connection, new: &NewApproval, now: UnixTime) -> Result<i64> {
    let transaction = &new.transaction;
    insert_transaction(conn, transaction, now)?;
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO approvals (transaction_id, token_id, resource_id, chat_id, telegram_user_id,
                                    number, expires_at, created_at, choices)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        )?
        .query_row(
            params![
                transaction.id,
                new.token_id,
                transaction.resource_id,
                new.chat_id,
                new.telegram_user_id,
                new.number,
                transaction.expires_at,
                now,
                choices_text(&new.choices)
            ],
            |row| row.get(0),
        )?;
    conn.prepare_cached(
        "INSERT INTO outbox (channel, recipient, subject, body, token_id, approval_id, next_attempt_at, expires_at, created_at)
         VALUES ('bot', ?1, '', ?2, ?3, ?4, ?5, ?6, ?5)",
    )?
    .execute(params![
        new.chat_id.to_string(),
        new.sealed_body,
        new.token_id,
        id,
        now,
        transaction.expires_at
    ])?;
    audit::insert(conn, &new.entry)?;
    Ok(id)
}

/// One approval by id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Approval>> {
    optional(
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"))?
            .query_row(params![id], from_row),
    )
}

/// The approval of a transaction.
pub fn of_transaction(conn: &Connection, transaction_id: &str) -> Result<Option<Approval>> {
    optional(
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE transaction_id = ?1"
        ))?
        .query_row(params![transaction_id], from_row),
    )
}

/// Records the Telegram message that carries the approval's buttons (once).
pub fn set_message(conn: &Connection, id: i64, message_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE approvals SET message_id = ?2 WHERE id = ?1 AND message_id IS NULL",
        )?
        .execute(params![id, message_id])?
        == 1)
}

/// Who pressed a button, as Telegram tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presser {
    pub chat_id: i64,
    pub telegram_user_id: i64,
}

/// The button pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// "Approve" (without number matching).
    Approve,
    /// A number (with number matching).
    Number(u8),
    /// "Deny — this wasn't me".
    Deny,
}

/// What a press decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This press decided the approval: approved, or denied for its reason. `locked` when the
    /// denial locked the token (the resource says so).
    Decided { approval: Approval, locked: bool },
    /// Decided before (a second press): nothing changed.
    AlreadyDecided(Approval),
    /// Pressed after its validity: now marked expired, nothing else changed.
    Expired(Approval),
    /// Not this presser's (another chat or Telegram user), a button this approval does not
    /// offer, or no such approval: nothing changed.
    Refused,
}

/// Decides an approval from a press: a compare-and-set from `pending` that checks the chat,
/// the Telegram user and the validity in the same statement. A denial ends the transaction, is
/// audited as such, and locks the token when the resource says so.
pub fn decide(
    conn: &Connection,
    id: i64,
    presser: Presser,
    choice: Choice,
    now: UnixTime,
) -> Result<Decision> {
    let Some(current) = get(conn, id)? else {
        return Ok(Decision::Refused);
    };
    if current.chat_id != presser.chat_id || current.telegram_user_id != presser.telegram_user_id {
        return Ok(Decision::Refused);
    }
    let verdict = match (choice, current.number) {
        (Choice::Approve, None) => Ok(()),
        (Choice::Number(chosen), Some(number)) if chosen == number => Ok(()),
        (Choice::Number(_), Some(_)) => Err(DenyReason::WrongNumber),
        (Choice::Deny, _) => Err(DenyReason::Denied),
        // A button this approval never offered.
        (Choice::Approve, Some(_)) | (Choice::Number(_), None) => {
            return Ok(Decision::Refused);
        }
    };
    let (state, reason) = match verdict {
        Ok(()) => (ApprovalState::Approved, None),
        Err(reason) => (ApprovalState::Denied, Some(reason)),
    };
    let decided = optional(
        conn.prepare_cached(&format!(
            "UPDATE approvals SET state = ?2, reason = ?3, decided_at = ?4
             WHERE id = ?1 AND state = 'pending' AND expires_at > ?4
               AND chat_id = ?5 AND telegram_user_id = ?6
             RETURNING {COLUMNS}"
        ))?
        .query_row(
            params![
                id,
                state.as_str(),
                reason.map(DenyReason::as_str),
                now,
                presser.chat_id,
                presser.telegram_user_id
            ],
            from_row,
        ),
    )?;
    let Some(approval) = decided else {
        // Only the press that finds it pending past its validity marks it expired; any other
        // lost claim found it decided (or expired) already.
        return Ok(if expire_one(conn, id, now)? {
            Decision::Expired(get(conn, id)?.unwrap_or(current))
        } else {
            Decision::AlreadyDecided(get(conn, id)?.unwrap_or(current))
        });
    };
    let owner: Option<i64> = conn
        .prepare_cached("SELECT user_id FROM tokens WHERE id = ?1")?
        .query_row(params![approval.token_id], |row| row.get(0))?;
    let mut entry = AuditEntry {
        resource_id: Some(approval.resource_id),
        user_id: owner,
        token_id: Some(approval.token_id),
        detail: Some(format!("approval={}", approval.id)),
        ..AuditEntry::new(
            now,
            format!("telegram:{}", presser.telegram_user_id),
            "auth.approval",
            state.as_str(),
        )
    };
    let mut locked = false;
    if let Some(reason) = reason {
        entry.reason = Some(reason.as_str().into());
        // The login is over: neither a code nor a later approval can answer it.
        conn.prepare_cached("DELETE FROM auth_transactions WHERE id = ?1")?
            .execute(params![approval.transaction_id])?;
        conn.prepare_cached(
            "DELETE FROM challenges WHERE transaction_id = ?1 AND purpose = 'auth'",
        )?
        .execute(params![approval.transaction_id])?;
        let deny_locks: bool = conn
            .prepare_cached("SELECT approval_deny_locks FROM resources WHERE id = ?1")?
            .query_row(params![approval.resource_id], |row| row.get(0))?;
        if deny_locks {
            locked = conn
                .prepare_cached(
                    "UPDATE tokens SET locked_at = ?2, updated_at = ?2 WHERE id = ?1 AND locked_at IS NULL",
                )?
                .execute(params![approval.token_id, now])?
                == 1;
            if locked {
                audit::insert(
                    conn,
                    &AuditEntry {
                        token_id: Some(approval.token_id),
                        user_id: owner,
                        resource_id: Some(approval.resource_id),
                        reason: Some("the user denied a sign-in in Telegram".into()),
                        ..AuditEntry::new(now, "system", "token.lock", "ok")
                    },
                )?;
            }
        }
    }
    audit::insert(conn, &entry)?;
    Ok(Decision::Decided { approval, locked })
}

fn expire_one(conn: &Connection, id: i64, now: UnixTime) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE approvals SET state = 'expired', decided_at = ?2
             WHERE id = ?1 AND state = 'pending' AND expires_at <= ?2",
        )?
        .execute(params![id, now])?
        == 1)
}

/// Marks the pending approvals whose validity passed as expired (at most `limit`), and answers
/// them, so that their messages can say so.
pub fn expire_due(conn: &Connection, now: UnixTime, limit: i64) -> Result<Vec<Approval>> {
    let mut statement = conn.prepare_cached(&format!(
        "UPDATE approvals SET state = 'expired', decided_at = ?1
         WHERE id IN (SELECT id FROM approvals WHERE state = 'pending' AND expires_at <= ?1
                      ORDER BY expires_at LIMIT ?2)
         RETURNING {COLUMNS}"
    ))?;
    let expired = statement
        .query_map(params![now, limit], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(expired)
}

/// Whether a pending approval's validity has passed (a cheap read before `expire_due`'s write).
pub fn any_due(conn: &Connection, now: UnixTime) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM approvals WHERE state = 'pending' AND expires_at <= ?1)",
        )?
        .query_row(params![now], |row| row.get(0))?)
}

/// Lets in the one login an approval approved: marks it used and ends its transaction, both or
/// neither. False when it is not approved, was used already, or its transaction expired.
pub fn consume(conn: &Connection, transaction_id: &str, now: UnixTime) -> Result<bool> {
    execute_cached(conn, "SAVEPOINT consume_approval")?;
    let used = conn
        .prepare_cached(
            "UPDATE approvals SET used_at = ?2
             WHERE transaction_id = ?1 AND state = 'approved' AND used_at IS NULL",
        )?
        .execute(params![transaction_id, now])?
        == 1;
    let ended = used
        && conn
            .prepare_cached("DELETE FROM auth_transactions WHERE id = ?1 AND expires_at > ?2")?
            .execute(params![transaction_id, now])?
            == 1;
    if ended {
        conn.prepare_cached(
            "DELETE FROM challenges WHERE transaction_id = ?1 AND purpose = 'auth'",
        )?
        .execute(params![transaction_id])?;
    } else {
        execute_cached(conn, "ROLLBACK TO consume_approval")?;
    }
    execute_cached(conn, "RELEASE consume_approval")?;
    Ok(ended)
}

/// Forgets approvals decided or expired before `before` (their answers are no longer asked).
pub fn purge(conn: &Connection, before: UnixTime) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM approvals WHERE state <> 'pending' AND expires_at <= ?1")?
        .execute(params![before])?)
}

pub fn settings(conn: &Connection, resource_id: i64) -> Result<Option<ApprovalSettings>> {
    optional(
        conn.prepare_cached(
            "SELECT approvals_allowed, approval_number_matching, approval_deny_locks
             FROM resources WHERE id = ?1",
        )?
        .query_row(params![resource_id], |row| {
            Ok(ApprovalSettings {
                allowed: row.get(0)?,
                number_matching: row.get(1)?,
                deny_locks: row.get(2)?,
            })
        }),
    )
}

/// Changes the settings given and audits the change; None when there is no such resource.
pub fn change_settings(
    conn: &Connection,
    resource_id: i64,
    change: ApprovalSettingsChange,
    now: UnixTime,
    entry: &AuditEntry,
) -> Result<Option<ApprovalSettings>> {
    let Some(mut settings) = settings(conn, resource_id)? else {
        return Ok(None);
    };
    if change.is_empty() {
        return Ok(Some(settings));
    }
    settings = settings.changed(change);
    conn.prepare_cached(
        "UPDATE resources SET approvals_allowed = ?2, approval_number_matching = ?3,
                approval_deny_locks = ?4, updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![
        resource_id,
        settings.allowed,
        settings.number_matching,
        settings.deny_locks,
        now
    ])?;
    audit::insert(conn, entry)?;
    Ok(Some(settings))
}

impl Store {
    /// Begins a transaction answered by an approval, and queues its message (see `create`).
    pub async fn create_approval(&self, new: NewApproval, now: UnixTime) -> Result<i64> {
        self.write(move |conn| create(conn, &new, now)).await
    }

    pub async fn approval(&self, id: i64) -> Result<Option<Approval>> {
        self.read(move |conn| get(conn, id)).await
    }

    pub async fn approval_of_transaction(
        &self,
        transaction_id: String,
    ) -> Result<Option<Approval>> {
        self.read(move |conn| of_transaction(conn, &transaction_id))
            .await
    }

    pub async fn set_approval_message(&self, id: i64, message_id: i64) -> Result<bool> {
        self.write(move |conn| set_message(conn, id, message_id))
            .await
    }

    pub async fn decide_approval(
        &self,
        id: i64,
        presser: Presser,
        choice: Choice,
        now: UnixTime,
    ) -> Result<Decision> {
        self.write(move |conn| decide(conn, id, presser, choice, now))
            .await
    }

    pub async fn expire_approvals(&self, now: UnixTime, limit: i64) -> Result<Vec<Approval>> {
        self.write(move |conn| expire_due(conn, now, limit)).await
    }

    /// Ends the pending approval of a transaction now, its login given up (a RADIUS request
    /// held until its wait ran out): the expiry then marks it expired and its message says so,
    /// and a later press decides nothing. False when there was none pending.
    pub async fn end_pending_approval(
        &self,
        transaction_id: String,
        now: UnixTime,
    ) -> Result<bool> {
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE approvals SET expires_at = ?2
                     WHERE transaction_id = ?1 AND state = 'pending' AND expires_at > ?2",
                )?
                .execute(params![transaction_id, now])?
                == 1)
        })
        .await
    }

    pub async fn approvals_due(&self, now: UnixTime) -> Result<bool> {
        self.read(move |conn| any_due(conn, now)).await
    }

    pub async fn consume_approval(&self, transaction_id: String, now: UnixTime) -> Result<bool> {
        self.write(move |conn| consume(conn, &transaction_id, now))
            .await
    }

    pub async fn purge_approvals(&self, before: UnixTime) -> Result<usize> {
        self.write(move |conn| purge(conn, before)).await
    }

    pub async fn approval_settings(&self, resource_id: i64) -> Result<Option<ApprovalSettings>> {
        self.read(move |conn| settings(conn, resource_id)).await
    }

    pub async fn change_approval_settings(
        &self,
        resource_id: i64,
        change: ApprovalSettingsChange,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<Option<ApprovalSettings>> {
        self.write(move |conn| change_settings(conn, resource_id, change, now, &entry))
            .await
    }
}
