//! Managing resources and what is assigned to them, each change with its audit entry in the
//! same transaction.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use rusqlite::{Connection, params};

use super::audit::{self, AuditEntry};
use super::directory::{
    self, NewResource, RESOURCE_COLUMN_COUNT, RESOURCE_COLUMNS, Resource, User, resource_from_row,
};
use super::users::{Listing, Page, UserFilter, like_pattern, list_users};
use super::{Result, Store, UnixTime, optional};
use crate::domain::{IdOrName, Invalid, TokenKind, WithoutSecondFactor};

pub const MAX_RESOURCE_NAME: usize = 100;
pub const MAX_DESCRIPTION: usize = 1000;
/// Failed attempts before a token is locked, when a new resource names no limit.
pub const DEFAULT_FAIL_LIMIT: i64 = 5;
/// Failed attempts before a token is locked.
pub const FAIL_LIMITS: RangeInclusive<i64> = 3..=10;
/// Seconds after which a locked token may unlock itself.
pub const AUTO_UNLOCK: RangeInclusive<i64> = 60..=86_400;

/// How many wrong codes a day an automatic unlock lets anyone try against one token: each
/// unlock allows another `fail_limit` before the token locks again.
pub fn guesses_per_day(fail_limit: i64, auto_unlock_seconds: i64) -> i64 {
    fail_limit * 86_400 / auto_unlock_seconds.max(1)
}

/// What an automatic unlock costs, in words, with the figures of the allowed range: the API's
/// schema, the panel and the documentation say the same.
pub fn auto_unlock_cost() -> String {
    let default_limit = DEFAULT_FAIL_LIMIT;
    format!(
        "Each unlock allows another fail_limit wrong codes, so a token that unlocks itself can \
         be guessed at about fail_limit × 86,400 / auto_unlock_seconds guesses a day: with \
         fail_limit {default_limit}, {} guesses a day at {} s, {} at 3,600 s and {} at {} s \
         (with fail_limit {}, {} at {} s). Without it, {default_limit} in all until an \
         administrator unlocks.",
        guesses_per_day(default_limit, *AUTO_UNLOCK.start()),
        AUTO_UNLOCK.start(),
        guesses_per_day(default_limit, 3_600),
        guesses_per_day(default_limit, *AUTO_UNLOCK.end()),
        AUTO_UNLOCK.end(),
        FAIL_LIMITS.end(),
        guesses_per_day(*FAIL_LIMITS.end(), *AUTO_UNLOCK.start()),
        AUTO_UNLOCK.start(),
    )
}

