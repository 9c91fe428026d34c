//! The MAIL channel: a short plain-text and HTML email over SMTP (lettre), with or without
//! STARTTLS or implicit TLS, with an optional login. The HTML part is rendered from the text
//! with escaping, so the one text stays the only thing to translate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::address::Envelope;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};

use super::{Accepted, Channel, SendError, SendFuture, open_secret};
use crate::crypto::Keys;
use crate::domain::{Email, FieldError};
use crate::store::delivery_settings::ChannelSettings;

/// The outbox's name of this channel.
pub const CHANNEL: &str = "mail";
/// The name of the sealed SMTP password among the channel's secrets.
pub const PASSWORD: &str = "password";

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain SMTP: only for a relay on the same host or a trusted network.
    None,
    /// Plain SMTP upgraded with STARTTLS, which must succeed (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// The stored settings of the MAIL channel (the password is kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub from_address: String,
    pub from_name: String,
    pub timeout_seconds: u64,
    /// A PEM file of the certificate authorities to trust for this server (an internal CA);
    /// without it the public web roots are trusted.
    pub tls_ca_file: Option<String>,
    /// Whether the administrator allowed the login to cross the network without TLS
    /// (`security = none` with a username). Settings stored before this rule read as false,
    /// so they never send a login in clear.
    #[serde(default)]
    pub allow_plaintext_credentials: bool,
}

/// Why a login over plain SMTP is refused, in words for the administrator.
pub const LOGIN_IN_CLEAR: &str = "with security none the SMTP login and password would cross the network in clear: \
     choose starttls or tls, or allow plaintext credentials explicitly for a server on this host \
     or a network you trust";

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

impl MailSettings {
    /// Whether these settings send a login over a connection without TLS.
    pub fn login_in_clear(&self) -> bool {
        self.security == Security::None && self.username.is_some()
    }

    /// Whether these settings would send a login in clear without the administrator having
    /// allowed it.
    pub fn refuses_login_in_clear(&self) -> bool {
        self.login_in_clear() && !self.allow_plaintext_credentials
    }

    /// Checks every field, and that a CA file given can be read as PEM certificates.
    pub fn validate(&self) -> Result<(), FieldError> {
        let host = self.host.trim();
        if host.is_empty()
            || host.len() > 253
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
        {
            return Err(bad("host", "give the SMTP server's host name or address"));
        }
        if self.port == 0 {
            return Err(bad("port", "the port must be between 1 and 65535"));
        }
        Email::parse(&self.from_address).map_err(|e| bad("from_address", e.0))?;
        if self.from_name.chars().any(char::is_control) || self.from_name.len() > 128 {
            return Err(bad(
                "from_name",
                "the sender name must be one line of at most 128 characters",
            ));
        }
        if let Some(username) = &self.username
            && (username.is_empty() || username.chars().any(char::is_control))
        {
            return Err(bad("username", "the login must be one line of text"));
        }
        if self.refuses_login_in_clear() {
            return Err(bad("security", LOGIN_IN_CLEAR));
        }
        if !(1..=120).contains(&self.timeout_seconds) {
            return Err(bad(
                "timeout_seconds",
                "the timeout must be between 1 and 120 seconds",
            ));
        }
        if let Some(file) = &self.tls_ca_file {
            read_certificate(file).map_err(|message| bad("tls_ca_file", message))?;
        }
        Ok(())
    }
}

fn read_certificate(file: &str) -> Result<Certificate, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{file} holds no PEM certificate"));
    }
    Certificate::from_pem(&pem).map_err(|e| format!("{file} holds no usable certificate: {e}"))
}

