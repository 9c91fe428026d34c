//! A real HTTP server on loopback that plays Telegram's Bot API for the bot tests: it answers
//! the methods teloxide calls (`getMe`, `getWebhookInfo`, `getUpdates` with long polling,
//! `sendMessage`, `answerCallbackQuery`, `editMessageText`) in the Bot API's shapes, lets a test
//! queue updates as if users wrote to the bot or pressed a button under its message, records
//! what the bot sent, answered and edited, and refuses messages to chats whose user blocked the
//! bot. Like Telegram, `getUpdates` hands out only the kinds of update its `allowed_updates`
//! names (all when absent) and drops the others.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const USERNAME: &str = "otpgate_test_bot";

/// One message the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub token: String,
    pub chat_id: i64,
    pub text: String,
    /// The `reply_markup` it carried (null when none).
    pub reply_markup: Value,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    /// Every call: the bot token in the path and the method, lower-cased.
    calls: Vec<(String, String)>,
    /// Updates not yet confirmed by an offset.
    updates: Vec<Value>,
    next_update_id: i64,
    sent: Vec<Sent>,
    blocked: HashSet<i64>,
    next_message_id: i64,
    /// `answerCallbackQuery` calls: the query's id and the text shown.
    answered: Vec<(String, String)>,
    /// `editMessageText` calls: chat, message and the new text.
    edited: Vec<Edited>,
    /// `answerCallbackQuery` calls are kept waiting (as a slow Telegram would) while set.
    holding_answers: bool,
    /// How many `answerCallbackQuery` calls wait now.
    answers_waiting: usize,
}

/// One message the bot edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
}

/// The kind of an update, as `allowed_updates` names it.
fn update_kind(update: &Value) -> &'static str {
    if update.get("callback_query").is_some() {
        "callback_query"
    } else {
        "message"
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    news: Notify,
}

pub struct TelegramApi {
    /// The base URL to configure as the Bot API URL (it has a path prefix, as a self-hosted
    /// Bot API server behind a proxy may).
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn ok(result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true, "result": result}))
}

