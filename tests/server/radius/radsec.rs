//! RADIUS over TLS (RadSec, RFC 6614): Debian's `radsecproxy` taking radclient's UDP and
//! speaking TLS to the server, and a rustls client of the test's own for what radsecproxy
//! cannot show (pipelining, refused certificates, a handshake never finished).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use otpgate::radius::packet::{
    ACCESS_ACCEPT, ACCESS_REQUEST, ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE, ACCT_SESSION_ID,
    ACCT_STATUS_TYPE, Attribute, Packet, STATUS_SERVER, USER_NAME, USER_PASSWORD, hide_password,
    reply_valid, request,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::radclient::{Outcome, radclient, radclient_present, signed};
use super::{Rig, SECRET, hotp, rig_with};

/// The shared secret inside TLS (RFC 6614 §2.3).
pub(super) const RADSEC: &[u8] = b"radsec";
/// The secret between radclient and radsecproxy, over UDP on loopback.
const PROXY_SECRET: &str = "proxy udp secret 1";

/// A certificate authority made by the test.
pub(super) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

pub(super) fn authority(name: &str) -> Authority {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let certificate = params.self_signed(&key).expect("the CA certificate");
    Authority {
        issuer: Issuer::new(params, key),
        pem: certificate.pem(),
    }
}

/// A gateway's client certificate and key, in PEM.
pub(super) struct ClientCertificate {
    certificate: String,
    key: String,
}

