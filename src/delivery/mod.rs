//! Delivery: otpgate sends the messages of its outbox (one-time passwords today, verification
//! codes and notices later) through its channels, at least once and never late.
//!
//! - A **channel** is one small interface ([`Channel`]): it sends one [`Outgoing`] message and
//!   says whether the other side accepted it, or why not — for now, or for good, or because
//!   the recipient cannot be reached any more. MAIL ([`mail`]) and SMS ([`sms`]) are built from
//!   the stored settings; a messenger bot plugs in the same way through [`ChannelSource`].
//! - The **worker** runs one task per channel, so a slow channel never delays another. A task
//!   wakes when a message is committed ([`Wakeup`]), when a send finishes, when a retry comes
//!   due, and at least every few seconds. It reads the due messages, drops those whose code
//!   expired as *expired*, and sends the rest, a few at a time. A message is marked *sent* only
//!   after its channel accepted it, so a crash between the two resends it once at worst; the
//!   table is the queue, so a restart resumes exactly where it stopped.
//! - A temporary failure is retried with exponential backoff (from 1 s, capped at 5 minutes,
//!   with jitter) until the message expires; a permanent one is marked *failed* with its reason.

pub mod approval;
pub mod bot;
pub mod mail;
pub mod settings;
pub mod sms;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::crypto::{self, Keys, Purpose};
use crate::metrics::Metrics;
use crate::store::delivery_settings::ChannelSettings;
use crate::store::outbox::{DueMessage, Outcome};
use crate::store::{Store, UnixTime};

/// One message to send, opened.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The outbox row (0 for a test message).
    pub id: i64,
    /// An email address, an E.164 phone number or a chat id, as the channel expects.
    pub recipient: String,
    pub subject: String,
    /// The plain text; it carries the code and must never be logged.
    pub text: String,
    /// The token the message belongs to, when it belongs to one.
    pub token_id: Option<i64>,
    /// Buttons under the message, in rows (only the bot has them: an approval's).
    pub buttons: Vec<Vec<approval::Button>>,
}

/// The other side accepted the message; its answer (an SMTP reply, a gateway's status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted(pub String);

/// Why a message was not accepted. The texts never contain the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: the server is down, busy or timed out, or the channel is not set up.
    #[error("{0}")]
    Temporary(String),
    /// Never try again: the address is invalid or the gateway refused this message.
    #[error("{0}")]
    Permanent(String),
    /// The recipient cannot be reached any more (a user blocked the bot): the token needs to
    /// be activated again.
    #[error("{0}")]
    Unreachable(String),
}

/// A future of a send.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Accepted, SendError>> + Send + 'a>>;

/// A way to send messages: email, text message, a messenger bot.
pub trait Channel: Send + Sync {
    /// The outbox's channel name: `mail`, `sms`, `bot`.
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a>;
}

/// A future of the current channel.
pub type ChannelFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<dyn Channel>, SendError>> + Send + 'a>>;

/// Gives the worker the channel as currently configured. Asked before every batch, so a
/// change of settings applies to the next message without a restart.
pub trait ChannelSource: Send + Sync {
    fn name(&self) -> &'static str;
    fn current(&self) -> ChannelFuture<'_>;
}

/// Builds a channel from its stored settings (plain JSON and unsealed secrets).
pub type Builder = fn(&ChannelSettings, &Keys) -> Result<Arc<dyn Channel>, SendError>;

/// A [`ChannelSource`] over the stored settings of one channel: it rebuilds the channel only
/// when the settings changed, so connections (an SMTP pool) are reused between messages.
pub struct StoredChannel {
    name: &'static str,
    store: Store,
    keys: Keys,
    build: Builder,
    cache: Mutex<Option<(ChannelSettings, Arc<dyn Channel>)>>,
}

impl StoredChannel {
    pub fn new(name: &'static str, store: Store, keys: Keys, build: Builder) -> StoredChannel {
        StoredChannel {
            name,
            store,
            keys,
            build,
            cache: Mutex::new(None),
        }
    }

    fn cached(&self, settings: &ChannelSettings) -> Option<Arc<dyn Channel>> {
        let cache = self.cache.lock().ok()?;
        match &*cache {
            Some((known, channel)) if known == settings => Some(channel.clone()),
            _ => None,
        }
    }
}

