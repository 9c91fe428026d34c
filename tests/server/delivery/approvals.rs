//! Approve in Telegram, the bot's side, end to end against the fake Bot API: a press on a button
//! under an approval's message arrives as a `callback_query` in the bot's long polling, is
//! always answered (`answerCallbackQuery`), decides the approval once and only for the bound
//! chat's Telegram user, and the message then says what became of the sign-in
//! (`editMessageText`). The approvals are written into the database as a sign-in will write
//! them; the store's own tests cover how they are made.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::delivery::{Api, api_key};
use crate::helpers::telegram_api::{Edited, TelegramApi};

const WAIT: Duration = Duration::from_secs(20);
const BOT_TOKEN: &str = "123456:TEST-bot_token";
const CHAT: i64 = 4242;
const ALICE: i64 = 77;
const MESSAGE: i64 = 900;

struct Setup {
    app: TestApp,
    telegram: TelegramApi,
    api: Api,
    admin: String,
    token_id: i64,
}

fn database(app: &TestApp) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(app.data_dir.join(otpgate::store::DATABASE_FILE))
        .expect("open the database");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    conn
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The bot running against the fake Bot API, the resource `VPN` with `approvals`, and alice's
/// BOT token bound to the chat `CHAT` of the Telegram user `ALICE`.
async fn setup(approvals: Value) -> Setup {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let (status, body) = api
        .call(
            Method::PUT,
            "/settings/bot",
            &admin,
            json!({"token": BOT_TOKEN, "api_url": telegram.url, "poll_timeout_seconds": 1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (path, body) in [
        ("/resources", json!({"name": "VPN"})),
        ("/users", json!({"login": "alice"})),
    ] {
        let (status, answer) = api.call(Method::POST, path, &admin, body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, body) = api
        .call(
            Method::PATCH,
            "/resources/VPN",
            &admin,
            json!({ "approvals": approvals }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, created) = api
        .call(
            Method::POST,
            "/tokens",
            &admin,
            json!({"kind": "BOT", "name": "alice's phone", "user": "alice", "resource": "VPN"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token_id = created["id"].as_i64().expect("id");
    let code = created["activation"]["code"].as_str().expect("a code");
    telegram.user_writes(CHAT, ALICE, &format!("/start {code}"));
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, token) = api
            .call(
                Method::GET,
                &format!("/tokens/{token_id}"),
                &admin,
                Value::Null,
            )
            .await;
        if token["state"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "never activated: {token}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Setup {
        app,
        telegram,
        api,
        admin,
        token_id,
    }
}

impl Setup {
    /// A pending approval of a login of alice, valid for `seconds`, its message sent as
    /// `MESSAGE`; its id.
    fn approval(&self, number: Option<i64>, seconds: i64) -> i64 {
        let conn = database(&self.app);
        let now = unix_now();
        let transaction = format!("tx-{now}-{}", number.unwrap_or(0));
        conn.execute(
            "INSERT INTO auth_transactions (id, resource_id, user_id, password_checked, expires_at, created_at)
             VALUES (?1, (SELECT id FROM resources WHERE name = 'VPN'),
                     (SELECT id FROM users WHERE login = 'alice'), 1, ?2, ?3)",
            rusqlite::params![transaction, now + seconds, now],
        )
        .expect("transaction");
        conn.query_row(
            "INSERT INTO approvals (transaction_id, token_id, resource_id, chat_id, telegram_user_id,
                                    number, message_id, expires_at, created_at)
             VALUES (?1, ?2, (SELECT id FROM resources WHERE name = 'VPN'), ?3, ?4, ?5, ?6, ?7, ?8)
             RETURNING id",
            rusqlite::params![
                transaction,
                self.token_id,
                CHAT,
                ALICE,
                number,
                MESSAGE,
                now + seconds,
                now
            ],
            |row| row.get(0),
        )
        .expect("approval")
    }

    /// A pending approval of a login of alice with number matching, queued in the outbox as a
    /// sign-in queues it (its message not sent yet); its id.
    fn queued_approval(&self, number: i64, choices: &str) -> i64 {
        let conn = database(&self.app);
        let now = unix_now();
        let transaction = format!("tx-queued-{now}");
        conn.execute(
            "INSERT INTO auth_transactions (id, resource_id, user_id, password_checked, expires_at, created_at)
             VALUES (?1, (SELECT id FROM resources WHERE name = 'VPN'),
                     (SELECT id FROM users WHERE login = 'alice'), 1, ?2, ?3)",
            rusqlite::params![transaction, now + 120, now],
        )
        .expect("transaction");
        let id: i64 = conn
            .query_row(
                "INSERT INTO approvals (transaction_id, token_id, resource_id, chat_id, telegram_user_id,
                                        number, choices, expires_at, created_at)
                 VALUES (?1, ?2, (SELECT id FROM resources WHERE name = 'VPN'), ?3, ?4, ?5, ?6, ?7, ?8)
                 RETURNING id",
                rusqlite::params![
                    transaction,
                    self.token_id,
                    CHAT,
                    ALICE,
                    number,
                    choices,
                    now + 120,
                    now
                ],
                |row| row.get(0),
            )
            .expect("approval");
        let keys =
            otpgate::crypto::Keys::load_or_create(&self.app.data_dir.join("secret.key"), false)
                .expect("keys");
        let body = keys
            .seal(otpgate::crypto::Purpose::Message, b"Sign in to VPN?")
            .expect("sealed");
        conn.execute(
            "INSERT INTO outbox (channel, recipient, subject, body, token_id, approval_id,
                                 next_attempt_at, expires_at, created_at)
             VALUES ('bot', ?1, '', ?2, ?3, ?4, ?5, ?6, ?5)",
            rusqlite::params![CHAT.to_string(), body, self.token_id, id, now, now + 120],
        )
        .expect("queued");
        id
    }

    fn message_of(&self, approval: i64) -> Option<i64> {
        database(&self.app)
            .query_row(
                "SELECT message_id FROM approvals WHERE id = ?1",
                [approval],
                |row| row.get(0),
            )
            .expect("the approval")
    }

    fn state(&self, approval: i64) -> (String, Option<String>) {
        database(&self.app)
            .query_row(
                "SELECT state, reason FROM approvals WHERE id = ?1",
                [approval],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("the approval")
    }

    fn transaction_live(&self, approval: i64) -> bool {
        database(&self.app)
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM auth_transactions t JOIN approvals a
                                 ON a.transaction_id = t.id WHERE a.id = ?1)",
                [approval],
                |row| row.get(0),
            )
            .expect("read")
    }

    /// Presses a button as the Telegram user `user` and waits for the bot's answer.
    async fn press(&self, user: i64, data: &str) -> String {
        let query = self.telegram.user_presses(CHAT, user, MESSAGE, data);
        self.telegram
            .wait_for_answer(&query, WAIT)
            .await
            .unwrap_or_else(|| panic!("the press {data} was never answered"))
    }

    /// The audit lines of approvals: result and reason.
    fn approval_audit(&self) -> Vec<(String, Option<String>)> {
        let conn = database(&self.app);
        let mut statement = conn
            .prepare(
                "SELECT result, reason FROM audit_log WHERE action = 'auth.approval' ORDER BY id",
            )
            .expect("prepare");
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    async fn locked(&self) -> bool {
        let (_, token) = self
            .api
            .call(
                Method::GET,
                &format!("/tokens/{}", self.token_id),
                &self.admin,
                Value::Null,
            )
            .await;
        token["locked"] == true
    }

    async fn stop(self) {
        self.app.stop().await;
        self.telegram.stop().await;
    }
}

fn edited(text: &str) -> Edited {
    Edited {
        chat_id: CHAT,
        message_id: MESSAGE,
        text: text.to_owned(),
    }
}

#[tokio::test]
async fn the_right_number_approves_once_and_the_message_says_so() {
    let s = setup(json!({ "allowed": true })).await;
    let id = s.approval(Some(42), 120);
    let answer = s.press(ALICE, &format!("ap:{id}:42")).await;
    assert_eq!(answer, "Approved.");
    assert_eq!(s.state(id), ("approved".to_owned(), None));
    let edits = s.telegram.wait_for_edits(1, WAIT).await;
    assert_eq!(edits.len(), 1);
    assert!(
        edits[0].text.starts_with("Approved ") && edits[0].text.ends_with(" UTC"),
        "{edits:?}"
    );
    assert_eq!((edits[0].chat_id, edits[0].message_id), (CHAT, MESSAGE));
    assert!(s.transaction_live(id), "the login itself is still to come");

    // A second press, even on Deny, changes nothing.
    let again = s.press(ALICE, &format!("ap:{id}:no")).await;
    assert_eq!(again, "This sign-in was already answered.");
    assert_eq!(s.state(id), ("approved".to_owned(), None));
    assert_eq!(s.approval_audit(), [("approved".to_owned(), None)]);
    assert_eq!(s.telegram.edited().len(), 1, "no second edit");
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_number_denies_the_sign_in() {
    let s = setup(json!({ "allowed": true })).await;
    let id = s.approval(Some(42), 120);
    let answer = s.press(ALICE, &format!("ap:{id}:17")).await;
    assert_eq!(answer, "Wrong number: the sign-in was denied.");
    assert_eq!(
        s.state(id),
        ("denied".to_owned(), Some("wrong_number".to_owned()))
    );
    assert_eq!(
        s.telegram.wait_for_edits(1, WAIT).await,
        [edited("Wrong number — denied")]
    );
    assert!(!s.transaction_live(id), "the login is over");
    assert!(!s.locked().await, "the resource does not lock on a denial");
    s.stop().await;
}

#[tokio::test]
async fn deny_is_audited_and_locks_the_token_when_the_resource_says_so() {
    let s = setup(json!({ "allowed": true, "number_matching": false, "deny_locks": true })).await;
    let id = s.approval(None, 120);
    let answer = s.press(ALICE, &format!("ap:{id}:no")).await;
    assert_eq!(answer, "Denied.");
    assert_eq!(
        s.state(id),
        ("denied".to_owned(), Some("denied".to_owned()))
    );
    assert_eq!(
        s.approval_audit(),
        [("denied".to_owned(), Some("denied".to_owned()))]
    );
    assert!(s.locked().await, "the denial locked the token");
    let edits = s.telegram.wait_for_edits(1, WAIT).await;
    assert!(
        edits[0].text.starts_with("Denied ") && edits[0].text.contains("locked"),
        "{edits:?}"
    );
    assert!(!s.transaction_live(id));
    s.stop().await;
}

#[tokio::test]
async fn another_telegram_user_pressing_the_button_changes_nothing() {
    let s = setup(json!({ "allowed": true, "number_matching": false })).await;
    let id = s.approval(None, 120);
    let answer = s.press(78, &format!("ap:{id}:ok")).await;
    assert_eq!(
        answer,
        "This button is not for you, or it is no longer valid."
    );
    // Forged data naming no approval, or no choice of ours, is answered the same way.
    for data in [
        format!("ap:{}:ok", id + 1000),
        format!("ap:{id}:yes"),
        "x".into(),
    ] {
        let answer = s.press(ALICE, &data).await;
        assert_eq!(
            answer,
            "This button is not for you, or it is no longer valid."
        );
    }
    assert_eq!(s.state(id), ("pending".to_owned(), None));
    assert!(s.approval_audit().is_empty());
    assert!(s.telegram.edited().is_empty());
    // Alice herself still can.
    assert_eq!(s.press(ALICE, &format!("ap:{id}:ok")).await, "Approved.");
    s.stop().await;
}

#[tokio::test]
async fn a_press_after_the_approval_expired_decides_nothing_and_says_expired() {
    let s = setup(json!({ "allowed": true, "number_matching": false })).await;
    let id = s.approval(None, -1);
    let answer = s.press(ALICE, &format!("ap:{id}:ok")).await;
    assert_eq!(answer, "This sign-in request expired.");
    assert_eq!(s.state(id), ("expired".to_owned(), None));
    assert_eq!(
        s.telegram.wait_for_edits(1, WAIT).await,
        [edited("Expired")]
    );
    assert!(s.approval_audit().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn an_approval_goes_out_once_with_its_numbers_and_deny_and_its_message_is_the_one_edited() {
    let s = setup(json!({ "allowed": true })).await;
    let id = s.queued_approval(42, "17 42 85");
    // The activation's confirmation was the first message to the chat.
    let sent = s.telegram.wait_for_messages(CHAT, 2, WAIT).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let message = &sent[1];
    assert_eq!(message.text, "Sign in to VPN?");
    let keyboard = &message.reply_markup["inline_keyboard"];
    let labels: Vec<Vec<&str>> = keyboard
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("buttons")
                .iter()
                .map(|b| b["text"].as_str().expect("a label"))
                .collect()
        })
        .collect();
    assert_eq!(
        labels,
        [vec!["17", "42", "85"], vec!["Deny — this wasn't me"]]
    );
    assert_eq!(keyboard[0][1]["callback_data"], format!("ap:{id}:42"));
    assert_eq!(keyboard[1][0]["callback_data"], format!("ap:{id}:no"));
    // The message's id is kept, so that the decision edits this very message.
    let deadline = Instant::now() + WAIT;
    while s.message_of(id).is_none() {
        assert!(Instant::now() < deadline, "the message id was never kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let message_id = s.message_of(id).expect("kept");
    let query = s
        .telegram
        .user_presses(CHAT, ALICE, message_id, &format!("ap:{id}:42"));
    assert_eq!(
        s.telegram.wait_for_answer(&query, WAIT).await.as_deref(),
        Some("Approved.")
    );
    let edits = s.telegram.wait_for_edits(1, WAIT).await;
    assert_eq!((edits[0].chat_id, edits[0].message_id), (CHAT, message_id));
    assert_eq!(
        s.telegram.sent().len(),
        2,
        "the approval's message went out once"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_approval_left_unanswered_expires_and_its_message_says_so() {
    let s = setup(json!({ "allowed": true, "number_matching": false })).await;
    let id = s.approval(None, -1);
    assert_eq!(
        s.telegram.wait_for_edits(1, WAIT).await,
        [edited("Expired")]
    );
    assert_eq!(s.state(id), ("expired".to_owned(), None));
    // A press now decides nothing.
    assert_eq!(
        s.press(ALICE, &format!("ap:{id}:ok")).await,
        "This sign-in request expired."
    );
    assert_eq!(s.telegram.edited().len(), 1, "no second edit");
    assert_eq!(s.state(id), ("expired".to_owned(), None));
    s.stop().await;
}
