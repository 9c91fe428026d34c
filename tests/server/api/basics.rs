//! The API's basics: its OpenAPI document, a JSON 404 at an unknown address, and the console
//! commands that manage API keys.

use reqwest::Method;

use crate::helpers::app::spawn_app;

#[tokio::test]
async fn the_openapi_document_is_served() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: serde_json::Value = response.json().await.expect("json");
    assert!(
        document["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.")
    );
    assert!(document["paths"]["/api/v1/openapi.json"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_api_address_is_a_json_404() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/nothing-here").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn apikey_commands_create_list_and_revoke() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    assert!(key.starts_with("og_"), "{key}");
    let output = crate::helpers::process::otpgate_command(&app.data_dir)
        .args(["apikey", "list"])
        .output()
        .expect("list");
    let listing = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(listing.contains("admin\tactive"), "{listing}");
    assert!(
        !listing.contains(&key),
        "the key itself is never shown again"
    );
    let prefix = key.split('.').next().expect("prefix");
    let output = crate::helpers::process::otpgate_command(&app.data_dir)
        .args(["apikey", "revoke", prefix])
        .output()
        .expect("revoke");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let missing_resource = crate::helpers::process::otpgate_command(&app.data_dir)
        .args(["apikey", "create", "--name", "x", "--resource", "nowhere"])
        .output()
        .expect("create");
    assert!(!missing_resource.status.success());
    assert!(String::from_utf8_lossy(&missing_resource.stderr).contains("no resource \"nowhere\""));
    let _ = app.api(Method::GET, "/openapi.json", &key);
    app.stop().await;
}
