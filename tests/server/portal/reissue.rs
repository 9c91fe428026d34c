//! Reissue Token in the portal for the kinds beyond the TOTP app and BOT (tokens.rs):
//! a software HOTP app gets a new seed, MAIL and SMS tokens a new activation at a new address
//! or number through the real SMTP listener and SMS gateway, a BOT token whose user blocked the
//! bot is re-activated in a new chat, and hardware tokens get none.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::page::{hidden_value, location, secret_on_page};
use crate::helpers::portal::{
    Browser, Portal, SECRET, SECRET_HEX, activation_on, totp_now, wait_until_active, with_bot,
    with_mail, with_sms,
};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "a long enough password";

/// The 6-digit HOTP code of `secret` at `counter`.
fn hotp(secret: &[u8], counter: u64) -> String {
    otpgate::otp::hotp(secret, otpgate::otp::Algorithm::Sha1, 6, counter)
}

/// What `POST /api/v1/auth/authenticate` answers for the user's code in `vpn`.
async fn authenticate(portal: &Portal, key: &str, user: &str, otp: &str) -> Value {
    let (status, body) = portal
        .api
        .call(
            Method::POST,
            "/auth/authenticate",
            key,
            json!({"resource": "vpn", "user": user, "otp": otp}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

/// Logs in with password and the one-time password `otp`.
async fn log_in(portal: &Portal, login: &str, otp: &str) -> Browser {
    let browser = portal.browser();
    let response = browser.log_in_with_password(login, PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let done = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", otp)],
        )
        .await;
    assert_eq!(location(&done), "/portal/vpn", "logged in with {otp}");
    browser
}

#[tokio::test]
async fn a_reissued_hotp_app_counts_afresh_from_its_new_seed_once_its_first_code_is_typed() {
    let portal = Portal::start(&["reissue_token"], &[]).await;
    let app_key = portal.admin.clone();
    portal
        .user(json!({"login": "hana", "password": PASSWORD}))
        .await;
    // No serial given: otpgate makes one, so this is an app, not a hardware token.
    let token = portal
        .token(
            json!({"kind": "HOTP", "user": "hana", "resource": "vpn", "name": "Counter app",
                   "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let browser = log_in(&portal, "hana", &hotp(SECRET, 0)).await;
    let reissue = format!("/portal/vpn/tokens/{token}/reissue");
    assert!(
        browser
            .page(&format!("/portal/vpn/tokens/{token}"))
            .await
            .contains(&reissue)
    );
    assert!(
        browser
            .page(&reissue)
            .await
            .contains("new QR code for your authenticator app")
    );

    let page = browser
        .submit(&reissue, &reissue, &[])
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("data:image/svg+xml;base64,"), "a QR code");
    let new_secret = secret_on_page(&page);
    assert_ne!(new_secret, SECRET);
    assert_eq!(
        authenticate(&portal, &app_key, "hana", &hotp(SECRET, 1)).await,
        "accepted",
        "the old seed works until the new one is confirmed"
    );

    let confirm = format!("{reissue}/confirm");
    let csrf = hidden_value(&page, "csrf");
    let wrong = browser
        .post(&confirm, &[("csrf", &csrf), ("code", &hotp(SECRET, 2))])
        .await;
    assert_eq!(
        wrong.status(),
        400,
        "the old seed's code is not the new one's"
    );
    let right = browser
        .post(
            &confirm,
            &[("csrf", &csrf), ("code", &hotp(&new_secret, 0))],
        )
        .await;
    assert_eq!(right.status(), 303);
    assert!(browser.page("/portal/vpn").await.contains("is reissued"));
    assert_eq!(
        portal.count(&format!("SELECT last_step FROM tokens WHERE id = {token}")),
        0,
        "the counter starts afresh at the new seed's first code"
    );

    assert_eq!(
        authenticate(&portal, &app_key, "hana", &hotp(SECRET, 2)).await,
        "rejected",
        "the old seed stopped working"
    );
    assert_eq!(
        authenticate(&portal, &app_key, "hana", &hotp(&new_secret, 0)).await,
        "rejected",
        "the first code is used up"
    );
    assert_eq!(
        authenticate(&portal, &app_key, "hana", &hotp(&new_secret, 1)).await,
        "accepted",
        "the new seed's next code works"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_reissue' AND result = 'ok'"
        ),
        1
    );
}

#[tokio::test]
async fn a_mail_token_moves_to_a_new_address_only_once_the_code_sent_there_is_typed() {
    let portal = Portal::start(&["reissue_token"], &[]).await;
    let sink = with_mail(&portal).await;
    let app_key = portal.admin.clone();
    portal
        .user(json!({"login": "ida", "password": PASSWORD}))
        .await;
    let token = portal
        .token(
            json!({"kind": "MAIL", "user": "ida", "resource": "vpn", "name": "Mail",
                   "destination": "ida@example.com"}),
        )
        .await;
    let browser = portal.browser();
    let response = browser.log_in_with_password("ida", PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let mail = sink.wait_for(1, WAIT).await;
    let code = crate::helpers::smtp_sink::code_in(&mail[0].data).expect("a login code");
    let done = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &code)],
        )
        .await;
    assert_eq!(location(&done), "/portal/vpn");

    let reissue = format!("/portal/vpn/tokens/{token}/reissue");
    assert!(
        browser
            .page(&format!("/portal/vpn/tokens/{token}"))
            .await
            .contains(&reissue)
    );
    let form = browser.page(&reissue).await;
    assert!(
        form.contains("name=\"destination\" value=\"ida@example.com\""),
        "prefilled with the current address: {form}"
    );
    let bad = browser
        .submit(&reissue, &reissue, &[("destination", "not an address")])
        .await;
    assert_eq!(bad.status(), 400, "checked as at enrolment");
    let page = bad.text().await.expect("body");
    assert!(page.contains("Check the new value"), "{page}");
    assert!(page.contains("value=\"not an address\""), "kept as typed");

    let sent = browser
        .submit(&reissue, &reissue, &[("destination", "ida@home.example")])
        .await;
    assert_eq!(sent.status(), 303);
    let verify = location(&sent);
    assert_eq!(verify, format!("{reissue}/verify"));
    let mail = sink.wait_for(2, WAIT).await;
    assert_eq!(mail[1].to, vec!["ida@home.example".to_string()]);
    let new_code = crate::helpers::smtp_sink::code_in(&mail[1].data).expect("a code");
    assert!(browser.page(&verify).await.contains("ida@home.example"));

    // Until the code is typed, the token keeps its address and its codes go there.
    assert_eq!(
        portal.token_json(token).await["destination"],
        "ida@example.com"
    );
    let (status, body) = portal
        .api
        .call(
            Method::POST,
            "/auth/prepare",
            &app_key,
            json!({"resource": "vpn", "user": "ida"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mail = sink.wait_for(3, WAIT).await;
    assert_eq!(mail[2].to, vec!["ida@example.com".to_string()]);

    // Another code only after the cooldown.
    let again = browser
        .submit(&verify, &reissue, &[("destination", "ida@home.example")])
        .await;
    assert_eq!(location(&again), verify);
    assert!(browser.page(&verify).await.contains("a moment ago"));
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'ida@home.example'"),
        1
    );

    let confirm = format!("{reissue}/confirm");
    let wrong = browser
        .submit(&verify, &confirm, &[("code", "000000")])
        .await;
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.expect("body").contains("not right"));
    let right = browser
        .submit(&verify, &confirm, &[("code", &new_code)])
        .await;
    assert_eq!(right.status(), 303);
    assert!(
        browser
            .page("/portal/vpn")
            .await
            .contains("its codes go to ida@home.example from now on"),
        "the owner sees her own new address in full"
    );
    assert_eq!(
        portal.token_json(token).await["destination"],
        "ida@home.example"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_reissue' AND result = 'ok'"
        ),
        1
    );
    assert_eq!(
        portal.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE detail LIKE '%{new_code}%' OR reason LIKE '%{new_code}%'"
        )),
        0,
        "no code in the audit log"
    );
}

