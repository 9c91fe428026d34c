//! Approve in Telegram, the bot's side, end to end against the fake Bot API: a press on a button
//! under an approval's message arrives as a `callback_query` in the bot's long polling, is
//! always answered (`answerCallbackQuery`), decides the approval once and only for the bound
//! chat's Telegram user, and the message then says what became of the sign-in
//! (`editMessageText`). The approvals are written into the database as a sign-in will write
//! them; the store's own tests cover how they are made.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_with, test_config};
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
    _temp: tempfile::TempDir,
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
    setup_with(approvals, |_| {}).await
}

/// As `setup`, with the configuration changed by `change`.
async fn setup_with(approvals: Value, change: impl FnOnce(&mut otpgate::Config)) -> Setup {
    let telegram = TelegramApi::start().await;
    let temp = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(temp.path());
    change(&mut config);
    let app = spawn_with(config).await.expect("the application starts");
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
        _temp: temp,
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
        s.telegram.sent_count(),
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

// The API's side: `prepare` with `approve` asks, `authenticate` with the transaction answers.

/// What `prepare` with `approve` gave, and the message the bot sent for it.
struct Asked {
    transaction: String,
    number: Option<String>,
    approval: i64,
    /// The labels of the buttons, row by row.
    labels: Vec<Vec<String>>,
    text: String,
}

impl Setup {
    async fn prepare_approval(&self) -> (u16, Value) {
        let (status, body) = self
            .api
            .call(
                Method::POST,
                "/auth/prepare",
                &self.admin,
                json!({"resource": "VPN", "user": "alice", "approve": true, "ip": "203.0.113.7"}),
            )
            .await;
        (status, body)
    }

    /// Asks for an approval and waits for its message (the activation's confirmation was the
    /// first message to the chat).
    async fn ask(&self) -> Asked {
        let (status, body) = self.prepare_approval().await;
        assert_eq!(status, 200, "{body}");
        let sent = self.telegram.wait_for_messages(CHAT, 2, WAIT).await;
        assert_eq!(sent.len(), 2, "one message for the approval: {sent:?}");
        let message = &sent[1];
        let keyboard = message.reply_markup["inline_keyboard"]
            .as_array()
            .expect("rows");
        let labels = keyboard
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("buttons")
                    .iter()
                    .map(|b| b["text"].as_str().expect("a label").to_owned())
                    .collect()
            })
            .collect();
        let data = keyboard[0][0]["callback_data"].as_str().expect("data");
        let approval = data
            .split(':')
            .nth(1)
            .and_then(|id| id.parse().ok())
            .expect("the approval's id");
        // The message's id is kept before anything edits it.
        self.message_kept(approval).await;
        Asked {
            transaction: body["transaction"].as_str().expect("a transaction").into(),
            number: body["approval"]["number"].as_str().map(str::to_owned),
            approval,
            labels,
            text: message.text.clone(),
        }
    }

    /// Presses a button under the approval's message as alice, once the message's id is kept.
    async fn press_on(&self, approval: i64, choice: &str) -> String {
        let message = self.message_of(approval).expect("kept");
        let query =
            self.telegram
                .user_presses(CHAT, ALICE, message, &format!("ap:{approval}:{choice}"));
        self.telegram
            .wait_for_answer(&query, WAIT)
            .await
            .unwrap_or_else(|| panic!("the press {choice} was never answered"))
    }

    async fn authenticate(&self, body: Value) -> Value {
        let mut request = json!({"resource": "VPN", "user": "alice"});
        if let (Some(request), Some(extra)) = (request.as_object_mut(), body.as_object()) {
            request.extend(extra.clone());
        }
        let (status, answer) = self
            .api
            .call(Method::POST, "/auth/authenticate", &self.admin, request)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// The audit lines of authentications: result and reason.
    fn authentication_audit(&self) -> Vec<(String, Option<String>)> {
        let conn = database(&self.app);
        let mut statement = conn
            .prepare(
                "SELECT result, reason FROM audit_log WHERE action = 'auth.authenticate'
                 ORDER BY id",
            )
            .expect("prepare");
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// The id of the approval's message, once the outbox kept it.
    async fn message_kept(&self, approval: i64) -> i64 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(message) = self.message_of(approval) {
                return message;
            }
            assert!(Instant::now() < deadline, "the message id was never kept");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metrics(&self) -> String {
        self.app
            .get("/metrics")
            .await
            .text()
            .await
            .expect("the metrics")
    }

    /// Waits until `count` requests wait for approvals, as the server's metrics say.
    async fn until_waiting(&self, count: usize) {
        let deadline = Instant::now() + WAIT;
        let line = format!("otpgate_approval_waiters {count}\n");
        loop {
            let metrics = self.metrics().await;
            if metrics.contains(&line) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never {count} waiting: {metrics}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Moves the approval's and its transaction's end to `at`.
    fn expire_at(&self, approval: i64, at: i64) {
        let conn = database(&self.app);
        conn.execute(
            "UPDATE auth_transactions SET expires_at = ?2
             WHERE id = (SELECT transaction_id FROM approvals WHERE id = ?1)",
            rusqlite::params![approval, at],
        )
        .expect("the transaction");
        conn.execute(
            "UPDATE approvals SET expires_at = ?2 WHERE id = ?1",
            rusqlite::params![approval, at],
        )
        .expect("the approval");
    }
}

#[tokio::test]
async fn prepare_with_approve_sends_one_message_with_the_number_among_its_buttons() {
    let s = setup(json!({ "allowed": true })).await;
    let asked = s.ask().await;
    let number = asked
        .number
        .clone()
        .expect("number matching is on by default");
    assert!(
        number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()),
        "{number}"
    );
    assert!(
        asked.text.starts_with("Sign in to VPN from 203.0.113.7, ")
            && asked.text.ends_with(" UTC?"),
        "{}",
        asked.text
    );
    let numbers = &asked.labels[0];
    assert_eq!(numbers.len(), 3, "{numbers:?}");
    assert!(numbers.contains(&number), "{numbers:?}");
    let mut distinct = numbers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "three different numbers: {numbers:?}");
    assert_eq!(asked.labels[1], ["Deny — this wasn't me"]);
    // Nothing else was sent: no code to the BOT token besides the approval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.telegram.sent_count(), 2);
    let asked_line: (String, Option<String>, Option<i64>) = database(&s.app)
        .query_row(
            "SELECT result, detail, token_id FROM audit_log WHERE action = 'auth.prepare'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("the prepare's audit line");
    assert_eq!(
        asked_line,
        (
            "challenge".to_owned(),
            Some("approval asked in Telegram".to_owned()),
            Some(s.token_id)
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn an_approved_login_is_accepted_once_and_a_second_answer_is_rejected() {
    let s = setup(json!({ "allowed": true })).await;
    let asked = s.ask().await;
    let transaction = json!({ "transaction": asked.transaction });
    assert_eq!(
        s.authenticate(transaction.clone()).await["result"],
        "pending"
    );
    let number = asked.number.clone().expect("a number");
    assert_eq!(s.press_on(asked.approval, &number).await, "Approved.");
    let accepted = s.authenticate(transaction.clone()).await;
    assert_eq!(accepted["result"], "accepted", "{accepted}");
    assert_eq!(accepted["token"]["id"], s.token_id);
    assert_eq!(s.authenticate(transaction).await["result"], "rejected");
    assert_eq!(
        s.authentication_audit(),
        [
            ("accepted".to_owned(), Some("approval".to_owned())),
            ("rejected".to_owned(), Some("approval_used".to_owned()))
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_number_rejects_the_login() {
    let s = setup(json!({ "allowed": true })).await;
    let asked = s.ask().await;
    let number = asked.number.clone().expect("a number");
    let wrong = asked.labels[0]
        .iter()
        .find(|label| **label != number)
        .expect("a decoy")
        .clone();
    assert_eq!(
        s.press_on(asked.approval, &wrong).await,
        "Wrong number: the sign-in was denied."
    );
    let answer = s
        .authenticate(json!({ "transaction": asked.transaction }))
        .await;
    assert_eq!(answer["result"], "rejected", "{answer}");
    assert_eq!(
        s.authentication_audit(),
        [(
            "rejected".to_owned(),
            Some("approval_wrong_number".to_owned())
        )]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_denied_login_is_rejected_audited_and_not_counted_as_a_failed_login() {
    let s = setup(json!({ "allowed": true, "number_matching": false })).await;
    let asked = s.ask().await;
    assert_eq!(asked.number, None);
    assert_eq!(asked.labels, [vec!["Approve", "Deny — this wasn't me"]]);
    assert_eq!(s.press_on(asked.approval, "no").await, "Denied.");
    let answer = s
        .authenticate(json!({ "transaction": asked.transaction }))
        .await;
    assert_eq!(answer["result"], "rejected", "{answer}");
    assert_eq!(
        s.approval_audit(),
        [("denied".to_owned(), Some("denied".to_owned()))]
    );
    assert_eq!(
        s.authentication_audit(),
        [("rejected".to_owned(), Some("approval_denied".to_owned()))]
    );
    let failures: i64 = database(&s.app)
        .query_row(
            "SELECT COALESCE(SUM(failures), 0) FROM login_failures",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0);
    assert_eq!(failures, 0, "a denial is no wrong code");
    s.stop().await;
}

#[tokio::test]
async fn an_expired_approval_rejects_the_login_and_its_message_says_expired() {
    let s = setup(json!({ "allowed": true })).await;
    let asked = s.ask().await;
    s.expire_at(asked.approval, unix_now() - 1);
    let answer = s
        .authenticate(json!({ "transaction": asked.transaction }))
        .await;
    assert_eq!(answer["result"], "rejected", "{answer}");
    let edits = s.telegram.wait_for_edits(1, WAIT).await;
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert_eq!(edits[0].text, "Expired");
    assert_eq!(s.state(asked.approval), ("expired".to_owned(), None));
    s.stop().await;
}

#[tokio::test]
async fn wait_answers_as_soon_as_the_button_is_pressed() {
    let s = setup(json!({ "allowed": true })).await;
    let asked = s.ask().await;
    let waiting = {
        let api = s.api.clone();
        let admin = s.admin.clone();
        let body = json!({"resource": "VPN", "user": "alice",
                          "transaction": asked.transaction, "wait": 30});
        tokio::spawn(async move {
            api.call(Method::POST, "/auth/authenticate", &admin, body)
                .await
        })
    };
    s.until_waiting(1).await;
    assert!(!waiting.is_finished(), "the request waits for the decision");
    let number = asked.number.clone().expect("a number");
    assert_eq!(s.press_on(asked.approval, &number).await, "Approved.");
    let (status, answer) = waiting.await.expect("the request");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "accepted", "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn a_slow_telegram_answering_one_press_holds_up_no_other_sign_in() {
    let s = setup(json!({ "allowed": true })).await;
    let first = s.ask().await;
    let (status, body) = s.prepare_approval().await;
    assert_eq!(status, 200, "{body}");
    let second_transaction = body["transaction"].as_str().expect("a transaction");
    let second_number = body["approval"]["number"].as_str().expect("a number");
    let second: i64 = database(&s.app)
        .query_row(
            "SELECT id FROM approvals WHERE transaction_id = ?1",
            [second_transaction],
            |row| row.get(0),
        )
        .expect("the second approval");
    let second_message = s.message_kept(second).await;
    let first_message = s.message_kept(first.approval).await;
    let first_number = first.number.clone().expect("a number");

    // Telegram takes its time to take the answer to the first press.
    s.telegram.hold_answers();
    let first_press = s.telegram.user_presses(
        CHAT,
        ALICE,
        first_message,
        &format!("ap:{}:{first_number}", first.approval),
    );
    assert_eq!(s.telegram.wait_for_answers_waiting(1, WAIT).await, 1);
    let second_press = s.telegram.user_presses(
        CHAT,
        ALICE,
        second_message,
        &format!("ap:{second}:{second_number}"),
    );
    // The second sign-in is let in meanwhile, and its answer is on its way beside the first's.
    let answer = s
        .authenticate(json!({ "transaction": second_transaction, "wait": 10 }))
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    assert_eq!(s.telegram.wait_for_answers_waiting(2, WAIT).await, 2);
    s.telegram.release_answers();
    for press in [first_press, second_press] {
        assert_eq!(
            s.telegram.wait_for_answer(&press, WAIT).await.as_deref(),
            Some("Approved.")
        );
    }
    let answer = s
        .authenticate(json!({ "transaction": first.transaction }))
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    assert_eq!(s.telegram.wait_for_edits(2, WAIT).await.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn wait_answers_pending_at_its_bound_and_rejected_at_the_expiry() {
    let s = setup(json!({ "allowed": true })).await;
    let asked = s.ask().await;
    let pending = s
        .authenticate(json!({ "transaction": asked.transaction, "wait": 1 }))
        .await;
    assert_eq!(pending["result"], "pending", "{pending}");
    assert!(pending["expires_at"].as_i64().is_some(), "{pending}");
    s.expire_at(asked.approval, unix_now() + 2);
    let expired = s
        .authenticate(json!({ "transaction": asked.transaction, "wait": 30 }))
        .await;
    assert_eq!(expired["result"], "rejected", "{expired}");
    // Requests that wait for a person are timed apart: an operator's alert on the API's
    // latency is not set off by people slow to press a button.
    let metrics = s.metrics().await;
    let route = "route=\"/api/v1/auth/authenticate\"";
    assert!(
        metrics.contains(&format!(
            "otpgate_http_approval_wait_duration_seconds_count{{{route}}} 2\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "otpgate_http_approval_wait_duration_seconds_bucket{{{route},le=\"0.5\"}} 0\n"
        )),
        "the pending answer waited its second: {metrics}"
    );
    assert!(
        !metrics.contains(&format!(
            "otpgate_http_request_duration_seconds_count{{{route}}}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "otpgate_http_requests_total{{{route},method=\"POST\",status=\"200\"}} 2\n"
        )),
        "still counted among the requests: {metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_resource_without_approvals_and_a_user_without_a_bot_token_are_refused_clearly() {
    let s = setup(json!({ "allowed": false })).await;
    let (status, body) = s.prepare_approval().await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "approve", "{body}");
    assert_eq!(
        body["error"]["message"],
        "this resource does not allow approvals in Telegram"
    );
    let (status, _) = s
        .api
        .call(
            Method::PATCH,
            "/resources/VPN",
            &s.admin,
            json!({ "approvals": { "allowed": true } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .api
        .call(Method::POST, "/users", &s.admin, json!({"login": "bob"}))
        .await;
    assert_eq!(status, 201);
    for user in ["bob", "nobody"] {
        let (status, body) = s
            .api
            .call(
                Method::POST,
                "/auth/prepare",
                &s.admin,
                json!({"resource": "VPN", "user": user, "approve": true}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["field"], "approve", "{body}");
        assert_eq!(
            body["error"]["message"],
            "the user has no active BOT token in this resource to approve with"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.telegram.sent_count(),
        1,
        "only the activation's confirmation"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_typed_code_still_works_while_the_approval_is_pending_and_voids_it() {
    let s = setup(json!({ "allowed": true })).await;
    let (status, body) = s
        .api
        .call(
            Method::POST,
            "/tokens",
            &s.admin,
            json!({"kind": "TOTP", "secret": crate::helpers::auth::SEED_BASE32,
                   "user": "alice", "resource": "VPN"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let asked = s.ask().await;
    let answer = s
        .authenticate(json!({
            "transaction": asked.transaction,
            "otp": crate::helpers::auth::totp(0)
        }))
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    let again = s
        .authenticate(json!({ "transaction": asked.transaction }))
        .await;
    assert_eq!(again["result"], "rejected", "the approval is void: {again}");
    assert_eq!(
        s.telegram.wait_for_edits(1, WAIT).await[0].text,
        "Expired",
        "its message says so"
    );
    s.stop().await;
}

#[tokio::test]
async fn beyond_the_bound_of_waiters_a_wait_is_refused_as_busy_and_an_answer_without_wait_still_comes()
 {
    let s = setup_with(json!({ "allowed": true }), |config| {
        config.auth.approval_waiters_max = 1;
    })
    .await;
    let asked = s.ask().await;
    let waiting = {
        let api = s.api.clone();
        let admin = s.admin.clone();
        let body = json!({"resource": "VPN", "user": "alice",
                          "transaction": asked.transaction, "wait": 30});
        tokio::spawn(async move {
            api.call(Method::POST, "/auth/authenticate", &admin, body)
                .await
        })
    };
    // The first request holds the only place.
    s.until_waiting(1).await;
    let (status, refused) = s
        .api
        .call(
            Method::POST,
            "/auth/authenticate",
            &s.admin,
            json!({"resource": "VPN", "user": "alice",
                   "transaction": asked.transaction, "wait": 1}),
        )
        .await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "busy", "{refused}");
    let now = s
        .authenticate(json!({ "transaction": asked.transaction }))
        .await;
    assert_eq!(now["result"], "pending", "{now}");
    let number = asked.number.clone().expect("a number");
    assert_eq!(s.press_on(asked.approval, &number).await, "Approved.");
    let (_, answer) = waiting.await.expect("the request");
    assert_eq!(answer["result"], "accepted", "{answer}");
    s.stop().await;
}

/// actix-web keeps a request's handler running after its client closed the connection (it
/// reads a closed connection as a half-close): the place is given back when the wait is over,
/// at most `auth.approval_wait_max_seconds` later. The registry's own tests cover a waiter
/// dropped in the middle of its wait.
#[tokio::test]
async fn a_client_that_goes_away_while_waiting_leaves_nothing_behind_once_the_wait_is_over() {
    let s = setup_with(json!({ "allowed": true }), |config| {
        config.auth.approval_wait_max_seconds = 2;
    })
    .await;
    let asked = s.ask().await;
    let request = s
        .api
        .client
        .post(format!("{}/api/v1/auth/authenticate", s.api.address))
        .bearer_auth(&s.admin)
        .json(&json!({"resource": "VPN", "user": "alice",
                      "transaction": asked.transaction, "wait": 30}))
        .send();
    let going = tokio::spawn(request);
    s.until_waiting(1).await;
    going.abort();
    let _ = going.await;
    s.until_waiting(0).await;
    // The login can still be answered.
    assert_eq!(
        s.authenticate(json!({ "transaction": asked.transaction }))
            .await["result"],
        "pending"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_code_typed_for_the_login_answers_a_request_waiting_for_its_approval() {
    let s = setup(json!({ "allowed": true })).await;
    let (status, body) = s
        .api
        .call(
            Method::POST,
            "/tokens",
            &s.admin,
            json!({"kind": "TOTP", "secret": crate::helpers::auth::SEED_BASE32,
                   "user": "alice", "resource": "VPN"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let asked = s.ask().await;
    let waiting = {
        let api = s.api.clone();
        let admin = s.admin.clone();
        let body = json!({"resource": "VPN", "user": "alice",
                          "transaction": asked.transaction, "wait": 30});
        tokio::spawn(async move {
            api.call(Method::POST, "/auth/authenticate", &admin, body)
                .await
        })
    };
    s.until_waiting(1).await;
    let typed = s
        .authenticate(json!({
            "transaction": asked.transaction,
            "otp": crate::helpers::auth::totp(0)
        }))
        .await;
    assert_eq!(typed["result"], "accepted", "{typed}");
    // Told at once, well before its 30 seconds: the code woke it.
    let (status, answer) = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the waiting request is answered")
        .expect("the request");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "rejected", "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn where_the_resource_requires_the_password_an_approval_lets_in_only_with_it() {
    let s = setup(json!({ "allowed": true, "number_matching": false })).await;
    for (method, path, body) in [
        (
            Method::PUT,
            "/users/alice/password",
            json!({"password": "alice's long password"}),
        ),
        (
            Method::PATCH,
            "/resources/VPN",
            json!({"password_required": true}),
        ),
    ] {
        let (status, answer) = s.api.call(method, path, &s.admin, body).await;
        assert!(status == 200 || status == 204, "{status} {answer}");
    }
    let asked = s.ask().await;
    assert_eq!(s.press_on(asked.approval, "ok").await, "Approved.");
    let without = s
        .authenticate(json!({ "transaction": asked.transaction }))
        .await;
    assert_eq!(without["result"], "rejected", "{without}");
    let wrong = s
        .authenticate(json!({ "transaction": asked.transaction, "password": "not hers at all" }))
        .await;
    assert_eq!(wrong["result"], "rejected", "{wrong}");
    let with = s
        .authenticate(json!({
            "transaction": asked.transaction,
            "password": "alice's long password"
        }))
        .await;
    assert_eq!(with["result"], "accepted", "{with}");
    assert_eq!(
        s.authentication_audit(),
        [
            ("rejected".to_owned(), Some("password_required".to_owned())),
            ("rejected".to_owned(), Some("bad_password".to_owned())),
            ("accepted".to_owned(), Some("approval".to_owned())),
        ]
    );
    s.stop().await;
}
