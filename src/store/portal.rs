//! The self-service portal's statements: logins in progress, the user's tokens within one
//! resource, and enrolment by the user (a pending token with its confirmation code and the
//! message that carries it, created together).

use rusqlite::{Connection, params};

use super::audit::{self, AuditEntry};
use super::directory::{TOKEN_COLUMNS, Token, USER_COLUMNS, User, token_from_row, user_from_row};
use super::logins::{Account, Counted, address_key};
use super::sessions::NewSession;
use super::tokens::{Outcome, Refused, TokenCreation, TokenRecord};
use super::{Message, Result, Store, UnixTime, optional};
use crate::domain::login_key;

/// What a portal login in progress still asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStage {
    Password,
    EmailCode,
    Otp,
}

impl LoginStage {
    fn as_str(self) -> &'static str {
        match self {
            LoginStage::Password => "password",
            LoginStage::EmailCode => "email_code",
            LoginStage::Otp => "otp",
        }
    }

    fn parse(text: &str) -> LoginStage {
        match text {
            "email_code" => LoginStage::EmailCode,
            "otp" => LoginStage::Otp,
            _ => LoginStage::Password,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PortalLogin {
    pub resource_id: i64,
    pub user_id: Option<i64>,
    pub login: String,
    pub stage: LoginStage,
    pub code_hash: Option<Vec<u8>>,
    pub tries_left: i64,
    pub transaction_id: Option<String>,
    pub sent_at: Option<UnixTime>,
    pub csrf_token: String,
    pub expires_at: UnixTime,
    /// The transaction of the approval in Telegram the login asked for, if any.
    pub approval_transaction: Option<String>,
}

pub struct NewPortalLogin {
    pub id_hash: Vec<u8>,
    pub resource_id: i64,
    pub user_id: Option<i64>,
    pub login: String,
    pub stage: LoginStage,
    /// Wrong passwords or codes the login may take before it is dropped.
    pub tries: i64,
    /// The emailed verification code's hash and its message.
    pub code: Option<(Vec<u8>, Message)>,
    pub csrf_token: String,
    pub expires_at: UnixTime,
}

/// A confirmation code to send for a new MAIL or SMS token.
#[derive(Debug, Clone)]
pub struct EnrolCode {
    pub code_hash: Vec<u8>,
    pub tries: i64,
    pub message: Message,
}

/// The live confirmation code of a pending token.
#[derive(Debug, Clone)]
pub struct PendingCode {
    pub challenge_id: i64,
    pub code_hash: Vec<u8>,
    pub tries_left: i64,
    pub created_at: UnixTime,
}

/// What a wrong confirmation code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Tries remain.
    TryAgain,
    /// The tries are used up: the pending token was removed.
    Discarded,
}

fn queue(
    conn: &Connection,
    message: &Message,
    challenge_id: Option<i64>,
    token_id: Option<i64>,
    now: UnixTime,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (channel, recipient, subject, body, challenge_id, token_id, next_attempt_at, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7)",
    )?
    .execute(params![
        message.channel,
        message.recipient,
        message.subject,
        message.sealed_body,
        challenge_id,
        token_id,
        now,
        message.expires_at
    ])?;
    Ok(())
}

/// Replaces the token's enrolment code and queues its message.
fn put_enrol_code(conn: &Connection, token_id: i64, code: &EnrolCode, now: UnixTime) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO challenges (transaction_id, token_id, purpose, code_hash, tries_left, expires_at, created_at)
         VALUES ('', ?1, 'enrol', ?2, ?3, ?4, ?5)
         ON CONFLICT (token_id, purpose) DO UPDATE SET code_hash = excluded.code_hash,
             tries_left = excluded.tries_left, expires_at = excluded.expires_at,
             created_at = excluded.created_at",
    )?
    .execute(params![
        token_id,
        code.code_hash,
        code.tries,
        code.message.expires_at,
        now
    ])?;
    let challenge_id: i64 = conn
        .prepare_cached("SELECT id FROM challenges WHERE token_id = ?1 AND purpose = 'enrol'")?
        .query_row(params![token_id], |row| row.get(0))?;
    queue(conn, &code.message, Some(challenge_id), Some(token_id), now)
}

