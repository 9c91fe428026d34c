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
}

pub struct Gateway {
    pub url: String,
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
        let shared = web::Data::new(Shared::default());
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Gateway {
            url: format!("http://127.0.0.1:{port}"),
            shared: shared.into_inner(),
            handle,
        }
    }

    /// The next `count` requests (but those for the 400 and 222 numbers) get a 503.
    pub fn unavailable_for(&self, count: usize) {
        self.shared.unavailable.store(count, Ordering::SeqCst);
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