/// A resource name: trimmed, 1–100 characters without control characters, and not a number,
/// since a number in a path is taken for an id. The API and the panel both apply it.
pub fn parse_resource_name(text: &str) -> std::result::Result<String, Invalid> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_RESOURCE_NAME {
        return Err(Invalid(format!(
            "must have 1 to {MAX_RESOURCE_NAME} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid("may not contain control characters".into()));
    }
    if text.parse::<i64>().is_ok() {
        return Err(Invalid(
            "may not be a number (numbers are resource ids)".into(),
        ));
    }
    Ok(text.to_string())
}

/// A resource's description: at most 1000 characters, trimmed.
pub fn parse_description(text: &str) -> std::result::Result<String, Invalid> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(Invalid(format!(
            "may have at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(text.trim().to_string())
}

pub fn check_fail_limit(value: i64) -> std::result::Result<i64, Invalid> {
    if FAIL_LIMITS.contains(&value) {
        Ok(value)
    } else {
        Err(Invalid("must be from 3 to 10".into()))
    }
}

pub fn check_auto_unlock(value: i64) -> std::result::Result<i64, Invalid> {
    if AUTO_UNLOCK.contains(&value) {
        Ok(value)
    } else {
        Err(Invalid(
            "must be from 60 to 86400 seconds, or null for unlocking by an administrator only"
                .into(),
        ))
    }
}

/// A resource in a listing, with what is assigned to it and whether its portal is on.
#[derive(Debug, Clone)]
pub struct ResourceSummary {
    pub resource: Resource,
    pub users: i64,
    pub tokens: i64,
    pub self_service: bool,
}

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
    pub without_second_factor: Option<WithoutSecondFactor>,
    pub approvals: super::approvals::ApprovalSettingsChange,
}

impl ResourceChanges {
    fn field_names(&self) -> Vec<&'static str> {
        let fields = [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("fail_limit", self.fail_limit.is_some()),
            ("password_required", self.password_required.is_some()),
            ("auto_unlock_seconds", self.auto_unlock_seconds.is_some()),
            (
                "without_second_factor",
                self.without_second_factor.is_some(),
            ),
            ("approvals", !self.approvals.is_empty()),
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

/// Writes the audit line of an assignment that changed (`->` assigned, `-/>` taken away),
/// naming the user or token (`who`) and the resource.
fn record_change(
    conn: &Connection,
    audit: AuditEntry,
    resource: &Resource,
    (user_id, token_id): (Option<i64>, Option<i64>),
    who: &str,
    arrow: &str,
) -> Result<Assignment> {
    audit::insert(
        conn,
        &AuditEntry {
            resource_id: Some(resource.id),
            user_id,
            token_id,
            ..audit
        }
        .detail(format!("{who} {arrow} {}", resource.name)),
    )?;
    Ok(Assignment::Changed)
}

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

    /// One page of resources ordered by name, each with its numbers of users and tokens and
    /// whether its self-service portal is on, and how many resources there are in all.
    pub async fn resource_summaries(&self, page: Page) -> Result<(Vec<ResourceSummary>, i64)> {
        self.read(move |conn| {
            let total: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM resources")?
                .query_row([], |row| row.get(0))?;
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {RESOURCE_COLUMNS},
                            (SELECT COUNT(*) FROM user_resources ur WHERE ur.resource_id = resources.id),
                            (SELECT COUNT(*) FROM token_resources tr WHERE tr.resource_id = resources.id),
                            COALESCE((SELECT enabled FROM self_service s WHERE s.resource_id = resources.id), 0)
                     FROM resources ORDER BY name LIMIT ?1 OFFSET ?2"
                ))?
                .query_map(params![page.limit, page.offset], |row| {
                    Ok(ResourceSummary {
                        resource: resource_from_row(row)?,
                        users: row.get(RESOURCE_COLUMN_COUNT)?,
                        tokens: row.get(RESOURCE_COLUMN_COUNT + 1)?,
                        self_service: row.get(RESOURCE_COLUMN_COUNT + 2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((items, total))
        })
        .await
    }

    /// A resource by id or name, with the number of users and tokens assigned to it.
    pub async fn resource_detail(&self, key: IdOrName) -> Result<Option<ResourceDetail>> {
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
        key: IdOrName,
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
                without_second_factor,
                approvals,
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
            if let Some(without_second_factor) = without_second_factor {
                resource.without_second_factor = without_second_factor;
            }
            resource.approvals = resource.approvals.changed(approvals);
            resource.updated_at = now;
            conn.prepare_cached(
                "UPDATE resources SET name = ?2, description = ?3, fail_limit = ?4,
                        password_required = ?5, auto_unlock_seconds = ?6, updated_at = ?7,
                        without_second_factor = ?8, approvals_allowed = ?9,
                        approval_number_matching = ?10, approval_deny_locks = ?11
                 WHERE id = ?1",
            )?
            .execute(params![
                resource.id,
                resource.name,
                resource.description,
                resource.fail_limit,
                resource.password_required,
                resource.auto_unlock_seconds,
                resource.updated_at,
                resource.without_second_factor.as_str(),
                resource.approvals.allowed,
                resource.approvals.number_matching,
                resource.approvals.deny_locks,
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
    pub async fn delete_resource(&self, key: IdOrName, audit: AuditEntry) -> Result<bool> {
        let deleted = self
            .write(move |conn| {
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
            .await;
        // The resource's RADIUS clients went with it.
        self.radius_clients_changed();
        deleted
    }

    /// One page of the users assigned to the resource `key`, ordered by login.
    pub async fn resource_users(&self, key: IdOrName, page: Page) -> Result<Listing<User>> {
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
    pub async fn resource_tokens(&self, key: IdOrName) -> Result<Option<Vec<ResourceToken>>> {
        Ok(self
            .resource_tokens_window(key, i64::MAX, 0)
            .await?
            .map(|(tokens, _)| tokens))
    }

    /// One page of the tokens assigned to a resource, by serial, and how many there are.
    pub async fn resource_tokens_window(
        &self,
        key: IdOrName,
        limit: i64,
        offset: i64,
    ) -> Result<Option<(Vec<ResourceToken>, i64)>> {
        self.read(move |conn| {
            let Some(resource) = directory::find_resource(conn, &key)? else {
                return Ok(None);
            };
            let total: i64 = conn
                .prepare_cached("SELECT count(*) FROM token_resources WHERE resource_id = ?1")?
                .query_row(params![resource.id], |row| row.get(0))?;
            let highest_id: i64 = conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM tokens")?
                .query_row([], |row| row.get(0))?;
            // Two ways to one page in serial order. A resource holding a fair share of all
            // tokens walks the serial index and stops after the page (reading no token's row
            // before it is on the page); sorting its members instead would read all of them,
            // 10,000 rows for the first page of a resource of 10,000. A resource holding few
            // tokens among many sorts its own, rather than walk every serial to find them.
            let page = if total.saturating_mul(20) >= highest_id {
                "SELECT p.id FROM tokens p
                 WHERE EXISTS (SELECT 1 FROM token_resources tr WHERE tr.resource_id = ?1 AND tr.token_id = p.id)
                 ORDER BY p.serial LIMIT ?2 OFFSET ?3"
            } else {
                "SELECT p.id FROM token_resources tr JOIN tokens p ON p.id = tr.token_id
                 WHERE tr.resource_id = ?1 ORDER BY p.serial LIMIT ?2 OFFSET ?3"
            };
            let tokens = conn
                .prepare_cached(&format!(
                    "SELECT t.id, t.serial, t.name, t.kind, u.id, u.login
                     FROM ({page}) page
                     JOIN tokens t ON t.id = page.id
                     LEFT JOIN users u ON u.id = t.user_id
                     ORDER BY t.serial"
                ))?
                .query_map(params![resource.id, limit, offset], |row| {
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
            Ok(Some((tokens, total)))
        })
        .await
    }

    /// Assigns the user `user` to the resource `resource` (both by id or name). Assigning
    /// twice changes nothing and writes no second audit entry.
    pub async fn assign_user(
        &self,
        resource: IdOrName,
        user: IdOrName,
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
            record_change(
                conn,
                audit,
                &resource,
                (Some(user.id), None),
                &user.login,
                "->",
            )
        })
        .await
    }

    /// Takes the user `user` from the resource `resource`, and their tokens with them: a
    /// token is assigned to a resource only through its user.
    pub async fn unassign_user(
        &self,
        resource: IdOrName,
        user: IdOrName,
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
            record_change(
                conn,
                audit,
                &resource,
                (Some(user.id), None),
                &user.login,
                "-/>",
            )
        })
        .await
    }

    /// Assigns the token `token` (id or serial) to the resource, and its user with it
    /// ("Assign → Token with User"). A token without a user is refused.
    pub async fn assign_token(
        &self,
        resource: IdOrName,
        token: IdOrName,
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
            record_change(
                conn,
                audit,
                &resource,
                (Some(user_id), Some(token.id)),
                &token.serial,
                "->",
            )
        })
        .await
    }

    /// Takes the token `token` from the resource; its user stays assigned.
    pub async fn unassign_token(
        &self,
        resource: IdOrName,
        token: IdOrName,
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
            record_change(
                conn,
                audit,
                &resource,
                (token.user_id, Some(token.id)),
                &token.serial,
                "-/>",
            )
        })
        .await
    }
}

/// The two groups of Allowed Actions on a self-service portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionGroup {
    Token,
    User,
}

impl ActionGroup {
    pub const ALL: [ActionGroup; 2] = [ActionGroup::Token, ActionGroup::User];

    pub fn label(self) -> &'static str {
        match self {
            ActionGroup::Token => "Token",
            ActionGroup::User => "User",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActionGroup::Token => "token",
            ActionGroup::User => "user",
        }
    }

    /// The actions of this group, in the order the portal settings show them.
    pub fn actions(self) -> impl Iterator<Item = PortalAction> {
        PortalAction::ALL
            .into_iter()
            .filter(move |action| action.group() == self)
    }
}

/// What a user may do on a resource's self-service portal. All are off until an administrator
/// allows them; the portal checks each again on the server for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortalAction {
    /// Enrol a new token ("Assign New"), of the kinds Token Enrollment allows.
    EnrollToken,
    /// Claim an unassigned hardware token by serial and a current code.
    AssignExistingToken,
    UnassignToken,
    /// A new secret or a new activation for a token.
    ReissueToken,
    /// Resynchronise with two consecutive codes.
    TokenSynchronization,
    EnableDisableToken,
    RenameToken,
    SetPin,
    RemovePin,
    /// Set a password when the user has none.
    SetPassword,
    ChangePassword,
    ChangeEmail,
    ChangePhone,
    ChangeName,
}

impl PortalAction {
    pub const ALL: [PortalAction; 14] = [
        PortalAction::EnrollToken,
        PortalAction::AssignExistingToken,
        PortalAction::UnassignToken,
        PortalAction::ReissueToken,
        PortalAction::TokenSynchronization,
        PortalAction::EnableDisableToken,
        PortalAction::RenameToken,
        PortalAction::SetPin,
        PortalAction::RemovePin,
        PortalAction::SetPassword,
        PortalAction::ChangePassword,
        PortalAction::ChangeEmail,
        PortalAction::ChangePhone,
        PortalAction::ChangeName,
    ];

    /// The stable name stored in the database and used in forms.
    pub fn as_str(self) -> &'static str {
        match self {
            PortalAction::EnrollToken => "enroll_token",
            PortalAction::AssignExistingToken => "assign_existing_token",
            PortalAction::UnassignToken => "unassign_token",
            PortalAction::ReissueToken => "reissue_token",
            PortalAction::TokenSynchronization => "token_synchronization",
            PortalAction::EnableDisableToken => "enable_disable_token",
            PortalAction::RenameToken => "rename_token",
            PortalAction::SetPin => "set_pin",
            PortalAction::RemovePin => "remove_pin",
            PortalAction::SetPassword => "set_password",
            PortalAction::ChangePassword => "change_password",
            PortalAction::ChangeEmail => "change_email",
            PortalAction::ChangePhone => "change_phone",
            PortalAction::ChangeName => "change_name",
        }
    }

    pub fn parse(text: &str) -> Option<PortalAction> {
        PortalAction::ALL
            .into_iter()
            .find(|action| action.as_str() == text)
    }

    /// The action's name as administrators read it.
    pub fn label(self) -> &'static str {
        match self {
            PortalAction::EnrollToken => "Enroll Token",
            PortalAction::AssignExistingToken => "Assign Existing Token",
            PortalAction::UnassignToken => "Unassign Token",
            PortalAction::ReissueToken => "Reissue Token",
            PortalAction::TokenSynchronization => "Token Synchronization",
            PortalAction::EnableDisableToken => "Enable/Disable Token",
            PortalAction::RenameToken => "Rename Token",
            PortalAction::SetPin => "Set PIN",
            PortalAction::RemovePin => "Remove PIN",
            PortalAction::SetPassword => "Set Password",
            PortalAction::ChangePassword => "Change Password",
            PortalAction::ChangeEmail => "Change Email",
            PortalAction::ChangePhone => "Change Phone",
            PortalAction::ChangeName => "Change Name",
        }
    }

    pub fn group(self) -> ActionGroup {
        match self {
            PortalAction::SetPassword
            | PortalAction::ChangePassword
            | PortalAction::ChangeEmail
            | PortalAction::ChangePhone
            | PortalAction::ChangeName => ActionGroup::User,
            _ => ActionGroup::Token,
        }
    }
}

/// A resource's Self-Service settings, as the portal reads them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelfService {
    pub enabled: bool,
    /// The Self-Service Page Address: the portal is at `<base URL>/portal/<address>`.
    pub address: Option<String>,
    pub allowed_actions: BTreeSet<PortalAction>,
    /// The token kinds users may enrol, in the order of `TokenKind::ALL`.
    pub enrollment_kinds: Vec<TokenKind>,
    /// "Users may remove their last second factor": Disable Token and Unassign Token may take
    /// away a user's last active token here. Off, a user keeps at least one.
    pub allow_remove_last: bool,
}

impl SelfService {
    pub fn allows(&self, action: PortalAction) -> bool {
        self.allowed_actions.contains(&action)
    }

    pub fn allows_kind(&self, kind: TokenKind) -> bool {
        self.enrollment_kinds.contains(&kind)
    }

    /// What differs from `before`, one line per setting, in words for the flash message and
    /// the audit log.
    pub fn changes_from(&self, before: &SelfService) -> Vec<String> {
        let mut changes = Vec::new();
        if self.enabled != before.enabled {
            changes.push(format!(
                "Self-service {}",
                if self.enabled { "enabled" } else { "disabled" }
            ));
        }
        if self.address != before.address {
            changes.push(format!(
                "address {} → {}",
                before.address.as_deref().unwrap_or("(none)"),
                self.address.as_deref().unwrap_or("(none)")
            ));
        }
        let allowed: Vec<&str> = self
            .allowed_actions
            .difference(&before.allowed_actions)
            .map(|a| a.label())
            .collect();
        if !allowed.is_empty() {
            changes.push(format!("allowed {}", allowed.join(", ")));
        }
        let denied: Vec<&str> = before
            .allowed_actions
            .difference(&self.allowed_actions)
            .map(|a| a.label())
            .collect();
        if !denied.is_empty() {
            changes.push(format!("no longer allowed {}", denied.join(", ")));
        }
        let kinds_added: Vec<&str> = self
            .enrollment_kinds
            .iter()
            .filter(|k| !before.enrollment_kinds.contains(k))
            .map(|k| k.as_str())
            .collect();
        if !kinds_added.is_empty() {
            changes.push(format!("enrolment of {} allowed", kinds_added.join(", ")));
        }
        let kinds_removed: Vec<&str> = before
            .enrollment_kinds
            .iter()
            .filter(|k| !self.enrollment_kinds.contains(k))
            .map(|k| k.as_str())
            .collect();
        if !kinds_removed.is_empty() {
            changes.push(format!(
                "enrolment of {} no longer allowed",
                kinds_removed.join(", ")
            ));
        }
        if self.allow_remove_last != before.allow_remove_last {
            changes.push(
                if self.allow_remove_last {
                    "users may remove their last second factor"
                } else {
                    "users may no longer remove their last second factor"
                }
                .to_string(),
            );
        }
        changes
    }
}

/// A Self-Service Page Address: 2–63 lowercase letters, digits and hyphens, starting and
/// ending with a letter or digit, so that it can stand in a URL as it is.
pub fn parse_portal_address(text: &str) -> std::result::Result<String, Invalid> {
    let address = text.trim().to_ascii_lowercase();
    let valid = (2..=63).contains(&address.len())
        && address
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !address.starts_with('-')
        && !address.ends_with('-');
    if valid {
        Ok(address)
    } else {
        Err(Invalid(
            "use 2 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"
                .into(),
        ))
    }
}

/// A Self-Service Page Address made from a resource's name ("Sales VPN" → `sales-vpn`): every
/// run of other characters becomes one hyphen; None when nothing usable is left.
pub fn suggest_portal_address(name: &str) -> Option<String> {
    let mut address = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            address.push(c);
        } else if !address.is_empty() && !address.ends_with('-') {
            address.push('-');
        }
    }
    let address: String = address.chars().take(63).collect();
    parse_portal_address(address.trim_end_matches('-')).ok()
}

