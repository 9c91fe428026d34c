//! Connections to a directory kept open between uses, per directory and per lane:
//! - the *search* lane holds connections bound as the service account; a lookup or the search
//!   before a password check takes one, and gives it back when the operation went well;
//! - the *bind* lane holds connections used only to bind as a person (a password check). A
//!   bind changes who the connection is, so these connections never search: a person's rights
//!   never leak into a search, and the service account's never into a person's check. A
//!   refused bind leaves a connection anonymous and usable, so it goes back too.
//!
//! Each lane opens at most `LANE_SIZE` connections at once (a caller waits for one at most the
//! connect timeout, asynchronously); a connection whose operation failed is dropped, not given
//! back; idle ones are closed after `IDLE`. When no address of a directory gave a connection,
//! the directory is `DOWN_FOR` a few seconds: its operations fail at once instead of each
//! waiting out its own timeouts. A pool belongs to one version of a directory's settings: a
//! change of the settings (or of the service password) starts a new pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ldap3::Ldap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::store::directories::DirectoryFields;

/// Connections a lane has open at most at once.
pub const LANE_SIZE: usize = 8;
/// An idle connection is closed after this long (below Active Directory's 15 minutes).
pub const IDLE: Duration = Duration::from_secs(60);
/// How long a directory none of whose addresses answered is left alone.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// A connection at rest.
struct Idle {
    ldap: Ldap,
    url: String,
    since: Instant,
}

/// One lane of a pool: its idle connections and the permits to hold one.
pub struct Lane {
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(LANE_SIZE)),
        }
    }

    /// A permit to hold a connection of this lane, waiting for one at most `wait`.
    pub async fn permit(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// The connection given back last, when one is still open and fresh.
    pub fn take(&self, now: Instant) -> Option<(Ldap, String)> {
        let mut stale = Vec::new();
        let found = {
            let Ok(mut idle) = self.idle.lock() else {
                return None;
            };
            let mut found = None;
            while let Some(mut connection) = idle.pop() {
                if now.duration_since(connection.since) < IDLE && !connection.ldap.is_closed() {
                    found = Some((connection.ldap, connection.url));
                    break;
                }
                stale.push(connection);
            }
            found
        };
        // Dropped outside the lock: the last handle of a connection closes it.
        drop(stale);
        found
    }

    fn put(&self, ldap: Ldap, url: String, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(Idle {
                ldap,
                url,
                since: now,
            });
        }
    }

    /// Closes the connections idle for `IDLE` or more.
    fn close_idle(&self, now: Instant) {
        let stale: Vec<Idle> = match self.idle.lock() {
            Ok(mut idle) => {
                let (stale, fresh) = std::mem::take(&mut *idle)
                    .into_iter()
                    .partition(|connection| now.duration_since(connection.since) >= IDLE);
                *idle = fresh;
                stale
            }
            Err(_) => Vec::new(),
        };
        drop(stale);
    }
}

/// A connection in use: given back by `finish` after an operation that went well,
/// closed when dropped.
pub struct Lease {
    pub ldap: Ldap,
    pub url: String,
    home: Option<(Arc<Lane>, OwnedSemaphorePermit)>,
}

impl Lease {
    /// A connection of no pool (test connection, preview): closed after use.
    pub fn alone(ldap: Ldap, url: String) -> Lease {
        Lease {
            ldap,
            url,
            home: None,
        }
    }

    pub fn pooled(ldap: Ldap, url: String, lane: Arc<Lane>, permit: OwnedSemaphorePermit) -> Lease {
        Lease {
            ldap,
            url,
            home: Some((lane, permit)),
        }
    }

    /// Ends the use: a pooled connection whose operation went well goes back to its lane;
    /// any other is closed (an unbind for one of no pool, which its server is told of).
    pub async fn finish(mut self, went_well: bool) {
        match self.home.take() {
            Some((lane, _permit)) if went_well => lane.put(self.ldap, self.url, Instant::now()),
            Some(_) => {}
            None => {
                let _ = self.ldap.unbind().await;
            }
        }
    }
}

/// The pool of one directory, for one version of its settings.
pub struct Pool {
    settings: (DirectoryFields, Vec<u8>),
    metrics: Option<Arc<Metrics>>,
    pub search: Arc<Lane>,
    pub bind: Arc<Lane>,
    down: Mutex<Option<(Instant, Vec<Attempt>)>>,
}

