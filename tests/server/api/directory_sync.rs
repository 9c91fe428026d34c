//! The sync of a directory against a real OpenLDAP slapd started by each test, changed between
//! syncs with `ldapmodify`: people become users through every page of the search, follow
//! their entries (names, email, renames by stable id), are disabled when they leave and
//! enabled when they come back; a local user's login is a named conflict; group → resource
//! mappings assign and take away only what they assigned; the last result is shown with the
//! directory and in `/metrics`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{assert_field, count, create_resource, create_user, database, send};
use crate::helpers::app::{TestApp, spawn_app, spawn_with, test_config};
use crate::helpers::slapd::{
    ALICE, BOB, Fixture, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, SIZE_LIMIT, Slapd,
};
use otpgate::store::DATABASE_FILE;

/// A directory of the test slapd, with a daily interval so that the scheduler stays out of
/// the test's way.
async fn create_directory(app: &TestApp, key: &str, url: &str, group: Option<&str>) {
    let mut settings = json!({
        "name": "Example",
        "kind": "openldap",
        "urls": [url],
        "tls": "none",
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "base_dn": PEOPLE_DN,
        "sync_interval_minutes": 1440,
    });
    if let Some(group) = group {
        settings["user_group"] = json!(group);
    }
    let (status, created) = send(app, Method::POST, "/directories", key, Some(settings)).await;
    assert_eq!(status, 201, "{created}");
}

async fn sync_now(app: &TestApp, key: &str) -> Value {
    let (status, report) = send(app, Method::POST, "/directories/Example/sync", key, None).await;
    assert_eq!(status, 200, "{report}");
    report
}

/// The counts of a sync's answer, in a fixed order: created, updated, disabled, enabled,
/// conflicts, skipped.
fn counts(report: &Value) -> [i64; 6] {
    [
        "created",
        "updated",
        "disabled",
        "enabled",
        "conflicts",
        "skipped",
    ]
    .map(|name| {
        report[name]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: {report}"))
    })
}