impl Authority {
    pub(super) fn client(&self, name: &str) -> ClientCertificate {
        let key = KeyPair::generate().expect("a client key");
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("signed by the CA");
        ClientCertificate {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Turns RadSec on in `config`, on a free port, with `ca` (written into `dir`) as its client CA.
pub(super) fn enable_radsec(config: &mut otpgate::Config, ca: &Authority, dir: &Path) {
    let ca_file = dir.join("client-ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("write the CA");
    config.radius.radsec_listen = vec!["127.0.0.1:0".into()];
    config.radius.radsec_client_ca = Some(ca_file);
}

/// An application with RadSec on a free port whose client CA is `ca`, and the RADIUS client
/// "nas" (code only) for `address`.
async fn radsec_rig(ca: &Authority, dir: &Path, address: &str) -> Rig {
    radsec_rig_with(ca, dir, address, |_| {}).await
}

/// The same, with `adjust` applied to the `[radius]` configuration.
async fn radsec_rig_with(
    ca: &Authority,
    dir: &Path,
    address: &str,
    adjust: impl FnOnce(&mut otpgate::config::RadiusConfig),
) -> Rig {
    let rig = rig_with(|config| {
        enable_radsec(config, ca, dir);
        adjust(&mut config.radius);
    })
    .await;
    rig.client(json!({"input_mode": "code_only", "address": address}))
        .await;
    rig
}

fn radsec_port(rig: &Rig) -> u16 {
    rig.app.radsec[0].port()
}

/// A TLS connection to the server, presenting `certificate` (or none).
pub(super) async fn connect(
    rig: &Rig,
    certificate: Option<&ClientCertificate>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let server_pem = rig.app.data_dir.join("tls").join("cert.pem");
    for der in CertificateDer::pem_file_iter(&server_pem).expect("the server certificate") {
        roots.add(der.expect("a certificate")).expect("a root");
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match certificate {
        Some(certificate) => builder
            .with_client_auth_cert(
                vec![
                    CertificateDer::from_pem_slice(certificate.certificate.as_bytes())
                        .expect("the client certificate"),
                ],
                PrivateKeyDer::from_pem_slice(certificate.key.as_bytes()).expect("the key"),
            )
            .expect("a client configuration"),
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(("127.0.0.1", radsec_port(rig))).await?;
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The next packet of the stream, or None once the server closed it.
pub(super) async fn next_packet<R: AsyncRead + Unpin>(reader: &mut R) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_exact(&mut header))
        .await
        .expect("the server answers or closes the connection");
    read.ok()?;
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut bytes = vec![0u8; length];
    bytes[..4].copy_from_slice(&header);
    reader.read_exact(&mut bytes[4..]).await.ok()?;
    Some(bytes)
}

pub(super) fn access_request(identifier: u8, code: &str, secret: &[u8]) -> Vec<u8> {
    let authenticator = [identifier; 16];
    let hidden = hide_password(code.as_bytes(), secret, &authenticator).expect("hide");
    request(
        ACCESS_REQUEST,
        identifier,
        authenticator,
        vec![
            Attribute::new(USER_NAME, b"alice".to_vec()),
            Attribute::new(USER_PASSWORD, hidden),
        ],
        secret,
        true,
    )
    .expect("encode")
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

#[tokio::test]
async fn pipelined_requests_on_one_connection_are_answered_with_the_radsec_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = authority("gateways");
    let rig = radsec_rig(&ca, dir.path(), "127.0.0.1").await;
    let mut tls = connect(&rig, Some(&ca.client("fw1")))
        .await
        .expect("the handshake succeeds");

    let access = access_request(1, &hotp(0), RADSEC);
    let status = request(STATUS_SERVER, 2, [2; 16], Vec::new(), RADSEC, true).expect("encode");
    let accounting = request(
        ACCOUNTING_REQUEST,
        3,
        [0; 16],
        vec![
            Attribute::new(ACCT_STATUS_TYPE, 1u32.to_be_bytes().to_vec()),
            Attribute::new(USER_NAME, b"alice".to_vec()),
            Attribute::new(ACCT_SESSION_ID, b"s-1".to_vec()),
        ],
        RADSEC,
        false,
    )
    .expect("encode");
    // Signed with the client's UDP secret: not the secret of this transport, so dropped.
    let udp_signed = access_request(4, &hotp(1), SECRET.as_bytes());
    let mut stream = Vec::new();
    for packet in [&access, &udp_signed, &status, &accounting] {
        stream.extend_from_slice(packet);
    }
    tls.write_all(&stream).await.expect("write");

    let mut answers = std::collections::HashMap::new();
    for _ in 0..3 {
        let reply = next_packet(&mut tls).await.expect("a reply");
        let parsed = Packet::parse(&reply).expect("a packet");
        answers.insert(parsed.identifier, reply);
    }
    let code_of = |id: u8| Packet::parse(&answers[&id]).expect("packet").code;
    assert_eq!(code_of(1), ACCESS_ACCEPT, "the right code is accepted");
    assert_eq!(code_of(2), ACCESS_ACCEPT, "Status-Server is answered");
    assert_eq!(code_of(3), ACCOUNTING_RESPONSE, "accounting is answered");
    assert!(reply_valid(&answers[&1], &[1; 16], RADSEC));
    assert!(reply_valid(&answers[&2], &[2; 16], RADSEC));
    assert!(!answers.contains_key(&4), "{answers:?}");
    let reasons = rig.reasons();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(reasons[0].0, "accepted");
    assert_eq!(reasons[0].2, "radius:nas");
    let accounted: i64 = crate::helpers::api::database(&rig.app)
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'radius.accounting'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(accounted, 1);
    assert!(
        metrics(&rig)
            .await
            .contains("otpgate_radius_dropped_total{reason=\"bad_message_authenticator\"}")
    );
}

/// Whether the server refuses the connection: no RADIUS answer to a valid request, the
/// connection closed (during the handshake, or right after it under TLS 1.3, where the client
/// finishes before the server has checked its certificate).
async fn refused(rig: &Rig, certificate: Option<&ClientCertificate>) -> bool {
    let Ok(mut tls) = connect(rig, certificate).await else {
        return true;
    };
    if tls
        .write_all(&access_request(1, &hotp(0), RADSEC))
        .await
        .is_err()
    {
        return true;
    }
    next_packet(&mut tls).await.is_none()
}

#[tokio::test]
async fn a_peer_without_a_client_certificate_or_with_one_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = authority("gateways");
    let rig = radsec_rig(&ca, dir.path(), "127.0.0.1").await;
    assert!(refused(&rig, None).await, "no client certificate");
    let stranger = authority("someone else").client("fw1");
    assert!(refused(&rig, Some(&stranger)).await, "an unknown CA");
    assert!(rig.reasons().is_empty(), "nothing was evaluated");
    assert!(
        metrics(&rig)
            .await
            .contains("otpgate_radius_tls_closed_total{reason=\"handshake_failed\"} 2"),
        "both counted"
    );
    // A certificate from the configured CA gets in.
    assert!(!refused(&rig, Some(&ca.client("fw1"))).await);
}

#[tokio::test]
async fn a_peer_that_never_finishes_its_handshake_is_cut_off() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = authority("gateways");
    let rig = radsec_rig_with(&ca, dir.path(), "127.0.0.1", |radius| {
        radius.radsec_handshake_timeout_ms = 100;
    })
    .await;
    let mut silent = TcpStream::connect(("127.0.0.1", radsec_port(&rig)))
        .await
        .expect("connect");
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut byte))
        .await
        .expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        metrics(&rig)
            .await
            .contains("otpgate_radius_tls_closed_total{reason=\"handshake_timeout\"} 1")
    );
}

