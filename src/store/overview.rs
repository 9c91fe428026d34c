//! Figures for the dashboard.

use rusqlite::params;

use super::{Result, Store, UnixTime};
use crate::domain::{TokenKind, TokenState};

#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub users: i64,
    pub tokens: i64,
    pub resources: i64,
    pub admins: i64,
}

/// How many tokens of one kind are in each condition. A disabled token counts as disabled
/// only, a locked one as locked only, whatever its state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub active: i64,
    pub pending: i64,
    pub reactivate: i64,
    pub locked: i64,
    pub disabled: i64,
}

impl TokenCounts {
    pub fn total(&self) -> i64 {
        self.active + self.pending + self.reactivate + self.locked + self.disabled
    }
}

/// Authentications in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourlyAuthentications {
    /// The start of the hour.
    pub hour: UnixTime,
    pub accepted: i64,
    pub rejected: i64,
}

/// A rejected authentication.
#[derive(Debug, Clone)]
pub struct Failure {
    pub at: UnixTime,
    pub user_login: Option<String>,
    pub resource_name: Option<String>,
    pub reason: Option<String>,
    pub end_user_ip: Option<String>,
}

/// A token that is locked after too many failed attempts.
#[derive(Debug, Clone)]
pub struct LockedToken {
    pub id: i64,
    pub serial: String,
    pub kind: TokenKind,
    pub user_login: Option<String>,
    pub locked_at: UnixTime,
}

/// How one delivery channel did over the last day.
#[derive(Debug, Clone, Default)]
pub struct ChannelHealth {
    pub channel: String,
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub expired: i64,
    /// The newest error recorded for this channel, with when its message was created.
    pub last_error: Option<(UnixTime, String)>,
}

/// Everything the dashboard shows, read in one go.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    pub overview: Overview,
    pub tokens_by_kind: Vec<(TokenKind, TokenCounts)>,
    /// The 24 hours up to now, oldest first.
    pub hourly: Vec<HourlyAuthentications>,
    pub recent_failures: Vec<Failure>,
    pub locked_tokens: Vec<LockedToken>,
    /// mail, sms and bot, in that order.
    pub channels: Vec<ChannelHealth>,
}

fn overview(conn: &rusqlite::Connection) -> Result<Overview> {
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM tokens),
                (SELECT COUNT(*) FROM resources), (SELECT COUNT(*) FROM admins)",
        [],
        |row| {
            Ok(Overview {
                users: row.get(0)?,
                tokens: row.get(1)?,
                resources: row.get(2)?,
                admins: row.get(3)?,
            })
        },
    )?)
}

/// The start of the hour `at` falls in.
fn hour_of(at: UnixTime) -> UnixTime {
    at - at.rem_euclid(3600)
}

