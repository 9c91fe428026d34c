//! Authentication as a VPN gateway drives it: the password first, then the code with the
//! transaction alone (the gateway does not keep the password); a transaction is one login;
//! locked and missing second factors are refused plainly; codes are not sent over and over,
//! and `sent` says whether a code really went.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::database;
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::auth::{
    Fixture, SEED_BASE32, authenticate, call, fixture, queued_code, totp, user_with_token,
};

const PASSWORD: &str = "user password 1";

/// `vpn` asks for the password, and `ann` has an authenticator app and a MAIL token there:
/// their ids.
async fn password_resource(app: &TestApp) -> (Fixture, i64, i64) {
    let fx = fixture(app, 10).await;
    let (status, body) = call(
        app,
        Method::PATCH,
        "/resources/vpn",
        &fx.admin,
        json!({"password_required": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let app_token = user_with_token(
        app,
        &fx,
        "ann",
        json!({"kind": "TOTP", "secret": SEED_BASE32}),
    )
    .await;
    let mail = add_token(app, &fx, "ann", json!({"kind": "MAIL"})).await;
    (fx, app_token, mail)
}

/// One more token of `login`, in `vpn`.
async fn add_token(app: &TestApp, fx: &Fixture, login: &str, token: Value) -> i64 {
    let mut token = token;
    token["user"] = json!(login);
    token["resource"] = json!("vpn");
    let (status, body) = call(app, Method::POST, "/tokens", &fx.admin, token).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("token id")
}

/// The password step: its transaction.
async fn password_step(app: &TestApp, key: &str, login: &str) -> String {
    let (status, body) = authenticate(app, key, json!({"user": login, "password": PASSWORD})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "challenge", "{body}");
    body["transaction"]
        .as_str()
        .expect("a transaction")
        .to_string()
}

/// The reasons the audit log gives for `action`, oldest first.
fn audit_reasons(app: &TestApp, action: &str) -> Vec<(String, Option<String>)> {
    let conn = database(app);
    let mut statement = conn
        .prepare("SELECT result, reason FROM audit_log WHERE action = ?1 ORDER BY id")
        .expect("prepare");
    statement
        .query_map([action], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

#[tokio::test]
async fn the_transaction_of_a_checked_password_stands_in_for_it_once() {
    let app = spawn_app().await;
    let (fx, _, _) = password_resource(&app).await;
    crate::helpers::otp::wait_for_fresh_step(5).await;
    let transaction = password_step(&app, &fx.app_key, "ann").await;
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "ann", "otp": totp(0)})).await;
    assert_eq!(
        body["result"], "rejected",
        "a code alone is not enough where the password is required"
    );
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ann", "transaction": transaction, "otp": totp(0)}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    // Answered once, it stands in no more: not with the next code either.
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ann", "transaction": transaction, "otp": totp(1)}),
    )
    .await;
    assert_eq!(body["result"], "rejected", "{body}");
    let reasons = audit_reasons(&app, "auth.authenticate");
    assert_eq!(
        reasons.last().map(|(_, reason)| reason.as_deref()),
        Some(Some("password_required"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_transaction_stands_in_only_for_its_user_its_resource_its_password_and_its_time() {
    let app = spawn_app().await;
    let (fx, app_token, _) = password_resource(&app).await;
    user_with_token(
        &app,
        &fx,
        "bob",
        json!({"kind": "TOTP", "secret": SEED_BASE32}),
    )
    .await;
    crate::helpers::otp::wait_for_fresh_step(5).await;

    // Another user's transaction.
    let anns = password_step(&app, &fx.app_key, "ann").await;
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "bob", "transaction": anns, "otp": totp(0)}),
    )
    .await;
    assert_eq!(body["result"], "rejected", "{body}");

    // A transaction of another resource: ann's password checked for `wiki`.
    let (status, body) = call(
        &app,
        Method::POST,
        "/resources",
        &fx.admin,
        json!({"name": "wiki", "password_required": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for user in ["ann", "bob"] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/resources/wiki/users",
            &fx.admin,
            json!({ "user": user }),
        )
        .await;
        assert!(status == 200 || status == 204, "{body}");
    }
    let (status, body) = call(
        &app,
        Method::POST,
        "/resources/wiki/tokens",
        &fx.admin,
        json!({ "token": app_token }),
    )
    .await;
    assert!(status == 200 || status == 204, "{body}");
    let wiki_key = app.api_key(&["--resource", "wiki"]);
    let wikis = password_step(&app, &wiki_key, "ann").await;
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ann", "transaction": wikis, "otp": totp(0)}),
    )
    .await;
    assert_eq!(body["result"], "rejected", "{body}");

    // A transaction of a `prepare`: no password was checked for it.
    let (status, prepared) = call(
        &app,
        Method::POST,
        "/auth/prepare",
        &fx.app_key,
        json!({"user": "ann"}),
    )
    .await;
    assert_eq!(status, 200, "{prepared}");
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ann", "transaction": prepared["transaction"], "otp": totp(0)}),
    )
    .await;
    assert_eq!(body["result"], "rejected", "{body}");

    // An expired transaction.
    database(&app)
        .execute(
            "UPDATE auth_transactions SET expires_at = 1 WHERE id = ?1",
            [&anns],
        )
        .expect("expire");
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ann", "transaction": anns, "otp": totp(0)}),
    )
    .await;
    assert_eq!(body["result"], "rejected", "{body}");

    // Ann's own, live one still works.
    let fresh = password_step(&app, &fx.app_key, "ann").await;
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ann", "transaction": fresh, "otp": totp(0)}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_code_sent_with_the_password_step_completes_the_login_without_the_password() {
    let app = spawn_app().await;
    let (fx, _, mail) = password_resource(&app).await;
    let transaction = password_step(&app, &fx.app_key, "ann").await;
    let code = queued_code(&app, mail);
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ann", "transaction": transaction, "otp": code}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    assert_eq!(body["token"]["id"], mail);
    app.stop().await;
}

