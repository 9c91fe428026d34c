//! Users, resources, tokens and their assignments: the rows every feature reads.

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};

use super::{Result, Store, StoreError, UnixTime, optional};
use crate::domain::{IdOrName, TokenKind, TokenState, WithoutSecondFactor, login_key};
use crate::otp::{Algorithm, PinPosition};

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub enabled: bool,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
}

pub const USER_COLUMNS: &str = "id, login, first_name, last_name, email, phone, password_hash, enabled, created_at, updated_at";

pub fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        login: row.get(1)?,
        first_name: row.get(2)?,
        last_name: row.get(3)?,
        email: row.get(4)?,
        phone: row.get(5)?,
        password_hash: row.get(6)?,
        enabled: row.get(7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub fail_limit: i64,
    pub password_required: bool,
    pub auto_unlock_seconds: Option<i64>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    /// What the password alone is worth for a user without an active second factor here.
    pub without_second_factor: WithoutSecondFactor,
    /// Whether its users may approve in Telegram, and how.
    pub approvals: ApprovalSettings,
}

#[derive(Debug, Clone)]
pub struct NewResource {
    pub name: String,
    pub description: String,
    pub fail_limit: i64,
    pub password_required: bool,
    pub auto_unlock_seconds: Option<i64>,
    pub without_second_factor: WithoutSecondFactor,
}

pub const RESOURCE_COLUMNS: &str = "id, name, description, fail_limit, password_required, auto_unlock_seconds, created_at, updated_at, without_second_factor, approvals_allowed, approval_number_matching, approval_deny_locks";
/// How many columns `RESOURCE_COLUMNS` names, for queries that read more after them.
pub const RESOURCE_COLUMN_COUNT: usize = 12;

pub fn resource_from_row(row: &Row<'_>) -> rusqlite::Result<Resource> {
    Ok(Resource {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        fail_limit: row.get(3)?,
        password_required: row.get(4)?,
        auto_unlock_seconds: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        without_second_factor: named(row, 8, WithoutSecondFactor::parse)?,
        approvals: ApprovalSettings {
            allowed: row.get(9)?,
            number_matching: row.get(10)?,
            deny_locks: row.get(11)?,
        },
    })
}

#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub serial: String,
    pub name: String,
    pub kind: TokenKind,
    pub user_id: Option<i64>,
    /// Sealed seed (TOTP, HOTP).
    pub secret: Option<Vec<u8>>,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    pub last_step: Option<i64>,
    pub drift: i64,
    pub window_behind: Option<i64>,
    pub window_ahead: Option<i64>,
    pub destination: Option<String>,
    pub messenger: Option<String>,
    pub bot_chat_id: Option<i64>,
    pub pin_hash: Option<Vec<u8>>,
    pub pin_position: PinPosition,
    pub enabled: bool,
    pub state: TokenState,
    pub fail_count: i64,
    pub locked_at: Option<UnixTime>,
    pub last_used_at: Option<UnixTime>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

impl Token {
    /// Whether the token is locked now: its fail counter reached the resource's limit, and the
    /// resource's automatic unlock (if any) has not yet come. The authentication decision
    /// applies the same rule.
    pub fn is_locked(&self, auto_unlock_seconds: Option<i64>, now: UnixTime) -> bool {
        match (self.locked_at, auto_unlock_seconds) {
            (None, _) => false,
            (Some(at), Some(seconds)) => at > now - seconds,
            (Some(_), None) => true,
        }
    }

    /// Whether this is a hardware token: a TOTP or HOTP token whose serial came from outside
    /// (a seed file, or an administrator typing the serial printed on the device) rather than
    /// one otpgate generated for a software token. Its seed lives in the device, so it can
    /// never be reissued.
    pub fn is_hardware(&self) -> bool {
        matches!(self.kind, TokenKind::Totp | TokenKind::Hotp)
            && !is_generated_serial(self.kind, &self.serial)
    }

    /// The OTP parameters of a TOTP or HOTP token; None for the kinds whose codes otpgate sends.
    pub fn params(&self) -> Option<crate::otp::Params> {
        let kind = match self.kind {
            TokenKind::Totp => crate::otp::Kind::Totp {
                period: self.period,
            },
            TokenKind::Hotp => crate::otp::Kind::Hotp,
            _ => return None,
        };
        crate::otp::Params::new(self.algorithm, self.digits, kind).ok()
    }

    /// Whether the token can answer at all: enabled and active (not pending its activation,
    /// not waiting for a new one).
    pub fn is_usable(&self) -> bool {
        self.enabled && self.state == TokenState::Active
    }
}

