//! A real SMTP server on loopback for the delivery tests: EHLO/HELO, STARTTLS or implicit TLS
//! with a self-signed certificate, AUTH PLAIN/LOGIN, MAIL/RCPT/DATA/QUIT. It keeps what it
//! receives, refuses recipients whose address contains "reject", and can go down (closing
//! every connection) and come back on the same port. A sink may also offer no AUTH at all, as
//! a relay that takes mail from its network only does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    pub tls: bool,
    pub login: Option<String>,
    pub at: std::time::Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Starttls,
    ImplicitTls,
}

pub struct SmtpSink {
    pub port: u16,
    /// The self-signed certificate (PEM), to trust as the server's CA.
    pub cert_pem: String,
    mode: Mode,
    /// Whether EHLO offers AUTH PLAIN and LOGIN.
    offers_login: bool,
    tls: tokio_rustls::TlsAcceptor,
    messages: Arc<Mutex<Vec<Received>>>,
    /// Connections accepted so far.
    connections: Arc<std::sync::atomic::AtomicUsize>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SmtpSink {
    /// A listening sink on a free port.
    pub async fn start(mode: Mode) -> SmtpSink {
        let sink = SmtpSink::down(mode).await;
        sink.up().await;
        sink
    }

    /// A listening sink whose EHLO offers no login mechanism.
    pub async fn start_without_login(mode: Mode) -> SmtpSink {
        let mut sink = SmtpSink::down(mode).await;
        sink.offers_login = false;
        sink.up().await;
        sink
    }

    /// A sink with a port of its own that does not listen yet.
    pub async fn down(mode: Mode) -> SmtpSink {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .expect("certificate");
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(certified.cert.der().to_vec())],
            key,
        )
        .expect("server config");
        SmtpSink {
            port,
            cert_pem: certified.cert.pem(),
            mode,
            offers_login: true,
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            messages: Arc::default(),
            connections: Arc::default(),
            server: Mutex::new(None),
        }
    }

    /// Listens again on the same port.
    pub async fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the port is free again");
        let (mode, tls, messages) = (self.mode, self.tls.clone(), self.messages.clone());
        let login = self.offers_login;
        let accepted = self.connections.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when the sink goes down) ends every open connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (tls, messages) = (tls.clone(), messages.clone());
                connections.spawn(async move {
                    let _ = match mode {
                        Mode::ImplicitTls => match tls.accept(stream).await {
                            Ok(stream) => session(stream, &messages, true, false, true, login)
                                .await
                                .map(drop),
                            Err(_) => Ok(()),
                        },
                        _ => match session(
                            stream,
                            &messages,
                            false,
                            mode == Mode::Starttls,
                            true,
                            login,
                        )
                        .await
                        {
                            Ok(Some(stream)) => match tls.accept(stream).await {
                                Ok(stream) => session(stream, &messages, true, false, false, login)
                                    .await
                                    .map(drop),
                                Err(_) => Ok(()),
                            },
                            other => other.map(drop),
                        },
                    };
                });
                while connections.try_join_next().is_some() {}
            }
        });
        *self.server.lock().expect("lock") = Some(task);
    }

    /// Stops listening and closes every connection.
    pub async fn go_down(&self) {
        let task = self.server.lock().expect("lock").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// How many connections the sink accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.messages.lock().expect("lock").clone()
    }

    /// Waits until at least `count` messages arrived (at most `limit`).
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let messages = self.messages();
            if messages.len() >= count || std::time::Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    text: &str,
) -> std::io::Result<()> {
    io.get_mut().write_all(text.as_bytes()).await?;
    io.get_mut().flush().await
}

async fn line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

