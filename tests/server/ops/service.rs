//! The running service as operators see it: the health check, the metrics, the security
//! headers on every page, and a malformed form answered as a bad request.

use crate::helpers::app::spawn_app;

#[tokio::test]
async fn healthz_answers_ok_when_the_database_answers() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "ok\n");
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.get("/healthz").await;
    app.get("/no/such/page").await;
    let text = app.get("/metrics").await.text().await.expect("body");
    assert!(text.contains("# TYPE otpgate_http_requests_total counter"));
    assert!(text.contains(
        "otpgate_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"
    ));
    assert!(text.contains("status=\"404\""));
    assert!(text.contains(
        "otpgate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1"
    ));
    app.stop().await;
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/admin/login", "/healthz", "/nowhere"] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-store");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_form_is_a_bad_request_not_a_server_error() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("%%%&&&=")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400);
    app.stop().await;
}
