//! Key-value settings of the running system (not the configuration file).

use rusqlite::{Connection, params};

use super::{Result, UnixTime, optional};

pub fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    optional(conn.query_row(
        "SELECT value FROM settings WHERE key = ?1",
        params![key],
        |row| row.get(0),
    ))
}

pub fn set(conn: &Connection, key: &str, value: &str, now: UnixTime) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value, now],
    )?;
    Ok(())
}
