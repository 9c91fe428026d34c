//! A directory user for the tests of what otpgate lets change about them: a small slapd (alice
//! and bob, no generated people), the directory "Example" on it made through the API, and
//! alice from it made an otpgate user, linked to her entry.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::api::{database, send};
use crate::helpers::app::TestApp;
use crate::helpers::slapd::{ALICE, Fixture, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, Slapd};

/// The directory's name, as the refusals name it.
pub const DIRECTORY: &str = "Example";

/// A slapd with alice and bob only (no paging needed here), or None without slapd.
pub async fn small_slapd() -> Option<Slapd> {
    Slapd::start_with(Fixture {
        people: 0,
        tls: false,
    })
    .await
}

/// The directory "Example" on `slapd`, as an administrator would send it.
pub fn directory_settings(slapd: &Slapd) -> Value {
    json!({
        "name": DIRECTORY,
        "kind": "openldap",
        "urls": [slapd.url],
        "tls": "none",
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "base_dn": PEOPLE_DN,
    })
}

/// The directory "Example" and alice from it as an otpgate user (Alice Liddell,
/// alice@example.org, her mobile number); her user id.
pub async fn directory_user(app: &TestApp, admin: &str, slapd: &Slapd) -> i64 {
    let (status, created) = send(
        app,
        Method::POST,
        "/directories",
        admin,
        Some(directory_settings(slapd)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, added) = send(
        app,
        Method::POST,
        &format!("/directories/{DIRECTORY}/users"),
        admin,
        Some(json!({"login": ALICE.0})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    added["user_id"].as_i64().expect("the user's id")
}

/// What a user's record holds that a directory keeps: login, first and last name, email,
/// phone, password hash; and whether they are enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub enabled: bool,
}

/// The user `id` as the database holds them.
pub fn record(app: &TestApp, id: i64) -> Record {
    database(app)
        .query_row(
            "SELECT login, first_name, last_name, email, phone, password_hash, enabled
             FROM users WHERE id = ?1",
            [id],
            |row| {
                Ok(Record {
                    login: row.get(0)?,
                    first_name: row.get(1)?,
                    last_name: row.get(2)?,
                    email: row.get(3)?,
                    phone: row.get(4)?,
                    password_hash: row.get(5)?,
                    enabled: row.get(6)?,
                })
            },
        )
        .expect("the user")
}
