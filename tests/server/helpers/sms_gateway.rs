//! A real HTTP SMS gateway on loopback for the delivery tests. It records every request as
//! it came (raw query and body), answers 503 to the first `unavailable` requests, 400 to a
//! phone number ending in 400, a 200 without "queued" to one ending in 222, and otherwise
//! 200 `{"status":"queued"}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Captured {
    /// The decoded pairs of a form-encoded text (a query string or a form body).
    pub fn form(text: &str) -> HashMap<String, String> {
        reqwest::Url::parse(&format!("http://x/?{text}"))
            .expect("url")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Captured>>,
    unavailable: AtomicUsize,
    /// Milliseconds to wait before answering (after the request is recorded).
    delay_ms: std::sync::atomic::AtomicU64,
}

pub struct Gateway {
    pub url: String,
    /// The gateway's self-signed certificate, when it speaks HTTPS.
    pub cert_pem: Option<String>,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let captured = Captured {
        method: request.method().to_string(),
        path: request.path().to_string(),
        query: request.query_string().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let seen = format!("{} {}", captured.query, captured.body);
    shared.requests.lock().expect("lock").push(captured);
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if seen.contains("400&") || seen.contains("400\"") || seen.ends_with("400") {
        return HttpResponse::BadRequest().body("{\"error\":\"invalid number\"}");
    }
    if seen.contains("222&") || seen.contains("222\"") || seen.ends_with("222") {
        return HttpResponse::Ok().body("{\"status\":\"rejected\"}");
    }
    let unavailable = shared.unavailable.load(Ordering::SeqCst);
    if unavailable > 0 {
        shared.unavailable.store(unavailable - 1, Ordering::SeqCst);
        return HttpResponse::ServiceUnavailable().body("busy");
    }
    HttpResponse::Ok().body("{\"status\":\"queued\",\"id\":\"m-1\"}")
}

impl Gateway {
    pub async fn start() -> Gateway {
        Gateway::start_with(None).await
    }

    /// A gateway on HTTPS with a self-signed certificate, as an internal one may be.
    pub async fn start_tls() -> Gateway {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
        let mut gateway = Gateway::start_with(Some(config)).await;
        gateway.cert_pem = Some(certified.cert.pem());
        gateway
    }

    async fn start_with(tls: Option<rustls::ServerConfig>) -> Gateway {
        let shared = web::Data::new(Shared::default());
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(config) => server.bind_rustls_0_23("127.0.0.1:0", config),
            None => server.bind("127.0.0.1:0"),
        }
        .expect("bind");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Gateway {
            url: format!("{scheme}://127.0.0.1:{port}"),
            cert_pem: None,
            shared: shared.into_inner(),
            handle,
        }
    }

    /// The next `count` requests (but those for the 400 and 222 numbers) get a 503.
    pub fn unavailable_for(&self, count: usize) {
        self.shared.unavailable.store(count, Ordering::SeqCst);
    }

    /// Answers every request only after `delay` (it is recorded at once).
    pub fn slow(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.shared.requests.lock().expect("lock").clone()
    }

    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Captured> {
        let deadline = Instant::now() + limit;
        loop {
            let requests = self.requests();
            if requests.len() >= count || Instant::now() > deadline {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// The first run of 6 to 8 digits in a message.
pub fn code_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| (6..=8).contains(&run.len()))
        .map(str::to_string)
}