/// A user's login, first name, email and whether they are enabled, by id.
fn user_row(app: &TestApp, id: i64) -> (String, String, Option<String>, bool) {
    database(app)
        .query_row(
            "SELECT login, first_name, email, enabled FROM users WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .expect("the user")
}

fn user_id(app: &TestApp, login: &str) -> i64 {
    database(app)
        .query_row("SELECT id FROM users WHERE login = ?1", [login], |row| {
            row.get(0)
        })
        .unwrap_or_else(|_| panic!("a user {login}"))
}

/// The audit lines of `action`, their details in order.
fn audit_details(app: &TestApp, action: &str) -> Vec<String> {
    let conn = database(app);
    let mut statement = conn
        .prepare("SELECT coalesce(detail, '') FROM audit_log WHERE action = ?1 ORDER BY id")
        .expect("prepare");
    statement
        .query_map([action], |row| row.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows")
}

fn small() -> Fixture {
    Fixture {
        people: 30,
        tls: false,
    }
}

fn person_dn(uid: &str) -> String {
    format!("uid={uid},{PEOPLE_DN}")
}

#[tokio::test]
async fn sync_now_creates_every_person_through_every_page_and_a_second_sync_changes_nothing() {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_directory(&app, &key, &slapd.url, None).await;
    let total = slapd.fixture.total_people() as i64;
    assert!(total as usize > 2 * SIZE_LIMIT);

    let report = sync_now(&app, &key).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["people"], total, "{report}");
    assert_eq!(counts(&report), [total, 0, 0, 0, 0, 0], "{report}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE directory_id IS NOT NULL AND directory_uid IS NOT NULL
               AND password_hash IS NULL AND enabled = 1"
        ),
        total
    );
    let alice = user_id(&app, ALICE.0);
    assert_eq!(
        user_row(&app, alice),
        (
            "alice".into(),
            "Alice".into(),
            Some("alice@example.org".into()),
            true
        )
    );
    assert_eq!(
        audit_details(&app, "directory.sync.create").len() as i64,
        total
    );

    let again = sync_now(&app, &key).await;
    assert_eq!(counts(&again), [0, 0, 0, 0, 0, 0], "{again}");
    assert_eq!(count(&app, "SELECT count(*) FROM users"), total);

    let (status, shown) = send(&app, Method::GET, "/directories/Example", &key, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["last_sync"]["ok"], true, "{shown}");
    assert_eq!(shown["last_sync"]["people"], total, "{shown}");
    assert!(
        shown["last_sync"]["last_success_at"].as_i64().is_some(),
        "{shown}"
    );
    let (_, listed) = send(&app, Method::GET, "/directories", &key, None).await;
    assert_eq!(listed["items"][0]["last_sync"]["people"], total, "{listed}");

    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains(
            "otpgate_directory_sync_last_success_timestamp_seconds{directory=\"Example\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "otpgate_directory_sync_users{{directory=\"Example\",state=\"enabled\"}} {total}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("otpgate_directory_sync_ok{directory=\"Example\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn names_and_emails_follow_the_directory_and_a_rename_keeps_the_user() {
    let Some(slapd) = Slapd::start_with(small()).await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_directory(&app, &key, &slapd.url, None).await;
    sync_now(&app, &key).await;
    let (alice, bob) = (user_id(&app, ALICE.0), user_id(&app, BOB.0));
    let users = count(&app, "SELECT count(*) FROM users");

    slapd
        .modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: givenName\ngivenName: Alicia\n-\n\
             replace: mail\nmail: alicia@example.org\n\n\
             dn: {}\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n",
            person_dn(ALICE.0),
            person_dn(BOB.0)
        ))
        .await;
    let report = sync_now(&app, &key).await;
    assert_eq!(counts(&report), [0, 2, 0, 0, 0, 0], "{report}");
    assert_eq!(
        user_row(&app, alice),
        (
            "alice".into(),
            "Alicia".into(),
            Some("alicia@example.org".into()),
            true
        )
    );
    assert_eq!(user_row(&app, bob).0, "robert");
    assert_eq!(count(&app, "SELECT count(*) FROM users"), users);
    let updates = audit_details(&app, "directory.sync.update");
    assert!(
        updates
            .iter()
            .any(|detail| detail.starts_with("bob renamed to robert")),
        "{updates:?}"
    );

    // The renamed user keeps their password in the directory under the new name.
    let (status, checked) = send(
        &app,
        Method::POST,
        "/directories/Example/users",
        &key,
        Some(json!({"login": "robert"})),
    )
    .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["user_id"], bob);
}

#[tokio::test]
async fn people_who_leave_are_disabled_and_audited_and_come_back_enabled() {
    let Some(slapd) = Slapd::start_with(small()).await else {
        return;
    };
    let staff = |uid: &str| {
        format!(
            "dn: {}\nchangetype: modify\nadd: employeeType\nemployeeType: staff\n\n",
            person_dn(uid)
        )
    };
    let first = Fixture::person(1);
    slapd
        .modify(&format!(
            "{}{}{}",
            staff(ALICE.0),
            staff(BOB.0),
            staff(&first)
        ))
        .await;
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_directory(&app, &key, &slapd.url, Some("(employeeType=staff)")).await;
    let report = sync_now(&app, &key).await;
    assert_eq!(counts(&report), [3, 0, 0, 0, 0, 0], "{report}");
    let (alice, bob, gone) = (
        user_id(&app, ALICE.0),
        user_id(&app, BOB.0),
        user_id(&app, &first),
    );

    // Bob leaves the group, the first generated person leaves the directory.
    slapd
        .modify(&format!(
            "dn: {}\nchangetype: modify\ndelete: employeeType\n\ndn: {}\nchangetype: delete\n",
            person_dn(BOB.0),
            person_dn(&first)
        ))
        .await;
    let report = sync_now(&app, &key).await;
    assert_eq!(counts(&report), [0, 0, 2, 0, 0, 0], "{report}");
    assert!(!user_row(&app, bob).3);
    assert!(!user_row(&app, gone).3);
    assert!(user_row(&app, alice).3);
    assert_eq!(
        count(&app, "SELECT count(*) FROM users"),
        3,
        "disabled, not deleted"
    );
    let disabled = audit_details(&app, "directory.sync.disable");
    assert_eq!(disabled.len(), 2, "{disabled:?}");
    assert!(
        disabled.iter().any(|detail| detail.starts_with("bob:")),
        "{disabled:?}"
    );

    // An administrator disables alice: the sync does not enable her again.
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/users/alice",
        &key,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    slapd.modify(&staff(BOB.0)).await;
    let report = sync_now(&app, &key).await;
    assert_eq!(counts(&report), [0, 0, 0, 1, 0, 0], "{report}");
    assert!(user_row(&app, bob).3, "back in the group, enabled again");
    assert!(!user_row(&app, alice).3, "disabled by hand, stays so");
    assert!(!user_row(&app, gone).3);
    assert_eq!(audit_details(&app, "directory.sync.enable").len(), 1);
}

#[tokio::test]
async fn a_sync_that_would_disable_everyone_changes_nothing_until_it_is_allowed() {
    let Some(slapd) = Slapd::start_with(small()).await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_directory(&app, &key, &slapd.url, None).await;
    let report = sync_now(&app, &key).await;
    let people = report["created"].as_i64().expect("created");
    assert!(people > 10, "{report}");

    // A group typed wrong: the sync finds no one, and disables no one.
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/directories/Example",
        &key,
        Some(json!({"user_group": "(employeeType=nobody)"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report = sync_now(&app, &key).await;
    assert_eq!(report["ok"], false, "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "would disable {people} of the {people} enabled users"
        )) && error.contains("found no one"),
        "{report}"
    );
    let disabled = "SELECT count(*) FROM users WHERE enabled = 0";
    assert_eq!(count(&app, disabled), 0);
    assert!(audit_details(&app, "directory.sync.disable").is_empty());
    let (status, body) = send(
        &app,
        Method::POST,
        "/directories/Example/sync?allow=1",
        &key,
        None,
    )
    .await;
    assert_field(status, &body, "allow");

    // Allowed by an administrator who checked: everyone who left is disabled.
    let (status, report) = send(
        &app,
        Method::POST,
        "/directories/Example/sync?allow_mass_disable=true",
        &key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["disabled"], people, "{report}");
    assert_eq!(count(&app, disabled), people);
}

#[tokio::test]
async fn a_login_a_local_user_has_is_not_linked_and_the_conflict_is_named() {
    let Some(slapd) = Slapd::start_with(small()).await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    let local = create_user(&app, &key, json!({"login": "BOB", "first_name": "Local"})).await;
    create_directory(&app, &key, &slapd.url, None).await;
    let report = sync_now(&app, &key).await;
    let total = slapd.fixture.total_people() as i64;
    assert_eq!(counts(&report), [total - 1, 0, 0, 0, 1, 0], "{report}");
    let named = report["conflict_details"][0].as_str().expect("named");
    assert!(
        named.contains("\"bob\"") && named.contains("uid=bob"),
        "{named}"
    );
    let (login, first_name, _, _) = user_row(&app, local["id"].as_i64().expect("an id"));
    assert_eq!((login.as_str(), first_name.as_str()), ("BOB", "Local"));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE login = 'BOB' AND directory_id IS NULL"
        ),
        1
    );
    let audited = audit_details(&app, "directory.sync.conflict");
    assert_eq!(audited, [named.to_string()]);
    let summary = audit_details(&app, "directory.sync");
    assert!(summary[0].contains("1 conflicts"), "{summary:?}");
}