#[tokio::test]
async fn a_transaction_is_one_login_so_its_other_codes_are_void_once_one_is_accepted() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    let mail = user_with_token(&app, &fx, "cleo", json!({"kind": "MAIL"})).await;
    let sms = add_token(
        &app,
        &fx,
        "cleo",
        json!({"kind": "SMS", "destination": "+4915112345678"}),
    )
    .await;
    let (status, prepared) = call(
        &app,
        Method::POST,
        "/auth/prepare",
        &fx.app_key,
        json!({"user": "cleo"}),
    )
    .await;
    assert_eq!(status, 200, "{prepared}");
    assert_eq!(prepared["challenges"].as_array().map(Vec::len), Some(2));
    let transaction = prepared["transaction"].clone();
    let (mail_code, sms_code) = (queued_code(&app, mail), queued_code(&app, sms));
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "cleo", "transaction": transaction, "otp": mail_code}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    for with_transaction in [true, false] {
        let mut attempt = json!({"user": "cleo", "otp": sms_code});
        if with_transaction {
            attempt["transaction"] = transaction.clone();
        }
        let (_, body) = authenticate(&app, &fx.app_key, attempt).await;
        assert_eq!(body["result"], "rejected", "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_password_whose_only_second_factor_is_locked_is_refused_as_locked() {
    let app = spawn_app().await;
    let fx = fixture(&app, 3).await;
    user_with_token(
        &app,
        &fx,
        "dina",
        json!({"kind": "TOTP", "secret": SEED_BASE32}),
    )
    .await;
    for _ in 0..3 {
        authenticate(&app, &fx.app_key, json!({"user": "dina", "otp": "000000"})).await;
    }
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "dina", "password": PASSWORD}),
    )
    .await;
    assert_eq!(body["result"], "rejected", "{body}");
    let reasons = audit_reasons(&app, "auth.authenticate");
    assert_eq!(
        reasons.last(),
        Some(&("rejected".to_string(), Some("token_locked".to_string())))
    );
    app.stop().await;
}

