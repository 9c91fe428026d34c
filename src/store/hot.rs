//! The rows an authentication reads that only administration changes — its resource, its user,
//! the user's assignment and tokens there — kept by the writer thread between its jobs, so that
//! the hot path (`Store::judge`) reads from SQLite only what authentications themselves change.
//!
//! **Fresh.** Triggers move `row_changes.generation` whenever a user, a resource, an assignment
//! or a token's settings change, in the same transaction as the change and whichever connection
//! or program makes it (migration V21). A judgement first compares it with the generation the
//! kept rows were read at, and starts over when they differ; it is read once a transaction
//! while only judgements run (another process writes only between the writer's transactions,
//! and a judgement moves no generation), and again after any other job. The five columns an
//! authentication writes to a token — replay floor, drift, fail counter, lock, last use — move
//! no generation: they are read from the user's token rows every time. A batch whose commit
//! fails drops everything (what it read may never have been committed).
//!
//! **Bounded.** At most `MAX_KEPT` logins (a login no user has is kept too, so that its refusal
//! costs what a known user's does), users and token sets; past that it starts over. A flood of
//! made-up logins therefore costs what it did before anything was kept, and no more memory.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::Result;
use super::directory::{
    Resource, TOKEN_COLUMNS, Token, User, find_resource, find_user, token_from_row,
};
use crate::domain::{IdOrName, login_key};

/// How many logins, users or token sets are kept at most.
pub const MAX_KEPT: usize = 50_000;

/// Where an authentication's rows come from.
pub enum Rows<'a> {
    /// Read from the database (the readers, and any connection but the writer's).
    Fresh,
    /// The writer's kept rows.
    Kept(&'a mut HotRows),
}

impl Rows<'_> {
    pub fn resource(&mut self, conn: &Connection, key: &IdOrName) -> Result<Option<Resource>> {
        match self {
            Rows::Fresh => find_resource(conn, key),
            Rows::Kept(hot) => hot.resource(conn, key),
        }
    }

    pub fn user(&mut self, conn: &Connection, key: &IdOrName) -> Result<Option<User>> {
        match self {
            Rows::Fresh => find_user(conn, key),
            Rows::Kept(hot) => hot.user(conn, key),
        }
    }

    /// Whether the user is assigned to the resource, and the user's tokens assigned to it in id
    /// order (user 0, whom no row has, has neither).
    pub fn assigned_tokens(
        &mut self,
        conn: &Connection,
        user_id: i64,
        resource_id: i64,
    ) -> Result<(bool, Vec<Token>)> {
        match self {
            Rows::Fresh => assigned_tokens(conn, user_id, resource_id),
            Rows::Kept(hot) => hot.assigned_tokens(conn, user_id, resource_id),
        }
    }
}

fn assigned_tokens(
    conn: &Connection,
    user_id: i64,
    resource_id: i64,
) -> Result<(bool, Vec<Token>)> {
    let assigned: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM user_resources WHERE resource_id = ?1 AND user_id = ?2)",
        )?
        .query_row(params![resource_id, user_id], |row| row.get(0))?;
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_id = ?1
           AND EXISTS (SELECT 1 FROM token_resources WHERE resource_id = ?2 AND token_id = tokens.id)
         ORDER BY id"
    ))?;
    let tokens = statement
        .query_map(params![user_id, resource_id], token_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((assigned, tokens))
}

/// The writer's kept rows (see the module's documentation).
#[derive(Debug)]
pub struct HotRows {
    /// How many of each are kept at most.
    limit: usize,
    /// The `row_changes` generation the rows were read at; None: nothing is kept.
    generation: Option<i64>,
    /// Whether `generation` was read in the writer's current transaction with no job since
    /// that may have moved it.
    confirmed: bool,
    resources: HashMap<i64, Resource>,
    /// By name as SQLite compares it (ASCII letters in any case).
    resource_names: HashMap<String, i64>,
    users: HashMap<i64, User>,
    /// By login key (`login_key`); None: no user has it.
    logins: HashMap<String, Option<i64>>,
    /// By user and resource: the assignment and the tokens there.
    tokens: HashMap<(i64, i64), (bool, Vec<Token>)>,
}

impl Default for HotRows {
    fn default() -> Self {
        HotRows::with_limit(MAX_KEPT)
    }
}

impl HotRows {
    fn with_limit(limit: usize) -> Self {
        HotRows {
            limit,
            generation: None,
            confirmed: false,
            resources: HashMap::new(),
            resource_names: HashMap::new(),
            users: HashMap::new(),
            logins: HashMap::new(),
            tokens: HashMap::new(),
        }
    }

    /// Forgets everything: the next lookup reads the database again.
    pub fn forget(&mut self) {
        *self = HotRows::with_limit(self.limit);
    }

