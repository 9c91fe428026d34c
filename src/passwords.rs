//! The password gate: every Argon2 hash and check of the server goes through it.
//!
//! An Argon2 hash takes 19 MiB and tens of milliseconds of one core, and anyone who can reach a
//! login form or the API can ask for one. So the work is done by a few dedicated threads, each
//! keeping its working memory for the next hash (the memory of the server stays what it was
//! after the first check), and fed by one bounded queue: a check waits in line at most the
//! configured time, and beyond a full line or that wait it is shed — the caller answers "busy,
//! try again", and the rest of the server (codes without a password, pages, health checks)
//! keeps its cores. A check for an unknown user goes the same way, against a dummy hash, so it
//! costs the same.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::crypto::{self, CryptoError, PasswordMemory};
use crate::domain::{Busy, RuleError};
use crate::metrics::Metrics;

/// How the gate is sized (the `[passwords]` section of the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSize {
    /// Threads hashing at once; each keeps 19 MiB.
    pub workers: usize,
    /// Checks waiting for a thread; beyond them a check is shed at once.
    pub queue: usize,
    /// How long a check may wait for a thread before it is shed.
    pub wait: Duration,
}

impl GateSize {
    /// Threads by default: half the cores, at least one, so that a flood of passwords leaves
    /// the other half to everything else.
    pub fn default_workers() -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.div_ceil(2).max(1)
    }
}

enum Work {
    /// Does the password match the hash (or, for an unknown user, the dummy hash)?
    Verify {
        password: String,
        hash: Option<String>,
    },
    /// The hash of a new password.
    Hash { password: String },
}

enum Done {
    Verified(bool),
    Hashed(Result<String, CryptoError>),
    /// The job waited longer than allowed and was not done.
    Late,
}

struct Job {
    work: Work,
    queued_at: Instant,
    answer: oneshot::Sender<Done>,
}

/// What the worker threads share.
struct Line {
    queue: Mutex<Receiver<Job>>,
    wait: Duration,
    /// The hash checked for unknown users, made by the first worker that needs it.
    dummy: OnceLock<String>,
}

/// The gate. Dropping it stops its threads once they finish the job in hand.
pub struct PasswordGate {
    jobs: SyncSender<Job>,
    wait: Duration,
    metrics: Arc<Metrics>,
    /// When a shed was last logged (seconds since the gate opened), so that a flood logs a
    /// line now and then, not one per request.
    last_warning: AtomicU64,
    opened: Instant,
}

impl std::fmt::Debug for PasswordGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordGate")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl PasswordGate {
    /// Starts the worker threads.
    pub fn start(size: GateSize, metrics: Arc<Metrics>) -> std::io::Result<PasswordGate> {
        let (jobs, queue) = sync_channel(size.queue.max(1));
        let line = Arc::new(Line {
            queue: Mutex::new(queue),
            wait: size.wait,
            dummy: OnceLock::new(),
        });
        for index in 0..size.workers.max(1) {
            let line = line.clone();
            std::thread::Builder::new()
                .name(format!("password-{index}"))
                .spawn(move || work(&line))?;
        }
        Ok(PasswordGate {
            jobs,
            wait: size.wait,
            metrics,
            last_warning: AtomicU64::new(0),
            opened: Instant::now(),
        })
    }

    /// Whether `password` matches `hash`; with no hash (an unknown user, a user without a
    /// password) a dummy hash is checked, as long as a real one takes, and the answer is no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Busy> {
        match self.run(Work::Verify { password, hash }).await? {
            Done::Verified(matches) => Ok(matches),
            _ => Ok(false),
        }
    }

    /// The Argon2id hash of a new password.
    pub async fn hash(&self, password: String) -> Result<String, RuleError> {
        match self.run(Work::Hash { password }).await? {
            Done::Hashed(hash) => Ok(hash?),
            _ => Err(CryptoError::Hash.into()),
        }
    }

    async fn run(&self, work: Work) -> Result<Done, Busy> {
        let (answer, done) = oneshot::channel();
        let job = Job {
            work,
            queued_at: Instant::now(),
            answer,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(self.shed("queue_full")),
            Err(TrySendError::Disconnected(_)) => return Err(self.shed("stopped")),
        }
        match done.await {
            Ok(Done::Late) => Err(self.shed("waited_too_long")),
            Ok(done) => Ok(done),
            Err(_) => Err(self.shed("stopped")),
        }
    }

    /// Counts a shed check and says how long to wait before the next try.
    fn shed(&self, reason: &str) -> Busy {
        self.metrics.inc(
            "otpgate_password_checks_shed_total",
            "Password hashes and checks refused because every password worker was busy, by \
             reason: queue_full, waited_too_long.",
            &[("reason", reason)],
        );
        let now = self.opened.elapsed().as_secs() + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                reason,
                "password checks are being refused: more arrive than the password workers can \
                 take (see [passwords] in the configuration)"
            );
        }
        Busy {
            retry_after_seconds: self.wait.as_secs().max(1),
        }
    }
}

