//! The directories as the server reaches them while it runs (`Service`): each directory's pool
//! of connections, and the lookup of a login unknown to otpgate at authentication, so that a
//! new employee does not wait for the next sync.
//!
//! A lookup asks each directory in turn (by name) for the login; the first that lets the
//! person in (user filter and group) links them as an otpgate user at once, by their stable
//! id, as `add_person` does. An unknown login is an unauthenticated peer's lever on the
//! directories, so it is held short: a login no directory knew is remembered for
//! `MISS_SECONDS` (at most `MISSES` of them) and not searched again meanwhile; at most
//! `LOOKUPS_AT_ONCE` lookups search at once, and one beyond that is answered "not found"
//! without a search (and not remembered); a directory that is down is left alone for a few
//! seconds by its pool. Whatever the directories say or fail to say, the authentication
//! answers an unknown login as before: only the audit log and the metrics tell.
//!
//! There is one `Service` per server, shared by the web front ends (`AppState`) and RADIUS
//! (`Services`). `auth` asks it when the store finds no user but some directory may know the
//! login (`AuthContext::directory_may_know`): a code alone is then judged again after the
//! lookup, nothing written the first time. The portal's login step asks it likewise.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::misses::Misses;
use super::{RuleError, Store, Stored, new_user, unsealed};
use crate::crypto::Keys;
use crate::domain::IdOrName;
use crate::ldap::{Directory, Pools};
use crate::metrics::Metrics;
use crate::store::directories::Linked;
use crate::store::{AuditEntry, UnixTime};

/// How long a login no directory knew is not searched again.
pub const MISS_SECONDS: u64 = 60;
/// Logins not found remembered at most.
pub const MISSES: usize = 10_000;
/// Lookups that search at once, over every directory.
pub const LOOKUPS_AT_ONCE: usize = 4;

const SEARCHES: &str = "otpgate_directory_searches_total";
const SEARCHES_HELP: &str =
    "Searches sent to directories, by directory and purpose (lookup, password).";
const LOOKUPS: &str = "otpgate_directory_lookups_total";
const LOOKUPS_HELP: &str = "Lookups of logins unknown to otpgate at authentication, by result \
     (linked, not_found, remembered, busy, unavailable).";

/// The directories' pools and the lookups' memory; one per server.
pub struct Service {
    pools: Pools,
    misses: Mutex<Misses>,
    lookups: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Service {
    pub fn new(metrics: Arc<Metrics>) -> Service {
        Service {
            pools: Pools::new(metrics.clone()),
            misses: Mutex::new(Misses::new(Duration::from_secs(MISS_SECONDS), MISSES)),
            lookups: Arc::new(Semaphore::new(LOOKUPS_AT_ONCE)),
            metrics,
        }
    }

    /// A client of a saved directory on its pooled connections.
    pub fn client(&self, keys: &Keys, directory: &Stored) -> Result<Directory, RuleError> {
        let pool = self.pools.of(
            directory.id,
            &directory.fields,
            &directory.bind_password_sealed,
        );
        Ok(Directory::new(directory.fields.clone(), unsealed(keys, directory)?).with_pool(pool))
    }

    /// Counts a search sent to `directory` for `purpose`.
    pub fn searched(&self, directory: &str, purpose: &str) {
        self.metrics.inc(
            SEARCHES,
            SEARCHES_HELP,
            &[("directory", directory), ("purpose", purpose)],
        );
    }

    fn looked_up(&self, result: &str) {
        self.metrics
            .inc(LOOKUPS, LOOKUPS_HELP, &[("result", result)]);
    }

    /// Whether `login` was looked up and found nowhere a moment ago (counted as a lookup
    /// answered from memory). Asked only of logins no user has.
    pub fn recently_missed(&self, login: &str) -> bool {
        let key = crate::domain::login_key(login.trim());
        let missed = self
            .misses
            .lock()
            .is_ok_and(|mut misses| misses.contains(&key, Instant::now()));
        if missed {
            self.looked_up("remembered");
        }
        missed
    }

    /// Looks a login no otpgate user has up in the directories, in order of their names, and
    /// links the first person found as a new user; their id, or None (not found anywhere,
    /// remembered as such, too many lookups at once, a directory that did not answer, a
    /// login some user has already). Only a failure of the store is an error.
    pub async fn look_up(
        &self,
        store: &Store,
        keys: &Keys,
        login: &str,
        now: UnixTime,
    ) -> Result<Option<i64>, RuleError> {
        let login = login.trim();
        let key = crate::domain::login_key(login);
        if login.is_empty() || crate::domain::Login::parse(login).is_err() {
            return Ok(None);
        }
        if self.recently_missed(login) {
            return Ok(None);
        }
        let Ok(_permit) = self.lookups.clone().try_acquire_owned() else {
            self.looked_up("busy");
            return Ok(None);
        };
        if store
            .find_user(IdOrName::Name(login.into()))
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let mut every_one_answered = true;
        for stored in store.directories().await? {
            let directory = match self.client(keys, &stored) {
                Ok(directory) => directory,
                Err(error) => {
                    tracing::error!(directory = %stored.fields.name, %error, "a directory cannot be used");
                    every_one_answered = false;
                    continue;
                }
            };
            self.searched(&stored.fields.name, "lookup");
            let person = match directory.find_person(login).await {
                Ok(Some(person)) => person,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(directory = %stored.fields.name, %error, "a login could not be looked up");
                    every_one_answered = false;
                    continue;
                }
            };
            match link(store, &directory, &stored, &person, now).await? {
                Some(id) => {
                    self.looked_up("linked");
                    return Ok(Some(id));
                }
                None => continue,
            }
        }
        if every_one_answered {
            if let Ok(mut misses) = self.misses.lock() {
                misses.insert(key, Instant::now());
            }
            self.looked_up("not_found");
        } else {
            self.looked_up("unavailable");
        }
        Ok(None)
    }
}

