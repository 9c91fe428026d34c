//! Directories through the API against a real OpenLDAP slapd started by each test: the
//! settings checked and audited with the service account's password sealed and never shown,
//! Test connection and Preview (paged beyond the server's size limit) before anything is saved,
//! failover to the next address, and passwords of directory users checked by a bind as them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, audit_actions, database, send};
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::auth::{SEED_BASE32, authenticate, fixture, totp};
use crate::helpers::slapd::{
    ALICE, BASE_DN, BOB, Fixture, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, SIZE_LIMIT, Slapd,
};

/// Settings for the test directory, as an administrator would send them.
fn settings(urls: &[&str]) -> Value {
    json!({
        "name": "Example",
        "kind": "openldap",
        "urls": urls,
        "tls": "none",
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "base_dn": PEOPLE_DN,
    })
}

async fn create_directory(app: &TestApp, key: &str, slapd: &Slapd) -> Value {
    let (status, created) = send(
        app,
        Method::POST,
        "/directories",
        key,
        Some(settings(&[&slapd.url])),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

#[tokio::test]
async fn test_connection_binds_as_the_service_account_before_anything_is_saved() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let (status, report) = send(
        &app,
        Method::POST,
        "/directories/test",
        &key,
        Some(settings(&[&slapd.url])),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["url"], slapd.url);
    assert_eq!(
        crate::helpers::api::count(&app, "SELECT count(*) FROM directories"),
        0
    );
    assert_eq!(directory_actions(&app), ["directory.test"]);

    let mut wrong = settings(&[&slapd.url]);
    wrong["bind_password"] = json!("not the service password");
    let (status, report) = send(&app, Method::POST, "/directories/test", &key, Some(wrong)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["attempts"][0]["url"], slapd.url);
    let problem = report["attempts"][0]["problem"]
        .as_str()
        .expect("a problem");
    assert!(problem.contains("password was refused"), "{problem}");
    assert!(!report.to_string().contains("not the service password"));

    let mut elsewhere = settings(&[&slapd.url]);
    elsewhere["base_dn"] = json!(format!("ou=nowhere,{BASE_DN}"));
    let (_, report) = send(
        &app,
        Method::POST,
        "/directories/test",
        &key,
        Some(elsewhere),
    )
    .await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["message"]
            .as_str()
            .expect("a message")
            .contains("ou=nowhere"),
        "{report}"
    );
}

#[tokio::test]
async fn a_directory_that_is_down_is_skipped_for_the_next_address() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let down = Slapd::unreachable_url();
    let (_, report) = send(
        &app,
        Method::POST,
        "/directories/test",
        &key,
        Some(settings(&[&down, &slapd.url])),
    )
    .await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["url"], slapd.url);
    assert_eq!(report["attempts"][0]["url"], down);
    assert_eq!(report["attempts"][0]["problem"], "connection refused");

    let (_, report) = send(
        &app,
        Method::POST,
        "/directories/test",
        &key,
        Some(settings(&[&down])),
    )
    .await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["message"]
            .as_str()
            .expect("a message")
            .starts_with("no directory server answered"),
        "{report}"
    );
}

#[tokio::test]
async fn starttls_and_ldaps_trust_the_directorys_ca_and_refuse_a_server_they_cannot_trust() {
    let Some(slapd) = Slapd::start_with(Fixture {
        people: 10,
        tls: true,
    })
    .await
    else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let ca_pem = slapd.ca_pem.clone().expect("a CA");
    let ldaps_url = slapd.ldaps_url.clone().expect("an ldaps address");
    for (tls, url) in [("starttls", &slapd.url), ("ldaps", &ldaps_url)] {
        let mut body = settings(&[url]);
        body["tls"] = json!(tls);
        body["ca_pem"] = json!(ca_pem);
        let (status, report) = send(
            &app,
            Method::POST,
            "/directories/test",
            &key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["ok"], true, "{tls}: {report}");
        // Without the CA, the system's roots do not know the server's certificate.
        body["ca_pem"] = json!("");
        let (_, report) = send(&app, Method::POST, "/directories/test", &key, Some(body)).await;
        assert_eq!(report["ok"], false, "{tls}: {report}");
        let problem = report["attempts"][0]["problem"]
            .as_str()
            .expect("a problem");
        assert!(problem.contains("TLS"), "{tls}: {problem}");
    }
}

