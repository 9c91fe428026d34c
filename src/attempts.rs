//! Failed logins in a row, and what they cost: the rule the API's authentications, the admin
//! panel's login and the portals' logins share (NIST SP 800-63B, 5.2.2).
//!
//! - Every rejected login counts against its account: a user (by id, however the login was
//!   spelled), a token used alone, an administrator. An accepted login resets the count.
//! - After `free_failures` failures in a row, the next attempt must wait 1 s after the last
//!   failure, then 2 s, 4 s … up to `max_delay_seconds`. An attempt sooner checks nothing and is
//!   refused with the time left ("too many attempts").
//! - At `lock_after` failures in a row (at most 100) the account locks, with an audit line and a
//!   metric, until an administrator unlocks it.
//! - The panel and the portals know the client's address first-hand, so there the waits count
//!   per account *and address*: failures from elsewhere never make the owner wait. The lock is
//!   the account's, but it does not hold at an address the account logged in from before, and
//!   the owner's success there ends it. So a stranger cannot keep an administrator out, and
//!   every address together still gets at most `lock_after` guesses between two of the owner's
//!   logins. The API's callers report the end user's address themselves, so the API counts per
//!   account only.
//! - Names that match no account are counted in memory under the name as typed, by the same
//!   rule, so that the answers do not tell which names exist.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::LoginsConfig;
use crate::metrics::Metrics;
use crate::store::logins::{Account, Counted, Failures, LockNotice, Record};
use crate::store::{AuditEntry, Store, StoreError, UnixTime};

/// The numbers of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub free_failures: u32,
    pub max_delay_seconds: u64,
    pub lock_after: u32,
}

impl Policy {
    pub fn of(config: &LoginsConfig) -> Policy {
        Policy {
            free_failures: config.free_failures,
            max_delay_seconds: config.max_delay_seconds,
            lock_after: config.lock_after,
        }
    }

    /// How long after the last of `failures` failures in a row the next attempt must wait.
    pub fn delay(&self, failures: i64) -> i64 {
        let beyond = failures - i64::from(self.free_failures);
        if beyond < 0 {
            return 0;
        }
        let max = i64::try_from(self.max_delay_seconds).unwrap_or(i64::MAX);
        1i64.checked_shl(beyond.min(62) as u32)
            .unwrap_or(i64::MAX)
            .min(max)
    }

    fn wait(&self, failures: &Failures, now: UnixTime) -> Standing {
        let Some(last) = failures.last_failure_at else {
            return Standing::Open;
        };
        let until = last.saturating_add(self.delay(failures.count));
        if now < until {
            Standing::Wait {
                retry_after_seconds: (until - now).unsigned_abs(),
            }
        } else {
            Standing::Open
        }
    }

    /// Where the next attempt of a login stands.
    pub fn standing(&self, record: &Record, now: UnixTime) -> Standing {
        match &record.address {
            None if record.account.locked_at.is_some() => Standing::Locked,
            None => self.wait(&record.account, now),
            Some(address)
                if record.account.locked_at.is_some() && address.last_success_at.is_none() =>
            {
                Standing::Locked
            }
            Some(address) => self.wait(address, now),
        }
    }
}

/// Whether the next attempt is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Open,
    /// Too soon after the last failure: refused unchecked, with the time left.
    Wait {
        retry_after_seconds: u64,
    },
    /// The account is locked (for this address): rejected unchecked.
    Locked,
}

/// The most names without an account remembered at once; beyond, the oldest are forgotten.
const MAX_STRANGERS: usize = 50_000;

/// Failures under names that match no account, kept in memory only.
#[derive(Default)]
struct Strangers {
    runs: Mutex<HashMap<String, Failures>>,
    /// How many runs there are, read without the lock: mostly none.
    len: AtomicUsize,
}

impl Strangers {
    fn key(name: &str, address: Option<&str>) -> String {
        match address {
            None => name.trim().to_lowercase(),
            Some(address) => format!("{}\n{address}", name.trim().to_lowercase()),
        }
    }