fn decode(text: &str) -> String {
    let bytes = data_encoding::BASE64
        .decode(text.trim().as_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn address(argument: &str) -> String {
    let start = argument.find('<').map(|i| i + 1).unwrap_or(0);
    let end = argument.find('>').unwrap_or(argument.len());
    argument[start..end].to_string()
}

/// One SMTP conversation; returns the stream when the client asked for STARTTLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    messages: &Mutex<Vec<Received>>,
    tls: bool,
    offer_starttls: bool,
    greet: bool,
    offer_login: bool,
) -> std::io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    if greet {
        reply(&mut io, "220 sink ESMTP ready\r\n").await?;
    }
    let (mut from, mut to, mut login) = (String::new(), Vec::new(), None);
    while let Some(command) = line(&mut io).await? {
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let starttls = if offer_starttls && !tls {
                "250-STARTTLS\r\n"
            } else {
                ""
            };
            let auth = if offer_login {
                "250-AUTH PLAIN LOGIN\r\n"
            } else {
                ""
            };
            reply(
                &mut io,
                &format!("250-sink\r\n{starttls}{auth}250 8BITMIME\r\n"),
            )
            .await?;
        } else if upper.starts_with("HELO") {
            reply(&mut io, "250 sink\r\n").await?;
        } else if upper == "STARTTLS" && offer_starttls && !tls {
            reply(&mut io, "220 2.0.0 go ahead\r\n").await?;
            return Ok(Some(io.into_inner()));
        } else if upper.starts_with("AUTH") && !offer_login {
            reply(&mut io, "502 5.5.1 AUTH not available\r\n").await?;
        } else if upper.starts_with("AUTH PLAIN") {
            let mut argument = command[10..].trim().to_string();
            if argument.is_empty() {
                reply(&mut io, "334 \r\n").await?;
                argument = line(&mut io).await?.unwrap_or_default();
            }
            login = decode(&argument).split('\0').nth(1).map(str::to_string);
            reply(&mut io, "235 2.7.0 accepted\r\n").await?;
        } else if upper.starts_with("AUTH LOGIN") {
            reply(&mut io, "334 VXNlcm5hbWU6\r\n").await?;
            login = Some(decode(&line(&mut io).await?.unwrap_or_default()));
            reply(&mut io, "334 UGFzc3dvcmQ6\r\n").await?;
            line(&mut io).await?;
            reply(&mut io, "235 2.7.0 accepted\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&command[10..]);
            to.clear();
            reply(&mut io, "250 2.1.0 ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            let recipient = address(&command[8..]);
            if recipient.contains("reject") {
                reply(&mut io, "550 5.1.1 no such mailbox here\r\n").await?;
            } else {
                to.push(recipient);
                reply(&mut io, "250 2.1.5 ok\r\n").await?;
            }
        } else if upper == "DATA" {
            reply(&mut io, "354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            while let Some(text) = line(&mut io).await? {
                if text == "." {
                    break;
                }
                data.push_str(text.strip_prefix('.').unwrap_or(&text));
                data.push('\n');
            }
            let number = {
                let mut all = messages.lock().expect("lock");
                all.push(Received {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                    tls,
                    login: login.clone(),
                    at: std::time::Instant::now(),
                });
                all.len()
            };
            reply(
                &mut io,
                &format!("250 2.0.0 Ok: queued as SINK{number}\r\n"),
            )
            .await?;
        } else if upper == "RSET" || upper == "NOOP" {
            reply(&mut io, "250 2.0.0 ok\r\n").await?;
        } else if upper == "QUIT" {
            reply(&mut io, "221 2.0.0 bye\r\n").await?;
            return Ok(None);
        } else {
            reply(&mut io, "502 5.5.2 not implemented\r\n").await?;
        }
    }
    Ok(None)
}

/// The one-time password in a received email: the first run of 6 to 8 digits of its plain
/// text part.
pub fn code_in(data: &str) -> Option<String> {
    let start = data.find("Content-Type: text/plain")?;
    let body = &data[start..];
    let body = &body[body.find("\n\n")?..];
    body.split(|c: char| !c.is_ascii_digit())
        .find(|run| (6..=8).contains(&run.len()))
        .map(str::to_string)
}
