//! The audit log for admin keys: `GET /audit` (newest first, a page at a time by a cursor) and
//! `GET /audit.csv` (the panel's export). The filters are the panel's, checked by the same
//! rule (`crate::audit`), so that both refuse the same input in the same words.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{AdminRefusals, ErrorBody};
use super::query::QueryParams;
use super::{AdminCaller, ApiError};
use crate::audit;
use crate::store::{AuditFilter, AuditRecord};
use crate::web::AppState;

const DEFAULT_LIMIT: i64 = 50;

/// The filters of the audit log. Only documents them: `QueryParams` reads the query, so that a
/// bad value gets a 400 naming its parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "describes the query string for the OpenAPI document only"
)]
pub struct AuditQuery {
    /// From this date (`2026-05-01`) or time (`2026-05-01T14:30:00Z`) on, in UTC.
    from: Option<String>,
    /// Up to this time (exclusive); a bare date includes that whole day. UTC.
    to: Option<String>,
    /// Who acted, exactly as recorded: `admin:jane`, `apikey:3`, `user:alice`, `system`.
    actor: Option<String>,
    /// The user concerned: their id (digits) or their login.
    user: Option<String>,
    /// The resource concerned: its id (digits) or its name.
    resource: Option<String>,
    /// An action (`auth.authenticate`) or a family of actions (`token`, `portal`).
    action: Option<String>,
    /// ok, accepted, rejected, refused, failed or challenge.
    result: Option<String>,
    /// The `next_cursor` of the previous page: only entries older than it.
    cursor: Option<String>,
    /// At most this many entries (default 50, at most 500).
    limit: Option<String>,
}

/// The filters of the export: those of the list without the page.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "describes the query string for the OpenAPI document only"
)]
pub struct AuditExportQuery {
    /// From this date (`2026-05-01`) or time (`2026-05-01T14:30:00Z`) on, in UTC.
    from: Option<String>,
    /// Up to this time (exclusive); a bare date includes that whole day. UTC.
    to: Option<String>,
    /// Who acted, exactly as recorded: `admin:jane`, `apikey:3`, `user:alice`, `system`.
    actor: Option<String>,
    /// The user concerned: their id (digits) or their login.
    user: Option<String>,
    /// The resource concerned: its id (digits) or its name.
    resource: Option<String>,
    /// An action (`auth.authenticate`) or a family of actions (`token`, `portal`).
    action: Option<String>,
    /// ok, accepted, rejected, refused, failed or challenge.
    result: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Named {
    id: i64,
    name: String,
}

/// One line of the audit log. It never carries a one-time password, PIN, password or seed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditJson {
    id: i64,
    /// Unix seconds.
    at: i64,
    /// `at` in ISO 8601, UTC.
    time: String,
    /// Who acted: `admin:NAME`, `apikey:ID`, `user:LOGIN`, `system`, `console`.
    actor: String,
    action: String,
    /// ok, accepted, rejected, refused, failed or challenge.
    result: String,
    /// Why an attempt was rejected or refused, as a stable code (`bad_otp`, `no_token`,
    /// `not_assigned`, `token_locked`, `replayed`, `account_locked`, ...).
    reason: Option<String>,
    /// What `reason` means, for a person.
    reason_text: Option<&'static str>,
    /// The address of the caller (an application, a browser).
    client_ip: Option<String>,
    /// The end user's address, as the calling application reported it.
    end_user_ip: Option<String>,
    /// The user concerned (`name` is the login), while the user exists.
    user: Option<Named>,
    /// The resource concerned, while it exists.
    resource: Option<Named>,
    /// The token concerned (`name` is the serial), while it exists.
    token: Option<Named>,
    api_key_id: Option<i64>,
    detail: Option<String>,
}