#[tokio::test]
async fn preview_counts_every_person_through_pages_beyond_the_servers_size_limit() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let (status, preview) = send(
        &app,
        Method::POST,
        "/directories/preview",
        &key,
        Some(settings(&[&slapd.url])),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["ok"], true, "{preview}");
    let total = slapd.fixture.total_people();
    assert!(total > SIZE_LIMIT, "the fixture must outgrow one answer");
    assert_eq!(preview["count"], total, "{}", preview["message"]);
    let people = preview["people"].as_array().expect("people");
    assert_eq!(people.len(), 20);
    let alice = people
        .iter()
        .find(|person| person["login"] == ALICE.0)
        .expect("alice among the first");
    assert_eq!(alice["first_name"], "Alice");
    assert_eq!(alice["last_name"], "Liddell");
    assert_eq!(alice["email"], "alice@example.org");
    assert_eq!(alice["dn"], format!("uid=alice,{PEOPLE_DN}"));
    let stable = alice["stable_id"].as_str().expect("an entryUUID");
    assert_eq!(stable.len(), 36, "{stable}");

    // A filter narrows the people; a group filter too.
    let mut narrowed = settings(&[&slapd.url]);
    narrowed["user_group"] = json!("(|(uid=alice)(uid=bob))");
    let (_, preview) = send(
        &app,
        Method::POST,
        "/directories/preview",
        &key,
        Some(narrowed),
    )
    .await;
    assert_eq!(preview["count"], 2, "{preview}");
}

