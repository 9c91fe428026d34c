//! Approve in Telegram in the admin panel: the resource's settings on its Overview form, saved
//! as the API saves them and audited, and the dashboard's block of sign-ins denied in Telegram,
//! decided by presses on the bot's buttons through the fake Bot API.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{count, create_resource, database, send};
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::otp::unix_now;
use crate::helpers::telegram_api::TelegramApi;

const WAIT: Duration = Duration::from_secs(20);
const BOT_TOKEN: &str = "123456:TEST-bot_token";
const CHAT: i64 = 4242;
const ALICE: i64 = 77;
const MESSAGE: i64 = 900;

async fn page_text(app: &TestApp, path: &str) -> String {
    app.get(path).await.text().await.expect("body")
}

async fn approvals_of(app: &TestApp, key: &str) -> Value {
    let (status, resource) = send(app, Method::GET, "/resources/VPN", key, None).await;
    assert_eq!(status, 200, "{resource}");
    resource["approvals"].clone()
}

#[tokio::test]
async fn the_resource_form_saves_the_approval_settings_as_the_api_reads_them_and_audits_them() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let id = create_resource(&app, &key, "VPN").await["id"]
        .as_i64()
        .expect("id");
    let path = format!("/admin/resources/{id}");
    let page = page_text(&app, &path).await;
    assert!(page.contains("Approve in Telegram"), "{page}");
    assert!(
        page.contains(r#"name="approval_number_matching" value="on" checked"#),
        "number matching is on by default: {page}"
    );
    assert!(!page.contains(r#"name="approvals_allowed" value="on" checked"#));

    let form = |ticks: &[(&'static str, &'static str)]| {
        let mut form = vec![
            ("csrf", csrf.clone()),
            ("name", "VPN".to_string()),
            ("description", String::new()),
            ("fail_limit", "5".to_string()),
        ];
        form.extend(ticks.iter().map(|(k, v)| (*k, v.to_string())));
        form
    };
    let post = |form: Vec<(&'static str, String)>| {
        let app = &app;
        let path = path.clone();
        async move {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form(&path, &pairs).await
        }
    };
    let updates = |app: &TestApp| {
        count(
            app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.update' AND actor = 'admin:admin'
             AND detail LIKE '%approvals%'",
        )
    };

    // Approvals on, number matching off, deny locks the token.
    let response = post(form(&[
        ("approvals_shown", "on"),
        ("approvals_allowed", "on"),
        ("approval_deny_locks", "on"),
    ]))
    .await;
    assert_eq!(response.status(), 303);
    let page = page_text(&app, &path).await;
    assert!(
        page.contains(
            "Resource “VPN” saved: approvals allowed, number matching, deny locks the token changed."
        ),
        "{page}"
    );
    assert_eq!(
        approvals_of(&app, &key).await,
        json!({"allowed": true, "number_matching": false, "deny_locks": true})
    );
    assert_eq!(updates(&app), 1, "audited once");
    assert!(page.contains(r#"name="approvals_allowed" value="on" checked"#));
    assert!(!page.contains(r#"name="approval_number_matching" value="on" checked"#));

    // A form without the section (an older page, a script) leaves them as they are.
    let mut older = form(&[]);
    older[2].1 = "Remote access".to_string();
    let response = post(older).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        approvals_of(&app, &key).await,
        json!({"allowed": true, "number_matching": false, "deny_locks": true})
    );
    assert_eq!(updates(&app), 1);

    // What the API changes, the form shows.
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/resources/VPN",
        &key,
        Some(json!({"approvals": {"allowed": false, "number_matching": true}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page = page_text(&app, &path).await;
    assert!(!page.contains(r#"name="approvals_allowed" value="on" checked"#));
    assert!(page.contains(r#"name="approval_number_matching" value="on" checked"#));
    assert!(page.contains(r#"name="approval_deny_locks" value="on" checked"#));
}

/// A pending approval of a sign-in of alice showing the number 42 (as a sign-in writes it),
/// its message sent as `MESSAGE`; its id.
fn approval(app: &TestApp, token_id: i64, label: &str) -> i64 {
    let conn = database(app);
    let now = unix_now() as i64;
    let transaction = format!("tx-{now}-{label}");
    conn.execute(
        "INSERT INTO auth_transactions (id, resource_id, user_id, password_checked, expires_at, created_at)
         VALUES (?1, (SELECT id FROM resources WHERE name = 'VPN'),
                 (SELECT id FROM users WHERE login = 'alice'), 1, ?2, ?3)",
        rusqlite::params![transaction, now + 120, now],
    )
    .expect("transaction");
    conn.query_row(
        "INSERT INTO approvals (transaction_id, token_id, resource_id, chat_id, telegram_user_id,
                                number, message_id, expires_at, created_at)
         VALUES (?1, ?2, (SELECT id FROM resources WHERE name = 'VPN'), ?3, ?4, 42, ?5, ?6, ?7)
         RETURNING id",
        rusqlite::params![transaction, token_id, CHAT, ALICE, MESSAGE, now + 120, now],
        |row| row.get(0),
    )
    .expect("approval")
}

#[tokio::test]
async fn the_dashboard_shows_the_sign_ins_denied_in_telegram() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let dashboard = page_text(&app, "/admin").await;
    assert!(
        dashboard.contains("Approvals denied in the last 24 hours")
            && dashboard.contains("No sign-in was denied in Telegram."),
        "{dashboard}"
    );

    let (status, body) = send(
        &app,
        Method::PUT,
        "/settings/bot",
        &key,
        Some(json!({"token": BOT_TOKEN, "api_url": telegram.url, "poll_timeout_seconds": 1})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    create_resource(&app, &key, "VPN").await;
    for (method, path, body) in [
        (Method::POST, "/users", json!({"login": "alice"})),
        (
            Method::PATCH,
            "/resources/VPN",
            json!({"approvals": {"allowed": true}}),
        ),
    ] {
        let (status, answer) = send(&app, method, path, &key, Some(body)).await;
        assert!(status.is_success(), "{answer}");
    }
    let (status, token) = send(
        &app,
        Method::POST,
        "/tokens",
        &key,
        Some(json!({"kind": "BOT", "name": "alice's phone", "user": "alice", "resource": "VPN"})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let token_id = token["id"].as_i64().expect("id");
    let serial = token["serial"].as_str().expect("serial").to_string();
    let code = token["activation"]["code"].as_str().expect("a code");
    telegram.user_writes(CHAT, ALICE, &format!("/start {code}"));
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, token) = send(
            &app,
            Method::GET,
            &format!("/tokens/{token_id}"),
            &key,
            None,
        )
        .await;
        if token["state"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "never activated: {token}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // One approved, one wrong number, one "This wasn't me".
    for data in ["42", "17", "no"] {
        let id = approval(&app, token_id, data);
        let query = telegram.user_presses(CHAT, ALICE, MESSAGE, &format!("ap:{id}:{data}"));
        telegram
            .wait_for_answer(&query, WAIT)
            .await
            .unwrap_or_else(|| panic!("the press {data} was never answered"));
    }
    let dashboard = page_text(&app, "/admin").await;
    assert!(
        dashboard.contains("This wasn't me <strong>1</strong>")
            && dashboard.contains("Wrong number <strong>1</strong>"),
        "{dashboard}"
    );
    assert!(!dashboard.contains("No sign-in was denied in Telegram."));
    let block = dashboard
        .split("Approvals denied in the last 24 hours")
        .nth(1)
        .expect("the block");
    assert_eq!(block.matches("<td>alice</td>").count(), 2, "{block}");
    assert!(block.contains(&format!(">{serial}</a>")), "{block}");
    assert!(block.contains("/admin/audit?action=auth.approval&amp;result=denied"));

    // The link lists the two denials, and its filter form keeps what it filters by.
    let response = app
        .get("/admin/audit?action=auth.approval&result=denied")
        .await;
    assert_eq!(response.status(), 200);
    let audit = response.text().await.expect("body");
    assert_eq!(
        audit.matches("<td>auth.approval</td>").count(),
        2,
        "{audit}"
    );
    assert!(
        audit.contains(r#"<option value="denied" selected>denied</option>"#),
        "{audit}"
    );
    app.stop().await;
    telegram.stop().await;
}
