//! Managing resources and what is assigned to them, each change with its audit entry in the
//! same transaction.

use rusqlite::{Connection, params};

use super::audit::{self, AuditEntry};
use super::directory::{self, NewResource, RESOURCE_COLUMNS, Resource, User, resource_from_row};
use super::users::{Listing, Page, UserFilter, like_pattern, list_users};
use super::{Result, Store, UnixTime, optional};
use crate::domain::TokenKind;

/// A resource with how many users and tokens are assigned to it.
#[derive(Debug, Clone)]
pub struct ResourceDetail {
    pub resource: Resource,
    pub users: i64,
    pub tokens: i64,
}

/// Changes to a resource; `None` leaves a field as it is. `auto_unlock_seconds` is itself
/// optional: `Some(None)` means only an administrator unlocks.
#[derive(Debug, Clone, Default)]
pub struct ResourceChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub fail_limit: Option<i64>,
    pub password_required: Option<bool>,
    pub auto_unlock_seconds: Option<Option<i64>>,
}

impl ResourceChanges {
    fn field_names(&self) -> Vec<&'static str> {
        let fields = [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("fail_limit", self.fail_limit.is_some()),
            ("password_required", self.password_required.is_some()),
            ("auto_unlock_seconds", self.auto_unlock_seconds.is_some()),
        ];
        fields
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect()
    }
}

/// A token assigned to a resource, with its user.
#[derive(Debug, Clone)]
pub struct ResourceToken {
    pub id: i64,
    pub serial: String,
    pub name: String,
    pub kind: TokenKind,
    /// The token's user (id, login); None only for a token whose user was taken away.
    pub user: Option<(i64, String)>,
}

/// The outcome of assigning something to a resource or taking it away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// The assignment was made or removed.
    Changed,
    /// It was already so; nothing was written.
    Unchanged,
    NoSuchResource,
    NoSuchUser,
    NoSuchToken,
    /// Only a token with a user may be assigned to a resource.
    TokenWithoutUser,
}

fn resource_by_id(conn: &Connection, id: i64) -> Result<Resource> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = ?1"
        ))?
        .query_row(params![id], resource_from_row)?)
}

fn is_assigned(conn: &Connection, table_sql: &str, resource_id: i64, id: i64) -> Result<bool> {
    Ok(optional(
        conn.prepare_cached(table_sql)?
            .query_row(params![resource_id, id], |_| Ok(())),
    )?
    .is_some())
}

const USER_ASSIGNED: &str = "SELECT 1 FROM user_resources WHERE resource_id = ?1 AND user_id = ?2";
const TOKEN_ASSIGNED: &str =
    "SELECT 1 FROM token_resources WHERE resource_id = ?1 AND token_id = ?2";