/// The MAIL channel: SMTP connections of its own, kept open between messages.
///
/// lettre speaks SMTP; otpgate opens the TCP connections itself so that they carry
/// `TCP_NODELAY`. lettre writes a message's body and its final `.` separately, and with
/// Nagle's algorithm the final line waits for the server to acknowledge the body — which a
/// server holds back for its delayed-ACK time (40 ms on Linux) before it answers. Every email
/// would pay those 40 ms, and one connection could carry at most 25 emails a second.
pub struct MailChannel {
    host: String,
    port: u16,
    security: Security,
    /// STARTTLS: lettre's TLS parameters; implicit TLS: our own rustls client.
    starttls: Option<TlsParameters>,
    implicit_tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    credentials: Option<Credentials>,
    hello: ClientId,
    from: Mailbox,
    /// The limit of one whole conversation, connection included: a server that accepts and
    /// then stays silent must not hold a send forever.
    timeout: Duration,
    /// Connections that finished a message cleanly, with when they did.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// How many idle connections are kept (as many as the worker sends at once).
const IDLE_CONNECTIONS: usize = super::CONCURRENCY;
/// An idle connection older than this is closed rather than reused: servers drop idle
/// clients after a while, and a reused dead connection costs a failed try.
const IDLE_LIFETIME: Duration = Duration::from_secs(30);

/// Builds the channel from the stored settings; for the worker's [`super::StoredChannel`].
pub fn build(settings: &ChannelSettings, keys: &Keys) -> Result<Arc<dyn Channel>, SendError> {
    let plain = settings
        .plain
        .as_deref()
        .ok_or_else(|| SendError::Temporary("mail delivery is not set up yet".into()))?;
    let mail: MailSettings = serde_json::from_str(plain).map_err(|e| {
        SendError::Temporary(format!("the stored mail settings are unreadable: {e}"))
    })?;
    let password = open_secret(settings, keys, PASSWORD)?;
    Ok(Arc::new(MailChannel::new(&mail, password)?))
}

impl MailChannel {
    /// Refuses, before any connection, settings that would send the login in clear without
    /// the administrator's leave: those stored before the rule existed, or written around it.
    fn check_login_in_clear(settings: &MailSettings) -> Result<(), SendError> {
        if settings.refuses_login_in_clear() {
            return Err(SendError::Temporary(format!(
                "not sent: {LOGIN_IN_CLEAR} (then save the mail settings again)"
            )));
        }
        Ok(())
    }
}

/// A TLS stream to the SMTP server that lettre can talk through (implicit TLS).
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// A rustls client trusting the public web roots, or the CA file's certificates instead.
fn rustls_client(ca_file: Option<&str>) -> Result<tokio_rustls::TlsConnector, SendError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(file) => {
            let pem = std::fs::read(file)
                .map_err(|e| SendError::Temporary(format!("cannot read {file}: {e}")))?;
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                let certificate = certificate.map_err(|e| {
                    SendError::Temporary(format!("{file} holds no usable certificate: {e}"))
                })?;
                roots.add(certificate).map_err(|e| {
                    SendError::Temporary(format!("{file} holds no usable certificate: {e}"))
                })?;
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SendError::Temporary(format!("TLS set-up failed: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

impl MailChannel {
    pub fn new(
        settings: &MailSettings,
        password: Option<String>,
    ) -> Result<MailChannel, SendError> {
        MailChannel::check_login_in_clear(settings)?;
        let host = settings.host.trim().to_string();
        let starttls = match settings.security {
            Security::Starttls => {
                let mut builder = TlsParameters::builder(host.clone());
                if let Some(file) = &settings.tls_ca_file {
                    builder = builder.add_root_certificate(
                        read_certificate(file).map_err(SendError::Temporary)?,
                    );
                }
                Some(
                    builder
                        .build_rustls()
                        .map_err(|e| SendError::Temporary(format!("TLS set-up failed: {e}")))?,
                )
            }
            _ => None,
        };
        let implicit_tls = match settings.security {
            Security::Tls => {
                let name = ServerName::try_from(host.clone()).map_err(|_| {
                    SendError::Temporary(format!("{host} is not a valid TLS server name"))
                })?;
                Some((rustls_client(settings.tls_ca_file.as_deref())?, name))
            }
            _ => None,
        };
        let address = settings
            .from_address
            .trim()
            .parse()
            .map_err(|_| SendError::Temporary("the sender address is invalid".into()))?;
        let name = settings.from_name.trim();
        Ok(MailChannel {
            host,
            port: settings.port,
            security: settings.security,
            starttls,
            implicit_tls,
            credentials: settings
                .username
                .as_ref()
                .map(|username| Credentials::new(username.clone(), password.unwrap_or_default())),
            hello: ClientId::default(),
            from: Mailbox::new((!name.is_empty()).then(|| name.to_string()), address),
            timeout: Duration::from_secs(settings.timeout_seconds),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A new connection: TCP without Nagle, TLS as configured, greeting, EHLO, login.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                SendError::Temporary(format!(
                    "cannot connect to {}:{}: {e}",
                    self.host, self.port
                ))
            })?;
        tcp.set_nodelay(true)
            .map_err(|e| SendError::Temporary(format!("cannot set TCP_NODELAY: {e}")))?;
        let mut connection = match &self.implicit_tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| SendError::Temporary(format!("TLS handshake failed: {e}")))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(TlsTcp(tls)), &self.hello)
                    .await
                    .map_err(|e| classify(&e))?
            }
            None => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                .await
                .map_err(|e| classify(&e))?,
        };
        if let (Security::Starttls, Some(parameters)) = (self.security, &self.starttls) {
            if !connection.can_starttls() {
                connection.abort().await;
                return Err(SendError::Temporary(
                    "the server does not offer STARTTLS, which the settings require".into(),
                ));
            }
            connection
                .starttls(parameters.clone(), &self.hello)
                .await
                .map_err(|e| classify(&e))?;
        }
        if let Some(credentials) = &self.credentials {
            let mechanisms = [Mechanism::Plain, Mechanism::Login];
            // A server that offers no mechanism otpgate speaks will not offer one on the next
            // try either: the message fails for good, with the reason, rather than being
            // retried until it expires.
            if !mechanisms
                .iter()
                .any(|m| connection.server_info().supports_auth_mechanism(*m))
            {
                connection.abort().await;
                return Err(SendError::Permanent(
                    "the SMTP server offers no login mechanism otpgate speaks (AUTH PLAIN or LOGIN): \
                     remove the login from the mail settings if the server needs none, or enable \
                     one of these mechanisms on the server"
                        .into(),
                ));
            }
            if let Err(e) = connection.auth(&mechanisms, credentials).await {
                connection.abort().await;
                return Err(classify(&e));
            }
        }
        Ok(connection)
    }

