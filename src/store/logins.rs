//! Failed logins in a row, per account and, for the panel's and the portals' logins, per
//! account and client address (`login_failures`). What they cost the next attempt is the
//! shared rule's to say (`crate::attempts`); here they are read, counted and reset.

use rusqlite::{Connection, params};

use super::directory::find_user;
use super::{AuditEntry, Result, Store, UnixTime, audit, optional};
use crate::domain::IdOrName;

/// An account whose failed logins are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Account {
    User(i64),
    /// A token used alone (a token-only authentication).
    Token(i64),
    Admin(i64),
}

impl Account {
    pub fn kind(self) -> &'static str {
        match self {
            Account::User(_) => "user",
            Account::Token(_) => "token",
            Account::Admin(_) => "admin",
        }
    }

    pub fn id(self) -> i64 {
        match self {
            Account::User(id) | Account::Token(id) | Account::Admin(id) => id,
        }
    }
}

/// How failures are counted for an address: IPv4 as it is, IPv6 by its /64 (one host usually
/// holds a whole /64), anything else as it is.
pub fn address_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let segments = v6.segments();
                format!(
                    "{:x}:{:x}:{:x}:{:x}::/64",
                    segments[0], segments[1], segments[2], segments[3]
                )
            }
        },
        Ok(ip) => ip.to_string(),
        Err(_) => address.to_string(),
    }
}

/// Where one login's failures are counted: its account, and the client address when the front
/// end knows it first-hand (the panel's and the portals' logins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub account: Account,
    pub address: Option<String>,
}

/// A run of failures: the account's, or the account's from one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: i64,
    pub last_failure_at: Option<UnixTime>,
    /// The account's row only: when it locked.
    pub locked_at: Option<UnixTime>,
    /// An address's row only: when the account last logged in from it.
    pub last_success_at: Option<UnixTime>,
}

/// What is on record for one login: the account's failures, and the address's when counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub account: Failures,
    pub address: Option<Failures>,
}

impl Record {
    /// Whether a success has anything to reset.
    pub fn has_failures(&self) -> bool {
        self.account.count > 0
            || self.account.locked_at.is_some()
            || self.address.is_some_and(|address| address.count > 0)
    }
}

fn failures(conn: &Connection, account: Account, address: &str) -> Result<Failures> {
    Ok(optional(
        conn.prepare_cached(
            "SELECT failures, last_failure_at, locked_at, last_success_at FROM login_failures
             WHERE account = ?1 AND account_id = ?2 AND address = ?3",
        )?
        .query_row(params![account.kind(), account.id(), address], |row| {
            Ok(Failures {
                count: row.get(0)?,
                last_failure_at: row.get(1)?,
                locked_at: row.get(2)?,
                last_success_at: row.get(3)?,
            })
        }),
    )?
    .unwrap_or_default())
}

/// The record of one login.
pub fn load(conn: &Connection, counted: &Counted) -> Result<Record> {
    Ok(Record {
        account: failures(conn, counted.account, "")?,
        address: match &counted.address {
            Some(address) => Some(failures(conn, counted.account, address)?),
            None => None,
        },
    })
}

/// What a lock writes besides itself: the audit line, completed with the failures counted.
#[derive(Debug, Clone)]
pub struct LockNotice {
    pub lock_after: u32,
    pub entry: AuditEntry,
}

/// Counts a failure of the login: the account's and the address's. At `lock_after` failures
/// in a row the account locks, once (a compare-and-set), with its audit line; answers whether
/// this failure locked it.
pub fn fail(
    conn: &Connection,
    counted: &Counted,
    notice: &LockNotice,
    now: UnixTime,
) -> Result<bool> {
    let mut count = conn.prepare_cached(
        "INSERT INTO login_failures (account, account_id, address, failures, last_failure_at)
         VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT (account, account_id, address) DO UPDATE
             SET failures = failures + 1, last_failure_at = excluded.last_failure_at
         RETURNING failures",
    )?;
    let account = counted.account;
    let failures: i64 = count.query_row(params![account.kind(), account.id(), "", now], |row| {
        row.get(0)
    })?;
    if let Some(address) = &counted.address {
        count.query_row(params![account.kind(), account.id(), address, now], |row| {
            row.get::<_, i64>(0)
        })?;
    }
    if failures < i64::from(notice.lock_after) {
        return Ok(false);
    }
    let locked = conn
        .prepare_cached(
            "UPDATE login_failures SET locked_at = ?3
             WHERE account = ?1 AND account_id = ?2 AND address = '' AND locked_at IS NULL",
        )?
        .execute(params![account.kind(), account.id(), now])?
        == 1;
    if locked {
        let mut entry = notice.entry.clone();
        entry.detail = Some(format!("{failures} failed logins in a row"));
        audit::insert(conn, &entry)?;
    }
    Ok(locked)
}

/// Resets the login's failures after a success: the account's run ends (and its lock), and
/// the address is remembered as one the account logged in from.
pub fn succeed(conn: &Connection, counted: &Counted, now: UnixTime) -> Result<()> {
    let account = counted.account;
    conn.prepare_cached(
        "DELETE FROM login_failures WHERE account = ?1 AND account_id = ?2 AND address = ''",
    )?
    .execute(params![account.kind(), account.id()])?;
    if let Some(address) = &counted.address {
        conn.prepare_cached(
            "INSERT INTO login_failures (account, account_id, address, failures, last_success_at)
             VALUES (?1, ?2, ?3, 0, ?4)
             ON CONFLICT (account, account_id, address) DO UPDATE
                 SET failures = 0, last_failure_at = NULL, last_success_at = excluded.last_success_at",
        )?
        .execute(params![account.kind(), account.id(), address, now])?;
    }
    Ok(())
}