    /// Starts over when the rows changed since they were read. Reads the generation once a
    /// transaction while only judgements run: nothing else writes inside the writer's
    /// transaction, and a judgement moves no generation; any other job (`unconfirm`) and the
    /// next transaction read it again.
    pub fn check(&mut self, conn: &Connection) -> Result<()> {
        if self.confirmed {
            return Ok(());
        }
        let generation: i64 = conn
            .prepare_cached("SELECT generation FROM row_changes WHERE id = 1")?
            .query_row([], |row| row.get(0))?;
        if self.generation != Some(generation) {
            self.forget();
            self.generation = Some(generation);
        }
        self.confirmed = true;
        Ok(())
    }

    /// The generation must be read again before the kept rows are: a new transaction begins
    /// (another process may have committed before it), or a job ran that may change them.
    pub fn unconfirm(&mut self) {
        self.confirmed = false;
    }

    fn make_room(&mut self) {
        let kept = [
            self.resources.len(),
            self.logins.len(),
            self.users.len(),
            self.tokens.len(),
        ];
        let full = kept.into_iter().any(|kept| kept >= self.limit);
        if full {
            let (generation, confirmed) = (self.generation, self.confirmed);
            self.forget();
            (self.generation, self.confirmed) = (generation, confirmed);
        }
    }

    fn resource(&mut self, conn: &Connection, key: &IdOrName) -> Result<Option<Resource>> {
        let id = match key {
            IdOrName::Id(id) => Some(*id),
            IdOrName::Name(name) => self
                .resource_names
                .get(&name.trim().to_ascii_lowercase())
                .copied(),
        };
        if let Some(resource) = id.and_then(|id| self.resources.get(&id)) {
            return Ok(Some(resource.clone()));
        }
        let found = find_resource(conn, key)?;
        if let Some(resource) = &found {
            self.make_room();
            self.resource_names
                .insert(resource.name.to_ascii_lowercase(), resource.id);
            self.resources.insert(resource.id, resource.clone());
        }
        Ok(found)
    }

    fn user(&mut self, conn: &Connection, key: &IdOrName) -> Result<Option<User>> {
        match key {
            IdOrName::Id(id) => {
                if let Some(user) = self.users.get(id) {
                    return Ok(Some(user.clone()));
                }
                let found = find_user(conn, key)?;
                if let Some(user) = &found {
                    self.make_room();
                    self.users.insert(user.id, user.clone());
                }
                Ok(found)
            }
            IdOrName::Name(login) => {
                let login = login_key(login);
                match self.logins.get(&login) {
                    Some(None) => return Ok(None),
                    Some(Some(id)) => {
                        if let Some(user) = self.users.get(id) {
                            return Ok(Some(user.clone()));
                        }
                    }
                    None => {}
                }
                let found = find_user(conn, key)?;
                self.make_room();
                if let Some(user) = &found {
                    self.users.insert(user.id, user.clone());
                }
                self.logins
                    .insert(login, found.as_ref().map(|user| user.id));
                Ok(found)
            }
        }
    }

    fn assigned_tokens(
        &mut self,
        conn: &Connection,
        user_id: i64,
        resource_id: i64,
    ) -> Result<(bool, Vec<Token>)> {
        let Some((assigned, kept)) = self.tokens.get(&(user_id, resource_id)) else {
            let (assigned, tokens) = assigned_tokens(conn, user_id, resource_id)?;
            self.make_room();
            self.tokens
                .insert((user_id, resource_id), (assigned, tokens.clone()));
            return Ok((assigned, tokens));
        };
        let (assigned, mut tokens) = (*assigned, kept.clone());
        // Read for every user, one without tokens (or without a row) included, so that every
        // refusal costs what a known user's does.
        let mut statement = conn.prepare_cached(
            "SELECT id, last_step, drift, fail_count, locked_at, last_used_at
             FROM tokens WHERE user_id = ?1",
        )?;
        let mut rows = statement.query(params![user_id])?;
        let mut refreshed = 0;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let Some(token) = tokens.iter_mut().find(|token| token.id == id) else {
                continue;
            };
            token.last_step = row.get(1)?;
            token.drift = row.get(2)?;
            token.fail_count = row.get(3)?;
            token.locked_at = row.get(4)?;
            token.last_used_at = row.get(5)?;
            refreshed += 1;
        }
        if refreshed != tokens.len() {
            // A kept token has no row any more: whatever removed it moved the generation, so
            // this cannot happen; read everything again rather than trust the rest.
            self.forget();
            return assigned_tokens(conn, user_id, resource_id);
        }
        Ok((assigned, tokens))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::auth::{AuthTarget, Outcome};
    use crate::store::{Store, temp_store};

    /// Ann, assigned to the VPN with one HOTP token there.
    pub(in crate::store) async fn ann_on_the_vpn(store: &Store) {
        store
            .write(|conn| {
                conn.execute_batch(
                    "INSERT INTO users (id, login, login_key, created_at, updated_at)
                         VALUES (1, 'Ann', 'ann', 1, 1);
                     INSERT INTO resources (id, name, created_at, updated_at) VALUES (1, 'VPN', 1, 1);
                     INSERT INTO user_resources (resource_id, user_id) VALUES (1, 1);
                     INSERT INTO tokens (id, serial, name, kind, user_id, secret, last_step, created_at, updated_at)
                         VALUES (1, 'HW-1', 'key fob', 'HOTP', 1, x'00', 3, 1, 1);
                     INSERT INTO token_resources (resource_id, token_id) VALUES (1, 1);",
                )?;
                Ok(())
            })
            .await
            .expect("written");
    }

