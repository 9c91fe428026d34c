//! Connections under abuse: peers that connect and say nothing, or say it one byte at a time,
//! are cut off at their deadlines, and one address cannot hold more than its share of
//! connections that have not yet been any use; an accepted connection has `TCP_NODELAY`. The
//! deadlines here are short, configured ones; what is checked is that the server refuses or
//! closes, not how fast.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::helpers::app::{TestApp, spawn_with, test_config};
use crate::helpers::connection::{
    read_until_closed, request_head, server_address, server_end_nodelay, silent_until_one_closes,
    tcp_from, tls_from, trickle,
};

/// A pause between two bytes of a trickled request: a few of them outlast the short deadlines.
const TRICKLE: Duration = Duration::from_millis(150);

/// A server with the test configuration changed by `configure`, and its data directory.
async fn spawn_configured(
    configure: impl FnOnce(&mut otpgate::Config),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(dir.path());
    configure(&mut config);
    let app = spawn_with(config).await.expect("the application starts");
    (app, dir)
}

#[tokio::test]
async fn a_connection_over_its_address_limit_of_pending_connections_is_reset_and_others_are_served()
{
    let (app, _dir) = spawn_configured(|config| {
        config.server.pending_connections_per_address = 2;
        config.server.tls_handshake_timeout_ms = 60_000;
    })
    .await;
    // Three connections that say nothing; the server admits two, whichever it sees first, and
    // resets the third at once (the two wait for a handshake for a minute).
    let (said, mut held) = silent_until_one_closes(&app, "127.0.0.2", 3).await;
    assert_eq!(
        said, "",
        "the connection over the limit is closed without a word"
    );

    // Another address is served as usual, while 127.0.0.2 still holds its two.
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_connections_closed_total{reason=\"address_limit\"} 1"),
        "{metrics}"
    );
    assert!(held.try_join_next().is_none(), "the two admitted stay open");
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn a_connection_whose_first_request_was_read_no_longer_counts_against_its_address() {
    let (app, _dir) = spawn_configured(|config| {
        config.server.pending_connections_per_address = 1;
        config.server.tls_handshake_timeout_ms = 60_000;
    })
    .await;
    let mut talking = tls_from(&app, "127.0.0.3").await.expect("handshake");
    let request = "GET /healthz HTTP/1.1\r\nHost: otpgate\r\n\r\n";
    let head = request_head(&mut talking, request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // The kept-alive connection stays open but is no longer pending: one silent connection
    // from the same address fits, a second one does not.
    let (said, mut held) = silent_until_one_closes(&app, "127.0.0.3", 2).await;
    assert_eq!(said, "");
    assert!(
        held.try_join_next().is_none(),
        "the admitted one stays open"
    );
    let head = request_head(&mut talking, request).await;
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "the kept-alive connection still works: {head}"
    );
    drop((held, talking));
    app.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_handshake_deadline() {
    let (app, _dir) = spawn_configured(|config| config.server.tls_handshake_timeout_ms = 300).await;
    let mut silent = tcp_from(&app, "127.0.0.4").await;
    assert_eq!(read_until_closed(&mut silent).await, "");
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_connections_closed_total{reason=\"handshake_timeout\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

/// A request with `Content-Length: 1000` whose body comes one byte at a time.
fn slow_post(app: &TestApp, path: &str, content_type: &str, extra: &str) -> String {
    let host = server_address(app);
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{extra}\
         Content-Length: 1000\r\n\r\n"
    )
}

#[tokio::test]
async fn a_login_form_that_trickles_past_the_body_deadline_gets_408_and_the_connection_closes() {
    let (app, _dir) = spawn_configured(|config| config.server.request_body_timeout_ms = 500).await;
    let form = "application/x-www-form-urlencoded";
    for path in ["/admin/login", "/portal/vpn/login"] {
        let stream = tls_from(&app, "127.0.0.5").await.expect("handshake");
        let head = slow_post(&app, path, form, "");
        let answer = trickle(stream, &head, &[b'a'; 1000], TRICKLE).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_connections_closed_total{reason=\"body_timeout\"} 2"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_api_body_that_trickles_past_the_body_deadline_gets_408_and_the_connection_closes() {
    let (app, _dir) = spawn_configured(|config| config.server.request_body_timeout_ms = 500).await;
    let key = app.api_key(&["--admin"]);
    let stream = tls_from(&app, "127.0.0.6").await.expect("handshake");
    let authorization = format!("Authorization: Bearer {key}\r\n");
    let head = slow_post(&app, "/api/v1/users", "application/json", &authorization);
    let answer = trickle(stream, &head, &[b' '; 1000], TRICKLE).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_arrives_within_its_deadline_is_answered_as_usual() {
    let (app, _dir) =
        spawn_configured(|config| config.server.request_body_timeout_ms = 60_000).await;
    let stream = tls_from(&app, "127.0.0.7").await.expect("handshake");
    let body = b"login=a&password=b";
    let host = server_address(&app);
    let head = format!(
        "POST /admin/login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = trickle(stream, &head, body, Duration::from_millis(20)).await;
    let status = answer.lines().next().unwrap_or_default();
    assert!(
        !status.contains("408") && status.starts_with("HTTP/1.1 "),
        "{answer}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_later_request_head_that_trickles_on_a_kept_alive_connection_is_cut_off() {
    let (app, _dir) = spawn_configured(|config| config.server.request_head_timeout_ms = 500).await;
    let mut stream = tls_from(&app, "127.0.0.8").await.expect("handshake");
    let request = "GET /healthz HTTP/1.1\r\nHost: otpgate\r\n\r\n";
    let head = request_head(&mut stream, request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    let answer = trickle(
        stream,
        "",
        b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        TRICKLE,
    )
    .await;
    assert!(!answer.contains("HTTP/1.1 200"), "{answer}");
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_connections_closed_total{reason=\"head_timeout\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_accepted_connection_sends_without_waiting_for_acknowledgements() {
    let (app, _dir) = spawn_configured(|_| {}).await;
    // The handshake is done, so the server has accepted the connection and set its options.
    let stream = tls_from(&app, "127.0.0.9").await.expect("handshake");
    let client = stream
        .get_ref()
        .0
        .local_addr()
        .expect("the client's address");
    assert_eq!(
        server_end_nodelay(client),
        Some(true),
        "TCP_NODELAY is set on the server's end, so an answer never waits behind the session \
         tickets for the client's delayed ACK"
    );
    drop(stream);
    app.stop().await;
}