    /// An idle connection young enough to reuse, if there is one.
    fn reuse(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((connection, since)) = idle.pop() {
            if since.elapsed() < IDLE_LIFETIME && !connection.has_broken() {
                return Some(connection);
            }
        }
        None
    }

    fn keep(&self, connection: AsyncSmtpConnection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_CONNECTIONS
            && !connection.has_broken()
        {
            idle.push((connection, Instant::now()));
        }
    }

    /// Sends one email over a reused connection or, when there is none or it turns out to be
    /// dead before the server said anything about this email, over a new one.
    async fn transmit(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, SendError> {
        if let Some(mut connection) = self.reuse() {
            match connection.send(envelope, email).await {
                Ok(response) => {
                    self.keep(connection);
                    return Ok(response);
                }
                // The server answered: that answer is about this email.
                Err(e) if e.status().is_some() => {
                    connection.abort().await;
                    return Err(classify(&e));
                }
                // The connection died while idle: try once more on a fresh one.
                Err(_) => connection.abort().await,
            }
        }
        let mut connection = self.connect().await?;
        match connection.send(envelope, email).await {
            Ok(response) => {
                self.keep(connection);
                Ok(response)
            }
            Err(e) => {
                connection.abort().await;
                Err(classify(&e))
            }
        }
    }

    async fn deliver(&self, message: &super::Outgoing) -> Result<Accepted, SendError> {
        let to: Mailbox = message
            .recipient
            .parse()
            .map_err(|_| SendError::Permanent("the recipient's address is invalid".into()))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                render_html(&message.subject, &message.text),
            ))
            .map_err(|e| SendError::Permanent(format!("the email cannot be built: {e}")))?;
        let envelope = email.envelope().clone();
        let bytes = email.formatted();
        let sent = tokio::time::timeout(self.timeout, self.transmit(&envelope, &bytes))
            .await
            .map_err(|_| {
                SendError::Temporary(format!(
                    "the SMTP server did not finish within {} s",
                    self.timeout.as_secs()
                ))
            })?;
        let response = sent?;
        let lines: Vec<&str> = response.message().collect();
        Ok(Accepted(format!("{} {}", response.code(), lines.join(" "))))
    }
}

