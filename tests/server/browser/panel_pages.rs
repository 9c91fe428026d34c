//! A walk through every main page of the panel in a real browser, by its navigation, with a
//! screenshot of each for reviewers (`target/browser-screenshots/panel-*.png`).

use serde_json::json;

use crate::helpers::panel::Panel;

#[tokio::test]
async fn every_main_page_of_the_panel_opens_by_its_links_fits_the_window_and_runs_clean() {
    let Some(panel) = Panel::open().await else {
        return;
    };
    let browser = &panel.browser;
    // Something on every page: a user with a MAIL token, assigned to a resource.
    let user = panel
        .api_create(
            "/users",
            json!({"login": "jdoe", "first_name": "Jane", "last_name": "Doe",
                   "email": "jane@example.com", "phone": "+49 151 2345678"}),
        )
        .await;
    let resource = panel
        .api_create(
            "/resources",
            json!({"name": "vpn", "description": "The office VPN"}),
        )
        .await;
    let token = panel
        .api_create(
            "/tokens",
            json!({"kind": "MAIL", "name": "Jane's mail", "user": "jdoe", "resource": "vpn"}),
        )
        .await;
    let radius_client = panel
        .api_create(
            "/radius/clients",
            json!({"name": "fw1", "address": "192.0.2.10", "secret": "a long shared secret",
                   "resource": "vpn", "input_mode": "password_code", "separator": ","}),
        )
        .await;
    let serial = token["serial"].as_str().expect("a serial");
    let user_page = format!("/admin/users/{}", user["id"]);
    let token_page = format!("/admin/tokens/{}", token["id"]);
    let resource_page = format!("/admin/resources/{}", resource["id"]);
    let self_service = format!("{resource_page}/self-service");
    let radius_client_page = format!("/admin/radius/{}", radius_client["id"]);

    // (what to click, the path it leads to, a text the page shows, the screenshot's name)
    let tour = [
        (
            "Dashboard",
            "/admin",
            "Authentications in the last 24 hours",
            "panel-dashboard",
        ),
        ("Users", "/admin/users", "1 user", "panel-users"),
        ("jdoe", &user_page, "Jane Doe", "panel-user"),
        ("Tokens", "/admin/tokens", serial, "panel-tokens"),
        (
            "Add Token",
            "/admin/tokens/new",
            "Software tokens",
            "panel-add-token",
        ),
        ("Tokens", "/admin/tokens", serial, "panel-tokens-again"),
        (serial, &token_page, "Assignments", "panel-token"),
        ("Resources", "/admin/resources", "vpn", "panel-resources"),
        (
            "vpn",
            &resource_page,
            "Tokens with users (1)",
            "panel-resource",
        ),
        (
            "Self-Service",
            &self_service,
            "Allowed Actions",
            "panel-resource-self-service",
        ),
        ("RADIUS", "/admin/radius", "192.0.2.10/32", "panel-radius"),
        (
            "fw1",
            &radius_client_page,
            "Separator",
            "panel-radius-client",
        ),
        (
            "Settings",
            "/admin/settings",
            "Mail (SMTP)",
            "panel-settings",
        ),
        ("Audit log", "/admin/audit", "token.create", "panel-audit"),
        (
            "Administrators",
            "/admin/administrators",
            "admin",
            "panel-administrators",
        ),
    ];
    for (link, path, text, name) in tour {
        browser.click(link).await;
        browser.wait_for_path(path).await;
        browser.wait_for_text(text).await;
        panel.assert_fits_the_width(path).await;
        browser.screenshot(name).await;
    }

    panel.finish().await;
}
