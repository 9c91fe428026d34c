//! What an Access-Accept carries (a welcome, a Class, the resource's reply attributes set
//! through the API), as `radclient -x` prints it; the latency histogram and the other metrics
//! of the RADIUS server; its rate limits per user and per end-user address.

use std::time::Duration;

use otpgate::radius::packet::{
    ACCESS_REJECT, ACCESS_REQUEST, Attribute, CALLING_STATION_ID, Packet, USER_NAME, USER_PASSWORD,
    hide_password, request,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::UdpSocket;

use super::{Rig, SECRET, hotp, rig, rig_with};
use crate::helpers::auth::call;
use crate::helpers::radclient::signed;

/// radclient's output for `attributes` sent to `port` as `kind`; None when radclient is not
/// installed (under CI it must be).
async fn radclient(port: u16, kind: &str, attributes: &str) -> Option<String> {
    if !crate::helpers::radclient::present() {
        return None;
    }
    Some(crate::helpers::radclient::output(port, kind, SECRET, attributes).await)
}

/// The part of radclient's output after its "Received" line: the reply's attributes.
fn received(text: &str) -> &str {
    text.find("Received ").map_or("", |at| &text[at..])
}

async fn put_attributes(rig: &Rig, attributes: Value) -> (u16, Value) {
    call(
        &rig.app,
        Method::PUT,
        "/resources/vpn/radius-attributes",
        &rig.fx.admin,
        json!({ "attributes": attributes }),
    )
    .await
}

async fn metrics(rig: &Rig) -> String {
    rig.app
        .client
        .get(format!("{}/metrics", rig.app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

fn audit_details(rig: &Rig, action: &str) -> Vec<String> {
    let conn = crate::helpers::api::database(&rig.app);
    let mut statement = conn
        .prepare("SELECT detail FROM audit_log WHERE action = ?1 ORDER BY id")
        .expect("prepare");
    statement
        .query_map([action], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn an_accept_carries_a_welcome_a_class_and_the_attributes_set_for_its_resource() {
    let rig = rig().await;
    rig.client(json!({"input_mode": "code_only"})).await;
    let (status, body) = put_attributes(
        &rig,
        json!([
            {"name": "filter-id", "value": "vpn-users"},
            {"name": "Session-Timeout", "value": "3600"},
            {"name": "Fortinet-Group-Name", "value": "vpn-admins"},
            {"name": "Cisco-AVPair", "value": "shell:priv-lvl=15"},
            {"name": "Framed-IP-Address", "value": "10.8.0.7"},
            {"name": "Service-Type", "value": "administrative-user"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attributes"][0]["name"], "Filter-Id", "{body}");
    let Some(text) = radclient(rig.port(), "auth", &signed("alice", &hotp(0))).await else {
        return;
    };
    assert!(text.contains("Received Access-Accept"), "{text}");
    let reply = received(&text);
    for expected in [
        "Reply-Message = \"Welcome, alice\"",
        // "otpgate:" in hex, then the request's id.
        "Class = 0x6f7470676174653a",
        "Filter-Id = \"vpn-users\"",
        "Session-Timeout = 3600",
        "Fortinet-Group-Name = \"vpn-admins\"",
        "Cisco-AVPair = \"shell:priv-lvl=15\"",
        "Framed-IP-Address = 10.8.0.7",
        "Service-Type = Administrative-User",
    ] {
        assert!(reply.contains(expected), "{expected} in {reply}");
    }
    let filter = reply.find("Filter-Id").expect("Filter-Id");
    let group = reply.find("Fortinet-Group-Name").expect("the group");
    assert!(filter < group, "in the order set: {reply}");

    // The Class names the request, and so does the authentication's audit line; accounting
    // that sends the Class back is recorded with it.
    let class_hex = reply
        .split("Class = 0x")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the Class");
    let class = data_encoding::HEXLOWER_PERMISSIVE
        .decode(class_hex.as_bytes())
        .expect("hex");
    let class = String::from_utf8(class).expect("text");
    let request_id = class.strip_prefix("otpgate:").expect("ours");
    let authentications = audit_details(&rig, "auth.authenticate");
    assert!(
        authentications[0].ends_with(&format!("request {request_id}")),
        "{authentications:?}"
    );
    let accounting = format!(
        "User-Name = \"alice\"\nAcct-Status-Type = Start\nAcct-Session-Id = \"s-7\"\n\
         Class = 0x{class_hex}\n"
    );
    let text = radclient(rig.accounting_port(), "acct", &accounting)
        .await
        .expect("radclient");
    assert!(text.contains("Received Accounting-Response"), "{text}");
    let accounting = audit_details(&rig, "radius.accounting");
    assert!(
        accounting[0].ends_with(&format!("; request {request_id}")),
        "{accounting:?}"
    );

    // A change reaches the next Accept; a Reject carries none of it.
    let (status, body) = put_attributes(
        &rig,
        json!([{"name": "PaloAlto-User-Group", "value": "gp-users"}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = radclient(rig.port(), "auth", &signed("alice", &hotp(1)))
        .await
        .expect("radclient");
    let reply = received(&text);
    assert!(reply.contains("Received Access-Accept"), "{text}");
    assert!(
        reply.contains("PaloAlto-User-Group = \"gp-users\""),
        "{reply}"
    );
    assert!(!reply.contains("Filter-Id"), "{reply}");
    let text = radclient(rig.port(), "auth", &signed("alice", "000000"))
        .await
        .expect("radclient");
    let reply = received(&text);
    assert!(reply.contains("Received Access-Reject"), "{text}");
    assert!(
        !reply.contains("PaloAlto-User-Group") && !reply.contains("Class"),
        "{reply}"
    );
}

fn access_request(
    identifier: u8,
    authenticator: [u8; 16],
    code: &str,
    calling_station: &str,
) -> Vec<u8> {
    let hidden = hide_password(code.as_bytes(), SECRET.as_bytes(), &authenticator).expect("hide");
    request(
        ACCESS_REQUEST,
        identifier,
        authenticator,
        vec![
            Attribute::new(USER_NAME, b"alice".to_vec()),
            Attribute::new(USER_PASSWORD, hidden),
            Attribute::new(CALLING_STATION_ID, calling_station.as_bytes().to_vec()),
        ],
        SECRET.as_bytes(),
        true,
    )
    .expect("encode")
}

async fn exchange(socket: &UdpSocket, port: u16, bytes: &[u8]) -> Option<Packet> {
    socket
        .send_to(bytes, ("127.0.0.1", port))
        .await
        .expect("send");
    let mut buffer = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer)).await {
        Ok(Ok((length, _))) => Some(Packet::parse(&buffer[..length]).expect("a packet")),
        _ => None,
    }
}

#[tokio::test]
async fn metrics_count_requests_by_client_and_result_with_their_latency_and_duplicates() {
    let rig = rig().await;
    rig.client(json!({"input_mode": "code_only"})).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let accepted = access_request(1, [1; 16], &hotp(0), "198.51.100.7");
    let reply = exchange(&socket, rig.port(), &accepted)
        .await
        .expect("a reply");
    assert_eq!(reply.code, 2);
    let again = exchange(&socket, rig.port(), &accepted)
        .await
        .expect("the cached reply");
    assert_eq!(again, reply);
    let rejected = access_request(2, [2; 16], "000000", "198.51.100.7");
    let reply = exchange(&socket, rig.port(), &rejected)
        .await
        .expect("a reply");
    assert_eq!(reply.code, ACCESS_REJECT);
    let text = metrics(&rig).await;
    for line in [
        "# TYPE otpgate_radius_request_duration_seconds histogram",
        "otpgate_radius_request_duration_seconds_count{client=\"nas\",result=\"accepted\"} 1",
        "otpgate_radius_request_duration_seconds_count{client=\"nas\",result=\"rejected\"} 1",
        "otpgate_radius_request_duration_seconds_bucket{client=\"nas\",result=\"accepted\",le=\"+Inf\"} 1",
        "otpgate_radius_requests_total{client=\"nas\",result=\"accepted\"} 1",
        "otpgate_radius_requests_total{client=\"nas\",result=\"rejected\"} 1",
        "otpgate_radius_duplicates_total{} 1",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[tokio::test]
async fn end_user_addresses_and_users_are_rate_limited_each() {
    let rig = rig_with(|config| {
        config.api.end_user_ip_burst = 2;
        config.api.end_user_ip_rate = 0.001;
        config.api.user_burst = 4;
        config.api.user_rate = 0.001;
    })
    .await;
    rig.client(json!({"input_mode": "code_only"})).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut answers = Vec::new();
    for (identifier, address) in [
        (1u8, "198.51.100.7"),
        (2, "198.51.100.7"),
        (3, "198.51.100.7"),
        (4, "198.51.100.8"),
        (5, "198.51.100.9"),
        (6, "198.51.100.10"),
    ] {
        let packet = access_request(identifier, [identifier; 16], "000000", address);
        let reply = exchange(&socket, rig.port(), &packet)
            .await
            .expect("a reply");
        assert_eq!(reply.code, ACCESS_REJECT);
        answers.push(reply);
    }
    let conn = crate::helpers::api::database(&rig.app);
    let lines: Vec<(Option<String>, Option<String>)> = conn
        .prepare(
            "SELECT reason, end_user_ip FROM audit_log WHERE action = 'auth.authenticate'
             ORDER BY id",
        )
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let reasons: Vec<Option<&str>> = lines.iter().map(|line| line.0.as_deref()).collect();
    // The third request from one address is refused before its code is looked at; from other
    // addresses alice's own limit of four attempts still holds.
    assert_eq!(reasons[2], Some("rate_limited"), "{lines:?}");
    assert_eq!(lines[2].1.as_deref(), Some("198.51.100.7"));
    assert_ne!(reasons[3], Some("rate_limited"), "{lines:?}");
    assert_ne!(reasons[4], Some("rate_limited"), "{lines:?}");
    // Alice's fifth attempt, under the free failures: her own limit, which the RADIUS
    // server answers as the API does a wait (429), "too many attempts".
    assert_eq!(reasons[5], Some("too_many_attempts"), "{lines:?}");
    assert_eq!(lines[5].1.as_deref(), Some("198.51.100.10"));
}