/// Links a person found at authentication as a new user, audited as the directory's doing;
/// None when the entry cannot be a user (no stable id or login, a login otpgate refuses, one a
/// local user has).
async fn link(
    store: &Store,
    directory: &Directory,
    stored: &Stored,
    person: &crate::ldap::Person,
    now: UnixTime,
) -> Result<Option<i64>, RuleError> {
    let (Some(uid), Some(login)) = (person.stable_id.clone(), person.login.clone()) else {
        tracing::warn!(directory = %stored.fields.name, dn = %person.dn, "an entry without a stable id or login cannot be linked");
        return Ok(None);
    };
    let user = match new_user(person, &login) {
        Ok(user) => user,
        Err(error) => {
            tracing::warn!(directory = %stored.fields.name, %error, "a person cannot be linked");
            return Ok(None);
        }
    };
    let audit = AuditEntry::new(
        now,
        format!("directory:{}", stored.fields.name),
        "directory.lookup_user",
        "ok",
    );
    let id = match store
        .link_directory_user(stored.id, uid.clone(), user, audit.clone(), now)
        .await?
    {
        Linked::Created(id) | Linked::Already(id) => id,
        Linked::LoginTaken => return Ok(None),
    };
    assign_mapped(store, directory, stored, id, &uid, audit).await?;
    Ok(Some(id))
}

/// Gives a person linked at their first login the resources their groups map to, as the sync
/// would, so that the first login is not refused for want of the next sync. A directory that
/// does not answer now leaves it to the next sync.
async fn assign_mapped(
    store: &Store,
    directory: &Directory,
    stored: &Stored,
    user_id: i64,
    uid: &str,
    audit: AuditEntry,
) -> Result<(), RuleError> {
    let mappings = store.group_mappings(stored.id).await?;
    if mappings.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = mappings.iter().map(|m| m.group.clone()).collect();
    let member = match directory.groups_of(uid, &groups).await {
        Ok(member) => member,
        Err(error) => {
            tracing::warn!(directory = %stored.fields.name, %error, "the groups of a person linked at login could not be read; the next sync assigns them");
            return Ok(());
        }
    };
    let group_ids = mappings
        .iter()
        .zip(member)
        .filter(|(_, member)| *member)
        .map(|(mapping, _)| mapping.id)
        .collect();
    store.assign_to_mappings(user_id, group_ids, audit).await?;
    Ok(())
}
