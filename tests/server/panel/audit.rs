//! The admin panel's audit pages and the dashboard, through real HTTPS with forms and CSRF
//! tokens.

use crate::helpers::api::database;
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::otp::unix_now;
use crate::helpers::page::location;

async fn text_of(app: &TestApp, path: &str) -> (u16, String) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Writes audit lines straight into the database, as the authentication path would.
fn insert_audit(app: &TestApp, lines: &[(i64, &str, &str, &str)]) {
    let conn = database(app);
    for (at, actor, action, result) in lines {
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, result) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![at, actor, action, result],
        )
        .expect("insert");
    }
}

#[tokio::test]
async fn the_audit_log_and_dashboard_need_a_logged_in_administrator() {
    let app = spawn_app().await;
    for path in ["/admin", "/admin/audit", "/admin/audit.csv"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), "/admin/login", "{path}");
    }
}

#[tokio::test]
async fn the_audit_log_is_filtered_by_actor_action_result_and_time() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let response = app
        .post_form(
            "/admin/resources/new",
            &[("csrf", &csrf), ("name", "vpn"), ("fail_limit", "5")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let now = unix_now() as i64;
    insert_audit(
        &app,
        &[
            (now, "apikey:7", "auth.authenticate", "rejected"),
            (
                now - 3 * 86_400,
                "apikey:7",
                "auth.authenticate",
                "accepted",
            ),
        ],
    );

    let (status, page) = text_of(&app, "/admin/audit?actor=admin%3Aadmin&action=resource").await;
    assert_eq!(status, 200);
    assert!(page.contains("resource.create"), "{page}");
    assert!(!page.contains("auth.authenticate</td>"));

    let (_, page) = text_of(
        &app,
        "/admin/audit?action=auth.authenticate&result=rejected",
    )
    .await;
    assert!(page.contains("rejected"));
    assert!(!page.contains("resource.create"));
    assert_eq!(
        page.matches("<td>auth.authenticate</td>").count(),
        1,
        "{page}"
    );

    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (_, page) = text_of(&app, &format!("/admin/audit?action=auth&from={today}")).await;
    assert_eq!(
        page.matches("<td>auth.authenticate</td>").count(),
        1,
        "older lines are left out"
    );

    let (status, page) = text_of(&app, "/admin/audit?from=last+week&actor=typed").await;
    assert_eq!(status, 400);
    assert!(page.contains("is not a date such as"));
    assert!(
        page.contains("value=\"typed\""),
        "the filter keeps what was typed"
    );

    let (status, page) = text_of(&app, "/admin/audit?user=nobody").await;
    assert_eq!(status, 400);
    assert!(page.contains("There is no user “nobody”."));
}

#[tokio::test]
async fn the_audit_log_pages_from_the_newest_to_older_entries() {
    let app = spawn_app().await;
    app.logged_in_admin().await;
    let lines: Vec<(i64, String)> = (0..70)
        .map(|i| (1_000 + i, format!("test.n{i:02}")))
        .collect();
    let conn = database(&app);
    for (at, action) in &lines {
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, result) VALUES (?1, 'system', ?2, 'ok')",
            rusqlite::params![at, action],
        )
        .expect("insert");
    }
    let (_, first) = text_of(&app, "/admin/audit?actor=system").await;
    assert!(first.contains("test.n69") && first.contains("test.n20"));
    assert!(!first.contains("test.n19"));
    let start = first
        .find("rel=\"next\" href=\"")
        .expect("a link to older entries")
        + "rel=\"next\" href=\"".len();
    let next = first[start..]
        .split('"')
        .next()
        .expect("href")
        .replace("&amp;", "&");
    assert!(next.contains("actor=system"), "the filter is kept: {next}");
    let (_, second) = text_of(&app, &next).await;
    assert!(second.contains("test.n19") && second.contains("test.n00"));
    assert!(!second.contains("test.n20"));
    assert!(!second.contains("rel=\"next\""));
}

#[tokio::test]
async fn the_csv_export_quotes_cells_and_neutralises_formulas() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let response = app
        .post_form(
            "/admin/resources/new",
            &[
                ("csrf", &csrf),
                ("name", "=HYPERLINK(\"x\",1)"),
                ("fail_limit", "5"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let response = app.get("/admin/audit.csv?action=resource.create").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("type"),
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .expect("disposition")
            .contains("attachment")
    );
    let csv = response.text().await.expect("body");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "id,time,actor,action,result,reason,client_ip,end_user_ip,user,resource,token,api_key_id,detail"
        )
    );
    let line = lines.next().expect("one entry");
    assert!(line.contains(",admin:admin,resource.create,ok,"), "{line}");
    assert!(
        line.ends_with(",\"'=HYPERLINK(\"\"x\"\",1)\""),
        "the detail is quoted and starts with a quote mark: {line}"
    );
    assert!(
        !line.contains(",=HYPERLINK"),
        "no cell starts with a formula: {line}"
    );
    assert_eq!(lines.next(), None);
}

#[tokio::test]
async fn the_dashboard_shows_counts_the_authentication_chart_and_locked_tokens() {
    let app = spawn_app().await;
    app.logged_in_admin().await;
    let now = unix_now() as i64;
    insert_audit(
        &app,
        &[
            (now, "apikey:1", "auth.authenticate", "accepted"),
            (now, "apikey:1", "auth.authenticate", "accepted"),
            (now - 60, "apikey:1", "auth.authenticate", "rejected"),
        ],
    );
    let conn = database(&app);
    conn.execute(
        "INSERT INTO users (login, created_at, updated_at) VALUES ('erin', 1, 1)",
        [],
    )
    .expect("user");
    conn.execute(
        "INSERT INTO tokens (serial, name, kind, user_id, fail_count, locked_at, created_at, updated_at)
         VALUES ('LOCK-1', 'x', 'MAIL', 1, 5, ?1, 1, 1)",
        rusqlite::params![now - 30],
    )
    .expect("token");
    conn.execute(
        "INSERT INTO outbox (channel, recipient, body, status, next_attempt_at, last_error, created_at)
         VALUES ('sms', '+100', x'00', 'failed', ?1, 'gateway said no', ?1)",
        rusqlite::params![now - 10],
    )
    .expect("outbox");

    let (status, page) = text_of(&app, "/admin").await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg class=\"chart\""), "an inline chart");
    assert!(page.contains("Accepted <strong>2</strong>"), "{page}");
    assert!(page.contains("Rejected <strong>1</strong>"));
    assert!(page.contains("LOCK-1"), "the locked token is listed");
    assert!(
        page.contains("gateway said no"),
        "the last delivery error is shown"
    );
    assert!(!page.contains("style="), "no inline styles");
    let (_, slash) = text_of(&app, "/admin/").await;
    assert!(slash.contains("Tokens by kind"));
}
