//! The admin panel's Audit log: every authentication, enrolment and change, filtered by time,
//! actor, user, resource, action and result, newest first, and exported as CSV.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::Page;
use crate::audit;
use crate::domain::{IdOrName, RuleError};
use crate::store::{AuditFilter, AuditRecord};
use crate::web::form::{url_encode, with_status};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

const PER_PAGE: i64 = 50;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/audit", web::get().to(show_audit))
        .route("/admin/audit.csv", web::get().to(export_audit));
}

/// The filter as typed in the form (and carried in the query string).
#[derive(Deserialize, Default, Clone)]
pub struct AuditQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    before: String,
}

impl AuditQuery {
    /// The query string of this filter, without the page position.
    fn filter_query(&self) -> String {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("actor", &self.actor),
            ("user", &self.user),
            ("resource", &self.resource),
            ("action", &self.action),
            ("result", &self.result),
        ]
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| format!("{name}={}", url_encode(value.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn text(value: &str) -> Option<String> {
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

/// The store's filter for the typed one, by the rule the API shares; an error is the
/// refusal's words, as a sentence.
async fn build_filter(
    state: &AppState,
    query: &AuditQuery,
) -> Result<Result<AuditFilter, String>, PageError> {
    let typed = audit::Query {
        from: text(&query.from),
        to: text(&query.to),
        actor: text(&query.actor),
        user: text(&query.user).map(IdOrName::Name),
        resource: text(&query.resource).map(IdOrName::Name),
        action: text(&query.action),
        result: text(&query.result),
    };
    let mut filter = match audit::filter(&state.store, &typed).await {
        Ok(filter) => filter,
        Err(RuleError::Refused(refused)) => return Ok(Err(sentence(&refused.to_string()))),
        Err(error) => return Err(PageError::from(error)),
    };
    if let Some(before) = text(&query.before) {
        filter.before_id = before.parse::<i64>().ok();
    }
    Ok(Ok(filter))
}

/// A refusal's words as a sentence: a capital first letter and a full stop.
fn sentence(words: &str) -> String {
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

fn filter_form(query: &AuditQuery) -> Markup {
    html! {
        form.filters method="get" action="/admin/audit" role="search" {
            label { "From (UTC)" input type="date" name="from" value=(query.from); }
            label { "To (UTC)" input type="date" name="to" value=(query.to); }
            label { "Actor" input type="text" name="actor" value=(query.actor) placeholder="admin:jane"; }
            label { "User" input type="text" name="user" value=(query.user) placeholder="login"; }
            label { "Resource" input type="text" name="resource" value=(query.resource); }
            label { "Action" input type="text" name="action" value=(query.action) placeholder="auth.authenticate"; }
            label {
                "Result"
                select name="result" {
                    option value="" selected[query.result.is_empty()] { "Any" }
                    @for &result in audit::RESULTS {
                        option value=(result) selected[query.result == result] { (result) }
                    }
                }
            }
            div.buttons {
                button type="submit" { "Filter" }
                " "
                a href="/admin/audit" { "Clear" }
            }
        }
    }
}

fn record_row(record: &AuditRecord) -> Markup {
    let entry = &record.entry;
    let ok = matches!(
        entry.result.as_str(),
        "ok" | "accepted" | "approved" | "sent" | "started" | "code_sent"
    );
    html! {
        tr {
            td.nowrap { (format_time(entry.at)) }
            td { (entry.actor) }
            td { (entry.action) }
            td class=(if ok { "result-ok" } else { "result-fail" }) {
                (entry.result)
                @if let Some(reason) = &entry.reason { " (" (reason) ")" }
            }
            td { (record.user_login.as_deref().unwrap_or("")) }
            td { (record.resource_name.as_deref().unwrap_or("")) }
            td { (entry.detail.as_deref().unwrap_or("")) }
            td { (entry.client_ip.as_deref().unwrap_or(""))
                @if let Some(end_user) = &entry.end_user_ip { " → " (end_user) } }
        }
    }
}

async fn show_audit(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let query = query.into_inner();
    let (records, error) = match build_filter(&state, &query).await? {
        Ok(filter) => (state.store.search_audit(filter, PER_PAGE + 1).await?, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let more = records.len() as i64 > PER_PAGE;
    let shown = &records[..records.len().min(PER_PAGE as usize)];
    let filter_query = query.filter_query();
    let joiner = if filter_query.is_empty() { "" } else { "&" };
    let body = html! {
        (filter_form(&query))
        (crate::web::form::error_line(error.as_deref()))
        p.actions {
            a.button-secondary href=(format!("/admin/audit.csv?{filter_query}")) download="audit-log.csv" { "Export as CSV" }
        }
        @if shown.is_empty() && error.is_none() {
            p.empty { "No entries match this filter." }
        } @else if !shown.is_empty() {
            table.audit {
                thead { tr { th { "When (UTC)" } th { "Actor" } th { "Action" } th { "Result" } th { "User" } th { "Resource" } th { "Detail" } th { "From" } } }
                tbody { @for record in shown { (record_row(record)) } }
            }
        }
        nav.pager aria-label="Pages" {
            @if !query.before.is_empty() {
                a href=(format!("/admin/audit?{filter_query}")) { "↑ Newest" }
            }
            @if more {
                @if let Some(last) = shown.last() {
                    a rel="next" href=(format!("/admin/audit?{filter_query}{joiner}before={}", last.id)) { "Older entries →" }
                }
            }
        }
    };
    let response = page.render(&state, "Audit log", "Audit log", body);
    Ok(if error.is_some() {
        with_status(response, StatusCode::BAD_REQUEST)
    } else {
        response
    })
}

async fn export_audit(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    Page::open(&state, &request).await?;
    let filter = match build_filter(&state, &query).await? {
        Ok(filter) => filter,
        Err(error) => {
            return Ok(HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body(error));
        }
    };
    let records = state
        .store
        .search_audit(filter, audit::EXPORT_LIMIT)
        .await?;
    let out = audit::csv(&records);
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"audit-log.csv\"",
        ))
        .body(out))
}
