//! The listener: otpgate accepts its own connections and hands them to actix-web's HTTP layer,
//! so that what a peer can hold before it has said anything is bounded before any HTTP is
//! spoken. For each accepted connection, in order:
//!
//! 1. `TCP_NODELAY` is set: TLS 1.3 sends session tickets after the handshake, and with Nagle's
//!    algorithm the first answer would wait behind them for the client's delayed ACK (~40 ms).
//! 2. Its address is admitted, or the connection is reset at once when that address already has
//!    `pending_connections_per_address` connections that have not yet had their first request
//!    read whole ([`admission`]).
//! 3. The TLS handshake runs under its own deadline. Handshakes are not limited in number apart
//!    from `max_connections`, so silent connections cannot make a new one queue behind them
//!    (actix-tls' cap of 256 handshakes per worker let silent peers stall new ones).
//! 4. actix-http serves HTTP/1.1 over the connection; [`reading`] bounds the time to read each
//!    request's head and body.
//!
//! Past `max_connections` open connections the workers stop accepting, and new connections
//! wait in the kernel's queue until one closes. Nothing here knows a route: `app` passes the
//! application in.

mod admission;
mod reading;

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, Protocol, Request, Response};
use actix_service::{IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, map_config};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Extensions, Server, fn_factory, fn_service};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use admission::AddressGate;
pub use reading::bound_request;
use reading::{Connection, ConnectionState, Deadlines, Transport};

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// Connections the kernel queues for `accept` while the workers are busy or full.
const BACKLOG: u32 = 1024;
/// Files kept free of `max_connections`: the database, the log, outgoing connections.
const RESERVED_FILES: usize = 256;

/// The bounds on connections, from the `[server]` configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub pending_per_address: usize,
    pub handshake_timeout: Duration,
    pub head_timeout: Duration,
    pub body_timeout: Duration,
}

impl Limits {
    pub fn of(server: &ServerConfig) -> Limits {
        Limits {
            max_connections: server.max_connections,
            pending_per_address: server.pending_connections_per_address,
            handshake_timeout: Duration::from_millis(server.tls_handshake_timeout_ms),
            head_timeout: Duration::from_millis(server.request_head_timeout_ms),
            body_timeout: Duration::from_millis(server.request_body_timeout_ms),
        }
    }
}

/// What [`serve`] needs besides the listener and the application.
pub struct Serving {
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    pub limits: Limits,
    /// The TLS configuration, or None for plain HTTP behind a proxy.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub metrics: Arc<Metrics>,
}

/// Binds the listening socket (port 0 picks a free port).
pub async fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)?.into_std()
}

