//! Managing tokens: creation, listing, changes, assignment to users, resynchronisation and
//! bulk import. Each operation that changes something is one write closure, so its checks, its
//! statements and its audit entry commit together or not at all.

use std::sync::LazyLock;

use rusqlite::{Connection, params, params_from_iter};

use super::audit::{self, AuditEntry};
use super::directory::{
    NewToken, TOKEN_COLUMNS, Token, assign_token_to_resource, find_resource, find_token, find_user,
    insert_token, token_by_id, token_from_row,
};
use super::{Result, Store, optional};
pub use crate::domain::Refused;
use crate::domain::{IdOrName, TokenKind, TokenState};

/// The answer of an operation that may be refused.
pub type Outcome<T> = std::result::Result<T, Refused>;

/// A token together with the login of its user, as management answers show it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub token: Token,
    pub user_login: Option<String>,
}

/// A token with the resources it is assigned to.
#[derive(Debug, Clone)]
pub struct TokenDetail {
    pub record: TokenRecord,
    pub resources: Vec<(i64, String)>,
    /// BOT: the Telegram chat its codes go to, if one is bound.
    pub bot_chat: Option<super::bot::Chat>,
}

/// The state filter of the token list; `Locked` and `Disabled` are conditions rather than
/// values of the `state` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    State(TokenState),
    Locked,
    Disabled,
}

/// What the token list is narrowed to; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub kind: Option<TokenKind>,
    pub state: Option<StateFilter>,
    pub assigned: Option<bool>,
    /// A resource by id or name.
    pub resource: Option<IdOrName>,
    /// A user by id or login.
    pub user: Option<IdOrName>,
    /// A substring of the serial, the name or the user's login.
    pub search: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The new token of a create request, with the references still unresolved.
#[derive(Debug, Clone)]
pub struct TokenCreation {
    pub token: NewToken,
    /// Generate a serial (kind + random characters) when true; `token.serial` is then ignored.
    pub generate_serial: bool,
    /// The user by id or login.
    pub user: Option<IdOrName>,
    /// The resource by id or name; needs a user.
    pub resource: Option<IdOrName>,
}

/// The changes of an update request; `None` leaves a value alone.
#[derive(Debug, Clone, Default)]
pub struct TokenChanges {
    pub name: Option<String>,
    pub digits: Option<u32>,
    /// `Some(None)` removes the PIN; `Some(Some(hash))` sets it.
    pub pin_hash: Option<Option<Vec<u8>>>,
    pub pin_position: Option<crate::otp::PinPosition>,
    pub enabled: Option<bool>,
    pub destination: Option<String>,
}

/// The token columns prefixed with the table alias `t`, for queries that join the users.
static JOINED_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    TOKEN_COLUMNS
        .split(',')
        .map(|column| format!("t.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
});

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        token: token_from_row(row)?,
        // The login follows the 25 token columns.
        user_login: row.get(25)?,
    })
}

fn record_by_id(conn: &Connection, id: i64) -> Result<Option<TokenRecord>> {
    optional(
        conn.prepare_cached(&format!(
            "SELECT {}, u.login FROM tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
            *JOINED_COLUMNS
        ))?
        .query_row(params![id], record_from_row),
    )
}

/// The record of a token that must exist because this transaction just found or wrote it.
fn existing_record(conn: &Connection, id: i64) -> Result<TokenRecord> {
    record_by_id(conn, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows.into())
}

/// Writes the audit line of a change to the token `id` (of the user `user_id`) and answers
/// the token as it is now.
fn audited(
    conn: &Connection,
    id: i64,
    user_id: Option<i64>,
    entry: AuditEntry,
) -> Result<Outcome<TokenRecord>> {
    audit::insert(
        conn,
        &AuditEntry {
            token_id: Some(id),
            user_id,
            ..entry
        },
    )?;
    Ok(Ok(existing_record(conn, id)?))
}

fn serial_taken(conn: &Connection, serial: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM tokens WHERE serial = ?1)")?
        .query_row(params![serial], |row| row.get(0))?)
}

