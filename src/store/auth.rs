//! The statements behind an authentication: loading everything one decision needs in one read,
//! and applying its outcome in one write (compare-and-set on the replay floor, fail counters,
//! challenges and their outbox messages, and the audit line, all in the same transaction).

use rusqlite::{Connection, params};

use super::audit::{self, Lines};
use super::directory::{Resource, Token, User, find_token};
use super::hot::{HotRows, Rows};
use super::logins::{self, Account, Counted, LockNotice, Record};
pub use super::transactions::NewTransaction;
use super::transactions::insert_transaction;
use super::{AuditEntry, Result, Store, UnixTime, execute_cached, optional};
use crate::domain::IdOrName;

/// A live challenge of a token.
#[derive(Debug, Clone)]
pub struct ActiveChallenge {
    pub id: i64,
    pub token_id: i64,
    pub transaction_id: String,
    pub code_hash: Vec<u8>,
    pub tries_left: i64,
    pub created_at: UnixTime,
}

/// The live transaction an attempt names, when it is this user's in this resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTransaction {
    pub id: String,
    /// The user's password was checked when the transaction was made, so the transaction
    /// stands in for it (once).
    pub password_checked: bool,
}

/// Everything an authentication decision needs, read in one go.
#[derive(Debug, Clone, Default)]
pub struct AuthContext {
    pub resource: Option<Resource>,
    pub user: Option<User>,
    pub user_assigned: bool,
    /// The user's tokens assigned to the resource (or the one named token), in id order.
    pub tokens: Vec<Token>,
    pub challenges: Vec<ActiveChallenge>,
    /// The user's sent codes that expired unanswered (kept until the token's next code
    /// replaces them): a code typed too late is told apart from a wrong one.
    pub expired_challenges: Vec<ActiveChallenge>,
    /// A token was named that exists but is not the user's or not in the resource.
    pub token_mismatch: bool,
    /// The attempt names a login no user has, and there are directories that may know it
    /// (`directories::lookup`).
    pub directory_may_know: bool,
    /// The transaction named, when it is live and this user's in this resource.
    pub transaction: Option<LiveTransaction>,
    /// The approval of the transaction named, when it has one in this resource (it outlives
    /// its transaction: a denied or used approval is still told).
    pub approval: Option<super::approvals::Approval>,
    /// The account the attempt counts against (the user, or the token used alone) and its
    /// failed logins in a row; None when the attempt names no account that exists.
    pub failures: Option<(Counted, Record)>,
}

/// Which objects an authentication names.
#[derive(Debug, Clone)]
pub struct AuthTarget {
    pub resource: IdOrName,
    pub user: Option<IdOrName>,
    pub token: Option<IdOrName>,
    /// The transaction of an earlier `prepare` or password check, when the attempt gives one.
    pub transaction: Option<String>,
    /// The client's address when the front end knows it first-hand (a portal's login): failed
    /// logins are then counted per account and address too.
    pub address: Option<String>,
}

pub fn load_context(conn: &Connection, target: &AuthTarget, now: UnixTime) -> Result<AuthContext> {
    load(conn, Rows::Fresh, target, now)
}

/// `load_context` on the writer's connection, through the rows it keeps.
fn load_kept(
    conn: &Connection,
    hot: &mut HotRows,
    target: &AuthTarget,
    now: UnixTime,
) -> Result<AuthContext> {
    hot.check(conn)?;
    load(conn, Rows::Kept(hot), target, now)
}

