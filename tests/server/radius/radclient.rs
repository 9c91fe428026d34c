//! Every input mode and refusal, through `radclient`.

use data_encoding::BASE64;
use serde_json::json;

use super::{PASSWORD, SECRET, hotp, rig};
pub(super) use crate::helpers::radclient::{output, present as radclient_present, signed};

/// What radclient made of the exchange.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Accept,
    Reject,
    Other(String),
    NoReply,
}

/// Sends `attributes` (radclient's input syntax) to `port` as `kind` (auth, acct, status).
pub(super) async fn radclient(
    port: u16,
    kind: &str,
    secret: &str,
    attributes: &str,
) -> (Outcome, String) {
    let text = output(port, kind, secret, attributes).await;
    let outcome = if text.contains("Received Access-Accept") {
        Outcome::Accept
    } else if text.contains("Received Access-Reject") {
        Outcome::Reject
    } else if let Some(at) = text.find("Received ") {
        let code = text[at + "Received ".len()..].split_whitespace().next();
        Outcome::Other(code.unwrap_or_default().to_string())
    } else {
        Outcome::NoReply
    };
    (outcome, text)
}

#[tokio::test]
async fn a_code_alone_is_accepted_once_and_its_replay_rejected() {
    if !radclient_present() {
        return;
    }
    let rig = rig().await;
    rig.client(json!({"input_mode": "code_only"})).await;
    let first = format!(
        "{}NAS-Identifier = \"fw-east\"\nCalling-Station-Id = \"198.51.100.7\"\n",
        signed("alice", &hotp(0))
    );
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &first).await;
    assert_eq!(outcome, Outcome::Accept, "{text}");
    let (nas, end_user): (String, String) = crate::helpers::api::database(&rig.app)
        .query_row(
            "SELECT detail, end_user_ip FROM audit_log WHERE action = 'auth.authenticate'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the audit line");
    assert!(
        nas.starts_with("UDP; NAS-Identifier fw-east; request "),
        "{nas}"
    );
    assert_eq!(end_user, "198.51.100.7");
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", &hotp(0))).await;
    assert_eq!(outcome, Outcome::Reject, "a used code: {text}");
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", "000000")).await;
    assert_eq!(outcome, Outcome::Reject, "a wrong code: {text}");
    let reasons = rig.reasons();
    assert_eq!(reasons[0].0, "accepted", "{reasons:?}");
    assert_eq!(reasons[0].2, "radius:nas");
    assert!(
        reasons[1..].iter().all(|r| r.0 == "rejected"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn password_and_code_in_one_field_are_taken_apart_as_the_client_says() {
    if !radclient_present() {
        return;
    }
    let rig = rig().await;
    let client = rig.client(json!({"input_mode": "password_code"})).await;
    let typed = format!("{PASSWORD}{}", hotp(0));
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", &typed)).await;
    assert_eq!(outcome, Outcome::Accept, "{text}");
    let wrong = format!("wrong password{}", hotp(1));
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", &wrong)).await;
    assert_eq!(outcome, Outcome::Reject, "{text}");

    let id = client["id"].as_i64().expect("id");
    let (status, body) = crate::helpers::auth::call(
        &rig.app,
        reqwest::Method::PATCH,
        &format!("/radius/clients/{id}"),
        &rig.fx.admin,
        json!({"input_mode": "code_password", "separator": ","}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let typed = format!("{},{PASSWORD}", hotp(2));
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", &typed)).await;
    assert_eq!(outcome, Outcome::Accept, "{text}");
}

#[tokio::test]
async fn an_openvpn_static_challenge_response_is_accepted() {
    if !radclient_present() {
        return;
    }
    let rig = rig().await;
    rig.client(json!({"input_mode": "static_challenge"})).await;
    let typed = format!(
        "SCRV1:{}:{}",
        BASE64.encode(PASSWORD.as_bytes()),
        BASE64.encode(hotp(0).as_bytes())
    );
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", &typed)).await;
    assert_eq!(outcome, Outcome::Accept, "{text}");
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", PASSWORD)).await;
    assert_eq!(outcome, Outcome::Reject, "{text}");
    assert_eq!(
        rig.last_reason().as_deref(),
        Some("not_a_static_challenge_response")
    );
}

#[tokio::test]
async fn wrong_secrets_unknown_clients_and_unsigned_requests_get_no_answer() {
    if !radclient_present() {
        return;
    }
    let rig = rig().await;
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", &hotp(0))).await;
    assert_eq!(outcome, Outcome::NoReply, "no client yet: {text}");
    rig.client(json!({"input_mode": "code_only"})).await;
    let (outcome, text) = radclient(
        rig.port(),
        "auth",
        "not the secret at all",
        &signed("alice", &hotp(0)),
    )
    .await;
    assert_eq!(outcome, Outcome::NoReply, "a wrong secret: {text}");
    let unsigned = format!("User-Name = \"alice\"\nUser-Password = \"{}\"\n", hotp(0));
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &unsigned).await;
    assert_eq!(
        outcome,
        Outcome::NoReply,
        "no Message-Authenticator: {text}"
    );
    assert!(rig.reasons().is_empty(), "nothing was evaluated");
    // The code was never used: it still works.
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", &hotp(0))).await;
    assert_eq!(outcome, Outcome::Accept, "{text}");
    let metrics = rig
        .app
        .client
        .get(format!("{}/metrics", rig.app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for reason in [
        "unknown_client",
        "bad_message_authenticator",
        "missing_message_authenticator",
    ] {
        assert!(
            metrics.contains(&format!(
                "otpgate_radius_dropped_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
}

#[tokio::test]
async fn chap_is_rejected_with_a_reason_that_says_use_pap() {
    if !radclient_present() {
        return;
    }
    let rig = rig().await;
    rig.client(json!({"input_mode": "code_only"})).await;
    let chap = format!(
        "User-Name = \"alice\"\nCHAP-Password = \"{}\"\nMessage-Authenticator = 0x00\n",
        hotp(0)
    );
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &chap).await;
    assert_eq!(outcome, Outcome::Reject, "{text}");
    assert_eq!(
        rig.last_reason().as_deref(),
        Some("chap_not_supported_use_pap"),
        "{:?}",
        rig.reasons()
    );
}

#[tokio::test]
async fn status_server_is_answered_and_accounting_is_recorded() {
    if !radclient_present() {
        return;
    }
    let rig = rig().await;
    rig.client(json!({"input_mode": "code_only"})).await;
    let (outcome, text) = radclient(
        rig.port(),
        "status",
        SECRET,
        "Message-Authenticator = 0x00\n",
    )
    .await;
    assert_eq!(outcome, Outcome::Accept, "{text}");
    let (outcome, text) = radclient(
        rig.accounting_port(),
        "acct",
        SECRET,
        "User-Name = \"alice\"\nAcct-Status-Type = Start\nAcct-Session-Id = \"s-42\"\n\
         NAS-Identifier = \"fw-east\"\n",
    )
    .await;
    assert_eq!(
        outcome,
        Outcome::Other("Accounting-Response".into()),
        "{text}"
    );
    let detail: String = crate::helpers::api::database(&rig.app)
        .query_row(
            "SELECT detail FROM audit_log WHERE action = 'radius.accounting'",
            [],
            |row| row.get(0),
        )
        .expect("an accounting line");
    assert!(detail.starts_with("UDP; start; "), "{detail}");
    assert!(
        detail.contains("s-42") && detail.contains("fw-east"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_locked_token_refuses_even_its_right_code_and_the_audit_says_why() {
    if !radclient_present() {
        return;
    }
    let rig = rig().await;
    rig.client(json!({"input_mode": "code_only"})).await;
    // The resource locks a token at 5 wrong codes.
    for _ in 0..5 {
        let (outcome, text) =
            radclient(rig.port(), "auth", SECRET, &signed("alice", "000000")).await;
        assert_eq!(outcome, Outcome::Reject, "{text}");
    }
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed("alice", &hotp(0))).await;
    assert_eq!(
        outcome,
        Outcome::Reject,
        "a locked token's right code: {text}"
    );
    assert_eq!(
        rig.last_reason().as_deref(),
        Some("token_locked"),
        "{:?}",
        rig.reasons()
    );
}

#[tokio::test]
async fn a_directory_users_password_is_checked_by_a_bind_and_their_code_by_otpgate() {
    use crate::helpers::slapd::{BOB, Fixture, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, Slapd};
    if !radclient_present() {
        return;
    }
    let Some(slapd) = Slapd::start_with(Fixture {
        people: 10,
        tls: false,
    })
    .await
    else {
        return;
    };
    let rig = rig().await;
    rig.client(json!({"input_mode": "password_code"})).await;
    let post = |path: &'static str, body: serde_json::Value| {
        crate::helpers::auth::call(&rig.app, reqwest::Method::POST, path, &rig.fx.admin, body)
    };
    let (status, body) = post(
        "/directories",
        json!({"name": "Example", "kind": "openldap", "urls": [slapd.url], "tls": "none",
               "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD, "base_dn": PEOPLE_DN}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post("/directories/Example/users", json!({"login": BOB.0})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        "/tokens",
        json!({"kind": "HOTP", "secret": crate::helpers::auth::SEED_BASE32, "user": BOB.0,
               "resource": "vpn"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let typed = format!("{}{}", BOB.1, hotp(0));
    let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed(BOB.0, &typed)).await;
    assert_eq!(outcome, Outcome::Accept, "{text}");
    // otpgate's idea of a password is no directory user's: only the directory's counts.
    for wrong in ["not bob's directory password", PASSWORD] {
        let typed = format!("{wrong}{}", hotp(1));
        let (outcome, text) = radclient(rig.port(), "auth", SECRET, &signed(BOB.0, &typed)).await;
        assert_eq!(outcome, Outcome::Reject, "{text}");
    }
    let reasons = rig.reasons();
    let reasons: Vec<_> = reasons.iter().map(|r| r.1.as_deref()).collect();
    assert_eq!(reasons, [None, Some("bad_password"), Some("bad_password")]);
}