#[tokio::test]
async fn a_connection_past_the_cap_is_closed_at_once_and_a_silent_one_after_its_idle_deadline() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = authority("gateways");
    let rig = radsec_rig_with(&ca, dir.path(), "127.0.0.1", |radius| {
        radius.radsec_max_connections = 1;
        radius.radsec_idle_timeout_seconds = 1;
    })
    .await;
    let mut first = connect(&rig, Some(&ca.client("fw1")))
        .await
        .expect("the first connection is served");
    assert!(
        refused(&rig, Some(&ca.client("fw2"))).await,
        "the second is past the cap"
    );
    // The first, silent, is closed at its idle deadline.
    assert_eq!(next_packet(&mut first).await, None);
    let metrics = metrics(&rig).await;
    for reason in ["connection_limit", "idle"] {
        assert!(
            metrics.contains(&format!(
                "otpgate_radius_tls_closed_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason}: {metrics}"
        );
    }
}

#[tokio::test]
async fn a_good_certificate_from_an_address_no_client_holds_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = authority("gateways");
    let rig = radsec_rig(&ca, dir.path(), "192.0.2.0/24").await;
    assert!(refused(&rig, Some(&ca.client("fw1"))).await);
    assert!(rig.reasons().is_empty());
    assert!(
        metrics(&rig)
            .await
            .contains("otpgate_radius_tls_closed_total{reason=\"unknown_client\"}")
    );
}

#[tokio::test]
async fn a_packet_of_impossible_length_closes_the_connection() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = authority("gateways");
    let rig = radsec_rig(&ca, dir.path(), "127.0.0.1").await;
    let mut tls = connect(&rig, Some(&ca.client("fw1")))
        .await
        .expect("the handshake succeeds");
    tls.write_all(&[ACCESS_REQUEST, 1, 0, 5])
        .await
        .expect("write");
    assert_eq!(next_packet(&mut tls).await, None);
    assert!(
        metrics(&rig)
            .await
            .contains("otpgate_radius_tls_closed_total{reason=\"bad_length\"} 1")
    );
}

/// radsecproxy, where Debian puts it; under CI it must be there.
fn radsecproxy() -> Option<PathBuf> {
    let found = ["/usr/sbin/radsecproxy", "/usr/bin/radsecproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "radsecproxy is required under CI"
        );
        println!("skipped: radsecproxy is not installed");
    }
    found
}