fn load(
    conn: &Connection,
    mut rows: Rows<'_>,
    target: &AuthTarget,
    now: UnixTime,
) -> Result<AuthContext> {
    let mut context = AuthContext {
        resource: rows.resource(conn, &target.resource)?,
        ..AuthContext::default()
    };
    let Some(resource) = &context.resource else {
        return Ok(context);
    };
    let named_token = match &target.token {
        Some(key) => match find_token(conn, key)? {
            Some(token) => Some(token),
            None => {
                context.token_mismatch = true;
                return Ok(context);
            }
        },
        None => None,
    };
    context.user = match (&target.user, &named_token) {
        (Some(key), _) => rows.user(conn, key)?,
        (None, Some(token)) => match token.user_id {
            Some(id) => rows.user(conn, &IdOrName::Id(id))?,
            None => None,
        },
        (None, None) => None,
    };
    if context.user.is_none()
        && let Some(IdOrName::Name(_)) = &target.user
    {
        context.directory_may_know = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM directories)")?
            .query_row([], |row| row.get(0))?;
    }
    let account = match (&target.user, &named_token, &context.user) {
        (None, Some(token), _) => Some(Account::Token(token.id)),
        (Some(_), _, Some(user)) => Some(Account::User(user.id)),
        _ => None,
    };
    let counted = Counted {
        // A login no user has reads the failures of a user id no row has (ids start at 1), so
        // that its refusal costs what a known user's does.
        account: account.unwrap_or(Account::User(0)),
        address: target.address.as_deref().map(logins::address_key),
    };
    let record = logins::load(conn, &counted)?;
    if account.is_some() {
        context.failures = Some((counted, record));
    }
    // Likewise for the user's assignment and tokens.
    let user_id = context.user.as_ref().map_or(0, |user| user.id);
    let (assigned, tokens) = rows.assigned_tokens(conn, user_id, resource.id)?;
    let Some(user) = &context.user else {
        return Ok(context);
    };
    context.user_assigned = assigned;
    context.tokens = match named_token {
        Some(named) => {
            let found: Vec<Token> = tokens.into_iter().filter(|t| t.id == named.id).collect();
            context.token_mismatch = found.is_empty();
            found
        }
        None => tokens,
    };
    if context.tokens.iter().any(|t| t.kind.is_delivered()) {
        let mut statement = conn.prepare_cached(
            "SELECT c.id, c.token_id, c.transaction_id, c.code_hash, c.tries_left, c.created_at,
                    c.expires_at
             FROM challenges c JOIN tokens t ON t.id = c.token_id
             WHERE t.user_id = ?1 AND c.purpose = 'auth' AND c.tries_left > 0",
        )?;
        let challenges = statement
            .query_map(params![user.id], |row| {
                Ok((
                    ActiveChallenge {
                        id: row.get(0)?,
                        token_id: row.get(1)?,
                        transaction_id: row.get(2)?,
                        code_hash: row.get(3)?,
                        tries_left: row.get(4)?,
                        created_at: row.get(5)?,
                    },
                    row.get::<_, UnixTime>(6)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (challenge, expires_at) in challenges {
            if expires_at > now {
                context.challenges.push(challenge);
            } else {
                context.expired_challenges.push(challenge);
            }
        }
    }
    if let Some(id) = &target.transaction {
        context.approval = super::approvals::of_transaction(conn, id)?
            .filter(|approval| approval.resource_id == resource.id);
        context.transaction = optional(
            conn.prepare_cached(
                "SELECT password_checked FROM auth_transactions
                 WHERE id = ?1 AND resource_id = ?2 AND user_id = ?3 AND expires_at > ?4",
            )?
            .query_row(params![id, resource.id, user.id, now], |row| row.get(0)),
        )?
        .map(|password_checked| LiveTransaction {
            id: id.clone(),
            password_checked,
        });
    }
    Ok(context)
}

/// How an accepted code is claimed.
#[derive(Debug, Clone)]
pub enum Claim {
    /// A TOTP step or HOTP counter: accepted only if newer than the last one (replay floor).
    Step {
        token_id: i64,
        step: i64,
        drift: i64,
    },
    /// A sent code: its challenge is consumed.
    Challenge {
        token_id: i64,
        challenge_id: i64,
        /// The challenge's transaction: a transaction is one login, so its other codes go.
        transaction_id: String,
    },
}

/// What failed attempts cost.
#[derive(Debug, Clone, Default)]
pub struct Penalty {
    pub token_ids: Vec<i64>,
    pub fail_limit: i64,
    pub challenge_ids: Vec<i64>,
}

/// Claims an accepted code and records it; false when the claim was lost (a replay, or a
/// concurrent request with the same code won), in which case nothing but the audit changes.
pub fn claim(
    conn: &Connection,
    claim: Claim,
    transaction: Option<&str>,
    auto_unlock: Option<i64>,
    now: UnixTime,
    mut entry: AuditEntry,
    lines: &mut Lines,
) -> Result<bool> {
    let won = match transaction {
        None => claim_code(conn, claim.clone(), auto_unlock, now)?,
        // The code and the transaction it answers are claimed together, or neither.
        Some(id) => {
            execute_cached(conn, "SAVEPOINT answer")?;
            let won = claim_code(conn, claim.clone(), auto_unlock, now)?
                && answer_transaction(conn, id, now)?;
            if !won {
                execute_cached(conn, "ROLLBACK TO answer")?;
            }
            execute_cached(conn, "RELEASE answer")?;
            won
        }
    };
    if won {
        // A transaction is one login: the other codes sent for it are void now.
        if let Claim::Challenge { transaction_id, .. } = &claim {
            answer_transaction(conn, transaction_id, now)?;
        }
    } else {
        entry.result = "rejected".into();
        entry.reason = Some("replayed".into());
    }
    lines.write(conn, entry)?;
    Ok(won)
}

/// Claims an accepted code: the step above the replay floor, or the live challenge.
fn claim_code(
    conn: &Connection,
    claim: Claim,
    auto_unlock: Option<i64>,
    now: UnixTime,
) -> Result<bool> {
    let unlocked_before = auto_unlock.map(|seconds| now - seconds).unwrap_or(i64::MIN);
    Ok(match claim {
        Claim::Step { token_id, step, drift } => {
            conn.prepare_cached(
                "UPDATE tokens SET last_step = ?2, drift = ?3, fail_count = 0, locked_at = NULL, last_used_at = ?4
                 WHERE id = ?1 AND (last_step IS NULL OR last_step < ?2)
                   AND enabled = 1 AND (locked_at IS NULL OR locked_at <= ?5)",
            )?
            .execute(params![token_id, step, drift, now, unlocked_before])?
                == 1
        }
        Claim::Challenge {
            token_id,
            challenge_id,
            ..
        } => {
            let consumed = conn
                .prepare_cached("DELETE FROM challenges WHERE id = ?1 AND tries_left > 0 AND expires_at > ?2")?
                .execute(params![challenge_id, now])?
                == 1;
            consumed
                && conn
                    .prepare_cached(
                        "UPDATE tokens SET fail_count = 0, locked_at = NULL, last_used_at = ?2
                         WHERE id = ?1 AND enabled = 1 AND (locked_at IS NULL OR locked_at <= ?3)",
                    )?
                    .execute(params![token_id, now, unlocked_before])?
                    == 1
        }
    })
}

/// Answers a transaction: it ends, and the codes sent for it go with it; an approval still
/// pending for it expires now (its message then says so). False when it was answered already
/// or expired.
fn answer_transaction(conn: &Connection, id: &str, now: UnixTime) -> Result<bool> {
    let ended = conn
        .prepare_cached("DELETE FROM auth_transactions WHERE id = ?1 AND expires_at > ?2")?
        .execute(params![id, now])?;
    conn.prepare_cached("DELETE FROM challenges WHERE transaction_id = ?1 AND purpose = 'auth'")?
        .execute(params![id])?;
    conn.prepare_cached(
        "UPDATE approvals SET expires_at = ?2
         WHERE transaction_id = ?1 AND state = 'pending' AND expires_at > ?2",
    )?
    .execute(params![id, now])?;
    Ok(ended == 1)
}

/// Voids the token's live sign-in codes: they went to a chat or an address the token no longer
/// uses, so neither they nor the wait before another code may count any more.
pub fn void_codes(conn: &Connection, token_id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM challenges WHERE token_id = ?1 AND purpose = 'auth'")?
        .execute(params![token_id])?;
    Ok(())
}

/// Counts a failed attempt against every token that could have answered, locking those that
/// reach the resource's limit, and uses up a try of their live challenges.
pub fn penalise(
    conn: &Connection,
    penalty: &Penalty,
    now: UnixTime,
    entry: AuditEntry,
    lines: &mut Lines,
) -> Result<()> {
    let mut fail = conn.prepare_cached(
        "UPDATE tokens SET fail_count = fail_count + 1,
                locked_at = CASE WHEN locked_at IS NULL AND fail_count + 1 >= ?2 THEN ?3 ELSE locked_at END
         WHERE id = ?1",
    )?;
    for token_id in &penalty.token_ids {
        fail.execute(params![token_id, penalty.fail_limit, now])?;
    }
    if !penalty.challenge_ids.is_empty() {
        let mut spend =
            conn.prepare_cached("UPDATE challenges SET tries_left = tries_left - 1 WHERE id = ?1")?;
        let mut void =
            conn.prepare_cached("DELETE FROM challenges WHERE id = ?1 AND tries_left <= 0")?;
        for challenge_id in &penalty.challenge_ids {
            spend.execute(params![challenge_id])?;
            void.execute(params![challenge_id])?;
        }
    }
    lines.write(conn, entry)
}

/// What an authentication decided to write.
#[derive(Debug)]
pub enum Outcome {
    /// Claim a matched code; the audit line says "replayed" if the claim is lost.
    Claim {
        claim: Claim,
        /// The transaction the code answers, when the attempt named a live one.
        transaction: Option<String>,
        auto_unlock: Option<i64>,
        entry: AuditEntry,
    },
    /// Count a failed attempt.
    Penalise { penalty: Penalty, entry: AuditEntry },
    /// Let in the login an approval approved (once); the audit line says "approval_used" if
    /// it was let in before or its transaction ended.
    Approval {
        transaction_id: String,
        entry: AuditEntry,
    },
    /// Only the audit line.
    Record(AuditEntry),
    /// Nothing: the request was refused before it reached a decision.
    Nothing,
}

/// What an attempt's answer does to its account's failed logins in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Nothing,
    Failure,
    Success,
    /// A success if the claim is won, a failure if it is lost (a replay).
    ByClaim,
}

/// An attempt's account, and what its answer does to the account's failures.
#[derive(Debug, Clone)]
pub struct Tally {
    pub counted: Counted,
    pub count: Count,
    /// Whether a success has anything to write (failures to reset, an address to remember),
    /// so that the usual success writes nothing more.
    pub success_writes: bool,
    /// The lock's audit line, should this failure lock the account.
    pub notice: LockNotice,
}

/// What writing an outcome came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// False when the outcome's claim was lost (a replay).
    pub won: bool,
    /// The attempt's failure locked its account.
    pub locked: bool,
}

/// Writes an outcome and its tally.
pub fn apply(
    conn: &Connection,
    outcome: Outcome,
    tally: Option<&Tally>,
    now: UnixTime,
    lines: &mut Lines,
) -> Result<Applied> {
    let won = write_outcome(conn, outcome, now, lines)?;
    let mut locked = false;
    if let Some(tally) = tally {
        match (tally.count, won) {
            (Count::Nothing, _) => {}
            (Count::Failure, _) | (Count::ByClaim, false) => {
                locked = logins::fail(conn, &tally.counted, &tally.notice, now)?;
            }
            (Count::Success, _) | (Count::ByClaim, true) => {
                if tally.success_writes {
                    logins::succeed(conn, &tally.counted, now)?;
                }
            }
        }
    }
    Ok(Applied { won, locked })
}

/// Writes an outcome; false when its claim was lost.
fn write_outcome(
    conn: &Connection,
    outcome: Outcome,
    now: UnixTime,
    lines: &mut Lines,
) -> Result<bool> {
    match outcome {
        Outcome::Claim {
            claim: claimed,
            transaction,
            auto_unlock,
            entry,
        } => claim(
            conn,
            claimed,
            transaction.as_deref(),
            auto_unlock,
            now,
            entry,
            lines,
        ),
        Outcome::Penalise { penalty, entry } => {
            penalise(conn, &penalty, now, entry, lines).map(|()| true)
        }
        Outcome::Approval {
            transaction_id,
            mut entry,
        } => {
            let won = super::approvals::consume(conn, &transaction_id, now)?;
            if !won {
                entry.result = "rejected".into();
                entry.reason = Some("approval_used".into());
            }
            lines.write(conn, entry)?;
            Ok(won)
        }
        Outcome::Record(entry) => lines.write(conn, entry).map(|()| true),
        Outcome::Nothing => Ok(true),
    }
}

/// A challenge to create, with its message.
#[derive(Debug, Clone)]
pub struct NewChallenge {
    pub token_id: i64,
    pub code_hash: Vec<u8>,
    pub channel: &'static str,
    pub recipient: String,
    pub subject: String,
    /// The sealed message (it carries the code).
    pub sealed_body: Vec<u8>,
}

/// What one `prepare` or one password check asks of the user, written together.
#[derive(Debug, Clone)]
pub struct Asked {
    pub transaction: NewTransaction,
    /// The codes to send now, each with its message.
    pub challenges: Vec<NewChallenge>,
    /// Live challenges sent moments ago that count for this transaction too, instead of a new
    /// code each.
    pub reused: Vec<i64>,
    pub tries: i64,
    /// The audit lines: what was asked, then each send that was refused.
    pub entries: Vec<AuditEntry>,
}

/// Begins a transaction, creates its challenges and queues their messages in the same
/// transaction of the database, so that a crash can lose neither half. A new challenge
/// replaces the token's previous one.
pub fn create_challenges(conn: &Connection, asked: &Asked, now: UnixTime) -> Result<()> {
    let transaction = &asked.transaction;
    insert_transaction(conn, transaction, now)?;
    let expires_at = transaction.expires_at;
    for challenge in &asked.challenges {
        conn.prepare_cached(
            "INSERT INTO challenges (transaction_id, token_id, purpose, code_hash, tries_left, expires_at, created_at)
             VALUES (?1, ?2, 'auth', ?3, ?4, ?5, ?6)
             ON CONFLICT (token_id, purpose) DO UPDATE SET transaction_id = excluded.transaction_id,
                 code_hash = excluded.code_hash, tries_left = excluded.tries_left,
                 expires_at = excluded.expires_at, created_at = excluded.created_at",
        )?
        .execute(params![transaction.id, challenge.token_id, challenge.code_hash, asked.tries, expires_at, now])?;
        let challenge_id: i64 = conn
            .prepare_cached("SELECT id FROM challenges WHERE token_id = ?1 AND purpose = 'auth'")?
            .query_row(params![challenge.token_id], |row| row.get(0))?;
        conn.prepare_cached(
            "INSERT INTO outbox (channel, recipient, subject, body, challenge_id, token_id, next_attempt_at, expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7)",
        )?
        .execute(params![
            challenge.channel,
            challenge.recipient,
            challenge.subject,
            challenge.sealed_body,
            challenge_id,
            challenge.token_id,
            now,
            expires_at
        ])?;
    }
    for challenge_id in &asked.reused {
        conn.prepare_cached(
            "UPDATE challenges SET transaction_id = ?2 WHERE id = ?1 AND purpose = 'auth'",
        )?
        .execute(params![challenge_id, transaction.id])?;
    }
    for entry in &asked.entries {
        audit::insert(conn, entry)?;
    }
    Ok(())
}

/// How a user's codes can go out now: each channel's stored settings, and how many messages
/// the user was sent on each since `since`.
#[derive(Debug, Clone, Default)]
pub struct Sending {
    pub settings: Vec<(&'static str, super::delivery_settings::ChannelSettings)>,
    pub sent_since: Vec<(String, u32)>,
}

impl Sending {
    /// The messages sent through `channel` since the time asked for.
    pub fn sent(&self, channel: &str) -> u32 {
        self.sent_since
            .iter()
            .find(|(name, _)| name == channel)
            .map_or(0, |(_, count)| *count)
    }
}

fn sending(conn: &Connection, user_id: i64, since: UnixTime) -> Result<Sending> {
    let settings = ["mail", "sms", "bot"]
        .into_iter()
        .map(|channel| Ok((channel, super::delivery_settings::load(conn, channel)?)))
        .collect::<Result<Vec<_>>>()?;
    let sent_since = conn
        .prepare_cached(
            "SELECT o.channel, COUNT(*) FROM outbox o JOIN tokens t ON t.id = o.token_id
             WHERE t.user_id = ?1 AND o.created_at > ?2 GROUP BY o.channel",
        )?
        .query_map(params![user_id, since], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Sending {
        settings,
        sent_since,
    })
}

impl Store {
    pub async fn auth_context(&self, target: AuthTarget, now: UnixTime) -> Result<AuthContext> {
        self.read(move |conn| load_context(conn, &target, now))
            .await
    }

    /// Writes what an authentication decided, and what it does to the account's failures.
    pub async fn apply(
        &self,
        outcome: Outcome,
        tally: Option<Tally>,
        now: UnixTime,
    ) -> Result<Applied> {
        self.write(move |conn| apply(conn, outcome, tally.as_ref(), now, &mut Lines::Now))
            .await
    }

    /// Reads the context, lets `decide` judge it and writes its outcome, in one job of the
    /// writer: the hot path of authentication. One handoff instead of a read and then a write,
    /// a page cache that stays warm (no other connection writes, so the writer's never goes
    /// stale as the readers' does at every commit), the resource, user and tokens from the rows
    /// the writer keeps (`hot`), and a decision taken on the state it is written against.
    /// Answers what `decide` returned, and what writing it came to.
    pub async fn judge<T, F>(
        &self,
        target: AuthTarget,
        now: UnixTime,
        decide: F,
    ) -> Result<(T, Applied)>
    where
        T: Send + 'static,
        F: FnOnce(&AuthContext) -> (T, Outcome, Option<Tally>) + Send + 'static,
    {
        self.write_kept(move |conn, hot, lines| {
            let context = load_kept(conn, hot, &target, now)?;
            let (decided, outcome, tally) = decide(&context);
            let mut lines = Lines::AfterBatch(lines);
            Ok((
                decided,
                apply(conn, outcome, tally.as_ref(), now, &mut lines)?,
            ))
        })
        .await
    }

    /// Begins a transaction with its challenges and messages (see `create_challenges`).
    pub async fn create_challenges(&self, asked: Asked, now: UnixTime) -> Result<()> {
        self.write(move |conn| create_challenges(conn, &asked, now))
            .await
    }

    /// How the user's codes can go out now, and what was sent to them since `since`.
    pub async fn sending(&self, user_id: i64, since: UnixTime) -> Result<Sending> {
        self.read(move |conn| sending(conn, user_id, since)).await
    }

    /// Forgets the transactions that expired unanswered.
    pub async fn purge_expired_transactions(&self, now: UnixTime) -> Result<usize> {
        self.write(move |conn| {
            Ok(conn
                .prepare_cached("DELETE FROM auth_transactions WHERE expires_at <= ?1")?
                .execute(params![now])?)
        })
        .await
    }

    /// When a live transaction expires; None once it is answered or expired.
    pub async fn transaction_expiry(&self, id: String, now: UnixTime) -> Result<Option<UnixTime>> {
        self.read(move |conn| {
            optional(
                conn.prepare_cached(
                    "SELECT expires_at FROM auth_transactions WHERE id = ?1 AND expires_at > ?2",
                )?
                .query_row(params![id, now], |row| row.get(0)),
            )
        })
        .await
    }

    /// Takes a transaction that stands in for a checked password, once (a compare-and-set that
    /// must end one row): only while it is live, in this resource, and made when the password
    /// was checked. Its codes stay, for the code typed with it to be judged against. The user's
    /// id, or None when it was taken already, expired, or is not such a transaction.
    pub async fn take_password_transaction(
        &self,
        id: String,
        resource_id: i64,
        now: UnixTime,
    ) -> Result<Option<i64>> {
        self.write(move |conn| {
            optional(
                conn.prepare_cached(
                    "DELETE FROM auth_transactions
                     WHERE id = ?1 AND resource_id = ?2 AND password_checked = 1 AND expires_at > ?3
                     RETURNING user_id",
                )?
                .query_row(params![id, resource_id, now], |row| row.get(0)),
            )
        })
        .await
    }

    /// Voids the codes sent for a transaction: its login is over.
    pub async fn void_transaction_codes(&self, id: String) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM challenges WHERE transaction_id = ?1 AND purpose = 'auth'",
            )?
            .execute(params![id])?;
            Ok(())
        })
        .await
    }
}