/// Serves the application that `factory` builds (once per worker) on `listener`.
pub fn serve<F, I, S, B>(
    listener: std::net::TcpListener,
    serving: Serving,
    factory: F,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let Serving {
        workers,
        shutdown_timeout_seconds,
        limits,
        tls,
        metrics,
    } = serving;
    let max_connections = within_open_files(limits.max_connections, open_files_limit());
    let builder = Server::build()
        .workers(workers)
        .max_concurrent_connections(max_connections.div_ceil(workers))
        .shutdown_timeout(shutdown_timeout_seconds);
    let shutdown = builder.graceful_shutdown_signal();
    let gate = AddressGate::new(limits.pending_per_address);
    let tls = tls.map(TlsAcceptor::from);
    builder
        .listen("otpgate", listener, move || {
            let shutdown = shutdown.clone();
            // actix-web's own server lingers a second after an answer for the client to read it.
            let mut http = HttpService::build()
                .client_request_timeout(limits.head_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .on_connect_ext(|connection: &Connection, data: &mut Extensions| {
                    data.insert(connection.state());
                });
            if tls.is_some() {
                http = http.secure();
            }
            // otpgate builds every link from its configured base URL, never from actix's
            // `ConnectionInfo`, so the application's connection config stays the default one.
            let app = factory()
                .into_factory()
                .map_err(|error| error.into().error_response());
            let http = http.finish(map_config(app, |_| AppConfig::default()));
            let accept = Rc::new(Accept {
                gate: gate.clone(),
                tls: tls.clone(),
                handshake_timeout: limits.handshake_timeout,
                deadlines: Rc::new(Deadlines {
                    head: limits.head_timeout,
                    body: limits.body_timeout,
                    metrics: metrics.clone(),
                }),
            });
            fn_factory(move || {
                let http = http.new_service(());
                let accept = accept.clone();
                async move {
                    let http = Rc::new(http.await.map_err(|_| ())?);
                    Ok::<_, ()>(fn_service(move |stream: TcpStream| {
                        accept.clone().connection(stream, http.clone())
                    }))
                }
            })
        })
        .map(|builder| builder.run())
}

/// What every connection of one worker shares.
struct Accept {
    gate: Arc<AddressGate>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    deadlines: Rc<Deadlines>,
}

impl Accept {
    /// Admits, shakes hands with and serves one accepted connection, until it closes.
    async fn connection<H>(self: Rc<Self>, stream: TcpStream, http: Rc<H>) -> Result<(), ()>
    where
        H: Service<(Connection, Protocol, Option<SocketAddr>)>,
    {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        let Some(admission) = self.gate.admit(peer.map(|peer| peer.ip())) else {
            tracing::debug!(peer = ?peer, "too many pending connections from this address");
            self.deadlines.count("address_limit");
            // A reset, not a goodbye: the peer learns at once, and no TIME_WAIT is left here.
            let _ = stream.set_zero_linger();
            return Ok(());
        };
        let state = ConnectionState::new(self.deadlines.clone(), admission);
        let transport = match &self.tls {
            None => Transport::Plain(stream),
            Some(tls) => {
                let mut accepting = std::pin::pin!(tls.accept(stream));
                match tokio::time::timeout(self.handshake_timeout, accepting.as_mut()).await {
                    Ok(Ok(stream)) => Transport::Tls(Box::new(stream)),
                    Ok(Err(error)) => {
                        tracing::debug!(peer = ?peer, %error, "TLS handshake failed");
                        return Ok(());
                    }
                    Err(_) => {
                        // Counted before the connection closes (with `accepting`), so that a
                        // peer who saw it closed finds it counted.
                        self.deadlines.count("handshake_timeout");
                        return Ok(());
                    }
                }
            }
        };
        std::future::poll_fn(|cx| http.poll_ready(cx))
            .await
            .map_err(|_| ())?;
        let connection = Connection::new(transport, state);
        let _ = http.call((connection, Protocol::Http1, peer)).await;
        Ok(())
    }
}

/// `max_connections`, lowered when the process may not open that many files: past the limit
/// `accept` itself would fail, and the workers would spin on it instead of refusing cleanly.
fn within_open_files(max_connections: usize, open_files: Option<usize>) -> usize {
    let Some(open_files) = open_files else {
        return max_connections;
    };
    let room = open_files.saturating_sub(RESERVED_FILES).max(64);
    if max_connections <= room {
        return max_connections;
    }
    tracing::warn!(
        max_connections,
        open_files,
        lowered_to = room,
        "server.max_connections is more than this process may open files for; raise its limit \
         (LimitNOFILE= in the systemd unit, ulimit -n) or lower server.max_connections"
    );
    room
}

/// The soft limit on open files, where the system tells (Linux); None when unlimited or unknown.
fn open_files_limit() -> Option<usize> {
    soft_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft limit of "Max open files" in the text of `/proc/PID/limits`.
fn soft_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line.trim_start_matches("Max open files").split_whitespace();
    values.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_stays_when_the_process_may_open_enough_files() {
        assert_eq!(within_open_files(10_000, Some(65_536)), 10_000);
        assert_eq!(within_open_files(10_000, None), 10_000);
    }

    #[test]
    fn max_connections_is_lowered_to_what_the_open_files_limit_leaves() {
        assert_eq!(within_open_files(10_000, Some(1024)), 1024 - RESERVED_FILES);
        assert_eq!(within_open_files(10_000, Some(100)), 64);
    }

    #[test]
    fn the_soft_open_files_limit_is_read_from_the_process_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63504                63504                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(soft_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(soft_open_files(unlimited), None);
    }
}
