//! Reading the audit log, the rule the panel and the API share: a filter as typed (time range,
//! actor, user, resource, action, result) checked and turned into the store's, refused in the
//! same words wherever it was typed; what each rejection's reason means; and the CSV export,
//! written here once for both.

use crate::clock::UnixTime;
use crate::domain::{IdOrName, Refused, RuleError};
use crate::store::{AuditFilter, AuditRecord, Store};

/// At most this many lines go into one export; narrow the filter for more.
pub const EXPORT_LIMIT: i64 = 100_000;

/// The results an audit line may carry: the filters of the API and the panel take these.
pub const RESULTS: &[&str] = &[
    "ok",
    "accepted",
    "rejected",
    "refused",
    "failed",
    "challenge",
    "locked",
    "skipped",
    // Messages: sent, or expired before they could be.
    "sent",
    "expired",
    // Approvals in Telegram (`auth.approval`); an approval left unanswered is `expired`.
    "approved",
    "denied",
    // The self-service portal.
    "started",
    "code_sent",
    "blocked",
];

/// A filter as typed: every field optional, times as dates (`2026-05-01`) or dates and times
/// (`2026-05-01T14:30`) in UTC.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    pub user: Option<IdOrName>,
    pub resource: Option<IdOrName>,
    pub action: Option<String>,
    pub result: Option<String>,
}

/// A date (`2026-05-01`) or a date and time (`2026-05-01T14:30`, as a browser's date-time
/// field sends it; seconds and a closing `Z` allowed), in UTC. With `end_of_day`, a bare date
/// means the end of that day.
pub fn parse_time(text: &str, end_of_day: bool) -> Option<UnixTime> {
    let text = text.trim();
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, Some(clock.strip_suffix('Z').unwrap_or(clock))),
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
            if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
                return None;
            }
            Some(start + hour * 3600 + minute * 60 + second)
        }
    }
}

fn nonempty(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// The store's filter for a typed one; a refusal names the field that cannot be used.
pub async fn filter(store: &Store, query: &Query) -> Result<AuditFilter, RuleError> {
    let mut filter = AuditFilter {
        actor: nonempty(&query.actor),
        action: nonempty(&query.action),
        ..AuditFilter::default()
    };
    if let Some(result) = nonempty(&query.result) {
        if !RESULTS.contains(&result.as_str()) {
            return Err(Refused::field(
                "result",
                format!("the result must be one of {}", RESULTS.join(", ")),
            )
            .into());
        }
        filter.result = Some(result);
    }
    for (field, text, end_of_day) in [("from", &query.from, false), ("to", &query.to, true)] {
        if let Some(text) = nonempty(text) {
            let at = parse_time(&text, end_of_day).ok_or_else(|| {
                Refused::field(field, format!("“{text}” is not a date such as 2026-05-01"))
            })?;
            if field == "from" {
                filter.since = Some(at);
            } else {
                filter.until = Some(at);
            }
        }
    }
    if let Some(user) = &query.user {
        let found = store
            .find_user(user.clone())
            .await?
            .ok_or_else(|| Refused::field("user", format!("there is no user {}", quoted(user))))?;
        filter.user_id = Some(found.id);
    }
    if let Some(resource) = &query.resource {
        let found = store
            .find_resource(resource.clone())
            .await?
            .ok_or_else(|| {
                Refused::field(
                    "resource",
                    format!("there is no resource {}", quoted(resource)),
                )
            })?;
        filter.resource_id = Some(found.id);
    }
    Ok(filter)
}

fn quoted(key: &IdOrName) -> String {
    match key {
        IdOrName::Id(id) => format!("#{id}"),
        IdOrName::Name(name) => format!("“{}”", name.trim()),
    }
}

/// What a rejection's or refusal's reason code means, for a person.
pub fn explain(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "bad_otp" => "the one-time password was wrong (or its PIN was)",
        "bad_code" => "the code typed to confirm or claim a token was wrong",
        "bad_password" => "the password was wrong",
        "bad_serial_or_code" => "no unassigned token has this serial and code",
        "password_required" => "the resource requires a password and none was given",
        "password_only" => "a password was given where a one-time password was needed",
        "unknown_user" => "no user has this login or id",
        "user_disabled" => "the user is disabled",
        "not_assigned" => "the user is not assigned to the resource",
        "token_not_in_resource" => "the token is not assigned to the resource",
        "no_token" => "the user has no usable token in the resource",
        "token_locked" => "the token is locked after too many failed attempts",
        "token_needs_reactivation" => "the token must be activated again before use",
        "replayed" => "the one-time password was already used",
        "account_locked" => "the account is locked after too many failed logins",
        "failed_logins" => "too many failed logins in a row: the attempt came too soon",
        "codes_not_found" => "the two codes were not found in the resynchronisation window",
        "empty_password" => "an empty password was given; a directory is never asked with one",
        "directory_unavailable" => "the user's directory did not answer; no attempt was counted",
        "directory_user_gone" => "the user is no longer among the people of their directory",
        "directory_logon_hours" => "the directory does not let the user log on at this time",
        "directory_workstation" => "the directory does not let the user log on from here",
        "directory_password_expired" => "the user's password has expired in the directory",
        "directory_account_disabled" => "the user's account is disabled in the directory",
        "directory_account_expired" => "the user's account has expired in the directory",
        "directory_must_change_password" => {
            "the directory asks the user to set a new password first"
        }
        "directory_account_locked" => "the user's account is locked in the directory",
        "approval" => "the user approved the sign-in in Telegram",
        "approval_used" => "the approved sign-in was already let in, or it ended",
        "approval_denied" => "the user denied the sign-in in Telegram",
        "approval_wrong_number" => "the user chose a wrong number in Telegram",
        "approval_expired" => "nobody answered the approval in Telegram in time",
        "no_approval" => "the transaction has no approval, and no code was given",
        "no_bot_token" => "the user has no active BOT token in the resource to approve with",
        "denied" => "the user denied the sign-in in Telegram",
        "wrong_number" => "the user chose a wrong number in Telegram",
        _ => return None,
    })
}

/// One CSV cell: quoted when it holds a separator, a quote or a line break, and prefixed with
/// `'` when a spreadsheet would take it for a formula.
pub fn csv_cell(value: &str) -> String {
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
pub fn iso_time(at: UnixTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The columns of an export, in order.
pub const CSV_COLUMNS: &[&str] = &[
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
];

/// The export of `records`: a header line, then one line per record (RFC 4180, CRLF).
pub fn csv(records: &[AuditRecord]) -> String {
    let mut out = csv_line(CSV_COLUMNS);
    for record in records {
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
    out
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
        assert_eq!(parse_time("1970-01-01T01:02:03Z", false), Some(3723));
        assert_eq!(parse_time("1970-13-01", false), None);
        assert_eq!(parse_time("yesterday", false), None);
        assert_eq!(parse_time("1970-01-01T25:00", false), None);
    }

    #[test]
    fn an_export_has_a_header_and_iso_times() {
        assert_eq!(iso_time(86_400 + 61), "1970-01-02T00:01:01Z");
        assert!(csv(&[]).starts_with("id,time,actor,action,result,reason,"));
    }
}