impl Pool {
    fn new(fields: &DirectoryFields, sealed: &[u8], metrics: Option<Arc<Metrics>>) -> Pool {
        Pool {
            settings: (fields.clone(), sealed.to_vec()),
            metrics,
            search: Arc::new(Lane::new()),
            bind: Arc::new(Lane::new()),
            down: Mutex::new(None),
        }
    }

    /// What every address said when the directory was last found down, while it is left
    /// alone.
    pub fn down(&self, now: Instant) -> Option<Vec<Attempt>> {
        let down = self.down.lock().ok()?;
        match &*down {
            Some((until, attempts)) if now < *until => Some(attempts.clone()),
            _ => None,
        }
    }

    /// No address answered: the directory is left alone for `DOWN_FOR`.
    pub fn mark_down(&self, attempts: Vec<Attempt>, now: Instant) {
        if let Ok(mut down) = self.down.lock() {
            *down = Some((now + DOWN_FOR, attempts));
        }
    }

    /// Counts a connection opened for `lane` (`search`, `bind`).
    pub fn opened(&self, lane: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.inc(
                "otpgate_directory_connections_total",
                "Connections opened to directories for their pools, by directory and lane (search, bind).",
                &[("directory", &self.settings.0.name), ("lane", lane)],
            );
        }
    }

    fn close_idle(&self, now: Instant) {
        self.search.close_idle(now);
        self.bind.close_idle(now);
    }
}

/// Every directory's pool, by directory id.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<i64, Arc<Pool>>>,
    metrics: Option<Arc<Metrics>>,
}

impl Pools {
    /// Pools whose connections are counted in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Pools {
        Pools {
            pools: Mutex::default(),
            metrics: Some(metrics),
        }
    }

    /// The pool of directory `id` with these settings; settings changed since the pool was
    /// made start a new one (the old one's connections close as their leases end).
    pub fn of(&self, id: i64, fields: &DirectoryFields, sealed: &[u8]) -> Arc<Pool> {
        let Ok(mut pools) = self.pools.lock() else {
            return Arc::new(Pool::new(fields, sealed, self.metrics.clone()));
        };
        if let Some(pool) = pools.get(&id)
            && pool.settings.0 == *fields
            && pool.settings.1 == sealed
        {
            return pool.clone();
        }
        let pool = Arc::new(Pool::new(fields, sealed, self.metrics.clone()));
        let replaced = pools.insert(id, pool.clone());
        drop(pools);
        drop(replaced);
        close_idle_while_alive(Arc::downgrade(&pool));
        pool
    }
}

/// Closes a pool's idle connections every little while, until the pool is gone.
fn close_idle_while_alive(pool: Weak<Pool>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(IDLE / 4);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(pool) = pool.upgrade() else {
                return;
            };
            pool.close_idle(Instant::now());
        }
    });
}

/// What happened at one address of a directory (a connection that failed, a search refused):
/// what a directory found down answers until it is tried again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub url: String,
    pub problem: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_the_settings_or_the_password_starts_a_new_pool() {
        let pools = Pools::default();
        let fields = DirectoryFields {
            name: "corp".into(),
            ..DirectoryFields::default()
        };
        let first = pools.of(1, &fields, b"sealed");
        assert!(Arc::ptr_eq(&first, &pools.of(1, &fields, b"sealed")));
        assert!(!Arc::ptr_eq(&first, &pools.of(1, &fields, b"other")));
        let renamed = DirectoryFields {
            name: "corporate".into(),
            ..fields.clone()
        };
        let second = pools.of(1, &renamed, b"other");
        assert!(!Arc::ptr_eq(&second, &pools.of(2, &renamed, b"other")));
    }

    #[test]
    fn a_directory_found_down_is_left_alone_for_a_few_seconds() {
        let pool = Pool::new(&DirectoryFields::default(), b"", None);
        let now = Instant::now();
        assert_eq!(pool.down(now), None);
        let attempts = vec![Attempt {
            url: "ldap://dc1".into(),
            problem: "connection refused".into(),
        }];
        pool.mark_down(attempts.clone(), now);
        assert_eq!(pool.down(now + DOWN_FOR / 2), Some(attempts));
        assert_eq!(pool.down(now + DOWN_FOR), None);
    }

    #[tokio::test]
    async fn a_lane_gives_no_more_permits_than_its_size() {
        let lane = Lane::new();
        let mut held = Vec::new();
        for _ in 0..LANE_SIZE {
            held.push(
                lane.permit(Duration::from_millis(10))
                    .await
                    .expect("a permit"),
            );
        }
        assert!(lane.permit(Duration::from_millis(10)).await.is_none());
        held.pop();
        assert!(lane.permit(Duration::from_millis(10)).await.is_some());
    }
}