fn login_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PortalLogin> {
    Ok(PortalLogin {
        resource_id: row.get(0)?,
        user_id: row.get(1)?,
        login: row.get(2)?,
        stage: LoginStage::parse(&row.get::<_, String>(3)?),
        code_hash: row.get(4)?,
        tries_left: row.get(5)?,
        transaction_id: row.get(6)?,
        sent_at: row.get(7)?,
        csrf_token: row.get(8)?,
        expires_at: row.get(9)?,
        approval_transaction: row.get(10)?,
    })
}

impl Store {
    /// The user by login (its key: any case, either normal form) when enabled and assigned to
    /// the resource; None otherwise.
    pub async fn portal_user(&self, resource_id: i64, login: String) -> Result<Option<User>> {
        self.read(move |conn| {
            optional(
                conn.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE login_key = ?2 AND enabled = 1
                       AND EXISTS (SELECT 1 FROM user_resources WHERE resource_id = ?1 AND user_id = users.id)"
                ))?
                .query_row(params![resource_id, login_key(&login)], user_from_row),
            )
        })
        .await
    }

    /// The user by id when still enabled and assigned to the resource.
    pub async fn portal_user_by_id(&self, resource_id: i64, user_id: i64) -> Result<Option<User>> {
        self.read(move |conn| {
            optional(
                conn.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE id = ?2 AND enabled = 1
                       AND EXISTS (SELECT 1 FROM user_resources WHERE resource_id = ?1 AND user_id = users.id)"
                ))?
                .query_row(params![resource_id, user_id], user_from_row),
            )
        })
        .await
    }

    /// Starts a login (and queues its emailed code), dropping logins that have expired.
    pub async fn start_portal_login(
        &self,
        login: NewPortalLogin,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<()> {
        self.write(move |conn| {
            conn.execute("DELETE FROM portal_logins WHERE expires_at <= ?1", params![now])?;
            let code_hash = login.code.as_ref().map(|(hash, _)| hash.clone());
            let tries = login.tries;
            conn.execute(
                "INSERT INTO portal_logins (id_hash, resource_id, user_id, login, stage, code_hash, tries_left,
                                            sent_at, csrf_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?10)",
                params![
                    login.id_hash,
                    login.resource_id,
                    login.user_id,
                    login.login,
                    login.stage.as_str(),
                    code_hash,
                    tries,
                    now,
                    login.csrf_token,
                    login.expires_at
                ],
            )?;
            if let Some((_, message)) = &login.code {
                queue(conn, message, None, None, now)?;
            }
            audit::insert(conn, &entry)
        })
        .await
    }

    pub async fn portal_login(
        &self,
        id_hash: Vec<u8>,
        now: UnixTime,
    ) -> Result<Option<PortalLogin>> {
        self.read(move |conn| {
            optional(
                conn.prepare_cached(
                    "SELECT resource_id, user_id, login, stage, code_hash, tries_left, transaction_id, sent_at,
                            csrf_token, expires_at, approval_transaction
                     FROM portal_logins WHERE id_hash = ?1 AND expires_at > ?2",
                )?
                .query_row(params![id_hash, now], login_from_row),
            )
        })
        .await
    }

    /// Moves a login on to the one-time password step.
    pub async fn portal_login_to_otp(
        &self,
        id_hash: Vec<u8>,
        transaction: Option<String>,
        now: UnixTime,
    ) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE portal_logins SET stage = 'otp', code_hash = NULL, tries_left = 0,
                        transaction_id = ?2, sent_at = CASE WHEN ?2 IS NULL THEN sent_at ELSE ?3 END
                 WHERE id_hash = ?1",
                params![id_hash, transaction, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Keeps the transaction of the approval in Telegram a login at its one-time password step
    /// asked for: false when the login is not at that step (or ended).
    pub async fn portal_login_to_approval(
        &self,
        id_hash: Vec<u8>,
        transaction: String,
        now: UnixTime,
    ) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE portal_logins SET approval_transaction = ?2
                 WHERE id_hash = ?1 AND stage = 'otp' AND expires_at > ?3",
                params![id_hash, transaction, now],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Takes a try of the login's first step (its password or emailed code) before the typed
    /// answer is checked, so that concurrent guesses get no more checks than the login has
    /// tries: whether one was left.
    pub async fn take_portal_login_try(&self, id_hash: Vec<u8>, now: UnixTime) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE portal_logins SET tries_left = tries_left - 1
                 WHERE id_hash = ?1 AND stage IN ('password', 'email_code') AND tries_left > 0
                   AND expires_at > ?2",
                params![id_hash, now],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Claims the login's emailed code once it was typed right: the login moves on past its
    /// first factor. False when another request claimed it first (or the login ended).
    pub async fn claim_portal_login_code(&self, id_hash: Vec<u8>, now: UnixTime) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE portal_logins SET stage = 'otp', code_hash = NULL, tries_left = 0
                 WHERE id_hash = ?1 AND stage = 'email_code' AND code_hash IS NOT NULL
                   AND expires_at > ?2",
                params![id_hash, now],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Records a wrong password or emailed code (its try was taken already); the login ends
    /// when no try is left.
    pub async fn portal_login_missed(&self, id_hash: Vec<u8>, entry: AuditEntry) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM portal_logins
                 WHERE id_hash = ?1 AND stage IN ('password', 'email_code') AND tries_left <= 0",
                params![id_hash],
            )?;
            audit::insert(conn, &entry)
        })
        .await
    }

    pub async fn end_portal_login(&self, id_hash: Vec<u8>) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM portal_logins WHERE id_hash = ?1",
                params![id_hash],
            )?;
            Ok(())
        })
        .await
    }

    /// Ends the login in progress and opens the portal session, with the audit line: one login,
    /// one session. False (and nothing written) when the login ended meanwhile, for instance
    /// because another request finished it.
    pub async fn finish_portal_login(
        &self,
        login_hash: Vec<u8>,
        session: NewSession,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<bool> {
        self.write(move |conn| {
            let ended = conn.execute(
                "DELETE FROM portal_logins WHERE id_hash = ?1 AND expires_at > ?2",
                params![login_hash, now],
            )?;
            if ended != 1 {
                return Ok(false);
            }
            super::sessions::insert(conn, &session, now)?;
            audit::insert(conn, &entry)?;
            // A whole login, whatever its steps were: the user's failures in a row end, and
            // the address becomes one she logged in from (where a lock made elsewhere does not
            // hold).
            if let Some(user_id) = session.user_id {
                let counted = Counted {
                    account: Account::User(user_id),
                    address: session.client_ip.as_deref().map(address_key),
                };
                super::logins::succeed(conn, &counted, now)?;
            }
            Ok(true)
        })
        .await
    }

    /// The user's tokens within the resource, oldest first.
    pub async fn portal_tokens(&self, user_id: i64, resource_id: i64) -> Result<Vec<Token>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_id = ?1
                   AND EXISTS (SELECT 1 FROM token_resources WHERE resource_id = ?2 AND token_id = tokens.id)
                 ORDER BY id"
            ))?;
            Ok(statement
                .query_map(params![user_id, resource_id], token_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Creates a token assigned to the user and the resource; for MAIL and SMS with its
    /// confirmation code and the message that carries it, in the same transaction.
    pub async fn enrol_portal_token(
        &self,
        creation: TokenCreation,
        code: Option<EnrolCode>,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        self.write(move |conn| {
            let record = match super::tokens::create(conn, creation, entry)? {
                Ok(record) => record,
                Err(refused) => return Ok(Err(refused)),
            };
            if let Some(code) = &code {
                put_enrol_code(conn, record.token.id, code, now)?;
            }
            Ok(Ok(record))
        })
        .await
    }

    /// The pending token's live confirmation code.
    pub async fn pending_code(&self, token_id: i64, now: UnixTime) -> Result<Option<PendingCode>> {
        self.read(move |conn| {
            optional(
                conn.prepare_cached(
                    "SELECT id, code_hash, tries_left, created_at FROM challenges
                     WHERE token_id = ?1 AND purpose = 'enrol' AND expires_at > ?2 AND tries_left > 0",
                )?
                .query_row(params![token_id, now], |row| {
                    Ok(PendingCode {
                        challenge_id: row.get(0)?,
                        code_hash: row.get(1)?,
                        tries_left: row.get(2)?,
                        created_at: row.get(3)?,
                    })
                }),
            )
        })
        .await
    }

    /// Sends a new confirmation code for a pending token.
    pub async fn resend_enrol_code(
        &self,
        token_id: i64,
        code: EnrolCode,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<()> {
        self.write(move |conn| {
            put_enrol_code(conn, token_id, &code, now)?;
            audit::insert(conn, &entry)
        })
        .await
    }

    /// Activates a pending token whose confirmation code was right: the code is used up in the
    /// same statement (compare-and-set), so it confirms once. False when it was already used.
    pub async fn confirm_enrol_code(
        &self,
        token_id: i64,
        challenge_id: i64,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<bool> {
        self.write(move |conn| {
            let used = conn.execute(
                "DELETE FROM challenges WHERE id = ?1 AND token_id = ?2 AND tries_left > 0 AND expires_at > ?3",
                params![challenge_id, token_id, now],
            )? == 1;
            if !used {
                return Ok(false);
            }
            conn.execute(
                "UPDATE tokens SET state = 'active', updated_at = ?2 WHERE id = ?1 AND state = 'pending'",
                params![token_id, now],
            )?;
            audit::insert(conn, &entry)?;
            Ok(true)
        })
        .await
    }

    /// Counts a wrong confirmation code of a pending token: against its code (MAIL, SMS) or its
    /// fail counter (TOTP). At `max_tries` the pending token is removed.
    pub async fn enrol_code_missed(
        &self,
        token_id: i64,
        max_tries: i64,
        entry: AuditEntry,
    ) -> Result<Miss> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE challenges SET tries_left = tries_left - 1 WHERE token_id = ?1 AND purpose = 'enrol'",
                params![token_id],
            )?;
            conn.execute(
                "UPDATE tokens SET fail_count = fail_count + 1 WHERE id = ?1 AND state = 'pending'",
                params![token_id],
            )?;
            let spent: bool = conn
                .prepare_cached(
                    "SELECT fail_count >= ?2 OR EXISTS (SELECT 1 FROM challenges
                              WHERE token_id = tokens.id AND purpose = 'enrol' AND tries_left <= 0)
                     FROM tokens WHERE id = ?1",
                )?
                .query_row(params![token_id, max_tries], |row| row.get(0))?;
            audit::insert(conn, &entry)?;
            if spent {
                conn.execute(
                    "DELETE FROM tokens WHERE id = ?1 AND state = 'pending'",
                    params![token_id],
                )?;
                return Ok(Miss::Discarded);
            }
            Ok(Miss::TryAgain)
        })
        .await
    }

    /// Removes a token the user gave up before it was ever active.
    pub async fn discard_pending_token(&self, token_id: i64, entry: AuditEntry) -> Result<bool> {
        self.write(move |conn| {
            let removed = conn.execute(
                "DELETE FROM tokens WHERE id = ?1 AND state = 'pending'",
                params![token_id],
            )? == 1;
            if removed {
                audit::insert(conn, &entry)?;
            }
            Ok(removed)
        })
        .await
    }

    /// Renames a token of the user.
    pub async fn rename_portal_token(
        &self,
        token_id: i64,
        name: String,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<Outcome<()>> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE tokens SET name = ?2, updated_at = ?3 WHERE id = ?1",
                params![token_id, name, now],
            )?;
            if changed == 0 {
                return Ok(Err(Refused::NotFound("token")));
            }
            audit::insert(conn, &entry)?;
            Ok(Ok(()))
        })
        .await
    }
}

