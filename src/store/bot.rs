//! The messenger bot's side of BOT tokens: one-time activation codes (stored only as a hash),
//! binding a chat to a token when the bot receives its code, and the bot's update offset.

use rusqlite::{Connection, params};

use super::{AuditEntry, Result, Store, UnixTime, audit, optional, settings};

/// What an activation code bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    pub token_id: i64,
    pub token_name: String,
    pub token_serial: String,
}

/// The Telegram chat that activated a BOT token, as the bot saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub chat_id: i64,
    pub user_id: i64,
    /// The user's name and user name as Telegram gave them ("Alice Smith (@alice)").
    pub name: Option<String>,
}

/// A BOT token's activation, as a page polling for it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationStatus {
    /// pending, active, reactivate.
    pub state: String,
    pub enabled: bool,
    /// When the current activation code stops working (None: no code outstanding).
    pub code_expires_at: Option<UnixTime>,
    /// Whether a chat is bound.
    pub bound: bool,
}

/// Why a new activation code was not issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueRefused {
    NoSuchToken,
    NotABotToken,
}

fn offset_key(bot_id: u64) -> String {
    format!("delivery.bot.offset.{bot_id}")
}

/// Replaces the token's activation code; the previous one stops working.
pub fn issue_activation(
    conn: &Connection,
    token_id: i64,
    code_hash: &[u8],
    expires_at: UnixTime,
    now: UnixTime,
    entry: &AuditEntry,
) -> Result<std::result::Result<(), IssueRefused>> {
    let kind: Option<String> = optional(
        conn.prepare_cached("SELECT kind FROM tokens WHERE id = ?1")?
            .query_row(params![token_id], |row| row.get(0)),
    )?;
    match kind.as_deref() {
        None => return Ok(Err(IssueRefused::NoSuchToken)),
        Some("BOT") => {}
        Some(_) => return Ok(Err(IssueRefused::NotABotToken)),
    }
    conn.prepare_cached(
        "UPDATE tokens SET activation_code_hash = ?2, activation_expires_at = ?3, updated_at = ?4
         WHERE id = ?1",
    )?
    .execute(params![token_id, code_hash, expires_at, now])?;
    audit::insert(conn, entry)?;
    Ok(Ok(()))
}

/// Binds the chat to the token whose unexpired activation code hashes to `code_hash`, marks it
/// active and uses the code up. None (and nothing changed) for an unknown, expired or used code.
pub fn activate(
    conn: &Connection,
    code_hash: &[u8],
    chat: &Chat,
    now: UnixTime,
) -> Result<Option<Activated>> {
    let (chat_id, user_id) = (chat.chat_id, chat.user_id);
    let activated = optional(
        conn.prepare_cached(
            "UPDATE tokens SET state = 'active', bot_chat_id = ?2, bot_user_id = ?3, bot_chat_name = ?5,
                    activation_code_hash = NULL, activation_expires_at = NULL, updated_at = ?4
             WHERE activation_code_hash = ?1 AND kind = 'BOT' AND activation_expires_at > ?4
             RETURNING id, name, user_id, serial",
        )?
        .query_row(params![code_hash, chat_id, user_id, now, chat.name], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, String>(3)?,
            ))
        }),
    )?;
    let actor = format!("telegram:{user_id}");
    let Some((token_id, token_name, owner, token_serial)) = activated else {
        audit::insert(
            conn,
            &AuditEntry::new(now, actor, "token.bot_activate", "rejected")
                .reason("unknown, expired or used activation code"),
        )?;
        return Ok(None);
    };
    super::auth::void_codes(conn, token_id)?;
    audit::insert(
        conn,
        &AuditEntry {
            token_id: Some(token_id),
            user_id: owner,
            detail: Some(format!("chat={chat_id}")),
            ..AuditEntry::new(now, actor, "token.bot_activate", "ok")
        },
    )?;
    Ok(Some(Activated {
        token_id,
        token_name,
        token_serial,
    }))
}

/// The chat a BOT token is bound to, if any.
pub fn chat(conn: &Connection, token_id: i64) -> Result<Option<Chat>> {
    optional(
        conn.prepare_cached(
            "SELECT bot_chat_id, bot_user_id, bot_chat_name FROM tokens
             WHERE id = ?1 AND kind = 'BOT' AND bot_chat_id IS NOT NULL",
        )?
        .query_row(params![token_id], |row| {
            Ok(Chat {
                chat_id: row.get(0)?,
                user_id: row.get::<_, Option<i64>>(1)?.unwrap_or_default(),
                name: row.get(2)?,
            })
        }),
    )
}

pub fn activation_status(conn: &Connection, token_id: i64) -> Result<Option<ActivationStatus>> {
    optional(
        conn.prepare_cached(
            "SELECT state, enabled, activation_expires_at, bot_chat_id IS NOT NULL
             FROM tokens WHERE id = ?1 AND kind = 'BOT'",
        )?
        .query_row(params![token_id], |row| {
            Ok(ActivationStatus {
                state: row.get(0)?,
                enabled: row.get(1)?,
                code_expires_at: row.get(2)?,
                bound: row.get(3)?,
            })
        }),
    )
}

impl Store {
    pub async fn issue_bot_activation(
        &self,
        token_id: i64,
        code_hash: Vec<u8>,
        expires_at: UnixTime,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<std::result::Result<(), IssueRefused>> {
        self.write(move |conn| {
            issue_activation(conn, token_id, &code_hash, expires_at, now, &entry)
        })
        .await
    }

    pub async fn activate_bot_token(
        &self,
        code_hash: Vec<u8>,
        chat: Chat,
        now: UnixTime,
    ) -> Result<Option<Activated>> {
        self.write(move |conn| activate(conn, &code_hash, &chat, now))
            .await
    }

    /// The chat a BOT token is bound to, and the Telegram user whose chat it is.
    pub async fn bot_chat(&self, token_id: i64) -> Result<Option<Chat>> {
        self.read(move |conn| chat(conn, token_id)).await
    }

    pub async fn bot_activation_status(&self, token_id: i64) -> Result<Option<ActivationStatus>> {
        self.read(move |conn| activation_status(conn, token_id))
            .await
    }

    /// The first update the bot `bot_id` has not handled yet.
    pub async fn bot_offset(&self, bot_id: u64) -> Result<i64> {
        self.read(move |conn| {
            Ok(settings::get(conn, &offset_key(bot_id))?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        })
        .await
    }

    pub async fn set_bot_offset(&self, bot_id: u64, offset: i64, now: UnixTime) -> Result<()> {
        self.write(move |conn| settings::set(conn, &offset_key(bot_id), &offset.to_string(), now))
            .await
    }
}
