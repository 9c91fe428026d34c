//! The RADIUS server as `serve` starts it: the UDP sockets of `[radius]` and, when it is on,
//! RadSec's listeners, bound at start and served with one set of evaluations (`server`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use super::radsec::Listeners;
use super::replies::Replies;
use super::server::{Port, REMEMBERED, REPLY_KEPT, Services, Shared, receive};
use crate::config::RadiusConfig;

/// The bound sockets, ready to serve.
pub struct RadiusServer {
    sockets: Vec<(std::net::UdpSocket, Port)>,
    radsec: Option<Listeners>,
    shared: Arc<Shared>,
}

impl RadiusServer {
    /// Binds every configured address; an address that cannot be bound is an error. RadSec
    /// listens when `radsec_tls` (the server configuration that requires client certificates)
    /// is given.
    pub fn bind(
        config: &RadiusConfig,
        services: Services,
        radsec_tls: Option<Arc<rustls::ServerConfig>>,
    ) -> anyhow::Result<RadiusServer> {
        let mut sockets = Vec::new();
        for (addresses, port) in [
            (&config.listen, Port::Authentication),
            (&config.accounting_listen, Port::Accounting),
        ] {
            for address in addresses {
                let socket = std::net::UdpSocket::bind(address.as_str())
                    .with_context(|| format!("cannot listen for RADIUS on {address}"))?;
                socket.set_nonblocking(true)?;
                sockets.push((socket, port));
            }
        }
        let radsec = radsec_tls
            .map(|tls| Listeners::bind(config, tls))
            .transpose()?;
        Ok(RadiusServer {
            sockets,
            radsec,
            shared: Arc::new(Shared {
                services,
                replies: Mutex::new(Replies::new(REPLY_KEPT, REMEMBERED)),
                permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            }),
        })
    }

    /// The bound authentication addresses.
    pub fn authentication_addresses(&self) -> Vec<SocketAddr> {
        self.addresses(Port::Authentication)
    }

    /// The bound accounting addresses.
    pub fn accounting_addresses(&self) -> Vec<SocketAddr> {
        self.addresses(Port::Accounting)
    }

    /// The bound RadSec addresses (none when RadSec is off).
    pub fn radsec_addresses(&self) -> Vec<SocketAddr> {
        self.radsec
            .as_ref()
            .map(Listeners::addresses)
            .unwrap_or_default()
    }

    fn addresses(&self, wanted: Port) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter(|(_, port)| *port == wanted)
            .filter_map(|(socket, _)| socket.local_addr().ok())
            .collect()
    }

    /// Serves every socket until the tasks are aborted.
    pub fn start(self) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for (socket, port) in self.sockets {
            let socket = Arc::new(UdpSocket::from_std(socket)?);
            if let Ok(address) = socket.local_addr() {
                tracing::info!(%address, ?port, "RADIUS listening");
            }
            tasks.push(tokio::spawn(receive(socket, port, self.shared.clone())));
        }
        if let Some(radsec) = self.radsec {
            tasks.extend(radsec.start(self.shared.clone())?);
        }
        Ok(tasks)
    }
}