impl Store {
    /// Creates a resource (with its self-service settings, all off) and records it.
    pub async fn create_resource(
        &self,
        resource: NewResource,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<Resource> {
        self.write(move |conn| {
            let id = directory::insert_resource(conn, &resource, now)?;
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(id),
                    ..audit
                }
                .detail(resource.name.clone()),
            )?;
            resource_by_id(conn, id)
        })
        .await
    }

    /// One page of the resources whose name contains `search` (any case), ordered by name,
    /// and how many match in all.
    pub async fn list_resources(
        &self,
        search: Option<String>,
        page: Page,
    ) -> Result<(Vec<Resource>, i64)> {
        self.read(move |conn| {
            let pattern = like_pattern(search.as_deref().unwrap_or_default());
            let total: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM resources WHERE name LIKE ?1 ESCAPE '\\'")?
                .query_row(params![pattern], |row| row.get(0))?;
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {RESOURCE_COLUMNS} FROM resources WHERE name LIKE ?1 ESCAPE '\\'
                     ORDER BY name LIMIT ?2 OFFSET ?3"
                ))?
                .query_map(params![pattern, page.limit, page.offset], resource_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((items, total))
        })
        .await
    }

    /// A resource by id or name, with the number of users and tokens assigned to it.
    pub async fn resource_detail(&self, key: String) -> Result<Option<ResourceDetail>> {
        self.read(move |conn| {
            let Some(resource) = directory::find_resource(conn, &key)? else {
                return Ok(None);
            };
            let (users, tokens) = conn.query_row(
                "SELECT (SELECT COUNT(*) FROM user_resources WHERE resource_id = ?1),
                        (SELECT COUNT(*) FROM token_resources WHERE resource_id = ?1)",
                params![resource.id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            Ok(Some(ResourceDetail {
                resource,
                users,
                tokens,
            }))
        })
        .await
    }

    /// Applies `changes` to the resource `key`; None when there is no such resource. A change
    /// that changes nothing writes no audit entry.
    pub async fn update_resource(
        &self,
        key: String,
        changes: ResourceChanges,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<Option<Resource>> {
        self.write(move |conn| {
            let Some(mut resource) = directory::find_resource(conn, &key)? else {
                return Ok(None);
            };
            let fields = changes.field_names();
            if fields.is_empty() {
                return Ok(Some(resource));
            }
            let renamed = changes
                .name
                .as_ref()
                .map(|new| format!(" (name {} -> {new})", resource.name));
            let ResourceChanges {
                name,
                description,
                fail_limit,
                password_required,
                auto_unlock_seconds,
            } = changes;
            if let Some(name) = name {
                resource.name = name;
            }
            if let Some(description) = description {
                resource.description = description;
            }
            if let Some(fail_limit) = fail_limit {
                resource.fail_limit = fail_limit;
            }
            if let Some(password_required) = password_required {
                resource.password_required = password_required;
            }
            if let Some(auto_unlock_seconds) = auto_unlock_seconds {
                resource.auto_unlock_seconds = auto_unlock_seconds;
            }
            resource.updated_at = now;
            conn.prepare_cached(
                "UPDATE resources SET name = ?2, description = ?3, fail_limit = ?4,
                        password_required = ?5, auto_unlock_seconds = ?6, updated_at = ?7
                 WHERE id = ?1",
            )?
            .execute(params![
                resource.id,
                resource.name,
                resource.description,
                resource.fail_limit,
                resource.password_required,
                resource.auto_unlock_seconds,
                resource.updated_at
            ])?;
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(resource.id),
                    ..audit
                }
                .detail(format!(
                    "{}{}",
                    fields.join(", "),
                    renamed.unwrap_or_default()
                )),
            )?;
            Ok(Some(resource))
        })
        .await
    }

    /// Deletes the resource `key`; its assignments, API keys, self-service settings and
    /// portal sessions go with it through the foreign keys. False when there is no such
    /// resource.
    pub async fn delete_resource(&self, key: String, audit: AuditEntry) -> Result<bool> {
        self.write(move |conn| {
            let Some(resource) = directory::find_resource(conn, &key)? else {
                return Ok(false);
            };
            conn.execute("DELETE FROM resources WHERE id = ?1", params![resource.id])?;
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(resource.id),
                    ..audit
                }
                .detail(resource.name),
            )?;
            Ok(true)
        })
        .await
    }

    /// One page of the users assigned to the resource `key`, ordered by login.
    pub async fn resource_users(&self, key: String, page: Page) -> Result<Listing<User>> {
        self.read(move |conn| {
            let filter = UserFilter {
                resource: Some(key),
                ..UserFilter::default()
            };
            list_users(conn, &filter, page)
        })
        .await
    }

    /// The tokens assigned to the resource `key`, ordered by serial; None when there is no
    /// such resource.
    pub async fn resource_tokens(&self, key: String) -> Result<Option<Vec<ResourceToken>>> {
        self.read(move |conn| {
            let Some(resource) = directory::find_resource(conn, &key)? else {
                return Ok(None);
            };
            let tokens = conn
                .prepare_cached(
                    "SELECT t.id, t.serial, t.name, t.kind, u.id, u.login
                     FROM token_resources tr
                     JOIN tokens t ON t.id = tr.token_id
                     LEFT JOIN users u ON u.id = t.user_id
                     WHERE tr.resource_id = ?1
                     ORDER BY t.serial",
                )?
                .query_map(params![resource.id], |row| {
                    let kind: String = row.get(3)?;
                    let user_id: Option<i64> = row.get(4)?;
                    let login: Option<String> = row.get(5)?;
                    Ok(ResourceToken {
                        id: row.get(0)?,
                        serial: row.get(1)?,
                        name: row.get(2)?,
                        kind: TokenKind::parse(&kind).unwrap_or(TokenKind::Totp),
                        user: user_id.zip(login),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(tokens))
        })
        .await
    }

    /// Assigns the user `user` to the resource `resource` (both by id or name). Assigning
    /// twice changes nothing and writes no second audit entry.
    pub async fn assign_user(
        &self,
        resource: String,
        user: String,
        audit: AuditEntry,
    ) -> Result<Assignment> {
        self.write(move |conn| {
            let Some(resource) = directory::find_resource(conn, &resource)? else {
                return Ok(Assignment::NoSuchResource);
            };
            let Some(user) = directory::find_user(conn, &user)? else {
                return Ok(Assignment::NoSuchUser);
            };
            if is_assigned(conn, USER_ASSIGNED, resource.id, user.id)? {
                return Ok(Assignment::Unchanged);
            }
            directory::assign_user_to_resource(conn, resource.id, user.id)?;
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(resource.id),
                    user_id: Some(user.id),
                    ..audit
                }
                .detail(format!("{} -> {}", user.login, resource.name)),
            )?;
            Ok(Assignment::Changed)
        })
        .await
    }

    /// Takes the user `user` from the resource `resource`, and their tokens with them: a
    /// token is assigned to a resource only through its user.
    pub async fn unassign_user(
        &self,
        resource: String,
        user: String,
        audit: AuditEntry,
    ) -> Result<Assignment> {
        self.write(move |conn| {
            let Some(resource) = directory::find_resource(conn, &resource)? else {
                return Ok(Assignment::NoSuchResource);
            };
            let Some(user) = directory::find_user(conn, &user)? else {
                return Ok(Assignment::NoSuchUser);
            };
            let tokens = conn.execute(
                "DELETE FROM token_resources WHERE resource_id = ?1
                   AND token_id IN (SELECT id FROM tokens WHERE user_id = ?2)",
                params![resource.id, user.id],
            )?;
            let users = conn.execute(
                "DELETE FROM user_resources WHERE resource_id = ?1 AND user_id = ?2",
                params![resource.id, user.id],
            )?;
            if users + tokens == 0 {
                return Ok(Assignment::Unchanged);
            }
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(resource.id),
                    user_id: Some(user.id),
                    ..audit
                }
                .detail(format!("{} -/> {}", user.login, resource.name)),
            )?;
            Ok(Assignment::Changed)
        })
        .await
    }

    /// Assigns the token `token` (id or serial) to the resource, and its user with it
    /// ("Assign → Token with User"). A token without a user is refused.
    pub async fn assign_token(
        &self,
        resource: String,
        token: String,
        audit: AuditEntry,
    ) -> Result<Assignment> {
        self.write(move |conn| {
            let Some(resource) = directory::find_resource(conn, &resource)? else {
                return Ok(Assignment::NoSuchResource);
            };
            let Some(token) = directory::find_token(conn, &token)? else {
                return Ok(Assignment::NoSuchToken);
            };
            let Some(user_id) = token.user_id else {
                return Ok(Assignment::TokenWithoutUser);
            };
            if is_assigned(conn, TOKEN_ASSIGNED, resource.id, token.id)?
                && is_assigned(conn, USER_ASSIGNED, resource.id, user_id)?
            {
                return Ok(Assignment::Unchanged);
            }
            directory::assign_token_to_resource(conn, resource.id, token.id)?;
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(resource.id),
                    user_id: Some(user_id),
                    token_id: Some(token.id),
                    ..audit
                }
                .detail(format!("{} -> {}", token.serial, resource.name)),
            )?;
            Ok(Assignment::Changed)
        })
        .await
    }

    /// Takes the token `token` from the resource; its user stays assigned.
    pub async fn unassign_token(
        &self,
        resource: String,
        token: String,
        audit: AuditEntry,
    ) -> Result<Assignment> {
        self.write(move |conn| {
            let Some(resource) = directory::find_resource(conn, &resource)? else {
                return Ok(Assignment::NoSuchResource);
            };
            let Some(token) = directory::find_token(conn, &token)? else {
                return Ok(Assignment::NoSuchToken);
            };
            let removed = conn.execute(
                "DELETE FROM token_resources WHERE resource_id = ?1 AND token_id = ?2",
                params![resource.id, token.id],
            )?;
            if removed == 0 {
                return Ok(Assignment::Unchanged);
            }
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(resource.id),
                    user_id: token.user_id,
                    token_id: Some(token.id),
                    ..audit
                }
                .detail(format!("{} -/> {}", token.serial, resource.name)),
            )?;
            Ok(Assignment::Changed)
        })
        .await
    }
}
