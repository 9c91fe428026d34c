//! The admin panel's tokens pages, through real HTTPS with forms and CSRF tokens.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{create_user, send};
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::otp::{totp_now, wait_for_fresh_step};
use crate::helpers::page::{location, secret_on_page};
use crate::helpers::panel::{audit_actors, follow, post_multipart};
use crate::helpers::telegram_api::{TelegramApi, USERNAME};

async fn token_json(app: &TestApp, key: &str, token: &str) -> (u16, Value) {
    let (status, token) = send(app, Method::GET, &format!("/tokens/{token}"), key, None).await;
    (status.as_u16(), token)
}

/// The id in a `/admin/tokens/{id}` address.
fn token_id(path: &str) -> String {
    path.trim_start_matches("/admin/tokens/").to_string()
}

#[tokio::test]
async fn the_tokens_pages_send_a_logged_out_visitor_to_the_login_page() {
    let app = spawn_app().await;
    for path in [
        "/admin/tokens",
        "/admin/tokens/new",
        "/admin/tokens/new/mail",
        "/admin/tokens/1",
        "/admin/tokens/import",
    ] {
        let response = app.get(path).await;
        assert_eq!(location(&response), "/admin/login", "{path}");
    }
    let response = app
        .post_form("/admin/tokens/new/mail", &[("name", "x")])
        .await;
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn add_token_mail_for_a_user_creates_and_assigns_it_in_one_step() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let user = create_user(&app, &key, json!({ "login": "jdoe" })).await;
    let user_id = user["id"].to_string();
    let empty = app.get("/admin/tokens").await.text().await.expect("body");
    assert!(empty.contains("No tokens yet."));
    let choices = app
        .get(&format!("/admin/tokens/new?user={user_id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(choices.contains("Software tokens") && choices.contains("Hardware tokens"));
    assert!(choices.contains(&format!("/admin/tokens/new/mail?user={user_id}")));

    let wrong = app
        .post_form(
            "/admin/tokens/new/mail",
            &[
                ("csrf", &csrf),
                ("user", &user_id),
                ("name", "Work mail"),
                ("destination", "jdoe at example"),
                ("digits", "8"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let page = wrong.text().await.expect("body");
    assert!(page.contains("value=\"Work mail\"") && page.contains("value=\"jdoe at example\""));
    assert!(page.contains("is not an email address"), "{page}");

    let created = app
        .post_form(
            "/admin/tokens/new/mail",
            &[
                ("csrf", &csrf),
                ("user", &user_id),
                ("name", "Work mail"),
                ("destination", "jdoe@example.com"),
                ("digits", "8"),
                ("pin", "4711"),
                ("pin_position", "after"),
            ],
        )
        .await;
    let id = token_id(&location(&created));
    let page = follow(&app, created).await;
    assert!(page.contains("created and assigned to jdoe."), "{page}");
    assert!(page.contains("set (after the code)"));
    assert!(!page.contains("4711"), "a PIN is never shown");
    let (_, token) = token_json(&app, &key, &id).await;
    assert_eq!(token["kind"], "MAIL");
    assert_eq!(token["digits"], 8);
    assert_eq!(token["state"], "active");
    assert_eq!(token["has_pin"], true);
    assert_eq!(token["user"]["login"], "jdoe");
    assert_eq!(audit_actors(&app, "token.create"), vec!["admin:admin"]);
    let list = app
        .get("/admin/tokens?kind=MAIL")
        .await
        .text()
        .await
        .expect("body");
    assert!(list.contains("Work mail") && list.contains("1 token"));
    let list = app
        .get("/admin/tokens?kind=SMS")
        .await
        .text()
        .await
        .expect("body");
    assert!(list.contains("No tokens match."));
    let list = app
        .get("/admin/tokens?search=jdo")
        .await
        .text()
        .await
        .expect("body");
    assert!(list.contains("Work mail"));
}

#[tokio::test]
async fn an_authenticator_app_shows_its_qr_code_once_and_is_active_after_its_first_code() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let response = app
        .post_form(
            "/admin/tokens/new/app",
            &[("csrf", &csrf), ("name", "Phone"), ("digits", "6")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(page.contains("data:image/svg+xml;base64,"));
    let secret = secret_on_page(&page);
    let action = page
        .split("action=\"/admin/tokens/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a confirm form")
        .to_string();
    let id = action.trim_end_matches("/confirm").to_string();
    assert_eq!(token_json(&app, &key, &id).await.1["state"], "pending");
    let later = app
        .get(&format!("/admin/tokens/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        !later.contains("data:image/svg+xml"),
        "the QR code is not shown again"
    );
    assert!(later.contains("Confirm the authenticator app"));

    wait_for_fresh_step(5).await;
    let wrong = app
        .post_form(
            &format!("/admin/tokens/{id}/confirm"),
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let right = app
        .post_form(
            &format!("/admin/tokens/{id}/confirm"),
            &[("csrf", &csrf), ("code", &totp_now(&secret, 0))],
        )
        .await;
    assert!(follow(&app, right).await.contains("the token is active"));
    assert_eq!(token_json(&app, &key, &id).await.1["state"], "active");
    assert_eq!(audit_actors(&app, "token.activate"), vec!["admin:admin"]);
}

/// The first `https://t.me/…?start=CODE` link on a page, and its code.
fn deep_link_on(page: &str) -> (String, String) {
    let start = page
        .find("https://t.me/")
        .unwrap_or_else(|| panic!("no activation link on the page:\n{page}"));
    let link: String = page[start..]
        .chars()
        .take_while(|c| !matches!(c, '"' | '<' | ' '))
        .collect();
    let code = link.split("?start=").nth(1).expect("a code").to_string();
    (link, code)
}

#[tokio::test]
async fn a_bot_token_added_in_the_panel_shows_its_activation_qr_and_is_activated_through_the_bot() {
    let telegram = TelegramApi::start().await;
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let bot_token = "5555:panel-bot-token";
    let settings = |token: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("token", token.to_string()),
            ("api_url", telegram.url.clone()),
            ("poll_timeout_seconds", "1".to_string()),
            ("timeout_seconds", "5".to_string()),
        ]
    };
    let as_refs = |pairs: &[(&'static str, String)]| {
        pairs
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect::<Vec<_>>()
    };
    let form = as_refs(&settings("not a token"));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = app.post_form("/admin/settings/telegram", &form).await;
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.expect("body");
    assert!(page.contains("@BotFather gives it"), "{page}");
    assert!(
        !page.contains("not a token"),
        "a typed token is never echoed back"
    );
    assert!(page.contains(&telegram.url), "the other values are kept");

    let form = as_refs(&settings(bot_token));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = app.post_form("/admin/settings/telegram", &form).await;
    assert_eq!(saved.status(), 303);
    assert_eq!(location(&saved), "/admin/settings?saved=telegram#telegram");
    let mut page = String::new();
    for _ in 0..200 {
        page = app.get("/admin/settings").await.text().await.expect("body");
        if page.contains(&format!("running as @{USERNAME}")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(page.contains(&format!("running as @{USERNAME}")), "{page}");
    assert!(!page.contains(bot_token), "the stored token is never shown");
    assert_eq!(
        audit_actors(&app, "settings.bot.update"),
        vec!["admin:admin"]
    );

    let response = app
        .post_form(
            "/admin/tokens/new/bot",
            &[
                ("csrf", &csrf),
                ("name", "Chat"),
                ("messenger", "telegram"),
                ("digits", "6"),
            ],
        )
        .await;
    assert_eq!(
        response.status(),
        200,
        "the code is shown once, on this answer"
    );
    let page = response.text().await.expect("body");
    let (link, code) = deep_link_on(&page);
    assert_eq!(link, format!("https://t.me/{USERNAME}?start={code}"));
    assert!(
        page.contains("data:image/svg+xml;base64,"),
        "a QR code of the link"
    );
    assert!(page.contains(&format!("/start {code}")));
    let back = page
        .split("href=\"/admin/tokens/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link back to the token")
        .to_string();
    let (_, token) = token_json(&app, &key, &back).await;
    assert_eq!(token["state"], "pending");
    let shown = app
        .get(&format!("/admin/tokens/{back}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(shown.contains("Waiting for the user"), "{shown}");
    assert!(!shown.contains(&code), "the code is not shown again");

    telegram.user_writes(9001, 9001, &format!("/start {code}"));
    let mut state = Value::Null;
    for _ in 0..200 {
        state = token_json(&app, &key, &back).await.1["state"].clone();
        if state == "active" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "active");
    let shown = app
        .get(&format!("/admin/tokens/{back}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(shown.contains("Active: its codes go to"), "{shown}");

    let again = app
        .post_form(
            &format!("/admin/tokens/{back}/activation"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status(), 200);
    let (_, fresh) = deep_link_on(&again.text().await.expect("body"));
    assert_ne!(fresh, code, "a new activation is a new code");
    assert_eq!(
        audit_actors(&app, "token.bot_activation"),
        vec!["admin:admin"]
    );
    let forged = app
        .post_form(
            &format!("/admin/tokens/{back}/activation"),
            &[("csrf", "x")],
        )
        .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(
        audit_actors(&app, "token.bot_activation").len(),
        1,
        "nothing changed"
    );
    telegram.stop().await;
}

#[tokio::test]
async fn a_hardware_token_is_added_by_serial_and_seed_and_a_taken_serial_is_refused() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let seed = "3132333435363738393031323334353637383930";
    let add = |serial: &'static str, secret: &'static str| {
        let csrf = csrf.clone();
        let app = &app;
        async move {
            app.post_form(
                "/admin/tokens/new/hardware",
                &[
                    ("csrf", csrf.as_str()),
                    ("kind", "HOTP"),
                    ("serial", serial),
                    ("secret", secret),
                    ("secret_format", "hex"),
                    ("algorithm", "SHA1"),
                    ("counter", "0"),
                    ("digits", "6"),
                    ("name", "Key fob"),
                ],
            )
            .await
        }
    };
    let created = add("FOB-1", seed).await;
    assert_eq!(created.status(), 303);
    let (_, token) = token_json(&app, &key, "FOB-1").await;
    assert_eq!(token["kind"], "HOTP");
    assert_eq!(token["state"], "active");
    assert_eq!(token["user"], Value::Null);

    let again = add("FOB-1", seed).await;
    assert_eq!(again.status(), 400);
    let page = again.text().await.expect("body");
    assert!(
        page.contains("exists already") && page.contains("value=\"FOB-1\""),
        "{page}"
    );
    assert!(!page.contains(seed), "the seed is not echoed back");

    let bad_seed = add("FOB-2", "zz").await;
    assert_eq!(bad_seed.status(), 400);
    assert_eq!(token_json(&app, &key, "FOB-2").await.0, 404);
}

#[tokio::test]
async fn a_mail_or_sms_tokens_address_is_changed_on_its_page_and_a_wrong_one_changes_nothing() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    for (kind, old, new, wrong, stored) in [
        (
            "MAIL",
            "old@example.com",
            "new@example.com",
            "not an address",
            "new@example.com",
        ),
        (
            "SMS",
            "+4915100000001",
            "+49 151 0000 0002",
            "0151 2",
            "+4915100000002",
        ),
    ] {
        let (status, token) = send(
            &app,
            Method::POST,
            "/tokens",
            &key,
            Some(json!({ "kind": kind, "destination": old })),
        )
        .await;
        assert_eq!(status, 201, "{token}");
        let id = token["id"].to_string();
        let base = format!("/admin/tokens/{id}");
        let page = app.get(&base).await.text().await.expect("body");
        assert!(page.contains(&format!("{base}/destination")), "{page}");
        assert!(page.contains(&format!("value=\"{old}\"")), "{page}");

        let refused = app
            .post_form(
                &format!("{base}/destination"),
                &[("csrf", &csrf), ("destination", wrong)],
            )
            .await;
        assert_eq!(refused.status(), 400, "{kind}");
        let page = refused.text().await.expect("body");
        assert!(page.contains("field-error"), "{page}");
        assert_eq!(token_json(&app, &key, &id).await.1["destination"], old);

        let changed = app
            .post_form(
                &format!("{base}/destination"),
                &[("csrf", &csrf), ("destination", new)],
            )
            .await;
        assert_eq!(changed.status(), 303, "{kind}");
        assert!(
            follow(&app, changed)
                .await
                .contains("Address changed: the next codes go there.")
        );
        assert_eq!(token_json(&app, &key, &id).await.1["destination"], stored);
    }
    // A token without an address has no such form, and a forged one is refused.
    let (_, app_token) = send(
        &app,
        Method::POST,
        "/tokens",
        &key,
        Some(json!({ "kind": "TOTP", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" })),
    )
    .await;
    let base = format!("/admin/tokens/{}", app_token["id"]);
    let page = app.get(&base).await.text().await.expect("body");
    assert!(!page.contains(&format!("{base}/destination")));
    let forged = app
        .post_form(
            &format!("{base}/destination"),
            &[("csrf", &csrf), ("destination", "x@example.com")],
        )
        .await;
    assert_eq!(forged.status(), 400);
}

#[tokio::test]
async fn a_tokens_page_offers_every_action_and_each_one_is_applied_and_audited() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    create_user(&app, &key, json!({ "login": "kim" })).await;
    let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let (status, token) = send(
        &app,
        Method::POST,
        "/tokens",
        &key,
        Some(json!({ "kind": "TOTP", "serial": "APP-1", "user": "kim", "secret": seed })),
    )
    .await;
    assert_eq!(status, 201);
    let id = token["id"].to_string();
    let base = format!("/admin/tokens/{id}");
    let page = app.get(&base).await.text().await.expect("body");
    for action in ["disable", "unassign", "rename", "pin", "resync", "delete"] {
        assert!(
            page.contains(&format!("{base}/{action}")),
            "{action}: {page}"
        );
    }

    let disabled = app
        .post_form(&format!("{base}/disable"), &[("csrf", &csrf)])
        .await;
    assert!(follow(&app, disabled).await.contains("Token disabled."));
    assert_eq!(token_json(&app, &key, &id).await.1["enabled"], false);
    app.post_form(&format!("{base}/enable"), &[("csrf", &csrf)])
        .await;
    assert_eq!(token_json(&app, &key, &id).await.1["enabled"], true);

    let renamed = app
        .post_form(
            &format!("{base}/rename"),
            &[("csrf", &csrf), ("name", "Kim's phone")],
        )
        .await;
    assert_eq!(renamed.status(), 303);
    assert_eq!(token_json(&app, &key, &id).await.1["name"], "Kim's phone");

    let short = app
        .post_form(
            &format!("{base}/pin"),
            &[
                ("csrf", &csrf),
                ("action", "set"),
                ("pin", "12"),
                ("pin_position", "before"),
            ],
        )
        .await;
    assert_eq!(short.status(), 400);
    assert!(
        short
            .text()
            .await
            .expect("body")
            .contains("4 to 64 characters")
    );
    app.post_form(
        &format!("{base}/pin"),
        &[
            ("csrf", &csrf),
            ("action", "set"),
            ("pin", "2468"),
            ("pin_position", "after"),
        ],
    )
    .await;
    let (_, token) = token_json(&app, &key, &id).await;
    assert_eq!(
        (token["has_pin"].clone(), token["pin_position"].clone()),
        (json!(true), json!("after"))
    );
    app.post_form(
        &format!("{base}/pin"),
        &[("csrf", &csrf), ("action", "clear")],
    )
    .await;
    assert_eq!(token_json(&app, &key, &id).await.1["has_pin"], false);

    let secret = otpgate::otp::decode_base32_secret(seed).expect("base32");
    let wrong = app
        .post_form(
            &format!("{base}/resync"),
            &[("csrf", &csrf), ("otp1", "123456"), ("otp2", "654321")],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    assert!(
        wrong
            .text()
            .await
            .expect("body")
            .contains("not found as consecutive codes")
    );
    let resynced = app
        .post_form(
            &format!("{base}/resync"),
            &[
                ("csrf", &csrf),
                ("otp1", &totp_now(&secret, 20)),
                ("otp2", &totp_now(&secret, 21)),
            ],
        )
        .await;
    assert!(
        follow(&app, resynced)
            .await
            .contains("Token resynchronised")
    );
    assert_eq!(audit_actors(&app, "token.resync"), vec!["admin:admin"]);

    let reset = app
        .post_form(&format!("{base}/reset"), &[("csrf", &csrf)])
        .await;
    assert_eq!(reset.status(), 303);
    let unassigned = app
        .post_form(&format!("{base}/unassign"), &[("csrf", &csrf)])
        .await;
    assert_eq!(unassigned.status(), 303);
    assert_eq!(token_json(&app, &key, &id).await.1["user"], Value::Null);

    let forged = app
        .post_form(&format!("{base}/delete"), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(token_json(&app, &key, &id).await.0, 200);
    let confirm = app
        .get(&format!("{base}/delete"))
        .await
        .text()
        .await
        .expect("body");
    assert!(confirm.contains("cannot be undone"));
    let deleted = app
        .post_form(&format!("{base}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&deleted), "/admin/tokens");
    assert_eq!(token_json(&app, &key, &id).await.0, 404);
    assert_eq!(app.get(&base).await.status(), 404);
    for action in [
        "token.disable",
        "token.enable",
        "token.update",
        "token.reset",
        "token.unassign",
        "token.delete",
    ] {
        assert!(
            audit_actors(&app, action)
                .iter()
                .all(|actor| actor == "admin:admin")
                && !audit_actors(&app, action).is_empty(),
            "{action}"
        );
    }
}

#[tokio::test]
async fn a_seed_file_is_previewed_then_imported_without_showing_a_seed() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let file = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/good.csv"),
    )
    .expect("fixture");
    let bad = post_multipart(
        &app,
        "/admin/tokens/import",
        &[("csrf", &csrf), ("format", "auto")],
        ("file", "bad.csv", b"SERIAL-X,not-a-secret!\n"),
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("was not imported"));

    let preview = post_multipart(
        &app,
        "/admin/tokens/import",
        &[("csrf", &csrf), ("format", "auto")],
        ("file", "good.csv", &file),
    )
    .await;
    assert_eq!(preview.status(), 200);
    let page = preview.text().await.expect("body");
    assert!(page.contains("Import "), "{page}");
    let text = String::from_utf8_lossy(&file);
    let first = text
        .lines()
        .find(|line| {
            !line.starts_with('#')
                && !line.to_lowercase().starts_with("serial")
                && !line.trim().is_empty()
        })
        .expect("a record");
    let mut fields = first.split(',');
    let serial = fields.next().expect("serial").trim().to_string();
    let seed = fields.next().expect("secret").trim().to_string();
    assert!(page.contains(&serial));
    assert!(!page.contains(&seed), "the seed is not in the page");
    assert_eq!(
        token_json(&app, &key, &serial).await.0,
        404,
        "a preview imports nothing"
    );

    let sealed = crate::helpers::page::hidden_value(&page, "sealed");
    let tampered = app
        .post_form(
            "/admin/tokens/import/confirm",
            &[("csrf", &csrf), ("sealed", &sealed[4..])],
        )
        .await;
    assert_eq!(tampered.status(), 400);
    let imported = app
        .post_form(
            "/admin/tokens/import/confirm",
            &[("csrf", &csrf), ("sealed", &sealed)],
        )
        .await;
    let page = follow(&app, imported).await;
    assert!(
        page.contains("tokens imported.") && !page.contains("(s)"),
        "{page}"
    );
    assert_eq!(token_json(&app, &key, &serial).await.0, 200);
    assert_eq!(audit_actors(&app, "token.import"), vec!["admin:admin"]);
    let again = app
        .post_form(
            "/admin/tokens/import/confirm",
            &[("csrf", &csrf), ("sealed", &sealed)],
        )
        .await;
    assert_eq!(again.status(), 400, "serials taken: nothing imported");
}