/// What saving Self-Service settings did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfServiceSaved {
    /// Saved; the changes in words (empty when nothing changed).
    Saved(Vec<String>),
    NoSuchResource,
    /// Another resource's portal has this address.
    AddressTaken,
}

fn self_service_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SelfService> {
    let actions: String = row.get(2)?;
    let kinds: String = row.get(3)?;
    Ok(SelfService {
        enabled: row.get(0)?,
        address: row.get(1)?,
        allowed_actions: actions.split(',').filter_map(PortalAction::parse).collect(),
        enrollment_kinds: TokenKind::ALL
            .into_iter()
            .filter(|kind| kinds.split(',').any(|k| k == kind.as_str()))
            .collect(),
        allow_remove_last: row.get(4)?,
    })
}

fn load_self_service(conn: &Connection, resource_id: i64) -> Result<SelfService> {
    Ok(optional(
        conn.prepare_cached(
            "SELECT enabled, address, allowed_actions, enrollment_kinds, allow_remove_last
             FROM self_service WHERE resource_id = ?1",
        )?
        .query_row(params![resource_id], self_service_from_row),
    )?
    .unwrap_or_default())
}

impl Store {
    /// The Self-Service settings of a resource (by id); all off when none were saved.
    pub async fn self_service(&self, resource_id: i64) -> Result<SelfService> {
        self.read(move |conn| load_self_service(conn, resource_id))
            .await
    }

