//! The admin panel's RADIUS page, through real HTTPS with forms and CSRF tokens; a gateway's
//! requests, sent over UDP with the codec, show what the saved secret opens.

use std::time::Duration;

use otpgate::radius::packet::{
    ACCESS_ACCEPT, ACCESS_REQUEST, Attribute, Packet, USER_NAME, USER_PASSWORD, hide_password,
    reply_valid, request,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::UdpSocket;

use crate::helpers::api::{count, database};
use crate::helpers::app::{TestApp, spawn_with, test_config};
use crate::helpers::auth::{Fixture, SEED, SEED_BASE32, call, fixture, user_with_token};
use crate::helpers::page::{hidden_value, location};

const SECRET: &str = "shared secret made by the api";

/// A server with RADIUS on a free port, the resource "vpn", "alice" with a HOTP token
/// (RFC 4226's seed) in it, and an administrator logged in to the panel.
struct Rig {
    app: TestApp,
    fx: Fixture,
    csrf: String,
    vpn: i64,
    _temp: tempfile::TempDir,
}

async fn rig() -> Rig {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(temp.path());
    config.radius.listen = vec!["127.0.0.1:0".into()];
    let app = spawn_with(config).await.expect("the application starts");
    let csrf = app.logged_in_admin().await;
    let fx = fixture(&app, 5).await;
    user_with_token(
        &app,
        &fx,
        "alice",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;
    let (_, resource) = call(&app, Method::GET, "/resources/vpn", &fx.admin, json!(null)).await;
    let vpn = resource["id"].as_i64().expect("the resource's id");
    Rig {
        app,
        fx,
        csrf,
        vpn,
        _temp: temp,
    }
}

impl Rig {
    async fn page(&self, path: &str) -> String {
        let response = self.app.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("body")
    }

    /// The client "nas" for 127.0.0.1, made through the API.
    async fn api_client(&self) -> i64 {
        let (status, client) = call(
            &self.app,
            Method::POST,
            "/radius/clients",
            &self.fx.admin,
            json!({"name": "nas", "address": "127.0.0.1", "secret": SECRET,
                   "resource": "vpn", "input_mode": "code_only"}),
        )
        .await;
        assert_eq!(status, 201, "{client}");
        client["id"].as_i64().expect("id")
    }

    /// The panel's form of a client: `fields` over a code-only client "nas" of "vpn".
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let vpn = self.vpn.to_string();
        let mut form = vec![
            ("csrf", self.csrf.as_str()),
            ("name", "nas"),
            ("address", "127.0.0.1"),
            ("resource", vpn.as_str()),
            ("input_mode", "code_only"),
            ("separator", ""),
            ("code_length", "6"),
            ("require_message_authenticator", "on"),
        ];
        for &(name, value) in fields {
            form.retain(|(field, _)| *field != name);
            form.push((name, value));
        }
        self.app.post_form(path, &form).await
    }

    /// Alice's code `counter` from the gateway at 127.0.0.1 with `secret`: the reply's code
    /// when a reply comes and is signed with that secret, None when nothing comes back.
    async fn authenticate(&self, secret: &str, counter: u64) -> Option<u8> {
        let code = otpgate::otp::hotp(SEED, otpgate::otp::Algorithm::Sha1, 6, counter);
        let authenticator = otpgate::crypto::random_bytes::<16>().expect("random");
        let hidden =
            hide_password(code.as_bytes(), secret.as_bytes(), &authenticator).expect("hide");
        let packet = request(
            ACCESS_REQUEST,
            counter as u8,
            authenticator,
            vec![
                Attribute::new(USER_NAME, b"alice".to_vec()),
                Attribute::new(USER_PASSWORD, hidden),
            ],
            secret.as_bytes(),
            true,
        )
        .expect("encode");
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket
            .send_to(&packet, self.app.radius[0])
            .await
            .expect("send");
        let mut buffer = vec![0u8; 4096];
        let reply =
            match tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer)).await
            {
                Ok(Ok((length, _))) => buffer[..length].to_vec(),
                _ => return None,
            };
        assert!(
            reply_valid(&reply, &authenticator, secret.as_bytes()),
            "the reply is signed with the secret the gateway knows"
        );
        Some(Packet::parse(&reply).expect("a packet").code)
    }

    /// The message the API answers `body` with (a 400 or 409).
    async fn api_refusal(&self, body: Value) -> String {
        let (status, answer) = call(
            &self.app,
            Method::POST,
            "/radius/clients",
            &self.fx.admin,
            body,
        )
        .await;
        assert!(status == 400 || status == 409, "{status} {answer}");
        answer["error"]["message"]
            .as_str()
            .expect("a message")
            .to_string()
    }
}