fn assigned_to(app: &TestApp, resource: &str) -> Vec<String> {
    let conn = database(app);
    let mut statement = conn
        .prepare(
            "SELECT u.login FROM user_resources ur JOIN users u ON u.id = ur.user_id
             JOIN resources r ON r.id = ur.resource_id WHERE r.name = ?1 ORDER BY u.login",
        )
        .expect("prepare");
    statement
        .query_map([resource], |row| row.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows")
}

#[tokio::test]
async fn a_group_mapping_assigns_its_members_and_takes_away_only_what_it_assigned() {
    let Some(slapd) = Slapd::start_with(small()).await else {
        return;
    };
    let wiki = |uid: &str, change: &str| {
        format!(
            "dn: {}\nchangetype: modify\n{change}: employeeType\nemployeeType: wiki\n\n",
            person_dn(uid)
        )
    };
    let (first, second, third) = (Fixture::person(1), Fixture::person(2), Fixture::person(3));
    slapd
        .modify(&format!(
            "{}{}{}",
            wiki(ALICE.0, "add"),
            wiki(BOB.0, "add"),
            wiki(&first, "add")
        ))
        .await;
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "wiki").await;
    create_directory(&app, &key, &slapd.url, None).await;

    let path = "/directories/Example/groups";
    let mapping = json!({"group": "(employeeType=wiki)", "resource": "wiki"});
    let (status, added) = send(&app, Method::POST, path, &key, Some(mapping.clone())).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["resource_name"], "wiki");
    let (status, twice) = send(&app, Method::POST, path, &key, Some(mapping)).await;
    assert_eq!(status, 409, "{twice}");
    let (status, body) = send(
        &app,
        Method::POST,
        path,
        &key,
        Some(json!({"group": "(employeeType=wiki", "resource": "wiki"})),
    )
    .await;
    assert_field(status, &body, "group");
    let (status, body) = send(
        &app,
        Method::POST,
        path,
        &key,
        Some(json!({"group": "(employeeType=wiki)", "resource": "nowhere"})),
    )
    .await;
    assert_field(status, &body, "resource");

    let report = sync_now(&app, &key).await;
    assert_eq!(report["assigned"], 3, "{report}");
    assert_eq!(assigned_to(&app, "wiki"), ["alice", "bob", first.as_str()]);

    // By hand: the second person (not in the group) and the third, who joins it afterwards.
    for login in [&second, &third] {
        let (status, body) = send(
            &app,
            Method::POST,
            "/resources/wiki/users",
            &key,
            Some(json!({"user": login})),
        )
        .await;
        assert_eq!(status, 204, "{body}");
    }
    slapd
        .modify(&format!("{}{}", wiki(BOB.0, "delete"), wiki(&third, "add")))
        .await;
    let report = sync_now(&app, &key).await;
    assert_eq!(
        (report["assigned"].as_i64(), report["unassigned"].as_i64()),
        (Some(0), Some(1)),
        "{report}"
    );
    assert_eq!(
        assigned_to(&app, "wiki"),
        ["alice", first.as_str(), second.as_str(), third.as_str()]
    );
    let unassigned = audit_details(&app, "directory.sync.unassign");
    assert_eq!(unassigned, ["bob -/> wiki"]);

    // The third leaves the group again: assigned by hand, so still assigned.
    slapd.modify(&wiki(&third, "delete")).await;
    let report = sync_now(&app, &key).await;
    assert_eq!(report["unassigned"], 0, "{report}");
    assert!(assigned_to(&app, "wiki").contains(&third));

    let (status, listed) = send(&app, Method::GET, path, &key, None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["items"][0]["assigned"], 2, "{listed}");
    let id = listed["items"][0]["id"].as_i64().expect("an id");
    let (status, body) = send(&app, Method::DELETE, &format!("{path}/{id}"), &key, None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        assigned_to(&app, "wiki"),
        [second.as_str(), third.as_str()],
        "what the mapping made goes with it; what was made by hand stays"
    );
    let (status, body) = send(&app, Method::DELETE, &format!("{path}/{id}"), &key, None).await;
    assert_eq!(status, 404, "{body}");
    let actions: Vec<String> = crate::helpers::api::audit_actions(&app)
        .into_iter()
        .filter(|action| action.starts_with("directory.group"))
        .collect();
    assert_eq!(actions, ["directory.group_add", "directory.group_remove"]);
}