#[tokio::test]
async fn without_an_active_second_factor_the_password_alone_is_refused_unless_the_resource_allows_it()
 {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    // No token at all; a disabled one; a BOT token waiting for its activation; a token that
    // is the user's but not assigned to this resource.
    let (status, _) = call(
        &app,
        Method::POST,
        "/users",
        &fx.admin,
        json!({"login": "nobody", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &app,
        Method::POST,
        "/resources/vpn/users",
        &fx.admin,
        json!({"user": "nobody"}),
    )
    .await;
    assert!(status == 200 || status == 204);
    let disabled = user_with_token(
        &app,
        &fx,
        "disa",
        json!({"kind": "TOTP", "secret": SEED_BASE32}),
    )
    .await;
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/tokens/{disabled}/disable"),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    user_with_token(&app, &fx, "pend", json!({"kind": "BOT"})).await;
    user_with_token(
        &app,
        &fx,
        "else",
        json!({"kind": "TOTP", "secret": SEED_BASE32}),
    )
    .await;
    database(&app)
        .execute(
            "DELETE FROM token_resources WHERE token_id IN
               (SELECT id FROM tokens WHERE user_id = (SELECT id FROM users WHERE login = 'else'))",
            [],
        )
        .expect("unassign");
    let logins = ["nobody", "disa", "pend", "else"];
    for login in logins {
        let (_, body) = authenticate(
            &app,
            &fx.app_key,
            json!({"user": login, "password": PASSWORD}),
        )
        .await;
        assert_eq!(body["result"], "rejected", "{login}: {body}");
    }
    let reasons = audit_reasons(&app, "auth.authenticate");
    assert!(
        reasons
            .iter()
            .rev()
            .take(4)
            .all(|(_, reason)| reason.as_deref() == Some("no_second_factor")),
        "{reasons:?}"
    );
    let (status, resource) =
        call(&app, Method::GET, "/resources/vpn", &fx.admin, Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(resource["without_second_factor"], "refuse");

    let (status, body) = call(
        &app,
        Method::PATCH,
        "/resources/vpn",
        &fx.admin,
        json!({"without_second_factor": "password_only"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for login in logins {
        let (_, body) = authenticate(
            &app,
            &fx.app_key,
            json!({"user": login, "password": PASSWORD}),
        )
        .await;
        assert_eq!(body["result"], "accepted", "{login}: {body}");
    }
    let reasons = audit_reasons(&app, "auth.authenticate");
    assert!(
        reasons
            .iter()
            .rev()
            .take(4)
            .all(|(result, reason)| result == "accepted"
                && reason.as_deref() == Some("password_only")),
        "{reasons:?}"
    );
    let (status, body) = call(
        &app,
        Method::PATCH,
        "/resources/vpn",
        &fx.admin,
        json!({"without_second_factor": "sometimes"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

/// The number of messages queued for a token.
fn messages(app: &TestApp, token_id: i64) -> i64 {
    database(app)
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE token_id = ?1",
            [token_id],
            |row| row.get(0),
        )
        .expect("count")
}

#[tokio::test]
async fn a_second_prepare_within_the_wait_re_uses_the_code_and_sends_nothing() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    let sms = user_with_token(
        &app,
        &fx,
        "emil",
        json!({"kind": "SMS", "destination": "+4915112345678"}),
    )
    .await;
    let prepare = || {
        call(
            &app,
            Method::POST,
            "/auth/prepare",
            &fx.app_key,
            json!({"user": "emil"}),
        )
    };
    let (_, first) = prepare().await;
    assert_eq!(first["challenges"][0]["delivery"], "queued", "{first}");
    assert_eq!(first["challenges"][0]["sent"], true);
    let (_, second) = prepare().await;
    assert_eq!(second["challenges"][0]["delivery"], "cooldown", "{second}");
    assert_eq!(second["challenges"][0]["sent"], false);
    assert_eq!(messages(&app, sms), 1, "one SMS, not two");
    // The code sent first completes the second transaction.
    let code = queued_code(&app, sms);
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "emil", "transaction": second["transaction"], "otp": code}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    let reasons = audit_reasons(&app, "auth.send");
    assert_eq!(
        reasons,
        vec![("skipped".to_string(), Some("cooldown".to_string()))]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_gets_no_more_messages_per_hour_than_the_cap_of_the_channel() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let fx = fixture(&app, 5).await;
    let response = app
        .post_form(
            "/admin/settings/general",
            &[
                ("csrf", &csrf),
                ("default_otp_length", "6"),
                ("challenge_validity_seconds", "300"),
                ("resend_cooldown_seconds", "0"),
                ("sms_per_hour", "2"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let sms = user_with_token(
        &app,
        &fx,
        "fritz",
        json!({"kind": "SMS", "destination": "+4915112345678"}),
    )
    .await;
    let mut deliveries = Vec::new();
    for _ in 0..3 {
        let (_, body) = call(
            &app,
            Method::POST,
            "/auth/prepare",
            &fx.app_key,
            json!({"user": "fritz"}),
        )
        .await;
        deliveries.push(body["challenges"][0]["delivery"].clone());
    }
    assert_eq!(deliveries, vec!["queued", "queued", "capped"]);
    assert_eq!(messages(&app, sms), 2);
    assert_eq!(
        audit_reasons(&app, "auth.send"),
        vec![("skipped".to_string(), Some("capped".to_string()))]
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(r#"otpgate_sends_held_total{channel="sms",reason="capped"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn sent_is_false_when_the_channel_is_not_set_up_and_the_portal_says_so() {
    let portal = crate::helpers::portal::Portal::start(&["enroll_token"], &["MAIL"]).await;
    portal
        .user(json!({"login": "gina", "password": PASSWORD, "email": "gina@example.com"}))
        .await;
    let token = portal
        .token(json!({"kind": "MAIL", "user": "gina", "resource": "vpn"}))
        .await;
    let app_key = portal.app.api_key(&["--resource", "vpn"]);
    let (status, prepared) = portal
        .api
        .call(
            Method::POST,
            "/auth/prepare",
            &app_key,
            json!({"user": "gina"}),
        )
        .await;
    assert_eq!(status, 200, "{prepared}");
    assert_eq!(prepared["challenges"][0]["sent"], false, "{prepared}");
    assert_eq!(prepared["challenges"][0]["delivery"], "not_configured");
    assert_eq!(messages(&portal.app, token), 0);

    let browser = portal.browser();
    let response = browser.log_in_with_password("gina", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let page = browser.page("/portal/vpn/login/verify").await;
    assert!(
        page.contains("Email is not set up on this server"),
        "{page}"
    );
    assert!(!page.contains("We have sent you"), "{page}");
}