/// A serial of the kind's name and eight random upper-case hexadecimal characters.
fn random_serial(kind: TokenKind) -> Result<String> {
    let bytes = crate::crypto::random_bytes::<4>()
        .map_err(|e| super::StoreError::Conflict(format!("no randomness for a serial: {e}")))?;
    Ok(format!(
        "{}{}",
        kind.as_str(),
        data_encoding::HEXUPPER.encode(&bytes)
    ))
}

fn resources_of(conn: &Connection, token_id: i64) -> Result<Vec<(i64, String)>> {
    let mut statement = conn.prepare_cached(
        "SELECT r.id, r.name FROM token_resources tr JOIN resources r ON r.id = tr.resource_id
         WHERE tr.token_id = ?1 ORDER BY r.name",
    )?;
    let resources = statement
        .query_map(params![token_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(resources)
}

pub(super) fn create(
    conn: &Connection,
    creation: TokenCreation,
    audit_entry: AuditEntry,
) -> Result<Outcome<TokenRecord>> {
    let TokenCreation {
        mut token,
        generate_serial,
        user,
        resource,
    } = creation;
    let user = match user {
        None => None,
        Some(key) => match find_user(conn, &key)? {
            Some(user) => Some(user),
            None => return Ok(Err(Refused::field("user", format!("no user {key}")))),
        },
    };
    let resource = match resource {
        None => None,
        Some(key) => match find_resource(conn, &key)? {
            Some(resource) => Some(resource),
            None => {
                return Ok(Err(Refused::field(
                    "resource",
                    format!("no resource {key}"),
                )));
            }
        },
    };
    if token.destination.is_none() {
        let (fallback, what) = match token.kind {
            TokenKind::Mail => (
                user.as_ref().and_then(|u| u.email.clone()),
                "an email address",
            ),
            TokenKind::Sms => (
                user.as_ref().and_then(|u| u.phone.clone()),
                "a phone number",
            ),
            _ => (None, ""),
        };
        if token.kind == TokenKind::Mail || token.kind == TokenKind::Sms {
            match fallback {
                Some(destination) => token.destination = Some(destination),
                None => {
                    return Ok(Err(Refused::field(
                        "destination",
                        format!(
                            "a {} token needs a destination: give one, or assign a user who has {what}",
                            token.kind.as_str()
                        ),
                    )));
                }
            }
        }
    }
    if generate_serial {
        let mut attempts = 0;
        loop {
            let candidate = random_serial(token.kind)?;
            if !serial_taken(conn, &candidate)? {
                token.serial = candidate;
                break;
            }
            attempts += 1;
            if attempts >= 10 {
                return Ok(Err(Refused::Conflict(
                    "no free serial was found; give one".into(),
                )));
            }
        }
    } else if serial_taken(conn, &token.serial)? {
        return Ok(Err(Refused::Conflict(format!(
            "a token with serial {:?} exists already",
            token.serial
        ))));
    }
    token.user_id = user.as_ref().map(|u| u.id);
    let now = audit_entry.at;
    let id = insert_token(conn, &token, now)?;
    if let Some(resource) = &resource {
        assign_token_to_resource(conn, resource.id, id)?;
    }
    audit::insert(
        conn,
        &AuditEntry {
            token_id: Some(id),
            user_id: token.user_id,
            resource_id: resource.as_ref().map(|r| r.id),
            detail: Some(format!("{} {}", token.kind.as_str(), token.serial)),
            ..audit_entry
        },
    )?;
    Ok(Ok(existing_record(conn, id)?))
}

/// Escapes `%`, `_` and the escape character itself for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn list(conn: &Connection, filter: TokenFilter) -> Result<Outcome<(Vec<TokenRecord>, i64)>> {
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(kind) = filter.kind {
        values.push(kind.as_str().to_string().into());
        conditions.push(format!("t.kind = ?{}", values.len()));
    }
    match filter.state {
        None => {}
        Some(StateFilter::State(state)) => {
            values.push(state.as_str().to_string().into());
            conditions.push(format!("t.state = ?{}", values.len()));
        }
        Some(StateFilter::Locked) => conditions.push("t.locked_at IS NOT NULL".into()),
        Some(StateFilter::Disabled) => conditions.push("t.enabled = 0".into()),
    }
    match filter.assigned {
        None => {}
        Some(true) => conditions.push("t.user_id IS NOT NULL".into()),
        Some(false) => conditions.push("t.user_id IS NULL".into()),
    }
    if let Some(key) = &filter.user {
        let Some(user) = find_user(conn, key)? else {
            return Ok(Err(Refused::field("user", format!("no user {key}"))));
        };
        values.push(user.id.into());
        conditions.push(format!("t.user_id = ?{}", values.len()));
    }
    if let Some(key) = &filter.resource {
        let Some(resource) = find_resource(conn, key)? else {
            return Ok(Err(Refused::field(
                "resource",
                format!("no resource {key}"),
            )));
        };
        values.push(resource.id.into());
        conditions.push(format!(
            "t.id IN (SELECT token_id FROM token_resources WHERE resource_id = ?{})",
            values.len()
        ));
    }
    if let Some(search) = &filter.search {
        values.push(like_pattern(search).into());
        let n = values.len();
        conditions.push(format!(
            "(t.serial LIKE ?{n} ESCAPE '\\' OR t.name LIKE ?{n} ESCAPE '\\' OR u.login LIKE ?{n} ESCAPE '\\')"
        ));
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let from = "FROM tokens t LEFT JOIN users u ON u.id = t.user_id";
    // Only a search looks at the user's login: without one, the count needs no join and
    // SQLite answers it from an index.
    let count_from = if filter.search.is_some() {
        from
    } else {
        "FROM tokens t"
    };
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) {count_from} {filter_sql}"),
        params_from_iter(values.iter()),
        |row| row.get(0),
    )?;
    values.push(filter.limit.into());
    values.push(filter.offset.into());
    let mut statement = conn.prepare(&format!(
        "SELECT {}, u.login {from} {filter_sql} ORDER BY t.id LIMIT ?{} OFFSET ?{}",
        *JOINED_COLUMNS,
        values.len() - 1,
        values.len()
    ))?;
    let items = statement
        .query_map(params_from_iter(values.iter()), record_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Ok((items, total)))
}