/// An administrator's unlock: the account's failures and lock go, and every address's failures
/// (the addresses it logged in from stay known). Answers whether there was anything to clear.
pub fn unlock(conn: &Connection, account: Account) -> Result<bool> {
    let ended = conn
        .prepare_cached(
            "DELETE FROM login_failures WHERE account = ?1 AND account_id = ?2
                 AND (address = '' OR last_success_at IS NULL)",
        )?
        .execute(params![account.kind(), account.id()])?;
    let cleared = conn
        .prepare_cached(
            "UPDATE login_failures SET failures = 0, last_failure_at = NULL
             WHERE account = ?1 AND account_id = ?2 AND failures > 0",
        )?
        .execute(params![account.kind(), account.id()])?;
    Ok(ended + cleared > 0)
}

impl Store {
    /// The record of one login, read before its password is checked.
    pub async fn login_record(&self, counted: Counted) -> Result<Record> {
        self.read(move |conn| load(conn, &counted)).await
    }

    /// Counts a failed login (see [`fail`]); answers whether it locked the account.
    pub async fn login_failed(
        &self,
        counted: Counted,
        notice: LockNotice,
        now: UnixTime,
    ) -> Result<bool> {
        self.write(move |conn| fail(conn, &counted, &notice, now))
            .await
    }

    /// Resets the login's failures after a success (see [`succeed`]).
    pub async fn login_succeeded(&self, counted: Counted, now: UnixTime) -> Result<()> {
        self.write(move |conn| succeed(conn, &counted, now)).await
    }

    /// Unlocks an account and writes the audit line, when there was anything to clear.
    pub async fn unlock_login(&self, account: Account, entry: AuditEntry) -> Result<bool> {
        self.write(move |conn| {
            let cleared = unlock(conn, account)?;
            if cleared {
                audit::insert(conn, &entry)?;
            }
            Ok(cleared)
        })
        .await
    }

    /// Unlocks a user named by id or login (see [`unlock`]), with the audit line completed by
    /// the user's id; answers the user's id, or None when there is no such user.
    pub async fn unlock_user(&self, key: IdOrName, mut entry: AuditEntry) -> Result<Option<i64>> {
        self.write(move |conn| {
            let Some(user) = find_user(conn, &key)? else {
                return Ok(None);
            };
            unlock(conn, Account::User(user.id))?;
            entry.user_id = Some(user.id);
            audit::insert(conn, &entry)?;
            Ok(Some(user.id))
        })
        .await
    }

    /// Forgets the failures of addresses that never logged in and failed last before
    /// `before`: their waits ran out long ago. The accounts' own runs are kept.
    pub async fn purge_login_failures(&self, before: UnixTime) -> Result<usize> {
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM login_failures
                     WHERE address <> '' AND last_success_at IS NULL AND last_failure_at < ?1",
                )?
                .execute(params![before])?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_store;

    fn notice(lock_after: u32) -> LockNotice {
        LockNotice {
            lock_after,
            entry: AuditEntry::new(0, "test", "user.lock", "locked"),
        }
    }

    #[test]
    fn an_ipv6_address_counts_by_its_64_prefix() {
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
    }

    #[tokio::test]
    async fn failures_count_per_account_and_address_and_lock_once_at_the_limit() {
        let (_dir, store) = temp_store();
        let from = |address: &str| Counted {
            account: Account::User(7),
            address: Some(address.to_string()),
        };
        assert!(
            !store
                .login_failed(from("a"), notice(3), 10)
                .await
                .expect("fail")
        );
        assert!(
            !store
                .login_failed(from("b"), notice(3), 11)
                .await
                .expect("fail")
        );
        assert!(
            store
                .login_failed(from("b"), notice(3), 12)
                .await
                .expect("fail")
        );
        assert!(
            !store
                .login_failed(from("b"), notice(3), 13)
                .await
                .expect("fail"),
            "a locked account locks once"
        );
        let record = store.login_record(from("b")).await.expect("record");
        assert_eq!(record.account.count, 4);
        assert_eq!(record.account.locked_at, Some(12));
        assert_eq!(record.address.map(|a| a.count), Some(3));
        let other = store
            .login_record(Counted {
                account: Account::Admin(7),
                address: None,
            })
            .await
            .expect("record");
        assert_eq!(other, Record::default(), "an admin 7 is another account");

        store.login_succeeded(from("a"), 20).await.expect("succeed");
        let record = store.login_record(from("a")).await.expect("record");
        assert_eq!(record.account, Failures::default());
        assert_eq!(record.address.and_then(|a| a.last_success_at), Some(20));
        let b = store.login_record(from("b")).await.expect("record");
        assert_eq!(b.address.map(|a| a.count), Some(3), "b's own run stays");

        assert!(
            store
                .unlock_login(
                    Account::User(7),
                    AuditEntry::new(30, "t", "user.unlock", "ok")
                )
                .await
                .expect("unlock")
        );
        let b = store.login_record(from("b")).await.expect("record");
        assert_eq!(b.address, Some(Failures::default()));
        let a = store.login_record(from("a")).await.expect("record");
        assert_eq!(
            a.address.and_then(|a| a.last_success_at),
            Some(20),
            "the addresses it logged in from stay known"
        );
    }
}