#[tokio::test]
async fn an_sms_token_keeps_its_number_after_three_wrong_codes_and_moves_with_the_right_one() {
    let portal = Portal::start(&["reissue_token"], &[]).await;
    let gateway = with_sms(&portal).await;
    portal
        .user(json!({"login": "jan", "password": PASSWORD}))
        .await;
    let token = portal
        .token(
            json!({"kind": "SMS", "user": "jan", "resource": "vpn", "name": "Phone",
                   "destination": "+41791112233"}),
        )
        .await;
    let browser = portal.browser();
    let response = browser.log_in_with_password("jan", PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let texts = gateway.wait_for(1, WAIT).await;
    let form = crate::helpers::sms_gateway::Captured::form(&texts[0].body);
    let code = crate::helpers::sms_gateway::code_in(&form["text"]).expect("a login code");
    let done = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &code)],
        )
        .await;
    assert_eq!(location(&done), "/portal/vpn");

    let reissue = format!("/portal/vpn/tokens/{token}/reissue");
    assert!(
        browser
            .page(&reissue)
            .await
            .contains("name=\"destination\" value=\"+41791112233\"")
    );
    let bad = browser
        .submit(&reissue, &reissue, &[("destination", "12")])
        .await;
    assert_eq!(bad.status(), 400, "the number is checked");
    let sent = browser
        .submit(&reissue, &reissue, &[("destination", "+41 79 765 43 21")])
        .await;
    let verify = location(&sent);
    let texts = gateway.wait_for(2, WAIT).await;
    let form = crate::helpers::sms_gateway::Captured::form(&texts[1].body);
    assert_eq!(form["to"], "+41797654321");
    let new_code = crate::helpers::sms_gateway::code_in(&form["text"]).expect("a code");
    let wrong_code = if new_code == "000000" {
        "111111"
    } else {
        "000000"
    };

    let confirm = format!("{reissue}/confirm");
    for _ in 0..2 {
        let wrong = browser
            .submit(&verify, &confirm, &[("code", wrong_code)])
            .await;
        assert_eq!(wrong.status(), 400);
    }
    let last = browser
        .submit(&verify, &confirm, &[("code", wrong_code)])
        .await;
    assert_eq!(location(&last), "/portal/vpn");
    assert!(
        browser
            .page("/portal/vpn")
            .await
            .contains("Too many wrong codes: nothing was changed")
    );
    let late = browser
        .submit("/portal/vpn", &confirm, &[("code", &new_code)])
        .await;
    assert_eq!(location(&late), "/portal/vpn", "the code is thrown away");
    assert_eq!(
        portal.token_json(token).await["destination"],
        "+41791112233"
    );

    let sent = browser
        .submit(&reissue, &reissue, &[("destination", "+41797654321")])
        .await;
    let verify = location(&sent);
    let texts = gateway.wait_for(3, WAIT).await;
    let form = crate::helpers::sms_gateway::Captured::form(&texts[2].body);
    let new_code = crate::helpers::sms_gateway::code_in(&form["text"]).expect("a code");
    let right = browser
        .submit(&verify, &confirm, &[("code", &new_code)])
        .await;
    assert_eq!(location(&right), "/portal/vpn");
    assert_eq!(
        portal.token_json(token).await["destination"],
        "+41797654321"
    );
    assert_eq!(
        portal.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_reissue' AND result = 'rejected'"
        ),
        3
    );
}

