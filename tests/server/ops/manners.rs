//! HTTP manners of the whole server, through real HTTPS: HEAD wherever GET is served, 405 with
//! `Allow` for a known address asked with another method, 413 for a body over the limit, and
//! media types compared without regard to case.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_app};

async fn answer(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .send()
        .await
        .expect("answered")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_head_request_gets_the_headers_of_the_get_without_a_body() {
    let app = spawn_app().await;
    for path in [
        "/healthz",
        "/api/v1/openapi.json",
        "/admin/login",
        "/assets/style.css",
    ] {
        let get = answer(&app, Method::GET, path).await;
        let head = answer(&app, Method::HEAD, path).await;
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(head.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&head, "content-type"),
            header(&get, "content-type"),
            "{path}"
        );
        assert!(head.bytes().await.expect("body").is_empty(), "{path}");
        assert!(!get.bytes().await.expect("body").is_empty(), "{path}");
    }
    // The connection stays usable after a HEAD: the next answer is whole.
    let after = answer(&app, Method::GET, "/healthz").await;
    assert_eq!(after.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_known_address_asked_with_another_method_answers_405_with_allow() {
    let app = spawn_app().await;
    let page = answer(&app, Method::POST, "/healthz").await;
    assert_eq!(page.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&page, "allow"), "GET, HEAD");
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert!(
        page.text()
            .await
            .expect("page")
            .contains("Method not allowed")
    );

    let login = answer(&app, Method::PUT, "/admin/login").await;
    assert_eq!(login.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&login, "allow"), "GET, HEAD, POST");

    for (method, path, allowed) in [
        (Method::DELETE, "/api/v1/auth/authenticate", "POST"),
        (Method::GET, "/api/v1/users/1/password", "PUT"),
        (Method::POST, "/api/v1/openapi.json", "GET, HEAD"),
    ] {
        let api = answer(&app, method.clone(), path).await;
        assert_eq!(
            api.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(header(&api, "allow"), allowed, "{method} {path}");
        let body: Value = api.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    }
    let users = answer(&app, Method::PUT, "/api/v1/users").await;
    let allow = header(&users, "allow");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    // Unknown addresses stay 404, in each front end's form.
    let nothing = answer(&app, Method::GET, "/api/v1/nothing").await;
    assert_eq!(nothing.status(), 404);
    let body: Value = nothing.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "not_found");
    let nothing = answer(&app, Method::POST, "/nothing/here").await;
    assert_eq!(nothing.status(), 404);
    assert!(header(&nothing, "content-type").starts_with("text/html"));
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_and_the_answer_arrives() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let big = json!({"login": "x".repeat(300 * 1024)}).to_string();
    let declared = app
        .api(Method::POST, "/users", &admin)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("the answer arrives");
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = declared.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "too_large", "{body}");

    // Without a Content-Length: the limit is found while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(16 * 1024)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    let streamed = app
        .api(Method::POST, "/users", &admin)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("the answer arrives");
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let form = app
        .client
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("login={}", "x".repeat(100 * 1024)))
        .send()
        .await
        .expect("the answer arrives");
    assert_eq!(form.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A file over the panel's upload limit: the form again, with its words, as 413.
    let csrf = app.logged_in_admin().await;
    let file = vec![b'a'; 5 * 1024 * 1024];
    let upload = crate::helpers::panel::post_multipart(
        &app,
        "/admin/users/import",
        &[("csrf", &csrf)],
        ("file", "users.csv", &file),
    )
    .await;
    assert_eq!(upload.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(upload.text().await.expect("page").contains("too large"));
    assert_eq!(
        crate::helpers::api::count(&app, "SELECT COUNT(*) FROM users"),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn media_types_are_compared_without_regard_to_case() {
    let app = spawn_app().await;
    let admin = app.api_key(&["--admin"]);
    let created = app
        .api(Method::POST, "/users", &admin)
        .header("content-type", "Application/JSON; Charset=UTF-8")
        .body(r#"{"login": "alice"}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), 201);
    let refused = app
        .api(Method::POST, "/users", &admin)
        .header("content-type", "text/plain")
        .body(r#"{"login": "bob"}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 400);

    let form = app
        .client
        .post(app.url("/admin/login"))
        .header(
            "content-type",
            "Application/X-WWW-Form-Urlencoded; Charset=UTF-8",
        )
        .body("csrf=x&login=admin&password=y&otp=123456")
        .send()
        .await
        .expect("answered");
    assert_ne!(form.status(), 400, "the form was read");
    assert_ne!(form.status(), 415, "the form was read");
    app.stop().await;
}
