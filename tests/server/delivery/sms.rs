//! Codes by SMS, end to end: otpgate calls a real HTTP gateway on loopback in the configured
//! shape, the test reads the code from the request and logs in with it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::delivery::{Api, api_key, provision};
use crate::helpers::process::otpgate_command;
use crate::helpers::sms_gateway::{Captured, Gateway, code_in};

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    api: Api,
    admin: String,
    app_key: String,
}

async fn configure(app: &TestApp, resource: &str, settings: Value) -> Setup {
    let api = Api::of(app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let (status, body) = api
        .call(Method::PUT, "/settings/sms", &admin, settings)
        .await;
    assert_eq!(status, 200, "{body}");
    let app_key = api_key(&app.data_dir, &["--resource", resource]);
    Setup {
        api,
        admin,
        app_key,
    }
}

fn form_settings(gateway: &Gateway) -> Value {
    json!({
        "method": "POST",
        "url": format!("{}/send?to={{phone}}&sender=otp", gateway.url),
        "body_format": "form",
        "body": "text={message}&to={phone}",
        "auth": "basic",
        "username": "acct",
        "secret": "s3cret",
        "success_status": "2xx",
        "success_body": "queued",
        "timeout_seconds": 5,
        // The gateway on loopback may speak plain HTTP: its credentials crossing in clear are
        // allowed, as otpgate requires, explicitly.
        "allow_plaintext_credentials": gateway.url.starts_with("http://"),
    })
}

#[tokio::test]
async fn sms_codes_reach_a_form_gateway_with_every_character_encoded() {
    let gateway = Gateway::start().await;
    let app = spawn_app().await;
    let resource = "Büro VPN & Co+";
    provision(
        &app.address,
        &app.data_dir,
        resource,
        &[("alice", "SMS", "+4915112345678")],
    )
    .await;
    let s = configure(&app, resource, form_settings(&gateway)).await;

    let prepared = s.api.prepare(&s.app_key, "alice").await;
    let answered = std::time::Instant::now();
    assert_eq!(prepared["challenges"][0]["destination"], "+49********678");
    let requests = gateway.wait_for(1, WAIT).await;
    assert_eq!(requests.len(), 1, "the gateway is called once");
    let request = &requests[0];
    println!(
        "delivery latency, prepare answered -> gateway called: {:?}",
        request.at.saturating_duration_since(answered)
    );
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/send");
    assert_eq!(request.query, "to=%2B4915112345678&sender=otp");
    assert_eq!(
        request.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        request.headers["authorization"],
        format!("Basic {}", data_encoding::BASE64.encode(b"acct:s3cret"))
    );
    assert!(
        request.body.ends_with("&to=%2B4915112345678"),
        "{}",
        request.body
    );
    assert!(
        request.body.contains("B%C3%BCro+VPN+%26+Co%2B"),
        "spaces, &, + and ü are form-encoded: {}",
        request.body
    );
    let form = Captured::form(&request.body);
    assert_eq!(form["to"], "+4915112345678");
    let text = &form["text"];
    assert!(text.contains("for Büro VPN & Co+."), "{text}");
    let code = code_in(text).expect("a code");
    assert!(text.starts_with(&code));

    let answer = s
        .api
        .authenticate(&s.app_key, "alice", &code, &prepared["transaction"])
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    let list = s
        .api
        .deliveries_until(&s.admin, "?channel=sms", WAIT, |l| {
            l.first().is_some_and(|d| d["status"] == "sent")
        })
        .await;
    assert_eq!(list[0]["status"], "sent");
    assert_eq!(list[0]["recipient"], "+49********678");
    app.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn sms_codes_reach_a_json_gateway_with_a_bearer_token_and_extra_headers() {
    let gateway = Gateway::start().await;
    let app = spawn_app().await;
    let resource = "Team \"Blue\" \\ VPN";
    provision(
        &app.address,
        &app.data_dir,
        resource,
        &[("bob", "SMS", "+4915112345679")],
    )
    .await;
    let settings = json!({
        "url": format!("{}/v1/messages", gateway.url),
        "headers": {"X-Api-Key": "{secret}", "X-Tenant": "otp"},
        "body_format": "json",
        "body": "{\"to\": \"{phone}\", \"text\": \"{message}\", \"flash\": false}",
        "auth": "bearer",
        "secret": "tok-123",
        "allow_plaintext_credentials": true,
    });
    let s = configure(&app, resource, settings).await;

    let prepared = s.api.prepare(&s.app_key, "bob").await;
    let requests = gateway.wait_for(1, WAIT).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["authorization"], "Bearer tok-123");
    assert_eq!(request.headers["x-api-key"], "tok-123");
    assert_eq!(request.headers["x-tenant"], "otp");
    let body: Value = serde_json::from_str(&request.body).expect("the body is JSON");
    assert_eq!(body["to"], "+4915112345679");
    assert_eq!(body["flash"], false);
    let text = body["text"].as_str().expect("text");
    assert!(text.contains("for Team \"Blue\" \\ VPN."), "{text}");
    let code = code_in(text).expect("a code");
    let answer = s
        .api
        .authenticate(&s.app_key, "bob", &code, &prepared["transaction"])
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    app.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_gateway_5xx_is_retried_and_a_4xx_is_final_and_reported() {
    let gateway = Gateway::start().await;
    let app = spawn_app().await;
    let tokens = provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[
            ("carol", "SMS", "+4915100000001"),
            ("dave", "SMS", "+4915100000400"),
            ("erin", "SMS", "+4915100000222"),
        ],
    )
    .await;
    let s = configure(&app, "vpn", form_settings(&gateway)).await;
    gateway.unavailable_for(2);

    let prepared = s.api.prepare(&s.app_key, "carol").await;
    s.api.prepare(&s.app_key, "dave").await;
    s.api.prepare(&s.app_key, "erin").await;

    let list = s
        .api
        .deliveries_until(&s.admin, "", WAIT, |l| {
            l.len() == 3 && l.iter().all(|d| d["status"] != "queued")
        })
        .await;
    let of = |token: i64| {
        list.iter()
            .find(|d| d["token_id"] == token)
            .cloned()
            .expect("a delivery of the token")
    };
    let retried = of(tokens[0]);
    assert_eq!(retried["status"], "sent", "{retried}");
    assert!(
        retried["attempts"].as_i64() >= Some(3),
        "two 503s, then success: {retried}"
    );
    let refused = of(tokens[1]);
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(refused["attempts"], 1, "a 4xx is not retried");
    assert_eq!(
        refused["last_error"],
        "the gateway answered 400 Bad Request"
    );
    let unconfirmed = of(tokens[2]);
    assert_eq!(unconfirmed["status"], "failed");
    assert_eq!(
        unconfirmed["last_error"],
        "the gateway answered 200 without the success text"
    );

    let failed = s
        .api
        .deliveries_until(&s.admin, "?status=failed&channel=sms", WAIT, |_| true)
        .await;
    assert_eq!(failed.len(), 2, "{failed:?}");

    let carol = gateway
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.query.contains("0000001"))
        .expect("carol's request");
    let code = code_in(&Captured::form(&carol.body)["text"]).expect("a code");
    let answer = s
        .api
        .authenticate(&s.app_key, "carol", &code, &prepared["transaction"])
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    let counted = [
        r#"otpgate_deliveries_total{channel="sms",outcome="retry"} 2"#,
        r#"otpgate_deliveries_total{channel="sms",outcome="failed"} 2"#,
        r#"otpgate_deliveries_total{channel="sms",outcome="sent"} 1"#,
    ];
    let metrics = s.api.metrics_with(&counted, WAIT).await;
    for line in counted {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    app.stop().await;
    gateway.stop().await;
}

/// Runs `otpgate settings sms test TO` off the test's runtime, which serves the gateway.
async fn console(app: &TestApp, to: &str) -> std::process::Output {
    let mut command = otpgate_command(&app.data_dir);
    command.args(["settings", "sms", "test", to]);
    tokio::task::spawn_blocking(move || command.output().expect("run"))
        .await
        .expect("join")
}

#[tokio::test]
async fn the_sms_settings_are_validated_hide_the_secret_and_can_be_tested() {
    let gateway = Gateway::start().await;
    let app = spawn_app().await;
    provision(&app.address, &app.data_dir, "vpn", &[]).await;
    let api = Api::of(&app);
    let admin = api_key(&app.data_dir, &["--admin"]);
    let resource_key = api_key(&app.data_dir, &["--resource", "vpn"]);
    let good = form_settings(&gateway);

    let (status, _) = api
        .call(Method::GET, "/settings/sms", "", Value::Null)
        .await;
    assert_eq!(status, 401);
    let (status, _) = api
        .call(Method::PUT, "/settings/sms", &resource_key, good.clone())
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .call(Method::GET, "/deliveries", &resource_key, Value::Null)
        .await;
    assert_eq!(status, 403);

    let mut without_secret = good.clone();
    without_secret
        .as_object_mut()
        .expect("object")
        .remove("secret");
    for (field, change) in [
        ("url", json!({"url": "ftp://gateway/{phone}"})),
        ("url", json!({"url": "not a url"})),
        ("body_format", json!({"method": "GET"})),
        (
            "body",
            json!({"body_format": "json", "body": "{\"text\": {message}}"}),
        ),
        ("body", json!({"body": "to={phone}"})),
        ("success_status", json!({"success_status": "ok"})),
        ("timeout_seconds", json!({"timeout_seconds": 500})),
        ("headers", json!({"headers": {"Bad Header": "x"}})),
        ("method", json!({"method": "PATCH"})),
    ] {
        let mut bad = good.clone();
        for (key, value) in change.as_object().expect("object") {
            bad[key] = value.clone();
        }
        let (status, body) = api.call(Method::PUT, "/settings/sms", &admin, bad).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body) = api
        .call(Method::PUT, "/settings/sms", &admin, without_secret)
        .await;
    assert_eq!(status, 400, "basic authentication needs its secret");
    assert_eq!(body["error"]["field"], "secret");
    let (_, body) = api
        .call(Method::GET, "/settings/sms", &admin, Value::Null)
        .await;
    assert_eq!(
        body["configured"], false,
        "refused settings changed nothing"
    );

    let (status, body) = api
        .call(Method::PUT, "/settings/sms", &admin, good.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secret_set"], true);
    assert!(!body.to_string().contains("s3cret"));
    let (_, body) = api
        .call(Method::GET, "/settings/sms", &admin, Value::Null)
        .await;
    assert_eq!(body["configured"], true);
    assert_eq!(body["body_format"], "form");
    assert_eq!(body["auth"], "basic");
    assert_eq!(body["secret_set"], true);
    assert!(body.get("secret").is_none());

    let (status, body) = api
        .call(
            Method::POST,
            "/settings/sms/test",
            &admin,
            json!({"to": "12"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "to");
    let (status, body) = api
        .call(
            Method::POST,
            "/settings/sms/test",
            &admin,
            json!({"to": "+49 151 1234 5670"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true, "{body}");
    assert!(
        body["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("HTTP 200")),
        "{body}"
    );
    assert_eq!(
        Captured::form(&gateway.requests()[0].body)["to"],
        "+4915112345670",
        "the number is normalised"
    );
    let (_, body) = api
        .call(
            Method::POST,
            "/settings/sms/test",
            &admin,
            json!({"to": "+4915100000400"}),
        )
        .await;
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"], "the gateway answered 400 Bad Request");

    let output = console(&app, "+4915112345670").await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("HTTP 200"));
    let output = console(&app, "+4915100000400").await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("400 Bad Request"));

    for bad in [
        "?status=lost",
        "?channel=fax",
        "?limit=0",
        "?limit=x",
        "?colour=red",
    ] {
        let (status, body) = api
            .call(
                Method::GET,
                &format!("/deliveries{bad}"),
                &admin,
                Value::Null,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["field"].is_string(), "{body}");
    }
    app.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn an_internal_https_gateway_is_trusted_through_its_certificate_authority_file() {
    let gateway = Gateway::start_tls().await;
    let app = spawn_app().await;
    provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("frank", "SMS", "+4915100000011")],
    )
    .await;
    let s = configure(&app, "vpn", form_settings(&gateway)).await;
    let (status, answer) = s
        .api
        .call(
            Method::POST,
            "/settings/sms/test",
            &s.admin,
            json!({"to": "+4915100000011"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["ok"], false,
        "an unknown certificate is not trusted: {answer}"
    );
    assert!(gateway.requests().is_empty());

    let ca = app.data_dir.join("sms-ca.pem");
    std::fs::write(&ca, gateway.cert_pem.as_deref().expect("a certificate")).expect("write");
    let mut settings = form_settings(&gateway);
    settings["tls_ca_file"] = json!(ca.to_str().expect("utf-8"));
    let (status, body) = s
        .api
        .call(Method::PUT, "/settings/sms", &s.admin, settings)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tls_ca_file"], json!(ca.to_str().expect("utf-8")));

    let prepared = s.api.prepare(&s.app_key, "frank").await;
    let requests = gateway.wait_for(1, WAIT).await;
    assert_eq!(requests.len(), 1, "the gateway is reached over HTTPS");
    let code = code_in(&Captured::form(&requests[0].body)["text"]).expect("a code");
    let answer = s
        .api
        .authenticate(&s.app_key, "frank", &code, &prepared["transaction"])
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    app.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn stopping_otpgate_finishes_the_send_in_flight_and_never_sends_it_again() {
    let gateway = Gateway::start().await;
    let app = spawn_app().await;
    provision(
        &app.address,
        &app.data_dir,
        "vpn",
        &[("grace", "SMS", "+4915100000012")],
    )
    .await;
    let s = configure(&app, "vpn", form_settings(&gateway)).await;
    gateway.slow(Duration::from_millis(1500));
    s.api.prepare(&s.app_key, "grace").await;
    assert_eq!(
        gateway.wait_for(1, WAIT).await.len(),
        1,
        "the send has begun"
    );

    // A graceful stop while the gateway has not answered yet.
    let data_dir = app.data_dir.clone();
    let temp = app.stop().await;
    let conn =
        rusqlite::Connection::open(data_dir.join(otpgate::store::DATABASE_FILE)).expect("open");
    let (status, attempts): (String, i64) = conn
        .query_row("SELECT status, attempts FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("the message");
    drop(conn);
    assert_eq!(
        (status.as_str(), attempts),
        ("sent", 1),
        "the send in flight finished and was recorded before otpgate stopped"
    );

    gateway.slow(Duration::ZERO);
    let again = crate::helpers::app::spawn_with(crate::helpers::app::test_config(&data_dir))
        .await
        .expect("restart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        gateway.requests().len(),
        1,
        "a sent message is not sent again"
    );
    again.stop().await;
    drop(temp);
    gateway.stop().await;
}