    /// The resource whose portal has the address `address` (any case), with its settings.
    pub async fn self_service_by_address(
        &self,
        address: String,
    ) -> Result<Option<(Resource, SelfService)>> {
        self.read(move |conn| {
            let id: Option<i64> = optional(
                conn.prepare_cached("SELECT resource_id FROM self_service WHERE address = ?1")?
                    .query_row(params![address], |row| row.get(0)),
            )?;
            let Some(id) = id else { return Ok(None) };
            Ok(Some((
                resource_by_id(conn, id)?,
                load_self_service(conn, id)?,
            )))
        })
        .await
    }

    /// Replaces a resource's Self-Service settings and records what changed, comparing with
    /// what is stored in the same transaction. An unchanged save writes nothing.
    pub async fn save_self_service(
        &self,
        resource_id: i64,
        settings: SelfService,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<SelfServiceSaved> {
        self.write(move |conn| {
            let Some(resource) = optional(
                conn.prepare_cached(&format!(
                    "SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = ?1"
                ))?
                .query_row(params![resource_id], resource_from_row),
            )?
            else {
                return Ok(SelfServiceSaved::NoSuchResource);
            };
            let before = load_self_service(conn, resource_id)?;
            let changes = settings.changes_from(&before);
            if changes.is_empty() {
                return Ok(SelfServiceSaved::Saved(changes));
            }
            if let Some(address) = &settings.address {
                let holder: Option<i64> = optional(
                    conn.prepare_cached(
                        "SELECT resource_id FROM self_service WHERE address = ?1 AND resource_id <> ?2",
                    )?
                    .query_row(params![address, resource_id], |row| row.get(0)),
                )?;
                if holder.is_some() {
                    return Ok(SelfServiceSaved::AddressTaken);
                }
            }
            let actions: Vec<&str> = settings
                .allowed_actions
                .iter()
                .map(|a| a.as_str())
                .collect();
            let kinds: Vec<&str> = settings
                .enrollment_kinds
                .iter()
                .map(|k| k.as_str())
                .collect();
            conn.prepare_cached(
                "INSERT INTO self_service (resource_id, enabled, address, allowed_actions, enrollment_kinds,
                                           allow_remove_last, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (resource_id) DO UPDATE SET enabled = excluded.enabled,
                     address = excluded.address, allowed_actions = excluded.allowed_actions,
                     enrollment_kinds = excluded.enrollment_kinds,
                     allow_remove_last = excluded.allow_remove_last, updated_at = excluded.updated_at",
            )?
            .execute(params![
                resource_id,
                settings.enabled,
                settings.address,
                actions.join(","),
                kinds.join(","),
                settings.allow_remove_last,
                now
            ])?;
            audit::insert(
                conn,
                &AuditEntry {
                    resource_id: Some(resource.id),
                    ..audit
                }
                .detail(format!("{}: {}", resource.name, changes.join("; "))),
            )?;
            Ok(SelfServiceSaved::Saved(changes))
        })
        .await
    }
}

#[cfg(test)]
mod self_service_tests {
    use super::*;