/// A user's contact field the portal may change after a code sent to the new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactField {
    Email,
    Phone,
}

impl Store {
    /// Keeps (or clears, with None) what the portal session is in the middle of, sealed by the
    /// caller, and queues the message that carries its code in the same transaction.
    pub async fn set_portal_pending(
        &self,
        id_hash: Vec<u8>,
        sealed: Option<Vec<u8>>,
        message: Option<Message>,
        now: UnixTime,
        entry: Option<AuditEntry>,
    ) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE sessions SET pending_secret = ?2 WHERE id_hash = ?1 AND kind = 'portal'",
                params![id_hash, sealed],
            )?;
            if let Some(message) = &message {
                queue(conn, message, None, None, now)?;
            }
            if let Some(entry) = &entry {
                audit::insert(conn, entry)?;
            }
            Ok(())
        })
        .await
    }

    /// Replaces the user's email address or phone number with the verified new one and ends
    /// the session's pending change, with the audit line.
    pub async fn change_portal_contact(
        &self,
        id_hash: Vec<u8>,
        user_id: i64,
        field: ContactField,
        value: String,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<()> {
        self.write(move |conn| {
            let statement = match field {
                ContactField::Email => "UPDATE users SET email = ?2, updated_at = ?3 WHERE id = ?1",
                ContactField::Phone => "UPDATE users SET phone = ?2, updated_at = ?3 WHERE id = ?1",
            };
            conn.execute(statement, params![user_id, value, now])?;
            end_pending(conn, &id_hash, Some(&entry))
        })
        .await
    }
}

