//! The admin panel's Audit log: every authentication, enrolment and change, filtered by time,
//! actor, user, resource, action and result, newest first, and exported as CSV.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::Page;
use crate::domain::IdOrName;
use crate::store::{AuditFilter, AuditRecord};
use crate::web::form::{url_encode, with_status};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

const PER_PAGE: i64 = 50;
/// At most this many lines go into one export; narrow the filter for more.
const EXPORT_LIMIT: i64 = 100_000;

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

/// A date (`2026-05-01`) or a date and time (`2026-05-01T14:30`, as a browser's date-time
/// field sends it), in UTC. With `end_of_day`, a bare date means the end of that day.
fn parse_time(text: &str, end_of_day: bool) -> Option<i64> {
    let text = text.trim();
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, Some(clock)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let start = date.midnight().assume_utc().unix_timestamp();
    match clock {
        None if end_of_day => Some(start + 86_400),
        None => Some(start),
        Some(clock) => {
            let mut parts = clock.split(':');
            let hour: i64 = parts.next()?.parse().ok()?;
            let minute: i64 = parts.next()?.parse().ok()?;
            let second: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
            if hour > 23 || minute > 59 || second > 59 {
                return None;
            }
            Some(start + hour * 3600 + minute * 60 + second)
        }
    }
}

fn text(value: &str) -> Option<String> {
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

/// The store's filter for the typed one; an error names what cannot be used.
async fn build_filter(
    state: &AppState,
    query: &AuditQuery,
) -> Result<Result<AuditFilter, String>, PageError> {
    let mut filter = AuditFilter {
        actor: text(&query.actor),
        action: text(&query.action),
        result: text(&query.result),
        ..AuditFilter::default()
    };
    if let Some(from) = text(&query.from) {
        match parse_time(&from, false) {
            Some(at) => filter.since = Some(at),
            None => return Ok(Err(format!("“{from}” is not a date such as 2026-05-01."))),
        }
    }
    if let Some(to) = text(&query.to) {
        match parse_time(&to, true) {
            Some(at) => filter.until = Some(at),
            None => return Ok(Err(format!("“{to}” is not a date such as 2026-05-01."))),
        }
    }
    if let Some(user) = text(&query.user) {
        match state.store.find_user(IdOrName::Name(user.clone())).await? {
            Some(found) => filter.user_id = Some(found.id),
            None => return Ok(Err(format!("There is no user “{user}”."))),
        }
    }
    if let Some(resource) = text(&query.resource) {
        match state
            .store
            .find_resource(IdOrName::Name(resource.clone()))
            .await?
        {
            Some(found) => filter.resource_id = Some(found.id),
            None => return Ok(Err(format!("There is no resource “{resource}”."))),
        }
    }
    if let Some(before) = text(&query.before) {
        filter.before_id = before.parse::<i64>().ok();
    }
    Ok(Ok(filter))
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
                    @for (value, label) in [("", "Any"), ("ok", "ok"), ("accepted", "accepted"), ("rejected", "rejected"), ("refused", "refused"), ("failed", "failed"), ("challenge", "challenge")] {
                        option value=(value) selected[query.result == value] { (label) }
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
    let ok = matches!(entry.result.as_str(), "ok" | "accepted");
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

/// One CSV cell: quoted when it holds a separator, a quote or a line break, and prefixed with
/// `'` when a spreadsheet would take it for a formula.
pub(super) fn csv_cell(value: &str) -> String {
    let neutral = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

fn csv_line(cells: &[&str]) -> String {
    let mut line = cells
        .iter()
        .map(|cell| csv_cell(cell))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// A time as an export shows it: ISO 8601 in UTC.
fn iso_time(at: i64) -> String {
    format_time(at).replacen(' ', "T", 1) + "Z"
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
    let records = state.store.search_audit(filter, EXPORT_LIMIT).await?;
    let mut out = csv_line(&[
        "id",
        "time",
        "actor",
        "action",
        "result",
        "reason",
        "client_ip",
        "end_user_ip",
        "user",
        "resource",
        "token",
        "api_key_id",
        "detail",
    ]);
    for record in &records {
        let entry = &record.entry;
        out.push_str(&csv_line(&[
            &record.id.to_string(),
            &iso_time(entry.at),
            &entry.actor,
            &entry.action,
            &entry.result,
            entry.reason.as_deref().unwrap_or(""),
            entry.client_ip.as_deref().unwrap_or(""),
            entry.end_user_ip.as_deref().unwrap_or(""),
            record.user_login.as_deref().unwrap_or(""),
            record.resource_name.as_deref().unwrap_or(""),
            record.token_serial.as_deref().unwrap_or(""),
            &entry
                .api_key_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            entry.detail.as_deref().unwrap_or(""),
        ]));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"audit-log.csv\"",
        ))
        .body(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for start in ["+1", "-1", "@SUM(A1)", "\tx"] {
            assert!(
                csv_cell(start).trim_start_matches('"').starts_with('\''),
                "{start}"
            );
        }
    }

    #[test]
    fn dates_and_times_are_read_in_utc() {
        assert_eq!(parse_time("1970-01-02", false), Some(86_400));
        assert_eq!(parse_time("1970-01-02", true), Some(2 * 86_400));
        assert_eq!(parse_time("1970-01-01T01:02", true), Some(3720));
        assert_eq!(parse_time("1970-13-01", false), None);
        assert_eq!(parse_time("yesterday", false), None);
        assert_eq!(parse_time("1970-01-01T25:00", false), None);
    }
}