    fn record(&self, name: &str, address: Option<&str>) -> Record {
        if self.len.load(Ordering::Relaxed) == 0 {
            return Record {
                address: address.map(|_| Failures::default()),
                ..Record::default()
            };
        }
        let Ok(runs) = self.runs.lock() else {
            return Record::default();
        };
        let run = |key: String| runs.get(&key).copied().unwrap_or_default();
        Record {
            account: run(Strangers::key(name, None)),
            address: address.map(|address| run(Strangers::key(name, Some(address)))),
        }
    }

    fn fail(&self, name: &str, address: Option<&str>, policy: &Policy, now: UnixTime) {
        let Ok(mut runs) = self.runs.lock() else {
            return;
        };
        if runs.len() >= MAX_STRANGERS {
            let day_ago = now - 86_400;
            runs.retain(|_, run| run.last_failure_at.is_some_and(|at| at > day_ago));
            if runs.len() >= MAX_STRANGERS {
                runs.clear();
            }
        }
        let mut count = |key: String| {
            let run = runs.entry(key).or_default();
            run.count += 1;
            run.last_failure_at = Some(now);
            run.count
        };
        let failures = count(Strangers::key(name, None));
        if let Some(address) = address {
            count(Strangers::key(name, Some(address)));
        }
        if failures >= i64::from(policy.lock_after)
            && let Some(run) = runs.get_mut(&Strangers::key(name, None))
        {
            run.locked_at.get_or_insert(now);
        }
        self.len.store(runs.len(), Ordering::Relaxed);
    }
}

/// Who a login is for: an account, or a name that matches none.
#[derive(Debug, Clone)]
pub enum Login {
    Account(Counted),
    /// A name without an account, as typed (`user:alice`, `admin:root`), and the address when
    /// known first-hand.
    Stranger {
        name: String,
        address: Option<String>,
    },
}

/// The rule at work: its numbers, the strangers' failures, and the metrics of refusals and
/// locks. One per server.
pub struct Guard {
    pub policy: Policy,
    strangers: Strangers,
    metrics: std::sync::Arc<Metrics>,
}

impl Guard {
    pub fn new(policy: Policy, metrics: std::sync::Arc<Metrics>) -> Guard {
        Guard {
            policy,
            strangers: Strangers::default(),
            metrics,
        }
    }

    /// Where a name without an account stands.
    pub fn stranger_standing(&self, name: &str, address: Option<&str>, now: UnixTime) -> Standing {
        self.policy
            .standing(&self.strangers.record(name, address), now)
    }

    /// Counts a failure under a name without an account.
    pub fn stranger_failed(&self, name: &str, address: Option<&str>, now: UnixTime) {
        self.strangers.fail(name, address, &self.policy, now);
    }

    /// The record of a login at a front end (`panel`, `portal`), and where it stands; an
    /// attempt it refuses unchecked is counted.
    pub async fn standing(
        &self,
        store: &Store,
        login: &Login,
        front: &str,
        now: UnixTime,
    ) -> Result<(Record, Standing), StoreError> {
        let record = match login {
            Login::Account(counted) => store.login_record(counted.clone()).await?,
            Login::Stranger { name, address } => self.strangers.record(name, address.as_deref()),
        };
        let standing = self.policy.standing(&record, now);
        self.refused(front, standing);
        Ok((record, standing))
    }

    /// What a lock writes: `entry` is its audit line (who, where), completed by the store.
    pub fn lock_notice(&self, entry: AuditEntry) -> LockNotice {
        LockNotice {
            lock_after: self.policy.lock_after,
            entry,
        }
    }

    /// Counts a failed login; a lock it causes is audited (`entry`) and counted.
    pub async fn failed(
        &self,
        store: &Store,
        login: &Login,
        entry: AuditEntry,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        match login {
            Login::Account(counted) => {
                let notice = self.lock_notice(entry);
                if store.login_failed(counted.clone(), notice, now).await? {
                    self.locked(counted.account);
                }
            }
            Login::Stranger { name, address } => {
                self.strangers
                    .fail(name, address.as_deref(), &self.policy, now)
            }
        }
        Ok(())
    }

