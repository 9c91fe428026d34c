//! The audit log in the API: the panel's filters, a cursor that new entries do not shift, the
//! reason of each rejection, and the panel's CSV export.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, create_user, send};
use crate::helpers::app::spawn_app;
use crate::helpers::auth::{SEED_BASE32, authenticate, fixture, totp, user_with_token};

#[tokio::test]
async fn why_alice_was_rejected_is_answered_with_the_reason_of_each_rejection() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    let token = json!({"kind": "TOTP", "secret": SEED_BASE32});
    user_with_token(&app, &fx, "alice", token.clone()).await;
    user_with_token(&app, &fx, "bob", token).await;
    let wrong = if totp(0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    for login in ["alice", "bob"] {
        let (status, body) = authenticate(
            &app,
            &fx.app_key,
            json!({"resource": "vpn", "user": login, "otp": wrong}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"], "rejected", "{body}");
    }
    let (status, page) = send(
        &app,
        Method::GET,
        "/audit?user=alice&result=rejected&resource=vpn",
        &fx.admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "only Alice's rejection: {page}");
    let line = &items[0];
    assert_eq!(line["action"], "auth.authenticate", "{line}");
    assert_eq!(line["reason"], "bad_otp", "{line}");
    assert!(
        line["reason_text"]
            .as_str()
            .is_some_and(|text| text.contains("wrong")),
        "{line}"
    );
    assert_eq!(line["user"]["name"], "alice", "{line}");
    assert_eq!(line["resource"]["name"], "vpn", "{line}");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(page["next_cursor"].is_null(), "{page}");
    let line_text = line.to_string();
    assert!(!line_text.contains(wrong), "no code in the audit log");
    app.stop().await;
}

/// The ids of a page's items and its cursor.
fn page_of(page: &Value) -> (Vec<i64>, Option<String>) {
    let ids = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect();
    (ids, page["next_cursor"].as_str().map(str::to_string))
}

#[tokio::test]
async fn pages_follow_a_cursor_that_entries_written_meanwhile_do_not_shift() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    for login in ["u1", "u2", "u3", "u4", "u5"] {
        create_user(&app, &admin, json!({"login": login})).await;
    }
    let (status, first) = send(
        &app,
        Method::GET,
        "/audit?action=user.create&limit=2",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let (mut seen, mut cursor) = page_of(&first);
    assert_eq!(seen.len(), 2);
    // Entries written between two pages are newer than the cursor: they shift nothing.
    create_user(&app, &admin, json!({"login": "u6"})).await;
    while let Some(next) = cursor {
        let (status, page) = send(
            &app,
            Method::GET,
            &format!("/audit?action=user.create&limit=2&cursor={next}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let (ids, following) = page_of(&page);
        seen.extend(ids);
        cursor = following;
    }
    assert_eq!(
        seen.len(),
        5,
        "each of the five once, not the sixth: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first"
    );
    let (status, body) = send(&app, Method::GET, "/audit?cursor=abc", &admin, None).await;
    assert_field(status, &body, "cursor");
    app.stop().await;
}

#[tokio::test]
async fn a_filter_the_panel_refuses_is_refused_in_the_same_words() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let (status, body) = send(&app, Method::GET, "/audit?from=yesterday", &admin, None).await;
    assert_field(status, &body, "from");
    assert_eq!(
        body["error"]["message"],
        "“yesterday” is not a date such as 2026-05-01"
    );
    let (status, body) = send(&app, Method::GET, "/audit?user=nobody", &admin, None).await;
    assert_field(status, &body, "user");
    assert_eq!(body["error"]["message"], "there is no user “nobody”");
    let (status, body) = send(&app, Method::GET, "/audit?result=maybe", &admin, None).await;
    assert_field(status, &body, "result");
    let (status, body) = send(&app, Method::GET, "/audit?limit=501", &admin, None).await;
    assert_field(status, &body, "limit");
    let (status, body) = send(&app, Method::GET, "/audit?colour=red", &admin, None).await;
    assert_field(status, &body, "colour");
    let (status, body) = send(&app, Method::GET, "/audit.csv?to=2026-02-30", &admin, None).await;
    assert_field(status, &body, "to");

    // The panel says the same, as a sentence.
    app.logged_in_admin().await;
    let page = app
        .get("/admin/audit?user=nobody")
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("There is no user “nobody”."), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn the_csv_export_is_the_panels_to_the_byte() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    for login in ["carol", "dave"] {
        create_user(&app, &admin, json!({"login": login})).await;
    }
    app.logged_in_admin().await;
    let response = app
        .api(Method::GET, "/audit.csv?action=user", &admin)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/csv"))
    );
    let from_api = response.text().await.expect("csv");
    let from_panel = app
        .get("/admin/audit.csv?action=user")
        .await
        .text()
        .await
        .expect("csv");
    assert_eq!(from_api, from_panel);
    let mut lines = from_api.split("\r\n");
    assert_eq!(
        lines.next(),
        Some(
            "id,time,actor,action,result,reason,client_ip,end_user_ip,user,resource,token,api_key_id,detail"
        )
    );
    assert!(from_api.contains(",user.create,ok,"), "{from_api}");
    app.stop().await;
}

#[tokio::test]
async fn a_resource_key_may_not_read_the_audit_log() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    for path in ["/audit", "/audit.csv"] {
        let (status, body) = send(&app, Method::GET, path, &fx.app_key, None).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let status = app
            .client
            .get(app.url(&format!("/api/v1{path}")))
            .send()
            .await
            .expect("answered")
            .status();
        assert_eq!(status, 401, "{path} without a key");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_states_the_audit_filters_the_server_checks() {
    let app = spawn_app().await;
    let document: Value = app
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    for path in ["/api/v1/audit", "/api/v1/audit.csv"] {
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has parameters"));
        let schema = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"].clone())
                .unwrap_or_else(|| panic!("{path} has {name}"))
        };
        assert_eq!(
            schema("result")["enum"],
            json!(otpgate::audit::RESULTS),
            "{path}"
        );
        assert!(schema("from")["pattern"].is_string(), "{path}");
        assert!(schema("to")["pattern"].is_string(), "{path}");
        assert!(schema("user")["pattern"].is_string(), "{path}");
    }
    let parameters = document["paths"]["/api/v1/audit"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let limit = parameters
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit");
    assert_eq!(limit["schema"]["maximum"], 500);
    assert!(
        parameters
            .iter()
            .any(|p| p["name"] == "cursor" && p["schema"]["pattern"].is_string())
    );
    // Values at the edges of what the document allows are taken.
    let admin = app.api_key(&["--admin"]);
    let (status, body) = send(
        &app,
        Method::GET,
        "/audit?from=2026-05-01T14:30:00Z&to=2026-12-31&result=challenge&limit=500",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}
