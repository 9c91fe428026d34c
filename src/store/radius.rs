//! RADIUS clients: the gateways allowed to send requests. The shared secret arrives sealed and
//! leaves sealed; the store never sees it in clear. Every change moves a generation counter, so
//! that the RADIUS server reloads its table of clients before its next packet. The reply
//! attributes of resources live here too, reloaded with the clients.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use rusqlite::{Connection, params};

use super::{AuditEntry, Result, Store, UnixTime, audit, directory, optional};
use crate::domain::IdOrName;
/// A reply attribute as stored: its dictionary name (as the dictionary spells it) and its value
/// as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAttribute {
    pub name: String,
    pub value: String,
}

/// A client as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusClient {
    pub id: i64,
    pub name: String,
    /// CIDR with the host bits cleared.
    pub network: String,
    pub secret_sealed: Vec<u8>,
    pub resource_id: i64,
    pub resource_name: String,
    pub require_message_authenticator: bool,
    pub input_mode: String,
    pub separator: Option<String>,
    pub code_length: i64,
    /// How long an Access-Request is held for an approval's decision.
    pub approval_wait_seconds: i64,
    /// The word typed after the password that asks for an approval; None: the password alone.
    pub approval_word: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// A client to create; its fields checked by `radius::clients`.
#[derive(Debug, Clone)]
pub struct NewRadiusClient {
    pub name: String,
    pub network: String,
    pub secret_sealed: Vec<u8>,
    pub resource: IdOrName,
    pub require_message_authenticator: bool,
    pub input_mode: String,
    pub separator: Option<String>,
    pub code_length: i64,
    pub approval_wait_seconds: i64,
    pub approval_word: Option<String>,
}

/// Changes to a client: None leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RadiusClientChanges {
    pub name: Option<String>,
    pub network: Option<String>,
    pub secret_sealed: Option<Vec<u8>>,
    pub resource: Option<IdOrName>,
    pub require_message_authenticator: Option<bool>,
    pub input_mode: Option<String>,
    pub separator: Option<Option<String>>,
    pub code_length: Option<i64>,
    pub approval_wait_seconds: Option<i64>,
    pub approval_word: Option<Option<String>>,
}

impl RadiusClientChanges {
    /// The names of the fields that change, for the audit line (never the secret's value).
    fn field_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let fields: [(&'static str, bool); 10] = [
            ("name", self.name.is_some()),
            ("address", self.network.is_some()),
            ("secret", self.secret_sealed.is_some()),
            ("resource", self.resource.is_some()),
            (
                "require_message_authenticator",
                self.require_message_authenticator.is_some(),
            ),
            ("input_mode", self.input_mode.is_some()),
            ("separator", self.separator.is_some()),
            ("code_length", self.code_length.is_some()),
            ("approval_wait", self.approval_wait_seconds.is_some()),
            ("approval_word", self.approval_word.is_some()),
        ];
        for (name, changed) in fields {
            if changed {
                names.push(name);
            }
        }
        names
    }
}

/// Why a client could not be saved, besides a taken name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved<T> {
    Done(T),
    NoSuchClient,
    NoSuchResource,
}

const SELECT: &str = "SELECT c.id, c.name, c.network, c.secret_sealed, c.resource_id, r.name,
                             c.require_message_authenticator, c.input_mode, c.separator,
                             c.code_length, c.created_at, c.updated_at,
                             c.approval_wait_seconds, c.approval_word
                      FROM radius_clients c JOIN resources r ON r.id = c.resource_id";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RadiusClient> {
    Ok(RadiusClient {
        id: row.get(0)?,
        name: row.get(1)?,
        network: row.get(2)?,
        secret_sealed: row.get(3)?,
        resource_id: row.get(4)?,
        resource_name: row.get(5)?,
        require_message_authenticator: row.get(6)?,
        input_mode: row.get(7)?,
        separator: row.get(8)?,
        code_length: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        approval_wait_seconds: row.get(12)?,
        approval_word: row.get(13)?,
    })
}

fn find(conn: &Connection, key: &IdOrName) -> Result<Option<RadiusClient>> {
    match key {
        IdOrName::Id(id) => optional(
            conn.prepare_cached(&format!("{SELECT} WHERE c.id = ?1"))?
                .query_row(params![id], from_row),
        ),
        IdOrName::Name(name) => optional(
            conn.prepare_cached(&format!("{SELECT} WHERE c.name = ?1"))?
                .query_row(params![name.trim()], from_row),
        ),
    }
}