impl ChannelSource for StoredChannel {
    fn name(&self) -> &'static str {
        self.name
    }

    fn current(&self) -> ChannelFuture<'_> {
        Box::pin(async move {
            let settings = self
                .store
                .channel_settings(self.name)
                .await
                .map_err(|e| SendError::Temporary(format!("cannot read the settings: {e}")))?;
            if let Some(channel) = self.cached(&settings) {
                return Ok(channel);
            }
            let channel = (self.build)(&settings, &self.keys)?;
            if let Ok(mut cache) = self.cache.lock() {
                *cache = Some((settings, channel.clone()));
            }
            Ok(channel)
        })
    }
}

/// Unseals a secret of a channel's settings.
pub fn open_secret(
    settings: &ChannelSettings,
    keys: &Keys,
    name: &str,
) -> Result<Option<String>, SendError> {
    settings
        .secrets
        .get(name)
        .map(|sealed| {
            let bytes = keys.open(Purpose::Credential, sealed).map_err(|_| {
                SendError::Temporary(format!("the stored {name} cannot be unsealed"))
            })?;
            String::from_utf8(bytes)
                .map_err(|_| SendError::Temporary(format!("the stored {name} is not text")))
        })
        .transpose()
}

/// Wakes the channel tasks when messages were committed: the hot path has no polling delay.
#[derive(Clone, Default)]
pub struct Wakeup {
    notifies: Arc<Mutex<Vec<Arc<Notify>>>>,
}

impl Wakeup {
    /// Tells every channel task to look at the outbox now (or as soon as it is free).
    pub fn wake(&self) {
        if let Ok(notifies) = self.notifies.lock() {
            for notify in notifies.iter() {
                notify.notify_one();
            }
        }
    }

    fn register(&self) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        if let Ok(mut notifies) = self.notifies.lock() {
            notifies.push(notify.clone());
        }
        notify
    }
}

/// How many messages of one channel are sent at the same time.
pub(crate) const CONCURRENCY: usize = 4;
/// How many due messages one pass reads.
const BATCH: i64 = 64;
/// The slow sweep that catches what no wake-up announced.
const SWEEP: Duration = Duration::from_secs(5);
/// The longest wait between two tries of one message.
const MAX_BACKOFF_SECONDS: i64 = 300;

/// The wait before the next try after `attempts` tries: 1, 2, 4 … seconds up to five minutes,
/// plus up to a quarter more at random so that many messages do not retry in step.
pub fn backoff_seconds(attempts: i64, random: u16) -> i64 {
    let exponent = attempts.clamp(1, 20) - 1;
    let base = (1_i64 << exponent).min(MAX_BACKOFF_SECONDS);
    let jitter = base / 4;
    if jitter == 0 {
        return base;
    }
    (base + i64::from(random) % (jitter + 1)).min(MAX_BACKOFF_SECONDS)
}

fn unix_now() -> UnixTime {
    crate::clock::now()
}

/// How long until the unix second `at` starts.
fn until(at: UnixTime) -> Duration {
    let target = UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or(0));
    target
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// What every channel task shares.
struct Context {
    store: Store,
    keys: Keys,
    metrics: Arc<Metrics>,
}

impl Context {
    fn count(&self, channel: &str, outcome: &str) {
        self.metrics.inc(
            "otpgate_deliveries_total",
            "Messages handed to a delivery channel, by channel and outcome (sent, retry, failed, expired).",
            &[("channel", channel), ("outcome", outcome)],
        );
    }
}

/// The delivery worker, built with the application and started with the server.
pub struct Worker {
    context: Arc<Context>,
    wakeup: Wakeup,
    sources: Vec<Arc<dyn ChannelSource>>,
}

/// A running worker.
pub struct RunningWorker {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Worker {
    /// A worker over the MAIL, SMS and BOT channels as stored in the settings.
    pub fn new(store: Store, keys: Keys, metrics: Arc<Metrics>, wakeup: Wakeup) -> Worker {
        let sources: Vec<Arc<dyn ChannelSource>> = vec![
            Arc::new(StoredChannel::new(
                mail::CHANNEL,
                store.clone(),
                keys.clone(),
                mail::build,
            )),
            Arc::new(StoredChannel::new(
                sms::CHANNEL,
                store.clone(),
                keys.clone(),
                sms::build,
            )),
            Arc::new(StoredChannel::new(
                bot::CHANNEL,
                store.clone(),
                keys.clone(),
                bot::build,
            )),
        ];
        Worker {
            context: Arc::new(Context {
                store,
                keys,
                metrics,
            }),
            wakeup,
            sources,
        }
    }