impl Store {
    /// Replaces a TOTP or HOTP token's seed with the reissued one whose first code matched at
    /// `step` (a time step, or the new counter: an HOTP token's counting starts afresh), and
    /// ends the session's pending reissue: from now on only the new seed works.
    pub async fn reissue_seed(
        &self,
        id_hash: Vec<u8>,
        token_id: i64,
        sealed_secret: Vec<u8>,
        step: i64,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE tokens SET secret = ?2, last_step = ?3, drift = 0, fail_count = 0,
                        locked_at = NULL, updated_at = ?4
                 WHERE id = ?1 AND kind IN ('TOTP', 'HOTP')",
                params![token_id, sealed_secret, step, now],
            )? == 1;
            end_pending(conn, &id_hash, changed.then_some(&entry))?;
            Ok(changed)
        })
        .await
    }

    /// Moves a MAIL or SMS token to the new address or number whose code was typed back, and
    /// ends the session's pending activation: from now on its codes go there.
    pub async fn reissue_destination(
        &self,
        id_hash: Vec<u8>,
        token_id: i64,
        destination: String,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE tokens SET destination = ?2, updated_at = ?3
                 WHERE id = ?1 AND kind IN ('MAIL', 'SMS')",
                params![token_id, destination, now],
            )? == 1;
            if changed {
                super::auth::void_codes(conn, token_id)?;
            }
            end_pending(conn, &id_hash, changed.then_some(&entry))?;
            Ok(changed)
        })
        .await
    }

    /// Gives an unassigned token to the user and this resource, with the moving factor of the
    /// code that proved the user holds it (a compare-and-set: a token claimed meanwhile, or a
    /// code already used, is refused).
    pub async fn claim_portal_token(
        &self,
        token_id: i64,
        user_id: i64,
        resource_id: i64,
        step: i64,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<bool> {
        self.write(move |conn| {
            let claimed = conn.execute(
                "UPDATE tokens SET user_id = ?2, last_step = ?3, updated_at = ?4
                 WHERE id = ?1 AND user_id IS NULL AND (last_step IS NULL OR last_step < ?3)",
                params![token_id, user_id, step, now],
            )? == 1;
            if !claimed {
                return Ok(false);
            }
            conn.execute(
                "INSERT OR IGNORE INTO token_resources (resource_id, token_id) VALUES (?1, ?2)",
                params![resource_id, token_id],
            )?;
            audit::insert(conn, &entry)?;
            Ok(true)
        })
        .await
    }
}

/// Ends a portal session's pending change (a reissue, a new address) and audits what it changed.
fn end_pending(conn: &Connection, id_hash: &[u8], entry: Option<&AuditEntry>) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET pending_secret = NULL WHERE id_hash = ?1 AND kind = 'portal'",
        params![id_hash],
    )?;
    match entry {
        Some(entry) => audit::insert(conn, entry),
        None => Ok(()),
    }
}
