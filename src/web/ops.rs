//! Operations endpoints: health, metrics, static assets.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;

const STYLESHEET: &str = include_str!("../../assets/style.css");
const PANEL_SCRIPT: &str = include_str!("../../assets/panel.js");

/// 200 when the database answers, 503 otherwise, for load balancers and monitoring.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if state.store.ping().await {
        HttpResponse::Ok().content_type("text/plain").body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("database unavailable\n")
    }
}

/// The metrics in Prometheus' text format; only for the configured bearer token when there is
/// one.
pub async fn metrics(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let expected = &state.config.metrics.bearer_token;
    if !expected.is_empty() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared as hashes, so that the time tells nothing of the token, its length included.
        let (given, expected) = (
            crate::crypto::sha256(given.trim().as_bytes()),
            crate::crypto::sha256(expected.as_bytes()),
        );
        if !crate::crypto::constant_time_eq(&given, &expected) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"otpgate metrics\""))
                .content_type("text/plain")
                .body("a bearer token is required\n");
        }
    }
    let mut text = state.metrics.render();
    text.push_str(&format!(
        "# HELP otpgate_approval_waiters Authentications waiting for an approval's decision now.\n\
         # TYPE otpgate_approval_waiters gauge\n\
         otpgate_approval_waiters {}\n",
        state.approval_waiters.count()
    ));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

/// The admin panel's small script (a copy button); pages work without it.
pub async fn panel_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(PANEL_SCRIPT)
}
