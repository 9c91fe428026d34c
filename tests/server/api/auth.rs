//! The authentication endpoints end to end: objects are provisioned through the management
//! API with an admin key, and an application authenticates with a resource key.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{spawn_app, spawn_with, test_config};
use crate::helpers::auth::{
    SEED, SEED_BASE32, authenticate, call, fixture, queued_code, totp, user_with_token,
};
use crate::helpers::otp::unix_now;

fn totp_token() -> Value {
    json!({"kind": "TOTP", "secret": SEED_BASE32})
}

#[tokio::test]
async fn a_good_totp_code_is_accepted_once_and_its_replay_is_rejected() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    let token_id = user_with_token(&app, &fx, "alice", totp_token()).await;
    crate::helpers::otp::wait_for_fresh_step(5).await;
    let code = totp(0);
    let (status, body) =
        authenticate(&app, &fx.app_key, json!({"user": "alice", "otp": code})).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], "accepted", "{body}");
    assert_eq!(body["token"]["id"], token_id);
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "alice", "otp": code})).await;
    assert_eq!(body["result"], "rejected", "a replay is rejected");
    assert_eq!(
        body.as_object().expect("object").len(),
        1,
        "a rejection says nothing more: {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_replays_of_one_code_are_accepted_exactly_once() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    user_with_token(
        &app,
        &fx,
        "alice",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;
    let code = otpgate::otp::hotp(SEED, otpgate::otp::Algorithm::Sha1, 6, 0);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/authenticate");
        let key = fx.app_key.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"user": "alice", "otp": code}))
                .send()
                .await
                .expect("answer");
            let body: Value = response.json().await.expect("json");
            body["result"] == "accepted"
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        if task.await.expect("task") {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
    app.stop().await;
}

