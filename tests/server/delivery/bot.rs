//! Codes through otpgate's Telegram bot, end to end against a real HTTP server that plays the
//! Bot API: activation by `/start CODE`, codes sent to the bound chat, a blocked bot, and
//! settings that restart the bot.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::delivery::{Api, api_key, audit_actions};
use crate::helpers::sms_gateway::code_in;
use crate::helpers::telegram_api::{TelegramApi, USERNAME};

const WAIT: Duration = Duration::from_secs(20);
const BOT_TOKEN: &str = "123456:TEST-bot_token";

struct Setup {
    api: Api,
    admin: String,
    app_key: String,
}

/// Points otpgate's bot at the fake Bot API, waits until it runs, and creates the resource
/// `VPN` with an application key.
async fn configure(app: &TestApp, telegram: &TelegramApi) -> Setup {
    let api = Api::of(app);
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
    assert_eq!(body["token_set"], true);
    assert!(
        body.get("token").is_none(),
        "the token is never shown: {body}"
    );
    wait_for_bot(&api, &admin, "running").await;
    let (status, body) = api
        .call(Method::POST, "/resources", &admin, json!({"name": "VPN"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let app_key = api_key(&app.data_dir, &["--resource", "VPN"]);
    Setup {
        api,
        admin,
        app_key,
    }
}

async fn wait_for_bot(api: &Api, admin: &str, state: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = api
            .call(Method::GET, "/settings/bot", admin, Value::Null)
            .await;
        assert_eq!(status, 200, "{body}");
        if body["status"]["state"] == state {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the bot never became {state}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates `login` with a BOT token assigned to `VPN`; returns the creation answer.
async fn enrol(s: &Setup, login: &str) -> Value {
    let (status, body) = s
        .api
        .call(Method::POST, "/users", &s.admin, json!({"login": login}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .api
        .call(
            Method::POST,
            "/tokens",
            &s.admin,
            json!({"kind": "BOT", "name": format!("{login}'s phone"), "user": login, "resource": "VPN"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Whether a prepare sent a code.
fn challenged(prepared: &Value) -> bool {
    prepared["challenges"]
        .as_array()
        .is_some_and(|list| !list.is_empty())
}

async fn token_state(s: &Setup, id: i64) -> Value {
    let (status, body) = s
        .api
        .call(Method::GET, &format!("/tokens/{id}"), &s.admin, Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    body["state"].clone()
}

async fn wait_for_state(s: &Setup, id: i64, state: &str) {
    let deadline = Instant::now() + WAIT;
    while token_state(s, id).await != state {
        assert!(Instant::now() < deadline, "token {id} never became {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_bot_token_is_activated_by_its_start_code_and_then_receives_its_codes() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let s = configure(&app, &telegram).await;

    let created = enrol(&s, "alice").await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["state"], "pending");
    let activation = &created["activation"];
    let code = activation["code"].as_str().expect("an activation code");
    assert!(
        code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(
        activation["link"],
        format!("https://t.me/{USERNAME}?start={code}")
    );
    assert!(
        activation["qr_code_svg"]
            .as_str()
            .is_some_and(|svg| svg.contains("<svg"))
    );
    let (_, status) = s
        .api
        .call(
            Method::GET,
            &format!("/tokens/{id}/activation"),
            &s.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status["state"], "pending");
    assert_eq!(status["bound"], false);
    assert!(status["code_expires_at"].as_i64().is_some());

    // A pending token gets no code.
    let prepared = s.api.prepare(&s.app_key, "alice").await;
    assert!(!challenged(&prepared), "{prepared}");

    telegram.user_writes(4242, 77, &format!("/start {code}"));
    wait_for_state(&s, id, "active").await;
    let replies = telegram.wait_for_messages(4242, 1, WAIT).await;
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].text.contains("alice's phone") && replies[0].text.contains("active"),
        "the confirmation names the token: {}",
        replies[0].text
    );
    let (_, status) = s
        .api
        .call(
            Method::GET,
            &format!("/tokens/{id}/activation"),
            &s.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status["state"], "active");
    assert_eq!(status["bound"], true);
    assert!(
        status.get("code_expires_at").is_none(),
        "the code is used up: {status}"
    );

    let prepared = s.api.prepare(&s.app_key, "alice").await;
    let answered = Instant::now();
    assert_eq!(
        prepared["challenges"][0]["token"]["kind"], "BOT",
        "{prepared}"
    );
    assert_eq!(prepared["challenges"][0]["destination"], "Telegram");
    let messages = telegram.wait_for_messages(4242, 2, WAIT).await;
    assert_eq!(messages.len(), 2, "the code went to the bound chat");
    println!(
        "delivery latency, prepare answered -> Bot API sendMessage: {:?}",
        messages[1].at.saturating_duration_since(answered)
    );
    let otp = code_in(&messages[1].text).expect("a code in the message");
    let result = s
        .api
        .authenticate(&s.app_key, "alice", &otp, &prepared["transaction"])
        .await;
    assert_eq!(result["result"], "accepted", "{result}");

    let actions = audit_actions(&app.data_dir, id);
    assert!(
        actions
            .iter()
            .any(|(action, result, detail)| action == "token.bot_activate"
                && result == "ok"
                && detail.as_deref() == Some("chat=4242")),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .all(|(_, _, detail)| !detail.as_deref().unwrap_or("").contains(code)),
        "the activation code is not in the audit log"
    );
    app.stop().await;
    telegram.stop().await;
}

#[tokio::test]
async fn unknown_expired_and_used_activation_codes_are_refused_politely_and_change_nothing() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let s = configure(&app, &telegram).await;
    let created = enrol(&s, "bob").await;
    let id = created["id"].as_i64().expect("id");
    let code = created["activation"]["code"]
        .as_str()
        .expect("code")
        .to_string();

    telegram.user_writes(5001, 501, "/start not-a-real-code");
    let replies = telegram.wait_for_messages(5001, 1, WAIT).await;
    assert!(replies[0].text.contains("unknown"), "{}", replies[0].text);
    assert_eq!(token_state(&s, id).await, "pending");

    // An expired code: its time is over.
    let conn =
        rusqlite::Connection::open(app.data_dir.join(otpgate::store::DATABASE_FILE)).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    conn.execute(
        "UPDATE tokens SET activation_expires_at = 1 WHERE id = ?1",
        [id],
    )
    .expect("expire the code");
    telegram.user_writes(5002, 502, &format!("/start {code}"));
    let replies = telegram.wait_for_messages(5002, 1, WAIT).await;
    assert!(replies[0].text.contains("expired"), "{}", replies[0].text);
    assert_eq!(token_state(&s, id).await, "pending");

    // A new code works once; the old one and the same one again do not.
    let (status, fresh) = s
        .api
        .call(
            Method::POST,
            &format!("/tokens/{id}/activation"),
            &s.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{fresh}");
    let fresh_code = fresh["code"].as_str().expect("code").to_string();
    assert_ne!(fresh_code, code);
    telegram.user_writes(5003, 503, &format!("/start {fresh_code}"));
    wait_for_state(&s, id, "active").await;
    telegram.user_writes(5004, 504, &format!("/start {fresh_code}"));
    let replies = telegram.wait_for_messages(5004, 1, WAIT).await;
    assert!(
        replies[0].text.contains("already used"),
        "{}",
        replies[0].text
    );

    // The chat that activated stays the bound one.
    let prepared = s.api.prepare(&s.app_key, "bob").await;
    assert!(challenged(&prepared), "{prepared}");
    let to_bound = telegram.wait_for_messages(5003, 2, WAIT).await;
    assert_eq!(
        to_bound.len(),
        2,
        "the code went to the chat that activated"
    );
    assert_eq!(
        telegram
            .wait_for_messages(5004, 2, Duration::from_millis(300))
            .await
            .len(),
        1
    );

    let refusals = audit_actions(&app.data_dir, id);
    assert!(
        refusals
            .iter()
            .any(|(a, r, _)| a == "token.bot_activate" && r == "ok")
    );
    app.stop().await;
    telegram.stop().await;
}

#[tokio::test]
async fn start_without_a_code_help_other_text_and_group_chats_get_a_short_help() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let _s = configure(&app, &telegram).await;
    for (chat, text) in [
        (6001, "/start"),
        (6002, "/help"),
        (6003, "what is my code?"),
    ] {
        telegram.user_writes(chat, chat, text);
        let replies = telegram.wait_for_messages(chat, 1, WAIT).await;
        assert_eq!(replies.len(), 1, "{text} gets an answer");
        assert!(
            replies[0].text.contains("activation link"),
            "{}",
            replies[0].text
        );
    }
    telegram.group_writes(-7001, 7001, "/start somecode");
    let replies = telegram.wait_for_messages(-7001, 1, WAIT).await;
    assert!(
        replies[0].text.contains("private chat"),
        "{}",
        replies[0].text
    );
    // Every update was confirmed: none is handled twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(telegram.unconfirmed(), 0);
    assert_eq!(
        telegram
            .wait_for_messages(6001, 2, Duration::from_millis(200))
            .await
            .len(),
        1
    );
    app.stop().await;
    telegram.stop().await;
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_leaves_the_token_needing_reactivation_until_activated_again() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let s = configure(&app, &telegram).await;
    let created = enrol(&s, "carol").await;
    let id = created["id"].as_i64().expect("id");
    let code = created["activation"]["code"]
        .as_str()
        .expect("code")
        .to_string();
    telegram.user_writes(8001, 801, &format!("/start {code}"));
    wait_for_state(&s, id, "active").await;

    telegram.block(8001);
    let prepared = s.api.prepare(&s.app_key, "carol").await;
    assert!(challenged(&prepared), "{prepared}");
    wait_for_state(&s, id, "reactivate").await;
    let deliveries = s
        .api
        .deliveries_until(&s.admin, "?channel=bot", WAIT, |list| {
            list.iter().any(|d| d["status"] == "failed")
        })
        .await;
    let failed = deliveries
        .iter()
        .find(|d| d["status"] == "failed")
        .expect("a failed delivery");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("blocked"),
        "{failed}"
    );
    let actions = audit_actions(&app.data_dir, id);
    assert!(
        actions
            .iter()
            .any(|(action, _, detail)| action == "delivery.failed"
                && detail.as_deref().unwrap_or("").contains("re-activation")),
        "the audit log says the token needs re-activation: {actions:?}"
    );
    // A token that needs re-activation gets no more codes.
    let prepared = s.api.prepare(&s.app_key, "carol").await;
    assert!(!challenged(&prepared), "{prepared}");

    // A new activation from a new chat makes it active again, bound to the new chat.
    let (status, fresh) = s
        .api
        .call(
            Method::POST,
            &format!("/tokens/{id}/activation"),
            &s.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{fresh}");
    let fresh_code = fresh["code"].as_str().expect("code");
    telegram.user_writes(8002, 801, &format!("/start {fresh_code}"));
    wait_for_state(&s, id, "active").await;
    let prepared = s.api.prepare(&s.app_key, "carol").await;
    assert!(challenged(&prepared), "{prepared}");
    let messages = telegram.wait_for_messages(8002, 2, WAIT).await;
    assert_eq!(
        messages.len(),
        2,
        "confirmation, then the code, in the new chat"
    );
    app.stop().await;
    telegram.stop().await;
}

#[tokio::test]
async fn changing_the_bot_token_restarts_the_bot_without_restarting_otpgate() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let s = configure(&app, &telegram).await;
    assert!(
        telegram
            .calls_with(BOT_TOKEN)
            .contains(&"getme".to_string())
    );

    let other = "987654:another-token";
    let (status, body) = s
        .api
        .call(
            Method::PUT,
            "/settings/bot",
            &s.admin,
            json!({"token": other, "api_url": telegram.url, "poll_timeout_seconds": 1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + WAIT;
    while !telegram
        .calls_with(other)
        .contains(&"getupdates".to_string())
    {
        assert!(
            Instant::now() < deadline,
            "the bot never restarted with the new token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for_bot(&s.api, &s.admin, "running").await;
    telegram.user_writes(6101, 6101, "/help");
    let replies = telegram.wait_for_messages(6101, 1, WAIT).await;
    assert_eq!(replies[0].token, other, "the new bot answers");
    let before = telegram.calls_with(BOT_TOKEN).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        telegram.calls_with(BOT_TOKEN).len() <= before + 1,
        "the old token is not polled any more"
    );

    // Removing the token stops the bot.
    let (status, body) = s
        .api
        .call(
            Method::PUT,
            "/settings/bot",
            &s.admin,
            json!({"token": "", "api_url": telegram.url}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_set"], false);
    wait_for_bot(&s.api, &s.admin, "not_configured").await;
    app.stop().await;
    telegram.stop().await;
}

#[tokio::test]
async fn bot_settings_refuse_malformed_values_and_never_show_the_token() {
    let app = spawn_app().await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let (status, body) = api
        .call(Method::GET, "/settings/bot", &admin, Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["configured"], false);
    assert_eq!(body["token_set"], false);
    assert_eq!(body["api_url"], "https://api.telegram.org");
    assert_eq!(body["status"]["state"], "not_configured");
    for (settings, field) in [
        (json!({"token": "not a token"}), "token"),
        (
            json!({"token": "1:a", "api_url": "ftp://example.com"}),
            "api_url",
        ),
        (
            json!({"token": "1:a", "poll_timeout_seconds": 0}),
            "poll_timeout_seconds",
        ),
        (
            json!({"token": "1:a", "timeout_seconds": 1000}),
            "timeout_seconds",
        ),
        (json!({"token": "1:a", "webhook": "x"}), "webhook"),
    ] {
        let (status, body) = api
            .call(Method::PUT, "/settings/bot", &admin, settings)
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{body}"
        );
    }
    let (_, body) = api
        .call(Method::GET, "/settings/bot", &admin, Value::Null)
        .await;
    assert_eq!(body["configured"], false, "nothing was stored");

    app.stop().await;
}

#[tokio::test]
async fn activation_is_only_for_bot_tokens_and_needs_an_admin_key() {
    let app = spawn_app().await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let (status, body) = api
        .call(
            Method::POST,
            "/tokens",
            &admin,
            json!({"kind": "TOTP", "name": "app"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let totp = body["id"].as_i64().expect("id");
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/tokens/{totp}/activation"),
            &admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/tokens/{totp}/activation"),
            &admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(
            Method::POST,
            "/tokens/999999/activation",
            &admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/tokens/{totp}/activation"),
            "og_nope.nope",
            Value::Null,
        )
        .await;
    assert_eq!(status, 401);

    // Without a running bot the code is still issued, with the command to type by hand.
    let (status, body) = api
        .call(
            Method::POST,
            "/tokens",
            &admin,
            json!({"kind": "BOT", "name": "phone"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let activation = &body["activation"];
    let code = activation["code"].as_str().expect("code");
    assert_eq!(activation["start_command"], format!("/start {code}"));
    assert!(activation.get("link").is_none(), "{activation}");
    app.stop().await;
}

/// The chat a BOT token is bound to, straight from the database: (chat id, Telegram user id).
fn bound_chat(app: &TestApp, id: i64) -> (Option<i64>, Option<i64>) {
    let conn = crate::helpers::api::database(app);
    conn.query_row(
        "SELECT bot_chat_id, bot_user_id FROM tokens WHERE id = ?1",
        [id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .expect("the token")
}

#[tokio::test]
async fn an_unassigned_bot_token_forgets_its_chat_and_its_next_user_activates_it_anew() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let s = configure(&app, &telegram).await;
    let created = enrol(&s, "alice").await;
    let id = created["id"].as_i64().expect("id");
    let code = created["activation"]["code"].as_str().expect("a code");
    telegram.user_writes(4242, 77, &format!("/start {code}"));
    wait_for_state(&s, id, "active").await;
    assert_eq!(bound_chat(&app, id), (Some(4242), Some(77)));

    let (status, body) = s
        .api
        .call(
            Method::DELETE,
            &format!("/tokens/{id}/user"),
            &s.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "pending", "it waits for a new activation");
    assert_eq!(
        bound_chat(&app, id),
        (None, None),
        "alice's chat is forgotten"
    );

    // The token goes to bob: nothing reaches alice's chat, and bob's codes wait for his own.
    let (status, body) = s
        .api
        .call(Method::POST, "/users", &s.admin, json!({"login": "bob"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .api
        .call(
            Method::PUT,
            &format!("/tokens/{id}/user"),
            &s.admin,
            json!({"user": "bob"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .api
        .call(
            Method::POST,
            "/resources/VPN/tokens",
            &s.admin,
            json!({"token": id}),
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let prepared = s.api.prepare(&s.app_key, "bob").await;
    assert!(
        !challenged(&prepared),
        "no code for a chat nobody bound: {prepared}"
    );
    let to_alice = telegram.sent().iter().filter(|m| m.chat_id == 4242).count();
    assert_eq!(to_alice, 1, "alice's chat got only its activation reply");

    let (status, activation) = s
        .api
        .call(
            Method::POST,
            &format!("/tokens/{id}/activation"),
            &s.admin,
            Value::Null,
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {activation}");
    let code = activation["code"]
        .as_str()
        .or_else(|| activation["activation"]["code"].as_str())
        .expect("a new code");
    telegram.user_writes(5353, 88, &format!("/start {code}"));
    wait_for_state(&s, id, "active").await;
    assert_eq!(bound_chat(&app, id), (Some(5353), Some(88)));
    let prepared = s.api.prepare(&s.app_key, "bob").await;
    assert!(challenged(&prepared), "{prepared}");
    telegram.wait_for_messages(5353, 2, WAIT).await;
    assert_eq!(
        telegram.sent().iter().filter(|m| m.chat_id == 4242).count(),
        1,
        "bob's code went to bob's chat only"
    );
    telegram.stop().await;
}

#[tokio::test]
async fn the_bot_names_a_token_without_a_name_by_its_serial() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let s = configure(&app, &telegram).await;
    let (status, created) = s
        .api
        .call(Method::POST, "/tokens", &s.admin, json!({"kind": "BOT"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let serial = created["serial"].as_str().expect("a serial").to_string();
    let code = created["activation"]["code"].as_str().expect("a code");
    telegram.user_writes(4343, 79, &format!("/start {code}"));
    let replies = telegram.wait_for_messages(4343, 1, WAIT).await;
    assert!(
        replies[0]
            .text
            .contains(&format!("your token {serial} is active")),
        "{}",
        replies[0].text
    );
    assert!(!replies[0].text.contains("“”"), "{}", replies[0].text);
    telegram.stop().await;
}
