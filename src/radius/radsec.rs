//! RADIUS over TLS (RadSec, RFC 6614): the same evaluation as UDP (`server::handle`), carried
//! on TCP connections that TLS protects with the server's HTTPS certificate and the gateways'
//! client certificates, from a CA the operator names (`radsec_client_ca`, read by
//! `tls::client_verifier`, which `config check` runs too). The peer is still matched to a
//! client by its address, and the shared secret is fixed to "radsec" (RFC 6614 §2.3).
//!
//! What a peer can hold is bounded before any RADIUS is read: connections at most
//! `radsec_max_connections` (past it, closed at once); peers whose address no RADIUS client
//! has are closed before the handshake; the handshake has its deadline, and a client
//! certificate from the CA is mandatory. On a connection, a stream of packets (RFC 6614 §2.1,
//! each as long as its header says) is read while fewer than
//! `radsec_max_in_flight_per_connection` of its requests are being evaluated (a login held for
//! its approval gives its place back while it waits); each needs a permit of the same global
//! number of evaluations in flight as UDP, retransmits are answered from the same cache, and
//! replies go out as they are ready, in any order. A connection silent for
//! `radsec_idle_timeout_seconds`, with a packet of impossible length, or whose address no
//! client holds any more is closed. Refusals and closures are counted in
//! `otpgate_radius_tls_closed_total` by reason.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::server::ResolvesServerCert;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;

use super::packet::{HEADER_LEN, MAX_PACKET_LEN, Packet};
use super::server::{
    Admission, Client, ClientTable, Places, Port, Shared, admit, drop_packet, duplicate, handle,
    observe_duration, settle,
};
use crate::config::RadiusConfig;
use crate::metrics::Metrics;

/// The shared secret of RADIUS over TLS (RFC 6614 §2.3), for Message-Authenticator, the
/// authenticators and User-Password; the client's own secret stays for UDP.
pub const SECRET: &[u8] = super::server::RADSEC_SECRET;

/// The TLS configuration of RadSec: the server's certificate (the one HTTPS presents, so that
/// an uploaded certificate applies to both) and client certificates required, verified
/// against the CA in `client_ca`.
pub fn server_config(
    certificate: Arc<dyn ResolvesServerCert>,
    client_ca: &Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let verifier = crate::tls::client_verifier(client_ca).context("radius.radsec_client_ca")?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificate);
    Ok(Arc::new(config))
}

/// The bounds of RadSec connections, from `[radius]`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: usize,
    handshake: Duration,
    idle: Duration,
    in_flight_per_connection: usize,
}

/// The bound RadSec listeners, ready to serve.
pub(super) struct Listeners {
    listeners: Vec<std::net::TcpListener>,
    acceptor: TlsAcceptor,
    limits: Limits,
}

impl Listeners {
    /// Binds every address of `radsec_listen`; an address that cannot be bound is an error.
    pub(super) fn bind(
        config: &RadiusConfig,
        tls: Arc<rustls::ServerConfig>,
    ) -> anyhow::Result<Listeners> {
        let mut listeners = Vec::new();
        for address in &config.radsec_listen {
            let listener = std::net::TcpListener::bind(address.as_str())
                .with_context(|| format!("cannot listen for RadSec on {address}"))?;
            listener.set_nonblocking(true)?;
            listeners.push(listener);
        }
        Ok(Listeners {
            listeners,
            acceptor: TlsAcceptor::from(tls),
            limits: Limits {
                max_connections: config.radsec_max_connections.max(1),
                handshake: Duration::from_millis(config.radsec_handshake_timeout_ms),
                idle: Duration::from_secs(config.radsec_idle_timeout_seconds),
                in_flight_per_connection: config.radsec_max_in_flight_per_connection.max(1),
            },
        })
    }

