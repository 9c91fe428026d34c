//! HTTPS on the benchmarks' side: a TLS client that trusts the server's own certificate, and a
//! keep-alive connection speaking just the HTTP/1.1 a benchmark needs.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS client that trusts the certificates in `pem` (the server's generated one) and speaks
/// the given TLS versions. It resumes no session: every new connection is a full handshake,
/// as a client's first is.
pub fn tls_connector(
    pem: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        roots.add(certificate?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(tls)))
}

/// One keep-alive HTTPS connection speaking just the HTTP/1.1 the benchmark needs, as load
/// generators such as wrk do: a request goes out in one write, and the answer is read by its
/// `Content-Length`. A general HTTP client (reqwest, tried first) spent about a quarter of the
/// machine's two cores on this side of the loopback, CPU the server under test then lacked.
pub struct Connection {
    stream: TlsStream<TcpStream>,
    buffer: Vec<u8>,
}

impl Connection {
    pub async fn open(address: SocketAddr, tls: &TlsConnector) -> anyhow::Result<Connection> {
        let tcp = TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(address.ip().into());
        let stream = tls.connect(name, tcp).await?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// The TLS version the handshake settled on.
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.get_ref().1.protocol_version()
    }

    /// Sends a request whose head ends in `Content-Length: ` with `body`, and returns the
    /// answer's status and body.
    pub async fn post(&mut self, head: &str, body: &str) -> Result<(u16, Vec<u8>), String> {
        self.send(&format!("{head}{}\r\n\r\n{body}", body.len()))
            .await
    }

    /// Sends one whole request (head and body) and returns the answer's status and body.
    pub async fn send(&mut self, request: &str) -> Result<(u16, Vec<u8>), String> {
        let io = |e: std::io::Error| format!("no answer: {e}");
        self.stream
            .write_all(request.as_bytes())
            .await
            .map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        let (status, start, length) = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end])
                    .map_err(|_| "an answer head that is not UTF-8".to_string())?;
                break parse_head(head).map(|(status, length)| (status, end + 4, length))?;
            }
            self.fill().await?;
        };
        while self.buffer.len() < start + length {
            self.fill().await?;
        }
        let body = self.buffer[start..start + length].to_vec();
        self.buffer.drain(..start + length);
        Ok((status, body))
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(read) => {
                self.buffer.extend_from_slice(&chunk[..read]);
                Ok(())
            }
            Err(e) => Err(format!("no answer: {e}")),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status and `Content-Length` of an answer's head.
fn parse_head(head: &str) -> Result<(u16, usize), String> {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {head}"))?;
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .ok_or_else(|| format!("an answer without Content-Length: {head}"))?;
    Ok((status, length))
}