/// A radsecproxy process, ended with the test.
struct Proxy {
    child: std::process::Child,
    log: PathBuf,
    port: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts radsecproxy taking UDP from radclient on a free port and forwarding over TLS to the
/// server with `client`'s certificate; returns once its UDP port is bound.
async fn start_proxy(binary: &Path, dir: &Path, rig: &Rig, client: &ClientCertificate) -> Proxy {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let server_ca = rig.app.data_dir.join("tls").join("cert.pem");
    let certificate = write("proxy.pem", &client.certificate);
    let key = write("proxy-key.pem", &client.key);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free port")
        .port();
    let conf = write(
        "radsecproxy.conf",
        &format!(
            "ListenUDP 127.0.0.1:{port}\n\
             LogLevel 3\n\
             tls default {{\n\
             CACertificateFile {}\n\
             CertificateFile {}\n\
             CertificateKeyFile {}\n\
             }}\n\
             client 127.0.0.1 {{\n\
             type udp\n\
             secret \"{PROXY_SECRET}\"\n\
             }}\n\
             server 127.0.0.1 {{\n\
             type tls\n\
             port {}\n\
             }}\n\
             realm * {{\n\
             server 127.0.0.1\n\
             accountingServer 127.0.0.1\n\
             }}\n",
            server_ca.display(),
            certificate.display(),
            key.display(),
            radsec_port(rig),
        ),
    );
    let log = dir.join("radsecproxy.log");
    let child = Command::new(binary)
        .arg("-f")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
        .stderr(Stdio::from(
            std::fs::File::options()
                .append(true)
                .open(&log)
                .expect("log"),
        ))
        .spawn()
        .expect("radsecproxy starts");
    let mut proxy = Proxy { child, log, port };
    // Bound once the port can no longer be bound here.
    for _ in 0..200 {
        if let Some(status) = proxy.child.try_wait().expect("wait") {
            panic!("radsecproxy ended ({status}): {}", proxy.log());
        }
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return proxy;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("radsecproxy did not listen: {}", proxy.log());
}

#[tokio::test]
async fn radclient_through_radsecproxy_is_accepted_for_the_right_code_and_rejected_for_a_wrong_one()
{
    let Some(binary) = radsecproxy() else {
        return;
    };
    if !radclient_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let ca = authority("gateways");
    let rig = radsec_rig(&ca, dir.path(), "127.0.0.1").await;
    let proxy = start_proxy(&binary, dir.path(), &rig, &ca.client("radsecproxy")).await;

    let request = format!(
        "{}NAS-Identifier = \"fw-radsec\"\n",
        signed("alice", &hotp(0))
    );
    let (outcome, text) = radclient(proxy.port, "auth", PROXY_SECRET, &request).await;
    assert_eq!(outcome, Outcome::Accept, "{text}\n{}", proxy.log());
    let (outcome, text) =
        radclient(proxy.port, "auth", PROXY_SECRET, &signed("alice", "000000")).await;
    assert_eq!(outcome, Outcome::Reject, "{text}\n{}", proxy.log());
    let (outcome, text) = radclient(
        proxy.port,
        "acct",
        PROXY_SECRET,
        "User-Name = \"alice\"\nAcct-Status-Type = Start\nAcct-Session-Id = \"s-9\"\n",
    )
    .await;
    assert_eq!(
        outcome,
        Outcome::Other("Accounting-Response".into()),
        "{text}\n{}",
        proxy.log()
    );

    let reasons = rig.reasons();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "accepted", "{reasons:?}");
    assert_eq!(reasons[1].0, "rejected", "{reasons:?}");
    assert!(reasons.iter().all(|r| r.2 == "radius:nas"), "{reasons:?}");
    let (detail, client_ip): (String, String) = crate::helpers::api::database(&rig.app)
        .query_row(
            "SELECT detail, client_ip FROM audit_log WHERE action = 'auth.authenticate' \
             ORDER BY id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the audit line");
    assert!(
        detail.starts_with("RadSec; NAS-Identifier fw-radsec; request "),
        "{detail}"
    );
    assert_eq!(client_ip, "127.0.0.1");
    let accounted: String = crate::helpers::api::database(&rig.app)
        .query_row(
            "SELECT detail FROM audit_log WHERE action = 'radius.accounting'",
            [],
            |row| row.get(0),
        )
        .expect("the accounting line");
    assert!(accounted.starts_with("RadSec; start; "), "{accounted}");
    assert!(accounted.contains("session s-9"), "{accounted}");
}

#[tokio::test]
async fn a_client_ca_that_cannot_be_read_or_holds_no_certificate_stops_the_start_with_its_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    for (ca_file, reason) in [
        (dir.path().join("missing.pem"), "cannot read"),
        (empty, "holds no PEM certificate"),
    ] {
        let data = tempfile::tempdir().expect("data dir");
        let mut config = crate::helpers::app::test_config(data.path());
        config.radius.radsec_listen = vec!["127.0.0.1:0".into()];
        config.radius.radsec_client_ca = Some(ca_file);
        let error = match crate::helpers::app::spawn_with(config).await {
            Ok(_) => panic!("the server started without a usable client CA"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains("radius.radsec_client_ca"), "{error}");
        assert!(error.contains(reason), "{error}");
    }
}

#[test]
fn config_check_refuses_a_radsec_client_ca_that_holds_no_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, "not a certificate\n").expect("write");
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[radius]\nradsec_listen = [\"127.0.0.1:2083\"]\nradsec_client_ca = \"{}\"\n",
            ca_file.display()
        ),
    )
    .expect("write");
    let output = crate::helpers::process::otpgate_command(dir.path())
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("radius.radsec_client_ca") && stderr.contains("holds no PEM certificate"),
        "{stderr}"
    );
}