    #[test]
    fn a_portal_address_is_a_lowercase_slug() {
        assert_eq!(
            parse_portal_address(" Sales-VPN ").as_deref(),
            Ok("sales-vpn")
        );
        for bad in [
            "",
            "a",
            "-vpn",
            "vpn-",
            "vpn portal",
            "vpn/x",
            "vpn_x",
            "ünï",
        ] {
            assert!(parse_portal_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_portal_address_is_suggested_from_the_resource_name() {
        assert_eq!(
            suggest_portal_address("Sales VPN").as_deref(),
            Some("sales-vpn")
        );
        assert_eq!(
            suggest_portal_address("  HR / Payroll (2026) ").as_deref(),
            Some("hr-payroll-2026")
        );
        assert_eq!(suggest_portal_address("ü"), None);
        assert_eq!(
            suggest_portal_address(&"x".repeat(80)).map(|a| a.len()),
            Some(63)
        );
    }

    #[test]
    fn every_action_has_a_stable_name_that_parses_back() {
        for action in PortalAction::ALL {
            assert_eq!(PortalAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(ActionGroup::Token.actions().count(), 9);
        assert_eq!(ActionGroup::User.actions().count(), 5);
    }

    #[test]
    fn the_changes_name_what_was_turned_on_and_off() {
        let before = SelfService {
            allowed_actions: [PortalAction::RenameToken].into(),
            ..SelfService::default()
        };
        let after = SelfService {
            enabled: true,
            address: Some("vpn".into()),
            allowed_actions: [PortalAction::EnrollToken].into(),
            enrollment_kinds: vec![TokenKind::Mail],
            allow_remove_last: true,
        };
        let changes = after.changes_from(&before);
        assert_eq!(
            changes,
            [
                "Self-service enabled",
                "address (none) → vpn",
                "allowed Enroll Token",
                "no longer allowed Rename Token",
                "enrolment of MAIL allowed",
                "users may remove their last second factor",
            ]
        );
        assert_eq!(
            before.changes_from(&after).last().map(String::as_str),
            Some("users may no longer remove their last second factor")
        );
        assert!(after.changes_from(&after).is_empty());
    }
}

#[cfg(test)]
mod listing_tests {
    use super::*;
    use crate::store::directory::{NewToken, NewUser};
    use crate::store::temp_store;

    /// A store with 60 users, each with a MAIL token whose serial is out of id order, all
    /// assigned to the resource `big` (1) and two of them to `small` (2).
    fn store_with_tokens() -> (tempfile::TempDir, Store) {
        let (dir, store) = temp_store();
        store
            .write_blocking(|conn| {
                for name in ["big", "small"] {
                    directory::insert_resource(
                        conn,
                        &NewResource {
                            name: name.into(),
                            description: String::new(),
                            fail_limit: 5,
                            password_required: false,
                            auto_unlock_seconds: None,
                            without_second_factor: Default::default(),
                        },
                        1,
                    )?;
                }
                for i in 0..60_i64 {
                    let user_id = directory::insert_user(
                        conn,
                        &NewUser {
                            login: format!("user{i:02}"),
                            first_name: String::new(),
                            last_name: String::new(),
                            email: None,
                            phone: None,
                            password_hash: None,
                        },
                        1,
                    )?;
                    let token_id = directory::insert_token(
                        conn,
                        &NewToken {
                            serial: format!("MAIL{:03}", (i * 37) % 60),
                            name: String::new(),
                            kind: TokenKind::Mail,
                            user_id: Some(user_id),
                            secret: None,
                            algorithm: crate::otp::Algorithm::Sha1,
                            digits: 6,
                            period: 30,
                            last_step: None,
                            destination: Some(format!("user{i}@example.com")),
                            messenger: None,
                            pin_hash: None,
                            pin_position: crate::otp::PinPosition::Before,
                            state: crate::domain::TokenState::Active,
                            activation: None,
                        },
                        1,
                    )?;
                    directory::assign_token_to_resource(conn, 1, token_id)?;
                    if i % 30 == 7 {
                        directory::assign_token_to_resource(conn, 2, token_id)?;
                    }
                }
                Ok(())
            })
            .expect("tokens inserted");
        (dir, store)
    }

    fn serials(store: &Store, resource: &str, limit: i64, offset: i64) -> (Vec<String>, i64) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (tokens, total) = rt
            .block_on(store.resource_tokens_window(IdOrName::Name(resource.into()), limit, offset))
            .expect("window")
            .expect("resource exists");
        (tokens.into_iter().map(|t| t.serial).collect(), total)
    }

    #[test]
    fn a_resource_holding_most_tokens_pages_them_in_serial_order() {
        let (_dir, store) = store_with_tokens();
        let mut all = Vec::new();
        for page in 0..3 {
            let (page, total) = serials(&store, "big", 25, page * 25);
            assert_eq!(total, 60);
            all.extend(page);
        }
        let expected: Vec<String> = (0..60).map(|n| format!("MAIL{n:03}")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn a_resource_holding_few_tokens_pages_them_in_serial_order() {
        let (_dir, store) = store_with_tokens();
        // Users 7 and 37 have the serials 19 and 49.
        assert_eq!(
            serials(&store, "small", 25, 0),
            (vec!["MAIL019".to_string(), "MAIL049".to_string()], 2)
        );
        assert_eq!(serials(&store, "small", 1, 1), (vec!["MAIL049".into()], 2));
    }

    #[test]
    fn a_resource_s_users_are_counted_with_the_other_filters() {
        let (_dir, store) = store_with_tokens();
        store
            .write_blocking(|conn| {
                conn.execute(
                    "UPDATE users SET enabled = 0 WHERE login IN ('user07', 'user08')",
                    [],
                )?;
                Ok(())
            })
            .expect("users disabled");
        let count = |resource: &str, enabled: Option<bool>| {
            let filter = UserFilter {
                resource: Some(IdOrName::Name(resource.into())),
                enabled,
                ..UserFilter::default()
            };
            match store
                .read_blocking(move |conn| {
                    list_users(
                        conn,
                        &filter,
                        Page {
                            limit: 5,
                            offset: 0,
                        },
                    )
                })
                .expect("listing")
            {
                Listing::Found { items, total } => (items.len(), total),
                Listing::NoSuchResource => panic!("the resource exists"),
            }
        };
        assert_eq!(count("big", None), (5, 60));
        assert_eq!(count("big", Some(false)), (2, 2));
        assert_eq!(count("small", Some(false)), (1, 1));
        assert_eq!(count("small", Some(true)), (1, 1));
    }
}
