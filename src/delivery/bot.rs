//! The BOT channel: otpgate's own Telegram bot, through the Bot API client of teloxide.
//!
//! - **Sending** ([`BotChannel`]) is one `sendMessage` to the chat bound to the token. Telegram
//!   refusing because the user blocked the bot, left, or the chat is gone makes the message
//!   [`SendError::Unreachable`]: the outbox marks it failed and the token *needs re-activation*.
//! - **Listening** ([`Telegram`]) is long polling (`getUpdates`): the appliance needs only
//!   outbound HTTPS and no public webhook. The bot answers `/start CODE` in a private chat by
//!   binding that chat to the BOT token whose one-time activation code it is, and anything
//!   else with a short help. The update offset is stored, so a restart neither loses nor
//!   replays an update. Saving the bot's settings restarts the listener without restarting
//!   otpgate ([`Telegram::reload`]).
//! - **Approvals** (Approve in Telegram): the listener answers the buttons of approvals
//!   (`callback_query`): `store::approvals` decides, checking the chat's Telegram user and the
//!   state there; `approval` holds the buttons, their data and the bot's words; the approval's
//!   waiters are woken. Beside the long poll it expires unanswered approvals every second (a
//!   read, then a write only when one is due) and edits their messages. An outbox message with
//!   an `approval_id` is sent with the approval's buttons, and the sent message's id is kept
//!   for that edit. The listener also reports the bot's status.
//! - **Activation codes** are random, URL-safe, 32 characters, valid 10 minutes, stored only as
//!   a hash; the link `https://t.me/<bot>?start=<code>` opens the chat with the code filled in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use teloxide_core::ApiError;
use teloxide_core::RequestError;
use teloxide_core::payloads::GetUpdatesSetters;
use teloxide_core::payloads::{AnswerCallbackQuerySetters, SendMessageSetters};
use teloxide_core::requests::Requester;
use teloxide_core::types::{
    AllowedUpdate, CallbackQuery, ChatId, InlineKeyboardButton, InlineKeyboardMarkup, Message,
    UpdateKind,
};
use tokio::sync::{Notify, Semaphore, watch};

use super::approval;
use super::{Accepted, Channel, Outgoing, SendError, SendFuture, open_secret};
use crate::crypto::{self, Keys};
use crate::domain::{FieldError, words};
use crate::store::Store;
use crate::store::approvals::{Decision, Presser};
use crate::store::bot::Chat;
use crate::store::delivery_settings::ChannelSettings;
use crate::waiters::Waiters;

/// The outbox's name of this channel.
pub const CHANNEL: &str = "bot";
/// The name of the sealed bot token.
pub const TOKEN: &str = "token";
/// The messenger of BOT tokens this channel serves.
pub const MESSENGER: &str = "telegram";
/// Telegram's Bot API.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// How long an activation code works.
pub const ACTIVATION_SECONDS: i64 = 10 * 60;

/// The stored settings of the bot (its token is kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotSettings {
    /// The Bot API's base URL: Telegram's, or a self-hosted Bot API server.
    pub api_url: String,
    /// Seconds one `getUpdates` long poll waits for news (1–50).
    pub poll_timeout_seconds: u64,
    /// Seconds one message may take to send (1–120).
    pub timeout_seconds: u64,
}

impl Default for BotSettings {
    fn default() -> Self {
        BotSettings {
            api_url: DEFAULT_API_URL.into(),
            poll_timeout_seconds: 25,
            timeout_seconds: 10,
        }
    }
}