#[tokio::test]
async fn a_directory_is_created_shown_changed_and_deleted_and_its_password_never_shown() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let created = create_directory(&app, &key, &slapd).await;
    assert_eq!(created["name"], "Example");
    assert_eq!(created["login_attributes"], json!(["uid"]));
    assert_eq!(created["id_attribute"], "entryUUID");
    assert_eq!(created["user_filter"], "(objectClass=inetOrgPerson)");
    assert_eq!(created["sync_interval_minutes"], 15);
    assert!(created.get("bind_password").is_none(), "{created}");
    let sealed: Vec<u8> = database(&app)
        .query_row("SELECT bind_password_sealed FROM directories", [], |row| {
            row.get(0)
        })
        .expect("sealed");
    assert!(
        !sealed
            .windows(SERVICE_PASSWORD.len())
            .any(|w| w == SERVICE_PASSWORD.as_bytes()),
        "the password is sealed at rest"
    );

    let (status, again) = send(
        &app,
        Method::POST,
        "/directories",
        &key,
        Some(settings(&[&slapd.url])),
    )
    .await;
    assert_eq!(status, 409, "{again}");

    let (status, saved_test) =
        send(&app, Method::POST, "/directories/Example/test", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(saved_test["ok"], true, "{saved_test}");

    let (status, changed) = send(
        &app,
        Method::PATCH,
        "/directories/Example",
        &key,
        Some(json!({"bind_password": "a new wrong one", "connect_timeout_seconds": 3})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["connect_timeout_seconds"], 3);
    let (_, saved_test) = send(&app, Method::POST, "/directories/Example/test", &key, None).await;
    assert_eq!(
        saved_test["ok"], false,
        "the new password is the one used: {saved_test}"
    );

    let (status, listed) = send(&app, Method::GET, "/directories", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);
    assert!(!listed.to_string().contains(SERVICE_PASSWORD));

    let (status, _) = send(&app, Method::DELETE, "/directories/Example", &key, None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, Method::GET, "/directories/Example", &key, None).await;
    assert_eq!(status, 404);
    let actions = audit_actions(&app);
    for action in [
        "directory.create",
        "directory.test",
        "directory.update",
        "directory.delete",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

#[tokio::test]
async fn a_field_that_does_not_fit_is_refused_by_name_and_nothing_is_saved() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let cases = [
        ("kind", json!({"kind": "novell"})),
        ("urls", json!({"urls": ["ldaps://ldap.example.org"]})),
        ("urls", json!({"urls": []})),
        ("user_filter", json!({"user_filter": "(uid=alice"})),
        ("base_dn", json!({"base_dn": "people"})),
        ("bind_password", json!({"bind_password": ""})),
        ("login_attributes", json!({"login_attributes": ["u id"]})),
        ("ca_pem", json!({"ca_pem": "not a certificate"})),
        (
            "search_timeout_seconds",
            json!({"search_timeout_seconds": 0}),
        ),
    ];
    for (field, change) in cases {
        let mut body = settings(&["ldap://127.0.0.1:389"]);
        for (name, value) in change.as_object().expect("object") {
            body[name] = value.clone();
        }
        for path in ["/directories", "/directories/test"] {
            let (status, refused) = send(&app, Method::POST, path, &key, Some(body.clone())).await;
            assert_field(status, &refused, field);
        }
    }
    let mut body = settings(&["ldap://127.0.0.1:389"]);
    body.as_object_mut().expect("object").remove("kind");
    let (status, refused) = send(&app, Method::POST, "/directories", &key, Some(body)).await;
    assert_field(status, &refused, "kind");
    assert_eq!(
        crate::helpers::api::count(&app, "SELECT count(*) FROM directories"),
        0
    );
    assert!(directory_actions(&app).is_empty());
}

/// The audit log's directory lines (the API key's creation is there too).
fn directory_actions(app: &TestApp) -> Vec<String> {
    audit_actions(app)
        .into_iter()
        .filter(|action| action.starts_with("directory."))
        .collect()
}

/// A directory, alice from it as an otpgate user with a TOTP token in "vpn", and the
/// resource's key.
async fn directory_user(app: &TestApp, slapd: &Slapd) -> String {
    let fx = fixture(app, 5).await;
    create_directory(app, &fx.admin, slapd).await;
    let (status, added) = send(
        app,
        Method::POST,
        "/directories/Example/users",
        &fx.admin,
        Some(json!({"login": ALICE.0})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let (status, again) = send(
        app,
        Method::POST,
        "/directories/Example/users",
        &fx.admin,
        Some(json!({"login": ALICE.0})),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["user_id"], added["user_id"]);
    let (status, token) = send(
        app,
        Method::POST,
        "/tokens",
        &fx.admin,
        Some(json!({"kind": "TOTP", "secret": SEED_BASE32, "user": ALICE.0, "resource": "vpn"})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    fx.app_key
}

fn last_reason(app: &TestApp) -> String {
    database(app)
        .query_row(
            "SELECT reason FROM audit_log WHERE action = 'auth.authenticate' ORDER BY id DESC LIMIT 1",
            [],
            |row| row.get::<_, Option<String>>(0),
        )
        .expect("an authentication line")
        .unwrap_or_default()
}

fn failures(app: &TestApp) -> i64 {
    crate::helpers::api::count(
        app,
        "SELECT coalesce(sum(failures), 0) FROM login_failures WHERE account_id > 0",
    )
}

#[tokio::test]
async fn a_directory_users_password_is_checked_by_a_bind_as_them() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let app_key = directory_user(&app, &slapd).await;
    let user = database(&app)
        .query_row(
            "SELECT first_name, email, password_hash, directory_uid FROM users WHERE login = 'alice'",
            [],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            },
        )
        .expect("alice");
    assert_eq!(user.0, "Alice");
    assert_eq!(user.1.as_deref(), Some("alice@example.org"));
    assert_eq!(user.2, None, "no password is stored for a directory user");
    assert!(user.3.is_some(), "linked by the entry's stable id");

    let (_, body) = authenticate(
        &app,
        &app_key,
        json!({"user": ALICE.0, "password": ALICE.1}),
    )
    .await;
    assert_eq!(body["result"], "challenge", "{body}");

    crate::helpers::otp::wait_for_fresh_step(5).await;
    let (_, body) = authenticate(
        &app,
        &app_key,
        json!({"user": ALICE.0, "password": ALICE.1, "otp": totp(0)}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");

    // Another person's password is no password of hers.
    let (_, body) = authenticate(&app, &app_key, json!({"user": ALICE.0, "password": BOB.1})).await;
    assert_eq!(body["result"], "rejected", "{body}");
    assert_eq!(last_reason(&app), "bad_password");
    assert_eq!(failures(&app), 1, "a wrong password counts");
}

#[tokio::test]
async fn an_empty_password_is_refused_before_the_directory_would_take_it_as_anonymous() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let app_key = directory_user(&app, &slapd).await;
    let (_, body) = authenticate(&app, &app_key, json!({"user": ALICE.0, "password": ""})).await;
    assert_eq!(body["result"], "rejected", "{body}");
    assert_eq!(last_reason(&app), "empty_password");
}

#[tokio::test]
async fn a_directory_that_is_down_rejects_without_counting_a_wrong_password() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let app_key = directory_user(&app, &slapd).await;
    drop(slapd);
    for _ in 0..3 {
        let (_, body) = authenticate(
            &app,
            &app_key,
            json!({"user": ALICE.0, "password": ALICE.1}),
        )
        .await;
        assert_eq!(body["result"], "rejected", "{body}");
        assert_eq!(last_reason(&app), "directory_unavailable");
    }
    assert_eq!(
        failures(&app),
        0,
        "the directory's trouble is no failed login"
    );
}

#[tokio::test]
async fn a_password_cannot_be_set_in_otpgate_for_a_directory_user() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let app_key = directory_user(&app, &slapd).await;
    let admin = app.api_key(&["--admin"]);
    let (status, body) = send(
        &app,
        Method::PUT,
        "/users/alice/password",
        &admin,
        Some(json!({"password": "a local password"})),
    )
    .await;
    assert_field(status, &body, "password");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("kept in the directory \"Example\""),
        "{body}"
    );
    let hash: Option<String> = database(&app)
        .query_row(
            "SELECT password_hash FROM users WHERE login = 'alice'",
            [],
            |row| row.get(0),
        )
        .expect("alice");
    assert_eq!(hash, None, "nothing was stored");
    // The panel refuses it in the same words.
    let csrf = app.logged_in_admin().await;
    let id: i64 = database(&app)
        .query_row("SELECT id FROM users WHERE login = 'alice'", [], |row| {
            row.get(0)
        })
        .expect("alice");
    let refused = app
        .post_form(
            &format!("/admin/users/{id}/password"),
            &[
                ("csrf", &csrf),
                ("action", "set"),
                ("password", "a local password"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.expect("body");
    assert!(
        page.contains("Kept in the directory &quot;Example&quot;: change it there"),
        "{page}"
    );
    let (_, body) = authenticate(
        &app,
        &app_key,
        json!({"user": ALICE.0, "password": "a local password"}),
    )
    .await;
    assert_eq!(body["result"], "rejected", "{body}");
    let (_, body) = authenticate(
        &app,
        &app_key,
        json!({"user": ALICE.0, "password": ALICE.1}),
    )
    .await;
    assert_eq!(body["result"], "challenge", "{body}");
}

#[tokio::test]
async fn a_person_whose_login_a_local_user_has_or_who_is_not_there_is_refused() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_directory(&app, &key, &slapd).await;
    crate::helpers::api::create_user(&app, &key, json!({"login": "Bob"})).await;
    let (status, refused) = send(
        &app,
        Method::POST,
        "/directories/Example/users",
        &key,
        Some(json!({"login": BOB.0})),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .expect("a message")
            .contains("exists already"),
        "{refused}"
    );
    // A filter's characters in a login match only themselves.
    for login in ["nobody", "*", "al*"] {
        let (status, refused) = send(
            &app,
            Method::POST,
            "/directories/Example/users",
            &key,
            Some(json!({ "login": login })),
        )
        .await;
        assert_eq!(status, 404, "{login}: {refused}");
    }
    let (status, refused) = send(&app, Method::DELETE, "/directories/Example", &key, None).await;
    assert_eq!(status, 204, "no user comes from it yet: {refused}");
}

#[tokio::test]
async fn a_directory_that_users_come_from_is_not_deleted() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    directory_user(&app, &slapd).await;
    let key = app.api_key(&["--admin"]);
    let (status, refused) = send(&app, Method::DELETE, "/directories/Example", &key, None).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "1 user comes from this directory; delete them first"
    );
}

#[tokio::test]
async fn the_portal_checks_a_directory_users_password_by_a_bind() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let portal =
        crate::helpers::portal::Portal::start(&["enroll_token", "set_password"], &["MAIL"]).await;
    let admin = portal.admin.clone();
    let (status, created) = portal
        .api
        .call(
            Method::POST,
            "/directories",
            &admin,
            settings(&[&slapd.url]),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, added) = portal
        .api
        .call(
            Method::POST,
            "/directories/Example/users",
            &admin,
            json!({"login": ALICE.0}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let (status, body) = portal
        .api
        .call(
            Method::POST,
            "/resources/vpn/users",
            &admin,
            json!({"user": ALICE.0}),
        )
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let response = portal.browser().log_in_with_password(ALICE.0, BOB.1).await;
    assert_ne!(
        crate::helpers::page::location(&response),
        "/portal/vpn",
        "another person's password is no password of hers"
    );
    let reason: Option<String> = database(&portal.app)
        .query_row(
            "SELECT reason FROM audit_log WHERE action = 'portal.login' ORDER BY id DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("the portal's audit line");
    assert_eq!(reason.as_deref(), Some("bad_password"));

    let browser = portal.browser();
    let response = browser.log_in_with_password(ALICE.0, ALICE.1).await;
    assert_eq!(
        crate::helpers::page::location(&response),
        "/portal/vpn",
        "the directory's password opens the portal"
    );

    // Set Password is allowed on this portal, but hers is kept in the directory.
    let refused = browser
        .submit(
            "/portal/vpn/account",
            "/portal/vpn/account/password",
            &[
                ("password", "alice's own passphrase"),
                ("again", "alice's own passphrase"),
            ],
        )
        .await;
    let page = refused.text().await.expect("body");
    assert!(
        page.contains("Your password is kept in the directory &quot;Example&quot;: change it there. Nothing was changed."),
        "{page}"
    );
    let hash: Option<String> = database(&portal.app)
        .query_row(
            "SELECT password_hash FROM users WHERE login = 'alice'",
            [],
            |row| row.get(0),
        )
        .expect("alice");
    assert_eq!(hash, None, "nothing was stored");
}

/// The value of a counter in `/metrics` (the line that starts with `series`), 0 when absent.
async fn counter(app: &TestApp, series: &str) -> u64 {
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

const LOOKUP_SEARCHES: &str =
    "otpgate_directory_searches_total{directory=\"Example\",purpose=\"lookup\"}";

fn user_link(app: &TestApp, login: &str) -> Option<(i64, Option<String>)> {
    database(app)
        .query_row(
            "SELECT directory_id, directory_uid FROM users WHERE login = ?1",
            [login],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .ok()
}

#[tokio::test]
async fn a_person_added_to_the_directory_after_it_was_created_is_a_user_at_their_first_login() {
    let Some(slapd) = Slapd::start_with(Fixture {
        people: 10,
        tls: false,
    })
    .await
    else {
        return;
    };
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    create_directory(&app, &fx.admin, &slapd).await;
    slapd.add_person("carol", "carol-directory-password").await;
    slapd.add_person("dave", "dave-directory-password").await;

    // A password and a code: carol is linked at once, by her entry's stable id. She is in no
    // resource yet, so this first login is refused as any user's outside the resource is.
    let (status, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "carol", "password": "carol-directory-password", "otp": "123456"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "rejected", "{body}");
    let (directory_id, uid) = user_link(&app, "carol").expect("carol is a user now");
    assert!(directory_id > 0 && uid.is_some());
    assert_eq!(last_reason(&app), "not_assigned");
    assert!(audit_actions(&app).contains(&"directory.lookup_user".to_string()));

    // A code alone links too.
    let (_, body) = authenticate(&app, &fx.app_key, json!({"user": "Dave", "otp": "123456"})).await;
    assert_eq!(body["result"], "rejected", "{body}");
    assert!(user_link(&app, "dave").is_some(), "dave is a user now");
    assert_eq!(last_reason(&app), "not_assigned");

    // Given a token in "vpn", carol logs in with her directory password: no sync was needed.
    let (status, token) = send(
        &app,
        Method::POST,
        "/tokens",
        &fx.admin,
        Some(json!({"kind": "TOTP", "secret": SEED_BASE32, "user": "carol", "resource": "vpn"})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    crate::helpers::otp::wait_for_fresh_step(5).await;
    let (_, body) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "carol", "password": "carol-directory-password", "otp": totp(0)}),
    )
    .await;
    assert_eq!(body["result"], "accepted", "{body}");
    assert_eq!(
        counter(&app, "otpgate_directory_lookups_total{result=\"linked\"}").await,
        2
    );
}

#[tokio::test]
async fn an_unknown_login_is_searched_once_within_the_lookup_cache_time() {
    let Some(slapd) = Slapd::start_with(Fixture {
        people: 10,
        tls: false,
    })
    .await
    else {
        return;
    };
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    // Before any directory exists, the answer to an unknown login.
    let (status, before) = authenticate(
        &app,
        &fx.app_key,
        json!({"user": "nobody", "password": "a guess", "otp": "123456"}),
    )
    .await;
    create_directory(&app, &fx.admin, &slapd).await;
    for body in [
        json!({"user": "nobody", "password": "a guess", "otp": "123456"}),
        json!({"user": "NOBODY", "otp": "123456"}),
        json!({"user": "nobody", "password": "a guess"}),
        json!({"user": "nobody", "otp": "654321"}),
    ] {
        let (again, answer) = authenticate(&app, &fx.app_key, body).await;
        assert_eq!(
            (again, &answer),
            (status, &before),
            "the same answer as before"
        );
        assert_eq!(last_reason(&app), "unknown_user");
    }
    assert_eq!(counter(&app, LOOKUP_SEARCHES).await, 1);
    assert_eq!(
        counter(
            &app,
            "otpgate_directory_lookups_total{result=\"remembered\"}"
        )
        .await,
        3
    );
    assert!(user_link(&app, "nobody").is_none());
    // Another unknown login is a search of its own.
    authenticate(
        &app,
        &fx.app_key,
        json!({"user": "somebody", "otp": "123456"}),
    )
    .await;
    assert_eq!(counter(&app, LOOKUP_SEARCHES).await, 2);
}

#[tokio::test]
async fn a_directory_that_is_down_keeps_the_unknown_user_answer_and_locks_no_token() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let app_key = directory_user(&app, &slapd).await;
    let (status, before) = authenticate(
        &app,
        &app_key,
        json!({"user": "nobody", "password": "a guess", "otp": "123456"}),
    )
    .await;
    assert_eq!(last_reason(&app), "unknown_user");
    drop(slapd);
    for body in [
        json!({"user": "someone", "password": "a guess", "otp": "123456"}),
        json!({"user": "someone else", "otp": "123456"}),
    ] {
        let (again, answer) = authenticate(&app, &app_key, body).await;
        assert_eq!(
            (again, &answer),
            (status, &before),
            "the same answer as before"
        );
        assert_eq!(last_reason(&app), "unknown_user");
    }
    assert!(
        counter(
            &app,
            "otpgate_directory_lookups_total{result=\"unavailable\"}"
        )
        .await
            >= 1
    );
    // Alice's password cannot be checked: her wrong codes, past the resource's limit of 5,
    // neither count nor lock her token.
    for _ in 0..7 {
        let (_, body) = authenticate(
            &app,
            &app_key,
            json!({"user": ALICE.0, "password": ALICE.1, "otp": "000000"}),
        )
        .await;
        assert_eq!(body["result"], "rejected", "{body}");
        assert_eq!(last_reason(&app), "directory_unavailable");
    }
    let (fail_count, locked): (i64, Option<i64>) = database(&app)
        .query_row(
            "SELECT fail_count, locked_at FROM tokens WHERE user_id = (SELECT id FROM users WHERE login = 'alice')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("alice's token");
    assert_eq!((fail_count, locked), (0, None));
    assert_eq!(failures(&app), 0);
}

#[tokio::test]
async fn searches_share_pooled_connections_and_passwords_are_checked_on_them() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let app_key = directory_user(&app, &slapd).await;
    for _ in 0..5 {
        let (_, body) = authenticate(
            &app,
            &app_key,
            json!({"user": ALICE.0, "password": ALICE.1}),
        )
        .await;
        assert_eq!(body["result"], "challenge", "{body}");
        let (_, body) =
            authenticate(&app, &app_key, json!({"user": ALICE.0, "password": BOB.1})).await;
        assert_eq!(body["result"], "rejected", "{body}");
        assert_eq!(last_reason(&app), "bad_password");
    }
    assert_eq!(
        counter(
            &app,
            "otpgate_directory_searches_total{directory=\"Example\",purpose=\"password\"}"
        )
        .await,
        10
    );
    assert_eq!(
        counter(
            &app,
            "otpgate_directory_connections_total{directory=\"Example\",lane=\"search\"}"
        )
        .await,
        1,
        "one service connection served every search"
    );
    assert_eq!(
        counter(
            &app,
            "otpgate_directory_connections_total{directory=\"Example\",lane=\"bind\"}"
        )
        .await,
        1,
        "one connection served every bind, right or wrong"
    );
}

#[tokio::test]
async fn the_portals_login_links_a_person_of_the_directory_otpgate_does_not_know_yet() {
    let Some(slapd) = Slapd::start_with(Fixture {
        people: 10,
        tls: false,
    })
    .await
    else {
        return;
    };
    let portal = crate::helpers::portal::Portal::start(&["enroll_token"], &["MAIL"]).await;
    let admin = portal.admin.clone();
    let (status, created) = portal
        .api
        .call(
            Method::POST,
            "/directories",
            &admin,
            settings(&[&slapd.url]),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let response = portal.browser().log_in_with_password(BOB.0, BOB.1).await;
    assert_ne!(
        crate::helpers::page::location(&response),
        "/portal/vpn",
        "bob is in no resource yet"
    );
    assert!(user_link(&portal.app, BOB.0).is_some(), "bob is a user now");
    let (status, body) = portal
        .api
        .call(
            Method::POST,
            "/resources/vpn/users",
            &admin,
            json!({"user": BOB.0}),
        )
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let response = portal.browser().log_in_with_password(BOB.0, BOB.1).await;
    assert_eq!(
        crate::helpers::page::location(&response),
        "/portal/vpn",
        "the directory's password opens the portal"
    );
}

#[tokio::test]
async fn a_password_is_checked_at_the_next_address_when_the_first_does_not_answer() {
    let Some(slapd) = Slapd::start_with(Fixture {
        people: 10,
        tls: false,
    })
    .await
    else {
        return;
    };
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    let down = Slapd::unreachable_url();
    let (status, created) = send(
        &app,
        Method::POST,
        "/directories",
        &fx.admin,
        Some(settings(&[&down, &slapd.url])),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, token) = send(
        &app,
        Method::POST,
        "/directories/Example/users",
        &fx.admin,
        Some(json!({"login": ALICE.0})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let (status, token) = send(
        &app,
        Method::POST,
        "/tokens",
        &fx.admin,
        Some(json!({"kind": "TOTP", "secret": SEED_BASE32, "user": ALICE.0, "resource": "vpn"})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    for _ in 0..3 {
        let (_, body) = authenticate(
            &app,
            &fx.app_key,
            json!({"user": ALICE.0, "password": ALICE.1}),
        )
        .await;
        assert_eq!(body["result"], "challenge", "{body}");
    }
    // A person unknown to otpgate is found there too.
    slapd.add_person("erin", "erin-directory-password").await;
    authenticate(
        &app,
        &fx.app_key,
        json!({"user": "erin", "password": "erin-directory-password"}),
    )
    .await;
    assert!(user_link(&app, "erin").is_some(), "erin is a user now");
}
