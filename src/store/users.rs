//! Managing users: creating, finding by filter, changing and deleting them, each change with
//! its audit entry in the same transaction.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

use super::audit::{self, AuditEntry};
use super::directory::{self, NewUser, USER_COLUMNS, User, user_from_row};
use super::{Result, Store, StoreError, UnixTime, optional};
use crate::domain::{IdOrName, TokenKind, TokenState, login_key};

/// One page of a listing: at most `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// Which users a listing shows; every condition that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// A piece of the login, a name, the email address or the phone number (any case).
    pub search: Option<String>,
    pub enabled: Option<bool>,
    /// A resource given by id or name: only the users assigned to it.
    pub resource: Option<IdOrName>,
    pub has_token: Option<bool>,
}

/// What a listing filtered by a resource found.
#[derive(Debug)]
pub enum Listing<T> {
    Found {
        items: Vec<T>,
        total: i64,
    },
    /// The resource named in the filter does not exist.
    NoSuchResource,
}

/// A token as shown with its user.
#[derive(Debug, Clone)]
pub struct UserToken {
    pub id: i64,
    pub serial: String,
    pub name: String,
    pub kind: TokenKind,
    pub state: TokenState,
    pub enabled: bool,
}

/// A resource named by id and name.
#[derive(Debug, Clone)]
pub struct ResourceRef {
    pub id: i64,
    pub name: String,
}

/// A user with their tokens and resources.
#[derive(Debug, Clone)]
pub struct UserDetail {
    pub user: User,
    pub tokens: Vec<UserToken>,
    pub resources: Vec<ResourceRef>,
}

/// A new user as the store takes it: already validated, the password already hashed.
#[derive(Debug, Clone)]
pub struct UserDraft {
    pub user: NewUser,
    pub enabled: bool,
}

/// Changes to a user; `None` leaves a field as it is, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub login: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub password_hash: Option<Option<String>>,
}

impl UserChanges {
    /// The names of the fields this change touches, for the audit log (never a value).
    fn field_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let fields = [
            ("login", self.login.is_some()),
            ("first_name", self.first_name.is_some()),
            ("last_name", self.last_name.is_some()),
            ("email", self.email.is_some()),
            ("phone", self.phone.is_some()),
            ("enabled", self.enabled.is_some()),
            ("password", self.password_hash.is_some()),
        ];
        for (name, set) in fields {
            if set {
                names.push(name);
            }
        }
        names
    }
}

/// Escapes `%`, `_` and the escape character itself so that a search is a plain substring.
pub(super) fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The users matching `filter`, ordered by login, and how many match in all. Only the
/// conditions that are set become part of the statement, so that SQLite can walk the login
/// index for the order and stop after one page.
pub fn list_users(conn: &Connection, filter: &UserFilter, page: Page) -> Result<Listing<User>> {
    // Numbered parameters: each condition refers to the value pushed just before it.
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        values.push(Value::Text(like_pattern(search)));
        let n = values.len();
        conditions.push(format!(
            "(u.login LIKE ?{n} ESCAPE '\\' OR u.first_name LIKE ?{n} ESCAPE '\\' \
             OR u.last_name LIKE ?{n} ESCAPE '\\' OR u.email LIKE ?{n} ESCAPE '\\' \
             OR u.phone LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some(enabled) = filter.enabled {
        values.push(Value::Integer(i64::from(enabled)));
        conditions.push(format!("u.enabled = ?{}", values.len()));
    }
    if let Some(has_token) = filter.has_token {
        let negation = if has_token { "" } else { "NOT " };
        conditions.push(format!(
            "{negation}EXISTS (SELECT 1 FROM tokens t WHERE t.user_id = u.id)"
        ));
    }
    // The count starts from the resource's members when there is a resource (the page itself
    // walks the login index and stops after one page): counting through the EXISTS below
    // would visit every user, 100,000 of them to count a resource of 10,000.
    let mut count_from = String::from("users u");
    let mut count_conditions = conditions.clone();
    if let Some(resource) = &filter.resource {
        let Some(resource) = directory::find_resource(conn, resource)? else {
            return Ok(Listing::NoSuchResource);
        };
        values.push(Value::Integer(resource.id));
        let n = values.len();
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM user_resources ur WHERE ur.resource_id = ?{n} AND ur.user_id = u.id)"
        ));
        count_from = "user_resources ur JOIN users u ON u.id = ur.user_id".into();
        count_conditions.push(format!("ur.resource_id = ?{n}"));
    }
    let where_of = |conditions: &[String]| {
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        }
    };
    let where_clause = where_of(&conditions);
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM {count_from} {}",
            where_of(&count_conditions)
        ))?
        .query_row(params_from_iter(values.iter()), |row| row.get(0))?;
    let columns = USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    values.push(Value::Integer(page.limit));
    values.push(Value::Integer(page.offset));
    let count = values.len();
    let items = conn
        .prepare_cached(&format!(
            "SELECT {columns} FROM users u {where_clause} ORDER BY u.login LIMIT ?{} OFFSET ?{count}",
            count - 1
        ))?
        .query_map(params_from_iter(values.iter()), user_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Listing::Found { items, total })
}