/// One worker: takes jobs in turn, with working memory it keeps from one to the next.
fn work(line: &Line) {
    let mut memory = PasswordMemory::default();
    loop {
        let job = {
            let Ok(queue) = line.queue.lock() else {
                return;
            };
            match queue.recv() {
                Ok(job) => job,
                // The gate is gone: the server stopped.
                Err(_) => return,
            }
        };
        if job.answer.is_closed() {
            // Whoever asked is gone (the client hung up): no one needs the answer.
            continue;
        }
        if job.queued_at.elapsed() > line.wait {
            let _ = job.answer.send(Done::Late);
            continue;
        }
        let done = match job.work {
            Work::Verify { password, hash } => {
                let known = hash.is_some();
                let hash = match &hash {
                    Some(hash) => hash.as_str(),
                    None => line.dummy.get_or_init(|| {
                        crypto::hash_password_in(
                            &mut memory,
                            "otpgate dummy password that matches nothing",
                        )
                        .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$invalid".into())
                    }),
                };
                Done::Verified(crypto::verify_password_in(&mut memory, &password, hash) && known)
            }
            Work::Hash { password } => {
                Done::Hashed(crypto::hash_password_in(&mut memory, &password))
            }
        };
        let _ = job.answer.send(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(workers: usize, queue: usize, wait: Duration) -> PasswordGate {
        PasswordGate::start(
            GateSize {
                workers,
                queue,
                wait,
            },
            Arc::new(Metrics::default()),
        )
        .expect("the gate starts")
    }

    #[tokio::test]
    async fn a_hash_made_by_the_gate_verifies_there_and_an_unknown_user_never_matches() {
        let gate = gate(1, 4, Duration::from_secs(10));
        let hash = gate.hash("correct horse".into()).await.expect("hash");
        assert_eq!(
            gate.verify("correct horse".into(), Some(hash.clone()))
                .await,
            Ok(true)
        );
        assert_eq!(
            gate.verify("wrong horse".into(), Some(hash)).await,
            Ok(false)
        );
        assert_eq!(gate.verify("correct horse".into(), None).await, Ok(false));
    }

    #[tokio::test]
    async fn checks_beyond_a_full_queue_are_shed_and_counted() {
        let metrics = Arc::new(Metrics::default());
        let gate = Arc::new(
            PasswordGate::start(
                GateSize {
                    workers: 1,
                    queue: 1,
                    wait: Duration::from_secs(30),
                },
                metrics.clone(),
            )
            .expect("start"),
        );
        let mut checks = Vec::new();
        for _ in 0..8 {
            let gate = gate.clone();
            checks.push(tokio::spawn(async move {
                gate.verify("guess".into(), None).await
            }));
        }
        let mut shed = 0;
        for check in checks {
            if let Err(busy) = check.await.expect("join") {
                assert!(busy.retry_after_seconds >= 1);
                shed += 1;
            }
        }
        assert!(
            shed >= 1,
            "one worker and one place in line cannot take eight at once"
        );
        assert!(
            metrics
                .render()
                .contains("otpgate_password_checks_shed_total{reason=\"queue_full\"}"),
            "{}",
            metrics.render()
        );
    }
}