fn by_id(conn: &Connection, id: i64) -> Result<RadiusClient> {
    Ok(conn
        .prepare_cached(&format!("{SELECT} WHERE c.id = ?1"))?
        .query_row(params![id], from_row)?)
}

impl Store {
    /// Moves the generation of the RADIUS clients: called once a change is committed.
    pub(super) fn radius_clients_changed(&self) {
        self.inner.radius_generation.fetch_add(1, Ordering::Release);
    }

    /// The generation of the RADIUS clients: it moves whenever one is created, changed or
    /// deleted, or a resource is deleted.
    pub fn radius_generation(&self) -> u64 {
        self.inner.radius_generation.load(Ordering::Acquire)
    }

    /// Every client, by name.
    pub async fn radius_clients(&self) -> Result<Vec<RadiusClient>> {
        self.read(|conn| {
            let clients = conn
                .prepare_cached(&format!("{SELECT} ORDER BY c.name"))?
                .query_map([], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(clients)
        })
        .await
    }

    pub async fn radius_client(&self, key: IdOrName) -> Result<Option<RadiusClient>> {
        self.read(move |conn| find(conn, &key)).await
    }

    pub async fn create_radius_client(
        &self,
        client: NewRadiusClient,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<Saved<RadiusClient>> {
        let saved = self
            .write(move |conn| {
                let Some(resource) = directory::find_resource(conn, &client.resource)? else {
                    return Ok(Saved::NoSuchResource);
                };
                conn.prepare_cached(
                    "INSERT INTO radius_clients (name, network, secret_sealed, resource_id,
                         require_message_authenticator, input_mode, separator, code_length,
                         created_at, updated_at, approval_wait_seconds, approval_word)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)",
                )?
                .execute(params![
                    client.name,
                    client.network,
                    client.secret_sealed,
                    resource.id,
                    client.require_message_authenticator,
                    client.input_mode,
                    client.separator,
                    client.code_length,
                    now,
                    client.approval_wait_seconds,
                    client.approval_word
                ])?;
                let id = conn.last_insert_rowid();
                audit::insert(
                    conn,
                    &AuditEntry {
                        resource_id: Some(resource.id),
                        ..audit
                    }
                    .detail(format!("{} ({})", client.name, client.network)),
                )?;
                Ok(Saved::Done(by_id(conn, id)?))
            })
            .await?;
        self.radius_clients_changed();
        Ok(saved)
    }

    pub async fn update_radius_client(
        &self,
        key: IdOrName,
        changes: RadiusClientChanges,
        audit: AuditEntry,
        now: UnixTime,
    ) -> Result<Saved<RadiusClient>> {
        let saved = self
            .write(move |conn| {
                let Some(mut client) = find(conn, &key)? else {
                    return Ok(Saved::NoSuchClient);
                };
                let fields = changes.field_names();
                if fields.is_empty() {
                    return Ok(Saved::Done(client));
                }
                if let Some(resource) = &changes.resource {
                    let Some(resource) = directory::find_resource(conn, resource)? else {
                        return Ok(Saved::NoSuchResource);
                    };
                    client.resource_id = resource.id;
                }
                let RadiusClientChanges {
                    name,
                    network,
                    secret_sealed,
                    resource: _,
                    require_message_authenticator,
                    input_mode,
                    separator,
                    code_length,
                    approval_wait_seconds,
                    approval_word,
                } = changes;
                client.name = name.unwrap_or(client.name);
                client.network = network.unwrap_or(client.network);
                client.secret_sealed = secret_sealed.unwrap_or(client.secret_sealed);
                client.require_message_authenticator =
                    require_message_authenticator.unwrap_or(client.require_message_authenticator);
                client.input_mode = input_mode.unwrap_or(client.input_mode);
                client.separator = separator.unwrap_or(client.separator);
                client.code_length = code_length.unwrap_or(client.code_length);
                client.approval_wait_seconds =
                    approval_wait_seconds.unwrap_or(client.approval_wait_seconds);
                client.approval_word = approval_word.unwrap_or(client.approval_word);
                conn.prepare_cached(
                    "UPDATE radius_clients SET name = ?2, network = ?3, secret_sealed = ?4,
                         resource_id = ?5, require_message_authenticator = ?6, input_mode = ?7,
                         separator = ?8, code_length = ?9, updated_at = ?10,
                         approval_wait_seconds = ?11, approval_word = ?12
                     WHERE id = ?1",
                )?
                .execute(params![
                    client.id,
                    client.name,
                    client.network,
                    client.secret_sealed,
                    client.resource_id,
                    client.require_message_authenticator,
                    client.input_mode,
                    client.separator,
                    client.code_length,
                    now,
                    client.approval_wait_seconds,
                    client.approval_word
                ])?;
                audit::insert(
                    conn,
                    &AuditEntry {
                        resource_id: Some(client.resource_id),
                        ..audit
                    }
                    .detail(format!("{}: {}", client.name, fields.join(", "))),
                )?;
                Ok(Saved::Done(by_id(conn, client.id)?))
            })
            .await?;
        self.radius_clients_changed();
        Ok(saved)
    }

