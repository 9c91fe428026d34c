//! The dashboard: what there is, how authentication went over the last day, what needs
//! attention (failures, locked tokens, sign-ins denied in Telegram) and how the delivery
//! channels are doing.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::Page;
use crate::clock::now;
use crate::store::directory_sync::DirectorySyncState;
use crate::store::{ChannelHealth, Dashboard, DeniedApprovals, HourlyAuthentications};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

pub async fn show_dashboard(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let now = now();
    let figures = state.store.dashboard(now).await?;
    let denied = state.store.denied_approvals(now - 24 * 3600).await?;
    let directories = state.store.directory_sync_states().await?;
    let body = html! {
        (dashboard_body(&figures))
        (denied_approvals_block(&denied))
        (directories_block(&directories))
    };
    Ok(page.render(&state, "Dashboard", "Dashboard", body))
}

/// Sign-ins denied in Telegram over the last day: someone was asked to approve a sign-in they
/// did not start ("This wasn't me"), or pressed a number the sign-in did not show.
fn denied_approvals_block(denied: &DeniedApprovals) -> Markup {
    html! {
        section aria-labelledby="approvals-heading" {
            h2 #approvals-heading { "Approvals denied in the last 24 hours" }
            p.chart-summary {
                span.key.key-rejected { "This wasn't me " strong { (denied.denied) } }
                " "
                span.key.key-rejected { "Wrong number " strong { (denied.wrong_number) } }
            }
            @if denied.recent.is_empty() {
                p.empty { "No sign-in was denied in Telegram." }
            } @else {
                p.note { "A user denied a sign-in they did not start, or pressed a number their sign-in did not show: someone else may know their password." }
                table {
                    thead { tr { th { "When (UTC)" } th { "User" } th { "Resource" } th { "Token" } th { "Answer" } } }
                    tbody {
                        @for line in &denied.recent {
                            tr {
                                td { (format_time(line.at)) }
                                td { (line.user_login.as_deref().unwrap_or("—")) }
                                td { (line.resource_name.as_deref().unwrap_or("—")) }
                                td {
                                    @match (line.token_id, &line.token_serial) {
                                        (Some(id), Some(serial)) => { a href=(format!("/admin/tokens/{id}")) { (serial) } }
                                        _ => { "—" }
                                    }
                                }
                                td {
                                    @if line.reason.as_deref() == Some("wrong_number") { "Wrong number" }
                                    @else { "This wasn't me" }
                                }
                            }
                        }
                    }
                }
                p { a href="/admin/audit?action=auth.approval&result=denied" { "All denied approvals in the audit log" } }
            }
        }
    }
}

