//! The admin panel's resources pages, through real HTTPS with forms and CSRF tokens.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{count, create_resource, create_user, insert_token, send};
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::page::location;

async fn page_text(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.expect("body")
}

/// The id at the end of a `/admin/resources/ID` address.
fn id_in(location: &str) -> i64 {
    location
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id in {location}"))
}

async fn create_in_panel(app: &TestApp, csrf: &str, name: &str) -> i64 {
    let response = app
        .post_form(
            "/admin/resources/new",
            &[
                ("csrf", csrf),
                ("name", name),
                ("description", "Remote access"),
                ("fail_limit", "4"),
                ("password_required", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    id_in(&location(&response))
}

#[tokio::test]
async fn the_resources_pages_need_a_logged_in_administrator() {
    let app = spawn_app().await;
    for path in [
        "/admin/resources",
        "/admin/resources/new",
        "/admin/resources/1",
        "/admin/resources/1/self-service",
        "/admin/resources/1/keys",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), "/admin/login", "{path}");
    }
    let response = app
        .post_form(
            "/admin/resources/new",
            &[("name", "vpn"), ("fail_limit", "5")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn a_resource_created_in_the_panel_exists_with_its_settings_and_is_audited() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let page = page_text(&app, "/admin/resources").await;
    assert!(page.contains("No resources yet."), "{page}");

    let id = create_in_panel(&app, &csrf, "VPN").await;
    let page = page_text(&app, &format!("/admin/resources/{id}")).await;
    assert!(
        page.contains("Resource “VPN” created."),
        "the flash names it"
    );

    let key = app.api_key(&["--admin"]);
    let (status, resource) = send(&app, Method::GET, "/resources/VPN", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(resource["fail_limit"], 4);
    assert_eq!(resource["password_required"], true);
    assert_eq!(resource["description"], "Remote access");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.create' AND actor = 'admin:admin'"
        ),
        1
    );
    let list = page_text(&app, "/admin/resources").await;
    assert!(list.contains(&format!("href=\"/admin/resources/{id}\"")));

    // Editing shows what changed.
    let response = app
        .post_form(
            &format!("/admin/resources/{id}"),
            &[
                ("csrf", &csrf),
                ("name", "VPN"),
                ("description", "Remote access"),
                ("fail_limit", "7"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = page_text(&app, &format!("/admin/resources/{id}")).await;
    assert!(
        page.contains("failed-attempt limit, password required changed"),
        "{page}"
    );
    let (_, resource) = send(&app, Method::GET, "/resources/VPN", &key, None).await;
    assert_eq!(resource["fail_limit"], 7);
    assert_eq!(resource["password_required"], false);
}

#[tokio::test]
async fn wrong_input_re_renders_the_form_with_what_was_typed_and_changes_nothing() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let response = app
        .post_form(
            "/admin/resources/new",
            &[
                ("csrf", &csrf),
                ("name", "Typed <name>"),
                ("description", "kept"),
                ("fail_limit", "11"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains("value=\"Typed &lt;name&gt;\""), "{page}");
    assert!(page.contains("value=\"kept\""));
    assert!(page.contains("The limit must be a number from 3 to 10."));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 0);

    create_in_panel(&app, &csrf, "vpn").await;
    let response = app
        .post_form(
            "/admin/resources/new",
            &[("csrf", &csrf), ("name", "VPN"), ("fail_limit", "5")],
        )
        .await;
    assert_eq!(
        response.status(),
        400,
        "names are unique regardless of case"
    );
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("A resource with this name exists already.")
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 1);
    assert_eq!(app.get("/admin/resources/999").await.status(), 404);
    assert_eq!(app.get("/admin/resources/abc").await.status(), 404);
}

#[tokio::test]
async fn a_forged_form_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let id = create_in_panel(&app, &csrf, "vpn").await;
    for forged in [vec![], vec![("csrf", "not-the-token")]] {
        let mut form = forged.clone();
        form.extend([("name", "other"), ("fail_limit", "5")]);
        let response = app.post_form("/admin/resources/new", &form).await;
        assert_eq!(response.status(), 403);
        let response = app
            .post_form(&format!("/admin/resources/{id}/delete"), &forged)
            .await;
        assert_eq!(response.status(), 403);
        let mut form = forged.clone();
        form.extend([("enabled", "on"), ("address", "vpn")]);
        let response = app
            .post_form(&format!("/admin/resources/{id}/self-service"), &form)
            .await;
        assert_eq!(response.status(), 403);
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM self_service WHERE enabled = 1"),
        0
    );
}

#[tokio::test]
async fn assign_token_with_user_assigns_the_chosen_tokens_and_their_users() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let resource = create_resource(&app, &key, "vpn").await;
    let id = resource["id"].as_i64().expect("id");
    let alice = create_user(&app, &key, json!({ "login": "alice" })).await;
    let bob = create_user(&app, &key, json!({ "login": "bob" })).await;
    let first = insert_token(&app, "A-1", alice["id"].as_i64());
    let second = insert_token(&app, "B-1", bob["id"].as_i64());
    insert_token(&app, "LOOSE-1", None);

    let page = page_text(&app, &format!("/admin/resources/{id}/assign/tokens")).await;
    assert!(page.contains("A-1") && page.contains("B-1"));
    assert!(
        !page.contains("LOOSE-1"),
        "only tokens with users are offered"
    );

    let (first, second) = (first.to_string(), second.to_string());
    let response = app
        .post_form(
            &format!("/admin/resources/{id}/assign/tokens"),
            &[("csrf", &csrf), ("token", &first), ("token", &second)],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = page_text(&app, &location(&response)).await;
    assert!(
        page.contains("Assigned 2 tokens with their users to “vpn”."),
        "{page}"
    );

    let (_, tokens) = send(&app, Method::GET, "/resources/vpn/tokens", &key, None).await;
    let serials: Vec<&str> = tokens
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["serial"].as_str())
        .collect();
    assert_eq!(serials, ["A-1", "B-1"]);
    let (_, users) = send(&app, Method::GET, "/resources/vpn/users", &key, None).await;
    assert_eq!(users["total"], 2);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.assign_token' AND actor = 'admin:admin'"
        ),
        2
    );

    // Nothing chosen: the page says so.
    let response = app
        .post_form(
            &format!("/admin/resources/{id}/assign/tokens"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 400);

    // Unassigning asks first, then takes the token away.
    let unassign = format!("/admin/resources/{id}/tokens/{first}/unassign");
    let confirm = page_text(&app, &unassign).await;
    assert!(confirm.contains("A-1"));
    let response = app.post_form(&unassign, &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    let (_, tokens) = send(&app, Method::GET, "/resources/vpn/tokens", &key, None).await;
    assert_eq!(tokens.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn assign_users_assigns_the_chosen_users() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let id = create_resource(&app, &key, "mail")
        .await
        .get("id")
        .and_then(Value::as_i64)
        .expect("id");
    let carol = create_user(&app, &key, json!({ "login": "carol" })).await;
    create_user(&app, &key, json!({ "login": "dave" })).await;
    let page = page_text(&app, &format!("/admin/resources/{id}/assign/users?q=car")).await;
    assert!(
        page.contains("carol") && !page.contains(">dave<"),
        "search narrows"
    );
    let carol_id = carol["id"].to_string();
    let response = app
        .post_form(
            &format!("/admin/resources/{id}/assign/users"),
            &[("csrf", &csrf), ("user", &carol_id)],
        )
        .await;
    assert_eq!(response.status(), 303);
    let (_, users) = send(&app, Method::GET, "/resources/mail/users", &key, None).await;
    assert_eq!(users["items"][0]["login"], "carol");
    assert_eq!(users["total"], 1);
    let page = page_text(&app, &format!("/admin/resources/{id}/assign/users")).await;
    assert!(page.contains("assigned"), "assigned users are marked");
}

#[tokio::test]
async fn self_service_saves_the_allowed_actions_and_says_what_changed() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let id = create_in_panel(&app, &csrf, "vpn").await;
    let path = format!("/admin/resources/{id}/self-service");
    let page = page_text(&app, &path).await;
    assert!(!page.contains("checked"), "everything is off by default");

    let response = app
        .post_form(
            &path,
            &[
                ("csrf", &csrf),
                ("shown_all", "off"),
                ("shown_all_token", "off"),
                ("shown_all_user", "off"),
                ("shown_all_kinds", "off"),
                ("enabled", "on"),
                ("address", "Sales-VPN"),
                ("action", "enroll_token"),
                ("all_user", "on"),
                ("kind", "MAIL"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = page_text(&app, &path).await;
    assert!(page.contains("Self-Service saved: Self-service enabled; address (none) → sales-vpn; allowed Enroll Token, Set Password, Change Password, Change Email, Change Phone, Change Name; enrolment of MAIL allowed."), "{page}");
    assert!(
        page.contains("/portal/sales-vpn\""),
        "the full portal address is shown"
    );
    assert!(page.contains("value=\"enroll_token\" checked"));
    assert!(!page.contains("value=\"rename_token\" checked"));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM self_service WHERE enabled = 1 AND address = 'sales-vpn'
               AND allowed_actions LIKE 'enroll_token,%' AND enrollment_kinds = 'MAIL'"
        ),
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'resource.self_service' AND actor = 'admin:admin'"
        ),
        1
    );

    // Another resource may not take the address; a bad address is explained; both keep the
    // typed value.
    let other = create_in_panel(&app, &csrf, "mail").await;
    let other_path = format!("/admin/resources/{other}/self-service");
    for (address, message) in [
        (
            "sales-vpn",
            "Another resource&#39;s portal has this address.",
        ),
        ("no spaces!", "Please use 2 to 63 lowercase letters"),
    ] {
        let response = app
            .post_form(
                &other_path,
                &[("csrf", &csrf), ("enabled", "on"), ("address", address)],
            )
            .await;
        assert_eq!(response.status(), 400, "{address}");
        let page = response.text().await.expect("body");
        assert!(
            page.contains(message) || page.contains(&message.replace("&#39;", "'")),
            "{page}"
        );
        assert!(page.contains(&format!("value=\"{address}\"")));
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM self_service WHERE enabled = 1"),
        1
    );
}

#[tokio::test]
async fn a_resource_api_key_is_shown_once_works_and_stops_working_when_revoked() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let id = create_in_panel(&app, &csrf, "vpn").await;
    let path = format!("/admin/resources/{id}/keys");
    assert!(page_text(&app, &path).await.contains("No API keys yet."));

    let response = app
        .post_form(&path, &[("csrf", &csrf), ("name", "  ")])
        .await;
    assert_eq!(response.status(), 400);

    let response = app
        .post_form(&path, &[("csrf", &csrf), ("name", "gateway")])
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    let start = page.find("value=\"og_").expect("the key is shown") + "value=\"".len();
    let api_key = page[start..].split('"').next().expect("key").to_string();
    assert!(
        !page_text(&app, &path).await.contains(&api_key),
        "shown only once"
    );

    // A resource key may call the authentication API but not the management API.
    let status = app
        .api(Method::GET, "/resources", &api_key)
        .send()
        .await
        .expect("answered")
        .status();
    assert_eq!(status, 403, "the key is valid, but for a resource only");

    let key_id = count(&app, "SELECT id FROM api_keys WHERE name = 'gateway'");
    let revoke = format!("{path}/{key_id}/revoke");
    assert!(page_text(&app, &revoke).await.contains("gateway"));
    let response = app.post_form(&revoke, &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    let status = app
        .api(Method::GET, "/resources", &api_key)
        .send()
        .await
        .expect("answered")
        .status();
    assert_eq!(status, 401, "a revoked key is not valid any more");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('apikey.create', 'apikey.revoke') AND actor = 'admin:admin'"
        ),
        2
    );
}