    /// Starts one task per channel on the current runtime.
    pub fn start(self) -> RunningWorker {
        let (stop, stopped) = watch::channel(false);
        let tasks = self
            .sources
            .into_iter()
            .map(|source| {
                let task = ChannelTask {
                    context: self.context.clone(),
                    notify: self.wakeup.register(),
                    source,
                    in_flight: Arc::new(Mutex::new(Sends::default())),
                    permits: Arc::new(Semaphore::new(CONCURRENCY)),
                };
                tokio::spawn(task.run(stopped.clone()))
            })
            .collect();
        RunningWorker { stop, tasks }
    }
}

impl RunningWorker {
    /// Starts no new send, lets the sends in flight finish (and be recorded), and returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

struct ChannelTask {
    context: Arc<Context>,
    notify: Arc<Notify>,
    source: Arc<dyn ChannelSource>,
    in_flight: Arc<Mutex<Sends>>,
    permits: Arc<Semaphore>,
}

/// The messages of one channel being sent, and those whose send finished since the current
/// pass began. A pass reads the due messages from a snapshot that may predate a send's
/// record: a message whose send finished meanwhile still looks queued there, and must not be
/// sent again. So finished ids stay known until the next pass begins, whose read then sees
/// their new status.
#[derive(Default)]
struct Sends {
    running: HashSet<i64>,
    finished: HashSet<i64>,
}

/// What one pass over the outbox found.
struct Pass {
    /// The pass read a full batch: there may be more due right now.
    full: bool,
    /// When the next message that is not due yet becomes due.
    next_due: Option<UnixTime>,
}

impl ChannelTask {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut sends = JoinSet::new();
        let name = self.source.name();
        loop {
            if *stopped.borrow() {
                break;
            }
            let wait = match self.pass(&mut sends, &mut stopped).await {
                Ok(Pass { full: true, .. }) => Duration::ZERO,
                Ok(Pass { next_due, .. }) => next_due.map(until).unwrap_or(SWEEP).min(SWEEP),
                Err(e) => {
                    tracing::warn!(channel = name, error = %e, "cannot read the outbox");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                // Reap finished sends without waiting.
                while sends.try_join_next().is_some() {}
                continue;
            }
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => {}
                Some(_) = sends.join_next() => {}
            }
        }
        // No new sends; the ones in flight finish and are recorded.
        while sends.join_next().await.is_some() {}
    }

    /// Whether the message is being sent, or was sent since this pass began.
    fn is_in_flight(&self, id: i64) -> bool {
        self.in_flight
            .lock()
            .map(|sends| sends.running.contains(&id) || sends.finished.contains(&id))
            .unwrap_or(true)
    }

