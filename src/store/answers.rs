//! How the writer hands committed answers back to async callers: one wake per runtime and batch.
//!
//! A oneshot answer sent from the writer thread to a task of a current-thread runtime (the
//! main one, which serves RADIUS, and each HTTP worker's) wakes that runtime from outside: a
//! `write` to its event fd every time, a system call on the writer's thread for every job of a
//! batch, and an interruption of the runtime's thread for each. Under load that was one more
//! system call per authentication on the one thread every write waits for.
//!
//! So an async caller on such a runtime names its runtime's **courier**, a task that runs
//! there: after the commit the writer sends each courier the answers of its callers in one
//! message (one wake), and the courier sends them on inside its runtime, where waking a task
//! costs no system call. Answers to any other caller (blocking callers, multi-thread runtimes)
//! go straight to them, as before.

use std::cell::RefCell;

use tokio::runtime::{Handle, Id, RuntimeFlavor};
use tokio::sync::mpsc;

/// Sends one answer to the caller that waits for it.
pub(super) type Delivery = Box<dyn FnOnce() + Send>;

type Courier = mpsc::UnboundedSender<Vec<Delivery>>;

thread_local! {
    /// The courier of the current-thread runtime this thread last submitted a job from.
    static COURIER: RefCell<Option<(Id, Courier)>> = const { RefCell::new(None) };
}

/// Where a job's answer goes once its transaction's fate is known.
pub(super) struct Route(Option<Courier>);

impl Route {
    /// Straight to the caller: for blocking callers.
    pub(super) fn direct() -> Route {
        Route(None)
    }

    /// Through the courier of the current-thread runtime the caller runs on, started there on
    /// the first job; straight to the caller anywhere else.
    pub(super) fn here() -> Route {
        let Ok(handle) = Handle::try_current() else {
            return Route::direct();
        };
        if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return Route::direct();
        }
        let id = handle.id();
        COURIER.with(|courier| {
            let mut courier = courier.borrow_mut();
            match courier.as_ref() {
                Some((known, sender)) if *known == id && !sender.is_closed() => {
                    Route(Some(sender.clone()))
                }
                _ => {
                    let (sender, receiver) = mpsc::unbounded_channel();
                    handle.spawn(carry(receiver));
                    *courier = Some((id, sender.clone()));
                    Route(Some(sender))
                }
            }
        })
    }
}

/// The courier: sends on each batch of answers it is given, until its runtime stops.
async fn carry(mut batches: mpsc::UnboundedReceiver<Vec<Delivery>>) {
    while let Some(deliveries) = batches.recv().await {
        for deliver in deliveries {
            deliver();
        }
    }
}

/// The answers of one batch, gathered by courier until the batch is over.
#[derive(Default)]
pub(super) struct Outbox {
    parcels: Vec<(Courier, Vec<Delivery>)>,
}

impl Outbox {
    /// Sends `deliver` now when its route is direct; otherwise keeps it for its courier.
    pub(super) fn post(&mut self, route: Route, deliver: Delivery) {
        let Route(Some(courier)) = route else {
            deliver();
            return;
        };
        match self
            .parcels
            .iter_mut()
            .find(|(known, _)| known.same_channel(&courier))
        {
            Some((_, parcel)) => parcel.push(deliver),
            None => self.parcels.push((courier, vec![deliver])),
        }
    }

    /// Hands each courier its answers; those of a courier whose runtime has stopped are sent
    /// straight on (their callers are gone with it, but nothing is left undelivered).
    pub(super) fn send(self) {
        for (courier, parcel) in self.parcels {
            if let Err(mpsc::error::SendError(parcel)) = courier.send(parcel) {
                for deliver in parcel {
                    deliver();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::store::{settings, temp_store};

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_batch_s_answers_for_one_runtime_travel_in_one_message() {
        let (courier, mut parcels) = mpsc::unbounded_channel();
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let mut outbox = Outbox::default();
        for n in 0..3 {
            let delivered = delivered.clone();
            let deliver: Delivery = Box::new(move || delivered.lock().expect("lock").push(n));
            outbox.post(Route(Some(courier.clone())), deliver);
        }
        let direct = delivered.clone();
        outbox.post(
            Route::direct(),
            Box::new(move || direct.lock().expect("lock").push(9)),
        );
        assert_eq!(
            *delivered.lock().expect("lock"),
            [9],
            "a direct answer goes at once"
        );
        outbox.send();
        let parcel = parcels.try_recv().expect("one parcel");
        assert!(parcels.try_recv().is_err(), "one message for the runtime");
        assert_eq!(parcel.len(), 3);
        parcel.into_iter().for_each(|deliver| deliver());
        assert_eq!(*delivered.lock().expect("lock"), [9, 0, 1, 2]);
    }

    #[test]
    fn answers_reach_their_callers_when_the_courier_s_runtime_has_stopped() {
        let (courier, parcels) = mpsc::unbounded_channel();
        drop(parcels);
        let delivered = Arc::new(Mutex::new(false));
        let flag = delivered.clone();
        let mut outbox = Outbox::default();
        outbox.post(
            Route(Some(courier)),
            Box::new(move || *flag.lock().expect("lock") = true),
        );
        outbox.send();
        assert!(*delivered.lock().expect("lock"));
    }

    #[test]
    fn writes_from_one_runtime_after_another_on_the_same_thread_are_all_answered() {
        let (_dir, store) = temp_store();
        // The runtimes stay alive, idle, while the next one runs: an answer routed to an
        // earlier one's courier would wait there for ever.
        let mut runtimes = Vec::new();
        for round in 0..3 {
            runtimes.push(current_thread());
            let runtime = runtimes.last().expect("a runtime");
            let store = store.clone();
            let written = runtime.block_on(async move {
                let writes = (0..50).map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let key = format!("round-{round}-{i}");
                        store
                            .write(move |conn| settings::set(conn, &key, "v", 1))
                            .await
                    })
                });
                let writes = futures_util::future::join_all(writes);
                tokio::time::timeout(Duration::from_secs(10), writes).await
            });
            let written = written.expect("every write answered in time");
            assert!(written.into_iter().all(|w| matches!(w, Ok(Ok(())))));
        }
        let count: i64 = store
            .read_blocking(|conn| {
                Ok(conn.query_row(
                    "SELECT COUNT(*) FROM settings WHERE key LIKE 'round-%'",
                    [],
                    |row| row.get(0),
                )?)
            })
            .expect("count");
        assert_eq!(count, 150);
    }
}