    /// Deletes a client; false when there is none.
    pub async fn delete_radius_client(&self, key: IdOrName, audit: AuditEntry) -> Result<bool> {
        let deleted = self
            .write(move |conn| {
                let Some(client) = find(conn, &key)? else {
                    return Ok(false);
                };
                conn.prepare_cached("DELETE FROM radius_clients WHERE id = ?1")?
                    .execute(params![client.id])?;
                audit::insert(
                    conn,
                    &AuditEntry {
                        resource_id: Some(client.resource_id),
                        ..audit
                    }
                    .detail(client.name),
                )?;
                Ok(true)
            })
            .await?;
        self.radius_clients_changed();
        Ok(deleted)
    }
}

/// A resource's RADIUS reply attributes were replaced, or there is no such resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributesSaved {
    Done(Vec<ReplyAttribute>),
    NoSuchResource,
}

fn reply_attributes_of(conn: &Connection, resource_id: i64) -> Result<Vec<ReplyAttribute>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, value FROM resource_radius_attributes
             WHERE resource_id = ?1 ORDER BY position",
        )?
        .query_map(params![resource_id], |row| {
            Ok(ReplyAttribute {
                name: row.get(0)?,
                value: row.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

impl Store {
    /// The RADIUS reply attributes of the resource `resource_id`, in order.
    pub async fn radius_reply_attributes(&self, resource_id: i64) -> Result<Vec<ReplyAttribute>> {
        self.read(move |conn| reply_attributes_of(conn, resource_id))
            .await
    }

    /// Every resource's RADIUS reply attributes, in order, by resource id: what the RADIUS
    /// server loads with its clients.
    pub async fn all_radius_reply_attributes(&self) -> Result<HashMap<i64, Vec<ReplyAttribute>>> {
        self.read(|conn| {
            let mut all: HashMap<i64, Vec<ReplyAttribute>> = HashMap::new();
            let mut statement = conn.prepare_cached(
                "SELECT resource_id, name, value FROM resource_radius_attributes
                 ORDER BY resource_id, position",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    ReplyAttribute {
                        name: row.get(1)?,
                        value: row.get(2)?,
                    },
                ))
            })?;
            for row in rows {
                let (resource_id, attribute) = row?;
                all.entry(resource_id).or_default().push(attribute);
            }
            Ok(all)
        })
        .await
    }

    /// Replaces the RADIUS reply attributes of the resource `resource_id` with `attributes`
    /// (checked by `radius::reply`), with the audit line naming them; the RADIUS server
    /// reloads them before its next packet.
    pub async fn replace_radius_reply_attributes(
        &self,
        resource_id: i64,
        attributes: Vec<ReplyAttribute>,
        audit: AuditEntry,
    ) -> Result<AttributesSaved> {
        let saved = self
            .write(move |conn| {
                let Some(resource) = directory::find_resource(conn, &IdOrName::Id(resource_id))?
                else {
                    return Ok(AttributesSaved::NoSuchResource);
                };
                conn.prepare_cached(
                    "DELETE FROM resource_radius_attributes WHERE resource_id = ?1",
                )?
                .execute(params![resource.id])?;
                let mut insert = conn.prepare_cached(
                    "INSERT INTO resource_radius_attributes (resource_id, position, name, value)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (position, attribute) in attributes.iter().enumerate() {
                    insert.execute(params![
                        resource.id,
                        position as i64,
                        attribute.name,
                        attribute.value
                    ])?;
                }
                let names: Vec<&str> = attributes.iter().map(|a| a.name.as_str()).collect();
                audit::insert(
                    conn,
                    &AuditEntry {
                        resource_id: Some(resource.id),
                        ..audit
                    }
                    .detail(if names.is_empty() {
                        format!("{}: none", resource.name)
                    } else {
                        format!("{}: {}", resource.name, names.join(", "))
                    }),
                )?;
                Ok(AttributesSaved::Done(attributes))
            })
            .await?;
        self.radius_clients_changed();
        Ok(saved)
    }
}