#[tokio::test]
async fn wrong_codes_lock_the_token_at_the_resource_limit_until_an_admin_resets_it() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.api.user_burst = 100;
    let app = spawn_with(config).await.expect("start");
    let fx = fixture(&app, 3).await;
    let token_id = user_with_token(&app, &fx, "bob", totp_token()).await;
    for _ in 0..3 {
        let (_, body) =
            authenticate(&app, &fx.app_key, json!({"user": "bob", "otp": "000000"})).await;
        assert_eq!(body["result"], "rejected");
    }
    let (_, token) = call(
        &app,
        Method::GET,
        &format!("/tokens/{token_id}"),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(token["locked"], true, "{token}");
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "bob", "otp": totp(0)})).await;
    assert_eq!(
        body["result"], "rejected",
        "a locked token denies the right code"
    );
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/tokens/{token_id}/reset"),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "bob", "otp": totp(1)})).await;
    assert_eq!(body["result"], "accepted", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_success_resets_the_fail_counter() {
    let app = spawn_app().await;
    let fx = fixture(&app, 3).await;
    let token_id = user_with_token(&app, &fx, "bob", totp_token()).await;
    for _ in 0..2 {
        authenticate(&app, &fx.app_key, json!({"user": "bob", "otp": "000000"})).await;
    }
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "bob", "otp": totp(0)})).await;
    assert_eq!(body["result"], "accepted");
    let (_, token) = call(
        &app,
        Method::GET,
        &format!("/tokens/{token_id}"),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(token["fail_count"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_token_is_skipped() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    let token_id = user_with_token(&app, &fx, "carol", totp_token()).await;
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/tokens/{token_id}/disable"),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "carol", "otp": totp(0)})).await;
    assert_eq!(body["result"], "rejected");
    let (_, token) = call(
        &app,
        Method::GET,
        &format!("/tokens/{token_id}"),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(token["fail_count"], 0, "a skipped token is not penalised");
    app.stop().await;
}

#[tokio::test]
async fn keys_are_scoped_to_their_resource() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    user_with_token(&app, &fx, "dave", totp_token()).await;
    let (status, _) = call(
        &app,
        Method::POST,
        "/resources",
        &fx.admin,
        json!({"name": "wiki"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"resource": "wiki", "user": "dave", "otp": "123456"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _) = call(&app, Method::GET, "/users", &fx.app_key, Value::Null).await;
    assert_eq!(status, 403, "a resource key cannot manage");
    let (status, body) = call(
        &app,
        Method::POST,
        "/auth/authenticate",
        "og_abcdefgh.wrong",
        json!({"user": "dave", "otp": "1"}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let response = app
        .client
        .post(app.url("/api/v1/auth/authenticate"))
        .json(&json!({}))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 401);
    let (status, _) = authenticate(
        &app,
        &fx.admin,
        json!({"resource": "vpn", "user": "dave", "otp": totp(0)}),
    )
    .await;
    assert_eq!(
        status, 200,
        "an admin key may authenticate for any resource"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_users_wrong_passwords_and_wrong_codes_get_the_same_answer() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    user_with_token(&app, &fx, "erin", totp_token()).await;
    let answers = [
        authenticate(
            &app,
            &fx.app_key,
            json!({"user": "nobody", "password": "x", "otp": totp(0)}),
        )
        .await,
        authenticate(
            &app,
            &fx.app_key,
            json!({"user": "erin", "password": "wrong", "otp": totp(0)}),
        )
        .await,
        authenticate(
            &app,
            &fx.app_key,
            json!({"user": "erin", "password": "user password 1", "otp": "000000"}),
        )
        .await,
    ];
    for (status, body) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(body, &json!({"result": "rejected"}));
    }
    let audit = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    let reasons: Vec<String> = audit
        .prepare("SELECT reason FROM audit_log WHERE action = 'auth.authenticate' ORDER BY id")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(reasons, ["unknown_user", "bad_password", "bad_otp"]);
    app.stop().await;
}

#[tokio::test]
async fn the_four_combinations_of_user_token_password_and_code_work() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    let token_id = user_with_token(&app, &fx, "frank", totp_token()).await;
    crate::helpers::otp::wait_for_fresh_step(6).await;
    // Token only.
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"token": token_id, "otp": totp(-1)}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    // User + code.
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "frank", "otp": totp(0)})).await;
    assert_eq!(body["result"], "accepted", "{body}");
    // User + password: the user has a token here, so the code is asked for.
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "frank", "password": "user password 1"}),
    )
    .await;
    assert_eq!(body["result"], "challenge", "{body}");
    assert_eq!(body["challenges"][0]["token"]["kind"], "TOTP");
    assert_eq!(body["challenges"][0]["sent"], false);
    // User + password + code.
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "frank", "password": "user password 1", "otp": totp(1)}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    // A user without a token in the resource passes on the password alone.
    call(
        &app,
        Method::POST,
        "/users",
        &fx.admin,
        json!({"login": "grace", "password": "user password 2"}),
    )
    .await;
    call(
        &app,
        Method::POST,
        "/resources/vpn/users",
        &fx.admin,
        json!({"user": "grace"}),
    )
    .await;
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "grace", "password": "user password 2"}),
    )
    .await;
    assert_eq!(
        body["result"], "rejected",
        "by default a resource wants two factors: {body}"
    );
    let (status, body) = call(
        &app,
        Method::PATCH,
        "/resources/vpn",
        &fx.admin,
        json!({"without_second_factor": "password_only"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "grace", "password": "user password 2"}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_pin_is_typed_with_the_code() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    user_with_token(
        &app,
        &fx,
        "heidi",
        json!({"kind": "TOTP", "secret": SEED_BASE32, "pin": "4711", "pin_position": "after"}),
    )
    .await;
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "heidi", "otp": totp(0)})).await;
    assert_eq!(body["result"], "rejected");
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "heidi", "otp": format!("4711{}", totp(0))}),
    )
    .await;
    assert_eq!(
        body["result"], "rejected",
        "the PIN goes after the code for this token"
    );
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "heidi", "otp": format!("{}4711", totp(0))}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn prepare_sends_a_mail_code_that_authenticates_once() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    let token_id = user_with_token(&app, &fx, "ivan", json!({"kind": "MAIL", "digits": 8})).await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/auth/prepare",
        &fx.app_key,
        json!({"user": "ivan", "ip": "203.0.113.9"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let transaction = body["transaction"]
        .as_str()
        .expect("a transaction")
        .to_string();
    assert_eq!(body["challenges"][0]["destination"], "i***@example.com");
    assert_eq!(body["challenges"][0]["sent"], true);
    let code = queued_code(&app, token_id);
    assert_eq!(code.len(), 8);
    let db = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    let (stored, outbox_text): (Vec<u8>, Vec<u8>) = db
        .query_row(
            "SELECT c.code_hash, o.body FROM challenges c JOIN outbox o ON o.challenge_id = c.id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("challenge and message");
    assert!(
        !String::from_utf8_lossy(&stored).contains(&code),
        "only a hash of the code is stored"
    );
    assert!(
        !String::from_utf8_lossy(&outbox_text).contains(&code),
        "the queued message is sealed"
    );
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ivan", "otp": code, "transaction": transaction}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "ivan", "otp": code, "transaction": transaction}),
    )
    .await;
    assert_eq!(body["result"], "rejected", "a sent code is single use");
    app.stop().await;
}

#[tokio::test]
async fn a_sent_code_is_void_after_three_wrong_tries_and_a_new_one_replaces_it() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    let token_id = user_with_token(
        &app,
        &fx,
        "judy",
        json!({"kind": "SMS", "destination": "+4915112345678"}),
    )
    .await;
    call(
        &app,
        Method::POST,
        "/auth/prepare",
        &fx.app_key,
        json!({"user": "judy"}),
    )
    .await;
    let first = queued_code(&app, token_id);
    call(
        &app,
        Method::POST,
        "/auth/prepare",
        &fx.app_key,
        json!({"user": "judy"}),
    )
    .await;
    let second = queued_code(&app, token_id);
    if first != second {
        let (_, body) =
            authenticate(&app, &fx.app_key, json!({"user": "judy", "otp": first})).await;
        assert_eq!(
            body["result"], "rejected",
            "the new challenge replaced the old one"
        );
    }
    for _ in 0..3 {
        authenticate(
            &app,
            &fx.app_key,
            json!({"user": "judy", "otp": "00000000"}),
        )
        .await;
    }
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "judy", "otp": second})).await;
    assert_eq!(
        body["result"], "rejected",
        "the challenge is void after its tries"
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_400_naming_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    user_with_token(&app, &fx, "kim", totp_token()).await;
    let cases = [
        (json!({"user": "kim", "otp": 123456}), Some("otp")),
        (json!({"user": "kim"}), Some("otp")),
        (json!({"otp": "123456"}), Some("user")),
        (
            json!({"user": "kim", "otp": "1", "ip": "not-an-ip"}),
            Some("ip"),
        ),
        (
            json!({"user": "kim", "otp": "1", "colour": "red"}),
            Some("colour"),
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = authenticate(&app, &fx.app_key, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request");
        assert_eq!(answer["error"]["field"].as_str(), field, "{body}: {answer}");
    }
    let response = app
        .api(Method::POST, "/auth/authenticate", &fx.app_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400);
    let (status, body) = authenticate(
        &app,
        &fx.admin,
        json!({"resource": "nowhere", "user": "kim", "otp": "1"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let db = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    let fails: i64 = db
        .query_row("SELECT SUM(fail_count) FROM tokens", [], |r| r.get(0))
        .expect("sum");
    assert_eq!(fails, 0, "refused requests changed nothing");
    app.stop().await;
}

#[tokio::test]
async fn authentication_is_rate_limited_per_user_with_retry_after() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.api.user_rate = 0.1;
    config.api.user_burst = 2;
    let app = spawn_with(config).await.expect("start");
    let fx = fixture(&app, 10).await;
    user_with_token(&app, &fx, "liam", totp_token()).await;
    for _ in 0..2 {
        let (status, _) =
            authenticate(&app, &fx.app_key, json!({"user": "liam", "otp": "000000"})).await;
        assert_eq!(status, 200);
    }
    let response = app
        .api(Method::POST, "/auth/authenticate", &fx.app_key)
        .json(&json!({"user": "liam", "otp": "000000"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let (status, _) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "someone-else", "otp": "000000"}),
    )
    .await;
    assert_eq!(status, 200, "other users are not throttled");
    app.stop().await;
}

#[tokio::test]
async fn the_audit_log_and_metrics_record_results_but_never_the_code() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    user_with_token(&app, &fx, "mia", totp_token()).await;
    let code = totp(0);
    authenticate(
        &app,
        &fx.app_key,
        json!({"user": "mia", "otp": code, "ip": "198.51.100.7"}),
    )
    .await;
    let db = rusqlite::Connection::open(app.data_dir.join("otpgate.db")).expect("open");
    let (result, end_user_ip, api_key_id): (String, String, i64) = db
        .query_row("SELECT result, end_user_ip, api_key_id FROM audit_log WHERE action = 'auth.authenticate'", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("an audit line");
    assert_eq!(result, "accepted");
    assert_eq!(end_user_ip, "198.51.100.7");
    assert!(api_key_id > 0);
    let everything: String = db
        .query_row(
            "SELECT group_concat(coalesce(reason,'') || coalesce(detail,''), '|') FROM audit_log",
            [],
            |r| r.get(0),
        )
        .expect("text");
    assert!(!everything.contains(&code));
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(metrics.contains("otpgate_auth_results_total{endpoint=\"authenticate\",result=\"accepted\",reason=\"ok\"} 1"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_key_are_throttled_per_address() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.api.unauthenticated_rate = 0.01;
    config.api.unauthenticated_burst = 3;
    let app = spawn_with(config).await.expect("start");
    for _ in 0..3 {
        let (status, _) =
            authenticate(&app, "og_abcdefgh.guess", json!({"user": "x", "otp": "1"})).await;
        assert_eq!(status, 401);
    }
    let (status, body) =
        authenticate(&app, "og_abcdefgh.guess", json!({"user": "x", "otp": "1"})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    app.stop().await;
}

/// An authenticator app as a test can be one: reads an `otpauth://` URI and computes the
/// current code with its own HMAC, without otpgate's OTP module.
fn app_code_from_uri(uri: &str, offset: i64) -> String {
    use hmac::{KeyInit, Mac};
    let query = uri.split_once('?').expect("a query").1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let secret = data_encoding::BASE32_NOPAD
        .decode(param("secret").expect("a secret").as_bytes())
        .expect("base32");
    let digits: u32 = param("digits").map_or(6, |d| d.parse().expect("digits"));
    let period: i64 = param("period").map_or(30, |p| p.parse().expect("period"));
    let counter = ((unix_now() as i64) / period + offset) as u64;
    let digest = match param("algorithm").as_deref().unwrap_or("SHA1") {
        "SHA256" => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("key");
            mac.update(&counter.to_be_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&secret).expect("key");
            mac.update(&counter.to_be_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let number = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        number % 10u32.pow(digits),
        width = digits as usize
    )
}

#[tokio::test]
async fn a_generated_authenticator_app_token_verifies_codes_computed_from_its_qr_uri() {
    let app = spawn_app().await;
    let fx = fixture(&app, 10).await;
    for (login, body) in [
        ("nina", json!({"kind": "TOTP"})),
        (
            "omar",
            json!({"kind": "TOTP", "algorithm": "SHA256", "digits": 8, "period": 60}),
        ),
    ] {
        call(
            &app,
            Method::POST,
            "/users",
            &fx.admin,
            json!({"login": login}),
        )
        .await;
        let mut body = body;
        body["user"] = json!(login);
        body["resource"] = json!("vpn");
        let (status, token) = call(&app, Method::POST, "/tokens", &fx.admin, body).await;
        assert_eq!(status, 201, "{token}");
        let uri = token["otpauth_uri"]
            .as_str()
            .expect("the URI, once")
            .to_string();
        assert!(
            token["qr_code_svg"]
                .as_str()
                .expect("a QR code")
                .contains("<svg")
        );
        let (_, body) = authenticate(
            &app,
            &fx.app_key,
            json!({"user": login, "otp": app_code_from_uri(&uri, 0)}),
        )
        .await;
        assert_eq!(body["result"], "accepted", "{login}: {uri}: {body}");
    }
    app.stop().await;
}
