//! The panel's Directories (under Settings) over HTTPS with its forms and CSRF token, against a
//! real OpenLDAP slapd started by each test: a directory from a preset, its password kept on
//! edit and never shown, the API's refusals in the API's words, Test connection and Preview on
//! values not saved, a directory that is down said in plain words, a person added, and a
//! directory users come from kept.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{count, send};
use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::otp::totp_now;
use crate::helpers::page::{hidden_value, location};
use crate::helpers::panel::{ADMIN, PASSWORD, audit_actors, follow};
use crate::helpers::slapd::{ALICE, Fixture, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, Slapd};

const LIST: &str = "/admin/settings/directories";

/// A small directory: thirty people besides alice and bob.
async fn small_slapd() -> Option<Slapd> {
    Slapd::start_with(Fixture {
        people: 30,
        tls: false,
    })
    .await
}

/// The form of a FreeIPA/OpenLDAP directory "Example" at `url`, as the preset fills it and an
/// administrator completes it, with `changes` laid over it.
fn form(csrf: &str, url: &str, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = [
        ("csrf", csrf),
        ("action", "save"),
        ("name", "Example"),
        ("kind", "openldap"),
        ("urls", url),
        ("tls", "none"),
        ("ca_pem", ""),
        ("bind_dn", SERVICE_DN),
        ("bind_password", SERVICE_PASSWORD),
        ("base_dn", PEOPLE_DN),
        ("user_filter", "(objectClass=inetOrgPerson)"),
        ("login_attributes", "uid"),
        ("id_attribute", "entryUUID"),
        ("first_name_attribute", "givenName"),
        ("last_name_attribute", "sn"),
        ("email_attribute", "mail"),
        ("mobile_attribute", "mobile"),
        ("user_group", ""),
        ("connect_timeout_seconds", "5"),
        ("search_timeout_seconds", "30"),
        ("sync_interval_minutes", "15"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    for &(name, value) in changes {
        form.retain(|(field, _)| field != name);
        form.push((name.to_string(), value.to_string()));
    }
    form
}

async fn post(app: &TestApp, path: &str, form: &[(String, String)]) -> reqwest::Response {
    let pairs: Vec<(&str, &str)> = form
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    app.post_form(path, &pairs).await
}

async fn text(response: reqwest::Response) -> String {
    response.text().await.expect("body")
}

/// The directory "Example" at `url`, made through the API; its id.
async fn api_directory(app: &TestApp, key: &str, name: &str, url: &str) -> i64 {
    let (status, created) = send(
        app,
        Method::POST,
        "/directories",
        key,
        Some(
            json!({"name": name, "kind": "openldap", "urls": [url], "tls": "none",
                    "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD,
                    "base_dn": PEOPLE_DN}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().expect("id")
}

fn directories(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM directories")
}

#[tokio::test]
async fn a_directory_from_a_preset_keeps_its_password_when_edited_and_is_refused_in_the_api_s_words()
 {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);

    let chooser = text(app.get(&format!("{LIST}/new")).await).await;
    assert!(chooser.contains("Active Directory") && chooser.contains("FreeIPA / OpenLDAP"));
    let ad = text(app.get(&format!("{LIST}/new?kind=active_directory")).await).await;
    assert!(
        ad.contains("value=\"sAMAccountName, userPrincipalName\"")
            && ad.contains("value=\"objectGUID\""),
        "the Active Directory preset fills the login and stable id attributes"
    );
    let openldap = text(app.get(&format!("{LIST}/new?kind=openldap")).await).await;
    assert!(openldap.contains("value=\"uid\"") && openldap.contains("value=\"entryUUID\""));

    // A field the rule refuses: named under its field in the API's words, nothing saved.
    let (status, api) = send(
        &app,
        Method::POST,
        "/directories",
        &key,
        Some(
            json!({"name": "Example", "kind": "openldap", "urls": ["http://127.0.0.1"],
                    "tls": "none", "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD,
                    "base_dn": PEOPLE_DN}),
        ),
    )
    .await;
    assert_eq!(
        (status.as_u16(), api["error"]["field"].as_str()),
        (400, Some("urls"))
    );
    let words = api["error"]["message"].as_str().expect("the API's words");
    let refused = post(
        &app,
        &format!("{LIST}/new"),
        &form(&csrf, "http://127.0.0.1", &[]),
    )
    .await;
    assert_eq!(refused.status(), 400);
    let page = text(refused).await;
    let shown: String = words.replace('"', "&quot;").chars().skip(1).collect();
    assert!(
        page.contains(&shown) && page.contains("Nothing was saved"),
        "{words:?} on the page:\n{page}"
    );
    assert!(
        !page.contains(SERVICE_PASSWORD),
        "the password is not sent back"
    );
    assert_eq!(directories(&app), 0);

    let created = post(&app, &format!("{LIST}/new"), &form(&csrf, &slapd.url, &[])).await;
    assert_eq!(created.status(), 303);
    let at = location(&created);
    assert!(at.starts_with(&format!("{LIST}/")), "{at}");
    let page = follow(&app, created).await;
    assert!(page.contains("Directory “Example” created."), "{page}");
    assert!(!page.contains(SERVICE_PASSWORD));
    assert_eq!(audit_actors(&app, "directory.create"), ["admin:admin"]);

    // Saved again with another name and the password left empty: the saved one still binds.
    let changed = post(
        &app,
        &at,
        &form(
            &csrf,
            &slapd.url,
            &[("name", "People"), ("bind_password", "")],
        ),
    )
    .await;
    assert_eq!(changed.status(), 303);
    assert!(
        follow(&app, changed)
            .await
            .contains("Directory “People” saved.")
    );
    let tested = text(
        post(
            &app,
            &at,
            &form(
                &csrf,
                &slapd.url,
                &[
                    ("name", "People"),
                    ("bind_password", ""),
                    ("action", "test"),
                ],
            ),
        )
        .await,
    )
    .await;
    assert!(
        tested.contains(&format!(
            "Bound as the service account at {} and read the base DN.",
            slapd.url
        )),
        "{tested}"
    );
    let unchanged = post(
        &app,
        &at,
        &form(
            &csrf,
            &slapd.url,
            &[("name", "People"), ("bind_password", "")],
        ),
    )
    .await;
    assert!(follow(&app, unchanged).await.contains("Nothing changed."));
    assert_eq!(audit_actors(&app, "directory.update"), ["admin:admin"]);

    let (_, listed) = send(&app, Method::GET, "/directories", &key, None).await;
    assert_eq!(listed["items"][0]["name"], "People");
    let list = text(app.get(LIST).await).await;
    assert!(
        list.contains("People") && list.contains("FreeIPA / OpenLDAP") && list.contains(&slapd.url),
        "{list}"
    );
}

#[tokio::test]
async fn test_connection_and_preview_try_the_form_as_typed_and_a_directory_that_is_down_is_said_plainly()
 {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    let secret = app.create_first_admin(ADMIN, PASSWORD).await;
    let csrf = hidden_value(&text(app.get(LIST).await).await, "csrf");
    let new = format!("{LIST}/new");

    let tested = post(&app, &new, &form(&csrf, &slapd.url, &[("action", "test")])).await;
    assert_eq!(tested.status(), 200);
    let page = text(tested).await;
    assert!(page.contains("Bound as the service account at"), "{page}");
    assert!(!page.contains(SERVICE_PASSWORD), "never sent back in clear");
    let kept = hidden_value(&page, "bind_password_kept");

    // The password typed for the test is kept, sealed, for the preview.
    let previewed = post(
        &app,
        &new,
        &form(
            &csrf,
            &slapd.url,
            &[
                ("action", "preview"),
                ("bind_password", ""),
                ("bind_password_kept", &kept),
            ],
        ),
    )
    .await;
    assert_eq!(previewed.status(), 200);
    let page = text(previewed).await;
    let total = slapd.fixture.total_people();
    assert!(page.contains(&format!("{total} people found.")), "{page}");
    assert!(page.contains(&format!("<td>{}</td>", ALICE.0)), "{page}");
    // Another session (the same administrator, logged in again) cannot open it.
    let mut app = app;
    app.forget_cookies();
    let logged_in = app.login(ADMIN, PASSWORD, &totp_now(&secret, 1)).await;
    assert_eq!(logged_in.status(), 303);
    let other_csrf = hidden_value(&text(app.get(LIST).await).await, "csrf");
    assert_ne!(other_csrf, csrf);
    let elsewhere = post(
        &app,
        &new,
        &form(
            &other_csrf,
            &slapd.url,
            &[
                ("action", "preview"),
                ("bind_password", ""),
                ("bind_password_kept", &kept),
            ],
        ),
    )
    .await;
    assert_eq!(elsewhere.status(), 400);
    assert!(
        text(elsewhere)
            .await
            .contains("Is required: the service account's password"),
        "a kept password opens only in the session that kept it"
    );
    let csrf = other_csrf;

    let wrong = text(
        post(
            &app,
            &new,
            &form(
                &csrf,
                &slapd.url,
                &[("action", "test"), ("bind_password", "not the password")],
            ),
        )
        .await,
    )
    .await;
    assert!(wrong.contains("password was refused"), "{wrong}");

    let down = Slapd::unreachable_url();
    for action in ["test", "preview"] {
        let answer = post(&app, &new, &form(&csrf, &down, &[("action", action)])).await;
        assert_eq!(answer.status(), 200, "{action}: an answer, not an error");
        let page = text(answer).await;
        assert!(
            page.contains("No directory server answered") && page.contains("connection refused"),
            "{action}: {page}"
        );
    }
    assert_eq!(directories(&app), 0, "nothing saved by trying");
    assert_eq!(
        audit_actors(&app, "directory.test").len(),
        3,
        "each test audited"
    );
    assert_eq!(audit_actors(&app, "directory.preview").len(), 2);
}

#[tokio::test]
async fn a_person_is_added_from_the_directory_which_then_cannot_be_deleted() {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    let id = api_directory(&app, &key, "Example", &slapd.url).await;
    let base = format!("{LIST}/{id}");

    let nobody = post(
        &app,
        &format!("{base}/users"),
        &[
            ("csrf".into(), csrf.clone()),
            ("login".into(), "nobody".into()),
        ],
    )
    .await;
    assert_eq!(nobody.status(), 400);
    assert!(
        text(nobody)
            .await
            .contains("No such person in the directory")
    );

    let added = post(
        &app,
        &format!("{base}/users"),
        &[
            ("csrf".into(), csrf.clone()),
            ("login".into(), ALICE.0.into()),
        ],
    )
    .await;
    assert_eq!(added.status(), 303);
    assert!(location(&added).starts_with("/admin/users/"));
    let page = follow(&app, added).await;
    assert!(
        page.contains("“alice” added from the directory “Example”"),
        "{page}"
    );
    let (_, user) = send(&app, Method::GET, "/users/alice", &key, None).await;
    assert_eq!(user["login"], Value::from(ALICE.0));
    assert_eq!(audit_actors(&app, "directory.add_user"), ["admin:admin"]);
    assert!(text(app.get(LIST).await).await.contains("<td>1</td>"));

    let refused = post(
        &app,
        &format!("{base}/delete"),
        &[("csrf".into(), csrf.clone())],
    )
    .await;
    assert_eq!(refused.status(), 409);
    let (_, api) = send(
        &app,
        Method::DELETE,
        &format!("/directories/{id}"),
        &key,
        None,
    )
    .await;
    let words = api["error"]["message"].as_str().expect("the API's words");
    assert_eq!(words, "1 user comes from this directory; delete them first");
    assert!(text(refused).await.contains(&format!("{words}.")));
    assert_eq!(directories(&app), 1);

    // A directory that is down: its page still answers, in plain words.
    let url = slapd.url.clone();
    drop(slapd);
    let down = post(
        &app,
        &base,
        &form(&csrf, &url, &[("action", "preview"), ("bind_password", "")]),
    )
    .await;
    assert_eq!(down.status(), 200);
    let page = text(down).await;
    assert!(page.contains("No directory server answered"), "{page}");

    let other = api_directory(&app, &key, "Other", "ldap://127.0.0.1:1").await;
    let deleted = post(
        &app,
        &format!("{LIST}/{other}/delete"),
        &[("csrf".into(), csrf.clone())],
    )
    .await;
    assert_eq!(deleted.status(), 303);
    assert!(
        follow(&app, deleted)
            .await
            .contains("Directory “Other” deleted.")
    );
    assert_eq!(directories(&app), 1);
}

#[tokio::test]
async fn sync_now_and_group_mappings_are_on_a_directorys_page() {
    let Some(slapd) = small_slapd().await else {
        return;
    };
    let app = spawn_app().await;
    let csrf = app.logged_in_admin().await;
    let key = app.api_key(&["--admin"]);
    crate::helpers::api::create_resource(&app, &key, "wiki").await;
    let id = api_directory(&app, &key, "Example", &slapd.url).await;
    let base = format!("{LIST}/{id}");
    assert!(text(app.get(&base).await).await.contains("Not synced yet."));

    // A group that is neither a DN nor a filter is refused under its field, as the API says.
    let bad = post(
        &app,
        &format!("{base}/groups"),
        &[
            ("csrf".into(), csrf.clone()),
            ("group".into(), "(uid=alice".into()),
            ("resource".into(), "wiki".into()),
        ],
    )
    .await;
    assert_eq!(bad.status(), 400);
    let page = text(bad).await;
    assert!(
        page.contains("value=\"(uid=alice\""),
        "the typed group is kept"
    );
    let (_, mappings) = send(&app, Method::GET, "/directories/Example/groups", &key, None).await;
    assert_eq!(
        mappings["items"].as_array().map(Vec::len),
        Some(0),
        "{mappings}"
    );

    let added = post(
        &app,
        &format!("{base}/groups"),
        &[
            ("csrf".into(), csrf.clone()),
            ("group".into(), format!("({}={})", "uid", ALICE.0)),
            ("resource".into(), "wiki".into()),
        ],
    )
    .await;
    assert_eq!(added.status(), 303);
    assert!(follow(&app, added).await.contains("mapped to “wiki”"));

    let synced = post(
        &app,
        &format!("{base}/sync"),
        &[("csrf".into(), csrf.clone())],
    )
    .await;
    assert_eq!(synced.status(), 303);
    let page = follow(&app, synced).await;
    assert!(
        page.contains("Synced: 32 people read; 32 created"),
        "{page}"
    );
    assert!(page.contains("1 assigned"), "{page}");
    assert_eq!(audit_actors(&app, "directory.sync"), ["admin:admin"]);
    let (_, alice) = send(&app, Method::GET, "/users/alice", &key, None).await;
    assert_eq!(alice["login"], Value::from(ALICE.0));

    let (_, mappings) = send(&app, Method::GET, "/directories/Example/groups", &key, None).await;
    let mapping = mappings["items"][0]["id"]
        .as_i64()
        .expect("the mapping's id");
    let removed = post(
        &app,
        &format!("{base}/groups/{mapping}/delete"),
        &[("csrf".into(), csrf.clone())],
    )
    .await;
    assert_eq!(removed.status(), 303);
    let page = follow(&app, removed).await;
    assert!(
        page.contains("1 assignment it made was taken away"),
        "{page}"
    );
    assert!(page.contains("No group is mapped to a resource."), "{page}");

    // A filter that finds no one: Sync now stops and says why; with the box ticked it goes on.
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/directories/Example",
        &key,
        Some(json!({"user_group": "(uid=nobody)"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let stopped = post(
        &app,
        &format!("{base}/sync"),
        &[("csrf".into(), csrf.clone())],
    )
    .await;
    let page = follow(&app, stopped).await;
    assert!(
        page.contains("would disable 32 of the 32 enabled users"),
        "{page}"
    );
    assert!(page.contains(r#"name="allow_mass_disable""#), "{page}");
    let (_, alice) = send(&app, Method::GET, "/users/alice", &key, None).await;
    assert_eq!(alice["enabled"], true, "{alice}");
    let allowed = post(
        &app,
        &format!("{base}/sync"),
        &[
            ("csrf".into(), csrf.clone()),
            ("allow_mass_disable".into(), "on".into()),
        ],
    )
    .await;
    let page = follow(&app, allowed).await;
    assert!(page.contains("32 disabled"), "{page}");
    let (_, alice) = send(&app, Method::GET, "/users/alice", &key, None).await;
    assert_eq!(alice["enabled"], false, "{alice}");
    app.stop().await;
}
