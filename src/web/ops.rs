//! Operations endpoints: health, metrics, static assets.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

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

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
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
