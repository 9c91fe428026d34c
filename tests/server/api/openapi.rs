//! The OpenAPI document against the server's routes: every route is in both, and the document
//! describes the error shape and the bearer keys.

use serde_json::Value;

use crate::helpers::app::spawn_app;

/// Every route of the API that the product promises.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/prepare"),
    ("post", "/api/v1/auth/authenticate"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users/{user}"),
    ("patch", "/api/v1/users/{user}"),
    ("delete", "/api/v1/users/{user}"),
    ("put", "/api/v1/users/{user}/password"),
    ("post", "/api/v1/users/{user}/enable"),
    ("post", "/api/v1/users/{user}/disable"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("get", "/api/v1/tokens/{token}"),
    ("patch", "/api/v1/tokens/{token}"),
    ("delete", "/api/v1/tokens/{token}"),
    ("post", "/api/v1/tokens/{token}/enable"),
    ("post", "/api/v1/tokens/{token}/disable"),
    ("post", "/api/v1/tokens/{token}/reset"),
    ("post", "/api/v1/tokens/{token}/resync"),
    ("put", "/api/v1/tokens/{token}/user"),
    ("delete", "/api/v1/tokens/{token}/user"),
    ("post", "/api/v1/tokens/import"),
    ("get", "/api/v1/resources"),
    ("post", "/api/v1/resources"),
    ("get", "/api/v1/resources/{resource}"),
    ("patch", "/api/v1/resources/{resource}"),
    ("delete", "/api/v1/resources/{resource}"),
    ("get", "/api/v1/resources/{resource}/users"),
    ("post", "/api/v1/resources/{resource}/users"),
    ("delete", "/api/v1/resources/{resource}/users/{user}"),
    ("get", "/api/v1/resources/{resource}/tokens"),
    ("post", "/api/v1/resources/{resource}/tokens"),
    ("delete", "/api/v1/resources/{resource}/tokens/{token}"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/settings/mail"),
    ("put", "/api/v1/settings/mail"),
    ("post", "/api/v1/settings/mail/test"),
    ("get", "/api/v1/settings/sms"),
    ("put", "/api/v1/settings/sms"),
    ("post", "/api/v1/settings/sms/test"),
    ("get", "/api/v1/settings/bot"),
    ("put", "/api/v1/settings/bot"),
    ("post", "/api/v1/tokens/{token}/activation"),
    ("get", "/api/v1/tokens/{token}/activation"),
    ("get", "/api/v1/deliveries"),
    // API keys, Self-Service and the general settings.
    ("post", "/api/v1/api-keys"),
    ("get", "/api/v1/api-keys"),
    ("post", "/api/v1/api-keys/{key}/revoke"),
    ("get", "/api/v1/resources/{resource}/self-service"),
    ("put", "/api/v1/resources/{resource}/self-service"),
    ("get", "/api/v1/settings/general"),
    ("put", "/api/v1/settings/general"),
    // The audit log and enrolment by the first code.
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/audit.csv"),
    ("post", "/api/v1/tokens/enrol"),
    ("post", "/api/v1/tokens/{token}/confirm"),
];

async fn document() -> (crate::helpers::app::TestApp, Value) {
    let app = spawn_app().await;
    let document = app
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    (app, document)
}

#[tokio::test]
async fn every_route_of_the_api_is_in_the_openapi_document() {
    let (app, document) = document().await;
    for (method, path) in ROUTES {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn every_route_in_the_openapi_document_is_served() {
    let (app, document) = document().await;
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "{} paths", paths.len());
    for (path, item) in paths {
        let concrete = path
            .replace("{user}", "1")
            .replace("{token}", "1")
            .replace("{resource}", "1")
            .replace("{key}", "1");
        for method in item.as_object().expect("item").keys() {
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = app
                .client
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .expect("answer");
            let expected = if path.ends_with("openapi.json") {
                200
            } else {
                401
            };
            assert_eq!(
                response.status(),
                expected,
                "{method} {path}: a documented route answers (without a key: 401)"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_document_describes_the_error_shape_and_bearer_keys() {
    let (app, document) = document().await;
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let authenticate = &document["paths"]["/api/v1/auth/authenticate"]["post"];
    assert!(authenticate["requestBody"].is_object());
    assert!(authenticate["responses"]["429"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn every_token_route_documents_how_a_serial_of_digits_is_written() {
    let (app, document) = document().await;
    let mut described = 0;
    for (path, methods) in document["paths"].as_object().expect("paths") {
        if !path.contains("{token}") {
            continue;
        }
        for (method, operation) in methods.as_object().expect("methods") {
            let parameter = operation["parameters"]
                .as_array()
                .and_then(|parameters| parameters.iter().find(|p| p["name"] == "token"))
                .unwrap_or_else(|| panic!("{method} {path} has no token parameter"));
            let description = parameter["description"].as_str().unwrap_or_default();
            assert!(
                description.contains("serial:987654321"),
                "{method} {path}: {description}"
            );
            described += 1;
        }
    }
    assert!(described >= 12, "{described} token routes");
    let schema = &document["components"]["schemas"]["AuthenticateRequest"];
    assert!(
        schema["description"]
            .as_str()
            .is_some_and(|text| text.contains("a JSON number is an id and a JSON string")),
        "{schema}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_new_settings_routes_state_the_constraints_the_server_checks() {
    let (app, document) = document().await;
    let schemas = &document["components"]["schemas"];
    let name = &schemas["CreateApiKey"]["properties"]["name"];
    assert_eq!(name["maxLength"], 100, "{name}");
    assert_eq!(name["minLength"], 1, "{name}");
    let actions = &schemas["SelfServiceRequest"]["properties"]["allowed_actions"]["items"]["enum"];
    assert_eq!(actions.as_array().map(Vec::len), Some(14), "{actions}");
    assert!(
        schemas["SelfServiceRequest"]["then"]["required"]
            .as_array()
            .is_some_and(|required| required.contains(&Value::from("address"))),
        "a portal that is on has an address"
    );
    let general = &schemas["GeneralSettingsRequest"]["properties"];
    for (field, minimum, maximum) in [
        ("challenge_validity_seconds", 60, 1800),
        ("pin_min_length", 4, 64),
        ("portal_idle_minutes", 5, 240),
        ("resend_cooldown_seconds", 0, 600),
        ("sms_per_hour", 1, 1000),
    ] {
        assert_eq!(general[field]["minimum"], minimum, "{field}");
        assert_eq!(general[field]["maximum"], maximum, "{field}");
    }
    assert_eq!(
        general["default_otp_length"]["enum"],
        serde_json::json!([6, 8])
    );
    let revoke = &document["paths"]["/api/v1/api-keys/{key}/revoke"]["post"]["parameters"][0];
    assert_eq!(revoke["schema"]["minimum"], 1, "{revoke}");
    app.stop().await;
}

#[tokio::test]
async fn a_resource_s_approval_settings_are_described_for_reading_and_writing() {
    let (app, document) = document().await;
    let schemas = &document["components"]["schemas"];
    for field in ["allowed", "number_matching", "deny_locks"] {
        assert!(
            schemas["ResourceApprovals"]["properties"][field].is_object(),
            "{field} is read"
        );
        assert!(
            schemas["ResourceApprovalsChange"]["properties"][field].is_object(),
            "{field} is written"
        );
    }
    assert!(schemas["Resource"]["properties"]["approvals"].is_object());
    assert!(schemas["UpdateResource"]["properties"]["approvals"].is_object());
    app.stop().await;
}