impl BotSettings {
    /// The stored settings, or the defaults when none were saved.
    pub fn from_stored(settings: &ChannelSettings) -> BotSettings {
        settings
            .plain
            .as_deref()
            .and_then(|plain| serde_json::from_str(plain).ok())
            .unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        let url = reqwest::Url::parse(&self.api_url).map_err(|_| FieldError {
            field: "api_url",
            message: "api_url must be an http or https URL".into(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(FieldError {
                field: "api_url",
                message: "api_url must be an http or https URL".into(),
            });
        }
        if !(1..=50).contains(&self.poll_timeout_seconds) {
            return Err(FieldError {
                field: "poll_timeout_seconds",
                message: "poll_timeout_seconds must be between 1 and 50".into(),
            });
        }
        if !(1..=120).contains(&self.timeout_seconds) {
            return Err(FieldError {
                field: "timeout_seconds",
                message: "timeout_seconds must be between 1 and 120".into(),
            });
        }
        Ok(())
    }

    fn url(&self) -> Option<reqwest::Url> {
        // teloxide appends `bot<token>/<method>` as path segments after the base's own.
        reqwest::Url::parse(self.api_url.trim_end_matches('/')).ok()
    }
}

/// Whether a bot token looks like one (`123456:ABC-…`): digits, a colon, then URL-safe text.
pub fn valid_token(token: &str) -> bool {
    let Some((id, secret)) = token.split_once(':') else {
        return false;
    };
    !id.is_empty()
        && id.len() <= 20
        && id.bytes().all(|b| b.is_ascii_digit())
        && !secret.is_empty()
        && secret.len() <= 100
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn client(timeout: Duration) -> Result<reqwest::Client, SendError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .build()
        .map_err(|e| SendError::Temporary(format!("cannot build an HTTP client: {e}")))
}

fn make_bot(
    token: &str,
    url: reqwest::Url,
    timeout: Duration,
) -> Result<teloxide_core::Bot, SendError> {
    Ok(teloxide_core::Bot::with_client(token, client(timeout)?).set_api_url(url))
}

/// The bot token from the stored settings, or why there is none.
fn stored_token(settings: &ChannelSettings, keys: &Keys) -> Result<String, SendError> {
    open_secret(settings, keys, TOKEN)?
        .filter(|token| !token.is_empty())
        .ok_or_else(|| SendError::Temporary("the Telegram bot is not set up (no bot token)".into()))
}

/// Sorts a Bot API failure: the recipient gone for good, this message refused, or try again.
pub fn classify(error: RequestError) -> SendError {
    match error {
        RequestError::Api(
            api @ (ApiError::BotBlocked
            | ApiError::ChatNotFound
            | ApiError::UserDeactivated
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots),
        ) => SendError::Unreachable(format!("Telegram: {api}")),
        RequestError::Api(api @ ApiError::InvalidToken) => {
            SendError::Temporary(format!("Telegram refused the bot token: {api}"))
        }
        RequestError::Api(ApiError::Unknown(text)) if is_unreachable_text(&text) => {
            SendError::Unreachable(format!("Telegram: {text}"))
        }
        RequestError::Api(api) => SendError::Permanent(format!("Telegram: {api}")),
        RequestError::RetryAfter(seconds) => {
            SendError::Temporary(format!("Telegram asks to wait {} s", seconds.seconds()))
        }
        RequestError::MigrateToChatId(_) => {
            SendError::Permanent("Telegram: the chat moved to a supergroup".into())
        }
        RequestError::Network(e) => {
            SendError::Temporary(format!("cannot reach the Bot API: {}", without_url(&e)))
        }
        RequestError::InvalidJson { .. } => {
            SendError::Temporary("the Bot API answered something that is not its JSON".into())
        }
        RequestError::Io(e) => SendError::Temporary(format!("I/O error: {e}")),
    }
}

/// Texts Telegram uses for recipients that cannot be reached, beyond those teloxide names.
fn is_unreachable_text(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("bot was blocked")
        || text.contains("user is deactivated")
        || text.contains("chat not found")
        || text.contains("bot was kicked")
}

/// A network error's text without its URL: the URL carries the bot token.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "the Bot API");
    }
    // teloxide may hand over an error whose URL was stripped; never print a token anyway.
    redact_token(&text)
}