/// Whether `serial` has the form of the serials otpgate generates for tokens of `kind`: the
/// kind's name and eight upper-case hexadecimal characters.
pub fn is_generated_serial(kind: TokenKind, serial: &str) -> bool {
    serial.strip_prefix(kind.as_str()).is_some_and(|rest| {
        rest.len() == 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    })
}

/// A column holding one of a fixed set of names (the schema's CHECK constraints keep it so);
/// any other text is a damaged row, not a value to guess at.
fn named<T>(row: &Row<'_>, index: usize, parse: impl Fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown value {text:?}").into(),
        )
    })
}

pub const TOKEN_COLUMNS: &str = "id, serial, name, kind, user_id, secret, algorithm, digits, period, last_step, drift, \
     window_behind, window_ahead, destination, messenger, bot_chat_id, pin_hash, pin_position, enabled, state, \
     fail_count, locked_at, last_used_at, created_at, updated_at";

pub fn token_from_row(row: &Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        id: row.get(0)?,
        serial: row.get(1)?,
        name: row.get(2)?,
        kind: named(row, 3, TokenKind::parse)?,
        user_id: row.get(4)?,
        secret: row.get(5)?,
        algorithm: named(row, 6, |text| text.parse().ok())?,
        digits: row.get(7)?,
        period: row.get(8)?,
        last_step: row.get(9)?,
        drift: row.get(10)?,
        window_behind: row.get(11)?,
        window_ahead: row.get(12)?,
        destination: row.get(13)?,
        messenger: row.get(14)?,
        bot_chat_id: row.get(15)?,
        pin_hash: row.get(16)?,
        pin_position: named(row, 17, |text| text.parse().ok())?,
        enabled: row.get(18)?,
        state: named(row, 19, TokenState::parse)?,
        fail_count: row.get(20)?,
        locked_at: row.get(21)?,
        last_used_at: row.get(22)?,
        created_at: row.get(23)?,
        updated_at: row.get(24)?,
    })
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub serial: String,
    pub name: String,
    pub kind: TokenKind,
    pub user_id: Option<i64>,
    pub secret: Option<Vec<u8>>,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    /// The last used moving factor: for a new HOTP token starting at counter C, C - 1.
    pub last_step: Option<i64>,
    pub destination: Option<String>,
    pub messenger: Option<String>,
    pub pin_hash: Option<Vec<u8>>,
    pub pin_position: PinPosition,
    pub state: TokenState,
    /// BOT: the hash of the one-time activation code and when it expires.
    pub activation: Option<(Vec<u8>, UnixTime)>,
}

/// Inserts a user with the key of their login (the key's index refuses a login that is taken).
pub fn insert_user(conn: &Connection, user: &NewUser, now: UnixTime) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO users (login, login_key, first_name, last_name, email, phone, password_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?
    .execute(params![
        user.login,
        login_key(&user.login),
        user.first_name,
        user.last_name,
        user.email,
        user.phone,
        user.password_hash,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

pub fn insert_resource(conn: &Connection, resource: &NewResource, now: UnixTime) -> Result<i64> {
    conn.execute(
        "INSERT INTO resources (name, description, fail_limit, password_required, auto_unlock_seconds,
                                without_second_factor, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            resource.name,
            resource.description,
            resource.fail_limit,
            resource.password_required,
            resource.auto_unlock_seconds,
            resource.without_second_factor.as_str(),
            now
        ],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO self_service (resource_id, updated_at) VALUES (?1, ?2)",
        params![id, now],
    )?;
    Ok(id)
}

pub fn insert_token(conn: &Connection, token: &NewToken, now: UnixTime) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO tokens (serial, name, kind, user_id, secret, algorithm, digits, period, last_step,
                             destination, messenger, pin_hash, pin_position, state, created_at, updated_at,
                             activation_code_hash, activation_expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16, ?17)",
    )?
    .execute(params![
        token.serial,
        token.name,
        token.kind.as_str(),
        token.user_id,
        token.secret,
        token.algorithm.as_str(),
        token.digits,
        token.period,
        token.last_step,
        token.destination,
        token.messenger,
        token.pin_hash,
        token.pin_position.as_str(),
        token.state.as_str(),
        now,
        token.activation.as_ref().map(|(hash, _)| hash),
        token.activation.as_ref().map(|(_, at)| at),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// A user by id, or by login. The login is found by its key, in any case and either normal
/// form.
pub fn find_user(conn: &Connection, key: &IdOrName) -> Result<Option<User>> {
    let (sql, value) = match key {
        IdOrName::Id(id) => ("id", Value::Integer(*id)),
        IdOrName::Name(login) => ("login_key", Value::Text(login_key(login.trim()))),
    };
    optional(
        conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {sql} = ?1"
        ))?
        .query_row(params![value], user_from_row),
    )
}

/// A resource by id, or by name.
pub fn find_resource(conn: &Connection, key: &IdOrName) -> Result<Option<Resource>> {
    let (sql, value) = match key {
        IdOrName::Id(id) => ("id", Value::Integer(*id)),
        IdOrName::Name(name) => ("name", Value::Text(name.trim().to_string())),
    };
    optional(
        conn.prepare_cached(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE {sql} = ?1"
        ))?
        .query_row(params![value], resource_from_row),
    )
}

