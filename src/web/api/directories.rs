//! Managing directories through the API (admin keys only): where the servers are, how otpgate
//! binds and searches, which attributes say what; Test connection and Preview on settings not
//! yet saved or on a saved directory; a person of a directory made an otpgate user. The
//! service account's password is write-only. The rules are `directories`'.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};

use super::address::{DIRECTORY_PARAMETER, DirectoryAt};
use super::error::{AdminRefusals, ErrorBody};
use super::{AdminCaller, ApiError, ApiJson};
use crate::clock::now;
use crate::directories::{self, DirectoryInput, LinkError};
use crate::ldap::{Attempt, Directory, DirectoryError, Person};
use crate::store::directories::Directory as Stored;
use crate::web::AppState;

/// The most people a preview shows (it counts them all).
const PREVIEW_LIMIT: usize = 20;

/// A directory as the API shows it; the service account's password is never shown.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Directory)]
pub struct DirectoryJson {
    id: i64,
    name: String,
    /// `active_directory` or `openldap`.
    kind: String,
    /// In failover order.
    urls: Vec<String>,
    /// `starttls`, `ldaps` or `none`.
    tls: String,
    /// The CA certificate(s) in PEM; null: the system's roots.
    ca_pem: Option<String>,
    bind_dn: String,
    base_dn: String,
    user_filter: String,
    login_attributes: Vec<String>,
    id_attribute: String,
    first_name_attribute: String,
    last_name_attribute: String,
    email_attribute: String,
    mobile_attribute: String,
    /// A group's DN or a filter; null: everyone the user filter finds.
    user_group: Option<String>,
    connect_timeout_seconds: i64,
    search_timeout_seconds: i64,
    sync_interval_minutes: i64,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
}

impl From<Stored> for DirectoryJson {
    fn from(directory: Stored) -> Self {
        let fields = directory.fields;
        DirectoryJson {
            id: directory.id,
            name: fields.name,
            kind: fields.kind,
            urls: fields.urls,
            tls: fields.tls,
            ca_pem: fields.ca_pem,
            bind_dn: fields.bind_dn,
            base_dn: fields.base_dn,
            user_filter: fields.user_filter,
            login_attributes: fields.login_attributes,
            id_attribute: fields.id_attribute,
            first_name_attribute: fields.first_name_attribute,
            last_name_attribute: fields.last_name_attribute,
            email_attribute: fields.email_attribute,
            mobile_attribute: fields.mobile_attribute,
            user_group: fields.user_group,
            connect_timeout_seconds: fields.connect_timeout_seconds,
            search_timeout_seconds: fields.search_timeout_seconds,
            sync_interval_minutes: fields.sync_interval_minutes,
            created_at: directory.created_at,
            updated_at: directory.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryList {
    items: Vec<DirectoryJson>,
}

/// What a test of the settings found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryTest {
    /// The service account bound and the base DN was read.
    ok: bool,
    /// The address that answered.
    url: Option<String>,
    /// What happened, in words.
    message: String,
    /// The addresses that did not answer (or failed), in order, with their reasons.
    attempts: Vec<Attempt>,
}

/// What a preview found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryPreview {
    ok: bool,
    url: Option<String>,
    message: String,
    /// How many people the settings find, through every page of the search.
    count: usize,
    /// The first of them (at most 20).
    people: Vec<Person>,
    attempts: Vec<Attempt>,
}

fn failed(error: &DirectoryError) -> (Option<String>, Vec<Attempt>) {
    match error {
        DirectoryError::Unreachable(attempts) => (None, attempts.clone()),
        DirectoryError::Search { url, reason } => (
            Some(url.clone()),
            vec![Attempt {
                url: url.clone(),
                problem: reason.clone(),
            }],
        ),
        DirectoryError::Busy => (None, Vec::new()),
    }
}

async fn test_with(
    caller: &AdminCaller,
    state: &AppState,
    directory: Directory,
) -> Result<HttpResponse, ApiError> {
    let report = match directory.test().await {
        Ok(tested) => DirectoryTest {
            ok: true,
            message: format!(
                "bound as the service account at {} and read the base DN",
                tested.url
            ),
            url: Some(tested.url),
            attempts: tested.skipped,
        },
        Err(error) => {
            let (url, attempts) = failed(&error);
            DirectoryTest {
                ok: false,
                url,
                message: error.to_string(),
                attempts,
            }
        }
    };
    let result = if report.ok { "ok" } else { "failed" };
    state
        .store
        .audit(
            caller
                .audit(now(), "directory.test", result)
                .detail(report.message.clone()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

async fn preview_with(
    caller: &AdminCaller,
    state: &AppState,
    directory: Directory,
) -> Result<HttpResponse, ApiError> {
    let report = match directory.preview(PREVIEW_LIMIT).await {
        Ok(preview) => DirectoryPreview {
            ok: true,
            message: format!(
                "{} found",
                crate::domain::words::count(preview.count as u64, "person", "people")
            ),
            url: Some(preview.url),
            count: preview.count,
            people: preview.people,
            attempts: Vec::new(),
        },
        Err(error) => {
            let (url, attempts) = failed(&error);
            DirectoryPreview {
                ok: false,
                url,
                message: error.to_string(),
                count: 0,
                people: Vec::new(),
                attempts,
            }
        }
    };
    let result = if report.ok { "ok" } else { "failed" };
    state
        .store
        .audit(
            caller
                .audit(now(), "directory.preview", result)
                .detail(report.message.clone()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Creates a directory: `kind` chooses the preset of the fields not sent.
#[utoipa::path(
    tag = "directories",
    request_body = DirectoryInput,
    responses(
        (status = 201, description = "The new directory (without its password)", body = DirectoryJson),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 409, description = "The name is taken", body = ErrorBody),
    )
)]
#[post("/directories")]
pub(super) async fn create_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<DirectoryInput>,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::create(
        &state.store,
        &state.keys,
        body.0,
        caller.change("directory.create"),
        now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(DirectoryJson::from(directory)))
}

/// Lists the directories by name.
#[utoipa::path(
    tag = "directories",
    responses(
        (status = 200, description = "Every directory (without passwords)", body = DirectoryList),
        AdminRefusals,
    )
)]
#[get("/directories")]
pub(super) async fn list_directories(
    _admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let directories = state.store.directories().await?;
    Ok(HttpResponse::Ok().json(DirectoryList {
        items: directories.into_iter().map(DirectoryJson::from).collect(),
    }))
}

/// Shows a directory.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 200, description = "The directory (without its password)", body = DirectoryJson),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
    )
)]
#[get("/directories/{directory}")]
pub(super) async fn get_directory(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    let directory = state
        .store
        .directory(directory.into_inner())
        .await?
        .ok_or(ApiError::NotFound("directory"))?;
    Ok(HttpResponse::Ok().json(DirectoryJson::from(directory)))
}

