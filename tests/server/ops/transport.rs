//! What otpgate tells browsers and scrapers about how to reach it: Strict-Transport-Security
//! only with a certificate browsers trust by themselves, a metrics endpoint closed by a bearer
//! token when one is configured, and a generated certificate that is valid for ten years from
//! the day before it was made and is made again, with the same key, before it expires.

use std::path::Path;
use std::time::Duration;

use otpgate::Config;

use crate::helpers::app::{spawn_with, test_config};

const DAY: i64 = 86_400;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A client that trusts `cert_pem` and names the server `localhost`.
fn client_trusting(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("PEM"))
        .build()
        .expect("client")
}

/// The validity of the certificate in `file`, in Unix seconds.
fn validity(file: &Path) -> (i64, i64) {
    let pem = std::fs::read(file).expect("the certificate");
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).expect("PEM");
    let certificate = block.parse_x509().expect("X.509");
    let validity = certificate.validity();
    (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    )
}

#[tokio::test]
async fn strict_transport_security_is_sent_with_a_configured_certificate_only() {
    let generated_dir = tempfile::tempdir().expect("dir");
    let generated = spawn_with(test_config(generated_dir.path()))
        .await
        .expect("start");
    let response = generated.get("/healthz").await;
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "browsers must stay able to accept the self-signed certificate"
    );
    generated.stop().await;

    let dir = tempfile::tempdir().expect("dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let cert_file = dir.path().join("operator-cert.pem");
    let key_file = dir.path().join("operator-key.pem");
    std::fs::write(&cert_file, certified.cert.pem()).expect("write");
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).expect("write");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("dir");
    // The test client trusts the generated certificate; leave one there for it to load.
    std::fs::create_dir_all(data_dir.join("tls")).expect("dir");
    std::fs::write(data_dir.join("tls/cert.pem"), certified.cert.pem()).expect("write");
    let mut config = test_config(&data_dir);
    config.tls.cert_file = Some(cert_file);
    config.tls.key_file = Some(key_file);
    let app = spawn_with(config).await.expect("start");
    let port = app.address.rsplit(':').next().expect("port").to_string();
    let client = client_trusting(&certified.cert.pem());
    for path in ["/healthz", "/admin/login", "/api/v1/openapi.json"] {
        let response = client
            .get(format!("https://localhost:{port}{path}"))
            .send()
            .await
            .expect("answered");
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
    }
    app.stop().await;
}

fn with_metrics_token(data_dir: &Path, token: &str) -> Config {
    let mut config = test_config(data_dir);
    config.metrics.bearer_token = token.to_string();
    config
}

#[tokio::test]
async fn the_metrics_answer_only_the_configured_bearer_token() {
    let dir = tempfile::tempdir().expect("dir");
    let token = "prometheus-scrape-token-7f3a";
    let app = spawn_with(with_metrics_token(dir.path(), token))
        .await
        .expect("start");
    let metrics = || app.client.get(app.url("/metrics"));

    let anonymous = metrics().send().await.expect("answered");
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer")
    );
    let body = anonymous.text().await.expect("body");
    assert!(!body.contains("otpgate_http"), "{body}");
    for wrong in ["wrong-token", "prometheus-scrape-token-7f3", ""] {
        let response = metrics().bearer_auth(wrong).send().await.expect("answered");
        assert_eq!(response.status(), 401, "{wrong:?}");
    }
    let response = metrics()
        .basic_auth(token, None::<&str>)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 401, "only a bearer token counts");

    let scraped = metrics().bearer_auth(token).send().await.expect("answered");
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.expect("body");
    assert!(text.contains("otpgate_http_requests_total"), "{text}");
    // The health check stays open for load balancers.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_short_metrics_token_is_refused_by_name() {
    let error = Config::parse("[metrics]\nbearer_token = \"short\"\n", None).expect_err("refused");
    assert!(
        error.to_string().contains("metrics.bearer_token"),
        "{error}"
    );
}

#[tokio::test]
async fn the_generated_certificate_is_valid_from_yesterday_for_ten_years() {
    let dir = tempfile::tempdir().expect("dir");
    let started = now();
    let app = spawn_with(test_config(dir.path())).await.expect("start");
    let (not_before, not_after) = validity(&dir.path().join("tls/cert.pem"));
    assert!(
        (started - DAY - 60..=started - DAY + 60).contains(&not_before),
        "valid from the day before: {not_before} at {started}"
    );
    let ten_years = 3652 * DAY;
    assert!(
        (started + ten_years - 60..=started + ten_years + 60).contains(&not_after),
        "valid for ten years: {not_after} at {started}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_generated_certificate_near_its_expiry_is_made_again_at_start_with_the_same_key() {
    let dir = tempfile::tempdir().expect("dir");
    let first = spawn_with(test_config(dir.path())).await.expect("start");
    first.stop().await;

    // The certificate a long-running server made ten years ago: expiring in ten days, for the
    // same names and key.
    let tls = dir.path().join("tls");
    let key_pem = std::fs::read_to_string(tls.join("key.pem")).expect("the key");
    let names: Vec<String> = std::fs::read_to_string(tls.join("names.txt"))
        .expect("the names")
        .lines()
        .map(str::to_string)
        .collect();
    let key = rcgen::KeyPair::from_pem(&key_pem).expect("the key");
    let mut params = rcgen::CertificateParams::new(names).expect("params");
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).expect("a time");
    params.not_before = at(now() - 3640 * DAY);
    params.not_after = at(now() + 10 * DAY);
    let old = params.self_signed(&key).expect("signed").pem();
    std::fs::write(tls.join("cert.pem"), &old).expect("write");
    let old_fingerprint = {
        let (_, block) = x509_parser::pem::parse_x509_pem(old.as_bytes()).expect("PEM");
        otpgate::tls::fingerprint(&block.contents)
    };

    let second = spawn_with(test_config(dir.path())).await.expect("restart");
    let fingerprint = second.fingerprint.clone().expect("TLS on");
    assert_ne!(fingerprint, old_fingerprint, "a new certificate is in use");
    let (_, not_after) = validity(&tls.join("cert.pem"));
    assert!(
        not_after > now() + 3600 * DAY,
        "the new one lasts ten years: {not_after}"
    );
    assert_eq!(
        std::fs::read_to_string(tls.join("key.pem")).expect("the key"),
        key_pem,
        "the key file is kept as it was"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tls.join("key.pem"))
            .expect("the key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The test client reads the new certificate from the data directory and trusts it.
    let client = crate::helpers::app::client_for(dir.path());
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(second.url("/healthz")).send(),
    )
    .await
    .expect("in time")
    .expect("the new certificate is served");
    assert_eq!(response.status(), 200);
    second.stop().await;
}