#[tokio::test]
async fn deleting_a_resource_asks_first() {
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let id = create_in_panel(&app, &csrf, "vpn").await;
    let path = format!("/admin/resources/{id}/delete");
    let confirm = page_text(&app, &path).await;
    assert!(confirm.contains("Delete the resource"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 1);
    let response = app.post_form(&path, &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/resources");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 0);
}

#[tokio::test]
async fn a_resource_with_many_tokens_shows_them_a_page_at_a_time() {
    let app = spawn_app().await;
    app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let resource = create_resource(&app, &key, "wide").await;
    let id = resource["id"].as_i64().expect("id");
    for i in 0..51 {
        let login = format!("user{i:02}");
        create_user(&app, &key, json!({ "login": login })).await;
        let (status, token) = send(
            &app,
            Method::POST,
            "/tokens",
            &key,
            Some(json!({"kind": "TOTP", "serial": format!("S{i:02}"), "user": login, "resource": "wide"})),
        )
        .await;
        assert_eq!(status, 201, "{token}");
    }
    let first = page_text(&app, &format!("/admin/resources/{id}")).await;
    assert!(first.contains("Tokens with users (51)"), "{first}");
    assert!(
        first.contains(">S49<") && !first.contains(">S50<"),
        "50 on the first page"
    );
    assert!(first.contains("tokens_page=2"), "a link to the next page");
    let second = page_text(&app, &format!("/admin/resources/{id}?tokens_page=2")).await;
    assert!(
        second.contains(">S50<") && !second.contains(">S00<"),
        "{second}"
    );
}