    pub(super) fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|listener| listener.local_addr().ok())
            .collect()
    }

    /// Accepts on every listener until the tasks are aborted; the connection cap is shared.
    pub(super) fn start(
        self,
        shared: Arc<Shared>,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let connections = Arc::new(Semaphore::new(self.limits.max_connections));
        let mut tasks = Vec::new();
        for listener in self.listeners {
            let listener = TcpListener::from_std(listener)?;
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "RadSec listening");
            }
            tasks.push(tokio::spawn(accept(
                listener,
                self.acceptor.clone(),
                self.limits,
                connections.clone(),
                shared.clone(),
            )));
        }
        Ok(tasks)
    }
}

fn closed(metrics: &Metrics, reason: &str) {
    metrics.inc(
        "otpgate_radius_tls_closed_total",
        "RadSec connections refused or closed by otpgate, by reason.",
        &[("reason", reason)],
    );
}

async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: Limits,
    connections: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let mut table = ClientTable::empty();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of files, most likely: wait for connections to close rather than spin.
                tracing::warn!(%error, "RadSec accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = &shared.services.metrics;
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            closed(metrics, "connection_limit");
            let _ = stream.set_zero_linger();
            continue;
        };
        table.refresh(&shared.services).await;
        if table.find(peer.ip()).is_none() {
            tracing::debug!(peer = %peer.ip(), "RadSec connection from an address no client has");
            closed(metrics, "unknown_client");
            continue;
        }
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            connection(stream, peer, acceptor, limits, shared).await;
            drop(permit);
        });
    }
}

/// Why a connection stopped being read.
enum Framing {
    /// The peer closed it, or it broke.
    Closed,
    /// A length below a header's or above the largest packet: the stream cannot be followed.
    Length,
}

/// One packet of the stream: its length is its header's.
async fn read_packet<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, Framing> {
    let mut header = [0u8; 4];
    reader
        .read_exact(&mut header)
        .await
        .map_err(|_| Framing::Closed)?;
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) {
        return Err(Framing::Length);
    }
    let mut bytes = vec![0u8; length];
    bytes[..4].copy_from_slice(&header);
    reader
        .read_exact(&mut bytes[4..])
        .await
        .map_err(|_| Framing::Closed)?;
    Ok(bytes)
}