fn bot_user(token: &str) -> Value {
    let id: i64 = token
        .split(':')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(1);
    json!({
        "id": id,
        "is_bot": true,
        "first_name": "otpgate test",
        "username": USERNAME,
        "can_join_groups": false,
        "can_read_all_group_messages": false,
        "supports_inline_queries": false,
        "has_main_web_app": false,
    })
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    // /<prefix>/bot<TOKEN>/<Method>
    let segments: Vec<&str> = request.path().split('/').collect();
    let Some(position) = segments.iter().position(|s| s.starts_with("bot")) else {
        return HttpResponse::NotFound()
            .json(json!({"ok": false, "error_code": 404, "description": "Not Found"}));
    };
    let token = segments[position].trim_start_matches("bot").to_string();
    let method = segments
        .get(position + 1)
        .map(|m| m.to_ascii_lowercase())
        .unwrap_or_default();
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared
        .state
        .lock()
        .expect("lock")
        .calls
        .push((token.clone(), method.clone()));
    match method.as_str() {
        "getme" => ok(bot_user(&token)),
        "getwebhookinfo" => {
            ok(json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0}))
        }
        "deletewebhook" => ok(json!(true)),
        "getupdates" => {
            let offset = params["offset"].as_i64().unwrap_or(0);
            let allowed: Option<Vec<String>> = params["allowed_updates"].as_array().map(|kinds| {
                kinds
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            });
            let timeout = params["timeout"].as_u64().unwrap_or(0).min(5);
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                let notified = shared.news.notified();
                {
                    let mut state = shared.state.lock().expect("lock");
                    state.updates.retain(|u| {
                        u["update_id"].as_i64().unwrap_or(0) >= offset
                            && allowed
                                .as_ref()
                                .is_none_or(|kinds| kinds.iter().any(|kind| kind == update_kind(u)))
                    });
                    if !state.updates.is_empty() {
                        return ok(Value::Array(state.updates.clone()));
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return ok(json!([]));
                }
                let _ = tokio::time::timeout(left, notified).await;
            }
        }
        "sendmessage" => {
            let chat_id = params["chat_id"]
                .as_i64()
                .or_else(|| params["chat_id"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            let text = params["text"].as_str().unwrap_or_default().to_string();
            let mut state = shared.state.lock().expect("lock");
            if state.blocked.contains(&chat_id) {
                return HttpResponse::Forbidden().json(json!({
                    "ok": false,
                    "error_code": 403,
                    "description": "Forbidden: bot was blocked by the user"
                }));
            }
            state.next_message_id += 1;
            let message_id = state.next_message_id;
            state.sent.push(Sent {
                token: token.clone(),
                chat_id,
                text: text.clone(),
                reply_markup: params["reply_markup"].clone(),
                at: Instant::now(),
            });
            ok(json!({
                "message_id": message_id,
                "date": unix_now(),
                "chat": {"id": chat_id, "type": "private", "first_name": "A"},
                "from": bot_user(&token),
                "text": text,
            }))
        }
        "answercallbackquery" => {
            let id = params["callback_query_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let text = params["text"].as_str().unwrap_or_default().to_string();
            shared.state.lock().expect("lock").answers_waiting += 1;
            loop {
                let notified = shared.news.notified();
                if !shared.state.lock().expect("lock").holding_answers {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
            let mut state = shared.state.lock().expect("lock");
            state.answers_waiting -= 1;
            state.answered.push((id, text));
            ok(json!(true))
        }
        "editmessagetext" => {
            let chat_id = params["chat_id"]
                .as_i64()
                .or_else(|| params["chat_id"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            let message_id = params["message_id"].as_i64().unwrap_or(0);
            let text = params["text"].as_str().unwrap_or_default().to_string();
            shared.state.lock().expect("lock").edited.push(Edited {
                chat_id,
                message_id,
                text: text.clone(),
            });
            ok(json!({
                "message_id": message_id,
                "date": unix_now(),
                "chat": {"id": chat_id, "type": "private", "first_name": "A"},
                "from": bot_user(&token),
                "text": text,
            }))
        }
        _ => ok(json!(true)),
    }
}

impl TelegramApi {
    pub async fn start() -> TelegramApi {
        let shared = web::Data::new(Shared::default());
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        TelegramApi {
            url: format!("http://127.0.0.1:{port}/tg"),
            shared: shared.into_inner(),
            handle,
        }
    }

    /// Queues a text message as if the user `user` wrote it to the bot in a private chat.
    pub fn user_writes(&self, chat_id: i64, user: i64, text: &str) {
        self.queue(chat_id, user, "private", text);
    }

    /// Queues a text message written in a group the bot is in.
    pub fn group_writes(&self, chat_id: i64, user: i64, text: &str) {
        self.queue(chat_id, user, "group", text);
    }

    fn queue(&self, chat_id: i64, user: i64, kind: &str, text: &str) {
        let mut state = self.shared.state.lock().expect("lock");
        state.next_update_id += 1;
        let id = state.next_update_id;
        let chat = if kind == "private" {
            json!({"id": chat_id, "type": "private", "first_name": "A"})
        } else {
            json!({"id": chat_id, "type": kind, "title": "Team"})
        };
        state.updates.push(json!({
            "update_id": id,
            "message": {
                "message_id": 1000 + id,
                "date": unix_now(),
                "chat": chat,
                "from": {"id": user, "is_bot": false, "first_name": "A"},
                "text": text,
            }
        }));
        drop(state);
        self.shared.news.notify_waiters();
    }

    /// Queues a `callback_query` update as if the Telegram user `user` pressed the button with
    /// `data` under the bot's message `message_id` in the private chat `chat_id`; answers the
    /// query's id.
    pub fn user_presses(&self, chat_id: i64, user: i64, message_id: i64, data: &str) -> String {
        let mut state = self.shared.state.lock().expect("lock");
        state.next_update_id += 1;
        let id = state.next_update_id;
        let query_id = format!("query-{id}");
        state.updates.push(json!({
            "update_id": id,
            "callback_query": {
                "id": query_id,
                "from": {"id": user, "is_bot": false, "first_name": "B"},
                "message": {
                    "message_id": message_id,
                    "date": unix_now(),
                    "chat": {"id": chat_id, "type": "private", "first_name": "A"},
                    "from": bot_user("1:x"),
                    "text": "Sign in?",
                },
                "chat_instance": format!("instance-{chat_id}"),
                "data": data,
            }
        }));
        drop(state);
        self.shared.news.notify_waiters();
        query_id
    }

    /// The text `answerCallbackQuery` showed for the query `query_id`, waited for until it came
    /// (or `limit` passed).
    pub async fn wait_for_answer(&self, query_id: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let answer = self
                .shared
                .state
                .lock()
                .expect("lock")
                .answered
                .iter()
                .find(|(id, _)| id == query_id)
                .map(|(_, text)| text.clone());
            if answer.is_some() || Instant::now() > deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The `editMessageText` calls, waited for until there are `count` (or `limit` passed).
    pub async fn wait_for_edits(&self, count: usize, limit: Duration) -> Vec<Edited> {
        let deadline = Instant::now() + limit;
        loop {
            let edited = self.edited();
            if edited.len() >= count || Instant::now() > deadline {
                return edited;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Every `editMessageText` so far.
    pub fn edited(&self) -> Vec<Edited> {
        self.shared.state.lock().expect("lock").edited.clone()
    }

    /// The user of `chat_id` blocks the bot: sending there fails with Telegram's 403.
    pub fn block(&self, chat_id: i64) {
        self.shared
            .state
            .lock()
            .expect("lock")
            .blocked
            .insert(chat_id);
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.shared.state.lock().expect("lock").sent.clone()
    }

    /// How many messages were sent so far, without copying them.
    pub fn sent_count(&self) -> usize {
        self.shared.state.lock().expect("lock").sent.len()
    }

    /// The messages sent to `chat_id`, waited for until there are `count` (or `limit` passed).
    pub async fn wait_for_messages(
        &self,
        chat_id: i64,
        count: usize,
        limit: Duration,
    ) -> Vec<Sent> {
        let deadline = Instant::now() + limit;
        loop {
            let sent: Vec<Sent> = self
                .sent()
                .into_iter()
                .filter(|s| s.chat_id == chat_id)
                .collect();
            if sent.len() >= count || Instant::now() > deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Every call made with the bot token `token`, as lower-cased method names.
    pub fn calls_with(&self, token: &str) -> Vec<String> {
        self.shared
            .state
            .lock()
            .expect("lock")
            .calls
            .iter()
            .filter(|(t, _)| t == token)
            .map(|(_, method)| method.clone())
            .collect()
    }

    /// Keeps every `answerCallbackQuery` waiting from now on, as a slow Telegram would, until
    /// [`TelegramApi::release_answers`].
    pub fn hold_answers(&self) {
        self.shared.state.lock().expect("lock").holding_answers = true;
    }

    /// Lets the `answerCallbackQuery` calls held by [`TelegramApi::hold_answers`] through.
    pub fn release_answers(&self) {
        self.shared.state.lock().expect("lock").holding_answers = false;
        self.shared.news.notify_waiters();
    }

    /// How many `answerCallbackQuery` calls wait now, waited for until there are `count` (or
    /// `limit` passed).
    pub async fn wait_for_answers_waiting(&self, count: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let waiting = self.shared.state.lock().expect("lock").answers_waiting;
            if waiting >= count || Instant::now() > deadline {
                return waiting;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Updates not confirmed yet by the bot.
    pub fn unconfirmed(&self) -> usize {
        self.shared.state.lock().expect("lock").updates.len()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