/// How far the panel's listing counts before it says "more than": counting every match of a
/// broad search at 100,000 users would cost more than the page itself.
pub const COUNT_CAP: i64 = 1000;

/// Where a page of the panel's user list starts: at the first login, after a login (next
/// page) or before one (previous page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    First,
    After(String),
    Before(String),
}

/// How many users match: exactly, or more than [`COUNT_CAP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Exact(i64),
    MoreThan(i64),
}

/// One page of the panel's user list, in login order.
#[derive(Debug, Clone)]
pub struct UserSlice {
    pub items: Vec<User>,
    pub count: Count,
    /// There are matching users before the first one shown.
    pub more_before: bool,
    /// There are matching users after the last one shown.
    pub more_after: bool,
}

/// An FTS5 query for `text` as one phrase: with the trigram tokenizer it matches every row
/// that contains `text` in one of the columns.
fn trigram_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The panel's user list: keyset pagination in login order, so that every page costs about
/// the same at any depth, and a search that finds few users starts from the trigram index (or
/// a resource filter from the resource's members) instead of reading every user. `None` when
/// the resource named in the filter does not exist.
///
/// Two plans, chosen by how many users the narrowest index finds (counted up to
/// [`COUNT_CAP`] + 1): when that index finds few, the page is read from those rows and sorted;
/// when it finds many, matches are dense, so walking the login index and filtering stops after
/// a page's worth. The substring condition is applied in both plans, so that the answer is the
/// same as the API's LIKE search. A search of one or two characters (which no trigram holds)
/// finds the logins that start with it.
pub fn search_users(
    conn: &Connection,
    filter: &UserFilter,
    cursor: &Cursor,
    limit: i64,
) -> Result<Option<UserSlice>> {
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let search = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let resource = match &filter.resource {
        None => None,
        Some(key) => match directory::find_resource(conn, key)? {
            Some(resource) => Some(resource),
            None => return Ok(None),
        },
    };
    // The narrow source of candidate ids, when one finds at most COUNT_CAP users.
    let mut source: Option<String> = None;
    if let Some(text) = search
        && text.chars().count() >= 3
    {
        let phrase = trigram_phrase(text);
        let found: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT rowid FROM users_search WHERE users_search MATCH ?1 LIMIT ?2)",
            )?
            .query_row(params![phrase, COUNT_CAP + 1], |row| row.get(0))?;
        if found <= COUNT_CAP {
            values.push(Value::Text(phrase));
            source = Some(format!(
                "(SELECT rowid AS id FROM users_search WHERE users_search MATCH ?{}) m CROSS JOIN users u ON u.id = m.id",
                values.len()
            ));
        }
    }
    if source.is_none()
        && let Some(resource) = &resource
    {
        let members: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM user_resources WHERE resource_id = ?1 LIMIT ?2)",
            )?
            .query_row(params![resource.id, COUNT_CAP + 1], |row| row.get(0))?;
        if members <= COUNT_CAP {
            values.push(Value::Integer(resource.id));
            source = Some(format!(
                "(SELECT user_id AS id FROM user_resources WHERE resource_id = ?{}) m CROSS JOIN users u ON u.id = m.id",
                values.len()
            ));
        }
    }
    match search {
        // One or two characters have no trigram: they find the logins that start with them,
        // a range of the login index (the login's NOCASE order; U+10FFFF sorts after any
        // character that may follow the prefix).
        Some(text) if text.chars().count() < 3 => {
            values.push(Value::Text(text.to_string()));
            let n = values.len();
            conditions.push(format!(
                "u.login >= ?{n} AND u.login < ?{n} || char(1114111)"
            ));
        }
        Some(text) => {
            values.push(Value::Text(like_pattern(text)));
            let n = values.len();
            conditions.push(format!(
                "(u.login LIKE ?{n} ESCAPE '\\' OR u.first_name LIKE ?{n} ESCAPE '\\' \
                 OR u.last_name LIKE ?{n} ESCAPE '\\' OR u.email LIKE ?{n} ESCAPE '\\' \
                 OR u.phone LIKE ?{n} ESCAPE '\\')"
            ));
        }
        None => {}
    }
    if let Some(enabled) = filter.enabled {
        values.push(Value::Integer(i64::from(enabled)));
        conditions.push(format!("u.enabled = ?{}", values.len()));
    }
    if let Some(resource) = &resource {
        values.push(Value::Integer(resource.id));
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM user_resources ur WHERE ur.resource_id = ?{} AND ur.user_id = u.id)",
            values.len()
        ));
    }
    if let Some(has_token) = filter.has_token {
        let negation = if has_token { "" } else { "NOT " };
        conditions.push(format!(
            "{negation}EXISTS (SELECT 1 FROM tokens t WHERE t.user_id = u.id)"
        ));
    }
    let narrow = source.is_some();
    let from = source.unwrap_or_else(|| "users u".to_string());
    let where_clause = |extra: Option<String>| {
        let all: Vec<String> = conditions.iter().cloned().chain(extra).collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", all.join(" AND "))
        }
    };
    let count = if conditions.is_empty() && !narrow {
        Count::Exact(
            conn.prepare_cached("SELECT COUNT(*) FROM users")?
                .query_row([], |row| row.get(0))?,
        )
    } else if narrow {
        let total: i64 = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM {from} {}",
                where_clause(None)
            ))?
            .query_row(params_from_iter(values.iter()), |row| row.get(0))?;
        Count::Exact(total)
    } else {
        let mut capped = values.clone();
        capped.push(Value::Integer(COUNT_CAP + 1));
        let total: i64 = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {from} {} LIMIT ?{})",
                where_clause(None),
                capped.len()
            ))?
            .query_row(params_from_iter(capped.iter()), |row| row.get(0))?;
        if total > COUNT_CAP {
            Count::MoreThan(COUNT_CAP)
        } else {
            Count::Exact(total)
        }
    };
    let columns = USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (keyset, order) = match cursor {
        Cursor::First => (None, "ASC"),
        Cursor::After(login) => {
            values.push(Value::Text(login.clone()));
            (Some(format!("u.login > ?{}", values.len())), "ASC")
        }
        Cursor::Before(login) => {
            values.push(Value::Text(login.clone()));
            (Some(format!("u.login < ?{}", values.len())), "DESC")
        }
    };
    // One more than a page tells whether another page follows in this direction.
    values.push(Value::Integer(limit + 1));
    let mut items = conn
        .prepare_cached(&format!(
            "SELECT {columns} FROM {from} {} ORDER BY u.login {order} LIMIT ?{}",
            where_clause(keyset),
            values.len()
        ))?
        .query_map(params_from_iter(values.iter()), user_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let (more_before, more_after) = match cursor {
        Cursor::First => (false, more),
        Cursor::After(_) => (true, more),
        Cursor::Before(_) => {
            items.reverse();
            (more, true)
        }
    };
    Ok(Some(UserSlice {
        items,
        count,
        more_before,
        more_after,
    }))
}