pub fn token_by_id(conn: &Connection, id: i64) -> Result<Option<Token>> {
    find_token(conn, &IdOrName::Id(id))
}

/// A token by id, or by serial.
pub fn find_token(conn: &Connection, key: &IdOrName) -> Result<Option<Token>> {
    let (sql, value) = match key {
        IdOrName::Id(id) => ("id", Value::Integer(*id)),
        IdOrName::Name(serial) => ("serial", Value::Text(serial.trim().to_string())),
    };
    optional(
        conn.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE {sql} = ?1"
        ))?
        .query_row(params![value], token_from_row),
    )
}

/// The token whose serial a person typed: the same serial, else the one serial that differs
/// from it only in the case of its ASCII letters ("hw-0001" finds "HW-0001"). None when no
/// serial matches, or when several match only that way.
pub fn find_token_by_typed_serial(conn: &Connection, typed: &str) -> Result<Option<Token>> {
    let typed = typed.trim();
    if let Some(token) = find_token(conn, &IdOrName::Name(typed.to_string()))? {
        return Ok(Some(token));
    }
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE serial = ?1 COLLATE NOCASE LIMIT 2"
    ))?;
    let mut found = statement
        .query_map(params![typed], token_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// Assigns a user to a resource (idempotent).
pub fn assign_user_to_resource(conn: &Connection, resource_id: i64, user_id: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO user_resources (resource_id, user_id) VALUES (?1, ?2)",
    )?
    .execute(params![resource_id, user_id])?;
    Ok(())
}

/// Assigns a token to a resource; only a token that has a user may be assigned, and its user
/// is assigned to the resource too ("Assign → Token with User").
pub fn assign_token_to_resource(conn: &Connection, resource_id: i64, token_id: i64) -> Result<()> {
    let user_id: Option<i64> = optional(conn.query_row(
        "SELECT user_id FROM tokens WHERE id = ?1",
        params![token_id],
        |row| row.get(0),
    ))?
    .ok_or_else(|| StoreError::Conflict("no such token".into()))?;
    let user_id = user_id.ok_or_else(|| {
        StoreError::Conflict("the token has no user: assign it to a user first".into())
    })?;
    assign_user_to_resource(conn, resource_id, user_id)?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO token_resources (resource_id, token_id) VALUES (?1, ?2)",
    )?
    .execute(params![resource_id, token_id])?;
    Ok(())
}

impl Store {
    pub async fn find_user(&self, key: IdOrName) -> Result<Option<User>> {
        self.read(move |conn| find_user(conn, &key)).await
    }

    pub async fn find_resource(&self, key: IdOrName) -> Result<Option<Resource>> {
        self.read(move |conn| find_resource(conn, &key)).await
    }

    pub async fn find_token(&self, key: IdOrName) -> Result<Option<Token>> {
        self.read(move |conn| find_token(conn, &key)).await
    }

    /// The token whose serial a person typed, in any case (see [`find_token_by_typed_serial`]).
    pub async fn find_token_by_typed_serial(&self, typed: String) -> Result<Option<Token>> {
        self.read(move |conn| find_token_by_typed_serial(conn, &typed))
            .await
    }
}

/// A resource's approval settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalSettings {
    /// Users with a BOT token may approve instead of typing a code (off by default).
    pub allowed: bool,
    /// The login shows a number, the bot offers three (on by default).
    pub number_matching: bool,
    /// "Deny" locks the token (off by default).
    pub deny_locks: bool,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            allowed: false,
            number_matching: true,
            deny_locks: false,
        }
    }
}

/// A change of some of a resource's approval settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApprovalSettingsChange {
    pub allowed: Option<bool>,
    pub number_matching: Option<bool>,
    pub deny_locks: Option<bool>,
}

impl ApprovalSettingsChange {
    pub fn is_empty(&self) -> bool {
        self.allowed.is_none() && self.number_matching.is_none() && self.deny_locks.is_none()
    }
}

impl ApprovalSettings {
    /// These settings with a change applied.
    pub fn changed(self, change: ApprovalSettingsChange) -> ApprovalSettings {
        ApprovalSettings {
            allowed: change.allowed.unwrap_or(self.allowed),
            number_matching: change.number_matching.unwrap_or(self.number_matching),
            deny_locks: change.deny_locks.unwrap_or(self.deny_locks),
        }
    }
}