    /// Resets a login's failures after a success, when there are any.
    pub async fn succeeded(
        &self,
        store: &Store,
        login: &Login,
        record: &Record,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        match login {
            // With an address, the success is remembered even without failures to reset.
            Login::Account(counted) if record.has_failures() || counted.address.is_some() => {
                store.login_succeeded(counted.clone(), now).await
            }
            _ => Ok(()),
        }
    }

    /// Counts an account that just locked.
    pub fn locked(&self, account: Account) {
        self.metrics.inc(
            "otpgate_accounts_locked_total",
            "Accounts locked after too many failed logins in a row, by kind: user, token, admin.",
            &[("account", account.kind())],
        );
    }

    /// Counts an attempt refused unchecked: `front` is panel or portal.
    fn refused(&self, front: &str, standing: Standing) {
        let reason = match standing {
            Standing::Open => return,
            Standing::Wait { .. } => "wait",
            Standing::Locked => "locked",
        };
        self.metrics.inc(
            "otpgate_login_attempts_refused_total",
            "Login attempts refused unchecked after failed logins in a row, by front end and \
             reason: wait (too soon after the last failure), locked.",
            &[("front", front), ("reason", reason)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        free_failures: 5,
        max_delay_seconds: 900,
        lock_after: 100,
    };

    fn run(count: i64, last: UnixTime) -> Failures {
        Failures {
            count,
            last_failure_at: Some(last),
            ..Failures::default()
        }
    }

    #[test]
    fn waits_start_after_the_free_failures_double_and_stop_at_the_maximum() {
        let delays: Vec<i64> = (0..=16).map(|n| POLICY.delay(n)).collect();
        assert_eq!(
            delays,
            [
                0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900
            ]
        );
        assert_eq!(POLICY.delay(1_000_000), 900);
    }

    #[test]
    fn an_account_waits_after_its_failures_and_locks_at_the_limit() {
        let now = 1_000;
        let record = |account| Record {
            account,
            address: None,
        };
        assert_eq!(POLICY.standing(&record(run(4, now)), now), Standing::Open);
        assert_eq!(
            POLICY.standing(&record(run(7, now - 1)), now),
            Standing::Wait {
                retry_after_seconds: 3
            }
        );
        assert_eq!(
            POLICY.standing(&record(run(7, now - 4)), now),
            Standing::Open
        );
        let locked = Failures {
            locked_at: Some(now - 100_000),
            ..run(100, now - 100_000)
        };
        assert_eq!(POLICY.standing(&record(locked), now), Standing::Locked);
    }

    #[test]
    fn with_an_address_the_waits_are_the_addresses_and_the_lock_spares_a_known_one() {
        let now = 1_000;
        let locked = Failures {
            locked_at: Some(now - 10),
            ..run(100, now - 1)
        };
        let stranger = Record {
            account: locked,
            address: Some(run(8, now - 1)),
        };
        assert_eq!(POLICY.standing(&stranger, now), Standing::Locked);
        let owner = Record {
            account: locked,
            address: Some(Failures {
                last_success_at: Some(now - 86_400),
                ..Failures::default()
            }),
        };
        assert_eq!(POLICY.standing(&owner, now), Standing::Open);
        let busy_elsewhere = Record {
            account: run(60, now),
            address: Some(Failures::default()),
        };
        assert_eq!(POLICY.standing(&busy_elsewhere, now), Standing::Open);
    }

    #[test]
    fn names_without_an_account_wait_and_lock_as_accounts_do() {
        let guard = Guard::new(
            Policy {
                lock_after: 7,
                ..POLICY
            },
            std::sync::Arc::new(Metrics::default()),
        );
        for _ in 0..5 {
            guard.stranger_failed("user:Nobody", None, 50);
        }
        assert_eq!(
            guard.stranger_standing("user:nobody ", None, 50),
            Standing::Wait {
                retry_after_seconds: 1
            },
            "the name counts however it is written"
        );
        guard.stranger_failed("user:nobody", None, 51);
        guard.stranger_failed("user:nobody", None, 53);
        assert_eq!(
            guard.stranger_standing("user:nobody", None, 10_000),
            Standing::Locked
        );
        assert_eq!(
            guard.stranger_standing("user:somebody", None, 50),
            Standing::Open
        );
    }
}