fn dashboard(conn: &rusqlite::Connection, now: UnixTime) -> Result<Dashboard> {
    let overview = overview(conn)?;

    let mut tokens_by_kind: Vec<(TokenKind, TokenCounts)> = TokenKind::ALL
        .into_iter()
        .map(|kind| (kind, TokenCounts::default()))
        .collect();
    let mut statement = conn.prepare_cached(
        "SELECT kind, state, enabled, locked_at IS NOT NULL, COUNT(*) FROM tokens
         GROUP BY kind, state, enabled, locked_at IS NOT NULL",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, bool>(2)?,
            row.get::<_, bool>(3)?,
            row.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (kind, state, enabled, locked, count) = row?;
        let Some((_, counts)) = tokens_by_kind
            .iter_mut()
            .find(|(k, _)| Some(*k) == TokenKind::parse(&kind))
        else {
            continue;
        };
        let slot = if !enabled {
            &mut counts.disabled
        } else if locked {
            &mut counts.locked
        } else {
            match TokenState::parse(&state) {
                Some(TokenState::Pending) => &mut counts.pending,
                Some(TokenState::Reactivate) => &mut counts.reactivate,
                _ => &mut counts.active,
            }
        };
        *slot += count;
    }

    // 24 buckets: the current hour and the 23 before it.
    let first_hour = hour_of(now) - 23 * 3600;
    let mut hourly: Vec<HourlyAuthentications> = (0..24)
        .map(|i| HourlyAuthentications {
            hour: first_hour + i * 3600,
            ..HourlyAuthentications::default()
        })
        .collect();
    let mut statement = conn.prepare_cached(
        "SELECT (at - ?1) / 3600, result, COUNT(*) FROM audit_log
         WHERE action = 'auth.authenticate' AND at >= ?1
         GROUP BY 1, 2",
    )?;
    let rows = statement.query_map(params![first_hour], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (bucket, result, count) = row?;
        let Some(slot) = usize::try_from(bucket).ok().and_then(|i| hourly.get_mut(i)) else {
            continue;
        };
        if result == "accepted" {
            slot.accepted += count;
        } else {
            slot.rejected += count;
        }
    }

    let recent_failures = conn
        .prepare_cached(
            "SELECT a.at, u.login, r.name, a.reason, a.end_user_ip FROM audit_log a
             LEFT JOIN users u ON u.id = a.user_id
             LEFT JOIN resources r ON r.id = a.resource_id
             WHERE a.action = 'auth.authenticate' AND a.result <> 'accepted'
             ORDER BY a.at DESC LIMIT 10",
        )?
        .query_map([], |row| {
            Ok(Failure {
                at: row.get(0)?,
                user_login: row.get(1)?,
                resource_name: row.get(2)?,
                reason: row.get(3)?,
                end_user_ip: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let locked_tokens = conn
        .prepare_cached(
            "SELECT t.id, t.serial, t.kind, u.login, t.locked_at FROM tokens t
             LEFT JOIN users u ON u.id = t.user_id
             WHERE t.locked_at IS NOT NULL ORDER BY t.locked_at DESC LIMIT 10",
        )?
        .query_map([], |row| {
            let kind: String = row.get(2)?;
            Ok(LockedToken {
                id: row.get(0)?,
                serial: row.get(1)?,
                kind: TokenKind::parse(&kind).unwrap_or(TokenKind::Totp),
                user_login: row.get(3)?,
                locked_at: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let since = now - 24 * 3600;
    let mut channels: Vec<ChannelHealth> = ["mail", "sms", "bot"]
        .into_iter()
        .map(|channel| ChannelHealth {
            channel: channel.to_string(),
            ..ChannelHealth::default()
        })
        .collect();
    let mut statement = conn.prepare_cached(
        "SELECT channel, status, COUNT(*) FROM outbox WHERE created_at >= ?1 GROUP BY 1, 2",
    )?;
    let rows = statement.query_map(params![since], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (channel, status, count) = row?;
        let Some(health) = channels.iter_mut().find(|c| c.channel == channel) else {
            continue;
        };
        match status.as_str() {
            "queued" => health.queued += count,
            "sent" => health.sent += count,
            "failed" => health.failed += count,
            _ => health.expired += count,
        }
    }
    for health in &mut channels {
        health.last_error = super::optional(
            conn.prepare_cached(
                "SELECT created_at, last_error FROM outbox
                 WHERE channel = ?1 AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![health.channel], |row| {
                Ok((row.get(0)?, row.get(1)?))
            }),
        )?;
    }

    Ok(Dashboard {
        overview,
        tokens_by_kind,
        hourly,
        recent_failures,
        locked_tokens,
        channels,
    })
}

impl Store {
    pub async fn overview(&self) -> Result<Overview> {
        self.read(overview).await
    }

    /// The dashboard's figures as of `now`.
    pub async fn dashboard(&self, now: UnixTime) -> Result<Dashboard> {
        self.read(move |conn| dashboard(conn, now)).await
    }
}

/// Sign-ins denied in Telegram (Approve in Telegram) over a span: the audit log's
/// `auth.approval` lines with the result `denied`, by reason.
#[derive(Debug, Clone, Default)]
pub struct DeniedApprovals {
    /// "This wasn't me" pressed.
    pub denied: i64,
    /// A number pressed that the sign-in did not show.
    pub wrong_number: i64,
    /// The latest, newest first (at most five).
    pub recent: Vec<DeniedApproval>,
}

#[derive(Debug, Clone)]
pub struct DeniedApproval {
    pub at: UnixTime,
    pub user_login: Option<String>,
    pub resource_name: Option<String>,
    pub token_id: Option<i64>,
    pub token_serial: Option<String>,
    /// `denied` or `wrong_number`.
    pub reason: Option<String>,
}

fn denied_approvals(conn: &rusqlite::Connection, since: UnixTime) -> Result<DeniedApprovals> {
    let mut figures = DeniedApprovals::default();
    let mut statement = conn.prepare_cached(
        "SELECT reason, COUNT(*) FROM audit_log
         WHERE action = 'auth.approval' AND at >= ?1 AND result = 'denied'
         GROUP BY reason",
    )?;
    let rows = statement.query_map(params![since], |row| {
        Ok((row.get::<_, Option<String>>(0)?, row.get::<_, i64>(1)?))
    })?;
    for row in rows {
        match row? {
            (Some(reason), count) if reason == "wrong_number" => figures.wrong_number += count,
            (_, count) => figures.denied += count,
        }
    }
    figures.recent = conn
        .prepare_cached(
            "SELECT a.at, u.login, r.name, a.token_id, t.serial, a.reason FROM audit_log a
             LEFT JOIN users u ON u.id = a.user_id
             LEFT JOIN resources r ON r.id = a.resource_id
             LEFT JOIN tokens t ON t.id = a.token_id
             WHERE a.action = 'auth.approval' AND a.at >= ?1 AND a.result = 'denied'
             ORDER BY a.at DESC, a.id DESC LIMIT 5",
        )?
        .query_map(params![since], |row| {
            Ok(DeniedApproval {
                at: row.get(0)?,
                user_login: row.get(1)?,
                resource_name: row.get(2)?,
                token_id: row.get(3)?,
                token_serial: row.get(4)?,
                reason: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(figures)
}

impl Store {
    /// The sign-ins denied in Telegram since `since`, for the dashboard.
    pub async fn denied_approvals(&self, since: UnixTime) -> Result<DeniedApprovals> {
        self.read(move |conn| denied_approvals(conn, since)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuditEntry, DATABASE_FILE, StoreOptions, audit};

    #[test]
    fn authentications_fall_into_the_hour_they_happened_in() {
        let dir = tempfile::tempdir().expect("dir");
        let store =
            Store::open(&dir.path().join(DATABASE_FILE), StoreOptions::default()).expect("store");
        let now = 1_700_000_000;
        for (at, result) in [
            (now, "accepted"),
            (now - 10, "rejected"),
            (now - 3600, "accepted"),
            (now - 30 * 3600, "accepted"),
        ] {
            let entry = AuditEntry::new(at, "apikey:1", "auth.authenticate", result);
            store
                .write_blocking(move |conn| audit::insert(conn, &entry))
                .expect("insert");
        }
        let figures = store
            .read_blocking(move |conn| dashboard(conn, now))
            .expect("dashboard");
        assert_eq!(figures.hourly.len(), 24);
        let last = figures.hourly[23];
        assert_eq!((last.accepted, last.rejected), (1, 1));
        assert_eq!(last.hour, hour_of(now));
        assert_eq!(figures.hourly[22].accepted, 1);
        let total: i64 = figures.hourly.iter().map(|h| h.accepted).sum();
        assert_eq!(total, 2, "the entry older than a day is left out");
        assert_eq!(figures.recent_failures.len(), 1);
    }

    #[test]
    fn denied_approvals_count_by_reason_within_the_span_only() {
        let dir = tempfile::tempdir().expect("dir");
        let store =
            Store::open(&dir.path().join(DATABASE_FILE), StoreOptions::default()).expect("store");
        let now = 1_700_000_000;
        for (at, result, reason) in [
            (now, "denied", Some("denied")),
            (now - 10, "denied", Some("wrong_number")),
            (now - 20, "denied", Some("wrong_number")),
            (now - 30, "approved", None),
            (now - 30 * 3600, "denied", Some("denied")),
        ] {
            let mut entry = AuditEntry::new(at, "telegram:1", "auth.approval", result);
            entry.reason = reason.map(str::to_string);
            store
                .write_blocking(move |conn| audit::insert(conn, &entry))
                .expect("insert");
        }
        let figures = store
            .read_blocking(move |conn| denied_approvals(conn, now - 24 * 3600))
            .expect("figures");
        assert_eq!((figures.denied, figures.wrong_number), (1, 2));
        assert_eq!(figures.recent.len(), 3);
        assert_eq!(figures.recent[0].reason.as_deref(), Some("denied"));
    }
}