/// Writes the replies as they come; a peer that does not read them within the idle deadline
/// loses the connection.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut replies: mpsc::Receiver<Arc<Vec<u8>>>,
    deadline: Duration,
) {
    while let Some(reply) = replies.recv().await {
        let written = tokio::time::timeout(deadline, async {
            writer.write_all(&reply).await?;
            writer.flush().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
    let _ = tokio::time::timeout(deadline, writer.shutdown()).await;
}

/// Shakes hands with and serves one connection until it closes.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    limits: Limits,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let metrics = shared.services.metrics.clone();
    // The closure is counted before the stream is dropped, so that a peer who saw its
    // connection closed finds it counted.
    let mut accepting = std::pin::pin!(acceptor.accept(stream).into_fallible());
    let tls = match tokio::time::timeout(limits.handshake, accepting.as_mut()).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((error, stream))) => {
            tracing::debug!(peer = %peer, %error, "RadSec handshake failed");
            closed(&metrics, "handshake_failed");
            drop(stream);
            return;
        }
        Err(_) => {
            closed(&metrics, "handshake_timeout");
            return;
        }
    };
    let (mut reader, writer) = tokio::io::split(tls);
    let (replies, outgoing) = mpsc::channel(limits.in_flight_per_connection);
    let writing = tokio::spawn(write_replies(writer, outgoing, limits.idle));
    let in_flight = Arc::new(Semaphore::new(limits.in_flight_per_connection));
    let mut table = ClientTable::empty();
    // The client as found and as it speaks here (with the RadSec secret), made again only
    // when the table gives another one.
    let mut current: Option<(Arc<Client>, Arc<Client>)> = None;
    let services = &shared.services;
    let reason = loop {
        let Ok(slot) = in_flight.clone().acquire_owned().await else {
            break None;
        };
        if replies.is_closed() {
            break None;
        }
        let bytes = match tokio::time::timeout(limits.idle, read_packet(&mut reader)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(Framing::Closed)) => break None,
            Ok(Err(Framing::Length)) => break Some("bad_length"),
            Err(_) => break Some("idle"),
        };
        table.refresh(services).await;
        let Some(found) = table.find(peer.ip()) else {
            break Some("unknown_client");
        };
        let client = match &current {
            Some((was, tls)) if Arc::ptr_eq(was, &found) => tls.clone(),
            _ => {
                let tls = Arc::new(found.over_tls());
                current = Some((found, tls.clone()));
                tls
            }
        };
        let Ok(packet) = Packet::parse(&bytes) else {
            drop_packet(&services.metrics, "malformed");
            continue;
        };
        if !Port::Tls.takes(packet.code) {
            drop_packet(&services.metrics, "unexpected_code");
            continue;
        }
        let key = (peer, packet.identifier, packet.authenticator);
        match admit(&shared, key) {
            Admission::Cached(reply) => {
                duplicate(&services.metrics);
                let _ = replies.send(reply).await;
            }
            Admission::Joined => duplicate(&services.metrics),
            Admission::Busy => drop_packet(&services.metrics, "busy"),
            Admission::New(permit) => {
                let shared = shared.clone();
                let replies = replies.clone();
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let mut permit = Some(Places {
                        _evaluation: permit,
                        _connection: Some(slot),
                    });
                    let answer = handle(
                        &shared.services,
                        &client,
                        &packet,
                        peer,
                        Port::Tls,
                        &mut permit,
                    )
                    .await;
                    let answer = answer.map(Arc::new);
                    observe_duration(
                        &shared.services.metrics,
                        &client.name,
                        &packet,
                        answer.as_deref().map(Vec::as_slice),
                        // A login held for its approval gave its places back.
                        (started.elapsed(), permit.is_none()),
                    );
                    settle(&shared, key, answer.clone());
                    if let Some(bytes) = answer {
                        let _ = replies.send(bytes).await;
                    }
                    drop(permit);
                });
            }
        }
    };
    if let Some(reason) = reason {
        tracing::debug!(peer = %peer, reason, "RadSec connection closed");
        closed(&metrics, reason);
    }
    // The requests in flight are answered before the connection closes.
    drop(replies);
    drop(reader);
    let _ = writing.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_is_cut_into_packets_by_the_length_in_their_headers() {
        let first = [1u8, 7, 0, 20].into_iter().chain([9u8; 16]);
        let second = [12u8, 8, 0, 22].into_iter().chain([5u8; 18]);
        let stream: Vec<u8> = first.chain(second).collect();
        let mut reader = stream.as_slice();
        let packet = read_packet(&mut reader)
            .await
            .ok()
            .expect("the first packet");
        assert_eq!((packet.len(), packet[1]), (20, 7));
        let packet = read_packet(&mut reader)
            .await
            .ok()
            .expect("the second packet");
        assert_eq!((packet.len(), packet[1]), (22, 8));
        assert!(matches!(
            read_packet(&mut reader).await,
            Err(Framing::Closed)
        ));
    }

    #[tokio::test]
    async fn a_length_shorter_than_a_header_or_longer_than_a_packet_cannot_be_followed() {
        for length in [0u16, 19, 4097, u16::MAX] {
            let [high, low] = length.to_be_bytes();
            let stream = [1u8, 1, high, low, 0, 0, 0, 0];
            let mut reader = stream.as_slice();
            assert!(
                matches!(read_packet(&mut reader).await, Err(Framing::Length)),
                "{length}"
            );
        }
        // A packet cut short by the end of the stream is a closed connection.
        let mut reader: &[u8] = &[1u8, 1, 0, 30, 0, 0];
        assert!(matches!(
            read_packet(&mut reader).await,
            Err(Framing::Closed)
        ));
    }
}