/// Changes a directory: the fields sent; a new `bind_password` replaces the old one.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    request_body = DirectoryInput,
    responses(
        (status = 200, description = "The changed directory (without its password)", body = DirectoryJson),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "The new name is taken", body = ErrorBody),
    )
)]
#[patch("/directories/{directory}")]
pub(super) async fn update_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
    body: ApiJson<DirectoryInput>,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::update(
        &state.store,
        &state.keys,
        directory.into_inner(),
        body.0,
        caller.change("directory.update"),
        now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(DirectoryJson::from(directory)))
}

/// Deletes a directory no user comes from.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 204, description = "Deleted"),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "Users come from the directory", body = ErrorBody),
    )
)]
#[delete("/directories/{directory}")]
pub(super) async fn delete_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    directories::delete(
        &state.store,
        directory.into_inner(),
        caller.change("directory.delete"),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Test connection with settings not saved (`kind` and `bind_password` required): the
/// service account binds at the first address that answers and the base DN is read.
#[utoipa::path(
    tag = "directories",
    request_body = DirectoryInput,
    responses(
        (status = 200, description = "What the test found; `ok` says whether it worked", body = DirectoryTest),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
    )
)]
#[post("/directories/test")]
pub(super) async fn test_unsaved_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<DirectoryInput>,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::unsaved(body.0)?;
    test_with(&caller, &state, directory).await
}

/// Preview with settings not saved: how many people they find and the first 20.
#[utoipa::path(
    tag = "directories",
    request_body = DirectoryInput,
    responses(
        (status = 200, description = "What the search found; `ok` says whether it worked", body = DirectoryPreview),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
    )
)]
#[post("/directories/preview")]
pub(super) async fn preview_unsaved_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<DirectoryInput>,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::unsaved(body.0)?;
    preview_with(&caller, &state, directory).await
}

/// Test connection with a saved directory's settings.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 200, description = "What the test found; `ok` says whether it worked", body = DirectoryTest),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
    )
)]
#[post("/directories/{directory}/test")]
pub(super) async fn test_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::saved(&state.store, &state.keys, directory.into_inner()).await?;
    test_with(&caller, &state, directory).await
}

/// Preview with a saved directory's settings.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 200, description = "What the search found; `ok` says whether it worked", body = DirectoryPreview),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
    )
)]
#[post("/directories/{directory}/preview")]
pub(super) async fn preview_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::saved(&state.store, &state.keys, directory.into_inner()).await?;
    preview_with(&caller, &state, directory).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPerson {
    /// The person's login in the directory (any of its login attributes).
    login: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AddedPerson {
    /// The otpgate user linked to the person's entry.
    user_id: i64,
    /// False when the person was an otpgate user already.
    created: bool,
}

/// Makes a person of the directory an otpgate user, linked to their entry by its stable id:
/// their password stays in the directory.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    request_body = AddPerson,
    responses(
        (status = 201, description = "The new user", body = AddedPerson),
        (status = 200, description = "The person was a user already", body = AddedPerson),
        (status = 400, description = "The entry cannot become a user (no login, no stable id)", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such directory, or no such person in it", body = ErrorBody),
        (status = 409, description = "A local user has the login", body = ErrorBody),
        (status = 502, description = "The directory did not answer", body = ErrorBody),
    )
)]
#[post("/directories/{directory}/users")]
pub(super) async fn add_directory_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
    body: ApiJson<AddPerson>,
) -> Result<HttpResponse, ApiError> {
    let added = directories::add_person(
        &state.store,
        &state.keys,
        directory.into_inner(),
        &body.0.login,
        caller.change("directory.add_user"),
        now(),
    )
    .await;
    match added {
        Ok((user_id, true)) => Ok(HttpResponse::Created().json(AddedPerson {
            user_id,
            created: true,
        })),
        Ok((user_id, false)) => Ok(HttpResponse::Ok().json(AddedPerson {
            user_id,
            created: false,
        })),
        Err(LinkError::Rule(error)) => Err(error.into()),
        Err(LinkError::Directory(error)) => Err(ApiError::Directory(error.to_string())),
    }
}
