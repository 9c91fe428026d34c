//! The settings of the delivery channels: the plain part as one JSON document per channel in
//! `settings` (key `delivery.CHANNEL`), and each secret sealed by the caller in
//! `secret_settings` (key `delivery.CHANNEL.NAME`). The store never sees a secret in clear.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::{AuditEntry, Result, Store, UnixTime, audit, optional, settings};

/// A channel's stored settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSettings {
    /// The plain settings as JSON; None when the channel was never configured.
    pub plain: Option<String>,
    /// Sealed secrets by name.
    pub secrets: BTreeMap<String, Vec<u8>>,
    pub updated_at: Option<UnixTime>,
}

/// What to do with one secret when the settings are saved.
#[derive(Debug, Clone)]
pub enum SecretChange {
    /// Store this sealed value.
    Set(Vec<u8>),
    /// Remove the secret.
    Clear,
}

fn plain_key(channel: &str) -> String {
    format!("delivery.{channel}")
}

fn secret_prefix(channel: &str) -> String {
    format!("delivery.{channel}.")
}

pub fn load(conn: &Connection, channel: &str) -> Result<ChannelSettings> {
    let plain_key = plain_key(channel);
    let row: Option<(String, UnixTime)> = optional(
        conn.prepare_cached("SELECT value, updated_at FROM settings WHERE key = ?1")?
            .query_row(params![plain_key], |row| Ok((row.get(0)?, row.get(1)?))),
    )?;
    let prefix = secret_prefix(channel);
    let mut statement = conn.prepare_cached(
        "SELECT key, sealed FROM secret_settings WHERE substr(key, 1, length(?1)) = ?1",
    )?;
    let secrets = statement
        .query_map(params![prefix], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?
        .map(|row| row.map(|(key, sealed)| (key[prefix.len()..].to_string(), sealed)))
        .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
    Ok(ChannelSettings {
        updated_at: row.as_ref().map(|(_, at)| *at),
        plain: row.map(|(value, _)| value),
        secrets,
    })
}

pub fn save(
    conn: &Connection,
    channel: &str,
    plain: &str,
    secrets: &[(String, SecretChange)],
    now: UnixTime,
    entry: &AuditEntry,
) -> Result<()> {
    settings::set(conn, &plain_key(channel), plain, now)?;
    let prefix = secret_prefix(channel);
    for (name, change) in secrets {
        let key = format!("{prefix}{name}");
        match change {
            SecretChange::Set(sealed) => {
                conn.prepare_cached(
                    "INSERT INTO secret_settings (key, sealed, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                )?
                .execute(params![key, sealed, now])?;
            }
            SecretChange::Clear => {
                conn.prepare_cached("DELETE FROM secret_settings WHERE key = ?1")?
                    .execute(params![key])?;
            }
        }
    }
    audit::insert(conn, entry)
}

impl Store {
    pub async fn channel_settings(&self, channel: &'static str) -> Result<ChannelSettings> {
        self.read(move |conn| load(conn, channel)).await
    }

    /// The blocking twin of [`Store::channel_settings`], for console commands.
    pub fn channel_settings_blocking(&self, channel: &'static str) -> Result<ChannelSettings> {
        self.read_blocking(move |conn| load(conn, channel))
    }

    /// Writes one audit line from a console command.
    pub fn audit_blocking(&self, entry: AuditEntry) -> Result<()> {
        self.write_blocking(move |conn| audit::insert(conn, &entry))
    }

    /// Replaces a channel's plain settings and changes the named secrets, with the audit line,
    /// in one transaction.
    pub async fn save_channel_settings(
        &self,
        channel: &'static str,
        plain: String,
        secrets: Vec<(String, SecretChange)>,
        now: UnixTime,
        entry: AuditEntry,
    ) -> Result<()> {
        self.write(move |conn| save(conn, channel, &plain, &secrets, now, &entry))
            .await
    }
}