    async fn pass(
        &self,
        sends: &mut JoinSet<()>,
        stopped: &mut watch::Receiver<bool>,
    ) -> Result<Pass, crate::store::StoreError> {
        let name = self.source.name();
        let now = unix_now();
        // Sends that finished before this read are recorded, and the read will see it.
        if let Ok(mut sends) = self.in_flight.lock() {
            sends.finished.clear();
        }
        let (due, next_due) = self.context.store.due_messages(name, now, BATCH).await?;
        let full = due.len() as i64 == BATCH;
        let (expired, fresh): (Vec<DueMessage>, Vec<DueMessage>) = due
            .into_iter()
            .filter(|m| !self.is_in_flight(m.id))
            .partition(|m| m.expires_at.is_some_and(|at| at <= now));
        if !expired.is_empty() {
            let ids = expired.iter().map(|m| m.id).collect();
            let count = self.context.store.expire_messages(ids, now).await?;
            for _ in 0..count {
                self.context.count(name, "expired");
            }
        }
        if fresh.is_empty() {
            return Ok(Pass {
                full: full && !expired.is_empty(),
                next_due,
            });
        }
        let channel = self.source.current().await;
        let mut dispatched = 0;
        for message in fresh {
            let permit = tokio::select! {
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stopped.changed() => break,
            };
            if *stopped.borrow() {
                break;
            }
            if let Ok(mut sends) = self.in_flight.lock() {
                sends.running.insert(message.id);
            }
            dispatched += 1;
            let context = self.context.clone();
            let in_flight = self.in_flight.clone();
            let channel = channel.clone();
            sends.spawn(async move {
                let id = message.id;
                deliver(&context, channel, message).await;
                if let Ok(mut sends) = in_flight.lock() {
                    sends.running.remove(&id);
                    sends.finished.insert(id);
                }
                drop(permit);
            });
        }
        Ok(Pass {
            full: full && dispatched > 0,
            next_due,
        })
    }
}

/// Opens one message, hands it to its channel, and records the answer.
async fn deliver(
    context: &Context,
    channel: Result<Arc<dyn Channel>, SendError>,
    message: DueMessage,
) {
    let name = message.channel.clone();
    let buttons = match message.approval_id {
        None => Ok(Vec::new()),
        Some(id) => match context.store.approval(id).await {
            // Answered by a typed code, or expired, before its message left: nothing to ask.
            Ok(Some(approval))
                if approval.state_at(crate::clock::now())
                    != crate::store::approvals::ApprovalState::Pending =>
            {
                Err(SendError::Permanent(
                    "the approval is no longer pending".into(),
                ))
            }
            Ok(Some(approval)) => Ok(approval::keyboard(&approval)),
            Ok(None) => Err(SendError::Permanent("the approval is gone".into())),
            Err(e) => Err(SendError::Temporary(format!(
                "cannot read the approval: {e}"
            ))),
        },
    };
    let result = match (
        context.keys.open(Purpose::Message, &message.sealed_body),
        buttons,
    ) {
        (Err(_), _) => Err(SendError::Permanent(
            "the message cannot be unsealed (was the key file replaced?)".into(),
        )),
        (_, Err(e)) => Err(e),
        (Ok(body), Ok(buttons)) => match channel {
            Err(e) => Err(e),
            Ok(channel) => {
                let outgoing = Outgoing {
                    id: message.id,
                    recipient: message.recipient.clone(),
                    subject: message.subject.clone(),
                    text: String::from_utf8_lossy(&body).into_owned(),
                    token_id: message.token_id,
                    buttons,
                };
                channel.send(&outgoing).await
            }
        },
    };
    // The approval's message is edited after the decision: remember which one it is.
    if let (Some(id), Ok(accepted)) = (message.approval_id, &result)
        && let Some(message_id) = bot::sent_message_id(accepted)
        && let Err(e) = context.store.set_approval_message(id, message_id).await
    {
        tracing::warn!(error = %e, "cannot record an approval's message");
    }
    let now = unix_now();
    let (outcome, label) = match result {
        Ok(_) => (Outcome::Sent, "sent"),
        Err(SendError::Temporary(error)) => {
            let random = crypto::random_bytes::<2>()
                .map(u16::from_le_bytes)
                .unwrap_or(0);
            let next_attempt_at = now + backoff_seconds(message.attempts + 1, random);
            (
                Outcome::Retry {
                    next_attempt_at,
                    error,
                },
                "retry",
            )
        }
        Err(SendError::Permanent(error)) => (Outcome::Failed { error }, "failed"),
        Err(SendError::Unreachable(error)) => (Outcome::Unreachable { error }, "failed"),
    };
    if let Outcome::Retry { error, .. } | Outcome::Failed { error } = &outcome {
        tracing::info!(channel = %name, outbox_id = message.id, attempts = message.attempts + 1, error = %error, "a message was not delivered");
    }
    match context
        .store
        .record_delivery(message.id, outcome, now)
        .await
    {
        Ok(true) => context.count(&name, label),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(channel = %name, outbox_id = message.id, error = %e, "cannot record a delivery")
        }
    }
}

/// Sends one test message through a channel built from the current settings, outside the
/// outbox: for the settings' test endpoint and console command.
pub async fn send_test(
    store: &Store,
    keys: &Keys,
    channel: &'static str,
    to: String,
) -> Result<Accepted, SendError> {
    let build = match channel {
        mail::CHANNEL => mail::build,
        sms::CHANNEL => sms::build,
        bot::CHANNEL => bot::build,
        other => return Err(SendError::Permanent(format!("no channel {other}"))),
    };
    let source = StoredChannel::new(channel, store.clone(), keys.clone(), build);
    let sender = source.current().await?;
    let message = Outgoing {
        id: 0,
        recipient: to,
        subject: "otpgate test message".into(),
        text: "This is a test message from otpgate. Your one-time passwords will arrive like this."
            .into(),
        token_id: None,
        buttons: Vec::new(),
    };
    sender.send(&message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_one_second_up_to_five_minutes() {
        assert_eq!(backoff_seconds(1, 0), 1);
        assert_eq!(backoff_seconds(2, 0), 2);
        assert_eq!(backoff_seconds(3, 0), 4);
        assert_eq!(backoff_seconds(9, 0), 256);
        assert_eq!(backoff_seconds(10, 0), 300);
        assert_eq!(backoff_seconds(40, u16::MAX), 300);
    }

    #[test]
    fn the_jitter_adds_at_most_a_quarter() {
        for random in 0..1000 {
            let wait = backoff_seconds(5, random);
            assert!((16..=20).contains(&wait), "{wait}");
        }
    }
}
