//! Logins waiting for an approval's decision, held in memory without a thread or a task each.
//!
//! A front end that holds a login until the user answers in Telegram (the API's `wait`, later
//! RADIUS and the portal) registers a [`Waiter`] under the login's transaction, reads the
//! approval, and awaits [`Waiter::wait`] with its deadline; whoever decides or ends the approval
//! (the bot's press, the expiry of unanswered approvals, a code typed for the same transaction)
//! calls [`Waiters::wake`]. An entry is one `watch` channel per transaction, shared by all its
//! waiters and removed when the last of them is dropped — also when the request holding it is
//! cancelled because its client went away. The number of waiters is bounded; beyond the bound
//! a new waiter is refused, and the caller answers at once instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The waiters of every transaction, cheap to clone (one registry per application).
#[derive(Clone)]
pub struct Waiters {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Per transaction: the channel its waiters watch, and how many they are.
    channels: HashMap<String, (watch::Sender<()>, usize)>,
    /// Waiters across all transactions.
    total: usize,
}

/// Too many logins are waiting already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many sign-ins are waiting for an approval")]
pub struct Full;

impl Waiters {
    /// A registry that holds at most `limit` waiters at once.
    pub fn new(limit: usize) -> Waiters {
        Waiters {
            inner: Arc::new(Inner {
                limit,
                table: Mutex::new(Table::default()),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while the lock was held leaves the table consistent (every change is one
        // statement), so a poisoned lock is taken all the same.
        self.inner
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a waiter for the transaction. Register before reading the approval: a wake
    /// that comes after the registration is never missed.
    pub fn register(&self, transaction: &str) -> Result<Waiter, Full> {
        let mut table = self.table();
        if table.total >= self.inner.limit {
            return Err(Full);
        }
        table.total += 1;
        let receiver = match table.channels.get_mut(transaction) {
            Some((sender, count)) => {
                *count += 1;
                sender.subscribe()
            }
            None => {
                let (sender, receiver) = watch::channel(());
                table.channels.insert(transaction.to_owned(), (sender, 1));
                receiver
            }
        };
        Ok(Waiter {
            waiters: self.clone(),
            transaction: transaction.to_owned(),
            receiver,
        })
    }

    /// Wakes every waiter of the transaction (none: nothing happens).
    pub fn wake(&self, transaction: &str) {
        if let Some((sender, _)) = self.table().channels.get(transaction) {
            sender.send_replace(());
        }
    }

    /// How many waiters there are now.
    pub fn count(&self) -> usize {
        self.table().total
    }

    /// Whether another waiter would be taken now: asked before starting an approval that a
    /// login will wait for, so that no message goes out for a login refused at once.
    pub fn has_room(&self) -> bool {
        self.table().total < self.inner.limit
    }

    /// How many transactions have waiters now.
    pub fn transactions(&self) -> usize {
        self.table().channels.len()
    }

    fn leave(&self, transaction: &str) {
        let mut table = self.table();
        table.total = table.total.saturating_sub(1);
        if let Some((_, count)) = table.channels.get_mut(transaction) {
            *count -= 1;
            if *count == 0 {
                table.channels.remove(transaction);
            }
        }
    }
}

/// One login waiting for its approval; leaves the registry when dropped.
pub struct Waiter {
    waiters: Waiters,
    transaction: String,
    receiver: watch::Receiver<()>,
}

impl Waiter {
    /// Waits until the transaction is woken after the registration (or after the last wait),
    /// or until `deadline`; true when woken.
    pub async fn wait(&mut self, deadline: tokio::time::Instant) -> bool {
        matches!(
            tokio::time::timeout_at(deadline, self.receiver.changed()).await,
            Ok(Ok(()))
        )
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.waiters.leave(&self.transaction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test]
    async fn a_wake_after_registration_reaches_every_waiter_of_the_transaction() {
        let waiters = Waiters::new(10);
        let mut first = waiters.register("t1").expect("room");
        let mut second = waiters.register("t1").expect("room");
        let mut other = waiters.register("t2").expect("room");
        waiters.wake("t1");
        let soon = Instant::now() + Duration::from_secs(5);
        assert!(first.wait(soon).await);
        assert!(second.wait(soon).await);
        assert!(!other.wait(Instant::now()).await, "another transaction");
    }

    #[tokio::test]
    async fn the_last_waiter_leaving_removes_its_transaction() {
        let waiters = Waiters::new(10);
        let first = waiters.register("t1").expect("room");
        let second = waiters.register("t1").expect("room");
        assert_eq!((waiters.count(), waiters.transactions()), (2, 1));
        drop(first);
        assert_eq!((waiters.count(), waiters.transactions()), (1, 1));
        drop(second);
        assert_eq!((waiters.count(), waiters.transactions()), (0, 0));
        waiters.wake("t1");
        assert_eq!(waiters.transactions(), 0, "a wake creates nothing");
    }

    #[tokio::test]
    async fn a_waiter_cancelled_in_its_wait_leaves_no_entry() {
        let waiters = Waiters::new(10);
        let held = waiters.clone();
        let task = tokio::spawn(async move {
            let mut waiter = held.register("t1").expect("room");
            waiter
                .wait(Instant::now() + Duration::from_secs(3600))
                .await
        });
        while waiters.count() == 0 {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        assert_eq!((waiters.count(), waiters.transactions()), (0, 0));
    }

    #[test]
    fn beyond_the_bound_a_waiter_is_refused_until_one_leaves() {
        let waiters = Waiters::new(2);
        let first = waiters.register("a").expect("room");
        let _second = waiters.register("b").expect("room");
        assert_eq!(waiters.register("a").err(), Some(Full));
        drop(first);
        assert!(waiters.register("c").is_ok());
    }
}