/// A login that a stored user has already, in any case or normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenLogin {
    /// The login as asked for.
    pub login: String,
    /// The login of the user who has it, as that user spells it.
    pub by: String,
}

fn taken_logins(conn: &Connection, logins: &[String]) -> Result<Vec<TakenLogin>> {
    let mut statement = conn.prepare_cached("SELECT login FROM users WHERE login_key = ?1")?;
    let mut taken = Vec::new();
    for login in logins {
        if let Some(by) =
            optional(statement.query_row(params![login_key(login)], |row| row.get(0)))?
        {
            taken.push(TakenLogin {
                login: login.clone(),
                by,
            });
        }
    }
    Ok(taken)
}

fn user_detail(conn: &Connection, user: User) -> Result<UserDetail> {
    let tokens = conn
        .prepare_cached(
            "SELECT id, serial, name, kind, state, enabled FROM tokens WHERE user_id = ?1 ORDER BY serial",
        )?
        .query_map(params![user.id], |row| {
            let kind: String = row.get(3)?;
            let state: String = row.get(4)?;
            Ok(UserToken {
                id: row.get(0)?,
                serial: row.get(1)?,
                name: row.get(2)?,
                kind: TokenKind::parse(&kind).unwrap_or(TokenKind::Totp),
                state: TokenState::parse(&state).unwrap_or(TokenState::Pending),
                enabled: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let resources = conn
        .prepare_cached(
            "SELECT r.id, r.name FROM user_resources ur JOIN resources r ON r.id = ur.resource_id
             WHERE ur.user_id = ?1 ORDER BY r.name",
        )?
        .query_map(params![user.id], |row| {
            Ok(ResourceRef {
                id: row.get(0)?,
                name: row.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(UserDetail {
        user,
        tokens,
        resources,
    })
}

fn user_by_id(conn: &Connection, id: i64) -> Result<User> {
    Ok(conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row(params![id], user_from_row)?)
}

/// Writes every column of `user` back to its row, and the key of its login (the key's index
/// refuses a new login that another user has).
fn save_user(conn: &Connection, user: &User) -> Result<()> {
    conn.prepare_cached(
        "UPDATE users SET login = ?2, login_key = ?10, first_name = ?3, last_name = ?4, email = ?5,
                          phone = ?6, password_hash = ?7, enabled = ?8, updated_at = ?9
         WHERE id = ?1",
    )?
    .execute(params![
        user.id,
        user.login,
        user.first_name,
        user.last_name,
        user.email,
        user.phone,
        user.password_hash,
        user.enabled,
        user.updated_at,
        login_key(&user.login)
    ])?;
    Ok(())
}

/// Deletes a user. Their tokens stay, without a user and without resources (a token is
/// assigned to a resource only through its user), released as by Unassign: pending challenges
/// of those tokens go, so that nobody finishes a login started as the deleted user, and BOT
/// tokens forget the user's chat. Resource assignments and
/// sessions go with the user through the foreign keys.
fn delete_user(conn: &Connection, user_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM token_resources WHERE token_id IN (SELECT id FROM tokens WHERE user_id = ?1)",
        params![user_id],
    )?;
    super::tokens::release(conn, super::tokens::Released::User(user_id))?;
    conn.execute(
        "UPDATE tokens SET user_id = NULL WHERE user_id = ?1",
        params![user_id],
    )?;
    conn.execute("DELETE FROM users WHERE id = ?1", params![user_id])?;
    Ok(())
}

/// Users whose logins have one key, as (id, login) in id order, each group with more than one.
fn same_key_groups(
    users: impl IntoIterator<Item = (i64, String, String)>,
) -> Vec<Vec<(i64, String)>> {
    let mut by_key: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (id, login, key) in users {
        by_key.entry(key).or_default().push((id, login));
    }
    let mut groups: Vec<Vec<(i64, String)>> = by_key
        .into_values()
        .filter(|group| group.len() > 1)
        .map(|mut group| {
            group.sort();
            group
        })
        .collect();
    groups.sort();
    groups
}

/// The refusal to open a database in which users' logins have one key: it names them and says
/// how to rename them. `migrated` tells whether the database has the key column already, and
/// so can no longer be opened by an older otpgate.
fn logins_collide(path: &Path, groups: &[Vec<(i64, String)>], migrated: bool) -> StoreError {
    let listed = groups
        .iter()
        .map(|group| {
            group
                .iter()
                .map(|(id, login)| format!("{login:?} (user {id})"))
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect::<Vec<_>>()
        .join("; ");
    let renamed = groups
        .first()
        .and_then(|group| group.last())
        .map_or(0, |(id, _)| *id);
    let how = if migrated {
        "The database has been upgraded already, so rename them in SQL, with otpgate stopped"
    } else {
        "The database was left as it was: the otpgate version that ran before can still open \
         it and rename them in its admin panel or through its API. Or rename them in SQL, with \
         otpgate stopped"
    };
    StoreError::LoginsCollide(format!(
        "cannot open the database {}: logins are now the same regardless of case and of their \
         Unicode form, and these users have the same login: {listed}. Rename all but one user \
         of each group, then start otpgate again. {how}, for instance: \
         UPDATE users SET login = 'another login' WHERE id = {renamed};",
        path.display()
    ))
}

/// Before the migration that adds the login key: refuses a database whose users' logins would
/// have one key, so that it stays as it was and the otpgate that wrote it can rename them.
pub(super) fn refuse_logins_that_collide(conn: &Connection, path: &Path) -> Result<()> {
    let has_column = |column: &str| {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('users') WHERE name = ?1)",
            params![column],
            |row| row.get::<_, bool>(0),
        )
    };
    // A new database has no users table yet; a migrated one has its keys.
    if !has_column("login")? || has_column("login_key")? {
        return Ok(());
    }
    let users = conn
        .prepare("SELECT id, login FROM users")?
        .query_map([], |row| {
            let login: String = row.get(1)?;
            let key = login_key(&login);
            Ok((row.get(0)?, login, key))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let groups = same_key_groups(users);
    if groups.is_empty() {
        Ok(())
    } else {
        Err(logins_collide(path, &groups, false))
    }
}

/// Gives every user without a login key its key, all in one transaction, or none when two
/// users would share one. SQL cannot fold Unicode, so the rows from before the key was added
/// (and any written since by hand) get it here, when the store opens.
pub(super) fn fill_login_keys(conn: &mut Connection, path: &Path) -> Result<()> {
    // A plain read first: the store is opened by every console command too, often while the
    // server runs, and nearly always there is nothing to fill and no write lock to wait for.
    let missing: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE login_key IS NULL)",
        [],
        |row| row.get(0),
    )?;
    if !missing {
        return Ok(());
    }
    let transaction = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let unkeyed = transaction
        .prepare("SELECT id, login FROM users WHERE login_key IS NULL")?
        .query_map([], |row| {
            let login: String = row.get(1)?;
            let key = login_key(&login);
            Ok((row.get::<_, i64>(0)?, login, key))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // Each new key against the others and against the keys stored already.
    let mut users = unkeyed.clone();
    {
        let mut keyed = transaction.prepare("SELECT id, login FROM users WHERE login_key = ?1")?;
        for (_, _, key) in &unkeyed {
            let holder = keyed.query_row(params![key], |row| Ok((row.get(0)?, row.get(1)?)));
            if let Some((id, login)) = optional(holder)? {
                users.push((id, login, key.clone()));
            }
        }
    }
    users.sort();
    users.dedup();
    let groups = same_key_groups(users);
    if !groups.is_empty() {
        return Err(logins_collide(path, &groups, true));
    }
    {
        let mut update = transaction.prepare("UPDATE users SET login_key = ?2 WHERE id = ?1")?;
        for (id, _, key) in &unkeyed {
            update.execute(params![id, key])?;
        }
    }
    transaction.commit()?;
    tracing::info!(users = unkeyed.len(), "login keys filled in");
    Ok(())
}

impl Store {
    /// Creates a user and records it in the audit log.
    pub async fn create_user(
        &self,
        draft: UserDraft,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<User> {
        self.write(move |conn| {
            let id = directory::insert_user(conn, &draft.user, now)?;
            if !draft.enabled {
                conn.execute("UPDATE users SET enabled = 0 WHERE id = ?1", params![id])?;
            }
            audit::insert(
                conn,
                &AuditEntry {
                    user_id: Some(id),
                    ..audit
                }
                .detail(draft.user.login.clone()),
            )?;
            user_by_id(conn, id)
        })
        .await
    }

    /// The users matching `filter`, one page of them, ordered by login.
    pub async fn list_users(&self, filter: UserFilter, page: Page) -> Result<Listing<User>> {
        self.read(move |conn| list_users(conn, &filter, page)).await
    }

    /// Which of `logins` are taken already (in any case or normal form), and by whom.
    pub async fn taken_logins(&self, logins: Vec<String>) -> Result<Vec<TakenLogin>> {
        self.read(move |conn| taken_logins(conn, &logins)).await
    }

    /// Creates every user of an import or none: when a login is taken (also by a user created
    /// since the preview), nothing is written and the taken logins are answered. One audit
    /// line names the count.
    pub async fn import_users(
        &self,
        users: Vec<NewUser>,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<std::result::Result<usize, Vec<TakenLogin>>> {
        self.write(move |conn| {
            let logins: Vec<String> = users.iter().map(|u| u.login.clone()).collect();
            let taken = taken_logins(conn, &logins)?;
            if !taken.is_empty() {
                return Ok(Err(taken));
            }
            for user in &users {
                directory::insert_user(conn, user, now)?;
            }
            audit::insert(conn, &audit.detail(format!("count {}", users.len())))?;
            Ok(Ok(users.len()))
        })
        .await
    }

    /// One page of the panel's user list; `None` when the filter's resource does not exist.
    pub async fn search_users(
        &self,
        filter: UserFilter,
        cursor: Cursor,
        limit: i64,
    ) -> Result<Option<UserSlice>> {
        self.read(move |conn| search_users(conn, &filter, &cursor, limit))
            .await
    }

    /// A user by id or login with their tokens and resources.
    pub async fn user_detail(&self, key: IdOrName) -> Result<Option<UserDetail>> {
        self.read(move |conn| match directory::find_user(conn, &key)? {
            Some(user) => user_detail(conn, user).map(Some),
            None => Ok(None),
        })
        .await
    }

    /// Applies `changes` to the user `key` (id or login); None when there is no such user.
    /// A change that changes nothing writes no audit entry.
    pub async fn update_user(
        &self,
        key: IdOrName,
        changes: UserChanges,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<Option<User>> {
        self.write(move |conn| {
            let Some(mut user) = directory::find_user(conn, &key)? else {
                return Ok(None);
            };
            let fields = changes.field_names();
            if fields.is_empty() {
                return Ok(Some(user));
            }
            let UserChanges {
                login,
                first_name,
                last_name,
                email,
                phone,
                enabled,
                password_hash,
            } = changes;
            let renamed = login.as_ref().map(|new| format!("{} -> {new}", user.login));
            if let Some(login) = login {
                user.login = login;
            }
            if let Some(first_name) = first_name {
                user.first_name = first_name;
            }
            if let Some(last_name) = last_name {
                user.last_name = last_name;
            }
            if let Some(email) = email {
                user.email = email;
            }
            if let Some(phone) = phone {
                user.phone = phone;
            }
            if let Some(enabled) = enabled {
                user.enabled = enabled;
            }
            if let Some(password_hash) = password_hash {
                user.password_hash = password_hash;
            }
            user.updated_at = now;
            save_user(conn, &user)?;
            let mut detail = fields.join(", ");
            if let Some(renamed) = renamed {
                detail = format!("{detail} (login {renamed})");
            }
            audit::insert(
                conn,
                &AuditEntry {
                    user_id: Some(user.id),
                    ..audit
                }
                .detail(detail),
            )?;
            Ok(Some(user))
        })
        .await
    }

    /// Deletes the user `key` (id or login); false when there is no such user.
    pub async fn delete_user(&self, key: IdOrName, audit: AuditEntry) -> Result<bool> {
        self.write(move |conn| {
            let Some(user) = directory::find_user(conn, &key)? else {
                return Ok(false);
            };
            delete_user(conn, user.id)?;
            audit::insert(
                conn,
                &AuditEntry {
                    user_id: Some(user.id),
                    ..audit
                }
                .detail(user.login),
            )?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::store::temp_store;

    fn add_users(store: &Store, count: usize) {
        store
            .write_blocking(move |conn| {
                for i in 0..count {
                    directory::insert_user(
                        conn,
                        &NewUser {
                            login: format!("user{i:06}"),
                            first_name: format!("First{i}"),
                            last_name: format!("Last{}", i % 1000),
                            email: Some(format!("user{i}@example.com")),
                            phone: (i % 2 == 0).then(|| format!("+4915{i:09}")),
                            password_hash: None,
                        },
                        1,
                    )?;
                }
                Ok(())
            })
            .expect("users inserted");
    }

    /// A database as an older otpgate left it: users written without a login key, either
    /// before the key's migration (`version` Some) or into the migrated table by hand (None).
    fn database_with_users(version: Option<i32>, logins: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(crate::store::DATABASE_FILE);
        match version {
            Some(version) => crate::store::migrate_to_version(&path, version).expect("migrated"),
            None => Store::open(&path, crate::store::StoreOptions::default())
                .expect("a new database")
                .close(),
        }
        let conn = Connection::open(&path).expect("open raw");
        for login in logins {
            conn.execute(
                "INSERT INTO users (login, created_at, updated_at) VALUES (?1, 1, 1)",
                params![login],
            )
            .expect("an old-style user");
        }
        (dir, path)
    }

    fn keys(path: &Path) -> Vec<(String, Option<String>)> {
        let conn = Connection::open(path).expect("open raw");
        conn.prepare("SELECT login, login_key FROM users ORDER BY id")
            .expect("statement")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    #[test]
    fn users_from_before_the_login_key_get_their_keys_when_the_store_opens() {
        for version in [Some(7), None] {
            let (_dir, path) =
                database_with_users(version, &["Zo\u{eb}", "Andre\u{301}", "stra\u{df}e", "bob"]);
            let store = Store::open(&path, crate::store::StoreOptions::default())
                .expect("opens and fills the keys");
            let found = |key: &str| {
                let key = IdOrName::Name(key.to_string());
                store
                    .read_blocking(move |conn| directory::find_user(conn, &key))
                    .expect("read")
                    .map(|user| user.login)
            };
            assert_eq!(
                found("ZO\u{cb}").as_deref(),
                Some("Zo\u{eb}"),
                "{version:?}"
            );
            assert_eq!(
                found("andr\u{e9}").as_deref(),
                Some("Andre\u{301}"),
                "{version:?}"
            );
            assert_eq!(
                found("STRASSE").as_deref(),
                Some("stra\u{df}e"),
                "{version:?}"
            );
            store.close();
            assert_eq!(
                keys(&path),
                [
                    ("Zo\u{eb}".into(), Some("zo\u{eb}".into())),
                    ("Andre\u{301}".into(), Some("andr\u{e9}".into())),
                    ("stra\u{df}e".into(), Some("strasse".into())),
                    ("bob".into(), Some("bob".into())),
                ],
                "the logins keep their spelling; {version:?}"
            );
        }
    }

    #[test]
    fn users_whose_logins_fold_alike_keep_the_store_from_opening_and_are_named() {
        let (_dir, path) = database_with_users(None, &["Zo\u{eb}", "ann", "ZO\u{cb}"]);
        let error = Store::open(&path, crate::store::StoreOptions::default())
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("\"Zo\u{eb}\" (user 1) and \"ZO\u{cb}\" (user 3)"),
            "{error}"
        );
        assert!(
            error.contains("UPDATE users SET login = 'another login' WHERE id = 3;"),
            "{error}"
        );
        assert!(!error.contains("\"ann\""), "{error}");
        assert!(
            keys(&path).iter().all(|(_, key)| key.is_none()),
            "no key is written unless every key is"
        );

        let conn = Connection::open(&path).expect("open raw");
        conn.execute("UPDATE users SET login = 'Zo\u{eb} 2' WHERE id = 3", [])
            .expect("renamed");
        drop(conn);
        Store::open(&path, crate::store::StoreOptions::default())
            .expect("opens once renamed")
            .close();
        assert!(keys(&path).iter().all(|(_, key)| key.is_some()));
    }

    #[test]
    fn a_user_without_a_key_whose_login_another_user_has_keeps_the_store_from_opening() {
        let (_dir, path) = database_with_users(None, &[]);
        let store = Store::open(&path, crate::store::StoreOptions::default()).expect("open");
        add_named_user(&store, "stra\u{df}e");
        store.close();
        let conn = Connection::open(&path).expect("open raw");
        conn.execute(
            "INSERT INTO users (login, created_at, updated_at) VALUES ('STRASSE', 1, 1)",
            [],
        )
        .expect("a user written by hand");
        drop(conn);
        let error = Store::open(&path, crate::store::StoreOptions::default())
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("\"stra\u{df}e\" (user 1) and \"STRASSE\" (user 2)"),
            "{error}"
        );
        assert!(error.contains("in SQL"), "{error}");
    }

    #[test]
    fn a_database_from_before_the_login_key_with_logins_that_fold_alike_is_left_as_it_was() {
        let (_dir, path) = database_with_users(Some(7), &["Andr\u{e9}", "ANDRE\u{301}"]);
        let error = Store::open(&path, crate::store::StoreOptions::default())
            .expect_err("refused")
            .to_string();
        assert!(
            // A combining mark is shown escaped, so that the two spellings can be told apart.
            error.contains("\"Andr\u{e9}\" (user 1) and \"ANDRE\\u{301}\" (user 2)"),
            "{error}"
        );
        assert!(
            error.contains("the otpgate version that ran before"),
            "{error}"
        );
        let conn = Connection::open(&path).expect("open raw");
        let version: i64 = conn
            .query_row(
                "SELECT MAX(version) FROM refinery_schema_history",
                [],
                |row| row.get(0),
            )
            .expect("version");
        assert_eq!(version, 7, "not migrated");
    }

    fn add_named_user(store: &Store, login: &str) {
        let login = login.to_string();
        store
            .write_blocking(move |conn| {
                directory::insert_user(
                    conn,
                    &NewUser {
                        login,
                        ..NewUser::default()
                    },
                    1,
                )
            })
            .expect("user inserted");
    }

    #[test]
    fn a_login_that_folds_like_a_stored_one_is_taken_and_cannot_be_stored_again() {
        let (_dir, store) = temp_store();
        add_named_user(&store, "Zo\u{eb}");
        add_named_user(&store, "carl");
        let taken = store
            .read_blocking(|conn| {
                taken_logins(conn, &["ZO\u{cb}".into(), "Carl".into(), "dora".into()])
            })
            .expect("read");
        assert_eq!(
            taken,
            [
                TakenLogin {
                    login: "ZO\u{cb}".into(),
                    by: "Zo\u{eb}".into()
                },
                TakenLogin {
                    login: "Carl".into(),
                    by: "carl".into()
                },
            ]
        );
        let error = store
            .write_blocking(|conn| {
                directory::insert_user(
                    conn,
                    &NewUser {
                        login: "zo\u{eb}".into(),
                        ..NewUser::default()
                    },
                    1,
                )
            })
            .expect_err("refused");
        assert!(error.is_unique_violation(), "{error}");
        let renamed = store
            .write_blocking(|conn| {
                let mut user =
                    directory::find_user(conn, &IdOrName::Name("CARL".into()))?.expect("carl");
                user.login = "ZO\u{cb}".into();
                save_user(conn, &user)
            })
            .expect_err("refused");
        assert!(renamed.is_unique_violation(), "{renamed}");
    }

    fn list(store: &Store, filter: UserFilter, limit: i64, offset: i64) -> (Vec<User>, i64) {
        match store
            .read_blocking(move |conn| list_users(conn, &filter, Page { limit, offset }))
            .expect("listing")
        {
            Listing::Found { items, total } => (items, total),
            Listing::NoSuchResource => panic!("unexpected missing resource"),
        }
    }

    #[test]
    fn a_search_is_a_substring_and_wildcards_are_plain_characters() {
        let (_dir, store) = temp_store();
        add_users(&store, 30);
        let (items, total) = list(
            &store,
            UserFilter {
                search: Some("USER00001".into()),
                ..UserFilter::default()
            },
            50,
            0,
        );
        assert_eq!(total, 10);
        assert_eq!(items.len(), 10);
        assert_eq!(items[0].login, "user000010");
        let (_, total) = list(
            &store,
            UserFilter {
                search: Some("user%".into()),
                ..UserFilter::default()
            },
            50,
            0,
        );
        assert_eq!(total, 0, "% is searched for, not used as a wildcard");
    }

    fn slice(store: &Store, filter: UserFilter, cursor: Cursor, limit: i64) -> UserSlice {
        store
            .read_blocking(move |conn| search_users(conn, &filter, &cursor, limit))
            .expect("search")
            .expect("no resource filter")
    }

    fn logins(users: &[User]) -> Vec<String> {
        users.iter().map(|u| u.login.clone()).collect()
    }

    #[test]
    fn the_panel_search_finds_what_the_api_search_finds_on_both_plans() {
        let (_dir, store) = temp_store();
        add_users(&store, 3000);
        // "Last12" is in 3 * 11 last names per thousand users (Last12, Last120..Last129): few
        // enough for the trigram plan. "user00" is in every login below 10,000: the login plan.
        for search in ["last12", "USER00", "ast99", "+4915", "1@ex", "zzz", "%_%"] {
            let filter = UserFilter {
                search: Some(search.into()),
                ..UserFilter::default()
            };
            let (expected, total) = list(&store, filter.clone(), 5000, 0);
            let mut found = Vec::new();
            let mut cursor = Cursor::First;
            loop {
                let page = slice(&store, filter.clone(), cursor, 400);
                found.extend(logins(&page.items));
                if !page.more_after {
                    break;
                }
                cursor = Cursor::After(found.last().cloned().expect("a login"));
            }
            assert_eq!(found, logins(&expected), "search {search:?}");
            let first = slice(&store, filter.clone(), Cursor::First, 10);
            if total <= COUNT_CAP {
                assert_eq!(first.count, Count::Exact(total), "search {search:?}");
            } else {
                assert_eq!(first.count, Count::MoreThan(COUNT_CAP), "search {search:?}");
            }
        }
    }

    #[test]
    fn one_or_two_characters_find_the_logins_that_start_with_them() {
        let (_dir, store) = temp_store();
        add_users(&store, 30);
        let search = |text: &str| {
            slice(
                &store,
                UserFilter {
                    search: Some(text.into()),
                    ..UserFilter::default()
                },
                Cursor::First,
                50,
            )
        };
        assert_eq!(search("US").count, Count::Exact(30));
        assert!(search("se").items.is_empty(), "a prefix, not a substring");
        assert!(search("%").items.is_empty());
    }

    #[test]
    fn a_previous_page_ends_where_the_next_one_started() {
        let (_dir, store) = temp_store();
        add_users(&store, 30);
        let first = slice(&store, UserFilter::default(), Cursor::First, 10);
        assert!(!first.more_before && first.more_after);
        assert_eq!(first.count, Count::Exact(30));
        let second = slice(
            &store,
            UserFilter::default(),
            Cursor::After(first.items[9].login.clone()),
            10,
        );
        assert_eq!(second.items[0].login, "user000010");
        let back = slice(
            &store,
            UserFilter::default(),
            Cursor::Before(second.items[0].login.clone()),
            10,
        );
        assert_eq!(logins(&back.items), logins(&first.items));
        assert!(!back.more_before && back.more_after);
    }

    #[test]
    fn the_search_index_follows_renames_and_deletions() {
        let (_dir, store) = temp_store();
        add_users(&store, 5);
        let search = |text: &str| {
            logins(
                &slice(
                    &store,
                    UserFilter {
                        search: Some(text.into()),
                        ..UserFilter::default()
                    },
                    Cursor::First,
                    10,
                )
                .items,
            )
        };
        assert_eq!(search("First3"), vec!["user000003"]);
        store
            .write_blocking(|conn| {
                conn.execute(
                    "UPDATE users SET first_name = 'Zebulon' WHERE login = 'user000003'",
                    [],
                )?;
                conn.execute("DELETE FROM users WHERE login = 'user000004'", [])?;
                Ok(())
            })
            .expect("changed");
        assert!(search("First3").is_empty());
        assert_eq!(search("ebulo"), vec!["user000003"]);
        assert!(search("First4").is_empty());
        // FTS5 compares its index with the users table and fails on any difference.
        store
            .write_blocking(|conn| {
                conn.execute(
                    "INSERT INTO users_search (users_search, rank) VALUES ('integrity-check', 1)",
                    [],
                )?;
                Ok(())
            })
            .expect("the search index matches the users table");
    }

    /// Lists 100,000 users in the ways the API does and prints how long each took; the
    /// figures are for reading, machines differ too much to assert them.
    #[test]
    fn listing_a_hundred_thousand_users_reads_one_page() {
        let (_dir, store) = temp_store();
        add_users(&store, 100_000);
        let cases = [
            ("first page", UserFilter::default(), 0),
            ("last page", UserFilter::default(), 99_950),
            (
                "search",
                UserFilter {
                    search: Some("irst9999".into()),
                    ..UserFilter::default()
                },
                0,
            ),
            (
                "disabled",
                UserFilter {
                    enabled: Some(false),
                    ..UserFilter::default()
                },
                0,
            ),
            (
                "without token",
                UserFilter {
                    has_token: Some(false),
                    ..UserFilter::default()
                },
                0,
            ),
        ];
        for (name, filter, offset) in cases {
            let started = std::time::Instant::now();
            let (items, total) = list(&store, filter, 50, offset);
            println!(
                "{name}: {} of {total} users in {:?}",
                items.len(),
                started.elapsed()
            );
        }
        let plan: Vec<String> = store
            .read_blocking(|conn| {
                let mut statement = conn.prepare(&format!(
                    "EXPLAIN QUERY PLAN SELECT {USER_COLUMNS} FROM users u ORDER BY u.login LIMIT 50 OFFSET 0"
                ))?;
                let rows = statement
                    .query_map([], |row| row.get::<_, String>(3))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .expect("plan");
        assert!(
            plan.iter().all(|step| !step.contains("TEMP B-TREE")),
            "the order comes from the login index, not a sort: {plan:?}"
        );
        let (items, total) = list(&store, UserFilter::default(), 50, 99_990);
        assert_eq!(total, 100_000);
        assert_eq!(items.len(), 10);
    }
}
