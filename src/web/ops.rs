//! Operations endpoints: health, metrics, static assets.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use crate::store::directory_sync::DirectorySyncState;

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
    let mut body = state.metrics.render();
    match state.store.directory_sync_states().await {
        Ok(directories) => directory_gauges(&mut body, &directories),
        Err(error) => tracing::warn!(%error, "the directories' syncs could not be read"),
    }
    body.push_str(&format!(
        "# HELP otpgate_approval_waiters Authentications waiting for an approval's decision now.\n\
         # TYPE otpgate_approval_waiters gauge\n\
         otpgate_approval_waiters {}\n",
        state.approval_waiters.count()
    ));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

/// The directories' last syncs and their users, as gauges labelled by directory.
fn directory_gauges(out: &mut String, directories: &[DirectorySyncState]) {
    use crate::metrics::write_gauges;
    let each = |value: &dyn Fn(&DirectorySyncState) -> Option<f64>| {
        directories
            .iter()
            .filter_map(|d| Some((vec![("directory", d.name.as_str())], value(d)?)))
            .collect::<Vec<_>>()
    };
    write_gauges(
        out,
        "otpgate_directory_sync_last_success_timestamp_seconds",
        "When the last sync of the directory that worked ended (Unix seconds).",
        &each(&|d| Some(d.last.as_ref()?.last_success_at? as f64)),
    );
    write_gauges(
        out,
        "otpgate_directory_sync_last_run_timestamp_seconds",
        "When the last sync of the directory ended, worked or failed (Unix seconds).",
        &each(&|d| Some(d.last.as_ref()?.finished_at as f64)),
    );
    write_gauges(
        out,
        "otpgate_directory_sync_ok",
        "1 when the last sync of the directory worked, 0 when it failed.",
        &each(&|d| Some(if d.last.as_ref()?.ok { 1.0 } else { 0.0 })),
    );
    write_gauges(
        out,
        "otpgate_directory_sync_duration_seconds",
        "How long the last sync of the directory took.",
        &each(&|d| Some(d.last.as_ref()?.duration_ms as f64 / 1000.0)),
    );
    let mut changes = Vec::new();
    for directory in directories {
        let Some(last) = &directory.last else {
            continue;
        };
        for (change, count) in [
            ("created", last.created),
            ("updated", last.updated),
            ("disabled", last.disabled),
            ("enabled", last.enabled),
            ("conflicts", last.conflicts),
            ("skipped", last.skipped),
            ("assigned", last.assigned),
            ("unassigned", last.unassigned),
        ] {
            changes.push((
                vec![("directory", directory.name.as_str()), ("change", change)],
                count as f64,
            ));
        }
    }
    write_gauges(
        out,
        "otpgate_directory_sync_changes",
        "What the last sync of the directory did, by kind of change.",
        &changes,
    );
    let mut users = Vec::new();
    for directory in directories {
        users.push((
            vec![("directory", directory.name.as_str()), ("state", "enabled")],
            directory.enabled_users as f64,
        ));
        users.push((
            vec![
                ("directory", directory.name.as_str()),
                ("state", "disabled"),
            ],
            (directory.users - directory.enabled_users) as f64,
        ));
    }
    write_gauges(
        out,
        "otpgate_directory_sync_users",
        "The users linked to the directory's entries, enabled and disabled.",
        &users,
    );
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