    pub(in crate::store) fn ann(login: &str) -> AuthTarget {
        AuthTarget {
            resource: IdOrName::Name("vpn".into()),
            user: Some(IdOrName::Name(login.into())),
            token: None,
            transaction: None,
            address: None,
        }
    }

    /// The context as the writer's judgement sees it, through its kept rows.
    async fn kept(store: &Store, login: &str) -> String {
        let (seen, _) = store
            .judge(ann(login), 10, |context| {
                (format!("{context:?}"), Outcome::Nothing, None)
            })
            .await
            .expect("judged");
        seen
    }

    /// The context as a reader reads it from the database.
    async fn fresh(store: &Store, login: &str) -> String {
        let context = store.auth_context(ann(login), 10).await.expect("read");
        format!("{context:?}")
    }

    async fn change(store: &Store, sql: &'static str) {
        store
            .write(move |conn| Ok(conn.execute_batch(sql)?))
            .await
            .expect("changed");
    }

    #[tokio::test]
    async fn the_writer_s_kept_rows_show_every_change_an_administrator_makes() {
        let (_dir, store) = temp_store();
        ann_on_the_vpn(&store).await;
        let first = kept(&store, "ANN").await;
        assert!(first.contains("HW-1"), "{first}");
        assert_eq!(first, fresh(&store, "ANN").await);
        assert_eq!(
            kept(&store, "ann").await,
            first,
            "read again from what is kept"
        );

        for sql in [
            "UPDATE users SET first_name = 'Anne', email = 'anne@example.com'",
            "UPDATE users SET enabled = 0",
            "UPDATE tokens SET enabled = 0",
            "UPDATE tokens SET pin_position = 'after', digits = 8",
            "UPDATE tokens SET state = 'reactivate'",
            "UPDATE resources SET fail_limit = 7, approvals_allowed = 1",
            "DELETE FROM token_resources",
            "INSERT INTO token_resources (resource_id, token_id) VALUES (1, 1)",
            "INSERT INTO tokens (id, serial, name, kind, user_id, destination, created_at, updated_at)
                 VALUES (2, 'MAIL-1', 'mail', 'MAIL', 1, 'ann@example.com', 1, 1);
             INSERT INTO token_resources (resource_id, token_id) VALUES (1, 2)",
            "DELETE FROM tokens WHERE id = 2",
            "DELETE FROM user_resources",
            // What an authentication writes moves no generation: read every time.
            "UPDATE tokens SET last_step = 41, drift = 2, fail_count = 3, locked_at = 9, last_used_at = 8",
        ] {
            change(&store, sql).await;
            assert_eq!(kept(&store, "ann").await, fresh(&store, "ann").await, "after {sql}");
        }

        change(&store, "UPDATE users SET login = 'Bea', login_key = 'bea'").await;
        let gone = kept(&store, "ann").await;
        assert!(gone.contains("user: None"), "{gone}");
        assert_eq!(gone, fresh(&store, "ann").await);
        assert_eq!(kept(&store, "bea").await, fresh(&store, "bea").await);
    }

    #[tokio::test]
    async fn a_change_another_program_writes_to_the_file_is_seen_too() {
        let (_dir, store) = temp_store();
        ann_on_the_vpn(&store).await;
        let before = kept(&store, "ann").await;
        assert!(before.contains("enabled: true"), "{before}");

        let other = Connection::open(store.path()).expect("a second connection");
        other
            .execute_batch("UPDATE users SET enabled = 0; UPDATE tokens SET serial = 'HW-2'")
            .expect("changed");
        drop(other);

        let after = kept(&store, "ann").await;
        assert!(after.contains("HW-2"), "{after}");
        assert_eq!(after, fresh(&store, "ann").await);
    }

    #[tokio::test]
    async fn a_flood_of_made_up_logins_keeps_no_more_than_the_bound() {
        let (_dir, store) = temp_store();
        ann_on_the_vpn(&store).await;
        let conn = Connection::open(store.path()).expect("a connection");
        let mut hot = HotRows::with_limit(8);
        hot.check(&conn).expect("checked");
        for n in 0..100 {
            let login = IdOrName::Name(format!("nobody-{n}"));
            assert!(hot.user(&conn, &login).expect("looked up").is_none());
            assert!(hot.assigned_tokens(&conn, 0, 1).expect("read").1.is_empty());
            assert!(hot.logins.len() <= 8, "{} logins kept", hot.logins.len());
        }
        let found = hot
            .user(&conn, &IdOrName::Name("Ann".into()))
            .expect("looked up");
        assert_eq!(found.map(|user| user.id), Some(1));
        assert!(hot.logins.len() <= 8 && hot.users.len() <= 8 && hot.tokens.len() <= 8);
    }
}