/// Replaces anything shaped like `bot<digits>:<secret>` in a text.
fn redact_token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("/bot") {
        out.push_str(&rest[..at + 4]);
        let after = &rest[at + 4..];
        let end = after
            .find(|c: char| c == '/' || c.is_whitespace() || c == ')' || c == '"')
            .unwrap_or(after.len());
        if after[..end].contains(':') {
            out.push_str("<token>");
        } else {
            out.push_str(&after[..end]);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Sends one-time passwords to the chats bound to BOT tokens.
pub struct BotChannel {
    bot: teloxide_core::Bot,
}

impl Channel for BotChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let chat: i64 = message.recipient.parse().map_err(|_| {
                SendError::Unreachable("the token is not bound to a Telegram chat".into())
            })?;
            let mut request = self.bot.send_message(ChatId(chat), message.text.clone());
            if !message.buttons.is_empty() {
                let rows = message.buttons.iter().map(|row| {
                    row.iter()
                        .map(|b| InlineKeyboardButton::callback(b.text.clone(), b.data.clone()))
                        .collect::<Vec<_>>()
                });
                request = request.reply_markup(InlineKeyboardMarkup::new(rows));
            }
            let sent = request.await.map_err(classify)?;
            Ok(Accepted(format!("{SENT_PREFIX}{}", sent.id.0)))
        })
    }
}

const SENT_PREFIX: &str = "Telegram message ";

/// The id of the Telegram message the BOT channel reported sending.
pub fn sent_message_id(accepted: &Accepted) -> Option<i64> {
    accepted.0.strip_prefix(SENT_PREFIX)?.parse().ok()
}

/// Builds the BOT channel from the stored settings.
pub fn build(settings: &ChannelSettings, keys: &Keys) -> Result<Arc<dyn Channel>, SendError> {
    let bot_settings = BotSettings::from_stored(settings);
    let token = stored_token(settings, keys)?;
    let url = bot_settings
        .url()
        .ok_or_else(|| SendError::Temporary("the Bot API URL is invalid".into()))?;
    let bot = make_bot(
        &token,
        url,
        Duration::from_secs(bot_settings.timeout_seconds),
    )?;
    Ok(Arc::new(BotChannel { bot }))
}

/// A fresh activation code and the hash the store keeps of it.
pub fn new_activation_code() -> Result<(String, Vec<u8>), crypto::CryptoError> {
    let code = crypto::random_token::<24>()?;
    let hash = activation_hash(&code);
    Ok((code, hash))
}

pub fn activation_hash(code: &str) -> Vec<u8> {
    crypto::sha256(code.as_bytes())
}

/// The link that opens the bot's chat with the code: `https://t.me/<bot>?start=<code>`.
pub fn deep_link(username: &str, code: &str) -> String {
    format!("https://t.me/{username}?start={code}")
}

/// The bot's state, for the settings and the status endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BotState {
    /// No bot token is set.
    NotConfigured,
    /// Starting: asking Telegram who the bot is.
    Starting,
    /// Listening for messages.
    Running,
    /// Telegram cannot be reached or refuses the token; retrying.
    Failing,
    /// otpgate is stopping.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BotStatus {
    pub state: BotState,
    /// The bot's username as Telegram reports it (`getMe`), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The last error, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BotStatus {
    fn new(state: BotState) -> BotStatus {
        BotStatus {
            state,
            username: None,
            error: None,
        }
    }
}

/// The bot's listener: one long-polling loop, restarted when its settings change.
pub struct Telegram {
    store: Store,
    keys: Keys,
    status: Mutex<BotStatus>,
    reload: Notify,
    /// The logins waiting for approvals: woken when a press decides one or it expires.
    waiters: Waiters,
}

/// What the bot answers.
const HELP: &str = "Hello! I deliver one-time passwords from otpgate.\n\nTo connect this chat to your token, open the activation link or scan the QR code shown when the token was enrolled. Your codes will then arrive here.";
const REFUSED: &str = "Sorry, this activation code is unknown, has expired or was already used. Ask for a new activation link and open it again.";
const GROUPS: &str = "I only work in a private chat. Open the activation link on your own phone.";

/// How many expired approvals one round edits at most (the rest wait for the next round).
const EXPIRED_PER_ROUND: i64 = 50;