#[tokio::test]
async fn hardware_tokens_cannot_be_reissued() {
    let portal = Portal::start(&["reissue_token"], &[]).await;
    portal
        .user(json!({"login": "kai", "password": PASSWORD}))
        .await;
    let hotp_key = portal
        .token(
            json!({"kind": "HOTP", "serial": "HW-0001", "user": "kai", "resource": "vpn",
                      "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let totp_key = portal
        .token(
            json!({"kind": "TOTP", "serial": "HW-0002", "user": "kai", "resource": "vpn",
                      "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let app = portal
        .token(
            json!({"kind": "TOTP", "user": "kai", "resource": "vpn", "name": "App",
                      "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let browser = log_in(&portal, "kai", &hotp(SECRET, 0)).await;
    let manage = browser.page(&format!("/portal/vpn/tokens/{app}")).await;
    assert!(manage.contains(&format!("/portal/vpn/tokens/{app}/reissue")));
    for hardware in [hotp_key, totp_key] {
        let reissue = format!("/portal/vpn/tokens/{hardware}/reissue");
        let manage = browser
            .page(&format!("/portal/vpn/tokens/{hardware}"))
            .await;
        assert!(!manage.contains(&reissue), "{hardware}");
        assert_eq!(browser.get(&reissue).await.status(), 404);
        assert_eq!(
            browser.submit("/portal/vpn", &reissue, &[]).await.status(),
            404
        );
    }
    assert_eq!(
        portal.count("SELECT COUNT(*) FROM sessions WHERE pending_secret IS NOT NULL"),
        0
    );
}

/// Waits until the API shows the token in `state`.
async fn wait_for_state(portal: &Portal, token: i64, state: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while portal.token_json(token).await["state"] != state {
        assert!(
            std::time::Instant::now() < deadline,
            "token {token} never became {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_bot_token_that_needs_re_activation_is_re_activated_from_the_portal() {
    let portal = Portal::start(&["reissue_token"], &[]).await;
    let telegram = with_bot(&portal).await;
    portal
        .user(json!({"login": "lea", "password": PASSWORD}))
        .await;
    let (status, created) = portal
        .api
        .call(
            Method::POST,
            "/tokens",
            &portal.admin,
            json!({"kind": "BOT", "user": "lea", "resource": "vpn", "name": "Lea's phone"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["id"].as_i64().expect("id");
    let first_code = created["activation"]["code"].as_str().expect("a code");
    telegram.user_writes(9001, 901, &format!("/start {first_code}"));
    wait_for_state(&portal, token, "active").await;

    // Telegram answers 403 "bot was blocked by the user": the token needs re-activation.
    telegram.block(9001);
    let (status, prepared) = portal
        .api
        .call(
            Method::POST,
            "/auth/prepare",
            &portal.admin,
            json!({"resource": "vpn", "user": "lea"}),
        )
        .await;
    assert_eq!(status, 200, "{prepared}");
    wait_for_state(&portal, token, "reactivate").await;

    // The token is still Lea's second factor: the password alone does not open the portal.
    let browser = portal.browser();
    let response = browser.log_in_with_password("lea", PASSWORD).await;
    assert_eq!(response.status(), 401, "no session");
    let refused = response.text().await.expect("body");
    assert!(
        refused.contains("cannot send you codes any more"),
        "{refused}"
    );
    let (status, answer) = portal
        .api
        .call(
            Method::POST,
            "/auth/authenticate",
            &portal.admin,
            json!({"resource": "vpn", "user": "lea", "password": PASSWORD}),
        )
        .await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("rejected")));

    // With an authenticator app as well, Lea logs in with it and re-activates the bot.
    portal
        .token(
            json!({"kind": "TOTP", "user": "lea", "resource": "vpn", "name": "App",
                      "secret": SECRET_HEX, "secret_format": "hex"}),
        )
        .await;
    let browser = portal.browser();
    let response = browser.log_in_with_password("lea", PASSWORD).await;
    assert_eq!(location(&response), "/portal/vpn/login/verify");
    let response = browser
        .submit(
            "/portal/vpn/login/verify",
            "/portal/vpn/login/otp",
            &[("otp", &totp_now())],
        )
        .await;
    assert_eq!(location(&response), "/portal/vpn");
    let reissue = format!("/portal/vpn/tokens/{token}/reissue");
    let home = browser.page("/portal/vpn").await;
    assert!(home.contains("Needs re-activation"), "{home}");
    let manage = browser.page(&format!("/portal/vpn/tokens/{token}")).await;
    assert!(
        manage.contains(&format!("href=\"{reissue}\">Re-activate</a>")),
        "the action reads Re-activate: {manage}"
    );
    assert!(manage.contains("open the bot again"), "{manage}");
    let form = browser.page(&reissue).await;
    assert!(form.contains("blocked the bot"), "{form}");

    let page = browser
        .submit(&reissue, &reissue, &[])
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("data:image/svg+xml;base64,"), "a QR code");
    let (code, status) = activation_on(&page);
    assert!(
        page.contains(&format!(
            "https://t.me/{}?start={code}",
            crate::helpers::telegram_api::USERNAME
        )),
        "the link: {page}"
    );
    assert_eq!(status, format!("{reissue}/status"));
    let answer: Value = browser.get(&status).await.json().await.expect("json");
    assert_eq!(answer["state"], "pending");
    // Without JavaScript, the Check button says it is not done yet.
    let check = format!("{reissue}/check");
    assert!(page.contains(&format!("action=\"{check}\"")), "{page}");
    let waiting = browser.get(&check).await;
    assert_eq!(waiting.status(), 200);
    assert!(
        waiting.text().await.expect("body").contains("not received"),
        "not active yet"
    );

    telegram.user_writes(9002, 901, &format!("/start {code}"));
    wait_until_active(&browser, &status).await;
    let confirmation = telegram.wait_for_messages(9002, 1, WAIT).await;
    assert!(
        confirmation[0].text.contains("Lea's phone"),
        "the bot confirms in the new chat: {}",
        confirmation[0].text
    );
    assert_eq!(portal.token_json(token).await["state"], "active");
    assert_eq!(
        portal.count(&format!(
            "SELECT bot_chat_id FROM tokens WHERE id = {token}"
        )),
        9002
    );
    let done = browser.get(&check).await;
    assert_eq!(location(&done), "/portal/vpn");
    let home = browser.page("/portal/vpn").await;
    assert!(!home.contains("Needs re-activation"), "{home}");
    let manage = browser.page(&format!("/portal/vpn/tokens/{token}")).await;
    assert!(manage.contains(&format!("href=\"{reissue}\">Reissue</a>")));

    // The next code goes to the new chat and is accepted.
    let (status, prepared) = portal
        .api
        .call(
            Method::POST,
            "/auth/prepare",
            &portal.admin,
            json!({"resource": "vpn", "user": "lea"}),
        )
        .await;
    assert_eq!(status, 200, "{prepared}");
    let messages = telegram.wait_for_messages(9002, 2, WAIT).await;
    assert_eq!(messages.len(), 2, "the code went to the new chat");
    let code = crate::helpers::sms_gateway::code_in(&messages[1].text).expect("a code");
    let (status, answer) = portal
        .api
        .call(
            Method::POST,
            "/auth/authenticate",
            &portal.admin,
            json!({"resource": "vpn", "user": "lea", "otp": code,
                   "transaction": prepared["transaction"]}),
        )
        .await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("accepted")));
    assert_eq!(
        telegram
            .sent()
            .iter()
            .filter(|sent| sent.chat_id == 9001)
            .count(),
        1,
        "the blocked chat got nothing after the first activation's confirmation"
    );
    assert_eq!(
        portal.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'portal.token_reissue' AND token_id = {token}"
        )),
        1
    );
    telegram.stop().await;
}
