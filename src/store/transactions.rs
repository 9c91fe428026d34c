//! A login's transaction as the store begins it: what the challenges and the approval of one
//! login hang on (`auth_transactions`).

use rusqlite::{Connection, params};

use super::{Result, UnixTime};

/// A transaction to begin: one login of this user in this resource.
#[derive(Debug, Clone)]
pub struct NewTransaction {
    pub id: String,
    pub resource_id: i64,
    pub user_id: i64,
    /// The password was checked: the transaction stands in for it, once.
    pub password_checked: bool,
    pub expires_at: UnixTime,
}

/// Begins a transaction (a login), for its challenges or its approval.
pub(super) fn insert_transaction(
    conn: &Connection,
    transaction: &NewTransaction,
    now: UnixTime,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO auth_transactions (id, resource_id, user_id, password_checked, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        transaction.id,
        transaction.resource_id,
        transaction.user_id,
        transaction.password_checked,
        transaction.expires_at,
        now
    ])?;
    Ok(())
}