/// How often the bot looks for approvals that expired unanswered.
const EXPIRY_ROUND: Duration = Duration::from_secs(1);

/// What Telegram is told after a press: the toast that answers the query, and the message's
/// new text when the press decided something.
struct Told {
    query: teloxide_core::types::CallbackQueryId,
    toast: &'static str,
    edit: Option<(String, (ChatId, teloxide_core::types::MessageId))>,
}

impl Told {
    /// Answers the query (Telegram is always answered), then edits the message.
    async fn tell(self, bot: &teloxide_core::Bot) {
        if let Err(e) = bot.answer_callback_query(self.query).text(self.toast).await {
            tracing::info!(error = %classify(e), "cannot answer a pressed button");
        }
        if let Some((text, (chat, message_id))) = self.edit
            && let Err(e) = bot.edit_message_text(chat, message_id, text).await
        {
            tracing::info!(error = %classify(e), "cannot edit an approval's message");
        }
    }
}

/// The longest wait between two tries to reach Telegram.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// How many pressed buttons are being answered in Telegram at once (the toast, then the
/// message's new text). The decisions themselves never wait for Telegram: a slow answer to one
/// press holds up no other sign-in; past this bound, reading further updates waits.
const ANSWERS_IN_FLIGHT: usize = 32;

impl Telegram {
    pub fn new(store: Store, keys: Keys, waiters: Waiters) -> Arc<Telegram> {
        Arc::new(Telegram {
            store,
            keys,
            status: Mutex::new(BotStatus::new(BotState::Starting)),
            reload: Notify::new(),
            waiters,
        })
    }