/// A message as the panel shows it under a field: its first letter capital, HTML-escaped.
fn as_shown(message: &str) -> String {
    let mut chars = message.chars();
    let first = chars.next().expect("a message").to_uppercase();
    first
        .chain(chars)
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

fn clients(app: &TestApp) -> i64 {
    count(app, "SELECT COUNT(*) FROM radius_clients")
}

fn audit_details(app: &TestApp, action: &str) -> Vec<String> {
    let conn = database(app);
    let mut statement = conn
        .prepare(
            "SELECT detail FROM audit_log WHERE action = ?1 AND actor = 'admin:admin' ORDER BY id",
        )
        .expect("prepare");
    statement
        .query_map([action], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn a_client_made_with_the_offered_secret_answers_the_gateway_that_was_given_it() {
    let rig = rig().await;
    let page = rig
        .page(&format!("/admin/radius/new?resource={}", rig.vpn))
        .await;
    let secret = hidden_value(&page, "secret");
    assert!(secret.len() >= 16, "a generated secret of {secret:?}");
    assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(page.contains("At least 16 characters are suggested"));
    let again = hidden_value(&rig.page("/admin/radius/new").await, "secret");
    assert_ne!(secret, again, "each form offers a secret of its own");

    let response = rig
        .post("/admin/radius/new", &[("secret", secret.as_str())])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/radius");
    let list = rig.page("/admin/radius").await;
    assert!(
        list.contains("RADIUS client “nas” created."),
        "the flash names it: {list}"
    );
    assert!(list.contains("127.0.0.1/32") && list.contains("Code only"));
    assert!(!list.contains(&secret), "the secret is not shown again");
    let id = count(&rig.app, "SELECT id FROM radius_clients WHERE name = 'nas'");
    assert!(
        !rig.page(&format!("/admin/radius/{id}"))
            .await
            .contains(&secret)
    );

    assert_eq!(rig.authenticate(&secret, 0).await, Some(ACCESS_ACCEPT));
    assert_eq!(
        audit_details(&rig.app, "radius_client.create"),
        ["nas (127.0.0.1/32)"]
    );

    // The resource's page leads to its clients, and that list shows only them.
    let resource = rig.page(&format!("/admin/resources/{}", rig.vpn)).await;
    let link = format!("/admin/radius?resource={}", rig.vpn);
    assert!(resource.contains(&format!("href=\"{link}\"")), "{resource}");
    assert!(resource.contains("RADIUS clients of this resource"));
    let (status, other) = call(
        &rig.app,
        Method::POST,
        "/resources",
        &rig.fx.admin,
        json!({"name": "mail"}),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    let of_vpn = rig.page(&link).await;
    assert!(of_vpn.contains(">nas<"), "{of_vpn}");
    let of_mail = rig
        .page(&format!("/admin/radius?resource={}", other["id"]))
        .await;
    assert!(of_mail.contains("No RADIUS clients yet.") && !of_mail.contains(">nas<"));
}

#[tokio::test]
async fn a_blank_secret_keeps_the_current_one_and_a_typed_one_replaces_it() {
    let rig = rig().await;
    let id = rig.api_client().await;
    let path = format!("/admin/radius/{id}");
    let page = rig.page(&path).await;
    assert!(!page.contains(SECRET), "the secret is write-only");
    assert!(page.contains("value=\"127.0.0.1/32\""));

    let response = rig
        .post(&path, &[("address", "127.0.0.0/8"), ("secret", "")])
        .await;
    assert_eq!(response.status(), 303);
    let page = rig.page(&location(&response)).await;
    assert!(
        page.contains("RADIUS client “nas” saved: address changed."),
        "{page}"
    );
    assert_eq!(rig.authenticate(SECRET, 0).await, Some(ACCESS_ACCEPT));

    let new_secret = "a new shared secret for nas";
    let response = rig
        .post(&path, &[("address", "127.0.0.0/8"), ("secret", new_secret)])
        .await;
    assert_eq!(response.status(), 303);
    let page = rig.page(&location(&response)).await;
    assert!(
        page.contains("RADIUS client “nas” saved: shared secret changed."),
        "{page}"
    );
    assert_eq!(rig.authenticate(SECRET, 1).await, None, "the old secret");
    assert_eq!(rig.authenticate(new_secret, 1).await, Some(ACCESS_ACCEPT));
    assert_eq!(
        audit_details(&rig.app, "radius_client.update"),
        ["nas: address", "nas: secret"]
    );

    // The separator and code length of a mode with password and code in one field.
    let response = rig
        .post(
            &path,
            &[
                ("address", "127.0.0.0/8"),
                ("input_mode", "code_password"),
                ("separator", ","),
                ("code_length", "8"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let (_, client) = call(
        &rig.app,
        Method::GET,
        &format!("/radius/clients/{id}"),
        &rig.fx.admin,
        json!(null),
    )
    .await;
    assert_eq!(client["input_mode"], "code_password");
    assert_eq!(client["separator"], ",");
    assert_eq!(client["code_length"], 8);
    assert_eq!(client["address"], "127.0.0.0/8");
}

#[tokio::test]
async fn the_panel_refuses_what_the_api_refuses_in_the_same_words_and_saves_nothing() {
    let rig = rig().await;
    let id = rig.api_client().await;
    let base = json!({"name": "fw2", "address": "192.0.2.1", "secret": SECRET, "resource": "vpn"});
    let with = |field: &str, value: &str| {
        let mut body = base.clone();
        body[field] = json!(value);
        body
    };
    for (field, value) in [
        ("address", "10.0.0.0/33"),
        ("secret", "short"),
        ("name", "NAS"),
    ] {
        let message = rig.api_refusal(with(field, value)).await;
        let response = rig
            .post(
                "/admin/radius/new",
                &[
                    ("name", "fw2"),
                    ("address", "192.0.2.1"),
                    ("secret", SECRET),
                    (field, value),
                ],
            )
            .await;
        assert_eq!(response.status(), 400, "{field} {value}");
        let page = response.text().await.expect("body");
        assert!(
            page.contains(&as_shown(&message)),
            "the panel says {message:?} for {field} {value}: {page}"
        );
        if field != "secret" {
            assert!(
                page.contains(&format!("value=\"{value}\"")),
                "kept as typed"
            );
        }
    }
    assert_eq!(clients(&rig.app), 1);

    // Changing a client is refused in the same words.
    let (status, _) = call(
        &rig.app,
        Method::POST,
        "/radius/clients",
        &rig.fx.admin,
        with("name", "fw2"),
    )
    .await;
    assert_eq!(status, 201);
    let message = rig.api_refusal(with("name", "nas")).await;
    let response = rig
        .post(
            &format!("/admin/radius/{id}"),
            &[("name", "FW2"), ("secret", "short")],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    let secret_message = rig.api_refusal(with("secret", "short")).await;
    assert!(page.contains(&as_shown(&secret_message)), "{page}");
    let response = rig
        .post(&format!("/admin/radius/{id}"), &[("name", "FW2")])
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(
        page.contains(&as_shown(&message.replace("nas", "FW2"))),
        "{page}"
    );
    assert_eq!(
        count(
            &rig.app,
            "SELECT COUNT(*) FROM radius_clients WHERE name = 'nas'"
        ),
        1
    );
    assert!(audit_details(&rig.app, "radius_client.update").is_empty());
}

#[tokio::test]
async fn deleting_a_client_asks_first_and_then_its_gateway_is_no_longer_answered() {
    let rig = rig().await;
    let id = rig.api_client().await;
    let path = format!("/admin/radius/{id}/delete");
    let confirm = rig.page(&path).await;
    assert!(confirm.contains("nas") && confirm.contains("cannot be undone"));
    assert_eq!(clients(&rig.app), 1, "asking deletes nothing");

    let response = rig.app.post_form(&path, &[("csrf", &rig.csrf)]).await;
    assert_eq!(response.status(), 303);
    let list = rig.page(&location(&response)).await;
    assert!(list.contains("RADIUS client “nas” deleted."), "{list}");
    assert_eq!(clients(&rig.app), 0);
    assert_eq!(audit_details(&rig.app, "radius_client.delete"), ["nas"]);
    assert_eq!(rig.authenticate(SECRET, 0).await, None);
    assert_eq!(rig.app.get(&path).await.status(), 404);
    assert_eq!(rig.app.get("/admin/radius/abc").await.status(), 404);
}

#[tokio::test]
async fn the_radius_pages_need_a_logged_in_administrator_and_a_forged_form_changes_nothing() {
    let mut rig = rig().await;
    let id = rig.api_client().await;
    let client = format!("/admin/radius/{id}");
    let delete = format!("{client}/delete");
    for forged in [vec![], vec![("csrf", "not-the-token")]] {
        let mut form = forged.clone();
        form.extend([
            ("name", "forged"),
            ("address", "192.0.2.9"),
            ("secret", SECRET),
            ("resource", "1"),
            ("input_mode", "code_only"),
        ]);
        for path in ["/admin/radius/new", client.as_str()] {
            let response = rig.app.post_form(path, &form).await;
            assert_eq!(response.status(), 403, "{path}");
        }
        let response = rig.app.post_form(&delete, &forged).await;
        assert_eq!(response.status(), 403);
    }
    let (_, stored) = call(
        &rig.app,
        Method::GET,
        &format!("/radius/clients/{id}"),
        &rig.fx.admin,
        json!(null),
    )
    .await;
    assert_eq!(stored["name"], "nas");
    assert_eq!(clients(&rig.app), 1);

    rig.app.forget_cookies();
    for path in [
        "/admin/radius",
        "/admin/radius/new",
        client.as_str(),
        delete.as_str(),
    ] {
        let response = rig.app.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), "/admin/login", "{path}");
    }
    let response = rig
        .app
        .post_form(&delete, &[("csrf", rig.csrf.as_str())])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/login");
    assert_eq!(clients(&rig.app), 1);
}

#[tokio::test]
async fn the_approval_wait_and_word_are_set_on_the_clients_page_in_the_apis_words() {
    let rig = rig().await;
    let id = rig.api_client().await;
    let path = format!("/admin/radius/{id}");
    let page = rig.page(&path).await;
    assert!(page.contains("Approve in Telegram"), "{page}");
    assert!(
        page.contains("name=\"approval_wait\" value=\"25\""),
        "{page}"
    );

    let message = rig
        .api_refusal(
            json!({"name": "fw2", "address": "192.0.2.1", "secret": SECRET,
                            "resource": "vpn", "approval_word": "push 1"}),
        )
        .await;
    let response = rig
        .post(
            &path,
            &[("approval_word", "push 1"), ("approval_wait", "300")],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("body");
    assert!(page.contains(&as_shown(&message)), "{page}");
    assert!(page.contains("5 to 120"), "{page}");
    assert!(audit_details(&rig.app, "radius_client.update").is_empty());

    let response = rig
        .post(&path, &[("approval_word", "push"), ("approval_wait", "40")])
        .await;
    assert_eq!(response.status(), 303);
    let page = rig.page(&location(&response)).await;
    assert!(
        page.contains("RADIUS client “nas” saved: approval wait, approval word changed."),
        "{page}"
    );
    assert_eq!(
        audit_details(&rig.app, "radius_client.update"),
        ["nas: approval_wait, approval_word"]
    );
    let (_, client) = call(
        &rig.app,
        Method::GET,
        &format!("/radius/clients/{id}"),
        &rig.fx.admin,
        json!(null),
    )
    .await;
    assert_eq!(client["approval_wait"], 40);
    assert_eq!(client["approval_word"], "push");
}
