//! Connections that misbehave on purpose: raw TCP and TLS streams opened from a chosen loopback
//! address (all of 127.0.0.0/8 is this host), speaking HTTP by hand and as slowly as a test
//! wants.

use std::mem::ManuallyDrop;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::helpers::app::TestApp;

/// Longer than any deadline the tests configure: only a server that never closes runs into it.
const GUARD: Duration = Duration::from_secs(30);

/// The address the server listens on.
pub fn server_address(app: &TestApp) -> SocketAddr {
    let address = app.address.trim_start_matches("https://");
    address.parse().expect("the server's address")
}

/// A TCP connection to the server from `source`, which sends nothing by itself.
pub async fn tcp_from(app: &TestApp, source: &str) -> TcpStream {
    try_tcp_from(app, source)
        .await
        .expect("the kernel accepts the connection")
}

/// A TCP connection to the server from `source`, or the error of a connection the server reset
/// before the connect was done.
async fn try_tcp_from(app: &TestApp, source: &str) -> std::io::Result<TcpStream> {
    let source: IpAddr = source.parse().expect("a source address");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).expect("bind");
    socket.connect(server_address(app)).await
}

/// Opens `count` connections from `source` that send nothing, and waits until the server closes
/// one of them. Which one is up to the server (its workers accept in parallel); the others stay
/// open as long as the returned set lives. Returns what the closed one was told (a connection
/// reset before its connect was done was told nothing).
pub async fn silent_until_one_closes(
    app: &TestApp,
    source: &str,
    count: usize,
) -> (String, JoinSet<String>) {
    let mut silent = JoinSet::new();
    for _ in 0..count {
        let stream = try_tcp_from(app, source).await;
        silent.spawn(async move {
            match stream {
                Ok(mut stream) => read_to_close(&mut stream).await,
                Err(_) => String::new(),
            }
        });
    }
    let closed = tokio::time::timeout(GUARD, silent.join_next())
        .await
        .expect("the server closed one of the connections")
        .expect("a connection")
        .expect("the reading task");
    (closed, silent)
}

/// A TLS connection to the server from `source`, trusting the server's certificate.
pub async fn tls_from(app: &TestApp, source: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let pem = std::fs::read(app.data_dir.join("tls/cert.pem")).expect("the certificate");
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(certificate.expect("a certificate"))
            .expect("a root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tcp_from(app, source).await;
    let name = ServerName::IpAddress(server_address(app).ip().into());
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Reads until the server closes the connection (end of stream, or a reset) and returns what
/// it said; panics if the server keeps it open past the guard.
pub async fn read_until_closed<S: AsyncReadExt + Unpin>(stream: &mut S) -> String {
    tokio::time::timeout(GUARD, read_to_close(stream))
        .await
        .expect("the server closed the connection")
}

/// Reads until the server closes the connection, however long that takes.
async fn read_to_close<S: AsyncReadExt + Unpin>(stream: &mut S) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&answer).into_owned(),
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
        }
    }
}

/// Sends `head` at once, then `body` one byte at a time with `pause` in between, while reading
/// the answer; returns the answer once the server has closed the connection.
pub async fn trickle(
    stream: TlsStream<TcpStream>,
    head: &str,
    body: &[u8],
    pause: Duration,
) -> String {
    let (mut reader, mut writer) = tokio::io::split(stream);
    writer.write_all(head.as_bytes()).await.expect("the head");
    writer.flush().await.expect("flush");
    let body = body.to_vec();
    let writing = tokio::spawn(async move {
        for byte in body {
            tokio::time::sleep(pause).await;
            let written = writer.write_all(&[byte]).await;
            if written.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
        writer
    });
    let answer = read_until_closed(&mut reader).await;
    writing.abort();
    answer
}

/// Sends one whole request and reads its answer up to the end of its head (the status line and
/// the headers), leaving the connection open.
pub async fn request_head(stream: &mut TlsStream<TcpStream>, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(GUARD, stream.read(&mut chunk))
            .await
            .expect("an answer")
            .expect("read");
        assert!(
            read > 0,
            "the server closed the connection instead of answering"
        );
        answer.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether the server's end of the connection whose client end is at `client` has
/// `TCP_NODELAY` set, or None when no such socket is open. The server runs in this process, so
/// its end is one of this process's open descriptors: the one whose peer is `client`.
pub fn server_end_nodelay(client: SocketAddr) -> Option<bool> {
    for entry in std::fs::read_dir("/proc/self/fd").expect("this process's descriptors") {
        let Some(fd) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: the stream only borrows the descriptor: ManuallyDrop never closes it, and the
        // calls made through it (getpeername, getsockopt) change nothing, whatever the descriptor
        // is by then (they fail on one that is not a socket, or no longer open).
        let socket = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
        if socket.peer_addr().ok() == Some(client) {
            return socket.nodelay().ok();
        }
    }
    None
}