fn dashboard_body(figures: &Dashboard) -> Markup {
    let counts = &figures.overview;
    let accepted: i64 = figures.hourly.iter().map(|h| h.accepted).sum();
    let rejected: i64 = figures.hourly.iter().map(|h| h.rejected).sum();
    html! {
        section.tiles aria-label="Overview" {
            @for (label, figure, href) in [
                ("Users", counts.users, "/admin/users"),
                ("Tokens", counts.tokens, "/admin/tokens"),
                ("Resources", counts.resources, "/admin/resources"),
                ("Administrators", counts.admins, "/admin/administrators"),
            ] {
                a.tile href=(href) { div.figure { (figure) } div.label { (label) } }
            }
        }
        section aria-labelledby="auth-heading" {
            h2 #auth-heading { "Authentications in the last 24 hours" }
            p.chart-summary {
                span.key.key-accepted { "Accepted " strong { (accepted) } }
                " "
                span.key.key-rejected { "Rejected " strong { (rejected) } }
            }
            (auth_chart(&figures.hourly))
        }
        div.columns {
            section aria-labelledby="failures-heading" {
                h2 #failures-heading { "Recent failures" }
                @if figures.recent_failures.is_empty() {
                    p.empty { "No failed authentications." }
                } @else {
                    table {
                        thead { tr { th { "When (UTC)" } th { "User" } th { "Resource" } th { "Reason" } th { "From" } } }
                        tbody {
                            @for failure in &figures.recent_failures {
                                tr {
                                    td { (format_time(failure.at)) }
                                    td { (failure.user_login.as_deref().unwrap_or("—")) }
                                    td { (failure.resource_name.as_deref().unwrap_or("—")) }
                                    td { (failure.reason.as_deref().unwrap_or("—")) }
                                    td { (failure.end_user_ip.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                    p { a href="/admin/audit?action=auth.authenticate&result=rejected" { "All failures in the audit log" } }
                }
            }
            section aria-labelledby="locked-heading" {
                h2 #locked-heading { "Locked tokens" }
                @if figures.locked_tokens.is_empty() {
                    p.empty { "No token is locked." }
                } @else {
                    table {
                        thead { tr { th { "Serial" } th { "Kind" } th { "User" } th { "Locked since (UTC)" } } }
                        tbody {
                            @for token in &figures.locked_tokens {
                                tr {
                                    td { a href=(format!("/admin/tokens/{}", token.id)) { (token.serial) } }
                                    td { (token.kind.as_str()) }
                                    td { (token.user_login.as_deref().unwrap_or("—")) }
                                    td { (format_time(token.locked_at)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="tokens-heading" {
            h2 #tokens-heading { "Tokens by kind" }
            table.figures {
                thead { tr { th { "Kind" } th { "Active" } th { "Pending activation" } th { "To re-activate" } th { "Locked" } th { "Disabled" } th { "All" } } }
                tbody {
                    @for (kind, counts) in &figures.tokens_by_kind {
                        tr {
                            th scope="row" { (kind.as_str()) }
                            td { (counts.active) }
                            td { (counts.pending) }
                            td { (counts.reactivate) }
                            td { (counts.locked) }
                            td { (counts.disabled) }
                            td { (counts.total()) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="delivery-heading" {
            h2 #delivery-heading { "Delivery in the last 24 hours" }
            table.figures {
                thead { tr { th { "Channel" } th { "Sent" } th { "Waiting" } th { "Failed" } th { "Expired" } th { "Last error" } } }
                tbody {
                    @for channel in &figures.channels {
                        (channel_row(channel))
                    }
                }
            }
        }
    }
}

/// The directories' last syncs; nothing when there is no directory.
fn directories_block(directories: &[DirectorySyncState]) -> Markup {
    html! {
        @if !directories.is_empty() {
            section aria-labelledby="directories-heading" {
                h2 #directories-heading { "Directories" }
                table.figures {
                    thead { tr { th { "Directory" } th { "Last sync (UTC)" } th { "Result" } th { "Took" } th { "Created" } th { "Updated" } th { "Disabled" } th { "Enabled" } th { "Conflicts" } th { "Skipped" } th { "Users" } } }
                    tbody {
                        @for directory in directories {
                            tr {
                                th scope="row" { (directory.name) }
                                @if let Some(last) = &directory.last {
                                    td { (format_time(last.finished_at)) }
                                    @if let Some(error) = &last.error {
                                        td.result-fail { "Failed: " (error) }
                                    } @else {
                                        td { "OK" }
                                    }
                                    td { (format!("{:.1} s", last.duration_ms as f64 / 1000.0)) }
                                    td { (last.created) }
                                    td { (last.updated) }
                                    td { (last.disabled) }
                                    td { (last.enabled) }
                                    td class=(if last.conflicts > 0 { "result-fail" } else { "" }) { (last.conflicts) }
                                    td { (last.skipped) }
                                } @else {
                                    td colspan="9" { "Not synced yet" }
                                }
                                td { (directory.users) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn channel_row(channel: &ChannelHealth) -> Markup {
    let name = match channel.channel.as_str() {
        "mail" => "Mail",
        "sms" => "SMS",
        "bot" => "Bot",
        other => other,
    };
    html! {
        tr {
            th scope="row" { (name) }
            td { (channel.sent) }
            td { (channel.queued) }
            td class=(if channel.failed > 0 { "result-fail" } else { "" }) { (channel.failed) }
            td { (channel.expired) }
            td {
                @if let Some((at, error)) = &channel.last_error {
                    span.when { (format_time(*at)) } " " (error)
                } @else {
                    "—"
                }
            }
        }
    }
}

const CHART_WIDTH: i64 = 720;
const CHART_HEIGHT: i64 = 180;
const AXIS: i64 = 20;

/// The hourly authentications as a bar chart: an accepted and a rejected bar per hour, scaled
/// to the busiest hour. Colours come from the stylesheet through classes.
fn auth_chart(hours: &[HourlyAuthentications]) -> Markup {
    let slot = CHART_WIDTH / (hours.len().max(1) as i64);
    let bar = (slot - 6) / 2;
    let busiest = hours
        .iter()
        .map(|h| h.accepted.max(h.rejected))
        .max()
        .unwrap_or(0)
        .max(1);
    let height = |count: i64| count * CHART_HEIGHT / busiest;
    let hour_label = |at: i64| {
        let text = format_time(at);
        text.get(11..16).unwrap_or("").to_string()
    };
    html! {
        svg.chart viewBox=(format!("0 0 {CHART_WIDTH} {}", CHART_HEIGHT + AXIS)) role="img"
            aria-label="Accepted and rejected authentications per hour over the last 24 hours" {
            line.axis x1="0" y1=(CHART_HEIGHT) x2=(CHART_WIDTH) y2=(CHART_HEIGHT) {}
            @for (i, hour) in hours.iter().enumerate() {
                @let x = i as i64 * slot + 3;
                g {
                    title { (hour_label(hour.hour)) " UTC: " (hour.accepted) " accepted, " (hour.rejected) " rejected" }
                    rect.accepted x=(x) y=(CHART_HEIGHT - height(hour.accepted)) width=(bar) height=(height(hour.accepted)) {}
                    rect.rejected x=(x + bar) y=(CHART_HEIGHT - height(hour.rejected)) width=(bar) height=(height(hour.rejected)) {}
                }
                @if i % 6 == 0 {
                    text.tick x=(x) y=(CHART_HEIGHT + AXIS - 4) { (hour_label(hour.hour)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directories_block_shows_each_last_sync_and_nothing_without_directories() {
        use crate::store::directory_sync::SyncResult;
        assert!(directories_block(&[]).into_string().is_empty());
        let state = |name: &str, last: Option<SyncResult>| DirectorySyncState {
            directory_id: 1,
            name: name.into(),
            sync_interval_minutes: 15,
            created_at: 0,
            last,
            users: 12,
            enabled_users: 10,
        };
        let html = directories_block(&[
            state("<corp>", None),
            state(
                "Example",
                Some(SyncResult {
                    finished_at: 1_700_000_000,
                    error: Some("no directory server answered".into()),
                    conflicts: 2,
                    ..SyncResult::default()
                }),
            ),
        ])
        .into_string();
        assert!(html.contains("&lt;corp&gt;"), "{html}");
        assert!(html.contains("Not synced yet"), "{html}");
        assert!(
            html.contains("Failed: no directory server answered"),
            "{html}"
        );
        assert!(html.contains("result-fail\">2<"), "{html}");
    }

    #[test]
    fn the_chart_scales_bars_to_the_busiest_hour_and_uses_no_inline_style() {
        let hours: Vec<HourlyAuthentications> = (0..24)
            .map(|i| HourlyAuthentications {
                hour: 1_700_000_000 - 1_700_000_000 % 3600 + i * 3600,
                accepted: i,
                rejected: if i == 23 { 46 } else { 0 },
            })
            .collect();
        let svg = auth_chart(&hours).into_string();
        assert!(svg.starts_with("<svg class=\"chart\""));
        assert_eq!(svg.matches("<rect").count(), 48);
        assert!(
            svg.contains(&format!("height=\"{CHART_HEIGHT}\"")),
            "the busiest bar is full height"
        );
        assert!(!svg.contains("style="));
        assert!(svg.contains("23 accepted, 46 rejected"));
    }
}