    pub fn status(&self) -> BotStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| BotStatus::new(BotState::Failing))
    }

    /// The bot's username, once Telegram told it.
    pub fn username(&self) -> Option<String> {
        self.status().username
    }

    fn set_status(&self, status: BotStatus) {
        if let Ok(mut current) = self.status.lock() {
            *current = status;
        }
    }

    /// Restarts the listener with the stored settings (after they were saved).
    pub fn reload(&self) {
        self.reload.notify_one();
    }

    /// Listens until `stopped` turns true.
    pub async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        loop {
            if *stopped.borrow() {
                break;
            }
            tokio::select! {
                _ = self.listen_once() => {}
                _ = self.reload.notified() => {
                    tracing::info!("the Telegram bot's settings changed: restarting it");
                }
                _ = stopped.changed() => {}
            }
        }
        self.set_status(BotStatus::new(BotState::Stopped));
    }

    /// One life of the bot with the current settings: returns only when they cannot be read
    /// (the caller retries after a reload) — otherwise it polls until cancelled.
    async fn listen_once(&self) {
        let stored = match self.store.channel_settings(CHANNEL).await {
            Ok(stored) => stored,
            Err(e) => {
                self.fail(None, format!("cannot read the bot settings: {e}"));
                tokio::time::sleep(Duration::from_secs(5)).await;
                return;
            }
        };
        let token = match stored_token(&stored, &self.keys) {
            Ok(token) => token,
            Err(_) => {
                self.set_status(BotStatus::new(BotState::NotConfigured));
                std::future::pending::<()>().await;
                return;
            }
        };
        let settings = BotSettings::from_stored(&stored);
        let Some(url) = settings.url() else {
            self.fail(None, "the Bot API URL is invalid".into());
            std::future::pending::<()>().await;
            return;
        };
        let poll = Duration::from_secs(settings.poll_timeout_seconds);
        let bot = match make_bot(&token, url, poll + Duration::from_secs(10)) {
            Ok(bot) => bot,
            Err(e) => {
                self.fail(None, e.to_string());
                std::future::pending::<()>().await;
                return;
            }
        };
        let mut retry = Duration::from_secs(1);
        self.set_status(BotStatus::new(BotState::Starting));
        let me = loop {
            match bot.get_me().await {
                Ok(me) => break me,
                Err(e) => {
                    self.fail(None, classify(e).to_string());
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        };
        let username = me.username.clone();
        let bot_id = me.id.0;
        tracing::info!(
            bot = username.as_deref().unwrap_or(""),
            "the Telegram bot is listening"
        );
        self.set_status(BotStatus {
            state: BotState::Running,
            username: username.clone(),
            error: None,
        });
        tokio::select! {
            _ = self.poll(&bot, username, bot_id, poll) => {}
            _ = self.expire_rounds(&bot) => {}
        }
    }

    /// Expires the approvals left unanswered, every `EXPIRY_ROUND`, whether or not updates
    /// arrive: a read finds whether any is due, and only then a write marks them.
    async fn expire_rounds(&self, bot: &teloxide_core::Bot) {
        let mut interval = tokio::time::interval(EXPIRY_ROUND);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match self.store.approvals_due(crate::clock::now()).await {
                Ok(true) => self.expire_approvals(bot).await,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot look for expired approvals"),
            }
        }
    }

    /// Long-polls for updates and answers them, until cancelled.
    async fn poll(
        &self,
        bot: &teloxide_core::Bot,
        username: Option<String>,
        bot_id: u64,
        poll: Duration,
    ) {
        let mut offset = match self.store.bot_offset(bot_id).await {
            Ok(offset) => offset,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the bot's update offset");
                0
            }
        };
        let mut retry = Duration::from_secs(1);
        let answering = Arc::new(Semaphore::new(ANSWERS_IN_FLIGHT));
        loop {
            let request = bot
                .get_updates()
                .offset(i32::try_from(offset).unwrap_or(0))
                .timeout(u32::try_from(poll.as_secs()).unwrap_or(25))
                .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
            match request.await {
                Ok(updates) => {
                    retry = Duration::from_secs(1);
                    if self.status().state != BotState::Running {
                        self.set_status(BotStatus {
                            state: BotState::Running,
                            username: username.clone(),
                            error: None,
                        });
                    }
                    let mut next = offset;
                    for update in updates {
                        next = next.max(i64::from(update.id.0) + 1);
                        match update.kind {
                            UpdateKind::Message(message) => self.handle(bot, &message).await,
                            UpdateKind::CallbackQuery(query) => {
                                let told = self.press(&query).await;
                                // Never closed: the semaphore lives as long as this loop.
                                if let Ok(permit) = answering.clone().acquire_owned().await {
                                    let bot = bot.clone();
                                    tokio::spawn(async move {
                                        told.tell(&bot).await;
                                        drop(permit);
                                    });
                                }
                            }
                            _ => {}
                        }
                    }
                    if next != offset {
                        offset = next;
                        if let Err(e) = self
                            .store
                            .set_bot_offset(bot_id, offset, crate::clock::now())
                            .await
                        {
                            tracing::warn!(error = %e, "cannot store the bot's update offset");
                        }
                    }
                }
                Err(e) => {
                    self.fail(username.clone(), classify(e).to_string());
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    fn fail(&self, username: Option<String>, error: String) {
        tracing::warn!(error = %error, "the Telegram bot cannot work");
        self.set_status(BotStatus {
            state: BotState::Failing,
            username,
            error: Some(error),
        });
    }

    /// Answers one message: an activation, or help.
    async fn handle(&self, bot: &teloxide_core::Bot, message: &Message) {
        let chat = message.chat.id;
        let reply = if !message.chat.is_private() {
            GROUPS.to_string()
        } else {
            match (
                start_code(message.text().unwrap_or_default()),
                message.from.as_ref(),
            ) {
                (Some(code), Some(from)) => {
                    let chat = Chat {
                        chat_id: chat.0,
                        user_id: i64::try_from(from.id.0).unwrap_or(i64::MAX),
                        name: Some(chat_name(
                            &from.first_name,
                            from.last_name.as_deref(),
                            from.username.as_deref(),
                        )),
                    };
                    self.activate(code, chat).await
                }
                _ => HELP.to_string(),
            }
        };
        if let Err(e) = bot.send_message(chat, reply).await {
            tracing::info!(error = %classify(e), "cannot answer a Telegram message");
        }
    }

    /// Decides on a button pressed under an approval's message: the store decides (the chat,
    /// the Telegram user and the state are checked there, never taken from the button) and the
    /// sign-in waiting for it is woken; what Telegram is to be told comes back.
    async fn press(&self, query: &CallbackQuery) -> Told {
        let now = crate::clock::now();
        let message = query.message.as_ref().map(|m| (m.chat().id, m.id()));
        let pressed = query.data.as_deref().and_then(approval::parse_press);
        let (toast, edit) = match (pressed, message) {
            (Some((id, choice)), Some((chat, _))) => {
                let presser = Presser {
                    chat_id: chat.0,
                    telegram_user_id: i64::try_from(query.from.id.0).unwrap_or(i64::MAX),
                };
                match self.store.decide_approval(id, presser, choice, now).await {
                    Ok(decision) => {
                        if let Decision::Decided { approval, .. } | Decision::Expired(approval) =
                            &decision
                        {
                            self.waiters.wake(&approval.transaction_id);
                        }
                        approval::answer(&decision, now)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot decide an approval");
                        (approval::FAILED, None)
                    }
                }
            }
            _ => (approval::NOT_YOURS, None),
        };
        Told {
            query: query.id.clone(),
            toast,
            edit: edit.zip(message),
        }
    }

    /// Marks the approvals that expired unanswered, wakes the logins waiting for them, and
    /// says so in their messages.
    async fn expire_approvals(&self, bot: &teloxide_core::Bot) {
        let expired = match self
            .store
            .expire_approvals(crate::clock::now(), EXPIRED_PER_ROUND)
            .await
        {
            Ok(expired) => expired,
            Err(e) => {
                tracing::warn!(error = %e, "cannot expire approvals");
                return;
            }
        };
        for approval in &expired {
            self.waiters.wake(&approval.transaction_id);
        }
        for approval in expired {
            let Some(message_id) = approval.message_id.and_then(|id| i32::try_from(id).ok()) else {
                continue;
            };
            if let Err(e) = bot
                .edit_message_text(
                    ChatId(approval.chat_id),
                    teloxide_core::types::MessageId(message_id),
                    approval::EXPIRED,
                )
                .await
            {
                tracing::info!(error = %classify(e), "cannot edit an expired approval's message");
            }
        }
    }

    async fn activate(&self, code: &str, chat: Chat) -> String {
        if !plausible_code(code) {
            return REFUSED.into();
        }
        match self
            .store
            .activate_bot_token(activation_hash(code), chat, crate::clock::now())
            .await
        {
            Ok(Some(activated)) => format!(
                "Done: your token {} is active. Your one-time passwords will arrive in this chat.",
                words::token_label(&activated.token_name, &activated.token_serial)
            ),
            Ok(None) => REFUSED.into(),
            Err(e) => {
                tracing::error!(error = %e, "cannot activate a BOT token");
                "Sorry, something went wrong. Try the link again in a minute.".into()
            }
        }
    }
}

/// A Telegram user as the token's page names her: "Alice Smith (@alice)", "Alice".
fn chat_name(first: &str, last: Option<&str>, username: Option<&str>) -> String {
    let full = match last.map(str::trim).filter(|last| !last.is_empty()) {
        Some(last) => format!("{} {last}", first.trim()),
        None => first.trim().to_string(),
    };
    let name = match username.map(str::trim).filter(|name| !name.is_empty()) {
        Some(username) if full.is_empty() => format!("@{username}"),
        Some(username) => format!("{full} (@{username})"),
        None => full,
    };
    // A name shown on a page: one line, and not endless.
    name.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The code of `/start CODE` (also `/start@bot CODE`); None for other texts and a bare `/start`.
fn start_code(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    let command = words.next()?;
    let name = command.split('@').next()?;
    if name != "/start" {
        return None;
    }
    words.next()
}

/// Telegram passes at most 64 URL-safe characters as a start parameter.
fn plausible_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_is_named_by_the_users_names_and_user_name() {
        assert_eq!(
            chat_name("Alice", Some("Smith"), Some("alice")),
            "Alice Smith (@alice)"
        );
        assert_eq!(chat_name("Alice", None, None), "Alice");
        assert_eq!(chat_name("", None, Some("alice")), "@alice");
        assert_eq!(chat_name("A\nB", Some(" "), None), "AB");
    }

    #[test]
    fn the_start_command_carries_the_code() {
        assert_eq!(start_code("/start abc-DEF_1"), Some("abc-DEF_1"));
        assert_eq!(start_code("/start@otpgate_bot abc"), Some("abc"));
        assert_eq!(start_code("  /start   abc  "), Some("abc"));
        assert_eq!(start_code("/start"), None);
        assert_eq!(start_code("/help"), None);
        assert_eq!(start_code("hello /start abc"), None);
        assert_eq!(start_code(""), None);
    }

    #[test]
    fn only_url_safe_codes_of_at_most_64_characters_are_looked_up() {
        assert!(plausible_code("AbC-_09"));
        assert!(plausible_code(&"a".repeat(64)));
        assert!(!plausible_code(&"a".repeat(65)));
        assert!(!plausible_code("a b"));
        assert!(!plausible_code("é"));
        assert!(!plausible_code(""));
    }

    #[test]
    fn an_activation_code_is_url_safe_and_fits_a_start_parameter() {
        let (code, hash) = new_activation_code().expect("random");
        assert!(plausible_code(&code), "{code}");
        assert_eq!(hash, activation_hash(&code));
        let (other, _) = new_activation_code().expect("random");
        assert_ne!(code, other);
        assert_eq!(
            deep_link("otpgate_bot", &code),
            format!("https://t.me/otpgate_bot?start={code}")
        );
    }

    #[test]
    fn bot_tokens_are_recognised_by_their_shape() {
        assert!(valid_token("123456:ABC-def_ghi"));
        assert!(!valid_token("123456"));
        assert!(!valid_token(":abc"));
        assert!(!valid_token("12a:abc"));
        assert!(!valid_token("123:ab/c"));
        assert!(!valid_token("123:"));
    }

    #[test]
    fn a_bot_token_never_appears_in_an_error_text() {
        let text = "error sending request for url (http://127.0.0.1:9/bot123:SECRET/GetMe)";
        let redacted = redact_token(text);
        assert!(!redacted.contains("SECRET"), "{redacted}");
        assert!(redacted.contains("/bot<token>/GetMe"), "{redacted}");
        assert_eq!(
            redact_token("no token here /bots/x"),
            "no token here /bots/x"
        );
    }

    #[test]
    fn a_blocked_bot_makes_the_recipient_unreachable() {
        assert!(matches!(
            classify(RequestError::Api(ApiError::BotBlocked)),
            SendError::Unreachable(_)
        ));
        assert!(matches!(
            classify(RequestError::Api(ApiError::ChatNotFound)),
            SendError::Unreachable(_)
        ));
        assert!(matches!(
            classify(RequestError::Api(ApiError::InvalidToken)),
            SendError::Temporary(_)
        ));
        assert!(matches!(
            classify(RequestError::Api(ApiError::MessageTextIsEmpty)),
            SendError::Permanent(_)
        ));
    }

    #[test]
    fn settings_are_checked_before_they_are_stored() {
        assert!(BotSettings::default().validate().is_ok());
        let bad_url = BotSettings {
            api_url: "ftp://x".into(),
            ..BotSettings::default()
        };
        assert_eq!(bad_url.validate().map_err(|e| e.field), Err("api_url"));
        let bad_poll = BotSettings {
            poll_timeout_seconds: 0,
            ..BotSettings::default()
        };
        assert_eq!(
            bad_poll.validate().map_err(|e| e.field),
            Err("poll_timeout_seconds")
        );
    }

    #[test]
    fn a_path_prefix_of_the_api_url_is_kept() {
        let settings = BotSettings {
            api_url: "https://tg.example.com/proxy/".into(),
            ..BotSettings::default()
        };
        assert_eq!(
            settings.url().map(|u| u.to_string()),
            Some("https://tg.example.com/proxy".into())
        );
    }
}