#[tokio::test]
async fn a_directory_that_is_down_fails_its_sync_changes_nothing_and_says_why_on_the_dashboard() {
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_directory(&app, &key, &Slapd::unreachable_url(), None).await;
    let report = sync_now(&app, &key).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["error"]
            .as_str()
            .expect("an error")
            .starts_with("no directory server answered"),
        "{report}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM users"), 0);
    let (_, shown) = send(&app, Method::GET, "/directories/Example", &key, None).await;
    assert_eq!(shown["last_sync"]["ok"], false, "{shown}");
    assert_eq!(
        shown["last_sync"]["last_success_at"],
        Value::Null,
        "{shown}"
    );
    let metrics = app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains("otpgate_directory_sync_ok{directory=\"Example\"} 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("otpgate_directory_sync_last_success_timestamp_seconds{"),
        "{metrics}"
    );
    let (status, body) = send(&app, Method::POST, "/directories/Nowhere/sync", &key, None).await;
    assert_eq!(status, 404, "{body}");

    app.logged_in_admin().await;
    let dashboard = app.get("/admin").await.text().await.expect("body");
    assert!(
        dashboard.contains("id=\"directories-heading\""),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("Failed: no directory server answered"),
        "{dashboard}"
    );
}

#[tokio::test]
async fn a_second_sync_now_while_one_runs_is_refused_with_a_clear_message() {
    // A server that takes the connection and never answers: the first sync waits on its bind
    // (until the connect timeout) while the second is asked for.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let url = format!("ldap://{}", silent.local_addr().expect("an address"));
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_directory(&app, &key, &url, None).await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/directories/Example",
        &key,
        Some(json!({"connect_timeout_seconds": 2})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let request = app.api(Method::POST, "/directories/Example/sync", &key);
    let first = tokio::spawn(async move { request.send().await.expect("answered") });
    let (_connection, _) = silent.accept().await.expect("the first sync connects");
    let (status, body) = send(&app, Method::POST, "/directories/Example/sync", &key, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("a sync of the directory \"Example\" is running"),
        "{message}"
    );

    let first = first.await.expect("the first sync");
    assert_eq!(first.status(), 200);
    let report: Value = first.json().await.expect("JSON");
    assert_eq!(report["ok"], false, "{report}");
    let (status, report) = send(&app, Method::POST, "/directories/Example/sync", &key, None).await;
    assert_eq!(status, 200, "free again once the first ended: {report}");
}

#[tokio::test]
async fn serve_syncs_a_directory_whose_interval_has_passed_by_itself() {
    let Some(slapd) = Slapd::start_with(small()).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a data dir");
    let app = spawn_with(test_config(dir.path())).await.expect("start");
    let key = app.api_key(&["--admin"]);
    create_directory(&app, &key, &slapd.url, None).await;
    app.stop().await;
    // Made two days ago and never synced: due at once (the interval is a day).
    let conn = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).expect("open");
    conn.execute(
        "UPDATE directories SET created_at = created_at - 2 * 86400",
        [],
    )
    .expect("backdated");
    drop(conn);

    let app = spawn_with(test_config(dir.path()))
        .await
        .expect("start again");
    let mut synced = 0;
    for _ in 0..600 {
        synced = count(&app, "SELECT count(*) FROM directory_syncs WHERE ok = 1");
        if synced > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(synced, 1, "the scheduler synced the directory");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE directory_id IS NOT NULL"
        ),
        slapd.fixture.total_people() as i64
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'directory.sync' AND actor = 'system'"
        ),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_person_looked_up_at_their_first_login_gets_the_resources_their_groups_map_to() {
    let Some(slapd) = Slapd::start_with(small()).await else {
        return;
    };
    let app = spawn_app().await;
    let key = app.api_key(&["--admin"]);
    create_resource(&app, &key, "wiki").await;
    create_resource(&app, &key, "vpn").await;
    create_directory(&app, &key, &slapd.url, None).await;
    for (group, resource) in [("(givenName=New)", "wiki"), ("(employeeType=none)", "vpn")] {
        let mapping = json!({"group": group, "resource": resource});
        let path = "/directories/Example/groups";
        let (status, added) = send(&app, Method::POST, path, &key, Some(mapping)).await;
        assert_eq!(status, 201, "{added}");
    }
    // Carol joins the company after the last sync; her entry matches the wiki's group only.
    slapd.add_person("carol", "carol-directory-password").await;

    let (status, body) = send(
        &app,
        Method::POST,
        "/auth/authenticate",
        &key,
        Some(json!({
            "resource": "wiki",
            "user": "carol",
            "password": "carol-directory-password",
            "otp": "123456"
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "rejected", "no token yet: {body}");
    assert_eq!(assigned_to(&app, "wiki"), ["carol"]);
    assert!(assigned_to(&app, "vpn").is_empty());

    // The mapping holds the assignment: a sync after she left the group takes it away.
    slapd
        .modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: givenName\ngivenName: Carol\n",
            person_dn("carol")
        ))
        .await;
    let report = sync_now(&app, &key).await;
    assert_eq!(report["unassigned"], 1, "{report}");
    assert!(assigned_to(&app, "wiki").is_empty());
    app.stop().await;
}