/// A 5xx answer refuses this message for good, except the answers about the login (530, 535,
/// 534, 538), which are the settings' fault and may be fixed while the code is still valid.
fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let text = error.to_string();
    let login_problem = error
        .status()
        .map(|code| matches!(code.to_string().as_str(), "530" | "534" | "535" | "538"))
        .unwrap_or(false);
    if error.is_permanent() && !login_problem {
        SendError::Permanent(text)
    } else if error.is_timeout() {
        SendError::Temporary(format!("the SMTP server did not answer in time: {text}"))
    } else {
        SendError::Temporary(text)
    }
}

impl Channel for MailChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn send<'a>(&'a self, message: &'a super::Outgoing) -> SendFuture<'a> {
        Box::pin(self.deliver(message))
    }
}

/// The HTML part: the text's paragraphs, escaped, in a plain page.
pub fn render_html(subject: &str, text: &str) -> String {
    maud::html! {
        (maud::DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (subject) }
            }
            body style="font-family: sans-serif; font-size: 16px; line-height: 1.5" {
                @for paragraph in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
                    p { (paragraph.trim()) }
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MailSettings {
        MailSettings {
            host: "smtp.example.com".into(),
            port: 587,
            security: Security::Starttls,
            username: None,
            from_address: "otp@example.com".into(),
            from_name: "otpgate".into(),
            timeout_seconds: 10,
            tls_ca_file: None,
            allow_plaintext_credentials: false,
        }
    }

    #[test]
    fn a_login_without_tls_needs_plaintext_credentials_allowed() {
        let mut s = settings();
        s.security = Security::None;
        assert_eq!(s.validate(), Ok(()), "no login, nothing in clear");
        s.username = Some("otpgate".into());
        assert_eq!(s.validate().map_err(|e| e.field), Err("security"));
        assert!(MailChannel::new(&s, Some("secret".into())).is_err());
        s.allow_plaintext_credentials = true;
        assert_eq!(s.validate(), Ok(()));
        // An old stored form without the field reads as not allowed.
        let stored = r#"{"host":"h","port":25,"security":"none","username":"u","from_address":"a@b.cd","from_name":"x","timeout_seconds":5,"tls_ca_file":null}"#;
        let old: MailSettings = serde_json::from_str(stored).expect("old settings");
        assert!(old.refuses_login_in_clear());
    }

    #[test]
    fn good_settings_pass_and_bad_ones_name_their_field() {
        assert_eq!(settings().validate(), Ok(()));
        let mut s = settings();
        s.host = "smtp example".into();
        assert_eq!(s.validate().map_err(|e| e.field), Err("host"));
        let mut s = settings();
        s.from_address = "nobody".into();
        assert_eq!(s.validate().map_err(|e| e.field), Err("from_address"));
        let mut s = settings();
        s.timeout_seconds = 0;
        assert_eq!(s.validate().map_err(|e| e.field), Err("timeout_seconds"));
        let mut s = settings();
        s.tls_ca_file = Some("/nonexistent/ca.pem".into());
        assert_eq!(s.validate().map_err(|e| e.field), Err("tls_ca_file"));
    }

    #[test]
    fn the_html_part_escapes_the_text() {
        let html = render_html("Code", "123456 is your code for <vpn> & co.");
        assert!(html.contains("123456 is your code for &lt;vpn&gt; &amp; co."));
        assert!(!html.contains("<vpn>"));
    }
}