impl From<AuditRecord> for AuditJson {
    fn from(record: AuditRecord) -> AuditJson {
        let entry = record.entry;
        let named = |id: Option<i64>, name: Option<String>| match (id, name) {
            (Some(id), Some(name)) => Some(Named { id, name }),
            _ => None,
        };
        AuditJson {
            id: record.id,
            at: entry.at,
            time: audit::iso_time(entry.at),
            actor: entry.actor,
            action: entry.action,
            result: entry.result,
            reason_text: entry.reason.as_deref().and_then(audit::explain),
            reason: entry.reason,
            client_ip: entry.client_ip,
            end_user_ip: entry.end_user_ip,
            user: named(entry.user_id, record.user_login),
            resource: named(entry.resource_id, record.resource_name),
            token: named(entry.token_id, record.token_serial),
            api_key_id: entry.api_key_id,
            detail: entry.detail,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    items: Vec<AuditJson>,
    /// Give it as `cursor` for the next (older) page; null on the last page. Entries written
    /// meanwhile never shift a page: they are newer than every cursor.
    next_cursor: Option<String>,
}

const FILTERS: [&str; 7] = [
    "from", "to", "actor", "user", "resource", "action", "result",
];

/// The shared rule's filter for the query, with `extra` parameters also known.
async fn read_filter(state: &AppState, query: &QueryParams) -> Result<AuditFilter, ApiError> {
    let text = |name: &str| query.text(name).map(str::to_string);
    let typed = audit::Query {
        from: text("from"),
        to: text("to"),
        actor: text("actor"),
        user: query.named("user", "login")?,
        resource: query.named("resource", "name")?,
        action: text("action"),
        result: text("result"),
    };
    Ok(audit::filter(&state.store, &typed).await?)
}

fn cursor(query: &QueryParams) -> Result<Option<i64>, ApiError> {
    match query
        .text("cursor")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::field("cursor", "the cursor must be a next_cursor this API gave")
            }),
    }
}

fn limit(query: &QueryParams) -> Result<i64, ApiError> {
    match query.text("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=super::query::MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::field(
                    "limit",
                    format!(
                        "must be a whole number from 1 to {}",
                        super::query::MAX_LIMIT
                    ),
                )
            }),
    }
}

/// The audit log, newest first, narrowed by the panel's filters. Each rejection carries its
/// reason: "why was Alice rejected?" is `?user=alice&result=rejected`.
#[utoipa::path(
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditPage),
        (status = 400, description = "A filter is invalid, or names no user or resource", body = ErrorBody),
        AdminRefusals,
    )
)]
#[get("/audit")]
pub(super) async fn list_audit(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut known = FILTERS.to_vec();
    known.extend(["cursor", "limit"]);
    let query = QueryParams::parse(&request, &known)?;
    let limit = limit(&query)?;
    let mut filter = read_filter(&state, &query).await?;
    filter.before_id = cursor(&query)?;
    let mut records = state.store.search_audit(filter, limit + 1).await?;
    let more = records.len() as i64 > limit;
    records.truncate(limit as usize);
    let next_cursor = more
        .then(|| records.last().map(|record| record.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage {
        items: records.into_iter().map(AuditJson::from).collect(),
        next_cursor,
    }))
}

/// The audit log as CSV, as the panel exports it: the same columns, newest first, at most
/// 100,000 lines (narrow the filters for more).
#[utoipa::path(
    tag = "audit",
    params(AuditExportQuery),
    responses(
        (status = 200, description = "The entries as CSV (RFC 4180) with a header line: id, time, actor, action, result, reason, client_ip, end_user_ip, user, resource, token, api_key_id, detail",
         content_type = "text/csv", body = String),
        (status = 400, description = "A filter is invalid, or names no user or resource", body = ErrorBody),
        AdminRefusals,
    )
)]
#[get("/audit.csv")]
pub(super) async fn export_audit(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = QueryParams::parse(&request, &FILTERS)?;
    let filter = read_filter(&state, &query).await?;
    let records = state
        .store
        .search_audit(filter, audit::EXPORT_LIMIT)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"audit-log.csv\"",
        ))
        .body(audit::csv(&records)))
}