fn update(
    conn: &Connection,
    id: i64,
    changes: TokenChanges,
    audit_entry: AuditEntry,
) -> Result<Outcome<TokenRecord>> {
    let Some(current) = record_by_id(conn, id)? else {
        return Ok(Err(Refused::NotFound("token")));
    };
    // One statement: a value left out (NULL) keeps the stored one; the PIN hash, which may be
    // set to NULL, has its own flag.
    conn.prepare_cached(
        "UPDATE tokens SET name = COALESCE(?2, name), digits = COALESCE(?3, digits),
                pin_hash = CASE WHEN ?4 THEN ?5 ELSE pin_hash END,
                pin_position = COALESCE(?6, pin_position), enabled = COALESCE(?7, enabled),
                destination = COALESCE(?8, destination), updated_at = ?9
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        changes.name,
        changes.digits,
        changes.pin_hash.is_some(),
        changes.pin_hash.clone().flatten(),
        changes.pin_position.map(|position| position.as_str()),
        changes.enabled,
        changes.destination,
        audit_entry.at,
    ])?;
    if changes.destination.is_some() {
        super::auth::void_codes(conn, id)?;
    }
    let changed: Vec<&str> = [
        ("name", changes.name.is_some()),
        ("digits", changes.digits.is_some()),
        ("pin", changes.pin_hash.is_some()),
        ("pin_position", changes.pin_position.is_some()),
        ("enabled", changes.enabled.is_some()),
        ("destination", changes.destination.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    audit::insert(
        conn,
        &AuditEntry {
            token_id: Some(id),
            user_id: current.token.user_id,
            detail: Some(format!("changed: {}", changed.join(", "))),
            ..audit_entry
        },
    )?;
    Ok(Ok(existing_record(conn, id)?))
}

/// Runs `statement` (with `?1` the token id and `?2` the time) on the token `key` and audits it.
fn simple_change(
    conn: &Connection,
    key: &IdOrName,
    statement: &str,
    audit_entry: AuditEntry,
) -> Result<Outcome<TokenRecord>> {
    let Some(token) = find_token(conn, key)? else {
        return Ok(Err(Refused::NotFound("token")));
    };
    conn.execute(statement, params![token.id, audit_entry.at])?;
    audited(conn, token.id, token.user_id, audit_entry)
}

fn resync(
    conn: &Connection,
    id: i64,
    last_step: i64,
    drift: i64,
    audit_entry: AuditEntry,
) -> Result<Outcome<TokenRecord>> {
    let Some(token) = token_by_id(conn, id)? else {
        return Ok(Err(Refused::NotFound("token")));
    };
    // A compare-and-set: a code used meanwhile (a later step) wins over this resync.
    let changed = conn.execute(
        "UPDATE tokens SET last_step = ?2, drift = ?3, updated_at = ?4
         WHERE id = ?1 AND (last_step IS NULL OR last_step < ?2)",
        params![id, last_step, drift, audit_entry.at],
    )?;
    if changed == 0 {
        return Ok(Err(Refused::Conflict(
            "the token was used with a later code meanwhile; try again with new codes".into(),
        )));
    }
    audited(conn, id, token.user_id, audit_entry)
}

/// The address a MAIL or SMS token sends to once it is the user's: the one the assignment gives
/// (checked as at creation), else the user's own email address or phone number — never the
/// previous user's address by default. None for the other kinds, which take none.
fn assigned_destination(
    token: &Token,
    user: &super::directory::User,
    given: Option<&str>,
) -> Outcome<Option<String>> {
    let given = given.map(str::trim).filter(|text| !text.is_empty());
    if let Some(text) = given {
        return Ok(Some(crate::domain::token_destination(token.kind, text)?));
    }
    let (own, what) = match token.kind {
        TokenKind::Mail => (user.email.clone(), "email address"),
        TokenKind::Sms => (user.phone.clone(), "phone number"),
        _ => return Ok(None),
    };
    match own {
        Some(own) => Ok(Some(own)),
        None => Err(Refused::field(
            "destination",
            format!(
                "{} has no {what}: give the {what} the codes of {} should go to",
                user.login, token.serial
            ),
        )),
    }
}

fn assign(
    conn: &Connection,
    key: &IdOrName,
    user_key: &IdOrName,
    destination: Option<&str>,
    audit_entry: AuditEntry,
) -> Result<Outcome<TokenRecord>> {
    let Some(token) = find_token(conn, key)? else {
        return Ok(Err(Refused::NotFound("token")));
    };
    let Some(user) = find_user(conn, user_key)? else {
        return Ok(Err(Refused::field("user", format!("no user {user_key:?}"))));
    };
    match token.user_id {
        Some(owner) if owner == user.id => return Ok(Ok(existing_record(conn, token.id)?)),
        Some(_) => {
            return Ok(Err(Refused::Conflict(format!(
                "token {} belongs to another user: unassign it first",
                token.serial
            ))));
        }
        None => {}
    }
    let destination = match assigned_destination(&token, &user, destination) {
        Ok(destination) => destination,
        Err(refused) => return Ok(Err(refused)),
    };
    conn.execute(
        "UPDATE tokens SET user_id = ?2, destination = COALESCE(?4, destination), updated_at = ?3
         WHERE id = ?1",
        params![token.id, user.id, audit_entry.at, destination],
    )?;
    if destination.is_some() {
        super::auth::void_codes(conn, token.id)?;
    }
    audited(conn, token.id, Some(user.id), audit_entry)
}

fn unassign(
    conn: &Connection,
    key: &IdOrName,
    audit_entry: AuditEntry,
) -> Result<Outcome<TokenRecord>> {
    let Some(token) = find_token(conn, key)? else {
        return Ok(Err(Refused::NotFound("token")));
    };
    let Some(user_id) = token.user_id else {
        return Ok(Ok(existing_record(conn, token.id)?));
    };
    release(conn, Released::Token(token.id))?;
    conn.execute(
        "UPDATE tokens SET user_id = NULL, updated_at = ?2 WHERE id = ?1",
        params![token.id, audit_entry.at],
    )?;
    // A token without a user may not stay on a resource.
    conn.execute(
        "DELETE FROM token_resources WHERE token_id = ?1",
        params![token.id],
    )?;
    audited(conn, token.id, Some(user_id), audit_entry)
}

/// The tokens a user lets go of: one, or all of a user's.
#[derive(Debug, Clone, Copy)]
pub(super) enum Released {
    Token(i64),
    User(i64),
}

/// What a token loses with its user, so that nothing of hers follows it to the next one (the
/// one rule of Unassign in the portal, the panel and the API, and of a deleted user): a BOT
/// token forgets its chat and waits for a new activation; no code sent for her stays live.
/// A MAIL or SMS token keeps its address until it is assigned again, where it is confirmed
/// or changed (`assign`).
pub(super) fn release(conn: &Connection, released: Released) -> Result<()> {
    let (tokens, id) = match released {
        Released::Token(id) => ("id = ?1", id),
        Released::User(id) => ("user_id = ?1", id),
    };
    conn.prepare_cached(&format!(
        "UPDATE tokens SET bot_chat_id = NULL, bot_user_id = NULL, bot_chat_name = NULL,
                activation_code_hash = NULL, activation_expires_at = NULL, state = 'pending'
         WHERE {tokens} AND kind = 'BOT'"
    ))?
    .execute(params![id])?;
    conn.prepare_cached(&format!(
        "DELETE FROM challenges WHERE token_id IN (SELECT id FROM tokens WHERE {tokens})"
    ))?
    .execute(params![id])?;
    Ok(())
}

fn delete(conn: &Connection, key: &IdOrName, audit_entry: AuditEntry) -> Result<Outcome<()>> {
    let Some(token) = find_token(conn, key)? else {
        return Ok(Err(Refused::NotFound("token")));
    };
    conn.execute("DELETE FROM tokens WHERE id = ?1", params![token.id])?;
    audit::insert(
        conn,
        &AuditEntry {
            token_id: Some(token.id),
            user_id: token.user_id,
            detail: Some(format!("{} {}", token.kind.as_str(), token.serial)),
            ..audit_entry
        },
    )?;
    Ok(Ok(()))
}

/// Stores every token or none: serials already in the database are refused by name before
/// anything is written.
pub fn import(
    conn: &Connection,
    tokens: Vec<NewToken>,
    audit_entry: AuditEntry,
) -> Result<Outcome<Vec<String>>> {
    let mut taken = Vec::new();
    for token in &tokens {
        if serial_taken(conn, &token.serial)? {
            taken.push(token.serial.clone());
        }
    }
    if !taken.is_empty() {
        return Ok(Err(Refused::Conflict(format!(
            "tokens with these serials exist already, nothing was imported: {}",
            taken.join(", ")
        ))));
    }
    let now = audit_entry.at;
    for token in &tokens {
        insert_token(conn, token, now)?;
    }
    audit::insert(
        conn,
        &AuditEntry {
            detail: Some(format!("count {}", tokens.len())),
            ..audit_entry
        },
    )?;
    Ok(Ok(tokens.into_iter().map(|t| t.serial).collect()))
}

impl Store {
    /// Creates a token, resolving its user and resource and filling a MAIL or SMS destination
    /// from the user's address when none was given.
    pub async fn create_token(
        &self,
        creation: TokenCreation,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        self.write(move |conn| create(conn, creation, audit_entry))
            .await
    }

    pub async fn list_tokens(
        &self,
        filter: TokenFilter,
    ) -> Result<Outcome<(Vec<TokenRecord>, i64)>> {
        self.read(move |conn| list(conn, filter)).await
    }

    /// A token by id or serial, with its user's login and its resources.
    pub async fn token_detail(&self, key: IdOrName) -> Result<Option<TokenDetail>> {
        self.read(move |conn| {
            let Some(token) = find_token(conn, &key)? else {
                return Ok(None);
            };
            let Some(record) = record_by_id(conn, token.id)? else {
                return Ok(None);
            };
            let resources = resources_of(conn, token.id)?;
            let bot_chat = super::bot::chat(conn, token.id)?;
            Ok(Some(TokenDetail {
                record,
                resources,
                bot_chat,
            }))
        })
        .await
    }

    pub async fn update_token(
        &self,
        id: i64,
        changes: TokenChanges,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        self.write(move |conn| update(conn, id, changes, audit_entry))
            .await
    }

    pub async fn set_token_enabled(
        &self,
        key: IdOrName,
        enabled: bool,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        let statement = if enabled {
            "UPDATE tokens SET enabled = 1, updated_at = ?2 WHERE id = ?1"
        } else {
            "UPDATE tokens SET enabled = 0, updated_at = ?2 WHERE id = ?1"
        };
        self.write(move |conn| simple_change(conn, &key, statement, audit_entry))
            .await
    }

    /// Sets the fail counter to zero and unlocks the token.
    pub async fn reset_token(
        &self,
        key: IdOrName,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        self.write(move |conn| {
            let reset = simple_change(
                conn,
                &key,
                "UPDATE tokens SET fail_count = 0, locked_at = NULL, updated_at = ?2 WHERE id = ?1",
                audit_entry,
            )?;
            // The failed logins of the token used alone end too.
            if let Ok(token) = &reset {
                super::logins::unlock(conn, super::logins::Account::Token(token.token.id))?;
            }
            Ok(reset)
        })
        .await
    }

    /// Stores the moving factor and drift a resynchronisation found, unless a later code was
    /// used meanwhile.
    pub async fn resync_token(
        &self,
        id: i64,
        last_step: i64,
        drift: i64,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        self.write(move |conn| resync(conn, id, last_step, drift, audit_entry))
            .await
    }

    /// Gives an unassigned token to a user; a token of another user must be unassigned first.
    /// A MAIL or SMS token sends to `destination`, or else to the user's own address.
    pub async fn assign_token_user(
        &self,
        key: IdOrName,
        user: IdOrName,
        destination: Option<String>,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        self.write(move |conn| assign(conn, &key, &user, destination.as_deref(), audit_entry))
            .await
    }

    /// Takes a token from its user and from every resource.
    pub async fn unassign_token_user(
        &self,
        key: IdOrName,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        self.write(move |conn| unassign(conn, &key, audit_entry))
            .await
    }

    pub async fn delete_token(
        &self,
        key: IdOrName,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<()>> {
        self.write(move |conn| delete(conn, &key, audit_entry))
            .await
    }

    pub async fn import_tokens(
        &self,
        tokens: Vec<NewToken>,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<Vec<String>>> {
        self.write(move |conn| import(conn, tokens, audit_entry))
            .await
    }

    /// The blocking twin of [`Store::import_tokens`], for the console.
    pub fn import_tokens_blocking(
        &self,
        tokens: Vec<NewToken>,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<Vec<String>>> {
        self.write_blocking(move |conn| import(conn, tokens, audit_entry))
    }
}

impl Store {
    /// Activates a pending TOTP token with its first code's time step (a compare-and-set, so
    /// the same code cannot confirm it twice); refused when the token is not pending any more.
    pub async fn confirm_token(
        &self,
        id: i64,
        step: i64,
        audit_entry: AuditEntry,
    ) -> Result<Outcome<TokenRecord>> {
        self.write(move |conn| {
            let Some(token) = token_by_id(conn, id)? else {
                return Ok(Err(Refused::NotFound("token")));
            };
            let changed = conn.execute(
                "UPDATE tokens SET state = 'active', last_step = ?2, updated_at = ?3
                 WHERE id = ?1 AND state = 'pending' AND (last_step IS NULL OR last_step < ?2)",
                params![id, step, audit_entry.at],
            )?;
            if changed == 0 {
                return Ok(Err(Refused::Conflict(
                    "the token is not waiting for a first code".into(),
                )));
            }
            audited(conn, id, token.user_id, audit_entry)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::directory::is_generated_serial;

    #[test]
    fn generated_serials_are_told_apart_from_serials_given_from_outside() {
        for kind in TokenKind::ALL {
            let serial = random_serial(kind).expect("a serial");
            assert!(is_generated_serial(kind, &serial), "{serial}");
        }
        assert!(!is_generated_serial(TokenKind::Hotp, "HW-0001"));
        assert!(
            !is_generated_serial(TokenKind::Hotp, "TOTP0A1B2C3D"),
            "another kind's"
        );
        assert!(
            !is_generated_serial(TokenKind::Totp, "TOTP0a1b2c3d"),
            "lower case"
        );
        assert!(
            !is_generated_serial(TokenKind::Totp, "TOTP0A1B2C3D4"),
            "too long"
        );
    }
}
