//! The API's contract: a body is a JSON object and nothing else, and the OpenAPI document
//! states the ranges, lengths and forms the server checks, so that a request built from the
//! document at the edges of what it allows is accepted, and one just past them is refused.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::api::{count, send};
use crate::helpers::app::{TestApp, spawn_app};

async fn document(app: &TestApp) -> Value {
    app.get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("json")
}

fn property<'a>(document: &'a Value, schema: &str, property: &str) -> &'a Value {
    &document["components"]["schemas"][schema]["properties"][property]
}

fn number(value: &Value, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not stated: {value}"))
}

#[tokio::test]
async fn a_json_array_is_refused_and_creates_nothing() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    for (path, body) in [
        ("/users", r#"["x"]"#),
        ("/users", r#"["eve", "Eve", "Evans"]"#),
        ("/resources", r#"["vpn"]"#),
        ("/users", r#""x""#),
    ] {
        let response = app
            .api(Method::POST, path, &admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 400, "{path} {body}");
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
        let message = answer["error"]["message"].as_str().expect("a message");
        assert!(message.contains("JSON object"), "{message}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users"), 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM resources"), 0);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_states_the_constraints_the_server_checks() {
    let app = spawn_app().await;
    let document = document(&app).await;
    for schema in ["CreateResource", "UpdateResource"] {
        let fail_limit = property(&document, schema, "fail_limit");
        assert_eq!(fail_limit["minimum"], 3, "{schema}: {fail_limit}");
        assert_eq!(fail_limit["maximum"], 10, "{schema}: {fail_limit}");
        let unlock = property(&document, schema, "auto_unlock_seconds");
        assert_eq!(unlock["minimum"], 60, "{schema}: {unlock}");
        assert_eq!(unlock["maximum"], 86_400, "{schema}: {unlock}");
        let cost = unlock["description"].as_str().unwrap_or_default();
        assert!(cost.contains("guesses a day"), "{schema}: {cost}");
        let name = property(&document, schema, "name");
        assert_eq!(name["minLength"], 1, "{schema}: {name}");
        assert_eq!(name["maxLength"], 100, "{schema}: {name}");
        assert!(name["pattern"].is_string(), "{schema}: {name}");
    }
    let login = property(&document, "CreateUser", "login");
    assert_eq!(login["minLength"], 1, "{login}");
    assert_eq!(login["maxLength"], 128, "{login}");
    let password = property(&document, "CreateUser", "password");
    assert_eq!(password["minLength"], 8, "{password}");
    assert_eq!(password["maxLength"], 1024, "{password}");
    assert_eq!(
        property(&document, "CreateUser", "email")["format"],
        "email"
    );
    assert_eq!(
        property(&document, "CreateToken", "digits")["enum"],
        json!([6, 8, null])
    );
    assert_eq!(
        property(&document, "MailSettingsRequest", "timeout_seconds")["maximum"],
        120
    );
    assert_eq!(
        property(&document, "MailSettingsRequest", "port")["minimum"],
        1
    );

    // An id is a number from 1, a name a string with something in it.
    let forms = document["components"]["schemas"]["IdOrName"]["oneOf"]
        .as_array()
        .expect("IdOrName is one of two forms");
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[0]["type"], "integer");
    assert_eq!(forms[0]["minimum"], 1);
    assert_eq!(forms[1]["type"], "string");
    assert_eq!(forms[1]["minLength"], 1);

    // The rules between fields.
    assert_eq!(
        document["components"]["schemas"]["UpdateToken"]["minProperties"],
        1
    );
    let authenticate = &document["components"]["schemas"]["AuthenticateRequest"]["allOf"];
    assert_eq!(
        authenticate.as_array().map(Vec::len),
        Some(2),
        "{authenticate}"
    );

    // Parameters: a path names an object in its two written forms, and pages have bounds.
    let token = &document["paths"]["/api/v1/tokens/{token}"]["get"]["parameters"][0];
    assert_eq!(token["name"], "token");
    let pattern = token["schema"]["pattern"].as_str().expect("a pattern");
    let limit = document["paths"]["/api/v1/users"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
    assert!(pattern.contains("[1-9]"), "{pattern}");
    app.stop().await;
}

/// A string of `length` characters, none of them ASCII (so that characters, not bytes, count).
fn text_of(length: usize) -> String {
    "é".repeat(length)
}

#[tokio::test]
async fn requests_at_the_edges_of_the_documented_ranges_are_accepted_and_past_them_refused() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let document = document(&app).await;
    let created = |status: StatusCode, body: &Value| {
        assert_eq!(status, 201, "{body}");
    };

    // Resources: the failed-attempt limit, the automatic unlock and the name's length.
    let fail_limit = property(&document, "CreateResource", "fail_limit");
    let unlock = property(&document, "CreateResource", "auto_unlock_seconds");
    let name = property(&document, "CreateResource", "name");
    let (limit_low, limit_high) = (
        number(&fail_limit["minimum"], "fail_limit minimum"),
        number(&fail_limit["maximum"], "fail_limit maximum"),
    );
    let (unlock_low, unlock_high) = (
        number(&unlock["minimum"], "auto_unlock minimum"),
        number(&unlock["maximum"], "auto_unlock maximum"),
    );
    let longest = number(&name["maxLength"], "name maxLength") as usize;
    for (index, (limit, unlock)) in [(limit_low, unlock_low), (limit_high, unlock_high)]
        .into_iter()
        .enumerate()
    {
        let body = json!({
            "name": format!("r{index}{}", text_of(longest - 2)),
            "fail_limit": limit,
            "auto_unlock_seconds": unlock,
        });
        let (status, answer) = send(&app, Method::POST, "/resources", &admin, Some(body)).await;
        created(status, &answer);
    }
    for (field, value) in [
        ("fail_limit", json!(limit_low - 1)),
        ("fail_limit", json!(limit_high + 1)),
        ("auto_unlock_seconds", json!(unlock_low - 1)),
        ("auto_unlock_seconds", json!(unlock_high + 1)),
        ("name", json!(text_of(longest + 1))),
    ] {
        let mut body = json!({"name": "past-the-edge"});
        body[field] = value;
        let (status, answer) = send(&app, Method::POST, "/resources", &admin, Some(body)).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }

    // Users: the login's and the names' lengths, the password's bounds.
    let login = property(&document, "CreateUser", "login");
    let first_name = property(&document, "CreateUser", "first_name");
    let password = property(&document, "CreateUser", "password");
    let longest_login = number(&login["maxLength"], "login maxLength") as usize;
    let longest_name = number(&first_name["maxLength"], "first_name maxLength") as usize;
    let (shortest, longest_password) = (
        number(&password["minLength"], "password minLength") as usize,
        number(&password["maxLength"], "password maxLength") as usize,
    );
    for (index, length) in [shortest, longest_password].into_iter().enumerate() {
        let body = json!({
            "login": format!("u{index}{}", text_of(longest_login - 2)),
            "first_name": text_of(longest_name),
            "password": "p".repeat(length),
        });
        let (status, answer) = send(&app, Method::POST, "/users", &admin, Some(body)).await;
        created(status, &answer);
    }
    for (field, value) in [
        ("login", json!(text_of(longest_login + 1))),
        ("first_name", json!(text_of(longest_name + 1))),
        ("password", json!("p".repeat(shortest - 1))),
        ("password", json!("p".repeat(longest_password + 1))),
    ] {
        let mut body = json!({"login": "past-the-edge"});
        body[field] = value;
        let (status, answer) = send(&app, Method::POST, "/users", &admin, Some(body)).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }

    // Pages: the documented limits of `limit`.
    let limit = document["paths"]["/api/v1/users"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit")["schema"]
        .clone();
    let (low, high) = (
        number(&limit["minimum"], "limit minimum"),
        number(&limit["maximum"], "limit maximum"),
    );
    for value in [low, high] {
        let (status, answer) = send(
            &app,
            Method::GET,
            &format!("/users?limit={value}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 200, "limit={value}: {answer}");
    }
    for value in [low - 1, high + 1] {
        let (status, _) = send(
            &app,
            Method::GET,
            &format!("/users?limit={value}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 400, "limit={value}");
    }

    // An object named by the smallest id the document allows, by a large one and by a name:
    // found or not found, never malformed.
    let resource = format!("r0{}", text_of(longest - 2));
    for user in [json!(1), json!(1_000_000), json!("nobody-here")] {
        let (status, answer) = send(
            &app,
            Method::POST,
            &format!("/resources/{resource}/users"),
            &admin,
            Some(json!({ "user": user })),
        )
        .await;
        assert!(status == 204 || status == 404, "{user}: {status} {answer}");
    }
    app.stop().await;
}
